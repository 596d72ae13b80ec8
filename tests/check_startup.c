/*
 * check_startup.c - starting and stopping the daemon: the command line,
 * config errors, sink loading errors, the socket file, signals.
 *
 * "core":      signals, the socket file (mode, stale, in use), --version,
 *              --check-config on a good file.
 * "malformed": bad config files and broken sinks (tests/sinks/): exit 1
 *              with a one-line reason naming the file or the sink.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "helpers.h"

#define ECHO_ROUTE \
    "[sink.e]\nplugin = echo\n\n" \
    "[route.all]\nmatch = *\nsink = e\npolicy = immediate\n"

#define EXIT_TIMEOUT_MS 10000

/*
 * Start a daemon on body (plus extra_argv) that must fail: exit 1 within
 * 10 s, its log naming want1 and want2 (either may be NULL). Returns the
 * log (free()); the daemon is freed.
 */
static char *expect_startup_failure(const char *body, const char *const *extra_argv,
                                    const char *want1, const char *want2)
{
    struct bd_test_daemon *d = bd_test_daemon_new(body);
    char *log;
    int code;

    bd_test_daemon_spawn(d, extra_argv);
    code = bd_test_daemon_wait_exit(d, EXIT_TIMEOUT_MS);
    log = bd_test_daemon_log(d);
    ck_assert_msg(code != -1, "batchd kept running on a bad start (log: %s)", log);
    ck_assert_msg(code == 1, "batchd exited with %d, want 1 (log: %s)", code, log);
    ck_assert_msg(log[0] != '\0', "batchd said nothing on stderr");
    ck_assert_msg(want1 == NULL || strstr(log, want1) != NULL,
                  "stderr does not mention '%s': %s", want1, log);
    ck_assert_msg(want2 == NULL || strstr(log, want2) != NULL,
                  "stderr does not mention '%s': %s", want2, log);
    bd_test_daemon_free(d);
    return log;
}

/* A config with one sink whose plugin is the test sink name. */
static char *tsink_conf(const char *name, const char *extra)
{
    char *s;

    ck_assert_int_ge(asprintf(&s, "[sink.t]\nplugin = %s\n%s\n"
                              "[route.all]\nmatch = *\nsink = t\n",
                              bd_test_tsink(name), extra), 0);
    return s;
}

/* Bind a Unix socket at path and close it: a stale socket file. */
static void make_stale_socket(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s",
                  path, strerror(errno));
    close(fd);
}

/* ---- signals ------------------------------------------------------------------ */

static void stop_with(int sig)
{
    struct bd_test_daemon *d = bd_test_daemon_start(ECHO_ROUTE);
    struct batchd_client *idle = bd_test_connect(d);     /* must not hold it up */
    int code;

    bd_test_assert_load(d, "sig", "before", BATCHD_OK);
    code = bd_test_daemon_kill(d, sig);
    ck_assert_msg(code == 0, "exit %d after signal %d (log in the test output)", code, sig);
    batchd_free(idle);
    bd_test_daemon_free(d);
}

START_TEST(test_sigterm_exit_0)
{
    stop_with(SIGTERM);
}
END_TEST

START_TEST(test_sigint_exit_0)
{
    stop_with(SIGINT);
}
END_TEST

/* ---- the socket file ----------------------------------------------------------- */

static void check_mode(const char *mode_text, mode_t want)
{
    char body[512];
    struct bd_test_daemon *d;
    struct stat st;

    snprintf(body, sizeof(body), "[daemon]\nsocket_mode = %s\n\n" ECHO_ROUTE, mode_text);
    d = bd_test_daemon_start(body);
    ck_assert_int_eq(stat(bd_test_daemon_socket(d), &st), 0);
    ck_assert_msg(S_ISSOCK(st.st_mode), "not a socket");
    ck_assert_msg((st.st_mode & 07777) == want, "socket mode %04o, want %04o",
                  (unsigned)(st.st_mode & 07777), (unsigned)want);
    bd_test_daemon_stop(d);
}

START_TEST(test_socket_mode)
{
    check_mode("0600", 0600);
    check_mode("0660", 0660);
}
END_TEST

START_TEST(test_stale_socket_replaced)
{
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);

    make_stale_socket(bd_test_daemon_socket(d));
    bd_test_daemon_spawn(d, NULL);
    bd_test_daemon_wait_ready(d);
    bd_test_assert_load(d, "stale", "replaced", BATCHD_OK);
    bd_test_daemon_stop(d);
}
END_TEST

START_TEST(test_socket_in_use)
{
    struct bd_test_daemon *a = bd_test_daemon_start(ECHO_ROUTE);
    const char *argv[] = {"--socket", bd_test_daemon_socket(a), NULL};
    char *log = expect_startup_failure(ECHO_ROUTE, argv, NULL, NULL);
    struct stat st;

    ck_assert_msg(strstr(log, "in use") || strstr(log, "another"),
                  "stderr does not say the socket is in use: %s", log);
    free(log);
    /* The first daemon keeps its socket. */
    ck_assert_int_eq(stat(bd_test_daemon_socket(a), &st), 0);
    bd_test_assert_load(a, "first", "still-mine", BATCHD_OK);
    bd_test_daemon_stop(a);
}
END_TEST

