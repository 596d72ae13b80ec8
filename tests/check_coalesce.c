/*
 * check_coalesce.c - opts.dedup_id end to end (PROTOCOL.md): the real
 * daemon, the record sink (its ledger counts what the sink saw), many
 * client processes over the socket.
 *
 * The daemon is paused while the clients queue their LOADs, so that
 * they are all queued at the same time whatever the machine's speed;
 * the stats' "coalesced" counter says when they are.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batchd.h"
#include "helpers.h"

#define CONF \
    "[sink.rec]\nplugin = @TSINKS@/record.so\nledger = @DIR@/ledger\n" \
    "[route.r]\nmatch = *\nsink = rec\npolicy = immediate\nmax_items = 100\n"

#define MAXC 64

struct shared {
    char sock[256];           /* the daemon's socket */
    pid_t pid[MAXC];          /* each client's pid */
    int status[MAXC];         /* each client's reply status, -1 none */
    char body[MAXC][32];      /* and its payload */
};

/* A client process: one blocking LOAD of key "k" with dedup_id "user42"
 * and its own payload; the reply goes to shared memory. */
static int dedup_client(int idx, void *arg)
{
    struct shared *sh = arg;
    struct batchd_opts o = {.dedup_id = "user42", .dedup_len = 6};
    struct batchd_client *c;
    struct batchd_reply *r = NULL;
    char payload[32];

    sh->pid[idx] = getpid();
    sh->status[idx] = -1;
    c = batchd_connect_unix(sh->sock, 10000);
    if (c == NULL || batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect failed");
    snprintf(payload, sizeof(payload), "from-%d", idx);
    if (batchd_load(c, "k", payload, strlen(payload), &o, 60000, &r) !=
        BATCHD_CLIENT_OK) {
        batchd_free(c);
        return bd_test_child_fail(idx, "load failed");
    }
    sh->status[idx] = r->status;
    snprintf(sh->body[idx], sizeof(sh->body[idx]), "%.*s", (int)r->len,
             (const char *)r->data);
    batchd_reply_free(r);
    batchd_free(c);
    return 0;
}

static void control(struct batchd_client *c, const char *cmd)
{
    struct batchd_reply *r = NULL;

    ck_assert_int_eq(batchd_control(c, cmd, NULL, 0, bd_test_scaled(5000), &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
}

static long long stat_of(struct bd_test_daemon *d, const char *name)
{
    char *json = bd_test_stats_json(d);
    long long n = -1;

    ck_assert_int_eq(bd_test_json_int(json, name, &n), 0);
    free(json);
    return n;
}

/* Wait (10 s) until the daemon's counter name reaches want. */
static void wait_stat(struct bd_test_daemon *d, const char *name, long long want)
{
    double end = bd_test_now_ms() + bd_test_scaled(10000);
    long long n;

    while ((n = stat_of(d, name)) < want && bd_test_now_ms() < end)
        usleep(20000);
    ck_assert_msg(n >= want, "%s is %lld, waited for %lld", name, n, want);
}

/* Items the sink saw, from the record sink's ledger. */
static long sink_items(struct bd_test_daemon *d)
{
    struct bd_test_batch *b;
    long n = bd_test_ledger_read(bd_test_daemon_path(d, "ledger"), &b), items = 0;

    ck_assert_int_ge(n, 0);
    for (long i = 0; i < n; i++)
        items += b[i].nitems;
    bd_test_ledger_free(b, n);
    return items;
}

static struct shared *start(struct bd_test_daemon *d)
{
    struct shared *sh = bd_test_shared_alloc(sizeof(*sh));

    snprintf(sh->sock, sizeof(sh->sock), "%s", bd_test_daemon_socket(d));
    return sh;
}

/* 50 processes load the same dedup_id at once: the sink sees one item,
 * every client gets its own OK with the first payload. Fails without
 * coalescing (the ledger would hold 50 items). */
START_TEST(test_fifty_processes_one_sink_item)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF);
    struct batchd_client *ctl = bd_test_connect(d);
    struct shared *sh = start(d);
    struct bd_test_procs *p;
    const char *first = NULL;

    control(ctl, "pause");
    p = bd_test_procs_start(50, dedup_client, sh);
    wait_stat(d, "coalesced", 49);
    ck_assert_int_eq(stat_of(d, "queued_items"), 1);
    control(ctl, "resume");
    ck_assert_int_eq(bd_test_procs_wait(p, bd_test_scaled(20000), NULL), 0);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(sh->status[i], BATCHD_OK);
        /* One payload for all: the first one queued. */
        ck_assert_str_eq(sh->body[i], first ? first : (first = sh->body[i]));
    }
    ck_assert_int_eq(sink_items(d), 1);
    ck_assert_int_eq(stat_of(d, "items_in"), 50);
    batchd_free(ctl);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_stop(d);
}
END_TEST

