/*
 * pending.c - the in-flight request table of libbatchd (see pending.h).
 *
 * Open addressing with linear probing, backward-shift deletion (no
 * tombstones) and a load factor of at most 1/2.
 *
 * Where an id lives matters. Ids are handed out in sequence, and with
 * home = id & mask the requests in flight filled consecutive slots: one
 * cluster as long as the pipeline, which backward-shift deletion walked
 * to its end on every reply, so a reply cost O(depth) and a deep
 * pipeline went quadratic (125k items/s at 8192 in flight against 1.3M
 * at 64). Fibonacci hashing (the top bits of id * 2^64/phi) spreads any
 * run of sequential ids almost evenly over the table (the three-gap
 * theorem): consecutive ids land about size/phi slots apart, clusters
 * stay a few slots long at any depth and whatever the order of replies,
 * and a put or a take is O(1).
 */
#include <string.h>

#include "alloc.h"
#include "pending.h"

#define TABLE_MIN 64              /* first slot count (a power of 2) */
#define TABLE_KEEP 65536          /* a bigger empty array is given back */
#define FIB_MULT 0x9e3779b97f4a7c15ull /* 2^64 / golden ratio, odd */

static inline size_t home_of(uint64_t id, unsigned bits)
{
    return (size_t)((id * FIB_MULT) >> (64 - bits));
}

void bd_pending_init(struct bd_pending_table *t)
{
    memset(t, 0, sizeof(*t));
}

void bd_pending_destroy(struct bd_pending_table *t)
{
    bd_free(t->slots);
    bd_pending_init(t);
}

static int table_resize(struct bd_pending_table *t, size_t size)
{
    struct bd_pending *old = t->slots, *nt;
    size_t oldsize = old ? t->mask + 1 : 0;
    unsigned bits = 0;

    while (((size_t)1 << bits) < size)
        bits++;
    nt = bd_calloc(size, sizeof(*nt));
    if (nt == NULL)
        return -1;
    for (size_t i = 0; i < oldsize; i++) {
        size_t j;

        if (old[i].id == 0)
            continue;
        for (j = home_of(old[i].id, bits); nt[j].id != 0; j = (j + 1) & (size - 1))
            ;
        nt[j] = old[i];
    }
    bd_free(old);
    t->slots = nt;
    t->mask = size - 1;
    t->bits = bits;
    return 0;
}

int bd_pending_reserve(struct bd_pending_table *t, size_t n)
{
    size_t size = t->slots ? t->mask + 1 : TABLE_MIN;

    if (n > SIZE_MAX / 4 - t->n)
        return -1;
    while (size < 2 * (t->n + n))
        size *= 2;
    if (t->slots != NULL && size == t->mask + 1)
        return 0;
    return table_resize(t, size);
}

void bd_pending_put(struct bd_pending_table *t, uint64_t id,
                    batchd_reply_cb cb, void *arg)
{
    size_t i = home_of(id, t->bits);

    t->probes++;
    while (t->slots[i].id != 0) {
        i = (i + 1) & t->mask;
        t->probes++;
    }
    t->slots[i].id = id;
    t->slots[i].cb = cb;
    t->slots[i].arg = arg;
    t->n++;
}

/* Close the gap at slot i: pull back every later entry of the cluster
 * whose home is not in (i, j], so that probing still finds it. */
static void delete_at(struct bd_pending_table *t, size_t i)
{
    size_t j = i;

    for (;;) {
        size_t home;

        j = (j + 1) & t->mask;
        t->probes++;
        if (t->slots[j].id == 0)
            break;
        home = home_of(t->slots[j].id, t->bits);
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i].id = 0;
    t->n--;
}

int bd_pending_take(struct bd_pending_table *t, uint64_t id,
                    struct bd_pending *out)
{
    size_t i;

    if (t->slots == NULL || id == 0)
        return 0;
    for (i = home_of(id, t->bits); t->slots[i].id != 0; i = (i + 1) & t->mask) {
        t->probes++;
        if (t->slots[i].id == id) {
            *out = t->slots[i];
            delete_at(t, i);
            return 1;
        }
    }
    t->probes++;
    return 0;
}

int bd_pending_pop(struct bd_pending_table *t, struct bd_pending *out)
{
    size_t i;

    if (t->n == 0)
        return 0;
    /* The scan goes on from where the last pop found an entry, so a
     * whole drain walks the slots about once; a backward shift can only
     * move an entry onto the slot just emptied or further along. */
    for (i = t->scan & t->mask; t->slots[i].id == 0; i = (i + 1) & t->mask)
        ;
    t->scan = i;
    *out = t->slots[i];
    delete_at(t, i);
    return 1;
}

void bd_pending_shrink(struct bd_pending_table *t)
{
    if (t->n == 0 && t->slots != NULL && t->mask + 1 > TABLE_KEEP)
        bd_pending_destroy(t);
}
