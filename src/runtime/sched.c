/*
 * sched.c - the M:N scheduler's model and invariants, the context switch,
 * and a coroutine's life.
 *
 * Model.  A P is a logical processor with its own worker thread (1:1: tern
 * never blocks a worker in a syscall, blocking calls go to the offload pool,
 * so Go's M/P split buys nothing here).  Each P owns a local run queue
 * (runq.h), a timer heap (timer.c) and caches of free coroutines.  A global
 * queue takes overflow and coroutines readied by foreign threads.
 *
 * Switching.  A coroutine that yields or parks picks its successor from its
 * P's queues and switches to it directly; only when there is none does it
 * switch to the worker's own context ("g0"), which runs find_runnable()
 * (idle.c): timers, global queue, netpoll, stealing, then sleep.  The context that
 * just left cannot be published (queued, marked parked) before its
 * registers are saved, or another P could resume a half-saved context; so
 * each switch records (prev, action) in the P and the context that resumes
 * finishes the job in after_switch().
 *
 * Parking.  tern_wait() switches out still RUNNING, and after_switch()
 * moves RUNNING -> WAITING (one CAS per park).  tern_wake() claims the
 * ticket (exactly one claim per ticket succeeds) and readies: WAITING ->
 * RUNNABLE (a plain store: nobody else may write it then) plus enqueue, or
 * RUNNING -> NOTIFIED (a CAS, racing after_switch's), in which case the
 * parker sees NOTIFIED, in tern_wait or in after_switch, and stays
 * runnable.  Every ticket is claimed at most once
 * and every wait consumes exactly one readying, so a late waker can never
 * wake a later wait.
 *
 * Idle workers.  A P that finds nothing spins (steals) if fewer than half
 * of the busy Ps spin, else sleeps: the first sleeper with fd waiters
 * blocks in epoll_wait, the others on a futex, each with its nearest timer
 * as timeout.  wakep() wakes one idle P only if nobody spins; a spinner
 * that finds work wakes the next (Go's rule), so work never strands and
 * idle Ps are not woken in herds.  A busy P, on one switch in 64, fires
 * other Ps' overdue timers and takes the queue of a P that has not switched
 * for 1 ms (a coroutine holds it, or the kernel preempted its thread:
 * tern__help_held_ps).  When the last P goes idle with no timer,
 * fd waiter or offloaded call left to wake anyone, the program is
 * deadlocked and says so.
 *
 * Files.  This one holds the model, the switch (co_leave, after_switch,
 * g0) and a coroutine's life from tern_go to its recycling.  The queues
 * are in sched.h and runq.h, parking and waking in park.c, the idle path
 * in idle.c, tern_run and the worker threads in workers.c, reports in
 * report.c.
 */
#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "mctx.h"
#include "sanitizer.h"

