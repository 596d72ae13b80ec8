/*
 * fuzz_conn.c - libFuzzer target for one client connection: conn.c,
 * request.c, batch.c and control.c driven through a real socket.
 *
 * One server (config below, the null sink) is made in
 * LLVMFuzzerInitialize and kept. Each input gets a fresh socketpair: the
 * daemon's end goes to bd_conn_new, and the harness writes the input to
 * the other end in chunks, running the event loop without blocking
 * after each chunk and reading whatever the daemon answered. Input
 * layout:
 *
 *   byte 0     flags: bit 0 send a valid HELLO first; bit 1 small socket
 *              buffers (so the output backlog and read pausing happen);
 *              bits 2..4 how many chunk-size bytes follow (0..7); bit 5
 *              let WAIT_US pass before the half-close, so that delay and
 *              deadline timers fire
 *   bytes 1..n chunk sizes, used in turn (0 = everything left)
 *   the rest   the byte stream the client sends
 *
 * Checks: every frame the daemon writes is a valid frame that
 * bd_msg_decode_reply accepts; after the client half-closes and every
 * batch is flushed the daemon closes its end; and then nothing is left
 * behind: no connection, no queued item, no running batch, no key.
 * ASan/UBSan catch memory errors, LeakSanitizer (-detect_leaks=1) leaks.
 * A libFuzzer timeout inside pump() means event_base_loop never went
 * idle: a callback that re-arms itself at once (a busy loop).
 *
 * Environment: BATCHD_SINK_DIR (default: sinks/ beside this binary)
 * holds null.so; BATCHD_FUZZ_LOG=debug|info|warn|error (default error);
 * BATCHD_FUZZ_TRACE=1 prints every reply (to read a reproducer).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "batch.h"
#include "conn.h"
#include "config.h"
#include "frame.h"
#include "gen.h"
#include "log.h"
#include "msg.h"
#include "server.h"
#include "sink.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLY_MAX (64u << 20)  /* largest reply frame accepted */
#define STALL_MAX 2000         /* loop passes without progress = hung */
#define SMALL_SOCKBUF 4096
#define WAIT_US 3000           /* > the routes' max_delay_us */
#define FINISH_MAX_NS 5000000000ull /* a half-closed conn must end by then */

/* Routes cover every policy, a tiny per-key bound (q*), and keys with no
 * route (anything else). Bounds are small so OVERLOADED comes quickly. */
static const char config_fmt[] =
    "[daemon]\n"
    "socket = %s\n"
    "max_frame = 64K\n"
    "max_conns = 4\n"
    "max_queued_items = 64\n"
    "max_queued_bytes = 16K\n"
    "max_concurrency = 2\n"
    "shutdown_grace_ms = 1000\n"
    "conn_out_soft = 2K\n"
    "conn_out_hard = 64K\n"
    "log_level = error\n"
    "\n"
    "[sink.null]\n"
    "plugin = null\n"
    "\n"
    "[route.bal]\nmatch = bal*\nsink = null\npolicy = balanced\n"
    "max_items = 8\nmin_items = 3\nmax_delay_us = 500\n"
    "\n"
    "[route.dur]\nmatch = dur*\nsink = null\npolicy = duration\n"
    "max_items = 4\nmax_bytes = 256\nmax_delay_us = 2000\n"
    "\n"
    "[route.size]\nmatch = size*\nsink = null\npolicy = size\n"
    "max_items = 3\nmax_bytes = 64\n"
    "\n"
    "[route.tiny]\nmatch = q*\nsink = null\npolicy = immediate\n"
    "max_items = 2\nmax_bytes = 16\nkey_max_items = 2\nkey_max_bytes = 16\n"
    "\n"
    "[route.imm]\nmatch = [a-m]*\nsink = null\npolicy = immediate\n"
    "key_concurrency = 2\n";

static struct bd_server *srv;
static int trace_replies;      /* BATCHD_FUZZ_TRACE set: print each reply */

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "fuzz_conn: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    abort();
}

