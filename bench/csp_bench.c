/*
 * csp_bench - tern's channels, select, Mutex and WaitGroup, one subcommand
 * per figure of the "csp" suite (bench/compare.sh csp).  Go anchor: the
 * same subcommands in bench/go/csp.
 *
 *   csp_bench pingpong-1p [n=2000000]
 *       unbuffered ping-pong between two coroutines on one P (procs=1):
 *       the entry sends i on `ping`, B receives it and sends it back on
 *       `pong`; n/2 round trips = n one-way messages.  ns per message.
 *   csp_bench pingpong [n=2000000]
 *       the same with the default number of Ps.
 *   csp_bench buffered [n=10000000]
 *       a cap-1024 channel of longs; one producer sends 0..n-1 and closes,
 *       the entry receives until closed.  Default Ps.  ns per item.
 *   csp_bench select4 [n=2000000]
 *       four producers, each sending n/4 values into its own cap-64
 *       channel; the entry does n tern_chan_select()s over the four receives
 *       (which channels are ready at a given select depends on how the
 *       producers happen to run).  Default Ps.  ns per select.
 *   csp_bench mutex [n=10000000]
 *       two coroutines, procs=2, each doing n/2 lock/unlock pairs on one
 *       tern_mutex, released together (both park on a channel the entry
 *       closes; timed from the close); inside the critical section each
 *       notes whether the previous holder was the other one (a hand-off).
 *       Prints TWO numbers on stdout: ns per pair and the percentage of
 *       acquisitions that changed hands.  tern has no pinning API: with
 *       procs=2 the scheduler decides where the two run (as Go's does with
 *       GOMAXPROCS=2); stderr says how often both were seen in their loops
 *       at the same time, and how often on one worker thread.
 *   csp_bench waitgroup [n=100000] [reps=10]
 *       start n coroutines that each call tern_waitgroup_done(), then
 *       tern_waitgroup_wait(); one untimed wave, then reps timed waves.
 *       Default Ps.  Mean ns per coroutine (spawn + Done + its share of Wait).
 *   csp_bench pool-1p|pool-2p [n=20000000]
 *       procs=1 or 2, one coroutine per P, each doing n/procs
 *       tern_pool_get + tern_pool_put pairs of a 64-byte object (made by
 *       new_fn once per P), started together.  ns per pair (wall time / n,
 *       as Go's RunParallel reports).
 *
 * Every subcommand checks what it received (sums, counts) and exits 1 with
 * a message if the result is wrong.  Only tern's public API is used.
 */
#include <tern/tern.h>

#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

static const char *g_cmd;
static long g_n;
static long g_reps;

static void check(const char *what, int r)
{
    if (r < 0)
        bench_fail(what, r);
}

static tern_chan *make_chan(size_t cap)
{
    tern_chan *ch;
    check("tern_chan_new", tern_chan_new(sizeof(long), cap, &ch));
    return ch;
}

/* ---- pingpong ------------------------------------------------------------ */

static tern_chan *g_ping, *g_pong;
static tern_waitgroup g_join = TERN_WAITGROUP_INIT;

static int pp_echo(void *arg)
{
    long rounds = (long)(intptr_t)arg;
    for (long i = 0; i < rounds; i++) {
        long v;
        bool ok;
        check("tern_chan_recv", tern_chan_recv(g_ping, &v, &ok, NULL));
        if (!ok) {
            fprintf(stderr, "csp_bench pingpong: ping closed\n");
            exit(1);
        }
        check("tern_chan_send", tern_chan_send(g_pong, &v, NULL));
    }
    tern_waitgroup_done(&g_join);
    return 0;
}

