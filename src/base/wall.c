/*
 * wall.c - wall-clock time through the monotonic clock and, on x86-64,
 * the time-stamp counter; see wall.h.
 */
#define _GNU_SOURCE
#include "base/wall.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

#define REFRESH_NS 1000000000   /* a step of the wall clock is seen within this */

static int64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Per thread, read without any lock: only this thread touches it.
 * offset is CLOCK_REALTIME - CLOCK_MONOTONIC, good until `until`
 * (monotonic; 0 at first, so the first reading fills it).  The tsc_
 * fields are the counter's calibration (HAVE_TSC). */
static _Thread_local struct {
    int64_t offset;
    int64_t until;
#ifdef HAVE_TSC
    uint64_t tsc_at;            /* the counter at the last clock reading */
    int64_t mono_at;            /* and CLOCK_MONOTONIC then */
    uint64_t mult;              /* ns per tick << 32; 0: not calibrated */
    uint64_t tsc_until;         /* read the clock again from here on */
#endif
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

static int64_t wall_by_clock(void)
{
    int64_t m = read_ns(CLOCK_MONOTONIC);
    return m + offset_at(m);
}

#ifdef HAVE_TSC
/*
 * The counter path.  On a VM clock_gettime costs 36-44 ns (here), most of
 * it the ordered counter read and the vDSO's seqlock; a bare rdtsc is
 * half that, and a log line is ~200 ns.  So each thread extrapolates from
 * its last clock reading with the counter's rate, and reads the clock
 * again at the end of a window (REFRESH_NS; shorter while the rate is
 * young), which picks up a step and tracks NTP's slewing.  The rate is
 * measured between two of a thread's readings at least CALIB_MIN_NS
 * apart, and shared: a new thread uses the last one measured by any.
 *
 * Only when the kernel itself keeps time with the counter (clocksource
 * "tsc", chosen only for an invariant counter synchronised across CPUs)
 * and the CPU says it is invariant.  At every reading the extrapolation
 * is checked against the clock: off by more than MAX_ERR_NS (a migrated
 * VM, a counter the kernel gave up on since), it is dropped and measured
 * afresh.  Log lines carry milliseconds and span times tolerate
 * microseconds: the error here is well under both.
 */
#define CALIB_MIN_NS (10 * 1000 * 1000)
#define MAX_ERR_NS (50 * 1000)
#define PAIR_MAX_TICKS 20000    /* ~5 us at the lowest counter rates */

static atomic_int tsc_state;    /* 0 not yet known, 1 usable, -1 not */
/* The counter's rate, ns per tick << 32, as last measured by any thread
 * (it is one rate: the counter is invariant); 0 until measured. */
static _Atomic uint64_t rate;

static bool tsc_check(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
        return false;           /* not invariant */
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
    if (!f)
        return false;
    char name[32] = "";
    bool tsc = fgets(name, sizeof name, f) && strcmp(name, "tsc\n") == 0;
    fclose(f);
    return tsc;
}

static bool tsc_usable(void)
{
    int s = atomic_load_explicit(&tsc_state, memory_order_relaxed);
    if (__builtin_expect(s == 0, 0)) {
        s = tsc_check() ? 1 : -1;
        atomic_store_explicit(&tsc_state, s, memory_order_relaxed);
    }
    return s > 0;
}

static int64_t extrapolate(uint64_t t)
{
    return cache.mono_at + (int64_t)(((unsigned __int128)(t - cache.tsc_at) * cache.mult) >> 32);
}

/* ns per tick << 32 from this thread's last reading to (t, m), when far
 * enough apart to measure (0 otherwise). */
static uint64_t rate_to(uint64_t t, int64_t m)
{
    if (!cache.tsc_at || t <= cache.tsc_at || m - cache.mono_at < CALIB_MIN_NS)
        return 0;
    return (uint64_t)(((unsigned __int128)(m - cache.mono_at) << 32) / (t - cache.tsc_at));
}

/* Read the clock, check this thread's extrapolation against it, measure
 * the rate again if the last reading is far enough back, and start a new
 * window.  The monotonic clock, not the wall: a step of the wall clock
 * must not skew the rate. */
static int64_t wall_calibrate(void)
{
    /* the clock read between two counter reads, so the pair is known to
     * belong together (a thread preempted in between would skew the rate) */
    uint64_t t0 = __rdtsc();
    int64_t m = read_ns(CLOCK_MONOTONIC);
    uint64_t t1 = __rdtsc();
    int64_t w = m + offset_at(m);
    if (t1 - t0 > PAIR_MAX_TICKS)
        return w;               /* use it, but not to calibrate */
    uint64_t t = t0 + (t1 - t0) / 2;
    if (cache.mult) {
        int64_t err = extrapolate(t) - m;
        if (err > MAX_ERR_NS || err < -MAX_ERR_NS) {
            /* start over from this reading, and tell the other threads */
            cache.mult = 0;
            cache.tsc_at = 0;
            atomic_store_explicit(&rate, 0, memory_order_relaxed);
        }
    }
    /* A rate measured over a short span is good for a window a few times
     * as long: the first (over 10 ms) is used for 80 ms, the next (over
     * those 80) for 640, then every window is REFRESH_NS and measures the
     * rate for the next. */
    int64_t window = REFRESH_NS;
    uint64_t mult = rate_to(t, m);
    if (mult) {
        atomic_store_explicit(&rate, mult, memory_order_relaxed);
        if ((m - cache.mono_at) * 8 < window)
            window = (m - cache.mono_at) * 8;
    } else {
        mult = atomic_load_explicit(&rate, memory_order_relaxed);
    }
    if (!mult && cache.tsc_at && t > cache.tsc_at)
        return w;               /* keep the first point until far enough apart */
    cache.mult = mult;
    cache.tsc_at = t;
    cache.mono_at = m;
    /* an empty window until calibrated: every call reads the clock */
    cache.tsc_until = mult ? t + (uint64_t)(((unsigned __int128)window << 32) / mult) : t;
    return w;
}
#endif

int64_t tern__wall_ns(void)
{
#ifdef HAVE_TSC
    if (tsc_usable()) {
        uint64_t t = __rdtsc();
        if (t - cache.tsc_at < cache.tsc_until - cache.tsc_at)
            return extrapolate(t) + cache.offset;
        return wall_calibrate();
    }
#endif
    return wall_by_clock();
}

int64_t tern__wall_from_mono(int64_t mono)
{
    return mono + offset_at(mono);
}

bool tern__wall_counter_available(void)
{
#ifdef HAVE_TSC
    return tsc_usable();
#else
    return false;
#endif
}

bool tern__wall_counter_active(void)
{
#ifdef HAVE_TSC
    return tsc_usable() && cache.mult != 0;
#else
    return false;
#endif
}
