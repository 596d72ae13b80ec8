/*
 * stats.c - counters as JSON or text (see stats.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "gen.h"
#include "msg.h"
#include "series.h"
#include "state.h"
#include "sink.h"
#include "durable.h"
#include "stats.h"

static const char *const state_names[] = {"running", "paused", "stopping"};

static int bputs(struct bd_buf *b, const char *str)
{
    return bd_buf_append(b, str, strlen(str));
}

/* Keys are valid UTF-8 without NUL (the decoder checked), so escaping
 * quotes, backslashes and control bytes makes them valid JSON. */
static int json_str(struct bd_buf *b, const char *s, size_t n)
{
    int rc = bd_buf_printf(b, "\"");

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\')
            rc = bd_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            rc = bd_buf_printf(b, "\\u%04x", ch);
        else
            rc = bd_buf_append(b, &s[i], 1);
    }
    return rc ? rc : bd_buf_printf(b, "\"");
}

/* A key in the text format, one space-separated word: control bytes,
 * DEL, spaces and backslashes become \xNN, so a key cannot break a line
 * or drive a terminal. */
static int text_str(struct bd_buf *b, const char *s, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch <= 0x20 || ch == 0x7f || ch == '\\')
            rc = bd_buf_printf(b, "\\x%02x", ch);
        else
            rc = bd_buf_append(b, &s[i], 1);
    }
    return rc;
}

struct key_walk {
    struct bd_buf *out;
    int json;
    int idle;                 /* this pass lists idle keys (else live ones) */
    size_t n;                 /* keys listed so far */
    int rc;
};

static uint64_t key_rejects(const struct bd_key *k)
{
    uint64_t n = 0;

    for (int i = 0; i < BD_REJECT_COUNT; i++)
        n += k->rejects[i];
    return n;
}

static const char *reject_name(int i)
{
    return bd_reject_names[i];
}

/* "name":N for each of the n counts (JSON) or " PREFIXname=N" for those
 * above 0 (text); name(i) names count i. */
static int render_by(struct bd_buf *b, const uint64_t *r, int n,
                     const char *(*name)(int), const char *prefix, int json)
{
    int rc = 0;

    for (int i = 0; i < n && rc == 0; i++) {
        if (json)
            rc = bd_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", name(i),
                               (unsigned long long)r[i]);
        else if (r[i])
            rc = bd_buf_printf(b, " %s%s=%llu", prefix, name(i),
                               (unsigned long long)r[i]);
    }
    return rc;
}

/* Every reject reason: render_by. */
static int render_rejects(struct bd_buf *b, const uint64_t *r, int json)
{
    return render_by(b, r, BD_REJECT_COUNT, reject_name, "", json);
}

/* Queued items per lane, non-empty lanes only, highest first: "lanes":
 * {"top":N,"7":N,"0":N} (JSON) or " lanes=top:N,7:N,0:N" (text). A key
 * that never saw a priority has all its items in lane 0. */
static int render_lanes(struct bd_buf *b, const struct bd_key *k, int json)
{
    const struct bd_lanes *L = k->lanes;
    int rc = bd_buf_printf(b, json ? ",\"lanes\":{" : " lanes="), n = 0;

    for (int l = BD_LANE_TOP; l >= 0 && rc == 0; l--) {
        uint64_t q = L ? L->n[l] : (l == 0 ? k->nqueued : 0);
        char name[8];

        if (q == 0)
            continue;
        snprintf(name, sizeof(name), l == BD_LANE_TOP ? "top" : "%d", l);
        rc = bd_buf_printf(b, json ? "%s\"%s\":%llu" : "%s%s:%llu", n++ ? "," : "",
                           name, (unsigned long long)q);
    }
    return rc | (json ? bd_buf_printf(b, "}") : 0);
}