static double do_pingpong(void)
{
    long rounds = g_n / 2 > 0 ? g_n / 2 : 1;
    g_ping = make_chan(0);
    g_pong = make_chan(0);
    tern_waitgroup_add(&g_join, 1);
    int64_t t0 = tern_now();
    check("tern_go", tern_go(pp_echo, (void *)(intptr_t)rounds));
    for (long i = 0; i < rounds; i++) {
        long v = i;
        bool ok;
        check("tern_chan_send", tern_chan_send(g_ping, &v, NULL));
        check("tern_chan_recv", tern_chan_recv(g_pong, &v, &ok, NULL));
        if (!ok || v != i) {
            fprintf(stderr, "csp_bench pingpong: sent %ld, got back %ld (ok %d)\n", i, v, ok);
            exit(1);
        }
    }
    int64_t t1 = tern_now();
    tern_waitgroup_wait(&g_join, NULL);
    tern_chan_free(g_ping);
    tern_chan_free(g_pong);
    fprintf(stderr, "tern %s: %ld messages, %d proc(s), %.1f ms\n", g_cmd, 2 * rounds,
            tern_runtime_procs(), (double)(t1 - t0) / 1e6);
    return (double)(t1 - t0) / (double)(2 * rounds);
}

/* ---- buffered ------------------------------------------------------------ */

static tern_chan *g_buf;

static int buf_producer(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        check("tern_chan_send", tern_chan_send(g_buf, &i, NULL));
    check("tern_chan_close", tern_chan_close(g_buf));
    tern_waitgroup_done(&g_join);
    return 0;
}

static double do_buffered(void)
{
    long n = g_n;
    g_buf = make_chan(1024);
    tern_waitgroup_add(&g_join, 1);
    int64_t t0 = tern_now();
    check("tern_go", tern_go(buf_producer, (void *)(intptr_t)n));
    long long sum = 0;
    long cnt = 0;
    for (;;) {
        long v;
        bool ok;
        check("tern_chan_recv", tern_chan_recv(g_buf, &v, &ok, NULL));
        if (!ok)
            break;
        sum += v;
        cnt++;
    }
    int64_t t1 = tern_now();
    tern_waitgroup_wait(&g_join, NULL);
    tern_chan_free(g_buf);
    long long want = (long long)n * (n - 1) / 2;
    if (cnt != n || sum != want) {
        fprintf(stderr, "csp_bench buffered: received %ld items summing to %lld, want %ld summing to %lld\n",
                cnt, sum, n, want);
        exit(1);
    }
    fprintf(stderr, "tern buffered: %ld items, cap 1024, %d procs, %.1f ms\n", n, tern_runtime_procs(),
            (double)(t1 - t0) / 1e6);
    return (double)(t1 - t0) / (double)n;
}

/* ---- select4 ------------------------------------------------------------- */

static tern_chan *g_sel[4];

static int sel_producer(void *arg)
{
    tern_chan *ch = arg;
    long per = g_n / 4 > 0 ? g_n / 4 : 1;
    for (long i = 0; i < per; i++)
        check("tern_chan_send", tern_chan_send(ch, &i, NULL));
    tern_waitgroup_done(&g_join);
    return 0;
}

static double do_select4(void)
{
    long per = g_n / 4 > 0 ? g_n / 4 : 1;
    long total = 4 * per;
    long v = 0;
    tern_chan_case cases[4];
    for (int k = 0; k < 4; k++) {
        g_sel[k] = make_chan(64);
        cases[k] = (tern_chan_case){.ch = g_sel[k], .op = TERN_CHAN_RECV, .elem = &v};
    }
    tern_waitgroup_add(&g_join, 4);
    int64_t t0 = tern_now();
    for (int k = 0; k < 4; k++)
        check("tern_go", tern_go(sel_producer, g_sel[k]));
    long hits[4] = {0};
    long long sum = 0;
    for (long i = 0; i < total; i++) {
        int idx = tern_chan_select(cases, 4, NULL);
        if (idx < 0 || idx > 3 || !cases[idx].ok) {
            fprintf(stderr, "csp_bench select4: select %ld returned %d (ok %d)\n", i, idx,
                    idx >= 0 && idx < 4 ? cases[idx].ok : -1);
            exit(1);
        }
        hits[idx]++;
        sum += v;
    }
    int64_t t1 = tern_now();
    tern_waitgroup_wait(&g_join, NULL);
    for (int k = 0; k < 4; k++)
        tern_chan_free(g_sel[k]);
    long long want = 4LL * per * (per - 1) / 2;
    if (sum != want) {
        fprintf(stderr, "csp_bench select4: values sum to %lld, want %lld\n", sum, want);
        exit(1);
    }
    fprintf(stderr, "tern select4: %ld selects, %d procs, %.1f ms, cases fired %ld/%ld/%ld/%ld\n",
            total, tern_runtime_procs(), (double)(t1 - t0) / 1e6, hits[0], hits[1], hits[2], hits[3]);
    return (double)(t1 - t0) / (double)total;
}

