/*
 * test_events_bus.c - the event bus over the in-process transport: every
 * group gets every event and its members share them, a handler's error
 * gives the event back, a consumer stopped mid-event has it redelivered to
 * the group after the ack timeout, an event failing max_deliveries times
 * goes to the dead-letter topic, and the metrics count it all.
 */
#include "check.h"
#include "events_seen.h"

#include <errno.h>
#include <stdatomic.h>
#include <tern/events.h>

static tern_events_bus *inproc_bus(tern_events_metrics *m)
{
    tern_events_transport t;
    CHECK_EQ(tern_events_inproc_transport(&t), 0);
    tern_events_bus *bus;
    tern_events_bus_options o = {.name = "test", .metrics = m};
    CHECK_EQ(tern_events_bus_new(&t, &o, &bus), 0);
    return bus;
}

static void publish(tern_events_bus *bus, const char *topic, const char *id, const char *payload)
{
    tern_event ev = {.id = id, .topic = topic, .type = "thing.happened", .data = payload,
                     .len = strlen(payload)};
    CHECK_EQ(tern_events_publish(bus, &ev, NULL), 0);
}

/* ---- groups ---- */

static int groups_main(void *arg)
{
    (void)arg;
    tern_events_bus *bus = inproc_bus(NULL);
    seen *a = seen_new(), *b = seen_new();
    tern_events_sub *sa1, *sa2, *sb;
    tern_events_sub_options ga = {.group = "a"}, gb = {.group = "b"};
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, a, &ga, &sa1, NULL), 0);
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, a, &ga, &sa2, NULL), 0);
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, b, &gb, &sb, NULL), 0);
    int n = 50;
    for (int i = 0; i < n; i++) {
        char id[16], p[16];
        snprintf(id, sizeof id, "e%d", i);
        snprintf(p, sizeof p, "p%d", i);
        publish(bus, "orders", id, p);
    }
    publish(bus, "other", "x1", "not ours");
    /* group a's two members share the events; group b gets them all too */
    bool got_a[50] = {0}, got_b[50] = {0};
    for (int i = 0; i < n; i++) {
        seen_item it = next(a, 5 * TERN_SEC);
        int k = atoi(it.id + 1);
        CHECK(!got_a[k]);
        got_a[k] = true;
        CHECK_EQ(it.attempt, 1);
        CHECK_EQ(atoi(it.payload + 1), k);
        CHECK(strcmp(it.type, "thing.happened") == 0);
        it = next(b, 5 * TERN_SEC);
        k = atoi(it.id + 1);
        CHECK(!got_b[k]);
        got_b[k] = true;
    }
    CHECK(nothing_within(a, 50 * TERN_MS));
    CHECK(nothing_within(b, 10 * TERN_MS));
    /* an id is made when none is given */
    tern_event ev = {.topic = "orders", .data = "z", .len = 1};
    CHECK_EQ(tern_events_publish(bus, &ev, NULL), 0);
    seen_item it = next(b, 5 * TERN_SEC);
    CHECK_EQ(strlen(it.id), 32);
    CHECK(strcmp(it.type, "") == 0);
    next(a, 5 * TERN_SEC);
    /* bad events */
    tern_event bad = {.topic = "", .data = "z", .len = 1};
    CHECK_EQ(tern_events_publish(bus, &bad, NULL), -EINVAL);
    struct tern_events_bus_stats st;
    CHECK_EQ(tern_events_bus_stats(bus, &st), 0);
    CHECK_EQ(st.published, (uint64_t)n + 2);
    CHECK_EQ(st.delivered, 2 * (uint64_t)n + 2);
    CHECK_EQ(st.redelivered, 0);
    tern_events_sub_free(sa1);
    tern_events_sub_free(sa2);
    tern_events_sub_free(sb);
    CHECK_EQ(tern_events_bus_stats(bus, &st), 0);
    CHECK_EQ(st.acked, 2 * (uint64_t)n + 2);
    seen_free(a);
    seen_free(b);
    tern_events_bus_free(bus);
    return 0;
}

