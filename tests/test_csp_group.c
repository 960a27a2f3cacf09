/* test_csp_group.c - task groups: first error, cancellation, limits, free. */
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>

static atomic_int running, max_running, cancelled_seen;
static tern_group *g;

static int worker(void *arg)
{
    long id = (long)arg;
    int r = atomic_fetch_add(&running, 1) + 1;
    int m = atomic_load(&max_running);
    while (r > m && !atomic_compare_exchange_weak(&max_running, &m, r))
        ;
    tern_sleep(10 * TERN_MS);   /* long enough that the limit is reached */
    atomic_fetch_sub(&running, 1);
    return id == 7 ? -EIO : 0;
}

static int limit_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_group_new(NULL, &(tern_group_options){.limit = 3}, &g), 0);
    CHECK(g != NULL);
    for (long i = 0; i < 12; i++) {
        int r = tern_group_go(g, worker, (void *)(i == 7 ? 100 : i), NULL);
        CHECK_EQ(r, 0);
    }
    CHECK_EQ(tern_group_wait(g, NULL), 0);
    CHECK_EQ(atomic_load(&max_running), 3);
    CHECK_EQ(tern_ctx_err(tern_group_ctx(g)), -ECANCELED);  /* wait cancels, like errgroup */
    CHECK_EQ(tern_group_free(g), 0);
    return 0;
}

static void limit_bounds_concurrency(void)
{
    run_ok(limit_main, NULL, 0);
}

static int watcher(void *arg)
{
    (void)arg;
    tern_chan_case none[1] = {{NULL, TERN_CHAN_RECV, NULL, false}};
    int r = tern_chan_select(none, 1, tern_group_ctx(g));
    if (r == -ECANCELED)
        atomic_fetch_add(&cancelled_seen, 1);
    return 0;
}

static int failer(void *arg)
{
    (void)arg;
    tern_sleep(2 * TERN_MS);
    return -EIO;
}

static int late_failer(void *arg)
{
    (void)arg;
    tern_sleep(20 * TERN_MS);
    return -EPERM;
}

static int error_main(void *arg)
{
    (void)arg;
    atomic_store(&cancelled_seen, 0);
    CHECK_EQ(tern_group_new(NULL, NULL, &g), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(tern_group_go(g, watcher, NULL, NULL), 0);
    CHECK_EQ(tern_group_go(g, failer, NULL, NULL), 0);
    CHECK_EQ(tern_group_go(g, late_failer, NULL, NULL), 0);
    CHECK_EQ(tern_group_wait(g, NULL), -EIO);                 /* the first error */
    CHECK_EQ(atomic_load(&cancelled_seen), 5);          /* siblings stopped */
    /* a cancelled group starts nothing more */
    CHECK_EQ(tern_group_go(g, worker, NULL, NULL), -ECANCELED);
    CHECK_EQ(tern_group_free(g), 0);
    return 0;
}

static void first_error_cancels_siblings(void)
{
    run_ok(error_main, NULL, 0);
}

static int slow(void *arg)
{
    (void)arg;
    tern_sleep(5 * TERN_MS);
    return 0;
}

static int busy_main(void *arg)
{
    (void)arg;
    tern_ctx *parent;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &parent), 0);
    CHECK_EQ(tern_group_new(parent, &(tern_group_options){0}, &g), 0);
    CHECK_EQ(tern_group_go(g, slow, NULL, NULL), 0);
    CHECK_EQ(tern_group_free(g), -EBUSY);               /* a child still runs */
    tern_ctx_cancel(parent);                            /* parent reaches the group */
    CHECK_EQ(tern_ctx_err(tern_group_ctx(g)), -ECANCELED);
    CHECK_EQ(tern_group_go(g, slow, NULL, NULL), -ECANCELED);
    CHECK_EQ(tern_group_wait(g, NULL), 0);
    CHECK_EQ(tern_group_free(g), 0);
    tern_ctx_free(parent);
    CHECK_EQ(tern_group_free(NULL), 0);
    return 0;
}

static void group_cannot_be_freed_while_busy(void)
{
    run_ok(busy_main, NULL, 2);
}

static void group_new_rejects_a_negative_limit(void)
{
    tern_group *bad = (tern_group *)&bad;
    CHECK_EQ(tern_group_new(NULL, &(tern_group_options){.limit = -1}, &bad), -EINVAL);
    CHECK(bad == NULL);
}

static int hold_until_cancelled(void *arg)
{
    (void)arg;
    tern_chan_select(NULL, 0, tern_group_ctx(g));
    return 0;
}

static int full_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_group_new(NULL, &(tern_group_options){.limit = 1}, &g), 0);
    CHECK_EQ(tern_group_go(g, hold_until_cancelled, NULL, NULL), 0);
    /* full: the caller's ctx ends the wait for a slot, nothing starts */
    int64_t t0 = tern_now();        /* before the ctx, whose deadline counts from its making */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_group_go(g, slow, NULL, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 20 * TERN_MS);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_ctx_err(tern_group_ctx(g)), 0);   /* the group is untouched */
    /* a wait bounded by a ctx ends with it and leaves the children running */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_group_wait(g, ctx), -ECANCELED);
    CHECK_EQ(tern_group_free(g), -EBUSY);
    tern_ctx_free(ctx);
    /* the group's own cancellation ends a caller's wait for a slot too */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
    tern_ctx_cancel(tern_group_ctx(g));
    CHECK_EQ(tern_group_go(g, slow, NULL, ctx), -ECANCELED);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_group_wait(g, NULL), 0);
    CHECK_EQ(tern_group_free(g), 0);
    return 0;
}

static void group_go_while_full_ends_with_its_ctx(void)
{
    run_ok(full_main, NULL, 2);
}

/* A slot freed while a caller waits for it with a ctx: it starts. */
static int slot_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_group_new(NULL, &(tern_group_options){.limit = 1}, &g), 0);
    CHECK_EQ(tern_group_go(g, slow, NULL, NULL), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_group_go(g, slow, NULL, ctx), 0);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_group_wait(g, NULL), 0);
    CHECK_EQ(tern_group_free(g), 0);
    return 0;
}

static void group_go_with_ctx_takes_a_freed_slot(void)
{
    run_ok(slot_main, NULL, 2);
}

static void call_group_go_on_null(void)
{
    tern_group_go(NULL, slow, NULL, NULL);
}

static void null_group_aborts_naming_the_function(void)
{
    child_result r = run_child(call_group_go_on_null);
    CHECK(!r.exited);
    CHECK_EQ(r.sig, SIGABRT);
    CHECK(strstr(r.err, "tern_group_go: g is NULL") != NULL);
}

TESTS(T(limit_bounds_concurrency), T(first_error_cancels_siblings),
      T(group_cannot_be_freed_while_busy), T(group_new_rejects_a_negative_limit),
      T(group_go_while_full_ends_with_its_ctx), T(group_go_with_ctx_takes_a_freed_slot),
      T(null_group_aborts_naming_the_function))
