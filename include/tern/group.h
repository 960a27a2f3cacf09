/*
 * tern/group.h - structured concurrency: a group of coroutines bound to a
 * context (Go's errgroup, libdill's bundles).
 *
 * tern_group_go() starts a child; tern_group_wait() waits for all of them
 * and returns the first non-zero result.  The first failure cancels the
 * group's context, so siblings that watch tern_group_ctx() stop early.  An
 * optional limit bounds how many children run at once: tern_group_go()
 * parks while the group is full (Go's "goroutine pool").
 *
 * A group must be waited for before it is freed: tern_group_free() with
 * children still running returns -EBUSY and frees nothing.
 */
#ifndef TERN_GROUP_H
#define TERN_GROUP_H

#include "tern/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_ctx tern_ctx;
typedef struct tern_group tern_group;

/* parent may be NULL (background).  limit 0: unbounded.  NULL on ENOMEM. */
tern_group *tern_group_new(tern_ctx *parent, int limit);

/* The group's context: cancelled by the first failure, by the parent, or
 * when tern_group_wait returns.  Owned by the group. */
tern_ctx *tern_group_ctx(tern_group *g);

/* Start fn(arg) in the group, parking while `limit` children run.
 * 0; -ECANCELED (or the context's error) if the group's context is done
 * before it could start, so nothing started; -ENOMEM. */
int tern_group_go(tern_group *g, tern_fn *fn, void *arg);

/* Wait for every child; return the first non-zero child result, or 0.
 * Then cancels the group's context (as errgroup does). */
int tern_group_wait(tern_group *g);

/* 0, or -EBUSY if children still run (nothing is freed then). */
int tern_group_free(tern_group *g);

#ifdef __cplusplus
}
#endif
#endif
