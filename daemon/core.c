/*
 * core.c - setting up the batching core's state (see core.h).
 */
#include <string.h>
#include <unistd.h>

#include "core.h"

int bd_core_init(struct bd_core *core, struct event_base *base,
                 const struct bd_config *cfg, struct bd_sink *const *sinks,
                 struct bd_workers *workers, uint64_t (*read)(void),
                 void (*want_flush)(void *arg), void *owner)
{
    memset(core, 0, sizeof(*core));
    core->base = base;
    core->cfg = cfg;
    core->sinks = sinks;
    core->workers = workers;
    core->want_flush = want_flush;
    core->owner = owner;
    core->clock.read = read;
    bd_core_tick(core);
    /* Jitter only: any seed that differs between runs will do. */
    core->rng = core->clock.now_ns ^ ((uint64_t)getpid() << 32) ^
                0x9e3779b97f4a7c15ull;
    return bd_sipkey_random(&core->hash_key);
}
