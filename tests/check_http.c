/*
 * check_http.c - the http sink (sinks/http/) against a real local HTTP
 * server (tests/tools/httpd.c, a forked evhttp server that records what
 * arrives and answers as scripted), through real daemons.
 *
 * "body":    NDJSON, JSON and msgpack bodies as received, with their
 *            Content-Type, headers and auth; bad items FAIL alone and are
 *            never sent; a Unix socket; keep-alive reuse (the server
 *            counts connections).
 * "verdicts": 429 + Retry-After (the retry waits at least that long, in
 *            process and isolated), a hint past delivery_timeout_ms,
 *            500 then success, 4xx FAIL, per-item partial failures,
 *            garbage replies, dropped connections, a slow server.
 * "units":   the pure parsers (Retry-After, items reply) and config
 *            errors (--check-config names a bad option, init a bad value).
 *
 * Every test checks that each item got exactly one reply
 * (bd_test_load_all) and, where items went out, that the server accepted
 * exactly the items answered OK, each once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <curl/curl.h>
#include <jansson.h>

#include "batchd.h"
#include "batchd_sink.h"
#include "helpers.h"
#include "http/http.h"
#include "tools/httpd.h"

#define ROUTE_DEF "policy = duration\nmax_delay_us = 50000\nretry_base_ms = 20\n" \
                  "retry_cap_ms = 50\nmax_attempts = 4\n"

/* One test's server and daemon. */
struct ht {
    char dir[64];             /* scratch directory: record, socket, auth file */
    char record[128];         /* the server's record */
    char sock[128];           /* the server's Unix socket, when used */
    struct bd_httpd *srv;
    struct bd_test_daemon *d;
    int made;                 /* dir exists (ht_dir ran) */
};

static void ht_dir(struct ht *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/bd-http-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(t->dir));
    snprintf(t->record, sizeof(t->record), "%s/record", t->dir);
    snprintf(t->sock, sizeof(t->sock), "%s/httpd.sock", t->dir);
    t->made = 1;
}

/* Start the server (sc: script; record and socket filled in here) and a
 * daemon whose sink h posts to it with sink_opts, route with route_opts. */
static void ht_start(struct ht *t, struct bd_httpd_conf *sc, int unix_sock,
                     const char *isolation, const char *sink_opts,
                     const char *route_opts)
{
    char *conf;

    if (!t->made)
        ht_dir(t);
    sc->record = t->record;
    sc->unix_path = unix_sock ? t->sock : NULL;
    t->srv = bd_httpd_start(sc);
    ck_assert_ptr_nonnull(t->srv);
    ck_assert_int_ge(asprintf(&conf,
        "[sink.h]\nplugin = http\nisolation = %s\nurl = %s/bulk\n%s%s%s%s\n"
        "[route.all]\nmatch = *\nsink = h\n%s\n", isolation,
        bd_httpd_base_url(t->srv), unix_sock ? "unix_socket = " : "",
        unix_sock ? t->sock : "", unix_sock ? "\n" : "", sink_opts,
        route_opts), 0);
    t->d = bd_test_daemon_start(conf);
    free(conf);
}

