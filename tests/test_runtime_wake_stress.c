/* test_runtime_wake_stress.c - wake-ups racing the waiter's switch-out.
 * tern_wait switches out still RUNNING and after_switch moves it to
 * WAITING with the park's one CAS; a waker that comes first leaves
 * NOTIFIED (seen by tern_wait before switching, or by after_switch
 * after), one that comes later readies WAITING with a plain store.  Pairs
 * of coroutines wake each other through bare tickets as fast as they can
 * on every P, so all three orders happen many times: no wake-up may be
 * lost (the pair would hang), delivered twice or to the wrong wait (the
 * result check or tern_wait's assertions would fail). */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct side {
    _Atomic(tern_co *) co;      /* set once its ticket is published */
    _Atomic tern_ticket t;
} side;

typedef struct pair {
    side s[2];
    long rounds;
    tern_waitgroup *wg;
} pair;

typedef struct pair_arg {
    pair *p;
    int me;
} pair_arg;

/* Take the partner's published ticket (spinning, yielding now and then:
 * no ticket of ours is out) and wake it with the wake's number. */
static void wake_partner(side *theirs, long k)
{
    tern_co *co;
    for (int spins = 0; !(co = atomic_exchange(&theirs->co, NULL)); spins++)
        if (spins > 64)
            tern_yield();
    CHECK(tern_wake(co, atomic_load(&theirs->t), (int)(k & 0xffff) + 1));
}

/* Publish a ticket and wait on it at once: the partner, spinning on
 * another P, often wakes it before the switch-out is done. */
static void publish_and_wait(side *mine, long k)
{
    tern_ticket t = tern_wait_prepare();
    atomic_store(&mine->t, t);
    atomic_store(&mine->co, tern_self());
    CHECK_EQ(tern_wait(t, "ping", TERN_FOREVER), (int)(k & 0xffff) + 1);
}

/* The two sides alternate: side 0 waits first, side 1 wakes it and waits,
 * and so on; each side waits `rounds` times and wakes `rounds` times, the
 * k-th wake of one ending the k-th wait of the other. */
static int pinger(void *arg)
{
    pair_arg *a = arg;
    pair *p = a->p;
    side *mine = &p->s[a->me], *theirs = &p->s[1 - a->me];
    if (a->me == 0) {
        publish_and_wait(mine, 0);
        for (long k = 1; k < p->rounds; k++) {
            wake_partner(theirs, k - 1);
            publish_and_wait(mine, k);
        }
        wake_partner(theirs, p->rounds - 1);
    } else {
        for (long k = 0; k < p->rounds; k++) {
            wake_partner(theirs, k);
            publish_and_wait(mine, k);
        }
    }
    tern_waitgroup_done(p->wg);
    return 0;
}

static int pairs_main(void *arg)
{
    (void)arg;
    enum { PAIRS = 4 };
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    pair ps[PAIRS];
    pair_arg as[PAIRS][2];
    tern_waitgroup_add(&wg, 2 * PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        ps[i] = (pair){.rounds = scaled(50000), .wg = &wg};
        for (int k = 0; k < 2; k++) {
            as[i][k] = (pair_arg){&ps[i], k};
            CHECK_EQ(tern_go(pinger, &as[i][k]), 0);
        }
    }
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    return 0;
}

static void wakes_racing_the_switch_out_are_never_lost(void)
{
    run_ok(pairs_main, NULL, 0);
    run_ok(pairs_main, NULL, 1);
}

/* A thread of its own per waiter, spinning without ever yielding: its
 * wake lands before, during and after the waiter's switch-out. */
typedef struct foreign {
    side s;
    long rounds;
} foreign;

static void *foreign_waker(void *arg)
{
    foreign *f = arg;
    for (long k = 0; k < f->rounds;) {
        tern_co *co = atomic_exchange(&f->s.co, NULL);
        if (co) {
            CHECK(tern_wake(co, atomic_load(&f->s.t), (int)(k & 0xffff) + 1));
            k++;
        }
    }
    return NULL;
}

static atomic_int foreign_done;

static int foreign_waiter(void *arg)
{
    foreign *f = arg;
    for (long k = 0; k < f->rounds; k++)
        publish_and_wait(&f->s, k);
    atomic_fetch_add(&foreign_done, 1);
    return 0;
}

static int foreign_main(void *arg)
{
    (void)arg;
    enum { WAITERS = 2 };
    foreign fs[WAITERS];
    pthread_t th[WAITERS];
    atomic_store(&foreign_done, 0);
    for (int i = 0; i < WAITERS; i++) {
        fs[i] = (foreign){.rounds = scaled(50000)};
        CHECK_EQ(pthread_create(&th[i], NULL, foreign_waker, &fs[i]), 0);
    }
    for (int i = 0; i < WAITERS; i++)
        CHECK_EQ(tern_go(foreign_waiter, &fs[i]), 0);
    /* sleeping, not joining: with every coroutine parked for a moment,
     * the runtime (which cannot see the threads) would call it a
     * deadlock, but not while a sleep is due */
    int64_t give_up = tern_now() + 60 * TERN_SEC;     /* a lost wake-up: fail, not hang */
    while (atomic_load(&foreign_done) < WAITERS) {
        CHECK(tern_now() < give_up);
        tern_sleep(TERN_MS);
    }
    for (int i = 0; i < WAITERS; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    return 0;
}

static void wakes_from_spinning_threads_racing_the_switch_out_are_never_lost(void)
{
    run_ok(foreign_main, NULL, 0);
}

TESTS(T(wakes_racing_the_switch_out_are_never_lost),
      T(wakes_from_spinning_threads_racing_the_switch_out_are_never_lost))
