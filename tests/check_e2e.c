/*
 * check_e2e.c - batching end to end: a real daemon, real sinks, many
 * client processes. Every test starts its own daemon (tests/helpers.h).
 *
 * "core":   batch composition, replies matched by id, SEND to a file,
 *           routes, *_MANY, stats, disconnects, shutdown flush, batchctl.
 * "limits": the bounds (key_max_items/bytes, max_queued_items/bytes) and
 *           the max_bytes ceiling.
 * "retry":  batching under failure: a failed batch retries as one batch,
 *           attempts, whole-batch FAIL, failed acquire; balanced and a
 *           free concurrency slot.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "helpers.h"

/* ---- reply collection in the test process ------------------------------------ */

/* One request we wait for; the callback fills it (no asserts there). */
struct slot {
    uint64_t id;              /* request id from submit */
    int replies;              /* callbacks run for it: must end at 1 */
    int status;               /* last status; -1 for a NULL reply */
    char body[256];           /* reply body, NUL-terminated, truncated */
    size_t len;               /* full body length */
    int wrong_id;             /* a reply carried another id */
};

static void slot_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    struct slot *s = arg;
    size_t n;

    (void)c;
    s->replies++;
    if (r == NULL) {
        s->status = -1;
        return;
    }
    if (r->id != s->id)
        s->wrong_id = 1;
    s->status = r->status;
    s->len = r->len;
    n = r->len < sizeof(s->body) - 1 ? r->len : sizeof(s->body) - 1;
    if (n > 0)
        memcpy(s->body, r->data, n);
    s->body[n] = '\0';
}

static int answered(const struct slot *s, int n)
{
    int k = 0;

    for (int i = 0; i < n; i++)
        k += s[i].replies > 0;
    return k;
}

/* Run the client until every slot has a reply (or timeout_ms passes). */
static void drain(struct batchd_client *c, struct slot *s, int n, int timeout_ms)
{
    double end = bd_test_now_ms() + timeout_ms;

    while (answered(s, n) < n) {
        ck_assert_msg(bd_test_now_ms() < end, "%d of %d replies after %d ms",
                      answered(s, n), n, timeout_ms);
        /* A dead client has run every callback (NULL replies: status -1),
         * so the callers' status checks report it. */
        if (batchd_process(c, 100) < 0)
            break;
    }
}

/* Submit n LOADs of key with payloads "<tag>-<i>" padded to plen bytes. */
static void submit_loads(struct batchd_client *c, const char *key, const char *tag,
                         int n, size_t plen, struct slot *s)
{
    for (int i = 0; i < n; i++) {
        char p[512];
        size_t len = (size_t)snprintf(p, sizeof(p), "%s-%d", tag, i);

        if (plen > len && plen <= sizeof(p)) {
            memset(p + len, '.', plen - len);
            len = plen;
        }
        memset(&s[i], 0, sizeof(s[i]));
        ck_assert_int_eq(batchd_submit_load(c, key, p, len, NULL, slot_cb, &s[i],
                                            &s[i].id), BATCHD_CLIENT_OK);
    }
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
}

static void assert_each_once(const struct slot *s, int n)
{
    for (int i = 0; i < n; i++) {
        ck_assert_msg(s[i].replies == 1, "request %d (id %" PRIu64 ") got %d replies",
                      i, s[i].id, s[i].replies);
        ck_assert_msg(!s[i].wrong_id, "request %d: reply with another id", i);
    }
}

static long read_ledger(struct bd_test_daemon *d, struct bd_test_batch **b)
{
    long n = bd_test_ledger_read(bd_test_daemon_path(d, "ledger"), b);

    ck_assert_msg(n >= 0, "the record sink's ledger does not parse");
    return n;
}

#define RECORD_SINK(extra) \
    "[sink.rec]\nplugin = @TSINKS@/record.so\nledger = @DIR@/ledger\n" extra "\n"

/* ---- 1. dataloader: max_items closes at once, the delay timer the rest ------- */

struct dl_shared {
    char sock[128];           /* the daemon's socket */
    double done_ms[7];        /* when each client had its reply */
    int status[7];
};

static int dl_client(int idx, void *arg)
{
    struct dl_shared *sh = arg;
    struct batchd_client *c = batchd_connect_unix(sh->sock, 10000);
    struct batchd_reply *r = NULL;
    char p[32];
    int rc = 0;

    if (batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    snprintf(p, sizeof(p), "sample-%d", idx);
    if (bd_test_procs_barrier() != 0)
        return bd_test_child_fail(idx, "barrier");
    if (batchd_load(c, "dataset", p, strlen(p), NULL, 10000, &r) != BATCHD_CLIENT_OK)
        return bd_test_child_fail(idx, "load: %s", batchd_errstr(c));
    sh->done_ms[idx] = bd_test_now_ms();
    sh->status[idx] = r->status;
    if (r->status != BATCHD_OK || r->len != strlen(p) || memcmp(r->data, p, r->len) != 0)
        rc = bd_test_child_fail(idx, "status %s, payload '%.*s', want OK '%s'",
                                batchd_status_name(r->status), (int)r->len,
                                (const char *)r->data, p);
    batchd_reply_free(r);
    batchd_free(c);
    return rc;
}

START_TEST(test_dataloader_size_then_delay)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 4\n\n" RECORD_SINK("")
        "[route.all]\nmatch = *\nsink = rec\npolicy = duration\n"
        "max_items = 5\nmax_delay_us = 1000000\n");
    struct dl_shared *sh = bd_test_shared_alloc(sizeof(*sh));
    struct bd_test_procs *p;
    struct bd_test_batch *b;
    int fast = 0, slow = 0;
    double t0;
    long nb;

    snprintf(sh->sock, sizeof(sh->sock), "%s", bd_test_daemon_socket(d));
    p = bd_test_procs_start(7, dl_client, sh);
    t0 = bd_test_procs_release(p);
    ck_assert_int_eq(bd_test_procs_wait(p, 20000, NULL), 0);
    for (int i = 0; i < 7; i++) {
        double dt = sh->done_ms[i] - t0;

        if (dt < 500)
            fast++;
        else if (dt >= 900 && dt < 5000)
            slow++;
        else
            ck_abort_msg("client %d: reply after %.0f ms (want < 500 or 900..5000)", i, dt);
    }
    ck_assert_msg(fast == 5 && slow == 2,
                  "%d replies before 0.5 s and %d after 0.9 s, want 5 and 2", fast, slow);
    nb = read_ledger(d, &b);
    ck_assert_int_eq(nb, 2);
    ck_assert_int_eq(b[0].nitems, 5);
    ck_assert_int_eq(b[1].nitems, 2);
    ck_assert_str_eq(b[0].key, "dataset");
    ck_assert_str_eq(b[1].key, "dataset");
    bd_test_ledger_free(b, nb);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 2. many clients, many keys: every reply its own, batches bounded --------- */

#define MC_CLIENTS 32
#define MC_REQS 2000
#define MC_KEYS 16
#define MC_DEPTH 32
#define MC_PMAX 100           /* payloads of 20 and 100 bytes (40 on average): */
                              /* either max_items 50 or max_bytes 2000 may bind */

struct mc_slot {
    uint64_t id;
    int seq;
    int replies;
};

