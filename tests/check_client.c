/*
 * check_client.c - libbatchd against a fake daemon built here.
 *
 * Each test forks a tiny peer on a listening socket in a temporary
 * directory. The peer speaks the real framing through the proto/
 * encoders and decoders, except where a test needs bytes no encoder
 * would write (oversized lengths, broken msgpack). The peer cannot use
 * Check (it is not the test's process), so it exits with a code naming
 * the check that failed, and peer_finish asserts that code is 0.
 *
 * "core": connect, blocking and async calls, out-of-order replies,
 * options, CONTROL, deferred free. "limits": table growth, frame and
 * argument limits, timeouts, allocation failures. "malformed": what the
 * daemon could send wrong, and every pending callback running once.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "batchd.h"
#include "buf.h"
#include "frame.h"
#include "msg.h"

/* ---- the fake peer ------------------------------------------------------- */

/* One accepted connection, on the peer's side. */
struct pconn {
    int fd;
    struct bd_buf in;         /* bytes read */
    size_t used;              /* bytes of the frame handed out last */
    msgpack_zone zone;        /* for bd_msg_decode */
};

typedef void (*peer_fn)(struct pconn *p);

static char tmpdir[64];       /* per test */
static char sock_path[108];   /* tmpdir/s.sock */
static int listen_fd = -1;
static pid_t peer_pid = -1;
static struct pconn *live_peer; /* for peer_exit's cleanup */

__attribute__((noreturn))
static void peer_exit(int code)
{
    if (live_peer != NULL) {
        close(live_peer->fd);
        bd_buf_destroy(&live_peer->in);
        msgpack_zone_destroy(&live_peer->zone);
    }
    _exit(code);
}

/* Next request; m stays valid until the next call. Exits 0 on EOF when
 * eof_ok, else with code 90. */
static void pc_next_or(struct pconn *p, struct bd_msg *m, int eof_ok)
{
    bd_buf_consume(&p->in, p->used);
    p->used = 0;
    for (;;) {
        size_t blen;
        const char *why;
        char err[128];
        ssize_t n;

        if (bd_frame_peek(bd_buf_head(&p->in), p->in.len, 64u << 20, &blen) ==
                BD_FRAME_OK && p->in.len - BD_FRAME_HDR >= blen) {
            if (bd_frame_check(bd_buf_head(&p->in) + BD_FRAME_HDR, blen,
                               &why) != 0)
                peer_exit(91);
            msgpack_zone_clear(&p->zone);
            if (bd_msg_decode(bd_buf_head(&p->in) + BD_FRAME_HDR, blen,
                              &p->zone, m, err, sizeof(err)) != BATCHD_OK)
                peer_exit(92);
            p->used = BD_FRAME_HDR + blen;
            return;
        }
        if (bd_buf_reserve(&p->in, 65536) != 0)
            peer_exit(93);
        n = read(p->fd, bd_buf_tail(&p->in), bd_buf_room(&p->in));
        if (n <= 0)
            peer_exit(eof_ok ? 0 : 90);
        p->in.len += (size_t)n;
    }
}

static void pc_next(struct pconn *p, struct bd_msg *m)
{
    pc_next_or(p, m, 0);
}

/* Read and drop requests until the client goes away; exits 0. */
static void pc_until_eof(struct pconn *p)
{
    struct bd_msg m;

    for (;;)
        pc_next_or(p, &m, 1);
}

static void pc_write(struct pconn *p, const void *data, size_t n)
{
    const char *s = data;

    while (n > 0) {
        ssize_t w = write(p->fd, s, n);

        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            peer_exit(0); /* the client left first: its test decides */
        if (w <= 0)
            peer_exit(94);
        s += w;
        n -= (size_t)w;
    }
}

static void pc_reply(struct pconn *p, int type, uint64_t id, int status,
                     const void *body, size_t len, int is_str)
{
    struct bd_buf out;

    bd_buf_init(&out);
    if (bd_msg_encode_reply(&out, type, id, status, body, len, is_str) != 0)
        peer_exit(95);
    pc_write(p, bd_buf_head(&out), out.len);
    bd_buf_destroy(&out);
}

/* A frame around raw body bytes, for bodies no encoder would write. */
static void pc_raw_frame(struct pconn *p, const void *body, uint32_t len)
{
    uint8_t hdr[4] = { len >> 24, len >> 16, len >> 8, len };

    pc_write(p, hdr, 4);
    pc_write(p, body, len);
}

/* Expect HELLO (version 1, a "name[pid]" client name) and accept it. */
static void pc_hello(struct pconn *p)
{
    struct bd_msg m;

    pc_next(p, &m);
    if (m.type != BD_MSG_HELLO || m.version != 1 || m.name_len == 0 ||
        m.name[m.name_len - 1] != ']' ||
        memmem(m.name, m.name_len, "check_client[", 13) == NULL)
        peer_exit(80);
    pc_reply(p, BD_MSG_HELLO, m.req_id, BATCHD_OK, "fake", 4, 1);
}

/* Fork the peer: it accepts one connection and runs fn on it. */
static void peer_start(peer_fn fn)
{
    fflush(NULL);
    peer_pid = fork();
    ck_assert_int_ge(peer_pid, 0);
    if (peer_pid == 0) {
        static struct pconn p;
        int fd = accept(listen_fd, NULL, NULL);

        if (fd < 0)
            _exit(99);
        close(listen_fd);
        p.fd = fd;
        bd_buf_init(&p.in);
        msgpack_zone_init(&p.zone, 2048);
        live_peer = &p;
        fn(&p);
        peer_exit(0);
    }
}

/* Wait for the peer and check that it saw what it expected. */
static void peer_finish(void)
{
    int st;

    ck_assert_int_eq(waitpid(peer_pid, &st, 0), peer_pid);
    peer_pid = -1;
    ck_assert_msg(WIFEXITED(st), "peer died by a signal");
    ck_assert_msg(WEXITSTATUS(st) == 0, "peer failed check %d",
                  WEXITSTATUS(st));
}

