/*
 * client.c - libbatchd: one connection to the daemon, the pending table
 * (pending.c), blocking calls on top of the async path (see batchd.h).
 *
 * Framing and msgpack live in proto/; this file only moves bytes, keeps
 * the table of requests waiting for a reply and runs their callbacks.
 * Callbacks run only from batchd_process, the blocking calls and
 * batchd_free, never from a submit or a flush, so a caller never sees a
 * callback while it is in the middle of queueing.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "batchd.h"
#include "buf.h"
#include "frame.h"
#include "msg.h"
#include "pending.h"

#define CLIENT_MAX_FRAME (64u << 20) /* largest reply frame we accept */
#define CLIENT_MAX_REQUEST 0xffff0000u /* a frame length must fit 32 bits */
#define READ_CHUNK (64u << 10)       /* room offered to each recv */
#define BUF_KEEP (1u << 20)          /* buffers above this are freed when empty */
#define ZONE_CHUNK 2048              /* one reply array fits, no malloc per frame */
#define CONTROL_MAX_KV 64            /* most key/value pairs in a CONTROL */
#define NS_PER_MS 1000000ull

struct batchd_client {
    int fd;                   /* the socket, -1 once dead */
    int err;                  /* enum batchd_err of the first fatal error */
    char errstr[128];         /* one line for a person; "" when err is 0,
                                 except while batchd_free runs */
    unsigned dead : 1;        /* no more I/O; pending callbacks get NULL */
    unsigned peer_closed : 1; /* a write saw EPIPE: read the daemon's last words */
    unsigned freeing : 1;     /* batchd_free is running the last callbacks */
    unsigned free_deferred : 1; /* batchd_free was called from a callback */
    int in_cb;                /* callbacks running right now (nesting depth) */
    uint64_t next_id;         /* id of the next request, from 1 */
    struct bd_buf out;        /* encoded requests not yet written */
    struct bd_buf in;         /* bytes read, at most one partial frame after a pass */
    msgpack_zone zone;        /* reply decoding; cleared per frame */
    struct bd_pending_table pending; /* requests waiting for a reply */
};

/* A blocking call waits on one of these, on its own stack. */
struct waiter {
    int done;                 /* the callback ran */
    int oom;                  /* the reply came but could not be copied */
    struct batchd_reply *reply; /* the copy, owned by the blocking call */
};

/* ---- errors ------------------------------------------------------------ */

static void set_errv(struct batchd_client *c, int err, const char *fmt,
                     va_list ap)
{
    c->err = err;
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
}

