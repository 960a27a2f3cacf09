/*
 * idle.c - a P with nothing to run: finding work (its timers, the global
 * queue, the netpoller, stealing from other Ps), spinning before sleeping,
 * sleeping on a futex or in epoll_wait, being woken (wakep: one idle P,
 * only if nobody spins), and noticing that every coroutine is asleep for
 * good.  The rules these follow are in sched.c's opening comment.
 */
#define _GNU_SOURCE
#include "sanitizer.h"
#include "sched.h"

#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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
    tern__spin_lock(&S->lock);
    tern_p *p = S->idle;
    if (p) {
        TERN_ASSERT(p->is_idle);    /* the idle list holds exactly the idle Ps */
        S->idle = p->idle_next;
        p->is_idle = false;
        atomic_fetch_sub(&S->npidle, 1);
        atomic_store(&p->wake_spinning, true);
    }
    tern__spin_unlock(&S->lock);
    if (p)
        p_signal(p);
    else
        atomic_fetch_sub(&S->nspinning, 1);
}

/* Wake p itself if it sleeps (for its inbox, or a timer armed from
 * elsewhere). */
void tern__p_kick(tern_p *p)
{
    tern__spin_lock(&S->lock);
    bool idle = p->is_idle;
    if (idle)
        idle_remove_locked(p);
    tern__spin_unlock(&S->lock);
    if (idle)
        p_signal(p);
}

/* Stop every worker.  `stopping` is set under S->lock because a P going
 * idle looks at it and then clears its wake word under that lock: set
 * without the lock, the stop and its signal could land between the look
 * and the clear, the signal be erased, and that P sleep for good (no
 * timer left to end it) while tern_run waited to join it.  Under the lock
 * a P either sees the stop or has cleared its word before the signal. */
void tern__stop_all(void)
{
    tern__spin_lock(&S->lock);
    atomic_store(&S->stopping, true);
    tern__spin_unlock(&S->lock);
    for (int i = 0; i < S->nprocs; i++)
        p_signal(&S->ps[i]);
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

/* How long a P may make no switch, with coroutines queued behind the one
 * it runs, before a busy P takes half of them. */
#define HELD_NS TERN__TIMER_SLACK

/* A busy P's look at the other Ps, on one switch in 64 (pick_next, and
 * find_runnable for the switches that go through the worker's context).  A P
 * fires its own timers as it switches and an idle P steals, but when no P
 * is idle and one does not switch (a coroutine holds it, or the kernel
 * preempted its thread on an oversubscribed machine: 40-135 ms at a time
 * beside 4 CPU hogs on 2 cores, seen from a watchdog thread), nobody looked
 * at its timers or its queue until it ran again; timers fired 8-13 ms late
 * on average, some 128 ms.  So a P that switches fires the others' timers
 * once they are overdue by the slack, and takes half the queue of a P
 * whose switch count has not moved for HELD_NS, and its `next` slot.  The reads are a line or
 * two per P; `seen_*` are written only when the count moved. */
void tern__help_held_ps(tern_p *p)
{
    int64_t now = tern_now();
    for (int i = 0; i < S->nprocs; i++) {
        tern_p *v = &S->ps[i];
        if (v == p)
            continue;
        if (atomic_load_explicit(&v->timer_next, memory_order_relaxed) < now - TERN__TIMER_SLACK)
            tern__timers_run(v, now);
        uint64_t sw = STAT_GET(v->st_switches);
        if (sw != atomic_load_explicit(&v->seen_switches, memory_order_relaxed)) {
            atomic_store_explicit(&v->seen_switches, sw, memory_order_relaxed);
            atomic_store_explicit(&v->seen_at, now, memory_order_relaxed);
        } else if (now - atomic_load_explicit(&v->seen_at, memory_order_relaxed) >= HELD_NS) {
            tern_co *co = runq_len(v) ? steal_from(p, v, false) : NULL;
            if (co)
                runq_put(p, co, false);
            /* its `next` slot too: what it readied last waits as long */
            co = atomic_load_explicit(&v->runnext, memory_order_relaxed);
            if (co && atomic_compare_exchange_strong(&v->runnext, &co, NULL))
                runq_put(p, co, false);
        }
    }
}

/* take_next: also look at the `next` slots (the last round), which their
 * owners write on every ready and switch. */
static tern_co *steal_work(tern_p *p, bool take_next)
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
            tern_co *co = steal_from(p, v, take_next && round == 3);
            if (co)
                return co;
        }
    }
    return NULL;
}

