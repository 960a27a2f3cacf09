/*
 * bulkhead.c - the bulkhead: a fixed number of calls inside, a bounded
 * queue of waiters, and shedding beyond it.
 *
 * The slots are a tern_sem (FIFO, ctx-aware, parks); the queue bound is a
 * separate atomic count of waiters, taken with a CAS before waiting so
 * the bound is never overshot.  in_flight is kept only for stats.
 */
#include "kit/resilience/internal.h"

#include "base/check.h"

#include <errno.h>
#include <stdlib.h>

#include "tern/sync.h"

struct tern_bulkhead {
    tern_sem sem;
    int queue;
    int64_t max_wait;
    atomic_int waiting;
    _Atomic uint64_t acquired, queued, shed, timeouts, in_flight;
};

int tern_bulkhead_new(const tern_bulkhead_options *o, tern_bulkhead **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o || o->max <= 0 || o->queue < 0 || o->max_wait < 0)
        return -EINVAL;
    tern_bulkhead *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->sem = (tern_sem)TERN_SEM_INIT(o->max);
    b->queue = o->queue;
    b->max_wait = o->max_wait;
    *out = b;
    return 0;
}

void tern_bulkhead_free(tern_bulkhead *b)
{
    free(b);
}

/* Claim a place in the queue, if one is free. */
static bool enqueue(tern_bulkhead *b)
{
    int w = atomic_load(&b->waiting);
    do {
        if (w >= b->queue)
            return false;
    } while (!atomic_compare_exchange_weak(&b->waiting, &w, w + 1));
    TERN_ASSERT(w >= 0 && w < b->queue);      /* the bound is never overshot */
    return true;
}

static int admitted(tern_bulkhead *b)
{
    tern__count(&b->acquired);
    tern__count(&b->in_flight);
    return 0;
}

int tern_bulkhead_acquire(tern_bulkhead *b, tern_ctx *ctx)
{
    TERN_CHECK_ARG(b);
    if (tern_sem_try_acquire(&b->sem, 1) == 0)
        return admitted(b);
    if (!enqueue(b)) {
        tern__count(&b->shed);
        return -EBUSY;
    }
    tern__count(&b->queued);
    tern_ctx *wait_ctx = ctx;
    int err = b->max_wait > 0 ? tern_ctx_with_timeout(ctx, b->max_wait, &wait_ctx) : 0;
    if (err < 0) {
        int was = atomic_fetch_sub(&b->waiting, 1);
        TERN_ASSERT(was > 0);
        return err;
    }
    int rc = tern_sem_acquire(&b->sem, 1, wait_ctx);
    if (wait_ctx != ctx)
        tern_ctx_free(wait_ctx);
    int was = atomic_fetch_sub(&b->waiting, 1);
    TERN_ASSERT(was > 0);               /* our own place in the queue */
    if (rc < 0) {
        tern__count(&b->timeouts);
        return rc;
    }
    return admitted(b);
}

void tern_bulkhead_release(tern_bulkhead *b)
{
    TERN_CHECK_ARG(b);
    uint64_t was = atomic_fetch_sub_explicit(&b->in_flight, 1, memory_order_relaxed);
    TERN_ASSERT(was > 0);               /* released more than acquired */
    tern_sem_release(&b->sem, 1);
}

int tern_bulkhead_stats(const tern_bulkhead *b, struct tern_bulkhead_stats *out)
{
    TERN_CHECK_ARG(b);
    TERN_CHECK_ARG(out);
    out->acquired = tern__load(&b->acquired);
    out->queued = tern__load(&b->queued);
    out->shed = tern__load(&b->shed);
    out->timeouts = tern__load(&b->timeouts);
    out->in_flight = tern__load(&b->in_flight);
    return 0;
}
