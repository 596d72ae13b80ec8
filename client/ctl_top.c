/*
 * ctl_top.c - batchctl top (see ctl_top.h).
 *
 * Each frame asks the daemon for its stats as JSON (one connection for
 * the whole run) and prints the difference from the previous answer
 * divided by the time between them: rates come from counters, depths are
 * read as they are. A route's row reads the document's per-route series
 * (routes), which every client gets.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "batchd.h"
#include "ctl_bench.h"
#include "ctl_top.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double num(const json_t *obj, const char *name)
{
    return json_number_value(json_object_get(obj, name));
}

/* The stats document, or NULL after printing why. */
static json_t *fetch(struct batchd_client *c, int timeout_ms)
{
    static const char *const kv[] = { "format", "json" };
    struct batchd_reply *r;
    json_error_t jerr;
    json_t *doc;

    if (batchd_control(c, "stats", kv, 1, timeout_ms, &r) != BATCHD_CLIENT_OK) {
        fprintf(stderr, "batchctl top: %s\n", batchd_errstr(c));
        return NULL;
    }
    if (r->status != BATCHD_OK) {
        fprintf(stderr, "batchctl top: %s\n", batchd_status_name(r->status));
        batchd_reply_free(r);
        return NULL;
    }
    doc = json_loadb(r->data, r->len, 0, &jerr);
    if (doc == NULL)
        fprintf(stderr, "batchctl top: stats are not JSON: %s\n", jerr.text);
    batchd_reply_free(r);
    return doc;
}

/* Histogram name's counts between the objects prev (may be NULL) and
 * cur into d[] (bucket i: below 2^i of its unit); returns their total. */
static double hist_delta(const json_t *prev, const json_t *cur,
                         const char *name, double d[64])
{
    const json_t *hc = json_object_get(cur, name);
    const json_t *hp = json_object_get(prev, name);
    double total = 0;
    char bucket[32];

    for (int i = 0; i < 64; i++) {
        snprintf(bucket, sizeof(bucket), "<%llu", 1ull << i);
        d[i] = num(hc, bucket) - num(hp, bucket);
        if (d[i] < 0)
            d[i] = 0;
        total += d[i];
    }
    return total;
}

/* The upper bound (us) of the bucket holding quantile q; 0 when empty. */
static unsigned long long quantile(const double d[64], double total, double q)
{
    double seen = 0;

    for (int i = 0; i < 64 && total > 0; i++) {
        seen += d[i];
        if (seen >= q * total)
            return 1ull << i;
    }
    return 0;
}

static double rate(double now, double before, double secs)
{
    return now > before && secs > 0 ? (now - before) / secs : 0;
}

/* One row per route of the stats document's routes object (every
 * client gets it): rates over the interval, depths as they are, and the
 * queue wait (accept to dispatch) percentiles over the interval. */
static void print_routes(const json_t *prev, const json_t *cur, double secs)
{
    const json_t *routes_prev = json_object_get(prev, "routes");
    const char *name;
    json_t *r;
    double d[64];

    printf("%-20s %9s %9s %11s %9s %6s %10s %10s\n", "ROUTE", "OUT/S",
           "QUEUED", "BYTES", "INFLIGHT", "KEYS", "WAIT_P50", "WAIT_P99");
    json_object_foreach(json_object_get(cur, "routes"), name, r) {
        const json_t *p = json_object_get(routes_prev, name);
        double n = hist_delta(p, r, "queue_wait_us", d);
        char p50[24], p99[24];

        snprintf(p50, sizeof(p50), "<%lluus", quantile(d, n, 0.5));
        snprintf(p99, sizeof(p99), "<%lluus", quantile(d, n, 0.99));
        printf("%-20s %9.0f %9.0f %11.0f %9.0f %6.0f %10s %10s\n", name,
               rate(num(r, "items_out"), num(p, "items_out"), secs),
               num(r, "queued_items"), num(r, "queued_bytes"),
               num(r, "inflight_items"), num(r, "keys_live"),
               n > 0 ? p50 : "-", n > 0 ? p99 : "-");
    }
}

