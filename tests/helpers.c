/*
 * helpers.c - daemon, client-process, raw-socket and ledger helpers shared
 * by the integration suites (see helpers.h).
 *
 * A failing Check assert ends the test process with _exit, so neither
 * teardown nor atexit runs. Two things clean up after it instead: every
 * daemon and client gets PR_SET_PDEATHSIG(SIGKILL), and a small watcher
 * process (one per test process, in its own process group because Check
 * kills the test's group when the test ends) keeps the list of live
 * daemon directories; when the test process dies it prints each daemon's
 * log to stderr (the test's output) unless the test did already, and
 * removes the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <msgpack.h>

#include "batchd.h"
#include "buf.h"
#include "frame.h"
#include "helpers.h"
#include "msg.h"

#define READY_TIMEOUT_MS 10000    /* socket must accept within this */
#define STOP_TIMEOUT_MS 15000     /* clean exit after a signal within this */
#define VALGRIND_FACTOR 4         /* everything is slower under valgrind */

struct bd_test_daemon {
    char dir[64];             /* mkdtemp directory, removed on free */
    char sock[128];           /* <dir>/s.sock, or $BATCHD_TEST_SOCKET */
    char conf[128];           /* <dir>/batchd.conf */
    pid_t pid;                /* running daemon; 0 when reused or reaped */
    int reused;               /* BATCHD_TEST_SOCKET: nothing to start/stop */
    int exit_code;            /* after reaping: code, or 128 + signal */
    const char *const *prefix; /* command run before the daemon, or NULL */
};

/* ---- paths and time -------------------------------------------------------- */

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    return (v != NULL && v[0] != '\0') ? v : def;
}

const char *bd_test_batchd_bin(void) { return env_or("BATCHD_BIN", "build/batchd"); }
const char *bd_test_batchctl_bin(void) { return env_or("BATCHCTL_BIN", "build/batchctl"); }
const char *bd_test_sink_dir(void) { return env_or("BATCHD_SINK_DIR", "build/sinks"); }
const char *bd_test_tsink_dir(void) { return env_or("BATCHD_TEST_SINK_DIR", "build/tests/sinks"); }
const char *bd_test_src_dir(void) { return env_or("BATCHD_SRC_DIR", "."); }

const char *bd_test_tsink(const char *name)
{
    static char path[4096];

    snprintf(path, sizeof(path), "%s/%s.so", bd_test_tsink_abs_dir(), name);
    return path;
}

double bd_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void bd_test_add(TCase *tc, const TTest *t)
{
    const char *only = getenv("BATCHD_TEST_ONLY");

    if (only == NULL || only[0] == '\0' || strstr(t->name, only) != NULL)
        tcase_add_test(tc, t);
}

static int under_valgrind(void)
{
    return getenv("BATCHD_VALGRIND") != NULL && strcmp(getenv("BATCHD_VALGRIND"), "0") != 0;
}

static int scaled(int ms)
{
    return under_valgrind() ? ms * VALGRIND_FACTOR : ms;
}

int bd_test_under_valgrind(void)
{
    return under_valgrind();
}

int bd_test_scaled(int ms)
{
    return scaled(ms);
}

/* Wait up to timeout_ms for pid. Returns its exit code (128 + signal when
 * killed), or -1 when it still runs. */
static int wait_child(pid_t pid, int timeout_ms)
{
    double end = bd_test_now_ms() + timeout_ms;
    int st;

    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0 && errno != EINTR)
            return -2;
        if (bd_test_now_ms() >= end)
            return -1;
        usleep(2000);
    }
}

