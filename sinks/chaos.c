/*
 * chaos.c - the "chaos" test sink: seeded failures, hangs and crashes,
 * and a delivery ledger of every item it answered OK (DESIGN section 5).
 *
 * A test tool, shipped so that the reliability suite (tests/check_chaos.c)
 * and anyone hunting a delivery bug can run it against a real daemon.
 * Blocking: runs on the sink worker threads, several calls at once.
 *
 * Every random choice of a call is drawn at its start, under one mutex,
 * from a xorshift64* generator seeded from the `seed` option (printed at
 * init), so a run can be replayed up to the interleaving of the worker
 * threads. A call then goes: crash (crash_after) -> leak -> delay -> hang
 * -> poison -> whole-batch FAIL/RETRY -> per-item FAIL/RETRY/OK. Only
 * the last step records anything: the OK items of the call, one line
 * each, in ONE write(2) on an O_APPEND descriptor:
 *
 *     <tag> <key>\n
 *
 * <tag> is the payload up to its first space (the whole payload when it
 * has none), at most 64 bytes. In tag and key, bytes <= 0x20, 0x7f and
 * '%' are written as %XX so that a line always splits on one space.
 * An item is in the ledger exactly when the sink answered it OK, so
 * "OK means the sink took it" can be checked from outside (tests/oracle.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batchd_sink.h"

#define CHAOS_MAX_MS 3600000UL    /* delay_ms, hang_ms */
#define CHAOS_TAG_MAX 64          /* bytes of payload that make the tag */

enum chaos_crash {
    CRASH_SEGV = 0,           /* write through a NULL pointer */
    CRASH_ABORT = 1,          /* abort() */
    CRASH_EXIT = 2,           /* _exit(3) */
};

/* What one call will do, drawn before it does anything. */
enum chaos_fate {
    FATE_RUN = 0,             /* per-item verdicts */
    FATE_HANG = 1,            /* sleep hang_ms, then RETRY the batch */
    FATE_FAIL = 2,            /* whole-batch FAIL */
    FATE_RETRY = 3,           /* whole-batch RETRY */
    FATE_CRASH = 4,           /* crash_mode, nothing recorded */
};

struct chaos_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    pthread_mutex_t mu;       /* guards rng and the counters */
    uint64_t rng;             /* xorshift64* state, never 0 */
    unsigned long long seed;  /* as given (or picked), for the log */
    double fail_batch;        /* rate of whole-batch FAIL, 0..1 */
    double retry_batch;       /* rate of whole-batch RETRY */
    double fail_item;         /* rate of per-item FAIL */
    double retry_item;        /* rate of per-item RETRY */
    double hang_rate;         /* rate of calls that hang */
    unsigned long hang_ms;    /* how long a hung call sleeps */
    unsigned long delay_ms;   /* sleep in every call */
    long long crash_after;    /* calls that run before the crashes; -1 never */
    int crash_mode;           /* enum chaos_crash */
    unsigned long leak_kb;    /* memory leaked per call */
    void *leaked;             /* the leaked blocks, chained through their
                               * first bytes; freed at shutdown only */
    char *poison;             /* payload prefix that makes the batch RETRY; owned */
    size_t poison_len;
    char *ledger;             /* path, for messages; owned, NULL = none */
    int fd;                   /* ledger, O_APPEND; -1 without one */
    /* counters, logged at shutdown */
    unsigned long long calls, hung, batch_failed, batch_retried, poisoned;
    unsigned long long items_ok, items_failed, items_retried;
};

