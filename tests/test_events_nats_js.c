/*
 * test_events_nats_js.c - JetStream through the NATS client against a
 * real nats-server -js: streams (create, update, info, delete), durable
 * pull consumers, publish with Nats-Msg-Id and PubAck (a lost ack retried
 * is not stored twice), fetch with ack / nak (with delay) / term /
 * in-progress, redelivery after AckWait seen in the metadata.
 */
#include "check.h"

#include <errno.h>
#include <tern/nats.h>

#include "nats_server.h"

static nats_server srv;

static void stop_server(void)
{
    nats_server_stop(&srv);
}

static tern_nats *client(void)
{
    static bool once;
    if (!once) {
        once = true;
        atexit(stop_server);
        nats_server_start(&srv);
    }
    tern_nats_options o = {.servers = srv.addr};
    tern_nats *nc;
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), 0);
    return nc;
}

static tern_ctx *timeout(int64_t ns)
{
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, ns, &c), 0);
    return c;
}

static void make_stream(tern_nats *nc, const char *name, const char *subject)
{
    const char *subs[] = {subject};
    tern_nats_stream_config sc = {.name = name, .subjects = subs, .nsubjects = 1};
    tern_ctx *c = timeout(5 * TERN_SEC);
    CHECK_EQ(tern_nats_js_stream_create(nc, &sc, c), 0);
    tern_ctx_free(c);
}

static int fetch(tern_nats *nc, const char *stream, const char *durable, int batch,
                 int64_t expires, tern_nats_msg **msgs)
{
    int n;
    tern_ctx *c = timeout(5 * TERN_SEC);
    CHECK_EQ(tern_nats_js_fetch(nc, stream, durable, batch, expires, msgs, &n, c), 0);
    tern_ctx_free(c);
    return n;
}

/* ---- streams ---- */

static int streams_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    make_stream(nc, "ORDERS", "orders.>");
    tern_nats_stream_info si;
    CHECK_EQ(tern_nats_js_stream_info(nc, "ORDERS", &si, NULL), 0);
    CHECK_EQ(si.messages, 0);
    CHECK_EQ(si.consumers, 0);
    /* the same name with other subjects: an API error, with its code */
    const char *other[] = {"elsewhere"};
    tern_nats_stream_config bad = {.name = "ORDERS", .subjects = other, .nsubjects = 1};
    CHECK_EQ(tern_nats_js_stream_create(nc, &bad, NULL), -EREMOTEIO);
    char desc[160];
    CHECK(tern_nats_js_last_error(nc, desc, sizeof desc) != 0);
    CHECK(desc[0] != 0);
    /* update: more subjects */
    const char *more[] = {"orders.>", "refunds.>"};
    tern_nats_stream_config up = {.name = "ORDERS", .subjects = more, .nsubjects = 2};
    CHECK_EQ(tern_nats_js_stream_update(nc, &up, NULL), 0);
    tern_nats_pub_ack ack;
    CHECK_EQ(tern_nats_js_publish(nc, "refunds.1", "r", 1, NULL, &ack, NULL), 0);
    CHECK(strcmp(ack.stream, "ORDERS") == 0);
    CHECK_EQ(ack.seq, 1);
    CHECK(!ack.duplicate);
    CHECK_EQ(tern_nats_js_stream_info(nc, "ORDERS", &si, NULL), 0);
    CHECK_EQ(si.messages, 1);
    CHECK_EQ(si.last_seq, 1);
    /* no stream takes the subject */
    CHECK_EQ(tern_nats_js_publish(nc, "nowhere", "r", 1, NULL, &ack, NULL), -ENXIO);
    CHECK_EQ(tern_nats_js_stream_delete(nc, "ORDERS", NULL), 0);
    CHECK_EQ(tern_nats_js_stream_info(nc, "ORDERS", &si, NULL), -ENOENT);
    CHECK_EQ(tern_nats_js_stream_delete(nc, "ORDERS", NULL), -ENOENT);
    CHECK_EQ(tern_nats_js_stream_info(nc, "a.b", &si, NULL), -EINVAL);
    tern_nats_free(nc);
    return 0;
}

static void stream_create_update_info_delete(void)
{
    run_ok(streams_main, NULL, 2);
}

/* ---- publish deduplication ---- */

