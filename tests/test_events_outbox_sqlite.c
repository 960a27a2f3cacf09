/*
 * test_events_outbox_sqlite.c - the transactional outbox on SQLite: the
 * event exists exactly when the state change committed, the relay
 * publishes in commit order and marks rows sent, a relay stopped mid-batch
 * loses nothing (its published-but-unmarked rows go again), and the
 * idempotent consumer applies each event once although some arrive twice.
 */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <tern/events.h>

static char dir[64];

static void rm_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static tern_sqlite *open_db(const char *name)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/tern-outbox-XXXXXX");
        CHECK(mkdtemp(dir));
        atexit(rm_dir);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    tern_sqlite *db;
    tern_sqlite_options o = {.synchronous_normal = true};
    CHECK_EQ(tern_sqlite_new(path, &o, &db, NULL), 0);
    return db;
}

static int64_t scalar(tern_sqlite *db, const char *sql)
{
    tern_sqlite_result *r;
    CHECK_EQ(tern_sqlite_query(db, sql, NULL, &r, NULL, NULL), 0);
    int64_t v = -1;
    CHECK_EQ(tern_sqlite_result_int64(r, 0, 0, &v), 0);
    tern_sqlite_result_free(r);
    return v;
}

/* ---- the producer: an order and its event in one transaction ---- */

typedef struct order {
    tern_outbox *ob;
    int n;
    bool fail;                  /* fail after writing both: roll back */
} order;

static int place_order(tern_sqlite_tx *tx, tern_ctx *ctx, void *arg)
{
    order *o = arg;
    char n[16], payload[32];
    snprintf(n, sizeof n, "%d", o->n);
    snprintf(payload, sizeof payload, "{\"order\":%d}", o->n);
    int rc = tern_sqlite_tx_exec(tx, "INSERT INTO orders(n) VALUES ($1)",
                                 &(tern_sqlite_params){.n = 1, .values = (const char *const[]){n}}, NULL, ctx);
    if (rc < 0)
        return rc;
    tern_event ev = {.topic = "orders", .type = "order.placed", .data = payload, .len = strlen(payload)};
    rc = tern_outbox_sqlite_add(o->ob, tx, &ev, ctx);
    if (rc < 0)
        return rc;
    return o->fail ? -ECANCELED : 0;
}

/* ---- the consumer: applies each event once to its own database ---- */

typedef struct consumer {
    tern_sqlite *db;
    atomic_int deliveries, applied;
    int last_order;             /* orders arrive in order (checked) */
    atomic_int out_of_order;
} consumer;

typedef struct apply_arg {
    consumer *c;
    const tern_event *ev;
} apply_arg;

static int apply(tern_sqlite_tx *tx, tern_ctx *ctx, void *arg)
{
    apply_arg *a = arg;
    char body[64];
    snprintf(body, sizeof body, "%.*s", (int)a->ev->len, (const char *)a->ev->data);
    return tern_sqlite_tx_exec(tx, "INSERT INTO seen(body) VALUES ($1)",
                               &(tern_sqlite_params){.n = 1, .values = (const char *const[]){body}}, NULL, ctx);
}

static int on_order(const tern_event *ev, int attempt, tern_ctx *ctx, void *arg)
{
    (void)attempt;
    consumer *c = arg;
    atomic_fetch_add(&c->deliveries, 1);
    int n = atoi(strchr((const char *)ev->data, ':') + 1);
    if (n < c->last_order)
        atomic_fetch_add(&c->out_of_order, 1);    /* a replay may repeat, never go back past it */
    c->last_order = n;
    apply_arg a = {c, ev};
    bool applied = false;
    int rc = tern_events_idempotent_sqlite(c->db, "billing", ev, apply, &a, &applied, NULL, ctx);
    if (rc == 0 && applied)
        atomic_fetch_add(&c->applied, 1);
    return rc;
}

/* ---- a transport that stalls after some publishes (a relay stuck
 * mid-batch) ---- */

typedef struct stall {
    tern_events_transport inner;
    int after;
    int silent;                 /* stalls before publishing again; 0: forever */
    atomic_int published, stalls;
    tern_chan *stalled;
} stall;

