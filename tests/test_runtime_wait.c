/* test_runtime_wait.c - the park/wake protocol: tickets, races, timeouts. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

static int wake_before_wait_main(void *arg)
{
    (void)arg;
    tern_ticket t = tern_wait_prepare();
    CHECK(tern_wake(tern_self(), t, 42));
    CHECK(!tern_wake(tern_self(), t, 43));      /* one wake per ticket */
    CHECK_EQ(tern_wait(t, "test", TERN_FOREVER), 42);
    return 0;
}

static void wake_before_wait_returns_at_once(void)
{
    run_ok(wake_before_wait_main, NULL, 1);
}

typedef struct slot {
    tern_co *_Atomic co;
    _Atomic tern_ticket t;
} slot;

static int waker(void *arg)
{
    slot *s = arg;
    while (!atomic_load(&s->co))
        tern_yield();
    CHECK(tern_wake(atomic_load(&s->co), atomic_load(&s->t), 5));
    return 0;
}

static int wake_from_peer_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        slot s = {NULL, 0};
        tern_go(waker, &s);
        tern_ticket t = tern_wait_prepare();
        atomic_store(&s.t, t);
        atomic_store(&s.co, tern_self());
        CHECK_EQ(tern_wait(t, "peer", TERN_FOREVER), 5);
        /* the waker may still be finishing; let it go before s dies */
        tern_sleep(10 * TERN_US);
    }
    return 0;
}

static void wake_from_another_coroutine_across_ps(void)
{
    run_ok(wake_from_peer_main, NULL, 2);
}

static int timeout_main(void *arg)
{
    (void)arg;
    tern_ticket t = tern_wait_prepare();
    int64_t t0 = tern_now();
    CHECK_EQ(tern_wait(t, "nobody", tern_now() + 20 * TERN_MS), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    CHECK(took >= 20 * TERN_MS);
    CHECK(took < 500 * TERN_MS);
    CHECK(!tern_wake(tern_self(), t, 1));       /* expired tickets stay dead */
    /* a deadline already past times out without parking */
    t = tern_wait_prepare();
    CHECK_EQ(tern_wait(t, "past", tern_now() - 1), -ETIMEDOUT);
    return 0;
}

static void wait_times_out_at_deadline(void)
{
    run_ok(timeout_main, NULL, 1);
}

static int stale_main(void *arg)
{
    (void)arg;
    tern_ticket old = tern_wait_prepare();
    CHECK(tern_wait_cancel(old));
    CHECK(!tern_wait_cancel(old));
    tern_ticket t = tern_wait_prepare();
    CHECK(t != old);
    CHECK(!tern_wake(tern_self(), old, 1));     /* stale: must not wake t */
    CHECK(tern_wake(tern_self(), t, 2));
    CHECK(!tern_wait_cancel(t));                /* claimed: collect it */
    CHECK_EQ(tern_wait(t, "t", TERN_FOREVER), 2);
    return 0;
}

static void stale_and_cancelled_tickets_never_wake(void)
{
    run_ok(stale_main, NULL, 1);
}

static void *foreign_waker(void *arg)
{
    slot *s = arg;
    while (!atomic_load(&s->co))
        ;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    CHECK(tern_wake(atomic_load(&s->co), atomic_load(&s->t), 9));
    return NULL;
}

static int foreign_main(void *arg)
{
    (void)arg;
    slot s = {NULL, 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, foreign_waker, &s) == 0);
    tern_ticket t = tern_wait_prepare();
    atomic_store(&s.t, t);
    atomic_store(&s.co, tern_self());
    /* a deadline keeps deadlock detection from firing while the foreign
     * thread (which tern cannot see) is on its way */
    CHECK_EQ(tern_wait(t, "foreign", tern_now() + 10 * TERN_SEC), 9);
    pthread_join(th, NULL);
    return 0;
}

static void wake_from_foreign_thread(void)
{
    run_ok(foreign_main, NULL, 2);
}

/* Many wakers race a timer for each wait: exactly one wins every time. */
typedef struct race {
    tern_co *co;
    tern_ticket t;
    atomic_int wins;            /* racers whose tern_wake returned true */
    atomic_int done;            /* racers finished with r */
} race;

static int racer(void *arg)
{
    race *r = arg;
    if (tern_wake(r->co, r->t, 1))
        atomic_fetch_add(&r->wins, 1);
    atomic_fetch_add(&r->done, 1);      /* r may be freed from here on */
    return 0;
}

static int race_main(void *arg)
{
    (void)arg;
    int timeouts = 0;
    for (int i = 0; i < 2000; i++) {
        race *r = calloc(1, sizeof *r);
        r->co = tern_self();
        r->t = tern_wait_prepare();
        for (int k = 0; k < 3; k++)
            tern_go(racer, r);
        int res = tern_wait(r->t, "race", tern_now() + (i % 3) * TERN_US);
        CHECK(res == 1 || res == -ETIMEDOUT);
        while (atomic_load(&r->done) < 3)
            tern_yield();
        /* one claim per ticket: a racer won exactly when the timer did not */
        CHECK_EQ(atomic_load(&r->wins), res == 1 ? 1 : 0);
        timeouts += res == -ETIMEDOUT;
        free(r);
    }
    fprintf(stderr, "   2000 waits: %d timed out, %d woken by a racer\n", timeouts, 2000 - timeouts);
    return 0;
}


static void racing_wakers_and_timer_claim_once(void)
{
    run_ok(race_main, NULL, 2);
}

static int uncollected_main(void *arg)
{
    (void)arg;
    tern_ticket t = tern_wait_prepare();
    tern_wake(tern_self(), t, 1);
    tern_wait_prepare();        /* the wake of t was never collected */
    return 0;
}

static void uncollected_child2(void)
{
    tern_run(uncollected_main, NULL);
}

static void prepare_with_uncollected_wake_aborts(void)
{
    child_result r = run_child(uncollected_child2);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "never collected") != NULL);
}

TESTS(T(wake_before_wait_returns_at_once), T(wake_from_another_coroutine_across_ps),
      T(wait_times_out_at_deadline), T(stale_and_cancelled_tickets_never_wake),
      T(wake_from_foreign_thread), T(racing_wakers_and_timer_claim_once),
      T(prepare_with_uncollected_wake_aborts))
