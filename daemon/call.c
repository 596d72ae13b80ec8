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
#include "conn.h"
#include "hist.h"
#include "log.h"
#include "msg.h"
#include "server.h"
#include "sink.h"
#include "worker.h"

/* ---- answering items ------------------------------------------------- */

/* Reply for it, leaving it allocated (an abandoned call still lends it
 * to the sink). */
static inline void item_reply(struct bd_server *srv, const char *key,
                              const struct bd_item *it, int status,
                              const void *body, size_t len, int is_str)
{
    srv->ctr.status[status]++;
    srv->ctr.lat_hist[bd_hist_pow2_bucket((srv->now_ns - it->enq_ns) / 1000, 32)]++;
    if (it->conn == NULL) {
        /* SEND: the client had ACCEPTED; a failure is only logged. */
        if (status != BATCHD_OK) {
            srv->ctr.send_failed++;
            bd_log_warn("key %s: SEND item %llu lost: %s: %.*s", key,
                        (unsigned long long)it->id, bd_status_name(status),
                        (int)(len > 200 ? 200 : len),
                        body ? (const char *)body : "");
        }
        return;
    }
    bd_conn_reply(it->conn, it->reply_type, it->req_id, status, body, len,
                  is_str);
}

void bd_item_answer(struct bd_server *srv, const char *key, struct bd_item *it,
                    int status, const void *body, size_t len, int is_str)
{
    item_reply(srv, key, it, status, body, len, is_str);
    bd_item_free(it);
}

static void answer_fmt(struct bd_server *srv, struct bd_key *k,
                       struct bd_item *it, int status, const char *fmt,
                       unsigned u, const char *why)
{
    char msg[320];
    int n = snprintf(msg, sizeof(msg), fmt, u, why);

    if (n < 0 || n >= (int)sizeof(msg))
        n = (int)strlen(msg);
    bd_item_answer(srv, k->name, it, status, msg, (size_t)n, 1);
}

/* ---- retries ---------------------------------------------------------- */

