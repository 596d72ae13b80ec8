/*
 * waiter.h - who is waiting for an item's reply, as the batching core
 * sees it (core layer; DESIGN section 10).
 *
 * The core knows items and waiters, never connections: the I/O layer
 * embeds a struct bd_waiter in each connection and implements its ops.
 * A waiter is reference counted (its owner holds one reference, each
 * queued or running LOAD item one more), so a late reply finds a waiter
 * that is gone and is dropped instead of touching freed memory.
 *
 * The per-item operations are inline and read plain fields: holding,
 * releasing and asking "gone?" cost what bd_conn_ref/unref/is_closed
 * cost before the core was split from the connections.
 */
#ifndef BD_WAITER_H
#define BD_WAITER_H

#include <stddef.h>
#include <stdint.h>

struct bd_waiter;

struct bd_waiter_ops {
    /* Queue one reply frame for req_id (type is the reply's message
     * type). Dropped silently when the waiter can no longer write.
     * body may be NULL (nil). */
    void (*deliver)(struct bd_waiter *w, int type, uint64_t req_id,
                    int status, const void *body, size_t len, int is_str);
    /* bd_waiter_release's slow path: refs is about to drop to 0, or to 1
     * on a waiter with BD_WAITER_NOTIFY. Decrements refs itself (and may
     * free the waiter). */
    void (*release_slow)(struct bd_waiter *w);
};

struct bd_waiter {
    const struct bd_waiter_ops *ops; /* the owner's implementation */
    uint32_t refs;            /* 1 for the owner, +1 per LOAD item */
    uint8_t gone;             /* its client left: its queued LOADs are
                               * cancelled and its replies dropped */
    uint8_t notify;           /* the owner wants release_slow when only
                               * its own reference is left (a half-closed
                               * client closes after its last answer) */
};

static inline void bd_waiter_hold(struct bd_waiter *w)
{
    w->refs++;
}

static inline void bd_waiter_release(struct bd_waiter *w)
{
    if (w->refs > 2 || (w->refs == 2 && !w->notify))
        w->refs--;
    else
        w->ops->release_slow(w);
}

static inline int bd_waiter_gone(const struct bd_waiter *w)
{
    return w->gone;
}

static inline void bd_waiter_deliver(struct bd_waiter *w, int type,
                                     uint64_t req_id, int status,
                                     const void *body, size_t len, int is_str)
{
    w->ops->deliver(w, type, req_id, status, body, len, is_str);
}

#endif
