/*
 * netpoll_epoll.c - socket readiness on edge-triggered epoll.
 *
 * Each fd gets a descriptor on first tern_fd_wait() and one epoll
 * registration (IN|OUT|RDHUP|ET) for its lifetime, as in Go's netpoller.
 * A descriptor holds, per direction, either the waiting coroutine and its
 * ticket or a "ready" bit that an edge left behind when nobody waited, so
 * an edge between a caller's EAGAIN and its wait is never lost.  Once the
 * peer has closed (RDHUP, HUP, ERR) a read wait returns at once, however
 * many times it is asked: a reader that has not seen the EOF yet may wait
 * before reading (see tern_conn_read) and must not sleep on it.  Epoll
 * events carry the fd and the descriptor's generation, so an event for a
 * closed-and-reused fd number is dropped.
 *
 * A descriptor may also hold one hup watch (tern__fd_on_hup): a callback
 * run under the descriptor's lock when the peer goes, so disarming it
 * under the same lock is a clean handshake with no waiting.
 *
 * Descriptors live in a two-level table indexed by fd: blocks are
 * allocated on demand and never move, so lookups take no lock.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "sanitizer.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 1024
#define NBLOCKS 4096                    /* fds up to 4M */

typedef struct pdir {
    tern_co *co;                        /* waiter, or NULL */
    tern_ticket ticket;
    bool ready;                         /* an edge nobody consumed yet */
} pdir;

typedef struct pdesc {
    tern__spin lock;
    uint32_t gen;
    bool registered;
    bool hup;                           /* peer closed / error: reads never block again */
    pdir dir[2];                        /* read, write */
    void (*hup_fn)(void *);             /* tern__fd_on_hup's watch, or NULL */
    void *hup_arg;
    /* read-side events (IN, RDHUP, HUP, ERR) taken from epoll: written
     * under lock, read without (tern__fd_read_mark) */
    _Atomic uint32_t rd_events;
} pdesc;

static _Atomic(pdesc *) table[NBLOCKS];
static int epfd = -1, evfd = -1;

static pdesc *desc_of(int fd, bool create)
{
    if (fd < 0 || fd >= BLOCK * NBLOCKS)
        return NULL;
    pdesc *b = atomic_load_explicit(&table[fd / BLOCK], memory_order_acquire);
    if (!b) {
        if (!create)
            return NULL;
        pdesc *nb = calloc(BLOCK, sizeof *nb);
        if (!nb)
            return NULL;
        if (!atomic_compare_exchange_strong(&table[fd / BLOCK], &b, nb))
            free(nb);
        else
            b = nb;
    }
    return &b[fd % BLOCK];
}

int tern__netpoll_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -errno;
    evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (evfd < 0) {
        int e = -errno;
        close(epfd);
        return e;
    }
    /* Level-triggered, drained only by the blocking poller: with an edge,
     * a non-blocking poll on another P could take the edge meant to wake
     * the sleeping poller, which would then sleep on. */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev) < 0) {
        int e = -errno;
        close(evfd);
        close(epfd);
        return e;
    }
    return 0;
}

void tern__netpoll_fini(void)
{
    for (int i = 0; i < NBLOCKS; i++) {
        pdesc *b = atomic_exchange(&table[i], NULL);
        free(b);
    }
    if (evfd >= 0)
        close(evfd);
    if (epfd >= 0)
        close(epfd);
    evfd = epfd = -1;
}

void tern__netpoll_break(void)
{
    uint64_t one = 1;
    if (write(evfd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is already non-zero, the poller will wake */
    }
}

/* Register fd with epoll, once per descriptor generation; under d->lock.
 * 0 or epoll_ctl's -errno. */
static int enroll(pdesc *d, int fd)
{
    if (d->registered)
        return 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = (uint64_t)d->gen << 32 | (uint32_t)fd};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    d->registered = true;
    return 0;
}

