/*
 * batch.c - per-key queues, close rules, admission, dispatch and the
 * key timer (see batch.h and DESIGN section 3).
 *
 * A key's "open batch" is simply the head of its queue: items wait in
 * one FIFO, and a batch is cut from the front when the close rule says
 * so and the key and the server both have a free concurrency slot.
 * Items waiting for a retry sit on the key's retry list until their
 * backoff is over, then go back to the front of the queue. Keys are
 * created on first use and freed as soon as nothing is queued, waiting,
 * running or listed for them.
 *
 * One timer per key covers its three clocks: the batch delay, the
 * earliest deadline in the queue, and the earliest retry.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "batch.h"
#include "bytes.h"
#include "call.h"
#include "dedup.h"
#include "durable.h"
#include "waiter.h"
#include "hist.h"
#include "lanes.h"
#include "log.h"
#include "msg.h"
#include "core.h"
#include "gen.h"
#include "series.h"
#include "sink.h"
#include "siphash.h"

/* ---- the pure rules (unit-tested in check_batch.c) -------------------- */

int bd_batch_fits(const struct bd_route_conf *r, size_t count, uint64_t bytes,
                  size_t next_len)
{
    if (count == 0)
        return 1;
    return count < r->max_items && bytes + next_len <= r->max_bytes;
}

int bd_batch_ready(const struct bd_route_conf *r, uint64_t nqueued,
                   uint64_t qbytes, uint64_t first_ns, uint64_t tight_ns,
                   uint64_t now_ns, uint32_t inflight, int flushing)
{
    int full, expired;

    if (nqueued == 0)
        return 0;
    if (flushing)
        return 1;
    /* An item whose deadline would pass while the batch waits makes the
     * batch leave now, whatever the policy. */
    if (tight_ns != 0 && now_ns + BD_DEADLINE_MARGIN_NS >= tight_ns)
        return 1;
    /* Bytes at or past the ceiling mean the head batch cannot grow; a
     * queue at its own bound cannot grow either. */
    full = nqueued >= r->max_items || qbytes >= r->max_bytes ||
           nqueued >= r->key_max_items || qbytes >= r->key_max_bytes;
    expired = now_ns >= first_ns + r->max_delay_us * 1000;
    switch (r->policy) {
    case BD_POLICY_IMMEDIATE:
        return 1;
    case BD_POLICY_SIZE:
        return full;
    case BD_POLICY_BALANCED:
        return full || expired || nqueued >= r->min_items ||
               inflight < r->key_concurrency;
    case BD_POLICY_DURATION:
    default:
        return full || expired;
    }
}

uint64_t bd_batch_backoff_ns(const struct bd_route_conf *r, uint32_t attempt,
                             double rnd)
{
    uint64_t nominal = (uint64_t)r->retry_base_ms * 1000000ull;
    uint64_t cap = (uint64_t)r->retry_cap_ms * 1000000ull;

    for (uint32_t i = 1; i < attempt && nominal < cap; i++)
        nominal *= 2;
    if (nominal > cap)
        nominal = cap;
    return nominal / 2 + (uint64_t)((double)(nominal / 2) * rnd);
}

/* ---- the key table ---------------------------------------------------- */

/*
 * Keyed with a secret drawn at start-up (server.c): the bucket of a key
 * cannot be predicted from outside, so a client cannot pick keys that
 * share one chain (with the unkeyed FNV-1a used before, 40 000 such keys
 * took 8 s to admit and froze the loop). The hash runs only when the
 * key is not the previous one (core->key_last).
 */
uint32_t bd_batch_key_hash(const struct bd_core *core, const char *s,
                           size_t n)
{
    return (uint32_t)bd_siphash13(&core->hash_key, s, n);
}

static struct bd_key *key_find(struct bd_core *core, const char *name,
                               size_t len, uint32_t h)
{
    struct bd_key *k;

    if (core->keytab == NULL)
        return NULL;
    for (k = core->keytab[h & (core->keytab_size - 1)]; k; k = k->hnext)
        if (k->hash == h && k->len == len && bd_bytes_eq(k->name, name, len))
            return k;
    return NULL;
}

/* Rehash into nsize buckets (a power of two). On no memory the table
 * stays as it was: -1. */
static int keytab_resize(struct bd_core *core, size_t nsize)
{
    struct bd_key **nt = bd_calloc(nsize, sizeof(*nt));

    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < core->keytab_size; i++) {
        struct bd_key *k = core->keytab[i], *next;

        for (; k; k = next) {
            next = k->hnext;
            k->hnext = nt[k->hash & (nsize - 1)];
            nt[k->hash & (nsize - 1)] = k;
        }
    }
    bd_free(core->keytab);
    core->keytab = nt;
    core->keytab_size = nsize;
    return 0;
}

/* Grow at load 3/4; shrink at load 1/8 (see key_free), so that a table
 * blown up by a burst of keys does not stay large: every walk over all
 * keys (a client's disconnect, stats, shutdown) visits every bucket. */
static int keytab_grow(struct bd_core *core)
{
    return keytab_resize(core, core->keytab_size ? core->keytab_size * 2 :
                         BD_KEYTAB_MIN);
}

static void keytab_maybe_shrink(struct bd_core *core)
{
    if (core->keytab_size > BD_KEYTAB_MIN && core->nkeys < core->keytab_size / 8)
        keytab_resize(core, core->keytab_size / 2); /* no memory: stays */
}

static const struct bd_route_conf *route_match(const struct bd_config *cfg,
                                               const char *key)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct bd_route_conf *r = &cfg->routes[i];

        if (strcmp(r->match, key) == 0 || fnmatch(r->match, key, 0) == 0)
            return r;
    }
    return NULL;
}

static inline void key_wake(struct bd_core *core, struct bd_key *k);
static void key_free(struct bd_core *core, struct bd_key *k);

/* Find or create the key. NULL with a->status set when it has no route
 * or memory is short. */