/* In a freshly forked child: die with the test process, default SIGPIPE. */
static void child_setup(pid_t parent)
{
    sigset_t none;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- files ------------------------------------------------------------------ */

char *bd_test_read_file(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        size_t n;

        if (cap - len < 4096) {
            char *nbuf;

            cap = cap ? cap * 2 : 8192;
            nbuf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(nbuf);        /* ends the test: no leak to mind */
            buf = nbuf;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    if (lenp != NULL)
        *lenp = len;
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

void bd_test_remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *e;

    if (dir == NULL) {
        unlink(path);
        return;
    }
    while ((e = readdir(dir)) != NULL) {
        char sub[4096];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        if (e->d_type == DT_DIR)
            bd_test_remove_tree(sub);
        else
            unlink(sub);
    }
    closedir(dir);
    rmdir(path);
}

/* ---- the watcher --------------------------------------------------------------- */

static int watcher_fd = -1;       /* write end; lines "+dir" / "-dir" */
static pid_t watcher_owner;       /* the process that started it */

static void print_log(const char *dir, const char *why)
{
    char path[256];
    char *log;

    snprintf(path, sizeof(path), "%s/stderr.log", dir);
    log = bd_test_read_file(path, NULL);
    fprintf(stderr, "---- batchd log %s (%s) ----\n%s---- end of log ----\n",
            path, why, log ? log : "(none)\n");
    free(log);
}

static void watcher_main(int rfd)
{
    char dirs[64][64];
    int printed[64];          /* the test printed that log already */
    int ndirs = 0;
    char buf[4096];
    size_t have = 0;

    for (;;) {
        ssize_t n = read(rfd, buf + have, sizeof(buf) - have - 1);
        char *line, *nl;

        if (n <= 0 && !(n < 0 && errno == EINTR))
            break;
        if (n < 0)
            continue;
        have += (size_t)n;
        buf[have] = '\0';
        line = buf;
        while ((nl = strchr(line, '\n')) != NULL) {
            *nl = '\0';
            if (line[0] == '+' && ndirs < 64) {
                printed[ndirs] = 0;
                snprintf(dirs[ndirs++], sizeof(dirs[0]), "%s", line + 1);
            }
            for (int i = 0; i < ndirs; i++) {
                if (strcmp(dirs[i], line + 1) != 0)
                    continue;
                if (line[0] == '!') {
                    printed[i] = 1;
                } else if (line[0] == '-') {
                    ndirs--;
                    memmove(dirs[i], dirs[ndirs], sizeof(dirs[0]));
                    printed[i] = printed[ndirs];
                    break;
                }
            }
            line = nl + 1;
        }
        have = strlen(line);
        memmove(buf, line, have);
    }
    /* The test process is gone: its daemons got SIGKILL (pdeathsig). */
    for (int i = 0; i < ndirs; i++) {
        if (!printed[i])
            print_log(dirs[i], "the test died while it ran");
        /* The daemon may still be dying (and writing): retry a while. */
        for (int tries = 0; getenv("BATCHD_TEST_KEEP") == NULL && tries < 50 &&
             access(dirs[i], F_OK) == 0; tries++) {
            bd_test_remove_tree(dirs[i]);
            if (access(dirs[i], F_OK) == 0)
                usleep(100000);
        }
    }
    _exit(0);
}

static void watcher_note(char op, const char *dir)
{
    char line[80];
    int n;

    if (watcher_fd < 0 || watcher_owner != getpid()) {
        int p[2];
        pid_t pid;

        ck_assert_int_eq(pipe(p), 0);
        fflush(NULL);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            close(p[1]);
            for (int fd = 3; fd < 1024; fd++)
                if (fd != p[0])
                    close(fd);
            /* Check kills the test's process group when the test ends;
             * the watcher must outlive that to clean up. */
            setpgid(0, 0);
            signal(SIGTERM, SIG_IGN);
            watcher_main(p[0]);
        }
        close(p[0]);
        fcntl(p[1], F_SETFD, FD_CLOEXEC);
        watcher_fd = p[1];
        watcher_owner = getpid();
    }
    n = snprintf(line, sizeof(line), "%c%s\n", op, dir);
    if (write(watcher_fd, line, (size_t)n) != n) {
        /* The watcher only helps diagnose failures; go on without it. */
    }
}

/* Print a daemon's log from the test process, once. */
static void show_log(const char *dir, const char *why)
{
    print_log(dir, why);
    watcher_note('!', dir);
}

/* ---- a daemon under test --------------------------------------------------------- */

/* Replace every "@NAME@" in text; returns a new string (free()). */
static char *subst(const char *text, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value), cap = strlen(text) + 1;
    const char *p;
    char *out, *o;

    for (p = strstr(text, name); p != NULL; p = strstr(p + nlen, name))
        cap += vlen;
    out = malloc(cap);
    ck_assert_ptr_nonnull(out);
    o = out;
    while ((p = strstr(text, name)) != NULL) {
        memcpy(o, text, (size_t)(p - text));
        o += p - text;
        memcpy(o, value, vlen);
        o += vlen;
        text = p + nlen;
    }
    strcpy(o, text);
    return out;
}

const char *bd_test_tsink_abs_dir(void)
{
    static char path[4096];
    const char *dir = bd_test_tsink_dir();

    if (dir[0] == '/')
        return dir;
    if (realpath(dir, path) == NULL)
        snprintf(path, sizeof(path), "%s", dir);
    return path;
}

/* The config text: @DIR@ and @TSINKS@ replaced, the socket line added. */
static char *compose_conf(const char *dir, const char *sock, const char *raw)
{
    const char *hdr = "[daemon]\n";
    const char *at = NULL;
    char *tmp = subst(raw, "@DIR@", dir);
    char *body = subst(tmp, "@TSINKS@", bd_test_tsink_abs_dir());
    size_t cap = strlen(body) + strlen(sock) + 128;
    char *out = malloc(cap);

    free(tmp);
    ck_assert_ptr_nonnull(out);
    if (strncmp(body, hdr, strlen(hdr)) == 0)
        at = body;
    else if ((at = strstr(body, "\n[daemon]\n")) != NULL)
        at++;
    if (at != NULL) {
        size_t pre = (size_t)(at - body) + strlen(hdr);

        snprintf(out, cap, "%.*ssocket = %s\n%s", (int)pre, body, sock, body + pre);
    } else {
        snprintf(out, cap, "[daemon]\nsocket = %s\n\n%s", sock, body);
    }
    free(body);
    return out;
}

struct bd_test_daemon *bd_test_daemon_new(const char *config_body)
{
    struct bd_test_daemon *d = calloc(1, sizeof(*d));
    char *text;

