/*
 * sem.c - tern_sem, a weighted semaphore (golang.org/x/sync/semaphore).
 *
 * Waiters queue in FIFO order with the units they want; a release grants
 * from the head for as long as the head fits, so a large request is never
 * overtaken by small ones.  An acquire bounded by a context also watches
 * the context; whichever claims the waiter's ticket first decides, and a
 * waiter that lost to the context unlinks itself and, being no longer at
 * the head, may let the next ones through.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

#include <errno.h>

#define sem_lock(s) waitq_lock(&(s)->q)
#define sem_unlock(s) waitq_unlock(&(s)->q)
#define Q(s) (&(s)->q)

/* Grant units to the waiters at the head that fit (lock held); the ones
 * granted are collected in *wake. */
static void grant(tern_sem *s, tern_waitq *wake)
{
    TERN_ASSERT(0 <= s->cur && s->cur <= s->size);
    tern_waitq_node *n;
    while ((n = Q(s)->head) && s->size - s->cur >= n->n) {
        waitq_unlink(Q(s), n);
        if (!tern__wake_claim(n->co, n->ticket))
            continue;           /* its context won; it is leaving */
        s->cur += n->n;
        waitq_push(wake, n);
    }
    TERN_ASSERT(s->cur <= s->size);
}

int tern_sem_try_acquire(tern_sem *s, int64_t n)
{
    TERN_CHECK_ARG(s);
    sem_lock(s);
    bool ok = n >= 0 && s->size - s->cur >= n && !Q(s)->head;
    if (ok)
        s->cur += n;
    sem_unlock(s);
    return ok ? 0 : -EAGAIN;
}

int tern_sem_acquire(tern_sem *s, int64_t n, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    return tern__sem_acquire(s, n, ctx, NULL);
}

int tern__sem_acquire(tern_sem *s, int64_t n, tern_ctx *ctx, tern_ctx *ctx2)
{
    if (n < 0 || n > s->size)
        return -EINVAL;
    sem_lock(s);
    if (s->size - s->cur >= n && !Q(s)->head) {
        s->cur += n;
        sem_unlock(s);
        return 0;
    }
    int err = tern_ctx_err(ctx);
    if (err || (err = tern_ctx_err(ctx2))) {
        sem_unlock(s);
        return err;
    }
    tern_waitq_node *w = waitq_self_node(tern__self_checked("tern_sem_acquire"));
    TERN_ASSERT(0 <= n && n <= s->size);    /* so a release can always grant it */
    w->n = n;
    waitq_push(Q(s), w);
    sem_unlock(s);
    int r = tern__ctx_park(w->ticket, "semaphore", ctx, ctx2);
    if (r != 0) {
        /* Not granted: leave the queue; if we were at its head, the ones
         * behind may fit now. */
        tern_waitq wake = {0};
        sem_lock(s);
        if (w->queue)
            waitq_unlink(Q(s), w);
        grant(s, &wake);
        sem_unlock(s);
        waitq_wake_list(wake.head, true);
    }
    return r;
}

void tern_sem_release(tern_sem *s, int64_t n)
{
    TERN_CHECK_ARG(s);
    tern_waitq wake = {0};
    sem_lock(s);
    if (n < 0 || n > s->cur)
        tern__fatal("tern_sem_release of %lld units, %lld held", (long long)n, (long long)s->cur);
    s->cur -= n;
    grant(s, &wake);
    sem_unlock(s);
    waitq_wake_list(wake.head, true);
}
