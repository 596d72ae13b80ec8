/*
 * check_metrics.c - the Prometheus endpoint ([daemon] metrics_listen),
 * scraped with a plain HTTP GET over a real socket (TCP on loopback and
 * a Unix socket) from a real daemon, the text parsed and checked:
 *
 *   - format: every sample's family has a # TYPE line before it; every
 *     histogram's buckets have rising bounds and cumulative counts, end
 *     with le="+Inf", and +Inf equals _count;
 *   - values after known traffic, per route and sink, equal to the same
 *     figures in `stats` (one counter table);
 *   - per-key gauges only for a route with metrics_keys = yes;
 *   - counters survive a reload.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include "batchd.h"
#include "batchd_status.h"
#include "helpers.h"

/* ---- a scrape ------------------------------------------------------------ */

/* A free loopback port (bound, read, closed: another process could take
 * it before the daemon does; unlikely on a test machine). */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
                  "connect 127.0.0.1:%d failed", port);
    return fd;
}

/* GET path on fd (HTTP/1.0: the server closes after the answer). Returns
 * the status code; *body gets a new string (free()). */
static int http_get(int fd, const char *path, char **body)
{
    char req[256], *resp = NULL, *sep;
    size_t len = 0, cap = 0;
    ssize_t n;
    int status = -1;

    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    ck_assert_int_eq(bd_test_raw_write(fd, req, strlen(req)), 0);
    for (;;) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 65536;
            resp = realloc(resp, cap);
            ck_assert_ptr_nonnull(resp);
        }
        n = read(fd, resp + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    ck_assert_ptr_nonnull(resp);
    resp[len] = '\0';
    ck_assert_int_eq(sscanf(resp, "HTTP/1.%*d %d", &status), 1);
    sep = strstr(resp, "\r\n\r\n");
    ck_assert_ptr_nonnull(sep);
    if (status == 200)
        ck_assert_msg(strstr(resp, "Content-Type: text/plain; version=0.0.4") &&
                      strstr(resp, "Content-Type: text/plain; version=0.0.4") < sep,
                      "no Prometheus content type:\n%.*s", (int)(sep - resp), resp);
    *body = strdup(sep + 4);
    free(resp);
    return status;
}

static char *scrape_tcp(int port)
{
    char *body;

    ck_assert_int_eq(http_get(tcp_connect(port), "/metrics", &body), 200);
    return body;
}

/* ---- the text format ------------------------------------------------------ */

#define MAX_FAMILIES 256

struct families {
    char name[MAX_FAMILIES][128];
    char type[MAX_FAMILIES][32];
    int n;
};

static int family_of(const struct families *f, const char *sample, size_t len)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};

    for (int i = 0; i < f->n; i++) {
        size_t fl = strlen(f->name[i]);

        if (fl == len && strncmp(f->name[i], sample, len) == 0)
            return i;
        if (strcmp(f->type[i], "histogram") != 0 || len <= fl ||
            strncmp(f->name[i], sample, fl) != 0)
            continue;
        for (int j = 0; j < 3; j++)
            if (len - fl == strlen(sfx[j]) &&
                strncmp(sample + fl, sfx[j], len - fl) == 0)
                return i;
    }
    return -1;
}

/* The labels of a bucket line without its le="...": the series it is of. */
static void series_key(const char *labels, size_t n, char *out, size_t outlen)
{
    const char *le = strstr(labels, "le=\"");

    if (le == NULL || le >= labels + n) {
        snprintf(out, outlen, "%.*s", (int)n, labels);
        return;
    }
    snprintf(out, outlen, "%.*s", (int)(le - labels), labels);
}

/*
 * Check the whole text: each line a comment (# HELP / # TYPE) or a
 * sample "name[{labels}] value" whose family was typed before; buckets
 * rising and cumulative, +Inf last and equal to _count.
 */
