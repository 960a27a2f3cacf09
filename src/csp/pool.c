/*
 * pool.c - tern_pool, Go's sync.Pool without a garbage collector.
 *
 * Layout.  One cache-line-aligned stack of up to LOCAL_CAP objects per P
 * (`locals`, indexed by tern__proc_id()), and one shared stack under a
 * spinlock.  A P's stack is touched only by coroutines running on that
 * P's worker thread, and a get or put never parks in the middle, so the
 * fast path is plain loads and stores: no lock, no atomic read-modify-
 * write.  The counters are relaxed atomics written by one thread (a load
 * and a store, not a locked add) so stats can read them from another.
 * When a P's stack is empty, a get moves up to LOCAL_MOVE objects from
 * the shared stack in one locked step; when it is full, a put moves the
 * oldest LOCAL_MOVE to the shared stack, and whatever exceeds max_shared
 * there is released.
 *
 * Trimming.  Each stack remembers its low-water mark since the last
 * epoch: the objects below it sat untouched for the whole epoch.  The
 * monitor (tern__monitor_hook) ends an epoch every idle_ns: it releases
 * the shared stack's untouched bottom itself and bumps `epoch`; each P
 * releases its own untouched bottom the next time it uses the pool and
 * sees the new epoch (one relaxed load per call), since only the P may
 * touch its stack; all of it if a whole epoch went by without a call.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LOCAL_CAP 32
#define LOCAL_MOVE 16

/* STAT_ADD as in the runtime: one writer, racy readers */
#define CNT_ADD(f, n) \
    atomic_store_explicit(&(f), atomic_load_explicit(&(f), memory_order_relaxed) + (n), \
                          memory_order_relaxed)

typedef struct pool_local {
    void *objs[LOCAL_CAP];
    int n;
    int low;                    /* min n since `epoch` */
    uint64_t epoch;
    _Atomic uint64_t gets, puts, news;
} __attribute__((aligned(64))) pool_local;

struct tern_pool {
    void *(*new_fn)(void *);
    void (*free_fn)(void *, void *);
    void *arg;
    long max_shared;
    int64_t idle_ns;
    int nlocal;
    pool_local *locals;
    _Atomic uint64_t epoch;
    int64_t next_trim;          /* monitor's */
    tern__spin lock;            /* the shared stack */
    void **shared;
    long nshared, shared_low;
    _Atomic uint64_t gets, puts, news, released;   /* foreign threads; released: all */
    tern_pool *next, *prev;     /* all pools, for the monitor */
};

static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static tern_pool *pools;
static atomic_long live_pools;

long tern__pool_live(void)
{
    return atomic_load_explicit(&live_pools, memory_order_relaxed);
}

static void release(tern_pool *p, void **objs, int n)
{
    for (int i = 0; i < n; i++) {
        if (p->free_fn)
            p->free_fn(objs[i], p->arg);
        else
            free(objs[i]);
    }
    if (n)
        atomic_fetch_add_explicit(&p->released, (uint64_t)n, memory_order_relaxed);
}

