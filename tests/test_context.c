/* test_context.c - cancellation trees, deadlines, values, done channels. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>

static void background_is_never_done(void)
{
    tern_ctx *bg = tern_ctx_background();
    CHECK_EQ(tern_ctx_err(bg), 0);
    CHECK(tern_ctx_done(bg) == NULL);
    CHECK_EQ(tern_ctx_deadline(bg), TERN_FOREVER);
    CHECK(tern_ctx_value(bg, "k") == NULL);
    tern_ctx_free(bg);          /* a no-op */
    tern_ctx_cancel(bg);
    CHECK_EQ(tern_ctx_err(bg), 0);
}

static void cancel_reaches_every_descendant(void)
{
    tern_ctx *root = tern_ctx_with_cancel(NULL);
    tern_ctx *a = tern_ctx_with_cancel(root);
    static int key;
    tern_ctx *v = tern_ctx_with_value(a, &key, (void *)7);
    tern_ctx *b = tern_ctx_with_cancel(v);          /* under a value ctx */
    tern_ctx *sib = tern_ctx_with_cancel(root);
    tern_chan *bd = tern_ctx_done(b);
    CHECK(bd != NULL);
    CHECK_EQ(tern_ctx_err(b), 0);
    CHECK(tern_ctx_value(b, &key) == (void *)7);
    CHECK(tern_ctx_value(b, "other") == NULL);
    tern_ctx_cancel(a);
    CHECK_EQ(tern_ctx_err(a), -ECANCELED);
    CHECK_EQ(tern_ctx_err(v), -ECANCELED);          /* answers from a */
    CHECK_EQ(tern_ctx_err(b), -ECANCELED);
    CHECK_EQ(tern_ctx_err(root), 0);                /* not upwards */
    CHECK_EQ(tern_ctx_err(sib), 0);                 /* nor sideways */
    bool ok = true;
    CHECK_EQ(tern_chan_try_recv(bd, NULL, &ok), 0);  /* done is closed */
    CHECK(!ok);
    tern_ctx_cancel(a);                             /* idempotent */
    /* a child of a done context is born done */
    tern_ctx *late = tern_ctx_with_cancel(b);
    CHECK_EQ(tern_ctx_err(late), -ECANCELED);
    tern_ctx_free(late);
    /* free in any order: parents first here */
    tern_ctx_free(root);
    CHECK_EQ(tern_ctx_err(sib), -ECANCELED);        /* freeing root cancelled it */
    tern_ctx_free(a);
    tern_ctx_free(v);
    tern_ctx_free(b);
    tern_ctx_free(sib);
}

static int deadline_main(void *arg)
{
    (void)arg;
    int64_t t0 = tern_now();
    tern_ctx *parent = tern_ctx_with_timeout(NULL, 20 * TERN_MS);
    tern_ctx *child = tern_ctx_with_timeout(parent, 10 * TERN_SEC);
    /* the child's deadline is the earlier of the two */
    CHECK_EQ(tern_ctx_deadline(child), tern_ctx_deadline(parent));
    tern_ctx *sooner = tern_ctx_with_timeout(parent, 5 * TERN_MS);
    CHECK(tern_ctx_deadline(sooner) < tern_ctx_deadline(parent));
    bool ok;
    CHECK_EQ(tern_chan_recv(tern_ctx_done(sooner), NULL, &ok), 0);
    CHECK(!ok);
    CHECK(tern_now() - t0 >= 5 * TERN_MS);
    CHECK_EQ(tern_ctx_err(sooner), -ETIMEDOUT);
    CHECK_EQ(tern_ctx_err(parent), 0);
    CHECK_EQ(tern_chan_recv(tern_ctx_done(child), NULL, &ok), 0);
    CHECK(tern_now() - t0 >= 20 * TERN_MS);
    CHECK_EQ(tern_ctx_err(parent), -ETIMEDOUT);
    CHECK_EQ(tern_ctx_err(child), -ETIMEDOUT);      /* the parent's reason */
    tern_ctx_free(sooner);
    tern_ctx_free(child);
    tern_ctx_free(parent);
    /* an explicit cancel before the deadline says canceled */
    tern_ctx *c = tern_ctx_with_timeout(NULL, TERN_SEC);
    tern_ctx_cancel(c);
    CHECK_EQ(tern_ctx_err(c), -ECANCELED);
    tern_ctx_free(c);
    /* a past deadline is done at once */
    c = tern_ctx_with_deadline(NULL, tern_now() - 1);
    CHECK_EQ(tern_ctx_err(c), -ETIMEDOUT);
    tern_ctx_free(c);
    return 0;
}

static void deadlines_expire_with_etimedout(void)
{
    run_ok(deadline_main, NULL, 2);
}

static void deadline_without_runtime_is_refused(void)
{
    errno = 0;
    CHECK(tern_ctx_with_timeout(NULL, TERN_SEC) == NULL);
    CHECK_EQ(errno, ESRCH);
}

