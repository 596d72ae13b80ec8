/*
 * conn.c - one client connection (see conn.h).
 *
 * Reads go into the server's shared read buffer first, and only a
 * partial frame left at the end is copied into the conn's own buffer:
 * an idle connection holds no input memory. Replies are appended to the
 * conn's output buffer and written once per loop pass with one write().
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "batch.h"
#include "call.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "msg_inline.h"
#include "request.h"
#include "state.h"

#define OUT_KEEP (64 * 1024)   /* output buffer kept between bursts */

static void conn_read_cb(evutil_socket_t fd, short what, void *arg);
static const struct bd_waiter_ops conn_waiter_ops;

/* Close at the next flush; from now on the core treats the client as
 * gone (its queued LOADs are cancelled, not sent). */
static void conn_close_asap(struct bd_conn *c)
{
    c->flags |= BD_CONN_CLOSE_ASAP;
    c->waiter.gone = 1;
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg);

struct bd_conn *bd_conn_new(struct bd_server *srv, int fd)
{
    struct bd_conn *c = bd_calloc(1, sizeof(*c));

    if (c == NULL)
        goto out_close_fd;
    c->srv = srv;
    c->fd = fd;
    c->waiter.ops = &conn_waiter_ops;
    c->waiter.refs = 1;
    c->id = ++srv->next_conn_id;
    c->last_io_ns = srv->core.clock.now_ns;
    bd_buf_init(&c->in);
    bd_buf_init(&c->out);
    c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
    c->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
    if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) != 0)
        goto out_free;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    srv->core.ctr.conns_total++;
    return c;

out_free:
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    bd_free(c);
out_close_fd:
    close(fd);
    return NULL;
}

static void conn_free(struct bd_conn *c)
{
    bd_buf_destroy(&c->in);
    bd_buf_destroy(&c->out);
    bd_free(c);
}

static struct bd_conn *conn_of(struct bd_waiter *w)
{
    return (struct bd_conn *)((char *)w - offsetof(struct bd_conn, waiter));
}

static void waiter_release_slow(struct bd_waiter *w)
{
    struct bd_conn *c = conn_of(w);

    if (--c->waiter.refs == 0) {
        conn_free(c);
        return;
    }
    /* The last answer to a half-closed client lets it close. */
    if (c->waiter.refs == 1 && (c->flags & BD_CONN_EOF))
        bd_conn_mark(c);
}

void bd_conn_mark(struct bd_conn *c)
{
    if (c->flags & (BD_CONN_PENDING | BD_CONN_CLOSED))
        return;
    c->flags |= BD_CONN_PENDING;
    c->pnext = c->srv->pending;
    c->srv->pending = c;
    bd_server_want_flush(c->srv);
}

static void waiter_deliver(struct bd_waiter *w, int type, uint64_t req_id,
                           int status, const void *body, size_t len,
                           int is_str)
{
    bd_conn_reply(conn_of(w), type, req_id, status, body, len, is_str);
}

/* How the batching core answers this connection's LOAD items. */
static const struct bd_waiter_ops conn_waiter_ops = {
    .deliver = waiter_deliver,
    .release_slow = waiter_release_slow,
};

void bd_conn_reply(struct bd_conn *c, int type, uint64_t req_id, int status,
                   const void *body, size_t len, int body_is_str)
{
    struct bd_server *srv = c->srv;

    /* After a closing ERROR frame nothing more is written (PROTOCOL.md
     * 8.2): the client has already failed what it was waiting for. */
    if (c->flags & (BD_CONN_CLOSED | BD_CONN_CLOSE_ASAP | BD_CONN_CLOSE_AFTER)) {
        c->dropped++;
        return;
    }
    if (bd_msg_put_reply(&c->out, type, req_id, status, body, len,
                         body_is_str) != 0) {
        bd_log_error("conn %llu: out of memory for a reply; closing",
                     (unsigned long long)c->id);
        conn_close_asap(c);
    } else if (c->out.len > srv->cfg->conn_out_hard) {
        /* A client that never reads cannot make us hold its replies
         * forever: past the hard cap it is cut off. */
        bd_log_warn("conn %llu: output backlog %zu over conn_out_hard; closing",
                    (unsigned long long)c->id, c->out.len);
        conn_close_asap(c);
        srv->core.ctr.conns_dropped++;
    }
    srv->core.ctr.replies++;
    bd_conn_mark(c);
}

void bd_conn_fatal(struct bd_conn *c, int status, const char *msg)
{
    bd_conn_reply(c, BD_MSG_ERROR, 0, status, msg, strlen(msg), 1);
    c->flags |= BD_CONN_CLOSE_AFTER;
    c->srv->core.ctr.conns_dropped++;
    if (!(c->flags & BD_CONN_CLOSED))
        event_del(c->rev);
}