static void print_frame(const json_t *prev, const json_t *cur, double secs,
                        int clear)
{
    double d[64];
    double n = hist_delta(prev, cur, "latency_us_hist", d);

    if (clear)
        fputs("\033[H\033[2J", stdout);
    printf("batchd %s  %s  up %.1fs  conns %.0f  keys %.0f live\n",
           json_string_value(json_object_get(cur, "version")) ?: "?",
           json_string_value(json_object_get(cur, "state")) ?: "?",
           num(cur, "uptime_ms") / 1e3, num(cur, "conns"),
           num(cur, "keys_live"));
    printf("in %.0f/s  out %.0f/s  batches %.0f/s  queued %.0f items %.0f "
           "bytes  inflight %.0f batches\n",
           rate(num(cur, "items_in"), num(prev, "items_in"), secs),
           rate(num(cur, "items_out"), num(prev, "items_out"), secs),
           rate(num(cur, "batches"), num(prev, "batches"), secs),
           num(cur, "queued_items"), num(cur, "queued_bytes"),
           num(cur, "inflight_batches"));
    printf("latency p50 <%lluus  p90 <%lluus  p99 <%lluus  (%.0f items "
           "in %.1fs)\n", quantile(d, n, 0.5), quantile(d, n, 0.9),
           quantile(d, n, 0.99), n, secs);
    print_routes(prev, cur, secs);
    fflush(stdout);
}

struct top_args {
    long frames;              /* 0 = until interrupted */
    int interval_ms;          /* between samples */
};

static int top_args(int argc, char **argv, struct top_args *a)
{
    static const struct option longopts[] = {
        { "once", no_argument, NULL, '1' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t v;
    int ch;

    optind = 0;
    while ((ch = getopt_long(argc, argv, "n:i:", longopts, NULL)) != -1) {
        if (ch == '1') {
            a->frames = 1;
        } else if (ch == 'n' && ctl_parse_num(optarg, 1, 1000000000, &v) == 0) {
            a->frames = (long)v;
        } else if (ch == 'i' && ctl_parse_num(optarg, 10, 3600000, &v) == 0) {
            a->interval_ms = (int)v;
        } else {
            if (ch == 'n' || ch == 'i')
                fprintf(stderr, "batchctl top: bad number '%s'\n", optarg);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "batchctl top: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

int ctl_top(const char *socket, int timeout_ms, int argc, char **argv)
{
    struct top_args a = { 0, 1000 };
    struct batchd_client *c;
    json_t *prev, *cur;
    double t_prev, t_cur;
    int rc = CTL_EXIT_OK;

    if (top_args(argc, argv, &a) != 0)
        return CTL_EXIT_USAGE;
    c = batchd_connect_unix(socket, timeout_ms);
    if (c == NULL || batchd_err(c) != BATCHD_ERR_NONE) {
        fprintf(stderr, "batchctl top: %s\n", batchd_errstr(c));
        batchd_free(c);
        return CTL_EXIT_IO;
    }
    prev = fetch(c, timeout_ms);
    t_prev = now_ms();
    if (prev == NULL)
        rc = CTL_EXIT_IO;
    for (long f = 0; prev != NULL && (a.frames == 0 || f < a.frames); f++) {
        usleep((useconds_t)a.interval_ms * 1000);
        cur = fetch(c, timeout_ms);
        t_cur = now_ms();
        if (cur == NULL) {
            rc = CTL_EXIT_IO;
            break;
        }
        print_frame(prev, cur, (t_cur - t_prev) / 1e3, isatty(STDOUT_FILENO));
        json_decref(prev);
        prev = cur;
        t_prev = t_cur;
    }
    json_decref(prev);
    batchd_free(c);
    return rc;
}