static void key_cb(const struct bd_key *k, void *arg)
{
    struct key_walk *w = arg;
    int idle = (k->flags & BD_KEY_IDLE) != 0;

    if (w->rc != 0 || w->n >= BD_STATS_MAX_KEYS || idle != w->idle)
        return;
    if (w->json) {
        w->rc |= bd_buf_printf(w->out, "%s", w->n ? "," : "");
        w->rc |= json_str(w->out, k->name, k->len);
        w->rc |= bd_buf_printf(w->out, ":{\"route\":\"%s\",\"idle\":%s,"
                               "\"queued_items\":%llu,\"queued_bytes\":%llu,"
                               "\"retry_waiting\":%llu,\"inflight\":%u,"
                               "\"inflight_items\":%llu,\"batches\":%llu,"
                               "\"items\":%llu,\"max_batch\":%u,\"coalesced\":%llu,"
                               "\"rejects\":%llu,\"rejects_by_reason\":{",
                               k->route->name, idle ? "true" : "false",
                               (unsigned long long)k->nqueued,
                               (unsigned long long)k->qbytes,
                               (unsigned long long)k->nretry, k->inflight,
                               (unsigned long long)k->inflight_items,
                               (unsigned long long)k->batches,
                               (unsigned long long)k->items, k->max_batch,
                               (unsigned long long)k->coalesced,
                               (unsigned long long)key_rejects(k));
        w->rc |= render_rejects(w->out, k->rejects, 1);
        w->rc |= bd_buf_printf(w->out, "}");
        w->rc |= render_lanes(w->out, k, 1);
        w->rc |= bd_buf_printf(w->out, "}");
    } else {
        w->rc |= bd_buf_printf(w->out, "key ");
        w->rc |= text_str(w->out, k->name, k->len);
        w->rc |= bd_buf_printf(w->out, " route=%s idle=%d queued=%llu bytes=%llu "
                               "retry_waiting=%llu inflight=%u inflight_items=%llu "
                               "batches=%llu items=%llu max_batch=%u coalesced=%llu "
                               "rejects=%llu",
                               k->route->name, idle,
                               (unsigned long long)k->nqueued,
                               (unsigned long long)k->qbytes,
                               (unsigned long long)k->nretry, k->inflight,
                               (unsigned long long)k->inflight_items,
                               (unsigned long long)k->batches,
                               (unsigned long long)k->items, k->max_batch,
                               (unsigned long long)k->coalesced,
                               (unsigned long long)key_rejects(k));
        w->rc |= render_rejects(w->out, k->rejects, 0);
        w->rc |= render_lanes(w->out, k, 0);
        w->rc |= bd_buf_printf(w->out, "\n");
    }
    w->n++;
}

/* Live keys first, then idle ones, at most BD_STATS_MAX_KEYS in all:
 * keys kept idle in the cache must not crowd out the busy ones. */
static int render_keys(struct bd_server *srv, struct key_walk *w)
{
    for (w->idle = 0; w->idle < 2; w->idle++)
        bd_batch_foreach_key(&srv->core, key_cb, w);
    return w->rc;
}

static int render_hist(struct bd_buf *b, const char *name, const uint64_t *h,
                       size_t n, int json)
{
    int rc = json ? bd_buf_printf(b, ",\"%s\":{", name) : bd_buf_printf(b, "%s", name);
    int first = 1;

    for (size_t i = 0; i < n && rc == 0; i++) {
        if (h[i] == 0)
            continue;
        /* bucket i holds values below 2^i */
        if (json)
            rc = bd_buf_printf(b, "%s\"<%llu\":%llu", first ? "" : ",",
                               1ull << i, (unsigned long long)h[i]);
        else
            rc = bd_buf_printf(b, " <%llu:%llu", 1ull << i, (unsigned long long)h[i]);
        first = 0;
    }
    return rc ? rc : bd_buf_printf(b, json ? "}" : "\n");
}

/* The daemon-wide figures, one row each, in the order every format
 * prints them (JSON, text, Prometheus): one list, so they cannot drift
 * apart. A new figure is one line here. */
