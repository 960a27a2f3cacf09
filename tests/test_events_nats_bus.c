/*
 * test_events_nats_bus.c - the event bus over NATS JetStream
 * (tern_events_jetstream_transport) against a real nats-server -js: groups
 * share a topic's events, type and binary payloads survive, a publish of
 * one event id twice is stored once, a handler's error has the event
 * delivered again with its count, a consumer stopped mid-event has it
 * redelivered after AckWait, an event failing max_deliveries times goes to
 * the dead-letter topic, and a group resumes after its subscription ends.
 */
#include "check.h"

#include <errno.h>
#include <tern/events.h>
#include <tern/nats.h>

#include "events_seen.h"
#include "nats_server.h"

static nats_server srv;

static void stop_server(void)
{
    nats_server_stop(&srv);
}

static void publish(tern_events_bus *bus, const char *topic, const char *id, const void *data, size_t len)
{
    tern_event ev = {.id = id, .topic = topic, .type = "thing.happened", .data = data, .len = len};
    CHECK_EQ(tern_events_publish(bus, &ev, NULL), 0);
}

static int bus_main(void *arg)
{
    (void)arg;
    tern_nats_options no = {.servers = srv.addr};
    tern_nats *nc;
    CHECK_EQ(tern_nats_new(&no, &nc, NULL), 0);
    tern_events_transport t;
    tern_events_jetstream_options bad = {.stream = "A.B"};
    CHECK_EQ(tern_events_jetstream_transport(nc, &bad, &t), -EINVAL);
    CHECK_EQ(tern_events_jetstream_transport(nc, NULL, &t), 0);
    tern_events_bus *bus;
    CHECK_EQ(tern_events_bus_new(&t, NULL, &bus), 0);

    /* two groups: each sees every event once; one id published twice is one event */
    seen *a = seen_new(), *b = seen_new();
    tern_events_sub *sa, *sb;
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, a, &(tern_events_sub_options){.group = "a", .consumers = 2},
                                   &sa, NULL), 0);
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, b, &(tern_events_sub_options){.group = "b"}, &sb, NULL), 0);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        char id[16], p[16];
        snprintf(id, sizeof id, "e%d", i);
        snprintf(p, sizeof p, "p%d", i);
        publish(bus, "orders", id, p, strlen(p));
    }
    publish(bus, "orders", "e3", "p3", 2);          /* again: deduplicated by Nats-Msg-Id */
    bool got_a[N] = {0}, got_b[N] = {0};
    for (int i = 0; i < N; i++) {
        seen_item it = next(a, 5 * TERN_SEC);
        int k = atoi(it.id + 1);
        CHECK(k >= 0 && k < N && !got_a[k]);
        got_a[k] = true;
        CHECK_EQ(atoi(it.payload + 1), k);
        CHECK(strcmp(it.type, "thing.happened") == 0);
        CHECK_EQ(it.attempt, 1);
        it = next(b, 5 * TERN_SEC);
        k = atoi(it.id + 1);
        CHECK(k >= 0 && k < N && !got_b[k]);
        got_b[k] = true;
    }
    CHECK(nothing_within(a, 300 * TERN_MS));
    CHECK(nothing_within(b, 10 * TERN_MS));
    tern_events_sub_free(sa);

    /* group a resumes where it was: only what came after */
    publish(bus, "orders", "later", "p-later", 7);
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, a, &(tern_events_sub_options){.group = "a"}, &sa, NULL), 0);
    CHECK(strcmp(next(a, 5 * TERN_SEC).id, "later") == 0);
    CHECK(strcmp(next(b, 5 * TERN_SEC).id, "later") == 0);
    CHECK(nothing_within(a, 300 * TERN_MS));
    tern_events_sub_free(sa);
    tern_events_sub_free(sb);

    /* a handler's error: delivered again (JetStream's nak), counted */
    seen *s = seen_new();
    s->fail_first = 2;
    tern_events_sub *sub;
    tern_events_sub_options o = {.group = "pay", .ack_timeout_ns = 1 * TERN_SEC, .max_deliveries = 5};
    CHECK_EQ(tern_events_subscribe(bus, "pay", record, s, &o, &sub, NULL), 0);
    const char bin[] = {'x', 0, 'y'};
    publish(bus, "pay", "p1", bin, sizeof bin);
    for (int i = 1; i <= 3; i++) {
        seen_item it = next(s, 5 * TERN_SEC);
        CHECK(strcmp(it.id, "p1") == 0);
        CHECK_EQ(it.attempt, i);
    }
    CHECK(nothing_within(s, 1500 * TERN_MS));
    tern_events_sub_free(sub);

    /* poison: dead-lettered after 3 */
    seen *dead = seen_new();
    tern_events_sub *dsub;
    CHECK_EQ(tern_events_subscribe(bus, "pay.dead", record, dead, &(tern_events_sub_options){.group = "ops"}, &dsub,
                                   NULL), 0);
    s->fail_first = 100;
    o.max_deliveries = 3;
    CHECK_EQ(tern_events_subscribe(bus, "pay", record, s, &o, &sub, NULL), 0);
    publish(bus, "pay", "p2", "poison", 6);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(next(s, 5 * TERN_SEC).attempt, i);
    seen_item d = next(dead, 5 * TERN_SEC);
    CHECK(strcmp(d.id, "p2") == 0);
    CHECK(strcmp(d.payload, "poison") == 0);
    CHECK(nothing_within(s, 1500 * TERN_MS));
    tern_events_sub_free(sub);

    /* a consumer stopped mid-event: redelivered after AckWait */
    s->fail_first = 0;
    s->block = true;
    CHECK_EQ(tern_events_subscribe(bus, "ship", record, s, &o, &sub, NULL), 0);
    publish(bus, "ship", "s1", "parcel", 6);
    CHECK_EQ(next(s, 5 * TERN_SEC).attempt, 1);
    tern_events_sub_free(sub);
    s->block = false;
    CHECK_EQ(tern_events_subscribe(bus, "ship", record, s, &o, &sub, NULL), 0);
    seen_item again = next(s, 5 * TERN_SEC);
    CHECK(strcmp(again.id, "s1") == 0);
    CHECK_EQ(again.attempt, 2);
    CHECK(nothing_within(s, 1500 * TERN_MS));
    tern_events_sub_free(sub);
    tern_events_sub_free(dsub);

    /* a topic that is no subject */
    tern_event bad_ev = {.topic = "has space", .type = "x", .data = "", .len = 0};
    CHECK_EQ(tern_events_publish(bus, &bad_ev, NULL), -EINVAL);

    struct tern_events_bus_stats st;
    CHECK_EQ(tern_events_bus_stats(bus, &st), 0);
    CHECK_EQ(st.dead_lettered, 1);
    seen_free(a);
    seen_free(b);
    seen_free(s);
    seen_free(dead);
    tern_events_bus_free(bus);
    tern_nats_free(nc);
    return 0;
}

static void bus_over_jetstream(void)
{
    atexit(stop_server);
    nats_server_start(&srv);
    run_ok(bus_main, NULL, 2);
}

TESTS(T(bus_over_jetstream))