    ck_assert_ptr_nonnull(d);
    signal(SIGPIPE, SIG_IGN);
    snprintf(d->dir, sizeof(d->dir), "/tmp/bdt.XXXXXX");
    ck_assert_msg(mkdtemp(d->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(d->sock, sizeof(d->sock), "%s/s.sock", d->dir);
    snprintf(d->conf, sizeof(d->conf), "%s/batchd.conf", d->dir);
    text = compose_conf(d->dir, d->sock, config_body ? config_body : "");
    write_file(d->conf, text);
    free(text);
    watcher_note('+', d->dir);
    return d;
}

static int open_log(const char *dir, const char *name)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
}

void bd_test_daemon_spawn(struct bd_test_daemon *d, const char *const *extra_argv)
{
    const char *argv[64];
    int n = 0;
    pid_t parent = getpid(), pid;

    ck_assert_int_eq(d->pid, 0);
    for (int i = 0; d->prefix != NULL && d->prefix[i] != NULL && n < 32; i++)
        argv[n++] = d->prefix[i];
    if (under_valgrind()) {
        argv[n++] = "valgrind";
        argv[n++] = "--quiet";
        argv[n++] = "--error-exitcode=23";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite";
    }
    argv[n++] = bd_test_batchd_bin();
    argv[n++] = "-c";
    argv[n++] = d->conf;
    argv[n++] = "--sink-dir";
    argv[n++] = bd_test_sink_dir();
    for (int i = 0; extra_argv != NULL && extra_argv[i] != NULL && n < 63; i++)
        argv[n++] = extra_argv[i];
    argv[n] = NULL;

    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int err = open_log(d->dir, "stderr.log");
        int out = open_log(d->dir, "stdout.log");
        int in = open("/dev/null", O_RDONLY);

        child_setup(parent);
        if (err < 0 || out < 0 || in < 0)
            _exit(125);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    d->pid = pid;
}

void bd_test_daemon_set_prefix(struct bd_test_daemon *d, const char *const *prefix)
{
    ck_assert_int_eq(d->pid, 0);
    d->prefix = prefix;
}

static int try_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

void bd_test_daemon_wait_ready(struct bd_test_daemon *d)
{
    double end = bd_test_now_ms() + scaled(READY_TIMEOUT_MS);

    for (;;) {
        int fd, code = wait_child(d->pid, 0);

        if (code >= 0) {
            d->pid = 0;
            d->exit_code = code;
            show_log(d->dir, "exited before listening");
            ck_abort_msg("batchd exited with %d before its socket accepted", code);
        }
        fd = try_connect(d->sock);
        if (fd >= 0) {
            close(fd);
            return;
        }
        if (bd_test_now_ms() > end) {
            show_log(d->dir, "not listening");
            ck_abort_msg("batchd did not accept on %s within %d ms", d->sock,
                         scaled(READY_TIMEOUT_MS));
        }
        usleep(10000);
    }
}

struct bd_test_daemon *bd_test_daemon_start(const char *config_body)
{
    const char *reuse = getenv("BATCHD_TEST_SOCKET");
    struct bd_test_daemon *d;

    if (reuse != NULL && reuse[0] != '\0') {
        d = calloc(1, sizeof(*d));
        ck_assert_ptr_nonnull(d);
        signal(SIGPIPE, SIG_IGN);
        d->reused = 1;
        snprintf(d->sock, sizeof(d->sock), "%s", reuse);
        return d;
    }
    d = bd_test_daemon_new(config_body);
    bd_test_daemon_spawn(d, NULL);
    bd_test_daemon_wait_ready(d);
    return d;
}

int bd_test_daemon_wait_exit(struct bd_test_daemon *d, int timeout_ms)
{
    int code;

    if (d->pid == 0)
        return d->reused ? -1 : d->exit_code;
    code = wait_child(d->pid, scaled(timeout_ms));
    if (code < 0)
        return -1;
    d->pid = 0;
    d->exit_code = code;
    return code;
}

int bd_test_daemon_kill(struct bd_test_daemon *d, int sig)
{
    int code;

    if (d->reused)
        return 0;
    ck_assert_msg(d->pid > 0, "batchd already exited with %d", d->exit_code);
    ck_assert_int_eq(kill(d->pid, sig), 0);
    code = bd_test_daemon_wait_exit(d, STOP_TIMEOUT_MS);
    if (code < 0) {
        kill(d->pid, SIGKILL);
        wait_child(d->pid, 5000);
        d->pid = 0;
        show_log(d->dir, "did not exit");
        ck_abort_msg("batchd did not exit within %d ms of signal %d",
                     scaled(STOP_TIMEOUT_MS), sig);
    }
    return code;
}

void bd_test_daemon_stop(struct bd_test_daemon *d)
{
    int code = bd_test_daemon_kill(d, SIGTERM);

    if (code != 0)
        show_log(d->dir, "bad exit");
    ck_assert_msg(code == 0, "batchd exited with %d after SIGTERM (23 = leak "
                  "or sanitizer report, see its log)", code);
    bd_test_daemon_free(d);
}

void bd_test_expect_start_failure(const char *body, const char *want)
{
    struct bd_test_daemon *d = bd_test_daemon_new(body);
    char *log;
    int code;

    bd_test_daemon_spawn(d, NULL);
    code = bd_test_daemon_wait_exit(d, 20000);
    log = bd_test_daemon_log(d);
    ck_assert_msg(code == 1, "exit %d, want 1 (log: %s)", code, log);
    ck_assert_msg(strstr(log, want) != NULL, "log lacks '%s': %s", want, log);
    free(log);
    bd_test_daemon_free(d);
}

void bd_test_daemon_free(struct bd_test_daemon *d)
{
    if (d == NULL)
        return;
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        wait_child(d->pid, 5000);
    }
    if (!d->reused) {
        if (getenv("BATCHD_TEST_KEEP") == NULL)
            bd_test_remove_tree(d->dir);
        watcher_note('-', d->dir);
    }
    free(d);
}

