/*
 * stats.c - counters as JSON or text (see stats.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "msg.h"
#include "server.h"
#include "sink.h"
#include "stats.h"

static const char *const state_names[] = {"running", "paused", "stopping"};

static int bprintf(struct bd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int bprintf(struct bd_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || bd_buf_reserve(b, (size_t)n + 1) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)bd_buf_tail(b), (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Keys are valid UTF-8 without NUL (the decoder checked), so escaping
 * quotes, backslashes and control bytes makes them valid JSON. */
static int json_str(struct bd_buf *b, const char *s, size_t n)
{
    int rc = bprintf(b, "\"");

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch == '"' || ch == '\\')
            rc = bprintf(b, "\\%c", ch);
        else if (ch < 0x20)
            rc = bprintf(b, "\\u%04x", ch);
        else
            rc = bd_buf_append(b, &s[i], 1);
    }
    return rc ? rc : bprintf(b, "\"");
}

struct key_walk {
    struct bd_buf *out;
    int json;
    size_t n;
    int rc;
};

static void key_cb(const struct bd_key *k, void *arg)
{
    struct key_walk *w = arg;

    if (w->rc != 0 || w->n >= BD_STATS_MAX_KEYS)
        return;
    if (w->json) {
        w->rc |= bprintf(w->out, "%s", w->n ? "," : "");
        w->rc |= json_str(w->out, k->name, k->len);
        w->rc |= bprintf(w->out, ":{\"route\":\"%s\",\"queued_items\":%llu,"
                         "\"queued_bytes\":%llu,\"inflight\":%u,\"batches\":%llu,"
                         "\"items\":%llu,\"max_batch\":%u,\"rejects\":%llu,"
                         "\"retry_waiting\":%llu}",
                         k->route->name, (unsigned long long)k->nqueued,
                         (unsigned long long)k->qbytes, k->inflight,
                         (unsigned long long)k->batches,
                         (unsigned long long)k->items, k->max_batch,
                         (unsigned long long)k->rejects,
                         (unsigned long long)k->nretry);
    } else {
        w->rc |= bprintf(w->out, "key %s route=%s queued=%llu bytes=%llu "
                         "inflight=%u batches=%llu items=%llu max_batch=%u "
                         "rejects=%llu\n", k->name, k->route->name,
                         (unsigned long long)k->nqueued,
                         (unsigned long long)k->qbytes, k->inflight,
                         (unsigned long long)k->batches,
                         (unsigned long long)k->items, k->max_batch,
                         (unsigned long long)k->rejects);
    }
    w->n++;
}

static int render_hist(struct bd_buf *b, const char *name, const uint64_t *h,
                       size_t n, int json)
{
    int rc = json ? bprintf(b, ",\"%s\":{", name) : bprintf(b, "%s", name);
    int first = 1;

    for (size_t i = 0; i < n && rc == 0; i++) {
        if (h[i] == 0)
            continue;
        /* bucket i holds values below 2^i */
        if (json)
            rc = bprintf(b, "%s\"<%llu\":%llu", first ? "" : ",",
                         1ull << i, (unsigned long long)h[i]);
        else
            rc = bprintf(b, " <%llu:%llu", 1ull << i, (unsigned long long)h[i]);
        first = 0;
    }
    return rc ? rc : bprintf(b, json ? "}" : "\n");
}

/* The daemon-wide counters, one row each, in the order both formats
 * print them: one list, so JSON and text cannot drift apart. */
struct stat_row {
    const char *name;
    unsigned long long v;
};

#define NROWS 19

static void counter_rows(const struct bd_server *srv, struct stat_row *r)
{
    const struct bd_counters *c = &srv->ctr;
    struct stat_row rows[NROWS] = {
        {"uptime_ms", (bd_now_ns() - srv->start_ns) / 1000000},
        {"conns", srv->nconns},
        {"conns_total", c->conns_total},
        {"conns_dropped", c->conns_dropped},
        {"nkeys", srv->nkeys},
        {"queued_items", srv->nqueued},
        {"queued_bytes", srv->qbytes},
        {"inflight_batches", srv->inflight},
        {"inflight_items", srv->inflight_items},
        {"items_in", c->items_in},
        {"items_out", c->items_out},
        {"batches", c->batches},
        {"replies", c->replies},
        {"cancelled", c->cancelled},
        {"send_failed", c->send_failed},
        {"retry_waiting", srv->nretry},
        {"retries", c->retries},
        {"timeouts", c->timeouts},
        {"splits", c->splits},
    };

    for (int i = 0; i < NROWS; i++)
        r[i] = rows[i];
}

