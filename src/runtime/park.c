/*
 * park.c - parking and readying coroutines: wait tickets, tern_wait,
 * tern_wake and tern__ready, sleeps, and the per-P cache of wait-queue
 * nodes.  The states and the one-claim-per-ticket rule are in sched.c's
 * opening comment; the second half of a park (RUNNING -> WAITING) is done
 * by whoever runs next, in after_switch (sched.c).
 */
#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

#include "base/check.h"

void tern__inject(tern_co *co)
{
    tern__spin_lock(&S->lock);
    gq_push_locked(co, co, 1);
    tern__spin_unlock(&S->lock);
    tern__wakep();
}

void tern__ready(tern_co *co)
{
    for (;;) {
        /* acquire: pairs with after_switch's RUNNING -> WAITING, so the
         * parker's saved context is ours to hand on */
        uint32_t s = atomic_load_explicit(&co->status, memory_order_acquire);
        if (s == CO_WAITING) {
            /* A plain store, not a CAS: the parker has finished switching
             * out, and only the claimer of its ticket readies it, so no
             * other thread writes the status until it is queued.  (The
             * queue's release store publishes it.) */
            atomic_store_explicit(&co->status, CO_RUNNABLE, memory_order_relaxed);
            /* Once queued, co may run, exit and be freed on another P:
             * read what we need of it first. */
            tern_p *p = tern__cur_p(), *pin = co->pinned;
            if (pin) {
                inbox_push(pin, co);
                if (pin != p)
                    tern__p_kick(pin);
            } else if (p) {
                runq_put(p, co, true);
                tern__wakep();
            } else {
                tern__inject(co);
            }
            return;
        }
        if (s == CO_RUNNING) {
            /* still on its stack (not yet parked, or switching out):
             * after_switch or tern_wait finds the mark */
            if (atomic_compare_exchange_weak(&co->status, &s, CO_NOTIFIED))
                return;
            continue;
        }
        tern__fatal("readying coroutine %llu '%s' in state %u: a wake without a wait",
                    (unsigned long long)co->id, tern__co_name(co), s);
    }
}

/* ---- public: parking ---------------------------------------------------- */

tern_ticket tern_wait_prepare(void)
{
    return tern__prepare(tern__self_checked("tern_wait_prepare"));
}

tern_ticket tern__prepare(tern_co *co)
{
    if (atomic_load_explicit(&co->status, memory_order_relaxed) == CO_NOTIFIED)
        tern__fatal("tern_wait_prepare in coroutine %llu '%s': the previous ticket was woken "
                    "but never collected with tern_wait",
                    (unsigned long long)co->id, tern__co_name(co));
    uint64_t t = (atomic_load_explicit(&co->wait_word, memory_order_relaxed) >> 1) + 1;
    /* release: wakers find the ticket through a lock or queue that orders
     * it anyway; a seq_cst store would cost a locked instruction per wait */
    atomic_store_explicit(&co->wait_word, t << 1, memory_order_release);
    return t;
}

bool tern_wait_cancel(tern_ticket t)
{
    tern_co *co = tern__self_checked("tern_wait_cancel");
    uint64_t w = t << 1;
    return atomic_compare_exchange_strong(&co->wait_word, &w, w | 1);
}

bool tern__wake_claim(tern_co *co, tern_ticket t)
{
    uint64_t w = t << 1;
    if (!atomic_compare_exchange_strong(&co->wait_word, &w, w | 1))
        return false;
    /* The claimer may write into the waiter's stack next (a channel's
     * value): if the monitor gave its pages back, copy them in first.
     * Dekker with release.c's try_release: it marks RELEASING, then looks
     * at the claim bit; we claim, then look at the mark (both seq_cst), so
     * one of us sees the other. */
    if (atomic_load(&co->stk_out) != STK_IN)
        tern__stack_restore(co);
    return true;
}

void tern__wake_claim_sole(tern_co *co, tern_ticket t)
{
    TERN_ASSERT(atomic_load_explicit(&co->wait_word, memory_order_relaxed) == t << 1);
    /* A coroutine whose waits may give their stack back: the monitor is a
     * second party here (release.c looks at the claim bit after marking
     * RELEASING), so the full claim, whose seq_cst CAS and look at stk_out
     * are the other half of that handshake, and which copies the stack
     * back before the caller writes a value into it.  rel_ok is the
     * waiter's, written only while it runs, before it queued this node
     * under the lock we hold.  Guard mode needs none of it: a write into a
     * released stack faults and copies it back, and the switch that
     * resumes the waiter checks (release.c). */
    if (co->rel_ok && !tern__release_guard) {
        bool claimed = tern__wake_claim(co, t);
        TERN_ASSERT(claimed);       /* a sole node has no other claimer */
        (void)claimed;
        return;
    }
    /* relaxed: the readying that follows (a release into a run queue, or
     * the NOTIFIED CAS) publishes it to the waiter */
    atomic_store_explicit(&co->wait_word, t << 1 | 1, memory_order_relaxed);
}

void tern__wake_finish(tern_co *co, int result)
{
    /* only the ticket's claimer readies */
    TERN_ASSERT(atomic_load_explicit(&co->wait_word, memory_order_relaxed) & 1);
    co->wait_result = result;
    tern__ready(co);
}