static void free_server(void)
{
    bd_server_free(srv);
    srv = NULL;
}

static const char *sink_dir(const char *argv0, char *buf, size_t n)
{
    const char *env = getenv("BATCHD_SINK_DIR");
    const char *slash = strrchr(argv0, '/');

    if (env != NULL && env[0] != '\0')
        return env;
    if (slash == NULL)
        return "build-fuzz/sinks";
    snprintf(buf, n, "%.*s/sinks", (int)(slash - argv0), argv0);
    return buf;
}

static int log_level(void)
{
    const char *s = getenv("BATCHD_FUZZ_LOG");

    if (s == NULL)
        return BATCHD_LOG_ERROR;
    if (strcmp(s, "debug") == 0)
        return BATCHD_LOG_DEBUG;
    if (strcmp(s, "info") == 0)
        return BATCHD_LOG_INFO;
    if (strcmp(s, "warn") == 0)
        return BATCHD_LOG_WARN;
    return BATCHD_LOG_ERROR;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/batchd-fuzz.XXXXXX";
    char path[64], text[sizeof(config_fmt) + 64], err[512], sdir[PATH_MAX];
    struct bd_config *cfg;
    struct bd_gen *gen;
    char *errs = NULL;

    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/batchd.sock", dir);
    snprintf(text, sizeof(text), config_fmt, path);
    cfg = bd_config_load_string(text, "fuzz_conn.conf", &errs);
    if (cfg == NULL)
        die("config: %s", errs ? errs : "out of memory");
    bd_log_set_level(log_level());
    trace_replies = getenv("BATCHD_FUZZ_TRACE") != NULL;
    gen = bd_gen_new(cfg, NULL, sink_dir((*argv)[0], sdir, sizeof(sdir)),
                     err, sizeof(err)); /* takes cfg */
    if (gen == NULL)
        die("%s (set BATCHD_SINK_DIR to the dir of a sanitized null.so)", err);
    srv = bd_server_new(gen, err, sizeof(err)); /* takes gen */
    /* The listening socket is never used: connections come from
     * socketpair. Remove its file now so that a crash leaves nothing. */
    unlink(path);
    rmdir(dir);
    if (srv == NULL)
        die("server: %s", err);
    atexit(free_server);
    return 0;
}

/* ---- the client side -------------------------------------------------- */

struct client {
    int fd;                   /* our end of the socketpair */
    int eof;                  /* the daemon closed its end */
    struct bd_buf rx;         /* reply bytes not yet parsed */
    uint64_t replies;         /* frames checked */
    int fatal_seen;           /* a closing ERROR frame came */
};

