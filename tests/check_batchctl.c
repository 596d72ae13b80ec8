/*
 * check_batchctl.c - the real batchctl binary against a real daemon:
 * --version, short usage errors, the newline after load on a terminal
 * (a real pty), stats and health as text and JSON, each sink's state in
 * health, control bytes in keys escaped, top, and the bash completion.
 */
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "helpers.h"

#define ECHO_ROUTE \
    "[sink.e]\nplugin = echo\n\n" \
    "[route.all]\nmatch = *\nsink = e\npolicy = immediate\n"

#define RUN_MS 20000

/* batchctl -s <daemon> args...; returns the exit code. */
static int ctl(struct bd_test_daemon *d, const char *const *args, char **out,
               char **err)
{
    const char *argv[32];
    int n = 0;

    argv[n++] = bd_test_batchctl_bin();
    if (d != NULL) {
        argv[n++] = "-s";
        argv[n++] = bd_test_daemon_socket(d);
    }
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return bd_test_run(argv, RUN_MS, out, err);
}

static int count_lines(const char *s)
{
    int n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(test_version)
{
    static const char *const longv[] = {"--version", NULL};
    static const char *const shortv[] = {"-V", NULL};
    char *out, *err;

    ck_assert_int_eq(ctl(NULL, longv, &out, &err), 0);
    ck_assert_str_eq(out, "batchctl " BATCHD_VERSION "\n");
    free(out);
    free(err);
    ck_assert_int_eq(ctl(NULL, shortv, &out, &err), 0);
    ck_assert_str_eq(out, "batchctl " BATCHD_VERSION "\n");
    free(out);
    free(err);
}
END_TEST

/* A usage error is one line saying what, and one pointing at --help:
 * never the whole help text, which would scroll the error away. */
START_TEST(test_usage_error_is_short)
{
    static const char *const cases[][4] = {
        {"frobnicate", NULL},
        {"stats", "--bogus", NULL},
        {"-Z", "ping", NULL},
        {"load", NULL},
        {"top", "-n", "x", NULL},
        {NULL},
    };
    char *out, *err;

    for (int i = 0; cases[i][0] != NULL; i++) {
        ck_assert_int_eq(ctl(NULL, cases[i], &out, &err), 2);
        ck_assert_msg(count_lines(err) == 2, "%s: stderr: %s", cases[i][0], err);
        ck_assert_msg(strstr(err, "batchctl --help") != NULL, "no hint: %s", err);
        ck_assert_msg(strstr(err, "commands:") == NULL, "whole help: %s", err);
        ck_assert_str_eq(out, "");
        free(out);
        free(err);
    }
}
END_TEST

/* Run batchctl load with its stdout on a pty; returns what the terminal
 * got. */
static char *load_on_pty(struct bd_test_daemon *d, const char *data)
{
    static char got[256];
    size_t have = 0;
    int master;
    ssize_t n;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl(bd_test_batchctl_bin(), "batchctl", "-s", bd_test_daemon_socket(d),
              "load", "k", data, (char *)NULL);
        _exit(127);
    }
    /* Read until the child closes the terminal (EIO on Linux). */
    while (have < sizeof(got) - 1 &&
           (n = read(master, got + have, sizeof(got) - 1 - have)) > 0)
        have += (size_t)n;
    got[have] = '\0';
    close(master);
    ck_assert_int_eq(bd_test_wait_pid(pid, RUN_MS), 0);
    return got;
}

/* load writes the payload as it is into a pipe (scripts get the exact
 * bytes), and ends the line on a terminal (the shell prompt does not
 * start after it). */
