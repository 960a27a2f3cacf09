/*
 * hist.c - the log-bucket histogram of hist.h.  A value v >= LOAD_HIST_SUB
 * with its highest set bit at position b lands in octave b - SUB_BITS + 1,
 * sub-bucket (v >> (b - SUB_BITS)) - SUB: the SUB_BITS bits after the
 * leading one.  Values under LOAD_HIST_SUB are octave 0, exact.  So each
 * bucket spans at most 1/SUB of its values, which bounds the error.
 */
#include "hist.h"

#include <assert.h>
#include <string.h>

static int bucket_of(uint64_t v)
{
    if (v < LOAD_HIST_SUB)
        return (int)v;
    int b = 63 - __builtin_clzll(v);
    int octave = b - LOAD_HIST_SUB_BITS + 1;
    if (octave >= LOAD_HIST_OCTAVES)
        return LOAD_HIST_OCTAVES * LOAD_HIST_SUB - 1;
    int sub = (int)(v >> (b - LOAD_HIST_SUB_BITS)) - LOAD_HIST_SUB;
    assert(sub >= 0 && sub < LOAD_HIST_SUB);
    return octave * LOAD_HIST_SUB + sub;
}

/* The largest value that lands in bucket i. */
static int64_t upper_edge(int i)
{
    int octave = i / LOAD_HIST_SUB, sub = i % LOAD_HIST_SUB;
    if (octave == 0)
        return sub;
    int shift = octave - 1;
    return (int64_t)((((uint64_t)(LOAD_HIST_SUB + sub + 1)) << shift) - 1);
}

void load_hist_init(load_hist *h)
{
    memset(h, 0, sizeof *h);
}

void load_hist_record(load_hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    if (h->count == 0 || ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->count++;
    h->buckets[bucket_of((uint64_t)ns)]++;
}

int64_t load_hist_quantile(const load_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* the rank of the value at q, 1-based: the ceiling, at least 1 */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (int i = 0; i < LOAD_HIST_OCTAVES * LOAD_HIST_SUB; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            int64_t v = upper_edge(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

void load_hist_merge(load_hist *dst, const load_hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    for (int i = 0; i < LOAD_HIST_OCTAVES * LOAD_HIST_SUB; i++)
        dst->buckets[i] += src->buckets[i];
}
