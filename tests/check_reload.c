/*
 * check_reload.c - configuration reload (SIGHUP, batchctl reload) with
 * the real daemon, real sinks, real batchctl and client processes.
 *
 * What a reload must do (proto/PROTOCOL.md, control "reload"): read and
 * check everything first and keep the running config on any error, with
 * the error given to the caller; then new routes, limits and sinks apply,
 * no queued or running item is lost, a removed sink is shut down only
 * after its last call, and a sink whose section did not change keeps
 * running (it is not loaded again).
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "batchd_status.h"
#include "helpers.h"

/* Two routes over the echo sink; keys "b.*" have no route. */
#define CONF_A \
    "[sink.e]\nplugin = echo\n" \
    "[route.a]\nmatch = a.*\nsink = e\npolicy = immediate\nmax_bytes = 8\n"

/* CONF_A plus a route for "b.*", and a larger max_bytes on route a. */
#define CONF_B \
    "[sink.e]\nplugin = echo\n" \
    "[route.a]\nmatch = a.*\nsink = e\npolicy = immediate\nmax_bytes = 64\n" \
    "[route.b]\nmatch = b.*\nsink = e\npolicy = immediate\n"

/* Run batchctl -s SOCK reload; *out gets stdout+stderr (free()). */
static int ctl_reload(struct bd_test_daemon *d, char **out)
{
    const char *argv[] = {bd_test_batchctl_bin(), "-s",
                          bd_test_daemon_socket(d), "reload", NULL};
    char *o = NULL, *e = NULL;
    int rc = bd_test_run(argv, bd_test_scaled(20000), &o, &e);
    size_t n = strlen(o ? o : "") + strlen(e ? e : "") + 1;

    *out = malloc(n);
    ck_assert_ptr_nonnull(*out);
    snprintf(*out, n, "%s%s", o ? o : "", e ? e : "");
    free(o);
    free(e);
    return rc;
}

/* Occurrences of needle in the daemon's log. */
static int log_count(struct bd_test_daemon *d, const char *needle)
{
    char *log = bd_test_daemon_log(d);
    int n = 0;

    for (const char *p = log; (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* Wait (generously) until needle shows up in the log n times. */
static void wait_log(struct bd_test_daemon *d, const char *needle, int n)
{
    double end = bd_test_now_ms() + bd_test_scaled(20000);

    while (log_count(d, needle) < n) {
        if (bd_test_now_ms() > end) {
            char *log = bd_test_daemon_log(d);

            ck_abort_msg("no %d x '%s' in the log:\n%s", n, needle, log);
        }
        usleep(10000);
    }
}

static long long stat_of(struct bd_test_daemon *d, const char *name)
{
    char *json = bd_test_stats_json(d);
    long long v = -1;

    ck_assert_int_eq(bd_test_json_int(json, name, &v), 0);
    free(json);
    return v;
}

static long ledger_items(struct bd_test_daemon *d, const char *name);

/* batchctl reload: a new route and a raised limit apply at once. Fails
 * on the old daemon (reload answered UNSUPPORTED). */
START_TEST(test_reload_adds_route_and_changes_limit)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF_A);
    char *out;

    bd_test_assert_load(d, "a.1", "abc", BATCHD_OK);
    bd_test_assert_load(d, "a.1", "0123456789abcdef", BATCHD_BAD_REQUEST);
    bd_test_assert_load(d, "b.1", "abc", BATCHD_NO_ROUTE);
    bd_test_daemon_rewrite_conf(d, CONF_B);
    ck_assert_int_eq(ctl_reload(d, &out), 0);
    ck_assert_msg(strstr(out, "reloaded") != NULL, "reload said: %s", out);
    ck_assert_msg(strstr(out, "needs a restart") == NULL, "reload said: %s", out);
    free(out);
    bd_test_assert_load(d, "b.1", "abc", BATCHD_OK);
    /* a.1 was idle in the key cache with the old route: it is re-routed. */
    bd_test_assert_load(d, "a.1", "0123456789abcdef", BATCHD_OK);
    /* The unchanged echo sink was not loaded again. */
    ck_assert_int_eq(log_count(d, "sink e: loaded"), 1);
    bd_test_daemon_stop(d);
}
END_TEST

/* A broken file is refused with its error (batchctl exits non-zero and
 * prints it; the log says it) and the old config keeps working. */
START_TEST(test_broken_config_refused)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF_A);
    char *out;

    bd_test_daemon_rewrite_conf(d, CONF_A "[route.x]\nmatch = x\nsink = e\n"
                                "max_itemz = 3\n");
    ck_assert_int_ne(ctl_reload(d, &out), 0);
    ck_assert_msg(strstr(out, "max_itemz") != NULL, "reload said: %s", out);
    free(out);
    wait_log(d, "reload failed", 1);
    bd_test_assert_load(d, "a.1", "abc", BATCHD_OK);
    bd_test_assert_load(d, "x", "abc", BATCHD_NO_ROUTE);
    /* A sink that fails to load is an error too; nothing changes. */
    bd_test_daemon_rewrite_conf(d, CONF_B "[sink.bad]\nplugin = @TSINKS@/fail_init.so\n"
                                "[route.bad]\nmatch = bad\nsink = bad\n");
    ck_assert_int_ne(ctl_reload(d, &out), 0);
    ck_assert_msg(strstr(out, "sink bad") != NULL, "reload said: %s", out);
    free(out);
    bd_test_assert_load(d, "b.1", "abc", BATCHD_NO_ROUTE);
    bd_test_assert_load(d, "a.1", "0123456789abcdef", BATCHD_BAD_REQUEST);
    bd_test_daemon_stop(d);
}
END_TEST

