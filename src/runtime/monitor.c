/*
 * monitor.c - a background thread that watches the Ps (Go's sysmon).
 *
 * Scheduling is cooperative, so a coroutine that computes without yielding
 * holds its worker.  The monitor notices a P whose switch count has not
 * moved for longer than the threshold while a coroutine runs, and reports
 * it once per stall (it does not preempt).  Two kinds: the worker used
 * more than the threshold of CPU (a loop that does not yield), or it used
 * little CPU and its thread sleeps in the kernel now (a blocking libc call
 * made without tern_blocking: sleep(1), a blocking read, a pthread mutex);
 * the latter names the system call (/proc/self/task/TID/syscall) and the
 * kernel's wait channel (wchan).  A worker the kernel merely preempted (a
 * loaded machine) used little CPU but is runnable (state R), so neither
 * report fires.  It also wakes an idle P when
 * work or a due timer is stranded, polls the network if no worker has for
 * 10 ms, gives back the stack pages of spare coroutines over the
 * watermark, and those of coroutines parked long (release.c).
 * It sleeps 1 ms while Ps are busy and backs off to 10 ms when all idle;
 * once every P has been idle for DEEP_AFTER, it sleeps DEEP_SLEEP at a
 * time (an idle service wakes once a second, not a hundred times), and the
 * first P to wake from its sleep wakes it (tern__monitor_kick), since
 * whatever that P runs may need watching at once.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runq.h"

#define S tern__sched

static pthread_t mon_thread;
static bool mon_started;
static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mon_cond;
static bool mon_stop;

/* Every P idle this long: the monitor sleeps DEEP_SLEEP at a time, with
 * mon_deep set; nothing it does is due while no coroutine runs but the
 * slow work (spare stacks' pages, parked stacks, pools' trims), which
 * goes on at that pace. */
#define DEEP_AFTER (100 * TERN_MS)
#define DEEP_SLEEP TERN_SEC
static atomic_bool mon_deep;
static _Atomic uint64_t mon_ticks;

void tern__monitor_kick(void)
{
    /* Dekker with the monitor's entry to a deep sleep: the caller's P has
     * left the idle count before this load (its own seq_cst RMW, or its
     * waker's, before the futex wake that woke it); the monitor sets
     * mon_deep before its last look at that count */
    if (!atomic_load(&mon_deep) || !atomic_exchange(&mon_deep, false))
        return;
    /* parks stamp "since" from the monitor's clock, a second old now */
    atomic_store_explicit(&tern__mon_clock.now, tern_now(), memory_order_relaxed);
    pthread_mutex_lock(&mon_lock);
    pthread_cond_signal(&mon_cond);
    pthread_mutex_unlock(&mon_lock);
}

uint64_t tern__monitor_ticks(void)
{
    return atomic_load_explicit(&mon_ticks, memory_order_relaxed);
}

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

/* The first line of a small /proc file, NUL-terminated, without its
 * newline. */
static bool read_small(const char *path, char *buf, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    if (r <= 0)
        return false;
    buf[r] = 0;
    buf[strcspn(buf, "\n")] = 0;
    return true;
}

/* Names of the calls a blocking mistake usually makes; numbers differ by
 * architecture, so only the <sys/syscall.h> names this one has. */
static const char *syscall_name(long nr)
{
    static const struct { long nr; const char *name; } t[] = {
#define SC(x) {SYS_##x, #x},
        SC(read) SC(write) SC(readv) SC(writev) SC(pread64) SC(pwrite64) SC(openat)
        SC(close) SC(fsync) SC(fdatasync) SC(flock) SC(fcntl) SC(ioctl) SC(futex)
        SC(nanosleep) SC(clock_nanosleep) SC(ppoll) SC(pselect6) SC(epoll_pwait)
        SC(recvfrom) SC(sendto) SC(recvmsg) SC(sendmsg) SC(connect) SC(accept4)
        SC(wait4) SC(waitid) SC(msgrcv) SC(semtimedop)
#ifdef SYS_poll
        SC(poll)
#endif
#ifdef SYS_select
        SC(select)
#endif
#ifdef SYS_epoll_wait
        SC(epoll_wait)
#endif
#ifdef SYS_accept
        SC(accept)
#endif
#ifdef SYS_pause
        SC(pause)
#endif
#ifdef SYS_open
        SC(open)
#endif
#undef SC
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].nr == nr)
            return t[i].name;
    return NULL;
}

