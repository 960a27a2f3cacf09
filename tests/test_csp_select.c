/* test_csp_select.c - select: readiness, fairness, default, nil, contexts. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>

static tern_chan *mk(size_t cap)
{
    tern_chan *ch;
    CHECK_EQ(tern_chan_new(sizeof(int), cap, &ch), 0);
    CHECK(ch != NULL);
    return ch;
}

static int try_main(void *arg)
{
    (void)arg;
    tern_chan *a = mk(1), *b = mk(1);
    int x = 0, y = 0;
    tern_chan_case c[2] = {{a, TERN_CHAN_RECV, &x, false}, {b, TERN_CHAN_RECV, &y, false}};
    CHECK_EQ(tern_chan_try_select(c, 2), -EAGAIN);   /* default */
    int v = 42;
    tern_chan_try_send(b, &v);
    CHECK_EQ(tern_chan_try_select(c, 2), 1);
    CHECK(c[1].ok);
    CHECK_EQ(y, 42);
    /* send case: a has room */
    tern_chan_case s[1] = {{a, TERN_CHAN_SEND, &v, false}};
    CHECK_EQ(tern_chan_try_select(s, 1), 0);
    CHECK(s[0].ok);
    CHECK_EQ(tern_chan_try_select(s, 1), -EAGAIN);   /* now full */
    /* nil cases never fire */
    tern_chan_case n[2] = {{NULL, TERN_CHAN_RECV, &x, false}, {NULL, TERN_CHAN_SEND, &v, false}};
    CHECK_EQ(tern_chan_try_select(n, 2), -EAGAIN);
    /* a closed channel is ready: recv gets !ok, send fires with !ok */
    tern_chan_close(b);
    CHECK_EQ(tern_chan_try_select(c + 1, 1), 0);
    CHECK(!c[1].ok);
    tern_chan_case sb[1] = {{b, TERN_CHAN_SEND, &v, true}};
    CHECK_EQ(tern_chan_try_select(sb, 1), 0);
    CHECK(!sb[0].ok);
    CHECK_EQ(tern_chan_try_select(NULL, -1), -EINVAL);
    tern_chan_free(a);
    tern_chan_free(b);
    return 0;
}

static void select_try_is_go_default(void)
{
    run_ok(try_main, NULL, 1);
}

/* Four always-ready channels: each case should fire ~1/4 of the time. */
static int fair_main(void *arg)
{
    (void)arg;
    tern_chan *ch[4];
    for (int i = 0; i < 4; i++) {
        ch[i] = mk(1);
        int v = i;
        tern_chan_try_send(ch[i], &v);
    }
    int got[4] = {0}, x;
    const int N = 40000;
    for (int k = 0; k < N; k++) {
        tern_chan_case c[4];
        for (int i = 0; i < 4; i++)
            c[i] = (tern_chan_case){ch[i], TERN_CHAN_RECV, &x, false};
        int r = tern_chan_select(c, 4, NULL);
        CHECK(r >= 0 && r < 4);
        CHECK_EQ(x, r);
        got[r]++;
        tern_chan_try_send(ch[r], &r);      /* ready again */
    }
    /* chi-square with 3 degrees of freedom; 21.11 is p = 0.0001 */
    double chi = 0, e = N / 4.0;
    for (int i = 0; i < 4; i++)
        chi += (got[i] - e) * (got[i] - e) / e;
    fprintf(stderr, "   fired %d %d %d %d, chi-square %.2f\n", got[0], got[1], got[2], got[3], chi);
    CHECK(chi < 21.11);
    for (int i = 0; i < 4; i++)
        tern_chan_free(ch[i]);
    return 0;
}

static void select_is_fair_among_ready_cases(void)
{
    run_ok(fair_main, NULL, 1);
}

static tern_chan *g_a, *g_b;

static int late_sender(void *arg)
{
    tern_sleep(5 * TERN_MS);
    int v = (int)(long)arg;
    CHECK_EQ(tern_chan_send(g_b, &v, NULL), 0);
    return 0;
}

static int block_main(void *arg)
{
    (void)arg;
    g_a = mk(0);
    g_b = mk(0);
    for (int round = 0; round < 4; round++) {
        tern_go(late_sender, (void *)(long)round);
        int x = -1, y = -1;
        tern_chan_case c[3] = {{g_a, TERN_CHAN_RECV, &x, false},
                                 {NULL, TERN_CHAN_RECV, &x, false},
                                 {g_b, TERN_CHAN_RECV, &y, false}};
        CHECK_EQ(tern_chan_select(c, 3, NULL), 2);
        CHECK(c[2].ok);
        CHECK_EQ(y, round);
        CHECK_EQ(x, -1);
    }
    /* the nodes left on g_a were removed: a sender there finds nobody */
    int v = 1;
    CHECK_EQ(tern_chan_try_send(g_a, &v), -EAGAIN);
    tern_chan_free(g_a);
    tern_chan_free(g_b);
    return 0;
}

static void blocking_select_wakes_on_one_case_and_cleans_others(void)
{
    run_ok(block_main, NULL, 2);
}

