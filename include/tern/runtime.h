/*
 * tern/runtime.h - coroutines on an M:N work-stealing scheduler.
 *
 * A tern program hands its entry function to tern_run(), which starts one
 * worker thread per logical processor ("P"), runs the entry as the first
 * coroutine and returns its result once it returns.  Inside, coroutines are
 * started with tern_go() (Go's `go f(x)`), give way with tern_yield(), sleep
 * with tern_sleep(), wait for sockets with tern_fd_wait() and push blocking C
 * calls to a thread pool with tern_blocking().  Blocking parks the coroutine,
 * never the worker thread.
 *
 * Errors: functions return 0 (or a non-negative value) on success and -errno
 * on failure; tern_strerror() (tern/error.h) explains a code.
 *
 * Threads: every function below must be called from a coroutine (inside
 * tern_run) unless its comment says otherwise.  Calling one from elsewhere
 * is a programmer error and aborts with a message saying so, as does a
 * NULL object (the message names the function).
 *
 * Bounding: the runtime sits below tern/context.h, so its own waits
 * (tern_sleep_until, tern_wait, tern_fd_wait, tern_signal_wait) take an
 * absolute monotonic deadline in ns (TERN_FOREVER: none), not a tern_ctx;
 * every blocking call above the runtime takes a ctx last instead.
 *
 * Ownership: the runtime owns every coroutine and its control block; a
 * tern_co handle is borrowed (see tern_co below).  Strings passed in
 * (names, wait reasons) are copied or must be static, as each says.
 */
#ifndef TERN_RUNTIME_H
#define TERN_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- time -------------------------------------------------------------- */

/* Durations and deadlines are int64 nanoseconds on the monotonic clock. */
#define TERN_NS  ((int64_t)1)
#define TERN_US  ((int64_t)1000)
#define TERN_MS  ((int64_t)1000000)
#define TERN_SEC ((int64_t)1000000000)

/* Deadline meaning "never": pass it wherever a deadline is asked for. */
#define TERN_FOREVER ((int64_t)-1)

/* Monotonic clock now, in ns.  Callable from any thread. */
int64_t tern_now(void);

/* Deadline `ns` from now; negative `ns` gives TERN_FOREVER.  Any thread. */
int64_t tern_deadline_after(int64_t ns);

/* ---- running ----------------------------------------------------------- */

/* A coroutine body.  Its return value is what tern_run() returns for the
 * entry coroutine; it is ignored for coroutines started with tern_go(). */
typedef int tern_fn(void *arg);

/* Opaque coroutine handle.  Valid while the coroutine lives; do not keep it
 * after the coroutine may have returned unless you synchronise with it. */
typedef struct tern_co tern_co;

typedef struct tern_run_options {
    int procs;                  /* Ps (worker threads); 0: TERN_PROCS env, else
                                   the CPUs the process may use (affinity and
                                   cgroup cpu.max quota both honoured) */
    size_t stack_size;          /* default coroutine stack; 0: TERN_STACK_DEFAULT */
    int64_t monitor_threshold;  /* report a coroutine holding a worker longer
                                   than this (ns); 0: 10 ms; <0: no monitor */
    int blocking_threads;       /* tern_blocking() pool bound; 0: 64 */
    int64_t stack_release;      /* a coroutine with a stack of its own parked
                                   this long (ns) in one of tern's waits (sleep,
                                   channels, select, mutexes, fd waits,
                                   contexts...) has its stack's pages given
                                   back: the used part is copied to the heap
                                   and copied back when it is woken, or when
                                   anything else touches the stack (the touch
                                   faults and is retried).  Every such
                                   coroutine qualifies where the kernel has
                                   guard markers (MADV_GUARD_INSTALL, Linux
                                   6.13+; tern_runtime_stats says which),
                                   except with tern_go_options.keep_stack;
                                   elsewhere, or with TERN_STACK_RELEASE=
                                   promised in the environment, only those
                                   started with tern_go_options.release_stack
                                   (and tern's own idle connections).  0: 20 ms
                                   for those that promised, 1 s for the rest
                                   (their copy back must keep other threads out
                                   meanwhile: ~20 us instead of a copy); <0:
                                   never.  The copying back on a touch is done
                                   by tern's SIGSEGV handler: a program that
                                   installs its own must pass on the faults it
                                   does not handle to the one it replaced.  Done by the monitor (none if
                                   monitor_threshold < 0) */
    bool no_deadlock_exit;      /* do not exit when every coroutine is
                                   parked with nothing left to wake one
                                   (see tern_runtime_external_wakers) */
} tern_run_options;