static int stall_publish(void *self, const tern_event *ev, tern_ctx *ctx)
{
    stall *s = self;
    if (atomic_load(&s->published) >= s->after && (!s->silent || atomic_load(&s->stalls) < s->silent)) {
        int one = 1;
        atomic_fetch_add(&s->stalls, 1);
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

/* The inner transport is the consumer's bus's: a second bus publishing
 * into it, freed without freeing it. */
static const tern_events_transport_ops stall_ops = {
    .name = "stall", .publish = stall_publish, .free = stall_free,
};

static int outbox_main(void *arg)
{
    (void)arg;
    tern_sqlite *shop = open_db("shop"), *billing = open_db("billing");
    CHECK_EQ(tern_sqlite_exec(shop, "CREATE TABLE orders(n INTEGER)", NULL, NULL, NULL, NULL), 0);
    CHECK_EQ(tern_sqlite_exec(billing, "CREATE TABLE seen(body TEXT)", NULL, NULL, NULL, NULL), 0);
    CHECK_EQ(tern_events_idempotent_sqlite_init(billing, NULL), 0);
    CHECK_EQ(tern_events_idempotent_sqlite_init(billing, NULL), 0);     /* twice: fine */
    tern_outbox *ob;
    CHECK_EQ(tern_outbox_sqlite_new(shop, &(tern_outbox_options){.table = "bad name"}, &ob, NULL), -EINVAL);
    CHECK_EQ(tern_outbox_sqlite_new(shop, NULL, &ob, NULL), 0);

    /* the event is written with the order, or not at all */
    int n = (int)(scaled(300) < 40 ? 40 : scaled(300));
    order o = {.ob = ob};
    for (int i = 0; i < n; i++) {
        o.n = i;
        o.fail = i % 10 == 9;
        int rc = tern_sqlite_tx_run(shop, NULL, place_order, &o, NULL, NULL);
        CHECK_EQ(rc, o.fail ? -ECANCELED : 0);
    }
    int good = n - n / 10;
    CHECK_EQ(scalar(shop, "SELECT count(*) FROM orders"), good);
    int64_t pending;
    CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    CHECK_EQ(pending, good);

    /* the consumer */
    tern_events_metrics *m;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    CHECK_EQ(tern_events_metrics_new(reg, &m), 0);
    tern_events_transport t;
    CHECK_EQ(tern_events_inproc_transport(&t), 0);
    tern_events_bus *bus;
    CHECK_EQ(tern_events_bus_new(&t, &(tern_events_bus_options){.metrics = m}, &bus), 0);
    consumer c = {.db = billing, .last_order = -1};
    tern_events_sub *sub;
    CHECK_EQ(tern_events_subscribe(bus, "orders", on_order, &c, NULL, &sub, NULL), 0);

    /* a relay that gets stuck mid-batch, then is stopped */
    stall *st = calloc(1, sizeof *st);
    CHECK(st);
    st->inner = t;
    st->after = 25;
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &st->stalled), 0);
    tern_events_bus *stuck_bus;
    CHECK_EQ(tern_events_bus_new(&(tern_events_transport){&stall_ops, st}, NULL, &stuck_bus), 0);
    tern_outbox_relay *relay;
    CHECK_EQ(tern_outbox_relay_start(ob, stuck_bus, &(tern_outbox_relay_options){.batch = 40}, &relay), 0);
    int x;
    CHECK_EQ(tern_chan_recv(st->stalled, &x, NULL, NULL), 0);
    tern_outbox_relay_stop(relay);
    CHECK_EQ(atomic_load(&st->published), 25);
    /* none of the batch was marked: it was not finished */
    CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    CHECK_EQ(pending, good);
    tern_events_bus_free(stuck_bus);

    /* a working relay publishes everything, the 25 again among them */
    CHECK_EQ(tern_outbox_relay_start(ob, bus, &(tern_outbox_relay_options){.batch = 40, .metrics = m}, &relay), 0);
    int64_t deadline = tern_now() + 20 * TERN_SEC;
    while ((atomic_load(&c.applied) < good || pending > 0) && tern_now() < deadline) {
        tern_sleep(10 * TERN_MS);
        CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    }
    CHECK_EQ(pending, 0);
    while (atomic_load(&c.deliveries) < good + 25 && tern_now() < deadline)
        tern_sleep(10 * TERN_MS);
    CHECK_EQ(atomic_load(&c.applied), good);
    CHECK_EQ(atomic_load(&c.deliveries), good + 25);
    CHECK_EQ(atomic_load(&c.out_of_order), 1);       /* the replay went back to the start, once */
    CHECK_EQ(scalar(billing, "SELECT count(*) FROM seen"), good);
    CHECK_EQ(scalar(billing, "SELECT count(DISTINCT body) FROM seen"), good);
    CHECK_EQ(scalar(billing, "SELECT count(*) FROM processed_events WHERE consumer = 'billing'"), good);
    struct tern_outbox_relay_stats rs;
    CHECK_EQ(tern_outbox_relay_stats(relay, &rs), 0);
    CHECK_EQ(rs.published, (uint64_t)good);
    CHECK(rs.batches >= (uint64_t)(good / 40));
    CHECK(rs.last_lag_ns > 0);

    /* new orders flow while the relay runs */
    o.fail = false;
    o.n = n;
    CHECK_EQ(tern_sqlite_tx_run(shop, NULL, place_order, &o, NULL, NULL), 0);
    while (atomic_load(&c.applied) < good + 1 && tern_now() < deadline)
        tern_sleep(5 * TERN_MS);
    CHECK_EQ(atomic_load(&c.applied), good + 1);
    /* the consumer may apply the event before the relay marks its row
     * sent (publish, then mark); a stop between the two leaves it unsent
     * (to be sent again), which the purge below would not count (seen
     * under TSan) */
    do {
        CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    } while (pending > 0 && tern_now() < deadline && tern_sleep(5 * TERN_MS) == 0);
    CHECK_EQ(pending, 0);
    tern_outbox_relay_stop(relay);
    /* sent rows stay until purged: none is an hour old; all are older than 0 */
    int64_t deleted = -1;
    CHECK_EQ(tern_outbox_purge(ob, 3600 * TERN_SEC, &deleted, NULL), 0);
    CHECK_EQ(deleted, 0);
    CHECK_EQ(tern_outbox_purge(ob, -1, &deleted, NULL), -EINVAL);
    CHECK_EQ(tern_outbox_purge(ob, 0, &deleted, NULL), 0);
    CHECK_EQ(deleted, good + 1);
    CHECK_EQ(scalar(shop, "SELECT count(*) FROM outbox"), 0);

    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(reg, &text, &len), 0);
    char want[96];
    snprintf(want, sizeof want, "tern_events_relay_published_total{outbox=\"outbox\"} %d", good + 1);
    CHECK(strstr(text, want));
    CHECK(strstr(text, "tern_events_relay_lag_seconds_count{outbox=\"outbox\"}"));
    free(text);

    tern_events_sub_free(sub);
    tern_events_bus_free(bus);
    tern_outbox_free(ob);
    tern_events_metrics_free(m);
    tern_metrics_registry_free(reg);
    tern_sqlite_free(shop);
    tern_sqlite_free(billing);
    return 0;
}

