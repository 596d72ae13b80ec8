/*
 * check_ops.c - the daemon as an operator meets it: log lines under
 * journald and on a plain stream, the socket named under socket
 * activation, start-up hints (missing socket directory, sinks in a build
 * tree), and conf/batchd.conf against the option table
 * (batchd --dump-options).
 *
 * "logs":   real daemons with stderr on a file, JOURNAL_STREAM set to
 *           that file's dev:ino (journald's contract) or not.
 * "config": --check-config, --dump-options and the sample file.
 */
#include <ctype.h>
#include <poll.h>
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

/* Point JOURNAL_STREAM at <dir>/stderr.log, the file the daemon's stderr
 * will be (the helper truncates it in place, so its inode stays).
 * bogus: name another inode, as when the variable was inherited. */
static void set_journal_stream(struct bd_test_daemon *d, int bogus)
{
    const char *path = bd_test_daemon_path(d, "stderr.log");
    FILE *f = fopen(path, "w");
    struct stat st;
    char v[64];

    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(stat(path, &st), 0);
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (bogus ? 1 : 0));
    ck_assert_int_eq(setenv("JOURNAL_STREAM", v, 1), 0);
}

/* Assert that every line of log passes ok(), naming the first that
 * does not. */
static void assert_lines_start(const char *log, int (*ok)(const char *line))
{
    const char *p = log;
    int n = 0;

    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        ck_assert_msg(ok(p), "log line without the expected prefix: %.*s",
                      (int)len, p);
        n++;
        p += len + (nl != NULL);
    }
    ck_assert_msg(n > 0, "the daemon logged nothing");
}

static int journal_prefix(const char *l)
{
    return l[0] == '<' && strchr("3467", l[1]) != NULL && l[2] == '>' &&
           strncmp(l + 3, "batchd[", 7) == 0;
}

/* "2026-12-04T18:20:01.123+0000 batchd[" */
static int time_prefix(const char *l)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddd";

    for (size_t i = 0; i < sizeof(shape) - 1; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)l[i]) : l[i] != shape[i])
            return 0;
    return strstr(l, " batchd[") != NULL && l[0] != '<';
}

/* Under journald every line carries its priority: info <6>, a warning
 * <4> (a small descriptor limit below max_conns), debug <7>. */
START_TEST(test_journal_priorities)
{
    static const char *const prlimit[] = {"prlimit", "--nofile=64:64", NULL};
    static const char *const debug[] = {"--log-level", "debug", NULL};
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);
    char *log;

    set_journal_stream(d, 0);
    bd_test_daemon_set_prefix(d, prlimit);
    bd_test_daemon_spawn(d, debug);
    unsetenv("JOURNAL_STREAM");
    bd_test_daemon_wait_ready(d);
    bd_test_assert_load(d, "k", "v", BATCHD_OK);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    log = bd_test_daemon_log(d);
    assert_lines_start(log, journal_prefix);
    ck_assert_msg(strstr(log, "<6>batchd[") && strstr(log, ": info: ready: "),
                  "no info line: %s", log);
    ck_assert_msg(strstr(log, "<4>batchd[") && strstr(log, "RLIMIT_NOFILE"),
                  "no warning line: %s", log);
    ck_assert_msg(strstr(log, "<7>batchd["), "no debug line: %s", log);
    free(log);
    bd_test_daemon_free(d);
}
END_TEST

/* A start that fails logs its error as <3>. */
START_TEST(test_journal_error)
{
    static const char *const sock[] = {"--socket", "/nonexistent-dir/x/s.sock",
                                       NULL};
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);
    char *log;

    set_journal_stream(d, 0);
    bd_test_daemon_spawn(d, sock);
    unsetenv("JOURNAL_STREAM");
    ck_assert_int_eq(bd_test_daemon_wait_exit(d, EXIT_TIMEOUT_MS), 1);
    log = bd_test_daemon_log(d);
    assert_lines_start(log, journal_prefix);
    ck_assert_msg(strstr(log, "<3>batchd["), "no error line: %s", log);
    /* The missing directory comes with how to fix it. */
    ck_assert_msg(strstr(log, "does not exist") && strstr(log, "--socket"),
                  "no hint for the missing directory: %s", log);
    free(log);
    bd_test_daemon_free(d);
}
END_TEST

/* Without JOURNAL_STREAM, or with one naming another stream (inherited
 * from a parent whose stderr it was), lines start with a timestamp. */
static void run_plain(int with_env)
{
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);
    char *log;

    if (with_env)
        set_journal_stream(d, 1);
    else
        unsetenv("JOURNAL_STREAM");
    bd_test_daemon_spawn(d, NULL);
    unsetenv("JOURNAL_STREAM");
    bd_test_daemon_wait_ready(d);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    log = bd_test_daemon_log(d);
    assert_lines_start(log, time_prefix);
    free(log);
    bd_test_daemon_free(d);
}