/* Start the runtime, run entry(arg) as the first coroutine, and return its
 * result when it returns.  Coroutines still alive at that point are
 * abandoned (as Go abandons goroutines when main returns): their memory is
 * freed and they never run again.  Called from a plain thread, not from a
 * coroutine; one runtime per process at a time; may be called again after
 * it returns.  Returns -EBUSY if a runtime is already running, -ENOMEM or
 * another -errno if start-up fails. */
int tern_run(tern_fn *entry, void *arg);
int tern_run_opts(tern_fn *entry, void *arg, const tern_run_options *opts);

/* Stack modes.  TERN_STACK_OWN: a private, lazily committed stack with a
 * guard (the default).  TERN_STACK_SHARED: the coroutine runs on its P's
 * shared stack and, when another shared-stack coroutine needs that stack,
 * its used part is copied out to the heap; a parked coroutine then costs
 * only its used stack bytes plus its control block (a few hundred bytes),
 * at the price of a copy on switch and of being pinned to the P that
 * started it.  A shared-stack coroutine must not hand pointers to its stack
 * to other coroutines while it is parked (tern's own waits never do). */
typedef enum tern_stack_mode {
    TERN_STACK_OWN = 0,
    TERN_STACK_SHARED = 1,
} tern_stack_mode;

/* The default stack: 64 KiB of address space, committed page by page as it
 * is touched, with a guard below it.  Measured with bench/stack_depth
 * (bytes, warm / first call, the first call includes ~3 KiB of lazy symbol
 * binding): snprintf("%f") 2712 / 3192, fprintf with 8 arguments
 * 2264 / 3128, getaddrinfo("localhost") 2936 / 5432 (a real DNS lookup goes
 * deeper, and belongs in tern_blocking anyway), qsort 1256 / 3128.  64 KiB
 * leaves ten times that for user frames; raising it costs address space
 * and page tables (~128 bytes per coroutine per 64 KiB), not RSS, while
 * spawn+join time was measured flat from 16 to 64 KiB and up to 1.5x
 * slower at 256 KiB (more TLB and page-table misses). */
#define TERN_STACK_DEFAULT ((size_t)64 * 1024)

/* Give back to the system the pages of the calling coroutine's own stack
 * that lie below its current depth: for a long-lived coroutine about to
 * sit idle after deep work (an HTTP connection between requests), so the
 * wait costs the pages it still uses, not the deepest it ever went.  One
 * madvise(2); a no-op outside a coroutine and in TERN_STACK_SHARED mode. */
void tern_stack_trim(void);
#define TERN_STACK_MIN     ((size_t)16 * 1024)
#define TERN_STACK_MAX     ((size_t)1024 * 1024 * 1024)

/* A handle to wait for one coroutine and take its result (see
 * tern_go_options.join; tern_join_wait and tern_join_free are in
 * tern/group.h, since the wait takes a context). */
typedef struct tern_join tern_join;

typedef struct tern_go_options {
    const char *name;           /* shown by tern_runtime_dump() and in reports; copied
                                   (first 31 bytes); NULL: no name */
    size_t stack_size;          /* 0: the run's default; rounded up to a page
                                   and to TERN_STACK_MIN */
    tern_stack_mode stack_mode;
    tern_join **join;           /* not NULL: receives a join handle, which the
                                   caller owns and releases with
                                   tern_join_free (tern/group.h); NULL on
                                   failure.  The coroutine itself does not
                                   wait for it: it ends and is recycled as
                                   usual, leaving its result in the handle */
    bool release_stack;         /* TERN_STACK_OWN, where the kernel lacks guard
                                   markers (see tern_run_options.stack_release,
                                   which says the rest): the coroutine promises,
                                   as TERN_STACK_SHARED asks, that nothing else
                                   touches its stack while it is parked long (no
                                   WaitGroup, mutex or result array in its frame
                                   that others use: such writes would be lost),
                                   so its pages may be given back there too.
                                   Where guard markers work, every coroutine
                                   qualifies without it */
    bool keep_stack;            /* never give this coroutine's stack pages back
                                   while it is parked: for one whose stack other
                                   threads pass to system calls while it waits
                                   (a read(2) into a buffer in its frame from
                                   another thread or tern_blocking call would
                                   fail with EFAULT on a released page; tern's
                                   own conn reads and writes copy it back and
                                   retry) */
} tern_go_options;

/* Start fn(arg) in a new coroutine (Go's `go fn(arg)`).  Returns 0, or
 * -ENOMEM when no control block (or, for a stack size other than the
 * default, no stack) can be had, -EINVAL for a NULL fn (nothing is started
 * either way).  A default-size stack is taken when the coroutine first
 * runs, so a queued coroutine holds none; if none can be had then (the
 * address space is exhausted), the process stops with a report, as Go's
 * does when a goroutine's stack cannot grow.
 * The new coroutine runs soon, usually on this P right after the caller
 * next blocks or yields. */
