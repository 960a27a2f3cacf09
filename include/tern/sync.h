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

#ifdef __cplusplus
}
#endif
#endif
