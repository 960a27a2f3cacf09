/*
 * test_events_redis.c - the event bus over Redis Streams, against a real
 * redis-server (tests/redis_server.h): groups share a topic's events,
 * binary payloads survive, a handler's error has the event delivered again
 * (XCLAIM IDLE, then XAUTOCLAIM) with its count, a consumer stopped
 * mid-event has it taken over by the group after the ack timeout, and an
 * event failing max_deliveries times goes to the dead-letter stream.
 */
#include "check.h"

#include <errno.h>
#include <tern/events.h>

#include "events_seen.h"
#include "redis_server.h"

static redis_server srv;

static void stop_server(void)
{
    redis_server_stop(&srv);
}

static tern_redis_client *client(void)
{
    static bool once;
    if (!once) {
        once = true;
        atexit(stop_server);
    }
    redis_server_up(&srv);
    tern_redis_client_options o = {.addr = srv.sock};
    tern_redis_client *cl;
    CHECK_EQ(tern_redis_client_new(&o, &cl), 0);
    return cl;
}

static tern_events_bus *redis_bus(tern_redis_client *cl)
{
    tern_events_transport t;
    tern_events_redis_options o = {.block_ns = 50 * TERN_MS};
    CHECK_EQ(tern_events_redis_transport(cl, &o, &t), 0);
    tern_events_bus *bus;
    CHECK_EQ(tern_events_bus_new(&t, NULL, &bus), 0);
    return bus;
}

static void publish(tern_events_bus *bus, const char *topic, const char *id, const void *data, size_t len)
{
    tern_event ev = {.id = id, .topic = topic, .type = "thing.happened", .data = data, .len = len};
    CHECK_EQ(tern_events_publish(bus, &ev, NULL), 0);
}

static int streams_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client();
    tern_events_bus *bus = redis_bus(cl);
    seen *a = seen_new(), *b = seen_new();
    tern_events_sub *sa, *sb;
    /* two consumers in group a, one in b */
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, a, &(tern_events_sub_options){.group = "a", .consumers = 2},
                                   &sa, NULL), 0);
    CHECK_EQ(tern_events_subscribe(bus, "orders", record, b, &(tern_events_sub_options){.group = "b"}, &sb, NULL), 0);
    int n = 30;
    for (int i = 0; i < n; i++) {
        char id[16], p[16];
        snprintf(id, sizeof id, "e%d", i);
        snprintf(p, sizeof p, "p%d", i);
        publish(bus, "orders", id, p, strlen(p));
    }
    bool got_a[30] = {0}, got_b[30] = {0};
    for (int i = 0; i < n; i++) {
        seen_item it = next(a, 5 * TERN_SEC);
        int k = atoi(it.id + 1);
        CHECK(!got_a[k]);
        got_a[k] = true;
        CHECK_EQ(atoi(it.payload + 1), k);
        CHECK(strcmp(it.type, "thing.happened") == 0);
        it = next(b, 5 * TERN_SEC);
        k = atoi(it.id + 1);
        CHECK(!got_b[k]);
        got_b[k] = true;
    }
    CHECK(nothing_within(a, 200 * TERN_MS));
    tern_events_sub_free(sa);
    tern_events_sub_free(sb);

    /* a handler's error: delivered again, counted */
    seen *s = seen_new();
    s->fail_first = 2;
    tern_events_sub *sub;
    tern_events_sub_options o = {.group = "pay", .ack_timeout_ns = 300 * TERN_MS, .max_deliveries = 5};
    CHECK_EQ(tern_events_subscribe(bus, "pay", record, s, &o, &sub, NULL), 0);
    const char bin[] = {'x', 0, 'y'};
    publish(bus, "pay", "p1", bin, sizeof bin);
    for (int i = 1; i <= 3; i++) {
        seen_item it = next(s, 5 * TERN_SEC);
        CHECK(strcmp(it.id, "p1") == 0);
        CHECK_EQ(it.attempt, i);
    }
    CHECK(nothing_within(s, 700 * TERN_MS));
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
    CHECK(nothing_within(s, 700 * TERN_MS));
    tern_events_sub_free(sub);

    /* a consumer stopped mid-event: another of the group takes it over */
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
    CHECK(nothing_within(s, 700 * TERN_MS));
    tern_events_sub_free(sub);
    tern_events_sub_free(dsub);

    struct tern_events_bus_stats st;
    CHECK_EQ(tern_events_bus_stats(bus, &st), 0);
    CHECK_EQ(st.dead_lettered, 1);
    seen_free(a);
    seen_free(b);
    seen_free(s);
    seen_free(dead);
    tern_events_bus_free(bus);
    tern_redis_client_free(cl);
    return 0;
}

static void streams(void)
{
    run_ok(streams_main, NULL, 2);
}

TESTS(T(streams))