static void outbox_relay_idempotent(void)
{
    run_ok(outbox_main, NULL, 2);
}

/* A publish that hears nothing back (a connection dead but not yet found
 * so) ends at the relay's publish_timeout_ns, not at its 20 s round
 * budget: the row goes out again poll_ns later. */
static int silent_main(void *arg)
{
    (void)arg;
    tern_sqlite *shop = open_db("silent"), *billing = open_db("silent-billing");
    CHECK_EQ(tern_sqlite_exec(shop, "CREATE TABLE orders(n INTEGER)", NULL, NULL, NULL, NULL), 0);
    CHECK_EQ(tern_sqlite_exec(billing, "CREATE TABLE seen(body TEXT)", NULL, NULL, NULL, NULL), 0);
    CHECK_EQ(tern_events_idempotent_sqlite_init(billing, NULL), 0);
    tern_outbox *ob;
    CHECK_EQ(tern_outbox_sqlite_new(shop, NULL, &ob, NULL), 0);
    enum { N = 6 };
    order o = {.ob = ob};
    for (o.n = 0; o.n < N; o.n++)
        CHECK_EQ(tern_sqlite_tx_run(shop, NULL, place_order, &o, NULL, NULL), 0);

    tern_events_transport t;
    CHECK_EQ(tern_events_inproc_transport(&t), 0);
    tern_events_bus *bus;
    CHECK_EQ(tern_events_bus_new(&t, NULL, &bus), 0);
    consumer c = {.db = billing, .last_order = -1};
    tern_events_sub *sub;
    CHECK_EQ(tern_events_subscribe(bus, "orders", on_order, &c, NULL, &sub, NULL), 0);
    stall *st = calloc(1, sizeof *st);
    CHECK(st);
    *st = (stall){.inner = t, .after = 2, .silent = 1};
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &st->stalled), 0);
    tern_events_bus *quiet_bus;
    CHECK_EQ(tern_events_bus_new(&(tern_events_transport){&stall_ops, st}, NULL, &quiet_bus), 0);

    int64_t t0 = tern_now();
    tern_outbox_relay *relay;
    tern_outbox_relay_options ro = {.publish_timeout_ns = 150 * TERN_MS};
    CHECK_EQ(tern_outbox_relay_start(ob, quiet_bus, &ro, &relay), 0);
    int64_t pending = N;
    while ((atomic_load(&c.applied) < N || pending > 0) && tern_now() - t0 < 10 * TERN_SEC) {
        tern_sleep(10 * TERN_MS);
        CHECK_EQ(tern_outbox_pending(ob, &pending, NULL), 0);
    }
    int64_t took = tern_now() - t0;
    CHECK_EQ(pending, 0);
    CHECK_EQ(atomic_load(&c.applied), N);
    CHECK_EQ(atomic_load(&st->stalls), 1);
    CHECK(took >= 150 * TERN_MS);
    CHECK(took < 5 * TERN_SEC);         /* the round's budget would be 20 s */
    struct tern_outbox_relay_stats rs;
    CHECK_EQ(tern_outbox_relay_stats(relay, &rs), 0);
    CHECK_EQ(rs.published, (uint64_t)N);
    CHECK_EQ(rs.errors, 1);             /* the silent publish, counted */
    tern_outbox_relay_stop(relay);

    tern_events_bus_free(quiet_bus);
    tern_events_sub_free(sub);
    tern_events_bus_free(bus);
    tern_outbox_free(ob);
    tern_sqlite_free(shop);
    tern_sqlite_free(billing);
    return 0;
}

