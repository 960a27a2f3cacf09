/*
 * waitgroup.c - tern_waitgroup (Go's sync.WaitGroup).
 *
 * The usual owner frees the wait group as soon as tern_waitgroup_wait
 * returns, while the coroutine whose done() brought the count to zero may
 * still be running code that touches it.  So the step to zero happens
 * only under the queue's lock (every other decrement is a lock-free CAS),
 * and a waiter that finds zero takes and drops that lock before returning:
 * by then the last done() has finished with the wait group, and it wakes
 * the queued waiters through their own nodes only.  A wait bounded by a
 * context races it for the ticket (tern__ctx_park), so the step to zero
 * claims each waiter under the lock: one that already left through its
 * context is dropped, and one claimed cannot leave before it is woken.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

void tern_waitgroup_add(tern_waitgroup *wg, long delta)
{
    TERN_CHECK_ARG(wg);
    long v = atomic_load(&wg->count);
    for (;;) {
        long nv = v + delta;
        if (nv < 0)
            tern__fatal("tern_waitgroup %p: negative counter (%ld): more done than added",
                        (void *)wg, nv);
        if (nv == 0 && delta != 0)
            break;
        if (atomic_compare_exchange_weak(&wg->count, &v, nv))
            return;
    }
    waitq_lock(&wg->q);
    long nv = atomic_fetch_add(&wg->count, delta) + delta;
    tern_waitq woken = {0};
    tern_waitq_node *n;
    if (nv == 0) {
        while ((n = waitq_pop_claimed(&wg->q)))
            waitq_push(&woken, n);
    } else if (nv < 0) {
        tern__fatal("tern_waitgroup %p: negative counter (%ld): more done than added", (void *)wg,
                    nv);
    }
    waitq_unlock(&wg->q);
    waitq_wake_list(woken.head, true);
}

void tern_waitgroup_done(tern_waitgroup *wg)
{
    TERN_CHECK_ARG(wg);
    tern_waitgroup_add(wg, -1);
}

int tern_waitgroup_wait(tern_waitgroup *wg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(wg);
    waitq_lock(&wg->q);
    if (atomic_load(&wg->count) == 0) {
        waitq_unlock(&wg->q);
        return 0;
    }
    tern_waitq_node *n = waitq_self_node(tern__self_checked("tern_waitgroup_wait"));
    TERN_ASSERT(atomic_load(&wg->count) > 0);
    waitq_push(&wg->q, n);
    waitq_unlock(&wg->q);
    int r = tern__ctx_park(n->ticket, "waitgroup", ctx, NULL);
    if (r != 0) {
        waitq_lock(&wg->q);
        if (n->queue == &wg->q)
            waitq_unlink(&wg->q, n);
        waitq_unlock(&wg->q);
    }
    return r;
}
