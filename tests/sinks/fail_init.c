/*
 * fail_init.c - test sink: init always fails with
 * "refusing to start (test sink)". The daemon must print that text and
 * not start (or keep the old config on reload).
 */
#include <stdio.h>
#include <stdlib.h>

#include "batchd_sink.h"

static void *fail_init_init(const struct batchd_host *host,
                            const struct batchd_kv *kv, size_t nkv,
                            char *err, size_t errlen)
{
    (void)host;
    (void)kv;
    (void)nkv;
    snprintf(err, errlen, "refusing to start (test sink)");
    return NULL;
}

static int fail_init_process(void *state, void *res, struct batchd_batch *b)
{
    (void)state;
    (void)res;
    (void)b;
    abort();                  /* no state, so never called */
}

static void fail_init_shutdown(void *state)
{
    (void)state;
    abort();                  /* no state, so never called */
}

static const struct batchd_sink_option fail_init_options[] = {
    { .name = NULL },
};

static const struct batchd_sink fail_init_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "fail_init",
    .options = fail_init_options,
    .init = fail_init_init,
    .process = fail_init_process,
    .shutdown = fail_init_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &fail_init_sink;
}
