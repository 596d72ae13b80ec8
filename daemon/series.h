/*
 * series.h - the per-route and per-sink counters (core layer): one
 * struct bd_series per route name and per sink name, kept for the
 * daemon's life so that a reload never resets a counter (a route or
 * sink that comes back under its name continues its series).
 *
 * The core counts here; stats.c renders the same fields for `batchctl
 * stats` (JSON, text) and for the Prometheus endpoint from one table
 * of rows, so a new metric is one field here and one row there.
 * Loop thread only.
 */
#ifndef BD_SERIES_H
#define BD_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "hist.h"
#include "sink.h"

struct bd_gen;
struct bd_route_conf;

/* Buckets of a series histogram: bucket i counts values below 2^i of
 * its unit (bucket 0: the value 0), the last one everything above. */
#define BD_SERIES_BUCKETS 32

struct bd_series_hist {
    uint64_t bucket[BD_SERIES_BUCKETS];
    uint64_t sum;             /* of every value observed, in its unit */
};

enum bd_series_kind {
    BD_SERIES_ROUTE = 0,
    BD_SERIES_SINK = 1,
};

struct bd_series {
    struct bd_series *next;   /* the core's list */
    int kind;                 /* enum bd_series_kind */
    char *name;               /* the route's or sink's name, owned */
    /* routes */
    uint64_t items_in;        /* items accepted */
    uint64_t rejects[BD_REJECT_COUNT]; /* refused at admission, by reason */
    uint64_t batches;         /* batches cut and handed to the sink */
    uint64_t items_out;       /* items in them */
    uint64_t retries;         /* items put back for another attempt */
    uint64_t timeouts;        /* calls abandoned at sink_timeout_ms */
    uint64_t replies[BATCHD_STATUS_COUNT]; /* items given their final
                               * answer, by status (call.c item_reply) */
    struct bd_series_hist batch_items; /* batch sizes (items) */
    struct bd_series_hist queue_wait_us; /* accept to dispatch, per item */
    /* sinks */
    uint64_t calls;           /* process() calls started */
    uint64_t call_failures;   /* calls that failed as a whole (RETRY,
                               * FAIL, crash, acquire refused, ...) */
    struct bd_series_hist call_us; /* call duration, dispatch to answer */
    uint64_t items_ok;        /* items the sink answered OK */
    uint64_t items_retry;     /* items the sink answered RETRY */
    uint64_t items_failed;    /* items the sink answered FAIL (or not at all) */
    uint64_t restarts;        /* runners started again after a crash
                               * (isolation = process): isolate.c's I/O
                               * thread adds atomically, readers load
                               * atomically (bd_series_value) */
    /* gauges, filled by bd_series_gauges for one rendering */
    uint64_t g_keys;          /* live keys (queued, waiting or running) */
    uint64_t g_queued;        /* items queued and waiting for a retry */
    uint64_t g_qbytes;        /* their payload bytes */
    uint64_t g_inflight;      /* sink calls running */
    uint64_t g_inflight_items;/* items in them */
    uint64_t g_crashes;       /* sinks: runner crashes in a row (isolation
                               * = process; at unhealthy_after admission
                               * refuses) */
};

static inline void bd_series_observe(struct bd_series_hist *h, uint64_t v)
{
    h->bucket[bd_hist_pow2_bucket(v, BD_SERIES_BUCKETS)]++;
    h->sum += v;
}

/*
 * Give every route and sink of g its series (found by name, or new):
 * g->route_series[] and each sink's ->series. Before g becomes current,
 * so that a failure (no memory) fails the reload. Returns 0 or -1.
 */
int bd_series_bind(struct bd_core *core, struct bd_gen *g);

/* The series of route r of the current generation (the spare without
 * one). */
struct bd_series *bd_series_route(struct bd_core *core,
                                  const struct bd_route_conf *r);

/* Where the counts of an unbound route or sink go (unit tests drive a
 * core without generations): never rendered. */
extern struct bd_series bd_series_spare;

/* The series of sink s (the spare when unbound). */
static inline struct bd_series *bd_series_sink(struct bd_sink *s)
{
    return s->series ? s->series : &bd_series_spare;
}

/* Recompute every series' g_* gauges from the live keys. */
void bd_series_gauges(struct bd_core *core);

/* Free every series (exit). */
void bd_series_free_all(struct bd_core *core);

#endif
