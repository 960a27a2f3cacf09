/*
 * value.c - the hot path: counter increments into the calling
 * thread's shard, gauge updates, histogram observations; and the handing
 * out of shards to threads.
 *
 * A locked add costs 9-12 ns on this project's machines even when no
 * other core touches the line; an increment by the owner of its slot is a
 * load, an add and a store on a line only its own core writes.
 */
#include <pthread.h>

#include "kit/metrics/internal.h"

_Thread_local int tern__metrics_shard_idx = -1;

/* Bit i set: shard i (below TERN_METRICS_SHARED) has an owner. */
static atomic_uint shards_owned;
static pthread_key_t shard_key;
static pthread_once_t shard_key_once = PTHREAD_ONCE_INIT;
static bool shard_key_ok;

/* At the owner's exit.  The release orders its last stores to its slots
 * before the next owner's first loads of them (it acquires the bit). */
static void shard_give_back(void *v)
{
    unsigned i = (unsigned)((uintptr_t)v - 1);
    TERN_ASSERT(i < TERN_METRICS_SHARED);
    unsigned was = atomic_fetch_and_explicit(&shards_owned, ~(1u << i), memory_order_release);
    TERN_ASSERT(was & (1u << i));       /* given back by its one owner, once */
}

static void shard_key_make(void)
{
    shard_key_ok = pthread_key_create(&shard_key, shard_give_back) == 0;
}

int tern__metrics_shard_take(void)
{
    pthread_once(&shard_key_once, shard_key_make);
    unsigned owned = atomic_load_explicit(&shards_owned, memory_order_acquire);
    int i = TERN_METRICS_SHARED;
    while (shard_key_ok) {
        unsigned free = ~owned & ((1u << TERN_METRICS_SHARED) - 1);
        if (!free)
            break;
        int b = __builtin_ctz(free);
        if (atomic_compare_exchange_weak_explicit(&shards_owned, &owned, owned | (1u << b),
                                                  memory_order_acq_rel, memory_order_acquire)) {
            if (pthread_setspecific(shard_key, (void *)(uintptr_t)(b + 1)) == 0) {
                i = b;
            } else {
                shard_give_back((void *)(uintptr_t)(b + 1));
            }
            break;
        }
    }
    TERN_ASSERT(i >= 0 && i <= TERN_METRICS_SHARED);
    tern__metrics_shard_idx = i;
    return i;
}

static inline void counter_add(tern_metrics_counter *c, uint64_t n)
{
    int i = tern__metrics_shard();
    tern__metrics_slot_add(&c->shards[i].v, n, i);
}

/* Two bodies rather than one calling the other: a call is a measurable
 * part of a 5 ns increment. */
void tern_metrics_counter_add(tern_metrics_counter *c, uint64_t n)
{
    counter_add(c, n);
}

void tern_metrics_counter_inc(tern_metrics_counter *c)
{
    counter_add(c, 1);
}

uint64_t tern_metrics_counter_value(const tern_metrics_counter *c)
{
    uint64_t sum = 0;
    for (int i = 0; i < TERN_METRICS_SHARDS; i++)
        sum += atomic_load_explicit(&((tern_metrics_counter *)c)->shards[i].v, memory_order_relaxed);
    return sum;
}

void tern_metrics_gauge_set(tern_metrics_gauge *g, double v)
{
    atomic_store_explicit(&g->bits, tern__metrics_dbits(v), memory_order_relaxed);
}

void tern_metrics_gauge_add(tern_metrics_gauge *g, double delta)
{
    tern__metrics_dadd(&g->bits, delta);
}

double tern_metrics_gauge_value(const tern_metrics_gauge *g)
{
    return tern__metrics_bitsd(
        atomic_load_explicit(&((tern_metrics_gauge *)g)->bits, memory_order_relaxed));
}

static _Atomic uint64_t *hist_words(const tern_metrics_histogram *h, int shard)
{
    return (_Atomic uint64_t *)(h->shards + (size_t)shard * h->stride);
}

void tern_metrics_histogram_observe(tern_metrics_histogram *h, double v)
{
    /* A linear scan: bounds are few and the early ones are the hot ones
     * for latencies.  `v <= bound` is false for NaN, which lands in +Inf. */
    size_t i = 0;
    while (i < h->nbounds && !(v <= h->bounds[i]))
        i++;
    TERN_ASSERT(i <= h->nbounds);       /* nbounds: the +Inf bucket */
    int sh = tern__metrics_shard();
    _Atomic uint64_t *w = hist_words(h, sh);
    tern__metrics_slot_add(&w[i], 1, sh);
    _Atomic uint64_t *sum = &w[h->nbounds + 1];
    if (sh != TERN_METRICS_SHARED)
        atomic_store_explicit(
            sum,
            tern__metrics_dbits(tern__metrics_bitsd(atomic_load_explicit(sum, memory_order_relaxed)) + v),
            memory_order_relaxed);
    else
        tern__metrics_dadd(sum, v);
}

void tern_metrics_histogram_totals(const tern_metrics_histogram *h, uint64_t *count, double *sum)
{
    uint64_t n = 0;
    double s = 0;
    for (int sh = 0; sh < TERN_METRICS_SHARDS; sh++) {
        _Atomic uint64_t *w = hist_words(h, sh);
        for (size_t i = 0; i <= h->nbounds; i++)
            n += atomic_load_explicit(&w[i], memory_order_relaxed);
        s += tern__metrics_bitsd(atomic_load_explicit(&w[h->nbounds + 1], memory_order_relaxed));
    }
    if (count)
        *count = n;
    if (sum)
        *sum = s;
}
