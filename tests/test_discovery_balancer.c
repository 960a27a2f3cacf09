/*
 * test_discovery_balancer.c - the balancing policies (distribution checked
 * by counting), consistent hashing (stability when the set changes),
 * outlier ejection and return, updates that keep state, bad input, and
 * picks from many coroutines on two Ps racing updates.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/discovery.h>
#include <tern/runtime.h>
#include <tern/sync.h>

static const tern_endpoint three[] = {{"10.0.0.1:80", 0}, {"10.0.0.2:80", 0}, {"10.0.0.3:80", 0}};

static int index_of(const char *addr)
{
    return addr[7] - '1';           /* "10.0.0.N:80" */
}

static tern_balancer *make(tern_lb_policy policy, const tern_endpoint *eps, size_t n)
{
    tern_balancer_options o = {.policy = policy};
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&o, &b), 0);
    CHECK_EQ(tern_balancer_update(b, eps, n), 0);
    return b;
}

static int pick_done(tern_balancer *b, const char *key, int64_t latency, tern_lb_outcome out)
{
    tern_lb_pick p;
    CHECK_EQ(tern_balancer_pick(b, key, key ? strlen(key) : 0, &p), 0);
    int i = index_of(p.addr);
    tern_balancer_done(b, &p, latency, out);
    return i;
}

static int round_robin_body(void *arg)
{
    (void)arg;
    tern_balancer *b = make(TERN_LB_ROUND_ROBIN, three, 3);
    int first = pick_done(b, NULL, 1000, TERN_LB_OK);
    for (int k = 1; k < 30; k++)
        CHECK_EQ(pick_done(b, NULL, 1000, TERN_LB_OK), (first + k) % 3);
    tern_balancer_free(b);
    return 0;
}

static void round_robin_cycles_in_order(void)
{
    run_ok(round_robin_body, NULL, 1);
}

static int wrr_body(void *arg)
{
    (void)arg;
    const tern_endpoint w[] = {{"10.0.0.1:80", 5}, {"10.0.0.2:80", 1}, {"10.0.0.3:80", 1}};
    tern_balancer *b = make(TERN_LB_WEIGHTED_ROUND_ROBIN, w, 3);
    int count[3] = {0}, run = 0, max_run = 0, last = -1, cycle[3] = {0};
    for (int k = 0; k < 700; k++) {
        int i = pick_done(b, NULL, 1000, TERN_LB_OK);
        count[i]++;
        cycle[i]++;
        if (k % 7 == 6) {           /* every cycle of 7 has the exact shares */
            CHECK(cycle[0] == 5 && cycle[1] == 1 && cycle[2] == 1);
            memset(cycle, 0, sizeof cycle);
        }
        run = i == last ? run + 1 : 1;
        last = i;
        if (run > max_run)
            max_run = run;
    }
    CHECK_EQ(count[0], 500);
    CHECK_EQ(count[1], 100);
    CHECK_EQ(count[2], 100);
    CHECK(max_run <= 4);            /* smooth: a a b a c a a, not a a a a a b c */
    tern_balancer_free(b);
    return 0;
}

static void weighted_round_robin_is_exact_and_smooth(void)
{
    run_ok(wrr_body, NULL, 1);
}

static int p2c_body(void *arg)
{
    (void)arg;
    tern_balancer *b = make(TERN_LB_P2C, three, 3);
    /* equal endpoints: about a third each */
    int count[3] = {0};
    for (int k = 0; k < 3000; k++)
        count[pick_done(b, NULL, 1000000, TERN_LB_OK)]++;
    for (int i = 0; i < 3; i++)
        CHECK(count[i] > 700 && count[i] < 1300);
    /* endpoint 3 turns slow (100x): it gets few calls, but some (a forced
     * pick a second at least keeps measuring it) */
    memset(count, 0, sizeof count);
    for (int k = 0; k < 3000; k++) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        int i = index_of(p.addr);
        count[i]++;
        tern_balancer_done(b, &p, i == 2 ? 100000000 : 1000000, TERN_LB_OK);
    }
    CHECK(count[2] < 300);
    CHECK(count[0] > 1000 && count[1] > 1000);
    /* in-flight calls count: with many held on 1, it is avoided */
    tern_balancer *c = make(TERN_LB_P2C, three, 2);
    tern_lb_pick held[20];
    int n_held = 0;
    for (int k = 0; k < 40 && n_held < 20; k++) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(c, NULL, 0, &p), 0);
        if (index_of(p.addr) == 0)
            held[n_held++] = p;
        else
            tern_balancer_done(c, &p, 1000, TERN_LB_OK);
    }
    CHECK(n_held >= 1);
    int to_first = 0;
    for (int k = 0; k < 100; k++)
        to_first += pick_done(c, NULL, 1000, TERN_LB_OK) == 0;
    CHECK(to_first < 20);
    for (int k = 0; k < n_held; k++)
        tern_balancer_done(c, &held[k], 1000, TERN_LB_OK);
    struct tern_balancer_stats st;
    CHECK_EQ(tern_balancer_stats(c, &st), 0);
    CHECK_EQ(st.endpoints, 2);
    tern_lb_endpoint_stats es[2];
    CHECK_EQ(tern_balancer_endpoint_stats(c, es, 2), 2);
    CHECK_EQ(es[0].in_flight + es[1].in_flight, 0);
    CHECK_EQ(es[0].picks + es[1].picks, st.picks);
    tern_balancer_free(c);
    tern_balancer_free(b);
    return 0;
}

