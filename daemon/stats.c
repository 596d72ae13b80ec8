/*
 * stats.c - counters as JSON or text (see stats.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "msg.h"
#include "state.h"
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

/* "name":N for every reason (JSON) or " name=N" for those above 0 (text). */
static int render_rejects(struct bd_buf *b, const uint64_t *r, int json)
{
    int rc = 0;

    for (int i = 0; i < BD_REJECT_COUNT && rc == 0; i++) {
        if (json)
            rc = bprintf(b, "%s\"%s\":%llu", i ? "," : "", bd_reject_names[i],
                         (unsigned long long)r[i]);
        else if (r[i])
            rc = bprintf(b, " %s=%llu", bd_reject_names[i],
                         (unsigned long long)r[i]);
    }
    return rc;
}

/* Queued items per lane, non-empty lanes only, highest first: "lanes":
 * {"top":N,"7":N,"0":N} (JSON) or " lanes=top:N,7:N,0:N" (text). A key
 * that never saw a priority has all its items in lane 0. */
static int render_lanes(struct bd_buf *b, const struct bd_key *k, int json)
{
    const struct bd_lanes *L = k->lanes;
    int rc = bprintf(b, json ? ",\"lanes\":{" : " lanes="), n = 0;

    for (int l = BD_LANE_TOP; l >= 0 && rc == 0; l--) {
        uint64_t q = L ? L->n[l] : (l == 0 ? k->nqueued : 0);
        char name[8];

        if (q == 0)
            continue;
        snprintf(name, sizeof(name), l == BD_LANE_TOP ? "top" : "%d", l);
        rc = bprintf(b, json ? "%s\"%s\":%llu" : "%s%s:%llu", n++ ? "," : "",
                     name, (unsigned long long)q);
    }
    return rc | (json ? bprintf(b, "}") : 0);
}