static void setup(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_client.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(sock_path, sizeof(sock_path), "%s/s.sock", tmpdir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(listen_fd, 0);
    ck_assert_int_eq(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(listen_fd, 16), 0);
    signal(SIGPIPE, SIG_IGN); /* the peer may write to a closed client */
}

static void teardown(void)
{
    if (peer_pid > 0) {
        kill(peer_pid, SIGKILL);
        waitpid(peer_pid, NULL, 0);
    }
    close(listen_fd);
    unlink(sock_path);
    rmdir(tmpdir);
}

/* ---- client-side helpers ------------------------------------------------- */

/* What one callback saw. */
struct rec {
    int calls;                /* times the callback ran: must end at 1 */
    int got_null;             /* ran with a NULL reply */
    int err_then;             /* batchd_err when it ran with NULL */
    int status;
    uint64_t id;
    char data[64];            /* reply body, NUL-terminated, cut to fit */
    size_t len;
};

static void rec_cb(struct batchd_client *c, const struct batchd_reply *r,
                   void *arg)
{
    struct rec *rec = arg;

    rec->calls++;
    if (r == NULL) {
        rec->got_null = 1;
        rec->err_then = batchd_err(c);
        return;
    }
    rec->status = r->status;
    rec->id = r->id;
    rec->len = r->len;
    if (r->data != NULL)
        snprintf(rec->data, sizeof(rec->data), "%.*s", (int)r->len,
                 (const char *)r->data);
}

static struct batchd_client *connect_ok(void)
{
    struct batchd_client *c = batchd_connect_unix(sock_path, 5000);

    ck_assert_ptr_nonnull(c);
    ck_assert_msg(batchd_err(c) == BATCHD_ERR_NONE, "connect: %s",
                  batchd_errstr(c));
    return c;
}

/* Run batchd_process until nothing is pending or it fails. */
static int process_all(struct batchd_client *c)
{
    while (batchd_pending(c) > 0) {
        if (batchd_process(c, 5000) < 0)
            return -1;
    }
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- peers --------------------------------------------------------------- */

/* Answer HELLO, then echo every LOAD (OK + payload), accept every SEND,
 * answer CONTROL with "pong", until EOF. */
static void peer_echo(struct pconn *p)
{
    struct bd_msg m;

    pc_hello(p);
    for (;;) {
        pc_next_or(p, &m, 1);
        if (m.type == BD_MSG_LOAD)
            pc_reply(p, m.type, m.req_id, BATCHD_OK, m.payload,
                     m.payload_len, 0);
        else if (m.type == BD_MSG_SEND)
            pc_reply(p, m.type, m.req_id, BATCHD_ACCEPTED, NULL, 0, 0);
        else if (m.type == BD_MSG_CONTROL)
            pc_reply(p, m.type, m.req_id, BATCHD_OK, "pong", 4, 1);
        else if (m.type == BD_MSG_SEND_MANY)
            for (uint32_t i = 0; i < m.nitems; i++)
                pc_reply(p, m.type, m.req_id + i, BATCHD_ACCEPTED, NULL, 0, 0);
        else
            peer_exit(10);
    }
}

static void peer_hello_then_silent(struct pconn *p)
{
    pc_hello(p);
    pc_until_eof(p);
}

#define OOO_N 100

/* Read OOO_N LOADs, answer them last to first with body "r<id>". */
static void peer_reverse(struct pconn *p)
{
    uint64_t ids[OOO_N];
    struct bd_msg m;
    char body[32];

    pc_hello(p);
    for (int i = 0; i < OOO_N; i++) {
        pc_next(p, &m);
        if (m.type != BD_MSG_LOAD)
            peer_exit(11);
        ids[i] = m.req_id;
    }
    for (int i = OOO_N - 1; i >= 0; i--) {
        int n = snprintf(body, sizeof(body), "r%llu",
                         (unsigned long long)ids[i]);

        pc_reply(p, BD_MSG_LOAD, ids[i], BATCHD_OK, body, (size_t)n, 0);
    }
    pc_until_eof(p);
}

/* One LOAD_MANY of 5 payloads "a".."e": answer item i with its payload,
 * item 2 with FAIL. */
static void peer_many(struct pconn *p)
{
    struct bd_msg m;

    pc_hello(p);
    pc_next(p, &m);
    if (m.type != BD_MSG_LOAD_MANY || m.nitems != 5 || m.key_len != 3 ||
        memcmp(m.key, "kkk", 3) != 0)
        peer_exit(12);
    for (uint32_t i = 0; i < m.nitems; i++) {
        const msgpack_object *o = &m.items[i];

        if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != 1)
            peer_exit(13);
        pc_reply(p, BD_MSG_LOAD_MANY, m.req_id + i,
                 i == 2 ? BATCHD_FAIL : BATCHD_OK, o->via.bin.ptr, 1, i == 2);
    }
    pc_until_eof(p);
}

/* CONTROL "stats" with args {"format": "json"}: answer a JSON text. */
static void peer_control(struct pconn *p)
{
    struct bd_msg m;
    const msgpack_object_kv *kv;

    pc_hello(p);
    pc_next(p, &m);
    if (m.type != BD_MSG_CONTROL || m.name_len != 5 ||
        memcmp(m.name, "stats", 5) != 0 || m.args == NULL ||
        m.args->via.map.size != 1)
        peer_exit(14);
    kv = &m.args->via.map.ptr[0];
    if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR ||
        kv->key.via.str.size != 6 || memcmp(kv->key.via.str.ptr, "format", 6) ||
        kv->val.via.str.size != 4 || memcmp(kv->val.via.str.ptr, "json", 4))
        peer_exit(15);
    pc_reply(p, BD_MSG_CONTROL, m.req_id, BATCHD_OK, "{\"keys\":{}}", 11, 1);
    pc_until_eof(p);
}

