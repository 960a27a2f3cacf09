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

#ifdef __cplusplus
}
#endif
#endif
