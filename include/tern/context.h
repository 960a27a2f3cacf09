/*
 * tern/context.h - Go's context: cancellation, deadlines and values that
 * flow down a tree of calls.
 *
 * A context is cancelled explicitly (tern_ctx_cancel), when its deadline
 * passes, or when its parent is; cancelling one cancels all its
 * descendants at once.  tern_ctx_err() then says why: -ECANCELED or
 * -ETIMEDOUT (Go's Canceled and DeadlineExceeded).  tern_ctx_done() is a
 * channel closed at that moment, usable in tern_select; every blocking
 * call in tern that takes a context returns -ECANCELED / -ETIMEDOUT.
 *
 * Ownership: each tern_ctx_with_* returns a context the caller must
 * tern_ctx_free() (Go's `defer cancel()`): free cancels it and drops the
 * caller's reference.  Children keep their parent alive, so freeing a
 * parent before its children is safe (the children are cancelled with
 * it).  The background context is static; freeing it is a no-op.
 *
 * Contexts are safe to use from any coroutine or thread; the derivation
 * functions need no coroutine, but a deadline needs a running runtime.
 */
#ifndef TERN_CONTEXT_H
#define TERN_CONTEXT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_ctx tern_ctx;
typedef struct tern_chan tern_chan;

/* The root: never cancelled, no deadline, no values. */
tern_ctx *tern_ctx_background(void);

/* Children of parent.  NULL parent means background.  NULL on ENOMEM. */
tern_ctx *tern_ctx_with_cancel(tern_ctx *parent);
tern_ctx *tern_ctx_with_deadline(tern_ctx *parent, int64_t deadline);  /* monotonic ns */
tern_ctx *tern_ctx_with_timeout(tern_ctx *parent, int64_t ns);
/* key is compared by address (use the address of a static variable). */
tern_ctx *tern_ctx_with_value(tern_ctx *parent, const void *key, void *value);

/* Cancel ctx and its descendants (-ECANCELED).  Idempotent.  The owner
 * may free ctx as soon as it sees the cancellation (a woken waiter), even
 * while another thread is still inside this call. */
void tern_ctx_cancel(tern_ctx *ctx);

/* Cancel and release.  NULL and background are no-ops. */
void tern_ctx_free(tern_ctx *ctx);

/* 0 while live; -ECANCELED or -ETIMEDOUT once done. */
int tern_ctx_err(tern_ctx *ctx);

/* Closed when ctx is done; NULL (a channel that never fires) for a
 * context that can never be done, like background.  Owned by ctx. */
tern_chan *tern_ctx_done(tern_ctx *ctx);

/* The earliest deadline along the chain, or TERN_FOREVER. */
int64_t tern_ctx_deadline(tern_ctx *ctx);

/* The value for key from the nearest ancestor that has one, or NULL. */
void *tern_ctx_value(tern_ctx *ctx, const void *key);

#ifdef __cplusplus
}
#endif
#endif
