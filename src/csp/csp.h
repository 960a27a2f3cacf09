/*
 * csp.h - what the csp files share: wait queues (waitq.h) and context
 * watches (export.h, which the layers above see too).
 */
#ifndef TERN_CSP_H
#define TERN_CSP_H

#include "csp/export.h"
#include "csp/waitq.h"
#include "tern/chan.h"
#include "tern/context.h"
#include "tern/sync.h"

/* Park on ticket t (its node already published where a waker will look)
 * until a waker wakes it or ctx or ctx2 (NULL: never) is done: the
 * waker's result (which must not be INT32_MIN or INT32_MIN + 1), the
 * error of the context that won, or -ENOMEM (ctx2 needs a node from the
 * per-P cache).  They race for the ticket (tern_sem_acquire's mechanism,
 * shared by cond, waitgroup and group waits): a waiter that lost to a
 * context is still linked in the waker's queue and must unlink itself
 * under that queue's lock, and a waker must claim (waitq_pop_claimed), not
 * assume, each node it pops.  On return the ticket is finished.  The wait
 * may have its stack released (tern__wait_r): the caller keeps nothing
 * another thread reaches before claiming on its stack. */
int tern__ctx_park(tern_ticket t, const char *reason, tern_ctx *ctx, tern_ctx *ctx2);

/* tern_sem_acquire ended by either of two contexts (tern_group_go: the
 * caller's and the group's). */
int tern__sem_acquire(tern_sem *s, int64_t n, tern_ctx *ctx, tern_ctx *ctx2);

/* Timers on channels (timer.c).  A timer's channel points back at it, so
 * that tern_chan_free of a tern_time_after channel frees its timer. */
typedef struct tern__time tern__time;
void tern__time_free(tern__time *tm);
bool tern__time_after(const tern__time *tm);   /* made by tern_time_after */
void tern__chan_set_timer(tern_chan *ch, tern__time *tm);
void tern__chan_destroy(tern_chan *ch);        /* tern_chan_free without the timer check */

/* Live objects, for tern_csp_stats and the leak report. */
long tern__chan_live(void);
long tern__time_live(void);
long tern__ctx_live(void);
long tern__pool_live(void);
/* Have tern_run report leaks at its return (debug builds; stats.c).
 * Called by each constructor; cheap after the first call. */
void tern__csp_leak_watch(void);

#endif
