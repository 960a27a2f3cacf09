/*
 * rt_timer_late - how late timers and context deadlines fire while the
 * workers also do short locked work.
 *
 *   rt_timer_late [seconds=3] [sleepers=200] [workers=4]
 *
 * Two Ps.  `sleepers` coroutines loop: tern_sleep for a pseudo-random 1-10
 * ms and note how late they woke; half of them wait instead for a fresh
 * context's deadline (tern_ctx_with_timeout + a receive on its done
 * channel: a callback timer, the path a request deadline takes).
 * `workers` coroutines keep both Ps busy in short bursts that go through
 * the runtime's locks (a tern_mutex, a buffered channel), yielding between
 * bursts, as a loaded server would.  Prints the 99th percentile lateness in
 * us on stdout; mean, p50, p99.9 and the worst on stderr, and how often a
 * P made no switch for 40 ms (a plain thread watches the per-P counts).  Run it alone and
 * beside CPU hogs (`sh -c 'while :; do :; done'`, more of them than cores)
 * to see what an oversubscribed machine does to the timers.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#define MAXS 200000

static long g_secs, g_sleepers, g_workers;
static int64_t g_end;
static int64_t *g_late;
static atomic_long g_n;
static tern_mutex g_mu = TERN_MUTEX_INIT;
static tern_chan *g_ch;
static atomic_int g_left;
static tern_co *g_main;
static volatile uint64_t g_sink;     /* work under the mutex */
static tern_ticket g_main_t;

/* A plain thread that samples the per-P switch counts every ms: a P whose
 * count stands still for STALL_NS with coroutines queued on it is held (a
 * coroutine that does not yield, or its worker thread preempted by the
 * kernel).  Counted and, with
 * RT_LATE_VERBOSE set, printed with the P's queue and timers. */
#define STALL_NS (40 * TERN_MS)

static atomic_bool g_watch_stop;
static long g_stalls;
static int64_t g_stall_worst;

static void *watchdog(void *arg)
{
    (void)arg;
    tern_runtime_proc_stats last[2], cur[2];
    int64_t since[2];
    bool held[2] = {false, false};
    bool verbose = getenv("RT_LATE_VERBOSE") != NULL;
    while (tern_runtime_stats(&(struct tern_runtime_stats){0}, last, 2) < 0 &&
           !atomic_load(&g_watch_stop))
        usleep(1000);
    since[0] = since[1] = tern_now();
    while (!atomic_load(&g_watch_stop)) {
        usleep(1000);
        if (tern_runtime_stats(&(struct tern_runtime_stats){0}, cur, 2) < 0)
            break;
        int64_t now = tern_now();
        for (int i = 0; i < 2; i++) {
            if (cur[i].switches != last[i].switches || cur[i].wakeups != last[i].wakeups) {
                if (held[i] && now - since[i] > g_stall_worst)
                    g_stall_worst = now - since[i];
                held[i] = false;
                since[i] = now;
                last[i] = cur[i];
            } else if (!held[i] && now - since[i] > STALL_NS && cur[i].runq > 0) {
                held[i] = true;
                g_stalls++;
                if (verbose)
                    fprintf(stderr, "  P%d held 40 ms: its runq %u, timers %u; the other's %u, %u\n", i,
                            cur[i].runq, cur[i].timers, cur[!i].runq, cur[!i].timers);
            }
        }
    }
    return NULL;
}

static void record(int64_t late)
{
    long i = atomic_fetch_add(&g_n, 1);
    if (i < MAXS)
        g_late[i] = late;
}

static void finished(void)
{
    if (atomic_fetch_sub(&g_left, 1) == 1)
        tern_wake(g_main, g_main_t, 0);
}

static int sleeper(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    bool use_ctx = ((uintptr_t)arg & 1) != 0;
    while (tern_now() < g_end) {
        x = x * 1103515245u + 12345u;
        int64_t d = (int64_t)(1 + (x >> 8) % 10) * TERN_MS;
        int64_t due = tern_now() + d;
        if (use_ctx) {
            tern_ctx *ctx;
            int rc = tern_ctx_with_timeout(NULL, d, &ctx);
            if (rc < 0)
                bench_fail("tern_ctx_with_timeout", rc);
            bool ok = true;
            tern_chan_recv(tern_ctx_done(ctx), NULL, &ok, NULL);
            record(tern_now() - due);
            tern_ctx_free(ctx);
        } else {
            tern_sleep(d);
            record(tern_now() - due);
        }
    }
    finished();
    return 0;
}

static int worker(void *arg)
{
    (void)arg;
    while (tern_now() < g_end) {
        for (int r = 0; r < 50; r++) {
            tern_mutex_lock(&g_mu);
            for (int i = 0; i < 200; i++)
                g_sink += (uint64_t)i;
            tern_mutex_unlock(&g_mu);
            int v = r;
            if (tern_chan_try_send(g_ch, &v) != 0)
                tern_chan_try_recv(g_ch, &v, NULL);
        }
        tern_yield();
    }
    finished();
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();
    g_end = tern_now() + g_secs * TERN_SEC;
    g_main = tern_self();
    g_main_t = tern_wait_prepare();
    atomic_store(&g_left, (int)(g_sleepers + g_workers));
    int rc;
    if ((rc = tern_chan_new(sizeof(int), 16, &g_ch)) < 0)
        bench_fail("setup", rc);
    for (long i = 0; i < g_sleepers; i++)
        if ((rc = tern_go(sleeper, (void *)(uintptr_t)i)) < 0)
            bench_fail("tern_go", rc);
    for (long i = 0; i < g_workers; i++)
        if ((rc = tern_go(worker, NULL)) < 0)
            bench_fail("tern_go", rc);
    tern_wait(g_main_t, "bench-late", TERN_FOREVER);
    bench_report_summary("rt_timer_late");
    return 0;
}

int main(int argc, char **argv)
{
    g_secs = bench_arg(argc, argv, 1, 3);
    g_sleepers = bench_arg(argc, argv, 2, 200);
    g_workers = argc > 3 && strcmp(argv[3], "0") == 0 ? 0 : bench_arg(argc, argv, 3, 4);
    g_late = calloc(MAXS, sizeof *g_late);
    if (!g_late)
        return 1;
    tern_run_options o = {.procs = 2};
    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, NULL) != 0)
        return 1;
    int rc = tern_run_opts(entry, NULL, &o);
    atomic_store(&g_watch_stop, true);
    pthread_join(wd, NULL);
    if (rc < 0)
        bench_fail("tern_run", rc);
    long n = atomic_load(&g_n);
    if (n > MAXS)
        n = MAXS;
    if (n == 0)
        return 1;
    qsort(g_late, (size_t)n, sizeof *g_late, bench_cmp_i64);
    int64_t sum = 0;
    for (long i = 0; i < n; i++)
        sum += g_late[i];
    fprintf(stderr, "rt_timer_late: %ld waits, lateness us: mean %lld p50 %lld p99 %lld p99.9 %lld max %lld\n",
            n, (long long)(sum / n / 1000), (long long)(g_late[n / 2] / 1000),
            (long long)(g_late[n * 99 / 100] / 1000), (long long)(g_late[n * 999 / 1000] / 1000),
            (long long)(g_late[n - 1] / 1000));
    fprintf(stderr, "rt_timer_late: Ps held over %lld ms: %ld times, the longest %lld ms\n",
            (long long)(STALL_NS / TERN_MS), g_stalls, (long long)(g_stall_worst / TERN_MS));
    printf("%lld\n", (long long)(g_late[n * 99 / 100] / 1000));
    return 0;
}