START_TEST(test_regular_file_at_socket_path)
{
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);
    const char *path = bd_test_daemon_socket(d);
    FILE *f = fopen(path, "w");
    struct stat st;
    char *log, *text;
    int code;

    ck_assert_ptr_nonnull(f);
    fputs("precious data\n", f);
    fclose(f);
    bd_test_daemon_spawn(d, NULL);
    code = bd_test_daemon_wait_exit(d, EXIT_TIMEOUT_MS);
    log = bd_test_daemon_log(d);
    ck_assert_msg(code == 1, "exit %d with a regular file at the socket path: %s", code, log);
    ck_assert_msg(strstr(log, "s.sock") != NULL, "stderr does not name the path: %s", log);
    /* The file is not the daemon's to remove. */
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg(S_ISREG(st.st_mode), "the regular file was replaced");
    text = bd_test_read_file(path, NULL);
    ck_assert_str_eq(text, "precious data\n");
    free(text);
    free(log);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- command line ------------------------------------------------------------------ */

START_TEST(test_version)
{
    const char *argv[] = {bd_test_batchd_bin(), "--version", NULL};
    char *out, *err;
    int code = bd_test_run(argv, 10000, &out, &err);

    ck_assert_msg(code == 0, "--version: exit %d: %s", code, err);
    ck_assert_msg(strstr(out, BATCHD_VERSION) || strstr(err, BATCHD_VERSION),
                  "--version printed '%s'", out);
    free(out);
    free(err);
}
END_TEST

static int check_config(struct bd_test_daemon *d, char **out, char **err)
{
    const char *argv[] = {bd_test_batchd_bin(), "-c", bd_test_daemon_conf(d),
                          "--sink-dir", bd_test_sink_dir(), "--check-config", NULL};

    return bd_test_run(argv, 10000, out, err);
}

START_TEST(test_check_config_good)
{
    struct bd_test_daemon *d = bd_test_daemon_new(
        ECHO_ROUTE "max_items = 17\nmax_delay_us = 2500\n");
    char *out, *err;
    int code = check_config(d, &out, &err);

    ck_assert_msg(code == 0, "--check-config on a good file: exit %d: %s", code, err);
    /* The effective config: our values and the defaults we did not set. */
    ck_assert_msg(strstr(out, "17") && strstr(out, "max_items") && strstr(out, "route.all"),
                  "--check-config printed '%s'", out);
    ck_assert_msg(strstr(out, "max_queued_items") != NULL,
                  "--check-config does not print defaults: '%s'", out);
    /* It validates only: nothing listens. */
    ck_assert_int_ne(access(bd_test_daemon_socket(d), F_OK), 0);
    free(out);
    free(err);
    bd_test_daemon_free(d);
}
END_TEST

START_TEST(test_check_config_bad)
{
    struct bd_test_daemon *d = bd_test_daemon_new(
        ECHO_ROUTE "max_items = many\ncolour = blue\n");
    char *out, *err, want1[512], want2[512];
    int code = check_config(d, &out, &err);

    ck_assert_msg(code == 1, "--check-config on a bad file: exit %d", code);
    snprintf(want1, sizeof(want1), "%s:%d:", bd_test_daemon_conf(d),
             bd_test_daemon_conf_line(d, "max_items = many"));
    snprintf(want2, sizeof(want2), "%s:%d:", bd_test_daemon_conf(d),
             bd_test_daemon_conf_line(d, "colour"));
    ck_assert_msg(strstr(err, want1) || strstr(out, want1), "no '%s' in: %s%s",
                  want1, err, out);
    ck_assert_msg(strstr(err, want2) || strstr(out, want2), "no '%s' in: %s%s",
                  want2, err, out);
    free(out);
    free(err);
    bd_test_daemon_free(d);
}
END_TEST

START_TEST(test_log_level_flag)
{
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);
    const char *argv[] = {"--log-level", "debug", NULL};

    bd_test_daemon_spawn(d, argv);
    bd_test_daemon_wait_ready(d);
    bd_test_assert_load(d, "log", "debug", BATCHD_OK);
    bd_test_daemon_stop(d);
}
END_TEST

/* ---- bad configs ---------------------------------------------------------------------- */