START_TEST(test_plain_timestamps)
{
    run_plain(0);
}
END_TEST

START_TEST(test_foreign_journal_stream)
{
    run_plain(1);
}
END_TEST

/* Wait until the daemon's log holds want; returns the log (free()). */
static char *wait_log(struct bd_test_daemon *d, const char *want)
{
    double end = bd_test_now_ms() + bd_test_scaled(10000);
    char *log;

    for (;;) {
        log = bd_test_daemon_log(d);
        if (strstr(log, want) != NULL || bd_test_now_ms() > end)
            return log;
        free(log);
        usleep(20000);
    }
}

/* Under socket activation the log names the socket systemd handed over
 * (systemd-socket-activate, the real protocol), not the config's path. */
START_TEST(test_activation_names_socket)
{
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);
    const char *prefix[5] = {"systemd-socket-activate", "-l", NULL, NULL};
    char act[256], want[300];
    char *log;
    int fd = -1;

    if (access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
        fprintf(stderr, "check_ops: systemd-socket-activate missing, skipped\n");
        bd_test_daemon_free(d);
        return;
    }
    snprintf(act, sizeof(act), "%s", bd_test_daemon_path(d, "activated.sock"));
    prefix[2] = act;
    bd_test_daemon_set_prefix(d, prefix);
    bd_test_daemon_spawn(d, NULL);
    /* It execs batchd at the first connection. */
    for (int i = 0; i < 500 && fd < 0; i++) {
        fd = bd_test_unix_connect(act);
        if (fd < 0)
            usleep(20000);
    }
    ck_assert_int_ge(fd, 0);
    snprintf(want, sizeof(want), "ready: listening on %s", act);
    log = wait_log(d, want);
    ck_assert_msg(strstr(log, want) != NULL, "want '%s' in: %s", want, log);
    ck_assert_msg(strstr(log, "using the socket passed by systemd: ") != NULL,
                  "activation not named: %s", log);
    free(log);
    close(fd);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    bd_test_daemon_free(d);
}
END_TEST

/* Read one sd_notify datagram from fd into buf (NUL-terminated); 0 on
 * timeout. */
static int read_notify(int fd, char *buf, size_t len)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (poll(&p, 1, bd_test_scaled(10000)) != 1)
        return 0;
    n = recv(fd, buf, len - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    return 1;
}

/* The readiness and stop notifications carry STATUS= lines that
 * systemctl status shows: where it listens, then what the drain waits
 * for (a real NOTIFY_SOCKET, as systemd sets it). */
START_TEST(test_notify_status)
{
    struct bd_test_daemon *d = bd_test_daemon_new(ECHO_ROUTE);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char msg[512], want[300];
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
             bd_test_daemon_path(d, "notify.sock"));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
    bd_test_daemon_spawn(d, NULL);
    unsetenv("NOTIFY_SOCKET");
    ck_assert_msg(read_notify(fd, msg, sizeof(msg)), "no READY notification");
    snprintf(want, sizeof(want), "READY=1\nSTATUS=listening on %s",
             bd_test_daemon_socket(d));
    ck_assert_str_eq(msg, want);
    bd_test_daemon_wait_ready(d);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    ck_assert_msg(read_notify(fd, msg, sizeof(msg)), "no STOPPING notification");
    ck_assert_str_eq(msg, "STOPPING=1\nSTATUS=draining 0 queued items, 0 running "
                     "batches");
    close(fd);
    bd_test_daemon_free(d);
}
END_TEST

/* ---- config ---- */

static char *src_path(const char *rel)
{
    char *p;

    ck_assert_int_gt(asprintf(&p, "%s/%s", bd_test_src_dir(), rel), 0);
    return p;
}

/* From a build tree without --sink-dir the sinks are not where an
 * install puts them: the daemon says which --sink-dir to pass; with it,
 * the printout shows the directory actually used. */
START_TEST(test_check_config_source_tree)
{
    char *conf = src_path("conf/batchd.conf");
    const char *bare[] = {bd_test_batchd_bin(), "--check-config", "-c", conf,
                          NULL};
    const char *with[] = {bd_test_batchd_bin(), "--check-config", "-c", conf,
                          "--sink-dir", bd_test_sink_dir(), NULL};
    char *out, *err, want[600];
    int rc;

    rc = bd_test_run(bare, 20000, &out, &err);
    if (rc == 0) {
        /* echo.so is installed in the default sink_dir: nothing to hint. */
        fprintf(stderr, "check_ops: sinks installed system-wide, hint not tested\n");
    } else {
        ck_assert_int_eq(rc, 1);
        ck_assert_msg(strstr(err, "add --sink-dir ") != NULL,
                      "no --sink-dir hint: %s", err);
    }
    free(out);
    free(err);
    rc = bd_test_run(with, 20000, &out, &err);
    ck_assert_msg(rc == 0, "--check-config with --sink-dir: %d: %s", rc, err);
    snprintf(want, sizeof(want), "sink_dir = %s\n", bd_test_sink_dir());
    ck_assert_msg(strstr(out, want) != NULL, "want '%s' in: %s", want, out);
    free(out);
    free(err);
    free(conf);
}
END_TEST

