/*
 * pending.h - libbatchd's table of requests waiting for a reply, keyed
 * by request id (ids are handed out in sequence from 1; 0 is never an
 * id). Every operation is O(1) expected at any number in flight: this
 * is what lets a client keep 8192 requests in flight as cheaply as 64.
 *
 * Not thread-safe (like the client that owns it). The table owns its
 * slot array; the cb/arg pairs it stores are the caller's.
 */
#ifndef BD_PENDING_H
#define BD_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include "batchd.h"

/* One request waiting for its reply. */
struct bd_pending {
    uint64_t id;              /* request id, 0 = free slot */
    batchd_reply_cb cb;       /* may be NULL: nobody wants the reply */
    void *arg;                /* handed back to cb */
};

struct bd_pending_table {
    struct bd_pending *slots; /* open addressing, linear probing; owned,
                                 NULL while the table is empty and small */
    size_t mask;              /* number of slots - 1 (a power of 2 - 1) */
    unsigned bits;            /* log2 of the number of slots */
    size_t n;                 /* entries in use */
    size_t scan;              /* where bd_pending_pop looks first */
    uint64_t probes;          /* slots visited by put/take so far: lets a
                                 test check the cost without a clock */
};

/* An empty table (no allocation). */
void bd_pending_init(struct bd_pending_table *t);

/* Free the slots. Entries still in it are forgotten (take them first). */
void bd_pending_destroy(struct bd_pending_table *t);

/* Make room for n more entries, so that the next n puts cannot fail.
 * Returns 0, or -1 when memory is short (the table is unchanged). */
int bd_pending_reserve(struct bd_pending_table *t, size_t n);

/* Add id (not 0, not in the table) after a reserve that covers it. */
void bd_pending_put(struct bd_pending_table *t, uint64_t id,
                    batchd_reply_cb cb, void *arg);

/* Remove id. Returns 1 with *out filled, 0 when id is not in the table. */
int bd_pending_take(struct bd_pending_table *t, uint64_t id,
                    struct bd_pending *out);

/* Remove any one entry (for failing everything). Returns 1 with *out
 * filled, 0 when the table is empty. A whole drain is O(slots). */
int bd_pending_pop(struct bd_pending_table *t, struct bd_pending *out);

/* Give back a burst-sized slot array once the table is empty; the next
 * reserve starts small again. */
void bd_pending_shrink(struct bd_pending_table *t);

#endif