void bd_test_daemon_assert_alive(struct bd_test_daemon *d)
{
    int code;

    if (d->reused)
        return;
    ck_assert_msg(d->pid > 0, "batchd is gone (exit %d)", d->exit_code);
    code = wait_child(d->pid, 0);
    if (code >= 0) {
        d->pid = 0;
        d->exit_code = code;
        show_log(d->dir, "died");
        ck_abort_msg("batchd died: %s %d", code > 128 ? "killed by signal" : "exit",
                     code > 128 ? code - 128 : code);
    }
}

pid_t bd_test_daemon_pid(const struct bd_test_daemon *d) { return d->pid; }
const char *bd_test_daemon_socket(const struct bd_test_daemon *d) { return d->sock; }
const char *bd_test_daemon_dir(const struct bd_test_daemon *d) { return d->dir; }
const char *bd_test_daemon_conf(const struct bd_test_daemon *d) { return d->conf; }

void bd_test_daemon_rewrite_conf(struct bd_test_daemon *d, const char *config_body)
{
    char *text = compose_conf(d->dir, d->sock, config_body);
    char tmp[300];

    /* Renamed into place: a reload never reads half a file. */
    snprintf(tmp, sizeof(tmp), "%s.new", d->conf);
    write_file(tmp, text);
    free(text);
    ck_assert_int_eq(rename(tmp, d->conf), 0);
}

const char *bd_test_daemon_path(const struct bd_test_daemon *d, const char *name)
{
    static char path[256];

    snprintf(path, sizeof(path), "%s/%s", d->dir, name);
    return path;
}

char *bd_test_daemon_log(const struct bd_test_daemon *d)
{
    char *s = bd_test_read_file(bd_test_daemon_path(d, "stderr.log"), NULL);

    return s ? s : strdup("");
}

char *bd_test_daemon_stdout(const struct bd_test_daemon *d)
{
    char *s = bd_test_read_file(bd_test_daemon_path(d, "stdout.log"), NULL);

    return s ? s : strdup("");
}

int bd_test_daemon_conf_line(const struct bd_test_daemon *d, const char *needle)
{
    char *text = bd_test_read_file(d->conf, NULL);
    char *hit;
    int line = 1;

    if (text == NULL)
        return 0;
    hit = strstr(text, needle);
    if (hit == NULL) {
        free(text);
        return 0;
    }
    for (char *p = text; p < hit; p++)
        line += *p == '\n';
    free(text);
    return line;
}

/* ---- commands ----------------------------------------------------------------- */

int bd_test_run(const char *const *argv, int timeout_ms, char **out, char **err)
{
    char opath[] = "/tmp/bdt-out.XXXXXX", epath[] = "/tmp/bdt-err.XXXXXX";
    int ofd = mkstemp(opath), efd = mkstemp(epath);
    pid_t parent = getpid(), pid;
    int code;

    ck_assert_int_ge(ofd, 0);
    ck_assert_int_ge(efd, 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);

        child_setup(parent);
        dup2(in, 0);
        dup2(ofd, 1);
        dup2(efd, 2);
        execvp(argv[0], (char *const *)argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(ofd);
    close(efd);
    code = wait_child(pid, scaled(timeout_ms));
    if (code == -1) {
        kill(pid, SIGKILL);
        wait_child(pid, 5000);
    }
    if (out != NULL)
        *out = bd_test_read_file(opath, NULL);
    if (err != NULL)
        *err = bd_test_read_file(epath, NULL);
    unlink(opath);
    unlink(epath);
    return code;
}

pid_t bd_test_spawn(const char *const *argv, const char *log_path)
{
    pid_t parent = getpid(), pid;
    int in, out;

    fflush(NULL);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid != 0)
        return pid;
    child_setup(parent);
    in = open("/dev/null", O_RDONLY);
    out = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execvp(argv[0], (char *const *)argv);
    dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

int bd_test_wait_pid(pid_t pid, int timeout_ms)
{
    return wait_child(pid, scaled(timeout_ms));
}

void bd_test_track_dir(const char *dir, int add)
{
    watcher_note(add ? '+' : '-', dir);
}

/* ---- another process's numbers ------------------------------------------------- */

long bd_test_proc_rss_kib(pid_t pid)
{
    char path[64], *text, *p;
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    text = bd_test_read_file(path, NULL);
    if (text == NULL)
        return -1;
    p = strstr(text, "\nVmRSS:");
    if (p != NULL)
        kib = strtol(p + 8, NULL, 10);
    free(text);
    return kib;
}

double bd_test_proc_cpu_ms(pid_t pid)
{
    char path[64], *text, *p;
    unsigned long long utime, stime;
    double ms = -1;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    text = bd_test_read_file(path, NULL);
    if (text == NULL)
        return -1;
    /* "pid (comm) state ppid ...": comm may hold spaces and ')', so
     * count fields from the last ')'. utime and stime are fields 14, 15. */
    p = strrchr(text, ')');
    if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                            &utime, &stime) == 2)
        ms = (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    free(text);
    return ms;
}

