/*
 * record.c - test sink: writes one ledger line per batch, for the batch
 * composition tests (keys never mixed, max_items/max_bytes never exceeded,
 * retried items come back).
 *
 * Blocking (runs on worker threads). Options:
 *   ledger         path of the ledger file (required); appended to
 *   delay_ms       sleep this long in every process call (default 0)
 *   fail_payload   items whose payload equals this get FAIL
 *                  "rejected by record sink"
 *   retry_payload  items whose payload equals this get RETRY
 *   fail_first     the first N process() calls fail the whole batch
 *                  (default 0), after writing their ledger line: a
 *                  scripted outage
 *   fail_verdict   what those calls return: retry (BATCHD_SINK_RETRY,
 *                  default), fail (BATCHD_SINK_FAIL), or a number: that
 *                  code, as a plugin that breaks the ABI would; the
 *                  message is "record sink: scripted batch failure (call N)"
 *   acquire_fail_first  the first N acquire() calls return NULL with
 *                  "record sink: backend unavailable (acquire N)"
 *                  (default 0; process is not called, no ledger line)
 *   trace_ledger   path of a second ledger (optional), one line per batch
 *                  with what the host's ABI 2 trace accessors say:
 *                  "<span_id> <trace>,<trace>,...\n", "-" for an item
 *                  without a trace, in batch order (one write, as below)
 * Every other item gets OK with its own payload. Calls are counted per
 * sink, from 1.
 *
 * Ledger line, written with ONE write(2) on an O_APPEND descriptor when
 * process starts (before the delay), so concurrent batches never
 * interleave within a line:
 *
 *     <key> <nitems> <nbytes> <id1>,<id2>,...\n
 *
 * nbytes is the sum of the payload lengths; ids are decimal item ids in
 * batch order. In <key>, bytes <= 0x20, 0x7f and '%' are written as %XX
 * (upper-case hex) so that a line always splits on spaces; ordinary keys
 * appear as they are.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batchd_sink.h"

#define RECORD_MAX_DELAY_MS 3600000UL

struct record_state {
    const struct batchd_host *host; /* lent by the daemon until shutdown */
    char *ledger;             /* path, for messages; owned */
    int fd;                   /* ledger, O_APPEND; owned */
    unsigned long delay_ms;   /* sleep per batch */
    char *fail_payload;       /* owned, NULL when unset */
    size_t fail_len;
    char *retry_payload;      /* owned, NULL when unset */
    size_t retry_len;
    unsigned long fail_first; /* process() calls that fail whole */
    int fail_verdict;         /* their return: BATCHD_SINK_RETRY or _FAIL */
    unsigned long acquire_fail_first; /* acquire() calls that refuse */
    char *trace_ledger;       /* path, owned, NULL when unset */
    int tfd;                  /* trace ledger, O_APPEND; owned; -1 none */
    unsigned long calls;      /* process() calls so far (atomic) */
    unsigned long acquires;   /* acquire() calls so far (atomic) */
};

static const struct batchd_sink_option record_options[] = {
    { .name = "ledger", .def = NULL, .help = "ledger file, one line per batch (required)" },
    { .name = "delay_ms", .def = "0", .help = "sleep per batch, milliseconds" },
    { .name = "fail_payload", .def = NULL, .help = "items equal to this get FAIL" },
    { .name = "retry_payload", .def = NULL, .help = "items equal to this get RETRY" },
    { .name = "fail_first", .def = "0", .help = "the first N calls fail the whole batch" },
    { .name = "fail_verdict", .def = "retry", .help = "retry, fail or a raw code: what those calls return" },
    { .name = "acquire_fail_first", .def = "0", .help = "the first N acquire calls refuse" },
    { .name = "trace_ledger", .def = NULL, .help = "file: each batch's span id and item traces" },
    { .name = NULL },
};

/* Replace *dst with a copy of src. Returns 0, or -1 when memory is short. */
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

static void record_free(struct record_state *st)
{
    if (st->fd >= 0)
        close(st->fd);
    if (st->tfd >= 0)
        close(st->tfd);
    free(st->trace_ledger);
    free(st->ledger);
    free(st->fail_payload);
    free(st->retry_payload);
    free(st);
}

