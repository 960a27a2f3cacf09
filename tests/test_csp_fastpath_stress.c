/* test_csp_fastpath_stress.c - the fast paths of issue 21's second round
 * under load on every P: unbuffered hand-offs whose waiters are claimed
 * by a store (sole waits) mixed with select waiters on the same channels,
 * the lock-free first pass of a select over buffered channels (fairness,
 * close, send cases, many consumers), and tern_pool's frameless get/put
 * while the monitor ends epochs underneath. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- unbuffered hand-offs: sole waits beside select waits ---------------- */

enum { PAIRS = 6 };

typedef struct pp {
    tern_chan *ping, *pong;
    long rounds;
    int mode;                   /* 0 plain, 1 echo receives by select, 2 by recv_ctx */
    tern_waitgroup *wg;
} pp;

static int pp_echo(void *arg)
{
    pp *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        long v = -1;
        bool ok = false;
        if (p->mode == 1 && i % 2) {
            tern_chan_case c = {.ch = p->ping, .op = TERN_CHAN_RECV, .elem = &v};
            CHECK_EQ(tern_chan_select(&c, 1, NULL), 0);
            ok = c.ok;
        } else if (p->mode == 2 && i % 3 == 0) {
            tern_ctx *ctx;
            CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
            CHECK_EQ(tern_chan_recv(p->ping, &v, &ok, ctx), 0);
            tern_ctx_cancel(ctx);
            tern_ctx_free(ctx);
        } else {
            CHECK_EQ(tern_chan_recv(p->ping, &v, &ok, NULL), 0);
        }
        CHECK(ok);
        CHECK_EQ(v, i);
        v = -v;
        CHECK_EQ(tern_chan_send(p->pong, &v, NULL), 0);
    }
    /* the partner closes ping after its last round: the next receive
     * sees the close, sole wait or not */
    long v = 7;
    bool ok = true;
    CHECK_EQ(tern_chan_recv(p->ping, &v, &ok, NULL), 0);
    CHECK(!ok);
    CHECK_EQ(v, 0);
    tern_waitgroup_done(p->wg);
    return 0;
}

static int pp_driver(void *arg)
{
    pp *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        long v = i;
        CHECK_EQ(tern_chan_send(p->ping, &v, NULL), 0);
        bool ok = false;
        CHECK_EQ(tern_chan_recv(p->pong, &v, &ok, NULL), 0);
        CHECK(ok);
        CHECK_EQ(v, -i);
    }
    CHECK_EQ(tern_chan_close(p->ping), 0);
    tern_waitgroup_done(p->wg);
    return 0;
}