bool tern_wake(tern_co *co, tern_ticket t, int result)
{
    TERN_CHECK_ARG(co);
    if (!tern__wake_claim(co, t))
        return false;
    tern__wake_finish(co, result);
    return true;
}

#define NODE_CACHE_MAX 256

tern_waitq_node *tern__node_get(void)
{
    tern_p *p = tern__cur_p();
    tern_waitq_node *n = p ? p->free_nodes : NULL;
    if (n) {
        p->free_nodes = n->next;
        p->nfree_nodes--;
    } else if (!(n = malloc(sizeof *n))) {
        return NULL;
    }
    n->sole = false;
    return n;
}

void tern__node_put(tern_waitq_node *n)
{
    tern_p *p = tern__cur_p();
    if (p && p->nfree_nodes < NODE_CACHE_MAX) {
        n->next = p->free_nodes;
        p->free_nodes = n;
        p->nfree_nodes++;
    } else {
        free(n);
    }
}

int tern_wait(tern_ticket t, const char *reason, int64_t deadline)
{
    tern_p *p = tern__cur_p();
    if (!p || !p->cur)
        tern__self_checked("tern_wait");    /* reports and aborts */
    tern_co *co = p->cur;
    uint64_t w = atomic_load(&co->wait_word);
    TERN_ASSERT(atomic_load_explicit(&co->status, memory_order_relaxed) == CO_RUNNING ||
                atomic_load_explicit(&co->status, memory_order_relaxed) == CO_NOTIFIED);
    if (w >> 1 != t)
        tern__fatal("tern_wait in coroutine %llu '%s': ticket %llu is stale (current %llu)",
                    (unsigned long long)co->id, tern__co_name(co), (unsigned long long)t,
                    (unsigned long long)(w >> 1));
    bool timed = false;
    if (deadline != TERN_FOREVER && !(w & 1)) {
        if (deadline <= tern_now()) {
            if (tern_wait_cancel(t))
                return -ETIMEDOUT;
        } else {
            co->timer.co = co;
            co->timer.ticket = t;
            tern__timer_add(p, &co->timer, deadline);
            timed = true;
        }
    }
    atomic_store_explicit(&co->wait_reason, reason, memory_order_relaxed);
    atomic_store_explicit(&co->state_since, tern__coarse_now(), memory_order_relaxed);
    /* Woken already (a waker found us RUNNING and left NOTIFIED): no
     * switch.  Otherwise switch out still RUNNING; after_switch moves us
     * to WAITING, or requeues us if a waker came meanwhile.  No locked
     * instruction here: the one CAS per park is after_switch's.  Acquire:
     * the waker's wait_result. */
    if (atomic_load_explicit(&co->status, memory_order_acquire) == CO_NOTIFIED)
        atomic_store_explicit(&co->status, CO_RUNNING, memory_order_relaxed);
    else
        tern__co_leave(p, co, SW_PARK);
    /* one readying per wait, by whoever claimed this ticket */
    TERN_ASSERT(atomic_load_explicit(&co->wait_word, memory_order_relaxed) == (t << 1 | 1));
    TERN_ASSERT(atomic_load_explicit(&co->status, memory_order_relaxed) == CO_RUNNING);
    if (timed)
        tern__timer_del(&co->timer);
    atomic_store_explicit(&co->wait_reason, NULL, memory_order_relaxed);
    return co->wait_result;
}

int tern__wait_r(tern_ticket t, const char *reason, int64_t deadline)
{
    tern_p *p = tern__cur_p();
    if (!p || !p->cur)
        tern__self_checked("tern_wait");    /* reports and aborts */
    tern_co *co = p->cur;
    if (!co->rel_ok)
        return tern_wait(t, reason, deadline);
    /* relaxed: the monitor reads it after seeing WAITING, which the
     * park's status CAS publishes */
    atomic_store_explicit(&co->park_rel, true, memory_order_relaxed);
    if (co->rel_promise)        /* its own field: a plain read */
        STAT_ADD(p->st_relparks, 1);
    else
        STAT_ADD(p->st_anyparks, 1);
    int r = tern_wait(t, reason, deadline);
    atomic_store_explicit(&co->park_rel, false, memory_order_relaxed);
    return r;
}

bool tern__stack_release_allow(bool on)
{
    tern_co *co = tern__self_checked("tern__stack_release_allow");
    bool was = co->rel_promise;
    rel_promise_set(co, on);
    co->rel_ok = on || (tern__release_guard && co->stack.reg && !co->keep_stack);
    return was;
}

int tern_sleep_until(int64_t deadline)
{
    tern__self_checked("tern_sleep_until");
    if (deadline == TERN_FOREVER)
        tern__fatal("tern_sleep_until(TERN_FOREVER): a sleep must end");
    tern_ticket t = tern_wait_prepare();
    tern__wait_r(t, "sleep", deadline);    /* the timer is in the control block */
    return 0;
}

int tern_sleep(int64_t ns)
{
    if (ns <= 0) {
        tern_yield();
        return 0;
    }
    return tern_sleep_until(tern_now() + ns);
}