START_TEST(test_load_newline_on_terminal)
{
    static const char *const load[] = {"load", "k", "hello", NULL};
    struct bd_test_daemon *d = bd_test_daemon_start(ECHO_ROUTE);
    char *out, *err;

    ck_assert_int_eq(ctl(d, load, &out, &err), 0);
    ck_assert_str_eq(out, "hello");
    free(out);
    free(err);
    /* The pty turns "\n" into "\r\n". */
    ck_assert_str_eq(load_on_pty(d, "hello"), "hello\r\n");
    ck_assert_str_eq(load_on_pty(d, "line\n"), "line\r\n");
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_stats_and_health_formats)
{
    static const char *const stats[] = {"stats", NULL};
    static const char *const stats_json[] = {"stats", "--json", NULL};
    static const char *const health[] = {"health", NULL};
    static const char *const health_json[] = {"health", "--json", NULL};
    struct bd_test_daemon *d = bd_test_daemon_start(ECHO_ROUTE);
    char *out, *err;

    bd_test_assert_load(d, "k", "v", BATCHD_OK);
    ck_assert_int_eq(ctl(d, stats, &out, &err), 0);
    ck_assert_msg(strncmp(out, "version ", 8) == 0 && strstr(out, "\nitems_in 1\n"),
                  "stats text: %s", out);
    free(out);
    free(err);
    ck_assert_int_eq(ctl(d, stats_json, &out, &err), 0);
    ck_assert_msg(out[0] == '{' && strstr(out, "\"items_in\":1,"), "stats json: %s", out);
    free(out);
    free(err);
    ck_assert_int_eq(ctl(d, health, &out, &err), 0);
    ck_assert_msg(strncmp(out, "status ok\n", 10) == 0 &&
                  strstr(out, "\nsink e plugin=echo state=ok\n"), "health text: %s", out);
    free(out);
    free(err);
    ck_assert_int_eq(ctl(d, health_json, &out, &err), 0);
    ck_assert_msg(strncmp(out, "{\"status\":\"ok\",", 15) == 0 &&
                  strstr(out, "\"sinks\":{\"e\":{\"plugin\":\"echo\",\"state\":\"ok\"}}"),
                  "health json: %s", out);
    free(out);
    free(err);
    bd_test_daemon_stop(d);
}
END_TEST

/* An isolated sink that crashed unhealthy_after times shows as
 * unhealthy in health (its items are refused SINK_UNAVAILABLE). */
START_TEST(test_health_shows_unhealthy_sink)
{
    static const char *const health[] = {"health", NULL};
    char body[600];
    struct bd_test_daemon *d;
    char *out = NULL, *err = NULL;
    double end;

    snprintf(body, sizeof(body),
             "[sink.bad]\nplugin = %s\nisolation = process\ncrash = segv\n"
             "every = yes\nunhealthy_after = 1\nrestart_base_ms = 600000\n"
             "restart_cap_ms = 600000\n\n"
             "[sink.e]\nplugin = echo\n\n"
             "[route.bad]\nmatch = bad.*\nsink = bad\npolicy = immediate\n"
             "max_attempts = 1\n\n"
             "[route.all]\nmatch = *\nsink = e\npolicy = immediate\n",
             bd_test_tsink("crashy"));
    d = bd_test_daemon_start(body);
    bd_test_assert_load(d, "bad.1", "x", BATCHD_SINK_UNAVAILABLE);
    end = bd_test_now_ms() + bd_test_scaled(10000);
    do {
        free(out);
        free(err);
        ck_assert_int_eq(ctl(d, health, &out, &err), 0);
    } while (strstr(out, "state=unhealthy") == NULL && bd_test_now_ms() < end &&
             usleep(50000) == 0);
    ck_assert_msg(strstr(out, "\nsink bad plugin=") && strstr(out, " state=unhealthy\n") &&
                  strstr(out, "\nsink e plugin=echo state=ok\n"), "health: %s", out);
    free(out);
    free(err);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    bd_test_daemon_free(d);
}
END_TEST

/* Keys are any UTF-8: an escape sequence or a newline in one must not
 * reach the terminal or split the stats line. */
START_TEST(test_key_control_bytes_escaped)
{
    static const char *const stats[] = {"stats", NULL};
    struct bd_test_daemon *d = bd_test_daemon_start(ECHO_ROUTE);
    char *out, *err;

    bd_test_assert_load(d, "a\x1b[2Jb\nc d", "v", BATCHD_OK);
    ck_assert_int_eq(ctl(d, stats, &out, &err), 0);
    ck_assert_msg(strstr(out, "\nkey a\\x1b[2Jb\\x0ac\\x20d route=all ") != NULL,
                  "stats: %s", out);
    ck_assert_msg(strchr(out, '\x1b') == NULL, "an ESC byte reached stdout");
    free(out);
    free(err);
    bd_test_daemon_stop(d);
}
END_TEST

/* top: frames with per-route rows; rates from two samples while a real
 * load runs, per route too, with the route's queue-wait percentiles. */
