/*
 * core.h - the batching core's state (core layer; DESIGN section 10):
 * the key table, queue totals, running calls, counters and the loop
 * clock it reads. batch.c (keys, close rules, admission, dispatch,
 * timers) and call.c (call outcomes, retries, timeouts) work on it.
 *
 * The core knows items and waiters (waiter.h), never connections or the
 * server: it asks for the end-of-pass work through want_flush, a hook
 * its owner (server.c, or a unit test) installs. It uses the loop's
 * event_base only for its timers. Loop thread only.
 */
#ifndef BD_CORE_H
#define BD_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "batchd_status.h"
#include "clock.h"
#include "config.h"
#include "siphash.h"

struct event_base;
struct bd_key;
struct bd_sink;
struct bd_batch;
struct bd_workers;
struct bd_dedup;
struct bd_durable;
struct bd_gen;
struct bd_series;

enum bd_state {
    BD_STATE_RUNNING = 0,
    BD_STATE_PAUSED = 1,      /* accept and queue, do not dispatch */
    BD_STATE_STOPPING = 2,    /* SIGTERM: flush everything, then exit */
};

/* Why admission refused an item (stats: per key and for the daemon).
 * bd_reject_names[] holds the names stats print, in this order. */
enum bd_reject {
    BD_REJECT_KEY_ITEMS = 0,  /* key_max_items reached */
    BD_REJECT_KEY_BYTES,      /* key_max_bytes reached */
    BD_REJECT_QUEUED_ITEMS,   /* max_queued_items reached (daemon) */
    BD_REJECT_QUEUED_BYTES,   /* max_queued_bytes reached (daemon) */
    BD_REJECT_UNHEALTHY,      /* the sink is unhealthy (crashes in a row) */
    BD_REJECT_TOO_LARGE,      /* payload over the route's max_bytes */
    BD_REJECT_NO_MEMORY,      /* out of memory */
    BD_REJECT_SPOOL,          /* durable: spool_max_bytes or no disk space */
    BD_REJECT_COUNT
};

extern const char *const bd_reject_names[BD_REJECT_COUNT];

/* The daemon's one counter table (stats.c renders it). The I/O layer
 * counts its own rows (replies, connections) here too. */
struct bd_counters {
    uint64_t items_in;        /* items accepted */
    uint64_t replies;         /* reply frames queued */
    uint64_t batches;         /* sink calls */
    uint64_t items_out;       /* items handed to sinks */
    uint64_t cancelled;       /* LOAD items dropped because their client left */
    uint64_t send_failed;     /* SEND items the sink did not take (logged) */
    uint64_t retries;         /* items put back for another attempt */
    uint64_t timeouts;        /* sink calls abandoned at sink_timeout_ms */
    uint64_t splits;          /* items capped to half a batch after failures */
    uint64_t coalesced;       /* items that joined another with their dedup_id */
    uint64_t conns_total;     /* connections accepted */
    uint64_t conns_dropped;   /* closed for a hard cap or a broken frame */
    uint64_t status[BATCHD_STATUS_COUNT]; /* item replies by status */
    uint64_t rejects[BD_REJECT_COUNT]; /* items refused at admission, by
                               * reason (enum bd_reject) */
    uint64_t batch_hist[17];  /* batch sizes: bucket i holds < 2^i items */
    uint64_t lat_hist[32];    /* item latency: bucket i holds < 2^i us */
    uint64_t lat_sum_us;      /* the sum of those latencies */
};

struct bd_core {
    struct event_base *base;  /* borrowed: the loop, for timers */
    struct bd_gen *gen;       /* the current config generation (gen.h):
                               * holds one reference; NULL in unit tests */
    const struct bd_config *cfg; /* gen->cfg (or the test's), borrowed */
    struct bd_sink *const *sinks; /* gen->sinks: cfg->nsinks, borrowed */
    struct bd_sink *reap;     /* sinks to shut down at the end of the
                               * pass: unlisted and idle (gen.c) */
    struct bd_workers *workers; /* borrowed: where blocking calls run */
    void (*want_flush)(void *arg); /* ask the owner for end-of-pass work */
    void *owner;              /* want_flush's argument */
    int state;                /* enum bd_state (set by the owner) */
    struct bd_clock clock;    /* the loop clock; clock.now_ns is this pass */
    struct bd_key **keytab;   /* hash table of live keys */
    struct bd_sipkey hash_key; /* keytab's secret hash key, drawn at start-up */
    size_t keytab_size;       /* power of two */
    size_t nkeys;
    struct bd_key *key_last;  /* the last key admitted to (cleared when freed):
                               * clients mostly repeat keys, so this skips
                               * the hash */
    struct bd_key *dirty;     /* keys to re-check at the end of this pass */
    struct bd_key *waiting;   /* keys with a ready batch and no global slot */
    struct bd_key *waiting_tail; /* its last key (appends are O(1)) */
    struct bd_key *idle_head; /* idle keys, oldest first */
    struct bd_key *idle_tail;
    size_t nidle;
    uint64_t nqueued;         /* items queued, all keys */
    uint64_t qbytes;          /* payload bytes queued, all keys */
    uint64_t nretry;          /* items waiting for a retry, all keys */
    uint64_t rbytes;          /* their payload bytes */
    uint64_t rng;             /* retry jitter state, never 0 */
    uint32_t inflight;        /* sink calls running */
    uint32_t abandoned;       /* timed-out calls still inside their sink */
    uint64_t inflight_items;  /* items inside running calls */
    uint64_t next_item_id;
    struct bd_batch *running; /* batches inside sink calls */
    struct bd_dedup **dedup_tab; /* joinable coalesced items (dedup.c) */
    size_t dedup_size;        /* buckets, a power of two; 0 = no table yet */
    size_t ndedup;            /* records in it */
    struct bd_durable *durable; /* owned: the spool of durable routes,
                               * NULL when no route is durable (durable.c) */
    struct bd_counters ctr;
    struct bd_series *series; /* per-route and per-sink counters, every
                               * name ever configured (series.h), owned */
};

/*
 * Set up an empty core (zeroes it): draws the key table's hash key and
 * the jitter seed. read is the clock (bd_now_ns, or a fake). Returns 0,
 * or -1 when no random bytes could be had (errno set).
 */
int bd_core_init(struct bd_core *core, struct event_base *base,
                 const struct bd_config *cfg, struct bd_sink *const *sinks,
                 struct bd_workers *workers, uint64_t (*read)(void),
                 void (*want_flush)(void *arg), void *owner);

/* Refresh core->clock.now_ns; every loop callback starts with it. */
static inline uint64_t bd_core_tick(struct bd_core *core)
{
    return bd_clock_tick(&core->clock);
}

/* Ask the owner for the end-of-pass work (bd_batch_run_dirty, replies). */
static inline void bd_core_want_flush(struct bd_core *core)
{
    core->want_flush(core->owner);
}

/* Finished sink calls handed back by the sink layer, oldest first,
 * linked by b->next (worker.c's completion callback). */
void bd_core_complete_list(struct bd_core *core, struct bd_batch *list);

#endif