START_TEST(test_unknown_config_key)
{
    struct bd_test_daemon *probe = bd_test_daemon_new(
        "[daemon]\nmax_conns = 10\nbogus_option = 1\n\n" ECHO_ROUTE);
    char want[512];
    char *log;

    /* The same text again in a daemon of its own: compute the line first. */
    snprintf(want, sizeof(want), "batchd.conf:%d",
             bd_test_daemon_conf_line(probe, "bogus_option"));
    bd_test_daemon_free(probe);
    log = expect_startup_failure("[daemon]\nmax_conns = 10\nbogus_option = 1\n\n" ECHO_ROUTE,
                                 NULL, want, "bogus_option");
    free(log);
}
END_TEST

START_TEST(test_bad_log_level)
{
    const char *argv[] = {"--log-level", "loud", NULL};

    free(expect_startup_failure(ECHO_ROUTE, argv, "loud", NULL));
}
END_TEST

START_TEST(test_missing_config_file)
{
    const char *argv[] = {bd_test_batchd_bin(), "-c", "/nonexistent/batchd.conf", NULL};
    char *out, *err;
    int code = bd_test_run(argv, 10000, &out, &err);

    ck_assert_msg(code == 1, "missing config: exit %d", code);
    ck_assert_msg(strstr(err, "/nonexistent/batchd.conf") != NULL,
                  "stderr does not name the file: %s", err);
    free(out);
    free(err);
}
END_TEST

START_TEST(test_route_to_unknown_sink)
{
    free(expect_startup_failure("[sink.e]\nplugin = echo\n\n"
                                "[route.all]\nmatch = *\nsink = nosuch\n",
                                NULL, "nosuch", NULL));
}
END_TEST

/* ---- broken sinks ------------------------------------------------------------------------ */

START_TEST(test_sink_bad_abi)
{
    char *conf = tsink_conf("bad_abi", "");
    char path[4096];
    char *log;

    snprintf(path, sizeof(path), "%s", bd_test_tsink("bad_abi"));
    log = expect_startup_failure(conf, NULL, path, "ABI");
    ck_assert_msg(strstr(log, "999") != NULL, "stderr does not give the sink's ABI: %s", log);
    ck_assert_msg(strstr(log, "daemon bug") == NULL, "init was called: %s", log);
    free(log);
    free(conf);
}
END_TEST

START_TEST(test_sink_no_entry)
{
    char *conf = tsink_conf("no_entry", "");
    char path[4096];

    snprintf(path, sizeof(path), "%s", bd_test_tsink("no_entry"));
    free(expect_startup_failure(conf, NULL, path, "batchd_sink_entry"));
    free(conf);
}
END_TEST

START_TEST(test_sink_fail_init)
{
    char *conf = tsink_conf("fail_init", "");

    free(expect_startup_failure(conf, NULL, "refusing to start (test sink)", NULL));
    free(conf);
}
END_TEST

START_TEST(test_sink_missing_process)
{
    char *conf = tsink_conf("missing_process", "");
    char *log = expect_startup_failure(conf, NULL, "process", NULL);

    ck_assert_msg(strstr(log, "daemon bug") == NULL, "init was called: %s", log);
    free(log);
    free(conf);
}
END_TEST

START_TEST(test_sink_file_missing)
{
    free(expect_startup_failure("[sink.x]\nplugin = /nonexistent/sink.so\n\n"
                                "[route.all]\nmatch = *\nsink = x\n",
                                NULL, "/nonexistent/sink.so", NULL));
}
END_TEST

START_TEST(test_sink_unknown_option)
{
    char *conf = tsink_conf("record", "ledger = @DIR@/ledger\nflavour = mint\n");

    free(expect_startup_failure(conf, NULL, "flavour", NULL));
    free(conf);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------------ */

static Suite *startup_suite(void)
{
    Suite *s = suite_create("startup");
    TCase *core = tcase_create("core");
    TCase *malformed = tcase_create("malformed");

    tcase_set_timeout(core, 40);
    bd_test_add(core, test_sigterm_exit_0);
    bd_test_add(core, test_sigint_exit_0);
    bd_test_add(core, test_socket_mode);
    bd_test_add(core, test_stale_socket_replaced);
    bd_test_add(core, test_socket_in_use);
    bd_test_add(core, test_regular_file_at_socket_path);
    bd_test_add(core, test_version);
    bd_test_add(core, test_check_config_good);
    bd_test_add(core, test_log_level_flag);
    suite_add_tcase(s, core);

    tcase_set_timeout(malformed, 40);
    bd_test_add(malformed, test_check_config_bad);
    bd_test_add(malformed, test_unknown_config_key);
    bd_test_add(malformed, test_bad_log_level);
    bd_test_add(malformed, test_missing_config_file);
    bd_test_add(malformed, test_route_to_unknown_sink);
    bd_test_add(malformed, test_sink_bad_abi);
    bd_test_add(malformed, test_sink_no_entry);
    bd_test_add(malformed, test_sink_fail_init);
    bd_test_add(malformed, test_sink_missing_process);
    bd_test_add(malformed, test_sink_file_missing);
    bd_test_add(malformed, test_sink_unknown_option);
    suite_add_tcase(s, malformed);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(startup_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
