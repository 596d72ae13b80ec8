/*
 * batch.c - per-key queues, close rules, dispatch and completion
 * (see batch.h and DESIGN section 3).
 *
 * A key's "open batch" is simply the head of its queue: items wait in
 * one FIFO, and a batch is cut from the front when the close rule says
 * so and the key and the server both have a free concurrency slot.
 * Keys are created on first use and freed as soon as nothing is queued,
 * running or timed for them.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "batch.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "server.h"
#include "sink.h"
#include "worker.h"

/* ---- the pure rules (unit-tested in check_batch.c) -------------------- */

int bd_batch_fits(const struct bd_route_conf *r, size_t count, uint64_t bytes,
                  size_t next_len)
{
    if (count == 0)
        return 1;
    return count < r->max_items && bytes + next_len <= r->max_bytes;
}

int bd_batch_ready(const struct bd_route_conf *r, uint64_t nqueued,
                   uint64_t qbytes, uint64_t first_ns, uint64_t now_ns,
                   uint32_t inflight, int flushing)
{
    int full, expired;

    if (nqueued == 0)
        return 0;
    if (flushing)
        return 1;
    /* Bytes at or past the ceiling mean the head batch cannot grow. */
    full = nqueued >= r->max_items || qbytes >= r->max_bytes;
    expired = now_ns >= first_ns + r->max_delay_us * 1000;
    switch (r->policy) {
    case BD_POLICY_IMMEDIATE:
        return 1;
    case BD_POLICY_SIZE:
        return full;
    case BD_POLICY_BALANCED:
        return full || expired || nqueued >= r->min_items || inflight == 0;
    case BD_POLICY_DURATION:
    default:
        return full || expired;
    }
}

/* ---- the key table ---------------------------------------------------- */

static uint32_t hash_key(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    while (n--) {
        h ^= (uint8_t)*s++;
        h *= 16777619u;
    }
    return h;
}

static struct bd_key *key_find(struct bd_server *srv, const char *name,
                               size_t len, uint32_t h)
{
    struct bd_key *k;

    if (srv->keytab == NULL)
        return NULL;
    for (k = srv->keytab[h & (srv->keytab_size - 1)]; k; k = k->hnext)
        if (k->hash == h && k->len == len && memcmp(k->name, name, len) == 0)
            return k;
    return NULL;
}

static int keytab_grow(struct bd_server *srv)
{
    size_t nsize = srv->keytab_size ? srv->keytab_size * 2 : 64;
    struct bd_key **nt = bd_calloc(nsize, sizeof(*nt));

    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < srv->keytab_size; i++) {
        struct bd_key *k = srv->keytab[i], *next;

        for (; k; k = next) {
            next = k->hnext;
            k->hnext = nt[k->hash & (nsize - 1)];
            nt[k->hash & (nsize - 1)] = k;
        }
    }
    bd_free(srv->keytab);
    srv->keytab = nt;
    srv->keytab_size = nsize;
    return 0;
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

/* Find or create the key. NULL with a->status set when it has no route
 * or memory is short. */
static struct bd_key *key_get(struct bd_server *srv, const char *name,
                              size_t len, struct bd_admit *a)
{
    uint32_t h = hash_key(name, len);
    struct bd_key *k = key_find(srv, name, len, h);
    const struct bd_route_conf *r;

    if (k != NULL)
        return k;
    k = bd_malloc(sizeof(*k) + len + 1);
    if (k == NULL)
        goto out_oom;
    memset(k, 0, sizeof(*k));
    memcpy(k->name, name, len);
    k->name[len] = '\0';
    k->len = len;
    k->hash = h;
    r = route_match(srv->cfg, k->name);
    if (r == NULL) {
        bd_free(k);
        a->status = BATCHD_NO_ROUTE;
        snprintf(a->msg, sizeof(a->msg), "no route matches key '%.64s'", name);
        return NULL;
    }
    if ((srv->keytab == NULL || srv->nkeys + 1 > srv->keytab_size / 4 * 3) &&
        keytab_grow(srv) != 0) {
        bd_free(k);
        goto out_oom;
    }
    k->srv = srv;
    k->route = r;
    k->sink = &srv->sinks[r->sink_idx];
    k->hnext = srv->keytab[h & (srv->keytab_size - 1)];
    srv->keytab[h & (srv->keytab_size - 1)] = k;
    srv->nkeys++;
    return k;

out_oom:
    a->status = BATCHD_OVERLOADED;
    snprintf(a->msg, sizeof(a->msg), "out of memory creating key");
    return NULL;
}

