/*
 * gen.h - configuration generations (core layer): a loaded config and
 * the sinks its routes use, shared by every key routed under it.
 *
 * A reload (reload.c) builds a new generation next to the running one:
 * sinks whose [sink.*] section did not change are shared (not
 * restarted), the others are loaded new. Keys move to the new
 * generation's routes (batch.c: bd_batch_reroute); a key whose name no
 * route of the new config matches keeps its old generation until it
 * is freed. A generation is freed when the core and every key have let
 * go of it; a sink is shut down when no generation lists it and its
 * last call has ended (at the end of a loop pass, never inside a call).
 * Loop thread only.
 */
#ifndef BD_GEN_H
#define BD_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sink.h"

struct bd_core;
struct bd_series;

struct bd_gen {
    uint32_t refs;            /* the core's current pointer + keys on it */
    uint64_t id;              /* 1 for the first config, +1 per reload */
    struct bd_config *cfg;    /* owned */
    struct bd_sink **sinks;   /* cfg->nsinks, each counted in its ->gens */
    uint32_t nkept;           /* sinks shared with the previous generation */
    struct bd_series **route_series; /* cfg->nroutes: each route's counters
                               * (series.h, owned by the core); NULL until
                               * bd_series_bind */
};

/*
 * Build a generation for cfg (taken on success; on failure the caller
 * still owns it): every sink of
 * prev whose section is unchanged is shared, the others are loaded
 * from dir (sink_dir when dir is NULL). prev may be NULL (start-up).
 * Nothing of prev changes. Returns it with one reference, or NULL with
 * err ("sink NAME (path): why").
 */
struct bd_gen *bd_gen_new(struct bd_config *cfg, const struct bd_gen *prev,
                          const char *dir, char *err, size_t errlen);

/* Take one more reference; NULL is fine (unit tests run without). */
static inline void bd_gen_hold(struct bd_gen *g)
{
    if (g != NULL)
        g->refs++;
}

/* Drop one reference; the last frees the generation and hands its
 * unused sinks to the core's reap list. NULL is fine. */
void bd_gen_release(struct bd_core *core, struct bd_gen *g);

/* A call in sink s started (call.c, at dispatch). */
static inline void bd_gen_call_opened(struct bd_sink *s)
{
    s->open_calls++;
}

/* That call's batch was freed: the sink may be shut down now. */
void bd_gen_call_closed(struct bd_core *core, struct bd_sink *s);

/* Shut down the sinks on the reap list (end of a loop pass, exit). */
void bd_gen_reap(struct bd_core *core);

/* Exit with a call stuck in a sink (shutdown grace over): its plugin
 * may still run, so the sinks on the reap list are never shut down or
 * freed; they stay reachable (not a leak) until the process ends. */
void bd_gen_keep_stuck(struct bd_core *core);

#endif