static int dedup_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    make_stream(nc, "PAY", "pay.*");
    tern_nats_pub_ack ack;
    CHECK_EQ(tern_nats_js_publish(nc, "pay.1", "100", 3, "pay-1", &ack, NULL), 0);
    CHECK(!ack.duplicate);
    CHECK_EQ(ack.seq, 1);
    /* The PubAck of the next one is lost: it was published, never awaited
     * (the publisher crashed, or its ctx ended first)... */
    tern_nats_header h = {"Nats-Msg-Id", "pay-2"};
    CHECK_EQ(tern_nats_publish_msg(nc, "pay.2", NULL, &h, 1, "200", 3, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    /* ...so it is retried with the same id: stored once, reported a duplicate. */
    CHECK_EQ(tern_nats_js_publish(nc, "pay.2", "200", 3, "pay-2", &ack, NULL), 0);
    CHECK(ack.duplicate);
    CHECK_EQ(ack.seq, 2);
    /* a ctx too short for the ack, then the retry */
    tern_ctx *c = timeout(1);
    int err = tern_nats_js_publish(nc, "pay.3", "300", 3, "pay-3", &ack, c);
    CHECK(err == 0 || err == -ETIMEDOUT);
    tern_ctx_free(c);
    CHECK_EQ(tern_nats_js_publish(nc, "pay.3", "300", 3, "pay-3", &ack, NULL), 0);
    CHECK_EQ(ack.seq, 3);
    tern_nats_stream_info si;
    CHECK_EQ(tern_nats_js_stream_info(nc, "PAY", &si, NULL), 0);
    CHECK_EQ(si.messages, 3);
    CHECK_EQ(tern_nats_js_stream_delete(nc, "PAY", NULL), 0);
    tern_nats_free(nc);
    return 0;
}

static void lost_puback_retried_is_not_duplicated(void)
{
    run_ok(dedup_main, NULL, 2);
}

/* ---- pull consumers ---- */

static int pull_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    make_stream(nc, "JOBS", "jobs.*");
    tern_nats_consumer_config cc = {.durable = "worker", .ack_wait = 500 * TERN_MS};
    CHECK_EQ(tern_nats_js_consumer_create(nc, "JOBS", &cc, NULL), 0);
    CHECK_EQ(tern_nats_js_consumer_create(nc, "JOBS", &cc, NULL), 0);   /* idempotent */
    CHECK_EQ(tern_nats_js_consumer_create(nc, "NOPE", &cc, NULL), -ENOENT);
    for (int i = 1; i <= 5; i++) {
        char b[8];
        int n = snprintf(b, sizeof b, "j%d", i);
        CHECK_EQ(tern_nats_js_publish(nc, "jobs.x", b, (size_t)n, NULL, NULL, NULL), 0);
    }
    tern_nats_msg *m[8];
    CHECK_EQ(fetch(nc, "JOBS", "worker", 3, TERN_SEC, m), 3);
    tern_nats_js_meta md;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(tern_nats_js_metadata(m[i], &md), 0);
        CHECK(strcmp(md.stream, "JOBS") == 0);
        CHECK(strcmp(md.consumer, "worker") == 0);
        CHECK_EQ(md.stream_seq, (uint64_t)i + 1);
        CHECK_EQ(md.consumer_seq, (uint64_t)i + 1);
        CHECK_EQ(md.num_delivered, 1);
        CHECK(md.timestamp > 0);
    }
    CHECK_EQ(md.num_pending, 2);
    /* 1: acked; 2: not acked (AckWait redelivers it); 3: terminated */
    CHECK_EQ(tern_nats_js_ack(nc, m[0], NULL), 0);
    CHECK_EQ(tern_nats_js_term(nc, m[2], NULL), 0);
    for (int i = 0; i < 3; i++)
        tern_nats_msg_free(m[i]);
    /* 4 is kept in progress past its AckWait; 5 nak'd at once */
    CHECK_EQ(fetch(nc, "JOBS", "worker", 2, TERN_SEC, m), 2);
    CHECK_EQ(tern_nats_js_metadata(m[0], &md), 0);
    CHECK_EQ(md.stream_seq, 4);
    CHECK_EQ(tern_nats_js_metadata(m[1], &md), 0);
    CHECK_EQ(md.stream_seq, 5);
    CHECK_EQ(tern_nats_js_nak(nc, m[1], 0, NULL), 0);
    tern_nats_msg *again[8];
    CHECK_EQ(fetch(nc, "JOBS", "worker", 1, TERN_SEC, again), 1);
    CHECK_EQ(tern_nats_js_metadata(again[0], &md), 0);
    CHECK_EQ(md.stream_seq, 5);
    CHECK_EQ(md.num_delivered, 2);
    /* nak with a delay: not before it */
    CHECK_EQ(tern_nats_js_nak(nc, again[0], 700 * TERN_MS, NULL), 0);
    tern_nats_msg_free(again[0]);
    tern_nats_msg_free(m[1]);
    for (int k = 0; k < 3; k++) {
        tern_sleep(250 * TERN_MS);
        CHECK_EQ(tern_nats_js_in_progress(nc, m[0], NULL), 0);
    }
    /* 2 came back after its AckWait (500 ms), delivered twice; 4 did not
     * (in progress); 5 is still delayed unless its 700 ms have passed */
    int n = fetch(nc, "JOBS", "worker", 4, 300 * TERN_MS, again);
    CHECK(n >= 1);
    CHECK_EQ(tern_nats_js_metadata(again[0], &md), 0);
    CHECK_EQ(md.stream_seq, 2);
    CHECK_EQ(md.num_delivered, 2);
    for (int i = 1; i < n; i++) {
        CHECK_EQ(tern_nats_js_metadata(again[i], &md), 0);
        CHECK_EQ(md.stream_seq, 5);     /* never 3 (terminated), never 4 */
        CHECK_EQ(md.num_delivered, 3);
    }
    for (int i = 0; i < n; i++) {
        CHECK_EQ(tern_nats_js_ack(nc, again[i], NULL), 0);
        tern_nats_msg_free(again[i]);
    }
    CHECK_EQ(tern_nats_js_ack(nc, m[0], NULL), 0);
    tern_nats_msg_free(m[0]);
    if (n == 1) {   /* 5's delay ends */
        CHECK_EQ(fetch(nc, "JOBS", "worker", 1, 2 * TERN_SEC, again), 1);
        CHECK_EQ(tern_nats_js_metadata(again[0], &md), 0);
        CHECK_EQ(md.stream_seq, 5);
        CHECK_EQ(tern_nats_js_ack(nc, again[0], NULL), 0);
        tern_nats_msg_free(again[0]);
    }
    /* nothing left: an empty fetch ends at its expiry, not the ctx's */
    int64_t t0 = tern_now();
    CHECK_EQ(fetch(nc, "JOBS", "worker", 1, 200 * TERN_MS, again), 0);
    CHECK(tern_now() - t0 < 3 * TERN_SEC);
    int got;
    /* a consumer that does not exist: the server does not answer */
    CHECK_EQ(tern_nats_js_fetch(nc, "JOBS", "nobody", 1, 100 * TERN_MS, again, &got, NULL), 0);
    CHECK_EQ(got, 0);
    CHECK_EQ(tern_nats_js_consumer_delete(nc, "JOBS", "worker", NULL), 0);
    CHECK_EQ(tern_nats_js_consumer_delete(nc, "JOBS", "worker", NULL), -ENOENT);
    CHECK_EQ(tern_nats_js_stream_delete(nc, "JOBS", NULL), 0);
    tern_nats_free(nc);
    return 0;
}