#define TRACEPARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* First LOAD must carry every option, the second none. */
static void peer_opts(struct pconn *p)
{
    struct bd_msg m;
    const struct bd_opts *o = &m.opts;

    pc_hello(p);
    pc_next(p, &m);
    if (!o->has_deadline || o->deadline_ms != 250 || !o->has_priority ||
        o->priority != 7 || o->dedup_len != 3 ||
        memcmp(o->dedup_id, "abc", 3) != 0 || o->trace_len != 55 ||
        memcmp(o->trace, TRACEPARENT, 55) != 0)
        peer_exit(16);
    pc_reply(p, BD_MSG_LOAD, m.req_id, BATCHD_OK, NULL, 0, 0);
    pc_next(p, &m);
    if (o->has_deadline || o->has_priority || o->dedup_id || o->trace)
        peer_exit(17);
    pc_reply(p, BD_MSG_LOAD, m.req_id, BATCHD_OK, NULL, 0, 0);
    pc_until_eof(p);
}

/* Answer three LOADs with one byte per write(). */
static void peer_dribble(struct pconn *p)
{
    struct bd_buf out;
    struct bd_msg m;

    pc_hello(p);
    bd_buf_init(&out);
    for (int i = 0; i < 3; i++) {
        pc_next(p, &m);
        if (bd_msg_encode_reply(&out, BD_MSG_LOAD, m.req_id, BATCHD_OK,
                                m.payload, m.payload_len, 0) != 0)
            peer_exit(18);
    }
    for (size_t i = 0; i < out.len; i++) {
        pc_write(p, bd_buf_head(&out) + i, 1);
        if (i % 7 == 0)
            usleep(200);
    }
    bd_buf_destroy(&out);
    pc_until_eof(p);
}

#define BIG_LEN (8u << 20)

/* Answer one LOAD with BIG_LEN bytes of a pattern. */
static void peer_big(struct pconn *p)
{
    struct bd_msg m;
    uint8_t *big = malloc(BIG_LEN);

    if (big == NULL)
        peer_exit(19);
    for (size_t i = 0; i < BIG_LEN; i++)
        big[i] = (uint8_t)(i * 7);
    pc_hello(p);
    pc_next(p, &m);
    pc_reply(p, BD_MSG_LOAD, m.req_id, BATCHD_OK, big, BIG_LEN, 0);
    free(big);
    pc_until_eof(p);
}

/* Refuse HELLO with UNSUPPORTED. */
static void peer_hello_unsupported(struct pconn *p)
{
    struct bd_msg m;

    pc_next(p, &m);
    pc_reply(p, BD_MSG_HELLO, m.req_id, BATCHD_UNSUPPORTED,
             "version: protocol 1 not supported", 33, 1);
    pc_until_eof(p);
}

/* A full daemon: the connection-level error frame, then close, without
 * reading a byte (as the daemon's accept path does). */
static void peer_too_many(struct pconn *p)
{
    pc_reply(p, BD_MSG_ERROR, 0, BATCHD_TOO_MANY_CONNECTIONS,
             "max_conns 4 reached", 19, 1);
    peer_exit(0);
}

static void peer_close_at_once(struct pconn *p)
{
    (void)p;
    peer_exit(0);
}

static void expect_bad(void (*w)(struct pconn *, uint64_t), int n, int err,
                       const char *errstr);

/* ---- core ---------------------------------------------------------------- */

