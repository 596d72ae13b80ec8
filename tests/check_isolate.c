/*
 * check_isolate.c - isolation = process: real daemons whose sinks run in
 * sink-runner children (daemon/isolate.c, daemon/runner.c), with the
 * misbehaving test sink tests/sinks/crashy.c.
 *
 * "core":      echo through a runner; segfault, abort and exit(3) on one
 *              call (retried on the restarted runner); a crash loop that
 *              makes the sink unhealthy, then half-open again; a
 *              restart that uses no attempts; a hang
 *              killed at sink_timeout_ms while the daemon keeps
 *              answering; SIGTERM leaves no runner behind.
 * "limits":    a leaking runner is replaced above its RSS limit; big
 *              batches and payloads; a NONBLOCKING plugin in a runner;
 *              two isolated sinks, two runners; key_concurrency > 1.
 * "malformed": plugins refused at start-up (same words as in-process);
 *              a runner that breaks the wire; a runner fed bad frames.
 *
 * The daemon's pid must never change, its exit must be 0 (leaks fail the
 * ASan build), and no runner may outlive it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "frame.h"
#include "helpers.h"
#include "runner.h"

#define MAX_KIDS 16

/* ---- processes ------------------------------------------------------------ */

/* Children of pid (from /proc/N/stat); *zombies counts those in state Z. */
static int children_of(pid_t pid, pid_t *kids, int max, int *zombies)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    if (zombies)
        *zombies = 0;
    while ((e = readdir(d)) != NULL) {
        char path[300], *buf, *rp, state;
        int ppid;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        buf = bd_test_read_file(path, NULL);
        if (buf == NULL)
            continue;
        rp = strrchr(buf, ')');
        if (rp != NULL && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 &&
            ppid == pid) {
            if (n < max)
                kids[n] = (pid_t)atoi(e->d_name);
            n++;
            if (zombies && state == 'Z')
                (*zombies)++;
        }
        free(buf);
    }
    closedir(d);
    return n;
}

/* Is pid a sink runner (by its command line)? */
static int is_runner(pid_t pid)
{
    char path[64], *cmd;
    size_t len = 0;
    int yes;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    cmd = bd_test_read_file(path, &len);
    yes = cmd != NULL && len > 7 && strcmp(cmd, "batchd") == 0 &&
          strcmp(cmd + 7, "--sink-runner") == 0;
    free(cmd);
    return yes;
}

/* The daemon's one runner: asserts there is exactly one, alive, and that
 * it is a sink runner (waiting out a restart under way). */
static pid_t the_runner(struct bd_test_daemon *d)
{
    pid_t kids[MAX_KIDS];
    int zombies, n;
    double end = bd_test_now_ms() + bd_test_scaled(10000);

    while ((n = children_of(bd_test_daemon_pid(d), kids, MAX_KIDS, &zombies)) != 1 ||
           zombies != 0 || !is_runner(kids[0])) {
        ck_assert_msg(bd_test_now_ms() < end, "daemon has %d children "
                      "(%d zombies), want one live sink runner", n, zombies);
        usleep(10000);
    }
    return kids[0];
}

/* Running, or at least not yet a zombie (an orphan's zombie waits for
 * whoever reaps orphans here, which may never happen in a container). */
static int alive(pid_t pid)
{
    char path[64], *buf, *rp, state = 'Z';

    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    buf = bd_test_read_file(path, NULL);
    if (buf == NULL)
        return 0;
    rp = strrchr(buf, ')');
    if (rp == NULL || sscanf(rp + 1, " %c", &state) != 1)
        state = '?';
    free(buf);
    return state != 'Z' && state != 'X';
}

/* Stop the daemon (exit 0 asserted) and check its runners are gone. */
static void stop_and_check(struct bd_test_daemon *d)
{
    pid_t kids[MAX_KIDS];
    int n = children_of(bd_test_daemon_pid(d), kids, MAX_KIDS, NULL);
    double end;

    bd_test_daemon_stop(d);
    end = bd_test_now_ms() + 2000;
    for (int i = 0; i < n && i < MAX_KIDS; i++) {
        while (alive(kids[i]) && bd_test_now_ms() < end)
            usleep(10000);
        ck_assert_msg(!alive(kids[i]), "runner %d outlived the daemon",
                      (int)kids[i]);
    }
}

/* ---- daemon logs --------------------------------------------------------------- */

/* Wait up to ms for the daemon log to hold needle. */
static int log_has(struct bd_test_daemon *d, const char *needle, int ms)
{
    double end = bd_test_now_ms() + bd_test_scaled(ms);

    for (;;) {
        char *log = bd_test_daemon_log(d);
        int found = log != NULL && strstr(log, needle) != NULL;

        free(log);
        if (found)
            return 1;
        if (bd_test_now_ms() >= end)
            return 0;
        usleep(20000);
    }
}