struct mc_ctx {
    int idx;
    int errors;
    int answered;
};

static struct mc_ctx mc;          /* per client process */

static void mc_key(int idx, int seq, char *key)
{
    sprintf(key, "m.%02d", (idx + seq) % MC_KEYS);
}

static size_t mc_plen(int seq)
{
    return seq % 4 == 0 ? MC_PMAX : 20;
}

/* The payload names client, seq and key, padded to mc_plen(seq). */
static size_t mc_payload(int idx, int seq, char *p)
{
    char key[16];
    int n;

    mc_key(idx, seq, key);
    n = sprintf(p, "c%02d s%05d %s ", idx, seq, key);
    memset(p + n, 'x', mc_plen(seq) - (size_t)n);
    return mc_plen(seq);
}

static void mc_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    struct mc_slot *s = arg;
    char want[MC_PMAX];
    size_t wlen;

    (void)c;
    s->replies++;
    mc.answered++;
    if (r == NULL) {
        if (mc.errors++ < 5)
            bd_test_child_fail(mc.idx, "seq %d: connection died", s->seq);
        return;
    }
    wlen = mc_payload(mc.idx, s->seq, want);
    if (s->replies != 1 || r->id != s->id || r->status != BATCHD_OK ||
        r->len != wlen || memcmp(r->data, want, wlen) != 0) {
        if (mc.errors++ < 5)
            bd_test_child_fail(mc.idx, "seq %d: reply #%d id %" PRIu64 " (want %" PRIu64
                               ") status %s payload '%.*s'", s->seq, s->replies, r->id,
                               s->id, batchd_status_name(r->status),
                               (int)(r->len < 60 ? r->len : 60), (const char *)r->data);
    }
}

static int mc_client(int idx, void *arg)
{
    struct batchd_client *c = batchd_connect_unix(arg, 10000);
    struct mc_slot *slots = calloc(MC_REQS, sizeof(*slots));
    int next = 0, idle = 0;

    mc.idx = idx;
    if (slots == NULL || batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    while (mc.answered < MC_REQS) {
        int rc;

        while (next < MC_REQS && next - mc.answered < MC_DEPTH) {
            char key[16], p[MC_PMAX];
            size_t plen;

            mc_key(idx, next, key);
            plen = mc_payload(idx, next, p);
            slots[next].seq = next;
            if (batchd_submit_load(c, key, p, plen, NULL, mc_cb, &slots[next],
                                   &slots[next].id) != BATCHD_CLIENT_OK)
                return bd_test_child_fail(idx, "submit: %s", batchd_errstr(c));
            next++;
        }
        rc = batchd_process(c, 1000);
        if (rc < 0)
            return bd_test_child_fail(idx, "process: %s (%d answered)",
                                      batchd_errstr(c), mc.answered);
        idle = rc == 0 ? idle + 1 : 0;
        if (idle > 30)
            return bd_test_child_fail(idx, "no reply for 30 s (%d answered)", mc.answered);
    }
    for (int i = 0; i < MC_REQS; i++)
        if (slots[i].replies != 1 && mc.errors++ < 10)
            bd_test_child_fail(idx, "seq %d: %d replies", i, slots[i].replies);
    batchd_free(c);
    free(slots);
    return mc.errors != 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

START_TEST(test_many_clients_many_keys)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 4\n\n" RECORD_SINK("")
        "[route.all]\nmatch = m.*\nsink = rec\npolicy = immediate\n"
        "max_items = 50\nmax_bytes = 2000\nkey_max_items = 100000\n");
    struct bd_test_procs *p;
    struct bd_test_batch *b;
    uint64_t *ids;
    long nb, total = 0;
    long want_items[MC_KEYS] = {0}, want_bytes[MC_KEYS] = {0};
    long got_items[MC_KEYS] = {0}, got_bytes[MC_KEYS] = {0};
    size_t nids = 0;
    char *stats;
    long long v;

    /* What each key must have received in all. Items put in another key's
     * batch would show here, although the ledger names one key a line. */
    for (int c = 0; c < MC_CLIENTS; c++) {
        for (int q = 0; q < MC_REQS; q++) {
            want_items[(c + q) % MC_KEYS]++;
            want_bytes[(c + q) % MC_KEYS] += (long)mc_plen(q);
        }
    }
    p = bd_test_procs_start(MC_CLIENTS, mc_client, (void *)bd_test_daemon_socket(d));
    ck_assert_int_eq(bd_test_procs_wait(p, 90000, NULL), 0);

    nb = read_ledger(d, &b);
    ids = malloc(sizeof(uint64_t) * MC_CLIENTS * MC_REQS);
    ck_assert_ptr_nonnull(ids);
    for (long i = 0; i < nb; i++) {
        int k;

        ck_assert_msg(b[i].nitems >= 1 && b[i].nitems <= 50, "batch %ld: %ld items",
                      i, b[i].nitems);
        ck_assert_msg(b[i].nbytes <= 2000, "batch %ld: %ld bytes > max_bytes 2000",
                      i, b[i].nbytes);
        ck_assert_int_eq((long)b[i].nids, b[i].nitems);
        ck_assert_msg(sscanf(b[i].key, "m.%d", &k) == 1 && k >= 0 && k < MC_KEYS,
                      "batch %ld: key '%s'", i, b[i].key);
        got_items[k] += b[i].nitems;
        got_bytes[k] += b[i].nbytes;
        ck_assert_msg(nids + b[i].nids <= MC_CLIENTS * MC_REQS, "more ids than items");
        memcpy(ids + nids, b[i].ids, b[i].nids * sizeof(uint64_t));
        nids += b[i].nids;
        total += b[i].nitems;
    }
    ck_assert_int_eq(total, MC_CLIENTS * MC_REQS);
    for (int k = 0; k < MC_KEYS; k++) {
        ck_assert_msg(got_items[k] == want_items[k] && got_bytes[k] == want_bytes[k],
                      "key m.%02d: %ld items / %ld bytes in its batches, sent %ld / %ld",
                      k, got_items[k], got_bytes[k], want_items[k], want_bytes[k]);
    }
    qsort(ids, nids, sizeof(uint64_t), cmp_u64);
    for (size_t i = 1; i < nids; i++)
        ck_assert_msg(ids[i] != ids[i - 1], "item id %" PRIu64 " in two batches", ids[i]);

    stats = bd_test_stats_json(d);
    ck_assert_msg(bd_test_json_int(stats, "items_in", &v) == 0, "no items_in: %s", stats);
    ck_assert_int_eq(v, MC_CLIENTS * MC_REQS);
    ck_assert_msg(bd_test_json_int(stats, "batches", &v) == 0, "no batches: %s", stats);
    ck_assert_int_eq(v, nb);
    free(stats);
    free(ids);
    bd_test_ledger_free(b, nb);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 3. SEND to the file sink: every accepted line lands exactly once --------- */

#define SF_CLIENTS 4
#define SF_LINES 500

struct sf_ctx {
    int idx;
    int accepted;
    int answered;
    int errors;
};

static struct sf_ctx sf;

static void sf_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    (void)c;
    sf.answered++;
    if (r != NULL && r->status == BATCHD_ACCEPTED) {
        sf.accepted++;
    } else if (sf.errors++ < 5) {
        bd_test_child_fail(sf.idx, "line %d: %s %.*s", (int)(intptr_t)arg,
                           r ? batchd_status_name(r->status) : "no reply",
                           r ? (int)r->len : 0, r ? (const char *)r->data : "");
    }
}

