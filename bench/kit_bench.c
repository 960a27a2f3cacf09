/*
 * kit_bench.c - costs of the kit's hot paths (bench/compare.sh kit), one
 * subcommand per figure, printing that figure alone on stdout.
 *
 *   counter_inc [n]   2 Ps; two coroutines, started together, each add 1
 *                     n times (default 50M) to the same labelled counter
 *                     (tern_metrics_counter_inc on a handle looked up once); ns per
 *                     increment = the CPU time of the worker thread that
 *                     ran each loop (CLOCK_THREAD_CPUTIME_ID; a loop never
 *                     yields, so nothing else runs on that thread
 *                     meanwhile) / n, the mean of the two sides.  CPU time
 *                     rather than wall time because the 2 cores are shared
 *                     with other work, which stretches wall time without
 *                     saying anything about the increment; contention
 *                     between the Ps (a shared cache line) would still
 *                     show, as stalls count as CPU time.  The wall-time
 *                     figure goes to stderr.  When the scheduler ran both
 *                     loops on one worker thread (one after the other: no
 *                     contention measured) the pair runs again, up to 5
 *                     times in all; stderr says if they never split.
 *
 * Add a subcommand: a function below and a row in `cmds`.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <time.h>

#include <tern/metrics.h>

static long g_n;

/* ---- counter_inc ------------------------------------------------------------ */

typedef struct inc_side {
    int64_t t0, t1;             /* wall, tern_now() */
    int64_t c0, c1;             /* this thread's CPU time */
    uintptr_t thread;
} inc_side;

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static tern_metrics_counter *g_counter;
static inc_side g_sides[2];
static tern_waitgroup g_arrived, g_start, g_done;

static int inc_co(void *arg)
{
    inc_side *s = arg;
    /* Parked, not spinning, until both are here: woken together, one runs
     * on this P and the other is left for the idle P to steal. */
    tern_waitgroup_done(&g_arrived);
    tern_waitgroup_wait(&g_start, NULL);
    s->thread = (uintptr_t)pthread_self();
    s->t0 = tern_now();
    s->c0 = thread_cpu_ns();
    tern_metrics_counter *c = g_counter;
    for (long i = 0; i < g_n; i++)
        tern_metrics_counter_inc(c);
    s->c1 = thread_cpu_ns();
    s->t1 = tern_now();
    tern_waitgroup_done(&g_done);
    return 0;
}

/* Run the two loops; 1 if they ran on one worker thread. */
static int inc_attempt(void)
{
    memset(g_sides, 0, sizeof g_sides);
    tern_waitgroup_add(&g_arrived, 2);
    tern_waitgroup_add(&g_start, 1);
    tern_waitgroup_add(&g_done, 2);
    int rc;
    for (int i = 0; i < 2; i++)
        if ((rc = tern_go(inc_co, &g_sides[i])) != 0)
            bench_fail("tern_go", rc);
    tern_waitgroup_wait(&g_arrived, NULL);
    tern_waitgroup_done(&g_start);
    tern_waitgroup_wait(&g_done, NULL);
    return g_sides[0].thread == g_sides[1].thread;
}

static int counter_inc(void)
{
    static const char *const labels[] = {"method", "code", NULL};
    tern_metrics_family *f;
    tern_metrics_family_options o = {.type = TERN_METRICS_COUNTER,
                                     .name = "bench_requests_total",
                                     .help = "Bench.",
                                     .labels = labels};
    int rc = tern_metrics_family_new(NULL, &o, &f);
    if (rc)
        bench_fail("tern_metrics_family_new", rc);
    rc = tern_metrics_counter_with(f, &g_counter, "GET", "200");
    if (rc)
        bench_fail("tern_metrics_counter_with", rc);
    /* The scheduler places the two; run again (up to 5 times in all)
     * while it puts both on one worker thread. */
    int shared = 1, attempts = 0;
    while (shared && attempts < 5) {
        shared = inc_attempt();
        attempts++;
    }
    uint64_t got = tern_metrics_counter_value(g_counter);
    if (got != (uint64_t)(2 * g_n * attempts)) {
        fprintf(stderr, "counter_inc: counted %llu, expected %ld\n", (unsigned long long)got,
                2 * g_n * attempts);
        return 1;
    }
    if (shared)
        fprintf(stderr, "counter_inc: both coroutines ran on one worker thread\n");
    int64_t t0 = g_sides[0].t0 < g_sides[1].t0 ? g_sides[0].t0 : g_sides[1].t0;
    int64_t t1 = g_sides[0].t1 > g_sides[1].t1 ? g_sides[0].t1 : g_sides[1].t1;
    double cpu = (double)(g_sides[0].c1 - g_sides[0].c0 + g_sides[1].c1 - g_sides[1].c0) / 2;
    fprintf(stderr, "counter_inc: wall %.2f ns per increment per P, CPU %.2f\n",
            (double)(t1 - t0) / (double)g_n, cpu / (double)g_n);
    printf("%.2f\n", cpu / (double)g_n);
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------ */

typedef struct kit_cmd {
    const char *name;
    int procs;
    long default_n;
    int (*fn)(void);
} kit_cmd;

static const kit_cmd cmds[] = {
    {"counter_inc", 2, 50000000, counter_inc},
};

static const kit_cmd *g_cmd;
static int g_result;

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();              /* the loops hold their worker on purpose */
    g_result = g_cmd->fn();
    bench_report_summary(g_cmd->name);
    return 0;
}

int main(int argc, char **argv)
{
    for (size_t i = 0; argc >= 2 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0)
            g_cmd = &cmds[i];
    if (!g_cmd) {
        fputs("usage: kit_bench counter_inc [n]\n", stderr);
        return 2;
    }
    g_n = bench_arg(argc, argv, 2, g_cmd->default_n);
    tern_run_options o = {.procs = g_cmd->procs};
    int r = tern_run_opts(entry, NULL, &o);
    if (r != 0)
        bench_fail("tern_run", r);
    return g_result;
}
