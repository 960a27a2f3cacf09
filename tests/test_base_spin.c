/*
 * test_base_spin.c - the runtime's short-section lock (src/base/spin.h):
 * exclusion under contention from more threads than cores, and a waiter
 * that sleeps (on the futex) rather than spins while the holder is away,
 * and a worker asleep so that the runtime's monitor does not report.
 */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/spin.h"

#define NTHREADS 6

static tern__spin lock = TERN_SPIN_INIT;
static long counter;
static long per_thread;

static void *adder(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) {
        tern__spin_lock(&lock);
        counter++;
        tern__spin_unlock(&lock);
    }
    return NULL;
}

static void spin_lock_excludes_with_more_threads_than_cores(void)
{
    per_thread = scaled(200000);
    counter = 0;
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, adder, NULL), 0);
    for (int i = 0; i < NTHREADS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    CHECK_EQ(counter, per_thread * NTHREADS);
    CHECK_EQ(atomic_load(&lock.v), 0);
}

static atomic_int sleeping;
static atomic_bool got;

static void *waiter(void *arg)
{
    (void)arg;
    tern__spin_count_sleeps(&sleeping);
    tern__spin_lock(&lock);
    atomic_store(&got, true);
    tern__spin_unlock(&lock);
    tern__spin_count_sleeps(NULL);
    return NULL;
}

/* The old lock called sched_yield for ever: the waiter never slept, and on
 * a loaded machine kept its CPU from the holder. */
static void spin_waiter_sleeps_while_the_holder_keeps_the_lock(void)
{
    tern__spin_lock(&lock);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, waiter, NULL), 0);
    for (int i = 0; i < 10000 && atomic_load(&sleeping) == 0; i++)
        usleep(1000);
    CHECK_EQ(atomic_load(&sleeping), 1);
    CHECK(!atomic_load(&got));
    CHECK_EQ(atomic_load(&lock.v), 2);      /* held, with a sleeper */
    tern__spin_unlock(&lock);               /* wakes it */
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(atomic_load(&got));
    CHECK_EQ(atomic_load(&sleeping), 0);
    CHECK_EQ(atomic_load(&lock.v), 0);
}

/* tern__spin_pause, waiting on a flag another thread sets 100 ms later (a
 * peer the kernel preempted between claim and publish): after its pauses
 * it sleeps, counted as a lock sleep, and so spends little CPU.  The old
 * waits spun or yielded for ever: ~100 ms of CPU. */
static atomic_bool flag;

static void *set_later(void *arg)
{
    (void)arg;
    usleep(100 * 1000);
    atomic_store(&flag, true);
    return NULL;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void spin_pause_sleeps_while_the_peer_is_away(void)
{
    atomic_store(&flag, false);
    atomic_int sleeps = 0;
    tern__spin_count_sleeps(&sleeps);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, set_later, NULL), 0);
    double cpu0 = thread_cpu_ms();
    unsigned n = 0, rounds = 0;
    while (!atomic_load(&flag)) {
        tern__spin_pause(&n);
        rounds++;
    }
    double cpu = thread_cpu_ms() - cpu0;
    tern__spin_count_sleeps(NULL);
    CHECK_EQ(pthread_join(th, NULL), 0);
    fprintf(stderr, "waited 100 ms in %u rounds on %.1f ms of CPU\n", rounds, cpu);
    CHECK(rounds > 8 && rounds < 5000);     /* it slept, up to 1 ms at a time */
    CHECK(cpu < 50);
    CHECK_EQ(atomic_load(&sleeps), 0);      /* counted in and out */
}

/* A worker waiting on the lock while its holder is away (here a thread
 * that keeps it 300 ms; on a loaded machine, a worker the kernel
 * preempted) is no mistake of the program's.  The old lock yielded in a
 * loop, whose CPU time the monitor read as a coroutine that never yields;
 * asleep on the lock's futex, the worker must not read as a blocking call
 * either. */
static atomic_int nreports;

static void hook(const char *msg, void *arg)
{
    (void)arg;
    atomic_fetch_add(&nreports, 1);
    fprintf(stderr, "report: %s\n", msg);
}

static atomic_bool kept;

static void *keeper(void *arg)
{
    (void)arg;
    tern__spin_lock(&lock);
    atomic_store(&kept, true);
    usleep(300 * 1000);
    tern__spin_unlock(&lock);
    return NULL;
}

static int join_thread(void *arg)
{
    return pthread_join(*(pthread_t *)arg, NULL);
}

static int lock_main(void *arg)
{
    (void)arg;
    pthread_t th;
    atomic_store(&kept, false);
    CHECK_EQ(pthread_create(&th, NULL, keeper, NULL), 0);
    while (!atomic_load(&kept))
        tern_sleep(TERN_MS);
    tern__spin_lock(&lock);         /* waits out the keeper on this worker */
    tern__spin_unlock(&lock);
    CHECK_EQ(tern_blocking(join_thread, &th), 0);
    return 0;
}

static void monitor_quiet_while_a_worker_waits_on_the_lock(void)
{
    atomic_store(&nreports, 0);
    tern_runtime_set_report_hook(hook, NULL);
    tern_run_options o = {.procs = 2, .monitor_threshold = 50 * TERN_MS};
    CHECK_EQ(tern_run_opts(lock_main, NULL, &o), 0);
    tern_runtime_set_report_hook(NULL, NULL);
    /* under qemu-user a worker also sleeps in qemu's own locks
     * (test_runtime_blocked says more) */
    if (!getenv("TERN_TEST_UNDER_QEMU"))
        CHECK_EQ(atomic_load(&nreports), 0);
}

TESTS(T(spin_lock_excludes_with_more_threads_than_cores), T(spin_pause_sleeps_while_the_peer_is_away),
      T(spin_waiter_sleeps_while_the_holder_keeps_the_lock),
      T(monitor_quiet_while_a_worker_waits_on_the_lock))