size_t bd_stats_rows(const struct bd_server *srv, struct bd_stat_row *r)
{
    const struct bd_counters *c = &srv->core.ctr;
    const struct bd_core *core = &srv->core;
    const struct bd_stat_row rows[] = {
        {"uptime_ms", NULL, BD_M_GAUGE, NULL,
         (bd_now_ns() - srv->start_ns) / 1000000},
        {"conns", "batchd_connections", BD_M_GAUGE,
         "Client connections open", srv->nconns},
        {"conns_total", "batchd_connections_total", BD_M_COUNTER,
         "Client connections accepted", c->conns_total},
        {"conns_dropped", "batchd_connections_dropped_total", BD_M_COUNTER,
         "Connections refused or closed for a limit or a broken frame",
         c->conns_dropped},
        {"nkeys", "batchd_keys", BD_M_GAUGE,
         "Keys held (live and idle in the cache)", core->nkeys},
        {"keys_live", "batchd_keys_live", BD_M_GAUGE,
         "Keys with items queued, waiting or in flight",
         core->nkeys - core->nidle},
        {"keys_idle", NULL, BD_M_GAUGE, NULL, core->nidle},
        {"queued_items", "batchd_queued_items", BD_M_GAUGE,
         "Items queued, all keys", core->nqueued},
        {"queued_bytes", "batchd_queued_bytes", BD_M_GAUGE,
         "Payload bytes queued, all keys", core->qbytes},
        {"inflight_batches", "batchd_inflight_calls", BD_M_GAUGE,
         "Sink calls running", core->inflight},
        {"inflight_items", "batchd_inflight_items", BD_M_GAUGE,
         "Items inside running sink calls", core->inflight_items},
        {"items_in", "batchd_items_in_total", BD_M_COUNTER,
         "Items accepted", c->items_in},
        {"items_out", "batchd_items_out_total", BD_M_COUNTER,
         "Items handed to sinks (each attempt)", c->items_out},
        {"batches", "batchd_batches_total", BD_M_COUNTER,
         "Sink calls made", c->batches},
        {"replies", "batchd_replies_total", BD_M_COUNTER,
         "Reply frames sent (items and control)", c->replies},
        {"cancelled", "batchd_items_cancelled_total", BD_M_COUNTER,
         "LOAD items dropped because their client left", c->cancelled},
        {"send_failed", "batchd_send_failed_total", BD_M_COUNTER,
         "SEND items a sink did not take (logged)", c->send_failed},
        {"retry_waiting", "batchd_retry_waiting_items", BD_M_GAUGE,
         "Items waiting for a retry", core->nretry},
        {"retries", "batchd_retries_total", BD_M_COUNTER,
         "Items put back for another attempt", c->retries},
        {"timeouts", "batchd_sink_timeouts_total", BD_M_COUNTER,
         "Sink calls abandoned at sink_timeout_ms", c->timeouts},
        {"splits", "batchd_splits_total", BD_M_COUNTER,
         "Items capped to half a batch after failures", c->splits},
        {"coalesced", "batchd_items_coalesced_total", BD_M_COUNTER,
         "Items that joined another with their dedup_id", c->coalesced},
    };

    size_t n = sizeof(rows) / sizeof(rows[0]);

    _Static_assert(sizeof(rows) / sizeof(rows[0]) <= BD_STATS_MAX_ROWS,
                   "raise BD_STATS_MAX_ROWS");
    memcpy(r, rows, sizeof(rows));
    return n;
}

#define SF(f) offsetof(struct bd_series, f)

