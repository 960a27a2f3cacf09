/*
 * tern/signal.h - POSIX signals as events a coroutine waits for, as Go's
 * signal.Notify: the usual use is a graceful shutdown on SIGTERM/SIGINT.
 *
 *     int sigs[] = { SIGTERM, SIGINT };
 *     tern_signal_notify(sigs, 2);
 *     int sig = tern_signal_wait(sigs, 2, TERN_FOREVER);    // parks, not blocks
 *
 * tern_signal_wait is one of the runtime's own primitives (as tern_wait
 * and tern_fd_wait): it takes an absolute monotonic deadline in ns
 * (TERN_FOREVER: none) instead of a tern_ctx.  Both functions only read
 * sigs during the call.
 */
#ifndef TERN_SIGNAL_H
#define TERN_SIGNAL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* From now on, deliver these signals to tern_signal_wait instead of their
 * default action.  Any thread; may be called again to add signals.
 * -EINVAL for SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL or a bad
 * number; -errno from the system otherwise. */
int tern_signal_notify(const int *sigs, int n);

/* Park until one of sigs[0..n) arrives (one that came before the call
 * counts) or the deadline passes, and take it: returns its number,
 * -ETIMEDOUT, -ENOENT if one of them was never notified, -EINVAL for a bad
 * set.  Several coroutines may wait at once, for the same or other
 * signals (the SIGTERM waiter of a service and the SIGHUP waiter of its
 * config); each signal is taken by one of them.  Idle waiters cost no
 * wake-ups: the first parks on the signals' eventfd and wakes the others
 * (up to 32; more look every 10 ms) when a signal comes.  From a
 * coroutine. */
int tern_signal_wait(const int *sigs, int n, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