/* ---- mutex --------------------------------------------------------------- */

static tern_mutex g_mu = TERN_MUTEX_INIT;
static int g_owner;                 /* 1 or 2 once taken; guarded by g_mu */
static long g_handoffs, g_count;    /* guarded by g_mu */
static tern_waitgroup g_mu_ready = TERN_WAITGROUP_INIT;
static tern_chan *g_mu_start;
/* Placement, sampled every 4096 pairs: whether the other contender is in
 * its loop too (g_active) and on which worker thread each runs (g_where).
 * Tells whether the scheduler ran the two at the same time on two workers,
 * or one after the other. */
static atomic_int g_active[3];
static _Atomic(uintptr_t) g_where[3];
static atomic_long g_samples, g_overlap, g_same;

static int mu_contender(void *arg)
{
    int me = (int)(intptr_t)arg;
    long per = g_n / 2 > 0 ? g_n / 2 : 1;
    /* Start together so that the two really contend: say we are here,
     * then park until the entry closes `start` (Go: close(start)).  Not a
     * tern_yield() spin: a yielded coroutine is queued without waking an
     * idle P, and the one that passes the spin first then runs its whole
     * loop without ever parking, so the two ran one after the other. */
    tern_waitgroup_done(&g_mu_ready);
    bool ok;
    check("tern_chan_recv", tern_chan_recv(g_mu_start, NULL, &ok, NULL));
    long samples = 0, overlap = 0, same = 0;
    atomic_store(&g_active[me], 1);
    for (long i = 0; i < per; i++) {
        tern_mutex_lock(&g_mu);
        if (g_owner != me) {
            if (g_owner != 0)
                g_handoffs++;
            g_owner = me;
        }
        g_count++;
        tern_mutex_unlock(&g_mu);
        if ((i & 4095) == 0) {
            uintptr_t here = (uintptr_t)pthread_self();
            atomic_store_explicit(&g_where[me], here, memory_order_relaxed);
            samples++;
            if (atomic_load_explicit(&g_active[3 - me], memory_order_relaxed)) {
                overlap++;
                same += atomic_load_explicit(&g_where[3 - me], memory_order_relaxed) == here;
            }
        }
    }
    atomic_store(&g_active[me], 0);
    atomic_fetch_add(&g_samples, samples);
    atomic_fetch_add(&g_overlap, overlap);
    atomic_fetch_add(&g_same, same);
    tern_waitgroup_done(&g_join);
    return 0;
}

