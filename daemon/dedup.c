/*
 * dedup.c - coalescing records and the dedup table (see dedup.h).
 */
#include <string.h>

#include "alloc.h"
#include "batch.h"
#include "bytes.h"
#include "core.h"
#include "dedup.h"
#include "siphash.h"
#include "waiter.h"

#define DEDUP_TAB_MIN 64

/* Keyed with the key table's secret: ids come from clients, and a
 * client that could predict buckets could make every lookup walk one
 * long chain (the hash flooding issue 10 fixed for keys). */
static uint32_t dedup_hash(const struct bd_core *core, const struct bd_key *k,
                           const void *id, size_t len)
{
    return (uint32_t)(bd_siphash13(&core->hash_key, id, len) ^
                      ((uint64_t)k->hash * 0x9e3779b97f4a7c15ull >> 32));
}

struct bd_dedup *bd_dedup_find(struct bd_core *core, const struct bd_key *k,
                               const void *id, size_t len)
{
    uint32_t h;

    if (core->ndedup == 0)
        return NULL;
    h = dedup_hash(core, k, id, len);
    for (struct bd_dedup *d = core->dedup_tab[h & (core->dedup_size - 1)]; d;
         d = d->hnext)
        if (d->hash == h && d->key == k && d->len == len &&
            bd_bytes_eq(d->id, id, len))
            return d;
    return NULL;
}

/* Grow at load 1, shrink at load 1/8 (never below the minimum). On no
 * memory the table stays as it is (longer chains, still correct). */
static void dedup_resize(struct bd_core *core, size_t nsize)
{
    struct bd_dedup **nt = bd_calloc(nsize, sizeof(*nt));

    if (nt == NULL)
        return;
    for (size_t i = 0; i < core->dedup_size; i++) {
        struct bd_dedup *d = core->dedup_tab[i], *next;

        for (; d; d = next) {
            next = d->hnext;
            d->hnext = nt[d->hash & (nsize - 1)];
            nt[d->hash & (nsize - 1)] = d;
        }
    }
    bd_free(core->dedup_tab);
    core->dedup_tab = nt;
    core->dedup_size = nsize;
}

static void dedup_link(struct bd_core *core, struct bd_dedup *d)
{
    if (core->dedup_size == 0 || core->ndedup + 1 > core->dedup_size)
        dedup_resize(core, core->dedup_size ? core->dedup_size * 2 :
                     DEDUP_TAB_MIN);
    if (core->dedup_size == 0)
        return; /* no table at all: the item is just not joinable */
    d->hnext = core->dedup_tab[d->hash & (core->dedup_size - 1)];
    core->dedup_tab[d->hash & (core->dedup_size - 1)] = d;
    core->ndedup++;
    d->linked = 1;
}

void bd_dedup_unlink(struct bd_dedup *d)
{
    struct bd_core *core = d->core;
    struct bd_dedup **pp;

    if (!d->linked)
        return;
    for (pp = &core->dedup_tab[d->hash & (core->dedup_size - 1)]; *pp;
         pp = &(*pp)->hnext) {
        if (*pp == d) {
            *pp = d->hnext;
            break;
        }
    }
    d->linked = 0;
    core->ndedup--;
    if (core->dedup_size > DEDUP_TAB_MIN && core->ndedup < core->dedup_size / 8)
        dedup_resize(core, core->dedup_size / 2);
}

int bd_dedup_join(struct bd_dedup *d, struct bd_waiter *w, uint64_t req_id,
                  int type, uint64_t deadline_ns)
{
    struct bd_rcpt *r = bd_malloc(sizeof(*r));

    if (r == NULL)
        return -1;
    r->waiter = w;
    r->req_id = req_id;
    r->deadline_ns = deadline_ns;
    r->type = (uint8_t)type;
    r->next = d->rcpts;
    d->rcpts = r;
    if (w != NULL) {
        bd_waiter_hold(w);
        d->nload++;
    } else {
        d->nsend++;
    }
    return 0;
}

int bd_dedup_attach(struct bd_core *core, struct bd_key *k, struct bd_item *it,
                    const void *id, size_t len, struct bd_waiter *w,
                    uint64_t req_id, int type, uint64_t deadline_ns)
{
    struct bd_dedup *d = bd_calloc(1, sizeof(*d) + len);

    if (d == NULL)
        return -1;
    d->core = core;
    d->key = k;
    d->item = it;
    d->len = len;
    memcpy(d->id, id, len);
    d->hash = dedup_hash(core, k, id, len);
    if (bd_dedup_join(d, w, req_id, type, deadline_ns) != 0) {
        bd_free(d);
        return -1;
    }
    it->dedup = d;
    dedup_link(core, d);
    return 0;
}

void bd_dedup_drop(struct bd_dedup *d, struct bd_rcpt **pp)
{
    struct bd_rcpt *r = *pp;

    *pp = r->next;
    if (r->waiter != NULL) {
        d->nload--;
        bd_waiter_release(r->waiter);
    } else {
        d->nsend--;
    }
    bd_free(r);
}

uint64_t bd_dedup_min_deadline(const struct bd_dedup *d)
{
    uint64_t min = 0;

    for (const struct bd_rcpt *r = d->rcpts; r; r = r->next)
        if (r->deadline_ns && (min == 0 || r->deadline_ns < min))
            min = r->deadline_ns;
    return min;
}

uint64_t bd_dedup_max_deadline(const struct bd_dedup *d)
{
    uint64_t max = 0;

    for (const struct bd_rcpt *r = d->rcpts; r; r = r->next) {
        if (r->deadline_ns == 0)
            return 0;
        if (r->deadline_ns > max)
            max = r->deadline_ns;
    }
    return max;
}

void bd_dedup_free(struct bd_dedup *d)
{
    bd_dedup_unlink(d);
    while (d->rcpts != NULL)
        bd_dedup_drop(d, &d->rcpts);
    bd_free(d);
}

void bd_dedup_destroy_table(struct bd_core *core)
{
    bd_free(core->dedup_tab);
    core->dedup_tab = NULL;
    core->dedup_size = 0;
    core->ndedup = 0;
}
