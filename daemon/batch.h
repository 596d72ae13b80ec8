/*
 * batch.h - per-key queues, the close rules of DESIGN section 3,
 * admission bounds, dispatch to sinks, and the key timer that drives
 * delays, deadlines and retry backoff.
 *
 * What happens to items after a sink call (verdicts, retries, timeouts,
 * cancellation) is call.c's; both run on the event loop thread only.
 */
#ifndef BD_BATCH_H
#define BD_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "core.h"
#include "msg.h"
#include "waiter.h"

struct bd_core;
struct bd_waiter;
struct bd_batch;
struct bd_dedup;
struct event;

/*
 * Priority lanes of one key (DESIGN section 3). The key's queue stays
 * one list, kept in dispatch order: lane BD_LANE_TOP first, then lanes
 * 255 down to 0, each lane a contiguous FIFO run of the list. A batch is
 * cut from the head as before, so it takes the highest lanes first and
 * each lane in its order. Aging moves a lane's head items, oldest first,
 * to the end of BD_LANE_TOP (batch.c: lanes_promote).
 *
 * Made only when an item with a priority other than 0 comes to a key
 * (until then every item is in lane 0, after the retried ones: the plain
 * path costs nothing); freed with the key.
 */
#define BD_LANE_TOP 256       /* aged items and items back from a retry */
#define BD_NLANES 257

struct bd_lanes {
    struct bd_item *tail[BD_NLANES]; /* last item of each lane, NULL = empty */
    uint32_t n[BD_NLANES];    /* queued items per lane */
    uint64_t bits[(BD_NLANES + 63) / 64]; /* lanes with items */
};

/* One accepted item. Payload bytes follow the struct. */
struct bd_item {
    struct bd_item *next;     /* next in its key's queue or retry list */
    struct bd_waiter *waiter; /* LOAD: holds a reference; SEND or
                               * coalesced (dedup != NULL): NULL */
    struct bd_dedup *dedup;   /* with a dedup_id: its recipients (owned),
                               * else NULL (dedup.h) */
    uint64_t req_id;          /* the client's id for this item */
    uint64_t id;              /* daemon-unique id, shown to sinks */
    uint64_t enq_ns;          /* when it was accepted (monotonic) */
    uint64_t deadline_ns;     /* answer DEADLINE_EXCEEDED after this; 0 = none */
    uint64_t due_ns;          /* retry list: not before this; != 0 once it
                               * has been on the retry list */
    uint32_t attempt;         /* sink calls so far */
    uint32_t cap;             /* largest batch it may join (poison split); 0 = any */
    uint32_t ok_mark;         /* its key's ok_calls at its last whole-batch
                               * failure (poison split, call.c) */
    uint8_t batch_fails;      /* whole-batch failures it was part of */
    uint8_t reply_type;       /* message type to reply with */
    uint8_t tlen;             /* opts.trace bytes (stored NUL-terminated
                               * after the payload), 0 = none */
    uint16_t lane;            /* its lane while queued: opts.priority
                               * (0..255), or BD_LANE_TOP once aged or back
                               * from a retry */
    struct bd_spool_seg *seg; /* durable: the spool segment holding its
                               * record (borrowed), else NULL */
    uint64_t spool_id;        /* durable: its id in the spool */
    size_t len;               /* payload bytes */
    uint8_t data[];
};

struct bd_key {
    struct bd_key *hnext;     /* hash chain */
    struct bd_key *dnext;     /* on the server's dirty list */
    struct bd_key *wnext;     /* on the server's wait list (a key may be on both) */
    struct bd_key *inext;     /* on the server's idle list, oldest first */
    struct bd_key *iprev;
    uint64_t idle_since_ns;   /* when it went idle */
    struct bd_core *core;    /* owner, for the timer callback */
    unsigned flags;           /* BD_KEY_* */
    const struct bd_route_conf *route; /* in gen->cfg */
    struct bd_sink *sink;     /* gen->sinks[route->sink_idx] */
    struct bd_gen *gen;       /* the generation its route is from: holds
                               * a reference (gen.h) */
    struct bd_series *rs;     /* its route's counters (series.h) */
    struct bd_item *head;     /* queued, oldest first */
    struct bd_item *tail;
    struct bd_lanes *lanes;   /* NULL until a priority other than 0 came */
    uint64_t nqueued;         /* items in the queue */
    uint64_t qbytes;          /* payload bytes in the queue */
    struct bd_item *retry;    /* waiting for their backoff, in the order
                               * they failed (a failed batch's items stay
                               * together and in their batch order) */
    struct bd_item *rtail;    /* last of them, NULL when none */
    uint64_t nretry;          /* items on the retry list */
    uint64_t rbytes;          /* their payload bytes */
    uint32_t ok_calls;        /* calls the sink answered item by item
                               * (wraps): is the backend up? (call.c) */
    uint64_t min_deadline_ns; /* earliest deadline in the queue (may be stale-early) */
    uint32_t inflight;        /* sink calls running for this key */
    struct event *timer;      /* delay/deadline/retry timer, created on demand */
    uint64_t timer_at_ns;     /* when the armed timer fires, 0 = unarmed */
    uint64_t inflight_items;  /* items inside its running sink calls */
    uint64_t batches;         /* sink calls made (stats) */
    uint64_t items;           /* items sent to the sink (stats) */
    uint64_t rejects[BD_REJECT_COUNT]; /* items refused at admission, by
                               * reason (stats) */
    uint32_t max_batch;       /* largest batch seen (stats) */
    uint64_t coalesced;       /* items that joined another (stats) */
    uint32_t hash;
    size_t len;               /* key length */
    char name[];              /* NUL-terminated key */
};

