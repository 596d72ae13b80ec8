/*
 * hist.h - a fixed-size log-linear latency histogram, shared by
 * `batchctl bench` and bench/loadgen so both report the same
 * percentiles the same way. No allocation: an array of counters.
 */
#ifndef BD_HIST_H
#define BD_HIST_H

#include <stdint.h>

/* Values below BD_HIST_SUB are exact; above, each power of two is cut
 * into BD_HIST_SUB equal buckets, so a bucket is within 1/BD_HIST_SUB
 * (about 3 %) of its values. */
#define BD_HIST_SUB_BITS 5
#define BD_HIST_SUB (1u << BD_HIST_SUB_BITS)
#define BD_HIST_BUCKETS ((64 - BD_HIST_SUB_BITS + 1) * BD_HIST_SUB)

/* Power-of-two buckets for the daemon's stats: bucket i holds values
 * below 2^i (bucket 0 holds 0), the last bucket everything above;
 * nbuckets <= 63. */
static inline unsigned bd_hist_pow2_bucket(uint64_t v, unsigned nbuckets)
{
    /* The bit length of v as 63 - clz(2v + 1): no branch for v == 0 on
     * this per-item path. v is first held to 2^62 (bit length 63, the
     * last bucket as nbuckets <= 63), so 2v + 1 cannot overflow. */
    unsigned i;

    if (v > (1ull << 62))
        v = 1ull << 62;
    i = 63u - (unsigned)__builtin_clzll(v << 1 | 1);
    return i < nbuckets ? i : nbuckets - 1;
}

/* The bucket of value v. */
unsigned bd_hist_index(uint64_t v);

/* The middle of bucket i. */
uint64_t bd_hist_value(unsigned i);

/* The value at quantile q (0..1) of the n values counted in hist
 * (BD_HIST_BUCKETS counters); 0 when n is 0. */
uint64_t bd_hist_quantile(const uint64_t *hist, uint64_t n, double q);

#endif
