/*
 * isolate.c - isolation = process, the daemon side (see isolate.h; the
 * child side and the wire are in runner.c / runner.h).
 *
 * The proxy is a NONBLOCKING sink. process() runs on the loop and only
 * queues the batch; one I/O thread per isolated sink sends the queued
 * batches to the runner one at a time, waits for each RESULT, copies
 * the per-item answers in with host->result and hands the batch back
 * with host->complete. So one isolated sink runs one batch at a time
 * however large key_concurrency is: give independent work its own
 * [sink.NAME] (each has its own runner) to run it in parallel.
 *
 * Failures. A runner that exits, dies by a signal, closes the socket or
 * sends a frame that is not a valid answer is lost: its batch completes
 * with BD_SINK_UNAVAILABLE, which the daemon retries with its own backoff
 * (that call was an attempt). It is restarted after restart_base_ms *
 * 2^(crashes in a row - 1), at most restart_cap_ms. Batches that never
 * reached the lost runner (queued behind it, or sent to process() while
 * it is down) complete with BD_SINK_NOT_STARTED and the time left to the
 * restart: the daemon keeps their items for that long without counting
 * an attempt, so a restart burns no attempts. After unhealthy_after
 * crashes in a row the sink is marked unhealthy, so that admission
 * answers SINK_UNAVAILABLE without queueing and process() refuses with
 * BD_SINK_UNAVAILABLE while the runner is down (attempts count again);
 * a restarted runner that answers INIT clears the mark (half-open), and
 * the count of crashes in a row resets when a batch completes DONE.
 *
 * Hangs. The daemon's sink_timeout_ms calls cancel(): the batch in the
 * runner gets the runner SIGKILLed (the late completion is dropped by the
 * daemon, the runner restarted); a queued one is simply taken back.
 * A cancel for a client that went away leaves a running call alone.
 *
 * Leaks. After each answer the runner's RSS is read from /proc; above
 * 1 GiB it is stopped cleanly and replaced (not counted as a crash).
 * BATCHD_TEST_RUNNER_RSS_MB in the environment lowers that limit, for
 * the tests only.
 *
 * Children are reaped by waitpid on the I/O thread (no SIGCHLD handler,
 * libevent keeps its signals); a pid is cleared under the lock before it
 * is reaped, so cancel() never signals a recycled pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "isolate.h"
#include "log.h"
#include "runner.h"
#include "sink.h"

extern char **environ;

#define ISO_START_TIMEOUT_MS 10000  /* spawn to the INIT answer */
#define ISO_EXIT_WAIT_MS 3000       /* a runner told to stop (EOF), before SIGKILL */
#define ISO_REAP_WAIT_MS 200        /* a runner that hung up, before SIGKILL */
#define ISO_RSS_MAX (1ull << 30)    /* recycle a runner above this RSS */
#define ISO_RSS_EVERY_MS 100        /* read it at most this often */

#if defined(__SANITIZE_ADDRESS__)
#define ISO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ISO_ASAN 1
#endif
#endif

enum iso_run {
    ISO_DOWN = 0,             /* lost; restart at restart_at_ns; process() refuses */
    ISO_STARTING = 1,         /* (re)starting; process() queues */
    ISO_UP = 2,               /* answered INIT */
};

struct iso {
    struct bd_sink *sink;     /* the sink we stand for */
    const struct batchd_host *host; /* the daemon's table for it */
    char **envp;              /* runners' environment (own copy), or NULL = environ */
    struct bd_buf init_msg;   /* the INIT frame, sent to every runner */
    uint32_t base_ms;         /* restart_base_ms */
    uint32_t cap_ms;          /* restart_cap_ms */
    uint32_t unhealthy_after; /* crashes in a row that mark the sink unhealthy */
    uint64_t rss_max;         /* recycle a runner above this many bytes */
    int wakefd;               /* eventfd: new work or stop, for the thread's poll */
    pthread_t thread;         /* the I/O thread */
    int thread_started;

    pthread_mutex_t mu;       /* guards the fields down to 'crashes' */
    struct bd_batch *head;    /* queued for the runner, oldest first (b->next) */
    struct bd_batch *tail;
    struct bd_batch *cur;     /* in the runner now, or NULL */
    int run;                  /* enum iso_run */
    int stop;                 /* shutdown asked */
    int sleeping;             /* the thread waits in poll: write wakefd */
    pid_t pid;                /* the runner; 0 once it is being reaped */
    int killed;               /* cancel() SIGKILLed it (sink timeout) */
    uint64_t restart_at_ns;   /* ISO_DOWN: when to start the next one */
    unsigned crashes;         /* runners lost in a row */

