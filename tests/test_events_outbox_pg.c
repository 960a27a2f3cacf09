/*
 * test_events_outbox_pg.c - the transactional outbox and the idempotent
 * consumer on a real PostgreSQL (tests/pg_fixture.h): the event commits
 * with the state change or not at all, bytes of any value survive the
 * bytea round trip, a relay stopped mid-batch loses nothing, and the
 * consumer applies each event once although some arrive twice.
 */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <tern/events.h>

#include "pg_fixture.h"

static tern_pg_pool *pool_new(void)
{
    const pg_fixture *fx = pg_fixture_start();
    tern_pg_pool *p;
    CHECK_EQ(tern_pg_pool_new(fx->unix_sock, &(tern_pg_pool_options){.max_conns = 8}, &p), 0);
    return p;
}

static int64_t scalar(tern_pg_pool *p, const char *sql)
{
    tern_pg_result *r;
    CHECK_EQ(tern_pg_pool_query(p, sql, NULL, &r, NULL, NULL), 0);
    int64_t v = -1;
    CHECK_EQ(tern_pg_result_int64(r, 0, 0, &v), 0);
    tern_pg_result_free(r);
    return v;
}

typedef struct order {
    tern_outbox *ob;
    int n;
    bool fail;
} order;

static int place_order(tern_pg_conn *c, tern_ctx *ctx, void *arg)
{
    order *o = arg;
    char n[16];
    snprintf(n, sizeof n, "%d", o->n);
    int rc = tern_pg_exec(c, "INSERT INTO orders(n) VALUES ($1)",
                          &(tern_pg_params){.n = 1, .values = (const char *const[]){n}}, NULL, ctx);
    if (rc < 0)
        return rc;
    /* binary payload: a NUL and a byte over 127 in it */
    unsigned char payload[6] = {'o', 0, 0xff, (unsigned char)(o->n >> 8), (unsigned char)o->n, '!'};
    tern_event ev = {.topic = "orders", .type = "order.placed", .data = payload, .len = sizeof payload};
    rc = tern_outbox_pg_add(o->ob, c, &ev, ctx);
    if (rc < 0)
        return rc;
    return o->fail ? -ECANCELED : 0;
}

typedef struct consumer {
    tern_pg_pool *pool;
    atomic_int deliveries, applied, bad_payload;
} consumer;

typedef struct apply_arg {
    const tern_event *ev;
} apply_arg;

static int apply(tern_pg_conn *c, tern_ctx *ctx, void *arg)
{
    apply_arg *a = arg;
    const unsigned char *d = a->ev->data;
    char n[16];
    snprintf(n, sizeof n, "%d", d[3] << 8 | d[4]);
    return tern_pg_exec(c, "INSERT INTO seen(n) VALUES ($1)",
                        &(tern_pg_params){.n = 1, .values = (const char *const[]){n}}, NULL, ctx);
}

static int on_order(const tern_event *ev, int attempt, tern_ctx *ctx, void *arg)
{
    (void)attempt;
    consumer *c = arg;
    atomic_fetch_add(&c->deliveries, 1);
    const unsigned char *d = ev->data;
    if (ev->len != 6 || d[0] != 'o' || d[1] != 0 || d[2] != 0xff || d[5] != '!' ||
        strcmp(ev->type, "order.placed") != 0)
        atomic_fetch_add(&c->bad_payload, 1);
    apply_arg a = {ev};
    bool applied = false;
    int rc = tern_events_idempotent_pg(c->pool, "billing", ev, apply, &a, &applied, NULL, ctx);
    if (rc == 0 && applied)
        atomic_fetch_add(&c->applied, 1);
    return rc;
}

typedef struct stall {
    tern_events_transport inner;
    int after;
    atomic_int published;
    tern_chan *stalled;
} stall;

static int stall_publish(void *self, const tern_event *ev, tern_ctx *ctx)
{
    stall *s = self;
    if (atomic_load(&s->published) >= s->after) {
        int one = 1;
        tern_chan_try_send(s->stalled, &one);
        return tern_ctx_sleep(60 * TERN_SEC, ctx) < 0 ? tern_ctx_err(ctx) : -EIO;
    }
    int rc = s->inner.ops->publish(s->inner.self, ev, ctx);
    if (rc == 0)
        atomic_fetch_add(&s->published, 1);
    return rc;
}

static void stall_free(void *self)
{
    stall *s = self;
    tern_chan_free(s->stalled);
    free(s);
}

static const tern_events_transport_ops stall_ops = {.name = "stall", .publish = stall_publish, .free = stall_free};

