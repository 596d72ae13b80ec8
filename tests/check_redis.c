/*
 * check_redis.c - the redis sink (sinks/redis/) against a real
 * redis-server started by the suite (tests/redis_server.c), driven by the
 * real daemon and real client processes; Redis is queried afterwards
 * with hiredis to prove it holds exactly what was answered OK.
 *
 * "core":    pipelined writes answered in order, exactly the OK items in
 *            Redis; GET with missing = empty / fail; a failing command
 *            fails alone; binary payloads; MULTI/EXEC (EXEC's array,
 *            EXECABORT); AUTH (password, user); SELECT; a reply slower
 *            than command_timeout_ms; TCP on the loopback; a connection
 *            lost in the middle of a pipeline; OOM retried, not failed.
 * "outage":  redis-cli shutdown + restart under load loses nothing;
 *            server down at daemon start, then started; pool_size 1
 *            under key_concurrency 4; isolation = process, also with
 *            the server down.
 * "config":  --check-config names a wrong option; bad values and
 *            templates stop the start naming the option.
 * "template": the command template parser on its own (template.c):
 *            the documented syntax, argument by argument.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <hiredis.h>

#include "../sinks/redis/template.h"
#include "batchd.h"
#include "helpers.h"
#include "redis_server.h"

/* ---- fixtures ------------------------------------------------------------------ */