static int handoff_main(void *arg)
{
    (void)arg;
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    pp ps[PAIRS];
    tern_waitgroup_add(&wg, 2 * PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        ps[i] = (pp){.rounds = scaled(30000), .mode = i % 3, .wg = &wg};
        CHECK_EQ(tern_chan_new(sizeof(long), 0, &ps[i].ping), 0);
        CHECK_EQ(tern_chan_new(sizeof(long), 0, &ps[i].pong), 0);
        CHECK_EQ(tern_go(pp_echo, &ps[i]), 0);
        CHECK_EQ(tern_go(pp_driver, &ps[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    for (int i = 0; i < PAIRS; i++) {
        tern_chan_free(ps[i].ping);
        tern_chan_free(ps[i].pong);
    }
    return 0;
}

static void unbuffered_handoffs_on_every_p_deliver_each_value_once(void)
{
    run_ok(handoff_main, NULL, 0);
    run_ok(handoff_main, NULL, 1);
}

/* Many senders and receivers on one unbuffered channel, receivers mixing
 * plain receives (sole) with two-case selects (shared tickets) and
 * try-receives: every value arrives exactly once. */
typedef struct crowd {
    tern_chan *ch, *other;      /* other: never ready, a second select case */
    long per;
    atomic_uchar *seen;
    atomic_long got;
    tern_waitgroup senders, receivers;
} crowd;

typedef struct crowd_arg {
    crowd *c;
    int id;
} crowd_arg;

static int crowd_sender(void *arg)
{
    crowd_arg *a = arg;
    for (long i = 0; i < a->c->per; i++) {
        long v = a->id * a->c->per + i;
        CHECK_EQ(tern_chan_send(a->c->ch, &v, NULL), 0);
    }
    tern_waitgroup_done(&a->c->senders);
    return 0;
}

static int crowd_receiver(void *arg)
{
    crowd_arg *a = arg;
    crowd *c = a->c;
    for (long k = 0;; k++) {
        long v = -1, dummy;
        bool ok = false;
        if (a->id % 2 && k % 2) {
            tern_chan_case cs[2] = {{.ch = c->other, .op = TERN_CHAN_RECV, .elem = &dummy},
                                    {.ch = c->ch, .op = TERN_CHAN_RECV, .elem = &v}};
            CHECK_EQ(tern_chan_select(cs, 2, NULL), 1);
            ok = cs[1].ok;
        } else if (k % 5 == 0 && tern_chan_try_recv(c->ch, &v, &ok) == 0) {
            /* got one (or the close) without waiting */
        } else {
            CHECK_EQ(tern_chan_recv(c->ch, &v, &ok, NULL), 0);
        }
        if (!ok)
            break;
        CHECK(v >= 0 && v < 4 * c->per);
        CHECK_EQ(atomic_fetch_add(&c->seen[v], 1), 0);
        atomic_fetch_add(&c->got, 1);
    }
    tern_waitgroup_done(&c->receivers);
    return 0;
}

static int crowd_main(void *arg)
{
    (void)arg;
    crowd c = {.per = scaled(20000), .senders = TERN_WAITGROUP_INIT,
               .receivers = TERN_WAITGROUP_INIT};
    c.seen = calloc((size_t)(4 * c.per), 1);
    CHECK(c.seen);
    CHECK_EQ(tern_chan_new(sizeof(long), 0, &c.ch), 0);
    CHECK_EQ(tern_chan_new(sizeof(long), 0, &c.other), 0);
    crowd_arg as[4], ar[4];
    tern_waitgroup_add(&c.senders, 4);
    tern_waitgroup_add(&c.receivers, 4);
    for (int i = 0; i < 4; i++) {
        ar[i] = (crowd_arg){&c, i};
        CHECK_EQ(tern_go(crowd_receiver, &ar[i]), 0);
        as[i] = (crowd_arg){&c, i};
        CHECK_EQ(tern_go(crowd_sender, &as[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&c.senders, NULL), 0);
    CHECK_EQ(tern_chan_close(c.ch), 0);
    CHECK_EQ(tern_waitgroup_wait(&c.receivers, NULL), 0);
    CHECK_EQ(atomic_load(&c.got), 4 * c.per);
    tern_chan_free(c.ch);
    tern_chan_free(c.other);
    free(c.seen);
    return 0;
}

static void unbuffered_crowd_with_select_and_plain_receivers_loses_nothing(void)
{
    run_ok(crowd_main, NULL, 0);
}

/* ---- select over buffered channels: the lock-free first pass ---------------- */

/* Every case ready every time: each must fire about a quarter of the time
 * (Go's uniform choice), from the first pass alone. */
static int fair_main(void *arg)
{
    (void)arg;
    enum { N = 4 };
    long rounds = 40000;
    tern_chan *ch[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(tern_chan_new(sizeof(long), 4, &ch[i]), 0);
    long hits[N] = {0};
    for (long k = 0; k < rounds; k++) {
        for (int i = 0; i < N; i++) {
            long v = i;
            while (tern_chan_try_send(ch[i], &v) == 0) {
            }
        }
        long v[N];
        tern_chan_case cs[N];
        for (int i = 0; i < N; i++)
            cs[i] = (tern_chan_case){.ch = ch[i], .op = TERN_CHAN_RECV, .elem = &v[i]};
        int r = tern_chan_select(cs, N, NULL);
        CHECK(r >= 0 && r < N);
        CHECK(cs[r].ok);
        CHECK_EQ(v[r], r);
        hits[r]++;
    }
    /* binomial(40000, 1/4): sd 87; 10,000 +- 600 is about 7 sd */
    for (int i = 0; i < N; i++) {
        CHECK(hits[i] > rounds / N - 600);
        CHECK(hits[i] < rounds / N + 600);
    }
    /* a send case among ready receive cases gets its share too */
    for (int i = 0; i < N; i++) {
        long v;
        while (tern_chan_try_recv(ch[i], &v, NULL) == 0) {
        }
    }
    long sends = 0;
    for (long k = 0; k < rounds; k++) {
        long one = 1, v;
        CHECK_EQ(tern_chan_try_send(ch[1], &one), 0);
        tern_chan_case cs[2] = {{.ch = ch[0], .op = TERN_CHAN_SEND, .elem = &one},
                                {.ch = ch[1], .op = TERN_CHAN_RECV, .elem = &v}};
        int r = tern_chan_select(cs, 2, NULL);
        CHECK(r == 0 || r == 1);
        CHECK(cs[r].ok);
        if (r == 0) {
            sends++;
            CHECK_EQ(tern_chan_try_recv(ch[0], &v, NULL), 0);
            CHECK_EQ(tern_chan_try_recv(ch[1], &v, NULL), 0);
        }
        CHECK_EQ(v, 1);
    }
    CHECK(sends > rounds / 2 - 1000 && sends < rounds / 2 + 1000);
    for (int i = 0; i < N; i++)
        tern_chan_free(ch[i]);
    return 0;
}

static void select_over_ready_rings_chooses_uniformly(void)
{
    run_ok(fair_main, NULL, 1);
}

/* Closed rings in the first pass: a receive case fires drained-and-closed
 * with zeroes and ok false, a send case fires with ok false; nil cases
 * never fire; values still queued come before the close. */
static int closed_main(void *arg)
{
    (void)arg;
    tern_chan *a, *b;
    CHECK_EQ(tern_chan_new(sizeof(long), 2, &a), 0);
    CHECK_EQ(tern_chan_new(sizeof(long), 2, &b), 0);
    long v = 5;
    CHECK_EQ(tern_chan_try_send(a, &v), 0);
    CHECK_EQ(tern_chan_close(a), 0);
    long got = -1;
    tern_chan_case cs[2] = {{.ch = NULL, .op = TERN_CHAN_RECV, .elem = &got},
                            {.ch = a, .op = TERN_CHAN_RECV, .elem = &got}};
    CHECK_EQ(tern_chan_select(cs, 2, NULL), 1);
    CHECK(cs[1].ok);
    CHECK_EQ(got, 5);
    got = -1;
    CHECK_EQ(tern_chan_select(cs, 2, NULL), 1);
    CHECK(!cs[1].ok);
    CHECK_EQ(got, 0);
    /* b full and open, a closed: only the send to a can fire */
    for (int i = 0; i < 2; i++)
        CHECK_EQ(tern_chan_try_send(b, &v), 0);
    tern_chan_case ss[2] = {{.ch = b, .op = TERN_CHAN_SEND, .elem = &v},
                            {.ch = a, .op = TERN_CHAN_SEND, .elem = &v}};
    for (int k = 0; k < 100; k++) {
        ss[1].ok = true;
        CHECK_EQ(tern_chan_select(ss, 2, NULL), 1);
        CHECK(!ss[1].ok);
    }
    CHECK_EQ(tern_chan_len(b), 2);
    tern_chan_free(a);
    tern_chan_free(b);
    return 0;
}

static void select_over_closed_rings_fires_with_ok_false(void)
{
    run_ok(closed_main, NULL, 0);
}

/* Producers on tiny rings, several consumers selecting across all of them
 * (and a send case into a sink ring that an extra coroutine drains): each
 * value received exactly once, per-ring FIFO per producer, then every
 * consumer sees the closes. */
enum { RINGS = 3, PER_RING = 2 };

typedef struct multi {
    tern_chan *ring[RINGS], *sink;
    long per;
    atomic_uchar *seen;
    atomic_long got, sunk;
    tern_waitgroup prod, cons, drain;
} multi;

typedef struct multi_arg {
    multi *m;
    int id;                     /* producer: ring * PER_RING + k */
} multi_arg;

static int multi_producer(void *arg)
{
    multi_arg *a = arg;
    tern_chan *ch = a->m->ring[a->id / PER_RING];
    for (long i = 0; i < a->m->per; i++) {
        long v = a->id * a->m->per + i;
        CHECK_EQ(tern_chan_send(ch, &v, NULL), 0);
    }
    tern_waitgroup_done(&a->m->prod);
    return 0;
}

static int multi_consumer(void *arg)
{
    multi *m = arg;
    long last[RINGS * PER_RING];
    for (int i = 0; i < RINGS * PER_RING; i++)
        last[i] = -1;
    int open = RINGS;
    bool closed[RINGS] = {false};
    long token = 1;
    while (open > 0) {
        long v[RINGS];
        tern_chan_case cs[RINGS + 1];
        for (int i = 0; i < RINGS; i++)
            cs[i] = (tern_chan_case){.ch = closed[i] ? NULL : m->ring[i], .op = TERN_CHAN_RECV,
                                     .elem = &v[i]};
        cs[RINGS] = (tern_chan_case){.ch = m->sink, .op = TERN_CHAN_SEND, .elem = &token};
        int r = tern_chan_select(cs, RINGS + 1, NULL);
        CHECK(r >= 0 && r <= RINGS);
        if (r == RINGS) {
            CHECK(cs[r].ok);
            atomic_fetch_add(&m->sunk, 1);
            continue;
        }
        if (!cs[r].ok) {
            closed[r] = true;
            open--;
            continue;
        }
        long p = v[r] / m->per, i = v[r] % m->per;
        CHECK_EQ(p / PER_RING, r);
        CHECK(i > last[p]);
        last[p] = i;
        CHECK_EQ(atomic_fetch_add(&m->seen[v[r]], 1), 0);
        atomic_fetch_add(&m->got, 1);
    }
    tern_waitgroup_done(&m->cons);
    return 0;
}

static int multi_drain(void *arg)
{
    multi *m = arg;
    long v;
    bool ok;
    long n = 0;
    while (tern_chan_recv(m->sink, &v, &ok, NULL) == 0 && ok)
        n++;
    CHECK_EQ(n, atomic_load(&m->sunk));
    tern_waitgroup_done(&m->drain);
    return 0;
}

static int multi_main(void *arg)
{
    (void)arg;
    multi m = {.per = scaled(15000), .prod = TERN_WAITGROUP_INIT, .cons = TERN_WAITGROUP_INIT,
               .drain = TERN_WAITGROUP_INIT};
    long total = RINGS * PER_RING * m.per;
    m.seen = calloc((size_t)total, 1);
    CHECK(m.seen);
    for (int i = 0; i < RINGS; i++)
        CHECK_EQ(tern_chan_new(sizeof(long), 1 + (size_t)i, &m.ring[i]), 0);
    CHECK_EQ(tern_chan_new(sizeof(long), 2, &m.sink), 0);
    tern_waitgroup_add(&m.drain, 1);
    CHECK_EQ(tern_go(multi_drain, &m), 0);
    tern_waitgroup_add(&m.cons, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tern_go(multi_consumer, &m), 0);
    multi_arg pa[RINGS * PER_RING];
    tern_waitgroup_add(&m.prod, RINGS * PER_RING);
    for (int i = 0; i < RINGS * PER_RING; i++) {
        pa[i] = (multi_arg){&m, i};
        CHECK_EQ(tern_go(multi_producer, &pa[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&m.prod, NULL), 0);
    for (int i = 0; i < RINGS; i++)
        CHECK_EQ(tern_chan_close(m.ring[i]), 0);
    CHECK_EQ(tern_waitgroup_wait(&m.cons, NULL), 0);
    CHECK_EQ(tern_chan_close(m.sink), 0);
    CHECK_EQ(tern_waitgroup_wait(&m.drain, NULL), 0);
    CHECK_EQ(atomic_load(&m.got), total);
    for (int i = 0; i < RINGS; i++)
        tern_chan_free(m.ring[i]);
    tern_chan_free(m.sink);
    free(m.seen);
    return 0;
}

static void select_consumers_over_tiny_rings_take_each_value_once(void)
{
    run_ok(multi_main, NULL, 0);
}

/* ---- tern_pool: the frameless fast path under epochs ----------------------- */

typedef struct pobj {
    atomic_int in_use;
    long uses;
} pobj;

static atomic_long pool_made, pool_freed;

static void *pobj_new(void *arg)
{
    (void)arg;
    atomic_fetch_add(&pool_made, 1);
    return calloc(1, sizeof(pobj));
}

static void pobj_free(void *obj, void *arg)
{
    (void)arg;
    CHECK_EQ(atomic_load(&((pobj *)obj)->in_use), 0);
    atomic_fetch_add(&pool_freed, 1);
    free(obj);
}

typedef struct pool_run {
    tern_pool *pool;
    long per;
    tern_waitgroup wg;
} pool_run;

static int pool_user(void *arg)
{
    pool_run *r = arg;
    pobj *held[40];
    for (long i = 0; i < r->per; i++) {
        /* bursts past the local stack's bound, so puts spill and gets
         * refill through the shared stack as well */
        int n = (int)(i % 40) + 1;
        for (int k = 0; k < n; k++) {
            void *o;
            CHECK_EQ(tern_pool_get(r->pool, &o), 0);
            held[k] = o;
            int zero = 0;
            CHECK(atomic_compare_exchange_strong(&held[k]->in_use, &zero, 1));
            held[k]->uses++;
        }
        if (i % 64 == 0)
            tern_yield();       /* move between Ps mid-burst */
        for (int k = n - 1; k >= 0; k--) {
            atomic_store(&held[k]->in_use, 0);
            tern_pool_put(r->pool, held[k]);
        }
        if (i % 500 == 0)
            tern_sleep(TERN_MS);        /* let epochs end between calls */
    }
    tern_waitgroup_done(&r->wg);
    return 0;
}

static int pool_main(void *arg)
{
    (void)arg;
    pool_run r = {.per = scaled(4000), .wg = TERN_WAITGROUP_INIT};
    CHECK_EQ(tern_pool_new(&(tern_pool_options){.new_fn = pobj_new, .free_fn = pobj_free,
                                                 .max_shared = 48, .idle_ns = 2 * TERN_MS},
                           &r.pool),
             0);
    int users = 2 * tern_runtime_procs() + 2;
    tern_waitgroup_add(&r.wg, users);
    for (int i = 0; i < users; i++)
        CHECK_EQ(tern_go(pool_user, &r), 0);
    CHECK_EQ(tern_waitgroup_wait(&r.wg, NULL), 0);
    struct tern_pool_stats st;
    CHECK_EQ(tern_pool_stats(r.pool, &st), 0);
    CHECK_EQ(st.gets, st.puts);
    long want = 0;
    for (long i = 0; i < r.per; i++)
        want += i % 40 + 1;
    CHECK_EQ(st.gets, (uint64_t)(want * users));
    CHECK_EQ(st.news, (uint64_t)atomic_load(&pool_made));
    CHECK_EQ(st.released, (uint64_t)atomic_load(&pool_freed));
    tern_pool_free(r.pool);
    CHECK_EQ(atomic_load(&pool_made), atomic_load(&pool_freed));
    return 0;
}

static void pool_objects_never_shared_across_ps_while_epochs_end(void)
{
    atomic_store(&pool_made, 0);
    atomic_store(&pool_freed, 0);
    run_ok(pool_main, NULL, 0);
    atomic_store(&pool_made, 0);
    atomic_store(&pool_freed, 0);
    run_ok(pool_main, NULL, 1);
}

TESTS(T(unbuffered_handoffs_on_every_p_deliver_each_value_once),
      T(unbuffered_crowd_with_select_and_plain_receivers_loses_nothing),
      T(select_over_ready_rings_chooses_uniformly), T(select_over_closed_rings_fires_with_ok_false),
      T(select_consumers_over_tiny_rings_take_each_value_once),
      T(pool_objects_never_shared_across_ps_while_epochs_end))
