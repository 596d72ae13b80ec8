/*
 * echo.c - the "echo" sink: every item OK with its own payload back.
 *
 * The default sink of the sample config: NONBLOCKING, so it runs on
 * the event loop and answers at once. host->result copies each payload,
 * so nothing of the batch is kept after process returns. No options.
 */
#include <stdlib.h>
#include <stdio.h>

#include "batchd_sink.h"

struct echo_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
};

static const struct batchd_sink_option echo_options[] = {
    { .name = NULL },
};

static void *echo_init(const struct batchd_host *host,
                       const struct batchd_kv *kv, size_t nkv,
                       char *err, size_t errlen)
{
    struct echo_state *st;

    if (nkv > 0) {
        snprintf(err, errlen, "echo sink: unknown option '%s' (it has none)",
                 kv[0].key);
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "echo sink: out of memory");
        return NULL;
    }
    st->host = host;
    return st;
}

static int echo_process(void *state, void *res, struct batchd_batch *b)
{
    const struct echo_state *st = state;
    int (*result)(struct batchd_batch *, size_t, int, const void *, size_t) =
        st->host->result;
    size_t i;

    (void)res;
    for (i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];

        /* An empty payload may come with data == NULL: pass "" instead. */
        result(b, i, BATCHD_RESULT_OK, it->len > 0 ? it->data : "", it->len);
    }
    return BATCHD_SINK_DONE;
}

static void echo_shutdown(void *state)
{
    free(state);
}

static const struct batchd_sink echo_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = BATCHD_SINK_NONBLOCKING,
    .name = "echo",
    .options = echo_options,
    .init = echo_init,
    .process = echo_process,
    .shutdown = echo_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &echo_sink;
}