/* Stop both (the daemon must exit 0: no leaks under ASan), remove dir. */
static void ht_stop(struct ht *t)
{
    char cmd[128];

    if (t->d != NULL)
        bd_test_daemon_stop(t->d);
    if (t->srv != NULL)
        ck_assert_int_eq(bd_httpd_stop(t->srv), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
    ck_assert_int_eq(system(cmd), 0);
}

static long ht_reqs(struct ht *t, struct bd_httpd_req **r)
{
    long n = bd_httpd_read(t->record, r);

    ck_assert_int_ge(n, 0);
    return n;
}

/* ---- what the server accepted -------------------------------------------------- */

/* Items of one request body as text: NDJSON lines, or compact JSON of
 * each array element. Returns the count; items in *out (free each). */
static size_t body_items(const struct bd_httpd_req *r, char ***out)
{
    char ctype[96] = "", **v = NULL;
    size_t n = 0;

    bd_httpd_header(r, "Content-Type", ctype, sizeof(ctype));
    if (strcmp(ctype, "application/json") == 0) {
        json_t *a = json_loadb(r->body, r->len, 0, NULL), *el;
        size_t i;

        ck_assert_msg(json_is_array(a), "body not a JSON array: %s", r->body);
        v = calloc(json_array_size(a) + 1, sizeof(*v));
        json_array_foreach(a, i, el)
            v[n++] = json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(a);
    } else {
        v = calloc(r->len + 1, sizeof(*v));
        for (size_t i = 0; i < r->len;) {
            const char *nl = memchr(r->body + i, '\n', r->len - i);

            ck_assert_msg(nl != NULL, "NDJSON body without a final newline");
            v[n++] = strndup(r->body + i, (size_t)(nl - r->body) - i);
            i = (size_t)(nl - r->body) + 1;
        }
    }
    *out = v;
    return n;
}

/* The httpd's per-item answer accepts an item unless it says bad/later. */
static int server_accepts(const struct bd_httpd_req *r, const char *item,
                          int items_reply)
{
    if (r->answer < 200 || r->answer > 299)
        return 0;
    if (!items_reply)
        return 1;
    return strstr(item, "bad") == NULL && strstr(item, "later") == NULL;
}

/*
 * The server accepted exactly the payloads answered OK, each once:
 * every OK payload is accepted once, and nothing else was accepted.
 * Request skip_seq (0 = none) is left out: one the sink gave up on.
 */
static void assert_exactly_ok(struct ht *t, const char *const *payloads,
                              const struct bd_test_reply *out, size_t n,
                              int items_reply, unsigned skip_seq)
{
    struct bd_httpd_req *r;
    long nr = ht_reqs(t, &r);
    int *seen = calloc(n, sizeof(int));

    for (long k = 0; k < nr; k++) {
        char **it;
        size_t ni;

        if (r[k].seq == skip_seq)
            continue; /* answered after the client gave up on it */
        ni = body_items(&r[k], &it);

        for (size_t j = 0; j < ni; j++) {
            size_t i;

            if (server_accepts(&r[k], it[j], items_reply)) {
                for (i = 0; i < n && strcmp(payloads[i], it[j]) != 0; i++)
                    ;
                ck_assert_msg(i < n, "server accepted unknown item '%s'", it[j]);
                seen[i]++;
            }
            free(it[j]);
        }
        free(it);
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(seen[i] == (out[i].status == BATCHD_OK ? 1 : 0),
                      "item '%s': accepted %d times, answered %s", payloads[i],
                      seen[i], batchd_status_name(out[i].status));
    free(seen);
    bd_httpd_reqs_free(r, nr);
}

/* ---- body ------------------------------------------------------------------------ */

START_TEST(test_ndjson_status_reply_body)
{
    static const char *const in[] = {"one", "two", "{\"three\":3}"};
    struct bd_httpd_conf sc = {.dflt = {.status = 200, .body = "stored"}};
    struct bd_test_reply out[3];
    struct bd_httpd_req *r;
    struct ht t = {.made = 0};
    char buf[128];
    long n;

    ht_start(&t, &sc, 0, "inproc", "reply_body = yes\nheader.X-Test = abc 1\n",
             ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 3, NULL, 10000, out);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(out[i].status, BATCHD_OK);
        ck_assert_str_eq(out[i].body, "stored");
    }
    n = ht_reqs(&t, &r);
    ck_assert_int_eq(n, 1); /* one batch, one request */
    ck_assert_str_eq(r[0].method, "POST");
    ck_assert_str_eq(r[0].uri, "/bulk");
    ck_assert_str_eq(r[0].body, "one\ntwo\n{\"three\":3}\n");
    ck_assert_str_eq(bd_httpd_header(&r[0], "Content-Type", buf, sizeof(buf)),
                     "application/x-ndjson");
    ck_assert_str_eq(bd_httpd_header(&r[0], "X-Test", buf, sizeof(buf)), "abc 1");
    ck_assert_ptr_null(bd_httpd_header(&r[0], "Expect", buf, sizeof(buf)));
    bd_httpd_reqs_free(r, n);
    assert_exactly_ok(&t, in, out, 3, 0, 0);
    bd_test_replies_free(out, 3);
    ht_stop(&t);
}
END_TEST

/* Response memory is bounded: reply_body copies over max_response_bytes
 * in all are dropped (items still OK), a longer response FAILs. */
START_TEST(test_response_bounds)
{
    static const char *const in[] = {"a", "b", "c"};
    struct bd_httpd_step script[] = {{.status = 200, .body = "0123456789abcdef"}};
    struct bd_httpd_conf sc = {.script = script, .nscript = 1,
                               .dflt = {.status = 200, .body = "stored"}};
    struct bd_test_reply out[3];
    struct ht t = {.made = 0};

    ht_start(&t, &sc, 0, "inproc", "reply_body = yes\nmax_response_bytes = 12\n",
             ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 3, NULL, 10000, out);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(out[i].status, BATCHD_FAIL);
        ck_assert_msg(strstr(out[i].body, "over max_response_bytes (12)") != NULL,
                      "%s", out[i].body);
    }
    bd_test_replies_free(out, 3);
    /* 6 bytes x 3 items > 12: OK without the body. */
    bd_test_load_all(t.d, "k", in, 3, NULL, 10000, out);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(out[i].status, BATCHD_OK);
        ck_assert_str_eq(out[i].body, "");
    }
    bd_test_replies_free(out, 3);
    /* One item: 6 <= 12, the body comes back. */
    bd_test_load_all(t.d, "k", in, 1, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    ck_assert_str_eq(out[0].body, "stored");
    bd_test_replies_free(out, 1);
    ht_stop(&t);
}
END_TEST

