/* test_csp_stats.c - live counts of channels, contexts, timers and pools
 * (tern_csp_stats) and the leak report at tern_run's return in debug
 * builds. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>

static int counts_main(void *arg)
{
    (void)arg;
    struct tern_csp_stats a, b;
    CHECK_EQ(tern_csp_stats(&a), 0);
    tern_chan *ch;
    CHECK_EQ(tern_chan_new(4, 1, &ch), 0);
    tern_ctx *ctx, *kid;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    CHECK_EQ(tern_ctx_with_timeout(ctx, TERN_SEC, &kid), 0);
    tern_time_timer *t;
    CHECK_EQ(tern_time_timer_new(TERN_SEC, &t), 0);
    tern_pool *p;
    CHECK_EQ(tern_pool_new(NULL, &p), 0);
    CHECK_EQ(tern_csp_stats(&b), 0);
    CHECK_EQ(b.chans - a.chans, 2);         /* the timer's channel too */
    CHECK_EQ(b.contexts - a.contexts, 2);
    CHECK_EQ(b.timers - a.timers, 1);
    CHECK_EQ(b.pools - a.pools, 1);
    tern_ctx_done(kid);                     /* a done channel, owned by kid */
    CHECK_EQ(tern_csp_stats(&b), 0);
    CHECK_EQ(b.chans - a.chans, 3);
    tern_chan_free(ch);
    tern_ctx_free(kid);
    tern_ctx_free(ctx);
    tern_time_timer_free(t);
    tern_pool_free(p);
    CHECK_EQ(tern_csp_stats(&b), 0);
    CHECK_EQ(b.chans, a.chans);
    CHECK_EQ(b.contexts, a.contexts);
    CHECK_EQ(b.timers, a.timers);
    CHECK_EQ(b.pools, a.pools);
    return 0;
}

static void csp_stats_count_live_objects(void)
{
    run_ok(counts_main, NULL, 2);
}

static atomic_int nreports;
static char reported[1024];

static void hook(const char *msg, void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&nreports, 1) == 0)
        snprintf(reported, sizeof reported, "%s", msg);
}

static tern_chan *leaked_ch;
static tern_ctx *leaked_ctx;

static int leak_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(4, 0, &leaked_ch), 0);
    CHECK_EQ(tern_ctx_with_cancel(NULL, &leaked_ctx), 0);
    tern_chan *fine;
    CHECK_EQ(tern_chan_new(4, 0, &fine), 0);
    tern_chan_free(fine);
    return 0;
}

static int clean_main(void *arg)
{
    (void)arg;
    tern_chan *ch;
    CHECK_EQ(tern_chan_new(4, 0, &ch), 0);
    tern_chan_free(ch);
    return 0;
}

static void tern_run_reports_leaks_in_debug_builds(void)
{
    atomic_store(&nreports, 0);
    tern_runtime_set_report_hook(hook, NULL);
    run_ok(leak_main, NULL, 1);
#ifdef TERN_ASSERTIONS
    CHECK_EQ(atomic_load(&nreports), 1);
    CHECK(strstr(reported, "never freed: 1 channel(s), 1 context(s), 0 timer(s), 0 pool(s)") != NULL);
#else
    CHECK_EQ(atomic_load(&nreports), 0);
#endif
    /* what an earlier run left is not blamed on the next one */
    atomic_store(&nreports, 0);
    run_ok(clean_main, NULL, 1);
    CHECK_EQ(atomic_load(&nreports), 0);
    tern_runtime_set_report_hook(NULL, NULL);
    tern_chan_free(leaked_ch);
    tern_ctx_free(leaked_ctx);
}

TESTS(T(csp_stats_count_live_objects), T(tern_run_reports_leaks_in_debug_builds))
