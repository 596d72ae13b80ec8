/*
 * batchd_sink.h - the batchd sink plugin ABI (installed).
 *
 * A sink is a shared object that exports one function,
 * batchd_sink_entry(), returning a const table. The daemon dlopens the
 * file (RTLD_NOW | RTLD_LOCAL), checks abi_version first, then the
 * required members, and only then calls init. Sinks never link against
 * the daemon: every host service comes through struct batchd_host.
 *
 * Threading: unless a sink sets BATCHD_SINK_NONBLOCKING, process() runs
 * on a sink worker thread and may block; several batches (of different
 * keys, or of one key when key_concurrency > 1) may be in process() at
 * once, so shared state needs the sink's own locking. A NONBLOCKING sink
 * is called on the event loop and must return at once: it either fills
 * the results and returns BATCHD_SINK_DONE, or returns
 * BATCHD_SINK_PENDING and later calls host->complete(batch) from any
 * thread.
 *
 * Ownership: a sink borrows the batch (keys, items, payloads) from
 * process() until it returns DONE/FAIL/RETRY, or until it calls
 * host->complete(). host->result() copies the payload it is given.
 *
 * Life cycle: init() and shutdown() run on the daemon's main thread;
 * shutdown() runs only after the last batch came back (never while a
 * call is running or PENDING). init() gets every key of [sink.NAME]
 * except `plugin`; keys missing from the sink's options table are
 * refused by the daemon before init() is called.
 *
 * Verdicts: per-item results count only when process() (or complete())
 * says BATCHD_SINK_DONE, and then every item needs one; an item left
 * without a result is a plugin bug and fails the whole batch. With
 * BATCHD_SINK_FAIL or _RETRY the per-item results are ignored. For a
 * PENDING batch, the thread that will call complete() owns the batch
 * and is the one calling result().
 *
 * Resources: acquire and release come together or not at all; acquire
 * returning NULL means "no resource now": the backend is unavailable, so
 * the batch is retried whole, and items out of attempts are answered
 * SINK_UNAVAILABLE with err. A resource is therefore never NULL.
 *
 * Growth: members are only ever appended, with a version bump. The
 * daemon loads plugins of every version from 1 to BATCHD_SINK_ABI_VERSION
 * and reads only the members of struct batchd_sink that exist in the
 * plugin's abi_version. host->abi_version says which members of struct
 * batchd_host the daemon fills: a plugin built against a newer header
 * checks it before calling a newer member (host->abi_version >= 2 for
 * retry_after), so that it can also document what an older daemon lacks.
 *
 * Versions:
 *   1  the tables as first published.
 *   2  struct batchd_host gains retry_after (a minimum retry wait, e.g.
 *      from an HTTP Retry-After header), then item_trace and
 *      batch_span_id (each item's opts.trace, the batch's span id).
 *      struct batchd_sink is unchanged.
 */
#ifndef BATCHD_SINK_H
#define BATCHD_SINK_H

#include <stddef.h>
#include <stdint.h>

#define BATCHD_SINK_ABI_VERSION 2

/* flags */
#define BATCHD_SINK_NONBLOCKING 0x1u  /* process() never blocks (see above) */

/* Per-item verdicts for host->result(). */
enum batchd_result_code {
    BATCHD_RESULT_OK = 1,     /* done; data is the reply payload (may be empty) */
    BATCHD_RESULT_RETRY = 2,  /* try this item again in a later batch */
    BATCHD_RESULT_FAIL = 3,   /* give up; data is a message for the client */
};

/* Return values of process(). */
enum batchd_process_rc {
    BATCHD_SINK_DONE = 0,     /* every item has its result */
    BATCHD_SINK_PENDING = 1,  /* NONBLOCKING only: host->complete() follows */
    BATCHD_SINK_FAIL = -1,    /* the whole batch failed, final: every item FAIL
                               * with host->batch_error's message, no retry */
    BATCHD_SINK_RETRY = -2,   /* the whole batch should be retried */
};

/* Log levels for host->log. */
enum batchd_log_level {
    BATCHD_LOG_ERROR = 0,
    BATCHD_LOG_WARN = 1,
    BATCHD_LOG_INFO = 2,
    BATCHD_LOG_DEBUG = 3,
};

struct batchd_item {
    const void *data;         /* payload bytes, borrowed */
    size_t len;               /* payload length */
    uint64_t id;              /* unique within this daemon's lifetime */
    uint32_t attempt;         /* 1 on the first try */
    int64_t deadline_ms;      /* ms left until the item's deadline, -1 none */
};