#define IDLE_SPIN_NS (20 * TERN_US)

/* How often a spinning P reads the other Ps' `next` slots (see below). */
#define SPIN_NEXT_NS (RUNNEXT_GRACE_NS / 2)

static tern_co *spin_for_work(tern_p *p)
{
    int64_t now = tern_now(), until = now + IDLE_SPIN_NS, next_at = now;
    do {
        /* ~1 us between looks: each look reads lines the busy Ps write on
         * every switch, and polling them harder slows those Ps down.  The
         * `next` slots are read only every SPIN_NEXT_NS: one taken from
         * them must have sat there RUNNEXT_GRACE_NS anyway, and their line
         * (runnext) and the switch count change on every hand-off, so each
         * look at them costs the busy P two lines it must fetch back.
         * Ping-pong on 2 Ps, on a machine with slow cross-core transfers:
         * 93 ns a message reading them on every look, 61-67 reading them
         * every 2.5 us (50 on 1 P; Go 160).  By time, not by look count, so
         * that a slow machine (qemu) still gets its two looks a grace apart. */
        for (int i = 0; i < 24; i++)
            tern_cpu_relax();
        bool next = now >= next_at;
        if (next)
            next_at = now + SPIN_NEXT_NS;
        tern_co *co;
        if ((co = pick_local(p)) || (co = gq_get(p)) || (co = steal_work(p, next)))
            return co;
        now = tern_now();
    } while (!atomic_load_explicit(&S->stopping, memory_order_relaxed) && now < until);
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
    tern__spin_unlock(&S->lock);
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
    tern__signal_route_flush();         /* TSan: a raise(3) from a coroutine here */
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

tern_co *tern__find_runnable(tern_p *p)
{
    for (;;) {
        if (atomic_load(&S->stopping))
            return NULL;
        int64_t tn = atomic_load_explicit(&p->timer_next, memory_order_relaxed);
        if (tn != INT64_MAX && tn <= tern_now())
            tern__timers_run(p, tern_now());
        /* a coroutine that yields with nothing else to run comes here,
         * not through pick_next, on every switch */
        if ((p->tick & 63) == 0 && S->nprocs > 1)
            tern__help_held_ps(p);
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
        if (p->spinning && S->nprocs > 1 && (co = steal_work(p, true)))
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

        tern__spin_lock(&S->lock);
        if (atomic_load(&S->stopping)) {
            tern__spin_unlock(&S->lock);
            return NULL;
        }
        if ((co = gq_get_locked(p))) {
            tern__spin_unlock(&S->lock);
            return co;
        }
        if (atomic_load(&p->ninbox)) {
            tern__spin_unlock(&S->lock);
            continue;
        }
        atomic_store(&p->wake_word, 0);
        TERN_ASSERT(!p->is_idle && atomic_load(&S->npidle) < S->nprocs);
        p->idle_next = S->idle;
        S->idle = p;
        p->is_idle = true;
        if (atomic_fetch_add(&S->npidle, 1) + 1 == S->nprocs)
            deadlock_check_locked();
        tern__spin_unlock(&S->lock);

        if (p->spinning) {
            p->spinning = false;
            atomic_fetch_sub(&S->nspinning, 1);
            /* A P that queued work while we spun did not wake anyone;
             * look once more before sleeping. */
            if (any_work()) {
                tern__spin_lock(&S->lock);
                bool mine = p->is_idle;
                if (mine)
                    idle_remove_locked(p);
                tern__spin_unlock(&S->lock);
                if (mine) {
                    p->spinning = true;
                    atomic_fetch_add(&S->nspinning, 1);
                    continue;
                }
            }
        }
        p_sleep(p);
        STAT_ADD(p->st_wakeups, 1);
        tern__spin_lock(&S->lock);
        if (p->is_idle)
            idle_remove_locked(p);
        tern__spin_unlock(&S->lock);
        tern__monitor_kick();       /* one load, unless the monitor sleeps long */
        if (atomic_exchange(&p->wake_spinning, false))
            p->spinning = true;     /* counted by wakep */
    }
}