/* xorshift64*: jitter only, so any decent spread will do. */
static double rnd01(struct bd_server *srv)
{
    uint64_t x = srv->rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    srv->rng = x;
    return (double)((x * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/*
 * Give it another attempt after a jittered backoff (at least min_wait_ns,
 * the sink's host->retry_after hint), or answer RETRY_EXHAUSTED when its
 * attempts, its deadline or delivery_timeout_ms leave no room for that
 * wait. A LOAD whose client left is cancelled instead. Takes it.
 */
static void retry_or_give_up(struct bd_server *srv, struct bd_key *k,
                             struct bd_item *it, int final, const char *why,
                             uint64_t min_wait_ns)
{
    const struct bd_route_conf *r = k->route;
    uint64_t now = srv->now_ns, wait, limit = it->deadline_ns;

    if (it->conn != NULL && bd_conn_is_closed(it->conn)) {
        srv->ctr.cancelled++;
        srv->ctr.status[BATCHD_CANCELLED]++;
        bd_item_free(it);
        return;
    }
    if (it->attempt >= r->max_attempts) {
        answer_fmt(srv, k, it, final, "gave up after %u attempts: %s",
                   it->attempt, why);
        return;
    }
    /* At shutdown the backoff is skipped: the grace time is short. */
    wait = srv->state == BD_STATE_STOPPING ? 0 :
           bd_batch_backoff_ns(r, it->attempt, rnd01(srv));
    if (srv->state != BD_STATE_STOPPING && wait < min_wait_ns)
        wait = min_wait_ns;
    if (r->delivery_timeout_ms) {
        uint64_t dl = it->enq_ns + (uint64_t)r->delivery_timeout_ms * 1000000ull;

        if (limit == 0 || dl < limit)
            limit = dl;
    }
    if (limit && now + wait >= limit) {
        answer_fmt(srv, k, it, final,
                   "no time left for attempt %u (deadline or "
                   "delivery_timeout_ms): %s", it->attempt + 1, why);
        return;
    }
    srv->ctr.retries++;
    bd_batch_retry_later(srv, k, it, now + wait);
}

/* ---- verdicts --------------------------------------------------------- */

enum verdict {
    V_ITEMS = 0,    /* read each item's result */
    V_WHOLE = 1,    /* the whole batch failed or asked for a retry: retry all */
    V_BUG = 2,      /* plugin broke the ABI: FAIL every item, no retry */
    V_DOWN = 3,     /* the isolated sink's runner crashed or is down: retry all */
};

static enum verdict batch_verdict(struct bd_batch *b, char *buf, size_t n)
{
    if (b->rc == BD_SINK_UNAVAILABLE) {
        snprintf(buf, n, "sink %s: unavailable: %s", b->sink->name,
                 b->error ? b->error : "runner down");
        return V_DOWN;
    }
    if (b->rc == BATCHD_SINK_FAIL || b->rc == BATCHD_SINK_RETRY) {
        snprintf(buf, n, "sink %s: %s", b->sink->name,
                 b->error ? b->error : (b->rc == BATCHD_SINK_FAIL ?
                                        "batch failed" : "batch retry requested"));
        return V_WHOLE;
    }
    if (b->rc != BATCHD_SINK_DONE) {
        snprintf(buf, n, "sink %s: plugin bug: process returned %d",
                 b->sink->name, b->rc);
        bd_log_error("key %s: %s", b->pub.key, buf);
        return V_BUG;
    }
    for (size_t i = 0; i < b->pub.nitems; i++) {
        if (b->results[i].code == 0) {
            snprintf(buf, n, "sink %s: plugin bug: no result for item %zu of %zu",
                     b->sink->name, i, b->pub.nitems);
            bd_log_error("key %s: %s", b->pub.key, buf);
            return V_BUG;
        }
    }
    return V_ITEMS;
}

/* One item of a batch the sink answered item by item. Takes it. */
static void item_verdict(struct bd_server *srv, struct bd_key *k,
                         struct bd_item *it, const struct bd_result *r,
                         uint64_t retry_after_ns)
{
    switch (r->code) {
    case BATCHD_RESULT_OK:
        bd_item_answer(srv, k->name, it, BATCHD_OK,
                       r->data ? (const void *)r->data : "", r->len, 0);
        break;
    case BATCHD_RESULT_RETRY:
        retry_or_give_up(srv, k, it, BATCHD_RETRY_EXHAUSTED,
                         "the sink asked to retry the item", retry_after_ns);
        break;
    default:
        bd_item_answer(srv, k->name, it, BATCHD_FAIL,
                       r->data ? (const void *)r->data : "", r->len, 1);
        break;
    }
}

/*
 * Whole-batch failure. After the second one an item only joins batches
 * half the size of the one that failed, so a poison item ends up alone
 * while its neighbours go through.
 */
static void whole_verdict(struct bd_server *srv, struct bd_key *k,
                          struct bd_item *it, size_t nitems, int final,
                          const char *msg, uint64_t retry_after_ns)
{
    if (it->batch_fails < 255)
        it->batch_fails++;
    if (it->batch_fails >= 2 && nitems > 1) {
        it->cap = (uint32_t)(nitems / 2);
        srv->ctr.splits++;
    }
    retry_or_give_up(srv, k, it, final, msg, retry_after_ns);
}

/* ---- the call ----------------------------------------------------------- */

static void running_unlink(struct bd_server *srv, struct bd_batch *b)
{
    if (b->rprev)
        b->rprev->rnext = b->rnext;
    else
        srv->running = b->rnext;
    if (b->rnext)
        b->rnext->rprev = b->rprev;
    b->rnext = b->rprev = NULL;
}

/* The call no longer holds its slots (finished or abandoned). */
static void call_end(struct bd_server *srv, struct bd_batch *b)
{
    running_unlink(srv, b);
    srv->inflight--;
    srv->inflight_items -= b->pub.nitems;
    b->key->inflight--;
    bd_batch_mark_dirty(srv, b->key);
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg);

void bd_call_start(struct bd_server *srv, struct bd_batch *b)
{
    struct bd_key *k = b->key;
    uint32_t tmo = k->route->sink_timeout_ms;

    b->rprev = NULL;
    b->rnext = srv->running;
    if (srv->running)
        srv->running->rprev = b;
    srv->running = b;
    b->start_ns = srv->now_ns;
    k->inflight++;
    srv->inflight++;
    srv->inflight_items += b->pub.nitems;
    srv->ctr.batches++;
    srv->ctr.items_out += b->pub.nitems;
    b->sink->calls++;
    if (b->sink->nonblocking) {
        /* On the loop: most non-blocking sinks answer before returning,
         * and then no timer is needed at all. */
        if (bd_sink_run(b) != BATCHD_SINK_PENDING) {
            bd_call_complete(srv, b);
            return;
        }
    } else {
        bd_workers_submit(srv->workers, b);
    }
    if (tmo == 0)
        return;
    b->timeout_ev = evtimer_new(srv->base, call_timeout_cb, b);
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
    struct bd_item *c = bd_item_new(it->len);

    if (c == NULL)
        return NULL;
    memcpy(c, it, sizeof(*c) + it->len);
    c->next = NULL;
    if (c->conn != NULL)
        bd_conn_ref(c->conn);
    return c;
}

static void timeout_item(struct bd_server *srv, struct bd_key *k,
                         struct bd_item *it, uint32_t tmo)
{
    char why[96];
    struct bd_item *copy;

    snprintf(why, sizeof(why), "sink call timed out after %u ms", tmo);
    if (k->route->on_sink_timeout == BD_ON_TIMEOUT_RETRY &&
        it->attempt < k->route->max_attempts &&
        (copy = item_clone(it)) != NULL) {
        retry_or_give_up(srv, k, copy, BATCHD_SINK_TIMEOUT, why, 0);
        return;
    }
    item_reply(srv, k->name, it, BATCHD_SINK_TIMEOUT, why, strlen(why), 1);
}

/*
 * The timeout ran out before any worker started the call (the workers
 * were busy, maybe with hung calls): the sink never saw these items, so
 * they go back to the front of their key with the attempt not counted.
 */
static void call_withdrawn(struct bd_server *srv, struct bd_batch *b)
{
    struct bd_key *k = b->key;

    bd_log_warn("key %s: sink %s: call with %zu items waited sink_timeout_ms "
                "for a worker; queued again", k->name, b->sink->name,
                b->pub.nitems);
    call_end(srv, b);
    for (size_t i = b->pub.nitems; i-- > 0;) {
        struct bd_item *it = b->items[i];

        it->attempt--;
        bd_batch_requeue_front(srv, k, it);
    }
    event_free(b->timeout_ev);
    bd_batch_free(b);
}

static void call_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_batch *b = arg;
    struct bd_key *k = b->key;
    struct bd_server *srv = k->srv;
    uint32_t tmo = k->route->sink_timeout_ms;

    (void)fd;
    (void)what;
    bd_server_tick(srv);
    if (!b->sink->nonblocking && bd_workers_withdraw(srv->workers, b)) {
        call_withdrawn(srv, b);
        return;
    }
    bd_log_warn("key %s: sink %s: call with %zu items timed out after %u ms",
                k->name, b->sink->name, b->pub.nitems, tmo);
    srv->ctr.timeouts++;
    srv->abandoned++;
    b->abandoned = 1;
    for (size_t i = 0; i < b->pub.nitems; i++)
        timeout_item(srv, k, b->items[i], tmo);
    if (b->sink->vt->cancel != NULL)
        b->sink->vt->cancel(b->sink->state, &b->pub);
    if (!b->sink->nonblocking)
        bd_workers_replace_stuck(srv->workers);
    call_end(srv, b);
    b->key = NULL; /* the key may go idle and be freed before the late answer */
    bd_server_want_flush(srv);
}

/* The late answer of an abandoned call: only memory is left to free. */
static void drop_abandoned(struct bd_server *srv, struct bd_batch *b)
{
    srv->abandoned--;
    if (b->res != NULL)
        b->sink->vt->release(b->sink->state, b->res);
    for (size_t i = 0; i < b->pub.nitems; i++)
        bd_item_free(b->items[i]);
    bd_batch_free(b);
}

void bd_call_complete(struct bd_server *srv, struct bd_batch *b)
{
    struct bd_key *k = b->key;
    char msg[320];
    enum verdict v;

    if (b->timeout_ev != NULL) {
        event_free(b->timeout_ev);
        b->timeout_ev = NULL;
    }
    if (b->abandoned) {
        drop_abandoned(srv, b);
        return;
    }
    if (b->res != NULL) {
        b->sink->vt->release(b->sink->state, b->res);
        b->res = NULL;
    }
    call_end(srv, b);
    v = batch_verdict(b, msg, sizeof(msg));
    if (v == V_ITEMS) {
        /* The usual case, once per item: its own loop. */
        for (size_t i = 0; i < b->pub.nitems; i++)
            item_verdict(srv, k, b->items[i], &b->results[i],
                         b->retry_after_ns);
    }
    for (size_t i = 0; v != V_ITEMS && i < b->pub.nitems; i++) {
        struct bd_item *it = b->items[i];

        if (v == V_BUG)
            bd_item_answer(srv, k->name, it, BATCHD_FAIL, msg, strlen(msg), 1);
        else if (v == V_WHOLE)
            whole_verdict(srv, k, it, b->pub.nitems, BATCHD_RETRY_EXHAUSTED,
                          msg, b->retry_after_ns);
        else
            retry_or_give_up(srv, k, it, BATCHD_SINK_UNAVAILABLE, msg, 0);
    }
    bd_batch_free(b);
    bd_server_want_flush(srv);
}

void bd_call_abandon_all(struct bd_server *srv, int status, const char *msg)
{
    for (struct bd_batch *b = srv->running; b; b = b->rnext) {
        if (b->abandoned)
            continue;
        for (size_t i = 0; i < b->pub.nitems; i++)
            item_reply(srv, b->pub.key, b->items[i], status, msg, strlen(msg), 1);
        b->abandoned = 1;
        /* An isolated sink's cancel kills its runner: nothing hangs on. */
        if (b->sink->isolation == BD_ISOLATION_PROCESS &&
            b->sink->vt->cancel != NULL)
            b->sink->vt->cancel(b->sink->state, &b->pub);
    }
}

/* Does every item of b belong to a client that is gone? */
static int all_gone(const struct bd_batch *b)
{
    for (size_t i = 0; i < b->pub.nitems; i++) {
        const struct bd_conn *c = b->items[i]->conn;

        if (c == NULL || !bd_conn_is_closed(c))
            return 0;
    }
    return 1;
}

void bd_call_cancel_for(struct bd_server *srv, const struct bd_conn *c)
{
    for (struct bd_batch *b = srv->running; b; b = b->rnext) {
        int mine = 0;

        if (b->abandoned || b->cancelled || b->sink->vt->cancel == NULL)
            continue;
        for (size_t i = 0; i < b->pub.nitems && !mine; i++)
            mine = b->items[i]->conn == c;
        if (mine && all_gone(b)) {
            b->cancelled = 1;
            b->sink->vt->cancel(b->sink->state, &b->pub);
        }
    }
}
