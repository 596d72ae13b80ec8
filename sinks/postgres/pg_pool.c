/*
 * pg_pool.c - the postgres sink's connection pool (see pg.h).
 *
 * A connection is lent to one batch through the sink's acquire/release,
 * so the key's concurrency slot covers it. Connections open lazily: a
 * server that is down makes acquire fail (the daemon retries the batch,
 * then answers SINK_UNAVAILABLE), never the daemon's start. A broken
 * connection is closed at release and reopened by a later acquire.
 *
 * Outages are logged once: the first failure logs a warning and bumps
 * 'outages'; failures of connections opened before that stay quiet, and
 * the first successful connect after it logs that the server is back.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

int pg_pool_init(struct pg_pool *p, const struct batchd_host *host,
                 const struct pg_conf *conf, char *err, size_t errlen)
{
    int n = 0;

    memset(p, 0, sizeof(*p));
    p->host = host;
    p->conf = conf;
    p->conns = calloc(conf->pool_size, sizeof(*p->conns));
    if (p->conns == NULL) {
        snprintf(err, errlen, "postgres sink: out of memory");
        return -1;
    }
    /* expand_dbname = 1: "dbname" carries the whole conninfo (keywords or
     * URI); the keys after it override it, so only add what we must. */
    p->kw[n] = "dbname";
    p->val[n++] = conf->conninfo;
    p->kw[n] = "fallback_application_name";
    p->val[n++] = "batchd";
    if (conf->connect_timeout > 0) {
        snprintf(p->timeout, sizeof(p->timeout), "%u", conf->connect_timeout);
        p->kw[n] = "connect_timeout";
        p->val[n++] = p->timeout;
    }
    p->kw[n] = NULL;
    p->val[n] = NULL;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->freed, NULL);
    return 0;
}

void pg_pool_destroy(struct pg_pool *p)
{
    if (p->conns == NULL)
        return;
    for (unsigned i = 0; i < p->conf->pool_size; i++)
        if (p->conns[i].pg != NULL)
            PQfinish(p->conns[i].pg);
    free(p->conns);
    p->conns = NULL;
    pthread_cond_destroy(&p->freed);
    pthread_mutex_destroy(&p->lock);
}

/* libpq's message on one line, into buf. */
static void conn_message(PGconn *pg, char *buf, size_t len)
{
    snprintf(buf, len, "%s", pg != NULL ? PQerrorMessage(pg) : "out of memory");
    pg_one_line(buf);
}

/*
 * Server notices (and the FATAL a dying backend sends) go to the
 * daemon's log at debug level: libpq's default prints them on stderr,
 * one per connection, which is the per-item noise an outage must not
 * make. The outage itself is logged once, by the pool.
 */
static void notice_cb(void *arg, const char *msg)
{
    struct pg_pool *p = arg;
    char line[512];

    snprintf(line, sizeof(line), "%s", msg);
    pg_one_line(line);
    p->host->log(p->host, BATCHD_LOG_DEBUG, "server says: %s", line);
}

/* Note a failed connect (log the outage once) or a good one (log the
 * end of an outage). Takes the lock. */
static void note_connect(struct pg_pool *p, int ok, const char *why)
{
    pthread_mutex_lock(&p->lock);
    if (!ok && !p->down) {
        p->down = 1;
        p->outages++;
        p->host->log(p->host, BATCHD_LOG_WARN,
                     "cannot connect: %s; batches are retried until it is back", why);
    } else if (ok && p->down) {
        p->down = 0;
        p->host->log(p->host, BATCHD_LOG_INFO, "connected again");
    }
    pthread_mutex_unlock(&p->lock);
}

/* Per-session settings right after connecting. Returns 0, or -1 with err. */
static int session_setup(struct pg_pool *p, PGconn *pg, char *err, size_t errlen)
{
    char sql[64];
    PGresult *r;
    int ok;

    if (p->conf->statement_timeout_ms == 0)
        return 0;
    snprintf(sql, sizeof(sql), "SET statement_timeout = %u", p->conf->statement_timeout_ms);
    r = PQexec(pg, sql);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        conn_message(pg, err, errlen);
    PQclear(r);
    return ok ? 0 : -1;
}