static inline __attribute__((always_inline)) struct bd_key *
key_get(struct bd_core *core, const char *name,
                              size_t len, struct bd_admit *a)
{
    struct bd_key *k = core->key_last;
    const struct bd_route_conf *r;
    uint32_t h;

    /* key_last is never a key of an older config (a reload clears it,
     * and such a key is never made key_last): no check here. */
    if (k != NULL && k->len == len && bd_bytes_eq(k->name, name, len)) {
        key_wake(core, k);
        return k;
    }
    h = bd_batch_key_hash(core, name, len);
    k = key_find(core, name, len, h);
    if (k != NULL && k->gen != core->gen) {
        if (!(k->flags & BD_KEY_IDLE))
            return k; /* busy, no route now: finishes under its old one */
        key_free(core, k); /* idle: route it afresh */
        k = NULL;
    }
    if (k != NULL) {
        key_wake(core, k);
        core->key_last = k;
        return k;
    }
    k = bd_malloc(sizeof(*k) + len + 1);
    if (k == NULL)
        goto out_oom;
    memset(k, 0, sizeof(*k));
    memcpy(k->name, name, len);
    k->name[len] = '\0';
    k->len = len;
    k->hash = h;
    r = route_match(core->cfg, k->name);
    if (r == NULL) {
        a->status = BATCHD_NO_ROUTE;
        snprintf(a->msg, sizeof(a->msg), "no route matches key '%s'", k->name);
        bd_free(k);
        return NULL;
    }
    if ((core->keytab == NULL || core->nkeys + 1 > core->keytab_size / 4 * 3) &&
        keytab_grow(core) != 0) {
        bd_free(k);
        goto out_oom;
    }
    k->core = core;
    k->route = r;
    k->sink = core->sinks[r->sink_idx];
    k->gen = core->gen;
    bd_gen_hold(k->gen);
    k->rs = bd_series_route(core, r);
    k->hnext = core->keytab[h & (core->keytab_size - 1)];
    core->keytab[h & (core->keytab_size - 1)] = k;
    core->nkeys++;
    core->key_last = k;
    return k;

out_oom:
    a->status = BATCHD_OVERLOADED;
    snprintf(a->msg, sizeof(a->msg), "out of memory creating key");
    return NULL;
}

static void idle_unlink(struct bd_core *core, struct bd_key *k)
{
    if (k->iprev)
        k->iprev->inext = k->inext;
    else
        core->idle_head = k->inext;
    if (k->inext)
        k->inext->iprev = k->iprev;
    else
        core->idle_tail = k->iprev;
    k->inext = k->iprev = NULL;
    k->flags &= ~BD_KEY_IDLE;
    core->nidle--;
}

static inline void key_wake(struct bd_core *core, struct bd_key *k)
{
    if (k->flags & BD_KEY_IDLE)
        idle_unlink(core, k);
}

/* Unlink from the table and free (idle keys only). */
static void key_free(struct bd_core *core, struct bd_key *k)
{
    struct bd_key **pp;

    if (k->flags & BD_KEY_IDLE)
        idle_unlink(core, k);
    for (pp = &core->keytab[k->hash & (core->keytab_size - 1)]; *pp;
         pp = &(*pp)->hnext) {
        if (*pp == k) {
            *pp = k->hnext;
            break;
        }
    }
    if (k->timer != NULL)
        event_free(k->timer);
    bd_lanes_free(k);
    if (core->key_last == k)
        core->key_last = NULL;
    core->nkeys--;
    bd_gen_release(core, k->gen);
    bd_free(k);
    keytab_maybe_shrink(core);
}

/* A key with nothing queued, waiting, running, or listed goes on the
 * idle list; the sweep frees it later unless it is used again. */
static void key_maybe_free(struct bd_core *core, struct bd_key *k)
{
    if (k->nqueued || k->nretry || k->inflight ||
        (k->flags & (BD_KEY_DIRTY | BD_KEY_WAITING | BD_KEY_IDLE)))
        return;
    k->flags |= BD_KEY_IDLE;
    k->idle_since_ns = core->clock.now_ns;
    k->inext = NULL;
    k->iprev = core->idle_tail;
    if (core->idle_tail)
        core->idle_tail->inext = k;
    else
        core->idle_head = k;
    core->idle_tail = k;
    core->nidle++;
    if (core->nidle > BD_KEY_IDLE_MAX)
        key_free(core, core->idle_head);
}

void bd_batch_sweep_idle(struct bd_core *core)
{
    while (core->idle_head != NULL &&
           core->clock.now_ns - core->idle_head->idle_since_ns > BD_KEY_IDLE_NS)
        key_free(core, core->idle_head);
}

void bd_batch_mark_dirty(struct bd_core *core, struct bd_key *k)
{
    if (k->flags & BD_KEY_DIRTY)
        return;
    k->flags |= BD_KEY_DIRTY;
    k->dnext = core->dirty;
    core->dirty = k;
    bd_core_want_flush(core);
}

/* ---- admission -------------------------------------------------------- */

/* The first item with its dedup_id: its client becomes the first
 * recipient of its record, and later ones can find it. Without memory
 * for the record the item is simply not joinable. */
static __attribute__((noinline)) void admit_first(struct bd_core *core, struct bd_key *k,
                        struct bd_item *it, const struct bd_opts *opts)
{
    struct bd_waiter *w = it->waiter;

    if (bd_dedup_attach(core, k, it, opts->dedup_id, opts->dedup_len, w,
                        it->req_id, it->reply_type, it->deadline_ns) != 0) {
        bd_log_warn("key %s: out of memory for dedup_id of item %llu%s%s; "
                    "not coalesced", k->name, (unsigned long long)it->id,
                    it->tlen ? " trace " : "", it->tlen ? bd_item_trace(it) : "");
        return;
    }
    it->waiter = NULL; /* the record holds the waiter now */
    if (w != NULL)
        bd_waiter_release(w);
}

const char *const bd_reject_names[BD_REJECT_COUNT] = {
    [BD_REJECT_KEY_ITEMS] = "key_max_items",
    [BD_REJECT_KEY_BYTES] = "key_max_bytes",
    [BD_REJECT_QUEUED_ITEMS] = "max_queued_items",
    [BD_REJECT_QUEUED_BYTES] = "max_queued_bytes",
    [BD_REJECT_UNHEALTHY] = "sink_unhealthy",
    [BD_REJECT_TOO_LARGE] = "max_bytes",
    [BD_REJECT_NO_MEMORY] = "out_of_memory",
    [BD_REJECT_SPOOL] = "spool",
};

static int refuse(struct bd_admit *a, int status, int reason, const char *fmt,
                  unsigned long long v)
{
    a->status = status;
    a->reason = reason;
    snprintf(a->msg, sizeof(a->msg), fmt, v);
    return 0;
}

/* Check every bound; the message names the one that was hit. Items
 * waiting for a retry still hold memory, so they count too. */
static inline __attribute__((always_inline)) int
within_bounds(struct bd_core *core, struct bd_key *k, size_t len,
                         struct bd_admit *a)
{
    const struct bd_route_conf *r = k->route;
    const struct bd_config *cfg = core->cfg;

