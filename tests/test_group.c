/* test_group.c - task groups: first error, cancellation, limits, free. */
#include "check.h"

#include <errno.h>
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
    g = tern_group_new(NULL, 3);
    CHECK(g != NULL);
    for (long i = 0; i < 12; i++) {
        int r = tern_group_go(g, worker, (void *)(i == 7 ? 100 : i));
        CHECK_EQ(r, 0);
    }
    CHECK_EQ(tern_group_wait(g), 0);
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
    tern_select_case none[1] = {{NULL, TERN_SELECT_RECV, NULL, false}};
    int r = tern_select(none, 1, tern_group_ctx(g));
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
    g = tern_group_new(NULL, 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(tern_group_go(g, watcher, NULL), 0);
    CHECK_EQ(tern_group_go(g, failer, NULL), 0);
    CHECK_EQ(tern_group_go(g, late_failer, NULL), 0);
    CHECK_EQ(tern_group_wait(g), -EIO);                 /* the first error */
    CHECK_EQ(atomic_load(&cancelled_seen), 5);          /* siblings stopped */
    /* a cancelled group starts nothing more */
    CHECK_EQ(tern_group_go(g, worker, NULL), -ECANCELED);
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
    tern_ctx *parent = tern_ctx_with_cancel(NULL);
    g = tern_group_new(parent, 0);
    CHECK_EQ(tern_group_go(g, slow, NULL), 0);
    CHECK_EQ(tern_group_free(g), -EBUSY);               /* a child still runs */
    tern_ctx_cancel(parent);                            /* parent reaches the group */
    CHECK_EQ(tern_ctx_err(tern_group_ctx(g)), -ECANCELED);
    CHECK_EQ(tern_group_go(g, slow, NULL), -ECANCELED);
    CHECK_EQ(tern_group_wait(g), 0);
    CHECK_EQ(tern_group_free(g), 0);
    tern_ctx_free(parent);
    CHECK_EQ(tern_group_free(NULL), 0);
    return 0;
}

static void group_cannot_be_freed_while_busy(void)
{
    run_ok(busy_main, NULL, 2);
    errno = 0;
    CHECK(tern_group_new(NULL, -1) == NULL);
    CHECK_EQ(errno, EINVAL);
}

TESTS(T(limit_bounds_concurrency), T(first_error_cancels_siblings),
      T(group_cannot_be_freed_while_busy))