static void check_format(const char *text)
{
    static struct families f;
    char cur_series[512] = "";
    double last_le = -1, last_cum = -1, inf = -1;
    char *copy = strdup(text), *save = NULL;

    f.n = 0;
    ck_assert_ptr_nonnull(copy);
    ck_assert_msg(text[0] != '\0' && text[strlen(text) - 1] == '\n',
                  "the text must end with a newline");
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128], typ[32], key[512];
        const char *brace, *sp;
        size_t nlen;
        double v;
        int fam;

        if (strncmp(line, "# HELP ", 7) == 0)
            continue;
        if (sscanf(line, "# TYPE %127s %31s", name, typ) == 2) {
            ck_assert_int_eq(family_of(&f, name, strlen(name)), -1);
            ck_assert_msg(strcmp(typ, "counter") == 0 ||
                          strcmp(typ, "gauge") == 0 ||
                          strcmp(typ, "histogram") == 0, "type %s", typ);
            ck_assert_int_lt(f.n, MAX_FAMILIES);
            snprintf(f.name[f.n], sizeof(f.name[0]), "%s", name);
            snprintf(f.type[f.n], sizeof(f.type[0]), "%s", typ);
            if (strcmp(typ, "counter") == 0)
                ck_assert_msg(strstr(name, "_total") != NULL,
                              "counter %s has no _total", name);
            f.n++;
            continue;
        }
        ck_assert_msg(line[0] != '#', "unknown comment: %s", line);
        sp = strrchr(line, ' ');
        ck_assert_ptr_nonnull(sp);
        brace = strchr(line, '{');
        nlen = (size_t)((brace && brace < sp ? brace : sp) - line);
        fam = family_of(&f, line, nlen);
        ck_assert_msg(fam >= 0, "sample before its # TYPE: %s", line);
        ck_assert_int_eq(sscanf(sp + 1, "%lf", &v), 1);
        ck_assert_msg(v >= 0, "negative value: %s", line);
        if (nlen > 7 && strncmp(line + nlen - 7, "_bucket", 7) == 0) {
            const char *le = strstr(line, "le=\"");
            double lev;

            ck_assert_ptr_nonnull(le);
            series_key(brace + 1, (size_t)(sp - brace), key, sizeof(key));
            if (strcmp(key, cur_series) != 0) {
                ck_assert_msg(last_le < 0 || inf >= 0,
                              "series %s has no +Inf bucket", cur_series);
                snprintf(cur_series, sizeof(cur_series), "%s", key);
                last_le = last_cum = inf = -1;
            }
            lev = strncmp(le + 4, "+Inf", 4) == 0 ? 1e300 : strtod(le + 4, NULL);
            ck_assert_msg(lev > last_le, "le not rising: %s", line);
            ck_assert_msg(v >= last_cum, "buckets not cumulative: %s", line);
            last_le = lev;
            last_cum = v;
            if (lev == 1e300)
                inf = v;
        } else if (nlen > 6 && strncmp(line + nlen - 6, "_count", 6) == 0 &&
                   strcmp(f.type[fam], "histogram") == 0) {
            ck_assert_msg(inf >= 0 && inf == v,
                          "_count %g differs from +Inf %g: %s", v, inf, line);
            inf = -1;
            last_le = last_cum = -1;
            cur_series[0] = '\0';
        }
    }
    ck_assert_int_gt(f.n, 10);
    free(copy);
}

/* The value of the sample whose line starts with sel ("name{labels}"
 * or "name"), or -1 when there is none. */