/* SIGHUP (systemctl reload) takes the same path; its outcome is logged. */
START_TEST(test_sighup_reloads)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF_A);

    bd_test_assert_load(d, "b.1", "abc", BATCHD_NO_ROUTE);
    bd_test_daemon_rewrite_conf(d, CONF_B);
    ck_assert_int_eq(kill(bd_test_daemon_pid(d), SIGHUP), 0);
    wait_log(d, "reload: reloaded", 1);
    bd_test_assert_load(d, "b.1", "abc", BATCHD_OK);
    bd_test_daemon_assert_alive(d);
    bd_test_daemon_stop(d);
}
END_TEST

/* A NOTIFY_SOCKET for the daemon (inherited through the environment):
 * the datagrams it sends systemd. */
static int notify_open(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
    return fd;
}

/* Wait for a datagram holding want (skipping others, e.g. STATUS=). */
static void notify_expect(int fd, const char *want)
{
    double end = bd_test_now_ms() + bd_test_scaled(20000);
    char buf[512];

    while (bd_test_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (poll(&p, 1, 100) <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        if (strstr(buf, want) != NULL)
            return;
        ck_assert_msg(strstr(buf, "READY=1") == NULL ||
                      strstr(want, "READY=1") != NULL,
                      "READY=1 came before %s", want);
    }
    ck_abort_msg("no %s from the daemon", want);
}

/* sd_notify: RELOADING=1 (with MONOTONIC_USEC) then READY=1, for a
 * refused config too. */
START_TEST(test_reload_notifies_systemd)
{
    struct bd_test_daemon *d = bd_test_daemon_new(CONF_A);
    int fd = notify_open(bd_test_daemon_path(d, "notify"));
    char *out;

    bd_test_daemon_spawn(d, NULL);
    bd_test_daemon_wait_ready(d);
    unsetenv("NOTIFY_SOCKET");
    notify_expect(fd, "READY=1");
    bd_test_daemon_rewrite_conf(d, CONF_B);
    ck_assert_int_eq(kill(bd_test_daemon_pid(d), SIGHUP), 0);
    notify_expect(fd, "RELOADING=1\nMONOTONIC_USEC=");
    notify_expect(fd, "READY=1");
    bd_test_daemon_rewrite_conf(d, "[route.x]\nbroken = yes\n");
    ck_assert_int_ne(ctl_reload(d, &out), 0);
    free(out);
    notify_expect(fd, "RELOADING=1");
    notify_expect(fd, "READY=1");
    bd_test_assert_load(d, "b.1", "abc", BATCHD_OK);
    close(fd);
    bd_test_daemon_stop(d);
}
END_TEST

/* Options only a restart can change are named, not silently ignored;
 * a sink whose options changed is loaded again, an unchanged one not. */
START_TEST(test_restart_only_reported_and_changed_sink_restarted)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmax_concurrency = 2\n"
        "[sink.keep]\nplugin = echo\n"
        "[sink.chg]\nplugin = @TSINKS@/record.so\nledger = @DIR@/l1\n"
        "[route.a]\nmatch = a\nsink = keep\n"
        "[route.c]\nmatch = c\nsink = chg\n");
    char *out;

    bd_test_daemon_rewrite_conf(d,
        "[daemon]\nmax_concurrency = 3\n"
        "[sink.keep]\nplugin = echo\n"
        "[sink.chg]\nplugin = @TSINKS@/record.so\nledger = @DIR@/l2\n"
        "[route.a]\nmatch = a\nsink = keep\nmax_items = 7\n"
        "[route.c]\nmatch = c\nsink = chg\n");
    ck_assert_int_eq(ctl_reload(d, &out), 0);
    ck_assert_msg(strstr(out, "max_concurrency: changed to 3; needs a restart "
                         "(still 2)") != NULL, "reload said: %s", out);
    free(out);
    wait_log(d, "sink chg: shut down", 1);
    ck_assert_int_eq(log_count(d, "sink keep: loaded"), 1);
    ck_assert_int_eq(log_count(d, "sink chg: loaded"), 2);
    ck_assert_int_eq(log_count(d, "sink keep: shut down"), 0);
    bd_test_assert_load(d, "c", "x", BATCHD_OK);
    /* The restarted sink writes where its new options say. */
    ck_assert_int_eq(ledger_items(d, "l2"), 1);
    bd_test_daemon_stop(d);
}
END_TEST

