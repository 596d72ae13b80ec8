/*
 * lanes.h - priority lanes of one key's queue (core layer; the layout is
 * struct bd_lanes in batch.h, DESIGN section 3).
 *
 * The rule (PROTOCOL.md, opts.priority): a batch takes the highest lanes
 * first and each lane in its order. An item that has been queued for
 * the route's priority_aging_ms or longer counts as top priority: when
 * its key next dispatches, it moves to lane BD_LANE_TOP, behind the
 * items already there; items that age at the same pass move oldest
 * first. Items back from a retry join BD_LANE_TOP at its front (they
 * are the oldest work). Within a lane the order never changes.
 *
 * Only batch.c calls these, on keys whose k->lanes is set, and it keeps
 * k->head/k->tail and the queue totals itself.
 */
#ifndef BD_LANES_H
#define BD_LANES_H

#include <stdint.h>

#include "batch.h"

/* Give k its lanes, counting the items already queued (their it->lane).
 * Returns 0, or -1 when memory is short (k unchanged). */
int bd_lanes_make(struct bd_key *k);

/* Free k's lanes (the key is being freed). */
void bd_lanes_free(struct bd_key *k);

/* Link it (it->lane set) into k's queue at the end of its lane. */
void bd_lanes_insert(struct bd_key *k, struct bd_item *it);

/* it, of lane lane, was unlinked from k's queue (it may be freed
 * already: only its address is compared); prev is the queued item that now
 * precedes where it was (NULL when it was at the head). */
void bd_lanes_unlinked(struct bd_key *k, const struct bd_item *it,
                       unsigned lane, const struct bd_item *prev);

/* The list at first was cut from the head of k's queue. */
void bd_lanes_cut(struct bd_key *k, const struct bd_item *first);

/* Items first..last (n of them, in lane BD_LANE_TOP) were put at the
 * head of k's queue. */
void bd_lanes_pushed_front(struct bd_key *k, struct bd_item *last, uint64_t n);

/* Move every item queued since aged_ns or earlier to BD_LANE_TOP, oldest
 * first (see above). */
void bd_lanes_promote(struct bd_key *k, uint64_t aged_ns);

/* The enqueue time of the oldest queued item (its lane's head). */
uint64_t bd_lanes_first_ns(const struct bd_key *k);

#endif