/* The monitor's tick: end an epoch for each pool that is due. */
static void trim_tick(int64_t now)
{
    pthread_mutex_lock(&pools_lock);
    for (tern_pool *p = pools; p; p = p->next) {
        if (p->idle_ns < 0 || now < p->next_trim)
            continue;
        p->next_trim = now + p->idle_ns;
        void **old = NULL;
        tern__spin_lock(&p->lock);
        long k = p->shared_low;
        if (k > 0 && (old = malloc((size_t)k * sizeof *old)) != NULL) {
            memcpy(old, p->shared, (size_t)k * sizeof *old);
            memmove(p->shared, p->shared + k, (size_t)(p->nshared - k) * sizeof *old);
            p->nshared -= k;
        } else {
            k = 0;
        }
        p->shared_low = p->nshared;
        tern__spin_unlock(&p->lock);
        release(p, old, (int)k);
        free(old);
        atomic_fetch_add_explicit(&p->epoch, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pools_lock);
}

int tern_pool_new(const tern_pool_options *opts, tern_pool **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_pool_options o = opts ? *opts : (tern_pool_options){0};
    if (o.max_shared < 0)
        return -EINVAL;
    int err = tern__monitor_hook(trim_tick);
    if (err)
        return err;
    tern_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->new_fn = o.new_fn;
    p->free_fn = o.free_fn;
    p->arg = o.arg;
    p->max_shared = o.max_shared ? o.max_shared : 1024;
    p->idle_ns = o.idle_ns ? o.idle_ns : 5 * TERN_SEC;
    p->next_trim = tern_now() + (p->idle_ns > 0 ? p->idle_ns : 0);
    /* Ps of the runtime running now; calls from a later run with more Ps
     * use the shared stack only. */
    p->nlocal = tern_runtime_procs();
    p->shared = malloc((size_t)p->max_shared * sizeof *p->shared);
    if (p->nlocal)
        p->locals = aligned_alloc(64, (size_t)p->nlocal * sizeof *p->locals);
    if (!p->shared || (p->nlocal && !p->locals)) {
        free(p->shared);
        free(p->locals);
        free(p);
        return -ENOMEM;
    }
    for (int i = 0; i < p->nlocal; i++)
        memset(&p->locals[i], 0, sizeof p->locals[i]);
    pthread_mutex_lock(&pools_lock);
    p->next = pools;
    if (pools)
        pools->prev = p;
    pools = p;
    pthread_mutex_unlock(&pools_lock);
    tern__csp_leak_watch();
    atomic_fetch_add_explicit(&live_pools, 1, memory_order_relaxed);
    *out = p;
    return 0;
}

void tern_pool_free(tern_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&pools_lock);
    if (p->prev)
        p->prev->next = p->next;
    else
        pools = p->next;
    if (p->next)
        p->next->prev = p->prev;
    pthread_mutex_unlock(&pools_lock);
    for (int i = 0; i < p->nlocal; i++)
        release(p, p->locals[i].objs, p->locals[i].n);
    release(p, p->shared, (int)p->nshared);
    free(p->locals);
    free(p->shared);
    free(p);
    atomic_fetch_sub_explicit(&live_pools, 1, memory_order_relaxed);
}

/* A new epoch has begun: release what lay untouched below the low-water
 * mark through the last one, or everything if the P sat out a whole
 * epoch without a call.  On the P's own thread. */
static void local_trim(tern_pool *p, pool_local *l, uint64_t e)
{
    int k = e - l->epoch > 1 ? l->n : l->low;
    void *old[LOCAL_CAP];
    TERN_ASSERT(k >= 0 && k <= l->n);
    memcpy(old, l->objs, (size_t)k * sizeof *old);
    memmove(l->objs, l->objs + k, (size_t)(l->n - k) * sizeof *old);
    l->n -= k;
    l->low = l->n;
    l->epoch = e;
    release(p, old, k);         /* may park: l is not touched after */
}

/* Take from the shared stack: one object into *out and up to LOCAL_MOVE - 1
 * more onto l (NULL: a foreign thread).  0 or -EAGAIN. */
static int shared_take(tern_pool *p, pool_local *l, void **out)
{
    tern__spin_lock(&p->lock);
    if (p->nshared == 0) {
        tern__spin_unlock(&p->lock);
        return -EAGAIN;
    }
    *out = p->shared[--p->nshared];
    if (l) {
        TERN_ASSERT(l->n == 0);
        long k = p->nshared < LOCAL_MOVE - 1 ? p->nshared : LOCAL_MOVE - 1;
        p->nshared -= k;
        memcpy(l->objs, p->shared + p->nshared, (size_t)k * sizeof *l->objs);
        l->n = (int)k;
    }
    if (p->shared_low > p->nshared)
        p->shared_low = p->nshared;
    tern__spin_unlock(&p->lock);
    return 0;
}

/* Push n objects onto the shared stack; those over the bound are released. */
static void shared_put(tern_pool *p, void **objs, int n)
{
    tern__spin_lock(&p->lock);
    long room = p->max_shared - p->nshared;
    int k = n < room ? n : (int)room;
    memcpy(p->shared + p->nshared, objs, (size_t)k * sizeof *objs);
    p->nshared += k;
    tern__spin_unlock(&p->lock);
    release(p, objs + k, n - k);
}

/* get's slow path: a foreign thread or a later run's extra P (l NULL), a
 * new epoch, or an empty local stack.  Out of line, so that the fast
 * path below needs no frame (it saved registers for this one's calls:
 * 17 of the pair's instructions, callgrind). */