    if (k->sink->unhealthy)
        return refuse(a, BATCHD_SINK_UNAVAILABLE, BD_REJECT_UNHEALTHY,
                      "sink is unhealthy after %llu crashes in a row; "
                      "try again later",
                      (unsigned long long)k->sink->unhealthy);
    if (len > r->max_bytes)
        return refuse(a, BATCHD_BAD_REQUEST, BD_REJECT_TOO_LARGE,
                      "payload: larger than the route's max_bytes (%llu)",
                      (unsigned long long)r->max_bytes);
    if (k->nqueued + k->nretry + 1 > r->key_max_items)
        return refuse(a, BATCHD_OVERLOADED, BD_REJECT_KEY_ITEMS,
                      "key queue full: key_max_items=%llu",
                      (unsigned long long)r->key_max_items);
    if (k->qbytes + k->rbytes + len > r->key_max_bytes)
        return refuse(a, BATCHD_OVERLOADED, BD_REJECT_KEY_BYTES,
                      "key queue full: key_max_bytes=%llu",
                      (unsigned long long)r->key_max_bytes);
    if (core->nqueued + core->nretry + 1 > cfg->max_queued_items)
        return refuse(a, BATCHD_OVERLOADED, BD_REJECT_QUEUED_ITEMS,
                      "daemon queue full: max_queued_items=%llu",
                      (unsigned long long)cfg->max_queued_items);
    if (core->qbytes + core->rbytes + len > cfg->max_queued_bytes)
        return refuse(a, BATCHD_OVERLOADED, BD_REJECT_QUEUED_BYTES,
                      "daemon queue full: max_queued_bytes=%llu",
                      (unsigned long long)cfg->max_queued_bytes);
    return 1;
}

/* The route's deadline, or the client's when it is shorter. */
static uint64_t item_deadline(const struct bd_route_conf *r,
                              const struct bd_opts *opts, uint64_t now)
{
    uint64_t ms = r->deadline_ms;

    if (opts != NULL && opts->has_deadline &&
        (ms == 0 || opts->deadline_ms < ms))
        ms = opts->deadline_ms;
    return ms ? now + ms * 1000000ull : 0;
}

/* Queue and retry-list totals, per key and for the daemon: every move
 * of an item in or out goes through these two. */
static void count_queued(struct bd_core *core, struct bd_key *k, size_t len,
                         int in)
{
    if (in) {
        k->nqueued++;
        k->qbytes += len;
        core->nqueued++;
        core->qbytes += len;
    } else {
        k->nqueued--;
        k->qbytes -= len;
        core->nqueued--;
        core->qbytes -= len;
    }
}

static void count_retry(struct bd_core *core, struct bd_key *k, size_t len,
                        int in)
{
    if (in) {
        k->nretry++;
        k->rbytes += len;
        core->nretry++;
        core->rbytes += len;
    } else {
        k->nretry--;
        k->rbytes -= len;
        core->nretry--;
        core->rbytes -= len;
    }
}

/* Keep k->min_deadline_ns at or below the deadline of a queued item. */
static inline void note_deadline_ns(struct bd_key *k, uint64_t dl)
{
    if (dl && (k->min_deadline_ns == 0 || dl < k->min_deadline_ns))
        k->min_deadline_ns = dl;
}

/* A coalesced item counts with its recipients' earliest deadline. */
static void note_deadline(struct bd_key *k, const struct bd_item *it)
{
    note_deadline_ns(k, it->dedup ? bd_dedup_min_deadline(it->dedup) :
                     it->deadline_ns);
}

/*
 * A key's first item with a priority gives it its lanes (until then
 * every item is in lane 0 and the queue is a plain FIFO). Without
 * memory for them the item goes to lane 0: served, not prioritised.
 */
static __attribute__((noinline)) void lanes_push(struct bd_key *k,
                                                 struct bd_item *it)
{
    if (k->lanes == NULL && bd_lanes_make(k) != 0) {
        bd_log_warn("key %s: out of memory for priority lanes; item %llu%s%s "
                    "queued in lane 0", k->name, (unsigned long long)it->id,
                    it->tlen ? " trace " : "", it->tlen ? bd_item_trace(it) : "");
        it->lane = 0;
    }
    if (k->lanes != NULL) {
        bd_lanes_insert(k, it);
        return;
    }
    it->next = NULL;
    if (k->tail)
        k->tail->next = it;
    else
        k->head = it;
    k->tail = it;
}

static inline __attribute__((always_inline)) void
queue_push(struct bd_core *core, struct bd_key *k,
                       struct bd_item *it)
{
    if ((uintptr_t)k->lanes | it->lane) {
        lanes_push(k, it);
    } else {
        it->next = NULL;
        if (k->tail)
            k->tail->next = it;
        else
            k->head = it;
        k->tail = it;
    }
    count_queued(core, k, it->len, 1);
    note_deadline_ns(k, it->deadline_ns); /* a new coalesced item's one
                                           * recipient has the same */
}

/*
 * An item with a dedup_id that an item of its key already has (queued,
 * or in flight under coalesce_inflight) joins that item as one more
 * recipient: no new slot, no bound counted again, its payload unused
 * (the first one wins). The item keeps the latest deadline of all its
 * recipients; each recipient still expires on its own. Returns 1 when
 * it joined (or was refused for memory: a->status says), 0 when it
 * needs an item of its own.
 */
static __attribute__((noinline)) int admit_join(struct bd_core *core, struct bd_key *k,
                      const struct bd_msg_item *in, const struct bd_opts *opts,
                      struct bd_waiter *w, struct bd_admit *a)
{
    struct bd_dedup *d = bd_dedup_find(core, k, opts->dedup_id, opts->dedup_len);
    uint64_t dl;

    if (d == NULL || (d->inflight && !k->route->coalesce_inflight))
        return 0;
    dl = item_deadline(k->route, opts, core->clock.now_ns);
    if (bd_dedup_join(d, w, in->req_id, in->type, dl) != 0) {
        refuse(a, BATCHD_OVERLOADED, BD_REJECT_NO_MEMORY,
               "out of memory (%llu bytes)",
               (unsigned long long)sizeof(struct bd_rcpt));
        k->rejects[a->reason]++;
        k->rs->rejects[a->reason]++;
        core->ctr.rejects[a->reason]++;
        return 1;
    }
    d->item->deadline_ns = bd_dedup_max_deadline(d);
    if (!d->inflight)
        note_deadline(k, d->item);
    k->coalesced++;
    core->ctr.coalesced++;
    core->ctr.items_in++;
    k->rs->items_in++;
    bd_batch_mark_dirty(core, k);
    return 1;
}

