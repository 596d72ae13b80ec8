/*
 * gen.c - configuration generations and the life of a sink across
 * reloads (see gen.h).
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "core.h"
#include "gen.h"

/* Sinks left to a stuck call at exit (bd_gen_keep_stuck). */
static struct bd_sink *kept_stuck;

/* prev's sink for sc when its section is unchanged, else NULL. */
static struct bd_sink *find_kept(const struct bd_gen *prev,
                                 const struct bd_sink_conf *sc,
                                 const char *dir)
{
    if (prev == NULL)
        return NULL;
    for (size_t i = 0; i < prev->cfg->nsinks; i++) {
        const struct bd_sink_conf *old = &prev->cfg->sinks[i];

        if (strcmp(old->name, sc->name) == 0)
            return bd_sink_conf_same(prev->sinks[i], old, sc, dir) ?
                   prev->sinks[i] : NULL;
    }
    return NULL;
}

/* Let go of sink s for a generation; unused, it is shut down at the
 * end of the pass (or now, when core is NULL: it never served). */
static void sink_unlist(struct bd_core *core, struct bd_sink *s)
{
    if (--s->gens != 0 || s->open_calls != 0)
        return;
    if (core == NULL) {
        bd_sink_unload_one(s);
        return;
    }
    /* No flush asked for: this may run at exit, without a loop; the
     * next pass (or bd_server_free) reaps it. */
    s->reap_next = core->reap;
    core->reap = s;
}

/* Free g; cfg is the config it was built for (g->cfg, or NULL there
 * when the caller keeps it). */
static void gen_free(struct bd_core *core, struct bd_gen *g,
                     const struct bd_config *cfg)
{
    for (size_t i = 0; i < cfg->nsinks; i++)
        if (g->sinks[i] != NULL)
            sink_unlist(core, g->sinks[i]);
    bd_free(g->sinks);
    bd_free(g->route_series);
    bd_config_free(g->cfg);
    bd_free(g);
}

struct bd_gen *bd_gen_new(struct bd_config *cfg, const struct bd_gen *prev,
                          const char *dir, char *err, size_t errlen)
{
    struct bd_gen *g = bd_calloc(1, sizeof(*g));

    if (g != NULL)
        g->sinks = bd_calloc(cfg->nsinks ? cfg->nsinks : 1, sizeof(*g->sinks));
    if (g == NULL || g->sinks == NULL) {
        snprintf(err, errlen, "sinks: out of memory");
        bd_free(g);
        return NULL;
    }
    g->cfg = cfg;
    g->refs = 1;
    g->id = prev ? prev->id + 1 : 1;
    if (dir == NULL)
        dir = cfg->sink_dir;
    for (size_t i = 0; i < cfg->nsinks; i++) {
        struct bd_sink *s = find_kept(prev, &cfg->sinks[i], dir);

        if (s != NULL)
            g->nkept++;
        else
            s = bd_sink_load_one(&cfg->sinks[i], dir, err, errlen);
        if (s == NULL) {
            /* Nothing served yet: new sinks go at once, kept ones
             * stay with prev; cfg goes back to the caller. */
            g->cfg = NULL;
            gen_free(NULL, g, cfg);
            return NULL;
        }
        s->gens++;
        g->sinks[i] = s;
    }
    return g;
}

void bd_gen_release(struct bd_core *core, struct bd_gen *g)
{
    if (g != NULL && --g->refs == 0)
        gen_free(core, g, g->cfg);
}

void bd_gen_call_closed(struct bd_core *core, struct bd_sink *s)
{
    /* Without generations (unit tests) the driver owns its sinks. */
    if (--s->open_calls != 0 || s->gens != 0 || core->gen == NULL)
        return;
    s->reap_next = core->reap;
    core->reap = s;
    bd_core_want_flush(core);
}

void bd_gen_reap(struct bd_core *core)
{
    while (core->reap != NULL) {
        struct bd_sink *s = core->reap;

        core->reap = s->reap_next;
        bd_sink_unload_one(s);
    }
}

void bd_gen_keep_stuck(struct bd_core *core)
{
    while (core->reap != NULL) {
        struct bd_sink *s = core->reap;

        core->reap = s->reap_next;
        s->reap_next = kept_stuck;
        kept_stuck = s;
    }
}
