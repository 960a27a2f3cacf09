/*
 * monitor.c - a background thread that watches the Ps (Go's sysmon).
 *
 * Scheduling is cooperative, so a coroutine that computes without yielding
 * holds its worker.  The monitor notices a P whose switch count has not
 * moved for longer than the threshold while a coroutine runs, and reports
 * it once per stall (it does not preempt).  It also wakes an idle P when
 * work or a due timer is stranded, polls the network if no worker has for
 * 10 ms, and gives back the stack pages of spare coroutines over the
 * watermark.
 * It sleeps 1 ms while Ps are busy and backs off to 10 ms when all idle.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "runq.h"

#define S tern__sched

static pthread_t mon_thread;
static bool mon_started;
static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mon_cond;
static bool mon_stop;

/* tern__monitor_hook: set once each, read by the monitor thread */
#define MON_HOOKS 4
static _Atomic(void (*)(int64_t)) mon_hooks[MON_HOOKS];

int tern__monitor_hook(void (*fn)(int64_t now))
{
    for (int i = 0; i < MON_HOOKS; i++) {
        void (*none)(int64_t) = NULL;
        if (atomic_load(&mon_hooks[i]) == fn ||
            atomic_compare_exchange_strong(&mon_hooks[i], &none, fn))
            return 0;
    }
    return -ENOSPC;
}

typedef struct pwatch {
    uint64_t switches;
    int64_t since;
    int64_t cpu_since;          /* the worker thread's CPU time then */
    bool reported;
} pwatch;

/* CPU time the P's worker thread has used, or -1.  A worker the kernel
 * preempted (a busy machine, a noisy neighbour) is not hogging: counting
 * its CPU time, not the wall clock, keeps such stalls out of the reports. */
static int64_t thread_cpu(tern_p *p)
{
    struct timespec ts;
    if (!p->cpu_clock_ok || clock_gettime(p->cpu_clock, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec;
}

static void check_long_runs(pwatch *w, int64_t now, int64_t threshold)
{
    for (int i = 0; i < S->nprocs; i++) {
        tern_p *p = &S->ps[i];
        uint64_t sw = STAT_GET(p->st_switches);
        if (sw != w[i].switches || !STAT_GET(p->st_running)) {
            w[i] = (pwatch){.switches = sw, .since = now, .cpu_since = -1};
            continue;
        }
        if (w[i].cpu_since < 0)
            w[i].cpu_since = thread_cpu(p);
        if (!w[i].reported && now - w[i].since > threshold &&
            (w[i].cpu_since < 0 || thread_cpu(p) - w[i].cpu_since > threshold)) {
            w[i].reported = true;
            STAT_ADD(S->long_runs, 1);
            /* p->cur may change under us; read the id and name racily but
             * from one coroutine (control blocks are never unmapped). */
            tern__spin_lock(&S->dump_lock);
            tern_co *co = __atomic_load_n(&p->cur, __ATOMIC_RELAXED);
            char name[TERN_NAME_MAX] = "?";
            if (co)
                tern__co_name_copy(co, name);
            unsigned long long id = co ? __atomic_load_n(&co->id, __ATOMIC_RELAXED) : 0ULL;
            tern__spin_unlock(&S->dump_lock);
            tern__report("coroutine %llu '%s' has held worker %d for %lld ms without yielding; "
                         "other coroutines on it wait (call tern_yield in long loops, or "
                         "tern_blocking for blocking calls)",
                         id, name, i,
                         (long long)((now - w[i].since) / TERN_MS));
        }
    }
}

static bool timer_held(tern_p *p, int64_t now)
{
    return atomic_load(&p->sleep_until) == INT64_MIN &&
           atomic_load(&p->timer_next) < now - TERN__TIMER_SLACK;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    int64_t threshold = S->opts.monitor_threshold > 0 ? S->opts.monitor_threshold : 10 * TERN_MS;
    pwatch *w = calloc((size_t)S->nprocs, sizeof *w);
    if (!w)
        return NULL;
    int64_t delay = TERN_MS;
    for (int i = 0; i < S->nprocs; i++)
        w[i] = (pwatch){.since = tern_now(), .cpu_since = -1};
    pthread_mutex_lock(&mon_lock);
    while (!mon_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t t = (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec + delay;
        ts.tv_sec = t / TERN_SEC;
        ts.tv_nsec = t % TERN_SEC;
        pthread_cond_timedwait(&mon_cond, &mon_lock, &ts);
        if (mon_stop)
            break;
        pthread_mutex_unlock(&mon_lock);

        int64_t now = tern_now();
        check_long_runs(w, now, threshold);
        bool all_idle = atomic_load(&S->npidle) == S->nprocs;
        delay = all_idle ? (delay * 2 > 10 * TERN_MS ? 10 * TERN_MS : delay * 2) : TERN_MS;
        if (!all_idle && atomic_load(&S->fd_waiters) && !atomic_load(&S->netpoll_blocked) &&
            now - atomic_load(&S->last_poll) > 10 * TERN_MS) {
            atomic_store(&S->last_poll, now);
            tern__netpoll(0);   /* readies go to the global queue */
        }
        /* Work nobody is looking at: queued globally, waiting in a busy
         * P's ring (a coroutine that yielded does not wake anyone), or a
         * timer overdue on an awake P (one a coroutine holds: it fires
         * its own timers as it switches), while another P sleeps.  The
         * woken P, spinning, fires the timers (steal_work). */
        if (atomic_load(&S->npidle) > 0 && atomic_load(&S->nspinning) == 0) {
            bool stranded = atomic_load(&S->ngq) > 0;
            for (int i = 0; i < S->nprocs && !stranded; i++)
                stranded = runq_len(&S->ps[i]) > 1 || timer_held(&S->ps[i], now);
            if (stranded)
                tern__wakep();
        }
        tern__scavenge_stacks(now, all_idle);
        for (int i = 0; i < MON_HOOKS; i++) {
            void (*fn)(int64_t) = atomic_load(&mon_hooks[i]);
            if (fn)
                fn(now);
        }
        pthread_mutex_lock(&mon_lock);
    }
    pthread_mutex_unlock(&mon_lock);
    free(w);
    return NULL;
}

int tern__monitor_start(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mon_cond, &ca);
    pthread_condattr_destroy(&ca);
    mon_stop = false;
    atomic_store(&S->last_poll, tern_now());
    mon_started = pthread_create(&mon_thread, NULL, monitor_main, NULL) == 0;
    return mon_started ? 0 : -EAGAIN;
}

void tern__monitor_stop(void)
{
    if (!mon_started)
        return;
    pthread_mutex_lock(&mon_lock);
    mon_stop = true;
    pthread_cond_signal(&mon_cond);
    pthread_mutex_unlock(&mon_lock);
    pthread_join(mon_thread, NULL);
    pthread_cond_destroy(&mon_cond);
    mon_started = false;
}