START_TEST(test_connect_hello)
{
    struct batchd_client *c;

    peer_start(peer_hello_then_silent);
    c = connect_ok();
    ck_assert_int_ge(batchd_fd(c), 0);
    ck_assert_int_eq(batchd_pending(c), 0);
    ck_assert_int_eq(batchd_want_write(c), 0);
    ck_assert_str_eq(batchd_errstr(c), "");
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_load_send_control_blocking)
{
    struct batchd_client *c;
    struct batchd_reply *r;

    peer_start(peer_echo);
    c = connect_ok();
    ck_assert_int_eq(batchd_load(c, "users", "hello", 5, NULL, 5000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    ck_assert_uint_eq(r->len, 5);
    ck_assert_str_eq(r->data, "hello"); /* the copy is NUL-terminated */
    ck_assert_uint_gt(r->id, 0);
    batchd_reply_free(r);

    ck_assert_int_eq(batchd_send(c, "users", NULL, 0, NULL, 5000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_ACCEPTED);
    ck_assert_ptr_null(r->data); /* nil body */
    ck_assert_uint_eq(r->len, 0);
    batchd_reply_free(r);

    ck_assert_int_eq(batchd_control(c, "ping", NULL, 0, 5000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_str_eq(r->data, "pong");
    batchd_reply_free(r);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_NONE);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_out_of_order_replies)
{
    struct rec recs[OOO_N] = { 0 };
    uint64_t ids[OOO_N];
    struct batchd_client *c;
    char want[32];

    peer_start(peer_reverse);
    c = connect_ok();
    for (int i = 0; i < OOO_N; i++)
        ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, rec_cb,
                                            &recs[i], &ids[i]),
                         BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_pending(c), OOO_N);
    ck_assert_int_eq(batchd_want_write(c), 1);
    for (int i = 1; i < OOO_N; i++)
        ck_assert_uint_eq(ids[i], ids[i - 1] + 1);
    ck_assert_int_eq(process_all(c), 0);
    for (int i = 0; i < OOO_N; i++) {
        snprintf(want, sizeof(want), "r%llu", (unsigned long long)ids[i]);
        ck_assert_int_eq(recs[i].calls, 1);
        ck_assert_uint_eq(recs[i].id, ids[i]);
        ck_assert_str_eq(recs[i].data, want);
    }
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_submit_many)
{
    static const char *const payloads[5] = { "a", "b", "c", "d", "e" };
    static const size_t lens[5] = { 1, 1, 1, 1, 1 };
    struct rec one = { 0 };   /* one arg for all five: the last one wins */
    struct batchd_client *c;
    uint64_t first;
    int ran = 0;

    peer_start(peer_many);
    c = connect_ok();
    ck_assert_int_eq(batchd_submit_many(c, 0, "kkk",
                                        (const void *const *)payloads, lens,
                                        5, NULL, rec_cb, &one, &first),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_pending(c), 5);
    while (batchd_pending(c) > 0) {
        int n = batchd_process(c, 5000);

        ck_assert_int_ge(n, 1);
        ran += n;
    }
    ck_assert_int_eq(ran, 5);
    ck_assert_int_eq(one.calls, 5);
    ck_assert_uint_eq(one.id, first + 4);
    ck_assert_str_eq(one.data, "e");
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_control_args)
{
    static const char *const kv[] = { "format", "json" };
    struct batchd_client *c;
    struct batchd_reply *r;

    peer_start(peer_control);
    c = connect_ok();
    ck_assert_int_eq(batchd_control(c, "stats", kv, 1, 5000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    ck_assert_str_eq(r->data, "{\"keys\":{}}");
    batchd_reply_free(r);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_opts_on_the_wire)
{
    struct batchd_opts o = { .deadline_ms = 250, .priority = 7,
                             .dedup_id = "abc", .dedup_len = 3,
                             .trace = TRACEPARENT };
    struct batchd_opts zero = { 0 };
    struct batchd_client *c;
    struct batchd_reply *r;

    peer_start(peer_opts);
    c = connect_ok();
    ck_assert_int_eq(batchd_load(c, "k", "", 0, &o, 5000, &r),
                     BATCHD_CLIENT_OK);
    batchd_reply_free(r);
    ck_assert_int_eq(batchd_load(c, "k", "", 0, &zero, 5000, &r),
                     BATCHD_CLIENT_OK);
    batchd_reply_free(r);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_split_replies)
{
    struct rec recs[3] = { 0 };
    struct batchd_client *c;

    peer_start(peer_dribble);
    c = connect_ok();
    ck_assert_int_eq(batchd_submit_load(c, "k", "one", 3, NULL, rec_cb,
                                        &recs[0], NULL), 0);
    ck_assert_int_eq(batchd_submit_load(c, "k", "two", 3, NULL, rec_cb,
                                        &recs[1], NULL), 0);
    ck_assert_int_eq(batchd_submit_load(c, "k", "three", 5, NULL, rec_cb,
                                        &recs[2], NULL), 0);
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_want_write(c), 0);
    ck_assert_int_eq(process_all(c), 0);
    ck_assert_str_eq(recs[0].data, "one");
    ck_assert_str_eq(recs[1].data, "two");
    ck_assert_str_eq(recs[2].data, "three");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(recs[i].calls, 1);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_big_reply)
{
    struct batchd_client *c;
    struct batchd_reply *r;
    const uint8_t *d;

    peer_start(peer_big);
    c = connect_ok();
    ck_assert_int_eq(batchd_load(c, "k", "x", 1, NULL, 10000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_uint_eq(r->len, BIG_LEN);
    d = r->data;
    for (size_t i = 0; i < BIG_LEN; i += 4093)
        ck_assert_uint_eq(d[i], (uint8_t)(i * 7));
    batchd_reply_free(r);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_socket_from_env)
{
    struct batchd_client *c;

    peer_start(peer_hello_then_silent);
    setenv("BATCHD_SOCKET", sock_path, 1);
    c = batchd_connect_unix(NULL, 5000);
    unsetenv("BATCHD_SOCKET");
    ck_assert_ptr_nonnull(c);
    ck_assert_msg(batchd_err(c) == 0, "%s", batchd_errstr(c));
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_free_fails_pending_once)
{
    struct rec recs[10] = { 0 };
    struct batchd_client *c;

    peer_start(peer_hello_then_silent);
    c = connect_ok();
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(batchd_submit_send(c, "k", "x", 1, NULL, rec_cb,
                                            &recs[i], NULL), 0);
    ck_assert_int_eq(batchd_process(c, 0), 0); /* writes, nothing back */
    ck_assert_int_eq(batchd_process(c, 30), 0); /* waits, still nothing */
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_NONE);
    batchd_free(c);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(recs[i].calls, 1);
        ck_assert_int_eq(recs[i].got_null, 1);
        ck_assert_int_eq(recs[i].err_then, BATCHD_ERR_NONE);
    }
    peer_finish();
}
END_TEST

/* Frees the client from inside its first callback. */
static void free_in_cb(struct batchd_client *c, const struct batchd_reply *r,
                       void *arg)
{
    int *calls = arg;

    if ((*calls)++ == 0) {
        ck_assert_ptr_nonnull(r);
        batchd_free(c); /* deferred until batchd_process returns */
        /* the client is still readable here, and refuses more work */
        ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, NULL,
                                            NULL, NULL), BATCHD_CLIENT_ERR);
        ck_assert_int_eq(batchd_err(c), BATCHD_ERR_NONE);
        ck_assert_str_eq(batchd_errstr(c), "client is being freed");
    } else {
        ck_assert_ptr_null(r);
        ck_assert_int_eq(batchd_err(c), BATCHD_ERR_NONE);
    }
}

START_TEST(test_free_inside_callback)
{
    struct batchd_client *c;
    int calls = 0;

    peer_start(peer_echo);
    c = connect_ok();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, free_in_cb,
                                            &calls, NULL), 0);
    ck_assert_int_eq(batchd_process(c, 5000), -1); /* c is gone now */
    ck_assert_int_eq(calls, 5);
    peer_finish();
}
END_TEST

/* Submits a follow-up from inside the callback, as a pipeline does. */
static void resubmit_cb(struct batchd_client *c, const struct batchd_reply *r,
                        void *arg)
{
    int *left = arg;

    ck_assert_ptr_nonnull(r);
    if (--*left > 0)
        ck_assert_int_eq(batchd_submit_load(c, "k", "again", 5, NULL,
                                            resubmit_cb, left, NULL), 0);
    ck_assert_int_eq(batchd_process(c, 0), -1); /* no nesting */
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_ARG);
}

