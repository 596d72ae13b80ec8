/*
 * stats.h - the daemon's counter table, rendered as JSON or as text
 * lines (batchctl stats, batchctl health) and, by prom.c, as Prometheus
 * text: every format reads the same rows, so they cannot disagree.
 */
#ifndef BD_STATS_H
#define BD_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct bd_server;
struct bd_series;
struct bd_series_hist;

enum bd_metric_type {
    BD_M_COUNTER = 0,         /* only ever grows (Prometheus: _total) */
    BD_M_GAUGE = 1,           /* a level: goes up and down */
};

/* One daemon-wide figure, as one rendering reads it. */
struct bd_stat_row {
    const char *name;         /* stats name (JSON field, text line) */
    const char *prom;         /* Prometheus name; NULL = stats only */
    int type;                 /* enum bd_metric_type */
    const char *help;         /* Prometheus HELP text */
    unsigned long long v;
};

/* Room for the daemon-wide rows (a compile-time check keeps it so). */
#define BD_STATS_MAX_ROWS 64

/* Fill rows[BD_STATS_MAX_ROWS] with the daemon-wide figures now;
 * returns how many there are. */
size_t bd_stats_rows(const struct bd_server *srv, struct bd_stat_row *rows);

/* The spool's figures (durable routes), as rows of the same shape; 0
 * rows when no route is durable. */
size_t bd_stats_spool_rows(const struct bd_server *srv, struct bd_stat_row *rows);

/* One per-route or per-sink figure: a uint64_t field of struct
 * bd_series (series.h). bd_series_rows ends with a NULL name. */
struct bd_series_row {
    const char *name;         /* stats name */
    const char *prom;         /* Prometheus name */
    int type;                 /* enum bd_metric_type */
    int kind;                 /* enum bd_series_kind */
    const char *help;
    size_t off;               /* offsetof(struct bd_series, field) */
};

extern const struct bd_series_row bd_series_rows[];

/* One per-route or per-sink histogram (a struct bd_series_hist field);
 * bd_series_hrows ends with a NULL name. */
struct bd_series_hrow {
    const char *name;         /* stats name */
    const char *prom;         /* Prometheus name (base unit) */
    int kind;                 /* enum bd_series_kind */
    const char *help;
    size_t off;               /* offsetof(struct bd_series, field) */
    double scale;             /* its unit in the Prometheus base unit */
    int whole;                /* whole numbers: bucket i's bound is 2^i - 1
                               * (values below 2^i), else 2^i */
};

extern const struct bd_series_hrow bd_series_hrows[];

uint64_t bd_series_value(const struct bd_series *s,
                         const struct bd_series_row *row);
const struct bd_series_hist *bd_series_hist_of(const struct bd_series *s,
                                               const struct bd_series_hrow *h);

/* Append the stats document to out. detail 0 leaves out every key's
 * name and counters (they tell one client about the others' keys: for
 * admins only); the totals stay. Returns 0 or -1 (no memory). */
int bd_stats_render(struct bd_server *srv, int json, int detail,
                    struct bd_buf *out);

/* Append health: the daemon's state and each sink's (ok, unhealthy),
 * as JSON {"status":..,"sinks":{NAME:{"plugin":..,"state":..}}} or as
 * text lines. Returns 0 or -1. */
int bd_stats_health(struct bd_server *srv, int json, struct bd_buf *out);

/* At most this many keys are listed one by one in stats. */
#define BD_STATS_MAX_KEYS 1000

#endif