    /* The I/O thread's own (and bd_isolate_load's, before it starts). */
    struct bd_runner_io io;   /* the socket to the runner, io.fd -1 when none */
    msgpack_zone zone;        /* the last decoded answer */
    uint64_t seq;             /* BATCH sequence number */
    uint64_t rss_at_ns;       /* when the runner's RSS was last read */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(struct iso *p)
{
    uint64_t one = 1;

    if (write(p->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        p->host->log(p->host, BATCHD_LOG_ERROR, "runner wakeup: %s",
                     strerror(errno));
}

static void drain_wake(struct iso *p)
{
    uint64_t v;

    if (read(p->wakefd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing to drain */
    }
}

static int stopping(struct iso *p)
{
    int s;

    pthread_mutex_lock(&p->mu);
    s = p->stop;
    pthread_mutex_unlock(&p->mu);
    if (!s)
        drain_wake(p);
    return s;
}

/* ---- the runner process ------------------------------------------------ */

/* The runner environment: under ASan, no leak check in the runner (a
 * leaking plugin is expected there) and a plain SIGSEGV death, so that
 * the crash is reported as what it is. NULL = use environ as it is. */
static char **runner_env(void)
{
#ifdef ISO_ASAN
    static const char extra[] = "detect_leaks=0:handle_segv=0";
    const char *old = getenv("ASAN_OPTIONS");
    size_t n = 0, k = 0, len;
    char **env;

    while (environ[n] != NULL)
        n++;
    env = bd_calloc(n + 2, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
            env[k++] = environ[i];
    len = sizeof("ASAN_OPTIONS=") + sizeof(extra) + (old ? strlen(old) + 1 : 0);
    env[k] = bd_malloc(len);
    if (env[k] == NULL) {
        bd_free(env);
        return NULL;
    }
    snprintf(env[k], len, "ASAN_OPTIONS=%s%s%s", old ? old : "",
             old && old[0] ? ":" : "", extra);
    return env;
#else
    return NULL;
#endif
}

static void runner_env_free(char **env)
{
    size_t n = 0;

    if (env == NULL)
        return;
    while (env[n] != NULL)
        n++;
    /* Only the last string (ASAN_OPTIONS) is ours; the rest are environ's. */
    if (n > 0)
        bd_free(env[n - 1]);
    bd_free(env);
}

/*
 * The binary to run: this one. The path readlink gives keeps tools like
 * valgrind (which wrap the process) out of the way; when the file was
 * replaced on disk since we started, /proc/self/exe still names ours.
 */
static const char *exe_path(char *buf, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);

    if (len <= 0 || (size_t)len >= n - 1)
        return "/proc/self/exe";
    buf[len] = '\0';
    if (len > 10 && strcmp(buf + len - 10, " (deleted)") == 0)
        return "/proc/self/exe";
    return buf;
}

/*
 * socketpair + posix_spawn (no code of ours runs between fork and exec,
 * which matters in a threaded process). The child gets its end on
 * BD_RUNNER_FD, default signal handling, an empty signal mask and its
 * own process group (a terminal's ^C is the daemon's to handle).
 * Returns 0 with *pid and *fd (ours: non-blocking, close-on-exec).
 */
static int spawn_runner(struct iso *p, pid_t *pid, int *fd, char *err,
                        size_t errlen)
{
    static const int defsigs[] = {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP,
                                  SIGUSR1, SIGUSR2};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t mask;
    char fdarg[16], exe[PATH_MAX];
    char *argv[6];
    int sv[2], child, rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
        return -1;
    }
    child = sv[1];
    if (child == BD_RUNNER_FD) { /* dup2 onto itself would keep CLOEXEC */
        child = fcntl(sv[1], F_DUPFD_CLOEXEC, BD_RUNNER_FD + 1);
        close(sv[1]);
        if (child < 0) {
            snprintf(err, errlen, "fcntl: %s", strerror(errno));
            close(sv[0]);
            return -1;
        }
    }
    snprintf(fdarg, sizeof(fdarg), "%d", BD_RUNNER_FD);
    argv[0] = (char *)"batchd";
    argv[1] = (char *)"--sink-runner";
    argv[2] = fdarg;
    argv[3] = p->sink->path;
    argv[4] = p->sink->name;
    argv[5] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, child, BD_RUNNER_FD);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                  POSIX_SPAWN_SETPGROUP);
    sigemptyset(&mask);
    posix_spawnattr_setsigmask(&at, &mask);
    for (size_t i = 0; i < sizeof(defsigs) / sizeof(defsigs[0]); i++)
        sigaddset(&mask, defsigs[i]);
    posix_spawnattr_setsigdefault(&at, &mask);
    posix_spawnattr_setpgroup(&at, 0);
    rc = posix_spawn(pid, exe_path(exe, sizeof(exe)), &fa, &at, argv,
                     p->envp ? p->envp : environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    close(child);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the sink runner: %s", strerror(rc));
        close(sv[0]);
        return -1;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    *fd = sv[0];
    return 0;
}

/* How a reaped runner ended, for logs and batch errors. */
static void describe(int st, int killed, char *buf, size_t n)
{
    if (killed)
        snprintf(buf, n, "killed (SIGKILL) after its sink call timed out");
    else if (WIFEXITED(st))
        snprintf(buf, n, "exited with code %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(buf, n, "ended with wait status %#x", st);
}

/*
 * Close our end, give the runner wait_ms to exit by itself (0: kill at
 * once), SIGKILL it otherwise, and reap it. How it ended goes to buf.
 * I/O thread (or bd_isolate_load before the thread exists).
 */
static void reap(struct iso *p, int wait_ms, char *buf, size_t n)
{
    siginfo_t si;
    pid_t pid;
    int st = 0, killed;

    if (p->io.fd >= 0)
        close(p->io.fd);
    bd_runner_io_reset(&p->io, -1);
    pthread_mutex_lock(&p->mu);
    pid = p->pid;
    pthread_mutex_unlock(&p->mu);
    if (pid <= 0) {
        snprintf(buf, n, "gone");
        return;
    }
    /* WNOWAIT: look without reaping, so the pid stays ours to kill. */
    for (int waited = 0;; waited += 5) {
        memset(&si, 0, sizeof(si));
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == pid)
            break;
        if (waited >= wait_ms) {
            kill(pid, SIGKILL);
            break;
        }
        usleep(5000);
    }
    pthread_mutex_lock(&p->mu);
    p->pid = 0;
    killed = p->killed;
    p->killed = 0;
    pthread_mutex_unlock(&p->mu);
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            snprintf(buf, n, "vanished (waitpid: %s)", strerror(errno));
            return;
        }
    }
    describe(st, killed && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, buf, n);
}