static void key_cb(const struct bd_key *k, void *arg)
{
    struct key_walk *w = arg;
    int idle = (k->flags & BD_KEY_IDLE) != 0;

    if (w->rc != 0 || w->n >= BD_STATS_MAX_KEYS || idle != w->idle)
        return;
    if (w->json) {
        w->rc |= bprintf(w->out, "%s", w->n ? "," : "");
        w->rc |= json_str(w->out, k->name, k->len);
        w->rc |= bprintf(w->out, ":{\"route\":\"%s\",\"idle\":%s,"
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
        w->rc |= bprintf(w->out, "}");
        w->rc |= render_lanes(w->out, k, 1);
        w->rc |= bprintf(w->out, "}");
    } else {
        w->rc |= bprintf(w->out, "key %s route=%s idle=%d queued=%llu bytes=%llu "
                         "retry_waiting=%llu inflight=%u inflight_items=%llu "
                         "batches=%llu items=%llu max_batch=%u coalesced=%llu "
                         "rejects=%llu",
                         k->name, k->route->name, idle,
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
        w->rc |= bprintf(w->out, "\n");
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

#define NROWS 22

static void counter_rows(const struct bd_server *srv, struct stat_row *r)
{
    const struct bd_counters *c = &srv->core.ctr;
    struct stat_row rows[NROWS] = {
        {"uptime_ms", (bd_now_ns() - srv->start_ns) / 1000000},
        {"conns", srv->nconns},
        {"conns_total", c->conns_total},
        {"conns_dropped", c->conns_dropped},
        {"nkeys", srv->core.nkeys},
        {"keys_live", srv->core.nkeys - srv->core.nidle},
        {"keys_idle", srv->core.nidle},
        {"queued_items", srv->core.nqueued},
        {"queued_bytes", srv->core.qbytes},
        {"inflight_batches", srv->core.inflight},
        {"inflight_items", srv->core.inflight_items},
        {"items_in", c->items_in},
        {"items_out", c->items_out},
        {"batches", c->batches},
        {"replies", c->replies},
        {"cancelled", c->cancelled},
        {"send_failed", c->send_failed},
        {"retry_waiting", srv->core.nretry},
        {"retries", c->retries},
        {"timeouts", c->timeouts},
        {"splits", c->splits},
        {"coalesced", c->coalesced},
    };

    for (int i = 0; i < NROWS; i++)
        r[i] = rows[i];
}

static int render_json(struct bd_server *srv, int detail, struct bd_buf *b)
{
    const struct bd_counters *c = &srv->core.ctr;
    struct key_walk w = {b, 1, 0, 0, 0};
    struct stat_row rows[NROWS];
    int rc;

    counter_rows(srv, rows);
    rc = bprintf(b, "{\"version\":\"%s\",\"state\":\"%s\"", BD_VERSION,
                 state_names[srv->core.state]);
    for (int i = 0; i < NROWS && rc == 0; i++)
        rc = bprintf(b, ",\"%s\":%llu", rows[i].name, rows[i].v);
    rc |= bprintf(b, ",\"replies_by_status\":{");
    for (int i = 0; i < BATCHD_STATUS_COUNT && rc == 0; i++)
        rc = bprintf(b, "%s\"%s\":%llu", i ? "," : "", bd_status_name(i),
                     (unsigned long long)c->status[i]);
    rc |= bprintf(b, "},\"rejects_by_reason\":{");
    rc |= render_rejects(b, c->rejects, 1);
    rc |= bprintf(b, "}");
    rc |= render_hist(b, "batch_size_hist", c->batch_hist, 17, 1);
    rc |= render_hist(b, "latency_us_hist", c->lat_hist, 32, 1);
    rc |= bprintf(b, ",\"sinks\":{");
    for (size_t i = 0; i < srv->cfg->nsinks && rc == 0; i++)
        rc = bprintf(b, "%s\"%s\":{\"plugin\":\"%s\",\"calls\":%llu}",
                     i ? "," : "", srv->core.sinks[i]->name,
                     srv->core.sinks[i]->vt->name,
                     (unsigned long long)srv->core.sinks[i]->calls);
    rc |= bprintf(b, "},\"key_detail\":%s,\"keys\":{",
                  detail ? "true" : "false");
    if (detail)
        rc |= render_keys(srv, &w);
    rc |= bprintf(b, "},\"keys_listed\":%zu}", w.n);
    return rc ? -1 : 0;
}

static int render_text(struct bd_server *srv, int detail, struct bd_buf *b)
{
    const struct bd_counters *c = &srv->core.ctr;
    struct key_walk w = {b, 0, 0, 0, 0};
    struct stat_row rows[NROWS];
    int rc;

    counter_rows(srv, rows);
    rc = bprintf(b, "version %s\nstate %s\n", BD_VERSION,
                 state_names[srv->core.state]);
    for (int i = 0; i < NROWS && rc == 0; i++)
        rc = bprintf(b, "%s %llu\n", rows[i].name, rows[i].v);
    rc |= bprintf(b, "replies_by_status");
    for (int i = 0; i < BATCHD_STATUS_COUNT && rc == 0; i++)
        if (c->status[i])
            rc = bprintf(b, " %s=%llu", bd_status_name(i),
                         (unsigned long long)c->status[i]);
    rc |= bprintf(b, "\nrejects_by_reason");
    rc |= render_rejects(b, c->rejects, 0);
    rc |= bprintf(b, "\n");
    rc |= render_hist(b, "batch_size_hist", c->batch_hist, 17, 0);
    rc |= render_hist(b, "latency_us_hist", c->lat_hist, 32, 0);
    if (detail)
        rc |= render_keys(srv, &w);
    else
        rc |= bprintf(b, "keys: per-key detail is for admins "
                      "(admin_uids/admin_gids)\n");
    return rc ? -1 : 0;
}

int bd_stats_render(struct bd_server *srv, int json, int detail,
                    struct bd_buf *out)
{
    return json ? render_json(srv, detail, out) :
                  render_text(srv, detail, out);
}

int bd_stats_health(struct bd_server *srv, struct bd_buf *out)
{
    const char *status = srv->core.state == BD_STATE_RUNNING ? "ok" :
                         srv->core.state == BD_STATE_PAUSED ? "paused" : "stopping";

    return bprintf(out, "{\"status\":\"%s\",\"conns\":%u,\"queued_items\":%llu,"
                   "\"inflight_batches\":%u}", status, srv->nconns,
                   (unsigned long long)srv->core.nqueued, srv->core.inflight);
}