static void p2c_prefers_fast_and_idle_endpoints(void)
{
    run_ok(p2c_body, NULL, 1);
}

/* One slow sample, a dial's say, must not keep an endpoint away until the
 * forced pick a second later: its latency fades while it goes unpicked
 * (here 100x slower, decay 10 ms: back within ~50 ms). */
static int p2c_fade_body(void *arg)
{
    (void)arg;
    tern_balancer_options o = {.policy = TERN_LB_P2C, .ewma_decay = 10 * TERN_MS};
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&o, &b), 0);
    CHECK_EQ(tern_balancer_update(b, three, 3), 0);
    /* every endpoint measured, 3 slow from its first sample (an EWMA
     * moves little with one slow sample after fast ones) */
    int64_t slow_at = 0;
    bool seen[3] = {false};
    while (!(seen[0] && seen[1] && seen[2])) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        int i = index_of(p.addr);
        tern_balancer_done(b, &p, i == 2 ? 100 * TERN_MS : TERN_MS, TERN_LB_OK);
        seen[i] = true;
        if (i == 2)
            slow_at = tern_now();
    }
    /* the others go on; 3 looks slow until its 100 ms have faded below
     * their 1 ms (~46 ms: 100 x exp(-t / 10 ms) < 1), then it is picked.
     * Its age is read after each pick, so a stall of this thread can
     * only make it look older than it was, never younger */
    int64_t back_at = 0;
    for (int k = 0; !back_at; k++) {
        CHECK(tern_now() - slow_at < 900 * TERN_MS);    /* the forced pick: 1 s */
        if (pick_done(b, NULL, TERN_MS, TERN_LB_OK) == 2)
            back_at = tern_now();
        if (k >= 50)
            tern_sleep(TERN_MS);
    }
    fprintf(stderr, "the slow endpoint picked again after %.1f ms\n",
            (double)(back_at - slow_at) / (double)TERN_MS);
    CHECK(back_at - slow_at >= 20 * TERN_MS);   /* not at once: it did look slow */
    tern_balancer_free(b);
    return 0;
}

static void p2c_forgets_a_slow_sample_with_time(void)
{
    run_ok(p2c_fade_body, NULL, 1);
}

/* Which endpoint each of n keys maps to. */
static void map_keys(tern_balancer *b, int *out, int n)
{
    for (int k = 0; k < n; k++) {
        char key[32];
        snprintf(key, sizeof key, "user-%d", k);
        out[k] = pick_done(b, key, 1000, TERN_LB_OK);
    }
}

static void hash_checks(tern_lb_policy policy, int spread_pct, int stay_pct)
{
    enum { N = 10000 };
    static int before[N], after[N], again[N];
    tern_balancer *b = make(policy, three, 3);
    map_keys(b, before, N);
    map_keys(b, again, N);
    int count[3] = {0};
    for (int k = 0; k < N; k++) {
        CHECK_EQ(before[k], again[k]);          /* a key keeps its endpoint */
        count[before[k]]++;
    }
    for (int i = 0; i < 3; i++)
        CHECK(abs(count[i] - N / 3) * 100 < spread_pct * (N / 3));
    /* a fourth endpoint joins: it takes about a quarter, the rest stay */
    const tern_endpoint four[] = {three[0], three[1], three[2], {"10.0.0.4:80", 0}};
    CHECK_EQ(tern_balancer_update(b, four, 4), 0);
    map_keys(b, after, N);
    int moved_elsewhere = 0, to_new = 0;
    for (int k = 0; k < N; k++) {
        if (after[k] == 3)
            to_new++;
        else if (after[k] != before[k])
            moved_elsewhere++;
    }
    CHECK(to_new > N / 4 - N / 10 && to_new < N / 4 + N / 10);
    CHECK(moved_elsewhere * 100 <= (100 - stay_pct) * N);
    /* a weight of 3 against three of 1: about half */
    const tern_endpoint heavy[] = {{"10.0.0.1:80", 3}, three[1], three[2], {"10.0.0.4:80", 0}};
    CHECK_EQ(tern_balancer_update(b, heavy, 4), 0);
    map_keys(b, after, N);
    int first = 0;
    for (int k = 0; k < N; k++)
        first += after[k] == 0;
    CHECK(first > N * 4 / 10 && first < N * 6 / 10);
    tern_balancer_free(b);
}