/* A daemon with one redis sink "r" on r's socket and one route "*". */
static struct bd_test_daemon *start_daemon(const struct bd_test_redis *r,
                                           const char *sink_opts,
                                           const char *route_opts)
{
    struct bd_test_daemon *d;
    char *conf;

    ck_assert_int_ge(asprintf(&conf,
        "[sink.r]\nplugin = redis\nsocket = %s\n%s\n"
        "[route.all]\nmatch = *\nsink = r\n%s\n",
        bd_test_redis_socket(r), sink_opts, route_opts), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    return d;
}

/* A hiredis connection of the test's own (AUTH when password). */
static redisContext *rconnect(const struct bd_test_redis *r, const char *password)
{
    redisContext *c = redisConnectUnix(bd_test_redis_socket(r));

    ck_assert_msg(c != NULL && c->err == 0, "hiredis connect: %s",
                  c ? c->errstr : "out of memory");
    if (password != NULL) {
        redisReply *rep = redisCommand(c, "AUTH %s", password);

        ck_assert_msg(rep != NULL && rep->type == REDIS_REPLY_STATUS, "AUTH failed");
        freeReplyObject(rep);
    }
    return c;
}

/* One command (hiredis format); asserts a reply came. Caller frees. */
static redisReply *rcmd(redisContext *c, const char *fmt, ...)
{
    redisReply *rep;
    va_list ap;

    va_start(ap, fmt);
    rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(rep != NULL, "hiredis %s: %s", fmt, c->errstr);
    return rep;
}

/* A command whose reply is an integer. */
static long long rint_cmd(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *rep = rcmd(c, fmt, arg);
    long long v;

    ck_assert_msg(rep->type == REDIS_REPLY_INTEGER, "%s: reply type %d", fmt, rep->type);
    v = rep->integer;
    freeReplyObject(rep);
    return v;
}

/* The value of `field:` in INFO section (e.g. clients, connected_clients). */
static long long info_field(redisContext *c, const char *section, const char *field)
{
    redisReply *rep = rcmd(c, "INFO %s", section);
    char *at;
    long long v = -1;

    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    at = strstr(rep->str, field);
    if (at != NULL)
        v = strtoll(at + strlen(field) + 1, NULL, 10);
    freeReplyObject(rep);
    return v;
}

/* One blocking LOAD of binary data. Returns the status; *body (may be
 * NULL) gets a copy of the reply (free()), *blen its length. */
static int rload(struct bd_test_daemon *d, const char *key, const void *data,
                 size_t len, char **body, size_t *blen)
{
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *rep = NULL;
    int rc = batchd_load(c, key, data, len, NULL, bd_test_scaled(30000), &rep), st;

    ck_assert_msg(rc == BATCHD_CLIENT_OK, "LOAD %s: %s", key, batchd_errstr(c));
    st = rep->status;
    if (body != NULL) {
        *body = malloc(rep->len + 1);
        ck_assert_ptr_nonnull(*body);
        if (rep->len)
            memcpy(*body, rep->data, rep->len);
        (*body)[rep->len] = '\0';
        *blen = rep->len;
    }
    batchd_reply_free(rep);
    batchd_free(c);
    return st;
}

/* LOAD a text payload and assert status and (when want) the body. */
static void expect_load(struct bd_test_daemon *d, const char *key, const char *payload,
                        int status, const char *want)
{
    char *body;
    size_t blen;
    int st = rload(d, key, payload, strlen(payload), &body, &blen);

    ck_assert_msg(st == status, "LOAD %s '%s': %s (%s), want %s", key, payload,
                  batchd_status_name(st), body, batchd_status_name(status));
    if (want != NULL)
        ck_assert_msg(strstr(body, want) != NULL, "LOAD %s '%s': body '%s' lacks '%s'",
                      key, payload, body, want);
    free(body);
}

/* How many lines of the daemon's log hold needle. */
static int log_count(struct bd_test_daemon *d, const char *needle)
{
    char *log = bd_test_daemon_log(d), *p = log;
    int n = 0;

    while (p != NULL && (p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    free(log);
    return n;
}

/* Wait up to ms for needle in the daemon log. */
static int log_wait(struct bd_test_daemon *d, const char *needle, int ms)
{
    double end = bd_test_now_ms() + bd_test_scaled(ms);

    while (log_count(d, needle) == 0) {
        if (bd_test_now_ms() > end)
            return 0;
        usleep(20000);
    }
    return 1;
}

/* ---- many client processes, one reply per item -------------------------------- */

/* Shared between the test and its forked clients: one per item. */
struct ml_cell {
    int replies;              /* callbacks run for this item (must end 1) */
    int status;               /* last status, -1 for a NULL reply */
    char body[24];            /* start of the reply body */
};

struct ml_args {
    const char *sock;         /* daemon socket */
    int per_client;           /* items each client sends */
    int depth;                /* in flight per client */
    int pace_us;              /* sleep between submissions (0: none) */
    int nkeys;                /* keys "k0".."k<nkeys-1>"; 0: "l<client>" */
    struct ml_cell *cells;    /* clients * per_client, shared memory */
};

static void ml_payload(int idx, int i, char *p, size_t n)
{
    snprintf(p, n, "c%d-%d", idx, i);
}

static void ml_cb(struct batchd_client *c, const struct batchd_reply *r, void *arg)
{
    struct ml_cell *cell = arg;

    (void)c;
    cell->replies++;
    cell->status = r ? r->status : -1;
    if (r != NULL)
        snprintf(cell->body, sizeof(cell->body), "%.*s",
                 (int)(r->len < sizeof(cell->body) - 1 ? r->len : sizeof(cell->body) - 1),
                 r->data ? (const char *)r->data : "");
}

static int ml_client(int idx, void *arg)
{
    const struct ml_args *a = arg;
    struct ml_cell *cells = a->cells + (size_t)idx * (size_t)a->per_client;
    struct batchd_client *c = batchd_connect_unix(a->sock, 10000);
    int next = 0, done = 0;
    char key[16];

    if (batchd_err(c) != BATCHD_ERR_NONE)
        return bd_test_child_fail(idx, "connect: %s", batchd_errstr(c));
    if (bd_test_procs_barrier() != 0)
        return 1;
    while (done < a->per_client) {
        while (next < a->per_client && next - done < a->depth) {
            char p[32];

            ml_payload(idx, next, p, sizeof(p));
            if (a->nkeys > 0)
                snprintf(key, sizeof(key), "k%d", (idx + next) % a->nkeys);
            else
                snprintf(key, sizeof(key), "l%d", idx);
            if (batchd_submit_load(c, key, p, strlen(p), NULL, ml_cb, &cells[next],
                                   NULL) != BATCHD_CLIENT_OK)
                return bd_test_child_fail(idx, "submit: %s", batchd_errstr(c));
            next++;
            if (a->pace_us > 0)
                usleep((useconds_t)a->pace_us);
        }
        if (batchd_process(c, a->pace_us > 0 ? 1 : 100) < 0)
            return bd_test_child_fail(idx, "process: %s", batchd_errstr(c));
        done = 0;
        for (int i = 0; i < next; i++)
            done += cells[i].replies > 0;
    }
    batchd_free(c);
    return 0;
}

/* Run clients x a->per_client items; assert each got exactly one reply. */
static void ml_run(struct ml_args *a, int clients, void (*mid)(void *), void *mid_arg)
{
    struct bd_test_procs *p = bd_test_procs_start(clients, ml_client, a);
    int failed;

    bd_test_procs_release(p);
    if (mid != NULL)
        mid(mid_arg);
    failed = bd_test_procs_wait(p, bd_test_scaled(120000), NULL);
    ck_assert_int_eq(failed, 0);
    for (int i = 0; i < clients * a->per_client; i++)
        ck_assert_msg(a->cells[i].replies == 1, "item %d: %d replies", i,
                      a->cells[i].replies);
}

static struct ml_cell *ml_cells(int n)
{
    return bd_test_shared_alloc((size_t)n * sizeof(struct ml_cell));
}

/* ---- core ------------------------------------------------------------------------ */

/* RPUSH from 8 processes: every item OK with the list length, in order,
 * and each list holds exactly its client's items in order. */
START_TEST(test_pipelined_writes_exactly_ok)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = RPUSH {key} {payload}\n",
                                            "max_items = 64\nmax_delay_us = 2000\n");
    struct ml_args a = { .sock = bd_test_daemon_socket(d), .per_client = 200,
                         .depth = 32, .cells = ml_cells(8 * 200) };
    redisContext *c = rconnect(r, NULL);

    ml_run(&a, 8, NULL, NULL);
    for (int k = 0; k < 8; k++) {
        redisReply *rep = rcmd(c, "LRANGE l%d 0 -1", k);

        ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
        ck_assert_int_eq(rep->elements, 200);
        for (int i = 0; i < 200; i++) {
            struct ml_cell *cell = &a.cells[k * 200 + i];
            char want[32], len[16];

            ml_payload(k, i, want, sizeof(want));
            ck_assert_str_eq(rep->element[i]->str, want);
            snprintf(len, sizeof(len), "%d", i + 1);
            ck_assert_int_eq(cell->status, BATCHD_OK);
            ck_assert_str_eq(cell->body, len);
        }
        freeReplyObject(rep);
    }
    /* One pipeline per batch, not one round trip per item. */
    ck_assert_int_lt(info_field(c, "stats", "total_commands_processed"), 1600 + 100);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
    bd_test_shared_free(a.cells, 8 * 200 * sizeof(struct ml_cell));
}
END_TEST

START_TEST(test_get_missing_empty_and_fail)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d;
    redisContext *c = rconnect(r, NULL);
    char *conf;

    freeReplyObject(rcmd(c, "SET user:42 %s", "Ada"));
    ck_assert_int_ge(asprintf(&conf,
        "[sink.e]\nplugin = redis\nsocket = %s\ncommand = GET user:{payload}\n"
        "[sink.f]\nplugin = redis\nsocket = %s\ncommand = GET user:{payload}\n"
        "missing = fail\n"
        "[route.e]\nmatch = e\nsink = e\n[route.f]\nmatch = f\nsink = f\n",
        bd_test_redis_socket(r), bd_test_redis_socket(r)), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    expect_load(d, "e", "42", BATCHD_OK, "Ada");
    expect_load(d, "e", "43", BATCHD_OK, NULL);
    expect_load(d, "f", "42", BATCHD_OK, "Ada");
    expect_load(d, "f", "43", BATCHD_FAIL, "not found");
    {
        char *body;
        size_t blen;

        ck_assert_int_eq(rload(d, "e", "43", 2, &body, &blen), BATCHD_OK);
        ck_assert_uint_eq(blen, 0);
        free(body);
    }
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/* Submit payloads[0..n-1] on one connection, all in flight; fill status
 * and bodies. */
static void load_many(struct bd_test_daemon *d, const char *key,
                      const char *const *payloads, int n, struct ml_cell *cells)
{
    struct batchd_client *c = bd_test_connect(d);
    double end = bd_test_now_ms() + bd_test_scaled(30000);
    int done = 0;

    memset(cells, 0, (size_t)n * sizeof(*cells));
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(batchd_submit_load(c, key, payloads[i], strlen(payloads[i]),
                                            NULL, ml_cb, &cells[i], NULL),
                         BATCHD_CLIENT_OK);
    while (done < n) {
        ck_assert_msg(bd_test_now_ms() < end, "replies missing");
        ck_assert_int_ge(batchd_process(c, 100), 0);
        done = 0;
        for (int i = 0; i < n; i++)
            done += cells[i].replies;
    }
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(cells[i].replies, 1);
    batchd_free(c);
}

/* INCR on a string that is no number fails that item only, in a batch
 * of three (policy size: the three go out together). */
START_TEST(test_error_fails_alone)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = INCR n:{payload}\n",
                                            "policy = size\nmax_items = 3\n");
    static const char *const p[] = { "a", "bad", "b" };
    redisContext *c = rconnect(r, NULL);
    struct ml_cell cells[3];

    freeReplyObject(rcmd(c, "SET n:bad %s", "abc"));
    load_many(d, "k", p, 3, cells);
    ck_assert_int_eq(cells[0].status, BATCHD_OK);
    ck_assert_str_eq(cells[0].body, "1");
    ck_assert_int_eq(cells[1].status, BATCHD_FAIL);
    ck_assert_msg(strstr(cells[1].body, "ERR value is not") != NULL, "%s", cells[1].body);
    ck_assert_int_eq(cells[2].status, BATCHD_OK);
    ck_assert_str_eq(cells[2].body, "1");
    ck_assert_int_eq(info_field(c, "commandstats", "cmdstat_incr:calls"), 3);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/* Payloads with NUL, spaces, CR LF and high bytes: stored as sent (read
 * back with hiredis) and returned as stored (GET through the sink). */
START_TEST(test_binary_payloads)
{
    static const char bin[] = "a b\0c\r\n*1\r\n$3\r\n\xff\x00{key}\"";
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d;
    redisContext *c = rconnect(r, NULL);
    const char *argv[2] = { "GET", NULL };
    size_t argvlen[2] = { 3, 0 };
    char *conf, *body, key[64];
    redisReply *rep;
    size_t blen;

    ck_assert_int_ge(asprintf(&conf,
        "[sink.w]\nplugin = redis\nsocket = %s\ncommand = SET \"b:{payload}\" {payload}\n"
        "[sink.g]\nplugin = redis\nsocket = %s\ncommand = GET \"b:{payload}\"\n"
        "[route.w]\nmatch = w\nsink = w\n[route.g]\nmatch = g\nsink = g\n",
        bd_test_redis_socket(r), bd_test_redis_socket(r)), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    ck_assert_int_eq(rload(d, "w", bin, sizeof(bin) - 1, &body, &blen), BATCHD_OK);
    ck_assert_str_eq(body, "OK");
    free(body);
    memcpy(key, "b:", 2);
    memcpy(key + 2, bin, sizeof(bin) - 1);
    argv[1] = key;
    argvlen[1] = sizeof(bin) + 1;
    rep = redisCommandArgv(c, 2, argv, argvlen);
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(rep->len, sizeof(bin) - 1);
    ck_assert_int_eq(memcmp(rep->str, bin, sizeof(bin) - 1), 0);
    freeReplyObject(rep);
    ck_assert_int_eq(rload(d, "g", bin, sizeof(bin) - 1, &body, &blen), BATCHD_OK);
    ck_assert_uint_eq(blen, sizeof(bin) - 1);
    ck_assert_int_eq(memcmp(body, bin, blen), 0);
    free(body);
    /* An empty payload is an empty argument, not a missing one. */
    ck_assert_int_eq(rload(d, "w", "", 0, &body, &blen), BATCHD_OK);
    free(body);
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "b:"), 1);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/*
 * transaction = on, template "{payload} txc" (the payload names the
 * command). Batch 1 [INCR, LPOP, BOGUS, INCR]: BOGUS is refused while
 * queuing, so Redis discards the transaction: BOGUS fails with its error
 * and the rest are retried. Batch 2 [INCR, LPOP, INCR]: EXEC's array
 * maps per item: LPOP on a string fails (WRONGTYPE), the INCRs
 * count to 2.
 */
START_TEST(test_multi_exec)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r,
        "command = {payload} txc\ntransaction = on\n",
        "policy = size\nmax_items = 4\nretry_base_ms = 10\nretry_cap_ms = 50\n"
        "max_attempts = 3\n");
    static const char *const p[] = { "INCR", "LPOP", "BOGUS", "INCR" };
    redisContext *c = rconnect(r, NULL);
    struct ml_cell cells[4];
    redisReply *rep;

    /* A string from the start, so LPOP fails in whichever order the
     * retried items run. */
    freeReplyObject(rcmd(c, "SET txc %s", "0"));
    load_many(d, "k", p, 4, cells);
    ck_assert_int_eq(cells[2].status, BATCHD_FAIL);
    ck_assert_msg(strstr(cells[2].body, "unknown command") != NULL, "%s", cells[2].body);
    ck_assert_int_eq(cells[1].status, BATCHD_FAIL);
    ck_assert_msg(strstr(cells[1].body, "WRONGTYPE") != NULL, "%s", cells[1].body);
    ck_assert_int_eq(cells[0].status, BATCHD_OK);
    ck_assert_int_eq(cells[3].status, BATCHD_OK);
    /* The two INCRs counted 1 and 2 (the daemon does not promise the
     * order of retried items). */
    ck_assert_int_eq(atoi(cells[0].body) + atoi(cells[3].body), 3);
    rep = rcmd(c, "GET txc");
    ck_assert_str_eq(rep->str, "2");
    freeReplyObject(rep);
    ck_assert_int_ge(info_field(c, "commandstats", "cmdstat_exec:calls"), 2);
    ck_assert_int_eq(info_field(c, "errorstats", "errorstat_EXECABORT:count"), 1);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

