/*
 * spin.h - a tiny test-and-test-and-set lock for short
 * critical sections (timer heaps, fd descriptors, coroutine registries).
 * pthread mutexes cost twice as much uncontended and may sleep the worker;
 * these sections are a few dozen instructions, so spinning (with a
 * sched_yield after a while, for oversubscribed machines) is cheaper.
 */
#ifndef TERN_BASE_SPIN_H
#define TERN_BASE_SPIN_H

#include <sched.h>
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

/* Backs off exponentially between looks: a waiter that polls the line
 * non-stop steals it from the holder, who then takes longer to release
 * (a producer/consumer pair on two cores ran 3x slower that way). */
static inline void tern__spin_lock(tern__spin *s)
{
    for (unsigned n = 0;; n++) {
        if (!atomic_load_explicit(&s->v, memory_order_relaxed) &&
            !atomic_exchange_explicit(&s->v, 1, memory_order_acquire))
            return;
        if (n < 10) {
            for (unsigned i = 0; i < (1u << (n < 5 ? n : 5)); i++)
                tern_cpu_relax();
        } else {
            sched_yield();
        }
    }
}

static inline void tern__spin_unlock(tern__spin *s)
{
    TERN_ASSERT(atomic_load_explicit(&s->v, memory_order_relaxed) != 0);  /* held */
    atomic_store_explicit(&s->v, 0, memory_order_release);
}

#endif
