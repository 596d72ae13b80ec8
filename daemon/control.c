/*
 * control.c - CONTROL commands (see control.h).
 */
#include <string.h>

#include "access.h"
#include "alloc.h"
#include "batch.h"
#include "conn.h"
#include "control.h"
#include "log.h"
#include "msg.h"
#include "server.h"
#include "stats.h"

/* args["format"] == "text"? */
static int want_text(const struct bd_msg *m)
{
    if (m->args == NULL)
        return 0;
    for (uint32_t i = 0; i < m->args->via.map.size; i++) {
        const msgpack_object *k = &m->args->via.map.ptr[i].key;
        const msgpack_object *v = &m->args->via.map.ptr[i].val;

        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 6 &&
            memcmp(k->via.str.ptr, "format", 6) == 0 &&
            v->type == MSGPACK_OBJECT_STR && v->via.str.size == 4 &&
            memcmp(v->via.str.ptr, "text", 4) == 0)
            return 1;
    }
    return 0;
}

static void reply_text(struct bd_conn *c, const struct bd_msg *m, int status,
                       const char *text)
{
    bd_conn_reply(c, BD_MSG_CONTROL, m->req_id, status, text, strlen(text), 1);
}

static void reply_buf(struct bd_conn *c, const struct bd_msg *m,
                      struct bd_buf *b, int rc)
{
    if (rc != 0)
        reply_text(c, m, BATCHD_OVERLOADED, "out of memory rendering the reply");
    else
        bd_conn_reply(c, BD_MSG_CONTROL, m->req_id, BATCHD_OK, bd_buf_head(b),
                      b->len, 1);
    bd_buf_destroy(b);
}

static int is_cmd(const struct bd_msg *m, const char *name)
{
    return m->name_len == strlen(name) && memcmp(m->name, name, m->name_len) == 0;
}

int bd_control_handle(struct bd_conn *c, const struct bd_msg *m)
{
    struct bd_server *srv = c->srv;
    struct bd_buf b;

    bd_buf_init(&b);
    if ((is_cmd(m, "pause") || is_cmd(m, "resume") || is_cmd(m, "drain")) &&
        !bd_access_admin(srv->access, c->uid, c->gid)) {
        bd_log_warn("control %.*s refused: uid %d is not an admin",
                    (int)m->name_len, m->name, (int)c->uid);
        srv->ctr.status[BATCHD_PERMISSION_DENIED]++;
        reply_text(c, m, BATCHD_PERMISSION_DENIED,
                   "this command needs an admin user (admin_uids/admin_gids)");
        return BATCHD_PERMISSION_DENIED;
    }
    if (is_cmd(m, "ping")) {
        reply_text(c, m, BATCHD_OK, "pong");
    } else if (is_cmd(m, "stats")) {
        reply_buf(c, m, &b, bd_stats_render(srv, !want_text(m), &b));
    } else if (is_cmd(m, "health")) {
        reply_buf(c, m, &b, bd_stats_health(srv, &b));
    } else if (is_cmd(m, "pause")) {
        if (srv->state == BD_STATE_RUNNING)
            srv->state = BD_STATE_PAUSED;
        bd_log_info("control: dispatch paused");
        reply_text(c, m, BATCHD_OK, "paused");
    } else if (is_cmd(m, "resume")) {
        if (srv->state == BD_STATE_PAUSED)
            srv->state = BD_STATE_RUNNING;
        bd_batch_flush_all(srv);
        bd_log_info("control: dispatch resumed");
        reply_text(c, m, BATCHD_OK, "running");
    } else if (is_cmd(m, "drain")) {
        bd_log_info("control: drain requested");
        reply_text(c, m, BATCHD_OK, "stopping: flushing every batch, then exit");
        bd_server_stop(srv);
    } else {
        c->srv->ctr.status[BATCHD_UNSUPPORTED]++;
        reply_text(c, m, BATCHD_UNSUPPORTED,
                   is_cmd(m, "reload") ?
                   "reload: not supported yet; restart the daemon to apply "
                   "a new configuration" :
                   "command: unknown (ping, stats, health, pause, resume, drain)");
        return BATCHD_UNSUPPORTED;
    }
    return BATCHD_OK;
}