static void assert_log(struct bd_test_daemon *d, const char *needle)
{
    char *log;

    if (log_has(d, needle, 10000))
        return;
    log = bd_test_daemon_log(d);
    ck_abort_msg("daemon log lacks '%s':\n%s", needle, log);
}

/* ---- requests ------------------------------------------------------------------- */

/* One blocking LOAD on a fresh connection: status, body, and how long it
 * took (ms). */
static int load(struct bd_test_daemon *d, const char *key, const char *payload,
                char *body, size_t bodylen, double *ms)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    double t0 = bd_test_now_ms();
    int rc = batchd_load(c, key, payload, strlen(payload), NULL,
                         bd_test_scaled(30000), &r), status;

    if (rc != BATCHD_CLIENT_OK)
        bd_test_daemon_assert_alive(d);
    ck_assert_msg(rc == BATCHD_CLIENT_OK, "LOAD %s: %s", key, batchd_errstr(c));
    if (ms)
        *ms = bd_test_now_ms() - t0;
    status = r->status;
    if (body)
        snprintf(body, bodylen, "%.*s", (int)r->len,
                 r->data ? (const char *)r->data : "");
    batchd_reply_free(r);
    batchd_free(c);
    return status;
}

/* ms for a ping on a fresh, already connected client. */
static double ping_ms(struct bd_test_daemon *d)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    double t0 = bd_test_now_ms(), ms;

    ck_assert_int_eq(batchd_control(c, "ping", NULL, 0, 5000, &r),
                     BATCHD_CLIENT_OK);
    ms = bd_test_now_ms() - t0;
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
    batchd_free(c);
    return ms;
}

/* Config: one isolated crashy sink "c" with sink_opts, one route. */
static char *crashy_conf(const char *sink_opts, const char *route_opts)
{
    char *s;

    /* Fast restarts unless the test sets its own. */
    ck_assert_int_ge(asprintf(&s,
        "[sink.c]\nplugin = @TSINKS@/crashy.so\nisolation = process\n"
        "%s%s\n"
        "[route.all]\nmatch = *\nsink = c\npolicy = immediate\n"
        "%sretry_base_ms = 20\nretry_cap_ms = 100\n%s\n",
        strstr(sink_opts, "restart_") ? "" :
        "restart_base_ms = 10\nrestart_cap_ms = 200\n", sink_opts,
        strstr(route_opts, "max_attempts") ? "" : "max_attempts = 5\n",
        route_opts), 0);
    return s;
}

static struct bd_test_daemon *start_crashy(const char *sink_opts,
                                           const char *route_opts)
{
    char *conf = crashy_conf(sink_opts, route_opts);
    struct bd_test_daemon *d = bd_test_daemon_start(conf);

    free(conf);
    return d;
}

/* ---- core ------------------------------------------------------------------------ */

START_TEST(test_echo_in_runner)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\nisolation = process\n"
        "[route.all]\nmatch = *\nsink = e\npolicy = immediate\n");
    pid_t pid = bd_test_daemon_pid(d), runner = the_runner(d);
    char msg[32];

    for (int i = 0; i < 20; i++) {
        snprintf(msg, sizeof(msg), "hello-%d", i);
        bd_test_assert_load(d, i % 2 ? "odd" : "even", msg, BATCHD_OK);
    }
    bd_test_assert_load(d, "empty", "", BATCHD_OK);
    ck_assert_int_eq(bd_test_daemon_pid(d), pid);
    ck_assert_int_eq(the_runner(d), runner); /* never restarted */
    assert_log(d, "(isolation = process)");
    stop_and_check(d); /* frees d */
}
END_TEST

/* The call-th call dies as mode says; its item is retried on the next
 * runner and answered OK; log_says is how the log names the death. */
static void one_crash(const char *mode, const char *log_says)
{
    char opts[128], body[512], msg[32];
    struct bd_test_daemon *d;
    pid_t first, second;

    snprintf(opts, sizeof(opts), "crash = %s\nafter = 2\n", mode);
    d = start_crashy(opts, "");
    first = the_runner(d);
    bd_test_assert_load(d, "k", "one", BATCHD_OK);
    bd_test_assert_load(d, "k", "two", BATCHD_OK);
    ck_assert_int_eq(the_runner(d), first);
    /* Call 3 dies; attempt 2 goes to a fresh runner (its call 1). */
    ck_assert_int_eq(load(d, "k", "three", body, sizeof(body), NULL), BATCHD_OK);
    ck_assert_str_eq(body, "three");
    bd_test_daemon_assert_alive(d);
    assert_log(d, log_says);
    assert_log(d, "(crash 1 in a row)");
    assert_log(d, "started (after 1 crashes in a row)");
    second = the_runner(d);
    ck_assert_int_ne(second, first);
    ck_assert(!alive(first));
    for (int i = 0; i < 2; i++) {
        snprintf(msg, sizeof(msg), "after-%d", i);
        bd_test_assert_load(d, "k", msg, BATCHD_OK);
    }
    stop_and_check(d); /* frees d */
}

