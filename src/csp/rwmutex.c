/*
 * rwmutex.c - tern_rwmutex: many readers or one writer.
 *
 * A small state under a spinlock: `readers` counts active readers, or is
 * -1 while a writer holds it.  A writer that must wait counts itself in
 * writers_waiting, which turns new readers away into the read queue, so a
 * stream of readers cannot starve writers.  Releases hand the lock over
 * directly: the last reader out passes it to the first waiting writer; a
 * writer passes it to every waiting reader at once if there are any (so
 * writers cannot starve readers either), else to the next writer.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/waitq.h"

#include <errno.h>

static void rw_lock(tern_rwmutex *rw)
{
    tern__spin_lock((tern__spin *)(void *)&rw->lock);
}

static void rw_unlock(tern_rwmutex *rw)
{
    tern__spin_unlock((tern__spin *)(void *)&rw->lock);
}

void tern_rwmutex_rlock(tern_rwmutex *rw)
{
    TERN_CHECK_ARG(rw);
    rw_lock(rw);
    if (rw->readers >= 0 && rw->writers_waiting == 0) {
        rw->readers++;
        rw_unlock(rw);
        return;
    }
    tern_waitq_node *n = waitq_self_node(tern__self_checked("tern_rwmutex_rlock"));
    TERN_ASSERT(rw->readers == -1 || rw->writers_waiting > 0);
    waitq_push(&rw->rq, n);
    rw_unlock(rw);
    tern__wait_r(n->ticket, "rwmutex read", TERN_FOREVER);   /* counted in for us */
}

int tern_rwmutex_try_rlock(tern_rwmutex *rw)
{
    TERN_CHECK_ARG(rw);
    rw_lock(rw);
    bool ok = rw->readers >= 0 && rw->writers_waiting == 0;
    if (ok)
        rw->readers++;
    rw_unlock(rw);
    return ok ? 0 : -EAGAIN;
}

void tern_rwmutex_runlock(tern_rwmutex *rw)
{
    TERN_CHECK_ARG(rw);
    rw_lock(rw);
    if (rw->readers <= 0)
        tern__fatal("tern_rwmutex_runlock of rwmutex %p not read-locked", (void *)rw);
    tern_waitq_node *w = NULL;
    if (--rw->readers == 0 && (w = waitq_pop(&rw->wq))) {
        TERN_ASSERT(rw->writers_waiting > 0);
        rw->readers = -1;
        rw->writers_waiting--;
    }
    rw_unlock(rw);
    if (w)
        tern_wake(w->co, w->ticket, 0);
}

void tern_rwmutex_lock(tern_rwmutex *rw)
{
    TERN_CHECK_ARG(rw);
    rw_lock(rw);
    if (rw->readers == 0) {
        rw->readers = -1;
        rw_unlock(rw);
        return;
    }
    tern_waitq_node *n = waitq_self_node(tern__self_checked("tern_rwmutex_lock"));
    rw->writers_waiting++;
    waitq_push(&rw->wq, n);
    rw_unlock(rw);
    tern__wait_r(n->ticket, "rwmutex write", TERN_FOREVER);  /* handed to us */
}

int tern_rwmutex_try_lock(tern_rwmutex *rw)
{
    TERN_CHECK_ARG(rw);
    rw_lock(rw);
    bool ok = rw->readers == 0;     /* then no one queues either */
    if (ok)
        rw->readers = -1;
    rw_unlock(rw);
    return ok ? 0 : -EAGAIN;
}

void tern_rwmutex_unlock(tern_rwmutex *rw)
{
    TERN_CHECK_ARG(rw);
    rw_lock(rw);
    if (rw->readers != -1)
        tern__fatal("tern_rwmutex_unlock of rwmutex %p not write-locked", (void *)rw);
    tern_waitq wake = {0};
    if (rw->rq.head) {
        rw->readers = 0;
        tern_waitq_node *n;
        while ((n = waitq_pop(&rw->rq))) {
            rw->readers++;
            waitq_push(&wake, n);
        }
    } else if ((wake.head = waitq_pop(&rw->wq))) {
        TERN_ASSERT(rw->writers_waiting > 0);
        rw->writers_waiting--;          /* readers stays -1: handed over */
        wake.head->next = NULL;
    } else {
        TERN_ASSERT(rw->writers_waiting == 0);  /* each waiting writer is queued */
        rw->readers = 0;
    }
    rw_unlock(rw);
    waitq_wake_list(wake.head, false);
}