START_TEST(test_auth)
{
    struct bd_test_redis *r = bd_test_redis_up("s3cret");
    struct bd_test_daemon *d;
    redisContext *c = rconnect(r, "s3cret");
    char *conf;
    redisReply *rep;

    ck_assert_int_ge(asprintf(&conf,
        "[sink.p]\nplugin = redis\nsocket = %s\npassword = s3cret\n"
        "command = SET a:{payload} 1\n"
        "[sink.u]\nplugin = redis\nsocket = %s\nusername = default\n"
        "password = s3cret\ncommand = SET u:{payload} 1\n"
        "[sink.x]\nplugin = redis\nsocket = %s\npassword = wrong\n"
        "command = SET x:{payload} 1\n"
        "[route.p]\nmatch = p\nsink = p\n[route.u]\nmatch = u\nsink = u\n"
        "[route.x]\nmatch = x\nsink = x\nmax_attempts = 2\nretry_base_ms = 10\n",
        bd_test_redis_socket(r), bd_test_redis_socket(r), bd_test_redis_socket(r)), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    expect_load(d, "p", "1", BATCHD_OK, "OK");
    expect_load(d, "u", "1", BATCHD_OK, "OK");
    expect_load(d, "x", "1", BATCHD_SINK_UNAVAILABLE, "WRONGPASS");
    rep = rcmd(c, "KEYS *");
    ck_assert_int_eq(rep->elements, 2);
    freeReplyObject(rep);
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "a:1"), 1);
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "u:1"), 1);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

