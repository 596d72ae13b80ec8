/*
 * prom.h - the counter table (stats.h) in the Prometheus text format,
 * version 0.0.4, for the metrics endpoint (metrics.c).
 */
#ifndef BD_PROM_H
#define BD_PROM_H

#include "buf.h"

struct bd_server;

/* The Content-Type of what bd_prom_render writes. */
#define BD_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Append every metric to out: the daemon-wide rows, replies by status,
 * rejects by reason, the item latency histogram, then one family per
 * per-route and per-sink row (labels route="..." or sink="..."), and for
 * routes with metrics_keys = yes, per-key gauges (label key="...", at
 * most BD_STATS_MAX_KEYS keys). Every family has its # HELP and # TYPE
 * before its samples; times are in seconds, sizes in bytes. Returns 0
 * or -1 (no memory).
 */
int bd_prom_render(struct bd_server *srv, struct bd_buf *out);

#endif