static int outbox_main(void *arg)
{
    (void)arg;
    tern_pg_pool *p = pool_new();
    tern_pg_result *r;
    CHECK_EQ(tern_pg_pool_query(p, "CREATE TABLE orders(n INT); CREATE TABLE seen(n INT)", NULL, &r, NULL, NULL),
             0);
    tern_pg_result_free(r);
    CHECK_EQ(tern_events_idempotent_pg_init(p, NULL), 0);
    tern_outbox *ob;
    CHECK_EQ(tern_outbox_pg_new(p, &(tern_outbox_options){.table = "x;drop"}, &ob, NULL), -EINVAL);
    CHECK_EQ(tern_outbox_pg_new(p, NULL, &ob, NULL), 0);
    int n = 60, good = n - n / 10;
    order o = {.ob = ob};
    for (int i = 0; i < n; i++) {
        o.n = i;
        o.fail = i % 10 == 9;
        CHECK_EQ(tern_pg_tx_run(p, NULL, place_order, &o, NULL, NULL), o.fail ? -ECANCELED : 0);
    }
    CHECK_EQ(scalar(p, "SELECT count(*) FROM orders"), good);
    int64_t pending;
    CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    CHECK_EQ(pending, good);

    tern_events_transport t;
    CHECK_EQ(tern_events_inproc_transport(&t), 0);
    tern_events_bus *bus;
    CHECK_EQ(tern_events_bus_new(&t, NULL, &bus), 0);
    consumer c = {.pool = p};
    tern_events_sub *sub;
    CHECK_EQ(tern_events_subscribe(bus, "orders", on_order, &c, NULL, &sub, NULL), 0);

    /* stuck mid-batch, stopped: nothing marked */
    stall *st = calloc(1, sizeof *st);
    CHECK(st);
    st->inner = t;
    st->after = 10;
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &st->stalled), 0);
    tern_events_bus *stuck;
    CHECK_EQ(tern_events_bus_new(&(tern_events_transport){&stall_ops, st}, NULL, &stuck), 0);
    tern_outbox_relay *relay;
    CHECK_EQ(tern_outbox_relay_start(ob, stuck, &(tern_outbox_relay_options){.batch = 20}, &relay), 0);
    int x;
    CHECK_EQ(tern_chan_recv(st->stalled, &x, NULL, NULL), 0);
    tern_outbox_relay_stop(relay);
    CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    CHECK_EQ(pending, good);
    tern_events_bus_free(stuck);

    CHECK_EQ(tern_outbox_relay_start(ob, bus, &(tern_outbox_relay_options){.batch = 20}, &relay), 0);
    int64_t deadline = tern_now() + 30 * TERN_SEC;
    while ((atomic_load(&c.applied) < good || atomic_load(&c.deliveries) < good + 10) && tern_now() < deadline)
        tern_sleep(10 * TERN_MS);
    tern_outbox_relay_stop(relay);
    CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    CHECK_EQ(pending, 0);
    CHECK_EQ(atomic_load(&c.applied), good);
    CHECK_EQ(atomic_load(&c.deliveries), good + 10);
    CHECK_EQ(atomic_load(&c.bad_payload), 0);
    CHECK_EQ(scalar(p, "SELECT count(*) FROM seen"), good);
    CHECK_EQ(scalar(p, "SELECT count(DISTINCT n) FROM seen"), good);
    CHECK_EQ(scalar(p, "SELECT count(*) FROM processed_events"), good);
    int64_t deleted = -1;
    CHECK_EQ(tern_outbox_purge(ob, 3600 * TERN_SEC, &deleted, NULL), 0);
    CHECK_EQ(deleted, 0);
    CHECK_EQ(tern_outbox_purge(ob, 0, &deleted, NULL), 0);
    CHECK_EQ(deleted, good);
    CHECK_EQ(scalar(p, "SELECT count(*) FROM outbox"), 0);
    tern_events_sub_free(sub);
    tern_events_bus_free(bus);
    tern_outbox_free(ob);
    tern_pg_pool_free(p);
    return 0;
}

static void outbox_relay_idempotent(void)
{
    run_ok(outbox_main, NULL, 2);
}

/* ---- replicas: two processes' relays on one outbox table ---- */

typedef struct counts {
    atomic_int total;
    atomic_int seen[400];           /* deliveries per event number */
} counts;

