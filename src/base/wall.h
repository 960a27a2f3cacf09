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
 */
#ifndef TERN_BASE_WALL_H
#define TERN_BASE_WALL_H

#include <stdint.h>

/* Now, in ns since the Unix epoch. */
int64_t tern__wall_ns(void);

/* The wall time of the instant `mono` (a tern_now() reading), by the
 * current offset between the clocks. */
int64_t tern__wall_from_mono(int64_t mono);

#endif