/* ---- client processes ---------------------------------------------------------- */

struct bd_test_procs {
    int n;                    /* clients started */
    pid_t *pids;              /* one per client; 0 once reaped */
    int ready_r;              /* each client writes one byte at the barrier */
    int go_w;                 /* closed by _release: EOF lets clients go */
};

static int child_ready_w = -1;    /* in a client: its end of ready */
static int child_go_r = -1;       /* in a client: its end of go */

struct bd_test_procs *bd_test_procs_start(int n, bd_test_client_fn fn, void *arg)
{
    struct bd_test_procs *p = calloc(1, sizeof(*p));
    int ready[2], go[2];
    pid_t parent = getpid();

    ck_assert_ptr_nonnull(p);
    p->pids = calloc((size_t)n, sizeof(pid_t));
    ck_assert_ptr_nonnull(p->pids);
    ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
    fflush(NULL);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            child_setup(parent);
            signal(SIGPIPE, SIG_IGN);
            close(ready[0]);
            close(go[1]);
            child_ready_w = ready[1];
            child_go_r = go[0];
            int rc = fn(i, arg);
            fflush(NULL);
            _exit(rc);
        }
        p->pids[i] = pid;
        p->n++;
    }
    close(ready[1]);
    close(go[0]);
    p->ready_r = ready[0];
    p->go_w = go[1];
    return p;
}

int bd_test_procs_barrier(void)
{
    char c = 'r';

    if (write(child_ready_w, &c, 1) != 1)
        return -1;
    for (;;) {
        ssize_t r = read(child_go_r, &c, 1);

        if (r == 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

double bd_test_procs_release(struct bd_test_procs *p)
{
    double end = bd_test_now_ms() + scaled(10000);
    int got = 0;
    double t;

    while (got < p->n) {
        struct pollfd pfd = {.fd = p->ready_r, .events = POLLIN};
        char buf[64];
        size_t want;
        ssize_t r;
        int left = (int)(end - bd_test_now_ms());

        ck_assert_msg(left > 0, "only %d of %d clients reached the barrier",
                      got, p->n);
        if (poll(&pfd, 1, left) <= 0)
            continue;
        want = (size_t)(p->n - got);
        r = read(p->ready_r, buf, want < sizeof(buf) ? want : sizeof(buf));
        ck_assert_msg(r > 0, "clients died before the barrier (%d of %d ready)",
                      got, p->n);
        got += (int)r;
    }
    t = bd_test_now_ms();
    close(p->go_w);
    p->go_w = -1;
    return t;
}

int bd_test_procs_wait(struct bd_test_procs *p, int timeout_ms, int *codes)
{
    double end = bd_test_now_ms() + scaled(timeout_ms);
    int bad = 0;

    for (int i = 0; i < p->n; i++) {
        int left = (int)(end - bd_test_now_ms());
        int code = wait_child(p->pids[i], left > 0 ? left : 0);

        if (code == -1) {
            fprintf(stderr, "client %d: still running after %d ms, killed\n",
                    i, timeout_ms);
            kill(p->pids[i], SIGKILL);
            wait_child(p->pids[i], 5000);
        } else if (code != 0) {
            fprintf(stderr, "client %d: exit %d\n", i, code);
        }
        if (codes != NULL)
            codes[i] = code;
        bad += code != 0;
    }
    close(p->ready_r);
    if (p->go_w >= 0)
        close(p->go_w);
    free(p->pids);
    free(p);
    return bad;
}

void *bd_test_shared_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ck_assert_msg(p != MAP_FAILED, "mmap: %s", strerror(errno));
    return p;
}

void bd_test_shared_free(void *p, size_t n)
{
    munmap(p, n);
}

int bd_test_child_fail(int idx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "client %d: %s\n", idx, msg);
    return 1;
}

/* ---- the client library ------------------------------------------------------------ */

struct batchd_client *bd_test_connect(struct bd_test_daemon *d)
{
    struct batchd_client *c = batchd_connect_unix(d->sock, scaled(5000));

    ck_assert_ptr_nonnull(c);
    if (batchd_err(c) != BATCHD_ERR_NONE)
        bd_test_daemon_assert_alive(d);         /* a crash explains it best */
    ck_assert_msg(batchd_err(c) == BATCHD_ERR_NONE, "connect %s: %s",
                  d->sock, batchd_errstr(c));
    return c;
}

void bd_test_assert_load(struct bd_test_daemon *d, const char *key,
                         const char *payload, int status)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    int rc = batchd_load(c, key, payload, strlen(payload), NULL, scaled(10000), &r);

    if (rc != BATCHD_CLIENT_OK)
        bd_test_daemon_assert_alive(d);
    ck_assert_msg(rc == BATCHD_CLIENT_OK, "LOAD %s: %s", key, batchd_errstr(c));
    ck_assert_msg(r->status == status, "LOAD %s: status %s, want %s (%.*s)", key,
                  batchd_status_name(r->status), batchd_status_name(status),
                  (int)r->len, r->data ? (const char *)r->data : "");
    if (status == BATCHD_OK)
        ck_assert_msg(r->len == strlen(payload) &&
                      memcmp(r->data, payload, r->len) == 0,
                      "LOAD %s: payload not echoed (%zu bytes back)", key, r->len);
    batchd_reply_free(r);
    batchd_free(c);
}