static int count_event(const tern_event *ev, int attempt, tern_ctx *ctx, void *arg)
{
    (void)attempt;
    (void)ctx;
    counts *c = arg;
    int k = -1;
    if (ev->len == sizeof k)
        memcpy(&k, ev->data, sizeof k);     /* the payload is not aligned */
    if (k >= 0 && k < 400)
        atomic_fetch_add(&c->seen[k], 1);
    atomic_fetch_add(&c->total, 1);
    return 0;
}

static int add_event(tern_pg_conn *c, tern_ctx *ctx, void *arg)
{
    order *o = arg;
    tern_event ev = {.topic = "replicated", .type = "n", .data = &o->n, .len = sizeof o->n};
    return tern_outbox_pg_add(o->ob, c, &ev, ctx);
}

static int replicas_main(void *arg)
{
    (void)arg;
    /* two pools and two outbox objects on one table: two processes as far
     * as the claims can tell */
    tern_pg_pool *p1 = pool_new(), *p2 = pool_new();
    /* a table made before claims existed: the outbox adds their columns */
    tern_pg_result *r = NULL;
    CHECK_EQ(tern_pg_pool_query(p1,
                                "CREATE TABLE outbox_replicas(seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                                "topic TEXT NOT NULL, type TEXT NOT NULL, payload BYTEA NOT NULL, "
                                "created_ns BIGINT NOT NULL, sent_ns BIGINT)",
                                NULL, &r, NULL, NULL),
             0);
    tern_pg_result_free(r);
    tern_outbox *ob1, *ob2;
    tern_outbox_options oo = {.table = "outbox_replicas"};
    CHECK_EQ(tern_outbox_pg_new(p1, &oo, &ob1, NULL), 0);
    CHECK_EQ(tern_outbox_pg_new(p2, &oo, &ob2, NULL), 0);
    CHECK_EQ(scalar(p1, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'outbox_replicas' "
                        "AND column_name IN ('claim_until', 'claimed_by')"),
             2);
    tern_events_transport t;
    CHECK_EQ(tern_events_inproc_transport(&t), 0);
    tern_events_bus *bus;
    CHECK_EQ(tern_events_bus_new(&t, NULL, &bus), 0);
    counts *c = calloc(1, sizeof *c);
    CHECK(c);
    tern_events_sub *sub;
    CHECK_EQ(tern_events_subscribe(bus, "replicated", count_event, c, NULL, &sub, NULL), 0);
    /* both relays run while the rows are written, in small batches, so
     * that their rounds overlap all the time */
    tern_outbox_relay *r1, *r2;
    tern_outbox_relay_options ro = {.batch = 7, .poll_ns = 1 * TERN_MS};
    CHECK_EQ(tern_outbox_relay_start(ob1, bus, &ro, &r1), 0);
    CHECK_EQ(tern_outbox_relay_start(ob2, bus, &ro, &r2), 0);
    const int n = 400;
    order o = {.ob = ob1};
    for (int i = 0; i < n; i++) {
        o.n = i;
        CHECK_EQ(tern_pg_tx_run(i % 2 ? p2 : p1, NULL, add_event, &o, NULL, NULL), 0);
    }
    int64_t pending = -1, deadline = tern_now() + 30 * TERN_SEC;
    while (tern_now() < deadline) {
        CHECK_EQ(tern_outbox_pending(ob1, &pending, NULL), 0);
        if (pending == 0 && atomic_load(&c->total) >= n)
            break;
        tern_sleep(10 * TERN_MS);
    }
    tern_sleep(50 * TERN_MS);       /* a duplicate would arrive by now */
    tern_outbox_relay_stop(r1);
    tern_outbox_relay_stop(r2);
    CHECK_EQ(pending, 0);
    int twice = 0, missing = 0;
    for (int i = 0; i < n; i++) {
        twice += atomic_load(&c->seen[i]) > 1;
        missing += atomic_load(&c->seen[i]) == 0;
    }
    fprintf(stderr, "replicas: %d events, %d delivered, %d twice, %d missing\n", n, atomic_load(&c->total), twice,
            missing);
    CHECK_EQ(missing, 0);
    CHECK_EQ(twice, 0);
    CHECK_EQ(atomic_load(&c->total), n);
    tern_events_sub_free(sub);
    tern_events_bus_free(bus);
    free(c);
    tern_outbox_free(ob1);
    tern_outbox_free(ob2);
    tern_pg_pool_free(p1);
    tern_pg_pool_free(p2);
    return 0;
}

static void outbox_replicas_publish_once(void)
{
    run_ok(replicas_main, NULL, 2);
}

TESTS(T(outbox_relay_idempotent), T(outbox_replicas_publish_once))