/* The file as it is (no socket line added): to change the socket. */
static void write_conf_raw(struct bd_test_daemon *d, const char *text)
{
    FILE *f = fopen(bd_test_daemon_conf(d), "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
}

/* A new socket path is reported and not applied, by a failed reload
 * too: the daemon keeps listening where it did, and removes that socket
 * file at exit. */
START_TEST(test_socket_change_not_applied)
{
    struct bd_test_daemon *d = bd_test_daemon_start(CONF_A);
    char sock[256], text[1024], *out;

    snprintf(sock, sizeof(sock), "%s", bd_test_daemon_socket(d));
    snprintf(text, sizeof(text), "[daemon]\nsocket = %s\n" CONF_A
             "[sink.bad]\nplugin = %s\n[route.bad]\nmatch = bad\nsink = bad\n",
             bd_test_daemon_path(d, "other.sock"), bd_test_tsink("fail_init"));
    write_conf_raw(d, text);
    ck_assert_int_ne(ctl_reload(d, &out), 0);
    ck_assert_msg(strstr(out, "sink bad") != NULL, "reload said: %s", out);
    free(out);
    snprintf(text, sizeof(text), "[daemon]\nsocket = %s\n" CONF_B,
             bd_test_daemon_path(d, "other.sock"));
    write_conf_raw(d, text);
    ck_assert_int_eq(ctl_reload(d, &out), 0);
    ck_assert_msg(strstr(out, "socket: changed to ") != NULL &&
                  strstr(out, "needs a restart") != NULL, "reload said: %s", out);
    free(out);
    bd_test_assert_load(d, "b.1", "abc", BATCHD_OK); /* on the old socket */
    ck_assert_int_ne(access(bd_test_daemon_path(d, "other.sock"), F_OK), 0);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    ck_assert_msg(access(sock, F_OK) != 0, "%s left behind", sock);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- calls in flight ------------------------------------------------------ */

#define STORM_CLIENTS 4
#define STORM_ITEMS 150

struct shared {
    char sock[128];
    int ok[STORM_CLIENTS];    /* replies OK with their own payload */
    int bad[STORM_CLIENTS];   /* any other reply */
};

/* STORM_ITEMS blocking LOADs on key "k<idx>", each checked. */
static int storm_client(int idx, void *arg)
{
    struct shared *sh = arg;
    struct batchd_client *c = batchd_connect_unix(sh->sock, 10000);
    char key[16], payload[32];

    if (c == NULL || batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect failed");
    snprintf(key, sizeof(key), "k%d", idx);
    for (int i = 0; i < STORM_ITEMS; i++) {
        struct batchd_reply *r = NULL;

        snprintf(payload, sizeof(payload), "%d-%d", idx, i);
        if (batchd_load(c, key, payload, strlen(payload), NULL, 60000, &r) !=
            BATCHD_CLIENT_OK) {
            batchd_free(c);
            return bd_test_child_fail(idx, "load %d: no reply", i);
        }
        if (r->status == BATCHD_OK && r->len == strlen(payload) &&
            memcmp(r->data, payload, r->len) == 0)
            sh->ok[idx]++;
        else
            sh->bad[idx]++;
        batchd_reply_free(r);
    }
    batchd_free(c);
    return 0;
}

/* Each config has its own record sink: every reload removes the sink
 * in use (with calls in flight) and starts the other. */
#define STORM_CONF(x) \
    "[sink." x "]\nplugin = @TSINKS@/record.so\nledger = @DIR@/" x \
    "\ndelay_ms = 2\n" \
    "[route.all]\nmatch = *\nsink = " x "\npolicy = immediate\n" \
    "key_concurrency = 2\n"

static long ledger_items(struct bd_test_daemon *d, const char *name)
{
    struct bd_test_batch *b;
    long n = bd_test_ledger_read(bd_test_daemon_path(d, name), &b), items = 0;

    if (n < 0)
        return 0;
    for (long i = 0; i < n; i++)
        items += b[i].nitems;
    bd_test_ledger_free(b, n);
    return items;
}

/* Reloads under load: every item gets exactly one reply, OK with its
 * payload, and the sinks saw each item once between them. */
START_TEST(test_reload_storm_under_load)
{
    struct bd_test_daemon *d = bd_test_daemon_start(STORM_CONF("s0"));
    struct batchd_client *ctl = bd_test_connect(d);
    struct shared *sh = bd_test_shared_alloc(sizeof(*sh));
    struct bd_test_procs *p;
    int reloads = 0, ok = 0, bad = 0;

    snprintf(sh->sock, sizeof(sh->sock), "%s", bd_test_daemon_socket(d));
    p = bd_test_procs_start(STORM_CLIENTS, storm_client, sh);
    while (stat_of(d, "items_in") < STORM_CLIENTS * STORM_ITEMS && reloads < 40) {
        struct batchd_reply *r = NULL;

        bd_test_daemon_rewrite_conf(d, reloads % 2 ? STORM_CONF("s0") :
                                                     STORM_CONF("s1"));
        ck_assert_int_eq(batchd_control(ctl, "reload", NULL, 0, 20000, &r),
                         BATCHD_CLIENT_OK);
        ck_assert_msg(r->status == BATCHD_OK, "reload: %.*s", (int)r->len,
                      (const char *)r->data);
        batchd_reply_free(r);
        reloads++;
        usleep(20000);
    }
    ck_assert_int_eq(bd_test_procs_wait(p, bd_test_scaled(120000), NULL), 0);
    for (int i = 0; i < STORM_CLIENTS; i++) {
        ok += sh->ok[i];
        bad += sh->bad[i];
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(ok, STORM_CLIENTS * STORM_ITEMS);
    ck_assert_int_eq(ledger_items(d, "s0") + ledger_items(d, "s1"),
                     STORM_CLIENTS * STORM_ITEMS);
    ck_assert_int_eq(stat_of(d, "items_in"), STORM_CLIENTS * STORM_ITEMS);
    ck_assert_int_ge(reloads, 2);
    /* Every sink a reload removed was shut down (after its last call). */
    wait_log(d, "sink s0: shut down", (reloads + 1) / 2);
    batchd_free(ctl);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_stop(d);
}
END_TEST

static int slow_client(int idx, void *arg)
{
    struct shared *sh = arg;
    struct batchd_client *c = batchd_connect_unix(sh->sock, 10000);
    struct batchd_reply *r = NULL;

    if (c == NULL || batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect failed");
    if (batchd_load(c, "k", "slow", 4, NULL, 60000, &r) != BATCHD_CLIENT_OK)
        return bd_test_child_fail(idx, "no reply");
    if (r->status == BATCHD_OK)
        sh->ok[idx]++;
    else
        sh->bad[idx]++;
    batchd_reply_free(r);
    batchd_free(c);
    return 0;
}

/* A removed sink with a call in flight: the call finishes and is
 * answered, and only then is the sink shut down. */
START_TEST(test_removed_sink_shut_down_after_last_call)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.slow]\nplugin = @TSINKS@/record.so\nledger = @DIR@/slow\n"
        "delay_ms = 2000\n"
        "[route.all]\nmatch = *\nsink = slow\npolicy = immediate\n");
    struct shared *sh = bd_test_shared_alloc(sizeof(*sh));
    struct bd_test_procs *p;
    double end = bd_test_now_ms() + bd_test_scaled(20000);
    char *out;

    snprintf(sh->sock, sizeof(sh->sock), "%s", bd_test_daemon_socket(d));
    p = bd_test_procs_start(1, slow_client, sh);
    while (stat_of(d, "inflight_batches") != 1)
        ck_assert_msg(bd_test_now_ms() < end, "the call never started");
    bd_test_daemon_rewrite_conf(d, "[sink.e]\nplugin = echo\n"
                                "[route.all]\nmatch = *\nsink = e\n");
    ck_assert_int_eq(ctl_reload(d, &out), 0);
    free(out);
    /* The call sleeps for 2 s: its sink must still be up. */
    ck_assert_int_eq(log_count(d, "sink slow: shut down"), 0);
    bd_test_assert_load(d, "other", "x", BATCHD_OK); /* the new sink */
    ck_assert_int_eq(bd_test_procs_wait(p, bd_test_scaled(30000), NULL), 0);
    ck_assert_int_eq(sh->ok[0], 1);
    wait_log(d, "sink slow: shut down", 1);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_stop(d);
}
END_TEST

/* One LOAD on key k ("p<idx>"), checked. */
static int key_k_client(int idx, void *arg)
{
    struct shared *sh = arg;
    struct batchd_client *c = batchd_connect_unix(sh->sock, 10000);
    struct batchd_reply *r = NULL;
    char p[16];

    if (c == NULL || batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect failed");
    snprintf(p, sizeof(p), "p%d", idx);
    if (batchd_load(c, "k", p, strlen(p), NULL, 60000, &r) != BATCHD_CLIENT_OK)
        return bd_test_child_fail(idx, "no reply");
    if (r->status == BATCHD_OK && r->len == strlen(p) &&
        memcmp(r->data, p, r->len) == 0)
        sh->ok[idx]++;
    else
        sh->bad[idx]++;
    batchd_reply_free(r);
    batchd_free(c);
    return 0;
}

/* A key that no route of the new config matches finishes its queued
 * and running items under its old route and sink; once idle it is
 * NO_ROUTE. */
START_TEST(test_key_without_new_route_finishes_under_old)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.slow]\nplugin = @TSINKS@/record.so\nledger = @DIR@/slow\n"
        "delay_ms = 1500\n"
        "[route.k]\nmatch = k\nsink = slow\npolicy = immediate\n"
        "max_items = 1\n");
    struct shared *sh = bd_test_shared_alloc(sizeof(*sh));
    struct bd_test_procs *p;
    double end = bd_test_now_ms() + bd_test_scaled(20000);
    char *out;

    snprintf(sh->sock, sizeof(sh->sock), "%s", bd_test_daemon_socket(d));
    p = bd_test_procs_start(2, key_k_client, sh);
    /* One in the sink, one queued behind it (key_concurrency 1). */
    while (stat_of(d, "inflight_batches") != 1 || stat_of(d, "queued_items") != 1)
        ck_assert_msg(bd_test_now_ms() < end, "the items never queued");
    bd_test_daemon_rewrite_conf(d, "[sink.e]\nplugin = echo\n"
                                "[route.o]\nmatch = other\nsink = e\n");
    ck_assert_int_eq(ctl_reload(d, &out), 0);
    free(out);
    ck_assert_int_eq(bd_test_procs_wait(p, bd_test_scaled(30000), NULL), 0);
    ck_assert_int_eq(sh->ok[0] + sh->ok[1], 2);
    ck_assert_int_eq(sh->bad[0] + sh->bad[1], 0);
    ck_assert_int_eq(ledger_items(d, "slow"), 2); /* both in the old sink */
    wait_log(d, "sink slow: shut down", 1);
    bd_test_assert_load(d, "k", "x", BATCHD_NO_ROUTE);
    bd_test_assert_load(d, "other", "x", BATCHD_OK);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_stop(d);
}
END_TEST

static Suite *reload_suite(void)
{
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("reload");

    tcase_set_timeout(tc, 300);
    bd_test_add(tc, test_reload_adds_route_and_changes_limit);
    bd_test_add(tc, test_broken_config_refused);
    bd_test_add(tc, test_sighup_reloads);
    bd_test_add(tc, test_reload_notifies_systemd);
    bd_test_add(tc, test_restart_only_reported_and_changed_sink_restarted);
    bd_test_add(tc, test_socket_change_not_applied);
    bd_test_add(tc, test_removed_sink_shut_down_after_last_call);
    bd_test_add(tc, test_key_without_new_route_finishes_under_old);
    bd_test_add(tc, test_reload_storm_under_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reload_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
