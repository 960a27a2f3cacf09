/*
 * rt_spawn_join - start and join N empty coroutines; prints ns per coroutine.
 *
 *   rt_spawn_join waves [n=1000000] [wave=10000]
 *       spawn-join in waves: start `wave` coroutines, join them, repeat, so
 *       at most `wave` are alive at once.  This is the figure compare.sh
 *       reports as spawn_join_ns.
 *   rt_spawn_join all [n=1000000]
 *       start all n, then join them (all alive at once); compare.sh reports
 *       it as spawn_join_all_ns.
 *
 * Join: the entry coroutine takes a ticket and publishes (tern_self(),
 * ticket) in globals before starting a wave; every worker decrements an
 * atomic counter and the one that brings it to zero wakes the entry.
 * Runs on the default number of Ps (TERN_PROCS, else all CPUs), default
 * stack mode.  Go anchor: bench/go/runtime spawn-waves / spawn-all with a
 * sync.WaitGroup, same waves.
 */
#include "bench_common.h"

#include <stdatomic.h>

static long g_n, g_wave;
static tern_co *g_main;
static tern_ticket g_ticket;
static atomic_long g_left;

static int worker(void *arg)
{
    (void)arg;
    if (atomic_fetch_sub_explicit(&g_left, 1, memory_order_acq_rel) == 1)
        tern_wake(g_main, g_ticket, 0);
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();
    g_main = tern_self();
    int64_t t0 = tern_now();
    for (long done = 0; done < g_n;) {
        long k = g_n - done < g_wave ? g_n - done : g_wave;
        g_ticket = tern_wait_prepare();
        atomic_store_explicit(&g_left, k, memory_order_release);
        for (long i = 0; i < k; i++) {
            int r = tern_go(worker, NULL);
            if (r < 0)
                bench_fail("tern_go", r);
        }
        int r = tern_wait(g_ticket, "join", TERN_FOREVER);
        if (r < 0)
            bench_fail("tern_wait", r);
        done += k;
    }
    int64_t t1 = tern_now();
    fprintf(stderr, "tern spawn_join %s: %ld coroutines, %ld per wave, %d procs, %.1f ms\n",
            g_wave == g_n ? "all-at-once" : "waves", g_n, g_wave, tern_runtime_procs(),
            (double)(t1 - t0) / 1e6);
    printf("%.1f\n", (double)(t1 - t0) / (double)g_n);
    fflush(stdout);
    bench_report_summary("tern spawn_join");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "waves";
    g_n = bench_arg(argc, argv, 2, 1000000);
    if (strcmp(mode, "waves") == 0)
        g_wave = bench_arg(argc, argv, 3, 10000);
    else if (strcmp(mode, "all") == 0)
        g_wave = g_n;
    else {
        fprintf(stderr, "usage: rt_spawn_join waves|all [n] [wave]\n");
        return 2;
    }
    int r = tern_run(entry, NULL);
    if (r != 0)
        bench_fail("tern_run", r);
    return 0;
}
