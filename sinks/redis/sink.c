/*
 * sink.c - the redis sink's plugin table (hiredis; sinks/README.md).
 *
 * Each item runs the configured command template; a batch goes out as
 * one pipeline on a connection borrowed from the pool in acquire(), so
 * the key's concurrency slot covers it. process() blocks on the socket,
 * so the sink runs on the daemon's worker threads (not NONBLOCKING).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_sink.h"

static void *redis_init(const struct batchd_host *host, const struct batchd_kv *kv,
                        size_t nkv, char *err, size_t errlen)
{
    struct rs_sink *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->host = host;
    if (rs_options_parse(&st->opt, kv, nkv, err, errlen) != 0)
        goto out_free;
    if (rs_pool_init(&st->pool, &st->opt, host, err, errlen) != 0)
        goto out_options;
    host->log(host, BATCHD_LOG_INFO, "redis %s, command '%s', pool_size %zu%s",
              st->opt.where, st->opt.command_text, st->opt.pool_size,
              st->opt.transaction ? ", MULTI/EXEC" : "");
    /* A server that is down now is a warning (logged by the pool), not
     * an error: batches are retried until it is back. */
    rs_pool_probe(&st->pool);
    return st;

out_options:
    rs_options_destroy(&st->opt);
out_free:
    free(st);
    return NULL;
}

static void *redis_acquire(void *state, const char *key, size_t key_len,
                           char *err, size_t errlen)
{
    struct rs_sink *st = state;

    (void)key;
    (void)key_len;
    return rs_pool_get(&st->pool, err, errlen);
}

static void redis_release(void *state, void *res)
{
    struct rs_sink *st = state;

    rs_pool_put(&st->pool, res);
}

static int redis_process(void *state, void *res, struct batchd_batch *b)
{
    return rs_pipeline_run(state, res, b);
}

static void redis_shutdown(void *state)
{
    struct rs_sink *st = state;

    st->host->log(st->host, BATCHD_LOG_INFO, "stopping; %lu connections opened",
                  st->pool.connects);
    rs_pool_destroy(&st->pool);
    rs_options_destroy(&st->opt);
    free(st);
}

static const struct batchd_sink redis_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "redis",
    .options = rs_option_table,
    .init = redis_init,
    .acquire = redis_acquire,
    .release = redis_release,
    .process = redis_process,
    .shutdown = redis_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &redis_sink;
}