/* The per-route and per-sink figures (struct bd_series fields). */
const struct bd_series_row bd_series_rows[] = {
    {"items_in", "batchd_route_items_in_total", BD_M_COUNTER,
     BD_SERIES_ROUTE, "Items accepted", SF(items_in)},
    {"batches", "batchd_route_batches_total", BD_M_COUNTER, BD_SERIES_ROUTE,
     "Batches handed to the sink", SF(batches)},
    {"items_out", "batchd_route_items_out_total", BD_M_COUNTER,
     BD_SERIES_ROUTE, "Items handed to the sink (each attempt)",
     SF(items_out)},
    {"retries", "batchd_route_retries_total", BD_M_COUNTER, BD_SERIES_ROUTE,
     "Items put back for another attempt", SF(retries)},
    {"timeouts", "batchd_route_timeouts_total", BD_M_COUNTER,
     BD_SERIES_ROUTE, "Sink calls abandoned at sink_timeout_ms",
     SF(timeouts)},
    {"keys_live", "batchd_route_keys_live", BD_M_GAUGE, BD_SERIES_ROUTE,
     "Keys with items queued, waiting or in flight", SF(g_keys)},
    {"queued_items", "batchd_route_queued_items", BD_M_GAUGE,
     BD_SERIES_ROUTE, "Items queued or waiting for a retry", SF(g_queued)},
    {"queued_bytes", "batchd_route_queued_bytes", BD_M_GAUGE,
     BD_SERIES_ROUTE, "Payload bytes queued or waiting for a retry",
     SF(g_qbytes)},
    {"inflight_calls", "batchd_route_inflight_calls", BD_M_GAUGE,
     BD_SERIES_ROUTE, "Sink calls running", SF(g_inflight)},
    {"inflight_items", "batchd_route_inflight_items", BD_M_GAUGE,
     BD_SERIES_ROUTE, "Items inside running sink calls",
     SF(g_inflight_items)},
    {"calls", "batchd_sink_calls_total", BD_M_COUNTER, BD_SERIES_SINK,
     "Sink calls started", SF(calls)},
    {"call_failures", "batchd_sink_call_failures_total", BD_M_COUNTER,
     BD_SERIES_SINK, "Sink calls that failed as a whole", SF(call_failures)},
    {"items_ok", "batchd_sink_items_ok_total", BD_M_COUNTER, BD_SERIES_SINK,
     "Items the sink answered OK", SF(items_ok)},
    {"items_retry", "batchd_sink_items_retry_total", BD_M_COUNTER,
     BD_SERIES_SINK, "Items the sink answered RETRY", SF(items_retry)},
    {"items_failed", "batchd_sink_items_failed_total", BD_M_COUNTER,
     BD_SERIES_SINK, "Items the sink answered FAIL", SF(items_failed)},
    {"restarts", "batchd_sink_restarts_total", BD_M_COUNTER, BD_SERIES_SINK,
     "Runners started again after a crash (isolation = process)",
     SF(restarts)},
    {"crashes_in_a_row", "batchd_sink_crashes_in_a_row", BD_M_GAUGE,
     BD_SERIES_SINK, "Runner crashes in a row (isolation = process); at "
     "unhealthy_after new items are refused", SF(g_crashes)},
    {NULL, NULL, 0, 0, NULL, 0},
};

/* Their histograms. Bucket i of a struct bd_series_hist counts values
 * below 2^i of its unit. */
const struct bd_series_hrow bd_series_hrows[] = {
    {"batch_size", "batchd_route_batch_size_items", BD_SERIES_ROUTE,
     "Items per batch", SF(batch_items), 1.0, 1},
    {"queue_wait_us", "batchd_route_queue_wait_seconds", BD_SERIES_ROUTE,
     "Time from accept to dispatch, per item and attempt",
     SF(queue_wait_us), 1e-6, 0},
    {"call_us", "batchd_sink_call_duration_seconds", BD_SERIES_SINK,
     "Sink call duration, dispatch to answer", SF(call_us), 1e-6, 0},
    {NULL, NULL, 0, NULL, 0, 0, 0},
};

uint64_t bd_series_value(const struct bd_series *s,
                         const struct bd_series_row *row)
{
    /* atomic: an isolated sink's I/O thread adds to restarts */
    return __atomic_load_n((const uint64_t *)((const char *)s + row->off),
                           __ATOMIC_RELAXED);
}

const struct bd_series_hist *bd_series_hist_of(const struct bd_series *s,
                                               const struct bd_series_hrow *h)
{
    return (const struct bd_series_hist *)((const char *)s + h->off);
}