START_TEST(test_select_db)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = SET s:{payload} 1\ndb = 3\n", "");
    redisContext *c = rconnect(r, NULL);

    expect_load(d, "k", "x", BATCHD_OK, "OK");
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "s:x"), 0);
    freeReplyObject(rcmd(c, "SELECT 3"));
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "s:x"), 1);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/*
 * The connection breaks in the middle of a pipeline: QUIT is answered
 * +OK, then Redis closes the connection without running what follows.
 * The items before it and QUIT itself keep their replies; the two after
 * it are retried on a new connection. INCR ran exactly 4 times.
 */
START_TEST(test_connection_lost_mid_pipeline)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = {payload} ctr\n",
        "policy = size\nmax_items = 5\nretry_base_ms = 10\nretry_cap_ms = 50\n");
    static const char *const p[] = { "INCR", "INCR", "QUIT", "INCR", "INCR" };
    redisContext *c = rconnect(r, NULL);
    struct ml_cell cells[5];
    redisReply *rep;

    load_many(d, "k", p, 5, cells);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(cells[i].status == BATCHD_OK, "item %d: %s %s", i,
                      batchd_status_name(cells[i].status), cells[i].body);
    ck_assert_str_eq(cells[0].body, "1");
    ck_assert_str_eq(cells[1].body, "2");
    ck_assert_str_eq(cells[2].body, "OK");
    ck_assert_int_eq(atoi(cells[3].body) + atoi(cells[4].body), 3 + 4);
    rep = rcmd(c, "GET ctr");
    ck_assert_str_eq(rep->str, "4");
    freeReplyObject(rep);
    ck_assert_int_eq(info_field(c, "commandstats", "cmdstat_incr:calls"), 4);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/* OOM (maxmemory reached) is the server's state, not the item's fault:
 * the item is retried until memory is allowed again, then stored. */