static int sf_client(int idx, void *arg)
{
    struct batchd_client *c = batchd_connect_unix(arg, 10000);
    char key[16];
    int next = 0;

    sf.idx = idx;
    if (batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    snprintf(key, sizeof(key), "log.%d", idx);
    while (sf.answered < SF_LINES) {
        while (next < SF_LINES && next - sf.answered < 64) {
            char line[32];
            int n = snprintf(line, sizeof(line), "p%d-l%04d", idx, next);

            if (batchd_submit_send(c, key, line, (size_t)n, NULL, sf_cb,
                                   (void *)(intptr_t)next, NULL) != BATCHD_CLIENT_OK)
                return bd_test_child_fail(idx, "submit: %s", batchd_errstr(c));
            next++;
        }
        if (batchd_process(c, 10000) <= 0)
            return bd_test_child_fail(idx, "process: %s (%d answered)",
                                      batchd_errstr(c), sf.answered);
    }
    batchd_free(c);
    return sf.accepted != SF_LINES;
}

START_TEST(test_send_file_sink_every_line_once)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_queued_items = 1000000\n\n"
        "[sink.f]\nplugin = file\npath = @DIR@/out.txt\nformat = line\n\n"
        "[route.logs]\nmatch = log.*\nsink = f\npolicy = size\nmax_items = 64\n"
        "key_max_items = 100000\n");
    static unsigned char seen[SF_CLIENTS][SF_LINES];
    struct bd_test_procs *p;
    char *text, *save = NULL;
    int lines = 0;

    p = bd_test_procs_start(SF_CLIENTS, sf_client, (void *)bd_test_daemon_socket(d));
    ck_assert_int_eq(bd_test_procs_wait(p, 60000, NULL), 0);
    /* 500 per key is not a multiple of 64: the rest waits for shutdown. */
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    text = bd_test_read_file(bd_test_daemon_path(d, "out.txt"), NULL);
    ck_assert_msg(text != NULL, "the file sink wrote nothing");
    memset(seen, 0, sizeof(seen));
    for (char *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        int pi, li;

        ck_assert_msg(sscanf(l, "p%d-l%d", &pi, &li) == 2 && pi >= 0 &&
                      pi < SF_CLIENTS && li >= 0 && li < SF_LINES, "bad line '%s'", l);
        ck_assert_msg(!seen[pi][li], "line '%s' written twice", l);
        seen[pi][li] = 1;
        lines++;
    }
    ck_assert_int_eq(lines, SF_CLIENTS * SF_LINES);
    free(text);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- 5. a client that vanishes with 1000 LOADs queued -------------------------- */

static void ignore_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    (void)c;
    (void)r;
    (void)arg;
}

static int dc_client(int idx, void *arg)
{
    struct batchd_client *c = batchd_connect_unix(arg, 10000);

    if (batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    for (int i = 0; i < 1000; i++) {
        char p[32];
        int n = snprintf(p, sizeof(p), "gone-%d", i);

        if (batchd_submit_load(c, "vanish", p, (size_t)n, NULL, ignore_cb, NULL, NULL) !=
            BATCHD_CLIENT_OK)
            return bd_test_child_fail(idx, "submit %d: %s", i, batchd_errstr(c));
    }
    while (batchd_want_write(c)) {
        if (batchd_flush(c) != BATCHD_CLIENT_OK)
            return bd_test_child_fail(idx, "flush: %s", batchd_errstr(c));
        usleep(1000);
    }
    _exit(0);                 /* without reading a single reply */
}

/* Poll stats until "name" equals want (10 s). */
static void wait_stat(struct bd_test_daemon *d, const char *name, long long want)
{
    double end = bd_test_now_ms() + 10000;
    long long v = -1;

    for (;;) {
        char *s = bd_test_stats_json(d);

        ck_assert_msg(bd_test_json_int(s, name, &v) == 0, "stats without %s: %s", name, s);
        free(s);
        if (v == want)
            return;
        ck_assert_msg(bd_test_now_ms() < end, "stats %s stays %lld, want %lld",
                      name, v, want);
        usleep(50000);
    }
}

START_TEST(test_disconnect_with_queued_loads)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 4\nshutdown_grace_ms = 10000\n\n"
        RECORD_SINK("delay_ms = 200")
        "[route.all]\nmatch = *\nsink = rec\npolicy = immediate\nmax_items = 100\n"
        "key_max_items = 100000\n");
    struct bd_test_procs *p;

    p = bd_test_procs_start(1, dc_client, (void *)bd_test_daemon_socket(d));
    ck_assert_int_eq(bd_test_procs_wait(p, 20000, NULL), 0);
    bd_test_assert_load(d, "other", "still-here", BATCHD_OK);
    bd_test_daemon_assert_alive(d);
    wait_stat(d, "conns", 1);             /* only the stats connection itself */
    wait_stat(d, "queued_items", 0);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 6. routes ------------------------------------------------------------------ */

START_TEST(test_no_route)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\n\n"
        "[route.users]\nmatch = users.*\nsink = e\npolicy = immediate\n");
    struct batchd_client *c;
    struct batchd_reply *r = NULL;

    bd_test_assert_load(d, "orders.1", "o", BATCHD_NO_ROUTE);
    bd_test_assert_load(d, "users.x", "u", BATCHD_OK);
    c = bd_test_connect(d);
    ck_assert_int_eq(batchd_send(c, "orders.2", "s", 1, NULL, 10000, &r), BATCHD_CLIENT_OK);
    ck_assert_msg(r->status == BATCHD_NO_ROUTE, "SEND orders.2: %s",
                  batchd_status_name(r->status));
    batchd_reply_free(r);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/*
 * Keys come and go: an idle key is freed after a second, or sooner when
 * more than 4096 are idle. The daemon caches the last key it admitted to;
 * a freed key must leave that cache, and a key used again is created
 * again on its own route (the ASan build catches a stale pointer).
 */
