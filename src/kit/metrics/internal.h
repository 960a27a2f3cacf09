/*
 * internal.h - the shapes behind tern/metrics.h, shared by the
 * src/kit/metrics*.c files.
 *
 * A family owns a fixed hash table of children.  Lookups walk it without a
 * lock (children are only ever added, at a chain's head, fully built
 * before they are published with a release store, and freed only with the
 * registry); inserts take the family's mutex.  A child is a common header
 * followed by its type's storage.
 *
 * Sharding: a thread owns one of the first TERN_METRICS_SHARDS - 1 shards
 * from its first increment until it exits (a pthread key's destructor
 * gives the shard back, and a later thread takes it over, counts
 * included).  Only the owner writes its slot of each counter, so it adds
 * with a plain load and store, no locked instruction: a coroutine cannot
 * be switched out between the two.  Threads beyond that share the last
 * shard, with atomic read-modify-writes.  tern's P workers are the first
 * threads to count, so each P has its own shard.  (A counter must not be
 * changed from a signal handler: the handler could run between the load
 * and the store of its own thread.)
 */
#ifndef TERN_KIT_METRICS_INTERNAL_H
#define TERN_KIT_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/check.h"
#include "tern/metrics.h"

#define TERN_METRICS_SHARDS 16
#define TERN_METRICS_LINE 64
/* Chains stay short for the few hundred children a sane family has. */
#define TERN_METRICS_TABLE 64

typedef enum tern__metrics_kind {
    TERN_METRIC_COUNTER,
    TERN_METRIC_GAUGE,
    TERN_METRIC_HISTOGRAM,
    TERN_METRIC_COUNTER_FUNC,
    TERN_METRIC_GAUGE_FUNC,
} tern__metrics_kind;

typedef struct tern__metrics_child tern__metrics_child;
struct tern__metrics_child {
    _Atomic(tern__metrics_child *) next;  /* hash chain */
    tern_metrics_family *family;
    uint64_t hash;
    char **values;                      /* family->nlabels strings, one malloc */
};

typedef struct tern_metrics_slot {
    _Alignas(TERN_METRICS_LINE) _Atomic uint64_t v;
} tern_metrics_slot;
/* each shard's slot on a line only its owner writes */
_Static_assert(sizeof(tern_metrics_slot) == TERN_METRICS_LINE, "one slot per cache line");
/* shards_owned has a bit per owned shard */
_Static_assert(TERN_METRICS_SHARDS >= 2 && TERN_METRICS_SHARDS <= 32, "a bit per shard");
/* a double is kept as its bits in a 64-bit word */
_Static_assert(sizeof(double) == sizeof(uint64_t), "double bits fit a word");

struct tern_metrics_counter {
    tern__metrics_child h;
    tern_metrics_slot shards[TERN_METRICS_SHARDS];
};

struct tern_metrics_gauge {
    tern__metrics_child h;
    _Atomic uint64_t bits;              /* a double's bits: set must replace it */
};

/* Each shard's block: counts[nbounds + 1] (the last is +Inf, not
 * cumulative), then the sum's double bits; stride bytes apart, a multiple
 * of a cache line. */
struct tern_metrics_histogram {
    tern__metrics_child h;
    const double *bounds;               /* the family's */
    size_t nbounds;
    size_t stride;
    unsigned char *shards;
};

struct tern_metrics_family {
    tern_metrics_registry *reg;
    char *name, *help;
    tern__metrics_kind kind;
    size_t nlabels;
    char *labels[TERN_METRICS_MAX_LABELS];
    double *bounds;                     /* histograms */
    size_t nbounds;
    tern_metrics_value_fn *fn;          /* *_FUNC kinds */
    void *fn_arg;
    pthread_mutex_t lock;               /* inserts */
    size_t nchildren;                   /* under lock */
    _Atomic(tern__metrics_child *) table[TERN_METRICS_TABLE];
};

typedef struct tern_metrics_hook {
    void (*fn)(void *arg);
    void (*release)(void *arg);
    void *arg;
} tern_metrics_hook;

struct tern_metrics_registry {
    pthread_mutex_t lock;               /* fams, hooks */
    tern_metrics_family **fams;
    size_t nfams, capfams;
    tern_metrics_hook *hooks;
    size_t nhooks;
    pthread_mutex_t scrape;             /* one scrape at a time */
};

/* NULL -> the default registry. */
tern_metrics_registry *tern__metrics_reg(tern_metrics_registry *r);

/* The calling thread's shard; TERN_METRICS_SHARED when it shares the last.
 * Read it afresh in every call and never keep it (nor let a compiler keep
 * the thread-local's address) across anything that may switch coroutines:
 * the coroutine may resume on another thread.  That is why the hot-path
 * functions are out of line in the library rather than inline here. */
/* Bumped when a registry is freed: a cache of children (pointers that
 * live as long as their registry) compares it to know it is stale. */
extern _Atomic uint64_t tern__metrics_epoch;

#define TERN_METRICS_SHARED (TERN_METRICS_SHARDS - 1)
extern _Thread_local int tern__metrics_shard_idx;
int tern__metrics_shard_take(void);
static inline int tern__metrics_shard(void)
{
    int i = tern__metrics_shard_idx;
    return i >= 0 ? i : tern__metrics_shard_take();
}

/* *p += n by the slot's owner (plain load and store), or atomically in
 * the shared shard. */
static inline void tern__metrics_slot_add(_Atomic uint64_t *p, uint64_t n, int shard)
{
    TERN_ASSERT(shard >= 0 && shard < TERN_METRICS_SHARDS);
    if (shard != TERN_METRICS_SHARED)
        atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(p, n, memory_order_relaxed);
}

/* Find or make the child for values (family->nlabels of them). */
tern__metrics_child *tern__metric_child(tern_metrics_family *f, const char *const *values);
/* Make the storage of a child of f's kind (header left to the caller). */
tern__metrics_child *tern__metric_child_alloc(tern_metrics_family *f);
void tern__metric_child_free(tern__metrics_child *c);

static inline uint64_t tern__metrics_dbits(double v)
{
    union { double d; uint64_t u; } x = {.d = v};
    return x.u;
}

static inline double tern__metrics_bitsd(uint64_t u)
{
    union { double d; uint64_t u; } x = {.u = u};
    return x.d;
}

/* Add v to a double kept as bits in *p (a CAS loop). */
static inline void tern__metrics_dadd(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old,
                                                  tern__metrics_dbits(tern__metrics_bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

#endif