#define BD_KEY_DIRTY 0x1u     /* on the dirty list: re-check at end of pass */
#define BD_KEY_WAITING 0x2u   /* on the wait list: needs a global slot */
#define BD_KEY_IDLE 0x4u      /* nothing queued or running: on the idle list */
#define BD_KEY_FULL 0x8u      /* an item was refused at the key's own bound
                               * since its last batch left: the queue cannot
                               * grow, so its batch is ready (key_max_* may be
                               * below max_items/max_bytes) */

/* An idle key stays in the table this long, so a key that comes back at
 * once (its next batch, usually) costs no malloc and no route match; at
 * most BD_KEY_IDLE_MAX idle keys wait, the oldest are freed first. */
#define BD_KEY_IDLE_NS 1000000000ull
#define BD_KEY_IDLE_MAX 4096

/* The key table's smallest size (buckets, a power of two). */
#define BD_KEYTAB_MIN 64

/* A batch leaves this long before its tightest deadline, so that the
 * sink gets a chance to finish in time. */
#define BD_DEADLINE_MARGIN_NS 1000000ull

/* Why an item was refused, for the reply and the log line. */
struct bd_admit {
    int status;               /* BATCHD_OK or the reply status */
    int reason;               /* enum bd_reject when refused at a bound */
    struct bd_waiter *ack;    /* in: a SEND's client, for an ACCEPTED held
                               * until the spool sync (durable routes);
                               * NULL = nobody to tell */
    int deferred;             /* out: 1 when that ACCEPTED is held (the
                               * caller must not answer it) */
    char msg[160];            /* reason when status != OK */
};

/*
 * Accept one item (key already validated by the decoder): its payload is
 * copied, and its reply will carry in->type and in->req_id. w is the
 * waiter for a LOAD (the item takes a reference), NULL for SEND. opts
 * (may be NULL) may carry a deadline (never longer than the route's). On
 * refusal sets a->status/msg and nothing is queued.
 */
void bd_batch_admit(struct bd_core *core, const struct bd_msg_item *in,
                    const struct bd_opts *opts, struct bd_waiter *w,
                    struct bd_admit *a);

/*
 * Queue an item recovered from the spool (durable.c): no bounds are
 * checked (it was accepted before the restart). With seg its record
 * stays where it is (an adopted segment); without, it is spooled again
 * under spool_id (0: a new id). Returns 0, or -1 with a set (no route,
 * no memory, no spool space).
 */
struct bd_spool_seg;
int bd_batch_restore(struct bd_core *core, const char *key, size_t key_len,
                     const void *payload, size_t len, uint64_t spool_id,
                     struct bd_spool_seg *seg, struct bd_admit *a);

/* End of a loop pass: give every key touched in this pass its chance
 * to dispatch. */
void bd_batch_run_dirty(struct bd_core *core);

/* Re-check k at the end of this pass (after a completion, a cancel). */
void bd_batch_mark_dirty(struct bd_core *core, struct bd_key *k);

/* Put a retried item at the end of k's retry list until due_ns. Takes
 * it. The items of one failed batch are put there one after the other,
 * in batch order and with the same due_ns, so that they come back
 * together, in their order, at the head of the queue. */
void bd_batch_retry_later(struct bd_core *core, struct bd_key *k,
                          struct bd_item *it, uint64_t due_ns);

/* Put an item that never reached its sink back at the front of k's
 * queue. Takes it. */
void bd_batch_requeue_front(struct bd_core *core, struct bd_key *k,
                            struct bd_item *it);

/* The traceparent of an item (NUL-terminated), or NULL. */
static inline const char *bd_item_trace(const struct bd_item *it)
{
    return it->tlen ? (const char *)it->data + it->len : NULL;
}

/* Bytes after the struct: payload, and the trace with its NUL. */
static inline size_t bd_item_room(const struct bd_item *it)
{
    return it->len + (it->tlen ? (size_t)it->tlen + 1 : 0);
}

/* A new item with room for len bytes after the struct (free with
 * bd_item_free), or NULL. Small items come from a free list: loop
 * thread only. */
struct bd_item *bd_item_new(size_t len);

/* A coalesced item (it->dedup): drop the recipients whose client is
 * gone (each counted cancelled). Returns 1, with it freed, when nobody
 * is left: no LOAD waiting, no SEND holding it. */
int bd_item_prune_gone(struct bd_core *core, struct bd_item *it);

/* bd_item_cancel_if_gone's slow path: its client is gone; count it
 * cancelled and free it. Returns 1. */
