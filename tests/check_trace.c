/*
 * check_trace.c - opts.trace end to end (PROTOCOL.md, sink ABI 2): the
 * real daemon and real plugins, in process and behind a sink runner.
 *
 * The record sink's trace_ledger writes what the host's trace accessors
 * told it (the batch's span id and each item's traceparent), so the test
 * reads what the plugin saw. That a plugin built against ABI 1 keeps
 * loading and working next to these members is check_abi's.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchd.h"
#include "helpers.h"

#define T1 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define T2 "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"

#define RECORD(iso) \
    "[sink.rec]\nplugin = @TSINKS@/record.so\nledger = @DIR@/ledger\n" \
    "trace_ledger = @DIR@/traces\nfail_payload = bad\n" iso \
    "[route.r]\nmatch = *\nsink = rec\npolicy = size\nmax_items = 3\n"

struct got {
    int n;                    /* replies */
    int status[4];
};

static void got_cb(struct batchd_client *c, const struct batchd_reply *r,
                   void *arg)
{
    struct got *g = arg;

    (void)c;
    if (g->n < 4)
        g->status[g->n] = r ? r->status : -1;
    g->n++;
}

/* Three LOADs in one batch: traced T1, untraced, traced T2. */
static void three_loads(struct bd_test_daemon *d)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_opts o1 = {.trace = T1}, o2 = {.trace = T2};
    struct got g = {0, {0}};
    double end = bd_test_now_ms() + bd_test_scaled(10000);

    ck_assert_int_eq(batchd_submit_load(c, "k", "a", 1, &o1, got_cb, &g, NULL), 0);
    ck_assert_int_eq(batchd_submit_load(c, "k", "b", 1, NULL, got_cb, &g, NULL), 0);
    ck_assert_int_eq(batchd_submit_load(c, "k", "c", 1, &o2, got_cb, &g, NULL), 0);
    ck_assert_int_eq(batchd_flush(c), 0);
    while (g.n < 3 && bd_test_now_ms() < end)
        ck_assert_int_ge(batchd_process(c, 100), 0);
    ck_assert_int_eq(g.n, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(g.status[i], BATCHD_OK);
    batchd_free(c);
}

/* The one trace ledger line: "<span> T1,-,T2". */
static void assert_traces(struct bd_test_daemon *d)
{
    char *s = bd_test_read_file(bd_test_daemon_path(d, "traces"), NULL);
    char span[17];

    ck_assert_ptr_nonnull(s);
    ck_assert_msg(strlen(s) == 17 + strlen(T1 ",-," T2) + 1, "%s", s);
    memcpy(span, s, 16);
    span[16] = '\0';
    ck_assert_uint_eq(strspn(span, "0123456789abcdef"), 16);
    ck_assert_str_ne(span, "0000000000000000");
    ck_assert_str_eq(s + 16, " " T1 ",-," T2 "\n");
    free(s);
}

START_TEST(test_traces_reach_the_sink_in_process)
{
    struct bd_test_daemon *d = bd_test_daemon_start(RECORD(""));

    three_loads(d);
    assert_traces(d);
    bd_test_daemon_stop(d);
}
END_TEST

/* The same across the sink runner's wire (isolate.c -> runner.c). */
START_TEST(test_traces_reach_the_sink_behind_a_runner)
{
    struct bd_test_daemon *d = bd_test_daemon_start(RECORD("isolation = process\n"));

    three_loads(d);
    assert_traces(d);
    bd_test_daemon_stop(d);
}
END_TEST

/* Each batch has its own span id. */
START_TEST(test_each_batch_gets_its_own_span)
{
    struct bd_test_daemon *d = bd_test_daemon_start(RECORD(""));
    char *s;

    three_loads(d);
    three_loads(d);
    s = bd_test_read_file(bd_test_daemon_path(d, "traces"), NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(strchr(s, '\n'));
    ck_assert_msg(strncmp(s, strchr(s, '\n') + 1, 16) != 0, "same span: %s", s);
    free(s);
    bd_test_daemon_stop(d);
}
END_TEST

/* A log line about an item names its trace: a SEND the sink fails. */
START_TEST(test_log_lines_name_the_trace)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        RECORD("") "max_attempts = 1\n");
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_opts o = {.trace = T2};
    struct got g = {0, {0}};
    double end = bd_test_now_ms() + bd_test_scaled(10000);
    char *log;

    ck_assert_int_eq(batchd_submit_load(c, "k", "a", 1, NULL, got_cb, &g, NULL), 0);
    ck_assert_int_eq(batchd_submit_load(c, "k", "b", 1, NULL, got_cb, &g, NULL), 0);
    ck_assert_int_eq(batchd_submit_send(c, "k", "bad", 3, &o, got_cb, &g, NULL), 0);
    ck_assert_int_eq(batchd_flush(c), 0);
    while (g.n < 3 && bd_test_now_ms() < end)
        ck_assert_int_ge(batchd_process(c, 100), 0);
    ck_assert_int_eq(g.n, 3);
    batchd_free(c);
    /* Logged when the call ended, before the LOADs' replies went out. */
    log = bd_test_daemon_log(d);
    ck_assert_msg(strstr(log, "lost") && strstr(log, "trace " T2), "%s", log);
    free(log);
    bd_test_daemon_stop(d);
}
END_TEST

/* A malformed traceparent is refused, naming the field. */
START_TEST(test_bad_trace_refused)
{
    struct bd_test_daemon *d = bd_test_daemon_start(RECORD(""));
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_opts o = {.trace = "00-xyz"};
    struct batchd_reply *r = NULL;

    ck_assert_int_eq(batchd_load(c, "k", "a", 1, &o, bd_test_scaled(5000), &r),
                     0);
    ck_assert_int_eq(r->status, BATCHD_BAD_REQUEST);
    ck_assert_ptr_nonnull(strstr((const char *)r->data, "opts.trace"));
    batchd_reply_free(r);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trace");
    TCase *tc = tcase_create("trace");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    bd_test_add(tc, test_traces_reach_the_sink_in_process);
    bd_test_add(tc, test_traces_reach_the_sink_behind_a_runner);
    bd_test_add(tc, test_each_batch_gets_its_own_span);
    bd_test_add(tc, test_log_lines_name_the_trace);
    bd_test_add(tc, test_bad_trace_refused);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