static double do_mutex(double *pct)
{
    long per = g_n / 2 > 0 ? g_n / 2 : 1;
    g_mu_start = make_chan(0);
    tern_waitgroup_add(&g_mu_ready, 2);
    tern_waitgroup_add(&g_join, 2);
    for (int id = 1; id <= 2; id++)
        check("tern_go", tern_go(mu_contender, (void *)(intptr_t)id));
    tern_waitgroup_wait(&g_mu_ready, NULL);
    int64_t t0 = tern_now();
    check("tern_chan_close", tern_chan_close(g_mu_start));
    tern_waitgroup_wait(&g_join, NULL);
    int64_t t1 = tern_now();
    tern_chan_free(g_mu_start);
    if (g_count != 2 * per) {
        fprintf(stderr, "csp_bench mutex: counter %ld, want %ld\n", g_count, 2 * per);
        exit(1);
    }
    *pct = 100.0 * (double)g_handoffs / (double)g_count;
    fprintf(stderr, "tern mutex: %ld lock/unlock pairs, %d procs, %.1f ms, %ld hand-offs "
            "(%.4f%% of acquisitions changed hands); placement: %ld samples, %ld taken while "
            "the other contender was in its loop too, %ld of those with both on one worker "
            "thread\n",
            g_count, tern_runtime_procs(), (double)(t1 - t0) / 1e6, g_handoffs, *pct,
            atomic_load(&g_samples), atomic_load(&g_overlap), atomic_load(&g_same));
    return (double)(t1 - t0) / (double)g_count;
}

/* ---- waitgroup ----------------------------------------------------------- */

static int wg_worker(void *arg)
{
    tern_waitgroup_done(arg);
    return 0;
}

static int64_t wg_wave(tern_waitgroup *wg, long n)
{
    int64_t t0 = tern_now();
    tern_waitgroup_add(wg, n);
    for (long i = 0; i < n; i++)
        check("tern_go", tern_go(wg_worker, wg));
    tern_waitgroup_wait(wg, NULL);
    return tern_now() - t0;
}

static double do_waitgroup(void)
{
    static tern_waitgroup wg = TERN_WAITGROUP_INIT;
    long n = g_n;
    wg_wave(&wg, n);
    int64_t total = 0, best = INT64_MAX;
    for (long r = 0; r < g_reps; r++) {
        int64_t d = wg_wave(&wg, n);
        total += d;
        if (d < best)
            best = d;
    }
    fprintf(stderr, "tern waitgroup: %ld waves of %ld coroutines, %d procs, mean %.1f ms, "
            "best %.1f ms per wave\n",
            g_reps, n, tern_runtime_procs(), (double)total / 1e6 / (double)g_reps, (double)best / 1e6);
    return (double)total / (double)(n * g_reps);
}

/* ---- pool ------------------------------------------------------------------ */

static tern_pool *g_pool;
static tern_chan *g_pool_go;
static tern_waitgroup g_pool_wg = TERN_WAITGROUP_INIT;

static void *pool_obj_new(void *arg)
{
    (void)arg;
    return calloc(1, 64);
}

static int pool_worker(void *arg)
{
    long n = (long)(intptr_t)arg;
    bool ok;
    check("tern_chan_recv", tern_chan_recv(g_pool_go, NULL, &ok, NULL));
    for (long i = 0; i < n; i++) {
        void *o;
        check("tern_pool_get", tern_pool_get(g_pool, &o));
        ((volatile char *)o)[0]++;
        tern_pool_put(g_pool, o);
    }
    tern_waitgroup_done(&g_pool_wg);
    return 0;
}

static double do_pool(void)
{
    int procs = tern_runtime_procs();
    check("tern_pool_new",
          tern_pool_new(&(tern_pool_options){.new_fn = pool_obj_new, .idle_ns = -1}, &g_pool));
    g_pool_go = make_chan(0);
    long each = g_n / procs;
    tern_waitgroup_add(&g_pool_wg, procs);
    for (int i = 0; i < procs; i++)
        check("tern_go", tern_go(pool_worker, (void *)(intptr_t)each));
    tern_sleep(10 * TERN_MS);   /* all parked on the start channel */
    int64_t t0 = tern_now();
    tern_chan_close(g_pool_go);
    tern_waitgroup_wait(&g_pool_wg, NULL);
    int64_t d = tern_now() - t0;
    struct tern_pool_stats st;
    tern_pool_stats(g_pool, &st);
    if (st.gets != (uint64_t)(each * procs) || st.puts != st.gets) {
        fprintf(stderr, "csp_bench pool: %llu gets, %llu puts, expected %ld\n",
                (unsigned long long)st.gets, (unsigned long long)st.puts, each * procs);
        exit(1);
    }
    fprintf(stderr, "tern %s: %d procs, %llu objects made\n", g_cmd, procs,
            (unsigned long long)st.news);
    tern_pool_free(g_pool);
    tern_chan_free(g_pool_go);
    return (double)d / (double)(each * procs);
}

