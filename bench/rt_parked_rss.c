/*
 * rt_parked_rss - memory per parked coroutine.
 *
 *   rt_parked_rss own|shared|release [n=1000000] [settle_ms=0]
 *
 * The entry reads VmRSS, starts n coroutines (stack mode TERN_STACK_OWN,
 * the default, or TERN_STACK_SHARED; `release` is the default mode with
 * tern_go_options.release_stack), each of which counts itself and
 * then sleeps 60 s (tern_sleep).  Once all have counted themselves the
 * entry sleeps a little more so that the last ones park too, reads VmHWM
 * (peak RSS) and prints (VmHWM - VmRSS before) / n in bytes.  With default
 * options the monitor gives back the stacks parked 1 s (20 ms with
 * release_stack) where guard markers work (tern_runtime_stats.stack_release
 * "any"), so the peak has the last second's spawns resident.  Then it
 * returns without waiting for the sleepers (they are abandoned).
 * With settle_ms > 0 it waits that long more once all are parked and prints
 * (VmRSS then - VmRSS before) / n instead: what a coroutine costs once it
 * has been parked a while (the monitor's release is done), not the peak of
 * the spawn storm, whose last second is still resident.
 * compare.sh reports `shared` as parked_rss_bytes and `own` as
 * parked_rss_bytes_own, `release` as parked_rss_bytes_release.  Go anchor: bench/go/runtime parked (goroutines
 * blocked on a channel receive, Go's cheapest way to park).
 */
#include "bench_common.h"

#include <stdatomic.h>

static long g_n;
static long g_settle_ms;
static tern_stack_mode g_mode;
static bool g_release;
static atomic_long g_ready;

static int sleeper(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&g_ready, 1, memory_order_relaxed);
    tern_sleep(60 * TERN_SEC);
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();
    long before = bench_status_kb("VmRSS");
    int64_t t0 = tern_now();
    tern_go_options go = {0};
    go.stack_mode = g_mode;
    go.release_stack = g_release;
    for (long i = 0; i < g_n; i++) {
        int r = tern_go_opts(sleeper, NULL, &go, NULL);
        if (r < 0)
            bench_fail("tern_go_opts", r);
    }
    while (atomic_load_explicit(&g_ready, memory_order_relaxed) < g_n)
        tern_sleep(TERN_MS);
    tern_sleep(50 * TERN_MS);
    int64_t t1 = tern_now();
    tern_sleep(g_settle_ms * TERN_MS);
    long hwm = bench_status_kb("VmHWM");
    long rss = bench_status_kb("VmRSS");
    if (before < 0 || hwm < 0) {
        fprintf(stderr, "cannot read /proc/self/status\n");
        exit(1);
    }
    struct tern_runtime_stats st;
    if (tern_runtime_stats(&st, NULL, 0) > 0)
        fprintf(stderr, "tern parked %s: alive %llu parked %llu timers %llu stacks_mapped %llu "
                "stacks_released %llu (%llu bytes saved)\n",
                g_mode == TERN_STACK_SHARED ? "shared" : g_release ? "release" : "own",
                (unsigned long long)st.alive, (unsigned long long)st.parked,
                (unsigned long long)st.timers, (unsigned long long)st.stacks_mapped,
                (unsigned long long)st.stacks_released, (unsigned long long)st.stack_saved_bytes);
    fprintf(stderr, "tern parked %s: %ld coroutines asleep, rss before %ld kB, hwm %ld kB, "
            "rss now %ld kB (%ld ms after), %.0f ms to park all, %d procs\n",
            g_mode == TERN_STACK_SHARED ? "shared" : g_release ? "release" : "own", g_n, before, hwm, rss,
            g_settle_ms, (double)(t1 - t0) / 1e6, tern_runtime_procs());
    long after = g_settle_ms > 0 ? rss : hwm;
    printf("%.0f\n", (double)(after - before) * 1024.0 / (double)g_n);
    fflush(stdout);
    bench_report_summary("tern parked");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "own";
    if (strcmp(mode, "own") == 0)
        g_mode = TERN_STACK_OWN;
    else if (strcmp(mode, "release") == 0)
        g_release = true;
    else if (strcmp(mode, "shared") == 0)
        g_mode = TERN_STACK_SHARED;
    else {
        fprintf(stderr, "usage: rt_parked_rss own|shared|release [n] [settle_ms]\n");
        return 2;
    }
    g_n = bench_arg(argc, argv, 2, 1000000);
    g_settle_ms = argc > 3 ? bench_arg(argc, argv, 3, 0) : 0;
    int r = tern_run(entry, NULL);
    if (r != 0)
        bench_fail("tern_run", r);
    return 0;
}