START_TEST(test_keys_freed_then_reused)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\n\n[sink.n]\nplugin = null\n\n"
        "[route.users]\nmatch = users.*\nsink = e\npolicy = immediate\n\n"
        "[route.rest]\nmatch = *\nsink = n\npolicy = immediate\n");
    struct batchd_client *c = bd_test_connect(d);
    char key[32], *json;

    bd_test_assert_load(d, "users.1", "u1", BATCHD_OK);
    for (int i = 0; i < 4200; i++) {
        struct batchd_reply *r = NULL;

        snprintf(key, sizeof(key), "k.%d", i);
        ck_assert_int_eq(batchd_load(c, key, "x", 1, NULL, 10000, &r),
                         BATCHD_CLIENT_OK);
        ck_assert_int_eq(r->status, BATCHD_OK);
        ck_assert_uint_eq(r->len, 0); /* the null sink's empty answer */
        batchd_reply_free(r);
    }
    /* users.1 was the oldest idle key: dropped past the 4096 cap (or by
     * the sweep, on a slow machine). */
    json = bd_test_stats_json(d);
    ck_assert_msg(strstr(json, "\"nkeys\":") != NULL &&
                  strtol(strstr(json, "\"nkeys\":") + 8, NULL, 10) <= 4096,
                  "%s", json);
    free(json);
    bd_test_assert_load(d, "users.1", "u2", BATCHD_OK);
    /* Now users.1 is the cached key; the sweep frees every key. */
    usleep(1400 * 1000);
    json = bd_test_stats_json(d);
    ck_assert_msg(strstr(json, "\"nkeys\":0") != NULL, "%s", json);
    free(json);
    bd_test_assert_load(d, "users.1", "u3", BATCHD_OK);
    bd_test_assert_load(d, "k.1", "", BATCHD_OK);
    bd_test_assert_load(d, "users.1", "u4", BATCHD_OK);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_first_matching_route_wins)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\n\n[sink.n]\nplugin = null\n\n"
        "[route.vip]\nmatch = users.vip.*\nsink = n\npolicy = immediate\n\n"
        "[route.users]\nmatch = users.*\nsink = e\npolicy = immediate\n\n"
        "[route.late]\nmatch = users.vip.1\nsink = e\npolicy = immediate\n");
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;

    /* users.vip.1 matches all three routes: the first (null sink) answers
     * with an empty payload, where echo would return "hello". */
    ck_assert_int_eq(batchd_load(c, "users.vip.1", "hello", 5, NULL, 10000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    ck_assert_msg(r->len == 0, "users.vip.1 went to echo, not to the first route");
    batchd_reply_free(r);
    batchd_free(c);
    bd_test_assert_load(d, "users.x", "hello", BATCHD_OK);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 7. LOAD_MANY / SEND_MANY ---------------------------------------------------- */

struct many_seen {
    uint64_t first;
    int n;
    int count[16];
    int status[16];
    char body[16][16];
    int stray;                /* replies with ids outside the range */
};

static void many_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    struct many_seen *m = arg;
    uint64_t i;

    (void)c;
    if (r == NULL || r->id < m->first || r->id >= m->first + (uint64_t)m->n) {
        m->stray++;
        return;
    }
    i = r->id - m->first;
    m->count[i]++;
    m->status[i] = r->status;
    snprintf(m->body[i], sizeof(m->body[i]), "%.*s", (int)r->len,
             r->data ? (const char *)r->data : "");
}

static void many_run(struct batchd_client *c, int fire_and_forget, int n,
                     struct many_seen *m)
{
    char bufs[16][32];
    const void *data[16];
    size_t lens[16];
    double end = bd_test_now_ms() + 10000;
    int got = 0;

    memset(m, 0, sizeof(*m));
    m->n = n;
    for (int i = 0; i < n; i++) {
        lens[i] = (size_t)snprintf(bufs[i], sizeof(bufs[i]), "item-%d", i);
        data[i] = bufs[i];
    }
    ck_assert_int_eq(batchd_submit_many(c, fire_and_forget, "bulk", data, lens, (size_t)n,
                                        NULL, many_cb, m, &m->first), BATCHD_CLIENT_OK);
    while (got < n) {
        ck_assert_msg(bd_test_now_ms() < end, "%d of %d *_MANY replies", got, n);
        ck_assert_int_ge(batchd_process(c, 100), 0);
        got = 0;
        for (int i = 0; i < n; i++)
            got += m->count[i] > 0;
    }
    ck_assert_int_eq(batchd_pending(c), 0);
    ck_assert_int_eq(m->stray, 0);
    for (int i = 0; i < n; i++)
        ck_assert_msg(m->count[i] == 1, "item %d: %d replies", i, m->count[i]);
}

START_TEST(test_submit_many)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\n\n"
        "[route.all]\nmatch = *\nsink = e\npolicy = immediate\nmax_items = 4\n");
    struct batchd_client *c = bd_test_connect(d);
    struct many_seen m;

    many_run(c, 0, 10, &m);               /* LOAD_MANY: 10 items over 3 batches */
    for (int i = 0; i < 10; i++) {
        char want[32];

        snprintf(want, sizeof(want), "item-%d", i);
        ck_assert_msg(m.status[i] == BATCHD_OK, "item %d: %s", i,
                      batchd_status_name(m.status[i]));
        ck_assert_str_eq(m.body[i], want);
    }
    many_run(c, 1, 7, &m);                /* SEND_MANY */
    for (int i = 0; i < 7; i++)
        ck_assert_msg(m.status[i] == BATCHD_ACCEPTED, "item %d: %s", i,
                      batchd_status_name(m.status[i]));
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- a deep pipeline through libbatchd -------------------------------------------- */

#define DEEP_N 8192               /* LOADs in flight on one connection */
#define DEEP_KEYS 8               /* round-robin: replies come back out of id order */

/* Replies in arrival order, to check they really were out of order. */
struct deep_order {
    uint64_t last_id;         /* id of the previous reply */
    int inversions;           /* replies with a lower id than the one before */
};

static struct deep_order deep_seen;

static void deep_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    if (r != NULL) {
        if (r->id < deep_seen.last_id)
            deep_seen.inversions++;
        deep_seen.last_id = r->id;
    }
    slot_cb(c, r, arg);
}

/* 8192 LOADs in flight at once on one client, over several keys: every
 * reply is matched to its own request (its own echoed payload), exactly
 * once, though they come back out of order (issue 10 item 14: the
 * in-flight table must stay right and O(1) at this depth). */
START_TEST(test_deep_pipeline_replies_matched)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\n\n"
        "[route.all]\nmatch = *\nsink = e\npolicy = immediate\nmax_items = 64\n");
    struct batchd_client *c = bd_test_connect(d);
    struct slot *s = calloc(DEEP_N, sizeof(*s));

    ck_assert_ptr_nonnull(s);
    memset(&deep_seen, 0, sizeof(deep_seen));
    for (int i = 0; i < DEEP_N; i++) {
        char key[16], p[32];
        int len = snprintf(p, sizeof(p), "deep-%d", i);

        snprintf(key, sizeof(key), "deep.%d", i % DEEP_KEYS);
        ck_assert_int_eq(batchd_submit_load(c, key, p, (size_t)len, NULL, deep_cb,
                                            &s[i], &s[i].id), BATCHD_CLIENT_OK);
    }
    ck_assert_int_eq(batchd_pending(c), DEEP_N);
    drain(c, s, DEEP_N, bd_test_scaled(30000));
    assert_each_once(s, DEEP_N);
    for (int i = 0; i < DEEP_N; i++) {
        char want[32];

        snprintf(want, sizeof(want), "deep-%d", i);
        ck_assert_msg(s[i].status == BATCHD_OK, "item %d: %s", i,
                      batchd_status_name(s[i].status));
        ck_assert_str_eq(s[i].body, want);
    }
    ck_assert_int_eq(batchd_pending(c), 0);
    ck_assert_msg(deep_seen.inversions > 0, "replies came in id order: the test "
                  "did not exercise out-of-order matching");
    free(s);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- stats ------------------------------------------------------------------------ */

/* Idle keys are freed, so per-key stats are checked on a key with an open
 * batch (policy size), which SIGTERM then flushes. */