START_TEST(test_segv_retried_on_new_runner)
{
    one_crash("segv", "killed by signal 11");
}
END_TEST

START_TEST(test_abort_retried_on_new_runner)
{
    one_crash("abort", "killed by signal 6");
}
END_TEST

START_TEST(test_exit_retried_on_new_runner)
{
    one_crash("exit", "exited with code 3");
}
END_TEST

START_TEST(test_crash_loop_unhealthy_then_half_open)
{
    /* Two crashes in a row make it unhealthy; the second restart waits
     * 2 x 1.5 s, long enough to watch admission refuse at once. */
    struct bd_test_daemon *d = start_crashy(
        "crash = segv\nevery = yes\nunhealthy_after = 2\n"
        "restart_base_ms = 1500\nrestart_cap_ms = 3000\n",
        "max_attempts = 3\n");
    char body[512];
    double ms, end;
    int st;

    st = load(d, "k", "x", body, sizeof(body), NULL);
    ck_assert_msg(st == BATCHD_SINK_UNAVAILABLE, "status %s: %s",
                  batchd_status_name(st), body);
    ck_assert_msg(strstr(body, "unavailable") != NULL, "body: %s", body);
    /* Until the first restart, items fail fast; then the restarted runner
     * crashes again and the sink is unhealthy. */
    end = bd_test_now_ms() + bd_test_scaled(20000);
    do {
        ck_assert_msg(bd_test_now_ms() < end, "never unhealthy; last: %s", body);
        st = load(d, "k", "x", body, sizeof(body), NULL);
        ck_assert_int_eq(st, BATCHD_SINK_UNAVAILABLE);
    } while (strstr(body, "unhealthy") == NULL);
    assert_log(d, "unhealthy after 2 crashes in a row");
    /* Now refused at admission, without a sink call. */
    st = load(d, "k", "y", body, sizeof(body), &ms);
    ck_assert_int_eq(st, BATCHD_SINK_UNAVAILABLE);
    ck_assert_msg(strstr(body, "unhealthy") != NULL, "body: %s", body);
    ck_assert_msg(ms < 1000, "an unhealthy sink took %.0f ms to refuse", ms);
    ms = ping_ms(d);
    ck_assert_msg(ms < 100, "ping took %.0f ms", ms);
    bd_test_daemon_assert_alive(d);
    /* Half-open: the next runner answers INIT and clears the mark; the
     * next item crashes it again. */
    assert_log(d, "no longer unhealthy");
    st = load(d, "k", "z", body, sizeof(body), NULL);
    ck_assert_int_eq(st, BATCHD_SINK_UNAVAILABLE);
    assert_log(d, "(crash 3 in a row)");
    stop_and_check(d); /* frees d */
}
END_TEST

struct slot {
    int replies;
    int status;
    char body[256];
};

static void slot_cb(struct batchd_client *c, const struct batchd_reply *r,
                    void *arg)
{
    struct slot *s = arg;

    (void)c;
    s->replies++;
    s->status = r ? r->status : -1;
    if (r)
        snprintf(s->body, sizeof(s->body), "%.*s", (int)r->len,
                 r->data ? (const char *)r->data : "");
}

#define RESTART_N 50

/*
 * Issue 10.7: one crash, a 500 ms restart, max_attempts = 2. The items
 * of the crashed call (their first attempt) and every item that comes
 * while the runner is down, even a new LOAD sent right after the crash,
 * wait for the restart and go through: only the crashed call is an
 * attempt. Before: they were refused at once ("restarting in N ms") and
 * ran out of attempts without ever meeting a live runner.
 */