/* bd_test_load_all's callback: arg is the reply slot of one item. */
static void load_all_cb(struct batchd_client *c, const struct batchd_reply *r,
                        void *arg)
{
    struct bd_test_reply *out = arg;

    (void)c;
    if (out->status != -1) {
        out->status = -2; /* a second reply: the assert below names it */
        return;
    }
    out->status = r ? r->status : -3;
    out->len = r ? r->len : 0;
    out->body = malloc(out->len + 1);
    if (out->body != NULL) {
        if (out->len)
            memcpy(out->body, r->data, out->len);
        out->body[out->len] = '\0';
    }
}

void bd_test_load_all(struct bd_test_daemon *d, const char *key,
                      const char *const *payloads, size_t n,
                      const struct batchd_opts *opts, int timeout_ms,
                      struct bd_test_reply *out)
{
    struct batchd_client *c = bd_test_connect(d);
    double until = bd_test_now_ms() + scaled(timeout_ms);

    for (size_t i = 0; i < n; i++) {
        out[i].status = -1;
        out[i].body = NULL;
        out[i].len = 0;
        ck_assert_int_eq(batchd_submit_load(c, key, payloads[i],
                                            strlen(payloads[i]), opts,
                                            load_all_cb, &out[i], NULL),
                         BATCHD_CLIENT_OK);
    }
    while (batchd_pending(c) > 0 && bd_test_now_ms() < until)
        if (batchd_process(c, 100) < 0)
            break;
    ck_assert_msg(batchd_pending(c) == 0, "%zu of %zu items unanswered: %s",
                  batchd_pending(c), n, batchd_errstr(c));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(out[i].status >= 0, "item %zu: reply %d", i,
                      out[i].status);
    batchd_free(c);
}

void bd_test_replies_free(struct bd_test_reply *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].body);
        r[i].body = NULL;
    }
}

char *bd_test_stats_json(struct bd_test_daemon *d)
{
    static const char *const kv[] = {"format", "json"};
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    char *s;

    if (batchd_control(c, "stats", kv, 1, scaled(10000), &r) != BATCHD_CLIENT_OK) {
        bd_test_daemon_assert_alive(d);
        ck_abort_msg("stats: %s", batchd_errstr(c));
    }
    ck_assert_msg(r->status == BATCHD_OK, "stats: status %s: %.*s",
                  batchd_status_name(r->status), (int)r->len,
                  r->data ? (const char *)r->data : "");
    s = strndup(r->data ? r->data : "", r->len);
    ck_assert_ptr_nonnull(s);
    batchd_reply_free(r);
    batchd_free(c);
    return s;
}

int bd_test_json_int(const char *json, const char *name, long long *out)
{
    char pat[128];
    const char *p;
    char *end;

    snprintf(pat, sizeof(pat), "\"%s\"", name);
    p = strstr(json, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    if (*p++ != ':')
        return -1;
    *out = strtoll(p, &end, 10);
    return end == p ? -1 : 0;
}

/* ---- raw sockets ------------------------------------------------------------------ */

#define RAW_MAX_FDS 1024

static struct bd_buf *raw_in[RAW_MAX_FDS];   /* unread bytes per fd */

static struct bd_buf *raw_buf(int fd)
{
    ck_assert_msg(fd >= 0 && fd < RAW_MAX_FDS, "fd %d out of range", fd);
    if (raw_in[fd] == NULL) {
        raw_in[fd] = calloc(1, sizeof(struct bd_buf));
        ck_assert_ptr_nonnull(raw_in[fd]);
        bd_buf_init(raw_in[fd]);
    }
    return raw_in[fd];
}

int bd_test_raw_connect(struct bd_test_daemon *d)
{
    int fd = try_connect(d->sock);

    if (fd < 0)
        bd_test_daemon_assert_alive(d);
    ck_assert_msg(fd >= 0, "connect %s: %s", d->sock, strerror(errno));
    bd_buf_destroy(raw_buf(fd));
    bd_buf_init(raw_buf(fd));
    return fd;
}

int bd_test_unix_connect(const char *path)
{
    return try_connect(path);
}

void bd_test_raw_close(int fd)
{
    if (fd >= 0 && fd < RAW_MAX_FDS && raw_in[fd] != NULL) {
        bd_buf_destroy(raw_in[fd]);
        free(raw_in[fd]);
        raw_in[fd] = NULL;
    }
    close(fd);
}

int bd_test_raw_write(int fd, const void *p, size_t n)
{
    const char *s = p;

    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int bd_test_raw_write_frame(int fd, const void *body, size_t n)
{
    uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};

    if (bd_test_raw_write(fd, hdr, 4) != 0)
        return -1;
    return bd_test_raw_write(fd, body, n);
}

int bd_test_raw_write_header(int fd, uint32_t n)
{
    uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};

    return bd_test_raw_write(fd, hdr, 4);
}