START_TEST(test_stats_json)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        RECORD_SINK("")
        "[route.all]\nmatch = *\nsink = rec\npolicy = size\nmax_items = 100\n");
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    struct slot sl[3];
    const char *k;
    char *s;
    long long v;

    submit_loads(c, "stat.key", "st", 3, 10, sl);
    ck_assert_int_eq(batchd_control(c, "ping", NULL, 0, 10000, &r), BATCHD_CLIENT_OK);
    batchd_reply_free(r);
    s = bd_test_stats_json(d);
    ck_assert_msg(bd_test_json_int(s, "items_in", &v) == 0 && v == 3, "items_in: %s", s);
    ck_assert_msg(bd_test_json_int(s, "batches", &v) == 0 && v == 0, "batches: %s", s);
    ck_assert_msg(bd_test_json_int(s, "queued_items", &v) == 0 && v == 3,
                  "queued_items: %s", s);
    /* c and the stats connection */
    ck_assert_msg(bd_test_json_int(s, "conns", &v) == 0 && v == 2, "conns: %s", s);
    k = strstr(s, "\"keys\"");
    ck_assert_msg(k != NULL, "no \"keys\": %s", s);
    k = strstr(k, "\"stat.key\"");
    ck_assert_msg(k != NULL, "no \"stat.key\" under \"keys\": %s", s);
    ck_assert_msg(bd_test_json_int(k, "queued_items", &v) == 0 && v == 3,
                  "per-key queued_items: %s", s);
    ck_assert_msg(bd_test_json_int(k, "queued_bytes", &v) == 0 && v == 30,
                  "per-key queued_bytes: %s", s);
    free(s);

    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    drain(c, sl, 3, 5000);
    assert_each_once(sl, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sl[i].status, BATCHD_OK);
    batchd_free(c);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- SIGTERM flushes open batches and answers them --------------------------------- */

START_TEST(test_sigterm_flushes_open_batches)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nshutdown_grace_ms = 5000\n\n" RECORD_SINK("")
        "[route.all]\nmatch = *\nsink = rec\npolicy = size\nmax_items = 100\n");
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    struct slot s[3];
    struct bd_test_batch *b;
    long nb;

    submit_loads(c, "flush.me", "f", 3, 0, s);
    /* The ping is answered after the three LOADs were read and queued. */
    ck_assert_int_eq(batchd_control(c, "ping", NULL, 0, 10000, &r), BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
    ck_assert_int_eq(answered(s, 3), 0);   /* policy size: nothing left yet */
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    drain(c, s, 3, 5000);
    assert_each_once(s, 3);
    for (int i = 0; i < 3; i++) {
        char want[16];

        snprintf(want, sizeof(want), "f-%d", i);
        ck_assert_msg(s[i].status == BATCHD_OK, "item %d: %s %s", i,
                      batchd_status_name(s[i].status), s[i].body);
        ck_assert_str_eq(s[i].body, want);
    }
    nb = read_ledger(d, &b);
    ck_assert_int_eq(nb, 1);
    ck_assert_int_eq(b[0].nitems, 3);
    bd_test_ledger_free(b, nb);
    batchd_free(c);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- 8. batchctl ------------------------------------------------------------------------- */

static int ctl(struct bd_test_daemon *d, const char *const *args, char **out, char **err)
{
    const char *argv[32];
    int n = 0;

    argv[n++] = bd_test_batchctl_bin();
    argv[n++] = "-s";
    argv[n++] = bd_test_daemon_socket(d);
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return bd_test_run(argv, 60000, out, err);
}

START_TEST(test_batchctl)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\n\n"
        "[route.all]\nmatch = *\nsink = e\npolicy = immediate\nmax_items = 64\n");
    const char *load[] = {"load", "ctl.key", "hello-batchctl", NULL};
    const char *ping[] = {"ping", NULL};
    const char *stats[] = {"stats", "--json", NULL};
    const char *bench[] = {"bench", "-c", "4", "-d", "8", "-n", "500", NULL};
    char *out, *err;
    int code;

    code = ctl(d, load, &out, &err);
    ck_assert_msg(code == 0, "batchctl load: exit %d: %s", code, err);
    ck_assert_msg(strstr(out, "hello-batchctl") != NULL, "load printed '%s'", out);
    free(out);
    free(err);

    code = ctl(d, ping, &out, &err);
    ck_assert_msg(code == 0, "batchctl ping: exit %d: %s", code, err);
    free(out);
    free(err);

    code = ctl(d, stats, &out, &err);
    ck_assert_msg(code == 0, "batchctl stats --json: exit %d: %s", code, err);
    ck_assert_msg(strstr(out, "\"batches\"") != NULL, "stats printed '%s'", out);
    free(out);
    free(err);

    code = ctl(d, bench, &out, &err);
    ck_assert_msg(code == 0, "batchctl bench: exit %d: %s", code, err);
    ck_assert_msg(strstr(out, "items/s") != NULL, "bench printed '%s'", out);
    free(out);
    free(err);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- 4. limits: OVERLOADED names the bound ------------------------------------------- */

#define OV_N 100

/* Pipeline OV_N LOADs of plen bytes on key and classify the replies. */
static void overload_run(struct bd_test_daemon *d, const char *key, size_t plen,
                         const char *bound, int *ok, int *over)
{
    struct batchd_client *c = bd_test_connect(d);
    struct slot *s = calloc(OV_N, sizeof(*s));

    ck_assert_ptr_nonnull(s);
    submit_loads(c, key, "ov", OV_N, plen, s);
    drain(c, s, OV_N, 20000);
    assert_each_once(s, OV_N);
    *ok = *over = 0;
    for (int i = 0; i < OV_N; i++) {
        if (s[i].status == BATCHD_OK) {
            (*ok)++;
        } else {
            ck_assert_msg(s[i].status == BATCHD_OVERLOADED, "item %d: %s %s", i,
                          batchd_status_name(s[i].status), s[i].body);
            ck_assert_msg(strstr(s[i].body, bound) != NULL,
                          "OVERLOADED message '%s' does not name %s", s[i].body, bound);
            (*over)++;
        }
    }
    free(s);
    batchd_free(c);
}

#define SLOW_SINK RECORD_SINK("delay_ms = 300")