/*
 * Start a runner and wait (bounded) for its INIT answer. Returns 0 with
 * the runner up, or -1 with one line in err (the runner's own when it
 * refused the plugin) and no runner left.
 */
static int runner_start(struct iso *p, char *err, size_t errlen)
{
    char why[160], msg[1024];
    const char *ioerr = "";
    const uint8_t *body = NULL;
    size_t len = 0;
    pid_t pid;
    int fd, ok = 0, rc;

    if (spawn_runner(p, &pid, &fd, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "sink %s (%s): %s", p->sink->name,
                 p->sink->path, why);
        return -1;
    }
    pthread_mutex_lock(&p->mu);
    p->pid = pid;
    p->killed = 0;
    pthread_mutex_unlock(&p->mu);
    bd_runner_io_reset(&p->io, fd);
    p->io.deadline_ns = mono_ns() + ISO_START_TIMEOUT_MS * 1000000ull;
    if (bd_buf_append(&p->io.out, bd_buf_head(&p->init_msg),
                      p->init_msg.len) != 0) {
        ioerr = "out of memory";
        rc = -1;
    } else {
        while ((rc = bd_runner_io_flush(&p->io, &ioerr)) == -2 && !stopping(p))
            ;
        if (rc == 0)
            while ((rc = bd_runner_io_recv(&p->io, &body, &len, &ioerr)) == -2 &&
                   !stopping(p))
                ;
    }
    p->io.deadline_ns = 0;
    if (rc == 1 && bd_runner_decode_init_reply(body, len, &p->zone, &ok, msg,
                                               sizeof(msg)) == 0) {
        msgpack_zone_clear(&p->zone);
        if (ok)
            return 0;
        reap(p, ISO_EXIT_WAIT_MS, why, sizeof(why));
        snprintf(err, errlen, "%s", msg[0] ? msg :
                 "the sink runner refused the plugin without a reason");
        return -1;
    }
    msgpack_zone_clear(&p->zone);
    if (rc == 1)
        ioerr = "its answer to INIT does not parse";
    else if (rc == 0 || rc == -2)
        ioerr = rc == 0 ? "it hung up" : "stopping";
    reap(p, rc == 0 ? ISO_REAP_WAIT_MS : 0, why, sizeof(why));
    snprintf(err, errlen, "sink %s (%s): sink runner %d %s before answering "
             "init (%s)", p->sink->name, p->sink->path, (int)pid, why, ioerr);
    return -1;
}

