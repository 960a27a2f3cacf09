/*
 * wall.c - wall-clock time through the monotonic clock; see wall.h.
 */
#define _GNU_SOURCE
#include "base/wall.h"

#include <time.h>

#define REFRESH_NS 1000000000   /* a step of the wall clock is seen within this */

static int64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* This thread's CLOCK_REALTIME - CLOCK_MONOTONIC, good until `until`
 * (monotonic; 0 at first, so the first reading fills it).  Read without
 * any lock: only this thread touches it. */
static _Thread_local struct {
    int64_t offset;
    int64_t until;
} cache;

static int64_t offset_at(int64_t mono)
{
    if (mono >= cache.until) {
        /* the realtime read between two monotonic ones: the offset is
         * exact to half the gap, tens of ns */
        int64_t m0 = read_ns(CLOCK_MONOTONIC);
        int64_t r = read_ns(CLOCK_REALTIME);
        int64_t m1 = read_ns(CLOCK_MONOTONIC);
        cache.offset = r - (m0 + (m1 - m0) / 2);
        cache.until = m1 + REFRESH_NS;
    }
    return cache.offset;
}

int64_t tern__wall_ns(void)
{
    int64_t m = read_ns(CLOCK_MONOTONIC);
    return m + offset_at(m);
}

int64_t tern__wall_from_mono(int64_t mono)
{
    return mono + offset_at(mono);
}