/* Free a key that has nothing queued, running, or listed. */
static void key_maybe_free(struct bd_server *srv, struct bd_key *k)
{
    struct bd_key **pp;

    if (k->nqueued || k->inflight || (k->flags & (BD_KEY_DIRTY | BD_KEY_WAITING)))
        return;
    for (pp = &srv->keytab[k->hash & (srv->keytab_size - 1)]; *pp;
         pp = &(*pp)->hnext) {
        if (*pp == k) {
            *pp = k->hnext;
            break;
        }
    }
    if (k->timer != NULL)
        event_free(k->timer);
    srv->nkeys--;
    bd_free(k);
}

static void key_mark_dirty(struct bd_server *srv, struct bd_key *k)
{
    if (k->flags & BD_KEY_DIRTY)
        return;
    k->flags |= BD_KEY_DIRTY;
    k->dnext = srv->dirty;
    srv->dirty = k;
    bd_server_want_flush(srv);
}

/* ---- admission -------------------------------------------------------- */

static int refuse(struct bd_admit *a, int status, const char *fmt,
                  unsigned long long v)
{
    a->status = status;
    snprintf(a->msg, sizeof(a->msg), fmt, v);
    return 0;
}

/* Check every bound; the message names the one that was hit. */
static int within_bounds(struct bd_server *srv, struct bd_key *k, size_t len,
                         struct bd_admit *a)
{
    const struct bd_route_conf *r = k->route;
    const struct bd_config *cfg = srv->cfg;

    if (len > r->max_bytes)
        return refuse(a, BATCHD_BAD_REQUEST,
                      "payload: larger than the route's max_bytes (%llu)",
                      (unsigned long long)r->max_bytes);
    if (k->nqueued + 1 > r->key_max_items)
        return refuse(a, BATCHD_OVERLOADED, "key queue full: key_max_items=%llu",
                      (unsigned long long)r->key_max_items);
    if (k->qbytes + len > r->key_max_bytes)
        return refuse(a, BATCHD_OVERLOADED, "key queue full: key_max_bytes=%llu",
                      (unsigned long long)r->key_max_bytes);
    if (srv->nqueued + 1 > cfg->max_queued_items)
        return refuse(a, BATCHD_OVERLOADED,
                      "daemon queue full: max_queued_items=%llu",
                      (unsigned long long)cfg->max_queued_items);
    if (srv->qbytes + len > cfg->max_queued_bytes)
        return refuse(a, BATCHD_OVERLOADED,
                      "daemon queue full: max_queued_bytes=%llu",
                      (unsigned long long)cfg->max_queued_bytes);
    return 1;
}

void bd_batch_admit(struct bd_server *srv, const char *key, size_t keylen,
                    const void *data, size_t len, struct bd_conn *conn,
                    uint64_t req_id, int reply_type, struct bd_admit *a)
{
    struct bd_key *k;
    struct bd_item *it;

    a->status = BATCHD_OK;
    k = key_get(srv, key, keylen, a);
    if (k == NULL)
        return;
    if (!within_bounds(srv, k, len, a))
        goto out_reject;
    it = bd_malloc(sizeof(*it) + len);
    if (it == NULL) {
        refuse(a, BATCHD_OVERLOADED, "out of memory (%llu bytes)",
               (unsigned long long)len);
        goto out_reject;
    }
    it->next = NULL;
    it->conn = conn;
    if (conn != NULL)
        bd_conn_ref(conn);
    it->req_id = req_id;
    it->id = ++srv->next_item_id;
    it->enq_ns = bd_now_ns();
    it->attempt = 0;
    it->reply_type = (uint8_t)reply_type;
    it->len = len;
    memcpy(it->data, data, len);
    if (k->tail)
        k->tail->next = it;
    else
        k->head = it;
    k->tail = it;
    k->nqueued++;
    k->qbytes += len;
    srv->nqueued++;
    srv->qbytes += len;
    srv->ctr.items_in++;
    key_mark_dirty(srv, k);
    return;

out_reject:
    k->rejects++;
    key_maybe_free(srv, k);
}

/* ---- dispatch --------------------------------------------------------- */

static int flushing(const struct bd_server *srv)
{
    return srv->state == BD_STATE_STOPPING;
}

static void item_release(struct bd_item *it)
{
    if (it->conn != NULL)
        bd_conn_unref(it->conn);
    bd_free(it);
}

static struct bd_item *queue_pop(struct bd_server *srv, struct bd_key *k)
{
    struct bd_item *it = k->head;