/* One route's or sink's figures: "name":{...} (JSON) or
 * "KIND NAME a=N b=N ..." (text). extra (may be NULL) goes first. */
static int render_series(struct bd_buf *b, const struct bd_series *s,
                         int json, const char *extra)
{
    int rc = 0, n = 0;

    if (json) {
        rc |= json_str(b, s->name, strlen(s->name));
        rc |= bd_buf_printf(b, ":{%s", extra ? extra : "");
        n = extra != NULL;
    } else {
        rc |= bd_buf_printf(b, "%s %s%s", s->kind == BD_SERIES_ROUTE ? "route" :
                            "sink", s->name, extra ? extra : "");
    }
    for (const struct bd_series_row *r = bd_series_rows; r->name && !rc; r++) {
        if (r->kind != s->kind)
            continue;
        rc = bd_buf_printf(b, json ? "%s\"%s\":%llu" : "%s%s=%llu",
                           json ? (n++ ? "," : "") : " ", r->name,
                           (unsigned long long)bd_series_value(s, r));
    }
    if (s->kind == BD_SERIES_ROUTE) {
        rc |= bputs(b, json ? ",\"rejects_by_reason\":{" : "");
        rc |= render_rejects(b, s->rejects, json);
        rc |= bputs(b, json ? "},\"replies_by_status\":{" : "");
        rc |= render_by(b, s->replies, BATCHD_STATUS_COUNT, bd_status_name,
                        "replies_", json);
        rc |= bputs(b, json ? "}" : "");
    }
    for (const struct bd_series_hrow *h = bd_series_hrows; h->name && !rc; h++) {
        const struct bd_series_hist *hist = bd_series_hist_of(s, h);

        if (h->kind != s->kind)
            continue;
        if (json)
            rc = render_hist(b, h->name, hist->bucket, BD_SERIES_BUCKETS, 1);
        else
            rc = bd_buf_printf(b, " %s_sum=%llu", h->name,
                               (unsigned long long)hist->sum);
    }
    return rc | bputs(b, json ? "}" : "\n");
}

/* The current configuration's routes and sinks, in file order. */
static int render_config_series(struct bd_server *srv, int json,
                                 struct bd_buf *b)
{
    const struct bd_gen *g = srv->core.gen;
    char extra[160];
    int rc = 0;

    bd_series_gauges(&srv->core);
    rc |= bputs(b, json ? ",\"routes\":{" : "");
    for (size_t i = 0; i < g->cfg->nroutes && rc == 0; i++) {
        rc |= bputs(b, json && i ? "," : "");
        rc |= render_series(b, g->route_series[i], json, NULL);
    }
    rc |= bputs(b, json ? "},\"sinks\":{" : "");
    for (size_t i = 0; i < g->cfg->nsinks && rc == 0; i++) {
        const struct bd_sink *s = g->sinks[i];

        snprintf(extra, sizeof(extra), json ? "\"plugin\":\"%s\"" :
                 " plugin=%s", s->vt->name);
        rc |= bputs(b, json && i ? "," : "");
        rc |= render_series(b, s->series, json, extra);
    }
    return rc | bputs(b, json ? "}" : "");
}

/* A spool figure: its stats name, and its Prometheus name (counters end
 * in _total; NULL = stats only, e.g. microseconds, which the endpoint
 * gives as the batchd_spool_sync_seconds histogram instead). */
#define SPOOL_CTR(n, h, val) \
    {"spool_" n, "batchd_spool_" n "_total", BD_M_COUNTER, h, val}
#define SPOOL_GAUGE(n, h, val) {"spool_" n, "batchd_spool_" n, BD_M_GAUGE, h, val}
#define SPOOL_ONLY(n, val) {"spool_" n, NULL, BD_M_GAUGE, NULL, val}

