/* test_runtime_blocking.c - tern_blocking: runs off the workers, bounded, counted. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static pthread_t worker_thread;

static int on_pool(void *arg)
{
    *(pthread_t *)arg = pthread_self();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return 11;
}

static atomic_int ticks;
static int ticker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        atomic_fetch_add(&ticks, 1);
        tern_sleep(TERN_MS);
    }
    return 0;
}

static int offload_main(void *arg)
{
    (void)arg;
    worker_thread = pthread_self();
    atomic_store(&ticks, 0);
    tern_go(ticker, NULL);
    pthread_t ran_on;
    CHECK_EQ(tern_blocking(on_pool, &ran_on), 11);
    CHECK(!pthread_equal(ran_on, worker_thread));
    /* with one P, the ticker could only tick while we were parked */
    CHECK(atomic_load(&ticks) >= 5);
    CHECK_EQ(tern_blocking(NULL, NULL), -EINVAL);
    return 0;
}

static void blocking_call_parks_only_the_coroutine(void)
{
    run_ok(offload_main, NULL, 1);
}

static atomic_int running_now, running_max, finished, slow_done;

static int slow(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&running_now, 1) + 1;
    int m = atomic_load(&running_max);
    while (n > m && !atomic_compare_exchange_weak(&running_max, &m, n))
        ;
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_sub(&running_now, 1);
    atomic_fetch_add(&slow_done, 1);
    return 0;
}

static int caller(void *arg)
{
    (void)arg;
    tern_blocking(slow, NULL);
    atomic_fetch_add(&finished, 1);
    return 0;
}

static int bound_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 12; i++)
        tern_go(caller, NULL);
    /* threads start on demand: wait (on a busy machine, a while) until
     * the pool is full and every caller has made its call (under qemu the
     * last callers may not have run yet when the pool fills); then every
     * call is running, queued or done */
    struct tern_runtime_stats st;
    int64_t give_up = tern_now() + 5 * TERN_SEC;
    do {
        tern_sleep(TERN_MS);
        tern_runtime_stats(&st, NULL, 0);
    } while ((st.blocking_running < 3 ||
              st.blocking_queued + st.blocking_running + (uint64_t)atomic_load(&slow_done) < 12) &&
             tern_now() < give_up);
    CHECK_EQ(st.blocking_threads, 3);
    CHECK_EQ(st.blocking_running, 3);
    /* every call is queued, running or done; a call may finish between
     * the snapshot and these loads, and its caller run a while later, so
     * bound from both sides rather than compare one racy sum */
    uint64_t inflight = st.blocking_queued + st.blocking_running;
    CHECK(inflight + (uint64_t)atomic_load(&finished) <= 12);
    CHECK(inflight + (uint64_t)atomic_load(&slow_done) >= 12);
    CHECK(st.blocking_queued >= 3);     /* 100 ms calls: at most one batch done */
    give_up = tern_now() + 10 * TERN_SEC;
    while (atomic_load(&finished) < 12 && tern_now() < give_up)
        tern_sleep(TERN_MS);
    CHECK_EQ(atomic_load(&finished), 12);
    CHECK_EQ(atomic_load(&running_max), 3);
    return 0;
}

static void pool_is_bounded_and_queue_observable(void)
{
    tern_run_options o = {.procs = 2, .blocking_threads = 3};
    CHECK_EQ(tern_run_opts(bound_main, NULL, &o), 0);
}

static int touch(void *arg)
{
    *(int *)arg = 42;
    return 0;
}

static atomic_int shared_result = 1;

static int shared_caller(void *arg)
{
    (void)arg;
    int local = 0;
    atomic_store(&shared_result, tern_blocking(touch, &local));
    static int outside;
    CHECK_EQ(tern_blocking(touch, &outside), 0);   /* not on the stack: fine */
    CHECK_EQ(outside, 42);
    return 0;
}

static int shared_main(void *arg)
{
    (void)arg;
    tern_go_opts(shared_caller, NULL, &(tern_go_options){.stack_mode = TERN_STACK_SHARED}, NULL);
    tern_sleep(30 * TERN_MS);
    return 0;
}

/* ASan moves `local` to its fake stack, off the shared one: nothing to
 * refuse there.  (clang before 16 does not define __SANITIZE_ADDRESS__.) */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static void shared_stack_pointer_is_refused(void)
{
    run_ok(shared_main, NULL, 1);
#if !defined(UNDER_ASAN)
    CHECK_EQ(atomic_load(&shared_result), -EFAULT);
#endif
}

/* A pool thread's thread-specific destructors (OpenSSL keeps its error
 * state that way) have all run when the runtime returns: exit(3) after
 * tern_run must not race them. */
static pthread_key_t tsd_key;
static atomic_int tsd_freed;

static void tsd_destroy(void *p)
{
    /* slow enough that a runtime that did not wait would return first */
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&tsd_freed, 1);
    free(p);
}

static int set_tsd(void *arg)
{
    (void)arg;
    return pthread_setspecific(tsd_key, malloc(64));
}

static int tsd_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_blocking(set_tsd, NULL), 0);
    return 0;
}

static void pool_threads_are_gone_when_the_runtime_returns(void)
{
    CHECK_EQ(pthread_key_create(&tsd_key, tsd_destroy), 0);
    atomic_store(&tsd_freed, 0);
    run_ok(tsd_main, NULL, 1);
    CHECK_EQ(atomic_load(&tsd_freed), 1);
    pthread_key_delete(tsd_key);
}

/* A pool thread leaves the process's asynchronous signals to the workers
 * (a SIGTERM there would cut its blocking call short, and under TSan one
 * landing on a thread about to exit was lost), but takes faults (stack.c's
 * copy back of a released stack) and SIGPROF (the profiler). */
static int mask_of_pool(void *arg)
{
    sigset_t *m = arg;
    pthread_sigmask(SIG_BLOCK, NULL, m);
    return 0;
}

static int quiet_main(void *arg)
{
    (void)arg;
    sigset_t m, before;
    sigemptyset(&m);
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    CHECK_EQ(tern_blocking(mask_of_pool, &m), 0);
    static const int quiet[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE, SIGQUIT, SIGCHLD, SIGALRM};
    for (size_t i = 0; i < sizeof quiet / sizeof *quiet; i++)
        CHECK(sigismember(&m, quiet[i]));
    static const int open_[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGPROF};
    for (size_t i = 0; i < sizeof open_ / sizeof *open_; i++)
        CHECK(!sigismember(&m, open_[i]));
    /* and the caller's own mask is as it was (a TSan build's workers block
     * these themselves: signal_tsan.c) */
    sigset_t mine;
    pthread_sigmask(SIG_BLOCK, NULL, &mine);
    for (int sig = 1; sig < 32; sig++)
        CHECK_EQ(sigismember(&mine, sig), sigismember(&before, sig));
    return 0;
}

static void pool_threads_leave_signals_to_workers(void)
{
    run_ok(quiet_main, NULL, 1);
}

TESTS(T(pool_threads_leave_signals_to_workers), T(pool_threads_are_gone_when_the_runtime_returns), T(shared_stack_pointer_is_refused), T(blocking_call_parks_only_the_coroutine), T(pool_is_bounded_and_queue_observable))