/* Every complete frame in rx must be a reply the client library takes. */
static void check_replies(struct client *cl)
{
    static const char bad_row[] = "too many bad requests in a row";
    msgpack_zone zone;

    msgpack_zone_init(&zone, 1024);
    for (;;) {
        const uint8_t *p = bd_buf_head(&cl->rx);
        struct bd_reply_msg r;
        const char *why;
        char err[256];
        size_t body;
        int rc = bd_frame_peek(p, cl->rx.len, REPLY_MAX, &body);

        if (rc == BD_FRAME_NEED || (rc == BD_FRAME_OK &&
                                    body > cl->rx.len - BD_FRAME_HDR))
            break;
        if (rc != BD_FRAME_OK)
            die("the daemon wrote a frame length of 0 or over 64 MiB%s", "");
        p += BD_FRAME_HDR;
        if (bd_frame_check(p, body, &why) != 0)
            die("the daemon wrote a frame that fails the walk: %s", why);
        msgpack_zone_clear(&zone);
        if (bd_msg_decode_reply(p, body, &zone, &r, err, sizeof(err)) != 0)
            die("the daemon wrote a reply that does not decode: %s", err);
        /* PROTOCOL.md section 8: an ERROR frame with an id answers a
         * request whose type was unreadable (BAD_REQUEST) or was 15
         * (UNSUPPORTED, section 7); after a closing ERROR frame the
         * daemon writes nothing more. */
        if (r.type == BD_MSG_ERROR && r.req_id != 0 &&
            r.status != BATCHD_BAD_REQUEST && r.status != BATCHD_UNSUPPORTED)
            die("an ERROR frame with a req_id is neither BAD_REQUEST nor "
                "UNSUPPORTED: %s", bd_status_name(r.status));
        if (cl->fatal_seen)
            die("the daemon wrote a frame after a fatal ERROR frame: %s",
                bd_status_name(r.status));
        if (r.type == BD_MSG_ERROR && r.req_id == 0 &&
            (r.status == BATCHD_FRAME_TOO_LARGE ||
             (r.body_len >= sizeof(bad_row) - 1 &&
              memcmp(r.body, bad_row, sizeof(bad_row) - 1) == 0)))
            cl->fatal_seen = 1;
        if (trace_replies)
            fprintf(stderr, "reply: type %d req_id %llu %s %.*s\n", r.type,
                    (unsigned long long)r.req_id, bd_status_name(r.status),
                    (int)(r.body_len > 200 ? 200 : r.body_len),
                    r.body ? (const char *)r.body : "(nil)");
        bd_buf_consume(&cl->rx, BD_FRAME_HDR + body);
        cl->replies++;
    }
    msgpack_zone_destroy(&zone);
}

/* Read what the daemon wrote. Returns the bytes read. */
static size_t drain(struct client *cl)
{
    size_t got = 0;

    while (!cl->eof) {
        ssize_t n;

        if (bd_buf_reserve(&cl->rx, 64 * 1024) != 0)
            die("out of memory%s", "");
        n = read(cl->fd, bd_buf_tail(&cl->rx), bd_buf_room(&cl->rx));
        if (n > 0) {
            cl->rx.len += (size_t)n;
            got += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            cl->eof = 1;  /* closed, or reset by the daemon's close */
        } else if (errno == EAGAIN) {
            break;
        }
    }
    check_replies(cl);
    return got;
}

/* One loop pass runs the read handlers and activates flush_cb; a second
 * one makes sure the flush ran. */
static void pump(void)
{
    event_base_loop(srv->base, EVLOOP_NONBLOCK);
    event_base_loop(srv->base, EVLOOP_NONBLOCK);
}