START_TEST(test_submit_from_callback)
{
    struct batchd_client *c;
    int left = 50;

    peer_start(peer_echo);
    c = connect_ok();
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, resubmit_cb,
                                        &left, NULL), 0);
    ck_assert_int_eq(process_all(c), 0);
    ck_assert_int_eq(left, 0);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_arg_error_keeps_client)
{
    struct batchd_opts bad_prio = { .priority = 256 };
    struct batchd_opts bad_dedup = { .dedup_id = "x", .dedup_len = 0 };
    struct batchd_client *c;
    struct batchd_reply *r;
    char longkey[258];

    peer_start(peer_echo);
    c = connect_ok();
    ck_assert_int_eq(batchd_load(c, "", "x", 1, NULL, 5000, &r),
                     BATCHD_CLIENT_ERR);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_ARG);
    ck_assert_str_eq(batchd_errstr(c), "key must not be empty");
    ck_assert_int_eq(batchd_submit_load(c, "\xff\xfe", "x", 1, NULL, NULL,
                                        NULL, NULL), BATCHD_CLIENT_ERR);
    ck_assert_str_eq(batchd_errstr(c), "key is not valid UTF-8");
    memset(longkey, 'k', 257);
    longkey[257] = '\0';
    ck_assert_int_eq(batchd_submit_send(c, longkey, "x", 1, NULL, NULL, NULL,
                                        NULL), BATCHD_CLIENT_ERR);
    ck_assert_str_eq(batchd_errstr(c), "key longer than 256 bytes");
    ck_assert_int_eq(batchd_submit_load(c, NULL, "x", 1, NULL, NULL, NULL,
                                        NULL), BATCHD_CLIENT_ERR);
    ck_assert_int_eq(batchd_submit_load(c, "k", NULL, 3, NULL, NULL, NULL,
                                        NULL), BATCHD_CLIENT_ERR);
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, &bad_prio, NULL,
                                        NULL, NULL), BATCHD_CLIENT_ERR);
    ck_assert_str_eq(batchd_errstr(c), "priority 256 is not in 0..255");
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, &bad_dedup, NULL,
                                        NULL, NULL), BATCHD_CLIENT_ERR);
    ck_assert_int_eq(batchd_control(c, "", NULL, 0, 5000, &r),
                     BATCHD_CLIENT_ERR);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_ARG);
    ck_assert_int_eq(batchd_pending(c), 0);

    /* Still usable, and the next call clears the slot. */
    longkey[256] = '\0';
    ck_assert_int_eq(batchd_load(c, longkey, "ok", 2, NULL, 5000, &r),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_NONE);
    ck_assert_str_eq(batchd_errstr(c), "");
    ck_assert_str_eq(r->data, "ok");
    batchd_reply_free(r);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_missing_socket)
{
    struct batchd_client *c;
    char path[160], want[200];

    snprintf(path, sizeof(path), "%s/nope.sock", tmpdir);
    c = batchd_connect_unix(path, 1000);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_IO);
    snprintf(want, sizeof(want), "connect %s: No such file or directory",
             path);
    ck_assert_str_eq(batchd_errstr(c), want);
    ck_assert_int_eq(batchd_fd(c), -1);
    ck_assert_int_eq(batchd_process(c, 0), -1);
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, NULL, NULL,
                                        NULL), BATCHD_CLIENT_ERR);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_IO); /* first error stays */
    batchd_free(c);
}
END_TEST

START_TEST(test_socket_path_too_long)
{
    struct batchd_client *c;
    char path[200];

    memset(path, 'p', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    c = batchd_connect_unix(path, 1000);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_IO);
    ck_assert_msg(strstr(batchd_errstr(c), "File name too long") != NULL,
                  "%s", batchd_errstr(c));
    batchd_free(c);
}
END_TEST

START_TEST(test_hello_refused)
{
    struct batchd_client *c;

    peer_start(peer_hello_unsupported);
    c = batchd_connect_unix(sock_path, 5000);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_REFUSED);
    ck_assert_str_eq(batchd_errstr(c), "daemon refused: UNSUPPORTED: "
                                       "version: protocol 1 not supported");
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_status_names)
{
    ck_assert_str_eq(batchd_status_name(BATCHD_OK), "OK");
    ck_assert_str_eq(batchd_status_name(BATCHD_OVERLOADED), "OVERLOADED");
    ck_assert_str_eq(batchd_status_name(BATCHD_TOO_MANY_CONNECTIONS),
                     "TOO_MANY_CONNECTIONS");
    ck_assert_str_eq(batchd_status_name(-1), "UNKNOWN");
    ck_assert_str_eq(batchd_status_name(BATCHD_STATUS_COUNT), "UNKNOWN");
    batchd_free(NULL);
}
END_TEST

/* ---- limits -------------------------------------------------------------- */

#define MANY_N 20000

/* Read MANY_N LOADs, answer them in a fixed shuffled order. */
static void peer_shuffle(struct pconn *p)
{
    uint64_t *ids = malloc(MANY_N * sizeof(*ids));
    struct bd_buf out;
    struct bd_msg m;
    unsigned seed = 42;

    if (ids == NULL)
        peer_exit(20);
    pc_hello(p);
    for (int i = 0; i < MANY_N; i++) {
        pc_next(p, &m);
        ids[i] = m.req_id;
    }
    for (int i = MANY_N - 1; i > 0; i--) {
        int j = rand_r(&seed) % (i + 1);
        uint64_t t = ids[i];

        ids[i] = ids[j];
        ids[j] = t;
    }
    bd_buf_init(&out);
    for (int i = 0; i < MANY_N; i++)
        if (bd_msg_encode_reply(&out, BD_MSG_LOAD, ids[i], BATCHD_OK,
                                &ids[i], sizeof(ids[i]), 0) != 0)
            peer_exit(21);
    pc_write(p, bd_buf_head(&out), out.len);
    bd_buf_destroy(&out);
    free(ids);
    pc_until_eof(p);
}

