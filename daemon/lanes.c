/*
 * lanes.c - priority lanes of one key's queue (see lanes.h).
 *
 * The queue is one singly linked list in dispatch order; lanes are
 * contiguous runs of it, from BD_LANE_TOP down to 0. A lane's head is
 * the item after the tail of the nearest non-empty lane above it (or the
 * queue's head), so only tails are kept. Few lanes are ever in use at
 * once: the walks below visit non-empty lanes only, through the bitmap.
 */
#include <string.h>

#include "alloc.h"
#include "lanes.h"

static void bit_set(struct bd_lanes *L, unsigned l)
{
    L->bits[l / 64] |= 1ull << (l % 64);
}

static void bit_clear(struct bd_lanes *L, unsigned l)
{
    L->bits[l / 64] &= ~(1ull << (l % 64));
}

/* The nearest non-empty lane above l, or -1. */
static int lane_above(const struct bd_lanes *L, unsigned l)
{
    for (unsigned w = (l + 1) / 64; w < sizeof(L->bits) / 8; w++) {
        uint64_t m = L->bits[w];

        if (w == (l + 1) / 64)
            m &= ~0ull << ((l + 1) % 64);
        if (m)
            return (int)(w * 64 + (unsigned)__builtin_ctzll(m));
    }
    return -1;
}

/* The nearest non-empty lane below l, or -1. */
static int lane_below(const struct bd_lanes *L, unsigned l)
{
    for (int w = (int)(l / 64); l > 0 && w >= 0; w--) {
        uint64_t m = L->bits[w];

        if ((unsigned)w == l / 64)
            m &= (l % 64) ? ~0ull >> (64 - l % 64) : 0;
        if (m)
            return w * 64 + 63 - __builtin_clzll(m);
    }
    return -1;
}

/* The first item of non-empty lane l. */
static struct bd_item *lane_head(const struct bd_key *k, unsigned l)
{
    int q = lane_above(k->lanes, l);

    return q < 0 ? k->head : k->lanes->tail[q]->next;
}

static void count_in(struct bd_lanes *L, struct bd_item *it)
{
    if (L->n[it->lane]++ == 0)
        bit_set(L, it->lane);
}

static void count_out(struct bd_lanes *L, unsigned l)
{
    if (--L->n[l] == 0) {
        bit_clear(L, l);
        L->tail[l] = NULL;
    }
}

int bd_lanes_make(struct bd_key *k)
{
    struct bd_lanes *L = bd_calloc(1, sizeof(*L));

    if (L == NULL)
        return -1;
    /* The list is already in lane order: retried items (BD_LANE_TOP) at
     * the front, then lane 0. */
    for (struct bd_item *it = k->head; it; it = it->next) {
        count_in(L, it);
        L->tail[it->lane] = it;
    }
    k->lanes = L;
    return 0;
}

void bd_lanes_free(struct bd_key *k)
{
    bd_free(k->lanes);
    k->lanes = NULL;
}

void bd_lanes_insert(struct bd_key *k, struct bd_item *it)
{
    struct bd_lanes *L = k->lanes;
    struct bd_item *after = L->tail[it->lane];

    if (after == NULL) {
        int q = lane_above(L, it->lane);

        after = q < 0 ? NULL : L->tail[q];
    }
    if (after == NULL) {
        it->next = k->head;
        k->head = it;
    } else {
        it->next = after->next;
        after->next = it;
    }
    if (it->next == NULL)
        k->tail = it;
    L->tail[it->lane] = it;
    count_in(L, it);
}

void bd_lanes_unlinked(struct bd_key *k, const struct bd_item *it,
                       unsigned lane, const struct bd_item *prev)
{
    struct bd_lanes *L = k->lanes;

    if (L->tail[lane] == it)
        L->tail[lane] = prev != NULL && prev->lane == lane ?
                        (struct bd_item *)prev : NULL;
    count_out(L, lane);
}

void bd_lanes_cut(struct bd_key *k, const struct bd_item *first)
{
    /* A prefix: a lane whose tail leaves is empty now. */
    for (; first != NULL; first = first->next)
        count_out(k->lanes, first->lane);
}

void bd_lanes_pushed_front(struct bd_key *k, struct bd_item *last, uint64_t n)
{
    struct bd_lanes *L = k->lanes;

    if (L->tail[BD_LANE_TOP] == NULL)
        L->tail[BD_LANE_TOP] = last;
    if (L->n[BD_LANE_TOP] == 0)
        bit_set(L, BD_LANE_TOP);
    L->n[BD_LANE_TOP] += (uint32_t)n;
}

/* The lane (below BD_LANE_TOP) whose head is the oldest item queued at
 * or before aged_ns, or -1. */
static int oldest_aged(const struct bd_key *k, uint64_t aged_ns)
{
    const struct bd_lanes *L = k->lanes;
    uint64_t best_ns = 0;
    int best = -1;

    for (int l = lane_below(L, BD_LANE_TOP); l >= 0;
         l = lane_below(L, (unsigned)l)) {
        const struct bd_item *h = lane_head(k, (unsigned)l);

        if (h->enq_ns <= aged_ns && (best < 0 || h->enq_ns < best_ns)) {
            best = l;
            best_ns = h->enq_ns;
        }
    }
    return best;
}

void bd_lanes_promote(struct bd_key *k, uint64_t aged_ns)
{
    struct bd_lanes *L = k->lanes;
    int l;

    while ((l = oldest_aged(k, aged_ns)) >= 0) {
        int q = lane_above(L, (unsigned)l);
        struct bd_item *prev = q < 0 ? NULL : L->tail[q];
        struct bd_item *it = prev ? prev->next : k->head;

        /* Unlink the lane's head, then put it at the end of the top lane. */
        if (prev)
            prev->next = it->next;
        else
            k->head = it->next;
        if (k->tail == it)
            k->tail = prev;
        bd_lanes_unlinked(k, it, it->lane, prev);
        it->lane = BD_LANE_TOP;
        bd_lanes_insert(k, it);
    }
}

uint64_t bd_lanes_first_ns(const struct bd_key *k)
{
    const struct bd_lanes *L = k->lanes;
    uint64_t first = k->head->enq_ns;

    for (int l = lane_below(L, BD_NLANES); l >= 0;
         l = lane_below(L, (unsigned)l)) {
        const struct bd_item *h = lane_head(k, (unsigned)l);

        if (h->enq_ns < first)
            first = h->enq_ns;
    }
    return first;
}
