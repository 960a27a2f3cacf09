/*
 * test_data_redis_events.c - Streams with a consumer group and pub/sub
 * against a real redis-server.
 */
#include "check.h"

#include <errno.h>
#include <tern/redis.h>

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

static const char *str(const tern_redis_reply *r)
{
    return tern_redis_reply_str(r, NULL);
}

/* The id and first field value of entry i of an XREADGROUP reply. */
static const tern_redis_reply *read_entry(const tern_redis_reply *r, size_t i)
{
    CHECK_EQ(tern_redis_reply_len(r), 1);
    const tern_redis_reply *s = tern_redis_reply_at(r, 0);
    CHECK(strcmp(str(tern_redis_reply_at(s, 0)), "orders") == 0);
    return tern_redis_reply_at(tern_redis_reply_at(s, 1), i);
}

static int streams_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client();
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "DEL orders"), 0);
    CHECK_EQ(tern_redis_xgroup_create(cl, "orders", "billing", "$", NULL), 0);
    CHECK_EQ(tern_redis_xgroup_create(cl, "orders", "billing", "$", NULL), -EEXIST);

    /* Nothing yet: a bounded BLOCK comes back empty. */
    tern_redis_reply *r;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_redis_xreadgroup(cl, "orders", "billing", "c1", 10, 50 * TERN_MS, &r, NULL),
             -ENOENT);
    CHECK(r == NULL);
    CHECK(tern_now() - t0 >= 45 * TERN_MS);

    char id1[TERN_REDIS_ID_MAX], id2[TERN_REDIS_ID_MAX];
    const char *kv1[] = {"order", "o-1"};
    const char *kv2[] = {"order", "o-2"};
    CHECK_EQ(tern_redis_xadd(cl, "orders", 1, kv1, id1, NULL), 0);
    CHECK_EQ(tern_redis_xadd(cl, "orders", 1, kv2, id2, NULL), 0);
    CHECK(strchr(id1, '-') != NULL && strcmp(id1, id2) != 0);

    /* c1 reads both, acks the first and "dies" holding the second. */
    CHECK_EQ(tern_redis_xreadgroup(cl, "orders", "billing", "c1", 10, TERN_SEC, &r, NULL), 0);
    const tern_redis_reply *e1 = read_entry(r, 0), *e2 = read_entry(r, 1);
    CHECK(strcmp(str(tern_redis_reply_at(e1, 0)), id1) == 0);
    CHECK(strcmp(str(tern_redis_reply_at(tern_redis_reply_at(e1, 1), 1)), "o-1") == 0);
    CHECK(strcmp(str(tern_redis_reply_at(e2, 0)), id2) == 0);
    tern_redis_reply_free(r);
    CHECK_EQ(tern_redis_xack(cl, "orders", "billing", id1, NULL), 0);
    CHECK_EQ(tern_redis_xack(cl, "orders", "billing", id1, NULL), -ENOENT);

    /* Not idle long enough: nothing to claim yet. */
    CHECK_EQ(tern_redis_xautoclaim(cl, "orders", "billing", "c2", 200 * TERN_MS, "0-0", 10, &r,
                                   NULL), 0);
    CHECK_EQ(tern_redis_reply_len(tern_redis_reply_at(r, 1)), 0);
    tern_redis_reply_free(r);
    tern_sleep(250 * TERN_MS);
    /* Now c2 takes over the unacknowledged one, and only it. */
    CHECK_EQ(tern_redis_xautoclaim(cl, "orders", "billing", "c2", 200 * TERN_MS, "0-0", 10, &r,
                                   NULL), 0);
    const tern_redis_reply *claimed = tern_redis_reply_at(r, 1);
    CHECK_EQ(tern_redis_reply_len(claimed), 1);
    CHECK(strcmp(str(tern_redis_reply_at(tern_redis_reply_at(claimed, 0), 0)), id2) == 0);
    tern_redis_reply_free(r);
    CHECK_EQ(tern_redis_xack(cl, "orders", "billing", id2, NULL), 0);
    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "XPENDING orders billing"), 0);
    CHECK_EQ(tern_redis_reply_int(tern_redis_reply_at(r, 0)), 0);
    tern_redis_reply_free(r);

    /* A consumer's ctx ends its BLOCK; the next read is still in step. */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    t0 = tern_now();
    CHECK_EQ(tern_redis_xreadgroup(cl, "orders", "billing", "c1", 1, 5 * TERN_SEC, &r, ctx),
             -ETIMEDOUT);
    CHECK(tern_now() - t0 < 500 * TERN_MS);
    tern_ctx_free(ctx);
    const char *kv3[] = {"order", "o-3"};
    CHECK_EQ(tern_redis_xadd(cl, "orders", 1, kv3, NULL, NULL), 0);
    CHECK_EQ(tern_redis_xreadgroup(cl, "orders", "billing", "c1", 10, TERN_SEC, &r, NULL), 0);
    CHECK(strcmp(str(tern_redis_reply_at(tern_redis_reply_at(read_entry(r, 0), 1), 1)), "o-3") == 0);
    tern_redis_reply_free(r);
    tern_redis_client_free(cl);
    return 0;
}

