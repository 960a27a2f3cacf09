/*
 * tern/sync.h - Go's sync package for coroutines: Mutex, RWMutex, Cond,
 * Once, WaitGroup, and x/sync's weighted Semaphore.
 *
 * Waiting parks the coroutine, never the worker thread, and every type
 * works across Ps.  All are plain structs owned by the caller: initialise
 * with the _INIT macro or zero them (zero is the unlocked / empty state, as
 * in Go), and do not copy one after first use.  None needs freeing.
 *
 * Waits (cond, waitgroup, semaphore) take a tern_ctx last (NULL:
 * unbounded) and return -ECANCELED / -ETIMEDOUT when it ends first.  Lock
 * operations (mutex, rwmutex, once) take none: they guard critical
 * sections, not waits, as in Go's sync; their try_ forms return 0 or
 * -EAGAIN.  A NULL object aborts, naming the function (programmer error).
 */
#ifndef TERN_SYNC_H
#define TERN_SYNC_H

#include <stdbool.h>
#include <stdint.h>

/* The structs below are laid out here for sizing.  C++ before C++23 has
 * no _Atomic: there the same fields are std::atomic, which GCC and Clang
 * lay out as the plain type, so C and C++ agree on sizes and offsets. */
#ifdef __cplusplus
#include <atomic>
#define TERN__ATOMIC(T) std::atomic<T>
#else
#include <stdatomic.h>
#define TERN__ATOMIC(T) _Atomic(T)
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_ctx tern_ctx;
typedef struct tern_waitq_node tern_waitq_node;

/* A FIFO of parked coroutines (internal; shown for sizing only). */
typedef struct tern_waitq {
    TERN__ATOMIC(int) lock;
    tern_waitq_node *head, *tail;
} tern_waitq;

/* ---- Mutex ---------------------------------------------------------------
 * Fast path: one CAS.  Contended: a short spin, then park in FIFO order.
 * Like Go 1.9+, a newly arriving coroutine may take the lock ahead of a
 * woken waiter (barging, for throughput) until some waiter has waited over
 * 1 ms; then the mutex switches to handoff mode and passes ownership
 * directly to the head waiter until the queue drains. */
typedef struct tern_mutex {
    TERN__ATOMIC(unsigned) state; /* locked, woken, starving, waiters << 3 */
    TERN__ATOMIC(unsigned) sema;  /* wake-up tokens for parked waiters */
    tern_waitq q;
} tern_mutex;
#define TERN_MUTEX_INIT {0}

/* Lock m, parking while another coroutine holds it.  Not reentrant:
 * locking a mutex the caller holds parks it for ever.  From a coroutine. */
void tern_mutex_lock(tern_mutex *m);
/* 0 if locked at once, -EAGAIN if it is held (or handed off to a waiter). */
int tern_mutex_try_lock(tern_mutex *m);
/* Unlocking a mutex that is not locked aborts (a programmer error). */
void tern_mutex_unlock(tern_mutex *m);

/* ---- RWMutex --------------------------------------------------------------
 * Many readers or one writer.  A waiting writer blocks new readers, so
 * writers cannot starve (Go's rule). */
typedef struct tern_rwmutex {
    TERN__ATOMIC(int) lock;
    int readers;                /* active readers; -1 while a writer holds it */
    int writers_waiting;
    tern_waitq rq, wq;
} tern_rwmutex;
#define TERN_RWMUTEX_INIT {0}

/* Take rw shared (rlock / runlock) or exclusive (lock / unlock), parking
 * while it cannot be had.  Unlocking what is not held aborts (a
 * programmer error).  The locks from a coroutine; the unlocks anywhere. */
void tern_rwmutex_rlock(tern_rwmutex *rw);
void tern_rwmutex_runlock(tern_rwmutex *rw);
void tern_rwmutex_lock(tern_rwmutex *rw);
void tern_rwmutex_unlock(tern_rwmutex *rw);
/* 0 if taken at once; -EAGAIN if a writer holds it or waits for it
 * (try_rlock), or if anyone holds it (try_lock). */
int tern_rwmutex_try_rlock(tern_rwmutex *rw);
int tern_rwmutex_try_lock(tern_rwmutex *rw);

/* ---- Cond ------------------------------------------------------------------ */
typedef struct tern_cond {
    tern_waitq q;
} tern_cond;
#define TERN_COND_INIT {0}

/* Unlock m, park until signalled or ctx (NULL: unbounded) is done, lock m
 * again.  m is locked again on return whatever the result.  0 when
 * signalled; -ECANCELED / -ETIMEDOUT when ctx ended first (at once, after
 * re-locking, if it already had).  As in Go, re-check the condition in a
 * loop. */
int tern_cond_wait(tern_cond *c, tern_mutex *m, tern_ctx *ctx);
/* Wake one waiter (signal) or every waiter (broadcast); none waiting: a
 * no-op.  Holding m is allowed, not required.  Any coroutine. */
void tern_cond_signal(tern_cond *c);        /* wake one waiter */
void tern_cond_broadcast(tern_cond *c);     /* wake all */