START_TEST(test_transient_error_retried)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = SET m:{payload} 1\n",
        "max_attempts = 100\nretry_base_ms = 20\nretry_cap_ms = 50\n"
        "delivery_timeout_ms = 0\n");
    redisContext *c = rconnect(r, NULL);
    struct batchd_client *bc = bd_test_connect(d);
    double end = bd_test_now_ms() + bd_test_scaled(20000);
    struct ml_cell cell = { 0 };

    freeReplyObject(rcmd(c, "CONFIG SET maxmemory %s", "1"));
    ck_assert_int_eq(batchd_submit_load(bc, "k", "x", 1, NULL, ml_cb, &cell, NULL),
                     BATCHD_CLIENT_OK);
    while (info_field(c, "errorstats", "errorstat_OOM:count") < 2) {
        ck_assert_msg(bd_test_now_ms() < end, "no OOM seen");
        ck_assert_int_ge(batchd_process(bc, 10), 0);
    }
    ck_assert_int_eq(cell.replies, 0);
    freeReplyObject(rcmd(c, "CONFIG SET maxmemory %s", "0"));
    while (cell.replies == 0) {
        ck_assert_msg(bd_test_now_ms() < end, "no reply");
        ck_assert_int_ge(batchd_process(bc, 100), 0);
    }
    ck_assert_int_eq(cell.status, BATCHD_OK);
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "m:x"), 1);
    batchd_free(bc);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/* host/port: the same sink over TCP on the loopback. */
START_TEST(test_tcp)
{
    struct bd_test_redis *r = bd_test_redis_new(NULL);
    int port = bd_test_redis_listen_tcp(r);
    struct bd_test_daemon *d;
    redisContext *c;
    char *conf;

    bd_test_redis_start(r);
    ck_assert_int_ge(asprintf(&conf, "[sink.r]\nplugin = redis\nhost = 127.0.0.1\n"
                              "port = %d\ncommand = SET t:{payload} 1\n"
                              "[route.all]\nmatch = *\nsink = r\n", port), 0);
    d = bd_test_daemon_start(conf);
    free(conf);
    expect_load(d, "k", "x", BATCHD_OK, "OK");
    c = rconnect(r, NULL);
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "t:x"), 1);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/* A reply slower than command_timeout_ms: the connection is dropped,
 * the item retried (here: until max_attempts), and the next batch gets
 * a fresh connection. The payload names the command. */
START_TEST(test_command_timeout)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r,
        "command = {payload} q 2\ncommand_timeout_ms = 200\npool_size = 1\n",
        "max_attempts = 2\nretry_base_ms = 10\n");
    redisContext *c = rconnect(r, NULL);

    expect_load(d, "k", "BLPOP", BATCHD_RETRY_EXHAUSTED, "gave up after 2 attempts");
    expect_load(d, "k", "LPUSH", BATCHD_OK, "1");
    ck_assert_int_eq(rint_cmd(c, "LLEN %s", "q"), 1);
    redisFree(c);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    /* Two timed-out attempts, each on its own connection, then one more. */
    ck_assert_int_eq(log_count(d, "stopping; 3 connections opened"), 1);
    bd_test_daemon_free(d);
    bd_test_redis_free(r);
}
END_TEST

/* ---- outage ------------------------------------------------------------------------ */

struct restart_ctx {
    struct bd_test_redis *r;  /* the server to bounce */
    int total;                /* items of the whole load */
    long long at_shutdown;    /* keys in Redis when it was shut down */
};

/* Mid-load: once a quarter of the items is in, SHUTDOWN SAVE, wait,
 * start again (the dump is loaded back). */
static void bounce(void *arg)
{
    struct restart_ctx *x = arg;
    redisContext *c = rconnect(x->r, NULL);
    double end = bd_test_now_ms() + bd_test_scaled(60000);

    while ((x->at_shutdown = rint_cmd(c, "DBSIZE%s", "")) < x->total / 4) {
        ck_assert_msg(bd_test_now_ms() < end, "load did not start");
        usleep(5000);
    }
    redisFree(c);
    bd_test_redis_stop(x->r, 1);
    usleep(300000);
    bd_test_redis_start(x->r);
}

START_TEST(test_restart_mid_load)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = SET w:{payload} 1\npool_size = 4\n",
        "max_items = 50\nmax_delay_us = 2000\nkey_concurrency = 2\n"
        "max_attempts = 100\nretry_base_ms = 20\nretry_cap_ms = 200\n"
        "delivery_timeout_ms = 0\n");
    struct ml_args a = { .sock = bd_test_daemon_socket(d), .per_client = 400,
                         .depth = 4, .pace_us = 2000, .nkeys = 4,
                         .cells = ml_cells(8 * 400) };
    struct restart_ctx x = { .r = r, .total = 8 * 400 };
    redisContext *c;
    char *stats;
    long long retries = 0;
    int warns;

    ml_run(&a, 8, bounce, &x);
    ck_assert_msg(x.at_shutdown < x.total, "the load was over before the restart");
    c = rconnect(r, NULL);
    for (int i = 0; i < 8 * 400; i++) {
        char key[40];

        ck_assert_msg(a.cells[i].status == BATCHD_OK, "item %d: %s %s", i,
                      batchd_status_name(a.cells[i].status), a.cells[i].body);
        snprintf(key, sizeof(key), "w:c%d-%d", i / 400, i % 400);
        ck_assert_msg(rint_cmd(c, "EXISTS %s", key) == 1, "%s lost", key);
    }
    ck_assert_int_eq(rint_cmd(c, "DBSIZE%s", ""), 8 * 400);
    stats = bd_test_stats_json(d);
    ck_assert_int_eq(bd_test_json_int(stats, "retries", &retries), 0);
    free(stats);
    ck_assert_int_gt(retries, 0);
    /* A warning per outage, not per item or batch. While the server
     * saves and exits, its listening socket may still accept a connect
     * (the backlog) that then breaks: at most one more per pooled
     * connection. */
    warns = log_count(d, "batches are retried until it is back");
    ck_assert_msg(warns >= 1 && warns <= 1 + 4, "%d outage warnings", warns);
    ck_assert_msg(retries > 10 * warns, "%lld retries, %d warnings", retries, warns);
    ck_assert_int_ge(log_count(d, "is back"), 1);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
    bd_test_shared_free(a.cells, 8 * 400 * sizeof(struct ml_cell));
}
END_TEST

START_TEST(test_down_at_start)
{
    struct bd_test_redis *r = bd_test_redis_new(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = SET d:{payload} 1\n",
                                            "max_attempts = 2\nretry_base_ms = 10\n");
    redisContext *c;

    /* Started fine, with a warning. */
    ck_assert(log_wait(d, "batches are retried until it is back", 5000));
    for (int i = 0; i < 3; i++)
        expect_load(d, "k", "early", BATCHD_SINK_UNAVAILABLE, "connect");
    ck_assert_int_eq(log_count(d, "batches are retried until it is back"), 1);
    bd_test_redis_start(r);
    expect_load(d, "k", "late", BATCHD_OK, "OK");
    ck_assert(log_wait(d, "is back", 5000));
    c = rconnect(r, NULL);
    ck_assert_int_eq(rint_cmd(c, "EXISTS %s", "d:late"), 1);
    ck_assert_int_eq(rint_cmd(c, "DBSIZE%s", ""), 1);
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/* pool_size 1 under key_concurrency 4: batches wait for the one
 * connection, none fails, Redis sees one connection of the sink. */
START_TEST(test_pool_exhaustion)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r, "command = INCR pc\npool_size = 1\n",
        "policy = immediate\nmax_items = 4\nkey_concurrency = 4\n");
    struct ml_args a = { .sock = bd_test_daemon_socket(d), .per_client = 100,
                         .depth = 8, .nkeys = 1, .cells = ml_cells(8 * 100) };
    redisContext *c;
    redisReply *rep;

    ml_run(&a, 8, NULL, NULL);
    for (int i = 0; i < 8 * 100; i++)
        ck_assert_msg(a.cells[i].status == BATCHD_OK, "item %d: %s %s", i,
                      batchd_status_name(a.cells[i].status), a.cells[i].body);
    c = rconnect(r, NULL);
    rep = rcmd(c, "GET pc");
    ck_assert_str_eq(rep->str, "800");
    freeReplyObject(rep);
    /* The sink's one connection and ours; the sink never opened more. */
    ck_assert_int_eq(info_field(c, "clients", "connected_clients"), 2);
    redisFree(c);
    ck_assert_int_eq(bd_test_daemon_kill(d, SIGTERM), 0);
    ck_assert_int_eq(log_count(d, "stopping; 1 connections opened"), 1);
    bd_test_daemon_free(d);
    bd_test_redis_free(r);
    bd_test_shared_free(a.cells, 8 * 100 * sizeof(struct ml_cell));
}
END_TEST

