/*
 * hist.c - log-linear latency histogram (see hist.h).
 */
#include "hist.h"

unsigned bd_hist_index(uint64_t v)
{
    unsigned shift;

    if (v < BD_HIST_SUB)
        return (unsigned)v;
    shift = (unsigned)(63 - __builtin_clzll(v)) - BD_HIST_SUB_BITS;
    return (shift + 1) * BD_HIST_SUB + (unsigned)((v >> shift) - BD_HIST_SUB);
}

uint64_t bd_hist_value(unsigned i)
{
    unsigned block = i / BD_HIST_SUB, off = i % BD_HIST_SUB;

    if (block == 0)
        return off;
    return ((uint64_t)(BD_HIST_SUB + off) << (block - 1)) +
           ((1ull << (block - 1)) >> 1);
}

uint64_t bd_hist_quantile(const uint64_t *hist, uint64_t n, double q)
{
    uint64_t want = (uint64_t)(q * (double)n + 0.999999), seen = 0;

    if (n == 0)
        return 0;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < BD_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= want)
            return bd_hist_value(i);
    }
    return 0;
}
