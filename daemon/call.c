/*
 * call.c - one sink call from start to replies (see call.h and DESIGN
 * section 4: failure model).
 *
 * Every item leaves a call in exactly one of four ways: answered (OK,
 * FAIL, RETRY_EXHAUSTED, SINK_TIMEOUT, ...), put on its key's retry list,
 * cancelled because its client is gone, or, for an abandoned call,
 * answered or re-queued as a copy while the sink keeps the original.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "batch.h"
#include "call.h"
#include "dedup.h"
#include "durable.h"
#include "gen.h"
#include "series.h"
#include "waiter.h"
#include "hist.h"
#include "log.h"
#include "msg.h"
#include "core.h"
#include "sink.h"
#include "worker.h"

/* ---- answering items ------------------------------------------------- */

/* " trace T" for a log line about an item that has one, else nothing:
 * two arguments for "%s%s". */
#define TRACE_LOG(it) (it)->tlen ? " trace " : "", \
    (it)->tlen ? bd_item_trace(it) : ""

static inline void reply_one(struct bd_core *core, const char *key,
                             const struct bd_item *it, struct bd_waiter *w,
                             int type, uint64_t req_id, int status,
                             const void *body, size_t len, int is_str)
{
    uint64_t us = (core->clock.now_ns - it->enq_ns) / 1000;

    core->ctr.status[status]++;
    core->ctr.lat_hist[bd_hist_pow2_bucket(us, 32)]++;
    core->ctr.lat_sum_us += us;
    if (w == NULL) {
        /* SEND: the client had ACCEPTED; a failure is only logged. */
        if (status != BATCHD_OK) {
            core->ctr.send_failed++;
            bd_log_warn("key %s: SEND item %llu%s%s lost: %s: %.*s", key,
                        (unsigned long long)it->id, TRACE_LOG(it),
                        bd_status_name(status), (int)(len > 200 ? 200 : len),
                        body ? (const char *)body : "");
        }
        return;
    }
    bd_waiter_deliver(w, type, req_id, status, body, len, is_str);
}

void bd_reply_to(struct bd_core *core, const char *key,
                 const struct bd_item *it, struct bd_waiter *w, int type,
                 uint64_t req_id, int status, const void *body, size_t len,
                 int is_str)
{
    reply_one(core, key, it, w, type, req_id, status, body, len, is_str);
}

/* A coalesced item's one answer goes to every recipient; then nobody
 * waits on it any more and nothing can join it. */
static __attribute__((noinline)) void reply_all(struct bd_core *core, const char *key,
                      const struct bd_item *it, int status, const void *body,
                      size_t len, int is_str)
{
    struct bd_dedup *d = it->dedup;

    for (struct bd_rcpt *r = d->rcpts; r; r = r->next)
        bd_reply_to(core, key, it, r->waiter, r->type, r->req_id, status, body,
                    len, is_str);
    while (d->rcpts != NULL)
        bd_dedup_drop(d, &d->rcpts);
    bd_dedup_unlink(d);
}

/* Reply for it, leaving it allocated (an abandoned call still lends it
 * to the sink). Counts its final status on its route (once per item, a
 * coalesced one included). */
static inline void item_reply(struct bd_core *core, const struct bd_key *k,
                              const struct bd_item *it, int status,
                              const void *body, size_t len, int is_str)
{
    const char *key = k->name;

    k->rs->replies[status]++;
    if (__builtin_expect(it->seg != NULL, 0))
        bd_durable_final(core, key, it, status, body, len);
    /* A coalesced item has no waiter of its own: LOADs test no more. */
    if (it->waiter == NULL && it->dedup != NULL)
        reply_all(core, key, it, status, body, len, is_str);
    else
        reply_one(core, key, it, it->waiter, it->reply_type, it->req_id,
                  status, body, len, is_str);
}

void bd_item_answer(struct bd_core *core, const struct bd_key *k,
                    struct bd_item *it, int status, const void *body,
                    size_t len, int is_str)
{
    item_reply(core, k, it, status, body, len, is_str);
    bd_item_free(it);
}