/* An item refused at admission (a->reason says why): counted; at a
 * queue bound the key's batch is ready. */
static void admit_refused(struct bd_core *core, struct bd_key *k,
                          const struct bd_admit *a)
{
    k->rejects[a->reason]++;
    k->rs->rejects[a->reason]++;
    core->ctr.rejects[a->reason]++;
    if (a->reason <= BD_REJECT_QUEUED_BYTES) {
        /* At a queue bound (the key's or the daemon's) the queue cannot
         * grow: its batch must leave, or a size route whose bound is
         * below its batch size would wait forever (issue 10). */
        k->flags |= BD_KEY_FULL;
        bd_batch_mark_dirty(core, k);
        return;
    }
    key_maybe_free(core, k);
}

/* The key of in, or NULL (refusal counted, a set). */
static inline __attribute__((always_inline)) struct bd_key *
admit_key(struct bd_core *core,
                                       const struct bd_msg_item *in,
                                       struct bd_admit *a)
{
    struct bd_key *k;

    a->status = BATCHD_OK;
    k = key_get(core, in->key, in->key_len, a);
    if (k == NULL && a->status == BATCHD_OVERLOADED)
        core->ctr.rejects[BD_REJECT_NO_MEMORY]++;
    return k;
}

/* A new item for in, or NULL with a set (no memory). Every field is
 * set here (no memset: this runs once per item). */
static inline __attribute__((always_inline)) struct bd_item *
item_fill(struct bd_core *core, const struct bd_msg_item *in,
          struct bd_waiter *w, uint64_t deadline_ns, unsigned lane,
          const char *trace, size_t tlen, struct bd_admit *a)
{
    size_t len = in->payload_len;
    struct bd_item *it = bd_item_new(len + (tlen ? tlen + 1 : 0));

    if (it == NULL) {
        refuse(a, BATCHD_OVERLOADED, BD_REJECT_NO_MEMORY,
               "out of memory (%llu bytes)", (unsigned long long)len);
        return NULL;
    }
    it->next = NULL;
    it->waiter = w;
    it->dedup = NULL;
    if (w != NULL)
        bd_waiter_hold(w);
    it->req_id = in->req_id;
    it->id = ++core->next_item_id;
    it->enq_ns = core->clock.now_ns;
    it->deadline_ns = deadline_ns;
    it->due_ns = 0;
    it->attempt = 0;
    it->cap = 0;
    it->batch_fails = 0;
    it->ok_mark = 0;
    it->reply_type = (uint8_t)in->type;
    it->lane = (uint16_t)lane;
    it->seg = NULL;
    it->spool_id = 0;
    it->len = len;
    it->tlen = (uint8_t)tlen;
    if (len)
        memcpy(it->data, in->payload, len);
    if (tlen) {
        memcpy(it->data + len, trace, tlen);
        it->data[len + tlen] = '\0';
    }
    return it;
}

/* A new item for in within k's bounds, or NULL with a set. A SEND on a
 * durable route is spooled here, so a full spool refuses it at once. */
static inline __attribute__((always_inline)) struct bd_item *
item_make(struct bd_core *core, struct bd_key *k, const struct bd_msg_item *in,
          struct bd_waiter *w, uint64_t deadline_ns, unsigned lane,
          const char *trace, size_t tlen, struct bd_admit *a)
{
    /* Read before item_fill's stores, which the compiler cannot prove
     * leave k->route alone. */
    int durable = k->route->durable;
    struct bd_item *it;

    if (!within_bounds(core, k, in->payload_len, a))
        return NULL;
    it = item_fill(core, in, w, deadline_ns, lane, trace, tlen, a);
    if (__builtin_expect(durable, 0) && it != NULL && w == NULL &&
        !bd_durable_admit(core, k, it, a)) {
        bd_item_free(it);
        return NULL;
    }
    return it;
}

/* An item with options: a deadline, a priority, a dedup_id. */
static __attribute__((noinline)) void
admit_opts(struct bd_core *core, const struct bd_msg_item *in,
           const struct bd_opts *opts, struct bd_waiter *w, struct bd_admit *a)
{
    struct bd_key *k = admit_key(core, in, a);
    struct bd_opts plain;
    struct bd_item *it;

    if (k == NULL)
        return;
    /* A durable SEND is never coalesced: it needs a record of its own. */
    if (k->route->durable && w == NULL && opts->dedup_id != NULL) {
        plain = *opts;
        plain.dedup_id = NULL;
        plain.dedup_len = 0;
        opts = &plain;
    }
    if (opts->dedup_id != NULL && admit_join(core, k, in, opts, w, a))
        return;
    it = item_make(core, k, in, w,
                   item_deadline(k->route, opts, core->clock.now_ns),
                   opts->priority, opts->trace, opts->trace ? opts->trace_len : 0,
                   a);
    if (it == NULL) {
        admit_refused(core, k, a);
        return;
    }
    if (opts->dedup_id != NULL)
        admit_first(core, k, it, opts);
    queue_push(core, k, it);
    core->ctr.items_in++;
    k->rs->items_in++;
    bd_batch_mark_dirty(core, k);
}

void bd_batch_admit(struct bd_core *core, const struct bd_msg_item *in,
                    const struct bd_opts *opts, struct bd_waiter *w,
                    struct bd_admit *a)
{
    struct bd_key *k;
    struct bd_item *it;

    if (opts != NULL) {
        admit_opts(core, in, opts, w, a);
        return;
    }
    /* The plain hot path: no options to look at. */
    k = admit_key(core, in, a);
    if (k == NULL)
        return;
    it = item_make(core, k, in, w, item_deadline(k->route, NULL,
                                                 core->clock.now_ns), 0,
                   NULL, 0, a);
    if (it == NULL) {
        admit_refused(core, k, a);
        return;
    }
    queue_push(core, k, it);
    core->ctr.items_in++;
    k->rs->items_in++;
    bd_batch_mark_dirty(core, k);
}

int bd_batch_restore(struct bd_core *core, const char *key, size_t key_len,
                     const void *payload, size_t len, uint64_t spool_id,
                     struct bd_spool_seg *seg, struct bd_admit *a)
{
    struct bd_msg_item in = {
        .type = BD_MSG_SEND, .key = key, .key_len = key_len,
        .payload = payload, .payload_len = len,
    };
    struct bd_key *k = admit_key(core, &in, a);
    struct bd_item *it;