START_TEST(test_restart_burns_no_attempts)
{
    struct bd_test_daemon *d = start_crashy(
        "crash = segv\nafter = 1\nonce = @DIR@/crashed\n"
        "restart_base_ms = 500\nrestart_cap_ms = 500\n", "max_attempts = 2\n");
    static struct slot s[RESTART_N];
    struct batchd_client *c;
    char msg[RESTART_N][16], *log;
    double end;
    int done;

    bd_test_assert_load(d, "k", "warm", BATCHD_OK); /* call 1; call 2 dies */
    c = bd_test_connect(d);
    memset(s, 0, sizeof(s));
    for (int i = 0; i < RESTART_N; i++) {
        snprintf(msg[i], sizeof(msg[i]), "r-%d", i);
        ck_assert_int_eq(batchd_submit_load(c, "k", msg[i], strlen(msg[i]), NULL,
                                            slot_cb, &s[i], NULL),
                         BATCHD_CLIENT_OK);
    }
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
    assert_log(d, "(crash 1 in a row)");
    /* the runner is down for 500 ms: a new item waits for it */
    bd_test_assert_load(d, "k", "new", BATCHD_OK);
    end = bd_test_now_ms() + bd_test_scaled(30000);
    do {
        ck_assert_msg(bd_test_now_ms() < end, "replies missing");
        ck_assert_int_ge(batchd_process(c, 100), 0);
        done = 0;
        for (int i = 0; i < RESTART_N; i++)
            done += s[i].replies;
    } while (done < RESTART_N);
    for (int i = 0; i < RESTART_N; i++) {
        ck_assert_msg(s[i].replies == 1 && s[i].status == BATCHD_OK,
                      "item %d: %s '%s'", i, batchd_status_name(s[i].status),
                      s[i].body);
        ck_assert_str_eq(s[i].body, msg[i]);
    }
    batchd_free(c);
    log = bd_test_daemon_log(d);
    ck_assert_msg(strstr(log, "crash 2 in a row") == NULL, "crashed twice: %s", log);
    free(log);
    stop_and_check(d); /* frees d */
}
END_TEST

START_TEST(test_hang_killed_at_sink_timeout)
{
    struct bd_test_daemon *d = start_crashy("crash = hang\nafter = 1\n",
                                            "sink_timeout_ms = 500\n");
    struct batchd_client *c;
    struct slot s = {0};
    double end, worst = 0;
    pid_t first = the_runner(d);

    bd_test_assert_load(d, "k", "fine", BATCHD_OK);
    c = bd_test_connect(d);
    ck_assert_int_eq(batchd_submit_load(c, "k", "stuck", 5, NULL, slot_cb, &s,
                                        NULL), BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
    /* The runner hangs; the loop must not. */
    usleep(100000);
    for (int i = 0; i < 3; i++) {
        double ms = ping_ms(d);

        worst = ms > worst ? ms : worst;
        usleep(50000);
    }
    ck_assert_msg(worst < 100, "ping took %.0f ms while the runner hung", worst);
    end = bd_test_now_ms() + bd_test_scaled(20000);
    while (s.replies == 0) {
        ck_assert_msg(bd_test_now_ms() < end, "no reply for the hung item");
        ck_assert_int_ge(batchd_process(c, 100), 0);
    }
    ck_assert_int_eq(s.replies, 1);
    ck_assert_msg(s.status == BATCHD_OK || s.status == BATCHD_SINK_TIMEOUT,
                  "status %s: %s", batchd_status_name(s.status), s.body);
    if (s.status == BATCHD_OK)
        ck_assert_str_eq(s.body, "stuck");
    batchd_free(c);
    assert_log(d, "call for key k timed out");
    assert_log(d, "killed (SIGKILL) after its sink call timed out");
    ck_assert_int_ne(the_runner(d), first);
    bd_test_assert_load(d, "k", "later", BATCHD_OK);
    stop_and_check(d); /* frees d */
}
END_TEST

START_TEST(test_sigterm_leaves_no_runner)
{
    struct bd_test_daemon *d = start_crashy("", "");
    pid_t runner = the_runner(d);

    bd_test_assert_load(d, "k", "x", BATCHD_OK);
    stop_and_check(d); /* frees d */
    ck_assert(!alive(runner));
}
END_TEST

START_TEST(test_sigterm_with_hung_runner)
{
    /* No sink_timeout: shutdown_grace answers the item, the daemon exits 0
     * and the hung runner dies with it. */
    char *conf = crashy_conf("crash = hang\n", "sink_timeout_ms = 0\n"), *body;
    struct bd_test_daemon *d;
    struct batchd_client *c;
    struct slot s = {0};
    pid_t runner;
    double end;
    int code;

    ck_assert_int_ge(asprintf(&body, "[daemon]\nshutdown_grace_ms = 500\n%s",
                              conf), 0);
    d = bd_test_daemon_start(body);
    free(body);
    free(conf);
    runner = the_runner(d);
    c = bd_test_connect(d);
    ck_assert_int_eq(batchd_submit_load(c, "k", "stuck", 5, NULL, slot_cb, &s,
                                        NULL), BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
    assert_log(d, "crashy: call 1: hang");
    ck_assert_int_eq(kill(bd_test_daemon_pid(d), SIGTERM), 0);
    end = bd_test_now_ms() + bd_test_scaled(20000);
    while (s.replies == 0 && bd_test_now_ms() < end)
        if (batchd_process(c, 100) < 0)
            break;
    ck_assert_int_eq(s.replies, 1);
    batchd_free(c);
    code = bd_test_daemon_wait_exit(d, 20000);
    if (code != 0) {
        char *log = bd_test_daemon_log(d);

        ck_abort_msg("exit %d, want 0: %s", code, log);
    }
    end = bd_test_now_ms() + 2000;
    while (alive(runner) && bd_test_now_ms() < end)
        usleep(10000);
    ck_assert_msg(!alive(runner), "hung runner %d outlived the daemon",
                  (int)runner);
    bd_test_daemon_free(d);
}
END_TEST

/* An item waits for a restart only as long as delivery_timeout_ms (or
 * its deadline) allows: here the restart is 10 s away, the item has
 * 300 ms, so it is answered at once, naming the restart. */
START_TEST(test_restart_wait_bounded_by_delivery_timeout)
{
    struct bd_test_daemon *d = start_crashy(
        "crash = segv\nafter = 1\nonce = @DIR@/crashed\n"
        "restart_base_ms = 10000\nrestart_cap_ms = 10000\n",
        "delivery_timeout_ms = 300\n");
    char body[512];
    double ms;
    int st;

    bd_test_assert_load(d, "k", "warm", BATCHD_OK); /* call 1; call 2 dies */
    st = load(d, "k", "dies", body, sizeof(body), NULL);
    ck_assert_msg(st == BATCHD_SINK_UNAVAILABLE, "status %s: %s",
                  batchd_status_name(st), body);
    st = load(d, "k", "new", body, sizeof(body), &ms);
    ck_assert_msg(st == BATCHD_SINK_UNAVAILABLE, "status %s: %s",
                  batchd_status_name(st), body);
    ck_assert_msg(strstr(body, "no time left for attempt 1 (deadline or "
                         "delivery_timeout_ms)") != NULL &&
                  strstr(body, "restarting in") != NULL, "body: %s", body);
    ck_assert_msg(ms < 5000, "took %.0f ms", ms);
    stop_and_check(d); /* frees d */
}
END_TEST

/* A failed acquire in the runner reaches the daemon as such: retried,
 * then SINK_UNAVAILABLE with the sink's message (not RETRY_EXHAUSTED). */
START_TEST(test_acquire_failure_in_runner)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.r]\nplugin = @TSINKS@/record.so\nisolation = process\n"
        "ledger = @DIR@/ledger\nacquire_fail_first = 2\n"
        "[route.all]\nmatch = *\nsink = r\nmax_attempts = 2\n"
        "retry_base_ms = 10\n");
    char body[512];
    int st = load(d, "k", "x", body, sizeof(body), NULL);

    ck_assert_msg(st == BATCHD_SINK_UNAVAILABLE, "status %s: %s",
                  batchd_status_name(st), body);
    ck_assert_str_eq(body, "gave up after 2 attempts: sink r: acquire failed: "
                     "record sink: backend unavailable (acquire 2)");
    bd_test_assert_load(d, "k", "y", BATCHD_OK); /* acquire 3 works */
    stop_and_check(d); /* frees d */
}
END_TEST