static __attribute__((noinline)) int get_slow(tern_pool *p, pool_local *l, void **out)
{
    if (!l) {
        atomic_fetch_add_explicit(&p->gets, 1, memory_order_relaxed);
    } else {
        uint64_t e = atomic_load_explicit(&p->epoch, memory_order_relaxed);
        if (l->epoch != e) {
            local_trim(p, l, e);
            return tern_pool_get(p, out);   /* the trim may have parked */
        }
        CNT_ADD(l->gets, 1);
        TERN_ASSERT(l->n == 0);
        l->low = 0;
    }
    if (shared_take(p, l, out) == 0)
        return 0;
    *out = NULL;
    if (!p->new_fn)
        return -EAGAIN;
    if (l)
        CNT_ADD(l->news, 1);
    else
        atomic_fetch_add_explicit(&p->news, 1, memory_order_relaxed);
    *out = p->new_fn(p->arg);     /* may park: l is not touched after */
    return *out ? 0 : -ENOMEM;
}

/* The P's own stack, or NULL where get_slow/put_slow must decide. */
static inline pool_local *local_of(tern_pool *p)
{
    int id = tern__proc_id();
    return (unsigned)id < (unsigned)p->nlocal ? &p->locals[id] : NULL;
}

int tern_pool_get(tern_pool *p, void **out)
{
    TERN_CHECK_ARG(p);
    TERN_CHECK_ARG(out);
    pool_local *l = local_of(p);
    if (__builtin_expect(!l || l->n == 0 ||
                             l->epoch != atomic_load_explicit(&p->epoch, memory_order_relaxed),
                         0))
        return get_slow(p, l, out);
    CNT_ADD(l->gets, 1);
    *out = l->objs[--l->n];
    if (l->n < l->low)
        l->low = l->n;
    return 0;
}

/* put's slow path: no local stack, a new epoch, or a full stack. */
static __attribute__((noinline)) void put_slow(tern_pool *p, pool_local *l, void *obj)
{
    if (!l) {
        atomic_fetch_add_explicit(&p->puts, 1, memory_order_relaxed);
        shared_put(p, &obj, 1);
        return;
    }
    uint64_t e = atomic_load_explicit(&p->epoch, memory_order_relaxed);
    if (l->epoch != e) {
        local_trim(p, l, e);
        tern_pool_put(p, obj);
        return;
    }
    CNT_ADD(l->puts, 1);
    TERN_ASSERT(l->n == LOCAL_CAP);
    /* the oldest half goes to the shared stack: the hot top stays */
    void *old[LOCAL_MOVE];
    memcpy(old, l->objs, sizeof old);
    memmove(l->objs, l->objs + LOCAL_MOVE, (LOCAL_CAP - LOCAL_MOVE) * sizeof *old);
    l->n -= LOCAL_MOVE;
    l->low = l->low > LOCAL_MOVE ? l->low - LOCAL_MOVE : 0;
    l->objs[l->n++] = obj;
    shared_put(p, old, LOCAL_MOVE);     /* may release: l untouched after */
}

void tern_pool_put(tern_pool *p, void *obj)
{
    TERN_CHECK_ARG(p);
    TERN_CHECK_ARG(obj);
    pool_local *l = local_of(p);
    if (__builtin_expect(!l || l->n == LOCAL_CAP ||
                             l->epoch != atomic_load_explicit(&p->epoch, memory_order_relaxed),
                         0)) {
        put_slow(p, l, obj);
        return;
    }
    CNT_ADD(l->puts, 1);
    l->objs[l->n++] = obj;
}

int tern_pool_stats(const tern_pool *p, struct tern_pool_stats *out)
{
    TERN_CHECK_ARG(p);
    TERN_CHECK_ARG(out);
    tern_pool *q = (tern_pool *)p;
    *out = (struct tern_pool_stats){
        .gets = atomic_load_explicit(&q->gets, memory_order_relaxed),
        .puts = atomic_load_explicit(&q->puts, memory_order_relaxed),
        .news = atomic_load_explicit(&q->news, memory_order_relaxed),
        .released = atomic_load_explicit(&q->released, memory_order_relaxed),
    };
    for (int i = 0; i < p->nlocal; i++) {
        out->gets += atomic_load_explicit(&q->locals[i].gets, memory_order_relaxed);
        out->puts += atomic_load_explicit(&q->locals[i].puts, memory_order_relaxed);
        out->news += atomic_load_explicit(&q->locals[i].news, memory_order_relaxed);
    }
    tern__spin_lock(&q->lock);
    out->shared = (uint64_t)q->nshared;
    tern__spin_unlock(&q->lock);
    return 0;
}
