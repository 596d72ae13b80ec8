/*
 * control.c - CONTROL commands (see control.h).
 */
#include <string.h>

#include "access.h"
#include "alloc.h"
#include "batch.h"
#include "conn.h"
#include "control.h"
#include "deadletters.h"
#include "log.h"
#include "msg.h"
#include "state.h"
#include "stats.h"

static int str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

/* args["format"] of stats and health: 1 for "json" (or no format), 0 for "text",
 * -1 for anything else, which is refused rather than answered in a
 * format the client did not ask for. */
static int stats_json(const struct bd_msg *m)
{
    if (m->args == NULL)
        return 1;
    for (uint32_t i = 0; i < m->args->via.map.size; i++) {
        const msgpack_object *v = &m->args->via.map.ptr[i].val;

        if (!str_is(&m->args->via.map.ptr[i].key, "format"))
            continue;
        return str_is(v, "json") ? 1 : str_is(v, "text") ? 0 : -1;
    }
    return 1;
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

/* reload: OK with what changed and what needs a restart, or
 * BAD_REQUEST with the config's errors (the old config stays). */
static int control_reload(struct bd_conn *c, const struct bd_msg *m)
{
    char report[4096];
    int status;

    bd_log_info("control: reload requested by uid %d", (int)c->uid);
    status = bd_server_reload(c->srv, report, sizeof(report)) == 0 ?
             BATCHD_OK : BATCHD_BAD_REQUEST;
    if (status != BATCHD_OK)
        c->srv->core.ctr.status[status]++;
    reply_text(c, m, status, report);
    return status;
}

int bd_control_handle(struct bd_conn *c, const struct bd_msg *m)
{
    struct bd_server *srv = c->srv;
    struct bd_buf b;

    bd_buf_init(&b);
    if ((is_cmd(m, "pause") || is_cmd(m, "resume") || is_cmd(m, "drain") ||
         is_cmd(m, "reload")) &&
        !bd_access_admin(srv->access, c->uid, c->gid)) {
        bd_log_warn("control %.*s refused: uid %d is not an admin",
                    (int)m->name_len, m->name, (int)c->uid);
        srv->core.ctr.status[BATCHD_PERMISSION_DENIED]++;
        reply_text(c, m, BATCHD_PERMISSION_DENIED,
                   "this command needs an admin user (admin_uids/admin_gids)");
        return BATCHD_PERMISSION_DENIED;
    }
    if (is_cmd(m, "ping")) {
        reply_text(c, m, BATCHD_OK, "pong");
    } else if (is_cmd(m, "stats") || is_cmd(m, "health")) {
        int json = stats_json(m);

        if (json < 0) {
            srv->core.ctr.status[BATCHD_BAD_REQUEST]++;
            reply_text(c, m, BATCHD_BAD_REQUEST,
                       "format: must be \"json\" or \"text\"");
            return BATCHD_BAD_REQUEST;
        }
        /* Key names and counts tell one client about the others' keys. */
        reply_buf(c, m, &b, is_cmd(m, "health") ? bd_stats_health(srv, json, &b)
                  : bd_stats_render(srv, json, bd_access_admin(srv->access,
                                                               c->uid, c->gid),
                                    &b));
    } else if (is_cmd(m, "pause")) {
        if (srv->core.state == BD_STATE_RUNNING)
            srv->core.state = BD_STATE_PAUSED;
        bd_log_info("control: dispatch paused");
        reply_text(c, m, BATCHD_OK, "paused");
    } else if (is_cmd(m, "resume")) {
        if (srv->core.state == BD_STATE_PAUSED)
            srv->core.state = BD_STATE_RUNNING;
        bd_batch_flush_all(&srv->core);
        bd_log_info("control: dispatch resumed");
        reply_text(c, m, BATCHD_OK, "running");
    } else if (is_cmd(m, "deadletters")) {
        return bd_deadletters_control(c, m);
    } else if (is_cmd(m, "drain")) {
        bd_log_info("control: drain requested");
        reply_text(c, m, BATCHD_OK, "stopping: flushing every batch, then exit");
        bd_server_stop(srv);
    } else if (is_cmd(m, "reload")) {
        return control_reload(c, m);
    } else {
        c->srv->core.ctr.status[BATCHD_UNSUPPORTED]++;
        reply_text(c, m, BATCHD_UNSUPPORTED, "command: unknown (ping, stats, "
                   "health, pause, resume, drain, reload, deadletters)");
        return BATCHD_UNSUPPORTED;
    }
    return BATCHD_OK;
}