static double sample(const char *text, const char *sel)
{
    size_t n = strlen(sel);

    for (const char *p = text; p != NULL && *p; ) {
        if (strncmp(p, sel, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

static long long stat_in(const char *json, const char *obj, const char *name)
{
    const char *at = strstr(json, obj);
    long long v = -1;

    ck_assert_msg(at != NULL, "no %s in stats", obj);
    ck_assert_int_eq(bd_test_json_int(at, name, &v), 0);
    return v;
}

/* ---- tests ----------------------------------------------------------------- */

#define CONF_FMT \
    "[daemon]\nmetrics_listen = %s\n" \
    "[sink.e]\nplugin = echo\n" \
    "[route.a]\nmatch = a*\nsink = e\npolicy = immediate\nmetrics_keys = yes\n" \
    "[route.b]\nmatch = *\nsink = e\npolicy = immediate\nmax_bytes = 8\n"

static struct bd_test_daemon *start_tcp(int *port)
{
    char addr[64], conf[1024];

    *port = free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", *port);
    snprintf(conf, sizeof(conf), CONF_FMT, addr);
    return bd_test_daemon_start(conf);
}

/* Known traffic, then every figure it moved, in the text and in stats. */
START_TEST(test_scrape_after_traffic)
{
    int port;
    struct bd_test_daemon *d = start_tcp(&port);
    char *text, *json;
    double batches;

    for (int i = 0; i < 5; i++)
        bd_test_assert_load(d, "a1", "x", BATCHD_OK);
    for (int i = 0; i < 3; i++)
        bd_test_assert_load(d, "bx", "yy", BATCHD_OK);
    bd_test_assert_load(d, "bx", "much too long", BATCHD_BAD_REQUEST);
    text = scrape_tcp(port);
    check_format(text);
    ck_assert_double_eq(sample(text, "batchd_items_in_total"), 8);
    ck_assert_double_eq(sample(text, "batchd_replies_by_status_total{status=\"OK\"}"), 8);
    ck_assert_double_eq(sample(text, "batchd_rejects_total{reason=\"max_bytes\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_route_items_in_total{route=\"a\"}"), 5);
    ck_assert_double_eq(sample(text, "batchd_route_items_in_total{route=\"b\"}"), 3);
    ck_assert_double_eq(sample(text, "batchd_route_rejects_total{route=\"b\",reason=\"max_bytes\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_route_rejects_total{route=\"a\",reason=\"max_bytes\"}"), 0);
    ck_assert_double_eq(sample(text, "batchd_route_items_out_total{route=\"a\"}"), 5);
    ck_assert_double_eq(sample(text, "batchd_route_batch_size_items_sum{route=\"a\"}"), 5);
    batches = sample(text, "batchd_route_batches_total{route=\"a\"}");
    ck_assert_double_eq(sample(text, "batchd_route_batch_size_items_count{route=\"a\"}"), batches);
    ck_assert_double_eq(sample(text, "batchd_route_queue_wait_seconds_count{route=\"a\"}"), 5);
    ck_assert_double_eq(sample(text, "batchd_sink_calls_total{sink=\"e\"}"),
                        sample(text, "batchd_batches_total"));
    ck_assert_double_eq(sample(text, "batchd_sink_call_duration_seconds_count{sink=\"e\"}"),
                        sample(text, "batchd_batches_total"));
    ck_assert_double_eq(sample(text, "batchd_item_latency_seconds_count"), 8);
    ck_assert_double_eq(sample(text, "batchd_route_queued_items{route=\"a\"}"), 0);
    /* Per-key figures for route a only (metrics_keys = yes). */
    ck_assert_double_eq(sample(text, "batchd_key_items_out_total{route=\"a\",key=\"a1\"}"), 5);
    ck_assert_ptr_null(strstr(text, "key=\"bx\""));
    /* stats reads the same table. */
    json = bd_test_stats_json(d);
    ck_assert_int_eq(stat_in(json, "\"routes\":{\"a\":", "items_in"), 5);
    ck_assert_int_eq(stat_in(json, "\"routes\":{\"a\":", "batches"), (long long)batches);
    ck_assert_int_eq(stat_in(json, "\"sinks\":{\"e\":", "calls"),
                     (long long)sample(text, "batchd_sink_calls_total{sink=\"e\"}"));
    free(json);
    free(text);
    bd_test_daemon_stop(d);
}
END_TEST

/* Queue depth and bytes while dispatch is paused; a reload keeps every
 * counter (series live by route and sink name). */
START_TEST(test_queue_gauges_and_reload_keeps_counters)
{
    int port;
    struct bd_test_daemon *d = start_tcp(&port);
    struct batchd_client *c = bd_test_connect(d);
    struct batchd_reply *r = NULL;
    char *text, conf[1024], addr[64];

    ck_assert_int_eq(batchd_control(c, "pause", NULL, 0, 10000, &r), BATCHD_CLIENT_OK);
    batchd_reply_free(r);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(batchd_send(c, "a2", "12345", 5, NULL, 10000, &r),
                         BATCHD_CLIENT_OK);
        ck_assert_int_eq(r->status, BATCHD_ACCEPTED);
        batchd_reply_free(r);
    }
    text = scrape_tcp(port);
    check_format(text);
    ck_assert_double_eq(sample(text, "batchd_route_queued_items{route=\"a\"}"), 4);
    ck_assert_double_eq(sample(text, "batchd_route_queued_bytes{route=\"a\"}"), 20);
    ck_assert_double_eq(sample(text, "batchd_route_keys_live{route=\"a\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_queued_items"), 4);
    ck_assert_double_eq(sample(text, "batchd_key_queued_items{route=\"a\",key=\"a2\"}"), 4);
    free(text);
    /* Reload with route b changed: a's counters continue. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(conf, sizeof(conf), CONF_FMT "max_items = 3\n", addr);
    bd_test_daemon_rewrite_conf(d, conf);
    ck_assert_int_eq(batchd_control(c, "reload", NULL, 0, 20000, &r), BATCHD_CLIENT_OK);
    ck_assert_int_eq(r->status, BATCHD_OK);
    batchd_reply_free(r);
    ck_assert_int_eq(batchd_control(c, "resume", NULL, 0, 10000, &r), BATCHD_CLIENT_OK);
    batchd_reply_free(r);
    bd_test_assert_load(d, "a2", "z", BATCHD_OK); /* after the four SENDs */
    text = scrape_tcp(port);
    check_format(text);
    ck_assert_double_eq(sample(text, "batchd_route_items_in_total{route=\"a\"}"), 5);
    ck_assert_double_eq(sample(text, "batchd_route_items_out_total{route=\"a\"}"), 5);
    ck_assert_double_eq(sample(text, "batchd_route_queued_items{route=\"a\"}"), 0);
    free(text);
    batchd_free(c);
    bd_test_daemon_stop(d);
}
END_TEST

/* route's replies_by_status count for status in the stats JSON. */
static long long route_replies(const char *json, const char *route,
                               const char *status)
{
    char obj[64];
    const char *at;

    snprintf(obj, sizeof(obj), "\"%s\":{\"items_in\"", route);
    at = strstr(strstr(json, "\"routes\":{"), obj);
    ck_assert_msg(at != NULL, "no route %s in stats", route);
    return stat_in(at, "\"replies_by_status\":{", status);
}

/* The sink's answers by result, retries, replies by status (daemon-wide
 * and per route). */
START_TEST(test_results_by_status)
{
    int port = free_port();
    char conf[1024];
    struct bd_test_daemon *d;
    char *text, *json;

    snprintf(conf, sizeof(conf),
             "[daemon]\nmetrics_listen = 127.0.0.1:%d\n"
             "[sink.r]\nplugin = @TSINKS@/record.so\nledger = @DIR@/l\n"
             "fail_payload = bad\nretry_payload = again\n"
             "[route.o]\nmatch = o*\nsink = r\npolicy = immediate\n"
             "[route.all]\nmatch = *\nsink = r\npolicy = immediate\n"
             "max_attempts = 2\nretry_base_ms = 1\nretry_cap_ms = 1\n", port);
    d = bd_test_daemon_start(conf);
    bd_test_assert_load(d, "o1", "fine", BATCHD_OK);
    bd_test_assert_load(d, "o1", "fine", BATCHD_OK);
    bd_test_assert_load(d, "k", "fine", BATCHD_OK);
    bd_test_assert_load(d, "k", "bad", BATCHD_FAIL);
    bd_test_assert_load(d, "k", "again", BATCHD_RETRY_EXHAUSTED);
    text = scrape_tcp(port);
    check_format(text);
    ck_assert_double_eq(sample(text, "batchd_sink_items_ok_total{sink=\"r\"}"), 3);
    ck_assert_double_eq(sample(text, "batchd_sink_items_failed_total{sink=\"r\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_sink_items_retry_total{sink=\"r\"}"), 2);
    ck_assert_double_eq(sample(text, "batchd_sink_calls_total{sink=\"r\"}"), 6);
    ck_assert_double_eq(sample(text, "batchd_sink_crashes_in_a_row{sink=\"r\"}"), 0);
    ck_assert_double_eq(sample(text, "batchd_route_retries_total{route=\"all\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_route_items_in_total{route=\"all\"}"), 3);
    ck_assert_double_eq(sample(text, "batchd_route_items_out_total{route=\"all\"}"), 4);
    ck_assert_double_eq(sample(text, "batchd_replies_by_status_total{status=\"OK\"}"), 3);
    ck_assert_double_eq(sample(text, "batchd_replies_by_status_total{status=\"FAIL\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_replies_by_status_total{status=\"RETRY_EXHAUSTED\"}"), 1);
    /* Per route: each item once, by its final status. */
    ck_assert_double_eq(sample(text, "batchd_route_replies_total{route=\"all\",status=\"OK\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_route_replies_total{route=\"all\",status=\"FAIL\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_route_replies_total{route=\"all\",status=\"RETRY_EXHAUSTED\"}"), 1);
    ck_assert_double_eq(sample(text, "batchd_route_replies_total{route=\"o\",status=\"OK\"}"), 2);
    ck_assert_double_eq(sample(text, "batchd_route_replies_total{route=\"o\",status=\"FAIL\"}"), 0);
    /* stats reads the same counters. */
    json = bd_test_stats_json(d);
    ck_assert_int_eq(route_replies(json, "all", "OK"), 1);
    ck_assert_int_eq(route_replies(json, "all", "FAIL"), 1);
    ck_assert_int_eq(route_replies(json, "all", "RETRY_EXHAUSTED"), 1);
    ck_assert_int_eq(route_replies(json, "o", "OK"), 2);
    ck_assert_int_eq(route_replies(json, "o", "FAIL"), 0);
    free(json);
    free(text);
    bd_test_daemon_stop(d);
}
END_TEST

/* An isolated sink whose runner dies: the restart is counted on the
 * endpoint and in stats. */
START_TEST(test_sink_restarts)
{
    int port = free_port();
    char conf[1024];
    struct bd_test_daemon *d;
    char *text, *json;

    snprintf(conf, sizeof(conf),
             "[daemon]\nmetrics_listen = 127.0.0.1:%d\n"
             "[sink.c]\nplugin = @TSINKS@/crashy.so\nisolation = process\n"
             "crash = exit\nafter = 1\nrestart_base_ms = 10\nrestart_cap_ms = 100\n"
             "[route.all]\nmatch = *\nsink = c\npolicy = immediate\n"
             "max_attempts = 5\nretry_base_ms = 10\nretry_cap_ms = 100\n", port);
    d = bd_test_daemon_start(conf);
    text = scrape_tcp(port);
    ck_assert_double_eq(sample(text, "batchd_sink_restarts_total{sink=\"c\"}"), 0);
    free(text);
    bd_test_assert_load(d, "k", "one", BATCHD_OK);
    /* Call 2 kills the runner; the item's next attempt is on a new one. */
    bd_test_assert_load(d, "k", "two", BATCHD_OK);
    text = scrape_tcp(port);
    check_format(text);
    ck_assert_double_ge(sample(text, "batchd_sink_restarts_total{sink=\"c\"}"), 1);
    json = bd_test_stats_json(d);
    ck_assert_int_ge(stat_in(json, "\"sinks\":{\"c\":", "restarts"), 1);
    free(json);
    free(text);
    bd_test_daemon_stop(d);
}
END_TEST

/* A Unix socket endpoint; another path is 404; the socket file goes
 * away with the daemon. */
START_TEST(test_unix_socket_endpoint)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmetrics_listen = unix:@DIR@/m.sock\n"
        "[sink.e]\nplugin = echo\n[route.all]\nmatch = *\nsink = e\n");
    char path[256], *body;

    snprintf(path, sizeof(path), "%s", bd_test_daemon_path(d, "m.sock"));
    bd_test_assert_load(d, "k", "v", BATCHD_OK);
    ck_assert_int_eq(http_get(bd_test_unix_connect(path), "/metrics", &body), 200);
    check_format(body);
    ck_assert_double_eq(sample(body, "batchd_route_items_in_total{route=\"all\"}"), 1);
    /* No route has metrics_keys: no key appears; no route is durable:
     * no spool figures. */
    ck_assert_ptr_null(strstr(body, "key=\""));
    ck_assert_ptr_null(strstr(body, "batchd_spool_"));
    free(body);
    ck_assert_int_eq(http_get(bd_test_unix_connect(path), "/other", &body), 404);
    free(body);
    bd_test_daemon_stop(d);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* A durable route: the spool's figures are in the endpoint (one row
 * table with stats' "spool" object); without one they are absent. */
START_TEST(test_spool_figures)
{
    struct bd_test_daemon *d = bd_test_daemon_start(
        "[daemon]\nmetrics_listen = unix:@DIR@/m.sock\nspool_dir = @DIR@/spool\n"
        "[sink.e]\nplugin = echo\n"
        "[route.all]\nmatch = *\nsink = e\npolicy = immediate\ndurable = yes\n");
    struct batchd_client *c = bd_test_connect(d);
    char path[256], *body = NULL, *json;
    double deadline = bd_test_now_ms() + bd_test_scaled(10000);

    snprintf(path, sizeof(path), "%s", bd_test_daemon_path(d, "m.sock"));
    for (int i = 0; i < 5; i++) {
        struct batchd_reply *r;

        ck_assert_int_eq(batchd_send(c, "k", "v", 1, NULL, 10000, &r), BATCHD_CLIENT_OK);
        ck_assert_int_eq(r->status, BATCHD_ACCEPTED);
        batchd_reply_free(r);
    }
    batchd_free(c);
    /* Delivery (and the DONE records) follow ACCEPTED; wait for them. */
    for (;;) {
        free(body);
        ck_assert_int_eq(http_get(bd_test_unix_connect(path), "/metrics", &body), 200);
        if (sample(body, "batchd_spool_done_total") == 5 || bd_test_now_ms() > deadline)
            break;
        usleep(20000);
    }
    check_format(body);
    ck_assert_double_eq(sample(body, "batchd_spool_items_total"), 5);
    ck_assert_double_eq(sample(body, "batchd_spool_done_total"), 5);
    ck_assert_double_ge(sample(body, "batchd_spool_syncs_total"), 1);
    ck_assert_double_eq(sample(body, "batchd_spool_sync_seconds_count"),
                        sample(body, "batchd_spool_syncs_total"));
    json = bd_test_stats_json(d);
    ck_assert_int_eq(stat_in(json, "\"spool\":{", "spool_items"), 5);
    free(json);
    free(body);
    bd_test_daemon_stop(d);
}
END_TEST

/* Only loopback addresses and Unix sockets are accepted. */
START_TEST(test_non_loopback_refused)
{
    bd_test_expect_start_failure(
        "[daemon]\nmetrics_listen = 0.0.0.0:9464\n"
        "[sink.e]\nplugin = echo\n[route.all]\nmatch = *\nsink = e\n",
        "loopback");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    bd_test_add(tc, test_scrape_after_traffic);
    bd_test_add(tc, test_queue_gauges_and_reload_keeps_counters);
    bd_test_add(tc, test_results_by_status);
    bd_test_add(tc, test_sink_restarts);
    bd_test_add(tc, test_unix_socket_endpoint);
    bd_test_add(tc, test_spool_figures);
    bd_test_add(tc, test_non_loopback_refused);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
