/*
 * helpers.h - shared helpers of the integration suites: start a daemon on
 * a temporary socket, fork client processes, speak raw frames, read the
 * record sink's ledger and the stats JSON.
 *
 * Like memcached's t/lib/MemcachedTest.pm, every test starts its own
 * daemon. Binaries and sink directories come from the environment that
 * tests/run.sh sets (BATCHD_BIN, BATCHCTL_BIN, BATCHD_SINK_DIR,
 * BATCHD_TEST_SINK_DIR, BATCHD_SRC_DIR), with build/ defaults. When
 * BATCHD_TEST_SOCKET is set, bd_test_daemon_start uses that socket and
 * starts nothing, so a daemon run by hand under gdb can be tested.
 * BATCHD_VALGRIND=1 runs each daemon under valgrind (memcheck, leaks are
 * errors, timeouts x4); BATCHD_TEST_KEEP=1 keeps the temporary
 * directories; BATCHD_TEST_ONLY=SUBSTR runs only the tests whose name
 * contains SUBSTR (bd_test_add).
 *
 * Functions that take no error argument assert through Check: they may
 * only be called from a test's own process, never from a forked client.
 * Functions meant for forked clients say so and only return codes.
 */
#ifndef BD_TEST_HELPERS_H
#define BD_TEST_HELPERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>
#include <msgpack.h>

struct bd_buf;

/* ---- paths --------------------------------------------------------------- */

const char *bd_test_batchd_bin(void);    /* $BATCHD_BIN or build/batchd */
const char *bd_test_batchctl_bin(void);  /* $BATCHCTL_BIN or build/batchctl */
const char *bd_test_sink_dir(void);      /* $BATCHD_SINK_DIR or build/sinks */
const char *bd_test_tsink_dir(void);     /* $BATCHD_TEST_SINK_DIR or build/tests/sinks */
const char *bd_test_src_dir(void);       /* $BATCHD_SRC_DIR or "." */

/* $BATCHD_TEST_SINK_DIR made absolute (static storage). */
const char *bd_test_tsink_abs_dir(void);

/* Absolute path of test sink NAME ("record" -> .../tests/sinks/record.so)
 * in a static buffer that the next call overwrites. */
const char *bd_test_tsink(const char *name);

/* Monotonic clock in milliseconds (system-wide: comparable across the
 * test and its forked clients). */
double bd_test_now_ms(void);

/* Add test t to tc unless $BATCHD_TEST_ONLY is set and not part of its
 * name (run one test while working on it). */
void bd_test_add(TCase *tc, const TTest *t);

/* 1 when BATCHD_VALGRIND is set (not "0"): daemons run under valgrind. */
int bd_test_under_valgrind(void);

/* ms, times 4 under valgrind: for waits and timeouts, never for bounds
 * that a test asserts on. */
int bd_test_scaled(int ms);

/* ---- a daemon under test ------------------------------------------------- */

struct bd_test_daemon;

/*
 * Make a temporary directory, write <dir>/batchd.conf (a "[daemon]"
 * section with "socket = <dir>/s.sock", then config_body; when the body
 * has its own "[daemon]" header the socket line goes right after it;
 * "@DIR@" in the body becomes the directory and "@TSINKS@" the absolute
 * test sink directory),
 * start the daemon with "-c <conf> --sink-dir <sink dir>", stderr to
 * <dir>/stderr.log, and wait until the socket accepts a connection (10 s).
 * Fails the test when the daemon exits first, printing its log.
 * Returns a new daemon: stop it with bd_test_daemon_stop.
 */
struct bd_test_daemon *bd_test_daemon_start(const char *config_body);

/*
 * The steps of bd_test_daemon_start, for tests of startup itself.
 * _new makes the directory and the config file (no process yet);
 * _spawn starts the daemon with extra_argv (NULL-terminated, may be NULL)
 * after the standard arguments, without waiting;
 * _wait_ready waits for the socket (asserts).
 * BATCHD_TEST_SOCKET is ignored by these.
 */
struct bd_test_daemon *bd_test_daemon_new(const char *config_body);
void bd_test_daemon_spawn(struct bd_test_daemon *d, const char *const *extra_argv);
void bd_test_daemon_wait_ready(struct bd_test_daemon *d);