static void pull_ack_nak_term_wpi_and_redelivery(void)
{
    run_ok(pull_main, NULL, 2);
}

static int meta_main(void *arg)
{
    (void)arg;
    tern_nats_msg m = {.subject = "x", .reply = "$JS.ACK.S.C.3.10.7.1700000000000000000.4"};
    tern_nats_js_meta md;
    CHECK_EQ(tern_nats_js_metadata(&m, &md), 0);
    CHECK(strcmp(md.stream, "S") == 0 && strcmp(md.consumer, "C") == 0);
    CHECK_EQ(md.num_delivered, 3);
    CHECK_EQ(md.stream_seq, 10);
    CHECK_EQ(md.consumer_seq, 7);
    CHECK_EQ(md.timestamp, 1700000000000000000LL);
    CHECK_EQ(md.num_pending, 4);
    m.reply = "$JS.ACK._.ACCHASH.S2.C2.1.2.3.4.5.rnd";
    CHECK_EQ(tern_nats_js_metadata(&m, &md), 0);
    CHECK(strcmp(md.stream, "S2") == 0 && strcmp(md.consumer, "C2") == 0);
    CHECK_EQ(md.num_delivered, 1);
    CHECK_EQ(md.num_pending, 5);
    m.reply = "$JS.ACK.S.C.x.10.7.1.4";
    CHECK_EQ(tern_nats_js_metadata(&m, &md), -EINVAL);
    m.reply = "_INBOX.abc";
    CHECK_EQ(tern_nats_js_metadata(&m, &md), -EINVAL);
    m.reply = NULL;
    CHECK_EQ(tern_nats_js_metadata(&m, &md), -EINVAL);
    return 0;
}

static void metadata_v1_v2_and_malformed(void)
{
    run_ok(meta_main, NULL, 1);
}

TESTS(T(stream_create_update_info_delete), T(lost_puback_retried_is_not_duplicated),
      T(pull_ack_nak_term_wpi_and_redelivery), T(metadata_v1_v2_and_malformed))
