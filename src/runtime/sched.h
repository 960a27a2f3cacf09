/*
 * sched.h - what the scheduler's files share: the run queues a coroutine
 * waits in between the ring (runq.h) and the pick order, and the calls one
 * of them makes into another.
 *
 * The scheduler is split by job: sched.c (its model, the switch, a
 * coroutine's life), park.c (tern_wait and tern_wake), idle.c (a P with
 * nothing to run: stealing, spinning, sleeping, deadlock), workers.c
 * (tern_run and the P loop) and report.c.  The queue operations below run
 * on every switch, park and wake, from several of those files, so they are
 * static inline here rather than calls across files.  Their locks: the
 * global queue is under S->lock, the inbox under its P's spinlock, the
 * yield queue and the ring's tail belong to the owning P.
 */
#ifndef TERN_RUNTIME_SCHED_H
#define TERN_RUNTIME_SCHED_H

#include "internal.h"
#include "runq.h"

#define S tern__sched

/* ---- sched.c ---- */
int tern__co_start(tern_p *p, tern_fn *fn, void *arg, const tern_go_options *opts, tern_co **out);
void tern__co_leave(tern_p *p, tern_co *self, int action);  /* the running coroutine leaves */
void tern__g0_run(tern_p *p, tern_co *co);          /* on the worker's own context */

/* ---- idle.c ---- */
tern_co *tern__find_runnable(tern_p *p);    /* NULL: stopping */
void tern__help_held_ps(tern_p *p);         /* a busy P's look at the others */
void tern__stop_all(void);

/* ---- global queue (S->lock) ------------------------------------------- */

static inline void gq_push_locked(tern_co *head, tern_co *tail, long n)
{
    TERN_ASSERT(n > 0 && head && tail && !head->pinned);
    TERN_ASSERT(!S->gq_tail == !S->gq_head);
    tail->next = NULL;
    if (S->gq_tail)
        S->gq_tail->next = head;
    else
        S->gq_head = head;
    S->gq_tail = tail;
    atomic_fetch_add(&S->ngq, n);
}

/* Take a fair share of the global queue: return one, queue the rest. */
static inline tern_co *gq_get_locked(tern_p *p)
{
    long n = atomic_load(&S->ngq);
    if (n == 0)
        return NULL;
    long want = n / S->nprocs + 1;
    if (want > TERN_RUNQ_SIZE / 2)
        want = TERN_RUNQ_SIZE / 2;
    tern_co *first = S->gq_head;
    TERN_ASSERT(first && n > 0);     /* ngq counts the list, under S->lock */
    S->gq_head = first->next;
    long got = 1;
    while (got < want && S->gq_head) {
        tern_co *co = S->gq_head;
        S->gq_head = co->next;
        if (!runq_push_tail(p, co)) {
            S->gq_head = co;
            break;
        }
        got++;
    }
    if (!S->gq_head)
        S->gq_tail = NULL;
    atomic_fetch_sub(&S->ngq, got);
    return first;
}

static inline tern_co *gq_get(tern_p *p)
{
    if (atomic_load_explicit(&S->ngq, memory_order_relaxed) == 0)
        return NULL;
    tern__spin_lock(&S->lock);
    tern_co *co = gq_get_locked(p);
    tern__spin_unlock(&S->lock);
    return co;
}

/* ---- local queues ------------------------------------------------------ */

/* Ring full: move half of it plus co to the global queue. */
static inline void runq_spill(tern_p *p, tern_co *co)
{
    tern_co *batch[TERN_RUNQ_SIZE / 2 + 1];
    uint32_t n = runq_grab(p, batch, true);
    batch[n++] = co;
    for (uint32_t i = 0; i + 1 < n; i++)
        batch[i]->next = batch[i + 1];
    tern__spin_lock(&S->lock);
    gq_push_locked(batch[0], batch[n - 1], n);
    tern__spin_unlock(&S->lock);
}

