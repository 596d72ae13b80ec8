/*
 * sink.h - loading sink plugins and running one batch through one.
 *
 * A struct bd_sink is a loaded [sink.NAME]: the dlopen handle, the
 * plugin's table, its state and the host table lent to it. A struct
 * bd_batch is one sink call: the items taken from a key, the public
 * struct batchd_batch the plugin sees, and one result slot per item.
 */
#ifndef BD_SINK_H
#define BD_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "batchd_sink.h"
#include "config.h"

struct bd_item;
struct bd_key;
struct bd_series;
struct event;

struct bd_sink {
    char *name;               /* [sink.NAME] */
    char *path;               /* resolved plugin path */
    void *dl;                 /* dlopen handle, closed at exit only */
    const struct batchd_sink *vt;
    void *state;              /* from vt->init */
    struct batchd_host host;  /* lent to the plugin; host_priv = this */
    int nonblocking;          /* BATCHD_SINK_NONBLOCKING */
    int isolation;            /* enum bd_isolation */
    volatile int unhealthy;   /* process isolation: crashing; admission
                               * answers SINK_UNAVAILABLE (set by isolate.c) */
    struct bd_series *series; /* its counters (series.h): owned by the
                               * core, set when its generation is bound */
    uint64_t *restarts;       /* the series' runner-restart counter, which
                               * isolate.c bumps atomically from its I/O
                               * thread (set with series; NULL = none) */
    /* Reload (gen.c): a sink lives while a config generation lists it
     * or a call started in it has not ended; then it is shut down. */
    uint32_t gens;            /* generations that list it */
    uint32_t open_calls;      /* calls started and not yet freed (an
                               * abandoned call counts until its late
                               * answer) */
    struct bd_sink *reap_next; /* on the core's list of sinks to shut
                               * down at the end of the pass */
};

/*
 * Daemon-internal process() codes, beyond the ABI's: a proxy sink
 * (isolate.c) completes a batch with BD_SINK_UNAVAILABLE when its
 * runner crashed or is down. The items are retried like a whole-batch
 * failure; once out of attempts they are answered SINK_UNAVAILABLE.
 */
#define BD_SINK_UNAVAILABLE (-100)

/* acquire() returned NULL (b->error holds its message): the backend is
 * unavailable. Retried with the batch's backoff like a whole-batch
 * RETRY (no split); once out of attempts, SINK_UNAVAILABLE. */
#define BD_SINK_ACQUIRE_FAILED (-101)

/* The isolated sink's runner is restarting and the batch never reached
 * a runner: the items wait b->wait_ns for the restart with their
 * attempt not counted (bounded by their deadline and
 * delivery_timeout_ms, then SINK_UNAVAILABLE). */
#define BD_SINK_NOT_STARTED (-102)

/* One item's answer, filled by host->result. */
struct bd_result {
    int code;                 /* 0 unset, else enum batchd_result_code */
    uint8_t *data;            /* owned copy, NULL when len is 0 */
    size_t len;
};

struct bd_batch {
    struct batchd_batch pub;  /* what the plugin borrows; pub.host_priv = this */
    struct bd_batch *next;    /* worker job queue / completion list */
    struct bd_batch *rnext;   /* server's list of running batches */
    struct bd_batch *rprev;
    struct bd_key *key;       /* the key the items came from */
    struct bd_sink *sink;
    void *res;                /* from vt->acquire, or NULL */
    struct event *timeout_ev; /* sink_timeout_ms timer, NULL when none */
    int abandoned;            /* timed out: items answered, late result dropped */
    int cancelled;            /* the sink's cancel hook was called */
    int rc;                   /* enum batchd_process_rc once done */
    char *error;              /* host->batch_error text, owned */
    uint64_t wait_ns;         /* BD_SINK_NOT_STARTED: wait this long */
    uint64_t start_ns;        /* dispatch time */
    uint64_t retry_after_ns;  /* host->retry_after: least wait before its
                               * RETRY items go again; 0 = none */
    struct bd_item **items;   /* nitems entries, owned by the batch */
    void (*free_item)(struct bd_item *it); /* how the core frees one of
                               * them (a leftover batch at shutdown) */
    const char *(*trace_of)(const struct bd_item *it); /* an item's
                               * traceparent or NULL (host->item_trace) */
    char span_id[17];         /* the batch's span id, 16 hex (the core's) */
    struct batchd_item *pitems;
    struct bd_result *results;
};

/*
 * Load every [sink.*] of cfg: dlopen, ABI and member checks, option
 * check, init (for isolation = process all of that happens in a sink
 * runner child, and the sink gets isolate.c's proxy table). sink_dir
 * overrides cfg->sink_dir when not NULL. Returns
 * a new array of cfg->nsinks sinks (free with bd_sink_unload_all), or
 * NULL with one "sink NAME (path): why" line in err.
 */
