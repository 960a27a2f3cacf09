/*
 * export.h - the runtime's interface to csp and the layers above it: what
 * they need to park a coroutine on their own queues and wake it (wait
 * nodes, two-step wakes), to arm callback timers, and the runtime's
 * reporting.  Nothing else of the runtime is visible above it: the build
 * gives upper layers this header only (CMakeLists.txt, the layer views),
 * so the coroutine's and the P's layout, the run queues and the scheduler
 * state stay private to src/runtime (internal.h).
 */
#ifndef TERN_RUNTIME_EXPORT_H
#define TERN_RUNTIME_EXPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/spin.h"
#include "tern/runtime.h"

struct tern_p;
/* Also declared by tern/sync.h, whose wait queues link these nodes. */
typedef struct tern_waitq_node tern_waitq_node;

/* A deadline timer.  One lives in each coroutine: a coroutine waits on one
 * thing at a time, so its wait never allocates.  Other layers embed their
 * own with a callback (fn), which runs on a worker, outside any lock, must
 * not park, and owns the timer's memory once called (it may free it):
 * stop such timers with tern__timer_stop, which does not wait. */
typedef struct tern_timer {
    int64_t when;
    tern_co *co;
    tern_ticket ticket;
    void (*fn)(struct tern_timer *t);   /* NULL: wake co's ticket */
    _Atomic(struct tern_p *) p; /* heap it is in, or NULL */
    int32_t idx;                /* index in that heap; -1 if none */
    atomic_int firing;          /* callback running outside the heap lock */
} tern_timer;

/* A parked coroutine's entry in some wait queue (channels, mutexes, ...).
 * Never on the coroutine's stack (see TERN_STACK_SHARED): each coroutine
 * embeds two (its wait and a context watch), select takes more from a
 * per-P cache. */
struct tern_waitq_node {
    tern_waitq_node *next, *prev;
    tern_co *co;
    tern_ticket ticket;
    void *elem;                 /* value to send / where to receive */
    void *queue;                /* the queue it is linked in, or NULL */
    int64_t n;                  /* semaphore units wanted */
    int32_t case_idx;           /* select case */
    bool ok;                    /* out: value received / send done */
    bool bounced;               /* elem is bounce (shared-stack coroutine) */
    bool sole;                  /* only a holder of its queue's lock can claim
                                   the ticket (no deadline, context or other
                                   case): waitq_claim stores, no CAS */
    char bounce[16];            /* small values of shared-stack waiters */
};

/* A join handle (tern_go_options.join): two references, the caller's
 * (tern_join_free) and the coroutine's (dropped as it returns).  Joiners
 * (tern_join_wait, csp) link their wait node under the lock while !done;
 * the returning coroutine sets done and result, claims every linked
 * node's ticket under the lock and readies them after it. */
struct tern_join {
    tern__spin lock;
    atomic_int refs;
    bool done;
    int result;
    tern_waitq_node *waiters;   /* linked through next; NULL once done */
};
void tern__join_unref(tern_join *j);

/* The calling coroutine, or a fatal error naming fn outside coroutines. */
tern_co *tern__self_checked(const char *fn);
/* tern_wake in two steps, for wakers that must move data between winning
 * the claim and readying the waiter (channels, select). */
bool tern__wake_claim(tern_co *co, tern_ticket t);
/* tern__wake_claim for a ticket nobody else can claim (the waiter's node
 * is `sole`): a plain store, unless the waiter's stack may be released
 * (then the full claim, which copies it back). */
void tern__wake_claim_sole(tern_co *co, tern_ticket t);
void tern__wake_finish(tern_co *co, int result);
/* tern_wait for a park site that promises that nothing on the waiter's
 * stack is reachable by another thread before it claims the ticket (nodes
 * in the control block or the heap; data moved only by the claimer).  If
 * the coroutine also allows it (tern_go_options.release_stack, or
 * tern__stack_release_allow: nothing else on its stack is shared), the
 * monitor may give the stack's pages back while it waits long (see
 * release.c); a claimer copies them back in tern__wake_claim. */
int tern__wait_r(tern_ticket t, const char *reason, int64_t deadline);
/* For tern's own code: the calling coroutine's frames share nothing with
 * other coroutines or threads for now (an idle HTTP connection's outer
 * frame), so its waits may release its stack; returns the previous
 * setting, to restore. */
bool tern__stack_release_allow(bool on);
/* A system call said EFAULT for [p, p+n): if part of it is a parked
 * coroutine's released stack (release.c, guard mode), copy that stack back
 * and return true: the call is worth retrying.  False otherwise. */
bool tern__stack_fault_in(const void *p, size_t n);
/* The coroutine's own wait node, ready to queue: co and a fresh ticket
 * (tern_wait_prepare) set, unlinked, case_idx 0. */
tern_waitq_node *tern__co_wait_node(tern_co *self);
/* The coroutine's node for watching a context while it waits (csp's
 * tern__ctx_watch); the caller sets co, ticket and case_idx. */
tern_waitq_node *tern__co_ctx_node(tern_co *self);
/* Extra nodes (select): a per-P cache; NULL when out of memory. */
tern_waitq_node *tern__node_get(void);
void tern__node_put(tern_waitq_node *n);
/* A TERN_STACK_SHARED coroutine: its stack is copied out while it is
 * switched out, so wakers must not write into it (bounce instead). */
