/*
 * sched.c - the M:N scheduler: Ps, run queues, work stealing, park/wake.
 *
 * Model.  A P is a logical processor with its own worker thread (1:1: tern
 * never blocks a worker in a syscall, blocking calls go to the offload pool,
 * so Go's M/P split buys nothing here).  Each P owns a local run queue
 * (runq.h), a timer heap (timer.c) and caches of free coroutines.  A global
 * queue takes overflow and coroutines readied by foreign threads.
 *
 * Switching.  A coroutine that yields or parks picks its successor from its
 * P's queues and switches to it directly; only when there is none does it
 * switch to the worker's own context ("g0"), which runs find_runnable():
 * timers, global queue, netpoll, stealing, then sleep.  The context that
 * just left cannot be published (queued, marked parked) before its
 * registers are saved, or another P could resume a half-saved context; so
 * each switch records (prev, action) in the P and the context that resumes
 * finishes the job in after_switch().
 *
 * Parking.  tern_wait() moves RUNNING -> PARKING, switches out, and
 * after_switch() moves PARKING -> WAITING.  tern_wake() claims the ticket
 * (exactly one claim per ticket succeeds) and readies: WAITING -> RUNNABLE
 * plus enqueue, or RUNNING/PARKING -> NOTIFIED, in which case the parker
 * sees NOTIFIED and stays runnable.  Every ticket is claimed at most once
 * and every wait consumes exactly one readying, so a late waker can never
 * wake a later wait.
 *
 * Idle workers.  A P that finds nothing spins (steals) if fewer than half
 * of the busy Ps spin, else sleeps: the first sleeper with fd waiters
 * blocks in epoll_wait, the others on a futex, each with its nearest timer
 * as timeout.  wakep() wakes one idle P only if nobody spins; a spinner
 * that finds work wakes the next (Go's rule), so work never strands and
 * idle Ps are not woken in herds.  When the last P goes idle with no timer,
 * fd waiter or offloaded call left to wake anyone, the program is
 * deadlocked and says so.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/check.h"
#include "mctx.h"
#include "runq.h"
#include "sanitizer.h"

tern_sched *tern__sched;
#define S tern__sched

static __thread tern_p *tls_p;

/* Not inlined, so that a coroutine which migrated to another thread reads
 * that thread's TLS: compilers may cache a TLS address across a call. */
__attribute__((noinline)) tern_p *tern__cur_p(void)
{
    __asm__ __volatile__("" ::: "memory");
    return tls_p;
}

/* ---- reports ----------------------------------------------------------- */

static tern_runtime_report_fn *_Atomic report_fn;
static void *_Atomic report_arg;

void tern_runtime_set_report_hook(tern_runtime_report_fn *fn, void *arg)
{
    atomic_store(&report_arg, arg);
    atomic_store(&report_fn, fn);
}

static void vreport(const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    tern_runtime_report_fn *fn = atomic_load(&report_fn);
    if (fn)
        fn(buf, atomic_load(&report_arg));
    else
        fprintf(stderr, "tern: %s\n", buf);
}

void tern__report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

void tern__fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    abort();
}

/* ---- futex ------------------------------------------------------------- */

static void futex_wait(atomic_uint *w, unsigned val, int64_t timeout_ns)
{
#ifdef TERN_TSAN
    /* TSan runs a signal's handler only from inside an intercepted libc
     * call; a raw futex wait is none, so a signal (SIGTERM for a graceful
     * stop) landing on a sleeping P would wait until that thread's next
     * libc call, which may never come.  So under TSan the wait is bounded
     * and followed by an intercepted call (usleep), where TSan delivers
     * it.  Seen in CI as examples/svc's downstream ignoring SIGTERM. */
    if (timeout_ns < 0 || timeout_ns > 50 * TERN_MS)
        timeout_ns = 50 * TERN_MS;
#endif
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / TERN_SEC;
        ts.tv_nsec = timeout_ns % TERN_SEC;
        tp = &ts;
    }
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT_PRIVATE, val, tp, NULL, 0);
#ifdef TERN_TSAN
    usleep(0);
#endif
}