static int render_json(struct bd_server *srv, struct bd_buf *b)
{
    const struct bd_counters *c = &srv->ctr;
    struct key_walk w = {b, 1, 0, 0};
    struct stat_row rows[NROWS];
    int rc;

    counter_rows(srv, rows);
    rc = bprintf(b, "{\"version\":\"%s\",\"state\":\"%s\"", BD_VERSION,
                 state_names[srv->state]);
    for (int i = 0; i < NROWS && rc == 0; i++)
        rc = bprintf(b, ",\"%s\":%llu", rows[i].name, rows[i].v);
    rc |= bprintf(b, ",\"replies_by_status\":{");
    for (int i = 0; i < BATCHD_STATUS_COUNT && rc == 0; i++)
        rc = bprintf(b, "%s\"%s\":%llu", i ? "," : "", bd_status_name(i),
                     (unsigned long long)c->status[i]);
    rc |= bprintf(b, "}");
    rc |= render_hist(b, "batch_size_hist", c->batch_hist, 17, 1);
    rc |= render_hist(b, "latency_us_hist", c->lat_hist, 32, 1);
    rc |= bprintf(b, ",\"sinks\":{");
    for (size_t i = 0; i < srv->cfg->nsinks && rc == 0; i++)
        rc = bprintf(b, "%s\"%s\":{\"plugin\":\"%s\",\"calls\":%llu}",
                     i ? "," : "", srv->sinks[i].name, srv->sinks[i].vt->name,
                     (unsigned long long)srv->sinks[i].calls);
    rc |= bprintf(b, "},\"keys\":{");
    bd_batch_foreach_key(srv, key_cb, &w);
    rc |= w.rc;
    rc |= bprintf(b, "},\"keys_listed\":%zu}", w.n);
    return rc ? -1 : 0;
}

static int render_text(struct bd_server *srv, struct bd_buf *b)
{
    const struct bd_counters *c = &srv->ctr;
    struct key_walk w = {b, 0, 0, 0};
    struct stat_row rows[NROWS];
    int rc;

    counter_rows(srv, rows);
    rc = bprintf(b, "version %s\nstate %s\n", BD_VERSION,
                 state_names[srv->state]);
    for (int i = 0; i < NROWS && rc == 0; i++)
        rc = bprintf(b, "%s %llu\n", rows[i].name, rows[i].v);
    rc |= bprintf(b, "replies_by_status");
    for (int i = 0; i < BATCHD_STATUS_COUNT && rc == 0; i++)
        if (c->status[i])
            rc = bprintf(b, " %s=%llu", bd_status_name(i),
                         (unsigned long long)c->status[i]);
    rc |= bprintf(b, "\n");
    rc |= render_hist(b, "batch_size_hist", c->batch_hist, 17, 0);
    rc |= render_hist(b, "latency_us_hist", c->lat_hist, 32, 0);
    bd_batch_foreach_key(srv, key_cb, &w);
    return (rc | w.rc) ? -1 : 0;
}

int bd_stats_render(struct bd_server *srv, int json, struct bd_buf *out)
{
    return json ? render_json(srv, out) : render_text(srv, out);
}

int bd_stats_health(struct bd_server *srv, struct bd_buf *out)
{
    const char *status = srv->state == BD_STATE_RUNNING ? "ok" :
                         srv->state == BD_STATE_PAUSED ? "paused" : "stopping";

    return bprintf(out, "{\"status\":\"%s\",\"conns\":%u,\"queued_items\":%llu,"
                   "\"inflight_batches\":%u}", status, srv->nconns,
                   (unsigned long long)srv->nqueued, srv->inflight);
}
