/*
 * thread.h - starting tern's helper threads (the blocking-call pool, the
 * log writer, SQLite's connection threads).
 */
#ifndef TERN_BASE_THREAD_H
#define TERN_BASE_THREAD_H

#include <pthread.h>

/* pthread_create for a helper: the new thread blocks the process's
 * asynchronous signals (SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGPIPE, ...),
 * which then go to the runtime's workers, where tern_signal_wait takes
 * them; a blocking call in a helper is not cut short with EINTR.  Faults
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) stay deliverable:
 * stack.c's handler copies back a released coroutine stack that a helper
 * touches.  SIGPROF too, so the CPU profiler sees time spent in helpers.
 * The caller's mask is unchanged.  0 or -errno. */
int tern__thread_start_quiet(pthread_t *th, void *(*fn)(void *), void *arg);

#endif
