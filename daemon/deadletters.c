/*
 * deadletters.c - CONTROL "deadletters" (see deadletters.h and
 * PROTOCOL.md "deadletters").
 *
 * list answers JSON: {"count":N,"listed":M,"letters":[{"id":..,
 * "key":"..","payload":"..","error":"..","attempts":A,"time":T},..]},
 * at most BD_DEAD_LIST_MAX letters. Strings keep every byte: bytes
 * below 0x20 and from 0x7f up are written as \u00XX (so a payload that
 * is not UTF-8 still comes back byte for byte).
 */
#include <stdio.h>
#include <string.h>

#include "access.h"
#include "alloc.h"
#include "buf.h"
#include "conn.h"
#include "deadletters.h"
#include "durable.h"
#include "log.h"
#include "msg.h"
#include "state.h"

#define BD_DEAD_LIST_MAX 1000     /* letters listed one by one */

struct listing {
    struct bd_buf *b;         /* the reply being built */
    long n;                   /* letters seen */
    int rc;                   /* -1 once memory ran out */
};

static void put(struct listing *l, const char *s, size_t n)
{
    if (l->rc == 0 && bd_buf_append(l->b, s, n) != 0)
        l->rc = -1;
}

static void put_str(struct listing *l, const char *s, size_t n)
{
    char esc[8];

    put(l, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            put(l, esc, 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", ch);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&s[i], 1);
        }
    }
    put(l, "\"", 1);
}

static void list_one(const struct bd_rec *r, void *arg)
{
    struct listing *l = arg;
    char num[96];
    int n;

    if (l->n++ >= BD_DEAD_LIST_MAX)
        return;
    n = snprintf(num, sizeof(num), "%s{\"id\":%llu,\"key\":", l->n > 1 ? "," : "",
                 (unsigned long long)r->id);
    put(l, num, (size_t)n);
    put_str(l, r->key, r->key_len);
    put(l, ",\"payload\":", 11);
    put_str(l, (const char *)r->payload, r->len);
    put(l, ",\"error\":", 9);
    put_str(l, r->err ? r->err : "", r->err_len);
    n = snprintf(num, sizeof(num), ",\"attempts\":%u,\"time\":%llu}",
                 r->attempts, (unsigned long long)r->time_s);
    put(l, num, (size_t)n);
}

/* args["action"], or "list" when absent; NULL when not a string. */
static const msgpack_object *action_of(const struct bd_msg *m)
{
    static const msgpack_object list = {
        .type = MSGPACK_OBJECT_STR, .via.str = {.size = 4, .ptr = "list"},
    };

    if (m->args == NULL)
        return &list;
    for (uint32_t i = 0; i < m->args->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->args->via.map.ptr[i];

        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 6 &&
            memcmp(kv->key.via.str.ptr, "action", 6) == 0)
            return kv->val.type == MSGPACK_OBJECT_STR ? &kv->val : NULL;
    }
    return &list;
}

static int answer(struct bd_conn *c, const struct bd_msg *m, int status,
                  const char *text, size_t len)
{
    c->srv->core.ctr.status[status]++;
    bd_conn_reply(c, BD_MSG_CONTROL, m->req_id, status, text, len, 1);
    return status;
}

static int do_list(struct bd_conn *c, const struct bd_msg *m)
{
    struct bd_buf b;
    struct listing l = {&b, 0, 0};
    char tail[64];
    long n;
    int len;

    bd_buf_init(&b);
    put(&l, "{\"letters\":[", 12);
    n = bd_durable_dead_list(&c->srv->core, list_one, &l);
    len = snprintf(tail, sizeof(tail), "],\"count\":%ld,\"listed\":%ld}", n,
                   n < BD_DEAD_LIST_MAX ? n : (long)BD_DEAD_LIST_MAX);
    put(&l, tail, (size_t)len);
    if (l.rc != 0)
        n = answer(c, m, BATCHD_OVERLOADED, "out of memory", 13);
    else
        n = answer(c, m, BATCHD_OK, (const char *)bd_buf_head(&b), b.len);
    bd_buf_destroy(&b);
    return (int)n;
}

int bd_deadletters_control(struct bd_conn *c, const struct bd_msg *m)
{
    const msgpack_object *a = action_of(m);
    char msg[64];
    long n;

    if (c->srv->core.durable == NULL)
        return answer(c, m, BATCHD_UNSUPPORTED, "deadletters: no durable route", 29);
    if (a != NULL && a->via.str.size == 4 && memcmp(a->via.str.ptr, "list", 4) == 0)
        return do_list(c, m);
    if (a == NULL || a->via.str.size != 6 || memcmp(a->via.str.ptr, "resend", 6) != 0)
        return answer(c, m, BATCHD_BAD_REQUEST,
                      "deadletters: action must be \"list\" or \"resend\"", 47);
    if (!bd_access_admin(c->srv->access, c->uid, c->gid))
        return answer(c, m, BATCHD_PERMISSION_DENIED,
                      "deadletters resend needs an admin user", 38);
    n = bd_durable_dead_resend(&c->srv->core);
    bd_log_info("control: %ld dead letters queued again", n);
    snprintf(msg, sizeof(msg), "resent %ld", n);
    return answer(c, m, BATCHD_OK, msg, strlen(msg));
}
