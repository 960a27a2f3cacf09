/*
 * tern/signal.h - POSIX signals as events a coroutine waits for, as Go's
 * signal.Notify: the usual use is a graceful shutdown on SIGTERM/SIGINT.
 *
 *     int sigs[] = { SIGTERM, SIGINT };
 *     tern_signal_notify(sigs, 2);
 *     int sig = tern_signal_wait(TERN_FOREVER);     // parks, not blocks
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

/* Park until a notified signal arrives (one that came before the call
 * counts) or the deadline passes.  Returns the signal number, -ETIMEDOUT,
 * -ENOENT if nothing was notified, -EBUSY if another coroutine is already
 * waiting.  From a coroutine. */
int tern_signal_wait(int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif
