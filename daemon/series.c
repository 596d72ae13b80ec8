/*
 * series.c - per-route and per-sink counters (see series.h).
 */
#include <string.h>

#include "alloc.h"
#include "batch.h"
#include "gen.h"
#include "series.h"

struct bd_series bd_series_spare;

/* The series of kind and name, made when missing; NULL without memory. */
static struct bd_series *series_get(struct bd_core *core, int kind,
                                    const char *name)
{
    struct bd_series *s, **pp = &core->series;

    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->kind == kind && strcmp((*pp)->name, name) == 0)
            return *pp;
    s = bd_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->name = bd_strdup(name);
    if (s->name == NULL) {
        bd_free(s);
        return NULL;
    }
    s->kind = kind;
    *pp = s; /* appended: rendered in the order first configured */
    return s;
}

int bd_series_bind(struct bd_core *core, struct bd_gen *g)
{
    const struct bd_config *cfg = g->cfg;

    g->route_series = bd_calloc(cfg->nroutes ? cfg->nroutes : 1,
                                sizeof(*g->route_series));
    if (g->route_series == NULL)
        return -1;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        g->route_series[i] = series_get(core, BD_SERIES_ROUTE,
                                        cfg->routes[i].name);
        if (g->route_series[i] == NULL)
            return -1;
    }
    for (size_t i = 0; i < cfg->nsinks; i++) {
        struct bd_series *s = series_get(core, BD_SERIES_SINK,
                                         cfg->sinks[i].name);

        if (s == NULL)
            return -1;
        g->sinks[i]->series = s;
        __atomic_store_n(&g->sinks[i]->restarts, &s->restarts, __ATOMIC_RELEASE);
    }
    return 0;
}

struct bd_series *bd_series_route(struct bd_core *core,
                                  const struct bd_route_conf *r)
{
    if (core->gen == NULL || core->gen->route_series == NULL)
        return &bd_series_spare;
    return core->gen->route_series[r - core->gen->cfg->routes];
}

static void gauge_key(const struct bd_key *k, void *arg)
{
    struct bd_series *s = k->rs;

    (void)arg;
    if (k->flags & BD_KEY_IDLE)
        return;
    s->g_keys++;
    s->g_queued += k->nqueued + k->nretry;
    s->g_qbytes += k->qbytes + k->rbytes;
    s->g_inflight += k->inflight;
    s->g_inflight_items += k->inflight_items;
}

void bd_series_gauges(struct bd_core *core)
{
    for (struct bd_series *s = core->series; s != NULL; s = s->next)
        s->g_keys = s->g_queued = s->g_qbytes = s->g_inflight =
            s->g_inflight_items = s->g_crashes = 0;
    bd_batch_foreach_key(core, gauge_key, NULL);
    for (size_t i = 0; core->gen != NULL && i < core->gen->cfg->nsinks; i++) {
        struct bd_sink *sk = core->gen->sinks[i];

        bd_series_sink(sk)->g_crashes =
            (uint64_t)__atomic_load_n(&sk->unhealthy, __ATOMIC_ACQUIRE);
    }
}

void bd_series_free_all(struct bd_core *core)
{
    while (core->series != NULL) {
        struct bd_series *s = core->series;

        core->series = s->next;
        bd_free(s->name);
        bd_free(s);
    }
}
