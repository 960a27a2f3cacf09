/*
 * resil_rand.c - the random numbers behind jitter and throttling: a
 * per-thread xoshiro256** seeded once from getrandom(2).  Jitter needs
 * spread, not secrecy; per-thread state keeps it lock-free.  A coroutine
 * that moves between Ps just draws from another thread's stream.
 */
#include "kit/resil_internal.h"

#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t rs[4];
static _Thread_local int seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void seed(void)
{
    if (getrandom(rs, sizeof rs, 0) != (ssize_t)sizeof rs) {
        /* no entropy source: jitter still has to differ between threads */
        uint64_t x = (uint64_t)tern_now() ^ (uint64_t)(uintptr_t)&rs;
        for (int i = 0; i < 4; i++) {
            x += 0x9e3779b97f4a7c15ull;
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            rs[i] = z ^ (z >> 31);
        }
    }
    if (!(rs[0] | rs[1] | rs[2] | rs[3]))
        rs[0] = 1;
    seeded = 1;
}

uint64_t tern__resil_rand64(void)
{
    if (!seeded)
        seed();
    uint64_t r = rotl(rs[1] * 5, 7) * 9;
    uint64_t t = rs[1] << 17;
    rs[2] ^= rs[0];
    rs[3] ^= rs[1];
    rs[1] ^= rs[2];
    rs[0] ^= rs[3];
    rs[2] ^= t;
    rs[3] = rotl(rs[3], 45);
    return r;
}

double tern__resil_rand01(void)
{
    return (double)(tern__resil_rand64() >> 11) * 0x1.0p-53;
}