static const struct batchd_sink_option chaos_options[] = {
    { .name = "seed", .def = "0", .help = "PRNG seed; 0 picks one (printed at init)" },
    { .name = "fail_batch", .def = "0", .help = "rate (0..1) of whole-batch FAIL" },
    { .name = "retry_batch", .def = "0", .help = "rate (0..1) of whole-batch RETRY" },
    { .name = "fail_item", .def = "0", .help = "per-item rate (0..1) of FAIL" },
    { .name = "retry_item", .def = "0", .help = "per-item rate (0..1) of RETRY" },
    { .name = "hang_rate", .def = "0", .help = "rate (0..1) of calls that hang hang_ms, then RETRY" },
    { .name = "hang_ms", .def = "10000", .help = "how long a hung call sleeps" },
    { .name = "delay_ms", .def = "0", .help = "sleep in every call, ms" },
    { .name = "crash_after", .def = "never", .help = "run N calls, then crash in every later one" },
    { .name = "crash_mode", .def = "segv", .help = "segv, abort or exit" },
    { .name = "leak_kb", .def = "0", .help = "KiB leaked per call" },
    { .name = "poison", .def = "", .help = "items whose payload starts with this make the batch RETRY" },
    { .name = "ledger", .def = "", .help = "file that gets '<tag> <key>' per OK item" },
    { .name = NULL },
};

