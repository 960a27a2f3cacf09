/*
 * waitgroup.c - tern_waitgroup (Go's sync.WaitGroup).
 *
 * The usual owner frees the wait group as soon as tern_waitgroup_wait
 * returns, while the coroutine whose done() brought the count to zero may
 * still be running code that touches it.  So the step to zero happens
 * only under the queue's lock (every other decrement is a lock-free CAS),
 * and a waiter that finds zero takes and drops that lock before returning:
 * by then the last done() has finished with the wait group, and it wakes
 * the queued waiters through their own nodes only.
 */
#define _GNU_SOURCE
#include "csp/waitq.h"

void tern_waitgroup_add(tern_waitgroup *wg, long delta)
{
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
    tern_waitq_node *all = NULL;
    if (nv == 0) {
        all = wg->q.head;
        wg->q.head = wg->q.tail = NULL;
    } else if (nv < 0) {
        tern__fatal("tern_waitgroup %p: negative counter (%ld): more done than added", (void *)wg,
                    nv);
    }
    waitq_unlock(&wg->q);
    waitq_wake_list(all, false);
}

void tern_waitgroup_done(tern_waitgroup *wg)
{
    tern_waitgroup_add(wg, -1);
}

void tern_waitgroup_wait(tern_waitgroup *wg)
{
    waitq_lock(&wg->q);
    if (atomic_load(&wg->count) == 0) {
        waitq_unlock(&wg->q);
        return;
    }
    tern_waitq_node *n = waitq_self_node(tern__self_checked("tern_waitgroup_wait"));
    waitq_push(&wg->q, n);
    waitq_unlock(&wg->q);
    tern_wait(n->ticket, "waitgroup", TERN_FOREVER);
}