/* Unlink from the server, close the fd, drop the open reference. */
void bd_conn_close(struct bd_conn *c)
{
    struct bd_server *srv = c->srv;

    if (c->flags & BD_CONN_CLOSED)
        return;
    event_free(c->rev);
    event_free(c->wev);
    c->rev = c->wev = NULL;
    close(c->fd);
    c->fd = -1;
    c->flags |= BD_CONN_CLOSED;
    c->waiter.gone = 1;
    c->flags &= ~BD_CONN_PENDING;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    bd_server_conn_closed(srv);
    if (c->out.len > 0)
        c->dropped++;
    if (c->waiter.refs > 1) {
        /* Its queued LOADs will never be read: drop them unsent, and
         * tell the sink about calls now run for nobody. */
        bd_batch_cancel_waiter(&srv->core, &c->waiter);
        bd_call_cancel_for(&srv->core, &c->waiter);
    }
    bd_buf_destroy(&c->in);
    bd_buf_destroy(&c->out);
    bd_log_debug("conn %llu: closed", (unsigned long long)c->id);
    bd_conn_unref(c);
}

/* Write as much output as the socket takes. Returns -1 on a dead peer. */
static int conn_write(struct bd_conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = write(c->fd, bd_buf_head(&c->out), c->out.len);

        if (n > 0) {
            bd_buf_consume(&c->out, (size_t)n);
            c->stall_since_ns = 0;
            c->last_io_ns = c->srv->core.clock.now_ns;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->stall_since_ns == 0)
                c->stall_since_ns = bd_now_ns();
            return 0;
        }
        return -1;
    }
    return 0;
}

/* Keep the write event armed exactly while output waits, and stop
 * reading a client whose replies pile up past conn_out_soft. */
static void conn_update_events(struct bd_conn *c)
{
    uint64_t soft = c->srv->cfg->conn_out_soft;

    if (c->out.len > 0 && !(c->flags & BD_CONN_WRITING)) {
        event_add(c->wev, NULL);
        c->flags |= BD_CONN_WRITING;
    } else if (c->out.len == 0 && (c->flags & BD_CONN_WRITING)) {
        event_del(c->wev);
        c->flags &= ~BD_CONN_WRITING;
    }
    if (c->out.len == 0)
        bd_buf_shrink(&c->out, OUT_KEEP);
    if (c->flags & (BD_CONN_EOF | BD_CONN_CLOSE_AFTER))
        return; /* reading is over for good */
    if (c->out.len > soft && !(c->flags & BD_CONN_READ_PAUSED)) {
        event_del(c->rev);
        c->flags |= BD_CONN_READ_PAUSED;
    } else if (c->out.len <= soft / 2 && (c->flags & BD_CONN_READ_PAUSED)) {
        event_add(c->rev, NULL);
        c->flags &= ~BD_CONN_READ_PAUSED;
        /* We were not reading, so the partial frame's clock was stopped
         * (bd_conn_check_timeouts): it starts again from now, giving the
         * client a whole frame_timeout_ms to finish what we could not
         * read meanwhile. */
        if (c->frame_start_ns)
            c->frame_start_ns = c->srv->core.clock.now_ns;
    }
}

void bd_conn_flush(struct bd_conn *c)
{
    c->flags &= ~BD_CONN_PENDING;
    if (c->flags & BD_CONN_CLOSED)
        return;
    if (c->flags & BD_CONN_CLOSE_ASAP) {
        bd_conn_close(c);
        return;
    }
    if (conn_write(c) != 0) {
        bd_log_debug("conn %llu: write: %s", (unsigned long long)c->id,
                     strerror(errno));
        bd_conn_close(c);
        return;
    }
    if (c->out.len == 0) {
        if ((c->flags & BD_CONN_CLOSE_AFTER) ||
            ((c->flags & BD_CONN_EOF) && c->waiter.refs == 1)) {
            bd_conn_close(c);
            return;
        }
    }
    conn_update_events(c);
}

/* ---- handlers --------------------------------------------------------- */

static void conn_eof(struct bd_conn *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLOUT};

    /* A peer that closed its socket (or died) leaves POLLHUP: nobody
     * will read, so its queued LOADs are cancelled now. A half-close
     * (shutdown(SHUT_WR)) does not: the client is done sending but may
     * still read every reply it is owed, so keep the conn until then. */
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) {
        conn_close_asap(c);
        bd_conn_mark(c);
        return;
    }
    c->flags |= BD_CONN_EOF;
    c->waiter.notify = 1; /* its last answer lets it close */
    event_del(c->rev);
    bd_conn_mark(c);
}

