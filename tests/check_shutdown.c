/*
 * check_shutdown.c - what SIGTERM promises the clients (PROTOCOL.md 8.3):
 * every request that reached the daemon gets exactly one reply, also
 * those still in a socket when the last sink call ended.
 *
 * The clients are raw sockets, not libbatchd: only the bytes the socket
 * took say which requests reached the daemon, and a library buffers.
 * A request counts as sent when send() took its whole frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "buf.h"
#include "frame.h"
#include "helpers.h"
#include "msg.h"

#define ST_CLIENTS 20
#define ST_WINDOW 512             /* LOADs in flight per client */
#define ST_MAX 200000             /* LOADs one client sends at most */
#define ST_FIRST_ID 2             /* id 1 is the HELLO */
#define ST_RUN_MS 60000           /* a client gives up after this */

/* One client's account, in memory shared with the test. */
struct st_result {
    long sent;                /* LOADs whose whole frame the socket took */
    long lost;                /* sent and never answered */
    long extra;               /* answered twice, or answered but not sent */
    long ok;                  /* replies OK */
    long shutting_down;       /* replies SHUTTING_DOWN */
    long other;               /* replies with any other status */
    int epipe;                /* a write failed: the daemon stopped reading */
    int eof;                  /* the daemon closed the connection */
};

struct st_shared {
    char sock[128];
    struct st_result r[ST_CLIENTS];
};

/* A client's state while it runs (in the child). */
struct st_client {
    int fd;
    struct bd_buf out;        /* frames not yet taken by the socket */
    struct bd_buf in;         /* bytes read, a partial frame at most */
    msgpack_zone zone;
    uint64_t *ends;           /* ends[i]: stream offset after LOAD i's frame */
    uint8_t *replies;         /* replies[i]: replies seen for LOAD i */
    uint64_t encoded;         /* bytes encoded so far (stream offset) */
    uint64_t written;         /* bytes the socket took */
    long issued;              /* LOADs encoded */
    long answered;            /* LOAD replies read */
};

/* Keep ST_WINDOW LOADs in flight, encoded at the end of out. */
static int st_fill(struct st_client *k, int idx)
{
    char key[16];

    snprintf(key, sizeof(key), "st.%d", idx);
    while (k->issued < ST_MAX && k->issued - k->answered < ST_WINDOW) {
        size_t before = k->out.len;

        if (bd_msg_encode_item(&k->out, BD_MSG_LOAD,
                               (uint64_t)(ST_FIRST_ID + k->issued), key,
                               strlen(key), "payload", 7, NULL) != 0)
            return -1;
        k->encoded += k->out.len - before;
        k->ends[k->issued++] = k->encoded;
    }
    return 0;
}

