/* test_runtime_introspect.c - stats, dump, the long-run monitor, deadlock detection. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

static int parked_forever(void *arg)
{
    (void)arg;
    tern_ticket t = tern_wait_prepare();
    tern_wait(t, "test-reason", TERN_FOREVER);
    return 0;
}

static int sleepy(void *arg)
{
    (void)arg;
    tern_sleep(10 * TERN_SEC);
    return 0;
}

static int stats_main(void *arg)
{
    (void)arg;
    struct tern_runtime_stats st;
    tern_runtime_proc_stats ps[4];
    CHECK_EQ(tern_runtime_stats(&st, ps, 4), 2);
    CHECK_EQ(st.procs, 2);
    CHECK_EQ(st.alive, 1);
    CHECK_EQ(st.running, 1);
    for (int i = 0; i < 10; i++)
        tern_go_opts(sleepy, NULL, &(tern_go_options){.name = "sleepy"}, NULL);
    tern_go_opts(parked_forever, NULL, &(tern_go_options){.name = "stuck"}, NULL);
    tern_sleep(20 * TERN_MS);
    CHECK_EQ(tern_runtime_stats(&st, ps, 4), 2);
    CHECK_EQ(st.alive, 12);
    CHECK_EQ(st.spawned_total, 12);
    CHECK_EQ(st.parked, 11);
    CHECK_EQ(st.timers, 10);
    CHECK_EQ(ps[0].timers + ps[1].timers, 10);
    CHECK(st.switches >= 11);
    CHECK_EQ(st.switches, ps[0].switches + ps[1].switches);
    CHECK(strcmp(st.stack_guard, "guard-install") == 0 || strcmp(st.stack_guard, "canary") == 0);

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    tern_runtime_dump(f);
    fclose(f);
    CHECK(strstr(buf, "12 coroutines") != NULL);
    CHECK(strstr(buf, "[running] 'main'") != NULL);
    const char *stuck = strstr(buf, "[waiting, test-reason, ");
    CHECK(stuck != NULL);
    /* parked 20 ms ago, stamped by the monitor's clock (a tick behind at
     * most, and late on a loaded machine) */
    long waited = atol(stuck + strlen("[waiting, test-reason, "));
    if (waited < 5 || waited > 5000)
        fprintf(stderr, "the stuck one waits for %ld ms\n", waited);
    CHECK(waited >= 5 && waited <= 5000);
    CHECK(strstr(buf, "'stuck'") != NULL);
    CHECK(strstr(buf, "[waiting, sleep, ") != NULL);
    CHECK(strstr(buf, "'sleepy'") != NULL);
    free(buf);
    return 0;
}

static void stats_and_dump_describe_every_coroutine(void)
{
    struct tern_runtime_stats st;
    CHECK_EQ(tern_runtime_stats(&st, NULL, 0), -ESRCH);
    run_ok(stats_main, NULL, 2);
}

static char reported[1024];
static atomic_int nreports;

static void hook(const char *msg, void *arg)
{
    CHECK(arg == (void *)&nreports);    /* the datum given with the hook */
    if (atomic_fetch_add(&nreports, 1) == 0)
        snprintf(reported, sizeof reported, "%s", msg);
}