/* SIGTERM while items wait for a runner's restart (10 s away): they are
 * answered, not flushed round and round, and the daemon exits 0. */
START_TEST(test_sigterm_while_restarting)
{
    struct bd_test_daemon *d = start_crashy(
        "crash = segv\nafter = 1\nonce = @DIR@/crashed\n"
        "restart_base_ms = 10000\nrestart_cap_ms = 10000\n", "");
    struct batchd_client *c;
    struct slot s = {0};
    double end;
    int code;

    bd_test_assert_load(d, "k", "warm", BATCHD_OK); /* call 1; call 2 dies */
    c = bd_test_connect(d);
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, slot_cb, &s, NULL),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
    assert_log(d, "(crash 1 in a row)");
    usleep(100000); /* its retry is back, waiting for the restart */
    ck_assert_int_eq(s.replies, 0);
    ck_assert_int_eq(kill(bd_test_daemon_pid(d), SIGTERM), 0);
    end = bd_test_now_ms() + bd_test_scaled(5000);
    while (s.replies == 0 && bd_test_now_ms() < end)
        if (batchd_process(c, 100) < 0)
            break;
    ck_assert_int_eq(s.replies, 1);
    ck_assert_msg(s.status == BATCHD_SINK_UNAVAILABLE ||
                  s.status == BATCHD_SHUTTING_DOWN, "status %s: %s",
                  batchd_status_name(s.status), s.body);
    batchd_free(c);
    code = bd_test_daemon_wait_exit(d, bd_test_scaled(8000));
    ck_assert_msg(code == 0, "exit %d, want 0", code);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------ */