    if (k == NULL)
        return -1;
    /* A restored SEND has no trace: the spool keeps key and payload. */
    it = item_fill(core, &in, NULL, item_deadline(k->route, NULL,
                                                  core->clock.now_ns), 0,
                   NULL, 0, a);
    if (it == NULL) {
        key_maybe_free(core, k);
        return -1;
    }
    it->spool_id = spool_id;
    it->seg = seg;
    a->ack = NULL;
    if (seg == NULL && !bd_durable_admit(core, k, it, a)) {
        bd_item_free(it);
        key_maybe_free(core, k);
        return -1;
    }
    queue_push(core, k, it);
    core->ctr.items_in++;
    bd_batch_mark_dirty(core, k);
    return 0;
}

/* ---- queue helpers ---------------------------------------------------- */

/*
 * Small items come from a free list: a malloc and a free per item cost
 * about 360 instructions (glibc's per-size cache holds 7 and items are
 * freed a batch at a time). Only the loop thread makes or frees items.
 */
struct bd_item_pool bd_item_pool; /* batch.h: small items to reuse */

struct bd_item *bd_item_new(size_t len)
{
    struct bd_item *it;

    if (len <= BD_ITEM_SMALL && bd_item_pool.head != NULL) {
        it = bd_item_pool.head;
        bd_item_pool.head = it->next;
        bd_item_pool.n--;
        return it;
    }
    return bd_malloc(sizeof(*it) + (len <= BD_ITEM_SMALL ? BD_ITEM_SMALL : len));
}

void bd_item_free_slow(struct bd_item *it)
{
    if (it->waiter != NULL)
        bd_waiter_release(it->waiter);
    else if (it->dedup != NULL) /* a coalesced item has no waiter of its own */
        bd_dedup_free(it->dedup);
    if (it->len <= BD_ITEM_SMALL && bd_item_pool.n < BD_ITEM_POOL_MAX) {
        it->next = bd_item_pool.head;
        bd_item_pool.head = it;
        bd_item_pool.n++;
        return;
    }
    bd_free(it);
}

static void item_pool_drain(void)
{
    while (bd_item_pool.head != NULL) {
        struct bd_item *next = bd_item_pool.head->next;

        bd_free(bd_item_pool.head);
        bd_item_pool.head = next;
    }
    bd_item_pool.n = 0;
}

static void recompute_deadline(struct bd_key *k)
{
    k->min_deadline_ns = 0;
    for (struct bd_item *it = k->head; it; it = it->next)
        note_deadline(k, it);
}

/* Remove from k's queue (retry 0) or retry list (retry 1) every item
 * for which drop() says so; drop() answers or frees it. Returns how
 * many went. */
static size_t list_filter(struct bd_core *core, struct bd_key *k, int retry,
                          int (*drop)(struct bd_core *, struct bd_key *,
                                      struct bd_item *, const void *),
                          const void *arg)
{
    struct bd_item **pp = retry ? &k->retry : &k->head, *it;
    struct bd_item **tail = retry ? &k->rtail : &k->tail;
    size_t n = 0;

    *tail = NULL;
    while ((it = *pp) != NULL) {
        struct bd_item *next = it->next; /* drop() may free it */
        size_t len = it->len;
        unsigned lane = it->lane;

        if (!drop(core, k, it, arg)) {
            *tail = it;
            pp = &it->next;
            continue;
        }
        *pp = next;
        n++;
        if (retry)
            count_retry(core, k, len, 0);
        else
            count_queued(core, k, len, 0);
        if (!retry && k->lanes != NULL)
            bd_lanes_unlinked(k, it, lane, *tail); /* it may be freed */
    }
    return n;
}

static size_t queue_filter(struct bd_core *core, struct bd_key *k,
                           int (*drop)(struct bd_core *, struct bd_key *,
                                       struct bd_item *, const void *),
                           const void *arg)
{
    return list_filter(core, k, 0, drop, arg);
}

static const char expired_msg[] = "deadline passed while the item was queued";

/* Recipients of a coalesced item whose own deadline passed are answered
 * DEADLINE_EXCEEDED alone. Returns 1 (item freed) when none is left. */
static __attribute__((noinline)) int dedup_expire(struct bd_core *core, struct bd_key *k,
                        struct bd_item *it, uint64_t now)
{
    struct bd_dedup *d = it->dedup;

    for (struct bd_rcpt **pp = &d->rcpts; *pp;) {
        struct bd_rcpt *r = *pp;

        if (r->deadline_ns == 0 || r->deadline_ns > now) {
            pp = &r->next;
            continue;
        }
        bd_reply_to(core, k->name, it, r->waiter, r->type, r->req_id,
                    BATCHD_DEADLINE_EXCEEDED, expired_msg,
                    sizeof(expired_msg) - 1, 1);
        bd_dedup_drop(d, pp);
    }
    if (d->rcpts != NULL)
        return 0;
    bd_item_free(it);
    return 1;
}

/* An item (not coalesced) whose deadline passed is answered, not sent.
 * Returns 1 when it was (and is freed). */
static inline int expired_plain(struct bd_core *core, struct bd_key *k,
                                struct bd_item *it, uint64_t now)
{
    if (it->deadline_ns == 0 || it->deadline_ns > now)
        return 0;
    bd_item_answer(core, k, it, BATCHD_DEADLINE_EXCEEDED, expired_msg,
                   sizeof(expired_msg) - 1, 1);
    return 1;
}

static int drop_expired(struct bd_core *core, struct bd_key *k,
                        struct bd_item *it, const void *arg)
{
    uint64_t now = *(const uint64_t *)arg;

    if (it->dedup != NULL)
        return dedup_expire(core, k, it, now);
    return expired_plain(core, k, it, now);
}

/* An expired item is answered by the timer, never sent to the sink. */
static void expire_deadlines(struct bd_core *core, struct bd_key *k,
                             uint64_t now)
{
    if (k->min_deadline_ns == 0 || k->min_deadline_ns > now)
        return;
    queue_filter(core, k, drop_expired, &now);
    recompute_deadline(k);
}

/* Move retry-waiting items whose backoff is over (all of them when
 * forced) to the front of the queue, in the order they failed: they are
 * the oldest work. A failed batch's items share one due time, so they
 * come back together and in their batch order. */