static void a_silent_publish_is_tried_again(void)
{
    run_ok(silent_main, NULL, 2);
}

/* An event applied once, by hand: the second time is skipped. */
static int inc(tern_sqlite_tx *tx, tern_ctx *ctx, void *arg)
{
    (void)arg;
    return tern_sqlite_tx_exec(tx, "UPDATE counter SET n = n + 1", NULL, NULL, ctx);
}

static int fail_body(tern_sqlite_tx *tx, tern_ctx *ctx, void *arg)
{
    (void)arg;
    CHECK_EQ(tern_sqlite_tx_exec(tx, "UPDATE counter SET n = n + 100", NULL, NULL, ctx), 0);
    return -EIO;
}

static int idempotent_main(void *arg)
{
    (void)arg;
    tern_sqlite *db = open_db("idem");
    CHECK_EQ(tern_sqlite_exec(db, "CREATE TABLE counter(n INTEGER); INSERT INTO counter VALUES (0)", NULL, NULL,
                              NULL, NULL), 0);
    CHECK_EQ(tern_events_idempotent_sqlite_init(db, NULL), 0);
    tern_event ev = {.id = "evt-1", .topic = "t"};
    bool applied;
    /* a failing effect records nothing: the event can be applied later */
    CHECK_EQ(tern_events_idempotent_sqlite(db, "c", &ev, fail_body, NULL, &applied, NULL, NULL), -EIO);
    CHECK(!applied);
    CHECK_EQ(scalar(db, "SELECT n FROM counter"), 0);
    CHECK_EQ(tern_events_idempotent_sqlite(db, "c", &ev, inc, NULL, &applied, NULL, NULL), 0);
    CHECK(applied);
    CHECK_EQ(tern_events_idempotent_sqlite(db, "c", &ev, inc, NULL, &applied, NULL, NULL), 0);
    CHECK(!applied);
    /* another consumer has its own record */
    CHECK_EQ(tern_events_idempotent_sqlite(db, "d", &ev, inc, NULL, &applied, NULL, NULL), 0);
    CHECK(applied);
    CHECK_EQ(scalar(db, "SELECT n FROM counter"), 2);
    tern_event noid = {.topic = "t"};
    CHECK_EQ(tern_events_idempotent_sqlite(db, "c", &noid, inc, NULL, &applied, NULL, NULL), -EINVAL);
    tern_sqlite_free(db);
    return 0;
}

static void idempotent(void)
{
    run_ok(idempotent_main, NULL, 2);
}

TESTS(T(outbox_relay_idempotent), T(a_silent_publish_is_tried_again), T(idempotent))