/*
 * Run the daemon behind a command prefix (NULL-terminated argv, e.g.
 * {"prlimit", "--nofile=64:64", NULL}). The prefix must exec its command
 * in place (prlimit, setpriv and env do) so that bd_test_daemon_pid stays
 * the daemon's own pid. Call between _new and _spawn; prefix is borrowed
 * until the spawn. Under BATCHD_VALGRIND the prefix comes before valgrind.
 */
void bd_test_daemon_set_prefix(struct bd_test_daemon *d, const char *const *prefix);

/*
 * Wait up to timeout_ms for the daemon to exit by itself. Returns its
 * exit code, 128 + signal when a signal killed it, or -1 on timeout (the
 * daemon keeps running).
 */
int bd_test_daemon_wait_exit(struct bd_test_daemon *d, int timeout_ms);

/*
 * Send sig and wait (15 s) for the exit. Returns the exit code (128 +
 * signal when killed). On timeout: SIGKILL, print the log, fail the test.
 */
int bd_test_daemon_kill(struct bd_test_daemon *d, int sig);

/* SIGTERM, assert exit code 0 (so leaks fail under ASan/valgrind), free. */
void bd_test_daemon_stop(struct bd_test_daemon *d);

/* Start a daemon on config_body and assert that it refuses to start:
 * exit code 1 within 20 s, and want in its log. */
void bd_test_expect_start_failure(const char *config_body, const char *want);

/* Kill the daemon if it still runs, remove the directory, free. NULL ok. */
void bd_test_daemon_free(struct bd_test_daemon *d);

/* Assert that the daemon process is still running (pid unchanged). */
void bd_test_daemon_assert_alive(struct bd_test_daemon *d);

pid_t bd_test_daemon_pid(const struct bd_test_daemon *d);  /* 0 when reused */
const char *bd_test_daemon_socket(const struct bd_test_daemon *d);
const char *bd_test_daemon_dir(const struct bd_test_daemon *d);
const char *bd_test_daemon_conf(const struct bd_test_daemon *d);

/* Write config_body as the daemon's config file (as bd_test_daemon_new
 * composes it: socket line, @DIR@, @TSINKS@), for reload tests. */
void bd_test_daemon_rewrite_conf(struct bd_test_daemon *d, const char *config_body);

/* <dir>/name in a static buffer that the next call overwrites. */
const char *bd_test_daemon_path(const struct bd_test_daemon *d, const char *name);

/* Contents of the daemon's stderr / stdout log: a new string, free(). */
char *bd_test_daemon_log(const struct bd_test_daemon *d);
char *bd_test_daemon_stdout(const struct bd_test_daemon *d);

/* 1-based line of the config file holding needle, or 0. */
int bd_test_daemon_conf_line(const struct bd_test_daemon *d, const char *needle);

/* ---- files and commands ---------------------------------------------------- */

/* Whole file as a new NUL-terminated string (free()), or NULL; *len may be NULL. */
char *bd_test_read_file(const char *path, size_t *len);

/*
 * Run argv[0] with argv, stdin from /dev/null, wait up to timeout_ms.
 * *out and *err (may be NULL) get new strings with its stdout/stderr.
 * Returns the exit code, 128 + signal, or -1 on timeout (it is killed).
 */
int bd_test_run(const char *const *argv, int timeout_ms, char **out, char **err);

/* Remove path and everything under it (no asserts). */
void bd_test_remove_tree(const char *path);

/* Start argv[0] (PATH lookup) in the background, stdin /dev/null, stdout
 * and stderr appended to log_path; it dies with the test process
 * (PR_SET_PDEATHSIG). Returns its pid: reap it with bd_test_wait_pid. */
pid_t bd_test_spawn(const char *const *argv, const char *log_path);

/* Wait up to timeout_ms (scaled) for child pid: its exit code, 128 +
 * signal, or -1 on timeout (it keeps running). */
int bd_test_wait_pid(pid_t pid, int timeout_ms);

/* Have the watcher remove dir if the test process dies (add 1), or
 * forget it (add 0) before removing it yourself. */
void bd_test_track_dir(const char *dir, int add);

/* ---- another process's numbers (/proc) ------------------------------------ */