START_TEST(test_leaking_runner_replaced)
{
    struct bd_test_daemon *d;
    pid_t first;
    char msg[32];

    /* 16 MiB kept per call, replaced above 96 MiB. */
    setenv("BATCHD_TEST_RUNNER_RSS_MB", "96", 1);
    d = start_crashy("crash = leak\nevery = yes\nleak_kb = 16384\n", "");
    unsetenv("BATCHD_TEST_RUNNER_RSS_MB");
    first = the_runner(d);
    for (int i = 0; i < 12; i++) {
        snprintf(msg, sizeof(msg), "leak-%d", i);
        bd_test_assert_load(d, "k", msg, BATCHD_OK);
        usleep(120000); /* the RSS is read at most every 100 ms */
    }
    assert_log(d, "over the 96 MiB limit: replaced (it exited with code 0)");
    ck_assert_int_ne(the_runner(d), first);
    ck_assert_msg(!log_has(d, "in a row)", 0), "a recycle counted as a crash");
    bd_test_daemon_assert_alive(d);
    stop_and_check(d); /* frees d */
}
END_TEST

#define BIG_N 2000

START_TEST(test_big_batches)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\nisolation = process\n"
        "[route.all]\nmatch = *\nsink = e\npolicy = duration\n"
        "max_items = 1000\nmax_bytes = 16M\nmax_delay_us = 20000\n");
    static struct slot s[BIG_N + 1];
    static char bufs[BIG_N][1024];
    const void *data[BIG_N];
    size_t lens[BIG_N];
    struct batchd_client *c = bd_test_connect(d);
    char *big = malloc(900 * 1024);
    double end;
    int done;

    ck_assert_ptr_nonnull(big);
    memset(s, 0, sizeof(s));
    for (int i = 0; i < BIG_N; i++) {
        memset(bufs[i], 'a' + i % 26, sizeof(bufs[i]));
        snprintf(bufs[i], 16, "%d:", i);
        data[i] = bufs[i];
        lens[i] = sizeof(bufs[i]);
    }
    for (int i = 0; i < 900 * 1024; i++)
        big[i] = (char)(i * 7);
    /* One item per request so each reply goes to its own slot. */
    for (int i = 0; i < BIG_N; i++)
        ck_assert_int_eq(batchd_submit_load(c, "many", data[i], lens[i], NULL,
                                            slot_cb, &s[i], NULL),
                         BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_submit_load(c, "big", big, 900 * 1024, NULL,
                                        slot_cb, &s[BIG_N], NULL),
                     BATCHD_CLIENT_OK);
    end = bd_test_now_ms() + bd_test_scaled(30000);
    do {
        ck_assert_msg(bd_test_now_ms() < end, "replies missing");
        ck_assert_int_ge(batchd_process(c, 100), 0);
        done = 0;
        for (int i = 0; i <= BIG_N; i++)
            done += s[i].replies;
    } while (done < BIG_N + 1);
    for (int i = 0; i <= BIG_N; i++)
        ck_assert_msg(s[i].replies == 1 && s[i].status == BATCHD_OK,
                      "item %d: %d replies, status %s", i, s[i].replies,
                      batchd_status_name(s[i].status));
    for (int i = 0; i < BIG_N; i++)
        ck_assert_msg(strncmp(s[i].body, bufs[i], 200) == 0, "item %d: wrong "
                      "payload back", i);
    batchd_free(c);
    /* The big one, checked whole through the blocking API. */
    {
        struct batchd_client *c2 = bd_test_connect(d);
        struct batchd_reply *r = NULL;

        ck_assert_int_eq(batchd_load(c2, "big", big, 900 * 1024, NULL,
                                     bd_test_scaled(30000), &r),
                         BATCHD_CLIENT_OK);
        ck_assert_int_eq(r->status, BATCHD_OK);
        ck_assert_uint_eq(r->len, 900 * 1024);
        ck_assert(memcmp(r->data, big, r->len) == 0);
        batchd_reply_free(r);
        batchd_free(c2);
    }
    free(big);
    stop_and_check(d); /* frees d */
}
END_TEST

START_TEST(test_nonblocking_plugin_in_runner)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.a]\nplugin = @TSINKS@/async.so\nisolation = process\n"
        "delay_ms = 5\n"
        "[route.all]\nmatch = *\nsink = a\npolicy = immediate\n");
    char msg[32];

    for (int i = 0; i < 10; i++) {
        snprintf(msg, sizeof(msg), "async-%d", i);
        bd_test_assert_load(d, "k", msg, BATCHD_OK);
    }
    stop_and_check(d); /* frees d */
}
END_TEST