static int hash_body(void *arg)
{
    (void)arg;
    hash_checks(TERN_LB_RING_HASH, 20, 97);
    hash_checks(TERN_LB_MAGLEV, 5, 90);
    return 0;
}

static void consistent_hashing_keeps_keys_and_spreads_them(void)
{
    run_ok(hash_body, NULL, 1);
}

static int outlier_body(void *arg)
{
    (void)arg;
    tern_balancer_options o = {
        .policy = TERN_LB_ROUND_ROBIN,
        .outlier = {.base_ejection_time = 100 * TERN_MS, .success_rate_min_calls = -1},
    };
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&o, &b), 0);
    CHECK_EQ(tern_balancer_update(b, three, 3), 0);
    /* endpoint 2 fails every call: after five in a row it is out */
    int failures = 0;
    while (failures < 5) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        bool bad = index_of(p.addr) == 1;
        failures += bad;
        tern_balancer_done(b, &p, 1000, bad ? TERN_LB_FAILED : TERN_LB_OK);
    }
    struct tern_balancer_stats st;
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.ejected, 1);
    CHECK_EQ(st.ejections, 1);
    for (int k = 0; k < 50; k++)
        CHECK(pick_done(b, NULL, 1000, TERN_LB_OK) != 1);
    /* a local failure (the caller's ctx) counts for nobody */
    for (int k = 0; k < 20; k++)
        pick_done(b, NULL, 1000, TERN_LB_LOCAL);
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.ejected, 1);
    /* an update that keeps it keeps it out */
    CHECK_EQ(tern_balancer_update(b, three, 3), 0);
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.ejected, 1);
    /* back after the ejection time */
    tern_sleep(150 * TERN_MS);
    int seen = 0;
    for (int k = 0; k < 30; k++)
        seen += pick_done(b, NULL, 1000, TERN_LB_OK) == 1;
    CHECK(seen >= 9);
    /* ejected again: twice as long this time */
    failures = 0;
    while (failures < 5) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        bool bad = index_of(p.addr) == 1;
        failures += bad;
        tern_balancer_done(b, &p, 1000, bad ? TERN_LB_FAILED : TERN_LB_OK);
    }
    tern_lb_endpoint_stats es[3];
    CHECK_EQ(tern_balancer_endpoint_stats(b, es, 3), 3);
    CHECK(es[1].ejected);
    CHECK_EQ(es[1].ejections, 2);
    tern_sleep(150 * TERN_MS);
    for (int k = 0; k < 30; k++)
        CHECK(pick_done(b, NULL, 1000, TERN_LB_OK) != 1);
    /* every endpoint failing: the cap keeps most of them in, and never all out */
    for (int k = 0; k < 100; k++)
        pick_done(b, NULL, 1000, TERN_LB_FAILED);
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK(st.ejected <= 1);
    tern_balancer_free(b);

    /* success rate: four at 100 %, one at 50 %, judged at the interval */
    const tern_endpoint five[] = {{"10.0.0.1:80", 0}, {"10.0.0.2:80", 0}, {"10.0.0.3:80", 0},
                                  {"10.0.0.4:80", 0}, {"10.0.0.5:80", 0}};
    tern_balancer_options so = {
        .policy = TERN_LB_ROUND_ROBIN,
        .outlier = {.consecutive_failures = -1, .interval = 200 * TERN_MS,
                    .success_rate_min_calls = 50},
    };
    CHECK_EQ(tern_balancer_new(&so, &b), 0);
    CHECK_EQ(tern_balancer_update(b, five, 5), 0);
    for (int k = 0; k < 500; k++) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        bool bad = index_of(p.addr) == 4 && k % 2;
        tern_balancer_done(b, &p, 1000, bad ? TERN_LB_FAILED : TERN_LB_OK);
    }
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.ejected, 0);                /* not before the interval ends */
    tern_sleep(250 * TERN_MS);
    pick_done(b, NULL, 1000, TERN_LB_OK);   /* the next pick sweeps */
    CHECK_EQ(tern_balancer_endpoint_stats(b, es, 3), 5);
    tern_lb_endpoint_stats es5[5];
    CHECK_EQ(tern_balancer_endpoint_stats(b, es5, 5), 5);
    CHECK(es5[4].ejected);
    for (int i = 0; i < 4; i++)
        CHECK(!es5[i].ejected);
    tern_balancer_free(b);
    return 0;
}

static void outliers_are_ejected_and_come_back(void)
{
    run_ok(outlier_body, NULL, 1);
}