/* ---- crashes --------------------------------------------------------------- */

static uint32_t backoff_ms(const struct iso *p)
{
    unsigned shift = p->crashes > 0 ? p->crashes - 1 : 0;
    uint64_t d = (uint64_t)p->base_ms << (shift > 31 ? 31 : shift);

    return d > p->cap_ms ? p->cap_ms : (uint32_t)d;
}

/* Hand a batch back as "runner down" (I/O thread or loop). */
static void give_back(struct iso *p, struct bd_batch *b, const char *msg)
{
    p->host->batch_error(&b->pub, msg);
    p->host->complete(&b->pub, BD_SINK_UNAVAILABLE);
}

/* Hand back a batch that never reached a runner: its items wait wait_ns
 * for the restart, no attempt counted (I/O thread or loop). */
static void give_back_unsent(struct iso *p, struct bd_batch *b,
                             uint64_t wait_ns, const char *msg)
{
    b->wait_ns = wait_ns;
    p->host->batch_error(&b->pub, msg);
    p->host->complete(&b->pub, BD_SINK_NOT_STARTED);
}

/*
 * The runner is gone (already reaped) or could not be started: count
 * the crash, schedule the restart, mark the sink unhealthy when due, and
 * hand back the batch in it and every queued one. I/O thread, unlocked.
 * Once shutdown has begun, the daemon's completion path may be gone
 * already (see drop_leftover): the batches stay for shutdown to drop.
 */