int bd_test_raw_outq_wait(int fd, int timeout_ms)
{
    double end = bd_test_now_ms() + timeout_ms;
    int spins = 0;

    for (;;) {
        int queued = 0;

        /* On AF_UNIX, SIOCOUTQ counts what the peer has not read yet. */
        if (ioctl(fd, SIOCOUTQ, &queued) != 0 || queued == 0)
            return 0;
        if (bd_test_now_ms() >= end)
            return -1;
        /* Spin briefly (the peer usually reads within microseconds),
         * then sleep so that a stopped peer does not burn a core. */
        if (++spins < 50)
            sched_yield();
        else
            usleep(200);
    }
}

size_t bd_test_raw_write_paced(int fd, const void *p, size_t n, const size_t *cuts,
                               size_t ncuts, int timeout_ms)
{
    const uint8_t *s = p;
    size_t at = 0;

    for (size_t i = 0; i <= ncuts && at < n; i++) {
        size_t end = i < ncuts ? cuts[i] : n;

        if (end <= at || end > n)
            continue;
        if (bd_test_raw_write(fd, s + at, end - at) != 0)
            return at;
        at = end;
        if (bd_test_raw_outq_wait(fd, timeout_ms) != 0)
            return at;
    }
    return at;
}

static int write_buf(int fd, struct bd_buf *b)
{
    int rc = bd_test_raw_write(fd, bd_buf_head(b), b->len);

    bd_buf_destroy(b);
    return rc;
}

void bd_test_raw_hello(int fd)
{
    struct bd_buf b;
    struct bd_test_frame f;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_hello(&b, 0, BD_PROTO_VERSION, "test"), 0);
    ck_assert_int_eq(write_buf(fd, &b), 0);
    bd_test_raw_expect(fd, BATCHD_OK, NULL, &f);
    ck_assert_int_eq(f.type, BD_MSG_HELLO);
    bd_test_frame_free(&f);
}

int bd_test_raw_write_item(int fd, int type, uint64_t req_id, const char *key,
                           const void *payload, size_t len)
{
    struct bd_buf b;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_item(&b, type, req_id, key, strlen(key),
                                        payload, len, NULL), 0);
    return write_buf(fd, &b);
}

/* Decode the frame at the head of b (body_len bytes after the prefix). */
static int raw_decode(struct bd_buf *b, size_t body_len, struct bd_test_frame *f)
{
    const uint8_t *body = bd_buf_head(b) + BD_FRAME_HDR;
    struct bd_reply_msg r;
    msgpack_zone zone;
    const char *why = NULL;
    char err[128];
    int rc = 1;

    memset(f, 0, sizeof(*f));
    msgpack_zone_init(&zone, 1024);
    if (bd_frame_check(body, body_len, &why) != 0 ||
        bd_msg_decode_reply(body, body_len, &zone, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "raw read: not a reply frame (%s)\n", why ? why : err);
        rc = -3;
    } else {
        f->type = r.type;
        f->req_id = r.req_id;
        f->status = r.status;
        f->body_len = r.body_len;
        f->body = malloc(r.body_len + 1);
        ck_assert_ptr_nonnull(f->body);
        if (r.body_len > 0)
            memcpy(f->body, r.body, r.body_len);
        f->body[r.body_len] = '\0';
    }
    msgpack_zone_destroy(&zone);
    bd_buf_consume(b, BD_FRAME_HDR + body_len);
    return rc;
}

int bd_test_raw_read(int fd, int timeout_ms, struct bd_test_frame *f)
{
    struct bd_buf *b = raw_buf(fd);
    double end = bd_test_now_ms() + scaled(timeout_ms);

    for (;;) {
        size_t body_len;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left;
        ssize_t n;

        if (b->len >= BD_FRAME_HDR &&
            bd_frame_peek(bd_buf_head(b), b->len, UINT32_MAX, &body_len) ==
            BD_FRAME_OK && b->len >= BD_FRAME_HDR + body_len)
            return raw_decode(b, body_len, f);
        left = (int)(end - bd_test_now_ms());
        if (left <= 0)
            return -1;
        if (poll(&pfd, 1, left) <= 0)
            continue;
        ck_assert_int_eq(bd_buf_reserve(b, 65536), 0);
        n = read(fd, bd_buf_tail(b), bd_buf_room(b));
        if (n == 0)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -2;
        b->len += (size_t)n;
    }
}

void bd_test_raw_expect(int fd, int status, const char *substr,
                        struct bd_test_frame *f)
{
    int rc = bd_test_raw_read(fd, 10000, f);

    ck_assert_msg(rc == 1, "expected a %s reply, got %s", batchd_status_name(status),
                  rc == 0 ? "EOF" : rc == -1 ? "nothing (timeout)" :
                  rc == -2 ? "a read error" : "bytes that are not a reply");
    ck_assert_msg(f->status == status, "status %s, want %s (type %d, req_id %llu: %s)",
                  batchd_status_name(f->status), batchd_status_name(status),
                  f->type, (unsigned long long)f->req_id, f->body);
    if (substr != NULL)
        ck_assert_msg(strstr(f->body, substr) != NULL,
                      "%s message \"%s\" does not mention \"%s\"",
                      batchd_status_name(status), f->body, substr);
}

