/* test_csp_join.c - join handles from tern_go_opts: wait for one
 * coroutine, take its result, bounded by a context. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

static int ret_after(void *arg)
{
    tern_sleep(10 * TERN_MS);
    return (int)(intptr_t)arg;
}

static int quick(void *arg)
{
    return (int)(intptr_t)arg;
}

static int join_main(void *arg)
{
    (void)arg;
    tern_join *j = NULL;
    CHECK_EQ(tern_go_opts(ret_after, (void *)(intptr_t)42, &(tern_go_options){.join = &j}, NULL), 0);
    CHECK(j != NULL);
    int r = 0;
    CHECK_EQ(tern_join_try(j, &r), -EAGAIN);
    CHECK_EQ(tern_join_wait(j, &r, NULL), 0);
    CHECK_EQ(r, 42);
    /* again, at once, and with a done ctx too: the result stays */
    r = 0;
    CHECK_EQ(tern_join_wait(j, &r, NULL), 0);
    CHECK_EQ(r, 42);
    CHECK_EQ(tern_join_try(j, &r), 0);
    tern_join_free(j);
    /* already returned before the wait */
    CHECK_EQ(tern_go_opts(quick, (void *)(intptr_t)-5, &(tern_go_options){.join = &j}, NULL), 0);
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(tern_join_wait(j, &r, NULL), 0);
    CHECK_EQ(r, -5);
    tern_join_free(j);
    /* freed before it returns: detached, nothing leaks (ASan) */
    CHECK_EQ(tern_go_opts(ret_after, NULL, &(tern_go_options){.join = &j}, NULL), 0);
    tern_join_free(j);
    tern_join_free(NULL);
    tern_sleep(20 * TERN_MS);
    return 0;
}

static void join_waits_for_the_coroutine_and_returns_its_result(void)
{
    run_ok(join_main, NULL, 2);
}

static int ctx_main(void *arg)
{
    (void)arg;
    tern_join *j;
    CHECK_EQ(tern_go_opts(ret_after, (void *)(intptr_t)3, &(tern_go_options){.join = &j}, NULL), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 1 * TERN_MS, &ctx), 0);
    int r = 99;
    CHECK_EQ(tern_join_wait(j, &r, ctx), -ETIMEDOUT);
    CHECK_EQ(r, 99);
    CHECK_EQ(tern_join_wait(j, &r, ctx), -ETIMEDOUT);  /* done ctx: at once */
    tern_ctx_free(ctx);
    CHECK_EQ(tern_join_wait(j, &r, NULL), 0);          /* still valid */
    CHECK_EQ(r, 3);
    tern_join_free(j);
    return 0;
}

static void join_wait_ends_with_its_ctx_and_can_wait_again(void)
{
    run_ok(ctx_main, NULL, 2);
}

/* Many joiners of one coroutine, and many joined coroutines, on all Ps. */
typedef struct multi {
    tern_join *j;
    tern_waitgroup wg;
    atomic_int seen;
} multi;

static int joiner(void *arg)
{
    multi *m = arg;
    int r;
    CHECK_EQ(tern_join_wait(m->j, &r, NULL), 0);
    CHECK_EQ(r, 11);
    atomic_fetch_add(&m->seen, 1);
    tern_waitgroup_done(&m->wg);
    return 0;
}

static int multi_main(void *arg)
{
    (void)arg;
    multi m = {.wg = TERN_WAITGROUP_INIT};
    CHECK_EQ(tern_go_opts(ret_after, (void *)(intptr_t)11, &(tern_go_options){.join = &m.j}, NULL), 0);
    for (int i = 0; i < 16; i++) {
        tern_waitgroup_add(&m.wg, 1);
        CHECK_EQ(tern_go(joiner, &m), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&m.wg, NULL), 0);
    CHECK_EQ(atomic_load(&m.seen), 16);
    tern_join_free(m.j);
    /* a storm of short joinable coroutines, joined in order */
    long n = scaled(20000);
    enum { BATCH = 64 };
    tern_join *js[BATCH];
    for (long i = 0; i < n; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            CHECK_EQ(tern_go_opts(quick, (void *)(intptr_t)k, &(tern_go_options){.join = &js[k]},
                                  NULL),
                     0);
        for (int k = 0; k < BATCH; k++) {
            int r;
            CHECK_EQ(tern_join_wait(js[k], &r, NULL), 0);
            CHECK_EQ(r, k);
            tern_join_free(js[k]);
        }
    }
    return 0;
}

static void join_many_joiners_and_many_joined(void)
{
    run_ok(multi_main, NULL, 0);
}

/* A coroutine still running when tern_run returns: its handle is freed
 * by its owner afterwards without a leak. */
static tern_join *abandoned;

static int forever(void *arg)
{
    (void)arg;
    tern_sleep(60 * TERN_SEC);
    return 0;
}

static int abandon_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_go_opts(forever, NULL, &(tern_go_options){.join = &abandoned}, NULL), 0);
    CHECK_EQ(tern_join_try(abandoned, NULL), -EAGAIN);
    return 0;
}

static void join_handle_outlives_the_runtime(void)
{
    run_ok(abandon_main, NULL, 1);
    CHECK_EQ(tern_join_try(abandoned, NULL), -EAGAIN);
    tern_join_free(abandoned);
}

TESTS(T(join_waits_for_the_coroutine_and_returns_its_result),
      T(join_wait_ends_with_its_ctx_and_can_wait_again),
      T(join_many_joiners_and_many_joined),
      T(join_handle_outlives_the_runtime))
