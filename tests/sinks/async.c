/*
 * async.c - test sink: NONBLOCKING, answers later from its own thread.
 *
 * process() queues the batch and returns BATCHD_SINK_PENDING at once; a
 * thread owned by the sink completes it delay_ms later (default 10) with
 * every item OK(payload), then calls host->complete(b, BATCHD_SINK_DONE).
 * Any number of batches may be pending at once; they complete in the
 * order they came (all wait the same delay).
 *
 * Options:
 *   delay_ms   time from process() to complete(), ms (default 10)
 *
 * shutdown() stops and joins the thread. The daemon should only call it
 * with nothing pending; if batches are still queued they are completed at
 * once (no delay) before the thread exits, so every PENDING batch gets
 * exactly one complete() and nothing leaks.
 *
 * Note for the daemon: complete() may run on this thread before process()
 * has returned PENDING on the loop (with delay_ms = 0 it often does).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batchd_sink.h"

#define ASYNC_MAX_DELAY_MS 3600000UL

struct async_pending {
    struct batchd_batch *batch;   /* borrowed until complete() */
    struct timespec due;          /* CLOCK_MONOTONIC */
    struct async_pending *next;
};

struct async_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    unsigned long delay_ms;       /* process() to complete() */
    pthread_mutex_t lock;         /* guards head, tail, stopping */
    pthread_cond_t cond;          /* new batch, or stopping; CLOCK_MONOTONIC */
    struct async_pending *head;   /* oldest first = earliest due */
    struct async_pending *tail;
    int stopping;                 /* set by shutdown */
    pthread_t thread;             /* completes batches */
};

static const struct batchd_sink_option async_options[] = {
    { .name = "delay_ms", .def = "10", .help = "ms from process() to complete()" },
    { .name = NULL },
};

static void ts_add_ms(struct timespec *ts, unsigned long ms)
{
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int ts_reached(const struct timespec *due)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > due->tv_sec ||
           (now.tv_sec == due->tv_sec && now.tv_nsec >= due->tv_nsec);
}

/* Answer every item of p's batch, hand it back, free p. Called unlocked. */
static void async_finish(struct async_state *st, struct async_pending *p)
{
    struct batchd_batch *b = p->batch;
    size_t i;

    free(p);
    for (i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];

        st->host->result(b, i, BATCHD_RESULT_OK, it->len > 0 ? it->data : "", it->len);
    }
    st->host->complete(b, BATCHD_SINK_DONE);   /* b is the daemon's again */
}

static void *async_thread(void *arg)
{
    struct async_state *st = arg;

    pthread_mutex_lock(&st->lock);
    for (;;) {
        struct async_pending *p = st->head;

        if (p != NULL && (st->stopping || ts_reached(&p->due))) {
            st->head = p->next;
            if (st->head == NULL)
                st->tail = NULL;
            /* Never call into the daemon with our lock held. */
            pthread_mutex_unlock(&st->lock);
            async_finish(st, p);
            pthread_mutex_lock(&st->lock);
            continue;
        }
        if (st->stopping)
            break;
        if (p != NULL)
            pthread_cond_timedwait(&st->cond, &st->lock, &p->due);
        else
            pthread_cond_wait(&st->cond, &st->lock);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

static int async_parse(struct async_state *st, const struct batchd_kv *kv,
                       size_t nkv, char *err, size_t errlen)
{
    size_t i;

    for (i = 0; i < nkv; i++) {
        const char *v = kv[i].value;
        char *end;

        if (strcmp(kv[i].key, "delay_ms") != 0) {
            snprintf(err, errlen, "async sink: unknown option '%s'", kv[i].key);
            return -1;
        }
        errno = 0;
        st->delay_ms = strtoul(v, &end, 10);
        if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
            st->delay_ms > ASYNC_MAX_DELAY_MS) {
            snprintf(err, errlen,
                     "async sink: delay_ms '%s' is not a number of ms (0..%lu)",
                     v, ASYNC_MAX_DELAY_MS);
            return -1;
        }
    }
    return 0;
}

static void *async_init(const struct batchd_host *host,
                        const struct batchd_kv *kv, size_t nkv,
                        char *err, size_t errlen)
{
    struct async_state *st = calloc(1, sizeof(*st));
    pthread_condattr_t ca;
    int rc;

    if (st == NULL) {
        snprintf(err, errlen, "async sink: out of memory");
        return NULL;
    }
    st->host = host;
    st->delay_ms = 10;
    if (async_parse(st, kv, nkv, err, errlen) < 0)
        goto out_free;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        snprintf(err, errlen, "async sink: pthread_mutex_init failed");
        goto out_free;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        snprintf(err, errlen, "async sink: pthread_cond_init: %s", strerror(rc));
        goto out_destroy_lock;
    }
    rc = pthread_create(&st->thread, NULL, async_thread, st);
    if (rc != 0) {
        snprintf(err, errlen, "async sink: pthread_create: %s", strerror(rc));
        goto out_destroy_cond;
    }
    return st;

out_destroy_cond:
    pthread_cond_destroy(&st->cond);
out_destroy_lock:
    pthread_mutex_destroy(&st->lock);
out_free:
    free(st);
    return NULL;
}

static int async_process(void *state, void *res, struct batchd_batch *b)
{
    struct async_state *st = state;
    struct async_pending *p = malloc(sizeof(*p));

    (void)res;
    if (p == NULL) {
        st->host->batch_error(b, "async sink: out of memory");
        return BATCHD_SINK_RETRY;
    }
    p->batch = b;
    p->next = NULL;
    clock_gettime(CLOCK_MONOTONIC, &p->due);
    ts_add_ms(&p->due, st->delay_ms);

    pthread_mutex_lock(&st->lock);
    if (st->tail != NULL)
        st->tail->next = p;
    else
        st->head = p;
    st->tail = p;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    return BATCHD_SINK_PENDING;
}

static void async_shutdown(void *state)
{
    struct async_state *st = state;

    pthread_mutex_lock(&st->lock);
    st->stopping = 1;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->thread, NULL);   /* it completes what is left first */
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static const struct batchd_sink async_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = BATCHD_SINK_NONBLOCKING,
    .name = "async",
    .options = async_options,
    .init = async_init,
    .process = async_process,
    .shutdown = async_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &async_sink;
}