static void crashed(struct iso *p, const char *what)
{
    struct bd_batch *b, *q;
    unsigned crashes;
    uint32_t delay;
    int sick;

    pthread_mutex_lock(&p->mu);
    if (p->stop) {
        p->run = ISO_DOWN;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    b = p->cur;
    p->cur = NULL;
    q = p->head;
    p->head = p->tail = NULL;
    p->crashes++;
    crashes = p->crashes;
    delay = backoff_ms(p);
    p->restart_at_ns = mono_ns() + (uint64_t)delay * 1000000ull;
    p->run = ISO_DOWN;
    sick = crashes >= p->unhealthy_after;
    if (sick)
        __atomic_store_n(&p->sink->unhealthy, (int)crashes, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&p->mu);
    p->host->log(p->host, BATCHD_LOG_WARN,
                 "%s (crash %u in a row); restarting in %u ms%s", what,
                 crashes, delay, b ? "; its batch is handed back" : "");
    if (sick)
        p->host->log(p->host, BATCHD_LOG_WARN,
                     "unhealthy after %u crashes in a row: new items get "
                     "SINK_UNAVAILABLE until a restarted runner answers",
                     crashes);
    if (b != NULL)
        give_back(p, b, what);
    while (q != NULL) {
        b = q;
        q = q->next;
        /* Never sent: it waits for the restart, unless the sink is
         * unhealthy now (then it is down, and tries count). */
        if (sick)
            give_back(p, b, what);
        else
            give_back_unsent(p, b, (uint64_t)delay * 1000000ull, what);
    }
}

/* Reap a runner that hung up, died, or broke the wire, then crashed(). */
static void lost(struct iso *p, int wait_ms, const char *detail)
{
    char how[160], what[400];
    pid_t pid;

    pthread_mutex_lock(&p->mu);
    pid = p->pid;
    pthread_mutex_unlock(&p->mu);
    reap(p, wait_ms, how, sizeof(how));
    snprintf(what, sizeof(what), "sink runner %d %s%s%s", (int)pid, how,
             detail ? ": " : "", detail ? detail : "");
    crashed(p, what);
}

/* Called locked, returns locked: start the next runner. */
static void restart(struct iso *p)
{
    char err[1024];
    unsigned crashes = p->crashes;
    int was_sick;
    pid_t pid;

    p->run = ISO_STARTING;
    pthread_mutex_unlock(&p->mu);
    if (runner_start(p, err, sizeof(err)) != 0) {
        crashed(p, err);
        pthread_mutex_lock(&p->mu);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->run = ISO_UP;
    pid = p->pid;
    was_sick = __atomic_exchange_n(&p->sink->unhealthy, 0, __ATOMIC_ACQ_REL);
    pthread_mutex_unlock(&p->mu);
    if (crashes > 0) { /* the loop reads the counter; it sets the pointer */
        uint64_t *ctr = __atomic_load_n(&p->sink->restarts, __ATOMIC_ACQUIRE);

        if (ctr != NULL)
            __atomic_add_fetch(ctr, 1, __ATOMIC_RELAXED);
    }
    if (crashes == 0)
        p->host->log(p->host, BATCHD_LOG_INFO, "sink runner %d started", (int)pid);
    else
        p->host->log(p->host, BATCHD_LOG_INFO,
                     "sink runner %d started (after %u crashes in a row)%s",
                     (int)pid, crashes, was_sick ?
                     "; no longer unhealthy, taking items again" : "");
    pthread_mutex_lock(&p->mu);
}

/* ---- one batch --------------------------------------------------------------- */

/* exchange() outcomes besides 0 (answered). */
enum {
    X_HANGUP = -1,            /* EOF or I/O error: it died or is dying */
    X_STOP = -2,              /* the daemon is stopping */
    X_PROTO = -3,             /* it answered something else: kill it */
    X_NOMEM = -4,             /* the batch could not be encoded */
};

/* Send b, read its RESULT into res. Returns 0 or an X_ code (why). */
static int exchange(struct iso *p, struct bd_batch *b,
                    struct bd_runner_result *res, char *why, size_t n)
{
    const char *ioerr = "";
    const uint8_t *body = NULL;
    size_t len = 0;
    int rc;
    int64_t age = (int64_t)((mono_ns() - b->start_ns) / 1000000ull);

    /* start_ns is the daemon's bd_now_ns: CLOCK_MONOTONIC as well. */
    if (b->start_ns == 0 || b->start_ns > mono_ns())
        age = 0;
    p->seq++;
    why[0] = '\0';
    if (bd_runner_encode_batch(&p->io.out, p->seq, &b->pub, age,
                               p->host) != 0)
        return X_NOMEM; /* not the runner's fault */
    while ((rc = bd_runner_io_flush(&p->io, &ioerr)) == -2)
        if (stopping(p))
            return X_STOP;
    if (rc != 0)
        return X_HANGUP;
    while ((rc = bd_runner_io_recv(&p->io, &body, &len, &ioerr)) == -2)
        if (stopping(p))
            return X_STOP;
    if (rc == 0)
        return X_HANGUP;
    if (rc < 0 && (p->io.in.len == 0 || strcmp(ioerr, "EOF inside a frame") == 0))
        return X_HANGUP; /* read error, or died while writing */
    if (rc < 0) {
        snprintf(why, n, "bad frame: %s", ioerr);
        return X_PROTO;
    }
    if (bd_runner_decode_result(body, len, &p->zone, res, why, n) != 0)
        return X_PROTO;
    if (res->seq != p->seq || res->nitems != b->pub.nitems) {
        snprintf(why, n, "RESULT for batch %llu with %zu items, expected "
                 "batch %llu with %zu", (unsigned long long)res->seq,
                 res->nitems, (unsigned long long)p->seq, b->pub.nitems);
        return X_PROTO;
    }
    return 0;
}

static uint64_t runner_rss(pid_t pid)
{
    char path[64];
    unsigned long size = 0, rss = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* After an answer: replace a runner that grew too big. I/O thread. */
static void check_rss(struct iso *p)
{
    char how[160];
    uint64_t rss, now = mono_ns();
    pid_t pid;

    /* A read of /proc per batch would cost more than some batches. */
    if (now - p->rss_at_ns < ISO_RSS_EVERY_MS * 1000000ull)
        return;
    p->rss_at_ns = now;
    pthread_mutex_lock(&p->mu);
    pid = p->pid;
    pthread_mutex_unlock(&p->mu);
    rss = pid > 0 ? runner_rss(pid) : 0;
    if (rss <= p->rss_max)
        return;
    reap(p, ISO_EXIT_WAIT_MS, how, sizeof(how));
    p->host->log(p->host, BATCHD_LOG_WARN,
                 "sink runner %d uses %llu MiB, over the %llu MiB limit: "
                 "replaced (it %s)", (int)pid,
                 (unsigned long long)(rss >> 20),
                 (unsigned long long)(p->rss_max >> 20), how);
    pthread_mutex_lock(&p->mu);
    p->run = ISO_STARTING; /* queued batches wait for the new one */
    p->restart_at_ns = 0;
    pthread_mutex_unlock(&p->mu);
}

/*
 * Before complete(): b may be freed right after, so cancel() must not
 * find it as cur any more. Returns 0 when shutdown has begun: then b
 * stays as cur for shutdown to drop (see crashed()).
 */
static int release_cur(struct iso *p)
{
    int ok;

    pthread_mutex_lock(&p->mu);
    ok = !p->stop;
    if (ok)
        p->cur = NULL;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

/* Run the batch the thread just took (p->cur == b). Unlocked. */
static void call_runner(struct iso *p, struct bd_batch *b)
{
    struct bd_runner_result res;
    char why[320];
    int rc = exchange(p, b, &res, why, sizeof(why)), killed;

    if (rc == X_STOP)
        return; /* shutdown takes b back */
    if (rc == X_HANGUP || rc == X_PROTO) {
        /* A hang-up usually means it died: give it a moment to say how;
         * a runner that broke the wire is killed at once. */
        msgpack_zone_clear(&p->zone);
        lost(p, rc == X_HANGUP ? ISO_REAP_WAIT_MS : 0,
             rc == X_PROTO ? why : NULL);
        return;
    }
    if (rc == X_NOMEM) {
        p->host->batch_error(&b->pub, "out of memory sending the batch to "
                             "the sink runner");
        if (release_cur(p))
            p->host->complete(&b->pub, BATCHD_SINK_RETRY);
        return;
    }
    for (size_t i = 0; i < res.nitems; i++) {
        const void *data;
        size_t len;
        int code;

        bd_runner_result_item(&res, i, &code, &data, &len);
        if (code != 0)
            p->host->result(&b->pub, i, code, data ? data : "", len);
    }
    if (res.retry_after_ms != 0)
        p->host->retry_after(&b->pub, res.retry_after_ms);
    if (res.error != NULL) {
        char *msg = bd_strndup(res.error, res.error_len);

        p->host->batch_error(&b->pub, msg ? msg : "(out of memory)");
        bd_free(msg);
    }
    msgpack_zone_clear(&p->zone);
    bd_buf_shrink(&p->io.in, 64 * 1024);
    bd_buf_shrink(&p->io.out, 64 * 1024);
    pthread_mutex_lock(&p->mu);
    if (res.rc == BATCHD_SINK_DONE)
        p->crashes = 0;
    killed = p->killed;
    pthread_mutex_unlock(&p->mu);
    if (!release_cur(p))
        return;
    p->host->complete(&b->pub, res.rc);
    if (killed)
        lost(p, ISO_REAP_WAIT_MS, NULL); /* cancel() raced the answer */
    else
        check_rss(p);
}

/* ---- the I/O thread ----------------------------------------------------------- */

/*
 * Called locked, returns locked: sleep until wakefd, deadline_ns (0 =
 * none) or, when watch is set, anything on the idle runner's socket,
 * which can only mean it died or broke the wire.
 */
static void wait_events(struct iso *p, int watch, uint64_t deadline_ns)
{
    struct pollfd pf[2] = {{.fd = p->wakefd, .events = POLLIN},
                           {.fd = p->io.fd, .events = POLLIN}};
    int n = watch && p->io.fd >= 0 ? 2 : 1, tmo = -1;

    if (deadline_ns != 0) {
        uint64_t now = mono_ns();

        tmo = now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000);
    }
    p->sleeping = 1;
    pthread_mutex_unlock(&p->mu);
    if (poll(pf, (nfds_t)n, tmo) > 0) {
        if (pf[0].revents & POLLIN)
            drain_wake(p);
        if (n == 2 && pf[1].revents != 0)
            lost(p, ISO_REAP_WAIT_MS, NULL);
    }
    pthread_mutex_lock(&p->mu);
    p->sleeping = 0;
}

static void *iso_main(void *arg)
{
    struct iso *p = arg;
    char how[160];
    int busy;
    pid_t pid;

    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        struct bd_batch *b;

        if (p->run != ISO_UP) {
            if (mono_ns() < p->restart_at_ns)
                wait_events(p, 0, p->restart_at_ns);
            else
                restart(p);
            continue;
        }
        if (p->head == NULL) {
            wait_events(p, 1, 0);
            continue;
        }
        b = p->head;
        p->head = b->next;
        if (p->head == NULL)
            p->tail = NULL;
        b->next = NULL;
        p->cur = b;
        pthread_mutex_unlock(&p->mu);
        call_runner(p, b);
        pthread_mutex_lock(&p->mu);
    }
    busy = p->cur != NULL;
    pid = p->pid;
    pthread_mutex_unlock(&p->mu);
    if (p->io.fd >= 0) {
        /* Idle: EOF makes it call the plugin's shutdown and exit 0. */
        reap(p, busy ? 0 : ISO_EXIT_WAIT_MS, how, sizeof(how));
        p->host->log(p->host, BATCHD_LOG_INFO, "sink runner %d stopped: %s",
                     (int)pid, how);
    }
    return NULL;
}

/* ---- the proxy sink ------------------------------------------------------------- */

/*
 * Called locked, returns unlocked: refuse pb while the runner is down
 * (now is when that was decided).
 * Stopping, or unhealthy: BD_SINK_UNAVAILABLE (the try counts); else
 * BD_SINK_NOT_STARTED with the time left to the restart, for which the
 * items wait without using an attempt.
 */
static int refuse(struct iso *p, struct batchd_batch *pb, uint64_t now)
{
    struct bd_batch *b = pb->host_priv;
    uint64_t left = p->restart_at_ns > now ? p->restart_at_ns - now : 0;
    int down = p->stop || p->crashes >= p->unhealthy_after;
    char msg[160];

    snprintf(msg, sizeof(msg), "sink runner down after %u crashes in a "
             "row; restarting in %llu ms", p->crashes,
             (unsigned long long)(left / 1000000));
    pthread_mutex_unlock(&p->mu);
    p->host->batch_error(pb, msg);
    if (down)
        return BD_SINK_UNAVAILABLE;
    b->wait_ns = left;
    return BD_SINK_NOT_STARTED;
}

static int iso_process(void *state, void *res, struct batchd_batch *pb)
{
    struct iso *p = state;
    struct bd_batch *b = pb->host_priv;
    uint64_t now = mono_ns();
    int poke;

    (void)res;
    pthread_mutex_lock(&p->mu);
    /* Once the restart is due (and the sink healthy) the thread is about
     * to start the runner: the batch waits for it in the queue. So a
     * refusal that is not UNAVAILABLE always has a wait (> 0). */
    if (p->stop || (p->run == ISO_DOWN &&
                    (p->crashes >= p->unhealthy_after ||
                     now < p->restart_at_ns)))
        return refuse(p, pb, now);
    b->next = NULL;
    if (p->tail)
        p->tail->next = b;
    else
        p->head = b;
    p->tail = b;
    poke = p->sleeping;
    pthread_mutex_unlock(&p->mu);
    if (poke)
        wake(p);
    return BATCHD_SINK_PENDING;
}

/* Loop thread: sink_timeout_ms (b->abandoned) or the client left. */
static void iso_cancel(void *state, struct batchd_batch *pb)
{
    struct iso *p = state;
    struct bd_batch *b = pb->host_priv, **pp, *prev = NULL;
    pid_t killed = 0;
    int found = 0;

    pthread_mutex_lock(&p->mu);
    for (pp = &p->head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            if (p->tail == b)
                p->tail = prev;
            b->next = NULL;
            found = 1;
            break;
        }
    }
    if (!found && b == p->cur && b->abandoned && p->pid > 0 && !p->killed) {
        p->killed = 1;
        killed = p->pid;
        kill(killed, SIGKILL);
    }
    pthread_mutex_unlock(&p->mu);
    if (found)
        give_back(p, b, "cancelled before the sink runner took it");
    if (killed)
        p->host->log(p->host, BATCHD_LOG_WARN, "sink runner %d killed: its "
                     "call for key %s timed out", (int)killed, pb->key);
}

/*
 * A batch still here at shutdown. The daemon shuts a sink down only when
 * no call is running or abandoned in it (server.c: idle), so this is
 * defensive: the completion path (worker.c) is gone by then, so an
 * abandoned batch is freed here the way call.c's drop_abandoned does.
 */
static void drop_leftover(struct iso *p, struct bd_batch *b)
{
    if (!b->abandoned)
        p->host->log(p->host, BATCHD_LOG_ERROR, "shutdown with a live batch "
                     "of key %s; its %zu items are lost", b->pub.key,
                     b->pub.nitems);
    for (size_t i = 0; i < b->pub.nitems; i++)
        b->free_item(b->items[i]);
    bd_batch_free(b);
}

static void iso_free(struct iso *p)
{
    if (p->wakefd >= 0)
        close(p->wakefd);
    if (p->io.fd >= 0)
        close(p->io.fd);
    bd_runner_io_destroy(&p->io);
    msgpack_zone_destroy(&p->zone);
    bd_buf_destroy(&p->init_msg);
    runner_env_free(p->envp);
    pthread_mutex_destroy(&p->mu);
    bd_free(p);
}

static void iso_shutdown(void *state)
{
    struct iso *p = state;
    struct bd_batch *b, *next;

    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    if (p->thread_started)
        pthread_join(p->thread, NULL);
    if (p->cur != NULL)
        drop_leftover(p, p->cur);
    for (b = p->head; b != NULL; b = next) {
        next = b->next;
        drop_leftover(p, b);
    }
    iso_free(p);
}

static const struct batchd_sink iso_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = BATCHD_SINK_NONBLOCKING,
    .name = "isolate",
    .process = iso_process,
    .cancel = iso_cancel,
    .shutdown = iso_shutdown,
};

