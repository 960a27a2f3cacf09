/*
 * timer.c - per-P deadline timers: a 4-ary min-heap of the tern_timer
 * embedded in each waiting coroutine, under a per-P spinlock so that a
 * coroutine woken on another P can delete its timer.
 *
 * Firing claims the waiter's ticket with tern_wake(-ETIMEDOUT); whoever
 * claims first (timer or real waker) wins.  A timer is popped under the
 * lock but fired outside it, with `firing` set, so tern__timer_del() can
 * wait for a running callback to finish before the coroutine reuses the
 * timer for its next wait.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int64_t tern_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec;
}

struct tern__clock_line tern__mon_clock;

int64_t tern__coarse_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec;
}

int64_t tern_deadline_after(int64_t ns)
{
    if (ns < 0)
        return TERN_FOREVER;
    int64_t now = tern_now();
    return ns > INT64_MAX - now ? INT64_MAX : now + ns;
}

int tern__timers_init(tern_p *p)
{
    p->capheap = 64;
    p->heap = malloc((size_t)p->capheap * sizeof *p->heap);
    if (!p->heap)
        return -ENOMEM;
    atomic_store(&p->nheap, 0);
    atomic_store(&p->timer_next, INT64_MAX);
    return 0;
}

void tern__timers_free(tern_p *p)
{
    /* Timers still queued outlive this runtime (a context's deadline):
     * detach them so that stopping one later touches no freed heap. */
    for (int32_t i = 0; p->heap && i < atomic_load(&p->nheap); i++) {
        atomic_store(&p->heap[i]->p, NULL);
        p->heap[i]->idx = -1;
    }
    atomic_store(&p->nheap, 0);
    free(p->heap);
    p->heap = NULL;
}

static void heap_set(tern_p *p, int32_t i, tern_timer *t)
{
    p->heap[i] = t;
    t->idx = i;
}

static void sift_up(tern_p *p, int32_t i)
{
    tern_timer *t = p->heap[i];
    while (i > 0) {
        int32_t parent = (i - 1) / 4;
        if (p->heap[parent]->when <= t->when)
            break;
        heap_set(p, i, p->heap[parent]);
        i = parent;
    }
    heap_set(p, i, t);
    TERN_ASSERT(i == 0 || p->heap[(i - 1) / 4]->when <= t->when);   /* heap order */
}

static void sift_down(tern_p *p, int32_t i)
{
    int32_t n = atomic_load_explicit(&p->nheap, memory_order_relaxed);
    tern_timer *t = p->heap[i];
    for (;;) {
        int32_t c = 4 * i + 1, best = -1;
        int64_t bw = t->when;
        for (int32_t k = c; k < c + 4 && k < n; k++)
            if (p->heap[k]->when < bw) {
                bw = p->heap[k]->when;
                best = k;
            }
        if (best < 0)
            break;
        heap_set(p, i, p->heap[best]);
        i = best;
    }
    heap_set(p, i, t);
}

static void heap_remove_at(tern_p *p, int32_t i)
{
    int32_t n = atomic_load_explicit(&p->nheap, memory_order_relaxed) - 1;
    TERN_ASSERT(i >= 0 && i <= n);
    tern_timer *t = p->heap[i];
    TERN_ASSERT(t->idx == i && atomic_load_explicit(&t->p, memory_order_relaxed) == p);
    atomic_store_explicit(&p->nheap, n, memory_order_relaxed);
    if (i != n) {
        heap_set(p, i, p->heap[n]);
        sift_down(p, i);
        sift_up(p, p->heap[i]->idx);
    }
    t->idx = -1;
    /* release: whoever sees NULL must also see `firing` set by a popper */
    atomic_store_explicit(&t->p, NULL, memory_order_release);
}

static void publish_next(tern_p *p)
{
    int64_t w = atomic_load_explicit(&p->nheap, memory_order_relaxed) ? p->heap[0]->when : INT64_MAX;
    atomic_store(&p->timer_next, w);
}

void tern__timer_add(tern_p *p, tern_timer *t, int64_t when)
{
    /* a timer is in one heap at most, once */
    TERN_ASSERT(atomic_load_explicit(&t->p, memory_order_relaxed) == NULL);
    tern__spin_lock(&p->timer_lock);
    int32_t n = atomic_load_explicit(&p->nheap, memory_order_relaxed);
    TERN_ASSERT(n <= p->capheap);
    if (n == p->capheap) {
        tern_timer **h = realloc(p->heap, (size_t)p->capheap * 2 * sizeof *h);
        if (!h)
            tern__fatal("out of memory growing the timer heap of P %d to %d timers", p->id,
                        p->capheap * 2);
        p->heap = h;
        p->capheap *= 2;
    }
    t->when = when;
    atomic_store_explicit(&t->p, p, memory_order_relaxed);
    p->heap[n] = t;
    atomic_store_explicit(&p->nheap, n + 1, memory_order_relaxed);
    sift_up(p, n);
    publish_next(p);
    tern__spin_unlock(&p->timer_lock);
}

bool tern__timer_stop(tern_timer *t)
{
    for (;;) {
        tern_p *p = atomic_load_explicit(&t->p, memory_order_acquire);
        if (!p)
            return false;
        tern__spin_lock(&p->timer_lock);
        if (atomic_load_explicit(&t->p, memory_order_relaxed) == p) {
            heap_remove_at(p, t->idx);
            publish_next(p);
            tern__spin_unlock(&p->timer_lock);
            return true;
        }
        tern__spin_unlock(&p->timer_lock);
    }
}

void tern__timer_del(tern_timer *t)
{
    tern__timer_stop(t);
    /* the firer is inside tern_wake: microseconds, unless preempted */
    unsigned n = 0;
    while (atomic_load(&t->firing))
        tern__spin_pause(&n);
}

int tern__timers_run(tern_p *p, int64_t now)
{
    int woken = 0;
    for (;;) {
        tern__spin_lock(&p->timer_lock);
        if (atomic_load_explicit(&p->nheap, memory_order_relaxed) == 0 || p->heap[0]->when > now) {
            publish_next(p);
            tern__spin_unlock(&p->timer_lock);
            return woken;
        }
        tern_timer *t = p->heap[0];
        atomic_store(&t->firing, 1);
        heap_remove_at(p, 0);
        tern_co *co = t->co;
        tern_ticket tk = t->ticket;
        void (*fn)(tern_timer *) = t->fn;
        tern__spin_unlock(&p->timer_lock);
        if (fn) {
            /* A callback owns its timer's lifetime (it may free it): no
             * touching t after, and nobody waits on `firing` for it. */
            atomic_store(&t->firing, 0);
            fn(t);
        } else {
            woken += tern_wake(co, tk, -ETIMEDOUT);
            atomic_store(&t->firing, 0);
        }
    }
}

int tern__timer_start(tern_timer *t, int64_t when, void (*fn)(tern_timer *))
{
    tern_sched *s = tern__sched;
    if (!s)
        return -ESRCH;
    tern_p *cur = tern__cur_p(), *p = cur ? cur : &s->ps[0];
    t->fn = fn;
    t->co = NULL;
    tern__timer_add(p, t, when);
    if (p != cur)
        tern__p_kick(p);    /* it may sleep past the new deadline */
    return 0;
}
