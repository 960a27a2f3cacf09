/*
 * mutex.c - tern_mutex, after Go's sync.Mutex (1.9+).
 *
 * state = locked | woken | starving | waiters << 3.  Lock is one CAS when
 * free.  Otherwise the caller spins briefly while the holder is running
 * (a few hundred ns: cheaper than parking for short critical sections),
 * then parks on the mutex's semaphore.  Normal mode lets an arriving
 * coroutine take the lock ahead of a woken waiter (barging keeps the lock
 * hot in one cache); a waiter that waited over 1 ms switches the mutex to
 * starvation mode, where unlock hands ownership straight to the head
 * waiter and newcomers queue behind, so nobody waits forever.  The
 * `woken` bit tells unlock that a waiter is already on its way, so it
 * does not wake another.
 *
 * The semaphore counts wake-up tokens: a release with nobody parked is
 * kept for the next acquire, so a release between a waiter's decision to
 * park and its parking is never lost.  Tokens move only under the wait
 * queue's lock.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/waitq.h"

#include <errno.h>

#define M_LOCKED 1u
#define M_WOKEN 2u
#define M_STARVING 4u
#define M_WAITER 8u                 /* one waiter */
#define STARVE_NS (1 * TERN_MS)

static void sema_acquire(tern_mutex *m, bool lifo)
{
    tern_co *self = tern__self_checked("tern_mutex_lock");
    /* Tokens are taken only under q's lock, never lock-free: a releaser
     * still unlocking q must be done with the mutex before its token can
     * let us lock, unlock and free it. */
    waitq_lock(&m->q);
    unsigned v = atomic_load_explicit(&m->sema, memory_order_relaxed);
    if (v > 0) {
        atomic_store_explicit(&m->sema, v - 1, memory_order_relaxed);
        waitq_unlock(&m->q);
        return;
    }
    tern_waitq_node *n = waitq_self_node(self);
    if (lifo)
        waitq_push_front(&m->q, n);
    else
        waitq_push(&m->q, n);
    waitq_unlock(&m->q);
    tern__wait_r(n->ticket, "mutex", TERN_FOREVER);
}

static void sema_release(tern_mutex *m)
{
    waitq_lock(&m->q);
    tern_waitq_node *n = waitq_pop(&m->q);
    /* tokens are kept only while nobody is parked */
    TERN_ASSERT(!n || atomic_load_explicit(&m->sema, memory_order_relaxed) == 0);
    if (!n)
        atomic_fetch_add(&m->sema, 1);
    waitq_unlock(&m->q);
    if (n)
        tern_wake(n->co, n->ticket, 0);
}

int tern_mutex_try_lock(tern_mutex *m)
{
    TERN_CHECK_ARG(m);
    unsigned old = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (old & (M_LOCKED | M_STARVING))
        return -EAGAIN;
    return atomic_compare_exchange_strong_explicit(&m->state, &old, old | M_LOCKED,
                                                   memory_order_acquire, memory_order_relaxed)
               ? 0
               : -EAGAIN;
}

static void lock_slow(tern_mutex *m)
{
    int64_t wait_start = 0;
    bool starving = false, awoke = false;
    int spins = 0;
    unsigned old = atomic_load(&m->state);
    for (;;) {
        /* Spin only in normal mode, while locked, a few times, with more
         * than one P: the holder may be about to release. */
        if ((old & (M_LOCKED | M_STARVING)) == M_LOCKED && spins < 4 && tern_runtime_procs() > 1) {
            if (!awoke && !(old & M_WOKEN) && old >> 3 &&
                atomic_compare_exchange_weak(&m->state, &old, old | M_WOKEN))
                awoke = true;
            for (int i = 0; i < 30; i++)
                tern_cpu_relax();
            spins++;
            old = atomic_load(&m->state);
            continue;
        }
        unsigned new = old;
        if (!(old & M_STARVING))
            new |= M_LOCKED;
        if (old & (M_LOCKED | M_STARVING))
            new += M_WAITER;
        if (starving && (old & M_LOCKED))
            new |= M_STARVING;
        if (awoke) {
            if (!(new & M_WOKEN))
                tern__fatal("tern_mutex %p: inconsistent state %#x", (void *)m, new);
            new &= ~M_WOKEN;
        }
        if (!atomic_compare_exchange_weak(&m->state, &old, new))
            continue;
        if (!(old & (M_LOCKED | M_STARVING)))
            return;     /* locked it */
        bool requeue = wait_start != 0;
        if (!wait_start)
            wait_start = tern_now();
        sema_acquire(m, requeue);
        starving = starving || tern_now() - wait_start > STARVE_NS;
        old = atomic_load(&m->state);
        if (old & M_STARVING) {
            /* Ownership was handed to us; the state still says unlocked
             * with us counted as a waiter.  Fix both, and leave starvation
             * mode if we are the last waiter or did not wait long. */
            TERN_ASSERT(!(old & (M_LOCKED | M_WOKEN)) && old >> 3 > 0);
            unsigned delta = M_LOCKED - M_WAITER;
            if (!starving || old >> 3 == 1)
                delta -= M_STARVING;
            atomic_fetch_add(&m->state, delta);
            return;
        }
        awoke = true;
        spins = 0;
    }
}

void tern_mutex_lock(tern_mutex *m)
{
    TERN_CHECK_ARG(m);
    unsigned zero = 0;
    if (atomic_compare_exchange_strong_explicit(&m->state, &zero, M_LOCKED, memory_order_acquire,
                                                memory_order_relaxed))
        return;
    lock_slow(m);
}

static void unlock_slow(tern_mutex *m, unsigned new)
{
    if (!((new + M_LOCKED) & M_LOCKED))
        tern__fatal("tern_mutex_unlock of unlocked mutex %p", (void *)m);
    if (new & M_STARVING) {
        sema_release(m);    /* hand off: the head waiter owns it now */
        return;
    }
    unsigned old = new;
    for (;;) {
        /* Nobody to wake, or someone already awake / holding / handed. */
        if (old >> 3 == 0 || (old & (M_LOCKED | M_WOKEN | M_STARVING)))
            return;
        TERN_ASSERT(old >> 3 > 0);  /* a waiter to take off the count */
        new = (old - M_WAITER) | M_WOKEN;
        if (atomic_compare_exchange_weak(&m->state, &old, new)) {
            sema_release(m);
            return;
        }
    }
}

void tern_mutex_unlock(tern_mutex *m)
{
    TERN_CHECK_ARG(m);
    unsigned new = atomic_fetch_sub_explicit(&m->state, M_LOCKED, memory_order_release) - M_LOCKED;
    if (new != 0)
        unlock_slow(m, new);
}
