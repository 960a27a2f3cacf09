/*
 * internal.h - the runtime's private structures, shared by its files only
 * (what the layers above may use is in export.h).  See sched.c for the
 * scheduler's model and invariants.
 */
#ifndef TERN_RUNTIME_INTERNAL_H
#define TERN_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "base/check.h"
#include "base/spin.h"
#include "runtime/export.h"
#include "tern/runtime.h"

#define TERN_RUNQ_SIZE 256          /* per-P local queue; power of two */
#define TERN_CO_CACHE_MAX 128       /* free coroutines kept per P */
#define TERN_NAME_MAX 32
#define TERN_REG_CHUNK 4096         /* registry slots per chunk */
#define TERN_REG_CHUNKS 4096        /* chunks per P: 16M coroutines */

/* Relaxed counters: written by one thread, read racily by stats. */
#define STAT_ADD(field, n) \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n), \
                          memory_order_relaxed)
#define STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

typedef struct tern_p tern_p;

/* Coroutine states.  NOTIFIED exists because a waker may run while the
 * parker is still on its stack (RUNNING until after_switch): see sched.c. */
enum {
    CO_FREE = 0,    /* in a cache, not a live coroutine */
    CO_RUNNABLE,    /* in a run queue */
    CO_RUNNING,     /* on a worker */
    CO_WAITING,     /* parked; tern_wake makes it RUNNABLE */
    CO_NOTIFIED,    /* woken before it finished switching out */
    CO_DEAD,        /* returned; its successor recycles it */
};


typedef struct tern_stack {
    char *lo;                   /* lowest usable byte (guard page is below) */
    size_t size;                /* usable bytes */
    int cls;                    /* size class, or -1 for a private mapping */
    void *reg;                  /* stack.c's region (class stacks), or NULL */
    unsigned vg_id;             /* valgrind registration */
} tern_stack;


/* Laid out so that starting and switching a coroutine touch the first two
 * cache lines only: with thousands alive, every other line is a miss. */
struct tern_co {
    /* line 0: the switch and the run queues */
    void *sp;                   /* saved stack pointer while switched out */
    tern_co *next;              /* run queue / free list / offload queue */
    _Atomic uint32_t status;
    uint8_t stack_mode;
    bool is_main;               /* the tern_run entry */
    bool has_name;
    _Atomic uint8_t stk_out;    /* STK_*: own stack's pages given back (release.c) */
    uint32_t reg_idx;           /* slot in home->reg */
    uint64_t id;
    tern_fn *fn;
    void *arg;
    tern_p *home;               /* registry it is listed in */
    tern_p *pinned;             /* TERN_STACK_SHARED: its P, else NULL */

    /* line 1: waiting.  wait_word = ticket << 1 | claimed; it keeps
     * counting across reuse of the control block, so a waker holding a
     * ticket from a previous life can never match. */
    _Atomic uint64_t wait_word;
    int wait_result;
    _Atomic bool park_rel;      /* this wait may have its stack released (tern__wait_r) */
    bool rel_ok;                /* its waits may: release_stack, or
                                   tern__stack_release_allow; its own field */
    bool rel_promise;           /* ... because it promised that nothing else
                                   touches its stack while it waits; the
                                   monitor reads it (rel_promised) */
    bool keep_stack;            /* tern_go_options.keep_stack */
    const char *_Atomic wait_reason;
    _Atomic int64_t state_since; /* coarse ns at park, for tern_runtime_dump */
    tern_join *join;            /* tern_go_options.join, until it returns */
    void *local;                /* tern__co_local: NULL at every start.  Here,
                                   not with the cold fields: tracing reads it
                                   on every request, and a coroutine parked
                                   between requests has this line warm */
    tern_stack stack;

    /* colder: deadlines, shared stacks, offload, tools, name */
    tern_timer timer;
    tern_co *batch_next;        /* free batches (copool.c) */
    int batch_n;
    char *save_buf;             /* shared: the used stack while another runs;
                                   own: the used stack while released */
    size_t save_len, save_cap;
    tern_waitq_node node, ctx_node;
    tern_fn *off_fn;
    void *off_arg;
    tern_ticket off_ticket;
    void *asan_fake;
    void *tsan_fiber;
    char name[TERN_NAME_MAX];
};

static inline const char *tern__co_name(const tern_co *co)
{
    return co->has_name ? co->name : "";
}

/* Copy a coroutine's name from another thread (the monitor, tern_runtime_dump):
 * the block may be reused and renamed meanwhile, so read it byte by byte
 * with relaxed atomics, which gives a possibly stale name but no race. */