/* A tree of contexts with coroutines waiting on each leaf: one cancel at
 * the root wakes them all. */
#define LEAVES 200
static atomic_int woke;

static int leaf_waiter(void *arg)
{
    tern_ctx *leaf = arg;
    tern_select_case none[1] = {{NULL, TERN_SELECT_RECV, NULL, false}};
    CHECK_EQ(tern_select(none, 1, leaf), -ECANCELED);
    atomic_fetch_add(&woke, 1);
    return 0;
}

static int tree_main(void *arg)
{
    (void)arg;
    atomic_store(&woke, 0);
    tern_ctx *root = tern_ctx_with_cancel(NULL);
    tern_ctx *mid[10], *leaves[LEAVES];
    for (int i = 0; i < 10; i++)
        mid[i] = tern_ctx_with_cancel(root);
    for (int i = 0; i < LEAVES; i++) {
        leaves[i] = tern_ctx_with_cancel(mid[i % 10]);
        tern_go(leaf_waiter, leaves[i]);
    }
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(atomic_load(&woke), 0);
    tern_ctx_cancel(root);
    int64_t give_up = tern_now() + 5 * TERN_SEC;
    while (atomic_load(&woke) < LEAVES && tern_now() < give_up)
        tern_sleep(TERN_MS);
    CHECK_EQ(atomic_load(&woke), LEAVES);
    for (int i = 0; i < LEAVES; i++)
        tern_ctx_free(leaves[i]);
    for (int i = 0; i < 10; i++)
        tern_ctx_free(mid[i]);
    tern_ctx_free(root);
    return 0;
}

static void root_cancel_wakes_all_waiters_in_tree(void)
{
    run_ok(tree_main, NULL, 0);
}

/* Children made, timing out and freed while their parent is cancelled and
 * freed: the parent is freed before its last children (they keep it). */
static tern_waitgroup churn_wg;

static int churn(void *arg)
{
    tern_ctx *parent = arg;
    tern_ctx *keep[8] = {0};
    for (int i = 0; i < 2000; i++) {
        tern_ctx *c = tern_ctx_with_timeout(parent, (i % 3) * TERN_US);
        CHECK(c != NULL);
        if (i % 7 == 0)
            tern_yield();
        tern_ctx_free(keep[i % 8]);
        keep[i % 8] = c;
    }
    tern_waitgroup_done(&churn_wg);
    tern_sleep(TERN_MS);        /* outlive the parent's owner */
    for (int i = 0; i < 8; i++) {
        CHECK(tern_ctx_err(keep[i]) != 0);  /* the parent was cancelled: all are done */
        tern_ctx_free(keep[i]);
    }
    return 0;
}

static int churn_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        tern_ctx *p = tern_ctx_with_cancel(NULL);
        tern_waitgroup_add(&churn_wg, 4);
        for (int i = 0; i < 4; i++)
            tern_go(churn, p);
        tern_sleep(100 * TERN_US);
        tern_ctx_cancel(p);
        tern_waitgroup_wait(&churn_wg);
        tern_ctx_free(p);
    }
    tern_sleep(20 * TERN_MS);
    return 0;
}

static void children_and_cancellation_race_safely(void)
{
    run_ok(churn_main, NULL, 0);
}

/* The owner frees the context the moment it sees the cancellation, while
 * the cancelling coroutine is still inside tern_ctx_cancel (closing the
 * done channel, walking children): under ASan a use after free shows. */
static int cancel_then_drop(void *arg)
{
    tern_ctx_cancel(arg);
    return 0;
}

static int free_while_cancelling_main(void *arg)
{
    (void)arg;
    long rounds = scaled(3000);
    tern_chan *never = tern_chan_make(sizeof(int), 0);
    for (long i = 0; i < rounds; i++) {
        tern_ctx *ctx = tern_ctx_with_cancel(NULL);
        tern_ctx *kid = tern_ctx_with_cancel(ctx);     /* more for cancel to walk */
        tern_go(cancel_then_drop, ctx);
        /* a context-bound wait is woken first thing in the cancel, before
         * the done channel is closed and the children are walked */
        int x;
        CHECK_EQ(tern_chan_recv_ctx(never, &x, NULL, ctx), -ECANCELED);
        tern_ctx_free(kid);
        tern_ctx_free(ctx);
    }
    tern_chan_free(never);
    return 0;
}

static void owner_frees_while_another_cancels(void)
{
    run_ok(free_while_cancelling_main, NULL, 2);
}

TESTS(T(owner_frees_while_another_cancels), T(background_is_never_done), T(cancel_reaches_every_descendant),
      T(deadlines_expire_with_etimedout), T(deadline_without_runtime_is_refused),
      T(root_cancel_wakes_all_waiters_in_tree), T(children_and_cancellation_race_safely))