int tern_go(tern_fn *fn, void *arg);

/* tern_go with options; *out (if not NULL) receives the handle.  -EINVAL for
 * a stack size over TERN_STACK_MAX or an unknown stack mode. */
int tern_go_opts(tern_fn *fn, void *arg, const tern_go_options *opts, tern_co **out);

/* Let other runnable coroutines run; the caller is runnable again at once. */
void tern_yield(void);

/* The calling coroutine, its id (unique in the process, starting at 1) and
 * name ("" if none).  tern_id() returns 0 outside a coroutine.  The name
 * returned by tern_co_name() is owned by the coroutine and valid while it
 * lives.  A NULL co aborts, naming the function (programmer error). */
tern_co *tern_self(void);
uint64_t tern_id(void);
uint64_t tern_co_id(const tern_co *co);
const char *tern_co_name(const tern_co *co);

/* The number of Ps of the running runtime (0 when none runs).  Any thread. */
int tern_runtime_procs(void);

/* ---- timers ------------------------------------------------------------ */

/* Sleep for ns (<= 0: just yield) or until a monotonic deadline.  0.
 * These are the runtime's primitives and cannot be cancelled; a sleep that
 * a context should end is tern_ctx_sleep() (tern/context.h). */
int tern_sleep(int64_t ns);
int tern_sleep_until(int64_t deadline);

/* ---- parking: the building block of channels, mutexes and the like ------
 *
 * A waiter takes a ticket, publishes (its tern_co*, ticket) wherever a waker
 * will look, then waits.  A waker calls tern_wake() with both; exactly one
 * wake per ticket succeeds, so several wakers (a channel, a timer, a
 * cancellation) may race for one waiter safely.  The waiter's own
 * bookkeeping must not live on its stack if it may run in
 * TERN_STACK_SHARED mode; keep it in the waker's structure or the heap.
 *
 *     tern_ticket t = tern_wait_prepare();
 *     lock(q); q->waiter = tern_self(); q->ticket = t; unlock(q);
 *     int r = tern_wait(t, "queue", deadline);   // r: waker's value or -ETIMEDOUT
 */
typedef uint64_t tern_ticket;

/* Begin a wait; any earlier ticket of this coroutine becomes stale. */
tern_ticket tern_wait_prepare(void);

/* Park until the ticket is woken or the deadline (TERN_FOREVER: none)
 * passes.  Returns the waker's `result`, or -ETIMEDOUT.  `reason` is a
 * static string shown by tern_runtime_dump(). */
int tern_wait(tern_ticket t, const char *reason, int64_t deadline);

/* Withdraw a prepared ticket without waiting.  Returns true if withdrawn;
 * false if a waker already claimed it, in which case call tern_wait() to
 * collect that wake (it returns at once). */
bool tern_wait_cancel(tern_ticket t);

/* Wake co's wait `t` with `result`.  Returns true if this call woke it,
 * false if the ticket was already woken, timed out, cancelled or stale.
 * Callable from any thread, including non-tern threads.  The caller must
 * know co is still alive: typically co's (co, ticket) sits in a structure
 * the waiter removes itself from under a lock, and the waker calls
 * tern_wake while holding that lock. */
bool tern_wake(tern_co *co, tern_ticket t, int result);

/* Like Go, tern exits with "all coroutines are asleep - deadlock!" when
 * every coroutine is parked and no timer, fd, offloaded call or runnable
 * coroutine can wake one.  It cannot see threads of your own: a thread
 * that will wake coroutines (tern_wake, tern_chan_try_send, a context
 * cancel) declares itself with tern_runtime_external_wakers(+1) and withdraws
 * with (-1); while any is declared, no deadlock is reported.  Any thread;
 * the count is per process and survives tern_run. */
void tern_runtime_external_wakers(int delta);

/* ---- netpoller --------------------------------------------------------- */

#define TERN_FD_READ  0x1
#define TERN_FD_WRITE 0x2

/* Park until fd (set O_NONBLOCK yourself) is readable or writable as asked,
 * or the deadline passes.  Edge-triggered: call it after an operation
 * returned EAGAIN.  The fd is registered with epoll on first use and stays
 * registered until tern_fd_close().  Returns 0 (ready; the fd may also be
 * at EOF or in error: the next read/write says), -ETIMEDOUT, -EBADF if the
 * fd was closed with tern_fd_close() while waiting or is invalid, -EBUSY if
 * another coroutine already waits on the same fd in the same direction,
 * -EINVAL for bad events, -ENOMEM, or epoll_ctl's -errno when the fd
 * cannot be registered (a regular file counts as always ready: 0). */
