/*
 * ctl_top.c - batchctl top (see ctl_top.h).
 *
 * Each frame asks the daemon for its stats as JSON (one connection for
 * the whole run) and prints the difference from the previous answer
 * divided by the time between them: rates come from counters, depths are
 * read as they are. The daemon keeps no per-route counters, so a route's
 * row sums its keys (listed to admins only, at most 1000 keys).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "batchd.h"
#include "ctl_bench.h"
#include "ctl_top.h"

#define TOP_MAX_ROUTES 256

/* One route's figures summed over its listed keys. */
struct top_route {
    const char *name;         /* borrowed from the stats document */
    double items;             /* items handed to the sink (counter) */
    double queued;            /* items queued now */
    double qbytes;            /* payload bytes queued now */
    double inflight;          /* sink calls running now */
    int keys;                 /* keys listed for it */
};

/* The routes of one stats document, in order of first appearance. */
struct top_routes {
    struct top_route r[TOP_MAX_ROUTES];
    int n;
};

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

static struct top_route *route_slot(struct top_routes *rs, const char *name)
{
    for (int i = 0; i < rs->n; i++)
        if (strcmp(rs->r[i].name, name) == 0)
            return &rs->r[i];
    if (rs->n == TOP_MAX_ROUTES)
        return NULL;
    memset(&rs->r[rs->n], 0, sizeof(rs->r[0]));
    rs->r[rs->n].name = name;
    return &rs->r[rs->n++];
}

static void sum_routes(const json_t *doc, struct top_routes *rs)
{
    const char *key;
    json_t *k;

    rs->n = 0;
    json_object_foreach(json_object_get(doc, "keys"), key, k) {
        struct top_route *r = route_slot(rs, json_string_value(
                                             json_object_get(k, "route")) ?: "?");

        if (r == NULL)
            continue;
        r->items += num(k, "items");
        r->queued += num(k, "queued_items");
        r->qbytes += num(k, "queued_bytes");
        r->inflight += num(k, "inflight");
        r->keys++;
    }
}

/* The latency histogram's counts between prev and cur into d[] (bucket
 * i: below 2^i microseconds); returns their total. */
static double hist_delta(const json_t *prev, const json_t *cur, double d[64])
{
    const json_t *hc = json_object_get(cur, "latency_us_hist");
    const json_t *hp = json_object_get(prev, "latency_us_hist");
    double total = 0;
    char name[32];

    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "<%llu", 1ull << i);
        d[i] = num(hc, name) - num(hp, name);
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

static void print_frame(const json_t *prev, const json_t *cur, double secs,
                        int clear)
{
    static struct top_routes rp, rc;
    double d[64];
    double n = hist_delta(prev, cur, d);

    sum_routes(prev, &rp);
    sum_routes(cur, &rc);
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
    printf("%-24s %10s %10s %12s %9s %6s\n", "ROUTE", "ITEMS/S", "QUEUED",
           "BYTES", "INFLIGHT", "KEYS");
    for (int i = 0; i < rc.n; i++) {
        const struct top_route *r = &rc.r[i], *p = NULL;

        for (int j = 0; j < rp.n && p == NULL; j++)
            if (strcmp(rp.r[j].name, r->name) == 0)
                p = &rp.r[j];
        printf("%-24s %10.0f %10.0f %12.0f %9.0f %6d\n", r->name,
               rate(r->items, p ? p->items : 0, secs), r->queued, r->qbytes,
               r->inflight, r->keys);
    }
    if (!json_is_true(json_object_get(cur, "key_detail")))
        printf("(per-route rows come from per-key stats: admins only)\n");
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
