/*
 * tern/context.h - Go's context: cancellation, deadlines and values that
 * flow down a tree of calls.
 *
 * A context is cancelled explicitly (tern_ctx_cancel), when its deadline
 * passes, or when its parent is; cancelling one cancels all its
 * descendants at once.  tern_ctx_err() then says why: -ECANCELED or
 * -ETIMEDOUT (Go's Canceled and DeadlineExceeded).  tern_ctx_done() is a
 * channel closed at that moment, usable in tern_chan_select; every blocking
 * call in tern that takes a context returns -ECANCELED / -ETIMEDOUT.
 *
 * Ownership: each tern_ctx_with_* writes to *out a context the caller must
 * tern_ctx_free() (Go's `defer cancel()`): free cancels it and drops the
 * caller's reference.  Children keep their parent alive, so freeing a
 * parent before its children is safe (the children are cancelled with
 * it).  The background context is static; freeing it is a no-op.  A
 * failed derivation returns -errno and sets *out to NULL: check it, since
 * NULL as a context means "unbounded", not "failed".
 *
 * NULL as a ctx argument means the background context everywhere below
 * (never done, no deadline, no values).
 *
 * Contexts are safe to use from any coroutine or thread; the derivation
 * functions need no coroutine, but a deadline needs a running runtime.
 *
 *     tern_ctx *ctx;
 *     int err = tern_ctx_with_timeout(parent, 2 * TERN_SEC, &ctx);
 *     if (err)
 *         return err;
 *     err = do_work(..., ctx);
 *     tern_ctx_free(ctx);
 */
#ifndef TERN_CONTEXT_H
#define TERN_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_ctx tern_ctx;
typedef struct tern_chan tern_chan;

/* The root: never cancelled, no deadline, no values. */
tern_ctx *tern_ctx_background(void);

/* Children of parent (NULL: background).  0 with *out set, or -ENOMEM
 * (and, for a deadline, -ESRCH when no runtime runs to keep time) with
 * *out NULL.  A deadline already past gives a context that is born done
 * with -ETIMEDOUT (still 0: the derivation succeeded). */
int tern_ctx_with_cancel(tern_ctx *parent, tern_ctx **out);
int tern_ctx_with_deadline(tern_ctx *parent, int64_t deadline, tern_ctx **out);  /* monotonic ns */
int tern_ctx_with_timeout(tern_ctx *parent, int64_t ns, tern_ctx **out);
/* key is compared by address (use the address of a static variable). */
int tern_ctx_with_value(tern_ctx *parent, const void *key, void *value, tern_ctx **out);

/* Cancel ctx and its descendants (-ECANCELED).  Idempotent.  The owner
 * may free ctx as soon as it sees the cancellation (a woken waiter), even
 * while another thread is still inside this call. */
void tern_ctx_cancel(tern_ctx *ctx);

/* Cancel and release.  NULL and background are no-ops. */
void tern_ctx_free(tern_ctx *ctx);

/* 0 while live; -ECANCELED or -ETIMEDOUT once done. */
int tern_ctx_err(tern_ctx *ctx);

/* Closed when ctx is done; NULL (a channel that never fires) for a
 * context that can never be done, like background.  Owned by ctx; made
 * on first call (out of memory for it aborts: a NULL here would be a
 * silent hang). */
tern_chan *tern_ctx_done(tern_ctx *ctx);

/* Go's (deadline, ok): true with *deadline the earliest deadline along
 * the chain, or false with *deadline = TERN_FOREVER when there is none.
 * deadline may be NULL. */
bool tern_ctx_deadline(tern_ctx *ctx, int64_t *deadline);

/* The budget left, in ns: INT64_MAX when ctx has no deadline (so "budget
 * minus a margin" can never turn "none" into "expired"), 0 when ctx is
 * done or its deadline has passed.  A bound for a call that takes a
 * duration: tern_ctx_remaining(ctx) - margin, clamped by the caller. */
int64_t tern_ctx_remaining(tern_ctx *ctx);

/* Sleep for ns (<= 0: just yield) unless ctx ends first: 0 when the time
 * passed, else ctx's error (-ECANCELED / -ETIMEDOUT, at once if ctx is
 * already done).  From a coroutine. */
int tern_ctx_sleep(int64_t ns, tern_ctx *ctx);

/* The value for key from the nearest ancestor that has one, or NULL. */
void *tern_ctx_value(tern_ctx *ctx, const void *key);

#ifdef __cplusplus
}
#endif
#endif
