/*
 * stats.c - live counts of csp objects (tern_csp_stats) and, in debug
 * builds, the leak report at tern_run's return: the counts are taken as
 * the run starts and compared as it returns, so what an earlier run or
 * code outside any run made on purpose is not blamed on this one.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

#include <stdatomic.h>

int tern_csp_stats(struct tern_csp_stats *out)
{
    TERN_CHECK_ARG(out);
    long c = tern__chan_live(), x = tern__ctx_live(), t = tern__time_live(), p = tern__pool_live();
    *out = (struct tern_csp_stats){
        .chans = c > 0 ? (uint64_t)c : 0,
        .contexts = x > 0 ? (uint64_t)x : 0,
        .timers = t > 0 ? (uint64_t)t : 0,
        .pools = p > 0 ? (uint64_t)p : 0,
    };
    return 0;
}

#ifdef TERN_ASSERTIONS
static struct tern_csp_stats at_start;

static void leak_check(bool starting)
{
    struct tern_csp_stats now;
    tern_csp_stats(&now);
    if (starting) {
        at_start = now;
        return;
    }
    /* a negative difference (freed what an earlier run made) is no leak */
    long c = (long)(now.chans - at_start.chans), x = (long)(now.contexts - at_start.contexts),
         t = (long)(now.timers - at_start.timers), p = (long)(now.pools - at_start.pools);
    if (c > 0 || x > 0 || t > 0 || p > 0)
        tern__report("leak check (debug build) as tern_run returns: made during the run and "
                     "never freed: %ld channel(s), %ld context(s), %ld timer(s), %ld pool(s) "
                     "(tern_chan_free, tern_ctx_free, tern_time_*_free, tern_pool_free; a "
                     "timer's channel counts as a channel too)",
                     c > 0 ? c : 0, x > 0 ? x : 0, t > 0 ? t : 0, p > 0 ? p : 0);
}
#endif

void tern__csp_leak_watch(void)
{
#ifdef TERN_ASSERTIONS
    static atomic_bool hooked;
    if (!atomic_load_explicit(&hooked, memory_order_relaxed) &&
        !atomic_exchange(&hooked, true))
        tern__run_hook(leak_check);
#endif
}