static inline void tern__co_name_copy(const tern_co *co, char out[TERN_NAME_MAX])
{
    bool has = __atomic_load_n(&co->has_name, __ATOMIC_RELAXED);
    for (int i = 0; i < TERN_NAME_MAX; i++)
        out[i] = has ? __atomic_load_n(&co->name[i], __ATOMIC_RELAXED) : 0;
    out[TERN_NAME_MAX - 1] = 0;
}


/* Post-switch work the next context does for the one that left. */
enum { SW_YIELD = 1, SW_PARK, SW_EXIT };

#define TERN_CACHE_LINE 64      /* x86-64 and the usual aarch64 cores */

/* Cache lines: what other threads read while this P runs (the run queue's
 * ends, the `next` slot, the timer heap's head, the idle fields, the
 * statistics) is kept off the lines its owner writes on every switch (cur,
 * prev, the yield queue), and the struct is line-aligned (workers.c
 * allocates it so).  A spinning P reads the busy ones' lines about once a
 * microsecond; each time one shared a line with a switch's stores, the busy
 * P fetched it back: with timer_next beside prev_action and runnext beside
 * cur, ping-pong on 2 Ps took 108 ns a message against 93 (on a machine
 * with slow cross-core transfers), and the last counter, once on the next
 * P's runq_head line, put a miss on every park (+30%). */
struct tern_p {
    int id;
    pthread_t thread;
    clockid_t cpu_clock;        /* its worker thread's CPU clock */
    atomic_int tid;             /* its worker thread's id (0: not started) */
    bool cpu_clock_ok;
    bool alone;                 /* the only P: no thief ever takes from it */
    atomic_int lock_sleeps;     /* its worker sleeps on a runtime lock (spin.c) */

    /* run queue: the owner pushes at tail; owner and thieves CAS head */
    _Alignas(TERN_CACHE_LINE) _Atomic uint32_t runq_head;
    _Atomic uint32_t runq_tail;
    _Atomic(tern_co *) runq[TERN_RUNQ_SIZE];
    _Atomic(tern_co *) runnext;

    /* pinned (shared-stack) coroutines readied by other threads */
    _Alignas(TERN_CACHE_LINE) tern__spin inbox_lock;
    tern_co *inbox, *inbox_tail;
    atomic_int ninbox;

    /* coroutines that yielded while no P was idle: owner-only, no atomics,
     * run after the ring (Go sends Gosched to the back of the line too);
     * spilled to the ring as soon as a P idles, so they can be stolen */
    _Alignas(TERN_CACHE_LINE) tern_co *yq_head, *yq_tail;
    _Atomic uint32_t nyq;

    tern_co *cur;               /* running coroutine; NULL on the scheduler */
    void *g0_sp;                /* the worker thread's own context */
    void *g0_asan_fake;
    void *g0_tsan_fiber;
    const void *g0_stack_lo;
    size_t g0_stack_size;
    tern_co *prev;              /* context that just switched out... */
    int prev_action;            /* ...and what to do with it */
    tern_co *g0_next;           /* shared-stack target handed to g0 */

    /* timers */
    _Alignas(TERN_CACHE_LINE) tern__spin timer_lock;
    tern_timer **heap;
    _Atomic int32_t nheap;
    int32_t capheap;
    _Atomic int64_t timer_next;  /* earliest when, INT64_MAX if none */

    /* caches */
    _Alignas(TERN_CACHE_LINE) tern_waitq_node *free_nodes;
    int nfree_nodes;
    tern_co *free_co;
    int nfree;
    uint32_t burst;             /* spawns in the running slice (sched.c) */
    tern_co *bare_co;           /* spare blocks without a stack (copool.c) */
    int nbare;
    uint64_t id_next, id_end;   /* batch of coroutine ids */

    /* registry of coroutines started here (registry.c) */
    _Atomic uintptr_t *reg_chunks[TERN_REG_CHUNKS];
    _Atomic uint32_t reg_len;   /* slots ever used */
    uint32_t reg_free_head;     /* owner's free list: index + 1, 0 = empty */
    _Atomic uint32_t reg_remote; /* slots returned by other Ps */

    /* idle and wake-up */
    tern_p *idle_next;
    bool is_idle;               /* in the idle list (sched lock) */
    bool spinning;              /* looking for work, counted in nspinning */
    atomic_bool wake_spinning;  /* set by wakep: start out spinning */
    atomic_uint wake_word;      /* futex */
    atomic_bool in_netpoll;
    /* While in p_sleep: the latest it will wake by itself (INT64_MAX:
     * never); INT64_MIN while awake, when other Ps watch its timers
     * (sleep_deadline in idle.c, the monitor). */
    _Atomic int64_t sleep_until;

    /* shared stack for TERN_STACK_SHARED coroutines */
    tern_stack shared;
    tern_co *shared_owner;

