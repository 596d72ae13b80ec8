/*
 * check_lanes.c - priority lanes end to end (PROTOCOL.md opts.priority):
 * the real daemon, the record sink, client processes over the socket.
 *
 * A slow sink (20 ms per call, small batches, one call at a time) keeps
 * a deep queue behind a flood client; the test then sends one more item
 * and asserts where it went, against the queue that was still waiting:
 * orders and counts, no timing bounds.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchd.h"
#include "helpers.h"

#define RECORD_SINK(extra) \
    "[sink.rec]\nplugin = @TSINKS@/record.so\nledger = @DIR@/ledger\n" \
    "delay_ms = 20\n" extra "\n"

struct flood {
    char sock[256];           /* the daemon's socket */
    int n;                    /* SENDs to queue */
    int priority;             /* their opts.priority */
};

static void count_cb(struct batchd_client *c, const struct batchd_reply *r,
                     void *arg)
{
    (void)c;
    if (r != NULL && r->status == BATCHD_ACCEPTED)
        ++*(int *)arg;
}

/* A client process: queue f->n SENDs of key "k" in one SEND_MANY frame
 * and wait until every one is ACCEPTED. */
static int flood_client(int idx, void *arg)
{
    const struct flood *f = arg;
    struct batchd_opts o = {.priority = f->priority};
    struct batchd_client *c = batchd_connect_unix(f->sock, 10000);
    const void **data = calloc((size_t)f->n, sizeof(*data));
    size_t *lens = calloc((size_t)f->n, sizeof(*lens));
    int accepted = 0, rc = 0;
    uint64_t first;

    if (c == NULL || batchd_err(c) != BATCHD_ERR_NONE || !data || !lens)
        return bd_test_child_fail(idx, "connect failed");
    for (int i = 0; i < f->n; i++) {
        data[i] = "flood";
        lens[i] = 5;
    }
    if (batchd_submit_many(c, 1, "k", data, lens, (size_t)f->n, &o, count_cb,
                           &accepted, &first) != BATCHD_CLIENT_OK)
        rc = bd_test_child_fail(idx, "submit: %s", batchd_errstr(c));
    while (rc == 0 && accepted < f->n && batchd_pending(c) > 0)
        if (batchd_process(c, 1000) < 0)
            rc = bd_test_child_fail(idx, "process: %s", batchd_errstr(c));
    if (rc == 0 && accepted != f->n)
        rc = bd_test_child_fail(idx, "%d of %d accepted", accepted, f->n);
    batchd_free(c);
    free(data);
    free(lens);
    return rc;
}

static void run_flood(struct bd_test_daemon *d, int n, int priority)
{
    static struct flood f; /* read by the forked child (a copy) */

    snprintf(f.sock, sizeof(f.sock), "%s", bd_test_daemon_socket(d));
    f.n = n;
    f.priority = priority;
    ck_assert_int_eq(bd_test_procs_wait(bd_test_procs_start(1, flood_client, &f),
                                        bd_test_scaled(20000), NULL), 0);
}

static long ledger_lines(struct bd_test_daemon *d)
{
    struct bd_test_batch *b;
    long n = bd_test_ledger_read(bd_test_daemon_path(d, "ledger"), &b);

    ck_assert_int_ge(n, 0);
    bd_test_ledger_free(b, n);
    return n;
}

/* Items key "k" still has queued, from the stats. */
static long long queued_on_k(struct bd_test_daemon *d)
{
    char *json = bd_test_stats_json(d);
    const char *k = strstr(json, "\"k\":{");
    long long n = -1;

    ck_assert_msg(k != NULL, "key k not in the stats: %s", json);
    ck_assert_int_eq(bd_test_json_int(k, "queued_items", &n), 0);
    free(json);
    return n;
}

/* One LOAD of key "k" with opts.priority; asserts OK. */
static void load_k(struct bd_test_daemon *d, const char *payload, int priority)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_opts o = {.priority = priority};
    struct batchd_reply *r = NULL;

    ck_assert_int_eq(batchd_load(c, "k", payload, strlen(payload), &o,
                                 bd_test_scaled(10000), &r), BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
    batchd_free(c);
}

/* 300 low items queued (30 batches of 10 at 20 ms each); a high one
 * leaves in the next batch, while most of the flood still waits. Fails
 * when priority is ignored (it would go out after the whole flood). */