static void stream_entry_not_acked_is_reclaimed_by_xautoclaim(void)
{
    run_ok(streams_main, NULL, 2);
}

static int pubsub_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client();
    const char *chans[] = {"news", "alerts"};
    tern_redis_sub *sub;
    CHECK_EQ(tern_redis_subscribe(cl, chans, 2, 16, &sub, NULL), 0);
    int64_t n;
    CHECK_EQ(tern_redis_publish(cl, "news", "hello", 5, &n, NULL), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(tern_redis_publish(cl, "other", "x", 1, &n, NULL), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(tern_redis_publish(cl, "alerts", "b\0n", 3, &n, NULL), 0);
    tern_chan *ch = tern_redis_sub_chan(sub);
    tern_redis_msg *m;
    bool ok;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_chan_recv(ch, &m, &ok, ctx), 0);
    CHECK(ok && strcmp(m->channel, "news") == 0 && m->len == 5 && strcmp(m->data, "hello") == 0);
    tern_redis_msg_free(m);
    CHECK_EQ(tern_chan_recv(ch, &m, &ok, ctx), 0);
    CHECK(ok && strcmp(m->channel, "alerts") == 0 && m->len == 3 && memcmp(m->data, "b\0n", 3) == 0);
    tern_redis_msg_free(m);
    tern_ctx_free(ctx);
    /* Many messages, in order, more than the buffer holds. */
    for (int i = 0; i < 100; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        if (i == 50) {
            for (int j = 0; j < 50; j++) {
                CHECK_EQ(tern_chan_recv(ch, &m, &ok, NULL), 0);
                CHECK(ok && atoi(m->data) == j);
                tern_redis_msg_free(m);
            }
        }
        CHECK_EQ(tern_redis_publish(cl, "news", buf, strlen(buf), NULL, NULL), 0);
    }
    for (int j = 50; j < 100; j++) {
        CHECK_EQ(tern_chan_recv(ch, &m, &ok, NULL), 0);
        CHECK(ok && atoi(m->data) == j);
        tern_redis_msg_free(m);
    }
    /* The server drops the subscriber: the channel closes. */
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "CLIENT KILL TYPE pubsub"), 0);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_chan_recv(ch, &m, &ok, ctx), 0);
    CHECK(!ok);
    tern_ctx_free(ctx);
    tern_redis_sub_free(sub);
    /* Freeing a live subscription with messages still buffered. */
    CHECK_EQ(tern_redis_subscribe(cl, chans, 1, 4, &sub, NULL), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(tern_redis_publish(cl, "news", "z", 1, NULL, NULL), 0);
    tern_sleep(20 * TERN_MS);
    tern_redis_sub_free(sub);
    tern_redis_client_free(cl);
    return 0;
}

static void pubsub_delivers_messages_to_a_channel(void)
{
    run_ok(pubsub_main, NULL, 2);
}

TESTS(T(stream_entry_not_acked_is_reclaimed_by_xautoclaim), T(pubsub_delivers_messages_to_a_channel))
