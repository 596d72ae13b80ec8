/*
 * request.c - turn frames into requests (see request.h). Plays the part
 * of memcached's proto_text.c: this file knows the protocol, conn.c
 * knows sockets, batch.c knows queues.
 */
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "conn.h"
#include "control.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "msg_inline.h"
#include "request.h"
#include "state.h"

/*
 * Log a refused request without letting a hostile client flood the log:
 * at most 20 lines a second, and the number suppressed is reported.
 */
static void log_reject(struct bd_conn *c, const char *key, size_t keylen,
                       int status, const char *why)
{
    static uint64_t window_ns, in_window, suppressed;
    uint64_t now = bd_now_ns();

    if (now - window_ns > 1000000000ull) {
        if (suppressed)
            bd_log_warn("%llu more rejects not logged",
                        (unsigned long long)suppressed);
        window_ns = now;
        in_window = 0;
        suppressed = 0;
    }
    if (++in_window > 20) {
        suppressed++;
        return;
    }
    bd_log_warn("conn %llu: key %.*s: %s: %s", (unsigned long long)c->id,
                (int)(keylen > 64 ? 64 : keylen), keylen ? key : "-",
                bd_status_name(status), why);
}

/* Answer one refused item, and log it. */
static void reject(struct bd_conn *c, int type, uint64_t req_id, int status,
                   const char *key, size_t keylen, const char *why)
{
    c->srv->core.ctr.status[status]++;
    log_reject(c, key, keylen, status, why);
    bd_conn_reply(c, type, req_id, status, why, strlen(why), 1);
}

/* Count a request refused as bad; past max_bad_requests in a row the
 * client is cut off. Any other request resets the count. */
static void count_bad(struct bd_conn *c, int status)
{
    if (status != BATCHD_BAD_REQUEST && status != BATCHD_UNSUPPORTED) {
        c->bad_in_row = 0;
        return;
    }
    if (++c->bad_in_row > c->srv->cfg->max_bad_requests)
        bd_conn_fatal(c, BATCHD_BAD_REQUEST,
                      "too many bad requests in a row; closing");
}

/*
 * A request refused as a whole: one reply per item id it covers (a
 * *_MANY of n items gets n), so no caller waits forever. A client that
 * sends nothing but such requests is cut off.
 */
static void reject_msg(struct bd_conn *c, const struct bd_msg *m, int type,
                       int status, const char *why)
{
    uint64_t id = m->has_id ? m->req_id : 0;

    for (uint32_t i = 0; i < m->fanout; i++)
        reject(c, type, id + i, status, m->key, m->key_len, why);
    count_bad(c, status);
}

static void handle_hello(struct bd_conn *c, const struct bd_msg *m)
{
    static const char banner[] = "batchd " BD_VERSION;

    if (c->flags & BD_CONN_HELLO) {
        reject_msg(c, m, m->type, BATCHD_BAD_REQUEST, "HELLO: sent twice");
        return;
    }
    c->flags |= BD_CONN_HELLO;
    c->bad_in_row = 0;
    bd_conn_reply(c, BD_MSG_HELLO, m->req_id, BATCHD_OK, banner,
                  sizeof(banner) - 1, 1);
}

/* One item of a LOAD/SEND or of a *_MANY (opts may be NULL: none).
 * Returns its status. */
static inline int handle_item(struct bd_conn *c, const struct bd_msg_item *in,
                              const struct bd_opts *opts)
{
    struct bd_server *srv = c->srv;
    int is_load = in->type == BD_MSG_LOAD || in->type == BD_MSG_LOAD_MANY;
    struct bd_admit a;

    if (srv->core.state == BD_STATE_STOPPING) {
        reject(c, in->type, in->req_id, BATCHD_SHUTTING_DOWN, in->key,
               in->key_len, "daemon is shutting down");
        return BATCHD_SHUTTING_DOWN;
    }
    a.ack = is_load ? NULL : &c->waiter;
    a.deferred = 0;
    bd_batch_admit(&srv->core, in, opts, is_load ? &c->waiter : NULL, &a);
    if (a.status != BATCHD_OK) {
        reject(c, in->type, in->req_id, a.status, in->key, in->key_len, a.msg);
        return a.status;
    }
    /* A durable SEND's ACCEPTED comes after the spool sync (durable.c). */
    if (!is_load && !a.deferred) {
        srv->core.ctr.status[BATCHD_ACCEPTED]++;
        bd_conn_reply(c, in->type, in->req_id, BATCHD_ACCEPTED, NULL, 0, 0);
    }
    return BATCHD_OK;
}

/* Returns BATCHD_BAD_REQUEST when every item was refused as bad, so the
 * request counts once toward max_bad_requests. */