size_t bd_stats_spool_rows(const struct bd_server *srv, struct bd_stat_row *r)
{
    uint64_t disk = 0;
    const struct bd_spool_stats *s = bd_durable_stats(&srv->core, &disk);

    if (s == NULL)
        return 0;
    {
        const struct bd_stat_row rows[] = {
            SPOOL_CTR("items", "Durable SENDs written to the spool", s->spooled),
            SPOOL_CTR("item_bytes", "Payload bytes written to the spool",
                      s->spooled_bytes),
            SPOOL_CTR("done", "Spooled items that reached a final state", s->done),
            SPOOL_GAUGE("disk_bytes", "Bytes of the spool's segment files", disk),
            SPOOL_CTR("syncs", "Group commits (fdatasync calls)", s->syncs),
            SPOOL_ONLY("sync_us_total", s->sync_ns / 1000),
            SPOOL_ONLY("sync_us_max", s->sync_max_ns / 1000),
            SPOOL_CTR("recovered", "Items queued again from the spool at start",
                      s->recovered),
            SPOOL_CTR("damaged", "Records lost to damage found at start",
                      s->damaged),
            SPOOL_CTR("damaged_bytes", "Bytes set aside as damaged at start",
                      s->damaged_bytes),
            SPOOL_CTR("missing_segments", "Segment files found missing at start",
                      s->missing_segments),
            SPOOL_CTR("dead_lettered", "Durable items written to dead letters",
                      s->dead_lettered),
            SPOOL_CTR("full", "Durable SENDs refused: spool full or no disk space",
                      s->full),
            SPOOL_CTR("write_errors", "Spool writes or syncs that failed",
                      s->write_errors),
        };

        _Static_assert(sizeof(rows) / sizeof(rows[0]) <= BD_STATS_MAX_ROWS,
                       "BD_STATS_MAX_ROWS is too small for the spool rows");
        memcpy(r, rows, sizeof(rows));
        return sizeof(rows) / sizeof(rows[0]);
    }
}

/* The spool's counters (durable routes): an object in JSON, one line in
 * text; nothing without a spool. */
static int render_spool(const struct bd_server *srv, struct bd_buf *b, int json)
{
    struct bd_stat_row rows[BD_STATS_MAX_ROWS];
    size_t n = bd_stats_spool_rows(srv, rows);
    uint64_t disk;
    int rc;

    if (n == 0)
        return 0;
    rc = bd_buf_printf(b, json ? ",\"spool\":{" : "spool");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = bd_buf_printf(b, json ? "%s\"%s\":%llu" : "%s%s=%llu",
                           json ? (i ? "," : "") : " ", rows[i].name, rows[i].v);
    rc |= bd_buf_printf(b, json ? "}" : "\n");
    return rc | render_hist(b, "spool_sync_us_hist",
                            bd_durable_stats(&srv->core, &disk)->sync_hist, 32, json);
}

static int render_json(struct bd_server *srv, int detail, struct bd_buf *b)
{
    const struct bd_counters *c = &srv->core.ctr;
    struct key_walk w = {b, 1, 0, 0, 0};
    struct bd_stat_row rows[BD_STATS_MAX_ROWS];
    size_t nrows = bd_stats_rows(srv, rows);
    int rc;

    rc = bd_buf_printf(b, "{\"version\":\"%s\",\"state\":\"%s\"", BD_VERSION,
                       state_names[srv->core.state]);
    for (size_t i = 0; i < nrows && rc == 0; i++)
        rc = bd_buf_printf(b, ",\"%s\":%llu", rows[i].name, rows[i].v);
    rc |= bd_buf_printf(b, ",\"replies_by_status\":{");
    for (int i = 0; i < BATCHD_STATUS_COUNT && rc == 0; i++)
        rc = bd_buf_printf(b, "%s\"%s\":%llu", i ? "," : "", bd_status_name(i),
                           (unsigned long long)c->status[i]);
    rc |= bd_buf_printf(b, "},\"rejects_by_reason\":{");
    rc |= render_rejects(b, c->rejects, 1);
    rc |= bd_buf_printf(b, "}");
    rc |= render_hist(b, "batch_size_hist", c->batch_hist, 17, 1);
    rc |= render_hist(b, "latency_us_hist", c->lat_hist, 32, 1);
    rc |= render_spool(srv, b, 1);
    rc |= render_config_series(srv, 1, b);
    rc |= bd_buf_printf(b, ",\"key_detail\":%s,\"keys\":{",
                        detail ? "true" : "false");
    if (detail)
        rc |= render_keys(srv, &w);
    rc |= bd_buf_printf(b, "},\"keys_listed\":%zu}", w.n);
    return rc ? -1 : 0;
}