static void release_retries(struct bd_core *core, struct bd_key *k,
                            uint64_t now, int force)
{
    struct bd_item **pp = &k->retry, *it, *front = NULL, *front_tail = NULL;
    uint64_t nfront = 0;

    k->rtail = NULL;
    while ((it = *pp) != NULL) {
        if (!force && it->due_ns > now) {
            k->rtail = it;
            pp = &it->next;
            continue;
        }
        *pp = it->next;
        count_retry(core, k, it->len, 0);
        it->next = NULL;
        if (front_tail)
            front_tail->next = it;
        else
            front = it;
        front_tail = it;
        it->lane = BD_LANE_TOP;
        nfront++;
        count_queued(core, k, it->len, 1);
        note_deadline(k, it);
    }
    if (front == NULL)
        return;
    front_tail->next = k->head;
    k->head = front;
    if (k->tail == NULL)
        k->tail = front_tail;
    if (k->lanes != NULL)
        bd_lanes_pushed_front(k, front_tail, nfront);
}

/* A coalesced item back from its call (for a retry) is not joined
 * again: later items with its id get an item of their own. */
static void dedup_leave_call(struct bd_dedup *d)
{
    d->inflight = 0;
    bd_dedup_unlink(d);
}

void bd_batch_requeue_front(struct bd_core *core, struct bd_key *k,
                            struct bd_item *it)
{
    it->next = k->head;
    k->head = it;
    if (k->tail == NULL)
        k->tail = it;
    it->lane = BD_LANE_TOP;
    if (k->lanes != NULL)
        bd_lanes_pushed_front(k, it, 1);
    if (it->dedup != NULL)
        dedup_leave_call(it->dedup);
    count_queued(core, k, it->len, 1);
    note_deadline(k, it);
    bd_batch_mark_dirty(core, k);
}

void bd_batch_retry_later(struct bd_core *core, struct bd_key *k,
                          struct bd_item *it, uint64_t due_ns)
{
    it->due_ns = due_ns;
    it->next = NULL;
    if (it->dedup != NULL)
        dedup_leave_call(it->dedup);
    if (k->rtail != NULL)
        k->rtail->next = it;
    else
        k->retry = it;
    k->rtail = it;
    count_retry(core, k, it->len, 1);
    bd_batch_mark_dirty(core, k);
}

/* ---- dispatch --------------------------------------------------------- */

static int flushing(const struct bd_core *core)
{
    return core->state == BD_STATE_STOPPING;
}

int bd_item_prune_gone(struct bd_core *core, struct bd_item *it)
{
    struct bd_dedup *d = it->dedup;

    for (struct bd_rcpt **pp = &d->rcpts; *pp;) {
        if ((*pp)->waiter == NULL || !bd_waiter_gone((*pp)->waiter)) {
            pp = &(*pp)->next;
            continue;
        }
        core->ctr.cancelled++;
        core->ctr.status[BATCHD_CANCELLED]++;
        bd_dedup_drop(d, pp);
    }
    if (d->rcpts != NULL)
        return 0;
    bd_item_free(it);
    return 1;
}

int bd_item_cancel_gone(struct bd_core *core, struct bd_item *it)
{
    core->ctr.cancelled++;
    core->ctr.status[BATCHD_CANCELLED]++;
    bd_item_free(it);
    return 1;
}

/* A coalesced item on its way into a call: recipients that left or
 * expired are dropped (the item with them when none is left: 1). It can
 * be joined in flight only under coalesce_inflight. */
static __attribute__((noinline)) int dedup_leaves(struct bd_core *core, struct bd_key *k,
                        struct bd_item *it, uint64_t now)
{
    if (bd_item_prune_gone(core, it) || dedup_expire(core, k, it, now))
        return 1;
    if (k->route->coalesce_inflight)
        it->dedup->inflight = 1;
    else
        bd_dedup_unlink(it->dedup);
    return 0;
}

/* Count the head items that make one batch: max_items, max_bytes, and
 * the cap of an item isolated after whole-batch failures. Sets *bytes to
 * their payload total and *last to the last of them. */
static size_t head_batch_len(const struct bd_key *k, uint64_t *bytes,
                             struct bd_item **last)
{
    /* Never 0 for a non-empty queue: the first item always fits (an
     * item's cap is at least 1), which dispatch_one relies on. */
    struct bd_item *it = k->head;
    size_t n = 0, limit = k->route->max_items;

    *bytes = 0;
    /* bd_batch_fits without its max_items test: limit <= max_items. */
    while (it != NULL && n < limit &&
           (n == 0 || *bytes + it->len <= k->route->max_bytes)) {
        if (it->cap) {
            if (n >= it->cap)
                break;
            if (it->cap < limit)
                limit = it->cap;
        }
        *bytes += it->len;
        n++;
        *last = it;
        it = it->next;
    }
    return n;
}

/* Unlink the n head items up to last (n >= 1) as one list; the queue
 * totals drop once for all of them. */
static struct bd_item *queue_cut(struct bd_core *core, struct bd_key *k,
                                 size_t n, uint64_t bytes, struct bd_item *last)
{
    struct bd_item *first = k->head;

    k->head = last->next;
    last->next = NULL;
    if (k->head == NULL) {
        k->tail = NULL;
        k->min_deadline_ns = 0;
    }
    k->nqueued -= n;
    k->qbytes -= bytes;
    core->nqueued -= n;
    core->qbytes -= bytes;
    return first;
}

/* A new random span id for a batch: 16 lower-case hex digits, never all
 * zero (W3C). xorshift64* on the core's jitter state, seeded at start-up:
 * unpredictable enough for an id, and no system call per batch. */
static void span_id(struct bd_core *core, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t x = core->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    core->rng = x;
    x *= 2685821657736338717ull;
    x |= !x;
    for (int i = 15; i >= 0; i--, x >>= 4)
        out[i] = hex[x & 15];
    out[16] = '\0';
}

/* Fill the batch's public item from our item. */
static void batch_set_item(struct bd_batch *b, size_t i, struct bd_item *it,
                           uint64_t now)
{
    it->attempt++;
    b->items[i] = it;
    b->pitems[i].data = it->data;
    b->pitems[i].len = it->len;
    b->pitems[i].id = it->id;
    b->pitems[i].attempt = it->attempt;
    b->pitems[i].deadline_ms = it->deadline_ns ?
        (int64_t)((it->deadline_ns - now) / 1000000ull) : -1;
}

/* Cut one batch from the head of k and start its sink call. Items of
 * gone clients and expired items are dropped on the way. Returns 1 when
 * a batch left, 0 when every head item was dropped (progress all the
 * same), -1 when memory was short (the items stay queued). */
