/*
 * group.c - tern_group: structured concurrency (errgroup with a limit).
 *
 * Children run a small trampoline that records the first non-zero result
 * (which cancels the group's context), then releases the limit and marks
 * itself done on the group's wait group.  The group itself is only freed
 * once that wait group is empty, so a child never outlives its group.
 * A go that finds the group full waits for a slot of the limit until the
 * caller's ctx or the group's own context ends, whichever first: one
 * semaphore wait watching both (tern__sem_acquire).
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"
#include "tern/group.h"

#include <errno.h>
#include <stdlib.h>

struct tern_group {
    tern_ctx *ctx;
    tern_waitgroup wg;
    tern_sem limit;
    bool limited;
    atomic_int first_err;
};

typedef struct child {
    tern_group *g;
    tern_fn *fn;
    void *arg;
} child;

int tern_group_new(tern_ctx *parent, const tern_group_options *opts, tern_group **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    int limit = opts ? opts->limit : 0;
    if (limit < 0)
        return -EINVAL;
    tern_group *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    int err = tern_ctx_with_cancel(parent, &g->ctx);
    if (err) {
        free(g);
        return err;
    }
    g->limited = limit > 0;
    g->limit.size = limit;
    *out = g;
    return 0;
}

tern_ctx *tern_group_ctx(tern_group *g)
{
    TERN_CHECK_ARG(g);
    return g->ctx;
}

static int child_main(void *arg)
{
    child c = *(child *)arg;
    free(arg);
    int r = c.fn(c.arg);
    int zero = 0;
    if (r != 0 && atomic_compare_exchange_strong(&c.g->first_err, &zero, r))
        tern_ctx_cancel(c.g->ctx);
    if (c.g->limited)
        tern_sem_release(&c.g->limit, 1);
    tern_waitgroup_done(&c.g->wg);
    return r;
}

int tern_group_go(tern_group *g, tern_fn *fn, void *arg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(g);
    if (!fn)
        return -EINVAL;
    int err = tern_ctx_err(g->ctx);
    if (err)
        return err;
    if (g->limited && (err = tern__sem_acquire(&g->limit, 1, g->ctx, ctx)) < 0)
        return err;
    child *c = malloc(sizeof *c);
    if (!c) {
        if (g->limited)
            tern_sem_release(&g->limit, 1);
        return -ENOMEM;
    }
    *c = (child){g, fn, arg};
    tern_waitgroup_add(&g->wg, 1);
    int r = tern_go_opts(child_main, c, &(tern_go_options){.name = "group child"}, NULL);
    if (r < 0) {
        free(c);
        tern_waitgroup_done(&g->wg);
        if (g->limited)
            tern_sem_release(&g->limit, 1);
    }
    return r;
}

int tern_group_wait(tern_group *g, tern_ctx *ctx)
{
    TERN_CHECK_ARG(g);
    int err = tern_waitgroup_wait(&g->wg, ctx);
    if (err)
        return err;
    tern_ctx_cancel(g->ctx);
    return atomic_load(&g->first_err);
}

int tern_group_free(tern_group *g)
{
    if (!g)
        return 0;
    if (atomic_load(&g->wg.count) != 0)
        return -EBUSY;
    tern_ctx_free(g->ctx);
    free(g);
    return 0;
}