static void futex_wake(atomic_uint *w)
{
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---- global queue (S->lock) ------------------------------------------- */

static void gq_push_locked(tern_co *head, tern_co *tail, long n)
{
    tail->next = NULL;
    if (S->gq_tail)
        S->gq_tail->next = head;
    else
        S->gq_head = head;
    S->gq_tail = tail;
    atomic_fetch_add(&S->ngq, n);
}

/* Take a fair share of the global queue: return one, queue the rest. */
static tern_co *gq_get_locked(tern_p *p)
{
    long n = atomic_load(&S->ngq);
    if (n == 0)
        return NULL;
    long want = n / S->nprocs + 1;
    if (want > TERN_RUNQ_SIZE / 2)
        want = TERN_RUNQ_SIZE / 2;
    tern_co *first = S->gq_head;
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

static tern_co *gq_get(tern_p *p)
{
    if (atomic_load_explicit(&S->ngq, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&S->lock);
    tern_co *co = gq_get_locked(p);
    pthread_mutex_unlock(&S->lock);
    return co;
}

/* ---- local queues ------------------------------------------------------ */

/* Ring full: move half of it plus co to the global queue. */
static void runq_spill(tern_p *p, tern_co *co)
{
    tern_co *batch[TERN_RUNQ_SIZE / 2 + 1];
    uint32_t n = runq_grab(p, batch, true);
    batch[n++] = co;
    for (uint32_t i = 0; i + 1 < n; i++)
        batch[i]->next = batch[i + 1];
    pthread_mutex_lock(&S->lock);
    gq_push_locked(batch[0], batch[n - 1], n);
    pthread_mutex_unlock(&S->lock);
}

static void runq_put(tern_p *p, tern_co *co, bool next)
{
    if (next) {
        co = atomic_exchange_explicit(&p->runnext, co, memory_order_acq_rel);
        if (!co)
            return;
    }
    if (!runq_push_tail(p, co))
        runq_spill(p, co);
}

/* Pinned (shared-stack) coroutines never enter the stealable ring; they
 * wait in the inbox, which other threads push to as well. */
static void inbox_push(tern_p *p, tern_co *co)
{
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

static tern_co *inbox_pop(tern_p *p)
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
static void yq_spill(tern_p *p)
{
    tern_co *co;
    while ((co = p->yq_head)) {
        p->yq_head = co->next;
        runq_put(p, co, false);
    }
    atomic_store_explicit(&p->nyq, 0, memory_order_relaxed);
    tern__wakep();
}

static void yq_push(tern_p *p, tern_co *co)
{
    co->next = NULL;
    if (p->yq_head)
        p->yq_tail->next = co;
    else
        p->yq_head = co;
    p->yq_tail = co;
    atomic_store_explicit(&p->nyq, atomic_load_explicit(&p->nyq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static tern_co *pick_local(tern_p *p)
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

static void enqueue_local(tern_p *p, tern_co *co, bool next)
{
    if (co->pinned)
        inbox_push(p, co);
    else
        runq_put(p, co, next);
}

/* ---- idle Ps and wake-ups --------------------------------------------- */

static void idle_remove_locked(tern_p *p)
{
    for (tern_p **pp = &S->idle; *pp; pp = &(*pp)->idle_next) {
        if (*pp == p) {
            *pp = p->idle_next;
            p->is_idle = false;
            atomic_fetch_sub(&S->npidle, 1);
            return;
        }
    }
}

static void p_signal(tern_p *p)
{
    atomic_store(&p->wake_word, 1);
    if (atomic_load(&p->in_netpoll))
        tern__netpoll_break();
    futex_wake(&p->wake_word);
}

/* Wake an idle P to look for work, unless one is already looking. */
void tern__wakep(void)
{
#if !defined(__x86_64__)
    /* Order the caller's queue store before these loads, against an idle
     * P's npidle store and queue re-check (Dekker).  On x86 the queue
     * push's locked instruction or TSO already does this. */
    atomic_thread_fence(memory_order_seq_cst);
#endif
    if (atomic_load_explicit(&S->npidle, memory_order_relaxed) == 0)
        return;
    int zero = 0;
    if (atomic_load_explicit(&S->nspinning, memory_order_relaxed) != 0 ||
        !atomic_compare_exchange_strong(&S->nspinning, &zero, 1))
        return;
    pthread_mutex_lock(&S->lock);
    tern_p *p = S->idle;
    if (p) {
        S->idle = p->idle_next;
        p->is_idle = false;
        atomic_fetch_sub(&S->npidle, 1);
        atomic_store(&p->wake_spinning, true);
    }
    pthread_mutex_unlock(&S->lock);
    if (p)
        p_signal(p);
    else
        atomic_fetch_sub(&S->nspinning, 1);
}

/* Wake p itself if it sleeps (for its inbox, or a timer armed from
 * elsewhere). */
void tern__p_kick(tern_p *p)
{
    pthread_mutex_lock(&S->lock);
    bool idle = p->is_idle;
    if (idle)
        idle_remove_locked(p);
    pthread_mutex_unlock(&S->lock);
    if (idle)
        p_signal(p);
}

/* Stop every worker.  `stopping` is set under S->lock because a P going
 * idle looks at it and then clears its wake word under that lock: set
 * without the lock, the stop and its signal could land between the look
 * and the clear, the signal be erased, and that P sleep for good (no
 * timer left to end it) while tern_run waited to join it.  Under the lock
 * a P either sees the stop or has cleared its word before the signal. */
static void stop_all(void)
{
    pthread_mutex_lock(&S->lock);
    atomic_store(&S->stopping, true);
    pthread_mutex_unlock(&S->lock);
    for (int i = 0; i < S->nprocs; i++)
        p_signal(&S->ps[i]);
}

void tern__inject(tern_co *co)
{
    pthread_mutex_lock(&S->lock);
    gq_push_locked(co, co, 1);
    pthread_mutex_unlock(&S->lock);
    tern__wakep();
}

void tern__ready(tern_co *co)
{
    for (;;) {
        uint32_t s = atomic_load(&co->status);
        if (s == CO_WAITING) {
            if (!atomic_compare_exchange_weak(&co->status, &s, CO_RUNNABLE))
                continue;
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
        if (s == CO_RUNNING || s == CO_PARKING) {
            if (atomic_compare_exchange_weak(&co->status, &s, CO_NOTIFIED))
                return;
            continue;
        }
        tern__fatal("readying coroutine %llu '%s' in state %u: a wake without a wait",
                    (unsigned long long)co->id, tern__co_name(co), s);
    }
}

/* ---- switching --------------------------------------------------------- */

static void shared_load(tern_p *p, tern_co *co);
static void co_recycle(tern_p *p, tern_co *co);

static void stack_overflow(tern_co *co)
{
    tern__fatal("stack overflow in coroutine %llu '%s' (stack %zu bytes): the canary below "
                "its stack was overwritten; raise tern_go_options.stack_size",
                (unsigned long long)co->id, tern__co_name(co), co->stack.size);
}

/* The one place contexts change.  from_fake: where this context keeps its
 * ASan fake stack; NULL when it is dying. */
static inline void mctx_switch(void **from_sp, void **from_fake, void *to_sp, const void *to_lo,
                              size_t to_size, void *to_tsan)
{
#ifdef TERN_ASAN
    __sanitizer_start_switch_fiber(from_fake, to_lo, to_size);
#else
    (void)from_fake, (void)to_lo, (void)to_size;
#endif
#ifdef TERN_TSAN
    __tsan_switch_to_fiber(to_tsan, 0);
#else
    (void)to_tsan;
#endif
    tern__mctx_switch(from_sp, to_sp);
#ifdef TERN_ASAN
    if (from_fake)
        __sanitizer_finish_switch_fiber(*from_fake, NULL, NULL);
#endif
}

static inline void co_stack_bounds(tern_co *co, const void **lo, size_t *size)
{
    if (co->pinned) {
        *lo = co->pinned->shared.lo;
        *size = co->pinned->shared.size;
    } else {
        *lo = co->stack.lo;
        *size = co->stack.size;
    }
}

/* Finish the switch for the context that left (see the top comment). */
static void after_switch(tern_p *p)
{
    tern_co *prev = p->prev;
    if (!prev)
        return;
    p->prev = NULL;
    switch (p->prev_action) {
    case SW_YIELD:
        atomic_store_explicit(&prev->status, CO_RUNNABLE, memory_order_release);
        if (prev->pinned) {
            inbox_push(p, prev);
        } else if (atomic_load_explicit(&S->npidle, memory_order_relaxed) > 0) {
            /* Stealable, but no wakep: waking a P per yield would be a
             * futex storm, and Go's Gosched does not wake one either. */
            runq_put(p, prev, false);
        } else {
            yq_push(p, prev);
        }
        break;
    case SW_PARK: {
        uint32_t s = CO_PARKING;
        if (!atomic_compare_exchange_strong(&prev->status, &s, CO_WAITING)) {
            atomic_store_explicit(&prev->status, CO_RUNNABLE, memory_order_release); /* NOTIFIED */
            enqueue_local(p, prev, true);
        }
        break;
    }
    case SW_EXIT:
        co_recycle(p, prev);
        break;
    }
}

static tern_co *pick_next(tern_p *p)
{
    if (atomic_load_explicit(&S->stopping, memory_order_relaxed))
        return NULL;
    if ((p->tick & 7) == 0 &&
        atomic_load_explicit(&p->timer_next, memory_order_relaxed) != INT64_MAX)
        tern__timers_run(p, tern_now());
    return pick_local(p);
}

/* Called by the running coroutine: leave the CPU with `action`. */
static void co_leave(tern_p *p, tern_co *self, int action)
{
    if (!tern__stack_guard_on && !self->pinned &&
        (!tern__stack_canary_ok(&self->stack) || (char *)__builtin_frame_address(0) < self->stack.lo))
        stack_overflow(self);
    tern_co *next = pick_next(p);
    p->prev = self;
    p->prev_action = action;
    STAT_ADD(p->st_switches, 1);
    void **fake = action == SW_EXIT ? NULL : &self->asan_fake;
    if (next && next->pinned && p->shared_owner != next) {
        p->g0_next = next;      /* stack copies happen on the worker's stack */
        next = NULL;
    }
    if (next) {
        atomic_store_explicit(&next->status, CO_RUNNING, memory_order_relaxed);
        __atomic_store_n(&p->cur, next, __ATOMIC_RELAXED);
        const void *lo;
        size_t size;
        co_stack_bounds(next, &lo, &size);
        mctx_switch(&self->sp, fake, next->sp, lo, size, next->tsan_fiber);
    } else {
        __atomic_store_n(&p->cur, NULL, __ATOMIC_RELAXED);
        mctx_switch(&self->sp, fake, p->g0_sp, p->g0_stack_lo, p->g0_stack_size, p->g0_tsan_fiber);
    }
    /* resumed, perhaps on another P */
    after_switch(tern__cur_p());
}

/* g0: run co until the P comes back to the scheduler. */
static void g0_run(tern_p *p, tern_co *co)
{
    while (co) {
        if (co->pinned && p->shared_owner != co)
            shared_load(p, co);
        atomic_store_explicit(&co->status, CO_RUNNING, memory_order_relaxed);
        __atomic_store_n(&p->cur, co, __ATOMIC_RELAXED);
        atomic_store_explicit(&p->st_running, 1, memory_order_relaxed);
        const void *lo;
        size_t size;
        co_stack_bounds(co, &lo, &size);
        mctx_switch(&p->g0_sp, &p->g0_asan_fake, co->sp, lo, size, co->tsan_fiber);
        atomic_store_explicit(&p->st_running, 0, memory_order_relaxed);
        __atomic_store_n(&p->cur, NULL, __ATOMIC_RELAXED);
        after_switch(p);
        co = p->g0_next;
        p->g0_next = NULL;
    }
}

/* ---- shared stacks ----------------------------------------------------- */

__attribute__((no_sanitize("address", "thread"))) static void stack_copy(char *dst, const char *src,
                                                                       size_t n)
{
    /* A plain loop: the bytes are another context's frames, poisoned
     * redzones included, which memcpy's interceptor would flag. */
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

static void shared_load(tern_p *p, tern_co *co)
{
    char *top = p->shared.lo + p->shared.size;
    tern_co *owner = p->shared_owner;
    if (owner && owner != co) {
        size_t len = (size_t)(top - (char *)owner->sp);
        if (len > owner->save_cap) {
            /* 64-byte steps: this buffer is most of what a parked
             * shared-stack coroutine costs */
            size_t cap = (len + 63) & ~(size_t)63;
            char *buf = realloc(owner->save_buf, cap);
            if (!buf)
                tern__fatal("out of memory saving the stack of coroutine %llu '%s' (%zu bytes)",
                            (unsigned long long)owner->id, tern__co_name(owner), len);
            owner->save_buf = buf;
            owner->save_cap = cap;
        }
        stack_copy(owner->save_buf, owner->sp, len);
        owner->save_len = len;
    }
    stack_copy(top - co->save_len, co->save_buf, co->save_len);
    p->shared_owner = co;
}

/* ---- coroutine lifecycle ---------------------------------------------- */

static void co_main(void *arg)
{
    tern_co *co = arg;
#ifdef TERN_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    after_switch(tern__cur_p());
    int r = co->fn(co->arg);
    tern_p *p = tern__cur_p();
    if (co->is_main) {
        S->main_result = r;
        stop_all();
    }
    atomic_store(&co->status, CO_DEAD);
    co_leave(p, co, SW_EXIT);
    tern__fatal("dead coroutine %llu resumed", (unsigned long long)co->id);
}

static void co_recycle(tern_p *p, tern_co *co)
{
#ifdef TERN_TSAN
    __tsan_destroy_fiber(co->tsan_fiber);
    co->tsan_fiber = NULL;
#endif
    STAT_ADD(p->st_exited, 1);
    atomic_store(&co->status, CO_FREE);
    if (co->pinned && co->pinned->shared_owner == co)
        co->pinned->shared_owner = NULL;
    if (co->pinned || co->stack.size != S->stack_default) {
        tern__co_discard(p, co);
        return;
    }
    tern__co_cache_put(p, co);
}

static uint64_t next_id(tern_p *p)
{
    if (p->id_next == p->id_end) {
        p->id_next = atomic_fetch_add(&S->id_gen, 64);
        p->id_end = p->id_next + 64;
    }
    return p->id_next++;
}

static int co_start(tern_p *p, tern_fn *fn, void *arg, const tern_go_options *opts, tern_co **out)
{
    size_t size = opts && opts->stack_size ? opts->stack_size : S->stack_default;
    tern_stack_mode mode = opts ? opts->stack_mode : TERN_STACK_OWN;
    if (size > TERN_STACK_MAX || (mode != TERN_STACK_OWN && mode != TERN_STACK_SHARED))
        return -EINVAL;
#ifdef TERN_ASAN
    mode = TERN_STACK_OWN;      /* ASan's shadow cannot follow copied frames */
#endif
    if (size < TERN_STACK_MIN)
        size = TERN_STACK_MIN;
    size = (size + S->page - 1) & ~(S->page - 1);
    bool shared = mode == TERN_STACK_SHARED;
    tern_co *co = tern__co_alloc(p, size, shared);
    if (!co)
        return -ENOMEM;
    __atomic_store_n(&co->id, next_id(p), __ATOMIC_RELAXED);   /* read by tern_runtime_dump */
    co->fn = fn;
    co->arg = arg;
    co->local = NULL;
    co->is_main = false;
    co->stack_mode = (uint8_t)mode;
    /* wait_word, wait_reason and the timer are at rest in a recycled block
     * (every wait ends with them so) and zero in a fresh one */
    /* relaxed atomic stores: tern_runtime_dump and the monitor may be reading an
     * earlier life's name from another thread (tern__co_name_copy) */
    bool has_name = opts && opts->name;
    if (has_name) {
        size_t i = 0;
        for (; i < TERN_NAME_MAX - 1 && opts->name[i]; i++)
            __atomic_store_n(&co->name[i], opts->name[i], __ATOMIC_RELAXED);
        __atomic_store_n(&co->name[i], 0, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&co->has_name, has_name, __ATOMIC_RELAXED);
    if (shared) {
        /* Build the first frame off-stack; it holds no self-pointers, so
         * it is valid anywhere with the same 16-byte alignment. */
        _Alignas(16) char tmp[256];
        char *sp = tern__mctx_make(tmp + sizeof tmp, co_main, co);
        co->save_len = (size_t)(tmp + sizeof tmp - sp);
        co->save_buf = malloc(256);
        if (!co->save_buf) {
            tern__co_discard(p, co);
            return -ENOMEM;
        }
        co->save_cap = 256;
        memcpy(co->save_buf, sp, co->save_len);
        co->pinned = p;
        co->sp = p->shared.lo + p->shared.size - co->save_len;
    } else {
        co->pinned = NULL;
#ifdef TERN_ASAN
        /* A reused stack still carries the poisoned redzones of frames
         * that never returned (the previous coroutine's last switch). */
        __asan_unpoison_memory_region(co->stack.lo, co->stack.size);
#endif
        tern__stack_canary_set(&co->stack);
        co->sp = tern__mctx_make(co->stack.lo + co->stack.size, co_main, co);
    }
#ifdef TERN_TSAN
    co->tsan_fiber = __tsan_create_fiber(0);
#endif
    atomic_store_explicit(&co->status, CO_RUNNABLE, memory_order_relaxed);
    STAT_ADD(p->st_spawned, 1);
    if (out)
        *out = co;
    if (co->pinned) {
        inbox_push(p, co);
    } else {
        runq_put(p, co, true);
        tern__wakep();
    }
    return 0;
}

/* ---- public: coroutines ----------------------------------------------- */

tern_co *tern__self_checked(const char *fn)
{
    tern_p *p = tern__cur_p();
    if (!p || !p->cur)
        tern__fatal("%s called outside a coroutine (call it from code started by tern_run or "
                    "tern_go)", fn);
    return p->cur;
}

int tern_go(tern_fn *fn, void *arg)
{
    return tern_go_opts(fn, arg, NULL, NULL);
}

int tern_go_opts(tern_fn *fn, void *arg, const tern_go_options *opts, tern_co **out)
{
    tern__self_checked("tern_go");
    if (!fn)
        return -EINVAL;
    return co_start(tern__cur_p(), fn, arg, opts, out);
}

void tern_yield(void)
{
    tern_p *p = tern__cur_p();
    if (!p || !p->cur)
        tern__self_checked("tern_yield");   /* reports and aborts */
    co_leave(p, p->cur, SW_YIELD);
}

tern_co *tern_self(void)
{
    tern_p *p = tern__cur_p();
    return p ? p->cur : NULL;
}

void **tern__co_local(void)
{
    static _Thread_local void *thread_local_slot;
    tern_p *p = tern__cur_p();
    return p && p->cur ? &p->cur->local : &thread_local_slot;
}

uint64_t tern_id(void)
{
    tern_co *co = tern_self();
    return co ? co->id : 0;
}

uint64_t tern_co_id(const tern_co *co)
{
    TERN_CHECK_ARG(co);
    return co->id;
}

const char *tern_co_name(const tern_co *co)
{
    TERN_CHECK_ARG(co);
    return tern__co_name(co);
}

int tern_runtime_procs(void)
{
    tern_sched *s = S;
    return s ? s->nprocs : 0;
}

static uint32_t fastrand(tern_p *p)
{
    uint32_t x = p->rand;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return p->rand = x;
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
    return atomic_compare_exchange_strong(&co->wait_word, &w, w | 1);
}

void tern__wake_finish(tern_co *co, int result)
{
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

uint32_t tern__rand(void)
{
    tern_p *p = tern__cur_p();
    return p ? fastrand(p) : (uint32_t)tern_now() * 2654435761u;
}

bool tern__co_shared(const tern_co *co)
{
    return co->pinned != NULL;
}

#define NODE_CACHE_MAX 256

tern_waitq_node *tern__node_get(void)
{
    tern_p *p = tern__cur_p();
    tern_waitq_node *n = p ? p->free_nodes : NULL;
    if (n) {
        p->free_nodes = n->next;
        p->nfree_nodes--;
        return n;
    }
    return malloc(sizeof *n);
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
    uint32_t s = CO_RUNNING;
    if (atomic_compare_exchange_strong(&co->status, &s, CO_PARKING))
        co_leave(p, co, SW_PARK);
    else
        atomic_store_explicit(&co->status, CO_RUNNING, memory_order_relaxed); /* woken early */
    if (timed)
        tern__timer_del(&co->timer);
    atomic_store_explicit(&co->wait_reason, NULL, memory_order_relaxed);
    return co->wait_result;
}

int tern_sleep_until(int64_t deadline)
{
    tern__self_checked("tern_sleep_until");
    if (deadline == TERN_FOREVER)
        tern__fatal("tern_sleep_until(TERN_FOREVER): a sleep must end");
    tern_ticket t = tern_wait_prepare();
    tern_wait(t, "sleep", deadline);
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

/* ---- finding work ------------------------------------------------------- */


/* How long a coroutine must sit in another P's `next` slot, with that P
 * making no progress, before a thief takes it.  The slot holds what its P
 * readied last and usually runs next within a switch or two (a ping-pong
 * partner); stealing it at once moves every message across cores (it did:
 * 2-3x slower ping-pong on 2 Ps).  Go sleeps 3 us before such a steal. */
#define RUNNEXT_GRACE_NS (5 * TERN_US)

static bool runnext_stale(tern_p *p, tern_p *v, tern_co *co)
{
    uint64_t sw = STAT_GET(v->st_switches);
    if (p->nx_victim != v || p->nx_co != co || p->nx_switches != sw) {
        p->nx_victim = v;
        p->nx_co = co;
        p->nx_switches = sw;
        p->nx_seen = tern_now();
        return false;
    }
    return tern_now() - p->nx_seen >= RUNNEXT_GRACE_NS;
}

static tern_co *steal_from(tern_p *p, tern_p *v, bool take_next)
{
    tern_co *batch[TERN_RUNQ_SIZE / 2];
    uint32_t n = runq_grab(v, batch, false);
    if (n == 0) {
        if (!take_next)
            return NULL;
        tern_co *co = atomic_load(&v->runnext);
        if (co && runnext_stale(p, v, co) &&
            atomic_compare_exchange_strong(&v->runnext, &co, NULL)) {
            STAT_ADD(p->st_steals, 1);
            STAT_ADD(p->st_stolen, 1);
            return co;
        }
        return NULL;
    }
    for (uint32_t i = 1; i < n; i++)
        runq_put(p, batch[i], false);
    STAT_ADD(p->st_steals, 1);
    STAT_ADD(p->st_stolen, n);
    return batch[0];
}

/* Fire another P's timers here if one is due: a busy P fires its own only
 * as it switches, and a coroutine that never yields may hold it.  True if
 * one was due.  *now is read once, and only if a timer is pending. */
static bool fire_due_timers(tern_p *v, int64_t *now)
{
    int64_t tn = atomic_load_explicit(&v->timer_next, memory_order_relaxed);
    if (tn == INT64_MAX)
        return false;
    if (*now == INT64_MIN)
        *now = tern_now();
    if (tn > *now)
        return false;
    tern__timers_run(v, *now);
    return true;
}

static tern_co *steal_work(tern_p *p)
{
    int np = S->nprocs;
    int64_t now = INT64_MIN;
    for (int round = 0; round < 4; round++) {
        int start = (int)(fastrand(p) % (uint32_t)np);
        for (int i = 0; i < np; i++) {
            tern_p *v = &S->ps[(start + i) % np];
            if (v == p)
                continue;
            if (fire_due_timers(v, &now)) {
                tern_co *co = pick_local(p);
                if (co)
                    return co;
            }
            tern_co *co = steal_from(p, v, round == 3);
            if (co)
                return co;
        }
    }
    return NULL;
}

#define IDLE_SPIN_NS (20 * TERN_US)

static tern_co *spin_for_work(tern_p *p)
{
    int64_t until = tern_now() + IDLE_SPIN_NS;
    do {
        /* ~1 us between looks: each look reads lines the busy Ps write on
         * every switch, and polling them harder slows those Ps down */
        for (int i = 0; i < 24; i++)
            tern_cpu_relax();
        tern_co *co;
        if ((co = pick_local(p)) || (co = gq_get(p)) || (co = steal_work(p)))
            return co;
    } while (!atomic_load_explicit(&S->stopping, memory_order_relaxed) && tern_now() < until);
    return NULL;
}

static bool any_work(void)
{
    if (atomic_load(&S->ngq))
        return true;
    for (int i = 0; i < S->nprocs; i++)
        if (runq_len(&S->ps[i]))
            return true;
    return false;
}

static uint64_t alive_count(void)
{
    uint64_t sp = 0, ex = 0;
    for (int i = 0; i < S->nprocs; i++) {
        sp += STAT_GET(S->ps[i].st_spawned);
        ex += STAT_GET(S->ps[i].st_exited);
    }
    return sp - ex;
}

static atomic_long external_wakers;

void tern_runtime_external_wakers(int delta)
{
    if (atomic_fetch_add(&external_wakers, delta) + delta < 0)
        tern__fatal("tern_runtime_external_wakers: more withdrawn than declared");
}

/* Every P idle (S->lock held): can anything still wake a coroutine? */
static void deadlock_check_locked(void)
{
    if (S->opts.no_deadlock_exit || atomic_load(&S->stopping) || atomic_load(&S->ngq) ||
        atomic_load(&S->fd_waiters) || tern__blocking_inflight() || atomic_load(&external_wakers))
        return;
    for (int i = 0; i < S->nprocs; i++)
        if (atomic_load(&S->ps[i].nheap) || atomic_load(&S->ps[i].ninbox) ||
            runq_len(&S->ps[i]) || atomic_load(&S->ps[i].nyq))
            return;
    if (alive_count() == 0)
        return;
    pthread_mutex_unlock(&S->lock);
    tern__report("all coroutines are asleep - deadlock!");
    tern_runtime_dump(stderr);
    fflush(stderr);
    exit(2);
}

/* The latest p may sleep until: its own next timer, or an awake P's next
 * timer plus the slack.  That P is busy, and a coroutine that never yields
 * may hold it past its timer; then p fires it (fire_others_timers).  Ps
 * asleep wake for their own.  A timer armed after these reads, on a P
 * then held, is the monitor's to notice. */
static int64_t sleep_deadline(tern_p *p)
{
    int64_t d = atomic_load(&p->timer_next);
    for (int i = 0; i < S->nprocs; i++) {
        tern_p *v = &S->ps[i];
        if (v == p || atomic_load(&v->sleep_until) != INT64_MIN)
            continue;
        int64_t tn = atomic_load(&v->timer_next);
        if (tn < d - TERN__TIMER_SLACK)
            d = tn + TERN__TIMER_SLACK;
    }
    return d;
}

/* Fire the other Ps' due timers here; true if any was due. */
static bool fire_others_timers(tern_p *p)
{
    int64_t now = INT64_MIN;
    bool any = false;
    for (int i = 0; i < S->nprocs; i++)
        if (&S->ps[i] != p)
            any |= fire_due_timers(&S->ps[i], &now);
    return any;
}

static void p_sleep(tern_p *p)
{
    int64_t tn = sleep_deadline(p);
    atomic_store(&p->sleep_until, tn);
    int64_t timeout = -1;
    if (tn != INT64_MAX) {
        timeout = tn - tern_now();
        if (timeout < 0)
            timeout = 0;
    }
    bool was = false;
    if (atomic_load(&S->fd_waiters) > 0 &&
        atomic_compare_exchange_strong(&S->netpoll_blocked, &was, true)) {
        atomic_store(&p->in_netpoll, true);
        if (atomic_load(&p->wake_word) == 0)
            tern__netpoll(timeout);
        atomic_store(&p->in_netpoll, false);
        atomic_store(&S->last_poll, tern_now());
        atomic_store(&S->netpoll_blocked, false);
    } else {
        futex_wait(&p->wake_word, 0, timeout);
    }
    atomic_store(&p->sleep_until, INT64_MIN);
}

static tern_co *find_runnable(tern_p *p)
{
    for (;;) {
        if (atomic_load(&S->stopping))
            return NULL;
        int64_t tn = atomic_load_explicit(&p->timer_next, memory_order_relaxed);
        if (tn != INT64_MAX && tn <= tern_now())
            tern__timers_run(p, tern_now());
        tern_co *co = pick_local(p);
        if (co)
            return co;
        if ((co = gq_get(p)))
            return co;
        if (atomic_load(&S->fd_waiters) > 0 && !atomic_load(&S->netpoll_blocked) &&
            tern__netpoll(0) > 0) {
            atomic_store(&S->last_poll, tern_now());
            if ((co = pick_local(p)))
                return co;
        }
        int busy = S->nprocs - atomic_load(&S->npidle);
        if (!p->spinning && 2 * atomic_load(&S->nspinning) < busy) {
            p->spinning = true;
            atomic_fetch_add(&S->nspinning, 1);
        }
        if (p->spinning && S->nprocs > 1 && (co = steal_work(p)))
            return co;
        /* Before sleeping, keep looking for a few microseconds: waking a
         * sleeping worker costs a futex round trip (measured 10-15 us on
         * this kind of VM), while a spinner picks new work up at once. */
        if (p->spinning && S->nprocs > 1 && (co = spin_for_work(p)))
            return co;
        /* A busy P's due timers (a spinner fires them in steal_work): this
         * P may have woken for them (sleep_deadline). */
        if (S->nprocs > 1 && fire_others_timers(p) && (co = pick_local(p)))
            return co;

        pthread_mutex_lock(&S->lock);
        if (atomic_load(&S->stopping)) {
            pthread_mutex_unlock(&S->lock);
            return NULL;
        }
        if ((co = gq_get_locked(p))) {
            pthread_mutex_unlock(&S->lock);
            return co;
        }
        if (atomic_load(&p->ninbox)) {
            pthread_mutex_unlock(&S->lock);
            continue;
        }
        atomic_store(&p->wake_word, 0);
        p->idle_next = S->idle;
        S->idle = p;
        p->is_idle = true;
        if (atomic_fetch_add(&S->npidle, 1) + 1 == S->nprocs)
            deadlock_check_locked();
        pthread_mutex_unlock(&S->lock);

        if (p->spinning) {
            p->spinning = false;
            atomic_fetch_sub(&S->nspinning, 1);
            /* A P that queued work while we spun did not wake anyone;
             * look once more before sleeping. */
            if (any_work()) {
                pthread_mutex_lock(&S->lock);
                bool mine = p->is_idle;
                if (mine)
                    idle_remove_locked(p);
                pthread_mutex_unlock(&S->lock);
                if (mine) {
                    p->spinning = true;
                    atomic_fetch_add(&S->nspinning, 1);
                    continue;
                }
            }
        }
        p_sleep(p);
        STAT_ADD(p->st_wakeups, 1);
        pthread_mutex_lock(&S->lock);
        if (p->is_idle)
            idle_remove_locked(p);
        pthread_mutex_unlock(&S->lock);
        if (atomic_exchange(&p->wake_spinning, false))
            p->spinning = true;     /* counted by wakep */
    }
}

static void sched_loop(tern_p *p)
{
    for (;;) {
        tern_co *co = find_runnable(p);
        if (p->spinning) {
            p->spinning = false;
            if (atomic_fetch_sub(&S->nspinning, 1) == 1)
                tern__wakep();
        }
        if (!co)
            return;     /* stopping */
        g0_run(p, co);
    }
}

/* ---- workers and tern_run ---------------------------------------------- */

static void p_thread_init(tern_p *p)
{
    tls_p = p;
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        void *lo;
        size_t sz;
        pthread_attr_getstack(&a, &lo, &sz);
        p->g0_stack_lo = lo;
        p->g0_stack_size = sz;
        pthread_attr_destroy(&a);
    }
#ifdef TERN_TSAN
    p->g0_tsan_fiber = __tsan_get_current_fiber();
#endif
    tern__stack_sig_install();
}

static void *worker_main(void *arg)
{
    tern_p *p = arg;
    p_thread_init(p);
    sched_loop(p);
    tern__stack_sig_remove();
    tls_p = NULL;
    return NULL;
}

static int procs_from_env(void)
{
    const char *e = getenv("TERN_PROCS");
    if (!e || !*e)
        return 0;
    char *end;
    long n = strtol(e, &end, 10);
    if (*end || n < 1 || n > 1024) {
        tern__report("ignoring TERN_PROCS=\"%s\": want a whole number from 1 to 1024", e);
        return 0;
    }
    return (int)n;
}

/* Before tern__stacks_fini, which unmaps what these were carved from. */
static void ps_release(void)
{
    for (int i = 0; S->ps && i < S->nprocs; i++) {
        for (tern_waitq_node *n = S->ps[i].free_nodes, *nx; n; n = nx) {
            nx = n->next;
            free(n);
        }
        S->ps[i].free_nodes = NULL;
        if (S->ps[i].shared.lo)
            tern__stack_put(&S->ps[i].shared);
    }
}

static void sched_free(void)
{
    pthread_mutex_destroy(&S->lock);
    free(S->ps);
    free(S);
    S = NULL;
}

int tern_run(tern_fn *entry, void *arg)
{
    return tern_run_opts(entry, arg, NULL);
}

static tern_sched *_Atomic running_sched;

int tern_run_opts(tern_fn *entry, void *arg, const tern_run_options *opts)
{
    if (!entry)
        return -EINVAL;
    if (tls_p)
        tern__fatal("tern_run called from inside a coroutine; start coroutines with tern_go");
    tern_sched *none = NULL, *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (!atomic_compare_exchange_strong(&running_sched, &none, s)) {
        free(s);
        return -EBUSY;
    }
    S = s;
    if (opts)
        S->opts = *opts;
    int np = S->opts.procs > 0 ? S->opts.procs : procs_from_env();
    if (np <= 0)
        np = tern__default_procs();
    S->nprocs = np;
    size_t pg = S->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t sd = S->opts.stack_size ? S->opts.stack_size : TERN_STACK_DEFAULT;
    if (sd < TERN_STACK_MIN)
        sd = TERN_STACK_MIN;
    S->stack_default = (sd + pg - 1) & ~(pg - 1);
    atomic_store(&S->id_gen, 1);
    pthread_mutex_init(&S->lock, NULL);
    int err = -ENOMEM;
    S->ps = calloc((size_t)np, sizeof *S->ps);
    if (!S->ps)
        goto fail_ps;
    if ((err = tern__stacks_init()) < 0)
        goto fail_ps;
    for (int i = 0; i < np; i++) {
        tern_p *p = &S->ps[i];
        p->id = i;
        atomic_store(&p->sleep_until, INT64_MIN);      /* awake */
        p->rand = 0x9E3779B9u * (uint32_t)(i + 1);
        p->gq_countdown = 61;
        if ((err = tern__timers_init(p)) < 0 ||
            (err = tern__stack_get(&p->shared, S->stack_default)) < 0)
            goto fail_stacks;
    }
    if ((err = tern__netpoll_init()) < 0)
        goto fail_stacks;
    if ((err = tern__blocking_init(S->opts.blocking_threads > 0 ? S->opts.blocking_threads : 64)) < 0)
        goto fail_netpoll;
    tern_p *p0 = &S->ps[0];
    tls_p = p0;
    err = co_start(p0, entry, arg, &(tern_go_options){.name = "main"}, &S->main_co);
    tls_p = NULL;
    if (err < 0)
        goto fail_blocking;
    S->main_co->is_main = true;
    int started = 1;
    for (; started < np; started++) {
        if ((err = -pthread_create(&S->ps[started].thread, NULL, worker_main, &S->ps[started])))
            break;
    }
    if (started < np) {
        tern__report("could not start worker thread %d: %s; stopping", started, strerror(-err));
        stop_all();
    } else if (S->opts.monitor_threshold >= 0) {
        S->ps[0].thread = pthread_self();
        for (int i = 0; i < np; i++)      /* before the monitor reads them */
            S->ps[i].cpu_clock_ok =
                pthread_getcpuclockid(S->ps[i].thread, &S->ps[i].cpu_clock) == 0;
        tern__monitor_start();
    }
    p_thread_init(p0);
    if (started == np)
        sched_loop(p0);
    tern__stack_sig_remove();
    tls_p = NULL;
    for (int i = 1; i < started; i++)
        pthread_join(S->ps[i].thread, NULL);
    tern__monitor_stop();
    tern__blocking_fini();
    int result = started == np ? S->main_result : err;
    tern__co_free_all();
    ps_release();
    tern__netpoll_fini();
    tern__stacks_fini();
    sched_free();
    atomic_store(&running_sched, NULL);
    return result;

fail_blocking:
    tern__blocking_fini();
fail_netpoll:
    tern__netpoll_fini();
fail_stacks:
    tern__co_free_all();
    ps_release();
    tern__stacks_fini();
fail_ps:
    sched_free();
    atomic_store(&running_sched, NULL);
    return err;
}