/* Write p[0..n) to the daemon. Returns 0, or -1 when it is gone. */
static int send_all(struct client *cl, const uint8_t *p, size_t n)
{
    int stall = 0;

    while (n > 0) {
        ssize_t w = write(cl->fd, p, n);

        if (w > 0) {
            p += w;
            n -= (size_t)w;
            stall = 0;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -1;  /* EPIPE/ECONNRESET: the daemon closed */
        /* Socket full: let the daemon read, and read its answers so
         * that it can go on reading. */
        pump();
        if (drain(cl) > 0)
            stall = 0;
        else if (++stall > STALL_MAX)
            die("the daemon stopped reading a client that reads every "
                "reply, and did not close it%s", "");
    }
    pump();
    drain(cl);
    return 0;
}

/* After the client's half-close: run until the daemon has closed its
 * end and nothing is queued or running. Items of size/duration routes
 * would wait for more items or for time (SEND items outlive their
 * client), so after a while the harness flushes every key as shutdown
 * does; a "pause" in the input is overridden the same way. */
static void finish(struct client *cl)
{
    uint64_t start = bd_now_ns();
    int rounds = 0, flushing = 0;

    while (!cl->eof || srv->core.nqueued != 0 || srv->core.inflight != 0) {
        pump();
        if (bd_now_ns() - start > FINISH_MAX_NS) {
            char what[200];

            snprintf(what, sizeof(what), "eof %d, flushing %d, state %d, conns "
                     "%u, queued %llu, running %u, keys %zu, %llu replies",
                     cl->eof, flushing, srv->core.state, srv->nconns,
                     (unsigned long long)srv->core.nqueued, srv->core.inflight,
                     srv->core.nkeys, (unsigned long long)cl->replies);
            die("no end 5 s after the client half-closed: %s", what);
        }
        if (drain(cl) > 0) {
            rounds = 0;
        } else if (++rounds > 20 && !flushing) {
            flushing = 1;
            rounds = 0;
            srv->core.state = BD_STATE_STOPPING;
            bd_batch_flush_all(&srv->core);
            bd_server_want_flush(srv);
        } else if (flushing && rounds > STALL_MAX) {
            die(cl->eof ? "items still queued after every batch was flushed%s"
                        : "the client half-closed and every batch was flushed, "
                          "but the daemon never closed the connection%s", "");
        }
    }
}

/* Everything of this input must be gone; then reset what a CONTROL
 * pause or drain changed, for the next input. */
static void check_idle(void)
{
    char what[160];
    uint64_t now = srv->core.clock.now_ns;

    /* Idle keys stay in the table for BD_KEY_IDLE_NS by design: step the
     * clock past that so the sweep frees them, and every input starts
     * from an empty key table. */
    srv->core.clock.now_ns = now + BD_KEY_IDLE_NS + 1;
    bd_batch_sweep_idle(&srv->core);
    srv->core.clock.now_ns = now;
    if (srv->conns != NULL || srv->nconns != 0 || srv->core.nqueued != 0 ||
        srv->core.qbytes != 0 || srv->core.inflight != 0 || srv->core.nkeys != 0 ||
        srv->core.running != NULL) {
        snprintf(what, sizeof(what), "conns %u, queued %llu items %llu bytes, "
                 "running %u, keys %zu", srv->nconns,
                 (unsigned long long)srv->core.nqueued,
                 (unsigned long long)srv->core.qbytes, srv->core.inflight, srv->core.nkeys);
        die("state left behind after the connection closed: %s", what);
    }
    srv->core.state = BD_STATE_RUNNING;
    evtimer_del(srv->grace_ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client cl = {.fd = -1};
    const uint8_t *chunks, *p;
    size_t nchunks, n, i = 0;
    uint8_t flags;
    int sv[2];

    if (size < 1)
        return 0;
    flags = data[0];
    nchunks = (flags >> 2) & 7u;
    if (size < 1 + nchunks)
        return 0;
    chunks = data + 1;
    p = data + 1 + nchunks;
    n = size - 1 - nchunks;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                   sv) != 0)
        die("socketpair: %s", strerror(errno));
    if (flags & 2) {
        int sz = SMALL_SOCKBUF;

        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    }
    cl.fd = sv[1];
    bd_buf_init(&cl.rx);
    if (bd_conn_new(srv, sv[0]) == NULL)
        die("bd_conn_new failed%s", "");

    if (flags & 1) {
        struct bd_buf hello;

        bd_buf_init(&hello);
        if (bd_msg_encode_hello(&hello, 1, BD_PROTO_VERSION, "fuzz_conn") != 0)
            die("encode HELLO%s", "");
        send_all(&cl, bd_buf_head(&hello), hello.len);
        bd_buf_destroy(&hello);
    }
    while (n > 0) {
        size_t want = nchunks ? chunks[i++ % nchunks] : 0;

        if (want == 0 || want > n)
            want = n;
        if (send_all(&cl, p, want) != 0)
            break;
        p += want;
        n -= want;
    }
    if (flags & 0x20) {
        usleep(WAIT_US);
        pump();
        drain(&cl);
    }
    shutdown(cl.fd, SHUT_WR);
    finish(&cl);
    close(cl.fd);
    bd_buf_destroy(&cl.rx);
    /* Closed conns are freed by the pass that closed them, but run one
     * more so that nothing is pending. */
    pump();
    check_idle();
    return 0;
}
