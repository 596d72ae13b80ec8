/*
 * example.c - the example sink ("upper"): copy this file to write your own.
 *
 * What it does: answers every item OK with its payload in ASCII upper case,
 * preceded by the option 'prefix'; an empty payload gets FAIL with a
 * message. It also takes a per-batch "resource" in acquire() and gives it
 * back in release(), the way a real sink would borrow a database
 * connection from a pool, and counts how many are out.
 *
 * Build it on its own (only batchd_sink.h is needed, never the daemon):
 *
 *     cc -shared -fPIC -I/usr/local/include -o upper.so example.c -lpthread
 *
 * and load it from the config:
 *
 *     [sink.upper]
 *     plugin = /path/to/upper.so
 *     prefix = >>
 *
 * Every key of [sink.NAME] other than 'plugin' (and the daemon's own
 * 'isolation') is handed to init(). The daemon refuses keys that are not
 * in the sink's option table, so list every option there.
 *
 * The life of a sink, as the daemon drives it:
 *
 *   batchd_sink_entry()        once, right after dlopen; returns the table
 *   init(host, kv)             once per [sink.NAME] section, at startup or
 *                              reload; returns the state every other call gets
 *   for each batch:
 *     acquire(state, key)      optional; returns a per-batch resource
 *     process(state, res, b)   sets one result per item
 *     release(state, res)      optional; after process (or complete)
 *   shutdown(state)            once, after the last batch; free everything
 *
 * Threading. This sink does not set BATCHD_SINK_NONBLOCKING, so the daemon
 * calls acquire/process/release on its sink worker threads, where blocking
 * (network, disk) is fine. Several batches may be in process() at the same
 * time, from different threads, so anything in 'state' that changes after
 * init needs a lock or an atomic (here: the counters). init and shutdown
 * are not called concurrently with anything else of the same state.
 *
 * Ownership. The batch, its key, items and payloads are lent to the sink
 * until process() returns (or, for a NONBLOCKING sink that returned
 * PENDING, until it calls host->complete()). Copy what you want to keep.
 * host->result() and host->batch_error() copy their arguments, so a stack
 * or scratch buffer may be reused right after the call. The host table
 * stays valid from init() until shutdown() returns.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchd_sink.h"

/* One instance per [sink.NAME] section: everything lives here, never in
 * globals, because two sections may load the same .so. */
struct upper_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    char *prefix;             /* prepended to every reply; owned */
    size_t prefix_len;
    atomic_ulong batches;     /* batches processed, for the log at shutdown */
    atomic_ulong res_out;     /* resources acquired and not yet released */
};

/* A per-batch resource. A real sink would hold a connection here. */
struct upper_res {
    unsigned long serial;     /* which acquire this was, for the debug log */
};

/*
 * The option table: every key the sink accepts, its default (NULL when
 * required) and a line of help. The daemon checks config keys against it
 * and documentation tools print it.
 */
static const struct batchd_sink_option upper_options[] = {
    { .name = "prefix", .def = "", .help = "string put before every reply" },
    { .name = NULL },
};

/*
 * init: parse the options, allocate the state. Called on the daemon's
 * main thread. On error return NULL with one line in err: the daemon
 * prints it as "sink NAME: <err>" and does not start (or keeps the old
 * config on reload).
 */
static void *upper_init(const struct batchd_host *host,
                        const struct batchd_kv *kv, size_t nkv,
                        char *err, size_t errlen)
{
    struct upper_state *st;
    const char *prefix = "";
    size_t i;

    for (i = 0; i < nkv; i++) {
        if (strcmp(kv[i].key, "prefix") == 0) {
            prefix = kv[i].value;
        } else {
            /* The daemon already refuses these; checking again keeps the
             * sink correct under any host (a test harness, say). */
            snprintf(err, errlen, "upper sink: unknown option '%s'", kv[i].key);
            return NULL;
        }
    }

    st = calloc(1, sizeof(*st));
    if (st == NULL)
        goto out_oom;
    st->prefix = strdup(prefix);  /* kv is only lent for the call: copy */
    if (st->prefix == NULL)
        goto out_free_state;
    st->prefix_len = strlen(st->prefix);
    st->host = host;
    atomic_init(&st->batches, 0);
    atomic_init(&st->res_out, 0);
    host->log(host, BATCHD_LOG_INFO, "ready, prefix '%s'", st->prefix);
    return st;

out_free_state:
    free(st);
out_oom:
    snprintf(err, errlen, "upper sink: out of memory");
    return NULL;
}

