/* test_csp_chan_stress.c - the buffered channel's lock-free ring under
 * many producers and consumers on every P: nothing lost or duplicated,
 * per-producer FIFO, parking and waking at tiny capacities, selects over
 * several rings with contexts, close racing blocked senders, and a
 * channel freed the moment its last value is received. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

enum { PRODUCERS = 4, CONSUMERS = 4 };

typedef struct mpmc {
    tern_chan *ch;
    long per;                   /* values per producer */
    tern_waitgroup prod, cons;
    atomic_uchar *seen;         /* one per value */
    atomic_long got;
    int use_select;
} mpmc;

typedef struct prod_arg {
    mpmc *m;
    int id;
} prod_arg;

static int producer(void *arg)
{
    prod_arg *a = arg;
    mpmc *m = a->m;
    for (long i = 0; i < m->per; i++) {
        long v = (long)a->id * m->per + i;
        if (m->use_select && i % 3 == 0) {
            tern_chan_case c = {.ch = m->ch, .op = TERN_CHAN_SEND, .elem = &v};
            CHECK_EQ(tern_chan_select(&c, 1, NULL), 0);
            CHECK(c.ok);
        } else if (i % 7 == 0) {
            while (tern_chan_try_send(m->ch, &v) == -EAGAIN)
                tern_yield();
        } else {
            CHECK_EQ(tern_chan_send(m->ch, &v, NULL), 0);
        }
    }
    tern_waitgroup_done(&m->prod);
    return 0;
}

static int consumer(void *arg)
{
    mpmc *m = arg;
    long last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        last[i] = -1;
    for (long k = 0;; k++) {
        long v;
        bool ok;
        if (m->use_select && k % 2) {
            tern_ctx *ctx;
            CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
            tern_chan_case c = {.ch = m->ch, .op = TERN_CHAN_RECV, .elem = &v};
            int r = tern_chan_select(&c, 1, ctx);
            tern_ctx_free(ctx);
            if (r == -ETIMEDOUT)
                continue;
            CHECK_EQ(r, 0);
            ok = c.ok;
        } else {
            CHECK_EQ(tern_chan_recv(m->ch, &v, &ok, NULL), 0);
        }
        if (!ok)
            break;
        int p = (int)(v / m->per);
        CHECK(p >= 0 && p < PRODUCERS);
        CHECK(v % m->per > last[p]);        /* one producer's values in order */
        last[p] = v % m->per;
        CHECK_EQ(atomic_exchange(&m->seen[v], 1), 0);   /* once */
        atomic_fetch_add(&m->got, 1);
    }
    tern_waitgroup_done(&m->cons);
    return 0;
}