/* ---- the generator -------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A double in [0, 1). Call with mu held. */
static double rnd01(struct chaos_state *st)
{
    uint64_t x = st->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st->rng = x;
    return (double)((x * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* ---- options ---------------------------------------------------------------- */

static int parse_rate(const char *v, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(v, &end);
    return (end == v || *end != '\0' || errno != 0 || !(*out >= 0.0) ||
            *out > 1.0) ? -1 : 0;
}

static int parse_ulong(const char *v, unsigned long max, unsigned long *out)
{
    char *end;

    errno = 0;
    *out = strtoul(v, &end, 10);
    return (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
            *out > max) ? -1 : 0;
}

static int set_str(char **dst, size_t *len, const char *src)
{
    char *s = strdup(src);

    if (s == NULL)
        return -1;
    free(*dst);
    *dst = s;
    if (len != NULL)
        *len = strlen(s);
    return 0;
}

/* One option. Returns 0, or -1 with err. */
static int chaos_option(struct chaos_state *st, const char *k, const char *v,
                        char *err, size_t errlen)
{
    unsigned long u;
    int rc = 0;

    if (strcmp(k, "seed") == 0) {
        rc = parse_ulong(v, ~0ul, &u);
        st->seed = u;
    } else if (strcmp(k, "fail_batch") == 0) {
        rc = parse_rate(v, &st->fail_batch);
    } else if (strcmp(k, "retry_batch") == 0) {
        rc = parse_rate(v, &st->retry_batch);
    } else if (strcmp(k, "fail_item") == 0) {
        rc = parse_rate(v, &st->fail_item);
    } else if (strcmp(k, "retry_item") == 0) {
        rc = parse_rate(v, &st->retry_item);
    } else if (strcmp(k, "hang_rate") == 0) {
        rc = parse_rate(v, &st->hang_rate);
    } else if (strcmp(k, "hang_ms") == 0) {
        rc = parse_ulong(v, CHAOS_MAX_MS, &st->hang_ms);
    } else if (strcmp(k, "delay_ms") == 0) {
        rc = parse_ulong(v, CHAOS_MAX_MS, &st->delay_ms);
    } else if (strcmp(k, "crash_after") == 0 && strcmp(v, "never") == 0) {
        st->crash_after = -1;
    } else if (strcmp(k, "crash_after") == 0) {
        rc = parse_ulong(v, 1ul << 40, &u);
        st->crash_after = (long long)u;
    } else if (strcmp(k, "crash_mode") == 0) {
        if (strcmp(v, "segv") == 0)
            st->crash_mode = CRASH_SEGV;
        else if (strcmp(v, "abort") == 0)
            st->crash_mode = CRASH_ABORT;
        else if (strcmp(v, "exit") == 0)
            st->crash_mode = CRASH_EXIT;
        else
            rc = -1;
    } else if (strcmp(k, "leak_kb") == 0) {
        rc = parse_ulong(v, 1ul << 20, &st->leak_kb);
    } else if (strcmp(k, "poison") == 0 && v[0] != '\0') {
        if (set_str(&st->poison, &st->poison_len, v) != 0) {
            snprintf(err, errlen, "chaos sink: out of memory");
            return -1;
        }
    } else if (strcmp(k, "ledger") == 0 && v[0] != '\0') {
        if (set_str(&st->ledger, NULL, v) != 0) {
            snprintf(err, errlen, "chaos sink: out of memory");
            return -1;
        }
    } else if (strcmp(k, "poison") != 0 && strcmp(k, "ledger") != 0) {
        snprintf(err, errlen, "chaos sink: unknown option '%s'", k);
        return -1;
    }
    if (rc != 0)
        snprintf(err, errlen, "chaos sink: bad value for %s: '%s'", k, v);
    return rc;
}

static void chaos_free(struct chaos_state *st)
{
    while (st->leaked != NULL) {
        void **blk = st->leaked;

        st->leaked = *blk;
        free(blk);
    }
    if (st->fd >= 0)
        close(st->fd);
    pthread_mutex_destroy(&st->mu);
    free(st->poison);
    free(st->ledger);
    free(st);
}

static void *chaos_init(const struct batchd_host *host,
                        const struct batchd_kv *kv, size_t nkv,
                        char *err, size_t errlen)
{
    struct chaos_state *st = calloc(1, sizeof(*st));
    uint64_t sm;

    if (st == NULL) {
        snprintf(err, errlen, "chaos sink: out of memory");
        return NULL;
    }
    st->host = host;
    st->fd = -1;
    st->hang_ms = 10000;
    st->crash_after = -1;
    pthread_mutex_init(&st->mu, NULL);
    for (size_t i = 0; i < nkv; i++)
        if (chaos_option(st, kv[i].key, kv[i].value, err, errlen) != 0)
            goto out_free;
    if (st->seed == 0) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        st->seed = ((unsigned long long)ts.tv_nsec ^
                    ((unsigned long long)getpid() << 32)) | 1;
    }
    sm = st->seed;
    st->rng = splitmix64(&sm) | 1;
    if (st->ledger != NULL) {
        st->fd = open(st->ledger, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (st->fd < 0) {
            snprintf(err, errlen, "chaos sink: open %s: %s", st->ledger,
                     strerror(errno));
            goto out_free;
        }
    }
    host->log(host, BATCHD_LOG_INFO,
              "chaos: seed %llu fail_batch %g retry_batch %g fail_item %g "
              "retry_item %g hang_rate %g hang_ms %lu delay_ms %lu "
              "crash_after %lld crash_mode %d leak_kb %lu poison '%s' ledger %s",
              st->seed, st->fail_batch, st->retry_batch, st->fail_item,
              st->retry_item, st->hang_rate, st->hang_ms, st->delay_ms,
              st->crash_after, st->crash_mode, st->leak_kb,
              st->poison ? st->poison : "", st->ledger ? st->ledger : "(none)");
    return st;

out_free:
    chaos_free(st);
    return NULL;
}

/* ---- one call ------------------------------------------------------------------ */

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
                           .tv_nsec = (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void crash(int mode)
{
    switch (mode) {
    case CRASH_ABORT:
        abort();
    case CRASH_EXIT:
        _exit(3);
    default: {
        volatile int *volatile p = NULL;

        /* cppcheck-suppress nullPointer ; the crash is the point */
        *p = 1;
        raise(SIGSEGV);   /* in case the store did not fault */
        abort();
    }
    }
}

/*
 * Draw the call's fate and, for FATE_RUN, each item's verdict into
 * codes[] (BATCHD_RESULT_*). The crash check comes first, so that a
 * crashing call never records anything.
 */
static enum chaos_fate chaos_draw(struct chaos_state *st, size_t n,
                                  uint8_t *codes, unsigned long long *call)
{
    enum chaos_fate f = FATE_RUN;

    pthread_mutex_lock(&st->mu);
    *call = ++st->calls;
    if (st->crash_after >= 0 && st->calls > (unsigned long long)st->crash_after) {
        f = FATE_CRASH;
    } else if (st->hang_rate > 0 && rnd01(st) < st->hang_rate) {
        f = FATE_HANG;
        st->hung++;
    } else if (st->fail_batch > 0 && rnd01(st) < st->fail_batch) {
        f = FATE_FAIL;
    } else if (st->retry_batch > 0 && rnd01(st) < st->retry_batch) {
        f = FATE_RETRY;
    } else {
        for (size_t i = 0; i < n; i++) {
            double r = (st->fail_item > 0 || st->retry_item > 0) ? rnd01(st) : 1.0;

            codes[i] = r < st->fail_item ? BATCHD_RESULT_FAIL :
                       r < st->fail_item + st->retry_item ? BATCHD_RESULT_RETRY :
                       BATCHD_RESULT_OK;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return f;
}

static void count(struct chaos_state *st, unsigned long long *ctr,
                  unsigned long long n)
{
    pthread_mutex_lock(&st->mu);
    *ctr += n;
    pthread_mutex_unlock(&st->mu);
}

/* Append s[0..n) to p with %XX for bytes that would break a line. */
static char *put_escaped(char *p, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c == 0x7f || c == '%') {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        } else {
            *p++ = (char)c;
        }
    }
    return p;
}

static size_t tag_len(const struct batchd_item *it)
{
    const char *d = it->data;
    size_t n = 0;

    while (n < it->len && n < CHAOS_TAG_MAX && d[n] != ' ')
        n++;
    return n;
}

/*
 * Record the items answered OK, one line each, with one write(2).
 * Returns 0, or -1 with a message in msg (nothing may have been written
 * then, or a part of it: the caller retries the batch and says so).
 */
static int chaos_record(struct chaos_state *st, const struct batchd_batch *b,
                        const uint8_t *codes, char *msg, size_t msglen)
{
    size_t cap = 0, len;
    char *buf, *p;
    ssize_t w;

    if (st->fd < 0)
        return 0;
    for (size_t i = 0; i < b->nitems; i++)
        if (codes[i] == BATCHD_RESULT_OK)
            cap += 3 * (CHAOS_TAG_MAX + b->key_len) + 2;
    if (cap == 0)
        return 0;
    buf = malloc(cap);
    if (buf == NULL) {
        snprintf(msg, msglen, "chaos sink: out of memory for the ledger");
        return -1;
    }
    p = buf;
    for (size_t i = 0; i < b->nitems; i++) {
        if (codes[i] != BATCHD_RESULT_OK)
            continue;
        p = put_escaped(p, b->items[i].data, tag_len(&b->items[i]));
        *p++ = ' ';
        p = put_escaped(p, b->key, b->key_len);
        *p++ = '\n';
    }
    len = (size_t)(p - buf);
    w = write(st->fd, buf, len);
    free(buf);
    if (w == (ssize_t)len)
        return 0;
    snprintf(msg, msglen, "chaos sink: write %s: %s (%zd of %zu bytes written)",
             st->ledger, w < 0 ? strerror(errno) : "short write", w, len);
    st->host->log(st->host, BATCHD_LOG_ERROR, "%s", msg);
    return -1;
}

/* Grow the heap by leak_kb and keep it until shutdown: RSS grows like a
 * real leak, yet a clean exit frees it (LeakSanitizer stays quiet). */
static void leak(struct chaos_state *st)
{
    size_t n = st->leak_kb * 1024;
    void **blk = malloc(n < sizeof(void *) ? sizeof(void *) : n);

    if (blk == NULL)
        return;
    memset(blk, 0xa5, n);   /* touch it, so that it counts in RSS */
    pthread_mutex_lock(&st->mu);
    *blk = st->leaked;
    st->leaked = blk;
    pthread_mutex_unlock(&st->mu);
}

static int poisoned(const struct chaos_state *st, const struct batchd_batch *b,
                    size_t *which)
{
    if (st->poison == NULL)
        return 0;
    for (size_t i = 0; i < b->nitems; i++) {
        if (b->items[i].len >= st->poison_len &&
            memcmp(b->items[i].data, st->poison, st->poison_len) == 0) {
            *which = i;
            return 1;
        }
    }
    return 0;
}

static int chaos_process(void *state, void *res, struct batchd_batch *b)
{
    struct chaos_state *st = state;
    uint8_t *codes = calloc(b->nitems, 1);
    unsigned long long nok = 0, nfail = 0, nretry = 0;
    unsigned long long call;
    enum chaos_fate fate;
    char msg[256];
    size_t which;
    int rc = BATCHD_SINK_DONE;

    (void)res;
    if (codes == NULL) {
        st->host->batch_error(b, "chaos sink: out of memory");
        return BATCHD_SINK_RETRY;
    }
    fate = chaos_draw(st, b->nitems, codes, &call);
    if (fate == FATE_CRASH) {
        st->host->log(st->host, BATCHD_LOG_WARN, "chaos: crashing (mode %d) "
                      "in call %llu as asked", st->crash_mode, call);
        crash(st->crash_mode);
    }
    if (st->leak_kb > 0)
        leak(st);
    if (st->delay_ms > 0)
        sleep_ms(st->delay_ms);
    if (fate == FATE_HANG) {
        sleep_ms(st->hang_ms);
        snprintf(msg, sizeof(msg), "chaos: hung for %lu ms", st->hang_ms);
        st->host->batch_error(b, msg);
        rc = BATCHD_SINK_RETRY;
        goto out_free_codes;
    }
    if (poisoned(st, b, &which)) {
        snprintf(msg, sizeof(msg), "chaos: poison item %zu of %zu", which,
                 b->nitems);
        st->host->batch_error(b, msg);
        count(st, &st->poisoned, 1);
        /* RETRY, not FAIL: a whole-batch FAIL is final, and only a
         * retried batch gets split until the poison is alone. */
        rc = BATCHD_SINK_RETRY;
        goto out_free_codes;
    }
    if (fate == FATE_FAIL || fate == FATE_RETRY) {
        st->host->batch_error(b, fate == FATE_FAIL ? "chaos: batch failed" :
                              "chaos: batch retry");
        count(st, fate == FATE_FAIL ? &st->batch_failed : &st->batch_retried, 1);
        rc = fate == FATE_FAIL ? BATCHD_SINK_FAIL : BATCHD_SINK_RETRY;
        goto out_free_codes;
    }
    if (chaos_record(st, b, codes, msg, sizeof(msg)) != 0) {
        st->host->batch_error(b, msg);
        rc = BATCHD_SINK_RETRY;
        goto out_free_codes;
    }
    for (size_t i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];

        if (codes[i] == BATCHD_RESULT_OK) {
            st->host->result(b, i, BATCHD_RESULT_OK, it->len > 0 ? it->data : "",
                             it->len);
            nok++;
        } else if (codes[i] == BATCHD_RESULT_RETRY) {
            st->host->result(b, i, BATCHD_RESULT_RETRY, "", 0);
            nretry++;
        } else {
            static const char m[] = "chaos: item failed";

            st->host->result(b, i, BATCHD_RESULT_FAIL, m, sizeof(m) - 1);
            nfail++;
        }
    }
    pthread_mutex_lock(&st->mu);
    st->items_ok += nok;
    st->items_failed += nfail;
    st->items_retried += nretry;
    pthread_mutex_unlock(&st->mu);

out_free_codes:
    free(codes);
    return rc;
}

static void chaos_shutdown(void *state)
{
    struct chaos_state *st = state;

    st->host->log(st->host, BATCHD_LOG_INFO,
                  "chaos: seed %llu: %llu calls (%llu hung, %llu batch FAIL, "
                  "%llu batch RETRY, %llu poisoned); items %llu OK, %llu FAIL, "
                  "%llu RETRY", st->seed, st->calls, st->hung, st->batch_failed,
                  st->batch_retried, st->poisoned, st->items_ok, st->items_failed,
                  st->items_retried);
    chaos_free(st);
}

static const struct batchd_sink chaos_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "chaos",
    .options = chaos_options,
    .init = chaos_init,
    .process = chaos_process,
    .shutdown = chaos_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &chaos_sink;
}
