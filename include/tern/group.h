/*
 * tern/group.h - structured concurrency: a group of coroutines bound to a
 * context (Go's errgroup, libdill's bundles).
 *
 * tern_group_go() starts a child; tern_group_wait() waits for all of them
 * and returns the first non-zero result.  The first failure cancels the
 * group's context, so siblings that watch tern_group_ctx() stop early.  An
 * optional limit bounds how many children run at once: tern_group_go()
 * parks while the group is full (Go's "goroutine pool"), bounded by the
 * caller's ctx and by the group's own context.
 *
 * Ownership: tern_group_new() gives the caller the group; it must be
 * waited for before it is freed: tern_group_free() with children still
 * running returns -EBUSY and frees nothing.  A NULL group aborts, naming
 * the function (programmer error).
 *
 *     tern_group *g;
 *     int err = tern_group_new(ctx, &(tern_group_options){.limit = 8}, &g);
 *     if (err)
 *         return err;
 *     for (int i = 0; i < n && !err; i++)
 *         err = tern_group_go(g, fetch, &jobs[i], NULL);
 *     int first = tern_group_wait(g, NULL);   // also after a failed go
 *     tern_group_free(g);
 *     return err ? err : first;
 */
#ifndef TERN_GROUP_H
#define TERN_GROUP_H

#include "tern/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_ctx tern_ctx;
typedef struct tern_group tern_group;

typedef struct tern_group_options {
    int limit;                  /* children running at once; 0: unbounded */
} tern_group_options;

/* A group whose context derives from parent (NULL: background).  opts
 * NULL: all defaults.  0 with *out set; -EINVAL for a negative limit,
 * -ENOMEM; *out NULL on failure. */
int tern_group_new(tern_ctx *parent, const tern_group_options *opts, tern_group **out);

/* The group's context: cancelled by the first failure, by the parent, or
 * when tern_group_wait returns.  Owned by the group. */
tern_ctx *tern_group_ctx(tern_group *g);

/* Start fn(arg) in the group, parking while `limit` children run.  0;
 * the group context's error if it is done before the child could start;
 * ctx's (NULL: unbounded) -ECANCELED / -ETIMEDOUT if it ends while the
 * group is full; -ENOMEM; -EINVAL for a NULL fn.  On an error nothing was
 * started. */
int tern_group_go(tern_group *g, tern_fn *fn, void *arg, tern_ctx *ctx);

/* Wait for every child; return the first non-zero child result, or 0,
 * then cancel the group's context (as errgroup does).  -ECANCELED /
 * -ETIMEDOUT if ctx (NULL: unbounded) ends first: children still run then,
 * the group's context is not cancelled, and the group cannot be freed
 * until a later wait returns. */
int tern_group_wait(tern_group *g, tern_ctx *ctx);

/* 0, or -EBUSY if children still run (nothing is freed then). */
int tern_group_free(tern_group *g);

/* ---- joining one coroutine -----------------------------------------------
 *
 * tern_go_opts with .join set hands back a tern_join: wait for that one
 * coroutine to return and take its result, without a WaitGroup of your
 * own (pthread_join for coroutines).  The coroutine does not wait for
 * its handle: it is recycled as soon as it returns, its result kept in
 * the handle until the handle is freed.
 *
 *     tern_join *j;
 *     int err = tern_go_opts(serve, srv, &(tern_go_options){.join = &j}, NULL);
 *     ...
 *     int result;
 *     err = tern_join_wait(j, &result, ctx);   // 0: it returned `result`
 *     tern_join_free(j);
 *
 * Ownership: the caller owns the handle and frees it with tern_join_free,
 * whether or not the coroutine has returned (freeing an unreturned one
 * detaches it).  Any coroutine may wait, several at once; a handle must
 * not be freed while one does.  A NULL handle aborts, naming the
 * function. */

/* Park until the coroutine returns: 0 with *result (may be NULL) its
 * return value, at once if it has returned already; -ECANCELED /
 * -ETIMEDOUT if ctx (NULL: unbounded) ends first, and then the handle
 * stays valid and can be waited for again. */
int tern_join_wait(tern_join *j, int *result, tern_ctx *ctx);

/* 0 with *result if the coroutine has returned, else -EAGAIN.  Any
 * thread. */
int tern_join_try(tern_join *j, int *result);

/* Release the handle.  NULL is a no-op.  Any thread. */
void tern_join_free(tern_join *j);

#ifdef __cplusplus
}
#endif
#endif
