/*
 * v1_echo.c - test sink built against ABI version 1: the header in
 * tests/sinks/abi_v1/ is batchd_sink.h exactly as version 1 published
 * it (frozen; never edit it). mk/abi.mk puts that directory first on the
 * quoted include path (-iquote), and the static assert below proves the
 * build took it, so the current daemon loading this plugin shows that a
 * plugin built against version 1 keeps loading and working (DESIGN
 * section 5, tests/check_abi.c).
 *
 * Blocking (runs on sink workers). Every item gets OK with its payload
 * back, except: "fail" -> FAIL "v1 says no"; "retry-once" -> RETRY on
 * its first attempt, OK after. Each OK payload is prefixed with "v1:"
 * so the tests know this plugin answered. No options.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchd_sink.h"

_Static_assert(BATCHD_SINK_ABI_VERSION == 1,
               "v1_echo must be built against tests/sinks/abi_v1/batchd_sink.h");

struct v1_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
};

static const struct batchd_sink_option v1_options[] = {
    { .name = NULL },
};

static void *v1_init(const struct batchd_host *host,
                     const struct batchd_kv *kv, size_t nkv, char *err,
                     size_t errlen)
{
    struct v1_state *st;

    if (nkv > 0) {
        snprintf(err, errlen, "v1_echo: unknown option '%s'", kv[0].key);
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        snprintf(err, errlen, "v1_echo: out of memory");
        return NULL;
    }
    st->host = host;
    return st;
}

static int is(const struct batchd_item *it, const char *s)
{
    return it->len == strlen(s) && memcmp(it->data, s, it->len) == 0;
}

static int v1_process(void *state, void *res, struct batchd_batch *b)
{
    const struct v1_state *st = state;

    (void)res;
    for (size_t i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];
        char buf[512];
        int n;

        if (is(it, "fail")) {
            st->host->result(b, i, BATCHD_RESULT_FAIL, "v1 says no", 10);
            continue;
        }
        if (is(it, "retry-once") && it->attempt == 1) {
            st->host->result(b, i, BATCHD_RESULT_RETRY, NULL, 0);
            continue;
        }
        n = snprintf(buf, sizeof(buf), "v1:%.*s",
                     (int)(it->len > 400 ? 400 : it->len),
                     it->len ? (const char *)it->data : "");
        st->host->result(b, i, BATCHD_RESULT_OK, buf, (size_t)n);
    }
    return BATCHD_SINK_DONE;
}

static void v1_shutdown(void *state)
{
    free(state);
}

static const struct batchd_sink v1_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "v1_echo",
    .options = v1_options,
    .init = v1_init,
    .process = v1_process,
    .shutdown = v1_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &v1_sink;
}