static int send_select_peer(void *arg)
{
    (void)arg;
    int x;
    tern_sleep(2 * TERN_MS);
    CHECK_EQ(tern_chan_recv(g_a, &x, NULL, NULL), 0);
    CHECK_EQ(x, 77);
    return 0;
}

static int send_case_main(void *arg)
{
    (void)arg;
    g_a = mk(0);
    tern_go(send_select_peer, NULL);
    int v = 77, y;
    tern_chan_case c[2] = {{g_a, TERN_CHAN_SEND, &v, false}, {NULL, TERN_CHAN_RECV, &y, false}};
    CHECK_EQ(tern_chan_select(c, 2, NULL), 0);
    CHECK(c[0].ok);
    tern_sleep(TERN_MS);
    tern_chan_free(g_a);
    return 0;
}

static void blocking_send_case_completes(void)
{
    run_ok(send_case_main, NULL, 2);
}

static int timeout_main(void *arg)
{
    (void)arg;
    tern_chan *a = mk(0);
    int x;
    tern_chan_case c[1] = {{a, TERN_CHAN_RECV, &x, false}};
    int64_t t0 = tern_now();
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_chan_select(c, 1, ctx), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    CHECK(took >= 10 * TERN_MS && took < 500 * TERN_MS);
    tern_ctx_free(ctx);
    /* cancelled context, already done: returns at once */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_chan_select(c, 1, ctx), -ECANCELED);
    tern_ctx_free(ctx);
    /* zero cases: waits for the context only */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_chan_select(NULL, 0, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    /* recv_ctx / send_ctx */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_chan_recv(a, &x, NULL, ctx), -ETIMEDOUT);
    CHECK_EQ(tern_chan_send(a, &x, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    tern_chan_free(a);
    return 0;
}

static void select_bounded_by_context(void)
{
    run_ok(timeout_main, NULL, 2);
}

static tern_ctx *g_ctx;
static int canceller(void *arg)
{
    (void)arg;
    tern_sleep(3 * TERN_MS);
    tern_ctx_cancel(g_ctx);
    return 0;
}

static int cancel_main(void *arg)
{
    (void)arg;
    tern_chan *a = mk(0);
    int x;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &g_ctx), 0);
    tern_go(canceller, NULL);
    tern_chan_case c[2] = {{a, TERN_CHAN_RECV, &x, false},
                             {tern_ctx_done(g_ctx), TERN_CHAN_RECV, NULL, false}};
    /* with the ctx passed too: whichever wakes us, the result is the same */
    int r = tern_chan_select(c, 2, g_ctx);
    CHECK(r == 1 || r == -ECANCELED);
    CHECK_EQ(tern_ctx_err(g_ctx), -ECANCELED);
    tern_ctx_free(g_ctx);
    tern_chan_free(a);
    return 0;
}

static void cancel_wakes_a_blocked_select(void)
{
    run_ok(cancel_main, NULL, 2);
}

/* Selects racing on shared channels across Ps: each value goes to exactly
 * one of them. */
#define NSEL 4
#define VALS 20000
static atomic_long sel_sum, sel_n;
static tern_waitgroup sel_wg;

static int selector(void *arg)
{
    (void)arg;
    tern_chan *a = g_a, *b = g_b;
    while (a || b) {
        long x, y;
        tern_chan_case c[2] = {{a, TERN_CHAN_RECV, &x, false}, {b, TERN_CHAN_RECV, &y, false}};
        int r = tern_chan_select(c, 2, NULL);
        CHECK(r == 0 || r == 1);
        if (!c[r].ok) {         /* closed and drained: a nil channel from now (Go's idiom) */
            if (r == 0)
                a = NULL;
            else
                b = NULL;
            continue;
        }
        atomic_fetch_add(&sel_sum, r == 0 ? x : y);
        atomic_fetch_add(&sel_n, 1);
    }
    tern_waitgroup_done(&sel_wg);
    return 0;
}

static int race_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(long), 0, &g_a), 0);
    CHECK_EQ(tern_chan_new(sizeof(long), 4, &g_b), 0);
    atomic_store(&sel_sum, 0);
    atomic_store(&sel_n, 0);
    tern_waitgroup_add(&sel_wg, NSEL);
    for (int i = 0; i < NSEL; i++)
        tern_go(selector, NULL);
    long n = scaled(VALS);
    for (long v = 0; v < n; v++)
        CHECK_EQ(tern_chan_send(v % 2 ? g_a : g_b, &v, NULL), 0);
    tern_chan_close(g_a);
    tern_chan_close(g_b);
    tern_waitgroup_wait(&sel_wg, NULL);
    CHECK_EQ(atomic_load(&sel_n), n);
    CHECK_EQ(atomic_load(&sel_sum), n * (n - 1) / 2);
    tern_chan_free(g_a);
    tern_chan_free(g_b);
    return 0;
}

static void racing_selects_take_each_value_once(void)
{
    run_ok(race_main, NULL, 0);
}

TESTS(T(select_try_is_go_default), T(select_is_fair_among_ready_cases),
      T(blocking_select_wakes_on_one_case_and_cleans_others), T(blocking_send_case_completes),
      T(select_bounded_by_context), T(cancel_wakes_a_blocked_select),
      T(racing_selects_take_each_value_once))