    /* the other P's `next` slot this P last considered stealing */
    tern_p *nx_victim;
    tern_co *nx_co;
    uint64_t nx_switches;
    int64_t nx_seen;

    uint32_t rand;
    uint32_t tick;              /* local scheduling decisions */
    uint32_t gq_countdown;      /* picks until the global queue's turn */

    /* what the other Ps saw of this one (tern__help_held_ps): its switch
     * count then, and since when it has not moved */
    _Alignas(TERN_CACHE_LINE) _Atomic uint64_t seen_switches;
    _Atomic int64_t seen_at;

    /* statistics (see tern_runtime_proc_stats): written by the owner only */
    _Alignas(TERN_CACHE_LINE) _Atomic uint64_t st_switches, st_spawned, st_exited, st_steals, st_stolen, st_wakeups;
    _Atomic uint64_t st_running;   /* 1 while a coroutine is on this P */
    _Atomic uint64_t st_relparks;  /* releasable waits begun here by coroutines
                                      that promised (release.c) */
    _Atomic uint64_t st_anyparks;  /* ... by the others (guard mode) */
};

typedef struct tern_sched {
    int nprocs;
    tern_p *ps;
    tern__spin lock;            /* global queue and idle list (short sections) */
    tern_co *gq_head, *gq_tail;
    atomic_long ngq;
    tern_p *idle;
    atomic_int npidle;
    atomic_int nspinning;
    atomic_bool stopping;
    atomic_bool netpoll_blocked; /* a worker is blocked in epoll_wait */
    _Atomic int64_t last_poll;
    tern_run_options opts;
    size_t stack_default;
    size_t page;
    int main_result;
    tern_co *main_co;
    atomic_uint_fast64_t id_gen;
    atomic_long fd_waiters;
    tern__spin dump_lock;        /* tern_runtime_dump and the monitor vs. free() of a
                                   coroutine's control block */
    _Atomic uint64_t long_runs;
    _Atomic uint64_t blocked_runs;
} tern_sched;

extern tern_sched *tern__sched;

/* ---- the scheduler (sched.h lists its files) ---- */
/* The current thread's P (NULL off the workers).  A coroutine may move to
 * another thread at any switch, and compilers may keep a TLS address
 * across a call, so every read must be a fresh one.  On x86-64 that is
 * an inline volatile asm (initial-exec: a GOT load and an %fs-relative
 * load), a compiler barrier like the call it replaces but without the
 * call and the registers a call costs its caller (it is read several
 * times per park and wake-up, and once per tern_pool call); elsewhere a
 * call that is never inlined. */
#if defined(__x86_64__)
extern __thread tern_p *tern__tls_p __attribute__((tls_model("initial-exec")));
static inline tern_p *tern__cur_p(void)
{
    tern_p *p;
    __asm__ __volatile__("movq tern__tls_p@gottpoff(%%rip), %0\n\tmovq %%fs:(%0), %0"
                         : "=r"(p)
                         :
                         : "memory");
    return p;
}
#else
tern_p *tern__cur_p(void);                      /* workers.c */
#endif
void tern__ready(tern_co *co);                  /* park.c */
tern_ticket tern__prepare(tern_co *self);       /* park.c: tern_wait_prepare for self */
void tern__inject(tern_co *list);       /* park.c: readied from a foreign thread */
void tern__wakep(void);                 /* idle.c */
void tern__p_kick(tern_p *p);           /* idle.c: wake p if it sleeps */

/* ---- signal_tsan.c: TSan builds route async signals to a thread that
 * runs no coroutine; no-ops in other builds ---- */
void tern__signal_route_begin(void);
void tern__signal_route_end(void);
void tern__signal_route_flush(void);    /* a worker about to sleep */

/* ---- copool.c ---- */
tern_co *tern__co_alloc(tern_p *p, size_t stack_size, bool shared);
void tern__co_cache_put(tern_p *p, tern_co *co);    /* a finished default block */
tern_co *tern__co_alloc_bare(tern_p *p);            /* a block without a stack */
int tern__co_stack_take(tern_p *p, tern_co *co);    /* a bare block's stack, from a spare */
void tern__co_discard(tern_p *p, tern_co *co);      /* unlist and free */
void tern__co_free_all(void);                       /* tern_run is over */
void tern__scavenge_stacks(int64_t now, bool all_idle);  /* monitor tick */

/* ---- registry.c ---- */
int tern__reg_add(tern_p *p, tern_co *co);     /* on p's own thread */
void tern__reg_del(tern_p *cur, tern_co *co);
uint32_t tern__reg_len(tern_p *p);
tern_co *tern__reg_get(tern_p *p, uint32_t idx);
void tern__reg_free(tern_p *p);