static int dispatch_one(struct bd_core *core, struct bd_key *k)
{
    struct bd_item *last = NULL, *it, *next;
    uint64_t bytes, now = core->clock.now_ns;
    size_t n = head_batch_len(k, &bytes, &last), got = 0;
    struct bd_batch *b = bd_batch_new(k->sink, k, k->name, k->len, n);
    /* Loaded once: the loop's stores could alias k->rs as far as the
     * compiler knows, and nothing in it rebinds the key's series. */
    struct bd_series *rs = k->rs;
    struct bd_series_hist *qwait = &rs->queue_wait_us;
    int recompute = 0;

    if (b == NULL) {
        bd_log_error("key %s: out of memory for a batch of %zu", k->name, n);
        return -1;
    }
    b->free_item = bd_item_free;
    b->trace_of = bd_item_trace;
    span_id(core, b->span_id);
    it = queue_cut(core, k, n, bytes, last);
    if (k->lanes != NULL)
        bd_lanes_cut(k, it);
    for (; it != NULL; it = next) {
        next = it->next;
        it->next = NULL;
        if (it->deadline_ns && it->deadline_ns <= k->min_deadline_ns)
            recompute = 1;
        /* A coalesced item has no waiter of its own: LOADs test no more.
         * Its recipients' deadlines may have set min_deadline_ns. */
        if (it->waiter == NULL && it->dedup != NULL) {
            recompute = 1;
            if (dedup_leaves(core, k, it, now))
                continue;
        } else if (bd_item_cancel_if_gone(core, it) || expired_plain(core, k, it, now)) {
            continue;
        }
        batch_set_item(b, got++, it, now);
        bd_series_observe(qwait, (now - it->enq_ns) / 1000);
    }
    if (recompute)
        recompute_deadline(k);
    if (got == 0) {
        bd_batch_free(b);
        return 0;
    }
    b->pub.nitems = got;
    k->flags &= ~BD_KEY_FULL; /* room again: the bound counts what waits */
    k->batches++;
    k->items += got;
    if (got > k->max_batch)
        k->max_batch = (uint32_t)got;
    core->ctr.batch_hist[bd_hist_pow2_bucket(got, 17)]++;
    rs->batches++;
    rs->items_out += got;
    bd_series_observe(&rs->batch_items, got);
    bd_call_start(core, b);
    return 1;
}

static void key_timer_cb(evutil_socket_t fd, short what, void *arg);

/* When the oldest queued item came (k not empty): the batch delay counts
 * from it, whatever lane it is in. */
static uint64_t queue_first_ns(const struct bd_key *k)
{
    return k->lanes != NULL ? bd_lanes_first_ns(k) : k->head->enq_ns;
}

/*
 * When must this key's timer fire next? 0 = no need. A blocked key
 * (paused, at key_concurrency, or waiting for a global slot) runs again
 * when it unblocks, so for it only a real deadline counts: re-arming an
 * expired batch delay would spin the loop (found by fuzz_conn).
 */
static uint64_t key_next_event(const struct bd_key *k, int blocked)
{
    const struct bd_route_conf *r = k->route;
    uint64_t at = 0;

#define EARLIER(t) do { if ((t) && (at == 0 || (t) < at)) at = (t); } while (0)
    if (!blocked && k->head != NULL && r->policy != BD_POLICY_IMMEDIATE &&
        r->policy != BD_POLICY_SIZE)
        EARLIER(queue_first_ns(k) + r->max_delay_us * 1000);
    if (k->min_deadline_ns && blocked)
        EARLIER(k->min_deadline_ns);
    else if (k->min_deadline_ns)
        EARLIER(k->min_deadline_ns > BD_DEADLINE_MARGIN_NS ?
                k->min_deadline_ns - BD_DEADLINE_MARGIN_NS : 1);
    for (const struct bd_item *it = k->retry; it; it = it->next)
        EARLIER(it->due_ns);
#undef EARLIER
    return at;
}

static void key_arm_timer(struct bd_core *core, struct bd_key *k, int blocked)
{
    uint64_t at = key_next_event(k, blocked), now;
    struct timeval tv;

    if (at == 0) {
        if (k->timer_at_ns != 0)
            evtimer_del(k->timer);
        k->timer_at_ns = 0;
        return;
    }
    if (k->timer_at_ns == at)
        return;
    if (k->timer == NULL) {
        k->timer = evtimer_new(core->base, key_timer_cb, k);
        if (k->timer == NULL)
            return; /* tried again at the next pass that touches k */
    }
    /* libevent adds tv to its cached time of this loop pass, which may be
     * older than now_ns: refresh it so the timer does not fire early. */
    event_base_update_cache_time(core->base);
    now = bd_core_tick(core);
    now = at > now ? at - now : 0;
    tv.tv_sec = (time_t)(now / 1000000000ull);
    tv.tv_usec = (suseconds_t)((now % 1000000000ull) / 1000);
    evtimer_add(k->timer, &tv);
    k->timer_at_ns = at;
}

static int global_slot(const struct bd_core *core)
{
    return core->inflight < core->cfg->max_concurrency;
}

static void key_wait_for_slot(struct bd_core *core, struct bd_key *k)
{
    if (k->flags & BD_KEY_WAITING)
        return;
    k->flags |= BD_KEY_WAITING;
    k->wnext = NULL;
    /* FIFO, so keys get global slots in the order they asked; appended
     * at the tail in O(1): a client with many keys must not make each
     * append walk all the others (quadratic, like hash flooding). */
    if (core->waiting == NULL)
        core->waiting = k;
    else
        core->waiting_tail->wnext = k;
    core->waiting_tail = k;
}

/*
 * Dispatch as many batches of k as the close rule and the slots allow,
 * then arm its timer or free it. Called at the end of a pass (for keys
 * touched in it, or whose timer fired); never while walking the queue.
 */
static void key_run(struct bd_core *core, struct bd_key *k)
{
    int paused = core->state == BD_STATE_PAUSED;
    uint64_t now = core->clock.now_ns;

    release_retries(core, k, now, flushing(core));
    expire_deadlines(core, k, now);
    if (k->lanes != NULL && k->route->priority_aging_ms != 0 && k->head &&
        now > (uint64_t)k->route->priority_aging_ms * 1000000ull)
        bd_lanes_promote(k, now - (uint64_t)k->route->priority_aging_ms *
                                  1000000ull);
    /* Retried items at the head have waited their turn (and their
     * backoff; they came back together with the rest of their failed
     * batch): they leave without waiting for a full batch, which under
     * the size policy, or capped after failures, might never come. */
    while (!paused && k->nqueued > 0 &&
           k->inflight < k->route->key_concurrency &&
           bd_batch_ready(k->route, k->nqueued, k->qbytes, queue_first_ns(k),
                          k->min_deadline_ns, now, k->inflight,
                          flushing(core) || k->head->attempt > 0 ||
                          k->head->due_ns != 0 ||
                          (k->flags & BD_KEY_FULL))) {
        if (!global_slot(core)) {
            key_wait_for_slot(core, k);
            break;
        }
        if (dispatch_one(core, k) < 0)
            break; /* retried at the next pass that touches k */
    }
    if (k->nqueued == 0)
        k->flags &= ~BD_KEY_FULL; /* nothing left that was held back */
    if (k->nqueued == 0 && k->nretry == 0) {
        key_arm_timer(core, k, 0); /* disarms */
        key_maybe_free(core, k);
        return;
    }
    key_arm_timer(core, k, paused ||
                  k->inflight >= k->route->key_concurrency ||
                  (k->flags & BD_KEY_WAITING));
}