/* Ten clients wait on one item; three are killed mid-wait. The seven
 * others still get their reply from the one sink item; the three are
 * dropped alone (cancelled), the item is not. */
START_TEST(test_killed_waiters_leave_the_others_served)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF);
    struct batchd_client *ctl = bd_test_connect(d);
    struct shared *sh = start(d);
    struct bd_test_procs *p;
    int codes[10], served = 0;

    control(ctl, "pause");
    p = bd_test_procs_start(10, dedup_client, sh);
    wait_stat(d, "coalesced", 9);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(kill(sh->pid[i * 3], SIGKILL), 0);
    wait_stat(d, "cancelled", 3);
    ck_assert_int_eq(stat_of(d, "queued_items"), 1);
    control(ctl, "resume");
    bd_test_procs_wait(p, bd_test_scaled(20000), codes);
    for (int i = 0; i < 10; i++) {
        if (i % 3 == 0 && i < 9) {
            ck_assert_int_eq(sh->status[i], -1);
            continue;
        }
        ck_assert_int_eq(codes[i], 0);
        ck_assert_int_eq(sh->status[i], BATCHD_OK);
        served++;
    }
    ck_assert_int_eq(served, 7);
    ck_assert_int_eq(sink_items(d), 1);
    batchd_free(ctl);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_stop(d);
}
END_TEST

/* Every waiter killed: the item is cancelled and never reaches the sink. */
START_TEST(test_all_waiters_killed_cancels_the_item)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF);
    struct batchd_client *ctl = bd_test_connect(d);
    struct shared *sh = start(d);
    struct bd_test_procs *p;

    control(ctl, "pause");
    p = bd_test_procs_start(4, dedup_client, sh);
    wait_stat(d, "coalesced", 3);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(kill(sh->pid[i], SIGKILL), 0);
    wait_stat(d, "cancelled", 4);
    ck_assert_int_eq(stat_of(d, "queued_items"), 0);
    control(ctl, "resume");
    bd_test_procs_wait(p, bd_test_scaled(5000), NULL);
    bd_test_assert_load(d, "other", "x", BATCHD_OK); /* the sink did run */
    ck_assert_int_eq(sink_items(d), 1);
    batchd_free(ctl);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_stop(d);
}
END_TEST

/* Wait (10 s) until the record sink has started n calls. */
static void wait_calls(struct bd_test_daemon *d, long n)
{
    double end = bd_test_now_ms() + bd_test_scaled(10000);
    struct bd_test_batch *b;
    long got;

    while ((got = bd_test_ledger_read(bd_test_daemon_path(d, "ledger"), &b)) < n &&
           bd_test_now_ms() < end) {
        bd_test_ledger_free(b, got);
        usleep(10000);
    }
    bd_test_ledger_free(b, got);
    ck_assert_int_ge(got, n);
}

/* A burst arriving while the first call for its dedup_id runs joins that
 * call under coalesce_inflight = on (one sink item in all); with it off
 * the burst needs items of its own (one more, or two when the first of
 * them already left for the second key slot). */
static void inflight_burst(const char *onoff, long min_items, long max_items)
{
    char conf[512];
    struct bd_test_daemon *d;
    struct shared *sh, *sh1;
    struct bd_test_procs *first, *burst;

    snprintf(conf, sizeof(conf), "%s"
             "[sink.rec]\nplugin = @TSINKS@/record.so\nledger = @DIR@/ledger\n"
             "delay_ms = 2500\n[route.r]\nmatch = *\nsink = rec\n"
             "policy = immediate\nkey_concurrency = 2\ncoalesce_inflight = %s\n",
             "", onoff);
    d = bd_test_daemon_start(conf);
    sh = start(d);
    sh1 = start(d);
    first = bd_test_procs_start(1, dedup_client, sh1);
    wait_calls(d, 1);           /* its call is in the sink now (2.5 s) */
    burst = bd_test_procs_start(8, dedup_client, sh);
    ck_assert_int_eq(bd_test_procs_wait(burst, bd_test_scaled(20000), NULL), 0);
    ck_assert_int_eq(bd_test_procs_wait(first, bd_test_scaled(20000), NULL), 0);
    ck_assert_int_eq(sh1->status[0], BATCHD_OK);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(sh->status[i], BATCHD_OK);
    ck_assert_int_ge(sink_items(d), min_items);
    ck_assert_int_le(sink_items(d), max_items);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_shared_free(sh1, sizeof(*sh1));
    bd_test_daemon_stop(d);
}

START_TEST(test_burst_joins_the_call_in_flight)
{
    inflight_burst("on", 1, 1);
    inflight_burst("off", 2, 9);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("coalesce");
    TCase *tc = tcase_create("coalesce");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    bd_test_add(tc, test_fifty_processes_one_sink_item);
    bd_test_add(tc, test_killed_waiters_leave_the_others_served);
    bd_test_add(tc, test_all_waiters_killed_cancels_the_item);
    bd_test_add(tc, test_burst_joins_the_call_in_flight);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
