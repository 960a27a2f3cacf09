/*
 * spin.c - the contended half of the lock in spin.h: back off, then sleep
 * on the lock word's futex.
 */
#define _GNU_SOURCE
#include "base/spin.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Rounds of exponential backoff before sleeping: 1+2+...+32 then 32 per
 * round, ~190 pauses, a few microseconds.  A waiter that polls the line
 * non-stop steals it from the holder, who then takes longer to release (a
 * producer/consumer pair on two cores ran 3x slower that way). */
#define SPIN_ROUNDS 10

/* The longest sleep: a release that raced with this sleeper's mark (see
 * tern__spin_unlock) does not wake it. */
#define TERN__SPIN_SLEEP_NS 1000000

static __thread atomic_int *sleep_count;

void tern__spin_count_sleeps(atomic_int *sleeps)
{
    sleep_count = sleeps;
}

void tern__spin_lock_slow(tern__spin *s)
{
    for (unsigned n = 0; n < SPIN_ROUNDS; n++) {
        for (unsigned i = 0; i < (1u << (n < 5 ? n : 5)); i++)
            tern_cpu_relax();
        int v = atomic_load_explicit(&s->v, memory_order_relaxed);
        if (v == 0 && atomic_compare_exchange_weak_explicit(&s->v, &v, 1, memory_order_acquire,
                                                            memory_order_relaxed))
            return;
    }
    /* Mark the lock contended and sleep while it is held.  Taking it here
     * leaves it marked 2, so its release wakes a next sleeper if there is
     * one (at worst one futex call for nobody).  A release that read the
     * word before our mark and stored 0 after it wakes nobody: the bounded
     * sleep covers that (a window of a few instructions). */
    if (!atomic_exchange_explicit(&s->v, 2, memory_order_acquire))
        return;
    atomic_int *count = sleep_count;
    if (count)
        atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
    const struct timespec most = {0, TERN__SPIN_SLEEP_NS};
    do
        syscall(SYS_futex, (int *)&s->v, FUTEX_WAIT_PRIVATE, 2, &most, NULL, 0);
    while (atomic_exchange_explicit(&s->v, 2, memory_order_acquire) != 0);
    if (count)
        atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
}

#define PAUSE_ROUNDS 8
#define PAUSE_SLEEP_MIN_NS 16000

void tern__spin_pause(unsigned *n)
{
    if (*n < PAUSE_ROUNDS) {
        for (unsigned i = 0; i < (1u << *n); i++)
            tern_cpu_relax();
    } else {
        unsigned k = *n - PAUSE_ROUNDS;
        long ns = k < 6 ? (long)PAUSE_SLEEP_MIN_NS << k : TERN__SPIN_SLEEP_NS;
        if (ns > TERN__SPIN_SLEEP_NS)
            ns = TERN__SPIN_SLEEP_NS;
        atomic_int *count = sleep_count;
        if (count)
            atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
        const struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        if (count)
            atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
    }
    if (*n < 64)
        (*n)++;
}

void tern__spin_wake(tern__spin *s)
{
    syscall(SYS_futex, (int *)&s->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