START_TEST(test_overload_key_max_items)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 4\n\n" SLOW_SINK
        "[route.all]\nmatch = *\nsink = rec\npolicy = immediate\nmax_items = 5\n"
        "key_concurrency = 1\nkey_max_items = 10\n");
    struct batchd_client *hot = bd_test_connect(d);
    struct slot *s = calloc(OV_N, sizeof(*s));
    struct bd_test_batch *b;
    long nb, cold_at = -1, last_hot = -1;
    int ok = 0, over = 0;

    ck_assert_ptr_nonnull(s);
    submit_loads(hot, "hot", "ov", OV_N, 0, s);
    /* Meanwhile, another key on another connection is served. */
    bd_test_assert_load(d, "cold", "cold-1", BATCHD_OK);
    drain(hot, s, OV_N, 20000);
    assert_each_once(s, OV_N);
    for (int i = 0; i < OV_N; i++) {
        if (s[i].status == BATCHD_OK) {
            ok++;
            continue;
        }
        ck_assert_msg(s[i].status == BATCHD_OVERLOADED, "item %d: %s %s", i,
                      batchd_status_name(s[i].status), s[i].body);
        ck_assert_msg(strstr(s[i].body, "key_max_items") != NULL,
                      "OVERLOADED message '%s' does not name key_max_items", s[i].body);
        over++;
    }
    /* At most 5 in the sink plus 10 queued; at least the 10 queued. */
    ck_assert_msg(ok >= 10 && ok <= 15, "%d OK, %d OVERLOADED", ok, over);
    nb = read_ledger(d, &b);
    for (long i = 0; i < nb; i++) {
        if (strcmp(b[i].key, "cold") == 0)
            cold_at = i;
        else
            last_hot = i;
        ck_assert_int_le(b[i].nitems, 5);
    }
    ck_assert_msg(cold_at >= 0 && cold_at < last_hot,
                  "the cold key waited for the hot key (batch %ld of %ld)", cold_at, nb);
    bd_test_ledger_free(b, nb);
    free(s);
    batchd_free(hot);
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_overload_key_max_bytes)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 4\n\n" SLOW_SINK
        "[route.all]\nmatch = *\nsink = rec\npolicy = immediate\nmax_items = 5\n"
        "max_bytes = 100\nkey_concurrency = 1\nkey_max_items = 1000\nkey_max_bytes = 200\n");
    int ok, over;

    overload_run(d, "hot", 20, "key_max_bytes", &ok, &over);   /* 10 x 20 bytes fit */
    ck_assert_msg(ok >= 10 && ok <= 15 && over == OV_N - ok, "%d OK, %d OVERLOADED", ok, over);
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_overload_max_queued_items)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 4\nmax_queued_items = 10\n\n" SLOW_SINK
        "[route.all]\nmatch = *\nsink = rec\npolicy = immediate\nmax_items = 5\n"
        "key_concurrency = 1\nkey_max_items = 1000\n");
    int ok, over;

    overload_run(d, "hot", 0, "max_queued_items", &ok, &over);
    ck_assert_msg(ok >= 10 && ok <= 15 && over == OV_N - ok, "%d OK, %d OVERLOADED", ok, over);
    bd_test_assert_load(d, "after", "drained", BATCHD_OK);
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_overload_max_queued_bytes)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 4\nmax_queued_bytes = 1K\n\n" SLOW_SINK
        "[route.all]\nmatch = *\nsink = rec\npolicy = immediate\nmax_items = 5\n"
        "key_concurrency = 1\nkey_max_items = 1000\n");
    int ok, over;

    overload_run(d, "hot", 100, "max_queued_bytes", &ok, &over);    /* 10 x 100 fit */
    ck_assert_msg(ok >= 10 && ok <= 15 && over == OV_N - ok, "%d OK, %d OVERLOADED", ok, over);
    bd_test_daemon_stop(d);
}
END_TEST

/* issue 10: a queue bound below the batch size is accepted (backpressure
 * first), and a `size` batch leaves when its queue is at the bound: the
 * batch could never fill, so waiting for it would hang every item. */
START_TEST(test_key_bound_below_batch_size)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        RECORD_SINK("")
        "[route.items]\nmatch = items.*\nsink = rec\npolicy = size\n"
        "max_items = 100\nkey_max_items = 10\n\n"
        "[route.bytes]\nmatch = bytes.*\nsink = rec\npolicy = size\n"
        "max_items = 100\nkey_max_bytes = 1000\n");
    struct batchd_client *c = bd_test_connect(d);
    struct slot s[10], t[4];
    struct bd_test_batch *b;
    long nb;

    submit_loads(c, "items.k", "i", 10, 5, s);
    drain(c, s, 10, 10000);
    assert_each_once(s, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_msg(s[i].status == BATCHD_OK, "item %d: %s %s", i,
                      batchd_status_name(s[i].status), s[i].body);
    /* 3 x 300 bytes fit under key_max_bytes = 1000, the 4th does not:
     * it is refused, and the 3 leave at once. */
    submit_loads(c, "bytes.k", "b", 4, 300, t);
    drain(c, t, 4, 10000);
    assert_each_once(t, 4);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(t[i].status == BATCHD_OK, "item %d: %s %s", i,
                      batchd_status_name(t[i].status), t[i].body);
    ck_assert_msg(t[3].status == BATCHD_OVERLOADED &&
                  strstr(t[3].body, "key_max_bytes") != NULL, "4th: %s %s",
                  batchd_status_name(t[3].status), t[3].body);
    nb = read_ledger(d, &b);
    ck_assert_int_eq(nb, 2);
    ck_assert_int_eq(b[0].nitems, 10);
    ck_assert_int_eq(b[1].nitems, 3);
    bd_test_ledger_free(b, nb);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* The daemon's queue bound below a size route's batch: the item refused
 * at max_queued_items sends its key's open batch (it could not grow). */
START_TEST(test_daemon_bound_sends_open_batch)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_queued_items = 5\n\n" RECORD_SINK("")
        "[route.all]\nmatch = *\nsink = rec\npolicy = size\nmax_items = 100\n");
    struct batchd_client *c = bd_test_connect(d);
    struct slot s[6];

    submit_loads(c, "dq.k", "d", 6, 5, s);
    drain(c, s, 6, 10000);
    assert_each_once(s, 6);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(s[i].status == BATCHD_OK, "item %d: %s %s", i,
                      batchd_status_name(s[i].status), s[i].body);
    ck_assert_msg(s[5].status == BATCHD_OVERLOADED &&
                  strstr(s[5].body, "max_queued_items") != NULL, "6th: %s %s",
                  batchd_status_name(s[5].status), s[5].body);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* max_bytes is a hard ceiling: the item that would overflow starts the next
 * batch, and an item larger than max_bytes alone is refused. */