/* The option table as --dump-options prints it: "section\tname\t...". */
static char *dump_options(void)
{
    const char *argv[] = {bd_test_batchd_bin(), "--dump-options", NULL};
    char *out, *err;

    ck_assert_int_eq(bd_test_run(argv, 20000, &out, &err), 0);
    free(err);
    ck_assert_msg(strncmp(out, "daemon\tsocket\t", 14) == 0, "dump: %.200s", out);
    return out;
}

/* Is name set or shown commented out ("name =", "#name =") in the
 * sample, or listed in a section's comment block ("#   name  ")? */
static int sample_has(const char *sample, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = sample; (p = strstr(p, name)) != NULL; p += n) {
        const char *b = p;
        const char *a = p + n;

        while (b > sample && (b[-1] == ' ' || b[-1] == '#'))
            b--;
        if ((b == sample || b[-1] == '\n') && (*a == ' ' || *a == '='))
            return 1;
    }
    return 0;
}

/* Every option of the table is documented in conf/batchd.conf. */
START_TEST(test_sample_documents_every_option)
{
    char *dump = dump_options();
    char *path = src_path("conf/batchd.conf");
    char *sample = bd_test_read_file(path, NULL);
    char missing[2048] = "";
    int rows = 0;

    ck_assert_ptr_nonnull(sample);
    for (char *line = strtok(dump, "\n"); line; line = strtok(NULL, "\n")) {
        char *name = strchr(line, '\t') + 1;

        *strchr(name, '\t') = '\0';
        rows++;
        if (!sample_has(sample, name))
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing),
                     " %s", name);
    }
    ck_assert_int_gt(rows, 40);
    ck_assert_msg(missing[0] == '\0', "conf/batchd.conf lacks:%s", missing);
    free(dump);
    free(path);
    free(sample);
}
END_TEST

/* Every "key =" or "#key =" line of [daemon] and [route.*] in the sample
 * is an option of the table (sink sections also hold the plugin's own
 * options, which the plugin checks). */
START_TEST(test_sample_options_exist)
{
    char *dump = dump_options();
    char *path = src_path("conf/batchd.conf");
    char *sample = bd_test_read_file(path, NULL);
    char section[64] = "", unknown[2048] = "";

    for (char *line = strtok(sample, "\n"); line; line = strtok(NULL, "\n")) {
        char key[64], row[160];
        const char *p = line;

        if (line[0] == '[' || (line[0] == '#' && line[1] == '[')) {
            sscanf(line + (line[0] == '#'), "[%63[a-z]", section);
            continue;
        }
        if (*p == '#')
            p++;
        if (sscanf(p, "%63[a-z_] =", key) != 1 || strstr(p, " =") == NULL ||
            strchr(p, '=') != p + strlen(key) + 1 || strcmp(section, "sink") == 0)
            continue;
        snprintf(row, sizeof(row), "%s\t%s\t", section, key);
        if (strstr(dump, row) == NULL)
            snprintf(unknown + strlen(unknown), sizeof(unknown) - strlen(unknown),
                     " [%s] %s", section, key);
    }
    ck_assert_msg(unknown[0] == '\0', "conf/batchd.conf has unknown options:%s",
                  unknown);
    free(dump);
    free(path);
    free(sample);
}
END_TEST

/* The sample itself is a valid config (with the freshly built sinks). */
START_TEST(test_sample_is_valid)
{
    char *conf = src_path("conf/batchd.conf");
    const char *argv[] = {bd_test_batchd_bin(), "--check-config", "-c", conf,
                          "--sink-dir", bd_test_sink_dir(), NULL};
    char *out, *err;

    ck_assert_msg(bd_test_run(argv, 20000, &out, &err) == 0, "%s", err);
    free(out);
    free(err);
    free(conf);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *logs = tcase_create("logs");
    TCase *config = tcase_create("config");

    tcase_set_timeout(logs, 60);
    bd_test_add(logs, test_journal_priorities);
    bd_test_add(logs, test_journal_error);
    bd_test_add(logs, test_plain_timestamps);
    bd_test_add(logs, test_foreign_journal_stream);
    bd_test_add(logs, test_activation_names_socket);
    bd_test_add(logs, test_notify_status);
    suite_add_tcase(s, logs);

    tcase_set_timeout(config, 60);
    bd_test_add(config, test_check_config_source_tree);
    bd_test_add(config, test_sample_documents_every_option);
    bd_test_add(config, test_sample_options_exist);
    bd_test_add(config, test_sample_is_valid);
    suite_add_tcase(s, config);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ops_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