static void yq_push(tern_p *p, tern_co *co)
{
    TERN_ASSERT(!co->pinned);
    co->next = NULL;
    if (p->yq_head)
        p->yq_tail->next = co;
    else
        p->yq_head = co;
    p->yq_tail = co;
    atomic_store_explicit(&p->nyq, atomic_load_explicit(&p->nyq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void enqueue_local(tern_p *p, tern_co *co, bool next)
{
    if (co->pinned)
        inbox_push(p, co);
    else
        runq_put(p, co, next);
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

static void co_main(void *arg);

#define LAZY_BURST 256          /* lazy spawns per run slice (tern__co_start) */

/* Build co's first frame at the top of its own stack. */
static void frame_build(tern_co *co)
{
#ifdef TERN_ASAN
    /* A reused stack still carries the poisoned redzones of frames
     * that never returned (the previous coroutine's last switch). */
    __asan_unpoison_memory_region(co->stack.lo, co->stack.size);
#endif
    tern__stack_canary_set(&co->stack);
    co->sp = tern__mctx_make(co->stack.lo + co->stack.size, co_main, co);
}

/* A default-stack coroutine's first switch-in.  tern__co_start gave it a
 * block without a stack (sp NULL): it takes one now, from the newest
 * spare on this P, the stack the last coroutine to exit here ran on,
 * resident and cached.  So a coroutine queued behind a thousand others
 * holds no stack until it runs, and a server with a thousand calls queued
 * and a few running touches a few stacks, not a thousand (issue 17: 8 KiB
 * each, the first frame's page and the canary's). */
static void first_frame(tern_p *p, tern_co *co)
{
    if (tern__co_stack_take(p, co) < 0)
        tern__fatal("out of memory for coroutine %llu's stack (%zu bytes)", (unsigned long long)co->id,
                    S->stack_default);
    frame_build(co);
}

/* Before resuming co: a waker that claimed it with a plain store (guard
 * mode) did not copy its released stack back, so the switch does (see
 * release.c for why this relaxed load cannot miss a release in progress:
 * the monitor's membarrier).  One load of a line the switch touches anyway. */
static inline void stack_in(tern_co *co)
{
    if (__builtin_expect(atomic_load_explicit(&co->stk_out, memory_order_relaxed) != STK_IN, 0))
        tern__stack_restore(co);
}

/* Finish the switch for the context that left (see the top comment). */
static void after_switch(tern_p *p)
{
    p->burst = 0;               /* a new run slice (tern__co_start) */
    tern_co *prev = p->prev;
    if (!prev)
        return;
    p->prev = NULL;
    switch (p->prev_action) {
    case SW_YIELD:
        /* RUNNING -> RUNNABLE.  A NOTIFIED here would be lost: a coroutine
         * yields only between waits, with no ticket out. */
        TERN_ASSERT(atomic_load_explicit(&prev->status, memory_order_relaxed) == CO_RUNNING);
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
        uint32_t s = CO_RUNNING;
        if (!atomic_compare_exchange_strong(&prev->status, &s, CO_WAITING)) {
            TERN_ASSERT(s == CO_NOTIFIED);  /* RUNNING -> NOTIFIED by a waker, only */
            atomic_store_explicit(&prev->status, CO_RUNNABLE, memory_order_release); /* NOTIFIED */
            enqueue_local(p, prev, true);
        }
        break;
    }
    case SW_EXIT:
        TERN_ASSERT(atomic_load_explicit(&prev->status, memory_order_relaxed) == CO_DEAD);
        co_recycle(p, prev);
        break;
    default:
        TERN_ASSERT(!"after_switch: unknown action");
    }
}

static tern_co *pick_next(tern_p *p)
{
    if (atomic_load_explicit(&S->stopping, memory_order_relaxed))
        return NULL;
    if ((p->tick & 7) == 0) {
        if (atomic_load_explicit(&p->timer_next, memory_order_relaxed) != INT64_MAX)
            tern__timers_run(p, tern_now());
        if ((p->tick & 63) == 0 && S->nprocs > 1)
            tern__help_held_ps(p);
    }
    return pick_local(p);
}

/* Called by the running coroutine: leave the CPU with `action`. */
void tern__co_leave(tern_p *p, tern_co *self, int action)
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
        /* every queue holds RUNNABLE coroutines only */
        TERN_ASSERT(atomic_load_explicit(&next->status, memory_order_relaxed) == CO_RUNNABLE);
        if (__builtin_expect(!next->sp, 0))
            first_frame(p, next);
        stack_in(next);
        atomic_store_explicit(&next->status, CO_RUNNING, memory_order_relaxed);
        __atomic_store_n(&p->cur, next, __ATOMIC_RELEASE);
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
void tern__g0_run(tern_p *p, tern_co *co)
{
    while (co) {
        if (co->pinned && p->shared_owner != co)
            shared_load(p, co);
        TERN_ASSERT(atomic_load_explicit(&co->status, memory_order_relaxed) == CO_RUNNABLE);
        if (__builtin_expect(!co->sp, 0))
            first_frame(p, co);
        stack_in(co);
        atomic_store_explicit(&co->status, CO_RUNNING, memory_order_relaxed);
        __atomic_store_n(&p->cur, co, __ATOMIC_RELEASE);
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
    TERN_ASSERT(co->pinned == p && (!owner || owner->pinned == p));
    TERN_ASSERT(co->save_len <= p->shared.size && co->save_len <= co->save_cap);
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

void tern__join_unref(tern_join *j)
{
    int old = atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel);
    TERN_ASSERT(old > 0);
    if (old == 1)
        free(j);
}

/* The coroutine returned r: publish it and ready its joiners.  Each node
 * is claimed under the lock (a joiner whose context ended unlinks its
 * node under the same lock), so once the lock is released the claimed
 * nodes are ours until tern__wake_finish hands them back. */
static void join_finish(tern_join *j, int r)
{
    tern__spin_lock(&j->lock);
    j->done = true;
    j->result = r;
    tern_waitq_node *n = j->waiters, *claimed = NULL;
    j->waiters = NULL;
    while (n) {
        tern_waitq_node *nx = n->next;
        n->queue = NULL;
        if (tern__wake_claim(n->co, n->ticket)) {
            n->next = claimed;
            claimed = n;
        }
        n = nx;
    }
    tern__spin_unlock(&j->lock);
    for (tern_waitq_node *nx; claimed; claimed = nx) {
        nx = claimed->next;     /* the joiner's once finished */
        tern__wake_finish(claimed->co, 0);
    }
    tern__join_unref(j);
}

/* A coroutine's first and last steps, out of line: co_main's frame sits
 * under every frame of the coroutine for its whole life, and is saved
 * with them when a shared-stack coroutine parks (inlined, these grew it
 * from 8 to 56 bytes, and parked_rss_bytes by 64). */
static __attribute__((noinline)) void co_begin(void)
{
    after_switch(tern__cur_p());
}

static __attribute__((noinline, noreturn)) void co_end(tern_co *co, int r)
{
    if (co->join) {
        join_finish(co->join, r);
        co->join = NULL;
    }
    tern_p *p = tern__cur_p();
    if (co->is_main) {
        S->main_result = r;
        tern__stop_all();
    }
    atomic_store(&co->status, CO_DEAD);
    tern__co_leave(p, co, SW_EXIT);
    tern__fatal("dead coroutine %llu resumed", (unsigned long long)co->id);
}

static void co_main(void *arg)
{
    tern_co *co = arg;
#ifdef TERN_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    co_begin();
    co_end(co, co->fn(co->arg));
}

static void co_recycle(tern_p *p, tern_co *co)
{
#ifdef TERN_TSAN
    __tsan_destroy_fiber(co->tsan_fiber);
    co->tsan_fiber = NULL;
#endif
    STAT_ADD(p->st_exited, 1);
    TERN_ASSERT(atomic_load_explicit(&co->status, memory_order_relaxed) == CO_DEAD);
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

int tern__co_start(tern_p *p, tern_fn *fn, void *arg, const tern_go_options *opts, tern_co **out)
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
    tern_join *j = NULL;
    if (opts && opts->join) {
        *opts->join = NULL;
        if (!(j = calloc(1, sizeof *j)))
            return -ENOMEM;
        atomic_init(&j->refs, 2);
    }
    /* a default stack is taken when the coroutine first runs */
    /* ... except past the first LAZY_BURST spawns of one run slice (a
     * storm: a coroutine spawning without a pause): those pay for their
     * stacks as they go, which keeps the spawner in step with the runs and
     * the stacks in spawn order for the monitor's release (lazy, a million
     * spawns outran their runs, and the release, a run of neighbouring
     * stacks at a time, fell three times behind) */
    bool lazy = !shared && size == S->stack_default && p->burst++ < LAZY_BURST;
    tern_co *co = lazy ? tern__co_alloc_bare(p) : tern__co_alloc(p, size, shared);
    if (!co) {
        free(j);
        return -ENOMEM;
    }
    TERN_ASSERT(atomic_load_explicit(&co->status, memory_order_relaxed) == CO_FREE);
    TERN_ASSERT(shared || (lazy ? !co->stack.lo
                                : co->stack.size >= size && ((uintptr_t)co->stack.lo & (S->page - 1)) == 0));
    __atomic_store_n(&co->id, next_id(p), __ATOMIC_RELAXED);   /* read by tern_runtime_dump */
    co->fn = fn;
    co->arg = arg;
    co->local = NULL;
    co->join = j;
    co->is_main = false;
    co->stack_mode = (uint8_t)mode;
    co->keep_stack = opts && opts->keep_stack;
    rel_promise_set(co, !shared && !co->keep_stack && opts && opts->release_stack);
    co->rel_ok = rel_promised(co) ||
                 (!shared && !co->keep_stack && tern__release_guard && tern__stack_sized_in_region(size));
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
            free(j);
            return -ENOMEM;
        }
        co->save_cap = 256;
        memcpy(co->save_buf, sp, co->save_len);
        co->pinned = p;
        co->sp = p->shared.lo + p->shared.size - co->save_len;
    } else {
        co->pinned = NULL;
        if (lazy)
            co->sp = NULL;      /* stack and frame at its first switch-in: first_frame */
        else
            frame_build(co);
    }
#ifdef TERN_TSAN
    co->tsan_fiber = __tsan_create_fiber(0);
#endif
    atomic_store_explicit(&co->status, CO_RUNNABLE, memory_order_relaxed);
    STAT_ADD(p->st_spawned, 1);
    if (out)
        *out = co;
    if (j)
        *opts->join = j;
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
    return tern__co_start(tern__cur_p(), fn, arg, opts, out);
}

void tern_yield(void)
{
    tern_p *p = tern__cur_p();
    if (!p || !p->cur)
        tern__self_checked("tern_yield");   /* reports and aborts */
    tern__co_leave(p, p->cur, SW_YIELD);
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

uint32_t tern__rand(void)
{
    tern_p *p = tern__cur_p();
    return p ? fastrand(p) : (uint32_t)tern_now() * 2654435761u;
}

int tern__proc_id(void)
{
    tern_p *p = tern__cur_p();
    return p && p->cur ? p->id : -1;
}

bool tern__co_shared(const tern_co *co)
{
    return co->pinned != NULL;
}