static int render_text(struct bd_server *srv, int detail, struct bd_buf *b)
{
    const struct bd_counters *c = &srv->core.ctr;
    struct key_walk w = {b, 0, 0, 0, 0};
    struct bd_stat_row rows[BD_STATS_MAX_ROWS];
    size_t nrows = bd_stats_rows(srv, rows);
    int rc;

    rc = bd_buf_printf(b, "version %s\nstate %s\n", BD_VERSION,
                       state_names[srv->core.state]);
    for (size_t i = 0; i < nrows && rc == 0; i++)
        rc = bd_buf_printf(b, "%s %llu\n", rows[i].name, rows[i].v);
    rc |= bd_buf_printf(b, "replies_by_status");
    for (int i = 0; i < BATCHD_STATUS_COUNT && rc == 0; i++)
        if (c->status[i])
            rc = bd_buf_printf(b, " %s=%llu", bd_status_name(i),
                               (unsigned long long)c->status[i]);
    rc |= bd_buf_printf(b, "\nrejects_by_reason");
    rc |= render_rejects(b, c->rejects, 0);
    rc |= bd_buf_printf(b, "\n");
    rc |= render_hist(b, "batch_size_hist", c->batch_hist, 17, 0);
    rc |= render_hist(b, "latency_us_hist", c->lat_hist, 32, 0);
    rc |= render_spool(srv, b, 0);
    rc |= render_config_series(srv, 0, b);
    if (detail)
        rc |= render_keys(srv, &w);
    else
        rc |= bd_buf_printf(b, "keys: per-key detail is for admins "
                            "(admin_uids/admin_gids)\n");
    return rc ? -1 : 0;
}

int bd_stats_render(struct bd_server *srv, int json, int detail,
                    struct bd_buf *out)
{
    return json ? render_json(srv, detail, out) :
                  render_text(srv, detail, out);
}

/* A sink's state for health: "unhealthy" while an isolated sink keeps
 * crashing (admission answers SINK_UNAVAILABLE), else "ok". */
static const char *sink_state(const struct bd_sink *sk)
{
    return sk->unhealthy ? "unhealthy" : "ok";
}

int bd_stats_health(struct bd_server *srv, int json, struct bd_buf *out)
{
    const char *status = srv->core.state == BD_STATE_RUNNING ? "ok" :
                         srv->core.state == BD_STATE_PAUSED ? "paused" : "stopping";
    int rc;

    rc = bd_buf_printf(out, json ? "{\"status\":\"%s\",\"conns\":%u,"
                       "\"queued_items\":%llu,\"inflight_batches\":%u,\"sinks\":{"
                       : "status %s\nconns %u\nqueued_items %llu\n"
                       "inflight_batches %u\n", status, srv->nconns,
                       (unsigned long long)srv->core.nqueued, srv->core.inflight);
    for (size_t i = 0; i < srv->cfg->nsinks && rc == 0; i++)
        rc = bd_buf_printf(out, json ? "%s\"%s\":{\"plugin\":\"%s\",\"state\":\"%s\"}"
                           : "%ssink %s plugin=%s state=%s\n", json && i ? "," : "",
                           srv->core.sinks[i]->name, srv->core.sinks[i]->vt->name,
                           sink_state(srv->core.sinks[i]));
    return rc | (json ? bd_buf_printf(out, "}}") : 0);
}
