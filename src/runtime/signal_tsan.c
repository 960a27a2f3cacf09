/*
 * signal_tsan.c - under ThreadSanitizer only: the process's asynchronous
 * signals land on a thread that runs no coroutines.
 *
 * TSan runs a signal's handler at once only when the thread it lands on is
 * inside a blocking libc call; otherwise it defers it, in the state of the
 * fiber that was running (TSan keeps one per fiber).  On a worker, which
 * switches fibers at every coroutine switch, such signals were lost:
 * http_h2_server, the shop and its tour ignored SIGTERM in about one run in
 * twenty under TSan (the handler never ran: no pending bit, an empty
 * eventfd; never in other builds, where the kernel runs the handler at
 * once).  Flushing at each park (a blocking call before the switch) made
 * it worse, not better, so the exact path inside TSan is not known; taking
 * the signals off the workers fixed it (0 hangs in 80 runs).
 *
 * So, for the time tern_run runs, the thread that calls it (and through it
 * every runtime thread, which inherits its mask) blocks the signals a
 * program waits for, and one thread that runs no fiber leaves them
 * unblocked and waits in poll(2), a blocking call, where TSan runs the
 * handler (or the kernel applies the default action) at once.  A signal
 * sent to a worker thread itself (raise(3) from a coroutine) stays pending
 * there, blocked: the worker takes it when it next goes to sleep
 * (tern__signal_route_flush), in its scheduler context, which runs again
 * for sure, and makes a blocking call that runs the handler.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "sanitizer.h"

#ifdef TERN_TSAN

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

static const int routed[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
static sigset_t saved;
static pthread_t catcher;
static int stop_fd = -1;

static void routed_set(sigset_t *s)
{
    sigemptyset(s);
    for (size_t i = 0; i < sizeof routed / sizeof *routed; i++)
        sigaddset(s, routed[i]);
}

static void child_restore(void);

static void atfork_register(void)
{
    pthread_atfork(NULL, NULL, child_restore);
}

static void *catcher_main(void *arg)
{
    (void)arg;
    sigset_t s;
    routed_set(&s);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    struct pollfd pfd = {.fd = stop_fd, .events = POLLIN};
    while (poll(&pfd, 1, -1) <= 0 || !(pfd.revents & POLLIN))
        ;               /* EINTR: a handler ran here */
    return NULL;
}

/* A child forked by a coroutine gets the mask the program had before
 * tern_run, not the workers' (a peer server it execs must still die of
 * SIGTERM).  (posix_spawn and system(3) do not run this: their children
 * keep the signals blocked.) */
static void child_restore(void)
{
    if (stop_fd >= 0)
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void tern__signal_route_begin(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, atfork_register);
    sigset_t s;
    routed_set(&s);
    pthread_sigmask(SIG_BLOCK, &s, &saved);
    stop_fd = eventfd(0, EFD_CLOEXEC);
    if (stop_fd < 0 || pthread_create(&catcher, NULL, catcher_main, NULL) != 0) {
        tern__report("no signal thread for TSan; signals may be handled late");
        if (stop_fd >= 0)
            close(stop_fd);
        stop_fd = -1;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
    }
}

void tern__signal_route_flush(void)
{
    if (stop_fd < 0)
        return;
    sigset_t s, pend;
    routed_set(&s);
    if (sigpending(&pend) != 0)
        return;
    bool any = false;
    for (size_t i = 0; i < sizeof routed / sizeof *routed; i++)
        any |= sigismember(&pend, routed[i]) == 1;
    if (!any)
        return;
    /* delivered here as the mask drops, deferred by TSan to this (the
     * scheduler's) context, run by the blocking call */
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    usleep(0);
}

void tern__signal_route_end(void)
{
    if (stop_fd < 0)
        return;
    uint64_t one = 1;
    if (write(stop_fd, &one, sizeof one) != sizeof one)
        tern__fatal("cannot stop the signal thread");
    pthread_join(catcher, NULL);
    close(stop_fd);
    stop_fd = -1;
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

#else

void tern__signal_route_begin(void) {}
void tern__signal_route_end(void) {}
void tern__signal_route_flush(void) {}

#endif