/* A call count option: 0..1000000. */
static int parse_count(const char *k, const char *v, unsigned long *out,
                       char *err, size_t errlen)
{
    char *end;

    errno = 0;
    *out = strtoul(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || *out > 1000000) {
        snprintf(err, errlen, "record sink: %s '%s' is not a count (0..1000000)",
                 k, v);
        return -1;
    }
    return 0;
}

static int record_parse(struct record_state *st, const struct batchd_kv *kv,
                        size_t nkv, char *err, size_t errlen)
{
    size_t i;

    for (i = 0; i < nkv; i++) {
        const char *k = kv[i].key, *v = kv[i].value;
        int rc = 0;

        if (strcmp(k, "ledger") == 0) {
            rc = set_str(&st->ledger, NULL, v);
        } else if (strcmp(k, "trace_ledger") == 0) {
            rc = set_str(&st->trace_ledger, NULL, v);
        } else if (strcmp(k, "fail_payload") == 0) {
            rc = set_str(&st->fail_payload, &st->fail_len, v);
        } else if (strcmp(k, "retry_payload") == 0) {
            rc = set_str(&st->retry_payload, &st->retry_len, v);
        } else if (strcmp(k, "fail_first") == 0 ||
                   strcmp(k, "acquire_fail_first") == 0) {
            if (parse_count(k, v, k[0] == 'f' ? &st->fail_first :
                            &st->acquire_fail_first, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "fail_verdict") == 0) {
            char *end;
            long code = strtol(v, &end, 10);

            if (strcmp(v, "retry") == 0 || strcmp(v, "fail") == 0) {
                st->fail_verdict = v[0] == 'f' ? BATCHD_SINK_FAIL : BATCHD_SINK_RETRY;
            } else if (v[0] != '\0' && *end == '\0' && code > -1000 && code < 1000) {
                st->fail_verdict = (int)code;
            } else {
                snprintf(err, errlen, "record sink: fail_verdict '%s' is "
                         "not retry, fail or a code", v);
                return -1;
            }
        } else if (strcmp(k, "delay_ms") == 0) {
            char *end;

            errno = 0;
            st->delay_ms = strtoul(v, &end, 10);
            if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 ||
                st->delay_ms > RECORD_MAX_DELAY_MS) {
                snprintf(err, errlen,
                         "record sink: delay_ms '%s' is not a number of ms (0..%lu)",
                         v, RECORD_MAX_DELAY_MS);
                return -1;
            }
        } else {
            snprintf(err, errlen, "record sink: unknown option '%s'", k);
            return -1;
        }
        if (rc < 0) {
            snprintf(err, errlen, "record sink: out of memory");
            return -1;
        }
    }
    if (st->ledger == NULL || st->ledger[0] == '\0') {
        snprintf(err, errlen, "record sink: option 'ledger' is required");
        return -1;
    }
    return 0;
}

static void *record_init(const struct batchd_host *host,
                         const struct batchd_kv *kv, size_t nkv,
                         char *err, size_t errlen)
{
    struct record_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        snprintf(err, errlen, "record sink: out of memory");
        return NULL;
    }
    st->host = host;
    st->fd = -1;
    st->tfd = -1;
    st->fail_verdict = BATCHD_SINK_RETRY;
    if (record_parse(st, kv, nkv, err, errlen) < 0)
        goto out_free;
    st->fd = open(st->ledger, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (st->fd < 0) {
        snprintf(err, errlen, "record sink: open %s: %s", st->ledger, strerror(errno));
        goto out_free;
    }
    if (st->trace_ledger != NULL) {
        if (host->abi_version < 2) {
            snprintf(err, errlen, "record sink: trace_ledger needs host ABI 2");
            goto out_free;
        }
        st->tfd = open(st->trace_ledger, O_WRONLY | O_APPEND | O_CREAT |
                       O_CLOEXEC, 0644);
        if (st->tfd < 0) {
            snprintf(err, errlen, "record sink: open %s: %s", st->trace_ledger,
                     strerror(errno));
            goto out_free;
        }
    }
    return st;

out_free:
    record_free(st);
    return NULL;
}