    k->head = it->next;
    if (k->head == NULL)
        k->tail = NULL;
    it->next = NULL;
    k->nqueued--;
    k->qbytes -= it->len;
    srv->nqueued--;
    srv->qbytes -= it->len;
    return it;
}

/* A LOAD whose client is gone is cancelled here, before the sink sees it. */
static int item_cancelled(struct bd_server *srv, struct bd_item *it)
{
    if (it->conn == NULL || !bd_conn_is_closed(it->conn))
        return 0;
    srv->ctr.cancelled++;
    srv->ctr.status[BATCHD_CANCELLED]++;
    item_release(it);
    return 1;
}

/* Count the head items that make one batch. */
static size_t head_batch_len(const struct bd_key *k)
{
    const struct bd_item *it = k->head;
    size_t n = 0;
    uint64_t bytes = 0;

    while (it != NULL && bd_batch_fits(k->route, n, bytes, it->len)) {
        bytes += it->len;
        n++;
        it = it->next;
    }
    return n;
}

static void hist_add(uint64_t *hist, size_t nb, uint64_t v)
{
    size_t i = 0;

    while (i + 1 < nb && v >= (1ull << i))
        i++;
    hist[i]++;
}

static void run_batch(struct bd_server *srv, struct bd_batch *b)
{
    b->rprev = NULL;
    b->rnext = srv->running;
    if (srv->running)
        srv->running->rprev = b;
    srv->running = b;
    if (!b->sink->nonblocking) {
        bd_workers_submit(srv->workers, b);
        return;
    }
    if (bd_sink_run(b) != BATCHD_SINK_PENDING)
        bd_batch_complete(srv, b);
}

/* Cut one batch from the head of k and start its sink call.
 * Returns 1 when a batch left, 0 when only cancelled items were found
 * or memory was short (the items stay queued). */
static int dispatch_one(struct bd_server *srv, struct bd_key *k)
{
    size_t n = head_batch_len(k), got = 0;
    struct bd_batch *b = bd_batch_new(k->sink, k, k->name, k->len, n);

    if (b == NULL) {
        bd_log_error("key %s: out of memory for a batch of %zu", k->name, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct bd_item *it = queue_pop(srv, k);

        if (item_cancelled(srv, it))
            continue;
        it->attempt++;
        b->items[got] = it;
        b->pitems[got].data = it->data;
        b->pitems[got].len = it->len;
        b->pitems[got].id = it->id;
        b->pitems[got].attempt = it->attempt;
        b->pitems[got].deadline_ms = -1;
        got++;
    }
    if (got == 0) {
        bd_batch_free(b);
        return 0;
    }
    b->pub.nitems = got;
    b->start_ns = bd_now_ns();
    k->inflight++;
    k->batches++;
    k->items += got;
    if (got > k->max_batch)
        k->max_batch = (uint32_t)got;
    srv->inflight++;
    srv->inflight_items += got;
    srv->ctr.batches++;
    srv->ctr.items_out += got;
    hist_add(srv->ctr.batch_hist, 17, got);
    k->sink->calls++;
    run_batch(srv, b);
    return 1;
}

static void key_timer_cb(evutil_socket_t fd, short what, void *arg);

/* Arm the delay timer for the head item when the policy waits for it. */
static void key_arm_timer(struct bd_server *srv, struct bd_key *k)
{
    const struct bd_route_conf *r = k->route;
    uint64_t at, now;
    struct timeval tv;

    if (r->policy == BD_POLICY_IMMEDIATE || r->policy == BD_POLICY_SIZE ||
        k->head == NULL)
        return;
    at = k->head->enq_ns + r->max_delay_us * 1000;
    if (k->timer_at_ns == at)
        return;
    if (k->timer == NULL) {
        k->timer = evtimer_new(srv->base, key_timer_cb, k);
        if (k->timer == NULL)
            return; /* checked again at every pass; logged by libevent */
    }
    now = bd_now_ns();
    at = at > now ? at - now : 0;
    tv.tv_sec = (time_t)(at / 1000000000ull);
    tv.tv_usec = (suseconds_t)((at % 1000000000ull) / 1000);
    evtimer_add(k->timer, &tv);
    k->timer_at_ns = k->head->enq_ns + r->max_delay_us * 1000;
}

static void key_disarm_timer(struct bd_key *k)
{
    if (k->timer_at_ns != 0 && k->timer != NULL)
        evtimer_del(k->timer);
    k->timer_at_ns = 0;
}

static int global_slot(const struct bd_server *srv)
{
    return srv->inflight < srv->cfg->max_concurrency;
}

static void key_wait_for_slot(struct bd_server *srv, struct bd_key *k)
{
    if (k->flags & BD_KEY_WAITING)
        return;
    k->flags |= BD_KEY_WAITING;
    k->dnext = NULL;
    /* FIFO, so keys get global slots in the order they asked. */
    if (srv->waiting == NULL) {
        srv->waiting = k;
    } else {
        struct bd_key *t = srv->waiting;

        while (t->dnext)
            t = t->dnext;
        t->dnext = k;
    }
}

/*
 * Dispatch as many batches of k as the close rule and the slots allow,
 * then arm its timer or free it. Called at the end of a pass, from the
 * delay timer, and after a completion; never while walking the queue.
 */
static void key_run(struct bd_server *srv, struct bd_key *k)
{
    int paused = srv->state == BD_STATE_PAUSED;

    while (!paused && k->nqueued > 0 &&
           k->inflight < k->route->key_concurrency &&
           bd_batch_ready(k->route, k->nqueued, k->qbytes, k->head->enq_ns,
                          bd_now_ns(), k->inflight, flushing(srv))) {
        if (!global_slot(srv)) {
            key_wait_for_slot(srv, k);
            break;
        }
        if (!dispatch_one(srv, k) && k->nqueued > 0)
            break;
    }
    if (k->nqueued == 0) {
        key_disarm_timer(k);
        key_maybe_free(srv, k);
        return;
    }
    key_arm_timer(srv, k);
}

static void key_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_key *k = arg;

    (void)fd;
    (void)what;
    k->timer_at_ns = 0;
    key_mark_dirty(k->srv, k);
}

