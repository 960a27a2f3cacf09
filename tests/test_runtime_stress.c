/* test_runtime_stress.c - a million spawns, random yields across Ps, a wake ring. */
#include "check.h"

#include <stdatomic.h>

static atomic_long ran;

static int nothing(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
    return 0;
}

static int million_main(void *arg)
{
    (void)arg;
    long n = scaled(1000000);
    atomic_store(&ran, 0);
    for (long i = 0; i < n; i++) {
        CHECK_EQ(tern_go(nothing, NULL), 0);
        if (i % 10000 == 9999)
            while (atomic_load(&ran) < i - 20000)
                tern_yield();
    }
    while (atomic_load(&ran) < n)
        tern_sleep(TERN_MS);
    /* the last ones have counted but may not have exited yet (seen under
     * TSan: alive 2): wait for them, boundedly */
    struct tern_runtime_stats st;
    int64_t deadline = tern_now() + 10 * TERN_SEC;
    do {
        tern_sleep(TERN_MS);
        tern_runtime_stats(&st, NULL, 0);
    } while (st.alive != 1 && tern_now() < deadline);
    CHECK_EQ(st.spawned_total, n + 1);
    CHECK_EQ(st.alive, 1);
    return 0;
}

static void million_spawns_all_run(void)
{
    run_ok(million_main, NULL, 0);
}

#define NY 1000
static atomic_long counts[NY];
static atomic_int finished;

static int blocking_nothing(void *arg)
{
    return (int)(long)arg;
}

static int random_yielder(void *arg)
{
    long id = (long)arg;
    uint32_t x = (uint32_t)id * 2654435761u + 1;
    for (int i = 0; i < 300; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        atomic_fetch_add(&counts[id], 1);
        switch (x % 8) {
        case 0: case 1: tern_yield(); break;
        case 2: case 3: tern_sleep((x >> 8) % 50 * TERN_US); break;
        case 4: CHECK_EQ(tern_blocking(blocking_nothing, (void *)7L), 7); break;   /* woken from a pool thread */
        default: break;
        }
    }
    atomic_fetch_add(&finished, 1);
    return 0;
}

static int yields_main(void *arg)
{
    (void)arg;
    atomic_store(&finished, 0);
    int n = (int)scaled(NY);
    for (int i = 0; i < n; i++)
        atomic_store(&counts[i], 0);
    for (long i = 0; i < n; i++)
        tern_go(random_yielder, (void *)i);
    while (atomic_load(&finished) < n)
        tern_sleep(TERN_MS);
    for (int i = 0; i < n; i++)
        CHECK_EQ(atomic_load(&counts[i]), 300);
    struct tern_runtime_stats st;
    tern_runtime_proc_stats ps[2];
    tern_runtime_stats(&st, ps, 2);
    if (st.procs >= 2)
        CHECK(ps[0].switches > 0 && ps[1].switches > 0);   /* both Ps worked */
    return 0;
}

static void random_yields_and_sleeps_lose_no_step_across_ps(void)
{
    run_ok(yields_main, NULL, 0);
}

/* One P takes from its queue and `next` slot without locked instructions
 * (nobody steals): the same mix there, wakes from the blocking pool's
 * threads and the timers included. */
static void random_yields_and_sleeps_lose_no_step_on_one_p(void)
{
    run_ok(yields_main, NULL, 1);
}

/* A ring of coroutines: each waits for the token, passes it on. */
#define RING 64
typedef struct ring_node {
    tern_co *_Atomic co;
    _Atomic tern_ticket t;
    atomic_bool armed;
} ring_node;
static ring_node ring[RING];
static atomic_long passes;
static long rounds;

static int ring_member(void *arg)
{
    long i = (long)arg;
    ring_node *me = &ring[i], *next = &ring[(i + 1) % RING];
    for (long r = 0; r < rounds; r++) {
        tern_ticket t = tern_wait_prepare();
        atomic_store(&me->t, t);
        atomic_store(&me->co, tern_self());
        atomic_store(&me->armed, true);
        CHECK_EQ(tern_wait(t, "ring", TERN_FOREVER), 1);
        atomic_fetch_add(&passes, 1);
        if (i == RING - 1 && r == rounds - 1)
            break;      /* the token's last hop */
        /* pass it on once the next one is armed */
        while (!atomic_exchange(&next->armed, false))
            tern_yield();
        CHECK(tern_wake(atomic_load(&next->co), atomic_load(&next->t), 1));
    }
    return 0;
}

static int ring_main(void *arg)
{
    (void)arg;
    rounds = scaled(2000);
    atomic_store(&passes, 0);
    for (long i = 0; i < RING; i++)
        atomic_store(&ring[i].armed, false);     /* a run before this one's */
    for (long i = 0; i < RING; i++)
        tern_go(ring_member, (void *)i);
    while (!atomic_exchange(&ring[0].armed, false))
        tern_yield();
    CHECK(tern_wake(atomic_load(&ring[0].co), atomic_load(&ring[0].t), 1));
    while (atomic_load(&passes) < rounds * RING)
        tern_sleep(TERN_MS);
    return 0;
}

static void wake_ring_passes_the_token_without_a_lost_wake(void)
{
    run_ok(ring_main, NULL, 0);
}

static void wake_ring_on_one_p(void)
{
    run_ok(ring_main, NULL, 1);
}

TESTS(T(million_spawns_all_run), T(random_yields_and_sleeps_lose_no_step_across_ps),
      T(random_yields_and_sleeps_lose_no_step_on_one_p), T(wake_ring_passes_the_token_without_a_lost_wake),
      T(wake_ring_on_one_p))