static void key_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_key *k = arg;

    (void)fd;
    (void)what;
    k->timer_at_ns = 0;
    bd_batch_mark_dirty(k->core, k);
}

void bd_batch_run_dirty(struct bd_core *core)
{
    /* Keys waiting for a global slot go first: they asked earlier. */
    while (core->waiting != NULL && global_slot(core)) {
        struct bd_key *k = core->waiting;

        core->waiting = k->wnext;
        if (core->waiting == NULL)
            core->waiting_tail = NULL;
        k->flags &= ~BD_KEY_WAITING;
        key_run(core, k);
    }
    while (core->dirty != NULL) {
        struct bd_key *k = core->dirty;

        core->dirty = k->dnext;
        k->flags &= ~BD_KEY_DIRTY;
        if (k->flags & BD_KEY_WAITING)
            continue; /* runs when a slot frees, in its turn */
        key_run(core, k);
    }
}

/* ---- shutdown, cancellation, stats ------------------------------------- */

/* Visit every key; fn may not free the key (keys are freed by key_run). */
#define FOREACH_KEY(core, k) \
    for (size_t i_ = 0; i_ < (core)->keytab_size; i_++) \
        for (struct bd_key *k = (core)->keytab[i_]; k; k = k->hnext)

void bd_batch_flush_all(struct bd_core *core)
{
    FOREACH_KEY(core, k)
        if (k->nqueued || k->nretry)
            bd_batch_mark_dirty(core, k);
}

static int drop_all(struct bd_core *core, struct bd_key *k,
                    struct bd_item *it, const void *arg)
{
    const char *msg = arg;

    bd_item_answer(core, k, it, BATCHD_SHUTTING_DOWN, msg, strlen(msg), 1);
    return 1;
}

void bd_batch_fail_all_queued(struct bd_core *core, int status,
                              const char *msg)
{
    (void)status; /* always SHUTTING_DOWN today; kept for the contract */
    FOREACH_KEY(core, k) {
        release_retries(core, k, 0, 1);
        queue_filter(core, k, drop_all, msg);
        k->min_deadline_ns = 0;
        bd_batch_mark_dirty(core, k);
    }
}

static int drop_waiter(struct bd_core *core, struct bd_key *k,
                     struct bd_item *it, const void *arg)
{
    (void)k;
    if (it->dedup != NULL) /* only that waiter leaves; gone already */
        return bd_item_prune_gone(core, it);
    if (it->waiter != arg)
        return 0;
    core->ctr.cancelled++;
    core->ctr.status[BATCHD_CANCELLED]++;
    bd_item_free(it);
    return 1;
}

void bd_batch_cancel_waiter(struct bd_core *core, const struct bd_waiter *w)
{
    FOREACH_KEY(core, k) {
        size_t n = list_filter(core, k, 1, drop_waiter, w);

        if (queue_filter(core, k, drop_waiter, w))
            recompute_deadline(k);
        else if (n == 0)
            continue;
        bd_batch_mark_dirty(core, k); /* may be idle now: key_run frees it */
    }
}

static void free_list(struct bd_item *it)
{
    while (it != NULL) {
        struct bd_item *next = it->next;

        bd_item_free(it);
        it = next;
    }
}

void bd_batch_destroy_all(struct bd_core *core)
{
    for (size_t i = 0; i < core->keytab_size; i++) {
        struct bd_key *k = core->keytab[i], *next;

        for (; k; k = next) {
            next = k->hnext;
            free_list(k->head);
            free_list(k->retry);
            if (k->timer)
                event_free(k->timer);
            bd_lanes_free(k);
            bd_gen_release(core, k->gen);
            bd_free(k);
        }
    }
    bd_free(core->keytab);
    bd_dedup_destroy_table(core);
    item_pool_drain();
    core->key_last = NULL;
    core->keytab = NULL;
    core->keytab_size = 0;
    core->nkeys = 0;
    core->idle_head = core->idle_tail = NULL;
    core->nidle = 0;
    core->nqueued = core->qbytes = core->nretry = core->rbytes = 0;
    core->dirty = NULL;
    core->waiting = core->waiting_tail = NULL;
}

void bd_batch_reroute(struct bd_core *core)
{
    struct bd_key *k, *next;

    /* Idle keys first, off the idle list: freeing may shrink the key
     * table, which must not happen while the loop below walks it. */
    for (k = core->idle_head; k != NULL; k = next) {
        next = k->inext;
        if (k->gen != core->gen)
            key_free(core, k);
    }
    for (size_t i = 0; i < core->keytab_size; i++) {
        for (k = core->keytab[i]; k != NULL; k = k->hnext) {
            const struct bd_route_conf *r;

            if (k->gen == core->gen)
                continue;
            r = route_match(core->cfg, k->name);
            if (r == NULL) {
                bd_log_warn("key %s: no route matches it after the reload; "
                            "its queued items finish under route %s",
                            k->name, k->route->name);
                continue;
            }
            bd_gen_release(core, k->gen);
            k->gen = core->gen;
            bd_gen_hold(k->gen);
            k->route = r;
            k->sink = core->sinks[r->sink_idx];
            k->rs = bd_series_route(core, r);
            k->flags &= ~BD_KEY_FULL; /* the bounds may have changed */
            bd_batch_mark_dirty(core, k);
        }
    }
    core->key_last = NULL;
}

void bd_batch_foreach_key(struct bd_core *core,
                          void (*fn)(const struct bd_key *k, void *arg),
                          void *arg)
{
    FOREACH_KEY(core, k)
        fn(k, arg);
}

void bd_batch_timers_due(struct bd_core *core)
{
    FOREACH_KEY(core, k) {
        if (k->timer_at_ns != 0 && k->timer_at_ns <= core->clock.now_ns) {
            k->timer_at_ns = 0;
            bd_batch_mark_dirty(core, k);
        }
    }
}