/* Open a connection. Returns it, or NULL with err (and the outage noted). */
static PGconn *conn_open(struct pg_pool *p, char *err, size_t errlen)
{
    PGconn *pg = PQconnectdbParams(p->kw, p->val, 1);
    char why[512];

    if (pg == NULL || PQstatus(pg) != CONNECTION_OK ||
        session_setup(p, pg, why, sizeof(why)) != 0) {
        if (pg == NULL || PQstatus(pg) != CONNECTION_OK)
            conn_message(pg, why, sizeof(why));
        snprintf(err, errlen, "postgres: %s", why);
        note_connect(p, 0, why);
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, notice_cb, p);
    note_connect(p, 1, NULL);
    return pg;
}

int pg_pool_probe(struct pg_pool *p, char *err, size_t errlen)
{
    PGconn *pg = conn_open(p, err, errlen);

    if (pg == NULL)
        return -1;
    /* Keep it: the first batch need not connect again. */
    pthread_mutex_lock(&p->lock);
    p->conns[0].pg = pg;
    p->conns[0].epoch = p->outages;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/*
 * An idle connection the server closed (restart, idle timeout, admin
 * shutdown) has its FATAL message or EOF waiting on the socket: look,
 * so that the batch gets a fresh connection instead of failing once.
 */
static int conn_stale(PGconn *pg)
{
    struct pollfd pfd = { .fd = PQsocket(pg), .events = POLLIN };

    if (PQstatus(pg) != CONNECTION_OK || pfd.fd < 0)
        return 1;
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    /* Readable while idle: a notice, or the end. */
    return PQconsumeInput(pg) == 0 || PQstatus(pg) != CONNECTION_OK;
}

/* A free slot, preferring an open connection; NULL when all are lent. */
static struct pg_conn *free_slot(struct pg_pool *p)
{
    struct pg_conn *closed = NULL;

    for (unsigned i = 0; i < p->conf->pool_size; i++) {
        struct pg_conn *c = &p->conns[i];

        if (c->busy)
            continue;
        if (c->pg != NULL)
            return c;
        if (closed == NULL)
            closed = c;
    }
    return closed;
}

/* Wait (lock held) until a slot is free or pool_wait_ms passed. */
static struct pg_conn *wait_slot(struct pg_pool *p)
{
    struct timespec until;
    struct pg_conn *c;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += p->conf->pool_wait_ms / 1000;
    until.tv_nsec += (long)(p->conf->pool_wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while ((c = free_slot(p)) == NULL)
        if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT)
            return free_slot(p);
    return c;
}

struct pg_conn *pg_pool_acquire(struct pg_pool *p, char *err, size_t errlen)
{
    struct pg_conn *c;

    pthread_mutex_lock(&p->lock);
    c = wait_slot(p);
    if (c == NULL) {
        pthread_mutex_unlock(&p->lock);
        snprintf(err, errlen, "postgres: all %u connections busy for %u ms",
                 p->conf->pool_size, p->conf->pool_wait_ms);
        return NULL;
    }
    c->busy = 1;
    pthread_mutex_unlock(&p->lock);

    /* The slot is ours: connect outside the lock. */
    if (c->pg != NULL && conn_stale(c->pg)) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (c->pg == NULL) {
        c->stmt = 0;
        c->pg = conn_open(p, err, errlen);
        if (c->pg == NULL) {
            pg_pool_release(p, c);
            return NULL;
        }
        pthread_mutex_lock(&p->lock);
        c->epoch = p->outages;
        pthread_mutex_unlock(&p->lock);
    }
    return c;
}

void pg_pool_release(struct pg_pool *p, struct pg_conn *c)
{
    /* A connection left in a transaction or a COPY cannot be reused as
     * is; never hand such a one to the next batch. */
    if (c->pg != NULL && (PQstatus(c->pg) != CONNECTION_OK ||
                          PQtransactionStatus(c->pg) != PQTRANS_IDLE)) {
        PQfinish(c->pg);
        c->pg = NULL;
        c->stmt = 0;
    }
    pthread_mutex_lock(&p->lock);
    c->busy = 0;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->lock);
}

void pg_pool_lost(struct pg_pool *p, struct pg_conn *c, const char *why)
{
    pthread_mutex_lock(&p->lock);
    if (c->epoch == p->outages) {
        /* Opened after the last outage we logged: this is a new one. */
        p->outages++;
        p->down = 1;
        p->host->log(p->host, BATCHD_LOG_WARN,
                     "connection lost: %s; batches are retried", why);
    }
    pthread_mutex_unlock(&p->lock);
}

unsigned long pg_pool_next_stmt(struct pg_pool *p)
{
    unsigned long n;

    pthread_mutex_lock(&p->lock);
    n = ++p->stmts;
    pthread_mutex_unlock(&p->lock);
    return n;
}