START_TEST(test_max_bytes_ceiling)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        RECORD_SINK("")
        "[route.all]\nmatch = *\nsink = rec\npolicy = size\nmax_items = 100\n"
        "max_bytes = 100\n");
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    struct slot s[7];
    struct bd_test_batch *b;
    char big[101];
    long nb;

    memset(big, 'B', sizeof(big));
    ck_assert_int_eq(batchd_load(c, "ceil", big, sizeof(big), NULL, 10000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_msg(r->status == BATCHD_BAD_REQUEST, "101-byte item: %s",
                  batchd_status_name(r->status));
    ck_assert_msg(r->len > 0 && memmem(r->data, r->len, "max_bytes", 9) != NULL,
                  "message '%.*s' does not name max_bytes", (int)r->len,
                  (const char *)r->data);
    batchd_reply_free(r);

    submit_loads(c, "ceil", "c", 7, 30, s);   /* 3 x 30 fit in 100, a 4th not */
    drain(c, s, 6, 10000);
    ck_assert_int_eq(answered(s, 7), 6);      /* the 7th waits (policy size) */
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    drain(c, s, 7, 5000);
    assert_each_once(s, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_msg(s[i].status == BATCHD_OK, "item %d: %s", i,
                      batchd_status_name(s[i].status));
    nb = read_ledger(d, &b);
    ck_assert_int_eq(nb, 3);
    ck_assert_int_eq(b[0].nitems, 3);
    ck_assert_int_eq(b[0].nbytes, 90);
    ck_assert_int_eq(b[1].nitems, 3);
    ck_assert_int_eq(b[2].nitems, 1);
    bd_test_ledger_free(b, nb);
    batchd_free(c);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- retries under failure (DESIGN section 4) ------------------------------------ */

/*
 * One client sends n LOADs to key "k" of a daemon with the record sink
 * (sink_opts added to it) and route_opts; waits for every reply (the
 * slots) and returns the ledger (one line per process() call).
 */
static long retry_run(const char *sink_opts, const char *route_opts, int n,
                      struct slot *s, struct bd_test_batch **b)
{
    char conf[1024];
    struct bd_test_daemon *d;
    struct batchd_client *c;
    long nb;

    snprintf(conf, sizeof(conf),
             "[sink.rec]\nplugin = @TSINKS@/record.so\nledger = @DIR@/ledger\n"
             "%s\n[route.all]\nmatch = *\nsink = rec\n%s\n", sink_opts, route_opts);
    d = bd_test_daemon_start(conf);
    c = bd_test_connect(d);
    submit_loads(c, "k", "it", n, 0, s);
    drain(c, s, n, bd_test_scaled(30000));
    assert_each_once(s, n);
    nb = read_ledger(d, b);
    printf("retry: %s: %ld calls:", sink_opts, nb);
    for (long i = 0; i < nb; i++)
        printf(" %ld", (*b)[i].nitems);
    printf("\n");
    fflush(stdout);
    batchd_free(c);
    bd_test_daemon_stop(d);
    return nb;
}

/* Every slot has status and a body holding want. */
static void assert_all(const struct slot *s, int n, int status, const char *want)
{
    for (int i = 0; i < n; i++) {
        ck_assert_msg(s[i].status == status, "item %d: %s '%s', want %s", i,
                      batchd_status_name(s[i].status), s[i].body,
                      batchd_status_name(status));
        ck_assert_msg(strstr(s[i].body, want) != NULL, "item %d: '%s' lacks '%s'",
                      i, s[i].body, want);
    }
}

/* The ledger's call sizes are want[0..n). */
static void assert_calls(const struct bd_test_batch *b, long nb, const long *want,
                         long n)
{
    ck_assert_msg(nb == n, "%ld sink calls, want %ld", nb, n);
    for (long i = 0; i < n; i++)
        ck_assert_msg(b[i].nitems == want[i], "call %ld has %ld items, want %ld",
                      i + 1, b[i].nitems, want[i]);
}

/*
 * Issue 10.3: a batch that fails whole retries as one batch (one
 * backoff, its items in their order), not item by item. Calls 1-3
 * answer RETRY: 10, 10 (second failure: split in halves), 5 (fails),
 * 5 (OK), then the failed half again: 5 (an outage is no reason to
 * bisect further). Before: 11-12 calls (10,1,2,1,1,2,1,1,1,1,1,1).
 */
START_TEST(test_retry_keeps_the_batch_together)
{
    static const long want[] = {10, 10, 5, 5, 5};
    struct slot s[10];
    struct bd_test_batch *b;
    long nb = retry_run("fail_first = 3",
                        "policy = size\nmax_items = 10\nmax_attempts = 5\n"
                        "retry_base_ms = 100\n", 10, s, &b);

    assert_all(s, 10, BATCHD_OK, "it-");
    assert_calls(b, nb, want, 5);
    /* the retried batch is the failed one, in its order */
    for (size_t i = 0; i < 10; i++)
        ck_assert_msg(b[1].ids[i] == b[0].ids[i], "retry out of order at %zu", i);
    for (size_t i = 0; i < 5; i++)
        ck_assert(b[2].ids[i] == b[0].ids[i] && b[3].ids[i] == b[0].ids[5 + i] &&
                  b[4].ids[i] == b[0].ids[i]);
    bd_test_ledger_free(b, nb);
}
END_TEST

/*
 * 50 items in one batch, calls 1-5 fail: 50, 50, then the halves: 25,
 * 25, 25 (one half again) fail, 25 and 25 go through. No call succeeded
 * between the failures, so the halves are never halved again: 7 calls.
 * Before: 27-39 calls.
 */
START_TEST(test_retry_outage_few_calls)
{
    static const long want[] = {50, 50, 25, 25, 25, 25, 25};
    struct slot s[50];
    struct bd_test_batch *b;
    long nb = retry_run("fail_first = 5",
                        "policy = size\nmax_items = 50\nmax_attempts = 10\n"
                        "retry_base_ms = 100\n", 50, s, &b);

    assert_all(s, 50, BATCHD_OK, "it-");
    assert_calls(b, nb, want, 7);
    bd_test_ledger_free(b, nb);
}
END_TEST

/*
 * A retried batch goes back to the head of its key and newer items join
 * it up to max_items: 6 items fail in call 1; 4 newer ones wait (3 s
 * delay); the 6 come back after their backoff and leave at once, with
 * the 4 behind them: call 2 is the 6 in their order, then the 4.
 */
START_TEST(test_retry_joined_by_newer_items)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        RECORD_SINK("fail_first = 1")
        "[route.all]\nmatch = *\nsink = rec\npolicy = duration\n"
        "max_items = 10\nmax_delay_us = 3000000\nretry_base_ms = 1000\n");
    struct batchd_client *c = bd_test_connect(d);
    struct bd_test_batch *b = NULL;
    struct slot s[10];
    double end = bd_test_now_ms() + bd_test_scaled(20000);
    long nb;

    submit_loads(c, "k", "old", 6, 0, s);
    while ((nb = read_ledger(d, &b)) < 1) {      /* call 1 failed or is failing */
        bd_test_ledger_free(b, nb);
        ck_assert_msg(bd_test_now_ms() < end, "no first call");
        ck_assert_int_ge(batchd_process(c, 10), 0);
    }
    bd_test_ledger_free(b, nb);
    submit_loads(c, "k", "new", 4, 0, s + 6);
    drain(c, s, 10, bd_test_scaled(20000));
    assert_each_once(s, 10);
    assert_all(s, 10, BATCHD_OK, "-");
    nb = read_ledger(d, &b);
    ck_assert_msg(nb == 2, "%ld calls, want 2", nb);
    ck_assert_int_eq(b[0].nitems, 6);
    ck_assert_int_eq(b[1].nitems, 10);
    for (size_t i = 0; i < 6; i++)
        ck_assert_msg(b[1].ids[i] == b[0].ids[i], "retried item %zu out of place", i);
    bd_test_ledger_free(b, nb);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* Issue 10.4: every item of a batch that failed max_attempts times ends
 * RETRY_EXHAUSTED, after exactly that many calls. */
START_TEST(test_retry_exhausted_for_the_whole_batch)
{
    static const long want[] = {7, 7};
    struct slot s[7];
    struct bd_test_batch *b;
    long nb = retry_run("fail_first = 2",
                        "policy = size\nmax_items = 7\nmax_attempts = 2\n"
                        "retry_base_ms = 50\n", 7, s, &b);

    assert_all(s, 7, BATCHD_RETRY_EXHAUSTED,
               "gave up after 2 attempts: sink rec: record sink: scripted "
               "batch failure (call 2)");
    assert_calls(b, nb, want, 2);
    bd_test_ledger_free(b, nb);
}
END_TEST

/* Issue 10.5: a whole-batch FAIL is final: every item FAIL with the
 * sink's message, one call, no retry. */
START_TEST(test_whole_batch_fail_is_final)
{
    static const long want[] = {10};
    struct slot s[10];
    struct bd_test_batch *b;
    long nb = retry_run("fail_first = 1\nfail_verdict = fail",
                        "policy = size\nmax_items = 10\nmax_attempts = 5\n"
                        "retry_base_ms = 10\n", 10, s, &b);

    assert_all(s, 10, BATCHD_FAIL, "record sink: scripted batch failure (call 1)");
    for (int i = 0; i < 10; i++)
        ck_assert_str_eq(s[i].body, "record sink: scripted batch failure (call 1)");
    assert_calls(b, nb, want, 1);
    bd_test_ledger_free(b, nb);
}
END_TEST

/* A plugin that returns the daemon's internal "not started" code (the
 * isolated sink's, for a runner restarting) broke the ABI: FAIL, once,
 * not an endless wait that uses no attempts. */
START_TEST(test_internal_code_from_plugin_is_a_bug)
{
    static const long want[] = {10};
    struct slot s[10];
    struct bd_test_batch *b;
    long nb = retry_run("fail_first = 1\nfail_verdict = -102",
                        "policy = size\nmax_items = 10\nmax_attempts = 3\n"
                        "retry_base_ms = 10\n", 10, s, &b);

    assert_all(s, 10, BATCHD_FAIL, "sink rec: plugin bug: process returned -102");
    assert_calls(b, nb, want, 1);
    bd_test_ledger_free(b, nb);
}
END_TEST

/* Issue 10.6: a failed acquire is retried with the batch's backoff... */
START_TEST(test_acquire_failure_retried)
{
    static const long want[] = {10};
    struct slot s[10];
    struct bd_test_batch *b;
    long nb = retry_run("acquire_fail_first = 2",
                        "policy = size\nmax_items = 10\nmax_attempts = 3\n"
                        "retry_base_ms = 20\n", 10, s, &b);

    assert_all(s, 10, BATCHD_OK, "it-");
    assert_calls(b, nb, want, 1); /* process() ran once, for all ten */
    bd_test_ledger_free(b, nb);
}
END_TEST

/* ... and ends SINK_UNAVAILABLE with the sink's acquire message. */
START_TEST(test_acquire_failure_ends_sink_unavailable)
{
    struct slot s[10];
    struct bd_test_batch *b;
    long nb = retry_run("acquire_fail_first = 5",
                        "policy = size\nmax_items = 10\nmax_attempts = 2\n"
                        "retry_base_ms = 20\n", 10, s, &b);

    assert_all(s, 10, BATCHD_SINK_UNAVAILABLE,
               "gave up after 2 attempts: sink rec: acquire failed: "
               "record sink: backend unavailable (acquire 2)");
    ck_assert_int_eq(nb, 0);
    bd_test_ledger_free(b, nb);
}
END_TEST

/*
 * Issue 10.8: balanced with key_concurrency = 2 dispatches below
 * min_items as soon as a slot is free, not when the key is idle: B
 * reaches the sink while A's call (2 s) still runs.
 */
START_TEST(test_balanced_uses_a_free_slot)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        RECORD_SINK("delay_ms = 2000")
        "[route.all]\nmatch = *\nsink = rec\npolicy = balanced\n"
        "min_items = 10\nmax_items = 10\nmax_delay_us = 20000000\n"
        "key_concurrency = 2\n");
    struct batchd_client *c = bd_test_connect(d);
    struct bd_test_batch *b = NULL;
    struct slot s[2];
    double end = bd_test_now_ms() + bd_test_scaled(10000);
    long nb = 0;

    submit_loads(c, "k", "a", 1, 0, &s[0]);
    while ((nb = read_ledger(d, &b)) < 1) {       /* A is in the sink */
        bd_test_ledger_free(b, nb);
        ck_assert_msg(bd_test_now_ms() < end, "A never reached the sink");
        usleep(5000);
    }
    bd_test_ledger_free(b, nb);
    submit_loads(c, "k", "b", 1, 0, &s[1]);
    while ((nb = read_ledger(d, &b)) < 2) {
        bd_test_ledger_free(b, nb);
        ck_assert_msg(bd_test_now_ms() < end, "B never reached the sink");
        ck_assert_int_ge(batchd_process(c, 5), 0);
    }
    bd_test_ledger_free(b, nb);
    /* Before the fix B waited for A's call to end, whose reply was sent
     * before B's call began: it would be here now. */
    ck_assert_int_ge(batchd_process(c, 0), 0);
    ck_assert_msg(s[0].replies == 0, "B reached the sink only after A's call ended");
    drain(c, s, 2, bd_test_scaled(20000));
    assert_each_once(s, 2);
    ck_assert_int_eq(s[0].status, BATCHD_OK);
    ck_assert_int_eq(s[1].status, BATCHD_OK);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

static Suite *e2e_suite(void)
{
    Suite *s = suite_create("e2e");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *retry = tcase_create("retry");

    tcase_set_timeout(core, 100);
    bd_test_add(core, test_dataloader_size_then_delay);
    bd_test_add(core, test_many_clients_many_keys);
    bd_test_add(core, test_send_file_sink_every_line_once);
    bd_test_add(core, test_disconnect_with_queued_loads);
    bd_test_add(core, test_no_route);
    bd_test_add(core, test_keys_freed_then_reused);
    bd_test_add(core, test_first_matching_route_wins);
    bd_test_add(core, test_submit_many);
    bd_test_add(core, test_deep_pipeline_replies_matched);
    bd_test_add(core, test_stats_json);
    bd_test_add(core, test_sigterm_flushes_open_batches);
    bd_test_add(core, test_batchctl);
    suite_add_tcase(s, core);

    tcase_set_timeout(limits, 40);
    bd_test_add(limits, test_overload_key_max_items);
    bd_test_add(limits, test_overload_key_max_bytes);
    bd_test_add(limits, test_overload_max_queued_items);
    bd_test_add(limits, test_overload_max_queued_bytes);
    bd_test_add(limits, test_max_bytes_ceiling);
    bd_test_add(limits, test_key_bound_below_batch_size);
    bd_test_add(limits, test_daemon_bound_sends_open_batch);
    suite_add_tcase(s, limits);

    tcase_set_timeout(retry, 60);
    bd_test_add(retry, test_retry_keeps_the_batch_together);
    bd_test_add(retry, test_retry_outage_few_calls);
    bd_test_add(retry, test_retry_joined_by_newer_items);
    bd_test_add(retry, test_retry_exhausted_for_the_whole_batch);
    bd_test_add(retry, test_whole_batch_fail_is_final);
    bd_test_add(retry, test_internal_code_from_plugin_is_a_bug);
    bd_test_add(retry, test_acquire_failure_retried);
    bd_test_add(retry, test_acquire_failure_ends_sink_unavailable);
    bd_test_add(retry, test_balanced_uses_a_free_slot);
    suite_add_tcase(s, retry);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(e2e_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
