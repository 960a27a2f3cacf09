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
#include "csp/csp.h"

#include <errno.h>

#define sem_lock(s) waitq_lock(&(s)->q)
#define sem_unlock(s) waitq_unlock(&(s)->q)
#define Q(s) (&(s)->q)

/* Grant units to the waiters at the head that fit (lock held); the ones
 * granted are collected in *wake. */
static void grant(tern_sem *s, tern_waitq *wake)
{
    tern_waitq_node *n;
    while ((n = Q(s)->head) && s->size - s->cur >= n->n) {
        waitq_unlink(Q(s), n);
        if (!tern__wake_claim(n->co, n->ticket))
            continue;           /* its context won; it is leaving */
        s->cur += n->n;
        waitq_push(wake, n);
    }
}

int tern_sem_try_acquire(tern_sem *s, int64_t n)
{
    sem_lock(s);
    bool ok = n >= 0 && s->size - s->cur >= n && !Q(s)->head;
    if (ok)
        s->cur += n;
    sem_unlock(s);
    return ok ? 0 : -EAGAIN;
}

int tern_sem_acquire(tern_sem *s, int64_t n, tern_ctx *ctx)
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
    if (err) {
        sem_unlock(s);
        return err;
    }
    tern_co *self = tern__self_checked("tern_sem_acquire");
    tern_waitq_node *w = waitq_self_node(self);
    w->n = n;
    waitq_push(Q(s), w);
    sem_unlock(s);
    tern_waitq_node *cn = tern__co_ctx_node(self);
    int r = 0;
    if (ctx) {
        tern__ctx_ref(ctx);     /* another coroutine may free it meanwhile */
        cn->co = self;
        cn->ticket = w->ticket;
        cn->case_idx = 1;       /* the wake result that means "context" */
        if ((r = tern__ctx_watch(ctx, cn)) != 0 && !tern_wait_cancel(w->ticket))
            r = 0;              /* granted meanwhile: collect it */
    }
    if (r == 0)
        r = tern_wait(w->ticket, "semaphore", TERN_FOREVER) == 1 ? tern_ctx_err(ctx) : 0;
    /* (the context is read before the unref below) */
    if (ctx) {
        tern__ctx_unwatch(ctx, cn);
        tern__ctx_unref(ctx);
    }
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
    tern_waitq wake = {0};
    sem_lock(s);
    if (n < 0 || n > s->cur)
        tern__fatal("tern_sem_release of %lld units, %lld held", (long long)n, (long long)s->cur);
    s->cur -= n;
    grant(s, &wake);
    sem_unlock(s);
    waitq_wake_list(wake.head, true);
}