/* Feed bytes to the request layer; keep a trailing partial frame. */
static void conn_feed(struct bd_conn *c, const uint8_t *data, size_t len,
                      int from_own_buf)
{
    size_t used = bd_request_process(c, data, len);

    if (c->flags & (BD_CONN_CLOSE_ASAP | BD_CONN_CLOSE_AFTER)) {
        bd_buf_consume(&c->in, c->in.len);
        return;
    }
    if (from_own_buf) {
        bd_buf_consume(&c->in, used);
        if (c->in.len == 0)
            bd_buf_shrink(&c->in, 0);
    } else if (used < len && bd_buf_append(&c->in, data + used, len - used) != 0) {
        bd_log_error("conn %llu: out of memory for input; closing",
                     (unsigned long long)c->id);
        conn_close_asap(c);
    }
    /* A frame's clock starts at its first byte and survives reads that
     * do not complete it (slowloris). */
    if (c->in.len == 0)
        c->frame_start_ns = 0;
    else if (used > 0 || c->frame_start_ns == 0)
        c->frame_start_ns = c->last_io_ns;
}

void bd_conn_check_timeouts(struct bd_conn *c, uint64_t now)
{
    const struct bd_config *cfg = c->srv->cfg;
    const char *why = NULL;

    if (c->flags & (BD_CONN_CLOSED | BD_CONN_CLOSE_ASAP))
        return;
    /* The frame clock runs only while we read: a client we stopped
     * reading (its replies over conn_out_soft) cannot finish its frame,
     * and is the write-stall rule's business, not this one's. */
    if (cfg->frame_timeout_ms && c->frame_start_ns &&
        !(c->flags & BD_CONN_READ_PAUSED) &&
        now - c->frame_start_ns > (uint64_t)cfg->frame_timeout_ms * 1000000ull)
        why = "frame not completed within frame_timeout_ms";
    else if (cfg->write_stall_timeout_ms && c->stall_since_ns &&
             now - c->stall_since_ns >
             (uint64_t)cfg->write_stall_timeout_ms * 1000000ull)
        why = "replies not read within write_stall_timeout_ms";
    else if (cfg->idle_timeout_ms && c->waiter.refs == 1 && c->out.len == 0 &&
             c->in.len == 0 &&
             now - c->last_io_ns > (uint64_t)cfg->idle_timeout_ms * 1000000ull)
        why = "idle past idle_timeout_ms";
    if (why == NULL)
        return;
    bd_log_info("conn %llu (uid %u pid %d): %s; closing",
                (unsigned long long)c->id, (unsigned)c->uid, (int)c->pid, why);
    c->srv->core.ctr.conns_dropped++;
    if (c->stall_since_ns) {
        /* It is not reading: an error frame would only pile up. */
        conn_close_asap(c);
        bd_conn_mark(c);
        return;
    }
    bd_conn_fatal(c, BATCHD_BAD_REQUEST, why);
}

/* One read into the conn and its frames handled; EOF and errors set
 * the close flags. Returns read()'s result. */
static ssize_t conn_read_once(struct bd_conn *c)
{
    struct bd_server *srv = c->srv;
    ssize_t n;

    c->last_io_ns = bd_server_tick(srv);
    if (c->in.len == 0) {
        n = read(c->fd, srv->rbuf, sizeof(srv->rbuf));
        if (n > 0)
            conn_feed(c, srv->rbuf, (size_t)n, 0);
    } else {
        if (bd_buf_reserve(&c->in, sizeof(srv->rbuf)) != 0) {
            conn_close_asap(c);
            bd_conn_mark(c);
            return -1;
        }
        n = read(c->fd, bd_buf_tail(&c->in), bd_buf_room(&c->in));
        if (n > 0) {
            c->in.len += (size_t)n;
            conn_feed(c, bd_buf_head(&c->in), c->in.len, 1);
        }
    }
    if (n == 0) {
        conn_eof(c);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
               errno != EINTR) {
        bd_log_debug("conn %llu: read: %s", (unsigned long long)c->id,
                     strerror(errno));
        conn_close_asap(c);
    }
    bd_conn_mark(c);
    return n;
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_conn *c = arg;

    (void)fd;
    (void)what;
    if (c->flags & (BD_CONN_CLOSE_ASAP | BD_CONN_CLOSE_AFTER | BD_CONN_EOF))
        return;
    conn_read_once(c);
}

void bd_conn_drain_input(struct bd_conn *c)
{
    /* From this instant the client's writes fail (EPIPE): what is in
     * the socket now is all there will ever be, so reading it to the
     * end is bounded whatever the client does. A paused client is read
     * too; its replies stay bounded by conn_out_hard. */
    if (c->flags & (BD_CONN_CLOSED | BD_CONN_CLOSE_ASAP | BD_CONN_CLOSE_AFTER |
                    BD_CONN_EOF))
        return;
    if (shutdown(c->fd, SHUT_RD) != 0) {
        conn_close_asap(c);
        bd_conn_mark(c);
        return;
    }
    c->flags &= ~BD_CONN_READ_PAUSED;
    while (!(c->flags & (BD_CONN_CLOSE_ASAP | BD_CONN_CLOSE_AFTER | BD_CONN_EOF))) {
        ssize_t n = conn_read_once(c);

        /* After SHUT_RD an empty socket reads 0 (EOF), never EAGAIN;
         * any other error has set CLOSE_ASAP. */
        if (n < 0 && errno != EINTR)
            break;
    }
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bd_conn_mark(arg);
}