/* ---- main ---------------------------------------------------------------- */

/* Scheduler counters over the whole subcommand (setup included), on stderr:
 * per item they tell how often the work parked, woke a sleeping worker or
 * moved between Ps. */
static void sched_note(const struct tern_runtime_stats *a, const struct tern_runtime_stats *b)
{
    fprintf(stderr, "tern %s: scheduler: %llu switches, %llu worker wake-ups, %llu steals\n", g_cmd,
            (unsigned long long)(b->switches - a->switches),
            (unsigned long long)(b->wakeups - a->wakeups),
            (unsigned long long)(b->steals - a->steals));
}

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();
    struct tern_runtime_stats st0, st1;
    check("tern_runtime_stats", tern_runtime_stats(&st0, NULL, 0));
    if (strcmp(g_cmd, "mutex") == 0) {
        double pct;
        double ns = do_mutex(&pct);
        printf("%.1f %.4f\n", ns, pct);
    } else {
        double ns;
        if (strncmp(g_cmd, "pingpong", 8) == 0)
            ns = do_pingpong();
        else if (strcmp(g_cmd, "buffered") == 0)
            ns = do_buffered();
        else if (strcmp(g_cmd, "select4") == 0)
            ns = do_select4();
        else if (strncmp(g_cmd, "pool", 4) == 0)
            ns = do_pool();
        else
            ns = do_waitgroup();
        printf("%.1f\n", ns);
    }
    fflush(stdout);
    check("tern_runtime_stats", tern_runtime_stats(&st1, NULL, 0));
    sched_note(&st0, &st1);
    bench_report_summary("tern csp");
    return 0;
}

int main(int argc, char **argv)
{
    static const char *usage =
        "usage: csp_bench pingpong-1p|pingpong|buffered|select4|mutex|waitgroup|pool-1p|pool-2p "
        "[n] [reps]\n";
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    g_cmd = argv[1];
    tern_run_options o = {0};
    if (strcmp(g_cmd, "pingpong-1p") == 0) {
        o.procs = 1;
        g_n = bench_arg(argc, argv, 2, 2000000);
    } else if (strcmp(g_cmd, "pingpong") == 0) {
        g_n = bench_arg(argc, argv, 2, 2000000);
    } else if (strcmp(g_cmd, "buffered") == 0) {
        g_n = bench_arg(argc, argv, 2, 10000000);
    } else if (strcmp(g_cmd, "select4") == 0) {
        g_n = bench_arg(argc, argv, 2, 2000000);
    } else if (strcmp(g_cmd, "mutex") == 0) {
        o.procs = 2;
        g_n = bench_arg(argc, argv, 2, 10000000);
    } else if (strcmp(g_cmd, "pool-1p") == 0 || strcmp(g_cmd, "pool-2p") == 0) {
        o.procs = g_cmd[5] - '0';
        g_n = bench_arg(argc, argv, 2, 20000000);
    } else if (strcmp(g_cmd, "waitgroup") == 0) {
        g_n = bench_arg(argc, argv, 2, 100000);
        g_reps = bench_arg(argc, argv, 3, 10);
    } else {
        fprintf(stderr, "unknown subcommand '%s'\n%s", g_cmd, usage);
        return 2;
    }
    int r = tern_run_opts(entry, NULL, &o);
    if (r != 0)
        bench_fail("tern_run_opts", r);
    return 0;
}