void bd_test_raw_expect_frame(int fd, const char *what, int type, uint64_t req_id,
                              int status, const char *substr)
{
    struct bd_test_frame f;
    int rc = bd_test_raw_read(fd, 10000, &f);

    ck_assert_msg(rc == 1, "%s: expected [%d, %llu, %s, ...], got %s", what, type,
                  (unsigned long long)req_id, batchd_status_name(status),
                  rc == 0 ? "EOF" : rc == -1 ? "nothing (timeout)" :
                  rc == -2 ? "a read error" : "bytes that are not a reply");
    ck_assert_msg(f.type == type && f.req_id == req_id && f.status == status &&
                  (substr == NULL || strstr(f.body, substr) != NULL),
                  "%s: got [%d, %llu, %s, \"%s\"], want [%d, %llu, %s, \"%s\"]",
                  what, f.type, (unsigned long long)f.req_id,
                  batchd_status_name(f.status), f.body, type,
                  (unsigned long long)req_id, batchd_status_name(status),
                  substr ? substr : "*");
    bd_test_frame_free(&f);
}

void bd_test_raw_expect_close(int fd, int timeout_ms)
{
    struct bd_test_frame f;
    int rc = bd_test_raw_read(fd, timeout_ms, &f);

    if (rc == 1) {
        ck_abort_msg("expected the connection closed, got a frame: type %d "
                     "req_id %llu %s \"%s\"", f.type, (unsigned long long)f.req_id,
                     batchd_status_name(f.status), f.body);
    }
    ck_assert_msg(rc == 0 || rc == -2, "expected the connection closed, got %s",
                  rc == -1 ? "nothing (it stays open)" : "undecodable bytes");
}

void bd_test_frame_free(struct bd_test_frame *f)
{
    free(f->body);
    f->body = NULL;
}

/* ---- msgpack for deliberately wrong requests --------------------------------------- */

void bd_test_pk_init(struct bd_test_pk *k)
{
    msgpack_sbuffer_init(&k->sb);
    msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
}

void bd_test_pk_str(struct bd_test_pk *k, const char *s)
{
    msgpack_pack_str(&k->p, strlen(s));
    msgpack_pack_str_body(&k->p, s, strlen(s));
}

void bd_test_pk_bin(struct bd_test_pk *k, const char *s)
{
    msgpack_pack_bin(&k->p, strlen(s));
    msgpack_pack_bin_body(&k->p, s, strlen(s));
}

void bd_test_pk_frame(struct bd_test_pk *k, struct bd_buf *out)
{
    size_t n = k->sb.size;
    uint8_t hdr[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                      (uint8_t)n};

    ck_assert_int_eq(bd_buf_append(out, hdr, 4), 0);
    ck_assert_int_eq(bd_buf_append(out, k->sb.data, n), 0);
    msgpack_sbuffer_destroy(&k->sb);
}

/* ---- ledger --------------------------------------------------------------------------- */

static int parse_ledger_line(char *line, struct bd_test_batch *b)
{
    char *sp = strchr(line, ' ');
    char *p, *end;

    memset(b, 0, sizeof(*b));
    if (sp == NULL)
        return -1;
    b->key = strndup(line, (size_t)(sp - line));
    p = sp + 1;
    b->nitems = strtol(p, &end, 10);
    if (end == p || *end != ' ')
        return -1;
    p = end + 1;
    b->nbytes = strtol(p, &end, 10);
    if (end == p || (*end != ' ' && *end != '\0'))
        return -1;
    p = *end == ' ' ? end + 1 : end;
    b->ids = calloc((size_t)(b->nitems > 0 ? b->nitems : 1) + 1, sizeof(uint64_t));
    if (b->ids == NULL)
        return -1;
    while (*p != '\0') {
        uint64_t id = strtoull(p, &end, 10);

        if (end == p || (size_t)b->nitems <= b->nids)
            return -1;
        b->ids[b->nids++] = id;
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            return -1;
    }
    return 0;
}

long bd_test_ledger_read(const char *path, struct bd_test_batch **out)
{
    char *text = bd_test_read_file(path, NULL);
    struct bd_test_batch *v = NULL;
    long n = 0, cap = 0;
    char *save = NULL;

    *out = NULL;
    if (text == NULL)
        return 0;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        if (n == cap) {
            struct bd_test_batch *nv;

            cap = cap ? cap * 2 : 64;
            nv = realloc(v, (size_t)cap * sizeof(*v));
            ck_assert_ptr_nonnull(nv);
            v = nv;
        }
        if (parse_ledger_line(line, &v[n]) != 0) {
            fprintf(stderr, "ledger %s: bad line %ld: \"%s\"\n", path, n + 1, line);
            bd_test_ledger_free(v, n + 1);
            free(text);
            return -1;
        }
        n++;
    }
    free(text);
    *out = v;
    return n;
}

void bd_test_ledger_free(struct bd_test_batch *b, long n)
{
    for (long i = 0; i < n; i++) {
        free(b[i].key);
        free(b[i].ids);
    }
    free(b);
}
