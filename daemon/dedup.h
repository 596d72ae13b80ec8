/*
 * dedup.h - coalescing (core layer; DESIGN section 3, PROTOCOL.md
 * opts.dedup_id): items of one key with the same dedup_id share one
 * item, and its one result goes to every recipient.
 *
 * An item admitted with a dedup_id gets a record (it->dedup) that lists
 * its recipients: every LOAD that waits for it (a waiter reference each)
 * and every SEND that holds it (no waiter); it->waiter stays NULL. The
 * record is in the core's dedup table (keyed SipHash of the id, so
 * clients cannot pick colliding ids) while the item may be joined: while
 * it is queued, and while its call runs when the route has
 * coalesce_inflight = on. A retried item is not joined again.
 *
 * Items without a dedup_id never touch any of this (it->dedup NULL).
 */
#ifndef BD_DEDUP_H
#define BD_DEDUP_H

#include <stddef.h>
#include <stdint.h>

struct bd_core;
struct bd_key;
struct bd_item;
struct bd_waiter;

/* One recipient of a coalesced item. */
struct bd_rcpt {
    struct bd_rcpt *next;
    struct bd_waiter *waiter; /* a LOAD's (holds a reference); NULL: a SEND */
    uint64_t req_id;          /* its client's id */
    uint64_t deadline_ns;     /* its own deadline, 0 = none */
    uint8_t type;             /* reply message type */
};

struct bd_dedup {
    struct bd_dedup *hnext;   /* dedup table chain */
    struct bd_core *core;     /* owner of the table */
    struct bd_key *key;       /* the item's key */
    struct bd_item *item;     /* the shared item */
    struct bd_rcpt *rcpts;    /* everyone waiting or holding, newest first */
    uint32_t nload;           /* LOAD recipients */
    uint32_t nsend;           /* SEND recipients */
    uint32_t hash;            /* of key and id under core->hash_key */
    uint8_t linked;           /* in the table: may be joined */
    uint8_t inflight;         /* its item is inside a sink call */
    size_t len;               /* id bytes */
    uint8_t id[];
};

/* The joinable record for (k, id), or NULL. */
struct bd_dedup *bd_dedup_find(struct bd_core *core, const struct bd_key *k,
                               const void *id, size_t len);

/* Give it a record with id and its first recipient, and put it in the
 * table. Returns 0, or -1 when memory is short (it unchanged). */
int bd_dedup_attach(struct bd_core *core, struct bd_key *k, struct bd_item *it,
                    const void *id, size_t len, struct bd_waiter *w,
                    uint64_t req_id, int type, uint64_t deadline_ns);

/* Add a recipient to d (w NULL for a SEND). Returns 0, or -1 when
 * memory is short. */
int bd_dedup_join(struct bd_dedup *d, struct bd_waiter *w, uint64_t req_id,
                  int type, uint64_t deadline_ns);

/* Take d out of the table: nothing joins it any more. */
void bd_dedup_unlink(struct bd_dedup *d);

/* Drop recipient *pp (a LOAD whose client left, or one answered alone):
 * releases its waiter. */
void bd_dedup_drop(struct bd_dedup *d, struct bd_rcpt **pp);

/* The earliest recipient deadline, 0 = none (the key timer's). */
uint64_t bd_dedup_min_deadline(const struct bd_dedup *d);

/* The item's deadline: the latest of its recipients', 0 when any has
 * none. */
uint64_t bd_dedup_max_deadline(const struct bd_dedup *d);

/* Free d (with its item): releases every recipient, leaves the table. */
void bd_dedup_free(struct bd_dedup *d);

/* Free the table (exit; the records went with their items). */
void bd_dedup_destroy_table(struct bd_core *core);

#endif