START_TEST(test_high_item_overtakes_a_low_flood)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        RECORD_SINK("[route.r]\nmatch = *\nsink = rec\npolicy = immediate\n"
                    "max_items = 10\nkey_concurrency = 1\n"
                    "priority_aging_ms = 0"));
    long before, after;
    long long left;

    run_flood(d, 300, 0);
    before = ledger_lines(d);
    load_k(d, "urgent", 200);
    after = ledger_lines(d);
    left = queued_on_k(d);
    /* The batch running when it came, then its own. */
    ck_assert_msg(after - before <= 2, "the high item waited %ld batches",
                  after - before);
    ck_assert_msg(left >= 100, "only %lld low items were still queued: the "
                  "flood was not in the way", left);
    bd_test_daemon_stop(d);
}
END_TEST

static void control(struct batchd_client *c, const char *cmd)
{
    struct batchd_reply *r = NULL;

    ck_assert_int_eq(batchd_control(c, cmd, NULL, 0, bd_test_scaled(5000), &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
}

struct one_reply {
    int n;                    /* replies seen */
    int status;
};

static void one_cb(struct batchd_client *c, const struct batchd_reply *r,
                   void *arg)
{
    struct one_reply *o = arg;

    (void)c;
    o->n++;
    o->status = r ? r->status : -1;
}

/*
 * A low item, then 2000 high ones after it (1000 batches of 2 at 20 ms:
 * 20 s of work), queued while the daemon is paused. With
 * priority_aging_ms = 200 the low item counts as top priority once it
 * waited that long, and leaves long before the flood is done. Fails with
 * aging off (it waits behind every high item: past the 10 s bound).
 */
START_TEST(test_aging_lets_a_low_item_through_a_high_flood)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nshutdown_grace_ms = 500\n"
        RECORD_SINK("[route.r]\nmatch = *\nsink = rec\npolicy = immediate\n"
                    "max_items = 2\nkey_concurrency = 1\n"
                    "priority_aging_ms = 200"));
    struct batchd_client *c = bd_test_connect(d);
    struct one_reply low = {0, 0};
    double end;
    long long left;

    control(c, "pause");
    ck_assert_int_eq(batchd_submit_load(c, "k", "patient", 7, NULL, one_cb,
                                        &low, NULL), BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
    run_flood(d, 2000, 100);
    control(c, "resume");
    end = bd_test_now_ms() + bd_test_scaled(10000);
    while (low.n == 0 && bd_test_now_ms() < end)
        ck_assert_int_ge(batchd_process(c, 100), 0);
    ck_assert_msg(low.n == 1, "the low item waited 10 s behind the high flood");
    ck_assert_int_eq(low.status, BATCHD_OK);
    left = queued_on_k(d);
    ck_assert_msg(left >= 1000, "only %lld high items were still queued", left);
    batchd_free(c);
    /* The rest is answered SHUTTING_DOWN when the grace is over. */
    bd_test_daemon_stop(d);
}
END_TEST

/* Queued items per lane, highest first, non-empty lanes only. */
START_TEST(test_stats_show_queued_items_per_lane)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nshutdown_grace_ms = 500\n"
        RECORD_SINK("[route.r]\nmatch = *\nsink = rec\npolicy = size\n"
                    "max_items = 1000\npriority_aging_ms = 0"));
    char *json;
    const char *lanes;
    long long n;

    run_flood(d, 7, 9);
    run_flood(d, 3, 0);
    run_flood(d, 2, 255);
    json = bd_test_stats_json(d);
    lanes = strstr(json, "\"lanes\":{");
    ck_assert_msg(lanes != NULL, "%s", json);
    ck_assert_msg(strncmp(lanes, "\"lanes\":{\"255\":2,\"9\":7,\"0\":3}",
                          29) == 0, "%s", lanes);
    ck_assert_int_eq(bd_test_json_int(json, "queued_items", &n), 0);
    free(json);
    bd_test_daemon_stop(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("lanes");
    TCase *tc = tcase_create("lanes");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    bd_test_add(tc, test_high_item_overtakes_a_low_flood);
    bd_test_add(tc, test_aging_lets_a_low_item_through_a_high_flood);
    bd_test_add(tc, test_stats_show_queued_items_per_lane);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