/* The log level the runner should use: the daemon's. */
static int log_level(void)
{
    int l = BATCHD_LOG_ERROR;

    while (l < BATCHD_LOG_DEBUG && bd_log_enabled(l + 1))
        l++;
    return l;
}

static uint64_t rss_limit(void)
{
    const char *v = getenv("BATCHD_TEST_RUNNER_RSS_MB");
    char *end;
    unsigned long long mb;

    if (v == NULL || *v == '\0')
        return ISO_RSS_MAX;
    mb = strtoull(v, &end, 10);
    return (*end == '\0' && mb > 0) ? (uint64_t)mb << 20 : ISO_RSS_MAX;
}

int bd_isolate_load(struct bd_sink *s, const struct bd_sink_conf *sc,
                    const struct batchd_host *host, char *err, size_t errlen)
{
    struct iso *p = bd_calloc(1, sizeof(*p));
    char how[160];
    int rc;

    if (p == NULL) {
        snprintf(err, errlen, "sink %s: out of memory", sc->name);
        return -1;
    }
    p->sink = s;
    p->host = host;
    p->base_ms = sc->restart_base_ms;
    p->cap_ms = sc->restart_cap_ms;
    p->unhealthy_after = sc->unhealthy_after;
    p->rss_max = rss_limit();
    p->run = ISO_STARTING;
    pthread_mutex_init(&p->mu, NULL);
    bd_runner_io_init(&p->io, -1, -1);
    msgpack_zone_init(&p->zone, 4096);
    bd_buf_init(&p->init_msg);
    p->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->io.wakefd = p->wakefd;
    p->envp = runner_env();
    if (p->wakefd < 0 ||
        bd_runner_encode_init(&p->init_msg, sc->kv, sc->nkv, log_level()) != 0) {
        snprintf(err, errlen, "sink %s: %s", sc->name, p->wakefd < 0 ?
                 strerror(errno) : "out of memory");
        goto out_free;
    }
    if (runner_start(p, err, errlen) != 0)
        goto out_free;
    p->run = ISO_UP;
    rc = pthread_create(&p->thread, NULL, iso_main, p);
    if (rc != 0) {
        snprintf(err, errlen, "sink %s: pthread_create: %s", sc->name,
                 strerror(rc));
        reap(p, ISO_EXIT_WAIT_MS, how, sizeof(how));
        goto out_free;
    }
    p->thread_started = 1;
    s->vt = &iso_sink;
    s->state = p;
    s->nonblocking = 1;
    host->log(host, BATCHD_LOG_INFO, "loaded %s in sink runner %d "
              "(isolation = process)", s->path, (int)p->pid);
    return 0;

out_free:
    iso_free(p);
    return -1;
}
