/*
 * null.c - the "null" sink: every item OK with an empty reply.
 *
 * The benchmark sink (DESIGN section 7): NONBLOCKING, so it runs on the
 * event loop and costs one host->result call per item and nothing else.
 * No options.
 */
#include <stdlib.h>
#include <stdio.h>

#include "batchd_sink.h"

struct null_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
};

static const struct batchd_sink_option null_options[] = {
    { .name = NULL },
};

static void *null_init(const struct batchd_host *host,
                       const struct batchd_kv *kv, size_t nkv,
                       char *err, size_t errlen)
{
    struct null_state *st;

    if (nkv > 0) {
        snprintf(err, errlen, "null sink: unknown option '%s' (it has none)",
                 kv[0].key);
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "null sink: out of memory");
        return NULL;
    }
    st->host = host;
    return st;
}

static int null_process(void *state, void *res, struct batchd_batch *b)
{
    const struct null_state *st = state;
    int (*result)(struct batchd_batch *, size_t, int, const void *, size_t) =
        st->host->result;
    size_t i;

    (void)res;
    /* "" rather than NULL: the daemon copies len bytes from data. */
    for (i = 0; i < b->nitems; i++)
        result(b, i, BATCHD_RESULT_OK, "", 0);
    return BATCHD_SINK_DONE;
}

static void null_shutdown(void *state)
{
    free(state);
}

static const struct batchd_sink null_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = BATCHD_SINK_NONBLOCKING,
    .name = "null",
    .options = null_options,
    .init = null_init,
    .process = null_process,
    .shutdown = null_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &null_sink;
}