int tern_fd_wait(int fd, int events, int64_t deadline)
{
    tern_co *self = tern__self_checked("tern_fd_wait");
    if (!(events & (TERN_FD_READ | TERN_FD_WRITE)) || (events & ~(TERN_FD_READ | TERN_FD_WRITE)))
        return -EINVAL;
    pdesc *d = desc_of(fd, true);
    if (!d)
        return fd < 0 ? -EBADF : -ENOMEM;
    tern__spin_lock(&d->lock);
    int e = enroll(d, fd);
    if (e < 0) {
        tern__spin_unlock(&d->lock);
        /* Regular files and the like are always ready. */
        return e == -EPERM ? 0 : e;
    }
    for (int i = 0; i < 2; i++) {
        if (!(events & (1 << i)))
            continue;
        if (d->dir[i].ready || (i == 0 && d->hup)) {
            d->dir[i].ready = false;
            tern__spin_unlock(&d->lock);
            return 0;
        }
        if (d->dir[i].co) {
            tern__spin_unlock(&d->lock);
            return -EBUSY;
        }
    }
    tern_ticket t = tern_wait_prepare();
    for (int i = 0; i < 2; i++)
        if (events & (1 << i)) {
            d->dir[i].co = self;
            d->dir[i].ticket = t;
        }
    atomic_fetch_add(&tern__sched->fd_waiters, 1);
    tern__spin_unlock(&d->lock);

    /* the waker finds us through d, not our stack */
    int r = tern__wait_r(t, (events & TERN_FD_READ) ? "fd read" : "fd write", deadline);

    tern__spin_lock(&d->lock);
    for (int i = 0; i < 2; i++)
        if (d->dir[i].co == self && d->dir[i].ticket == t)
            d->dir[i].co = NULL;
    atomic_fetch_sub(&tern__sched->fd_waiters, 1);
    tern__spin_unlock(&d->lock);
    return r;
}

/* Under d->lock: d forgets its file (out of epoll, no hang-up, no watch,
 * a new generation so that the old file's queued events are ignored).
 * A closed file's registration left epoll with it (the DEL says ENOENT);
 * a live one goes, to be added again on the next wait. */
static void record_reset(pdesc *d, int fd)
{
    if (d->registered && epfd >= 0)
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    d->registered = false;
    d->hup = false;
    d->hup_fn = NULL;
    d->gen++;
}

void tern__fd_forget(int fd)
{
    pdesc *d = desc_of(fd, false);
    if (d) {
        tern_co *w[2] = {NULL, NULL};
        tern__spin_lock(&d->lock);
        record_reset(d, fd);
        for (int i = 0; i < 2; i++) {
            /* Claim under the lock the waiter cleans up under: a waiter
             * that lost to its timer may otherwise leave, exit and free
             * its control block before we get to it. */
            tern_co *co = d->dir[i].co;
            if (co && (i == 0 || co != w[0]) && tern__wake_claim(co, d->dir[i].ticket))
                w[i] = co;
            d->dir[i] = (pdir){0};
        }
        tern__spin_unlock(&d->lock);
        for (int i = 0; i < 2; i++)
            if (w[i])
                tern__wake_finish(w[i], -EBADF);
    }
}

void tern__fd_adopt(int fd)
{
    pdesc *d = desc_of(fd, false);
    if (!d)
        return;
    tern__spin_lock(&d->lock);
    if (d->registered || d->hup || d->hup_fn) {
        record_reset(d, fd);
        d->dir[0].ready = d->dir[1].ready = false;     /* the waiters stay */
    }
    tern__spin_unlock(&d->lock);
}

uint32_t tern__fd_read_mark(int fd)
{
    pdesc *d = desc_of(fd, false);
    return d ? atomic_load_explicit(&d->rd_events, memory_order_acquire) : 0;
}

/* How old the last poll may be for the records to speak for the kernel:
 * an event after it is not in them yet. */
#define QUIET_FRESH_NS (1 * TERN_MS)

bool tern__fd_read_quiet(int fd, uint32_t mark)
{
    pdesc *d = desc_of(fd, false);
    if (!d)
        return false;
    /* The records are as fresh as the last poll, and nobody polls while
     * no coroutine waits on an fd (a process whose only sockets are a
     * client's idle ones): a FIN that came then is still in epoll's
     * queue.  So only while a poller sleeps in epoll_wait (it takes each
     * event as it comes) or one polled within QUIET_FRESH_NS. */
    if (!atomic_load_explicit(&tern__sched->netpoll_blocked, memory_order_acquire) &&
        tern_now() - atomic_load_explicit(&tern__sched->last_poll, memory_order_acquire) > QUIET_FRESH_NS)
        return false;
    tern__spin_lock(&d->lock);
    /* Unregistered: epoll would not have told us anything.  The hang-up
     * flag, because a FIN taken before the mark still ends the stream
     * after the bytes that read got.  A ready bit alone is an edge taken
     * before the mark (any later one moved the count), for bytes that
     * read consumed. */
    bool quiet = d->registered && !d->hup &&
                 atomic_load_explicit(&d->rd_events, memory_order_relaxed) == mark;
    tern__spin_unlock(&d->lock);
    return quiet;
}

