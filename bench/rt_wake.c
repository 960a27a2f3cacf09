/*
 * rt_wake - cross-thread wake latency.
 *
 *   rt_wake [rounds=2000] [sleep|yield]
 *
 * Two Ps.  B loops: take a ticket, publish (tern_self(), ticket), say it is
 * ready, tern_wait().  A, for each round: waits (yielding) until B says it
 * is ready, then lets 50 us pass so that B is surely parked and its worker
 * idle, notes t0 = tern_now(), tern_wake()s B and busy-spins 200 us
 * WITHOUT yielding, so that B has to be run by the other P.  B notes
 * t1 = tern_now() as soon as it runs.  Prints the median of t1 - t0 in ns
 * (p10/p90/max and the share of rounds over 150 us on stderr: those are
 * wakes that no other worker picked up before A's spin ended).
 *
 * How A lets the 50 us pass: `sleep` (the default, what compare.sh runs):
 * tern_sleep(), so both workers are asleep when the wake comes, as in Go's
 * run, where the waker's time.Sleep leaves both Ms asleep.  `yield`: a
 * tern_yield() loop; a yield while another P is idle wakes that P to
 * steal, so the other worker is often mid-spin when the wake comes, which
 * measures tern's spinning policy rather than a wake-up.  Go anchor:
 * bench/go/runtime wake (GOMAXPROCS=2, a cap-1 channel, same settle modes).
 */
#include "bench_common.h"

#include <stdatomic.h>

#define SPIN_NS   (200 * TERN_US)
#define SETTLE_NS (50 * TERN_US)

static long g_rounds;
static int g_settle_yield;
static int64_t *g_lat;
static _Atomic(tern_co *) g_b;
static _Atomic tern_ticket g_b_ticket;
static atomic_long g_ready = -1;   /* round B is ready (about to park) for */
static _Atomic int64_t g_t0;

static int b_main(void *arg)
{
    (void)arg;
    atomic_store(&g_b, tern_self());
    for (long r = 0; r < g_rounds; r++) {
        tern_ticket t = tern_wait_prepare();
        atomic_store_explicit(&g_b_ticket, t, memory_order_relaxed);
        atomic_store_explicit(&g_ready, r, memory_order_release);
        int rc = tern_wait(t, "bench-wake", TERN_FOREVER);
        int64_t t1 = tern_now();
        if (rc < 0)
            bench_fail("tern_wait", rc);
        g_lat[r] = t1 - atomic_load_explicit(&g_t0, memory_order_acquire);
    }
    atomic_store_explicit(&g_ready, g_rounds, memory_order_release);
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();
    int r = tern_go(b_main, NULL);
    if (r < 0)
        bench_fail("tern_go", r);
    for (long i = 0; i < g_rounds; i++) {
        while (atomic_load_explicit(&g_ready, memory_order_acquire) != i)
            tern_yield();
        if (g_settle_yield) {
            for (int64_t s = tern_now(); tern_now() - s < SETTLE_NS;)
                tern_yield();
        } else {
            tern_sleep(SETTLE_NS);
        }
        tern_co *b = atomic_load(&g_b);
        tern_ticket t = atomic_load_explicit(&g_b_ticket, memory_order_relaxed);
        int64_t t0 = tern_now();
        atomic_store_explicit(&g_t0, t0, memory_order_release);
        if (!tern_wake(b, t, 0)) {
            /* B published this ticket and said it waits: a wake that does
             * not take would leave B parked forever. */
            fprintf(stderr, "tern wake: round %ld: tern_wake(B, %llu) returned false\n",
                    i, (unsigned long long)t);
            exit(1);
        }
        while (tern_now() - t0 < SPIN_NS)
            ;   /* busy: do not yield, B must run elsewhere */
    }
    while (atomic_load_explicit(&g_ready, memory_order_acquire) != g_rounds)
        tern_yield();
    long slow = 0;
    for (long i = 0; i < g_rounds; i++)
        slow += g_lat[i] > 150 * TERN_US;
    qsort(g_lat, (size_t)g_rounds, sizeof *g_lat, bench_cmp_i64);
    fprintf(stderr, "tern wake (%s settle): %ld rounds, %d procs, %ld over 150 us, p10 %lld ns, "
            "p50 %lld ns, p90 %lld ns, max %lld ns\n",
            g_settle_yield ? "yield" : "sleep", g_rounds, tern_runtime_procs(), slow,
            (long long)g_lat[g_rounds / 10],
            (long long)g_lat[g_rounds / 2], (long long)g_lat[g_rounds * 9 / 10],
            (long long)g_lat[g_rounds - 1]);
    printf("%lld\n", (long long)g_lat[g_rounds / 2]);
    fflush(stdout);
    bench_report_summary("tern wake");
    return 0;
}

int main(int argc, char **argv)
{
    g_rounds = bench_arg(argc, argv, 1, 2000);
    if (argc > 2 && strcmp(argv[2], "yield") == 0)
        g_settle_yield = 1;
    else if (argc > 2 && strcmp(argv[2], "sleep") != 0) {
        fprintf(stderr, "usage: rt_wake [rounds] [sleep|yield]\n");
        return 2;
    }
    g_lat = calloc((size_t)g_rounds, sizeof *g_lat);
    if (!g_lat)
        bench_fail("calloc", -ENOMEM);
    tern_run_options o = {0};
    o.procs = 2;
    int r = tern_run_opts(entry, NULL, &o);
    if (r != 0)
        bench_fail("tern_run_opts", r);
    free(g_lat);
    return 0;
}