/*
 * acquire (optional): take what one batch needs before process runs,
 * e.g. a pooled connection for this key. Runs on a worker thread. Return
 * NULL with err set when the resource is not available now: the daemon
 * retries the batch later (with backoff) and does not call process or
 * release. Every non-NULL resource comes back through release exactly
 * once, after process.
 */
static void *upper_acquire(void *state, const char *key, size_t key_len,
                           char *err, size_t errlen)
{
    struct upper_state *st = state;
    struct upper_res *r;

    (void)key;
    (void)key_len;
    r = malloc(sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "upper sink: out of memory");
        return NULL;
    }
    r->serial = atomic_fetch_add(&st->res_out, 1) + 1;
    return r;
}

/* release (optional): give back what acquire took. */
static void upper_release(void *state, void *res)
{
    struct upper_state *st = state;

    atomic_fetch_sub(&st->res_out, 1);
    free(res);
}

/*
 * process: answer every item. For each index i in 0..nitems-1 call
 * host->result exactly once with OK (data = reply), FAIL (data = message
 * for the client) or RETRY (the daemon puts the item in a later batch),
 * then return BATCHD_SINK_DONE.
 *
 * To fail or retry the whole batch instead, call host->batch_error with
 * a message and return BATCHD_SINK_FAIL or BATCHD_SINK_RETRY; per-item
 * results are then not needed.
 */
static int upper_process(void *state, void *res, struct batchd_batch *b)
{
    struct upper_state *st = state;
    size_t i, j, max = 0;
    char *out;

    (void)res;  /* a real sink would talk through its connection here */

    /* One scratch buffer for the whole batch: result() copies, so it can
     * be reused for the next item. */
    for (i = 0; i < b->nitems; i++)
        if (b->items[i].len > max)
            max = b->items[i].len;
    out = malloc(st->prefix_len + max + 1);
    if (out == NULL) {
        st->host->batch_error(b, "upper sink: out of memory");
        return BATCHD_SINK_RETRY;
    }
    memcpy(out, st->prefix, st->prefix_len);

    for (i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];
        const unsigned char *in = it->data;

        if (it->len == 0) {
            static const char msg[] = "empty payload: nothing to upper-case";

            st->host->result(b, i, BATCHD_RESULT_FAIL, msg, sizeof(msg) - 1);
            continue;
        }
        /* toupper() follows the locale; ASCII only here, bytes >= 0x80
         * (UTF-8) pass through unchanged. */
        for (j = 0; j < it->len; j++)
            out[st->prefix_len + j] = (in[j] >= 'a' && in[j] <= 'z')
                                      ? (char)(in[j] - 'a' + 'A') : (char)in[j];
        if (st->host->result(b, i, BATCHD_RESULT_OK, out, st->prefix_len + it->len) < 0)
            st->host->log(st->host, BATCHD_LOG_WARN,
                          "key %s: result for item %zu refused", b->key, i);
    }
    free(out);
    atomic_fetch_add(&st->batches, 1);
    st->host->log(st->host, BATCHD_LOG_DEBUG, "key %s: %zu items", b->key, b->nitems);
    return BATCHD_SINK_DONE;
}

/*
 * shutdown: the last call. No batch is in flight any more; free the state
 * and everything it owns (tests run sinks under LeakSanitizer/valgrind).
 */
static void upper_shutdown(void *state)
{
    struct upper_state *st = state;
    unsigned long out = atomic_load(&st->res_out);

    if (out != 0)
        st->host->log(st->host, BATCHD_LOG_WARN,
                      "%lu resources still acquired at shutdown", out);
    st->host->log(st->host, BATCHD_LOG_INFO, "stopping after %lu batches",
                  atomic_load(&st->batches));
    free(st->prefix);
    free(st);
}

/*
 * The table the daemon reads. abi_version must come first and equal
 * BATCHD_SINK_ABI_VERSION of the header you built against; a sink that
 * does not need acquire/release/cancel leaves them out (NULL).
 * Set .flags = BATCHD_SINK_NONBLOCKING only if process never blocks.
 */
static const struct batchd_sink upper_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "upper",
    .options = upper_options,
    .init = upper_init,
    .acquire = upper_acquire,
    .release = upper_release,
    .process = upper_process,
    .shutdown = upper_shutdown,
};

/* The one exported symbol. BATCHD_SINK_EXPORT keeps it visible when the
 * sink is built with -fvisibility=hidden. */
BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &upper_sink;
}
