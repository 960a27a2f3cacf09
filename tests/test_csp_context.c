/* test_csp_context.c - cancellation trees, deadlines, values, done channels. */
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdatomic.h>

/* tern_ctx_deadline's value, TERN_FOREVER when it says there is none */
static int64_t deadline_of(tern_ctx *ctx)
{
    int64_t d = 0;
    bool ok = tern_ctx_deadline(ctx, &d);
    CHECK_EQ(ok, d != TERN_FOREVER);
    return d;
}

static void background_is_never_done(void)
{
    tern_ctx *bg = tern_ctx_background();
    CHECK_EQ(tern_ctx_err(bg), 0);
    CHECK(tern_ctx_done(bg) == NULL);
    int64_t d = 0;
    CHECK(!tern_ctx_deadline(bg, &d));
    CHECK_EQ(d, TERN_FOREVER);
    CHECK(!tern_ctx_deadline(NULL, NULL));
    CHECK(tern_ctx_value(bg, "k") == NULL);
    tern_ctx_free(bg);          /* a no-op */
    tern_ctx_cancel(bg);
    CHECK_EQ(tern_ctx_err(bg), 0);
}

static void cancel_reaches_every_descendant(void)
{
    tern_ctx *root;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &root), 0);
    tern_ctx *a;
    CHECK_EQ(tern_ctx_with_cancel(root, &a), 0);
    static int key;
    tern_ctx *v;
    CHECK_EQ(tern_ctx_with_value(a, &key, (void *)7, &v), 0);
    tern_ctx *b;
    CHECK_EQ(tern_ctx_with_cancel(v, &b), 0);       /* under a value ctx */
    tern_ctx *sib;
    CHECK_EQ(tern_ctx_with_cancel(root, &sib), 0);
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
    tern_ctx *late;
    CHECK_EQ(tern_ctx_with_cancel(b, &late), 0);
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
    tern_ctx *parent;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &parent), 0);
    tern_ctx *child;
    CHECK_EQ(tern_ctx_with_timeout(parent, 10 * TERN_SEC, &child), 0);
    /* the child's deadline is the earlier of the two */
    CHECK_EQ(deadline_of(child), deadline_of(parent));
    CHECK(deadline_of(parent) != TERN_FOREVER);
    tern_ctx *sooner;
    CHECK_EQ(tern_ctx_with_timeout(parent, 5 * TERN_MS, &sooner), 0);
    CHECK(deadline_of(sooner) < deadline_of(parent));
    bool ok;
    CHECK_EQ(tern_chan_recv(tern_ctx_done(sooner), NULL, &ok, NULL), 0);
    CHECK(!ok);
    CHECK(tern_now() - t0 >= 5 * TERN_MS);
    CHECK_EQ(tern_ctx_err(sooner), -ETIMEDOUT);
    CHECK_EQ(tern_ctx_err(parent), 0);
    CHECK_EQ(tern_chan_recv(tern_ctx_done(child), NULL, &ok, NULL), 0);
    CHECK(tern_now() - t0 >= 20 * TERN_MS);
    CHECK_EQ(tern_ctx_err(parent), -ETIMEDOUT);
    CHECK_EQ(tern_ctx_err(child), -ETIMEDOUT);      /* the parent's reason */
    tern_ctx_free(sooner);
    tern_ctx_free(child);
    tern_ctx_free(parent);
    /* an explicit cancel before the deadline says canceled */
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, TERN_SEC, &c), 0);
    tern_ctx_cancel(c);
    CHECK_EQ(tern_ctx_err(c), -ECANCELED);
    tern_ctx_free(c);
    /* a past deadline is done at once */
    CHECK_EQ(tern_ctx_with_deadline(NULL, tern_now() - 1, &c), 0);
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
    tern_ctx *c = tern_ctx_background();
    CHECK_EQ(tern_ctx_with_timeout(NULL, TERN_SEC, &c), -ESRCH);
    CHECK(c == NULL);           /* the result, not the pointer, says it failed */
}

/* A tree of contexts with coroutines waiting on each leaf: one cancel at
 * the root wakes them all. */
#define LEAVES 200
static atomic_int woke;

static int leaf_waiter(void *arg)
{
    tern_ctx *leaf = arg;
    tern_chan_case none[1] = {{NULL, TERN_CHAN_RECV, NULL, false}};
    CHECK_EQ(tern_chan_select(none, 1, leaf), -ECANCELED);
    atomic_fetch_add(&woke, 1);
    return 0;
}