static void run_mpmc(size_t cap, int use_select)
{
    mpmc m = {.per = scaled(50000), .prod = TERN_WAITGROUP_INIT, .cons = TERN_WAITGROUP_INIT,
              .use_select = use_select};
    if (m.per < 100)
        m.per = 100;
    CHECK_EQ(tern_chan_new(sizeof(long), cap, &m.ch), 0);
    m.seen = calloc((size_t)(m.per * PRODUCERS), 1);
    prod_arg pa[PRODUCERS];
    tern_waitgroup_add(&m.cons, CONSUMERS);
    for (int i = 0; i < CONSUMERS; i++)
        CHECK_EQ(tern_go(consumer, &m), 0);
    tern_waitgroup_add(&m.prod, PRODUCERS);
    for (int i = 0; i < PRODUCERS; i++) {
        pa[i] = (prod_arg){&m, i};
        CHECK_EQ(tern_go(producer, &pa[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&m.prod, NULL), 0);
    CHECK_EQ(tern_chan_close(m.ch), 0);
    CHECK_EQ(tern_waitgroup_wait(&m.cons, NULL), 0);
    CHECK_EQ(atomic_load(&m.got), m.per * PRODUCERS);
    CHECK_EQ(tern_chan_len(m.ch), 0);
    free(m.seen);
    tern_chan_free(m.ch);
}

static int mpmc_main(void *arg)
{
    (void)arg;
    run_mpmc(1, 0);
    run_mpmc(3, 0);
    run_mpmc(64, 0);
    run_mpmc(1, 1);
    run_mpmc(5, 1);
    return 0;
}

static void ring_many_producers_consumers_lose_and_repeat_nothing(void)
{
    run_ok(mpmc_main, NULL, 0);
}

/* One select over four tiny rings, fed by four producers. */
typedef struct fan {
    tern_chan *ch[4];
    long per;
    tern_waitgroup wg;
} fan;

typedef struct fan_arg {
    fan *f;
    int i;
} fan_arg;

static int fan_producer(void *arg)
{
    fan_arg *a = arg;
    for (long k = 0; k < a->f->per; k++) {
        long v = a->i;
        CHECK_EQ(tern_chan_send(a->f->ch[a->i], &v, NULL), 0);
    }
    tern_waitgroup_done(&a->f->wg);
    return 0;
}

static int fan_main(void *arg)
{
    (void)arg;
    fan f = {.per = scaled(40000), .wg = TERN_WAITGROUP_INIT};
    if (f.per < 100)
        f.per = 100;
    fan_arg fa[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(tern_chan_new(sizeof(long), (size_t)i + 1, &f.ch[i]), 0);
    tern_waitgroup_add(&f.wg, 4);
    for (int i = 0; i < 4; i++) {
        fa[i] = (fan_arg){&f, i};
        CHECK_EQ(tern_go(fan_producer, &fa[i]), 0);
    }
    long count[4] = {0}, v[4];
    for (long k = 0; k < 4 * f.per; k++) {
        tern_chan_case cs[4];
        for (int i = 0; i < 4; i++)
            cs[i] = (tern_chan_case){.ch = f.ch[i], .op = TERN_CHAN_RECV, .elem = &v[i]};
        int r = tern_chan_select(cs, 4, NULL);
        CHECK(r >= 0 && r < 4);
        CHECK(cs[r].ok);
        CHECK_EQ(v[r], r);
        count[r]++;
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(count[i], f.per);
    CHECK_EQ(tern_waitgroup_wait(&f.wg, NULL), 0);
    for (int i = 0; i < 4; i++)
        tern_chan_free(f.ch[i]);
    return 0;
}

static void select_over_tiny_rings_takes_every_value(void)
{
    run_ok(fan_main, NULL, 0);
}

/* Senders blocked on a full ring when it closes: each value is either
 * received or refused with -EPIPE, never both, never neither. */
typedef struct closing {
    tern_chan *ch;
    atomic_long sent, refused;
    tern_waitgroup wg;
} closing;

static int blocked_sender(void *arg)
{
    closing *c = arg;
    for (int i = 0; i < 50; i++) {
        long v = 1;
        int r = tern_chan_send(c->ch, &v, NULL);
        if (r == 0) {
            atomic_fetch_add(&c->sent, 1);
        } else {
            CHECK_EQ(r, -EPIPE);
            atomic_fetch_add(&c->refused, 1);
        }
    }
    tern_waitgroup_done(&c->wg);
    return 0;
}

static int close_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        closing c = {.wg = TERN_WAITGROUP_INIT};
        CHECK_EQ(tern_chan_new(sizeof(long), 2, &c.ch), 0);
        tern_waitgroup_add(&c.wg, 8);
        for (int i = 0; i < 8; i++)
            CHECK_EQ(tern_go(blocked_sender, &c), 0);
        long got = 0, v;
        bool ok;
        for (int i = 0; i < 30 + round; i++) {
            CHECK_EQ(tern_chan_recv(c.ch, &v, &ok, NULL), 0);
            CHECK(ok);
            got++;
        }
        CHECK_EQ(tern_chan_close(c.ch), 0);
        CHECK_EQ(tern_chan_close(c.ch), -EALREADY);
        while (tern_chan_recv(c.ch, &v, &ok, NULL) == 0 && ok)
            got++;
        CHECK_EQ(tern_waitgroup_wait(&c.wg, NULL), 0);
        CHECK_EQ(atomic_load(&c.sent), got);
        CHECK_EQ(atomic_load(&c.sent) + atomic_load(&c.refused), 8 * 50);
        tern_chan_free(c.ch);
    }
    return 0;
}

static void close_races_blocked_senders_without_losing_a_value(void)
{
    run_ok(close_main, NULL, 0);
}

/* The receiver frees the ring the moment it has the last value, while
 * the sender may still be inside its send (ASan catches a late touch). */
static int last_sender(void *arg)
{
    tern_chan *ch = arg;
    for (long i = 0; i < 3; i++)
        CHECK_EQ(tern_chan_send(ch, &i, NULL), 0);
    return 0;
}

static int free_main(void *arg)
{
    (void)arg;
    long n = scaled(20000);
    for (long k = 0; k < n; k++) {
        tern_chan *ch;
        CHECK_EQ(tern_chan_new(sizeof(long), 1 + (size_t)(k % 3), &ch), 0);
        CHECK_EQ(tern_go(last_sender, ch), 0);
        for (long i = 0; i < 3; i++) {
            long v;
            bool ok;
            CHECK_EQ(tern_chan_recv(ch, &v, &ok, NULL), 0);
            CHECK(ok);
            CHECK_EQ(v, i);
        }
        tern_chan_free(ch);
    }
    return 0;
}

static void ring_freed_as_its_last_value_arrives(void)
{
    run_ok(free_main, NULL, 0);
}

TESTS(T(ring_many_producers_consumers_lose_and_repeat_nothing),
      T(select_over_tiny_rings_takes_every_value),
      T(close_races_blocked_senders_without_losing_a_value), T(ring_freed_as_its_last_value_arrives))