int tern_fd_wait(int fd, int events, int64_t deadline);

/* Wake the fd's waiters with -EBADF, drop its registration and close it.
 * Use it instead of close() for any fd passed to tern_fd_wait().  Returns
 * close()'s result (0 or -errno).  Callable from any thread. */
int tern_fd_close(int fd);

/* ---- blocking offload -------------------------------------------------- */

/* Run fn(arg) on the blocking-call thread pool while the calling coroutine
 * parks, and return fn's result.  For calls that block the thread (file
 * I/O, getaddrinfo, a C library).  The pool is bounded
 * (tern_run_options.blocking_threads); calls beyond it queue, and the queue
 * depth is in tern_runtime_stats().  fn must not call tern functions that park.
 * From a TERN_STACK_SHARED coroutine, arg must not point into its stack
 * (that stack is another coroutine's while this one waits): -EFAULT.
 * -EINVAL for a NULL fn; -EAGAIN when the pool has no thread and none can
 * be started (fn did not run). */
int tern_blocking(tern_fn *fn, void *arg);

/* ---- introspection ----------------------------------------------------- */

typedef struct tern_runtime_proc_stats {
    uint64_t switches;          /* coroutine switches on this P */
    uint64_t spawned;           /* coroutines started on this P */
    uint64_t steals;            /* successful steals by this P */
    uint64_t stolen;            /* coroutines it took in them */
    uint64_t wakeups;           /* times its worker was woken from sleep */
    uint32_t runq;              /* coroutines in its local run queue now */
    uint32_t timers;            /* timers in its heap now */
} tern_runtime_proc_stats;

/* A struct tag without a typedef, as POSIX's struct stat beside stat():
 * the function tern_runtime_stats() owns the ordinary name. */
struct tern_runtime_stats {
    int procs;
    uint64_t alive;             /* started and not yet returned */
    uint64_t running;           /* on a worker now */
    uint64_t runnable;          /* in a run queue (approximate while running) */
    uint64_t parked;            /* alive - running - runnable */
    uint64_t spawned_total;
    uint64_t switches;          /* sums of the per-P figures */
    uint64_t steals;
    uint64_t wakeups;
    uint64_t global_runq;
    uint64_t fd_waiters;        /* coroutines parked in tern_fd_wait */
    uint64_t timers;
    uint64_t blocking_threads;  /* offload threads alive */
    uint64_t blocking_queued;   /* offloaded calls waiting for a thread */
    uint64_t blocking_running;  /* offloaded calls running */
    uint64_t stacks_mapped;     /* stack slots carved so far */
    uint64_t stack_bytes_cached;/* bytes of stacks parked in caches */
    const char *stack_guard;    /* "guard-install" (MADV_GUARD_INSTALL, Linux
                                   6.13+), or "canary" (checked on switch) */
    uint64_t stacks_released;   /* parked coroutines whose own stack's pages are
                                   given back now (tern_run_options.stack_release) */
    uint64_t stack_saved_bytes; /* their used stack parts, held on the heap */
    const char *stack_release;  /* who qualifies: "any" coroutine with a stack of
                                   its own (guard markers work here: a touch of
                                   a released stack faults and copies it back),
                                   or only those that "promised"
                                   (tern_go_options.release_stack) */
    uint64_t stack_release_faults; /* released stacks copied back because
                                   another coroutine or thread touched them */
    uint64_t long_runs;         /* monitor reports so far */
    uint64_t blocked_syscalls;  /* of them, workers blocked in a system call */
    uint64_t monitor_ticks;     /* the monitor thread's wake-ups so far: ~1,000
                                   a second while coroutines run, one a second
                                   once every worker has been idle 100 ms */
};

/* Fill *st and, if procs != NULL, up to max_procs per-P records.  Returns
 * the number of Ps (which may exceed max_procs), or -ESRCH if no runtime
 * runs.  Any thread; figures from other threads are a racy snapshot. */
int tern_runtime_stats(struct tern_runtime_stats *st, tern_runtime_proc_stats *procs, int max_procs);

/* Print every coroutine: id, name, state, wait reason and time in that
 * state.  Any thread. */
void tern_runtime_dump(FILE *out);

/* Where the runtime's reports go (long-running coroutine, deadlock, stack
 * overflow).  Default: stderr.  NULL restores the default.  The hook is
 * called from the monitor thread or a failing worker with arg as its last
 * argument; it must not park.  msg is valid only during the call.  Any
 * thread. */
typedef void tern_runtime_report_fn(const char *msg, void *arg);
void tern_runtime_set_report_hook(tern_runtime_report_fn *fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
