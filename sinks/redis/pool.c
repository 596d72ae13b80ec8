/*
 * pool.c - lend hiredis connections to batches (see pool.h). The mutex
 * covers only the free list and the outage flag: connecting and every
 * round trip happen outside it, on the slot the batch owns.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connect.h"
#include "pool.h"

int rs_pool_init(struct rs_pool *p, const struct rs_options *o,
                 const struct batchd_host *host, char *err, size_t errlen)
{
    pthread_condattr_t ca;

    memset(p, 0, sizeof(*p));
    p->opt = o;
    p->host = host;
    p->slots = calloc(o->pool_size, sizeof(*p->slots));
    if (p->slots == NULL) {
        snprintf(err, errlen, "pool: out of memory");
        return -1;
    }
    /* Slot 0 on top, so that a light load keeps using one connection. */
    for (size_t i = o->pool_size; i-- > 0;) {
        p->slots[i].next_idle = p->idle;
        p->idle = &p->slots[i];
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void rs_pool_destroy(struct rs_pool *p)
{
    for (size_t i = 0; i < p->opt->pool_size; i++) {
        if (p->slots[i].ctx != NULL)
            redisFree(p->slots[i].ctx);
        free(p->slots[i].scratch);
    }
    free(p->slots);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* The first failure of an outage is logged; the rest are not. */
static void note_down(struct rs_pool *p, const char *why)
{
    int news;

    pthread_mutex_lock(&p->mu);
    news = !p->down;
    p->down = 1;
    pthread_mutex_unlock(&p->mu);
    if (news)
        p->host->log(p->host, BATCHD_LOG_WARN,
                     "redis %s unavailable: %s; batches are retried until it is back",
                     p->opt->where, why);
}

static void note_up(struct rs_pool *p)
{
    int news;

    pthread_mutex_lock(&p->mu);
    news = p->down;
    p->down = 0;
    p->connects++;
    pthread_mutex_unlock(&p->mu);
    if (news)
        p->host->log(p->host, BATCHD_LOG_INFO, "redis %s is back", p->opt->where);
}

/* Take a free slot, waiting until deadline. NULL on timeout. */
static struct rs_conn *take_slot(struct rs_pool *p)
{
    struct timespec until;
    struct rs_conn *c;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += p->opt->pool_wait_ms / 1000;
    until.tv_nsec += (long)(p->opt->pool_wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (p->idle == NULL && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
    c = p->idle;
    if (c != NULL)
        p->idle = c->next_idle;
    pthread_mutex_unlock(&p->mu);
    return c;
}

static void push_idle(struct rs_pool *p, struct rs_conn *c)
{
    pthread_mutex_lock(&p->mu);
    c->next_idle = p->idle;
    p->idle = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Make sure c holds a live connection. 0, or -1 with err. */
static int ensure_connected(struct rs_pool *p, struct rs_conn *c, char *err,
                            size_t errlen)
{
    char why[256];

    if (c->ctx != NULL && rs_conn_stale(c->ctx)) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
    if (c->ctx != NULL)
        return 0;
    c->ctx = rs_connect(p->opt, why, sizeof(why));
    if (c->ctx == NULL) {
        note_down(p, why);
        snprintf(err, errlen, "redis %s", why);
        return -1;
    }
    note_up(p);
    return 0;
}

struct rs_conn *rs_pool_get(struct rs_pool *p, char *err, size_t errlen)
{
    struct rs_conn *c = take_slot(p);

    if (c == NULL) {
        snprintf(err, errlen, "redis: no free connection within %d ms "
                 "(pool_size %zu)", p->opt->pool_wait_ms, p->opt->pool_size);
        return NULL;
    }
    if (ensure_connected(p, c, err, errlen) != 0) {
        push_idle(p, c);
        return NULL;
    }
    return c;
}

void rs_pool_put(struct rs_pool *p, struct rs_conn *c)
{
    if (c->broken && c->ctx != NULL) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
    c->broken = 0;
    push_idle(p, c);
}

void rs_pool_lost(struct rs_pool *p, struct rs_conn *c, const char *why)
{
    c->broken = 1;
    note_down(p, why);
}

void rs_pool_probe(struct rs_pool *p)
{
    char err[300];
    struct rs_conn *c = take_slot(p);

    if (c != NULL) {
        ensure_connected(p, c, err, sizeof(err));
        push_idle(p, c);
    }
}