START_TEST(test_json_bad_items_fail_alone)
{
    static const char *const in[] = {"{\"a\":1}", "not json", "[1,2]",
                                     "\"bad one\"", "", "{\"b\":\"x\\ny\"}"};
    struct bd_httpd_conf sc = {.dflt_items = 1};
    struct bd_test_reply out[6];
    struct bd_httpd_req *r;
    struct ht t = {.made = 0};
    char buf[128];
    long n;

    ht_start(&t, &sc, 0, "inproc", "format = json\nreply = items\nmethod = PUT\n",
             ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 6, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    ck_assert_str_eq(out[0].body, "ok:{\"a\":1}");
    ck_assert_int_eq(out[1].status, BATCHD_FAIL);
    ck_assert_msg(strstr(out[1].body, "not a JSON document") != NULL, "%s", out[1].body);
    ck_assert_int_eq(out[2].status, BATCHD_OK);
    ck_assert_int_eq(out[3].status, BATCHD_FAIL); /* the server's 400 */
    ck_assert_str_eq(out[3].body, "bad item");
    ck_assert_int_eq(out[4].status, BATCHD_FAIL);
    ck_assert_int_eq(out[5].status, BATCHD_OK);
    n = ht_reqs(&t, &r);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(r[0].method, "PUT");
    ck_assert_str_eq(bd_httpd_header(&r[0], "Content-Type", buf, sizeof(buf)),
                     "application/json");
    ck_assert_str_eq(r[0].body, "[{\"a\":1},[1,2],\"bad one\",{\"b\":\"x\\ny\"}]");
    bd_httpd_reqs_free(r, n);
    assert_exactly_ok(&t, in, out, 6, 1, 0);
    bd_test_replies_free(out, 6);
    ht_stop(&t);
}
END_TEST

START_TEST(test_msgpack_body_as_received)
{
    /* fixstr "abc", positive fixint 5, a reserved byte, [1, "x"] */
    static const char *const in[] = {"\xa3" "abc", "\x05", "\xc1", "\x92\x01\xa1x"};
    static const char want[] = "\xdd\x00\x00\x00\x03" "\xa3" "abc" "\x05"
                               "\x92\x01\xa1x";
    struct bd_httpd_conf sc = {.dflt = {.status = 204}};
    struct bd_test_reply out[4];
    struct bd_httpd_req *r;
    struct ht t = {.made = 0};
    char buf[128];
    long n;

    ht_start(&t, &sc, 0, "inproc", "format = msgpack\n", ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 4, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    ck_assert_int_eq(out[1].status, BATCHD_OK);
    ck_assert_int_eq(out[2].status, BATCHD_FAIL);
    ck_assert_msg(strstr(out[2].body, "not one msgpack object") != NULL, "%s",
                  out[2].body);
    ck_assert_int_eq(out[3].status, BATCHD_OK);
    n = ht_reqs(&t, &r);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(bd_httpd_header(&r[0], "Content-Type", buf, sizeof(buf)),
                     "application/msgpack");
    ck_assert_uint_eq(r[0].len, sizeof(want) - 1);
    ck_assert(memcmp(r[0].body, want, sizeof(want) - 1) == 0);
    bd_httpd_reqs_free(r, n);
    bd_test_replies_free(out, 4);
    ht_stop(&t);
}
END_TEST

/* auth = basic|bearer from a file; the server sees the header. */
static void auth_case(const char *kind, const char *secret, const char *want)
{
    static const char *const in[] = {"x"};
    struct bd_httpd_conf sc = {.dflt = {.status = 200}};
    struct bd_test_reply out[1];
    struct bd_httpd_req *r;
    struct ht t = {.made = 0};
    char opts[256], path[128], buf[256];
    FILE *f;
    long n;

    ht_dir(&t);
    snprintf(path, sizeof(path), "%s/secret", t.dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n", secret);
    fclose(f);
    snprintf(opts, sizeof(opts), "auth = %s\nauth_file = %s\n", kind, path);
    ht_start(&t, &sc, 0, "inproc", opts, ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 1, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    n = ht_reqs(&t, &r);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(bd_httpd_header(&r[0], "Authorization", buf, sizeof(buf)), want);
    bd_httpd_reqs_free(r, n);
    bd_test_replies_free(out, 1);
    ht_stop(&t);
}

START_TEST(test_auth_from_file)
{
    auth_case("basic", "user:pa:ss", "Basic dXNlcjpwYTpzcw==");
    auth_case("bearer", "tok-123", "Bearer tok-123");
}
END_TEST

START_TEST(test_unix_socket)
{
    static const char *const in[] = {"a", "b"};
    struct bd_httpd_conf sc = {.dflt = {.status = 200}};
    struct bd_test_reply out[2];
    struct ht t = {.made = 0};

    ht_start(&t, &sc, 1, "inproc", "", ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 2, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    ck_assert_int_eq(out[1].status, BATCHD_OK);
    assert_exactly_ok(&t, in, out, 2, 0, 0);
    bd_test_replies_free(out, 2);
    ht_stop(&t);
}
END_TEST

/* 12 batches one after the other: how many connections did they use? */
static long connections_for(const char *sink_opts, long *nreq)
{
    struct bd_httpd_conf sc = {.dflt = {.status = 200}};
    struct bd_httpd_req *r;
    struct ht t = {.made = 0};
    unsigned maxconn = 0;
    long n;

    ht_start(&t, &sc, 0, "inproc", sink_opts, "policy = immediate\n");
    for (int i = 0; i < 12; i++) {
        static const char *const in[] = {"p"};
        struct bd_test_reply out[1];

        bd_test_load_all(t.d, "k", in, 1, NULL, 10000, out);
        ck_assert_int_eq(out[0].status, BATCHD_OK);
        bd_test_replies_free(out, 1);
    }
    n = ht_reqs(&t, &r);
    for (long k = 0; k < n; k++)
        if (r[k].conn > maxconn)
            maxconn = r[k].conn;
    bd_httpd_reqs_free(r, n);
    ht_stop(&t);
    *nreq = n;
    return maxconn;
}

START_TEST(test_keepalive_reuses_connection)
{
    long nreq;

    ck_assert_int_eq(connections_for("", &nreq), 1);
    ck_assert_int_eq(nreq, 12);
    /* The counter can fail: without keep-alive, one per request. */
    ck_assert_int_eq(connections_for("keepalive = no\n", &nreq), 12);
}
END_TEST

/* ---- verdicts ---------------------------------------------------------------------- */

/* 429 with Retry-After: 2, then 200: the retry comes >= 2 s later
 * although retry_base_ms is 20. */
static void retry_after_case(const char *isolation, const char *status_kind)
{
    static const char *const in[] = {"r1", "r2", "r3"};
    struct bd_httpd_step script[] = {{.status = 429, .retry_after = "2"}};
    struct bd_httpd_conf sc = {.script = script, .nscript = 1,
                               .dflt = {.status = 200}};
    struct bd_test_reply out[3];
    struct bd_httpd_req *r;
    struct ht t = {.made = 0};
    long n;

    if (strcmp(status_kind, "503") == 0)
        script[0].status = 503;
    ht_start(&t, &sc, 0, isolation, "", ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 3, NULL, 20000, out);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(out[i].status, BATCHD_OK);
    n = ht_reqs(&t, &r);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(r[0].answer, script[0].status);
    /* A lower bound only: a loaded machine can only make it later. */
    ck_assert_msg(r[1].t_ms - r[0].t_ms >= 1990.0,
                  "retried after %.0f ms, Retry-After said 2 s",
                  r[1].t_ms - r[0].t_ms);
    bd_httpd_reqs_free(r, n);
    assert_exactly_ok(&t, in, out, 3, 0, 0);
    bd_test_replies_free(out, 3);
    ht_stop(&t);
}

START_TEST(test_429_retry_after_in_process)
{
    retry_after_case("inproc", "429");
}
END_TEST

START_TEST(test_503_retry_after_isolated)
{
    retry_after_case("process", "503");
}
END_TEST

/* A hint past delivery_timeout_ms: the items end at once as out of time. */
START_TEST(test_retry_after_past_delivery_timeout)
{
    static const char *const in[] = {"x"};
    struct bd_httpd_conf sc = {.dflt = {.status = 429, .retry_after = "3600"}};
    struct bd_test_reply out[1];
    struct ht t = {.made = 0};
    double t0 = bd_test_now_ms();

    ht_start(&t, &sc, 0, "inproc", "", ROUTE_DEF "delivery_timeout_ms = 60000\n");
    bd_test_load_all(t.d, "k", in, 1, NULL, 20000, out);
    ck_assert_int_eq(out[0].status, BATCHD_RETRY_EXHAUSTED);
    ck_assert_msg(strstr(out[0].body, "no time left") != NULL, "%s", out[0].body);
    ck_assert_msg(strstr(out[0].body, "Too Many Requests") != NULL, "%s", out[0].body);
    ck_assert(bd_test_now_ms() - t0 < 30000);
    bd_test_replies_free(out, 1);
    ht_stop(&t);
}
END_TEST

START_TEST(test_500_then_success)
{
    static const char *const in[] = {"a", "b"};
    struct bd_httpd_step script[] = {{.status = 500, .body = "oops"}};
    struct bd_httpd_conf sc = {.script = script, .nscript = 1,
                               .dflt = {.status = 200}};
    struct bd_test_reply out[2];
    struct ht t = {.made = 0};
    struct bd_httpd_req *r;
    long n;

    ht_start(&t, &sc, 0, "inproc", "", ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 2, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    ck_assert_int_eq(out[1].status, BATCHD_OK);
    n = ht_reqs(&t, &r);
    ck_assert_int_ge(n, 2);
    ck_assert_int_eq(r[0].answer, 500);
    bd_httpd_reqs_free(r, n);
    assert_exactly_ok(&t, in, out, 2, 0, 0);
    bd_test_replies_free(out, 2);
    ht_stop(&t);
}
END_TEST

START_TEST(test_4xx_fails_with_status_and_body)
{
    static const char *const in[] = {"a", "b"};
    struct bd_httpd_conf sc = {.dflt = {.status = 404, .body = "no such index"}};
    struct bd_test_reply out[2];
    struct ht t = {.made = 0};
    struct bd_httpd_req *r;
    long n;

    ht_start(&t, &sc, 0, "inproc", "", ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 2, NULL, 10000, out);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(out[i].status, BATCHD_FAIL);
        ck_assert_msg(strstr(out[i].body, "404 Scripted: no such index") != NULL,
                      "%s", out[i].body);
    }
    n = ht_reqs(&t, &r);
    ck_assert_int_eq(n, 1); /* a FAIL is final: no retry */
    bd_httpd_reqs_free(r, n);
    bd_test_replies_free(out, 2);
    ht_stop(&t);
}
END_TEST

/* Per-item verdicts; "later" asks for a retry every time (429 per item),
 * so it runs out of attempts. */
static void partial_case(const char *isolation)
{
    static const char *const in[] = {"a", "bad-1", "later", "b", "bad-2"};
    struct bd_httpd_conf sc = {.dflt_items = 1};
    struct bd_test_reply out[5];
    struct ht t = {.made = 0};

    ht_start(&t, &sc, 0, isolation, "reply = items\n",
             "policy = duration\nmax_delay_us = 50000\nretry_base_ms = 10\n"
             "retry_cap_ms = 20\nmax_attempts = 3\n");
    bd_test_load_all(t.d, "k", in, 5, NULL, 10000, out);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    ck_assert_str_eq(out[0].body, "ok:a");
    ck_assert_int_eq(out[1].status, BATCHD_FAIL);
    ck_assert_str_eq(out[1].body, "bad item");
    ck_assert_int_eq(out[2].status, BATCHD_RETRY_EXHAUSTED);
    ck_assert_int_eq(out[3].status, BATCHD_OK);
    ck_assert_int_eq(out[4].status, BATCHD_FAIL);
    assert_exactly_ok(&t, in, out, 5, 1, 0);
    bd_test_replies_free(out, 5);
    ht_stop(&t);
}

START_TEST(test_partial_item_failures)
{
    partial_case("inproc");
}
END_TEST

START_TEST(test_partial_item_failures_isolated)
{
    partial_case("process");
}
END_TEST

START_TEST(test_garbage_reply_fails_clearly)
{
    static const char *const bodies[] = {"<html>oops</html>", "[{\"status\":201}]",
                                         "{\"items\":5}", "[1,2]"};
    static const char *const in[] = {"a", "b"};

    for (size_t k = 0; k < 4; k++) {
        struct bd_httpd_conf sc = {.dflt = {.status = 200, .body = bodies[k]}};
        struct bd_test_reply out[2];
        struct ht t = {.made = 0};

        ht_start(&t, &sc, 0, "inproc", "reply = items\n", ROUTE_DEF);
        bd_test_load_all(t.d, "k", in, 2, NULL, 10000, out);
        for (int i = 0; i < 2; i++) {
            ck_assert_int_eq(out[i].status, BATCHD_FAIL);
            ck_assert_msg(strstr(out[i].body, "does not parse as per-item") != NULL,
                          "%s: %s", bodies[k], out[i].body);
        }
        bd_test_daemon_assert_alive(t.d);
        bd_test_replies_free(out, 2);
        ht_stop(&t);
    }
}
END_TEST

/* The server drops the connection, then answers slowly past timeout_ms,
 * then well: both failures are retried, the items end OK. */
START_TEST(test_dropped_and_slow_are_retried)
{
    static const char *const in[] = {"a", "b", "c"};
    struct bd_httpd_step script[] = {{.drop = 1}, {.status = 200, .delay_ms = 3000}};
    struct bd_httpd_conf sc = {.script = script, .nscript = 2,
                               .dflt = {.status = 200}};
    struct bd_test_reply out[3];
    struct bd_httpd_req *r;
    struct ht t = {.made = 0};
    char *log;
    long n;

    ht_start(&t, &sc, 0, "inproc", "timeout_ms = 500\n", ROUTE_DEF);
    bd_test_load_all(t.d, "k", in, 3, NULL, 20000, out);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(out[i].status, BATCHD_OK);
    n = ht_reqs(&t, &r);
    ck_assert_int_ge(n, 3);
    ck_assert_int_eq(r[0].answer, 0);
    bd_httpd_reqs_free(r, n);
    /* Request 2 was answered late, to nobody: it does not count. */
    assert_exactly_ok(&t, in, out, 3, 0, 2);
    log = bd_test_daemon_log(t.d);
    /* One outage line, not one per failed request. */
    ck_assert_ptr_nonnull(strstr(log, "batches are retried until it answers"));
    ck_assert_ptr_null(strstr(strstr(log, "batches are retried until") + 1,
                              "batches are retried until"));
    ck_assert_ptr_nonnull(strstr(log, "answers again"));
    free(log);
    bd_test_replies_free(out, 3);
    ht_stop(&t);
}
END_TEST

/* Keeps the status of one reply in *arg (an int). */
static void keep_status(struct batchd_client *c, const struct batchd_reply *r,
                        void *arg)
{
    (void)c;
    *(int *)arg = r ? r->status : -3;
}

/* A server that is down when the daemon starts (DESIGN 9): the daemon
 * starts all the same, batches RETRY, and once the server is up the
 * items go through. */
START_TEST(test_server_down_at_start)
{
    static const char *const in[] = {"early"};
    struct bd_httpd_conf sc = {.dflt = {.status = 200}};
    struct batchd_client *c;
    struct bd_test_reply out[1] = {{.status = -1}};
    struct ht t = {.made = 0};
    char *conf, *log;

    ht_dir(&t);
    ck_assert_int_ge(asprintf(&conf,
        "[sink.h]\nplugin = http\nurl = http://localhost/bulk\n"
        "unix_socket = %s\n[route.all]\nmatch = *\nsink = h\n"
        "retry_base_ms = 100\nretry_cap_ms = 200\nmax_attempts = 100\n",
        t.sock), 0);
    t.d = bd_test_daemon_start(conf);
    free(conf);
    c = bd_test_connect(t.d);
    ck_assert_int_eq(batchd_submit_load(c, "k", in[0], strlen(in[0]), NULL,
                                        keep_status, &out[0].status, NULL),
                     BATCHD_CLIENT_OK);
    ck_assert_int_eq(batchd_flush(c), BATCHD_CLIENT_OK);
    usleep(500 * 1000); /* a few attempts against nothing */
    sc.record = t.record;
    sc.unix_path = t.sock;
    t.srv = bd_httpd_start(&sc);
    ck_assert_ptr_nonnull(t.srv);
    while (batchd_pending(c) > 0)
        ck_assert_int_ge(batchd_process(c, 10000), 1);
    batchd_free(c);
    log = bd_test_daemon_log(t.d);
    ck_assert_msg(strstr(log, "batches are retried until it answers") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "answers again") != NULL, "%s", log);
    free(log);
    ck_assert_int_eq(out[0].status, BATCHD_OK);
    assert_exactly_ok(&t, in, out, 1, 0, 0);
    ht_stop(&t);
}
END_TEST

/* ---- units --------------------------------------------------------------------------- */

START_TEST(test_retry_after_parser)
{
    uint64_t ms = 7;
    time_t now = 1700000000;
    char date[64];
    struct tm tm;
    time_t later = now + 30;

    ck_assert_int_eq(http_retry_after_ms("120", 3, now, &ms), 0);
    ck_assert_uint_eq(ms, 120000);
    ck_assert_int_eq(http_retry_after_ms(" 0 ", 3, now, &ms), 0);
    ck_assert_uint_eq(ms, 0);
    ck_assert_int_eq(http_retry_after_ms("99999999999999999999999", 23, now, &ms), 0);
    ck_assert_uint_eq(ms, HTTP_RETRY_AFTER_MAX_MS);
    gmtime_r(&later, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ck_assert_int_eq(http_retry_after_ms(date, strlen(date), now, &ms), 0);
    ck_assert_uint_eq(ms, 30000);
    ck_assert_int_eq(http_retry_after_ms(date, strlen(date), later + 5, &ms), 0);
    ck_assert_uint_eq(ms, 0); /* in the past */
    ck_assert_int_eq(http_retry_after_ms("", 0, now, &ms), -1);
    ck_assert_int_eq(http_retry_after_ms("-5", 2, now, &ms), -1);
    ck_assert_int_eq(http_retry_after_ms("soon", 4, now, &ms), -1);
    ck_assert_int_eq(http_retry_after_ms("12\0" "3", 4, now, &ms), -1);
}
END_TEST

START_TEST(test_items_reply_parser)
{
    static const char ok[] = "{\"items\":[{\"index\":{\"status\":201,\"body\":{\"id\":1}}},"
                             "{\"status\":\"error\",\"error\":\"nope\"},"
                             "{\"status\":503},{\"status\":\"ok\"},{\"status\":404}]}";
    struct http_verdict v[5] = {{0}};
    char err[256];

    ck_assert_int_eq(http_reply_items(ok, sizeof(ok) - 1, 5, v, err, sizeof(err)), 0);
    ck_assert_int_eq(v[0].code, BATCHD_RESULT_OK);
    ck_assert_uint_eq(v[0].len, 8);
    ck_assert(memcmp(v[0].data, "{\"id\":1}", 8) == 0);
    ck_assert_int_eq(v[1].code, BATCHD_RESULT_FAIL);
    ck_assert(v[1].len == 4 && memcmp(v[1].data, "nope", 4) == 0);
    ck_assert_int_eq(v[2].code, BATCHD_RESULT_RETRY);
    ck_assert_int_eq(v[3].code, BATCHD_RESULT_OK);
    ck_assert_uint_eq(v[3].len, 0);
    ck_assert_int_eq(v[4].code, BATCHD_RESULT_FAIL);
    ck_assert(v[4].len == 10 && memcmp(v[4].data, "status 404", 10) == 0);
    http_verdicts_clear(v, 5);
    ck_assert_int_eq(http_reply_items(ok, sizeof(ok) - 1, 4, v, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "5 replies for 4 items");
    ck_assert_int_eq(http_reply_items("[{\"status\":\"maybe\"}]", 20, 1, v, err,
                                      sizeof(err)), -1);
    ck_assert_int_eq(http_reply_items("[{\"status\":201}", 15, 1, v, err,
                                      sizeof(err)), -1);
    ck_assert_int_eq(v[0].code, 0);
}
END_TEST

START_TEST(test_check_config_names_bad_option)
{
    struct bd_test_daemon *d = bd_test_daemon_new(
        "[sink.h]\nplugin = http\nurl = http://127.0.0.1:1/\nbogus_opt = 1\n"
        "[route.all]\nmatch = *\nsink = h\n");
    const char *argv[] = {bd_test_batchd_bin(), "--check-config", "-c",
                          bd_test_daemon_conf(d), "--sink-dir",
                          bd_test_sink_dir(), NULL};
    char *out = NULL, *err = NULL, *log;
    int rc = bd_test_run(argv, bd_test_scaled(10000), &out, &err);

    ck_assert_int_ne(rc, 0);
    ck_assert_msg(strstr(err, "unknown option 'bogus_opt'") != NULL, "%s%s", out, err);
    free(out);
    free(err);
    bd_test_daemon_free(d);
    /* A bad value is refused when the sink starts, naming the option. */
    d = bd_test_daemon_new("[sink.h]\nplugin = http\nurl = http://127.0.0.1:1/\n"
                           "format = xml\n[route.all]\nmatch = *\nsink = h\n");
    bd_test_daemon_spawn(d, NULL);
    ck_assert_int_eq(bd_test_daemon_wait_exit(d, 20000), 1);
    log = bd_test_daemon_log(d);
    ck_assert_msg(strstr(log, "option 'format': unknown value 'xml'") != NULL, "%s", log);
    free(log);
    bd_test_daemon_free(d);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *body = tcase_create("body");
    TCase *verdicts = tcase_create("verdicts");
    TCase *units = tcase_create("units");

    tcase_set_timeout(body, 120);
    tcase_set_timeout(verdicts, 120);
    tcase_set_timeout(units, 60);
    bd_test_add(body, test_ndjson_status_reply_body);
    bd_test_add(body, test_json_bad_items_fail_alone);
    bd_test_add(body, test_response_bounds);
    bd_test_add(body, test_msgpack_body_as_received);
    bd_test_add(body, test_auth_from_file);
    bd_test_add(body, test_unix_socket);
    bd_test_add(body, test_keepalive_reuses_connection);
    bd_test_add(verdicts, test_429_retry_after_in_process);
    bd_test_add(verdicts, test_503_retry_after_isolated);
    bd_test_add(verdicts, test_retry_after_past_delivery_timeout);
    bd_test_add(verdicts, test_500_then_success);
    bd_test_add(verdicts, test_4xx_fails_with_status_and_body);
    bd_test_add(verdicts, test_partial_item_failures);
    bd_test_add(verdicts, test_partial_item_failures_isolated);
    bd_test_add(verdicts, test_garbage_reply_fails_clearly);
    bd_test_add(verdicts, test_dropped_and_slow_are_retried);
    bd_test_add(verdicts, test_server_down_at_start);
    bd_test_add(units, test_retry_after_parser);
    bd_test_add(units, test_items_reply_parser);
    bd_test_add(units, test_check_config_names_bad_option);
    suite_add_tcase(s, body);
    suite_add_tcase(s, verdicts);
    suite_add_tcase(s, units);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
