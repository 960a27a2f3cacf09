/*
 * rand.c - one per-thread xoshiro256** generator behind every random
 * number the library needs (request ids, jitter, throttling, trace ids):
 * a syscall per draw would cost more than the request it serves, and
 * 128 bits of a good PRNG make id collisions across a fleet vanishingly
 * unlikely, which is all those uses need (none needs secrecy).  The
 * generator never parks, so a coroutine that moves between threads just
 * draws from another thread's stream; the state is reached only inside
 * this (never inlined) function, so no caller caches a thread-local
 * address across a park.
 *
 * fork(2): the child's thread inherits the parent's state and would draw
 * the parent's numbers (the same request and trace ids).  A pthread_atfork
 * child handler bumps `generation`; a thread's state is good only for the
 * generation it was seeded in, so the first draw after a fork reseeds.  The
 * draw pays one relaxed load and one predictable branch for it.  The
 * handler is registered before the first state is seeded, so no seeded
 * state can cross a fork unnoticed.
 */
#define _GNU_SOURCE
#include "base/rand.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Starts at 1 so that a thread's seeded_in of 0 means never seeded; 64
 * bits never wrap. */
static _Atomic uint64_t generation = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static _Thread_local uint64_t s[4];
static _Thread_local uint64_t seeded_in;

static void forked_child(void)
{
    atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed);
}

/* Without the handler (ENOMEM) a child's forking thread would go on with
 * its parent's stream; nothing here can report that, and it only makes id
 * collisions likelier, so it is not fatal. */
static void register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, forked_child);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64 spreads a weak fallback seed over the whole state */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void seed(uint64_t gen)
{
    pthread_once(&atfork_once, register_atfork);
    if (getrandom(s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        /* no entropy yet (early boot) or no getrandom: streams must still
         * differ between threads and processes, not be unguessable */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)&s;
        for (int i = 0; i < 4; i++)
            s[i] = splitmix(&x);
    }
    if ((s[0] | s[1] | s[2] | s[3]) == 0)
        s[0] = 1;               /* the one state xoshiro never leaves */
    seeded_in = gen;
}

/* One xoshiro256** step on this thread's state, seeded as needed. */
static inline uint64_t next(void)
{
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static inline void ensure_seeded(void)
{
    uint64_t gen = atomic_load_explicit(&generation, memory_order_relaxed);
    if (__builtin_expect(gen != seeded_in, 0))
        seed(gen);
}

/* noinline: a coroutine may move to another thread between two calls, and
 * an inlined call could keep the first thread's state address. */
__attribute__((noinline)) uint64_t tern__rand64(void)
{
    ensure_seeded();
    return next();
}

__attribute__((noinline)) void tern__rand_fill(void *out, size_t n)
{
    ensure_seeded();
    unsigned char *p = out;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v = next();
        memcpy(p, &v, 8);
    }
    if (n) {
        uint64_t v = next();
        memcpy(p, &v, n);
    }
}

double tern__rand01(void)
{
    return (double)(tern__rand64() >> 11) * 0x1.0p-53;
}