START_TEST(test_isolation_process)
{
    struct bd_test_redis *r = bd_test_redis_up(NULL);
    struct bd_test_daemon *d = start_daemon(r,
        "isolation = process\ncommand = RPUSH {key} {payload}\n",
        "max_items = 32\n");
    struct ml_args a = { .sock = bd_test_daemon_socket(d), .per_client = 50,
                         .depth = 8, .cells = ml_cells(4 * 50) };
    redisContext *c = rconnect(r, NULL);

    ml_run(&a, 4, NULL, NULL);
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(a.cells[k * 50 + 49].status, BATCHD_OK);
        ck_assert_str_eq(a.cells[k * 50 + 49].body, "50");
        ck_assert_int_eq(rint_cmd(c, "LLEN l%s", k == 0 ? "0" : k == 1 ? "1"
                                  : k == 2 ? "2" : "3"), 50);
    }
    redisFree(c);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
    bd_test_shared_free(a.cells, 4 * 50 * sizeof(struct ml_cell));
}
END_TEST

/* An isolated sink whose server is down: the runner's failed acquire
 * reaches the daemon as "unavailable" too, and the runner stays up. */
START_TEST(test_isolated_down_is_unavailable)
{
    struct bd_test_redis *r = bd_test_redis_new(NULL);
    struct bd_test_daemon *d = start_daemon(r,
        "isolation = process\ncommand = SET i:{payload} 1\n",
        "max_attempts = 2\nretry_base_ms = 10\n");

    expect_load(d, "k", "a", BATCHD_SINK_UNAVAILABLE, "connect");
    bd_test_redis_start(r);
    expect_load(d, "k", "b", BATCHD_OK, "OK");
    ck_assert_int_eq(log_count(d, "crash"), 0);
    bd_test_daemon_stop(d);
    bd_test_redis_free(r);
}
END_TEST

/* ---- config ------------------------------------------------------------------------ */

START_TEST(test_check_config_names_wrong_option)
{
    struct bd_test_daemon *d = bd_test_daemon_new(
        "[sink.r]\nplugin = redis\nsocket = /nonexistent/redis.sock\n"
        "command = GET {payload}\ncolour = blue\n"
        "[route.all]\nmatch = *\nsink = r\n");
    const char *argv[] = { bd_test_batchd_bin(), "--check-config", "-c",
                           bd_test_daemon_conf(d), "--sink-dir", bd_test_sink_dir(),
                           NULL };
    char *err = NULL;

    ck_assert_int_eq(bd_test_run(argv, 20000, NULL, &err), 1);
    ck_assert_msg(strstr(err, "unknown option 'colour'") != NULL, "%s", err);
    free(err);
    bd_test_daemon_free(d);
    /* Without it the same file is valid: an unreachable server is no
     * config error. */
    d = bd_test_daemon_new(
        "[sink.r]\nplugin = redis\nsocket = /nonexistent/redis.sock\n"
        "command = GET {payload}\n[route.all]\nmatch = *\nsink = r\n");
    argv[3] = bd_test_daemon_conf(d);
    ck_assert_int_eq(bd_test_run(argv, 20000, NULL, &err), 0);
    free(err);
    bd_test_daemon_free(d);
}
END_TEST

/* Start-up with sink options opts must fail, the log holding want. */
static void expect_start_failure(const char *opts, const char *want)
{
    struct bd_test_daemon *d;
    char *conf, *log;
    int code;

    ck_assert_int_ge(asprintf(&conf, "[sink.r]\nplugin = redis\n%s\n"
                              "[route.all]\nmatch = *\nsink = r\n", opts), 0);
    d = bd_test_daemon_new(conf);
    free(conf);
    bd_test_daemon_spawn(d, NULL);
    code = bd_test_daemon_wait_exit(d, 20000);
    log = bd_test_daemon_log(d);
    ck_assert_msg(code == 1, "exit %d, want 1 (log: %s)", code, log);
    ck_assert_msg(strstr(log, want) != NULL, "log lacks '%s': %s", want, log);
    free(log);
    bd_test_daemon_free(d);
}

START_TEST(test_bad_values_stop_start)
{
    expect_start_failure("command = GET x\npool_size = 0", "option pool_size: '0'");
    expect_start_failure("command = GET x\nmissing = maybe", "option missing: 'maybe'");
    expect_start_failure("command = GET x\ntransaction = perhaps",
                         "option transaction: 'perhaps'");
    expect_start_failure("command = GET x\nport = 70000", "option port");
    expect_start_failure("command = GET x\nsocket = /s\nhost = h", "option socket");
    expect_start_failure("command = GET {user}", "unknown placeholder");
    expect_start_failure("command = SET \"a b", "unterminated");
    expect_start_failure("socket = /s", "option command: required");
}
END_TEST

/* ---- template ----------------------------------------------------------------------- */