/* VmRSS of pid in KiB (/proc/PID/status), or -1. */
long bd_test_proc_rss_kib(pid_t pid);

/* CPU time of pid (utime + stime of /proc/PID/stat, all threads) in ms,
 * or -1. */
double bd_test_proc_cpu_ms(pid_t pid);

/* ---- client processes ---------------------------------------------------- */

/*
 * A client process body: idx is 0..n-1. Returns the exit code (0 = all
 * good); print the reason to stderr before returning non-zero. Runs in a
 * forked child: no Check asserts there.
 */
typedef int (*bd_test_client_fn)(int idx, void *arg);

struct bd_test_procs;

/* Fork n processes running fn(idx, arg). Returns a group for _wait. */
struct bd_test_procs *bd_test_procs_start(int n, bd_test_client_fn fn, void *arg);

/*
 * In a client: say "ready" and block until the test calls
 * bd_test_procs_release, so that all clients submit at once.
 * Returns 0, or -1 when the test went away.
 */
int bd_test_procs_barrier(void);

/* In the test: wait (10 s) until all n clients reached the barrier, then
 * release them together. Returns the release time (bd_test_now_ms). */
double bd_test_procs_release(struct bd_test_procs *p);

/*
 * Wait up to timeout_ms for every client, kill the rest. codes (may be
 * NULL) gets each exit code (-1 killed on timeout). Returns the number of
 * clients that did not exit 0, and frees the group.
 */
int bd_test_procs_wait(struct bd_test_procs *p, int timeout_ms, int *codes);

/* Shared anonymous memory that forked clients can write to (zeroed). */
void *bd_test_shared_alloc(size_t n);
void bd_test_shared_free(void *p, size_t n);

/* In a client: print "client idx: message" to stderr; returns 1 so that
 * "return bd_test_child_fail(...)" reads naturally. */
