/*
 * cond.c - tern_cond and tern_once.
 *
 * Cond: a waiter queues itself before it unlocks the mutex, so a signal
 * sent after that unlock always finds it.  A wait bounded by a context
 * races the context for its ticket (tern__ctx_park), so signal and
 * broadcast claim each node they pop: a signal that finds a waiter
 * already leaving through its context passes on to the next one, and is
 * never lost.  Once: a done flag read with acquire on the fast path; the
 * slow path serialises on a mutex, so every caller returns only after the
 * one run finished (Go's guarantee).
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

int tern_cond_wait(tern_cond *c, tern_mutex *m, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(m);
    tern_waitq_node *n = waitq_self_node(tern__self_checked("tern_cond_wait"));
    waitq_lock(&c->q);
    waitq_push(&c->q, n);
    waitq_unlock(&c->q);
    tern_mutex_unlock(m);
    int r = tern__ctx_park(n->ticket, "cond", ctx, NULL);
    if (r != 0) {
        /* the context won: a signal that came meanwhile skipped us */
        waitq_lock(&c->q);
        if (n->queue == &c->q)
            waitq_unlink(&c->q, n);
        waitq_unlock(&c->q);
    }
    tern_mutex_lock(m);
    return r;
}

void tern_cond_signal(tern_cond *c)
{
    TERN_CHECK_ARG(c);
    waitq_lock(&c->q);
    tern_waitq_node *n = waitq_pop_claimed(&c->q);
    waitq_unlock(&c->q);
    if (n)
        tern__wake_finish(n->co, 0);
}

void tern_cond_broadcast(tern_cond *c)
{
    TERN_CHECK_ARG(c);
    /* Claimed under the lock, readied after it: a claimed waiter cannot
     * leave (and reuse its node) before it is readied. */
    tern_waitq woken = {0};
    tern_waitq_node *n;
    waitq_lock(&c->q);
    while ((n = waitq_pop_claimed(&c->q)))
        waitq_push(&woken, n);
    waitq_unlock(&c->q);
    waitq_wake_list(woken.head, true);
}

void tern_once_do(tern_once *o, void (*fn)(void *), void *arg)
{
    TERN_CHECK_ARG(o);
    TERN_CHECK_ARG(fn);
    if (atomic_load_explicit(&o->done, memory_order_acquire))
        return;
    tern_mutex_lock(&o->m);
    if (!atomic_load_explicit(&o->done, memory_order_relaxed)) {
        fn(arg);
        atomic_store_explicit(&o->done, 1, memory_order_release);
    }
    tern_mutex_unlock(&o->m);
}