static int handle_many(struct bd_conn *c, const struct bd_msg *m)
{
    struct bd_msg_item in = {
        .type = m->type, .key = m->key, .key_len = m->key_len,
    };
    int all_bad = 1;

    for (uint32_t i = 0; i < m->nitems; i++) {
        const msgpack_object *o = &m->items[i];

        in.req_id = m->req_id + i;
        if (o->type == MSGPACK_OBJECT_BIN) {
            in.payload = (const uint8_t *)o->via.bin.ptr;
            in.payload_len = o->via.bin.size;
        } else {
            in.payload = (const uint8_t *)o->via.str.ptr;
            in.payload_len = o->via.str.size;
        }
        if (handle_item(c, &in, &m->opts) != BATCHD_BAD_REQUEST)
            all_bad = 0;
    }
    return all_bad ? BATCHD_BAD_REQUEST : BATCHD_OK;
}


static void handle_msg(struct bd_conn *c, const struct bd_msg *m)
{
    if (m->type != BD_MSG_HELLO && !(c->flags & BD_CONN_HELLO)) {
        reject_msg(c, m, m->type, BATCHD_BAD_REQUEST, "expected HELLO first");
        return;
    }
    switch (m->type) {
    case BD_MSG_HELLO:
        handle_hello(c, m);
        break;
    case BD_MSG_LOAD:
    case BD_MSG_SEND:
        count_bad(c, handle_item(c, &(struct bd_msg_item){
                                     .type = m->type, .req_id = m->req_id,
                                     .key = m->key, .key_len = m->key_len,
                                     .payload = m->payload,
                                     .payload_len = m->payload_len},
                                 &m->opts));
        break;
    case BD_MSG_LOAD_MANY:
    case BD_MSG_SEND_MANY:
        count_bad(c, handle_many(c, m));
        break;
    case BD_MSG_CONTROL:
        count_bad(c, bd_control_handle(c, m));
        break;
    }
}

static void handle_frame(struct bd_conn *c, const uint8_t *body, size_t len)
{
    struct bd_server *srv = c->srv;
    const char *why;
    char err[200];
    struct bd_msg_item f;
    struct bd_msg m;
    int st;

    if (bd_msg_get_item(body, len, &f)) {
        if (c->flags & BD_CONN_HELLO) {
            count_bad(c, handle_item(c, &f, NULL));
            return;
        }
        bd_msg_from_item(&m, &f); /* refused: the rare path */
        handle_msg(c, &m);
        return;
    }
    if (bd_frame_check(body, len, &why) != 0) {
        /* Framing is intact, so the connection can go on; without a
         * readable req_id the answer is a connection-level frame. */
        memset(&m, 0, sizeof(m));
        m.fanout = 1;
        reject_msg(c, &m, BD_MSG_ERROR, BATCHD_BAD_REQUEST, why);
        return;
    }
    msgpack_zone_clear(&srv->zone);
    st = bd_msg_decode(body, len, &srv->zone, &m, err, sizeof(err));
    if (st != BATCHD_OK) {
        reject_msg(c, &m, m.type >= 0 && m.has_id ? m.type : BD_MSG_ERROR,
                   st, err);
        return;
    }
    handle_msg(c, &m);
}

size_t bd_request_process(struct bd_conn *c, const uint8_t *data, size_t len)
{
    size_t pos = 0;

    while (!(c->flags & (BD_CONN_CLOSE_ASAP | BD_CONN_CLOSE_AFTER))) {
        size_t max = c->srv->cfg->max_frame, body;
        char msg[128];
        int rc;

        if (!(c->flags & BD_CONN_HELLO) && max > BD_FRAME_PRE_HELLO_MAX)
            max = BD_FRAME_PRE_HELLO_MAX;
        rc = bd_frame_peek(data + pos, len - pos, max, &body);
        if (rc == BD_FRAME_NEED)
            break;
        if (rc == BD_FRAME_BAD_LENGTH) {
            snprintf(msg, sizeof(msg),
                     "frame length %u: must be 1..%zu%s",
                     (unsigned)bd_get_be(data + pos, BD_FRAME_HDR),
                     max, (c->flags & BD_CONN_HELLO) ? "" : " before HELLO");
            log_reject(c, NULL, 0, BATCHD_FRAME_TOO_LARGE, msg);
            bd_conn_fatal(c, BATCHD_FRAME_TOO_LARGE, msg);
            return len;
        }
        if (len - pos - BD_FRAME_HDR < body)
            break;
        handle_frame(c, data + pos + BD_FRAME_HDR, body);
        pos += BD_FRAME_HDR + body;
    }
    if (c->flags & (BD_CONN_CLOSE_ASAP | BD_CONN_CLOSE_AFTER))
        return len;
    return pos;
}