/* ---- timer.c ---- */
int tern__timers_init(tern_p *p);
void tern__timers_free(tern_p *p);
void tern__timer_add(tern_p *p, tern_timer *t, int64_t when);
void tern__timer_del(tern_timer *t);           /* waits out a firing wake */
int tern__timers_run(tern_p *p, int64_t now);  /* coroutines woken */
/* How late past its deadline an awake P's timer may fire before an idle
 * P steps in (idle.c, monitor.c): a P that switches fires its own on
 * time, so the others stay asleep unless a coroutine holds it. */
#define TERN__TIMER_SLACK (1000 * 1000)
/* Now to within a few ms (for "parked since" stamps, not deadlines): the
 * monitor's clock, read on each of its ticks (1 ms while a P works, at
 * most 10 ms when all idle, then a second: the P that wakes it first sets
 * the clock; later if the kernel holds the monitor's thread), else
 * CLOCK_MONOTONIC_COARSE.  The same base as tern_now.  A
 * park read the clock itself before: ~2% of a 1-P channel hand-off. */
struct tern__clock_line {
    _Alignas(64) _Atomic int64_t now;   /* the monitor writes it once a tick */
};
extern struct tern__clock_line tern__mon_clock;
int64_t tern__coarse_clock(void);
static inline int64_t tern__coarse_now(void)
{
    int64_t t = atomic_load_explicit(&tern__mon_clock.now, memory_order_relaxed);
    return __builtin_expect(t != 0, 1) ? t : tern__coarse_clock();
}

/* ---- stack.c ---- */
int tern__stacks_init(void);
void tern__stacks_fini(void);
int tern__stack_get(tern_stack *s, size_t size);
bool tern__stack_sized_in_region(size_t size);  /* a slot of a region, not a mapping */
void tern__stack_put(tern_stack *s);
void tern__stack_own(tern_stack *s, tern_co *co);       /* co's stack now */
void tern__stack_abandon(tern_stack *s);        /* never reused, unmapped at the end */
tern_co *tern__stack_owner_of(const void *addr);        /* signal-safe; NULL: none */
void tern__stack_release(tern_stack *s);        /* give pages back, keep slot */
void tern__stack_canary_set(const tern_stack *s);
bool tern__stack_canary_ok(const tern_stack *s);
bool tern__stack_guarded(void);
extern bool tern__stack_guard_on;               /* same, for the switch path */
extern bool tern__stack_guard_verified;         /* markers seen to fault (release.c) */
int tern__stack_sig_install(void);              /* per worker: altstack */
void tern__stack_sig_remove(void);
uint64_t tern__stacks_mapped(void);

/* ---- release.c ---- */
static inline bool rel_promised(const tern_co *co)
{
    return __atomic_load_n(&co->rel_promise, __ATOMIC_RELAXED);
}
static inline void rel_promise_set(tern_co *co, bool on)
{
    __atomic_store_n(&co->rel_promise, on, __ATOMIC_RELAXED);
}
enum { STK_IN = 0, STK_RELEASING, STK_OUT, STK_RESTORING };
void tern__release_parked(int64_t now, bool all_idle);  /* monitor tick */
void tern__stack_restore(tern_co *co);          /* any thread; no-op if resident */
/* The SIGSEGV handler's: addr faulted in co's stack; copy it back.  True:
 * retry the access. */
bool tern__stack_fault(tern_co *co, const void *addr);
void tern__release_init(void);                  /* after tern__stacks_init */
extern bool tern__release_guard;                /* guard mode (see release.c) */
void tern__release_stats(uint64_t *n, uint64_t *bytes, uint64_t *faults);
void tern__release_reset(void);                 /* tern_run is over */
size_t tern__stack_gap(void);                   /* stack.c: bytes between slots */

/* ---- netpoll_epoll.c ---- */
int tern__netpoll_init(void);
void tern__netpoll_fini(void);
int tern__netpoll(int64_t timeout_ns);          /* coroutines woken, or -errno */
void tern__netpoll_break(void);

/* ---- blocking.c ---- */
int tern__blocking_init(int max_threads);
void tern__blocking_fini(void);
long tern__blocking_inflight(void);
void tern__blocking_stats(struct tern_runtime_stats *st);

/* ---- monitor.c ---- */
int tern__monitor_start(void);
/* A P woke from its sleep: wake the monitor if it sleeps long (every P
 * was idle).  One load when it does not. */
void tern__monitor_kick(void);
uint64_t tern__monitor_ticks(void);             /* its wake-ups so far */
void tern__run_hooks(bool starting);            /* tern__run_hook's table */
void tern__monitor_stop(void);

/* ---- procs.c ---- */
int tern__default_procs(void);

#endif