START_TEST(test_two_sinks_two_runners)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.bad]\nplugin = @TSINKS@/crashy.so\nisolation = process\n"
        "crash = segv\nevery = yes\nrestart_base_ms = 10\n"
        "[sink.good]\nplugin = echo\nisolation = process\n"
        "[route.bad]\nmatch = bad*\nsink = bad\npolicy = immediate\n"
        "max_attempts = 2\nretry_base_ms = 10\n"
        "[route.good]\nmatch = *\nsink = good\npolicy = immediate\n");
    pid_t kids[MAX_KIDS];
    char body[512];
    int zombies;

    ck_assert_int_eq(children_of(bd_test_daemon_pid(d), kids, MAX_KIDS,
                                 &zombies), 2);
    ck_assert_int_eq(load(d, "bad1", "x", body, sizeof(body), NULL),
                     BATCHD_SINK_UNAVAILABLE);
    for (int i = 0; i < 5; i++)
        bd_test_assert_load(d, "good", "fine", BATCHD_OK);
    assert_log(d, "sink bad: sink runner");
    ck_assert_msg(!log_has(d, "sink good: sink runner", 0), "good sink crashed");
    stop_and_check(d); /* frees d */
}
END_TEST

#define CONC_N 200

START_TEST(test_key_concurrency_is_serialised)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.e]\nplugin = echo\nisolation = process\n"
        "[route.all]\nmatch = *\nsink = e\npolicy = immediate\n"
        "key_concurrency = 4\nmax_items = 3\n");
    static struct slot s[CONC_N];
    struct batchd_client *c = bd_test_connect(d);
    char msg[CONC_N][16];
    double end;
    int done;

    memset(s, 0, sizeof(s));
    for (int i = 0; i < CONC_N; i++) {
        snprintf(msg[i], sizeof(msg[i]), "c-%d", i);
        ck_assert_int_eq(batchd_submit_load(c, i % 3 ? "a" : "b", msg[i],
                                            strlen(msg[i]), NULL, slot_cb,
                                            &s[i], NULL), BATCHD_CLIENT_OK);
    }
    end = bd_test_now_ms() + bd_test_scaled(30000);
    do {
        ck_assert_msg(bd_test_now_ms() < end, "replies missing");
        ck_assert_int_ge(batchd_process(c, 100), 0);
        done = 0;
        for (int i = 0; i < CONC_N; i++)
            done += s[i].replies;
    } while (done < CONC_N);
    for (int i = 0; i < CONC_N; i++) {
        ck_assert_int_eq(s[i].status, BATCHD_OK);
        ck_assert_str_eq(s[i].body, msg[i]);
    }
    batchd_free(c);
    stop_and_check(d); /* frees d */
}
END_TEST

/* ---- malformed ------------------------------------------------------------------------ */

/* Start-up with body must fail: exit 1, the log holding want. */
static char *isolated_conf(const char *plugin, const char *extra)
{
    char *s;

    ck_assert_int_ge(asprintf(&s, "[sink.t]\nplugin = %s\nisolation = process\n"
                              "%s\n[route.all]\nmatch = *\nsink = t\n",
                              bd_test_tsink(plugin), extra), 0);
    return s;
}

START_TEST(test_init_failure_is_startup_error)
{
    char *conf = isolated_conf("fail_init", "");
    char want[4200];

    snprintf(want, sizeof(want), "sink t (%s): init failed: refusing to start "
             "(test sink)", bd_test_tsink("fail_init"));
    bd_test_expect_start_failure(conf, want);
    free(conf);
}
END_TEST

START_TEST(test_bad_plugins_same_words)
{
    char *conf, want[4200];

    conf = isolated_conf("bad_abi", "");
    snprintf(want, sizeof(want), "sink t (%s): ABI 999, daemon speaks 1 to 2",
             bd_test_tsink("bad_abi"));
    bd_test_expect_start_failure(conf, want);
    free(conf);
    conf = isolated_conf("no_entry", "");
    bd_test_expect_start_failure(conf, "no symbol batchd_sink_entry; not a batchd sink");
    free(conf);
    conf = isolated_conf("crashy", "bogus = 1\n");
    bd_test_expect_start_failure(conf, "unknown option 'bogus'");
    free(conf);
    conf = isolated_conf("crashy", "crash = sometimes\n");
    bd_test_expect_start_failure(conf, "init failed: crashy sink: bad crash 'sometimes'");
    free(conf);
}
END_TEST

START_TEST(test_runner_breaks_the_wire)
{
    struct bd_test_daemon *d = start_crashy("crash = garbage\nafter = 1\n", "");
    pid_t first = the_runner(d);

    bd_test_assert_load(d, "k", "one", BATCHD_OK);
    bd_test_assert_load(d, "k", "two", BATCHD_OK); /* retried on a new runner */
    assert_log(d, "bad frame: frame length 0 or over the limit");
    ck_assert_int_ne(the_runner(d), first);
    bd_test_daemon_assert_alive(d);
    stop_and_check(d); /* frees d */
}
END_TEST