static void groups(void)
{
    run_ok(groups_main, NULL, 2);
}

/* ---- redelivery and dead letters ---- */

static int redelivery_main(void *arg)
{
    (void)arg;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern_events_metrics *m;
    CHECK_EQ(tern_events_metrics_new(reg, &m), 0);
    tern_events_bus *bus = inproc_bus(m);

    /* an error gives the event back: delivered again at once */
    seen *s = seen_new();
    s->fail_first = 2;
    tern_events_sub *sub;
    tern_events_sub_options o = {.max_deliveries = 5};
    CHECK_EQ(tern_events_subscribe(bus, "pay", record, s, &o, &sub, NULL), 0);
    publish(bus, "pay", "p1", "x");
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(next(s, 5 * TERN_SEC).attempt, i);
    CHECK(nothing_within(s, 50 * TERN_MS));
    tern_events_sub_free(sub);

    /* failing max_deliveries times: dead-lettered, and the dead-letter
     * topic can be consumed */
    seen *dead = seen_new();
    tern_events_sub *dsub;
    CHECK_EQ(tern_events_subscribe(bus, "pay.dead", record, dead, NULL, &dsub, NULL), 0);
    s->fail_first = 100;
    o.max_deliveries = 3;
    CHECK_EQ(tern_events_subscribe(bus, "pay", record, s, &o, &sub, NULL), 0);
    publish(bus, "pay", "p2", "poison");
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(next(s, 5 * TERN_SEC).attempt, i);
    seen_item d = next(dead, 5 * TERN_SEC);
    CHECK(strcmp(d.id, "p2") == 0);
    CHECK(strcmp(d.payload, "poison") == 0);
    CHECK(nothing_within(s, 50 * TERN_MS));
    tern_events_sub_free(sub);

    /* a consumer stopped mid-event: the group gets it again after the ack
     * timeout, as attempt 2 */
    s->fail_first = 0;
    s->block = true;
    tern_events_sub_options slow = {.group = "g", .ack_timeout_ns = 200 * TERN_MS};
    CHECK_EQ(tern_events_subscribe(bus, "ship", record, s, &slow, &sub, NULL), 0);
    publish(bus, "ship", "s1", "parcel");
    CHECK_EQ(next(s, 5 * TERN_SEC).attempt, 1);
    tern_events_sub_free(sub);          /* dies holding s1 */
    s->block = false;
    CHECK_EQ(tern_events_subscribe(bus, "ship", record, s, &slow, &sub, NULL), 0);
    int64_t t0 = tern_now();
    seen_item again = next(s, 5 * TERN_SEC);
    CHECK(strcmp(again.id, "s1") == 0);
    CHECK_EQ(again.attempt, 2);
    CHECK(tern_now() - t0 >= 100 * TERN_MS);
    CHECK(nothing_within(s, 300 * TERN_MS));     /* acknowledged: not again */
    tern_events_sub_free(sub);
    tern_events_sub_free(dsub);

    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(reg, &text, &len), 0);
    CHECK(strstr(text, "tern_events_published_total{bus=\"test\",topic=\"pay\"} 2"));
    CHECK(strstr(text, "tern_events_published_total{bus=\"test\",topic=\"pay.dead\"} 1"));
    CHECK(strstr(text, "tern_events_dead_lettered_total{bus=\"test\",topic=\"pay\"} 1"));
    CHECK(strstr(text, "tern_events_delivered_total{bus=\"test\",topic=\"pay\"} 6"));
    CHECK(strstr(text, "tern_events_redelivered_total{bus=\"test\",topic=\"pay\"} 4"));
    CHECK(strstr(text, "tern_events_redelivered_total{bus=\"test\",topic=\"ship\"} 1"));
    free(text);
    seen_free(s);
    seen_free(dead);
    tern_events_bus_free(bus);
    tern_events_metrics_free(m);
    tern_metrics_registry_free(reg);
    return 0;
}

static void redelivery(void)
{
    run_ok(redelivery_main, NULL, 2);
}

TESTS(T(groups), T(redelivery))