static void count_id_cb(struct batchd_client *c, const struct batchd_reply *r,
                        void *arg)
{
    uint8_t *seen = arg;
    uint64_t id;

    (void)c;
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->len, sizeof(id));
    memcpy(&id, r->data, sizeof(id));
    ck_assert_uint_eq(id, r->id); /* the body names the id it answers */
    ck_assert_uint_lt(id, MANY_N + 2);
    seen[id]++;
}

START_TEST(test_pending_table_grows)
{
    uint8_t *seen = calloc(MANY_N + 2, 1);
    struct batchd_client *c;

    peer_start(peer_shuffle);
    c = connect_ok();
    for (int i = 0; i < MANY_N; i++)
        ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, count_id_cb,
                                            seen, NULL), 0);
    ck_assert_int_eq(batchd_pending(c), MANY_N);
    ck_assert_int_eq(process_all(c), 0);
    for (int i = 2; i < MANY_N + 2; i++) /* id 1 was HELLO */
        ck_assert_int_eq(seen[i], 1);
    free(seen);
    batchd_free(c);
    peer_finish();
}
END_TEST

#define STRAGGLE_ROUNDS 3000

/* Hold the first LOAD back while answering STRAGGLE_ROUNDS others one by
 * one, so sequential ids wrap the table many times around an old entry. */
static void peer_straggler(struct pconn *p)
{
    struct bd_msg m;
    uint64_t held;

    pc_hello(p);
    pc_next(p, &m);
    held = m.req_id;
    for (int i = 0; i < STRAGGLE_ROUNDS; i++) {
        pc_next(p, &m);
        pc_reply(p, BD_MSG_LOAD, m.req_id, BATCHD_OK, "y", 1, 0);
    }
    pc_next(p, &m); /* the client's "done" */
    pc_reply(p, BD_MSG_SEND, m.req_id, BATCHD_ACCEPTED, NULL, 0, 0);
    pc_reply(p, BD_MSG_LOAD, held, BATCHD_OK, "held", 4, 0);
    pc_until_eof(p);
}

START_TEST(test_straggler_wraps_table)
{
    struct rec held = { 0 };
    struct batchd_client *c;
    struct batchd_reply *r;

    peer_start(peer_straggler);
    c = connect_ok();
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, rec_cb, &held,
                                        NULL), 0);
    for (int i = 0; i < STRAGGLE_ROUNDS; i++) {
        ck_assert_int_eq(batchd_load(c, "k", "x", 1, NULL, 5000, &r), 0);
        ck_assert_str_eq(r->data, "y");
        batchd_reply_free(r);
        ck_assert_msg(batchd_pending(c) == 1, "round %d: %zu pending", i,
                      batchd_pending(c));
    }
    ck_assert_int_eq(batchd_submit_send(c, "k", "done", 4, NULL, NULL, NULL,
                                        NULL), 0);
    ck_assert_int_eq(process_all(c), 0);
    ck_assert_int_eq(held.calls, 1);
    ck_assert_str_eq(held.data, "held");
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_blocking_timeout)
{
    struct rec other = { 0 };
    struct batchd_client *c;
    struct batchd_reply *r;
    double t0;

    peer_start(peer_hello_then_silent);
    c = connect_ok();
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, rec_cb, &other,
                                        NULL), 0);
    t0 = now_ms();
    ck_assert_int_eq(batchd_load(c, "k", "x", 1, NULL, 100, &r),
                     BATCHD_CLIENT_ERR);
    ck_assert_double_ge(now_ms() - t0, 99.0);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_TIMEOUT);
    ck_assert_str_eq(batchd_errstr(c), "load: no reply within 100 ms");
    /* the client is dead, and the other request was failed once */
    ck_assert_int_eq(other.calls, 1);
    ck_assert_int_eq(other.err_then, BATCHD_ERR_TIMEOUT);
    ck_assert_int_eq(batchd_pending(c), 0);
    ck_assert_int_eq(batchd_fd(c), -1);
    ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, NULL, NULL,
                                        NULL), BATCHD_CLIENT_ERR);
    batchd_free(c);
    peer_finish();
}
END_TEST


/* Submit n loads, run process until it fails; check every callback ran
 * exactly once with NULL, then the error. */
static void expect_death(peer_fn fn, int n, int err, const char *errstr)
{
    struct rec recs[8] = { 0 };
    struct batchd_client *c;
    int rc = 0;

    ck_assert_int_le(n, 8);
    peer_start(fn);
    c = connect_ok();
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, rec_cb,
                                            &recs[i], NULL), 0);
    for (int tries = 0; tries < 100 && rc >= 0; tries++)
        rc = batchd_process(c, 5000);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(batchd_err(c), err);
    ck_assert_str_eq(batchd_errstr(c), errstr);
    ck_assert_int_eq(batchd_pending(c), 0);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(recs[i].calls, 1);
        ck_assert_int_eq(recs[i].got_null, 1);
        ck_assert_int_eq(recs[i].err_then, err);
    }
    ck_assert_int_eq(batchd_process(c, 0), -1); /* stays dead */
    batchd_free(c);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(recs[i].calls, 1); /* free runs none again */
    peer_finish();
}

/* A length prefix of 64 MiB + 1 and no body: refused on the 4 bytes. */
static void w_huge_length(struct pconn *p, uint64_t first)
{
    static const uint8_t hdr[4] = { 0x04, 0x00, 0x00, 0x01 };

    (void)first;
    pc_write(p, hdr, 4);
}

static void w_zero_length(struct pconn *p, uint64_t first)
{
    static const uint8_t hdr[4] = { 0, 0, 0, 0 };

    (void)first;
    pc_write(p, hdr, 4);
}

START_TEST(test_oversized_frame_length)
{
    expect_bad(w_huge_length, 3, BATCHD_ERR_PROTOCOL,
               "reply frame length is 0 or over the 64 MiB limit");
}
END_TEST

START_TEST(test_zero_frame_length)
{
    expect_bad(w_zero_length, 1, BATCHD_ERR_PROTOCOL,
               "reply frame length is 0 or over the 64 MiB limit");
}
END_TEST