static int tree_main(void *arg)
{
    (void)arg;
    atomic_store(&woke, 0);
    tern_ctx *root;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &root), 0);
    tern_ctx *mid[10], *leaves[LEAVES];
    for (int i = 0; i < 10; i++)
        CHECK_EQ(tern_ctx_with_cancel(root, &mid[i]), 0);
    for (int i = 0; i < LEAVES; i++) {
        CHECK_EQ(tern_ctx_with_cancel(mid[i % 10], &leaves[i]), 0);
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
        tern_ctx *c;
        CHECK_EQ(tern_ctx_with_timeout(parent, (i % 3) * TERN_US, &c), 0);
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
        tern_ctx *p;
        CHECK_EQ(tern_ctx_with_cancel(NULL, &p), 0);
        tern_waitgroup_add(&churn_wg, 4);
        for (int i = 0; i < 4; i++)
            tern_go(churn, p);
        tern_sleep(100 * TERN_US);
        tern_ctx_cancel(p);
        tern_waitgroup_wait(&churn_wg, NULL);
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
    tern_chan *never;
    CHECK_EQ(tern_chan_new(sizeof(int), 0, &never), 0);
    for (long i = 0; i < rounds; i++) {
        tern_ctx *ctx;
        CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
        tern_ctx *kid;
        CHECK_EQ(tern_ctx_with_cancel(ctx, &kid), 0);   /* more for cancel to walk */
        tern_go(cancel_then_drop, ctx);
        /* a context-bound wait is woken first thing in the cancel, before
         * the done channel is closed and the children are walked */
        int x;
        CHECK_EQ(tern_chan_recv(never, &x, NULL, ctx), -ECANCELED);
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

/* ---- the budget left, and sleeping within it ------------------------------ */

static int remaining_main(void *arg)
{
    (void)arg;
    static int key;
    tern_ctx *c, *v, *t;
    /* no deadline: INT64_MAX, so "remaining - margin" stays huge */
    CHECK_EQ(tern_ctx_remaining(NULL), INT64_MAX);
    CHECK_EQ(tern_ctx_remaining(tern_ctx_background()), INT64_MAX);
    CHECK_EQ(tern_ctx_with_cancel(NULL, &c), 0);
    CHECK_EQ(tern_ctx_with_value(c, &key, NULL, &v), 0);
    CHECK_EQ(tern_ctx_remaining(c), INT64_MAX);
    CHECK_EQ(tern_ctx_remaining(v), INT64_MAX);
    CHECK(tern_ctx_remaining(v) - 100 * TERN_MS > 0);
    /* a deadline: what is left of it, inherited through a value ctx */
    CHECK_EQ(tern_ctx_with_timeout(v, TERN_SEC, &t), 0);
    int64_t left = tern_ctx_remaining(t);
    CHECK(left > 0 && left <= TERN_SEC);
    tern_ctx *tv;
    CHECK_EQ(tern_ctx_with_value(t, &key, NULL, &tv), 0);
    CHECK(tern_ctx_remaining(tv) <= left);
    CHECK(tern_ctx_remaining(tv) > 0);
    /* done (cancelled, no deadline reached): 0 */
    tern_ctx_cancel(c);
    CHECK_EQ(tern_ctx_remaining(c), 0);
    CHECK_EQ(tern_ctx_remaining(t), 0);
    CHECK_EQ(tern_ctx_remaining(tv), 0);
    tern_ctx_free(tv);
    tern_ctx_free(t);
    tern_ctx_free(v);
    tern_ctx_free(c);
    /* past deadline: 0, never negative */
    CHECK_EQ(tern_ctx_with_deadline(NULL, tern_now() - TERN_SEC, &t), 0);
    CHECK_EQ(tern_ctx_remaining(t), 0);
    tern_ctx_free(t);
    return 0;
}

static void remaining_is_int64_max_without_deadline_and_0_when_done(void)
{
    run_ok(remaining_main, NULL, 1);
}

static int cancel_later(void *arg)
{
    tern_sleep(5 * TERN_MS);
    tern_ctx_cancel(arg);
    return 0;
}

static int ctx_sleep_main(void *arg)
{
    (void)arg;
    /* the time passes: 0, after at least ns */
    int64_t t0 = tern_now();
    CHECK_EQ(tern_ctx_sleep(5 * TERN_MS, NULL), 0);
    CHECK(tern_now() - t0 >= 5 * TERN_MS);
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &c), 0);
    t0 = tern_now();
    CHECK_EQ(tern_ctx_sleep(5 * TERN_MS, c), 0);
    CHECK(tern_now() - t0 >= 5 * TERN_MS);
    /* cancelled while asleep: -ECANCELED long before the time */
    tern_go(cancel_later, c);
    t0 = tern_now();
    CHECK_EQ(tern_ctx_sleep(10 * TERN_SEC, c), -ECANCELED);
    CHECK(tern_now() - t0 < 5 * TERN_SEC);
    /* already done: at once, even for a zero sleep */
    CHECK_EQ(tern_ctx_sleep(10 * TERN_SEC, c), -ECANCELED);
    CHECK_EQ(tern_ctx_sleep(0, c), -ECANCELED);
    tern_ctx_free(c);
    /* the ctx's deadline comes first: -ETIMEDOUT at that deadline */
    t0 = tern_now();                /* before the ctx, whose deadline counts from its making */
    tern_ctx *t;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_MS, &t), 0);
    CHECK_EQ(tern_ctx_sleep(10 * TERN_SEC, t), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    CHECK(took >= 9 * TERN_MS && took < 5 * TERN_SEC);
    tern_ctx_free(t);
    /* a deadline later than the sleep: the sleep's time, 0 */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &t), 0);
    CHECK_EQ(tern_ctx_sleep(2 * TERN_MS, t), 0);
    CHECK_EQ(tern_ctx_err(t), 0);
    tern_ctx_free(t);
    return 0;
}

static void ctx_sleep_ends_with_time_cancel_or_timeout(void)
{
    run_ok(ctx_sleep_main, NULL, 2);
}

static void derive_into_null_out(void)
{
    tern_ctx_with_cancel(NULL, NULL);
}

static void null_out_aborts_naming_the_function(void)
{
    child_result r = run_child(derive_into_null_out);
    CHECK(!r.exited);
    CHECK_EQ(r.sig, SIGABRT);
    CHECK(strstr(r.err, "tern_ctx_with_cancel: out is NULL") != NULL);
}

TESTS(T(owner_frees_while_another_cancels), T(background_is_never_done), T(cancel_reaches_every_descendant),
      T(deadlines_expire_with_etimedout), T(deadline_without_runtime_is_refused),
      T(root_cancel_wakes_all_waiters_in_tree), T(children_and_cancellation_race_safely),
      T(remaining_is_int64_max_without_deadline_and_0_when_done),
      T(ctx_sleep_ends_with_time_cancel_or_timeout), T(null_out_aborts_naming_the_function))
