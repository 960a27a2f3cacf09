/*
 * csp.h - what the csp files share: context watches, so that anything
 * parked (a select, a semaphore acquire, later network I/O) can be woken
 * by a context's cancellation without a channel.
 */
#ifndef TERN_CSP_H
#define TERN_CSP_H

#include "tern/chan.h"
#include "tern/context.h"
#include "csp/waitq.h"

/* Link n (co, ticket set) into ctx's watchers: on cancellation the ticket
 * is woken with n->case_idx as result.  Returns 0, or ctx's error if it is
 * already done (then nothing is linked).  A NULL or never-done ctx links
 * nothing and returns 0. */
int tern__ctx_watch(tern_ctx *ctx, tern_waitq_node *n);
void tern__ctx_unwatch(tern_ctx *ctx, tern_waitq_node *n);

/* Park on ticket t (its node already published where a waker will look)
 * until a waker wakes it or ctx or ctx2 (NULL: never) is done: the
 * waker's result (which must not be INT32_MIN or INT32_MIN + 1), the
 * error of the context that won, or -ENOMEM (ctx2 needs a node from the
 * per-P cache).  They race for the ticket (tern_sem_acquire's mechanism,
 * shared by cond, waitgroup and group waits): a waiter that lost to a
 * context is still linked in the waker's queue and must unlink itself
 * under that queue's lock, and a waker must claim (waitq_pop_claimed), not
 * assume, each node it pops.  On return the ticket is finished. */
int tern__ctx_park(tern_ticket t, const char *reason, tern_ctx *ctx, tern_ctx *ctx2);

/* tern_sem_acquire ended by either of two contexts (tern_group_go: the
 * caller's and the group's). */
int tern__sem_acquire(tern_sem *s, int64_t n, tern_ctx *ctx, tern_ctx *ctx2);

/* Keep ctx (and its done channel) alive across a wait. */
void tern__ctx_ref(tern_ctx *ctx);
void tern__ctx_unref(tern_ctx *ctx);

#endif