void bd_batch_run_dirty(struct bd_server *srv)
{
    /* Keys waiting for a global slot go first: they asked earlier. */
    while (srv->waiting != NULL && global_slot(srv)) {
        struct bd_key *k = srv->waiting;

        srv->waiting = k->dnext;
        k->flags &= ~BD_KEY_WAITING;
        key_run(srv, k);
    }
    while (srv->dirty != NULL) {
        struct bd_key *k = srv->dirty;

        srv->dirty = k->dnext;
        k->flags &= ~BD_KEY_DIRTY;
        if (k->flags & BD_KEY_WAITING)
            continue; /* runs when a slot frees, in its turn */
        key_run(srv, k);
    }
}

/* ---- completion ------------------------------------------------------- */

static void reply_item(struct bd_server *srv, const char *key,
                       struct bd_item *it, int status, const void *body,
                       size_t len, int is_str)
{
    srv->ctr.status[status]++;
    hist_add(srv->ctr.lat_hist, 32, (bd_now_ns() - it->enq_ns) / 1000);
    if (it->conn == NULL) {
        /* SEND: the client had ACCEPTED; a failure is only logged. */
        if (status != BATCHD_OK) {
            srv->ctr.send_failed++;
            bd_log_warn("key %s: SEND item %llu not delivered: %s: %.*s",
                        key, (unsigned long long)it->id, bd_status_name(status),
                        (int)(len > 200 ? 200 : len), body ? (const char *)body : "");
        }
        return;
    }
    bd_conn_reply(it->conn, it->reply_type, it->req_id, status, body, len,
                  is_str);
}

/* The sink's verdict for item i, as a reply. */
static void answer(struct bd_server *srv, struct bd_batch *b, size_t i,
                   const char *batch_msg)
{
    struct bd_result *r = &b->results[i];
    struct bd_item *it = b->items[i];
    static const char retry_msg[] =
        "sink asked to retry; retries are not enabled for this route";

    if (batch_msg != NULL) {
        reply_item(srv, b->pub.key, it, b->rc == BATCHD_SINK_RETRY ?
                   BATCHD_RETRY_EXHAUSTED : BATCHD_FAIL,
                   batch_msg, strlen(batch_msg), 1);
        return;
    }
    switch (r->code) {
    case BATCHD_RESULT_OK:
        reply_item(srv, b->pub.key, it, BATCHD_OK, r->data ? (void *)r->data : (void *)"",
                   r->len, 0);
        break;
    case BATCHD_RESULT_RETRY:
        reply_item(srv, b->pub.key, it, BATCHD_RETRY_EXHAUSTED, retry_msg,
                   sizeof(retry_msg) - 1, 1);
        break;
    default:
        reply_item(srv, b->pub.key, it, BATCHD_FAIL, r->data ? (void *)r->data : (void *)"",
                   r->len, 1);
        break;
    }
}