/* Start `batchd --sink-runner 3 crashy NAME` on a socketpair; *fd is ours. */
static pid_t spawn_runner(int *fd)
{
    int sv[2];
    pid_t pid;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);

        dup2(null, 2);
        dup2(sv[1], BD_RUNNER_FD);
        execl(bd_test_batchd_bin(), "batchd", "--sink-runner", "3",
              bd_test_tsink("crashy"), "t", (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    *fd = sv[0];
    return pid;
}

static int wait_code(pid_t pid)
{
    double end = bd_test_now_ms() + bd_test_scaled(10000);
    int st;

    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (bd_test_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(5000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_all(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(bd_test_raw_write(fd, p, n), 0);
}

/* A runner fed frames: it must exit 1 (never crash, never hang). */
static void feed_runner(const void *a, size_t alen, const void *b, size_t blen)
{
    int fd, code;
    pid_t pid = spawn_runner(&fd);

    if (alen)
        write_all(fd, a, alen);
    if (blen)
        write_all(fd, b, blen);
    shutdown(fd, SHUT_WR);
    code = wait_code(pid);
    close(fd);
    ck_assert_msg(code == 1, "runner exited %d, want 1", code);
}

START_TEST(test_runner_refuses_bad_frames)
{
    static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t zero[4] = {0, 0, 0, 0};
    static const uint8_t deep[] = {0, 0, 0, 12, 0x91, 0x91, 0x91, 0x91, 0x91,
                                   0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0xc0};
    static const uint8_t lying[] = {0, 0, 0, 6, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    static const uint8_t not_init[] = {0, 0, 0, 4, 0x93, 1, 2, 3};
    static const uint8_t short_body[] = {0, 0, 0, 9, 0x92, 0x80};
    static const uint8_t bad_batch[] = {0, 0, 0, 3, 0x92, 1, 2};
    struct bd_buf init;
    const char *argv[] = {bd_test_batchd_bin(), "--sink-runner", NULL};
    int fd, code;
    pid_t pid;

    code = bd_test_run(argv, bd_test_scaled(10000), NULL, NULL);
    ck_assert_int_eq(code, 2);
    feed_runner(huge, sizeof(huge), NULL, 0);
    feed_runner(zero, sizeof(zero), NULL, 0);
    feed_runner(deep, sizeof(deep), NULL, 0);
    feed_runner(lying, sizeof(lying), NULL, 0);
    feed_runner(not_init, sizeof(not_init), NULL, 0);
    feed_runner(short_body, sizeof(short_body), NULL, 0);
    /* A good INIT, then a BATCH that does not parse. */
    bd_buf_init(&init);
    ck_assert_int_eq(bd_runner_encode_init(&init, NULL, 0, 0), 0);
    feed_runner(bd_buf_head(&init), init.len, bad_batch, sizeof(bad_batch));
    /* A good INIT, then EOF: a clean stop (the plugin's shutdown, exit 0). */
    pid = spawn_runner(&fd);
    write_all(fd, bd_buf_head(&init), init.len);
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(wait_code(pid), 0);
    close(fd);
    bd_buf_destroy(&init);
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------- */

static Suite *isolate_suite(void)
{
    Suite *s = suite_create("isolate");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *malformed = tcase_create("malformed");

    tcase_set_timeout(core, 120);
    tcase_set_timeout(limits, 120);
    tcase_set_timeout(malformed, 120);
    bd_test_add(core, test_echo_in_runner);
    bd_test_add(core, test_segv_retried_on_new_runner);
    bd_test_add(core, test_abort_retried_on_new_runner);
    bd_test_add(core, test_exit_retried_on_new_runner);
    bd_test_add(core, test_crash_loop_unhealthy_then_half_open);
    bd_test_add(core, test_restart_burns_no_attempts);
    bd_test_add(core, test_sigterm_while_restarting);
    bd_test_add(core, test_acquire_failure_in_runner);
    bd_test_add(core, test_restart_wait_bounded_by_delivery_timeout);
    bd_test_add(core, test_hang_killed_at_sink_timeout);
    bd_test_add(core, test_sigterm_leaves_no_runner);
    bd_test_add(core, test_sigterm_with_hung_runner);
    bd_test_add(limits, test_leaking_runner_replaced);
    bd_test_add(limits, test_big_batches);
    bd_test_add(limits, test_nonblocking_plugin_in_runner);
    bd_test_add(limits, test_two_sinks_two_runners);
    bd_test_add(limits, test_key_concurrency_is_serialised);
    bd_test_add(malformed, test_init_failure_is_startup_error);
    bd_test_add(malformed, test_bad_plugins_same_words);
    bd_test_add(malformed, test_runner_breaks_the_wire);
    bd_test_add(malformed, test_runner_refuses_bad_frames);
    suite_add_tcase(s, core);
    suite_add_tcase(s, limits);
    suite_add_tcase(s, malformed);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(isolate_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