int bd_item_cancel_gone(struct bd_core *core, struct bd_item *it);

/* A plain LOAD whose client is gone is cancelled (counted, freed)
 * instead of reaching a sink or a retry: 1 when it took it. Inline:
 * the dispatch loop asks this once per item. */
static inline int bd_item_cancel_if_gone(struct bd_core *core,
                                         struct bd_item *it)
{
    if (__builtin_expect(it->waiter == NULL || !bd_waiter_gone(it->waiter), 1))
        return 0;
    return bd_item_cancel_gone(core, it);
}

#define BD_ITEM_SMALL 192         /* payload room of a pooled item */
#define BD_ITEM_POOL_MAX 4096     /* pooled items kept at most */

/* The free list of small items (batch.c's; loop thread only). In the
 * header so that bd_item_free's usual case inlines where items are
 * answered (call.c), once per item. */
struct bd_item_pool {
    struct bd_item *head;     /* pooled items linked by ->next; owned */
    size_t n;                 /* how many */
};
extern struct bd_item_pool bd_item_pool;

/* bd_item_free for every other case: a SEND, a coalesced item, a large
 * item or a full pool. */
void bd_item_free_slow(struct bd_item *it);

/* Free an item: drops its waiter reference (or its coalescing entry). */
static inline void bd_item_free(struct bd_item *it)
{
    if (__builtin_expect(it->waiter != NULL && it->len <= BD_ITEM_SMALL &&
                         bd_item_pool.n < BD_ITEM_POOL_MAX, 1)) {
        bd_waiter_release(it->waiter);
        it->next = bd_item_pool.head;
        bd_item_pool.head = it;
        bd_item_pool.n++;
        return;
    }
    bd_item_free_slow(it);
}

/* Free keys idle for longer than BD_KEY_IDLE_NS (the server's sweep). */
void bd_batch_sweep_idle(struct bd_core *core);

/* Shutdown/drain: dispatch every queued item (and every item waiting
 * for a retry) regardless of policy, as slots allow. */
void bd_batch_flush_all(struct bd_core *core);

/* Answer every queued and retry-waiting item with status (shutdown
 * grace expired). */
void bd_batch_fail_all_queued(struct bd_core *core, int status,
                              const char *msg);

/* A waiter is gone (w->gone set): drop its queued LOAD items, unsent
 * (counted as cancelled); from a coalesced item only the recipients
 * that are gone leave, the item when none is left. */
void bd_batch_cancel_waiter(struct bd_core *core, const struct bd_waiter *w);

/* Free every key and item (exit). */
void bd_batch_destroy_all(struct bd_core *core);

/* A reload put core->gen in place: move every key to the route its
 * name matches now (queued and retry-waiting items go with it; calls
 * in flight finish in their old sink). Idle keys are freed; a busy key
 * that no route matches any more keeps its old route until it is idle. */
void bd_batch_reroute(struct bd_core *core);

/* Visit each live key (stats). */
void bd_batch_foreach_key(struct bd_core *core,
                          void (*fn)(const struct bd_key *k, void *arg),
                          void *arg);

/* Fire, by hand, every key timer due at core->clock.now_ns: for a
 * driver without a running loop (the unit tests, check_core.c, with a
 * fake clock). Run bd_batch_run_dirty after it. */
void bd_batch_timers_due(struct bd_core *core);

/* The key table's hash of a key under core->hash_key; its bucket is the
 * low bits. Exposed for tests (check_hash.c). */
uint32_t bd_batch_key_hash(const struct bd_core *core, const char *name,
                           size_t len);

/*
 * The pure close rule, exposed for unit tests: may a batch leave the
 * queue of a key now? A batch is full at max_items/max_bytes, and also
 * when the queue is at the route's key_max_items/key_max_bytes, which
 * may be lower (no more items could join: waiting would never end).
 * nqueued/qbytes describe the queue, first_ns the
 * enqueue time of its oldest item, tight_ns the earliest deadline in it
 * (0 = none), inflight the key's running calls (balanced waits for
 * min_items only while none of the route's key_concurrency slots is free).
 */
int bd_batch_ready(const struct bd_route_conf *r, uint64_t nqueued,
                   uint64_t qbytes, uint64_t first_ns, uint64_t tight_ns,
                   uint64_t now_ns, uint32_t inflight, int flushing);

/* May an item of next_len bytes join a batch that already holds count
 * items and bytes? A batch stops at max_items, and max_bytes is a hard
 * ceiling: the item that would overflow starts the next batch (the
 * first item always fits; admission refuses items over max_bytes). */
int bd_batch_fits(const struct bd_route_conf *r, size_t count, uint64_t bytes,
                  size_t next_len);

/* The nominal backoff before attempt number attempt+1 (attempt >= 1):
 * retry_base_ms doubled per attempt, capped at retry_cap_ms; the wait
 * actually used is drawn in [nominal/2, nominal] with rnd in [0, 1). */
uint64_t bd_batch_backoff_ns(const struct bd_route_conf *r, uint32_t attempt,
                             double rnd);

#endif