static _Atomic(void (*)(bool)) run_hooks[MON_HOOKS];

int tern__run_hook(void (*fn)(bool starting))
{
    for (int i = 0; i < MON_HOOKS; i++) {
        void (*none)(bool) = NULL;
        if (atomic_load(&run_hooks[i]) == fn ||
            atomic_compare_exchange_strong(&run_hooks[i], &none, fn))
            return 0;
    }
    return -ENOSPC;
}

void tern__run_hooks(bool starting)
{
    for (int i = 0; i < MON_HOOKS; i++) {
        void (*fn)(bool) = atomic_load(&run_hooks[i]);
        if (fn)
            fn(starting);
    }
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

/* A worker thread asleep in the kernel (state S or D in
 * /proc/self/task/TID/stat), with its system call's name and wait channel
 * where the kernel tells. */
static bool thread_blocked(tern_p *p, char *call, size_t ncall, char *wchan, size_t nwchan)
{
    int tid = atomic_load(&p->tid);
    char path[64], buf[512];
    if (tid <= 0)
        return false;
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    if (!read_small(path, buf, sizeof buf))
        return false;
    const char *rp = strrchr(buf, ')');      /* the name may hold spaces */
    if (!rp || (rp[2] != 'S' && rp[2] != 'D'))
        return false;
    snprintf(call, ncall, "an unknown system call");
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    if (read_small(path, buf, sizeof buf)) {
        char *end;
        long nr = strtol(buf, &end, 10);
        if (end != buf && nr >= 0) {
            const char *name = syscall_name(nr);
            if (name)
                snprintf(call, ncall, "%s()", name);
            else
                snprintf(call, ncall, "system call %ld", nr);
        }
    }
    snprintf(wchan, nwchan, "?");
    snprintf(path, sizeof path, "/proc/self/task/%d/wchan", tid);
    if (read_small(path, buf, sizeof buf) && buf[0] && strcmp(buf, "0") != 0)
        snprintf(wchan, nwchan, "%.40s", buf);
    return true;
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
        /* A worker asleep on one of the runtime's own locks waits for a
         * holder the kernel preempted (a loaded machine): no mistake of
         * the program's, so that time does not count (nor would its first
         * system call after, caught by a look just then, be to blame). */
        if (atomic_load(&p->lock_sleeps)) {
            w[i].since = now;
            w[i].cpu_since = -1;
            continue;
        }
        if (w[i].cpu_since < 0)
            w[i].cpu_since = thread_cpu(p);
        if (w[i].reported || now - w[i].since <= threshold)
            continue;
        int64_t cpu = w[i].cpu_since < 0 ? -1 : thread_cpu(p);
        bool hog = cpu < 0 || cpu - w[i].cpu_since > threshold;
        char call[64], wchan[48];
        bool blocked = !hog && cpu - w[i].cpu_since < (now - w[i].since) / 2 &&
                       thread_blocked(p, call, sizeof call, wchan, sizeof wchan);
        if (hog || blocked) {
            w[i].reported = true;
            /* p->cur may change under us; read the id and name racily but
             * from one coroutine (control blocks are never unmapped).  The
             * workers publish cur with release, so a block made just
             * before (calloc) is seen initialised. */
            tern__spin_lock(&S->dump_lock);
            tern_co *co = __atomic_load_n(&p->cur, __ATOMIC_ACQUIRE);
            char name[TERN_NAME_MAX] = "?";
            if (co)
                tern__co_name_copy(co, name);
            unsigned long long id = co ? __atomic_load_n(&co->id, __ATOMIC_RELAXED) : 0ULL;
            tern__spin_unlock(&S->dump_lock);
            /* No coroutine on the worker: it is between two, in the
             * scheduler, where no user code runs, so there is nobody to
             * name.  Seen under qemu-user (aarch64 CI), where a thread can
             * wait there in qemu's own locks: the host's futex, whose x86
             * number the guest's table read as accept(). */
            if (!co)
                continue;
            STAT_ADD(S->long_runs, 1);
            if (blocked) {
                STAT_ADD(S->blocked_runs, 1);
                tern__report("coroutine %llu '%s' has blocked worker %d in %s for %lld ms "
                             "(kernel wait: %s); every coroutine queued on that worker waits: "
                             "make blocking calls through tern_blocking(), or use tern's own "
                             "waits (tern_sleep, tern_fd_wait, tern_mutex)",
                             id, name, i, call, (long long)((now - w[i].since) / TERN_MS), wchan);
            } else {
                tern__report("coroutine %llu '%s' has held worker %d for %lld ms without "
                             "yielding; other coroutines on it wait (call tern_yield in long "
                             "loops, or tern_blocking for blocking calls)",
                             id, name, i, (long long)((now - w[i].since) / TERN_MS));
            }
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
    int64_t delay = TERN_MS, idle_since = 0;
    for (int i = 0; i < S->nprocs; i++)
        w[i] = (pwatch){.since = tern_now(), .cpu_since = -1};
    pthread_mutex_lock(&mon_lock);
    while (!mon_stop) {
        bool deep = false;
        if (delay == DEEP_SLEEP) {
            atomic_store(&mon_deep, true);
            deep = atomic_load(&S->npidle) == S->nprocs;
            if (!deep) {        /* a P woke meanwhile; its kick, if any, is harmless */
                atomic_store(&mon_deep, false);
                delay = TERN_MS;
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t t = (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec + delay;
        ts.tv_sec = t / TERN_SEC;
        ts.tv_nsec = t % TERN_SEC;
        pthread_cond_timedwait(&mon_cond, &mon_lock, &ts);
        if (deep)
            atomic_store(&mon_deep, false);     /* timed out, or kicked */
        if (mon_stop)
            break;
        pthread_mutex_unlock(&mon_lock);

        atomic_fetch_add_explicit(&mon_ticks, 1, memory_order_relaxed);
        int64_t now = tern_now();
        atomic_store_explicit(&tern__mon_clock.now, now, memory_order_relaxed);
        if (deep) {
            /* Each P's stall clock started at the last tick, up to a second
             * ago, when it was idle; a P that woke since and runs its first
             * coroutine has not switched (a start from the scheduler does
             * not count as one), so that stamp would make the coroutine
             * look stalled from then: a report naming it at once (CI saw
             * 'main' reported 55 ms into a wait of a few).  Start afresh. */
            for (int i = 0; i < S->nprocs; i++)
                w[i] = (pwatch){.switches = STAT_GET(S->ps[i].st_switches), .since = now, .cpu_since = -1};
        }
        check_long_runs(w, now, threshold);
        bool all_idle = atomic_load(&S->npidle) == S->nprocs;
        if (!all_idle)
            idle_since = 0;
        else if (idle_since == 0)
            idle_since = now;
        delay = !all_idle                        ? TERN_MS
                : now - idle_since >= DEEP_AFTER ? DEEP_SLEEP
                : delay * 2 > 10 * TERN_MS       ? 10 * TERN_MS
                                                 : delay * 2;
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
        tern__release_parked(now, all_idle);
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
    atomic_store(&mon_deep, false);
    atomic_store(&S->last_poll, tern_now());
    atomic_store(&tern__mon_clock.now, tern_now());
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
    atomic_store(&tern__mon_clock.now, 0);     /* outside a run: the kernel's clock */
}
