/*
 * prom.c - the Prometheus text format (see prom.h).
 *
 * Everything comes from stats.c's tables: the daemon-wide rows, the
 * per-route/per-sink rows and histograms. This file only knows the
 * format: families, labels, escaping, cumulative buckets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "durable.h"
#include "gen.h"
#include "msg.h"
#include "prom.h"
#include "series.h"
#include "state.h"
#include "stats.h"

/* name="value" with the value escaped as the format asks (\\, \", \n);
 * sep (may be "") goes first. */
static int label(struct bd_buf *b, const char *sep, const char *name,
                 const char *v, size_t n)
{
    int rc = bd_buf_printf(b, "%s%s=\"", sep, name);

    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v[i] == '\\' || v[i] == '"')
            rc = bd_buf_printf(b, "\\%c", v[i]);
        else if (v[i] == '\n')
            rc = bd_buf_printf(b, "\\n");
        else
            rc = bd_buf_append(b, &v[i], 1);
    }
    return rc | bd_buf_printf(b, "\"");
}

static int family(struct bd_buf *b, const char *name, const char *type,
                  const char *help)
{
    return bd_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The labels of one series: route="NAME" or sink="NAME". */
static int series_label(struct bd_buf *b, const struct bd_series *s)
{
    return label(b, "", s->kind == BD_SERIES_ROUTE ? "route" : "sink",
                 s->name, strlen(s->name));
}

/*
 * One histogram: cumulative buckets with le bounds (bucket i of h holds
 * values below 2^i units: bound 2^i - 1 for whole numbers, else 2^i,
 * times scale), +Inf, _sum, _count. s labels it (NULL: no labels).
 */
static int histogram(struct bd_buf *b, const char *name,
                     const struct bd_series *s, const uint64_t *bucket,
                     size_t n, uint64_t sum, double scale, int whole)
{
    uint64_t cum = 0;
    int rc = 0;

    for (size_t i = 0; i + 1 < n && rc == 0; i++) {
        double le = whole ? (double)((1ull << i) - 1) :
                            (double)(1ull << i) * scale;

        cum += bucket[i];
        rc |= bd_buf_printf(b, "%s_bucket{", name);
        if (s != NULL)
            rc |= series_label(b, s) | bd_buf_printf(b, ",");
        rc |= bd_buf_printf(b, "le=\"%.9g\"} %llu\n", le, (unsigned long long)cum);
    }
    cum += bucket[n - 1];
    rc |= bd_buf_printf(b, "%s_bucket{", name);
    if (s != NULL)
        rc |= series_label(b, s) | bd_buf_printf(b, ",");
    rc |= bd_buf_printf(b, "le=\"+Inf\"} %llu\n%s_sum", (unsigned long long)cum, name);
    if (s != NULL)
        rc |= bd_buf_printf(b, "{") | series_label(b, s) | bd_buf_printf(b, "}");
    rc |= bd_buf_printf(b, " %.9g\n%s_count", (double)sum * scale, name);
    if (s != NULL)
        rc |= bd_buf_printf(b, "{") | series_label(b, s) | bd_buf_printf(b, "}");
    return rc | bd_buf_printf(b, " %llu\n", (unsigned long long)cum);
}

/* The spool's group commits (fdatasync), where a route is durable. */
static int spool_sync(struct bd_server *srv, struct bd_buf *b)
{
    uint64_t disk;
    const struct bd_spool_stats *s = bd_durable_stats(&srv->core, &disk);

    if (s == NULL)
        return 0;
    return family(b, "batchd_spool_sync_seconds", "histogram",
                  "Time of one group commit (fdatasync)") |
           histogram(b, "batchd_spool_sync_seconds", NULL, s->sync_hist, 32,
                     s->sync_ns / 1000, 1e-6, 0);
}

static int daemon_metrics(struct bd_server *srv, struct bd_buf *b)
{
    const struct bd_counters *c = &srv->core.ctr;
    struct bd_stat_row rows[2 * BD_STATS_MAX_ROWS];
    size_t nrows = bd_stats_rows(srv, rows);
    int rc = 0;

    /* The spool's figures follow the daemon's, where a route is durable. */
    nrows += bd_stats_spool_rows(srv, rows + nrows);
    for (size_t i = 0; i < nrows && rc == 0; i++) {
        if (rows[i].prom == NULL)
            continue;
        rc |= family(b, rows[i].prom, rows[i].type == BD_M_COUNTER ?
                     "counter" : "gauge", rows[i].help);
        rc |= bd_buf_printf(b, "%s %llu\n", rows[i].prom, rows[i].v);
    }
    rc |= family(b, "batchd_replies_by_status_total", "counter",
                 "Replies by status (items and control)");
    for (int i = 0; i < BATCHD_STATUS_COUNT && rc == 0; i++)
        rc = bd_buf_printf(b, "batchd_replies_by_status_total{status=\"%s\"} %llu\n",
                           bd_status_name(i), (unsigned long long)c->status[i]);
    rc |= family(b, "batchd_rejects_total", "counter",
                 "Items refused at admission, by reason");
    for (int i = 0; i < BD_REJECT_COUNT && rc == 0; i++)
        rc = bd_buf_printf(b, "batchd_rejects_total{reason=\"%s\"} %llu\n",
                           bd_reject_names[i], (unsigned long long)c->rejects[i]);
    rc |= family(b, "batchd_item_latency_seconds", "histogram",
                 "Time from accept to reply, per item");
    rc |= histogram(b, "batchd_item_latency_seconds", NULL, c->lat_hist,
                    32, c->lat_sum_us, 1e-6, 0);
    return rc | spool_sync(srv, b);
}

static const char *reject_name(int i)
{
    return bd_reject_names[i];
}

/* A per-route family with one more label: the n counts at off in each
 * route's series, count i labelled what="name(i)". */
static int route_by(struct bd_server *srv, struct bd_buf *b, const char *prom,
                    const char *help, const char *what, size_t off, int n,
                    const char *(*name)(int))
{
    int rc = family(b, prom, "counter", help);

    for (struct bd_series *s = srv->core.series; s && !rc; s = s->next) {
        const uint64_t *v = (const uint64_t *)(const void *)((const char *)s + off);

        if (s->kind != BD_SERIES_ROUTE)
            continue;
        for (int i = 0; i < n && rc == 0; i++) {
            rc |= bd_buf_printf(b, "%s{", prom) | series_label(b, s);
            rc |= bd_buf_printf(b, ",%s=\"%s\"} %llu\n", what, name(i),
                                (unsigned long long)v[i]);
        }
    }
    return rc;
}

static int series_metrics(struct bd_server *srv, struct bd_buf *b)
{
    int rc = 0;

    bd_series_gauges(&srv->core);
    for (const struct bd_series_row *r = bd_series_rows; r->name && !rc; r++) {
        rc |= family(b, r->prom, r->type == BD_M_COUNTER ? "counter" :
                     "gauge", r->help);
        for (struct bd_series *s = srv->core.series; s && !rc; s = s->next) {
            if (s->kind != r->kind)
                continue;
            rc |= bd_buf_printf(b, "%s{", r->prom) | series_label(b, s);
            rc |= bd_buf_printf(b, "} %llu\n",
                                (unsigned long long)bd_series_value(s, r));
        }
    }
    rc |= route_by(srv, b, "batchd_route_rejects_total", "Items refused at "
                   "admission, by route and reason", "reason",
                   offsetof(struct bd_series, rejects), BD_REJECT_COUNT,
                   reject_name);
    rc |= route_by(srv, b, "batchd_route_replies_total", "Items given their "
                   "final answer, by route and status (a coalesced item "
                   "once)", "status", offsetof(struct bd_series, replies),
                   BATCHD_STATUS_COUNT, bd_status_name);
    for (const struct bd_series_hrow *h = bd_series_hrows; h->name && !rc; h++) {
        rc |= family(b, h->prom, "histogram", h->help);
        for (struct bd_series *s = srv->core.series; s && !rc; s = s->next) {
            const struct bd_series_hist *hist = bd_series_hist_of(s, h);

            if (s->kind == h->kind)
                rc |= histogram(b, h->prom, s, hist->bucket,
                                BD_SERIES_BUCKETS, hist->sum, h->scale,
                                h->whole);
        }
    }
    return rc;
}

/* ---- per-key gauges (metrics_keys = yes) ---------------------------- */

/* One per-key figure. */
struct key_row {
    const char *prom;
    const char *type;
    const char *help;
    uint64_t (*get)(const struct bd_key *k);
};

static uint64_t k_queued(const struct bd_key *k) { return k->nqueued + k->nretry; }
static uint64_t k_qbytes(const struct bd_key *k) { return k->qbytes + k->rbytes; }
static uint64_t k_inflight(const struct bd_key *k) { return k->inflight; }
static uint64_t k_items(const struct bd_key *k) { return k->items; }

static const struct key_row key_rows[] = {
    {"batchd_key_queued_items", "gauge", "Items queued or waiting for a "
     "retry, per key (routes with metrics_keys = yes)", k_queued},
    {"batchd_key_queued_bytes", "gauge", "Their payload bytes", k_qbytes},
    {"batchd_key_inflight_calls", "gauge", "Sink calls running, per key",
     k_inflight},
    {"batchd_key_items_out_total", "counter", "Items handed to the sink "
     "since the key was made (restarts when an idle key is freed)", k_items},
};

struct key_walk {
    struct bd_buf *out;
    const struct key_row *row;
    size_t n;                 /* keys written for this row */
    int rc;
};

static void key_cb(const struct bd_key *k, void *arg)
{
    struct key_walk *w = arg;

    if (w->rc != 0 || !k->route->metrics_keys || w->n >= BD_STATS_MAX_KEYS)
        return;
    w->rc |= bd_buf_printf(w->out, "%s{", w->row->prom);
    w->rc |= label(w->out, "", "route", k->route->name, strlen(k->route->name));
    w->rc |= label(w->out, ",", "key", k->name, k->len);
    w->rc |= bd_buf_printf(w->out, "} %llu\n", (unsigned long long)w->row->get(k));
    w->n++;
}

static int key_metrics(struct bd_server *srv, struct bd_buf *b)
{
    const struct bd_config *cfg = srv->cfg;
    int any = 0, rc = 0;

    for (size_t i = 0; i < cfg->nroutes; i++)
        any |= cfg->routes[i].metrics_keys;
    if (!any) /* the usual case: no family, no walk */
        return 0;
    for (size_t i = 0; i < sizeof(key_rows) / sizeof(key_rows[0]) && !rc; i++) {
        struct key_walk w = {b, &key_rows[i], 0, 0};

        rc |= family(b, key_rows[i].prom, key_rows[i].type, key_rows[i].help);
        bd_batch_foreach_key(&srv->core, key_cb, &w);
        rc |= w.rc;
    }
    return rc;
}

int bd_prom_render(struct bd_server *srv, struct bd_buf *out)
{
    int rc = daemon_metrics(srv, out);

    rc |= series_metrics(srv, out);
    rc |= key_metrics(srv, out);
    return rc ? -1 : 0;
}
