/*
 * stats.h - the daemon's counters rendered as JSON or as text lines
 * (batchctl stats, batchctl health).
 */
#ifndef BD_STATS_H
#define BD_STATS_H

#include "buf.h"

struct bd_server;

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