START_TEST(test_top)
{
    static const char *const once[] = {"top", "--once", "-i", "100", NULL};
    static const char *const frames[] = {"top", "-n", "4", "-i", "250", NULL};
    struct bd_test_daemon *d = bd_test_daemon_start(ECHO_ROUTE);
    char log[512], *out, *err, *p;
    const char *bench[] = {bd_test_batchctl_bin(), "-s", bd_test_daemon_socket(d),
                           "bench", "-c", "1", "-d", "8", "-n", "100000000", NULL};
    long best = 0, route_best = 0;
    int waits = 0;
    pid_t pid;

    bd_test_assert_load(d, "k1", "v", BATCHD_OK);
    ck_assert_int_eq(ctl(d, once, &out, &err), 0);
    ck_assert_msg(count_lines(out) == 5 && strstr(out, "\nROUTE ") &&
                  strstr(out, " WAIT_P99\n") && strstr(out, "\nall "),
                  "top --once: %s", out);
    free(out);
    free(err);

    snprintf(log, sizeof(log), "%s", bd_test_daemon_path(d, "bench.log"));
    pid = bd_test_spawn(bench, log);
    ck_assert_int_eq(ctl(d, frames, &out, &err), 0);
    kill(pid, SIGTERM);
    bd_test_wait_pid(pid, RUN_MS);
    /* Four frames, and items flowed in at least one of them. */
    for (p = out; (p = strstr(p, "\nin ")) != NULL; p++)
        if (atol(p + 4) > best)
            best = atol(p + 4);
    /* Route rows: OUT/S, then a p50 and a p99 ("<Nus") once items went. */
    for (p = out; (p = strstr(p, "\nall ")) != NULL; p++) {
        char p50[24], p99[24];
        long rate, q, b, in, k;

        ck_assert_int_eq(sscanf(p + 5, "%ld %ld %ld %ld %ld %23s %23s", &rate,
                                &q, &b, &in, &k, p50, p99), 7);
        if (rate > route_best)
            route_best = rate;
        waits += p50[0] == '<' && p99[0] == '<';
    }
    ck_assert_msg(count_lines(out) == 20, "want 4 frames: %s", out);
    ck_assert_msg(best > 0, "no items/s while bench ran: %s", out);
    ck_assert_msg(route_best > 0, "no route items/s while bench ran: %s", out);
    ck_assert_msg(waits > 0, "no route queue-wait percentiles: %s", out);
    free(out);
    free(err);
    bd_test_daemon_stop(d);
}
END_TEST

/* The bash completion completes commands and their options. */
static char *complete(const char *line_words, int cword)
{
    char script[1024], *out, *err;
    const char *argv[] = {"bash", "--norc", "-c", script, NULL};

    snprintf(script, sizeof(script),
             "source '%s/client/batchctl.bash' && COMP_WORDS=(%s) && "
             "COMP_CWORD=%d && _batchctl && echo \"${COMPREPLY[*]}\"",
             bd_test_src_dir(), line_words, cword);
    ck_assert_int_eq(bd_test_run(argv, RUN_MS, &out, &err), 0);
    free(err);
    return out;
}

START_TEST(test_bash_completion)
{
    char *s;

    s = complete("batchctl he", 1);
    ck_assert_str_eq(s, "health\n");
    free(s);
    s = complete("batchctl -s /x/y t", 3);
    ck_assert_str_eq(s, "top\n");
    free(s);
    s = complete("batchctl stats --", 2);
    ck_assert_str_eq(s, "--json\n");
    free(s);
    s = complete("batchctl --v", 1);
    ck_assert_str_eq(s, "--version\n");
    free(s);
}
END_TEST

static Suite *batchctl_suite(void)
{
    Suite *s = suite_create("batchctl");
    TCase *tc = tcase_create("cli");

    tcase_set_timeout(tc, 90);
    bd_test_add(tc, test_version);
    bd_test_add(tc, test_usage_error_is_short);
    bd_test_add(tc, test_load_newline_on_terminal);
    bd_test_add(tc, test_stats_and_health_formats);
    bd_test_add(tc, test_health_shows_unhealthy_sink);
    bd_test_add(tc, test_key_control_bytes_escaped);
    bd_test_add(tc, test_top);
    bd_test_add(tc, test_bash_completion);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(batchctl_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
