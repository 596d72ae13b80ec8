/*
 * missing_process.c - test sink: the right ABI version, but no process
 * callback. The daemon must refuse it after the version check and before
 * init ("required member process missing").
 */
#include <stdio.h>
#include <stdlib.h>

#include "batchd_sink.h"

static void *missing_process_init(const struct batchd_host *host,
                                  const struct batchd_kv *kv, size_t nkv,
                                  char *err, size_t errlen)
{
    (void)host;
    (void)kv;
    (void)nkv;
    /* Must never be reached: fail loudly but let the daemon report it. */
    snprintf(err, errlen, "missing_process test sink: init called although process is NULL (daemon bug)");
    return NULL;
}

static void missing_process_shutdown(void *state)
{
    (void)state;
    abort();
}

static const struct batchd_sink_option missing_process_options[] = {
    { .name = NULL },
};

static const struct batchd_sink missing_process_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "missing_process",
    .options = missing_process_options,
    .init = missing_process_init,
    .process = NULL,
    .shutdown = missing_process_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &missing_process_sink;
}