START_TEST(test_many_limits)
{
    static const char *const one[1] = { "a" };
    const void *nulls[2] = { NULL, "b" };
    size_t lens[2] = { 0, 1 }, bad_lens[2] = { 1, 1 };
    struct batchd_client *c;

    peer_start(peer_echo);
    c = connect_ok();
    ck_assert_int_eq(batchd_submit_many(c, 0, "k", (const void *const *)one,
                                        lens, 0, NULL, NULL, NULL, NULL),
                     BATCHD_CLIENT_ERR);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_ARG);
    ck_assert_int_eq(batchd_submit_many(c, 0, "k", (const void *const *)one,
                                        lens, BD_MANY_MAX + 1, NULL, NULL,
                                        NULL, NULL), BATCHD_CLIENT_ERR);
    ck_assert_int_eq(batchd_submit_many(c, 1, "k", nulls, bad_lens, 2, NULL,
                                        NULL, NULL, NULL), BATCHD_CLIENT_ERR);
    ck_assert_str_eq(batchd_errstr(c), "payload 0 is NULL with length 1");
    /* NULL with length 0 is an empty payload */
    ck_assert_int_eq(batchd_submit_many(c, 1, "k", nulls, lens, 2, NULL,
                                        NULL, NULL, NULL), BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_pending(c), 2);
    ck_assert_int_eq(process_all(c), 0);
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_alloc_failure)
{
    struct batchd_client *c;
    static char big[100000];

    bd_alloc_fail_after(1);
    ck_assert_ptr_null(batchd_connect_unix(sock_path, 100));
    bd_alloc_fail_after(0);

    peer_start(peer_hello_then_silent);
    c = connect_ok();
    bd_alloc_fail_after(1); /* the output buffer cannot grow */
    ck_assert_int_eq(batchd_submit_load(c, "k", big, sizeof(big), NULL,
                                        NULL, NULL, NULL), BATCHD_CLIENT_ERR);
    bd_alloc_fail_after(0);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_OOM);
    ck_assert_int_eq(batchd_pending(c), 0);
    ck_assert_int_eq(batchd_process(c, 0), -1);
    batchd_free(c);
    peer_finish();
}
END_TEST

/* ---- malformed ----------------------------------------------------------- */

/* Wait for n LOADs, then send what 'bad' writes. */
static int bad_n;
static void (*bad_write)(struct pconn *p, uint64_t first_id);

static void peer_then_bad(struct pconn *p)
{
    struct bd_msg m;
    uint64_t first = 0;

    pc_hello(p);
    for (int i = 0; i < bad_n; i++) {
        pc_next(p, &m);
        if (i == 0)
            first = m.req_id;
    }
    bad_write(p, first);
    pc_until_eof(p);
}

static void expect_bad(void (*w)(struct pconn *, uint64_t), int n, int err,
                       const char *errstr)
{
    bad_n = n;
    bad_write = w;
    expect_death(peer_then_bad, n, err, errstr);
}

static void w_unknown_id(struct pconn *p, uint64_t first)
{
    pc_reply(p, BD_MSG_LOAD, first, BATCHD_OK, "ok", 2, 0); /* fine */
    pc_reply(p, BD_MSG_LOAD, 999, BATCHD_OK, "?", 1, 0);
}

START_TEST(test_unknown_id)
{
    struct rec recs[3] = { 0 };
    struct batchd_client *c;
    int rc = 0;

    bad_n = 3;
    bad_write = w_unknown_id;
    peer_start(peer_then_bad);
    c = connect_ok();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, rec_cb,
                                            &recs[i], NULL), 0);
    while (rc >= 0)
        rc = batchd_process(c, 5000);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_PROTOCOL);
    ck_assert_str_eq(batchd_errstr(c), "reply for unknown request id 999");
    ck_assert_int_eq(recs[0].calls, 1);
    ck_assert_str_eq(recs[0].data, "ok");
    for (int i = 1; i < 3; i++) {
        ck_assert_int_eq(recs[i].calls, 1);
        ck_assert_int_eq(recs[i].got_null, 1);
    }
    batchd_free(c);
    peer_finish();
}
END_TEST

static void w_duplicate_id(struct pconn *p, uint64_t first)
{
    pc_reply(p, BD_MSG_LOAD, first, BATCHD_OK, "ok", 2, 0);
    pc_reply(p, BD_MSG_LOAD, first, BATCHD_OK, "ok", 2, 0);
}

START_TEST(test_duplicate_reply)
{
    struct rec recs[2] = { 0 };
    struct batchd_client *c;
    int rc = 0;

    bad_n = 2;
    bad_write = w_duplicate_id;
    peer_start(peer_then_bad);
    c = connect_ok();
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(batchd_submit_load(c, "k", "x", 1, NULL, rec_cb,
                                            &recs[i], NULL), 0);
    while (rc >= 0)
        rc = batchd_process(c, 5000);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_PROTOCOL);
    ck_assert_int_eq(recs[0].calls, 1); /* never twice */
    ck_assert_int_eq(recs[0].got_null, 0);
    ck_assert_int_eq(recs[1].calls, 1);
    ck_assert_int_eq(recs[1].got_null, 1);
    batchd_free(c);
    peer_finish();
}
END_TEST

static void w_not_array(struct pconn *p, uint64_t first)
{
    static const uint8_t body[] = { 0x81, 0xa1, 'a', 0x01 }; /* {"a": 1} */

    (void)first;
    pc_raw_frame(p, body, sizeof(body));
}

START_TEST(test_reply_not_array)
{
    expect_bad(w_not_array, 2, BATCHD_ERR_PROTOCOL,
               "reply: must be an array of 4 elements");
}
END_TEST

static void w_bad_type_byte(struct pconn *p, uint64_t first)
{
    static const uint8_t body[] = { 0x94, 0x01, 0x02, 0x00, 0xc1 };

    (void)first;
    pc_raw_frame(p, body, sizeof(body));
}