struct bd_sink *bd_sink_load_all(const struct bd_config *cfg,
                                 const char *sink_dir, char *err,
                                 size_t errlen);

/*
 * dlopen the plugin at path and check it as a batchd sink: the entry
 * symbol, abi_version, the required members, then the option keys
 * kv[0..nkv) against its table. name is the [sink.NAME] for the error
 * line. On success sets *dl (dlclose it when done) and *vt; else -1 with
 * "sink NAME (PATH): why" in err. Shared by the loader and the sink
 * runner child (runner.c), so both refuse a plugin in the same words.
 */
int bd_sink_open(const char *name, const char *path,
                 const struct batchd_kv *kv, size_t nkv, void **dl,
                 const struct batchd_sink **vt, char *err, size_t errlen);

/* The entry of a sink's option table that takes key, or NULL. A name
 * ending in ".*" takes every key with that prefix and something after
 * it ("rdkafka.*" takes "rdkafka.linger.ms", not "rdkafka."). */
const struct batchd_sink_option *
bd_sink_option_find(const struct batchd_sink_option *opts, const char *key);

/* For --check-config: like bd_sink_load_all, but every plugin is loaded
 * in this process (whatever its isolation), init'ed so that it checks
 * its option values (a sink may log warnings, e.g. a server it cannot
 * reach), then shut down again. */
int bd_sink_check_all(const struct bd_config *cfg, const char *sink_dir,
                      char *err, size_t errlen);

/* Load one [sink.*] section (as bd_sink_load_all does for each) into
 * a new sink; free with bd_sink_unload_one. NULL with err set. */
struct bd_sink *bd_sink_load_one(const struct bd_sink_conf *sc,
                                 const char *dir, char *err, size_t errlen);

/* shutdown() the sink, dlclose and free it (no call may be running). */
void bd_sink_unload_one(struct bd_sink *s);

/* Would sc, loaded with dir, give the sink s was loaded as (same
 * plugin path, isolation settings and options, in order)? A reload
 * keeps such a sink running instead of restarting it. */
int bd_sink_conf_same(const struct bd_sink *s, const struct bd_sink_conf *old,
                      const struct bd_sink_conf *sc, const char *dir);

/* shutdown() every sink, then dlclose; only when no batch is in flight
 * (pass 0 for closing handles when a call may still be running). */
void bd_sink_unload_all(struct bd_sink *sinks, size_t n, int may_dlclose);

/* Store one item's verdict in r, copying data (the host->result rule,
 * shared by the daemon and the sink runner). Returns 0, or -1 for a bad
 * code or no memory (then the item fails). */
int bd_result_set_slow(struct bd_result *r, int code, const void *data,
                       size_t len);

static inline int bd_result_set(struct bd_result *r, int code,
                                const void *data, size_t len)
{
    /* The usual answer, once per item: OK with nothing to copy. */
    if (code == BATCHD_RESULT_OK && len == 0 && r->data == NULL) {
        r->code = code;
        r->len = 0;
        return 0;
    }
    return bd_result_set_slow(r, code, data, len);
}

/* Replace *slot with a copy of msg (NULL clears it). */
void bd_error_set(char **slot, const char *msg);

/* A new batch for n items (free with bd_batch_free); it keeps its own
 * copy of the key name, which the sink may read until the call ends,
 * even after the daemon gave up on it. NULL on OOM. */
struct bd_batch *bd_batch_new(struct bd_sink *sink, struct bd_key *key,
                              const char *keyname, size_t keylen, size_t n);

/* Frees results and the batch; not the items (the caller owns them by
 * then). */
void bd_batch_free(struct bd_batch *b);

/*
 * Call the plugin's acquire (if any) and process on this thread. Returns
 * process's code; unless it is BATCHD_SINK_PENDING, b->rc is set too.
 * After PENDING the caller must not touch b: host->complete hands it
 * back (possibly before this returns). Used by workers and, for
 * non-blocking sinks, by the loop.
 */
int bd_sink_run(struct bd_batch *b);

/* The oldest plugin ABI the daemon still loads (batchd_sink.h). */
#define BATCHD_SINK_ABI_MIN 1

/* Does vt's ABI version provide the member at off (offsetof) of size
 * bytes? The daemon reads no member of a plugin's table without it. */
int bd_sink_has(const struct batchd_sink *vt, size_t off, size_t size);
#define BD_SINK_HAS(vt, m) \
    bd_sink_has((vt), offsetof(struct batchd_sink, m), \
                sizeof(((struct batchd_sink *)0)->m))

/* Completion hook installed by worker.c: where host->complete sends a
 * PENDING batch. */
void bd_sink_set_complete_hook(void (*hook)(struct bd_batch *b));

#endif
