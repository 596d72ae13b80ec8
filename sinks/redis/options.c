/*
 * options.c - parse and check the redis sink's options. A wrong option
 * or value is an init error that names it; nothing here touches the
 * network (an unreachable server is not a config error).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

const struct batchd_sink_option rs_option_table[] = {
    { "socket", NULL, "Unix socket of the server (or host/port)" },
    { "host", "127.0.0.1", "TCP host of the server, when no socket" },
    { "port", "6379", "TCP port of the server" },
    { "username", NULL, "AUTH user name (Redis 6 ACL)" },
    { "password", NULL, "AUTH password; none: no AUTH" },
    { "db", "0", "database number for SELECT" },
    { "command", NULL, "command template, e.g. GET user:{payload} (required)" },
    { "transaction", "off", "on: MULTI/EXEC around each batch" },
    { "pool_size", "4", "connections at most (1..1024)" },
    { "missing", "empty", "a nil reply: empty (OK, empty payload) or fail" },
    { "connect_timeout_ms", "2000", "bound on connect, AUTH and SELECT" },
    { "command_timeout_ms", "5000", "bound on each read/write; 0 = none" },
    { "pool_wait_ms", "5000", "how long a batch waits for a free connection" },
    { NULL, NULL, NULL },
};

/* Parse a whole decimal in [lo, hi] or fail naming the option. */
static int parse_int(const char *name, const char *s, long lo, long hi,
                     int *out, char *err, size_t errlen)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        snprintf(err, errlen, "option %s: '%s' is not a number in %ld..%ld",
                 name, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* on/off (also yes/no, true/false, 1/0). */
static int parse_bool(const char *name, const char *s, int *out, char *err,
                      size_t errlen)
{
    static const char *const on[] = {"on", "yes", "true", "1"};
    static const char *const off[] = {"off", "no", "false", "0"};

    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        if (strcmp(s, on[i]) == 0 || strcmp(s, off[i]) == 0) {
            *out = strcmp(s, on[i]) == 0;
            return 0;
        }
    }
    snprintf(err, errlen, "option %s: '%s' is not on or off", name, s);
    return -1;
}

static int set_str(char **dst, const char *name, const char *v, char *err,
                   size_t errlen)
{
    free(*dst);
    *dst = strdup(v);
    if (*dst == NULL) {
        snprintf(err, errlen, "option %s: out of memory", name);
        return -1;
    }
    return 0;
}

/* Where a string option goes, or NULL when k is not one. */
static char **str_slot(struct rs_options *o, const char *k)
{
    if (strcmp(k, "socket") == 0)
        return &o->socket;
    if (strcmp(k, "host") == 0)
        return &o->host;
    if (strcmp(k, "username") == 0)
        return &o->username;
    if (strcmp(k, "password") == 0)
        return &o->password;
    return NULL;
}

/* One key = value. Returns 0 or -1 with err. */
static int parse_one(struct rs_options *o, const char *k, const char *v,
                     char *err, size_t errlen)
{
    char **dst = str_slot(o, k);
    int n;

    if (dst != NULL) {
        if (v[0] == '\0') {
            snprintf(err, errlen, "option %s: empty", k);
            return -1;
        }
        return set_str(dst, k, v, err, errlen);
    }
    if (strcmp(k, "command") == 0) {
        rs_template_destroy(&o->command);
        if (rs_template_parse(&o->command, v, err, errlen) != 0)
            return -1;
        return set_str(&o->command_text, k, v, err, errlen);
    }
    if (strcmp(k, "port") == 0)
        return parse_int(k, v, 1, 65535, &o->port, err, errlen);
    if (strcmp(k, "db") == 0)
        return parse_int(k, v, 0, INT_MAX, &o->db, err, errlen);
    if (strcmp(k, "transaction") == 0)
        return parse_bool(k, v, &o->transaction, err, errlen);
    if (strcmp(k, "pool_size") == 0) {
        if (parse_int(k, v, 1, 1024, &n, err, errlen) != 0)
            return -1;
        o->pool_size = (size_t)n;
        return 0;
    }
    if (strcmp(k, "missing") == 0) {
        if (strcmp(v, "empty") != 0 && strcmp(v, "fail") != 0) {
            snprintf(err, errlen, "option missing: '%s' is not empty or fail", v);
            return -1;
        }
        o->missing = v[0] == 'f' ? RS_MISSING_FAIL : RS_MISSING_EMPTY;
        return 0;
    }
    if (strcmp(k, "connect_timeout_ms") == 0)
        return parse_int(k, v, 1, 3600000, &o->connect_timeout_ms, err, errlen);
    if (strcmp(k, "command_timeout_ms") == 0)
        return parse_int(k, v, 0, 3600000, &o->command_timeout_ms, err, errlen);
    if (strcmp(k, "pool_wait_ms") == 0)
        return parse_int(k, v, 0, 3600000, &o->pool_wait_ms, err, errlen);
    /* The daemon refuses unknown keys before init; a test host may not. */
    snprintf(err, errlen, "unknown option '%s'", k);
    return -1;
}

/* Rules across options, once all are read. */
static int check_all(struct rs_options *o, int saw_tcp, char *err, size_t errlen)
{
    if (o->command.nargs == 0) {
        snprintf(err, errlen, "option command: required (e.g. GET user:{payload})");
        return -1;
    }
    if (o->socket != NULL && saw_tcp) {
        snprintf(err, errlen, "option socket: give either socket or host/port, not both");
        return -1;
    }
    if (o->username != NULL && o->password == NULL) {
        snprintf(err, errlen, "option username: needs password");
        return -1;
    }
    if (o->host == NULL && set_str(&o->host, "host", "127.0.0.1", err, errlen) != 0)
        return -1;
    if (o->socket != NULL)
        snprintf(o->where, sizeof(o->where), "unix:%s", o->socket);
    else
        snprintf(o->where, sizeof(o->where), "%s:%d", o->host, o->port);
    return 0;
}

int rs_options_parse(struct rs_options *o, const struct batchd_kv *kv,
                     size_t nkv, char *err, size_t errlen)
{
    int saw_tcp = 0;

    memset(o, 0, sizeof(*o));
    o->port = 6379;
    o->pool_size = 4;
    o->connect_timeout_ms = 2000;
    o->command_timeout_ms = 5000;
    o->pool_wait_ms = 5000;
    for (size_t i = 0; i < nkv; i++) {
        if (parse_one(o, kv[i].key, kv[i].value, err, errlen) != 0)
            goto out_free;
        saw_tcp |= strcmp(kv[i].key, "host") == 0 || strcmp(kv[i].key, "port") == 0;
    }
    if (check_all(o, saw_tcp, err, errlen) != 0)
        goto out_free;
    return 0;

out_free:
    rs_options_destroy(o);
    return -1;
}

void rs_options_destroy(struct rs_options *o)
{
    free(o->socket);
    free(o->host);
    free(o->username);
    free(o->password);
    free(o->command_text);
    rs_template_destroy(&o->command);
    memset(o, 0, sizeof(*o));
}