START_TEST(test_reply_bad_msgpack)
{
    expect_bad(w_bad_type_byte, 1, BATCHD_ERR_PROTOCOL,
               "bad reply frame: invalid msgpack type byte 0xc1");
}
END_TEST

static void w_lying_count(struct pconn *p, uint64_t first)
{
    /* array32 declaring 2^32-1 elements in a 6-byte body (DESIGN 8) */
    static const uint8_t body[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00 };

    (void)first;
    pc_raw_frame(p, body, sizeof(body));
}

START_TEST(test_reply_lying_count)
{
    expect_bad(w_lying_count, 1, BATCHD_ERR_PROTOCOL,
               "bad reply frame: msgpack container count exceeds the frame");
}
END_TEST

static void w_bad_status(struct pconn *p, uint64_t first)
{
    /* status 256: past any wire status (newer codes up to 255 are passed on) */
    uint8_t body[] = { 0x94, 0x01, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0, 0xcd, 0x01,
                       0x00, 0xc0 };

    body[10] = (uint8_t)first; /* small ids fit the last byte */
    pc_raw_frame(p, body, sizeof(body));
}

START_TEST(test_reply_bad_status)
{
    expect_bad(w_bad_status, 1, BATCHD_ERR_PROTOCOL,
               "reply: type, req_id and status must be integers");
}
END_TEST

static void w_half_frame(struct pconn *p, uint64_t first)
{
    struct bd_buf out;

    bd_buf_init(&out);
    if (bd_msg_encode_reply(&out, BD_MSG_LOAD, first, BATCHD_OK,
                            "payload", 7, 0) != 0)
        peer_exit(30);
    pc_write(p, bd_buf_head(&out), out.len / 2);
    bd_buf_destroy(&out);
    peer_exit(0); /* close mid-frame */
}

START_TEST(test_close_mid_frame)
{
    expect_bad(w_half_frame, 4, BATCHD_ERR_EOF,
               "daemon closed the connection mid-frame");
}
END_TEST

static void w_close(struct pconn *p, uint64_t first)
{
    (void)p;
    (void)first;
    peer_exit(0);
}

START_TEST(test_close_between_frames)
{
    expect_bad(w_close, 2, BATCHD_ERR_EOF, "daemon closed the connection");
}
END_TEST

static void w_error_frame(struct pconn *p, uint64_t first)
{
    (void)first;
    pc_reply(p, BD_MSG_ERROR, 0, BATCHD_FRAME_TOO_LARGE,
             "frame of 2000000 bytes over max_frame 1048576", 45, 1);
    peer_exit(0);
}

START_TEST(test_error_frame_mid_session)
{
    expect_bad(w_error_frame, 2, BATCHD_ERR_REFUSED,
               "daemon refused: FRAME_TOO_LARGE: frame of 2000000 bytes "
               "over max_frame 1048576");
}
END_TEST

START_TEST(test_error_frame_on_connect)
{
    struct batchd_client *c;

    peer_start(peer_too_many);
    c = batchd_connect_unix(sock_path, 5000);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_REFUSED);
    ck_assert_str_eq(batchd_errstr(c), "daemon refused: TOO_MANY_CONNECTIONS: "
                                       "max_conns 4 reached");
    batchd_free(c);
    peer_finish();
}
END_TEST

START_TEST(test_close_before_hello_reply)
{
    struct batchd_client *c;

    peer_start(peer_close_at_once);
    c = batchd_connect_unix(sock_path, 5000);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(batchd_err(c), BATCHD_ERR_EOF);
    ck_assert_str_eq(batchd_errstr(c), "daemon closed the connection");
    batchd_free(c);
    peer_finish();
}
END_TEST

/* ---- suite --------------------------------------------------------------- */

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *malformed = tcase_create("malformed");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_add_test(core, test_connect_hello);
    tcase_add_test(core, test_load_send_control_blocking);
    tcase_add_test(core, test_out_of_order_replies);
    tcase_add_test(core, test_submit_many);
    tcase_add_test(core, test_control_args);
    tcase_add_test(core, test_opts_on_the_wire);
    tcase_add_test(core, test_split_replies);
    tcase_add_test(core, test_big_reply);
    tcase_add_test(core, test_socket_from_env);
    tcase_add_test(core, test_free_fails_pending_once);
    tcase_add_test(core, test_free_inside_callback);
    tcase_add_test(core, test_submit_from_callback);
    tcase_add_test(core, test_arg_error_keeps_client);
    tcase_add_test(core, test_missing_socket);
    tcase_add_test(core, test_socket_path_too_long);
    tcase_add_test(core, test_hello_refused);
    tcase_add_test(core, test_status_names);
    suite_add_tcase(s, core);

    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_set_timeout(limits, 60);
    tcase_add_test(limits, test_pending_table_grows);
    tcase_add_test(limits, test_straggler_wraps_table);
    tcase_add_test(limits, test_blocking_timeout);
    tcase_add_test(limits, test_oversized_frame_length);
    tcase_add_test(limits, test_zero_frame_length);
    tcase_add_test(limits, test_many_limits);
    tcase_add_test(limits, test_alloc_failure);
    suite_add_tcase(s, limits);

    tcase_add_checked_fixture(malformed, setup, teardown);
    tcase_add_test(malformed, test_unknown_id);
    tcase_add_test(malformed, test_duplicate_reply);
    tcase_add_test(malformed, test_reply_not_array);
    tcase_add_test(malformed, test_reply_bad_msgpack);
    tcase_add_test(malformed, test_reply_lying_count);
    tcase_add_test(malformed, test_reply_bad_status);
    tcase_add_test(malformed, test_close_mid_frame);
    tcase_add_test(malformed, test_close_between_frames);
    tcase_add_test(malformed, test_error_frame_mid_session);
    tcase_add_test(malformed, test_error_frame_on_connect);
    tcase_add_test(malformed, test_close_before_hello_reply);
    suite_add_tcase(s, malformed);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(client_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
