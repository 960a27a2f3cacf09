/*
 * signal.c - signals turned into netpoller events.
 *
 * The handler only sets a bit and writes to an eventfd (both
 * async-signal-safe); the waiting coroutine parks on the eventfd like on
 * any socket, so a signal costs no thread and works whatever the signal
 * masks of the worker threads are.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "tern/runtime.h"
#include "tern/signal.h"

static atomic_int sig_fd = -1;
static _Atomic uint64_t pending;        /* bit n: signal n arrived, not yet taken */
static _Atomic uint64_t notified;       /* bit n: signal n is delivered here */

#define SHARE_POLL_NS (10 * TERN_MS)

static void on_signal(int sig)
{
    int saved = errno;
    atomic_fetch_or(&pending, 1ull << sig);
    uint64_t one = 1;
    ssize_t n = write(atomic_load(&sig_fd), &one, sizeof one);
    (void)n;
    errno = saved;
}

static bool bad_signal(int s)
{
    return s <= 0 || s >= 64 || s == SIGKILL || s == SIGSTOP || s == SIGSEGV ||
           s == SIGBUS || s == SIGFPE || s == SIGILL;
}

int tern_signal_notify(const int *sigs, int n)
{
    if (!sigs || n <= 0)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (bad_signal(sigs[i]))
            return -EINVAL;
    if (atomic_load(&sig_fd) < 0) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0)
            return -errno;
        int expect = -1;
        if (!atomic_compare_exchange_strong(&sig_fd, &expect, fd))
            close(fd);          /* another thread was first */
    }
    for (int i = 0; i < n; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigfillset(&sa.sa_mask);
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -errno;
        atomic_fetch_or(&notified, 1ull << sigs[i]);
    }
    return 0;
}

/* Take one of the signals in mask that has arrived: its number, or 0. */
static int take(uint64_t mask)
{
    uint64_t p = atomic_load(&pending);
    while (p & mask) {
        int sig = __builtin_ctzll(p & mask);
        if (atomic_compare_exchange_weak(&pending, &p, p & ~(1ull << sig)))
            return sig;
    }
    return 0;
}

/* Several coroutines may wait, for different signals: the first parks on
 * the eventfd and the others look at the pending bits every
 * SHARE_POLL_NS (the netpoller lets one coroutine wait on an fd).  Each
 * takes only its own signals and leaves the others' bits alone. */
int tern_signal_wait(const int *sigs, int n, int64_t deadline)
{
    if (!sigs || n <= 0)
        return -EINVAL;
    uint64_t mask = 0;
    for (int i = 0; i < n; i++) {
        if (bad_signal(sigs[i]))
            return -EINVAL;
        mask |= 1ull << sigs[i];
    }
    if ((atomic_load(&notified) & mask) != mask)
        return -ENOENT;
    int fd = atomic_load(&sig_fd);
    for (;;) {
        int sig = take(mask);
        if (sig)
            return sig;
        uint64_t v;
        if (read(fd, &v, sizeof v) == sizeof v)
            continue;
        int rc = tern_fd_wait(fd, TERN_FD_READ, deadline);
        if (rc == -EBUSY) {
            int64_t until = tern_now() + SHARE_POLL_NS;
            if (deadline != TERN_FOREVER && deadline < until)
                until = deadline;
            tern_sleep_until(until);
            if (deadline != TERN_FOREVER && tern_now() >= deadline) {
                int late = take(mask);
                return late ? late : -ETIMEDOUT;
            }
            continue;
        }
        if (rc < 0) {
            int late = take(mask);
            return late ? late : rc;
        }
    }
}