int bd_test_child_fail(int idx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- the client library, shortcuts (test process) ------------------------ */

struct batchd_client;
struct batchd_opts;

/* Connect and HELLO through libbatchd; asserts success. */
struct batchd_client *bd_test_connect(struct bd_test_daemon *d);

/* One blocking LOAD on a fresh connection; asserts status and, for OK,
 * that the payload came back (echo-like sinks). */
void bd_test_assert_load(struct bd_test_daemon *d, const char *key,
                         const char *payload, int status);

/* One reply of bd_test_load_all: body is a NUL-terminated copy. */
struct bd_test_reply {
    int status;               /* enum batchd_status; -1 when none came */
    char *body;               /* owned (bd_test_replies_free) */
    size_t len;
};

/*
 * LOAD payloads[0..n) (strings) for key, all submitted at once on one
 * connection (so they can share batches), opts may be NULL; wait up to
 * timeout_ms for every reply. out[i] gets payload i's reply. Asserts
 * that every item got exactly one reply.
 */
void bd_test_load_all(struct bd_test_daemon *d, const char *key,
                      const char *const *payloads, size_t n,
                      const struct batchd_opts *opts, int timeout_ms,
                      struct bd_test_reply *out);
void bd_test_replies_free(struct bd_test_reply *r, size_t n);

/* CONTROL stats {"format": "json"}: a new string (free()). Asserts OK. */
char *bd_test_stats_json(struct bd_test_daemon *d);

/* The first "name": <integer> in json (pass a pointer into the text to
 * search a nested object, e.g. one key under "keys"). Returns 0 and *out,
 * or -1 when absent. */
int bd_test_json_int(const char *json, const char *name, long long *out);

/* ---- raw sockets ----------------------------------------------------------- */

/* A decoded reply frame; body is a NUL-terminated copy (free()). */
struct bd_test_frame {
    int type;
    uint64_t req_id;
    int status;
    char *body;               /* never NULL after a successful read */
    size_t body_len;
};

/* Connect a plain AF_UNIX stream socket; asserts. Returns the fd. */
int bd_test_raw_connect(struct bd_test_daemon *d);

/* Connect a blocking AF_UNIX stream socket to path. Returns the fd or -1
 * with errno. No asserts: safe in forked clients. */
int bd_test_unix_connect(const char *path);

/* Write all n bytes (SIGPIPE ignored). Returns 0, or -1 with errno. */
int bd_test_raw_write(int fd, const void *p, size_t n);

/* Write a 4-byte big-endian length then body. Returns 0 or -1. */
int bd_test_raw_write_frame(int fd, const void *body, size_t n);

/* Write a 4-byte big-endian length alone. Returns 0 or -1. */
int bd_test_raw_write_header(int fd, uint32_t n);

/*
 * Wait until the peer has read every byte written on fd (SIOCOUTQ is 0).
 * Returns 0, or -1 when bytes are still unread after timeout_ms (the
 * peer stopped reading). A closed peer counts as having read everything.
 */
int bd_test_raw_outq_wait(int fd, int timeout_ms);

/*
 * Write n bytes in pieces that end at the offsets cuts[0] < cuts[1] < ...
 * (each in 1..n; the rest after the last cut is one more piece), and wait
 * after each piece until the peer has read it, so that every piece
 * reaches the peer's read() on its own. Returns the bytes written: n, or
 * fewer when a write failed (errno set: EPIPE, ECONNRESET) or the peer
 * stopped reading for timeout_ms.
 */
size_t bd_test_raw_write_paced(int fd, const void *p, size_t n, const size_t *cuts,
                               size_t ncuts, int timeout_ms);

/* Encode and write HELLO (version, name "test") and assert its OK reply. */
void bd_test_raw_hello(int fd);

/* Encode and write one LOAD/SEND (proto encoders). Returns 0 or -1. */
int bd_test_raw_write_item(int fd, int type, uint64_t req_id, const char *key,
                           const void *payload, size_t len);

/*
 * Read one whole frame within timeout_ms and decode it as a reply.
 * Returns 1 (frame in *f, free with bd_test_frame_free), 0 on EOF,
 * -1 on timeout, -2 on a read error (ECONNRESET), -3 when the bytes
 * are not a reply frame. Bytes after the frame stay in a per-fd buffer
 * for the next call (fds below 1024; bd_test_raw_close drops it).
 */
int bd_test_raw_read(int fd, int timeout_ms, struct bd_test_frame *f);

/* Read a frame and assert it; fails the test on EOF or timeout. */
void bd_test_raw_expect(int fd, int status, const char *substr,
                        struct bd_test_frame *f);

/*
 * Read one frame (10 s) and assert all of it: type, req_id, status, and
 * that the body holds substr (NULL: anything). what names the case in
 * failure messages. A connection-level ERROR frame is type 15, req_id 0.
 */
void bd_test_raw_expect_frame(int fd, const char *what, int type, uint64_t req_id,
                              int status, const char *substr);

/* Assert the daemon closes fd within timeout_ms (EOF or reset, no more
 * frames). */
void bd_test_raw_expect_close(int fd, int timeout_ms);

/* Close fd and drop its buffered bytes. */
void bd_test_raw_close(int fd);

void bd_test_frame_free(struct bd_test_frame *f);

/* ---- msgpack for deliberately wrong requests --------------------------------- */

/* A msgpack-c packer into its own buffer: valid msgpack, any shape. */
struct bd_test_pk {
    msgpack_sbuffer sb;
    msgpack_packer p;
};

void bd_test_pk_init(struct bd_test_pk *k);
void bd_test_pk_str(struct bd_test_pk *k, const char *s);    /* str of strlen(s) */
void bd_test_pk_bin(struct bd_test_pk *k, const char *s);    /* bin of strlen(s) */

/* Append what was packed to out as one frame (length prefix + body),
 * and destroy k. */
void bd_test_pk_frame(struct bd_test_pk *k, struct bd_buf *out);

/* ---- the record sink's ledger ------------------------------------------------ */

/* One batch: "<key> <nitems> <nbytes> <id1>,<id2>,..." */
struct bd_test_batch {
    char *key;
    long nitems;
    long nbytes;
    uint64_t *ids;
    size_t nids;
};

/*
 * Parse the ledger at path. Returns the number of batches (array in
 * *out, free with bd_test_ledger_free), or -1 when a line does not parse
 * (printed). A missing file is 0 batches.
 */
long bd_test_ledger_read(const char *path, struct bd_test_batch **out);
void bd_test_ledger_free(struct bd_test_batch *b, long n);

#endif