/* Parse src, expand it for payload "p l" (3 bytes with a NUL in the
 * middle shown as '0'), key "kk", id 7, and join the arguments with '|'. */
static void expect_argv(const char *src, const char *want)
{
    static const char payload[] = { 'p', '\0', 'l' };
    struct rs_template t;
    struct rs_vals v = { .payload = payload, .payload_len = 3, .key = "kk", .key_len = 2 };
    const char *argv[RS_TEMPLATE_MAX_ARGS];
    size_t argvlen[RS_TEMPLATE_MAX_ARGS];
    char err[200], *scratch, got[512];
    size_t n = 0;

    ck_assert_msg(rs_template_parse(&t, src, err, sizeof(err)) == 0, "%s: %s", src, err);
    rs_vals_set_id(&v, 7);
    scratch = malloc(rs_template_scratch(&t, &v) + 1);
    ck_assert_ptr_nonnull(scratch);
    rs_template_expand(&t, &v, scratch, argv, argvlen);
    for (size_t i = 0; i < t.nargs; i++) {
        for (size_t j = 0; j < argvlen[i]; j++)
            got[n++] = argv[i][j] ? argv[i][j] : '0';
        got[n++] = '|';
    }
    got[n ? n - 1 : 0] = '\0';
    ck_assert_msg(strcmp(got, want) == 0, "%s: got '%s', want '%s'", src, got, want);
    free(scratch);
    rs_template_destroy(&t);
}

static void expect_refused(const char *src, const char *want)
{
    struct rs_template t;
    char err[200] = "";

    ck_assert_msg(rs_template_parse(&t, src, err, sizeof(err)) != 0, "%s parsed", src);
    ck_assert_msg(strstr(err, want) != NULL, "%s: '%s' lacks '%s'", src, err, want);
    ck_assert_ptr_null(t.args);
}

START_TEST(test_template_syntax)
{
    expect_argv("GET user:{payload}", "GET|user:p0l");
    expect_argv("XADD events * data {payload}", "XADD|events|*|data|p0l");
    expect_argv("LPUSH {key} {payload}", "LPUSH|kk|p0l");
    expect_argv("SET {key}:{id} {payload}", "SET|kk:7|p0l");
    expect_argv("  SET\t a   b  ", "SET|a|b");
    expect_argv("SET \"a b\" \"\"", "SET|a b|");
    expect_argv("SET \"x \\\" \\\\ y\" v", "SET|x \" \\ y|v");
    expect_argv("HSET h {{lit}} \"{payload} of {key}\"", "HSET|h|{lit}|p0l of kk");
    expect_argv("SET a\\b c", "SET|a\\b|c");
    expect_argv("SET pre\"{id} mid\"post x", "SET|pre7 midpost|x");
    expect_refused("", "empty");
    expect_refused("   ", "empty");
    expect_refused("GET {user}", "for a literal {) at column 5");
    expect_refused("GET {payload", "'{' without '}'");
    expect_refused("GET a}", "lone '}' (write }} for a literal }) at column 6");
    expect_refused("SET \"a b", "unterminated");
    expect_refused("A B C D E F G H I J K L M N O P Q R S T U V W X Y Z "
                   "a b c d e f g h i j k l m n o p q r s t u v w x y z "
                   "0 1 2 3 4 5 6 7 8 9 + - *", "too many arguments");
}
END_TEST

/* ---- suite ------------------------------------------------------------------------- */

static Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *core = tcase_create("core");
    TCase *outage = tcase_create("outage");
    TCase *config = tcase_create("config");
    TCase *tmpl = tcase_create("template");

    tcase_set_timeout(core, 120);
    tcase_set_timeout(outage, 240);
    tcase_set_timeout(config, 120);
    bd_test_add(core, test_pipelined_writes_exactly_ok);
    bd_test_add(core, test_get_missing_empty_and_fail);
    bd_test_add(core, test_error_fails_alone);
    bd_test_add(core, test_binary_payloads);
    bd_test_add(core, test_multi_exec);
    bd_test_add(core, test_auth);
    bd_test_add(core, test_select_db);
    bd_test_add(core, test_command_timeout);
    bd_test_add(core, test_tcp);
    bd_test_add(core, test_transient_error_retried);
    bd_test_add(core, test_connection_lost_mid_pipeline);
    bd_test_add(outage, test_restart_mid_load);
    bd_test_add(outage, test_down_at_start);
    bd_test_add(outage, test_pool_exhaustion);
    bd_test_add(outage, test_isolation_process);
    bd_test_add(outage, test_isolated_down_is_unavailable);
    bd_test_add(config, test_check_config_names_wrong_option);
    bd_test_add(config, test_bad_values_stop_start);
    suite_add_tcase(s, core);
    suite_add_tcase(s, outage);
    suite_add_tcase(s, config);
    bd_test_add(tmpl, test_template_syntax);
    suite_add_tcase(s, tmpl);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    if (!bd_test_redis_installed()) {
        /* CI installs redis-server (.ci/run); say so rather than pass. */
        fprintf(stderr, "check_redis: redis-server/redis-cli not installed\n");
        return EXIT_FAILURE;
    }
    sr = srunner_create(redis_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
