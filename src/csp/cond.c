/*
 * cond.c - tern_cond and tern_once.
 *
 * Cond: a waiter queues itself before it unlocks the mutex, so a signal
 * sent after that unlock always finds it.  Once: a done flag read with
 * acquire on the fast path; the slow path serialises on a mutex, so every
 * caller returns only after the one run finished (Go's guarantee).
 */
#define _GNU_SOURCE
#include "csp/waitq.h"

void tern_cond_wait(tern_cond *c, tern_mutex *m)
{
    tern_waitq_node *n = waitq_self_node(tern__self_checked("tern_cond_wait"));
    waitq_lock(&c->q);
    waitq_push(&c->q, n);
    waitq_unlock(&c->q);
    tern_mutex_unlock(m);
    tern_wait(n->ticket, "cond", TERN_FOREVER);
    tern_mutex_lock(m);
}

void tern_cond_signal(tern_cond *c)
{
    waitq_lock(&c->q);
    tern_waitq_node *n = waitq_pop(&c->q);
    waitq_unlock(&c->q);
    if (n)
        tern_wake(n->co, n->ticket, 0);
}

void tern_cond_broadcast(tern_cond *c)
{
    waitq_lock(&c->q);
    tern_waitq_node *all = c->q.head;
    c->q.head = c->q.tail = NULL;
    waitq_unlock(&c->q);
    waitq_wake_list(all, false);
}

void tern_once_do(tern_once *o, void (*fn)(void *), void *arg)
{
    if (atomic_load_explicit(&o->done, memory_order_acquire))
        return;
    tern_mutex_lock(&o->m);
    if (!atomic_load_explicit(&o->done, memory_order_relaxed)) {
        fn(arg);
        atomic_store_explicit(&o->done, 1, memory_order_release);
    }
    tern_mutex_unlock(&o->m);
}