/* ---- Once ------------------------------------------------------------------ */
typedef struct tern_once {
    TERN__ATOMIC(unsigned) done;
    tern_mutex m;
} tern_once;
#define TERN_ONCE_INIT {0}

/* Run fn(arg) exactly once across all callers; every caller returns only
 * after that run finished. */
void tern_once_do(tern_once *o, void (*fn)(void *), void *arg);

/* ---- WaitGroup ------------------------------------------------------------- */
typedef struct tern_waitgroup {
    TERN__ATOMIC(long) count;
    tern_waitq q;
} tern_waitgroup;
#define TERN_WAITGROUP_INIT {0}

/* Add delta (may be negative).  Going below zero aborts (programmer error,
 * Go panics too). */
void tern_waitgroup_add(tern_waitgroup *wg, long delta);
/* tern_waitgroup_add(wg, -1): one coroutine of the group is done. */
void tern_waitgroup_done(tern_waitgroup *wg);
/* Park until the counter is zero or ctx (NULL: unbounded) is done.  0
 * when zero (at once if it already is); -ECANCELED / -ETIMEDOUT when ctx
 * ended first (the counter is untouched; the coroutines still run). */
int tern_waitgroup_wait(tern_waitgroup *wg, tern_ctx *ctx);

/* ---- Weighted semaphore (golang.org/x/sync/semaphore) -----------------------
 * Acquire is FIFO: a large request at the head is not overtaken by small
 * ones (no starvation). */
typedef struct tern_sem {
    tern_waitq q;               /* its lock guards the counts too */
    int64_t size, cur;
} tern_sem;
#define TERN_SEM_INIT(n) {.size = (n)}

/* Acquire n units, parking until available or ctx is done (NULL: never).
 * 0, -ECANCELED / -ETIMEDOUT, or -EINVAL if n exceeds the size. */
int tern_sem_acquire(tern_sem *s, int64_t n, tern_ctx *ctx);
/* 0 if acquired at once, -EAGAIN otherwise. */
int tern_sem_try_acquire(tern_sem *s, int64_t n);
/* Releasing more than held aborts (programmer error). */
void tern_sem_release(tern_sem *s, int64_t n);

/* ---- Pool (Go's sync.Pool) --------------------------------------------------
 * A cache of interchangeable objects (buffers, request structs) to take
 * and give back on hot paths instead of malloc and free.  Each P keeps a
 * small stack of its own, taken and filled without a locked instruction
 * (a coroutine is not preempted between the two ends of a get or put);
 * beyond it a shared overflow under a lock holds at most `max_shared`,
 * and objects over that bound are released at once.  Go empties its pools
 * at each GC; tern has none, so the runtime's monitor releases objects
 * that nobody took for `idle_ns` (they go between idle_ns and twice that
 * after their last use; a P that stops using the pool keeps its own few,
 * at most 32, until it uses the pool again or the pool is freed).
 *
 * Unlike Go's, this pool is not a heap object: tern_pool_new / _free,
 * which releases every object it holds.  Objects are the caller's between
 * get and put; put takes any object the pool could have made (not
 * necessarily one it gave).  get and put work from any coroutine, and
 * from other threads through the shared overflow; new_fn and free_fn run
 * on the caller's coroutine, free_fn also on the monitor thread (trims),
 * so it must not park.  A NULL pool aborts, naming the function. */
typedef struct tern_pool tern_pool;

typedef struct tern_pool_options {
    void *(*new_fn)(void *arg);         /* make one when empty (NULL return:
                                           get fails with -ENOMEM); NULL: get
                                           returns -EAGAIN when empty */
    void (*free_fn)(void *obj, void *arg); /* release one; NULL: free() */
    void *arg;                          /* last argument of both */
    long max_shared;                    /* objects kept in the shared overflow;
                                           0: 1024; < 0: -EINVAL */
    int64_t idle_ns;                    /* release objects unused this long;
                                           0: 5 s; < 0: never */
} tern_pool_options;

/* 0 with *out set; -EINVAL, -ENOMEM with *out NULL.  opts NULL: defaults. */
int tern_pool_new(const tern_pool_options *opts, tern_pool **out);

/* Release every object held (free_fn) and the pool.  No get or put may
 * run or follow.  NULL is a no-op. */
void tern_pool_free(tern_pool *p);

/* Take an object into *out: a cached one (the most recently put on this
 * P first), else new_fn's.  0; -EAGAIN when empty with no new_fn; -ENOMEM
 * when new_fn returned NULL.  *out NULL on failure. */
int tern_pool_get(tern_pool *p, void **out);

/* Give obj (not NULL) back to the pool, which may release it at once
 * when full. */
void tern_pool_put(tern_pool *p, void *obj);

struct tern_pool_stats {
    uint64_t gets, puts;        /* calls */
    uint64_t news;              /* objects made by new_fn */
    uint64_t released;          /* objects freed: over the bound, trimmed */
    uint64_t shared;            /* in the shared overflow now */
};
/* A racy snapshot; any thread. */
int tern_pool_stats(const tern_pool *p, struct tern_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif
