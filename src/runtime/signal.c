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

#include "base/spin.h"
#include "runtime/export.h"
#include "tern/runtime.h"
#include "tern/signal.h"

static atomic_int sig_fd = -1;
static _Atomic uint64_t pending;        /* bit n: signal n arrived, not yet taken */
static _Atomic uint64_t notified;       /* bit n: signal n is delivered here */

/* The waiters that do not hold the eventfd park here (at most SHARE_MAX
 * at once; more poll the pending bits every SHARE_POLL_NS).  The holder
 * bumps share_gen and wakes them all after each read of the eventfd and
 * when it stops waiting, so that one of them takes the fd over. */
#define SHARE_POLL_NS (10 * TERN_MS)
#define SHARE_MAX 32
static tern__spin share_lock = TERN_SPIN_INIT;
static _Atomic uint64_t share_gen;
static struct { tern_co *co; tern_ticket t; } share_w[SHARE_MAX];

static void share_wake(void)
{
    tern__spin_lock(&share_lock);
    atomic_fetch_add(&share_gen, 1);
    for (int i = 0; i < SHARE_MAX; i++)
        if (share_w[i].co) {
            tern_wake(share_w[i].co, share_w[i].t, 0);
            share_w[i].co = NULL;
        }
    tern__spin_unlock(&share_lock);
}

/* Park until share_gen moves from gen (the holder read the eventfd or
 * left) or deadline.  gen was read before the caller last looked at its
 * pending bits, so a signal set after that look moves it. */
static void share_park(uint64_t gen, int64_t deadline)
{
    tern_co *self = tern_self();
    tern_ticket t = tern_wait_prepare();
    int slot = -1;
    tern__spin_lock(&share_lock);
    if (atomic_load(&share_gen) == gen)
        for (int i = 0; i < SHARE_MAX && slot < 0; i++)
            if (!share_w[i].co) {
                share_w[i].co = self;
                share_w[i].t = t;
                slot = i;
            }
    tern__spin_unlock(&share_lock);
    if (slot < 0) {
        if (!tern_wait_cancel(t))
            tern_wait(t, "signal", deadline);
        if (atomic_load(&share_gen) == gen) {   /* the table was full */
            int64_t until = tern_now() + SHARE_POLL_NS;
            tern_sleep_until(deadline < until ? deadline : until);
        }
        return;
    }
    tern_wait(t, "signal", deadline);
    tern__spin_lock(&share_lock);       /* timed out: still listed */
    if (share_w[slot].co == self && share_w[slot].t == t)
        share_w[slot].co = NULL;
    tern__spin_unlock(&share_lock);
}

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
        tern__fd_adopt(fd);
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
 * the eventfd (the netpoller lets one coroutine wait on an fd) and the
 * others in share_w, woken by it (they used to poll the pending bits every
 * 10 ms, which woke an idle process 100 times a second).  Each takes only
 * its own signals and leaves the others' bits alone. */
static int wait_fd(int fd, uint64_t mask, int64_t deadline, const atomic_bool *quit)
{
    bool held = false;
    int ret;
    for (;;) {
        uint64_t gen = atomic_load(&share_gen);
        int sig = take(mask);
        if (sig) {
            ret = sig;
            break;
        }
        if (quit && atomic_load(quit)) {
            ret = -EINTR;
            break;
        }
        uint64_t v;
        if (read(fd, &v, sizeof v) == sizeof v) {
            share_wake();       /* the parked look at their bits */
            continue;
        }
        int rc = tern_fd_wait(fd, TERN_FD_READ, deadline);
        if (rc == -EBUSY) {
            share_park(gen, deadline);
            if (deadline != TERN_FOREVER && tern_now() >= deadline) {
                int late = take(mask);
                ret = late ? late : -ETIMEDOUT;
                break;
            }
            continue;
        }
        held = true;
        if (rc < 0) {
            int late = take(mask);
            ret = late ? late : rc;
            break;
        }
    }
    if (held)
        share_wake();           /* one of the parked takes the fd over */
    return ret;
}

int tern_signal_wait(const int *sigs, int n, int64_t deadline)
{
    return tern__signal_wait_or(sigs, n, deadline, NULL);
}

void tern__signal_interrupt(void)
{
    /* as a signal does, without a pending bit: the eventfd's holder wakes,
     * reads it and wakes the shared waiters, and each looks at its flag */
    int fd = atomic_load(&sig_fd);
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, the holder will wake anyway */
    }
}

int tern__signal_wait_or(const int *sigs, int n, int64_t deadline, const atomic_bool *quit)
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
    return wait_fd(atomic_load(&sig_fd), mask, deadline, quit);
}
