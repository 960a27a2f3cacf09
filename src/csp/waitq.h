/*
 * waitq.h - the FIFO of parked coroutines under every csp primitive: a
 * doubly linked list of tern_waitq_node under a spinlock, so a waiter
 * that timed out or was cancelled unlinks itself in O(1).
 *
 * The protocol around it is always the same: under the queue's lock the
 * waiter takes a ticket and links its node; a waker unlinks a node and
 * claims its ticket (tern__wake_claim), and only the claimer may move data
 * to the waiter and ready it.  A node whose claim fails belongs to a waiter
 * already woken by something else (a timeout, a context, another select
 * case): the waker just drops it.
 */
#ifndef TERN_CSP_WAITQ_H
#define TERN_CSP_WAITQ_H

#include "base/check.h"
#include "base/spin.h"
#include "runtime/export.h"
#include "tern/sync.h"

/* The public headers show each queue's lock as a bare atomic int (they
 * cannot include base/); it is used as a tern__spin through a cast. */
_Static_assert(sizeof(tern__spin) == sizeof(((tern_waitq *)0)->lock) &&
                   _Alignof(tern__spin) == _Alignof(atomic_int),
               "tern_waitq.lock is a tern__spin");
_Static_assert(sizeof(tern__spin) == sizeof(((tern_rwmutex *)0)->lock),
               "tern_rwmutex.lock is a tern__spin");

static inline void waitq_lock(tern_waitq *q)
{
    tern__spin_lock((tern__spin *)(void *)&q->lock);
}

static inline void waitq_unlock(tern_waitq *q)
{
    tern__spin_unlock((tern__spin *)(void *)&q->lock);
}

static inline void waitq_push(tern_waitq *q, tern_waitq_node *n)
{
    TERN_ASSERT(!q->head == !q->tail && (!q->tail || !q->tail->next));
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    n->queue = q;
}

static inline void waitq_push_front(tern_waitq *q, tern_waitq_node *n)
{
    TERN_ASSERT(!q->head == !q->tail && (!q->head || !q->head->prev));
    n->prev = NULL;
    n->next = q->head;
    if (q->head)
        q->head->prev = n;
    else
        q->tail = n;
    q->head = n;
    n->queue = q;
}

static inline void waitq_unlink(tern_waitq *q, tern_waitq_node *n)
{
    TERN_ASSERT(n->queue == q);
    TERN_ASSERT(n->prev ? n->prev->next == n : q->head == n);
    TERN_ASSERT(n->next ? n->next->prev == n : q->tail == n);
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->next = n->prev = NULL;
    n->queue = NULL;
}

static inline tern_waitq_node *waitq_pop(tern_waitq *q)
{
    tern_waitq_node *n = q->head;
    if (n)
        waitq_unlink(q, n);
    return n;
}

/* Claim a popped node's ticket (its queue's lock held).  A sole node's
 * ticket has no other claimer, so a store does it: one locked instruction
 * less per hand-off on the channels' plain waits. */
static inline bool waitq_claim(tern_waitq_node *n)
{
    if (n->sole) {
        tern__wake_claim_sole(n->co, n->ticket);
        return true;
    }
    return tern__wake_claim(n->co, n->ticket);
}

/* Pop nodes until one's ticket is claimed; NULL if none.  Lock held. */
static inline tern_waitq_node *waitq_pop_claimed(tern_waitq *q)
{
    tern_waitq_node *n;
    while ((n = waitq_pop(q)))
        if (waitq_claim(n))
            return n;
    return NULL;
}

/* Wake every node of a detached list (linked through next), after the
 * lock that guarded them is released.  The list head is usually on the
 * waker's stack, so each node's queue link is cleared first.  Unclaimed
 * nodes are woken with result 0; claimed ones are readied with their
 * case_idx. */
static inline void waitq_wake_list(tern_waitq_node *n, bool claimed)
{
    for (tern_waitq_node *nx; n; n = nx) {
        nx = n->next;           /* n is the waiter's once woken */
        n->queue = NULL;
        if (claimed)
            tern__wake_finish(n->co, n->case_idx);
        else
            tern_wake(n->co, n->ticket, 0);
    }
}

/* The calling coroutine's own node, ready to queue with a fresh ticket. */
static inline tern_waitq_node *waitq_self_node(tern_co *self)
{
    return tern__co_wait_node(self);
}

#endif
