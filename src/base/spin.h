/*
 * spin.h - a small lock for short critical sections (timer heaps, fd
 * descriptors, channels, coroutine registries) that spins briefly and then
 * sleeps on a futex.
 *
 * The word is 0 (free), 1 (held) or 2 (held, and a waiter may sleep on it:
 * the 3-state futex mutex of Drepper's "Futexes Are Tricky").  Taking a free
 * lock is one CAS and releasing one a load and a store, inline; a pthread
 * mutex costs a call each way.  A waiter backs off for a few microseconds
 * (the sections are a few dozen instructions, so the holder is usually
 * done by then) and then sleeps until the holder's release wakes it, or 1
 * ms at most (the release is a plain store, which can miss a sleeper that
 * came just then).  It used to sched_yield() instead, for ever: on an
 * oversubscribed machine, where the kernel preempts a holder's thread for
 * milliseconds, every waiter kept its CPU yielding (CFS hands a yielder
 * its CPU back) and its worker looked stuck to the monitor (49 ms seen).
 */
#ifndef TERN_BASE_SPIN_H
#define TERN_BASE_SPIN_H

#include <stdatomic.h>

#include "base/check.h"

typedef struct { atomic_int v; } tern__spin;

#define TERN_SPIN_INIT {0}

static inline void tern_cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

void tern__spin_lock_slow(tern__spin *s);
/* One round of waiting for another thread to finish a few instructions'
 * work (publish a slot, end a timer's firing) with no lock to sleep on: *n
 * counts the rounds (start it at 0).  Pauses, doubling, for the first
 * rounds; then sleeps 16 us doubling to 1 ms, counted as a lock sleep for
 * the monitor: the other thread was preempted, and yielding in a loop
 * instead kept a CPU from it on an oversubscribed machine. */
void tern__spin_pause(unsigned *n);
void tern__spin_wake(tern__spin *s);
/* The calling thread counts in *sleeps while it sleeps on a lock (the
 * runtime's monitor tells that from a blocking call the program made). */
void tern__spin_count_sleeps(atomic_int *sleeps);

static inline void tern__spin_lock(tern__spin *s)
{
    int free_ = 0;
    if (__builtin_expect(atomic_compare_exchange_strong_explicit(
                             &s->v, &free_, 1, memory_order_acquire, memory_order_relaxed), 1))
        return;
    tern__spin_lock_slow(s);
}

/* A load and a plain store, no locked instruction (an exchange here added
 * two to every channel message).  The price: a waiter that marks the word
 * 2 between this load and store is not woken; it sleeps at most
 * TERN__SPIN_SLEEP_NS (spin.c) and looks again. */
static inline void tern__spin_unlock(tern__spin *s)
{
    int was = atomic_load_explicit(&s->v, memory_order_relaxed);
    TERN_ASSERT(was != 0);  /* held */
    atomic_store_explicit(&s->v, 0, memory_order_release);
    if (__builtin_expect(was == 2, 0))
        tern__spin_wake(s);
}

#endif
