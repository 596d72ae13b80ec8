/*
 * bad_abi.c - test sink: a complete, valid-looking table that claims
 * abi_version 999. The daemon must refuse it before calling anything,
 * naming the file and both versions.
 */
#include <stdio.h>
#include <stdlib.h>

#include "batchd_sink.h"

static void *bad_abi_init(const struct batchd_host *host,
                          const struct batchd_kv *kv, size_t nkv,
                          char *err, size_t errlen)
{
    (void)host;
    (void)kv;
    (void)nkv;
    /* Must never be reached: fail loudly but let the daemon report it. */
    snprintf(err, errlen, "bad_abi test sink: init called despite abi_version 999 (daemon bug)");
    return NULL;
}

static int bad_abi_process(void *state, void *res, struct batchd_batch *b)
{
    (void)state;
    (void)res;
    (void)b;
    abort();
}

static void bad_abi_shutdown(void *state)
{
    (void)state;
    abort();
}

static const struct batchd_sink_option bad_abi_options[] = {
    { .name = NULL },
};

static const struct batchd_sink bad_abi_sink = {
    .abi_version = 999,
    .flags = 0,
    .name = "bad_abi",
    .options = bad_abi_options,
    .init = bad_abi_init,
    .process = bad_abi_process,
    .shutdown = bad_abi_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &bad_abi_sink;
}
