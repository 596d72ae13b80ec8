/*
 * cost.c - the "cost" sink: a sink call that costs a fixed time plus a
 * little per item, like a database round trip (DESIGN section 7,
 * "batching pays"). Every item is answered OK with an empty reply.
 *
 * Blocking (no BATCHD_SINK_NONBLOCKING): process() runs on a sink worker
 * thread and takes call_us + item_us * nitems microseconds, either
 * sleeping (mode = sleep: the latency of a remote service, no CPU) or
 * spinning (mode = busy: CPU-bound work that competes with the daemon).
 *
 * Options:
 *   call_us  fixed cost of one call in microseconds (default 200)
 *   item_us  cost of each item in microseconds (default 1)
 *   mode     sleep | busy (default sleep)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batchd_sink.h"

#define COST_MAX_US 60000000ull    /* one minute: anything more is a typo */

struct cost_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    uint64_t call_us;         /* fixed cost per process() call */
    uint64_t item_us;         /* added per item */
    int busy;                 /* 1: spin on the clock, 0: sleep */
};

static const struct batchd_sink_option cost_options[] = {
    { .name = "call_us", .def = "200", .help = "fixed cost per call, microseconds" },
    { .name = "item_us", .def = "1", .help = "cost per item, microseconds" },
    { .name = "mode", .def = "sleep", .help = "sleep (no CPU) or busy (spin)" },
    { .name = NULL },
};

static int parse_us(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > COST_MAX_US)
        return -1;
    *out = v;
    return 0;
}

static void *cost_init(const struct batchd_host *host,
                       const struct batchd_kv *kv, size_t nkv,
                       char *err, size_t errlen)
{
    struct cost_state st = {.host = host, .call_us = 200, .item_us = 1};
    struct cost_state *p;

    for (size_t i = 0; i < nkv; i++) {
        const char *k = kv[i].key, *v = kv[i].value;

        if (strcmp(k, "call_us") == 0 ? parse_us(v, &st.call_us) != 0 :
            strcmp(k, "item_us") == 0 ? parse_us(v, &st.item_us) != 0 : 0) {
            snprintf(err, errlen, "cost sink: %s = %s: expected 0..%llu "
                     "microseconds", k, v, COST_MAX_US);
            return NULL;
        }
        if (strcmp(k, "mode") == 0) {
            if (strcmp(v, "sleep") != 0 && strcmp(v, "busy") != 0) {
                snprintf(err, errlen, "cost sink: mode = %s: expected sleep "
                         "or busy", v);
                return NULL;
            }
            st.busy = strcmp(v, "busy") == 0;
        } else if (strcmp(k, "call_us") != 0 && strcmp(k, "item_us") != 0) {
            snprintf(err, errlen, "cost sink: unknown option '%s'", k);
            return NULL;
        }
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "cost sink: out of memory");
        return NULL;
    }
    *p = st;
    return p;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Spend us microseconds, sleeping or spinning. */
static void spend(const struct cost_state *st, uint64_t us)
{
    uint64_t until = mono_ns() + us * 1000;

    if (st->busy) {
        while (mono_ns() < until)
            ;
        return;
    }
    for (;;) {
        uint64_t now = mono_ns();
        struct timespec ts;

        if (now >= until)
            return;
        ts.tv_sec = (time_t)((until - now) / 1000000000ull);
        ts.tv_nsec = (long)((until - now) % 1000000000ull);
        nanosleep(&ts, NULL); /* EINTR: go round and sleep the rest */
    }
}

static int cost_process(void *state, void *res, struct batchd_batch *b)
{
    const struct cost_state *st = state;

    (void)res;
    spend(st, st->call_us + st->item_us * b->nitems);
    for (size_t i = 0; i < b->nitems; i++)
        st->host->result(b, i, BATCHD_RESULT_OK, "", 0);
    return BATCHD_SINK_DONE;
}

static void cost_shutdown(void *state)
{
    free(state);
}

static const struct batchd_sink cost_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "cost",
    .options = cost_options,
    .init = cost_init,
    .process = cost_process,
    .shutdown = cost_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &cost_sink;
}
