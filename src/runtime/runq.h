/*
 * runq.h - a P's local run queue: a bounded ring plus a `next` slot.
 *
 * Only the owning P pushes (at tail).  The owner pops at head and thieves
 * grab half of the ring at head, both by CAS on head, so the ring is
 * single-producer, multi-consumer and lock-free (Go's runq design).  A
 * thief reads slots before its CAS; if the CAS fails it discards what it
 * read, so a slot overwritten meanwhile is never used.
 *
 * `next` holds the coroutine readied last by this P: it runs before the
 * ring, which keeps a ping-pong pair on one core with a hot cache.
 */
#ifndef TERN_RUNQ_H
#define TERN_RUNQ_H

#include "internal.h"

#define RQ_RELAXED memory_order_relaxed
#define RQ_ACQ memory_order_acquire
#define RQ_REL memory_order_release

/* Indexes run free and wrap at 2^32, so the ring's slot (i % size) stays
 * continuous across the wrap only if the size divides 2^32. */
_Static_assert((TERN_RUNQ_SIZE & (TERN_RUNQ_SIZE - 1)) == 0, "TERN_RUNQ_SIZE is a power of two");

/* Push at tail; false if the ring is full (the caller spills). */
static inline bool runq_push_tail(tern_p *p, tern_co *co)
{
    TERN_ASSERT(co && tern__cur_p() == p);      /* only the owner pushes */
    uint32_t h = atomic_load_explicit(&p->runq_head, RQ_ACQ);
    uint32_t t = atomic_load_explicit(&p->runq_tail, RQ_RELAXED);
    if (t - h >= TERN_RUNQ_SIZE)
        return false;
    atomic_store_explicit(&p->runq[t % TERN_RUNQ_SIZE], co, RQ_RELAXED);
    atomic_store_explicit(&p->runq_tail, t + 1, RQ_REL);
    return true;
}

/* Take up to half of the ring from head into batch; returns the count. */
static inline uint32_t runq_grab(tern_p *p, tern_co **batch, bool owner)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&p->runq_head, RQ_ACQ);
        uint32_t t = atomic_load_explicit(&p->runq_tail, RQ_ACQ);
        uint32_t n = t - h;
        n -= n / 2;
        if (n == 0)
            return 0;
        if (n > TERN_RUNQ_SIZE / 2) {
            if (owner)
                n = TERN_RUNQ_SIZE / 2;
            else
                continue;       /* read h and t at different times: retry */
        }
        for (uint32_t i = 0; i < n; i++)
            batch[i] = atomic_load_explicit(&p->runq[(h + i) % TERN_RUNQ_SIZE], RQ_RELAXED);
        if (atomic_compare_exchange_weak_explicit(&p->runq_head, &h, h + n, RQ_REL, RQ_RELAXED)) {
            TERN_ASSERT(n <= TERN_RUNQ_SIZE / 2 && batch[0] && batch[n - 1]);
            return n;
        }
    }
}

/* Pop one from the ring (not `next`). */
static inline tern_co *runq_pop(tern_p *p)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&p->runq_head, RQ_ACQ);
        uint32_t t = atomic_load_explicit(&p->runq_tail, RQ_RELAXED);
        if (t == h)
            return NULL;
        TERN_ASSERT(t - h <= TERN_RUNQ_SIZE);  /* t is ours; h only grows */
        tern_co *co = atomic_load_explicit(&p->runq[h % TERN_RUNQ_SIZE], RQ_RELAXED);
        if (p->alone) {
            /* no thief: the head is ours too (see pick_local) */
            atomic_store_explicit(&p->runq_head, h + 1, RQ_REL);
            TERN_ASSERT(co);
            return co;
        }
        if (atomic_compare_exchange_weak_explicit(&p->runq_head, &h, h + 1, RQ_REL, RQ_RELAXED)) {
            TERN_ASSERT(co);
            return co;
        }
    }
}

static inline uint32_t runq_len(tern_p *p)
{
    uint32_t h = atomic_load_explicit(&p->runq_head, RQ_RELAXED);
    uint32_t t = atomic_load_explicit(&p->runq_tail, RQ_RELAXED);
    uint32_t n = t - h;
    if (n > TERN_RUNQ_SIZE)
        n = 0;
    return n + (atomic_load_explicit(&p->runnext, RQ_RELAXED) != NULL);
}

#endif