/* Write what the socket takes. EPIPE: the daemon reads no more. */
static int st_write(struct st_client *k, struct st_result *r)
{
    while (k->out.len > 0 && !r->epipe) {
        ssize_t n = send(k->fd, bd_buf_head(&k->out), k->out.len,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n > 0) {
            bd_buf_consume(&k->out, (size_t)n);
            k->written += (uint64_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return 0;
        } else if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            r->epipe = 1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Count every complete reply frame in the input buffer. */
static int st_parse(struct st_client *k, struct st_result *r)
{
    size_t blen;

    while (bd_frame_peek(bd_buf_head(&k->in), k->in.len, BD_FRAME_DEFAULT_MAX,
                         &blen) == BD_FRAME_OK && k->in.len - BD_FRAME_HDR >= blen) {
        struct bd_reply_msg m;
        char err[96];
        long i;

        msgpack_zone_clear(&k->zone);
        if (bd_msg_decode_reply(bd_buf_head(&k->in) + BD_FRAME_HDR, blen, &k->zone,
                                &m, err, sizeof(err)) != 0)
            return -1;
        bd_buf_consume(&k->in, BD_FRAME_HDR + blen);
        if (m.type == BD_MSG_HELLO)
            continue;
        i = (long)m.req_id - ST_FIRST_ID;
        if (m.type != BD_MSG_LOAD || i < 0 || i >= k->issued) {
            r->extra++;
            continue;
        }
        k->replies[i]++;
        k->answered++;
        if (m.status == BATCHD_OK)
            r->ok++;
        else if (m.status == BATCHD_SHUTTING_DOWN)
            r->shutting_down++;
        else
            r->other++;
    }
    return 0;
}

/* Read what is there. Returns 1 at EOF (or a reset: the same here). */
static int st_read(struct st_client *k)
{
    ssize_t n;

    if (bd_buf_reserve(&k->in, 65536) != 0)
        return -1;
    n = read(k->fd, bd_buf_tail(&k->in), bd_buf_room(&k->in));
    if (n > 0) {
        k->in.len += (size_t)n;
        return 0;
    }
    if (n == 0 || errno == ECONNRESET)
        return 1;
    return errno == EAGAIN || errno == EINTR ? 0 : -1;
}

/* Which LOADs reached the daemon, and did each get one reply. */
static void st_account(const struct st_client *k, struct st_result *r)
{
    for (long i = 0; i < k->issued; i++) {
        if (k->ends[i] <= k->written) {
            r->sent++;
            if (k->replies[i] == 0)
                r->lost++;
            else if (k->replies[i] > 1)
                r->extra++;
        } else if (k->replies[i] > 0) {
            r->extra++;
        }
    }
}

/* A client: HELLO, then LOADs ST_WINDOW deep until the daemon closes. */
static int st_client_run(int idx, void *arg)
{
    struct st_shared *sh = arg;
    struct st_result *r = &sh->r[idx];
    struct st_client k = { 0 };
    double end;
    int rc = 0;

    k.fd = bd_test_unix_connect(sh->sock);
    if (k.fd < 0)
        return bd_test_child_fail(idx, "connect: %s", strerror(errno));
    bd_buf_init(&k.out);
    bd_buf_init(&k.in);
    msgpack_zone_init(&k.zone, 2048);
    k.ends = calloc(ST_MAX, sizeof(*k.ends));
    k.replies = calloc(ST_MAX, 1);
    if (k.ends == NULL || k.replies == NULL ||
        bd_msg_encode_hello(&k.out, 1, BD_PROTO_VERSION, "shutdown") != 0 ||
        bd_test_raw_write(k.fd, bd_buf_head(&k.out), k.out.len) != 0)
        return bd_test_child_fail(idx, "setup failed");
    bd_buf_consume(&k.out, k.out.len);
    fcntl(k.fd, F_SETFL, fcntl(k.fd, F_GETFL) | O_NONBLOCK);
    if (bd_test_procs_barrier() != 0)
        return bd_test_child_fail(idx, "barrier");
    end = bd_test_now_ms() + ST_RUN_MS;
    while (!r->eof && rc == 0) {
        struct pollfd p = {.fd = k.fd, .events = POLLIN};

        if (bd_test_now_ms() > end) {
            rc = bd_test_child_fail(idx, "the daemon did not close within %d ms",
                                    ST_RUN_MS);
            break;
        }
        if (st_fill(&k, idx) != 0 || st_write(&k, r) != 0) {
            rc = bd_test_child_fail(idx, "write: %s", strerror(errno));
            break;
        }
        if (k.out.len > 0 && !r->epipe)
            p.events |= POLLOUT;
        if (poll(&p, 1, 100) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        switch (st_read(&k)) {
        case 1:
            r->eof = 1;
            break;
        case 0:
            break;
        default:
            rc = bd_test_child_fail(idx, "read: %s", strerror(errno));
        }
        if (rc == 0 && st_parse(&k, r) != 0)
            rc = bd_test_child_fail(idx, "a reply frame does not decode");
    }
    st_account(&k, r);
    free(k.ends);
    free(k.replies);
    msgpack_zone_destroy(&k.zone);
    bd_buf_destroy(&k.out);
    bd_buf_destroy(&k.in);
    close(k.fd);
    return rc;
}

/*
 * Issue 10 item 13. 20 clients keep 512 LOADs each in flight against a
 * sink that takes 5 ms a call, and go on sending until the daemon
 * closes. SIGTERM arrives mid-load: the daemon finishes the work it
 * holds and answers new LOADs SHUTTING_DOWN; when the last call is done,
 * requests are still arriving. Every LOAD whose frame the socket took
 * must get exactly one reply; the daemon exits 0.
 */
START_TEST(test_sigterm_answers_every_request_sent)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[sink.slow]\nplugin = cost\ncall_us = 5000\nitem_us = 0\nmode = sleep\n\n"
        "[route.all]\nmatch = *\nsink = slow\npolicy = immediate\nmax_items = 64\n");
    struct st_shared *sh = bd_test_shared_alloc(sizeof(*sh));
    struct st_result t = { 0 };
    struct bd_test_procs *p;
    int eof = 0, epipe = 0;

    snprintf(sh->sock, sizeof(sh->sock), "%s", bd_test_daemon_socket(d));
    p = bd_test_procs_start(ST_CLIENTS, st_client_run, sh);
    bd_test_procs_release(p);
    usleep(1000 * 1000);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    ck_assert_int_eq(bd_test_procs_wait(p, bd_test_scaled(90000), NULL), 0);
    for (int i = 0; i < ST_CLIENTS; i++) {
        const struct st_result *r = &sh->r[i];

        t.sent += r->sent;
        t.lost += r->lost;
        t.extra += r->extra;
        t.ok += r->ok;
        t.shutting_down += r->shutting_down;
        t.other += r->other;
        eof += r->eof;
        epipe += r->epipe;
    }
    printf("shutdown: %ld LOADs sent, %ld OK, %ld SHUTTING_DOWN, %ld other; "
           "%ld without a reply, %ld extra; %d of %d clients saw the daemon stop "
           "reading (EPIPE)\n", t.sent, t.ok, t.shutting_down, t.other, t.lost,
           t.extra, epipe, ST_CLIENTS);
    ck_assert_int_eq(eof, ST_CLIENTS);
    ck_assert_msg(t.ok > 0 && t.shutting_down > 0,
                  "SIGTERM did not land mid-load (%ld OK, %ld SHUTTING_DOWN)",
                  t.ok, t.shutting_down);
    ck_assert_int_eq(t.other, 0);
    ck_assert_msg(t.lost == 0, "%ld of %ld LOADs sent got no reply", t.lost, t.sent);
    ck_assert_msg(t.extra == 0, "%ld replies too many", t.extra);
    bd_test_shared_free(sh, sizeof(*sh));
    bd_test_daemon_free(d);
}
END_TEST

static Suite *shutdown_suite(void)
{
    Suite *s = suite_create("shutdown");
    TCase *core = tcase_create("core");

    tcase_set_timeout(core, 200);
    bd_test_add(core, test_sigterm_answers_every_request_sent);
    suite_add_tcase(s, core);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(shutdown_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