/* A whole-batch verdict, or a plugin bug that leaves items unanswered. */
static const char *batch_verdict(struct bd_batch *b, char *buf, size_t n)
{
    if (b->rc == BATCHD_SINK_FAIL || b->rc == BATCHD_SINK_RETRY) {
        snprintf(buf, n, "sink %s: %s", b->sink->name,
                 b->error ? b->error : (b->rc == BATCHD_SINK_FAIL ?
                                        "batch failed" : "batch retry requested"));
        return buf;
    }
    if (b->rc != BATCHD_SINK_DONE) {
        snprintf(buf, n, "sink %s: bad return code %d from process",
                 b->sink->name, b->rc);
        bd_log_error("key %s: %s", b->pub.key, buf);
        b->rc = BATCHD_SINK_FAIL;
        return buf;
    }
    for (size_t i = 0; i < b->pub.nitems; i++) {
        if (b->results[i].code == 0) {
            snprintf(buf, n, "sink %s: plugin bug: no result for item %zu of %zu",
                     b->sink->name, i, b->pub.nitems);
            bd_log_error("key %s: %s", b->pub.key, buf);
            b->rc = BATCHD_SINK_FAIL;
            return buf;
        }
    }
    return NULL;
}

void bd_batch_complete(struct bd_server *srv, struct bd_batch *b)
{
    struct bd_key *k = b->key;
    char buf[256];
    const char *msg;

    if (b->rprev)
        b->rprev->rnext = b->rnext;
    else
        srv->running = b->rnext;
    if (b->rnext)
        b->rnext->rprev = b->rprev;
    if (b->res != NULL) {
        b->sink->vt->release(b->sink->state, b->res);
        b->res = NULL;
    }
    msg = batch_verdict(b, buf, sizeof(buf));
    for (size_t i = 0; i < b->pub.nitems; i++) {
        answer(srv, b, i, msg);
        item_release(b->items[i]);
    }
    srv->inflight--;
    srv->inflight_items -= b->pub.nitems;
    k->inflight--;
    bd_batch_free(b);
    key_mark_dirty(srv, k);
    bd_server_want_flush(srv);
}

/* ---- shutdown and stats ------------------------------------------------ */

void bd_batch_flush_all(struct bd_server *srv)
{
    for (size_t i = 0; i < srv->keytab_size; i++)
        for (struct bd_key *k = srv->keytab[i]; k; k = k->hnext)
            if (k->nqueued)
                key_mark_dirty(srv, k);
}

void bd_batch_fail_all_queued(struct bd_server *srv, int status,
                              const char *msg)
{
    for (size_t i = 0; i < srv->keytab_size; i++) {
        for (struct bd_key *k = srv->keytab[i]; k; k = k->hnext) {
            while (k->nqueued) {
                struct bd_item *it = queue_pop(srv, k);

                reply_item(srv, k->name, it, status, msg, strlen(msg), 1);
                item_release(it);
            }
            key_disarm_timer(k);
        }
    }
}

void bd_batch_abandon_running(struct bd_server *srv, int status,
                               const char *msg)
{
    for (struct bd_batch *b = srv->running; b; b = b->rnext) {
        for (size_t i = 0; i < b->pub.nitems; i++) {
            struct bd_item *it = b->items[i];

            /* The sink still borrows the items: answer, do not free. */
            reply_item(srv, b->pub.key, it, status, msg, strlen(msg), 1);
        }
    }
}

void bd_batch_destroy_all(struct bd_server *srv)
{
    for (size_t i = 0; i < srv->keytab_size; i++) {
        struct bd_key *k = srv->keytab[i], *next;

        for (; k; k = next) {
            next = k->hnext;
            while (k->nqueued)
                item_release(queue_pop(srv, k));
            if (k->timer)
                event_free(k->timer);
            bd_free(k);
        }
    }
    bd_free(srv->keytab);
    srv->keytab = NULL;
    srv->keytab_size = 0;
    srv->nkeys = 0;
    srv->dirty = NULL;
    srv->waiting = NULL;
}

void bd_batch_foreach_key(struct bd_server *srv,
                          void (*fn)(const struct bd_key *k, void *arg),
                          void *arg)
{
    for (size_t i = 0; i < srv->keytab_size; i++)
        for (struct bd_key *k = srv->keytab[i]; k; k = k->hnext)
            fn(k, arg);
}
