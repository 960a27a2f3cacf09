/*
 * rt_yield - two coroutines yielding to each other on one P.
 *
 *   rt_yield [n=10000000]
 *
 * Starts the runtime with procs=1; the entry starts two coroutines that
 * each call tern_yield() n/2 times, then parks until both are done.
 * Prints ns per switch (total time / n).  Go anchor: bench/go/runtime
 * yield (GOMAXPROCS=1, runtime.Gosched()).
 */
#include "bench_common.h"

#include <stdatomic.h>

static long g_per;
static tern_co *g_main;
static tern_ticket g_ticket;
static atomic_int g_left;

static int yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < g_per; i++)
        tern_yield();
    if (atomic_fetch_sub_explicit(&g_left, 1, memory_order_acq_rel) == 1)
        tern_wake(g_main, g_ticket, 0);
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();
    g_main = tern_self();
    g_ticket = tern_wait_prepare();
    atomic_store(&g_left, 2);
    int64_t t0 = tern_now();
    for (int i = 0; i < 2; i++) {
        int r = tern_go(yielder, NULL);
        if (r < 0)
            bench_fail("tern_go", r);
    }
    int r = tern_wait(g_ticket, "join", TERN_FOREVER);
    if (r < 0)
        bench_fail("tern_wait", r);
    int64_t t1 = tern_now();
    fprintf(stderr, "tern yield: %ld switches on %d proc(s), %.1f ms\n", 2 * g_per,
            tern_runtime_procs(), (double)(t1 - t0) / 1e6);
    printf("%.1f\n", (double)(t1 - t0) / (double)(2 * g_per));
    fflush(stdout);
    bench_report_summary("tern yield");
    return 0;
}

int main(int argc, char **argv)
{
    g_per = bench_arg(argc, argv, 1, 10000000) / 2;
    if (g_per < 1)
        g_per = 1;
    tern_run_options o = {0};
    o.procs = 1;
    int r = tern_run_opts(entry, NULL, &o);
    if (r != 0)
        bench_fail("tern_run_opts", r);
    return 0;
}
