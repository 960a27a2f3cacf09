/*
 * coroutines.c - `make run`: tern's runtime at work.  A producer/consumer
 * pair hands numbers over with park/wake, a fan-out of workers runs across
 * all Ps, sleepers wake in deadline order, and a blocking call runs on the
 * offload pool; at the end the scheduler's counters say what happened.
 */
#define _DEFAULT_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#include <tern/tern.h>

/* A one-slot mailbox built on the parking primitive. */
typedef struct mailbox {
    atomic_int full;
    int value;
    tern_co *waiter;
    tern_ticket ticket;
    atomic_bool has_waiter;
} mailbox;

static atomic_int sleep_order;
static atomic_long fanout_sum;
static atomic_int fanout_left;
static tern_co *main_co;
static tern_ticket main_ticket;

static int sleeper(void *arg)
{
    long ms = (long)arg;
    tern_sleep(ms * TERN_MS);
    int order = atomic_fetch_add(&sleep_order, 1);
    printf("  sleeper of %3ld ms woke %d%s\n", ms, order + 1, order == 0 ? "st" : order == 1 ? "nd" : "rd");
    return 0;
}

static int worker(void *arg)
{
    long n = (long)arg, sum = 0;
    for (long i = 1; i <= n; i++) {
        sum += i;
        if (i % 1000 == 0)
            tern_yield();
    }
    atomic_fetch_add(&fanout_sum, sum);
    if (atomic_fetch_sub(&fanout_left, 1) == 1)
        tern_wake(main_co, main_ticket, 0);
    return 0;
}

static int slow_syscall(void *arg)
{
    (void)arg;
    usleep(20000);  /* blocks a pool thread, not a worker */
    return 42;
}

static int entry(void *arg)
{
    (void)arg;
    printf("tern runtime: %d Ps (worker threads)\n", tern_runtime_procs());

    printf("sleepers started in the order 30, 10, 20 ms:\n");
    tern_go(sleeper, (void *)30L);
    tern_go(sleeper, (void *)10L);
    tern_go(sleeper, (void *)20L);
    tern_sleep(60 * TERN_MS);

    const int workers = 1000;
    printf("fan-out: %d coroutines summing 1..10000 each, across all Ps\n", workers);
    main_co = tern_self();
    main_ticket = tern_wait_prepare();
    atomic_store(&fanout_left, workers);
    for (int i = 0; i < workers; i++)
        tern_go_opts(worker, (void *)10000L, &(tern_go_options){.name = "worker"}, NULL);
    tern_wait(main_ticket, "fan-in", TERN_FOREVER);
    printf("  total %ld (expected %ld)\n", atomic_load(&fanout_sum), 50005000L * workers);

    int64_t t0 = tern_now();
    int r = tern_blocking(slow_syscall, NULL);
    printf("blocking call on the offload pool returned %d after %lld ms\n", r,
           (long long)((tern_now() - t0) / TERN_MS));

    struct tern_runtime_stats st;
    tern_runtime_proc_stats ps[64];
    int np = tern_runtime_stats(&st, ps, 64);
    printf("scheduler: %llu coroutines started, %llu switches, %llu steals, stack guard: %s\n",
           (unsigned long long)st.spawned_total, (unsigned long long)st.switches,
           (unsigned long long)st.steals, st.stack_guard);
    for (int i = 0; i < np && i < 64; i++)
        printf("  P%d: %llu started here, %llu switches, %llu steals\n", i,
               (unsigned long long)ps[i].spawned, (unsigned long long)ps[i].switches,
               (unsigned long long)ps[i].steals);
    return 0;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0) {
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
        return 1;
    }
    return r;
}
