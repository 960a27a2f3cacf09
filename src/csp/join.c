/*
 * join.c - waiting for one coroutine (tern_go_options.join).
 *
 * The handle (struct tern_join, runtime/export.h) is written by the
 * runtime as the coroutine returns; this file is the waiting side, which
 * needs a context and so lives in csp.  A joiner links its own wait node
 * into the handle's list while the coroutine has not returned and parks
 * on it and on its ctx at once (tern__ctx_park): the returning coroutine
 * claims every linked node's ticket under the handle's lock, so a joiner
 * that lost to its ctx finds its node either still linked (and unlinks
 * it under the lock) or claimed and detached (and then nothing touches it
 * again, since the claim went to the context's wake, not to ours: the
 * runtime's claim of a ticket already won fails and drops the node).
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"
#include "tern/group.h"

#include <errno.h>

static void unlink_node(tern_join *j, tern_waitq_node *n)
{
    for (tern_waitq_node **pp = &j->waiters; *pp; pp = &(*pp)->next)
        if (*pp == n) {
            *pp = n->next;
            n->next = NULL;
            n->queue = NULL;
            return;
        }
}

int tern_join_wait(tern_join *j, int *result, tern_ctx *ctx)
{
    TERN_CHECK_ARG(j);
    tern_co *self = tern__self_checked("tern_join_wait");
    tern__spin_lock(&j->lock);
    if (j->done) {
        int r = j->result;
        tern__spin_unlock(&j->lock);
        if (result)
            *result = r;
        return 0;
    }
    int err = tern_ctx_err(ctx);
    if (err) {
        tern__spin_unlock(&j->lock);
        return err;
    }
    tern_waitq_node *n = waitq_self_node(self);
    n->next = j->waiters;
    n->queue = j;
    j->waiters = n;
    tern__spin_unlock(&j->lock);
    err = tern__ctx_park(n->ticket, "join", ctx, NULL);
    tern__spin_lock(&j->lock);
    if (err < 0 && !j->done)
        unlink_node(j, n);
    TERN_ASSERT(err < 0 || j->done);    /* only the return wakes with 0 */
    int r = j->result;
    tern__spin_unlock(&j->lock);
    if (err < 0)
        return err;
    if (result)
        *result = r;
    return 0;
}

int tern_join_try(tern_join *j, int *result)
{
    TERN_CHECK_ARG(j);
    tern__spin_lock(&j->lock);
    bool done = j->done;
    int r = j->result;
    tern__spin_unlock(&j->lock);
    if (!done)
        return -EAGAIN;
    if (result)
        *result = r;
    return 0;
}

void tern_join_free(tern_join *j)
{
    if (j)
        tern__join_unref(j);
}
