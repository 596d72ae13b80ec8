/*
 * echo_v1.c - test sink built against the frozen version-1 ABI header
 * (tests/sinks/abi_v1/batchd_sink.h, found first because it is next to
 * this file): it claims abi_version 1 and knows nothing of the version-2
 * host members. Blocking; every item gets OK with its own payload, so a
 * test sees at once whether such a plugin still loads and works.
 */
#include <stdlib.h>

#include "abi_v1/batchd_sink.h"

_Static_assert(BATCHD_SINK_ABI_VERSION == 1, "built against the v1 header");

struct echo_v1 {
    const struct batchd_host *host; /* lent until shutdown */
};

static void *echo_v1_init(const struct batchd_host *host,
                          const struct batchd_kv *kv, size_t nkv, char *err,
                          size_t errlen)
{
    struct echo_v1 *st = calloc(1, sizeof(*st));

    (void)kv;
    (void)nkv;
    (void)err;
    (void)errlen;
    if (st != NULL)
        st->host = host;
    return st;
}

static int echo_v1_process(void *state, void *res, struct batchd_batch *b)
{
    struct echo_v1 *st = state;

    (void)res;
    for (size_t i = 0; i < b->nitems; i++)
        st->host->result(b, i, BATCHD_RESULT_OK,
                         b->items[i].len ? b->items[i].data : "",
                         b->items[i].len);
    return BATCHD_SINK_DONE;
}

static void echo_v1_shutdown(void *state)
{
    free(state);
}

static const struct batchd_sink_option echo_v1_options[] = {
    { .name = NULL },
};

static const struct batchd_sink echo_v1_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .name = "echo_v1",
    .options = echo_v1_options,
    .init = echo_v1_init,
    .process = echo_v1_process,
    .shutdown = echo_v1_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &echo_v1_sink;
}
