/*
 * hist.h - a latency histogram with logarithmic buckets, in the manner of
 * HdrHistogram: each power of two is cut into LOAD_HIST_SUB equal
 * sub-buckets, so a percentile read back is within 1/LOAD_HIST_SUB (1.6%)
 * of the value recorded, over 1 ns to 2^40 ns (18 minutes) in a fixed
 * array; recording is a few shifts and an increment, never an allocation.
 *
 * Not thread-safe: the caller serialises (shop-load holds a lock).
 */
#ifndef SHOP_LOAD_HIST_H
#define SHOP_LOAD_HIST_H

#include <stdint.h>

#define LOAD_HIST_SUB_BITS 6
#define LOAD_HIST_SUB      (1 << LOAD_HIST_SUB_BITS)
#define LOAD_HIST_OCTAVES  41

typedef struct load_hist {
    uint64_t count;
    int64_t min, max;           /* exact, ns */
    uint64_t buckets[LOAD_HIST_OCTAVES * LOAD_HIST_SUB];
} load_hist;

/* Zero h (a zeroed struct is an empty histogram too). */
void load_hist_init(load_hist *h);

/* Record one value in ns; negatives count as 0, values past the last
 * bucket in the last one (max stays exact). */
void load_hist_record(load_hist *h, int64_t ns);

/* The value at quantile q (0..1): the upper edge of the bucket holding
 * it, capped at the exact max; 0 for an empty histogram. */
int64_t load_hist_quantile(const load_hist *h, double q);

/* Add every count of src into dst. */
void load_hist_merge(load_hist *dst, const load_hist *src);

#endif