static inline void runq_put(tern_p *p, tern_co *co, bool next)
{
    TERN_ASSERT(!co->pinned);      /* pinned ones never enter the stealable ring */
    if (next) {
        /* Only the owner fills the slot; a thief only empties it.  So an
         * empty slot stays empty until we store: no locked instruction
         * (this is every wake-up's path).  The ring's push below is a
         * plain store too; tern__wakep's comment has the ordering. */
        if (!atomic_load_explicit(&p->runnext, memory_order_relaxed)) {
            atomic_store_explicit(&p->runnext, co, memory_order_release);
            return;
        }
        if (p->alone) {         /* no thief (see pick_local) */
            tern_co *prev = atomic_load_explicit(&p->runnext, memory_order_relaxed);
            atomic_store_explicit(&p->runnext, co, memory_order_relaxed);
            co = prev;
        } else {
            co = atomic_exchange_explicit(&p->runnext, co, memory_order_acq_rel);
        }
        if (!co)
            return;
    }
    if (!runq_push_tail(p, co))
        runq_spill(p, co);
}

/* Pinned (shared-stack) coroutines never enter the stealable ring; they
 * wait in the inbox, which other threads push to as well. */
static inline void inbox_push(tern_p *p, tern_co *co)
{
    TERN_ASSERT(co->pinned == p);
    tern__spin_lock(&p->inbox_lock);
    co->next = NULL;
    if (p->inbox)
        p->inbox_tail->next = co;
    else
        p->inbox = co;
    p->inbox_tail = co;
    tern__spin_unlock(&p->inbox_lock);
    atomic_fetch_add(&p->ninbox, 1);
}

static inline tern_co *inbox_pop(tern_p *p)
{
    if (atomic_load_explicit(&p->ninbox, memory_order_relaxed) == 0)
        return NULL;
    tern__spin_lock(&p->inbox_lock);
    tern_co *co = p->inbox;
    if (co)
        p->inbox = co->next;
    tern__spin_unlock(&p->inbox_lock);
    if (co)
        atomic_fetch_sub(&p->ninbox, 1);
    return co;
}

/* A P went idle: make yielded coroutines stealable. */
static inline void yq_spill(tern_p *p)
{
    tern_co *co;
    while ((co = p->yq_head)) {
        p->yq_head = co->next;
        runq_put(p, co, false);
    }
    atomic_store_explicit(&p->nyq, 0, memory_order_relaxed);
    tern__wakep();
}

static inline tern_co *pick_local(tern_p *p)
{
    p->tick++;
    /* Now and then look past the local queue so that the global queue
     * and the inbox cannot starve behind a busy ring.  (A countdown, not
     * tick % 61: a division costs more than the rest of the pick.) */
    if (--p->gq_countdown == 0) {
        p->gq_countdown = 61;
        tern_co *co = gq_get(p);
        if (co)
            return co;
    }
    if (p->tick & 1) {
        tern_co *co = inbox_pop(p);
        if (co)
            return co;
    }
    if (p->yq_head && atomic_load_explicit(&S->npidle, memory_order_relaxed) > 0)
        yq_spill(p);
    /* Plain load first: an exchange is a locked instruction even when the
     * slot is empty, and this is every switch's path. */
    tern_co *co = atomic_load_explicit(&p->runnext, memory_order_relaxed);
    if (co && p->alone) {
        /* Thieves are other Ps, and only the owner fills the slot: alone,
         * it is this thread's, and a plain store empties it (a locked
         * instruction less on every hand-off of a 1-P program). */
        atomic_store_explicit(&p->runnext, NULL, memory_order_relaxed);
        return co;
    }
    if (co && atomic_compare_exchange_strong_explicit(&p->runnext, &co, NULL, memory_order_acquire,
                                                      memory_order_relaxed))
        return co;
    co = runq_pop(p);
    if (co)
        return co;
    if ((co = p->yq_head)) {
        p->yq_head = co->next;
        atomic_store_explicit(&p->nyq, atomic_load_explicit(&p->nyq, memory_order_relaxed) - 1,
                              memory_order_relaxed);
        return co;
    }
    return inbox_pop(p);
}

static inline uint32_t fastrand(tern_p *p)
{
    uint32_t x = p->rand;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return p->rand = x;
}
#endif
