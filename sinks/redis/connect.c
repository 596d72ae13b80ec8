/*
 * connect.c - one hiredis connection, ready for a batch. hiredis does
 * the protocol; this file only strings together connect, AUTH and
 * SELECT, and checks an idle socket before it is lent again.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "connect.h"

static struct timeval ms_tv(int ms)
{
    return (struct timeval){ .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
}

/* Run one setup command (argv) and expect a status reply. */
static int setup_cmd(redisContext *c, int argc, const char **argv,
                     char *err, size_t errlen)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int ok;

    if (r == NULL) {
        snprintf(err, errlen, "%s: %s", argv[0], c->errstr);
        return -1;
    }
    ok = r->type == REDIS_REPLY_STATUS;
    if (!ok)
        snprintf(err, errlen, "%s: %s", argv[0],
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return ok ? 0 : -1;
}

static int auth_and_select(redisContext *c, const struct rs_options *o,
                           char *err, size_t errlen)
{
    char db[16];

    if (o->password != NULL) {
        const char *argv[3] = { "AUTH", NULL, NULL };
        int argc = 1;

        if (o->username != NULL)
            argv[argc++] = o->username;
        argv[argc++] = o->password;
        if (setup_cmd(c, argc, argv, err, errlen) != 0)
            return -1;
    }
    if (o->db != 0) {
        snprintf(db, sizeof(db), "%d", o->db);
        if (setup_cmd(c, 2, (const char *[]){ "SELECT", db }, err, errlen))
            return -1;
    }
    return 0;
}

redisContext *rs_connect(const struct rs_options *o, char *err, size_t errlen)
{
    struct timeval tv = ms_tv(o->connect_timeout_ms);
    redisContext *c = o->socket ? redisConnectUnixWithTimeout(o->socket, tv)
                                : redisConnectWithTimeout(o->host, o->port, tv);

    if (c == NULL) {
        snprintf(err, errlen, "connect %s: out of memory", o->where);
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "connect %s: %s", o->where, c->errstr);
        goto out_free;
    }
    /* TCP: notice a peer that vanished without a FIN (hiredis sets
     * SO_KEEPALIVE with a short interval). */
    if (o->socket == NULL && redisEnableKeepAlive(c) != REDIS_OK) {
        snprintf(err, errlen, "connect %s: %s", o->where, c->errstr);
        goto out_free;
    }
    /* The connect timeout also bounds AUTH and SELECT ... */
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(err, errlen, "connect %s: %s", o->where, c->errstr);
        goto out_free;
    }
    if (auth_and_select(c, o, err, errlen) != 0)
        goto out_free;
    /* ... then each batch's reads and writes get command_timeout_ms
     * (hiredis sets SO_RCVTIMEO/SO_SNDTIMEO; {0, 0} is no bound). */
    if (redisSetTimeout(c, ms_tv(o->command_timeout_ms)) != REDIS_OK) {
        snprintf(err, errlen, "connect %s: %s", o->where, c->errstr);
        goto out_free;
    }
    return c;

out_free:
    redisFree(c);
    return NULL;
}

int rs_conn_stale(const redisContext *c)
{
    struct pollfd pf = { .fd = c->fd, .events = POLLIN };

    if (c->err != 0 || c->fd < 0)
        return 1;
    /* An idle connection has nothing to read: readable means EOF (the
     * server went away) or a reply out of step; either way, drop it. */
    return poll(&pf, 1, 0) != 0;
}

int rs_error_is_transient(const char *msg, size_t len)
{
    /* The server's state, not the item, is at fault: loading its data,
     * busy in a script, mid-failover, out of memory or unable to save. */
    static const char *const words[] = {
        "LOADING ", "BUSY ", "TRYAGAIN ", "MASTERDOWN ", "CLUSTERDOWN ",
        "READONLY ", "NOREPLICAS ", "MISCONF ", "OOM ",
    };

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = strlen(words[i]);

        if (len >= n && memcmp(msg, words[i], n) == 0)
            return 1;
    }
    return 0;
}