/* Format the ledger line of b into a new buffer (free with free). */
static char *record_line(const struct batchd_batch *b, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i, nbytes = 0, cap = b->key_len * 3 + 64 + b->nitems * 22;
    char *line = malloc(cap), *p;

    if (line == NULL)
        return NULL;
    p = line;
    for (i = 0; i < b->key_len; i++) {
        unsigned char c = (unsigned char)b->key[i];

        if (c <= 0x20 || c == 0x7f || c == '%') {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        } else {
            *p++ = (char)c;
        }
    }
    for (i = 0; i < b->nitems; i++)
        nbytes += b->items[i].len;
    p += snprintf(p, (size_t)(line + cap - p), " %zu %zu ", b->nitems, nbytes);
    for (i = 0; i < b->nitems; i++)
        p += snprintf(p, (size_t)(line + cap - p), "%s%" PRIu64,
                      i > 0 ? "," : "", b->items[i].id);
    *p++ = '\n';
    *outlen = (size_t)(p - line);
    return line;
}

/* One trace ledger line for b (see the top); -1 when it failed. */
static int record_traces(struct record_state *st, const struct batchd_batch *b)
{
    size_t cap = 32 + b->nitems * 130, n;
    char *line = malloc(cap), *p;
    ssize_t w;

    if (line == NULL)
        return -1;
    p = line + snprintf(line, cap, "%s ", st->host->batch_span_id(b));
    for (size_t i = 0; i < b->nitems; i++) {
        const char *t = st->host->item_trace(b, i);

        p += snprintf(p, (size_t)(line + cap - p), "%s%.128s", i ? "," : "",
                      t ? t : "-");
    }
    *p++ = '\n';
    n = (size_t)(p - line);
    w = write(st->tfd, line, n);
    free(line);
    return w == (ssize_t)n ? 0 : -1;
}

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
                           .tv_nsec = (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int matches(const struct batchd_item *it, const char *s, size_t len)
{
    return s != NULL && it->len == len && (len == 0 || memcmp(it->data, s, len) == 0);
}

static int record_process(void *state, void *res, struct batchd_batch *b)
{
    struct record_state *st = state;
    char msg[512];
    size_t i, len;
    unsigned long call;
    ssize_t n;
    char *line;

    (void)res;
    line = record_line(b, &len);
    if (line == NULL) {
        st->host->batch_error(b, "record sink: out of memory");
        return BATCHD_SINK_RETRY;
    }
    n = write(st->fd, line, len);   /* one write: the line stays whole */
    free(line);
    if (n != (ssize_t)len) {
        snprintf(msg, sizeof(msg), "record sink: write %s: %s", st->ledger,
                 n < 0 ? strerror(errno) : "short write");
        st->host->batch_error(b, msg);
        return BATCHD_SINK_FAIL;
    }
    if (st->tfd >= 0 && record_traces(st, b) != 0) {
        st->host->batch_error(b, "record sink: trace ledger write failed");
        return BATCHD_SINK_FAIL;
    }
    if (st->delay_ms > 0)
        sleep_ms(st->delay_ms);
    call = __atomic_add_fetch(&st->calls, 1, __ATOMIC_RELAXED);
    if (call <= st->fail_first) {
        snprintf(msg, sizeof(msg), "record sink: scripted batch failure "
                 "(call %lu)", call);
        st->host->batch_error(b, msg);
        return st->fail_verdict;
    }
    for (i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];

        if (matches(it, st->fail_payload, st->fail_len)) {
            static const char m[] = "rejected by record sink";

            st->host->result(b, i, BATCHD_RESULT_FAIL, m, sizeof(m) - 1);
        } else if (matches(it, st->retry_payload, st->retry_len)) {
            st->host->result(b, i, BATCHD_RESULT_RETRY, "", 0);
        } else {
            st->host->result(b, i, BATCHD_RESULT_OK, it->len > 0 ? it->data : "", it->len);
        }
    }
    return BATCHD_SINK_DONE;
}

/* The resource is the state itself: acquire only scripts refusals. */
static void *record_acquire(void *state, const char *key, size_t key_len,
                            char *err, size_t errlen)
{
    struct record_state *st = state;
    unsigned long n = __atomic_add_fetch(&st->acquires, 1, __ATOMIC_RELAXED);

    (void)key;
    (void)key_len;
    if (n <= st->acquire_fail_first) {
        snprintf(err, errlen, "record sink: backend unavailable (acquire %lu)", n);
        return NULL;
    }
    return st;
}

static void record_release(void *state, void *res)
{
    (void)state;
    (void)res;
}

static void record_shutdown(void *state)
{
    record_free(state);
}

static const struct batchd_sink record_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "record",
    .options = record_options,
    .init = record_init,
    .acquire = record_acquire,
    .process = record_process,
    .release = record_release,
    .shutdown = record_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &record_sink;
}