static void answer_fmt(struct bd_core *core, struct bd_key *k,
                       struct bd_item *it, int status, const char *fmt,
                       unsigned u, const char *why)
{
    char msg[320];
    int n = snprintf(msg, sizeof(msg), fmt, u, why);

    if (n < 0 || n >= (int)sizeof(msg))
        n = (int)strlen(msg);
    bd_item_answer(core, k, it, status, msg, (size_t)n, 1);
}

/* ---- retries ---------------------------------------------------------- */

/* xorshift64*: jitter only, so any decent spread will do. */
static double rnd01(struct bd_core *core)
{
    uint64_t x = core->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    core->rng = x;
    return (double)((x * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/*
 * One backoff per failed call: every item of the call that is retried
 * waits the same time, drawn once (the batch's jitter), so that the
 * items that failed together come back together. The nominal wait
 * follows the attempt count of the first item retried (the oldest:
 * retried items lead their batch). Earlier items of the call may be
 * answered and freed by then, so nothing else of the call is read.
 */
struct retry_plan {
    uint64_t wait_ns;         /* the wait, once drawn */
    uint64_t min_wait_ns;     /* the sink's host->retry_after hint, 0 = none */
    int drawn;                /* wait_ns is set */
};

static uint64_t plan_wait(struct bd_core *core, const struct bd_route_conf *r,
                          struct retry_plan *p, const struct bd_item *it)
{
    if (p->drawn)
        return p->wait_ns;
    /* At shutdown the backoff is skipped: the grace time is short. */
    p->wait_ns = core->state == BD_STATE_STOPPING ? 0 :
                 bd_batch_backoff_ns(r, it->attempt, rnd01(core));
    /* A sink that knows when its backend comes back (HTTP Retry-After)
     * sets the floor; the deadline checks still bound the wait. */
    if (core->state != BD_STATE_STOPPING && p->wait_ns < p->min_wait_ns)
        p->wait_ns = p->min_wait_ns;
    p->drawn = 1;
    return p->wait_ns;
}

/* A LOAD whose client left is cancelled instead of retried. Takes it
 * when it returns 1. */
static int cancel_if_gone(struct bd_core *core, struct bd_item *it)
{
    if (it->dedup != NULL)
        return bd_item_prune_gone(core, it);
    return bd_item_cancel_if_gone(core, it);
}

/*
 * Put it on the retry list for wait ns, or answer final when its
 * deadline or delivery_timeout_ms would pass first. Takes it. Returns 1
 * when it waits.
 */
static int wait_or_give_up(struct bd_core *core, struct bd_key *k,
                           struct bd_item *it, uint64_t wait, int final,
                           const char *why)
{
    const struct bd_route_conf *r = k->route;
    uint64_t now = core->clock.now_ns, limit = it->deadline_ns;

    if (r->delivery_timeout_ms) {
        uint64_t dl = it->enq_ns + (uint64_t)r->delivery_timeout_ms * 1000000ull;

        if (limit == 0 || dl < limit)
            limit = dl;
    }
    if (limit && now + wait >= limit) {
        answer_fmt(core, k, it, final,
                   "no time left for attempt %u (deadline or "
                   "delivery_timeout_ms): %s", it->attempt + 1, why);
        return 0;
    }
    bd_batch_retry_later(core, k, it, now + wait);
    return 1;
}

/*
 * Give it another attempt after its call's backoff, or answer final
 * when its attempts, its deadline or delivery_timeout_ms leave no room.
 * A LOAD whose client left is cancelled instead. Takes it.
 */
static void retry_or_give_up(struct bd_core *core, struct bd_key *k,
                             struct bd_item *it, struct retry_plan *plan,
                             int final, const char *why)
{
    if (cancel_if_gone(core, it))
        return;
    if (it->attempt >= k->route->max_attempts) {
        answer_fmt(core, k, it, final, "gave up after %u attempts: %s",
                   it->attempt, why);
        return;
    }
    if (wait_or_give_up(core, k, it, plan_wait(core, k->route, plan, it), final,
                        why)) {
        core->ctr.retries++;
        k->rs->retries++;
    }
}

/* ---- verdicts --------------------------------------------------------- */

enum verdict {
    V_ITEMS = 0,    /* read each item's result */
    V_RETRY = 1,    /* the sink asked to retry the whole batch: retry all, split */
    V_FAIL = 2,     /* the sink failed the whole batch: final, FAIL every item */
    V_BUG = 3,      /* plugin broke the ABI: FAIL every item, no retry */
    V_DOWN = 4,     /* the isolated sink's runner crashed or is down: retry all */
    V_ACQUIRE = 5,  /* acquire() failed: retry all, then SINK_UNAVAILABLE */
    V_WAIT = 6,     /* never reached a restarting runner: wait, attempt not counted */
};

/* The verdict of the whole call; its message (for every item but
 * V_ITEMS) goes to buf. */
static enum verdict batch_verdict(struct bd_batch *b, char *buf, size_t n)
{
    const char *err = b->error;
    int rc = b->rc;

    /* Only isolate.c's proxy says "not started", always with a wait: a
     * plugin returning that code must not make its items wait for
     * nothing, over and over without using attempts. It is a bug. */
    if (rc == BD_SINK_NOT_STARTED && b->wait_ns == 0)
        rc = BATCHD_SINK_PENDING; /* not a final code: the default case */
    switch (rc) {
    case BATCHD_SINK_DONE:
        break;
    case BD_SINK_UNAVAILABLE:
    case BD_SINK_NOT_STARTED:
        snprintf(buf, n, "sink %s: unavailable: %s", b->sink->name,
                 err ? err : "runner down");
        return rc == BD_SINK_UNAVAILABLE ? V_DOWN : V_WAIT;
    case BD_SINK_ACQUIRE_FAILED:
        snprintf(buf, n, "sink %s: acquire failed: %s", b->sink->name,
                 err ? err : "no reason given");
        return V_ACQUIRE;
    case BATCHD_SINK_FAIL:
        /* Final: each item gets the sink's own words, as for an item FAIL. */
        snprintf(buf, n, "%s", err ? err : "batch failed");
        return V_FAIL;
    case BATCHD_SINK_RETRY:
        snprintf(buf, n, "sink %s: %s", b->sink->name,
                 err ? err : "batch retry requested");
        return V_RETRY;
    default:
        snprintf(buf, n, "sink %s: plugin bug: process returned %d",
                 b->sink->name, b->rc);
        bd_log_error("key %s: call %s: %s", b->pub.key, b->span_id, buf);
        return V_BUG;
    }
    for (size_t i = 0; i < b->pub.nitems; i++) {
        if (b->results[i].code == 0) {
            snprintf(buf, n, "sink %s: plugin bug: no result for item %zu of %zu",
                     b->sink->name, i, b->pub.nitems);
            bd_log_error("key %s: call %s: %s", b->pub.key, b->span_id, buf);
            return V_BUG;
        }
    }
    return V_ITEMS;
}

/* One item of a batch the sink answered item by item. Takes it. */
static void item_verdict(struct bd_core *core, struct bd_key *k,
                         struct bd_item *it, const struct bd_result *r,
                         struct retry_plan *plan, struct bd_series *ss)
{
    switch (r->code) {
    case BATCHD_RESULT_OK:
        ss->items_ok++;
        bd_item_answer(core, k, it, BATCHD_OK,
                       r->data ? (const void *)r->data : "", r->len, 0);
        break;
    case BATCHD_RESULT_RETRY:
        ss->items_retry++;
        retry_or_give_up(core, k, it, plan, BATCHD_RETRY_EXHAUSTED,
                         "the sink asked to retry the item");
        break;
    default:
        ss->items_failed++;
        bd_item_answer(core, k, it, BATCHD_FAIL,
                       r->data ? (const void *)r->data : "", r->len, 1);
        break;
    }
}

/*
 * Whole-batch RETRY. After the second one an item only joins batches
 * half the size of the one that failed (bisection), so a poison item
 * ends up alone while its neighbours go through. Bisection goes on only
 * where it learns something: an item is halved again only when some
 * call of its key succeeded since its last failure (its other half, if
 * the poison is here). When every call fails, the backend is down, not
 * an item: the halves stay halves, and an outage never turns one batch
 * into many small calls.
 */
static void whole_verdict(struct bd_core *core, struct bd_key *k,
                          struct bd_item *it, size_t nitems,
                          struct retry_plan *plan, const char *msg)
{
    if (it->batch_fails < 255)
        it->batch_fails++;
    if (it->batch_fails >= 2 && nitems > 1 &&
        (it->cap == 0 || it->ok_mark != k->ok_calls)) {
        it->cap = (uint32_t)(nitems / 2);
        core->ctr.splits++;
    }
    it->ok_mark = k->ok_calls;
    retry_or_give_up(core, k, it, plan, BATCHD_RETRY_EXHAUSTED, msg);
}

/*
 * The call never reached a runner (it is restarting): the item waits
 * for the restart, its attempt not counted, unless its client left or
 * its deadline or delivery_timeout_ms would pass first. Takes it.
 */
static void wait_for_restart(struct bd_core *core, struct bd_key *k,
                             struct bd_item *it, struct retry_plan *plan,
                             uint64_t wait, const char *msg)
{
    /* At shutdown retries skip their backoff and are flushed at once:
     * a try must count there, or it would spin until the restart. */
    if (core->state == BD_STATE_STOPPING) {
        retry_or_give_up(core, k, it, plan, BATCHD_SINK_UNAVAILABLE, msg);
        return;
    }
    it->attempt--;
    if (cancel_if_gone(core, it))
        return;
    wait_or_give_up(core, k, it, wait, BATCHD_SINK_UNAVAILABLE, msg);
}

/* Every item of a call that did not answer item by item. Takes them. */
static void call_verdict(struct bd_core *core, struct bd_batch *b,
                         enum verdict v, const char *msg)
{
    struct bd_key *k = b->key;
    struct retry_plan plan = {.min_wait_ns = b->retry_after_ns};

    for (size_t i = 0; i < b->pub.nitems; i++) {
        struct bd_item *it = b->items[i];

        switch (v) {
        case V_RETRY:
            whole_verdict(core, k, it, b->pub.nitems, &plan, msg);
            break;
        case V_DOWN:
        case V_ACQUIRE:
            retry_or_give_up(core, k, it, &plan, BATCHD_SINK_UNAVAILABLE, msg);
            break;
        case V_WAIT:
            wait_for_restart(core, k, it, &plan, b->wait_ns, msg);
            break;
        default: /* V_FAIL, V_BUG: final */
            bd_item_answer(core, k, it, BATCHD_FAIL, msg, strlen(msg), 1);
            break;
        }
    }
}

/* ---- the call ----------------------------------------------------------- */

static void running_unlink(struct bd_core *core, struct bd_batch *b)
{
    if (b->rprev)
        b->rprev->rnext = b->rnext;
    else
        core->running = b->rnext;
    if (b->rnext)
        b->rnext->rprev = b->rprev;
    b->rnext = b->rprev = NULL;
}

/* The call no longer holds its slots (finished or abandoned). */
static void call_end(struct bd_core *core, struct bd_batch *b)
{
    running_unlink(core, b);
    core->inflight--;
    core->inflight_items -= b->pub.nitems;
    b->key->inflight--;
    b->key->inflight_items -= b->pub.nitems;
    bd_series_observe(&bd_series_sink(b->sink)->call_us,
                      (core->clock.now_ns - b->start_ns) / 1000);
    bd_batch_mark_dirty(core, b->key);
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg);

/* The end of a started call's batch: its sink may be shut down now
 * when a reload removed it (gen.c). */
static void call_free(struct bd_core *core, struct bd_batch *b)
{
    struct bd_sink *s = b->sink;

    bd_batch_free(b);
    bd_gen_call_closed(core, s);
}

void bd_call_start(struct bd_core *core, struct bd_batch *b)
{
    struct bd_key *k = b->key;
    uint32_t tmo = k->route->sink_timeout_ms;

    b->rprev = NULL;
    b->rnext = core->running;
    if (core->running)
        core->running->rprev = b;
    core->running = b;
    b->start_ns = core->clock.now_ns;
    k->inflight++;
    k->inflight_items += b->pub.nitems;
    core->inflight++;
    core->inflight_items += b->pub.nitems;
    core->ctr.batches++;
    core->ctr.items_out += b->pub.nitems;
    bd_series_sink(b->sink)->calls++;
    bd_gen_call_opened(b->sink);
    if (b->sink->nonblocking) {
        /* On the loop: most non-blocking sinks answer before returning,
         * and then no timer is needed at all. */
        if (bd_sink_run(b) != BATCHD_SINK_PENDING) {
            bd_call_complete(core, b);
            return;
        }
    } else {
        bd_workers_submit(core->workers, b);
    }
    if (tmo == 0)
        return;
    b->timeout_ev = evtimer_new(core->base, call_timeout_cb, b);
    if (b->timeout_ev != NULL) {
        struct timeval tv = {tmo / 1000, (tmo % 1000) * 1000};

        evtimer_add(b->timeout_ev, &tv);
    } else {
        bd_log_error("key %s: no timer for sink_timeout_ms; call unbounded",
                     k->name);
    }
}

/* A copy of it for a retry, while the sink keeps borrowing it. */
static struct bd_item *item_clone(const struct bd_item *it)
{
    struct bd_item *c = bd_item_new(bd_item_room(it));

    if (c == NULL)
        return NULL;
    memcpy(c, it, sizeof(*c) + bd_item_room(it));
    c->next = NULL;
    if (c->waiter != NULL)
        bd_waiter_hold(c->waiter);
    if (c->dedup != NULL) {
        /* The recipients go with the copy; the sink's original has none. */
        ((struct bd_item *)it)->dedup = NULL;
        c->dedup->item = c;
    }
    return c;
}

static void timeout_item(struct bd_core *core, struct bd_key *k,
                         struct bd_item *it, uint32_t tmo,
                         struct retry_plan *plan)
{
    char why[96];
    struct bd_item *copy;

    snprintf(why, sizeof(why), "sink call timed out after %u ms", tmo);
    if (k->route->on_sink_timeout == BD_ON_TIMEOUT_RETRY &&
        it->attempt < k->route->max_attempts &&
        (copy = item_clone(it)) != NULL) {
        retry_or_give_up(core, k, copy, plan, BATCHD_SINK_TIMEOUT, why);
        return;
    }
    item_reply(core, k, it, BATCHD_SINK_TIMEOUT, why, strlen(why), 1);
}

/*
 * The timeout ran out before any worker started the call (the workers
 * were busy, maybe with hung calls): the sink never saw these items, so
 * they go back to the front of their key with the attempt not counted.
 */
static void call_withdrawn(struct bd_core *core, struct bd_batch *b)
{
    struct bd_key *k = b->key;

    bd_log_warn("key %s: sink %s: call %s with %zu items waited "
                "sink_timeout_ms for a worker; queued again", k->name,
                b->sink->name, b->span_id, b->pub.nitems);
    call_end(core, b);
    for (size_t i = b->pub.nitems; i-- > 0;) {
        struct bd_item *it = b->items[i];

        it->attempt--;
        bd_batch_requeue_front(core, k, it);
    }
    event_free(b->timeout_ev);
    call_free(core, b);
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_batch *b = arg;
    struct bd_key *k = b->key;
    struct bd_core *core = k->core;
    uint32_t tmo = k->route->sink_timeout_ms;
    struct retry_plan plan = {0}; /* one backoff for the whole call */

    (void)fd;
    (void)what;
    bd_core_tick(core);
    if (!b->sink->nonblocking && bd_workers_withdraw(core->workers, b)) {
        call_withdrawn(core, b);
        return;
    }
    bd_log_warn("key %s: sink %s: call %s with %zu items timed out after "
                "%u ms", k->name, b->sink->name, b->span_id, b->pub.nitems,
                tmo);
    core->ctr.timeouts++;
    k->rs->timeouts++;
    core->abandoned++;
    b->abandoned = 1;
    for (size_t i = 0; i < b->pub.nitems; i++)
        timeout_item(core, k, b->items[i], tmo, &plan);
    if (b->sink->vt->cancel != NULL)
        b->sink->vt->cancel(b->sink->state, &b->pub);
    if (!b->sink->nonblocking)
        bd_workers_replace_stuck(core->workers);
    call_end(core, b);
    b->key = NULL; /* the key may go idle and be freed before the late answer */
    bd_core_want_flush(core);
}

/* The late answer of an abandoned call: only memory is left to free. */
static void drop_abandoned(struct bd_core *core, struct bd_batch *b)
{
    core->abandoned--;
    if (b->res != NULL)
        b->sink->vt->release(b->sink->state, b->res);
    for (size_t i = 0; i < b->pub.nitems; i++)
        bd_item_free(b->items[i]);
    call_free(core, b);
}

void bd_call_complete(struct bd_core *core, struct bd_batch *b)
{
    struct bd_key *k = b->key;
    char msg[320];
    enum verdict v;

    if (b->timeout_ev != NULL) {
        event_free(b->timeout_ev);
        b->timeout_ev = NULL;
    }
    if (b->abandoned) {
        drop_abandoned(core, b);
        return;
    }
    if (b->res != NULL) {
        b->sink->vt->release(b->sink->state, b->res);
        b->res = NULL;
    }
    call_end(core, b);
    v = batch_verdict(b, msg, sizeof(msg));
    if (v == V_ITEMS) {
        /* The usual case, once per item: its own loop. */
        struct retry_plan plan = {.min_wait_ns = b->retry_after_ns};
        struct bd_series *ss = bd_series_sink(b->sink);

        k->ok_calls++;
        for (size_t i = 0; i < b->pub.nitems; i++)
            item_verdict(core, k, b->items[i], &b->results[i], &plan, ss);
    } else {
        bd_series_sink(b->sink)->call_failures++;
        call_verdict(core, b, v, msg);
    }
    call_free(core, b);
    bd_core_want_flush(core);
}

void bd_call_abandon_all(struct bd_core *core, int status, const char *msg)
{
    for (struct bd_batch *b = core->running; b; b = b->rnext) {
        if (b->abandoned)
            continue;
        for (size_t i = 0; i < b->pub.nitems; i++)
            item_reply(core, b->key, b->items[i], status, msg, strlen(msg), 1);
        b->abandoned = 1;
        /* An isolated sink's cancel kills its runner: nothing hangs on. */
        if (b->sink->isolation == BD_ISOLATION_PROCESS &&
            b->sink->vt->cancel != NULL)
            b->sink->vt->cancel(b->sink->state, &b->pub);
    }
}

/* Is nobody waiting for it any more (every LOAD's client gone, no
 * SEND holding it)? */
static int item_orphaned(const struct bd_item *it)
{
    if (it->dedup == NULL)
        return it->waiter != NULL && bd_waiter_gone(it->waiter);
    if (it->dedup->nsend)
        return 0;
    for (const struct bd_rcpt *r = it->dedup->rcpts; r; r = r->next)
        if (!bd_waiter_gone(r->waiter))
            return 0;
    return 1;
}

/* Does w wait for it? */
static int waits_for(const struct bd_item *it, const struct bd_waiter *w)
{
    if (it->dedup == NULL)
        return it->waiter == w;
    for (const struct bd_rcpt *r = it->dedup->rcpts; r; r = r->next)
        if (r->waiter == w)
            return 1;
    return 0;
}

/* Does every item of b belong to a client that is gone? */
static int all_gone(const struct bd_batch *b)
{
    for (size_t i = 0; i < b->pub.nitems; i++)
        if (!item_orphaned(b->items[i]))
            return 0;
    return 1;
}

void bd_call_cancel_for(struct bd_core *core, const struct bd_waiter *w)
{
    for (struct bd_batch *b = core->running; b; b = b->rnext) {
        int mine = 0;

        if (b->abandoned || b->cancelled || b->sink->vt->cancel == NULL)
            continue;
        for (size_t i = 0; i < b->pub.nitems && !mine; i++)
            mine = waits_for(b->items[i], w);
        if (mine && all_gone(b)) {
            b->cancelled = 1;
            b->sink->vt->cancel(b->sink->state, &b->pub);
        }
    }
}

void bd_core_complete_list(struct bd_core *core, struct bd_batch *list)
{
    bd_core_tick(core);
    while (list != NULL) {
        struct bd_batch *b = list;

        list = list->next;
        bd_call_complete(core, b);
    }
}
