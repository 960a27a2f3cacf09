/*
 * thread.c - helper threads that leave the process's signals to the
 * runtime; see thread.h.
 *
 * Why: a process-directed signal goes to any thread that does not block
 * it.  One landing on a helper interrupts the helper's blocking call
 * (nanosleep, epoll_wait, a socket timeout: EINTR whatever SA_RESTART
 * says).
 */
#define _GNU_SOURCE
#include "base/thread.h"

#include <signal.h>

int tern__thread_start_quiet(pthread_t *th, void *(*fn)(void *), void *arg)
{
    static const int keep[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGPROF};
    sigset_t quiet, old;
    sigfillset(&quiet);
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        sigdelset(&quiet, keep[i]);
    pthread_sigmask(SIG_SETMASK, &quiet, &old);
    int e = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return -e;
}