int tern_fd_close(int fd)
{
    tern__fd_forget(fd);
    return close(fd) == 0 ? 0 : -errno;
}

int tern__fd_on_hup(int fd, void (*fn)(void *arg), void *arg)
{
    TERN_ASSERT(fn);
    pdesc *d = desc_of(fd, true);
    if (!d)
        return fd < 0 ? -EBADF : -ENOMEM;
    tern__spin_lock(&d->lock);
    int rc = enroll(d, fd);     /* a conn whose reads never had to wait */
    if (rc == 0) {
        if (d->hup) {
            rc = 1;
        } else if (d->hup_fn) {
            rc = -EBUSY;
        } else {
            d->hup_fn = fn;
            d->hup_arg = arg;
        }
    }
    tern__spin_unlock(&d->lock);
    return rc;
}

void tern__fd_on_hup_clear(int fd)
{
    pdesc *d = desc_of(fd, false);
    if (!d)
        return;
    tern__spin_lock(&d->lock);
    d->hup_fn = NULL;
    tern__spin_unlock(&d->lock);
}

/* Wake waiters for ready fds; returns how many coroutines it readied. */
int tern__netpoll(int64_t timeout_ns)
{
    struct epoll_event evs[128];
    int n;
    if (timeout_ns == 0) {
        n = epoll_wait(epfd, evs, 128, 0);
    } else {
        struct timespec ts, *tp = NULL;
        if (timeout_ns > 0) {
            ts.tv_sec = timeout_ns / TERN_SEC;
            ts.tv_nsec = timeout_ns % TERN_SEC;
            tp = &ts;
        }
#ifdef TERN_TSAN
        /* TSan delivers signals inside the blocking calls it intercepts:
         * epoll_wait is one, epoll_pwait2 (GCC 12's runtime) is not, and a
         * signal landing there would wait for the thread's next libc call.
         * Millisecond timeouts are fine for a sanitizer build. */
        n = -1;
        errno = ENOSYS;
        (void)tp;
#else
        n = epoll_pwait2(epfd, evs, 128, tp, NULL);
#endif
        if (n < 0 && errno == ENOSYS) {
            int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + TERN_MS - 1) / TERN_MS);
            n = epoll_wait(epfd, evs, 128, ms);
        }
    }
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    int woken = 0;
    for (int i = 0; i < n; i++) {
        uint64_t data = evs[i].data.u64;
        if (data == UINT64_MAX) {
            uint64_t v;
            if (timeout_ns != 0 && read(evfd, &v, sizeof v) < 0) {
                /* EAGAIN: drained already */
            }
            continue;
        }
        int fd = (int)(uint32_t)data;
        pdesc *d = desc_of(fd, false);
        if (!d)
            continue;
        uint32_t e = evs[i].events;
        bool dirs[2] = {(e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0,
                        (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0};
        tern_co *w[2] = {NULL, NULL};
        tern__spin_lock(&d->lock);
        if (d->gen == (uint32_t)(data >> 32) && d->registered) {
            if (dirs[0]) {
                /* one writer (under the lock): a store, not a locked add */
                uint32_t n = atomic_load_explicit(&d->rd_events, memory_order_relaxed);
                atomic_store_explicit(&d->rd_events, n + 1, memory_order_release);
            }
            if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                d->hup = true;
                if (d->hup_fn) {
                    void (*fn)(void *) = d->hup_fn;
                    d->hup_fn = NULL;
                    fn(d->hup_arg);
                }
            }
            for (int k = 0; k < 2; k++) {
                if (!dirs[k])
                    continue;
                tern_co *co = d->dir[k].co;
                if (!co) {
                    d->dir[k].ready = true;
                    continue;
                }
                tern_ticket t = d->dir[k].ticket;
                /* a waiter on both directions is one wait: clear both */
                for (int j = 0; j < 2; j++)
                    if (d->dir[j].co == co && d->dir[j].ticket == t)
                        d->dir[j].co = NULL;
                /* claimed under the lock, for the reason in tern_fd_close */
                if (tern__wake_claim(co, t))
                    w[k] = co;
                else
                    /* Its wait ended first (deadline, or another
                     * direction): keep the edge for its next wait, which
                     * would otherwise park on a socket that is ready and
                     * will not signal again. */
                    d->dir[k].ready = true;
            }
        }
        tern__spin_unlock(&d->lock);
        for (int k = 0; k < 2; k++)
            if (w[k]) {
                tern__wake_finish(w[k], 0);
                woken++;
            }
    }
    return woken;
}
