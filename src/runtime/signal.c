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
static _Atomic uint64_t pending;        /* bit n: signal n arrived */
static atomic_bool any_notified;

static void on_signal(int sig)
{
    int saved = errno;
    atomic_fetch_or(&pending, 1ull << sig);
    uint64_t one = 1;
    ssize_t n = write(atomic_load(&sig_fd), &one, sizeof one);
    (void)n;
    errno = saved;
}

int tern_signal_notify(const int *sigs, int n)
{
    for (int i = 0; i < n; i++) {
        int s = sigs[i];
        if (s <= 0 || s >= 64 || s == SIGKILL || s == SIGSTOP || s == SIGSEGV ||
            s == SIGBUS || s == SIGFPE || s == SIGILL)
            return -EINVAL;
    }
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
    }
    atomic_store(&any_notified, true);
    return 0;
}

int tern_signal_wait(int64_t deadline)
{
    if (!atomic_load(&any_notified))
        return -ENOENT;
    int fd = atomic_load(&sig_fd);
    for (;;) {
        uint64_t p = atomic_load(&pending);
        while (p) {
            int sig = __builtin_ctzll(p);
            if (atomic_compare_exchange_weak(&pending, &p, p & ~(1ull << sig)))
                return sig;
        }
        uint64_t v;
        if (read(fd, &v, sizeof v) == sizeof v)
            continue;
        int rc = tern_fd_wait(fd, TERN_FD_READ, deadline);
        if (rc < 0)
            return rc;
    }
}