bool tern__co_shared(const tern_co *co);
uint32_t tern__rand(void);                      /* per-P xorshift */
/* The calling coroutine's P (0..procs-1), or -1 outside a coroutine.  A
 * P has one worker thread for life and coroutines are not preempted, so
 * data indexed by it is touched by one thread at a time until the caller
 * next parks or yields: per-P caches without atomics (tern_pool). */
int tern__proc_id(void);

/* A function the monitor calls on every tick (1 to 10 ms), on its own
 * thread, with the monotonic time: housekeeping for the layers above
 * (tern_pool trims idle objects).  It must not park and should be quick.
 * One per layer: a fixed table; -ENOSPC when full.  Any thread, any time,
 * runtime running or not. */
int tern__monitor_hook(void (*fn)(int64_t now));

/* A function tern_run calls on its own thread as it starts (true, before
 * the entry runs) and as it returns (false, after every worker stopped,
 * before abandoned coroutines are freed): csp's leak report in debug
 * builds.  Same table rules as tern__monitor_hook. */
int tern__run_hook(void (*fn)(bool starting));

/* Arm a callback timer from anywhere (a foreign thread uses P 0 and wakes
 * it).  -ESRCH if no runtime runs. */
int tern__timer_start(tern_timer *t, int64_t when, void (*fn)(tern_timer *));
bool tern__timer_stop(tern_timer *t);          /* true if it was still queued */

/* Run fn(arg) once when the netpoller sees fd's peer go (its FIN, a reset
 * or an error: RDHUP, HUP or ERR), whoever waits on fd or not: how the
 * HTTP server ends a request's context when its client disconnects,
 * without a coroutine or a system call per request.  fn runs on whichever
 * thread polls, with fd's netpoller lock held, so it must not park nor
 * touch fd's netpoller state; it is disarmed as it fires.  One watch per
 * fd.  Registers fd with the netpoller if no wait did yet (one epoll_ctl
 * in the fd's life).  Returns 0 (armed), 1 if the peer has gone already
 * (nothing armed: the caller acts), -EBUSY if fd has a watch, or -errno
 * when fd cannot be registered (-EPERM: not a socket). */
int tern__fd_on_hup(int fd, void (*fn)(void *arg), void *arg);
/* Disarm fd's watch, if any: once this returns, its fn is not running and
 * will not run.  tern_fd_close disarms too. */
void tern__fd_on_hup_clear(int fd);

/* One pointer of state per coroutine, for the library's own modules (the
 * trace module keeps the coroutine's stack of current spans there).  Not
 * public: a coroutine-local API for users would want keys and destructors;
 * this is a single slot with one owner.  The calling coroutine's slot
 * (NULL when the coroutine starts, reset on every reuse of its control
 * block), or a per-thread slot outside coroutines.  Only the coroutine
 * itself may use it: no locking. */
void **tern__co_local(void);

/* tern_fd_close without the close: wake the fd's waiters with -EBADF and
 * drop its registration, for descriptors a library closes itself (libpq,
 * ...).  Call it before the library closes the fd: once the number is
 * reused, the stale registration would keep the new socket out of epoll. */
void tern__fd_forget(int fd);

/* A descriptor just created (socket, accept4, eventfd, ...) or handed to
 * us: drop what the netpoller still records for an earlier file under
 * its number, closed behind its back (libpq closes its socket itself when
 * the server goes away, and cannot tell us first).  Left, that record
 * says "in epoll" and the new file would never be added.  Waiters are
 * left alone; a clean record costs a lock, no syscall (a registered one,
 * stale or live, an EPOLL_CTL_DEL). */
void tern__fd_adopt(int fd);

/* How many read-side events (data, the peer's FIN, a reset) the netpoller
 * has taken from epoll for fd so far: a mark to hand to
 * tern__fd_read_quiet.  No lock, no syscall; 0 for an fd never seen. */
uint32_t tern__fd_read_mark(int fd);
/* True when nothing has come in on fd since mark was taken, as far as the
 * netpoller has heard: fd is registered, its peer has not gone, and no
 * read-side event was taken since.  A reader that
 * took the mark just before a read that came up short (the socket was
 * empty then) learns that the socket is still empty and open without a
 * recv: what the HTTP client's idle pool asks before reusing a
 * connection.  The answer is as fresh as the last poll, so it is false
 * unless a poller sleeps in epoll_wait now or one polled within the last
 * millisecond (nobody polls while no coroutine waits on an fd); an event
 * younger than that may still be missed, as a peek misses one in flight. */
bool tern__fd_read_quiet(int fd, uint32_t mark);

/* tern_signal_wait that also returns -EINTR once *quit is true and
 * tern__signal_interrupt has been called after setting it: how the kit's
 * service waits for SIGTERM with no deadline and still ends its waiter
 * when it is done (tern_signal_wait alone can only be left by a signal or
 * a deadline, so it polled in slices).  Other waiters wake, see their own
 * flags unset or absent, and wait on. */
int tern__signal_wait_or(const int *sigs, int n, int64_t deadline, const atomic_bool *quit);
/* Wake every signal waiter to look at its quit flag.  Any thread. */
void tern__signal_interrupt(void);

/* Through the report hook (tern_runtime_set_report_hook), else stderr. */
void tern__report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void tern__fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
