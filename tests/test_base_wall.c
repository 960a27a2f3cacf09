/*
 * test_base_wall.c - wall-clock time through the monotonic clock
 * (src/base/wall.c): it must read as CLOCK_REALTIME does, convert an
 * earlier tern_now() reading to the wall time of that instant, agree
 * across threads, and stay right across its once-a-second refresh.
 */
#include "check.h"

#include <pthread.h>
#include <time.h>

#include "base/wall.h"

#define SLACK_NS (2 * 1000 * 1000)      /* a VM may pause a thread for this long */
#define STEP_BACK_NS (50 * 1000)        /* the counter path's recalibration (wall.h) */

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* between two CLOCK_REALTIME readings, within the slack */
static void check_now(void)
{
    int64_t before = realtime_ns();
    int64_t w = tern__wall_ns();
    int64_t after = realtime_ns();
    CHECK(w >= before - SLACK_NS && w <= after + SLACK_NS);
}

static void wall_reads_as_the_realtime_clock(void)
{
    for (int i = 0; i < 1000; i++)
        check_now();
    int64_t prev = tern__wall_ns();
    for (int i = 0; i < 100000; i++) {
        int64_t w = tern__wall_ns();
        CHECK(w >= prev - STEP_BACK_NS);
        prev = w;
    }
}

/* Where the counter can be used, it is, within a few ms of the first
 * reading; and then over several of its one-second windows every result
 * still lies between two CLOCK_REALTIME readings, within the drift the
 * extrapolation allows (far tighter than SLACK_NS). */
static void wall_counter_tracks_the_realtime_clock(void)
{
    int64_t end = realtime_ns() + 2500 * 1000 * 1000LL;
    struct timespec ms1 = {0, 1000 * 1000};
    int64_t worst = 0;
    while (realtime_ns() < end) {
        for (int i = 0; i < 1000; i++) {
            int64_t before = realtime_ns();
            int64_t w = tern__wall_ns();
            int64_t after = realtime_ns();
            if (after - before > 20 * 1000)
                continue;       /* preempted between the readings: proves nothing */
            int64_t off = w < before ? before - w : w > after ? w - after : 0;
            worst = off > worst ? off : worst;
        }
        nanosleep(&ms1, NULL);
    }
    CHECK(worst <= STEP_BACK_NS);
    if (tern__wall_counter_available())
        CHECK(tern__wall_counter_active());
    else
        fprintf(stderr, "  (no invariant tsc clocksource here: the clock path was tested)\n");
}

static void wall_from_mono_converts_an_earlier_reading(void)
{
    int64_t start = tern_now();
    int64_t wall_start = realtime_ns();
    struct timespec ms20 = {0, 20 * 1000 * 1000};
    nanosleep(&ms20, NULL);
    int64_t w = tern__wall_from_mono(start);
    CHECK(w >= wall_start - SLACK_NS && w <= wall_start + SLACK_NS);
    /* and now is now: 20 ms later than start's wall time */
    CHECK(tern__wall_from_mono(tern_now()) - w >= 20 * 1000 * 1000);
}

static void wall_stays_right_across_the_refresh(void)
{
    check_now();
    struct timespec s = {1, 100 * 1000 * 1000};     /* past the 1 s refresh */
    nanosleep(&s, NULL);
    check_now();
    int64_t before = realtime_ns();
    int64_t w = tern__wall_from_mono(tern_now());
    CHECK(w >= before - SLACK_NS && w <= realtime_ns() + SLACK_NS);
}

static void *thread_now(void *arg)
{
    check_now();
    *(int64_t *)arg = tern__wall_ns();
    return NULL;
}

static void wall_agrees_across_threads(void)
{
    int64_t a = 0, b = tern__wall_ns();
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_now, &a) == 0);
    pthread_join(t, NULL);
    int64_t c = tern__wall_ns();
    CHECK(a >= b - SLACK_NS && a <= c + SLACK_NS);
}

TESTS(T(wall_reads_as_the_realtime_clock), T(wall_from_mono_converts_an_earlier_reading),
      T(wall_stays_right_across_the_refresh), T(wall_agrees_across_threads),
      T(wall_counter_tracks_the_realtime_clock))