static void close_fd(struct batchd_client *c)
{
    c->dead = 1;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/*
 * A fatal error: record why, close the socket. The first error wins, so
 * the reason a person reads is the cause, not a consequence. Pending
 * callbacks run later (fail_pending) from process, a blocking call or
 * free, never from the submit or flush that found the error.
 */
__attribute__((format(printf, 3, 4)))
static void fail(struct batchd_client *c, int err, const char *fmt, ...)
{
    va_list ap;

    if (c->dead)
        return;
    va_start(ap, fmt);
    set_errv(c, err, fmt, ap);
    va_end(ap);
    close_fd(c);
}

/* A refused argument: nothing was queued and the client stays usable. */
__attribute__((format(printf, 2, 3)))
static void arg_error(struct batchd_client *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_errv(c, BATCHD_ERR_ARG, fmt, ap);
    va_end(ap);
}

/* Entry check for every call that acts: a dead client refuses, and an
 * earlier BATCHD_ERR_ARG is forgotten because it hurt nothing. */
static int usable(struct batchd_client *c)
{
    if (c->dead)
        return 0;
    if (c->err == BATCHD_ERR_ARG) {
        c->err = BATCHD_ERR_NONE;
        c->errstr[0] = '\0';
    }
    return 1;
}

/* ---- time -------------------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* timeout_ms <= 0 means no deadline (0). */
static uint64_t deadline_after(int timeout_ms)
{
    return timeout_ms > 0 ? now_ns() + (uint64_t)timeout_ms * NS_PER_MS : 0;
}

/* Milliseconds left, rounded up so a poll never spins on a sub-ms rest;
 * -1 without a deadline, 0 once it passed. */
static int ms_left(uint64_t deadline)
{
    uint64_t now, left;

    if (deadline == 0)
        return -1;
    now = now_ns();
    if (now >= deadline)
        return 0;
    left = (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
    return left > INT_MAX ? INT_MAX : (int)left;
}

/* ---- callbacks --------------------------------------------------------- */

static void run_cb(struct batchd_client *c, const struct bd_pending *p,
                   const struct batchd_reply *r)
{
    if (p->cb == NULL)
        return;
    c->in_cb++;
    p->cb(c, r, p->arg);
    c->in_cb--;
}

/*
 * Run every pending callback once with a NULL reply. Only on a dead
 * client: submits fail there, so no callback can add entries while the
 * table drains.
 */
static void fail_pending(struct batchd_client *c)
{
    struct bd_pending p;

    while (bd_pending_pop(&c->pending, &p))
        run_cb(c, &p, NULL);
}

/* Stop all I/O for batchd_free. The class stays BATCHD_ERR_NONE, which
 * tells the NULL callbacks that follow a free from a lost connection. */
static void close_for_free(struct batchd_client *c)
{
    if (!c->dead)
        snprintf(c->errstr, sizeof(c->errstr), "client is being freed");
    close_fd(c);
}

static void client_destroy(struct batchd_client *c)
{
    c->freeing = 1;
    close_for_free(c);
    fail_pending(c);
    bd_buf_destroy(&c->out);
    bd_buf_destroy(&c->in);
    msgpack_zone_destroy(&c->zone);
    bd_pending_destroy(&c->pending);
    bd_free(c);
}

/* The end of every public call that may run callbacks: a batchd_free
 * asked for from inside a callback happens here, after the last one.
 * Returns 1 when c is gone. */
static int finish_deferred_free(struct batchd_client *c)
{
    if (!c->free_deferred || c->in_cb > 0)
        return 0;
    client_destroy(c);
    return 1;
}

/* ---- writing ----------------------------------------------------------- */

/*
 * Write what the socket takes now. EAGAIN is fine. EPIPE means the daemon
 * stopped reading, usually right after it sent an error frame: drop the
 * output and let the next read find that frame or the EOF, which say
 * more than "Broken pipe".
 */
static int flush_out(struct batchd_client *c)
{
    while (c->out.len > 0) {
        ssize_t n;

        if (c->peer_closed) {
            bd_buf_consume(&c->out, c->out.len);
            break;
        }
        n = send(c->fd, bd_buf_head(&c->out), c->out.len,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            bd_buf_consume(&c->out, (size_t)n);
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else if (errno == EPIPE || errno == ECONNRESET) {
            c->peer_closed = 1;
        } else {
            fail(c, BATCHD_ERR_IO, "write: %s", strerror(errno));
            return -1;
        }
    }
    bd_buf_shrink(&c->out, BUF_KEEP);
    return 0;
}

/* ---- reading ----------------------------------------------------------- */

/* One complete frame. Returns 1 (one reply handed to its callback, a
 * NULL callback included), or -1 when the client died. */
static int handle_frame(struct batchd_client *c, const uint8_t *body,
                        size_t len)
{
    struct bd_reply_msg m;
    struct batchd_reply r;
    struct bd_pending p;
    const char *why;
    char err[96];

    if (bd_frame_check(body, len, &why) != 0) {
        fail(c, BATCHD_ERR_PROTOCOL, "bad reply frame: %s", why);
        return -1;
    }
    msgpack_zone_clear(&c->zone);
    if (bd_msg_decode_reply(body, len, &c->zone, &m, err, sizeof(err)) != 0) {
        fail(c, BATCHD_ERR_PROTOCOL, "%s", err);
        return -1;
    }
    if (m.type == BD_MSG_ERROR) {
        fail(c, BATCHD_ERR_REFUSED, "daemon refused: %s: %.*s",
             bd_status_name(m.status), (int)(m.body ? m.body_len : 0),
             m.body ? (const char *)m.body : "");
        return -1;
    }
    if (!bd_pending_take(&c->pending, m.req_id, &p)) {
        fail(c, BATCHD_ERR_PROTOCOL, "reply for unknown request id %llu",
             (unsigned long long)m.req_id);
        return -1;
    }
    r.id = m.req_id;
    r.status = m.status;
    r.data = m.body;
    r.len = m.body_len;
    run_cb(c, &p, &r);
    return 1;
}

/*
 * Decode every complete frame in the input buffer. Reply bodies point
 * into that buffer; that is safe because nothing can read into it while
 * a callback runs (batchd_process refuses to nest).
 * Returns the callbacks run, or -1 when the client died.
 */
static int dispatch_frames(struct batchd_client *c)
{
    int ran = 0;

    while (!c->dead && c->in.len >= BD_FRAME_HDR) {
        size_t blen;
        int rc = bd_frame_peek(bd_buf_head(&c->in), c->in.len,
                               CLIENT_MAX_FRAME, &blen);

        if (rc == BD_FRAME_BAD_LENGTH) {
            /* Refused on the 4 length bytes alone, before any body. */
            fail(c, BATCHD_ERR_PROTOCOL,
                 "reply frame length is 0 or over the 64 MiB limit");
            break;
        }
        if (c->in.len - BD_FRAME_HDR < blen)
            break;
        rc = handle_frame(c, bd_buf_head(&c->in) + BD_FRAME_HDR, blen);
        if (rc < 0)
            break;
        ran += rc;
        bd_buf_consume(&c->in, BD_FRAME_HDR + blen);
    }
    if (c->dead)
        return -1;
    bd_buf_shrink(&c->in, BUF_KEEP);
    bd_pending_shrink(&c->pending);
    return ran;
}

/* Room for the rest of a partial frame whose length is known, else a
 * chunk: a big reply lands in few reads, and frames are never copied. */
static size_t read_want(const struct batchd_client *c)
{
    size_t blen;

    /* An empty buffer may have no storage at all: do not peek into it. */
    if (c->in.len >= BD_FRAME_HDR &&
        bd_frame_peek(bd_buf_head(&c->in), c->in.len, CLIENT_MAX_FRAME,
                      &blen) == BD_FRAME_OK &&
        c->in.len < BD_FRAME_HDR + blen &&
        BD_FRAME_HDR + blen - c->in.len > READ_CHUNK)
        return BD_FRAME_HDR + blen - c->in.len;
    return READ_CHUNK;
}

/* One recv, then run what it completed. Returns callbacks run (0 also on
 * EAGAIN), or -1 when the client died. */
static int read_replies(struct batchd_client *c)
{
    ssize_t n;

    if (bd_buf_reserve(&c->in, read_want(c)) != 0) {
        fail(c, BATCHD_ERR_OOM, "out of memory for the input buffer");
        return -1;
    }
    do {
        n = recv(c->fd, bd_buf_tail(&c->in), bd_buf_room(&c->in),
                 MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n < 0 && errno != ECONNRESET) {
        fail(c, BATCHD_ERR_IO, "read: %s", strerror(errno));
        return -1;
    }
    /* A reset only says the daemon closed while our bytes were unread
     * (it refused us, or died): to the caller that is an EOF. */
    if (n <= 0) {
        if (c->in.len > 0)
            fail(c, BATCHD_ERR_EOF, "daemon closed the connection mid-frame");
        else
            fail(c, BATCHD_ERR_EOF, "daemon closed the connection");
        return -1;
    }
    c->in.len += (size_t)n;
    return dispatch_frames(c);
}

/* Wait for the socket. Returns 1 readable (or hung up), 2 only writable,
 * 0 deadline passed, -1 dead. */
static int wait_io(struct batchd_client *c, uint64_t deadline)
{
    struct pollfd pfd;
    int rc;

    pfd.fd = c->fd;
    pfd.events = POLLIN;
    if (c->out.len > 0 && !c->peer_closed)
        pfd.events |= POLLOUT;
    do {
        rc = poll(&pfd, 1, ms_left(deadline));
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        fail(c, BATCHD_ERR_IO, "poll: %s", strerror(errno));
        return -1;
    }
    if (rc == 0)
        return 0;
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
        return 1;
    return 2;
}

/*
 * The loop behind batchd_process and every blocking call: write, wait,
 * read, run callbacks, until one ran or the time is up. The socket is
 * polled before it is read, so an idle wait costs no failed recv; a
 * timeout of 0 reads at once.
 */
static int process_io(struct batchd_client *c, int timeout_ms)
{
    uint64_t deadline = deadline_after(timeout_ms);
    int rc;

    while (!c->dead) {
        if (flush_out(c) != 0)
            break;
        if (timeout_ms < 0 && c->pending.n == 0)
            return 0; /* nothing could ever arrive */
        if (timeout_ms != 0) {
            rc = wait_io(c, deadline);
            if (rc == 0)
                return 0;
            if (rc < 0)
                break;
            if (rc == 2)
                continue;
        }
        rc = read_replies(c);
        if (rc < 0)
            break;
        if (rc > 0 || timeout_ms == 0)
            return rc;
        if (timeout_ms > 0 && ms_left(deadline) == 0)
            return 0;
    }
    fail_pending(c);
    return -1;
}

/* ---- requests ---------------------------------------------------------- */

static int check_payload(struct batchd_client *c, const void *data,
                         size_t len)
{
    if (data == NULL && len > 0) {
        arg_error(c, "payload is NULL with length %zu", len);
        return -1;
    }
    if (len > CLIENT_MAX_REQUEST) {
        arg_error(c, "payload of %zu bytes does not fit a frame", len);
        return -1;
    }
    return 0;
}

static int check_key(struct batchd_client *c, const char *key, size_t *klen)
{
    const char *why;

    if (key == NULL) {
        arg_error(c, "key is NULL");
        return -1;
    }
    *klen = strnlen(key, BD_KEY_MAX + 1);
    why = bd_msg_check_key(key, *klen);
    if (why != NULL) {
        arg_error(c, "key %s", why);
        return -1;
    }
    return 0;
}

/* Map the public options onto the wire ones. *out is NULL when every
 * option is at its default, which saves the opts map on the wire. */
static int map_opts(struct batchd_client *c, const struct batchd_opts *o,
                    struct bd_opts *bo, const struct bd_opts **out)
{
    *out = NULL;
    if (o == NULL)
        return 0;
    memset(bo, 0, sizeof(*bo));
    if (o->priority < 0 || o->priority > 255) {
        arg_error(c, "priority %d is not in 0..255", o->priority);
        return -1;
    }
    if (o->dedup_id != NULL &&
        (o->dedup_len == 0 || o->dedup_len > BD_DEDUP_MAX)) {
        arg_error(c, "dedup_id must be 1..%d bytes", BD_DEDUP_MAX);
        return -1;
    }
    if (o->trace != NULL && strnlen(o->trace, BD_TRACE_MAX + 1) > BD_TRACE_MAX) {
        arg_error(c, "trace is longer than %d bytes", BD_TRACE_MAX);
        return -1;
    }
    bo->has_deadline = o->deadline_ms > 0;
    bo->deadline_ms = o->deadline_ms;
    bo->has_priority = o->priority > 0;
    bo->priority = (uint32_t)o->priority;
    bo->dedup_id = o->dedup_id;
    bo->dedup_len = o->dedup_len;
    bo->trace = o->trace;
    bo->trace_len = o->trace ? strlen(o->trace) : 0;
    if (bo->has_deadline || bo->has_priority || bo->dedup_id || bo->trace)
        *out = bo;
    return 0;
}

/* Hand out n ids and register cb for each; the frame is already in out. */
static uint64_t take_ids(struct batchd_client *c, size_t n,
                         batchd_reply_cb cb, void *arg)
{
    uint64_t first = c->next_id;

    for (size_t i = 0; i < n; i++)
        bd_pending_put(&c->pending, first + i, cb, arg);
    c->next_id += n;
    return first;
}

static int out_of_memory(struct batchd_client *c)
{
    fail(c, BATCHD_ERR_OOM, "out of memory queueing a request");
    return BATCHD_CLIENT_ERR;
}

/* LOAD or SEND of one item: validate, encode straight into the output
 * buffer, register. The only allocation is an occasional table or
 * buffer growth. */
static int submit_item(struct batchd_client *c, int type, const char *key,
                       const void *data, size_t len,
                       const struct batchd_opts *opts, batchd_reply_cb cb,
                       void *arg, uint64_t *id_out)
{
    struct bd_opts bo;
    const struct bd_opts *bop;
    size_t klen;
    uint64_t id;

    if (!usable(c))
        return BATCHD_CLIENT_ERR;
    if (check_key(c, key, &klen) != 0 || check_payload(c, data, len) != 0 ||
        map_opts(c, opts, &bo, &bop) != 0)
        return BATCHD_CLIENT_ERR;
    if (bd_pending_reserve(&c->pending, 1) != 0 ||
        bd_msg_encode_item(&c->out, type, c->next_id, key, klen,
                           data ? data : "", len, bop) != 0)
        return out_of_memory(c);
    id = take_ids(c, 1, cb, arg);
    if (id_out)
        *id_out = id;
    return BATCHD_CLIENT_OK;
}

static int check_many(struct batchd_client *c, const void *const *data,
                      const size_t *lens, size_t n)
{
    size_t total = 0;

    if (n == 0 || n > BD_MANY_MAX || data == NULL || lens == NULL) {
        arg_error(c, "need 1..%d payloads", BD_MANY_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (data[i] == NULL && lens[i] > 0) {
            arg_error(c, "payload %zu is NULL with length %zu", i, lens[i]);
            return -1;
        }
        if (lens[i] > CLIENT_MAX_REQUEST - total) {
            arg_error(c, "payloads do not fit a frame");
            return -1;
        }
        total += lens[i];
    }
    return 0;
}

static int submit_control(struct batchd_client *c, const char *cmd,
                          const char *const *kv, size_t nkv,
                          batchd_reply_cb cb, void *arg)
{
    size_t clen = cmd ? strnlen(cmd, BD_NAME_MAX + 1) : 0;

    if (clen == 0 || clen > BD_NAME_MAX) {
        arg_error(c, "control command must be 1..%d bytes", BD_NAME_MAX);
        return BATCHD_CLIENT_ERR;
    }
    if (nkv > CONTROL_MAX_KV || (nkv > 0 && kv == NULL)) {
        arg_error(c, "control takes at most %d key/value pairs",
                  CONTROL_MAX_KV);
        return BATCHD_CLIENT_ERR;
    }
    for (size_t i = 0; i < 2 * nkv; i++) {
        if (kv[i] == NULL) {
            arg_error(c, "control argument %zu is NULL", i);
            return BATCHD_CLIENT_ERR;
        }
    }
    if (bd_pending_reserve(&c->pending, 1) != 0 ||
        bd_msg_encode_control(&c->out, c->next_id, cmd, kv, nkv) != 0)
        return out_of_memory(c);
    take_ids(c, 1, cb, arg);
    return BATCHD_CLIENT_OK;
}

/* ---- blocking calls ---------------------------------------------------- */

/* Returns a new reply holding its own copy of the body (NUL-terminated
 * for text); free with batchd_reply_free. NULL when memory is short. */
static struct batchd_reply *reply_copy(const struct batchd_reply *r)
{
    struct batchd_reply *copy = bd_malloc(sizeof(*copy) + r->len + 1);
    char *data;

    if (copy == NULL)
        return NULL;
    *copy = *r;
    data = (char *)(copy + 1);
    if (r->data != NULL)
        memcpy(data, r->data, r->len);
    data[r->len] = '\0';
    copy->data = r->data != NULL ? data : NULL;
    return copy;
}

static void waiter_cb(struct batchd_client *c, const struct batchd_reply *r,
                      void *arg)
{
    struct waiter *w = arg;

    (void)c;
    w->done = 1;
    if (r == NULL)
        return;
    w->reply = reply_copy(r);
    if (w->reply == NULL)
        w->oom = 1;
}

/*
 * Run the loop until w's callback ran. On timeout the client dies: the
 * reply may still come, and an id that can be answered late must not be
 * reused or left dangling, so the connection goes.
 */
static void wait_for(struct batchd_client *c, struct waiter *w,
                     int timeout_ms, const char *what)
{
    uint64_t deadline = deadline_after(timeout_ms);

    while (!w->done) {
        int left = ms_left(deadline);

        if (left == 0) {
            fail(c, BATCHD_ERR_TIMEOUT, "%s: no reply within %d ms", what,
                 timeout_ms);
            fail_pending(c);
            break;
        }
        if (process_io(c, left) < 0)
            break;
    }
}

/* Start of a blocking call: it may not run inside a callback, where the
 * input buffer is still being walked. */
static int blocking_ok(struct batchd_client *c, struct batchd_reply **out)
{
    if (out != NULL)
        *out = NULL;
    if (!usable(c))
        return 0;
    if (c->in_cb > 0) {
        arg_error(c, "blocking call from inside a callback");
        return 0;
    }
    if (out == NULL) {
        arg_error(c, "out is NULL");
        return 0;
    }
    return 1;
}

/* End of a blocking call: hand over the reply, or report why not. */
static int blocking_end(struct batchd_client *c, struct waiter *w,
                        struct batchd_reply **out)
{
    if (finish_deferred_free(c)) {
        batchd_reply_free(w->reply);
        return BATCHD_CLIENT_ERR;
    }
    if (w->reply != NULL) {
        *out = w->reply;
        return BATCHD_CLIENT_OK;
    }
    if (w->oom) {
        fail(c, BATCHD_ERR_OOM, "out of memory copying a reply");
        fail_pending(c);
    }
    return BATCHD_CLIENT_ERR;
}

static int blocking_item(struct batchd_client *c, int type, const char *key,
                         const void *data, size_t len,
                         const struct batchd_opts *opts, int timeout_ms,
                         struct batchd_reply **out)
{
    struct waiter w = { 0 };

    if (!blocking_ok(c, out))
        return BATCHD_CLIENT_ERR;
    if (submit_item(c, type, key, data, len, opts, waiter_cb, &w, NULL) != 0)
        return BATCHD_CLIENT_ERR;
    wait_for(c, &w, timeout_ms, type == BD_MSG_LOAD ? "load" : "send");
    return blocking_end(c, &w, out);
}

/* ---- connecting -------------------------------------------------------- */

static const char *socket_path(const char *path)
{
    const char *env;

    if (path != NULL)
        return path;
    env = getenv("BATCHD_SOCKET");
    if (env != NULL && env[0] != '\0')
        return env;
    return BATCHD_DEFAULT_SOCKET;
}

/* The end of a long path, so that the reason after it still fits the
 * 128-byte error slot; the end is the part that tells paths apart. */
static const char *path_tail(const char *path)
{
    size_t n = strlen(path);

    return n > 72 ? path + n - 72 : path;
}

/* A non-blocking connect on AF_UNIX either completes at once or fails
 * with EAGAIN when the listen backlog is full; retry that until the
 * deadline instead of failing a client during a burst of connects. */
static int connect_retry(struct batchd_client *c, const struct sockaddr_un *sa,
                         const char *path, uint64_t deadline, int timeout_ms)
{
    static const struct timespec pause_1ms = { 0, 1000000 };

    for (;;) {
        if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EINPROGRESS) {
            fail(c, BATCHD_ERR_IO, "connect %s: %s", path_tail(path),
                 strerror(errno));
            return -1;
        }
        if (ms_left(deadline) == 0) {
            fail(c, BATCHD_ERR_TIMEOUT, "connect %s: backlog full for %d ms",
                 path_tail(path), timeout_ms);
            return -1;
        }
        nanosleep(&pause_1ms, NULL);
    }
}

static int open_socket(struct batchd_client *c, const char *path,
                       uint64_t deadline, int timeout_ms)
{
    struct sockaddr_un sa;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fail(c, BATCHD_ERR_IO, "connect %s: %s", path_tail(path),
             strerror(ENAMETOOLONG));
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        fail(c, BATCHD_ERR_IO, "socket: %s", strerror(errno));
        return -1;
    }
    return connect_retry(c, &sa, path, deadline, timeout_ms);
}

/* "prog[pid]", cut to fit the daemon's name limit. */
static void client_name(char *name, size_t size)
{
    snprintf(name, size, "%.100s[%ld]", program_invocation_short_name,
             (long)getpid());
}

/* HELLO goes through the pending table like any request, so it shares
 * the loop, the timeout and the error frame handling. */
static int say_hello(struct batchd_client *c, int timeout_ms)
{
    struct waiter w = { 0 };
    char name[BD_NAME_MAX + 1];
    int rc = BATCHD_CLIENT_OK;

    client_name(name, sizeof(name));
    if (bd_pending_reserve(&c->pending, 1) != 0 ||
        bd_msg_encode_hello(&c->out, c->next_id, BD_PROTO_VERSION, name) != 0)
        return out_of_memory(c);
    take_ids(c, 1, waiter_cb, &w);
    wait_for(c, &w, timeout_ms, "hello");
    if (w.reply != NULL && w.reply->status != BATCHD_OK) {
        fail(c, BATCHD_ERR_REFUSED, "daemon refused: %s: %s",
             bd_status_name(w.reply->status),
             w.reply->data ? (const char *)w.reply->data : "");
        rc = BATCHD_CLIENT_ERR;
    } else if (w.reply == NULL) {
        if (w.oom)
            fail(c, BATCHD_ERR_OOM, "out of memory reading HELLO");
        rc = BATCHD_CLIENT_ERR;
    }
    batchd_reply_free(w.reply);
    return rc;
}

static struct batchd_client *client_new(void)
{
    struct batchd_client *c = bd_calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    if (!msgpack_zone_init(&c->zone, ZONE_CHUNK)) {
        bd_free(c);
        return NULL;
    }
    c->fd = -1;
    c->next_id = 1;
    bd_pending_init(&c->pending);
    bd_buf_init(&c->out);
    bd_buf_init(&c->in);
    return c;
}

/* ---- public API -------------------------------------------------------- */

BATCHD_API struct batchd_client *batchd_connect_unix(const char *path,
                                                     int timeout_ms)
{
    struct batchd_client *c = client_new();
    uint64_t deadline = deadline_after(timeout_ms);

    if (c == NULL)
        return NULL;
    path = socket_path(path);
    if (open_socket(c, path, deadline, timeout_ms) != 0)
        return c;
    if (timeout_ms > 0) {
        timeout_ms = ms_left(deadline);
        if (timeout_ms == 0)
            timeout_ms = 1;
    }
    say_hello(c, timeout_ms);
    return c;
}

BATCHD_API void batchd_free(struct batchd_client *c)
{
    if (c == NULL || c->freeing)
        return;
    if (c->in_cb > 0) {
        /* Not inside its own callback: the caller's loop still holds
         * pointers into the client. Stop I/O now, free on the way out. */
        c->free_deferred = 1;
        close_for_free(c);
        return;
    }
    client_destroy(c);
}

BATCHD_API int batchd_err(const struct batchd_client *c)
{
    return c ? c->err : BATCHD_ERR_OOM;
}

BATCHD_API const char *batchd_errstr(const struct batchd_client *c)
{
    return c ? c->errstr : "out of memory";
}

BATCHD_API const char *batchd_status_name(int status)
{
    return bd_status_name(status);
}

BATCHD_API int batchd_load(struct batchd_client *c, const char *key,
                           const void *data, size_t len,
                           const struct batchd_opts *opts, int timeout_ms,
                           struct batchd_reply **out)
{
    return blocking_item(c, BD_MSG_LOAD, key, data, len, opts, timeout_ms,
                         out);
}

BATCHD_API int batchd_send(struct batchd_client *c, const char *key,
                           const void *data, size_t len,
                           const struct batchd_opts *opts, int timeout_ms,
                           struct batchd_reply **out)
{
    return blocking_item(c, BD_MSG_SEND, key, data, len, opts, timeout_ms,
                         out);
}

BATCHD_API int batchd_control(struct batchd_client *c, const char *cmd,
                              const char *const *kv, size_t nkv,
                              int timeout_ms, struct batchd_reply **out)
{
    struct waiter w = { 0 };

    if (!blocking_ok(c, out))
        return BATCHD_CLIENT_ERR;
    if (submit_control(c, cmd, kv, nkv, waiter_cb, &w) != 0)
        return BATCHD_CLIENT_ERR;
    wait_for(c, &w, timeout_ms, cmd);
    return blocking_end(c, &w, out);
}

BATCHD_API void batchd_reply_free(struct batchd_reply *r)
{
    bd_free(r); /* the body copy lives in the same block */
}

BATCHD_API int batchd_submit_load(struct batchd_client *c, const char *key,
                                  const void *data, size_t len,
                                  const struct batchd_opts *opts,
                                  batchd_reply_cb cb, void *arg,
                                  uint64_t *id_out)
{
    return submit_item(c, BD_MSG_LOAD, key, data, len, opts, cb, arg, id_out);
}

BATCHD_API int batchd_submit_send(struct batchd_client *c, const char *key,
                                  const void *data, size_t len,
                                  const struct batchd_opts *opts,
                                  batchd_reply_cb cb, void *arg,
                                  uint64_t *id_out)
{
    return submit_item(c, BD_MSG_SEND, key, data, len, opts, cb, arg, id_out);
}

BATCHD_API int batchd_submit_many(struct batchd_client *c, int fire_and_forget,
                                  const char *key, const void *const *data,
                                  const size_t *lens, size_t n,
                                  const struct batchd_opts *opts,
                                  batchd_reply_cb cb, void *arg,
                                  uint64_t *first_id)
{
    int type = fire_and_forget ? BD_MSG_SEND_MANY : BD_MSG_LOAD_MANY;
    struct bd_opts bo;
    const struct bd_opts *bop;
    size_t klen;
    uint64_t id;

    if (!usable(c))
        return BATCHD_CLIENT_ERR;
    if (check_key(c, key, &klen) != 0 || check_many(c, data, lens, n) != 0 ||
        map_opts(c, opts, &bo, &bop) != 0)
        return BATCHD_CLIENT_ERR;
    if (bd_pending_reserve(&c->pending, n) != 0 ||
        bd_msg_encode_many(&c->out, type, c->next_id, key, klen, data, lens,
                           n, bop) != 0)
        return out_of_memory(c);
    id = take_ids(c, n, cb, arg);
    if (first_id)
        *first_id = id;
    return BATCHD_CLIENT_OK;
}

BATCHD_API int batchd_fd(const struct batchd_client *c)
{
    return c->fd;
}

BATCHD_API int batchd_want_write(const struct batchd_client *c)
{
    return !c->dead && !c->peer_closed && c->out.len > 0;
}

BATCHD_API int batchd_flush(struct batchd_client *c)
{
    if (!usable(c))
        return BATCHD_CLIENT_ERR;
    return flush_out(c) == 0 ? BATCHD_CLIENT_OK : BATCHD_CLIENT_ERR;
}

BATCHD_API int batchd_process(struct batchd_client *c, int timeout_ms)
{
    int ran;

    if (c->in_cb > 0) {
        /* Nesting would read into the buffer the caller is walking. */
        if (!c->dead)
            arg_error(c, "batchd_process called from inside a callback");
        return -1;
    }
    if (!usable(c)) {
        fail_pending(c);
        ran = -1;
    } else {
        ran = process_io(c, timeout_ms);
        if (c->free_deferred)
            ran = -1;
    }
    finish_deferred_free(c);
    return ran;
}

BATCHD_API size_t batchd_pending(const struct batchd_client *c)
{
    return c->pending.n;
}
