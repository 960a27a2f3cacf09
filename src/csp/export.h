/*
 * export.h - csp's interface to the layers above it (net, http, kit):
 * context watches, so that anything parked on its own queue (network I/O
 * waiting on a descriptor, say) can be woken by a context's cancellation
 * without a channel.  The rest of csp (wait queues, channel and context
 * layouts) stays private to src/csp.
 */
#ifndef TERN_CSP_EXPORT_H
#define TERN_CSP_EXPORT_H

#include "runtime/export.h"
#include "tern/context.h"

/* Link n (co, ticket set) into ctx's watchers: on cancellation the ticket
 * is woken with n->case_idx as result.  Returns 0, or ctx's error if it is
 * already done (then nothing is linked).  A NULL or never-done ctx links
 * nothing and returns 0. */
int tern__ctx_watch(tern_ctx *ctx, tern_waitq_node *n);
void tern__ctx_unwatch(tern_ctx *ctx, tern_waitq_node *n);

/* Keep ctx (and its done channel) alive across a wait. */
void tern__ctx_ref(tern_ctx *ctx);
void tern__ctx_unref(tern_ctx *ctx);

#endif