struct batchd_batch {
    const char *key;          /* NUL-terminated key of every item */
    size_t key_len;
    size_t nitems;            /* at least 1 */
    const struct batchd_item *items;
    void *host_priv;          /* the daemon's; do not touch */
};

/* One "key = value" line from the sink's [sink.NAME] section. */
struct batchd_kv {
    const char *key;
    const char *value;
};

/* A sink option, for the option table (like a config map). A name
 * ending in ".*" ("header.*") stands for every key with that prefix and
 * something after it ("header.X-Api-Key"); init() gets each such key as
 * written. */
struct batchd_sink_option {
    const char *name;         /* NULL ends the table; "pfx.*" takes
                               * every key "pfx.X" (X not empty) */
    const char *def;          /* default shown in docs, NULL if required */
    const char *help;
};

/* Services the daemon lends to sinks. Valid from init() to shutdown(). */
struct batchd_host {
    uint32_t abi_version;
    /* printf-style log line, prefixed with the sink's name. Thread-safe. */
    void (*log)(const struct batchd_host *host, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* Set item i's verdict; data is copied. Returns 0, or -1 when i is out
     * of range or memory is short (then the item fails). Call from the
     * thread that owns the batch, at most once per item. */
    int (*result)(struct batchd_batch *b, size_t i, int code,
                  const void *data, size_t len);
    /* Message for a whole-batch FAIL/RETRY; copied. */
    void (*batch_error)(struct batchd_batch *b, const char *msg);
    /* NONBLOCKING sinks: hand a PENDING batch back. Any thread, once.
     * rc is BATCHD_SINK_DONE, _FAIL or _RETRY as process() would return. */
    void (*complete)(struct batchd_batch *b, int rc);
    void *host_priv;          /* the daemon's; do not touch */

    /* ---- ABI version 2 (check host->abi_version >= 2 first) ---------- */

    /* The backend asked for a pause (HTTP 429/503 Retry-After, a
     * throttling reply): the batch's RETRY items, or the whole batch on
     * BATCHD_SINK_RETRY, are not tried again for at least ms
     * milliseconds. The daemon waits the larger of this and its own
     * jittered backoff, and still never past an item's deadline or the
     * route's delivery_timeout_ms: an item that cannot wait that long
     * ends as when its time runs out (RETRY_EXHAUSTED). Call it like
     * result() (the thread that owns the batch, before process() returns
     * or before complete()); the last call wins, 0 clears it. */
    void (*retry_after)(struct batchd_batch *b, uint64_t ms);

    /* ---- abi_version >= 2: trace ---- */

    /* Item i's W3C traceparent as its client sent it (opts.trace,
     * NUL-terminated), or NULL when it has none. Valid while the sink
     * holds the batch; any thread that may touch the batch. */
    const char *(*item_trace)(const struct batchd_batch *b, size_t i);
    /* The batch's own span id: 16 lower-case hex digits, random, so a
     * sink can record one span for the call and link it to the callers'
     * traces. Same validity. */
    const char *(*batch_span_id)(const struct batchd_batch *b);
};

struct batchd_sink {
    uint32_t abi_version;     /* always first: BATCHD_SINK_ABI_VERSION */
    uint32_t flags;           /* BATCHD_SINK_NONBLOCKING, ... */
    const char *name;         /* short name for logs and stats */
    const struct batchd_sink_option *options; /* NULL-terminated; keys not
                                               * listed are config errors */
    /* Returns the sink's state (non-NULL), or NULL with a reason in err. */
    void *(*init)(const struct batchd_host *host, const struct batchd_kv *kv,
                  size_t nkv, char *err, size_t errlen);
    /* Optional: take a per-batch resource before process (a connection).
     * NULL with *err set means the backend is unavailable: the batch is
     * retried (an attempt), then answered SINK_UNAVAILABLE with err. */
    void *(*acquire)(void *state, const char *key, size_t key_len,
                     char *err, size_t errlen);
    void (*release)(void *state, void *res);                     /* optional */
    int (*process)(void *state, void *res, struct batchd_batch *b);
    void (*cancel)(void *state, struct batchd_batch *b);         /* optional */
    void (*shutdown)(void *state);
};

/*
 * Marks the entry point as exported even when the sink is built with
 * -fvisibility=hidden (as batchd's Makefile does), so that dlsym finds it.
 */
#if defined(__GNUC__) || defined(__clang__)
#define BATCHD_SINK_EXPORT __attribute__((visibility("default")))
#else
#define BATCHD_SINK_EXPORT
#endif

/* The one symbol a sink exports. */
#define BATCHD_SINK_ENTRY "batchd_sink_entry"
BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void);

#endif
