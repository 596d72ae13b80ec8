/*
 * pool.h - the redis sink's connection pool. A batch borrows one
 * connection through the sink's acquire/release, so the key's
 * concurrency slot covers it; connections are opened lazily (a server
 * down at start is not an error), checked before each loan, and dropped
 * when a batch saw them break. An outage is logged once when it starts
 * and once when it ends, never per batch or item.
 */
#ifndef RS_POOL_H
#define RS_POOL_H

#include <pthread.h>
#include <stddef.h>

#include <hiredis.h>

#include "batchd_sink.h"
#include "options.h"

/* One slot of the pool; lent whole to one batch at a time. */
struct rs_conn {
    redisContext *ctx;        /* NULL until (re)connected; owned */
    int broken;               /* set while lent: drop ctx at release */
    char *scratch;            /* the batch's argument buffer; owned, reused */
    size_t scratch_cap;
    struct rs_conn *next_idle; /* free list link (pool->mu) */
};

struct rs_pool {
    const struct rs_options *opt; /* borrowed from the sink state */
    const struct batchd_host *host; /* borrowed, for the outage log */
    pthread_mutex_t mu;       /* guards idle, down and the counters */
    pthread_cond_t cv;        /* a slot came back (CLOCK_MONOTONIC) */
    struct rs_conn *slots;    /* opt->pool_size slots; owned */
    struct rs_conn *idle;     /* slots not lent, most recently used first */
    int down;                 /* an outage was logged and has not ended */
    unsigned long connects;   /* connections opened, for the log at shutdown */
};

/* Set up p for o (borrowed until destroy). Opens nothing. Returns 0 or
 * -1 with err. */
int rs_pool_init(struct rs_pool *p, const struct rs_options *o,
                 const struct batchd_host *host, char *err, size_t errlen);

/* Close every connection and free p's memory. Nothing may be lent. */
void rs_pool_destroy(struct rs_pool *p);

/*
 * Borrow a connected slot, waiting up to opt->pool_wait_ms for a free
 * one. NULL with err when none came free or the server cannot be
 * reached (then the batch is retried by the daemon).
 */
struct rs_conn *rs_pool_get(struct rs_pool *p, char *err, size_t errlen);

/* Give c back; closes its connection when it was marked broken. */
void rs_pool_put(struct rs_pool *p, struct rs_conn *c);

/* A lent connection failed (I/O error, timeout, EOF): mark it broken
 * and log the outage if it is news. */
void rs_pool_lost(struct rs_pool *p, struct rs_conn *c, const char *why);

/* At init: try one connection so that an unreachable server is logged
 * as a warning at start. Never fails. */
void rs_pool_probe(struct rs_pool *p);

#endif