static int bad_input_body(void *arg)
{
    (void)arg;
    tern_balancer *b;
    tern_balancer_options o = {.policy = TERN_LB_MAGLEV, .maglev_table_size = 65536};
    CHECK_EQ(tern_balancer_new(&o, &b), -EINVAL);    /* not a prime */
    o = (tern_balancer_options){.policy = (tern_lb_policy)42};
    CHECK_EQ(tern_balancer_new(&o, &b), -EINVAL);
    o = (tern_balancer_options){.outlier = {.max_ejection_percent = 101}};
    CHECK_EQ(tern_balancer_new(&o, &b), -EINVAL);
    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    tern_lb_pick p;
    CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), -ENOENT);
    const tern_endpoint dup[] = {{"a:1", 0}, {"b:1", 0}, {"a:1", 0}};
    CHECK_EQ(tern_balancer_update(b, dup, 3), -EINVAL);
    const tern_endpoint heavy[] = {{"a:1", 10001}};
    CHECK_EQ(tern_balancer_update(b, heavy, 1), -EINVAL);
    const tern_endpoint noaddr[] = {{NULL, 0}};
    CHECK_EQ(tern_balancer_update(b, noaddr, 1), -EINVAL);
    CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), -ENOENT);   /* nothing changed */
    /* a pick outlives the update that removed its endpoint */
    CHECK_EQ(tern_balancer_update(b, three, 1), 0);
    CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
    CHECK_EQ(tern_balancer_update(b, three + 1, 2), 0);
    CHECK(!strcmp(p.addr, "10.0.0.1:80"));
    tern_balancer_done(b, &p, -1, TERN_LB_OK);
    CHECK_EQ(tern_balancer_update(b, NULL, 0), 0);
    CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), -ENOENT);
    tern_balancer_free(b);
    return 0;
}

static void bad_input_is_refused_and_changes_nothing(void)
{
    run_ok(bad_input_body, NULL, 1);
}

typedef struct race {
    tern_balancer *b;
    tern_waitgroup wg;
    TERN__ATOMIC(bool) stop;
} race;

static int picker_co(void *arg)
{
    race *r = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&r->stop)) {
        tern_lb_pick p;
        int rc = tern_balancer_pick(r->b, "k", 1, &p);
        CHECK(rc == 0 || rc == -ENOENT);
        if (rc == 0) {
            CHECK(!strncmp(p.addr, "10.0.0.", 7));
            tern_yield();
            tern_balancer_done(r->b, &p, 1000, (rand_r(&seed) & 7) ? TERN_LB_OK : TERN_LB_FAILED);
        }
    }
    tern_waitgroup_done(&r->wg);
    return 0;
}

static int race_body(void *arg)
{
    tern_lb_policy policy = (tern_lb_policy)(intptr_t)arg;
    race r = {.wg = TERN_WAITGROUP_INIT};
    tern_balancer_options o = {.policy = policy, .maglev_table_size = 251};
    CHECK_EQ(tern_balancer_new(&o, &r.b), 0);
    const tern_endpoint many[] = {{"10.0.0.1:80", 1}, {"10.0.0.2:80", 2}, {"10.0.0.3:80", 3},
                                  {"10.0.0.4:80", 1}, {"10.0.0.5:80", 1}};
    enum { PICKERS = 8 };
    tern_waitgroup_add(&r.wg, PICKERS);
    for (int i = 0; i < PICKERS; i++)
        CHECK_EQ(tern_go(picker_co, &r), 0);
    int rounds = (int)scaled(2000) + 50;
    for (int k = 0; k < rounds; k++) {
        size_t off = (size_t)k % 3, n = 1 + (size_t)k % 3;
        CHECK_EQ(tern_balancer_update(r.b, many + off, n), 0);
        tern_yield();
    }
    atomic_store(&r.stop, true);
    CHECK_EQ(tern_waitgroup_wait(&r.wg, NULL), 0);
    tern_lb_endpoint_stats es[5];
    size_t n = tern_balancer_endpoint_stats(r.b, es, 5);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(es[i].in_flight, 0);
    tern_balancer_free(r.b);
    return 0;
}

static void picks_race_updates_on_two_procs(void)
{
    for (int p = TERN_LB_P2C; p <= TERN_LB_MAGLEV; p++)
        run_ok(race_body, (void *)(intptr_t)p, 2);
}

TESTS(T(round_robin_cycles_in_order), T(weighted_round_robin_is_exact_and_smooth),
      T(p2c_prefers_fast_and_idle_endpoints), T(p2c_forgets_a_slow_sample_with_time),
      T(consistent_hashing_keeps_keys_and_spreads_them),
      T(outliers_are_ejected_and_come_back), T(bad_input_is_refused_and_changes_nothing),
      T(picks_race_updates_on_two_procs))