static int hog(void *arg)
{
    (void)arg;
    /* 60 ms of this thread's CPU, not of the wall clock: the monitor counts
     * CPU time (so that a worker the OS descheduled is not reported), and on
     * a loaded machine 60 wall ms may hold only a few ms of CPU. */
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    int64_t end = (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec + 60 * TERN_MS;
    do              /* computes without yielding */
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    while ((int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec < end);
    return 0;
}

static int monitor_main(void *arg)
{
    (void)arg;
    tern_go_opts(hog, NULL, &(tern_go_options){.name = "hog"}, NULL);
    /* The monitor sees the hog within a tick or two; on a loaded machine
     * the monitor thread itself may wait for a CPU, so poll (up to 5 s)
     * instead of trusting one fixed sleep. */
    struct tern_runtime_stats st;
    int64_t until = tern_now() + 5000 * TERN_MS;
    do {
        tern_sleep(20 * TERN_MS);
        tern_runtime_stats(&st, NULL, 0);
    } while (st.long_runs == 0 && tern_now() < until);
    tern_sleep(100 * TERN_MS);          /* a second report would show by now */
    tern_runtime_stats(&st, NULL, 0);
    CHECK_EQ(st.long_runs, 1);
    return 0;
}

static void monitor_reports_coroutine_hogging_a_worker(void)
{
    atomic_store(&nreports, 0);
    tern_runtime_set_report_hook(hook, &nreports);
    tern_run_options o = {.procs = 2, .monitor_threshold = 20 * TERN_MS};
    CHECK_EQ(tern_run_opts(monitor_main, NULL, &o), 0);
    tern_runtime_set_report_hook(NULL, NULL);
    CHECK_EQ(atomic_load(&nreports), 1);
    CHECK(strstr(reported, "'hog'") != NULL);
    CHECK(strstr(reported, "without yielding") != NULL);
}

static int polite(void *arg)
{
    (void)arg;
    int64_t end = tern_now() + 60 * TERN_MS;
    while (tern_now() < end)
        tern_yield();
    return 0;
}

static int quiet_main(void *arg)
{
    (void)arg;
    tern_go(polite, NULL);
    tern_go(polite, NULL);
    tern_sleep(100 * TERN_MS);
    return 0;
}

static void monitor_quiet_when_coroutines_yield(void)
{
    atomic_store(&nreports, 0);
    tern_runtime_set_report_hook(hook, &nreports);
    tern_run_options o = {.procs = 2, .monitor_threshold = 20 * TERN_MS};
    CHECK_EQ(tern_run_opts(quiet_main, NULL, &o), 0);
    tern_runtime_set_report_hook(NULL, NULL);
    CHECK_EQ(atomic_load(&nreports), 0);
}

static int deadlock_main(void *arg)
{
    (void)arg;
    tern_go_opts(parked_forever, NULL, &(tern_go_options){.name = "orphan"}, NULL);
    tern_ticket t = tern_wait_prepare();
    tern_wait(t, "nobody-will-wake", TERN_FOREVER);
    return 0;
}

static void deadlock_child(void)
{
    tern_run_options o = {.procs = 2};
    tern_run_opts(deadlock_main, NULL, &o);
}

static void deadlock_is_detected_and_exits_2(void)
{
    child_result r = run_child(deadlock_child);
    CHECK(r.exited);
    CHECK_EQ(r.code, 2);
    CHECK(strstr(r.err, "all coroutines are asleep - deadlock!") != NULL);
    CHECK(strstr(r.err, "nobody-will-wake") != NULL);   /* the dump follows */
    CHECK(strstr(r.err, "'orphan'") != NULL);
}

static int not_deadlocked_main(void *arg)
{
    (void)arg;
    /* all parked, but a timer will wake one: not a deadlock */
    tern_go(parked_forever, NULL);
    tern_sleep(50 * TERN_MS);
    return 0;
}

static void timers_pending_is_not_deadlock(void)
{
    run_ok(not_deadlocked_main, NULL, 2);
}

/* A plain thread that will wake a coroutine declares itself, so waiting
 * for it is not a deadlock. */
static tern_chan *ext_ch;

static void *ext_sender(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int v = 5;
    while (tern_chan_try_send(ext_ch, &v) == -EAGAIN)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    tern_runtime_external_wakers(-1);
    return NULL;
}

static int ext_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 0, &ext_ch), 0);
    tern_runtime_external_wakers(+1);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, ext_sender, NULL) == 0);
    int v = 0;
    bool ok;
    CHECK_EQ(tern_chan_recv(ext_ch, &v, &ok, NULL), 0);  /* every P idles meanwhile */
    CHECK(ok && v == 5);
    pthread_join(th, NULL);
    tern_chan_free(ext_ch);
    return 0;
}

static void ext_child(void)
{
    tern_run_options o = {.procs = 2};
    _exit(tern_run_opts(ext_main, NULL, &o) == 0 ? 0 : 1);
}

static void declared_external_waker_is_not_deadlock(void)
{
    child_result r = run_child(ext_child);
    CHECK(r.exited);
    CHECK_EQ(r.code, 0);
    CHECK(strstr(r.err, "deadlock") == NULL);
}

static int asleep_briefly_main(void *arg)
{
    (void)arg;
    tern_go(parked_forever, NULL);      /* abandoned at return */
    tern_ticket t = tern_wait_prepare();
    /* nothing will wake this but its deadline; with detection off, the
     * moment all is parked is not fatal */
    CHECK_EQ(tern_wait(t, "x", tern_now() + 5 * TERN_MS), -ETIMEDOUT);
    return 0;
}

static void deadlock_exit_can_be_turned_off(void)
{
    tern_run_options o = {.procs = 2, .no_deadlock_exit = true};
    CHECK_EQ(tern_run_opts(asleep_briefly_main, NULL, &o), 0);
}

static void id_of_null_coroutine(void)
{
    tern_co_id(NULL);
}

static void name_of_null_coroutine(void)
{
    tern_co_name(NULL);
}

static void stats_into_null(void)
{
    tern_runtime_stats(NULL, NULL, 0);
}

static void null_coroutine_aborts_naming_the_function(void)
{
    child_result r = run_child(id_of_null_coroutine);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern_co_id: co is NULL") != NULL);
    r = run_child(name_of_null_coroutine);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern_co_name: co is NULL") != NULL);
    r = run_child(stats_into_null);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern_runtime_stats: st is NULL") != NULL);
}

TESTS(T(declared_external_waker_is_not_deadlock), T(deadlock_exit_can_be_turned_off),
      T(stats_and_dump_describe_every_coroutine), T(monitor_reports_coroutine_hogging_a_worker),
      T(monitor_quiet_when_coroutines_yield), T(deadlock_is_detected_and_exits_2),
      T(timers_pending_is_not_deadlock), T(null_coroutine_aborts_naming_the_function))
