/*
 * wall.h - wall-clock time (Unix ns) for log lines and span times, read
 * through the monotonic clock.
 *
 * Every log line and every access line needs the wall time, and on a VM
 * CLOCK_REALTIME costs more than CLOCK_MONOTONIC (57 against 36 ns here):
 * a fifth of a log line.  The two clocks are slewed alike by NTP and
 * differ only by steps (settimeofday, a stepping NTP client), so each
 * thread keeps their difference and re-reads it once a second: a step is
 * seen within a second, and between steps the result is CLOCK_REALTIME.
 * A caller that already holds a tern_now() reading (the access log has
 * the request's start) converts it without reading any clock.
 *
 * On x86-64, where the kernel keeps time with an invariant time-stamp
 * counter, tern__wall_ns reads the counter instead (half the cost of
 * clock_gettime on a VM) and extrapolates from the thread's last clock
 * reading, taken again every second and checked against the
 * extrapolation.  Between readings it drifts from CLOCK_REALTIME by
 * microseconds at most (more is caught and recalibrated), so
 * successive results may step back by that much, as they may when NTP
 * steps the clock: callers take differences of tern_now() readings, not
 * of these.
 */
#ifndef TERN_BASE_WALL_H
#define TERN_BASE_WALL_H

#include <stdbool.h>
#include <stdint.h>

/* Now, in ns since the Unix epoch. */
int64_t tern__wall_ns(void);

/* For tests: whether the counter can be used here (x86-64, invariant,
 * the kernel's clocksource), and whether the calling thread's
 * tern__wall_ns uses it now (calibrated). */
bool tern__wall_counter_available(void);
bool tern__wall_counter_active(void);

/* The wall time of the instant `mono` (a tern_now() reading), by the
 * current offset between the clocks. */
int64_t tern__wall_from_mono(int64_t mono);

#endif
