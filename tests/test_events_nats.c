/*
 * test_events_nats.c - the NATS client against a real nats-server: publish
 * and subscribe (sync, channel, callback), headers, queue groups,
 * request-reply and no responders, unsubscribe with and without a max,
 * slow consumers, drain, and the server killed and restarted under load
 * (reconnect, resubscribe, buffered publishes delivered).
 */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <tern/nats.h>

#include "nats_server.h"

#if defined(__SANITIZE_THREAD__)
#define TEST_NATS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_NATS_TSAN 1
#endif
#endif
#ifndef TEST_NATS_TSAN
#define TEST_NATS_TSAN 0
#endif

static nats_server srv;

static void stop_server(void)
{
    nats_server_stop(&srv);
}

static void server_up(void)
{
    static bool once;
    if (!once) {
        once = true;
        atexit(stop_server);
    }
    if (srv.pid <= 0)
        nats_server_start(&srv);
}

static _Atomic int events_slow, events_lost, events_back;

static void on_event(tern_nats *nc, tern_nats_sub *sub, int err, void *arg)
{
    (void)nc;
    (void)arg;
    if (err == -ENOBUFS && sub)
        events_slow++;
    else if (err == -ECONNRESET)
        events_lost++;
    else if (err == 0)
        events_back++;
}

static tern_nats *client(void)
{
    server_up();
    tern_nats_options o = {.servers = srv.addr, .name = "test",
                           .reconnect_wait_min = 5 * TERN_MS, .reconnect_wait_max = 50 * TERN_MS,
                           .reconnect_jitter = 5 * TERN_MS, .on_event = on_event};
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

static void expect_msg(tern_nats_sub *s, const char *subject, const char *data)
{
    tern_ctx *c = timeout(5 * TERN_SEC);
    tern_nats_msg *m;
    CHECK_EQ(tern_nats_sub_next(s, &m, c), 0);
    tern_ctx_free(c);
    CHECK(strcmp(m->subject, subject) == 0);
    CHECK_EQ(m->len, strlen(data));
    CHECK(memcmp(m->data, data, m->len) == 0);
    tern_nats_msg_free(m);
}

/* ---- publish, subscribe, headers ---- */

static int pubsub_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    tern_nats_sub *s;
    CHECK_EQ(tern_nats_subscribe(nc, "orders.*", NULL, &s), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_publish(nc, "orders.new", "hello", 5, NULL), 0);
    CHECK_EQ(tern_nats_publish(nc, "orders.paid", "", 0, NULL), 0);
    CHECK_EQ(tern_nats_publish(nc, "other", "x", 1, NULL), 0);
    expect_msg(s, "orders.new", "hello");
    expect_msg(s, "orders.paid", "");

    tern_nats_header h[] = {{"Trace-Id", "abc 123"}, {"X-Two", "2"}};
    CHECK_EQ(tern_nats_publish_msg(nc, "orders.hdr", "reply.to", h, 2, "body", 4, NULL), 0);
    tern_nats_msg *m;
    CHECK_EQ(tern_nats_sub_next(s, &m, NULL), 0);
    CHECK(strcmp(m->reply, "reply.to") == 0);
    size_t n;
    const char *v = tern_nats_msg_header(m, "trace-id", &n);
    CHECK(v && n == 7 && memcmp(v, "abc 123", 7) == 0);
    v = tern_nats_msg_header(m, "X-Two", &n);
    CHECK(v && n == 1 && *v == '2');
    CHECK(tern_nats_msg_header(m, "Missing", &n) == NULL);
    CHECK_EQ(tern_nats_msg_status(m), 0);
    CHECK_EQ(m->len, 4);
    CHECK(memcmp(m->data, "body", 4) == 0);
    tern_nats_msg_free(m);

    CHECK_EQ(tern_nats_publish(nc, "bad subject", "x", 1, NULL), -EINVAL);
    CHECK_EQ(tern_nats_publish(nc, "", "x", 1, NULL), -EINVAL);
    char big[1];
    CHECK_EQ(tern_nats_publish(nc, "big", big, (size_t)2 << 20, NULL), -EMSGSIZE);

    char url[64];
    CHECK_EQ(tern_nats_connected_url(nc, url, sizeof url), 0);
    CHECK(strcmp(url, srv.addr) == 0);
    struct tern_nats_stats st;
    CHECK_EQ(tern_nats_stats(nc, &st), 0);
    CHECK(st.connected);
    CHECK_EQ(st.out_msgs, 4);
    CHECK_EQ(st.in_msgs, 3);
    CHECK(st.writes >= 1);
    tern_nats_sub_free(s);
    tern_nats_free(nc);
    return 0;
}

static void pubsub_sync_and_headers(void)
{
    run_ok(pubsub_main, NULL, 2);
}

/* ---- channel and callback delivery, many publishers coalesced ---- */

static _Atomic int cb_count;

static void count_cb(tern_nats_msg *m, void *arg)
{
    (void)arg;
    CHECK(strcmp(m->subject, "fan") == 0);
    cb_count++;
}

typedef struct pub_arg {
    tern_nats *nc;
    int n;
    tern_waitgroup *wg;
} pub_arg;

static int publisher(void *arg)
{
    pub_arg *a = arg;
    for (int i = 0; i < a->n; i++)
        CHECK_EQ(tern_nats_publish(a->nc, "fan", "m", 1, NULL), 0);
    tern_waitgroup_done(a->wg);
    return 0;
}

static int chan_cb_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    tern_chan *ch;
    CHECK_EQ(tern_chan_new(sizeof(tern_nats_msg *), 16, &ch), 0);
    tern_nats_sub *sc, *scb;
    tern_nats_sub_options oc = {.chan = ch};
    tern_nats_sub_options ocb = {.cb = count_cb};
    CHECK_EQ(tern_nats_subscribe(nc, "fan", &oc, &sc), 0);
    CHECK_EQ(tern_nats_subscribe(nc, "fan", &ocb, &scb), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    int pubs = 50, per = (int)scaled(40) < 10 ? 10 : (int)scaled(40);
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    pub_arg pa = {nc, per, &wg};
    tern_waitgroup_add(&wg, pubs);
    for (int i = 0; i < pubs; i++)
        CHECK_EQ(tern_go(publisher, &pa), 0);
    int total = pubs * per;
    for (int i = 0; i < total; i++) {
        tern_nats_msg *m;
        bool ok;
        tern_ctx *c = timeout(5 * TERN_SEC);
        CHECK_EQ(tern_chan_recv(ch, &m, &ok, c), 0);
        tern_ctx_free(c);
        CHECK(ok);
        CHECK_EQ(m->len, 1);
        tern_nats_msg_free(m);
    }
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    for (int i = 0; i < 500 && cb_count < total; i++)
        tern_sleep(10 * TERN_MS);
    CHECK_EQ(cb_count, total);
    struct tern_nats_stats st;
    CHECK_EQ(tern_nats_stats(nc, &st), 0);
    /* coalesced: fewer writes than publishes (TSan slows the publishers
     * more than the writer: there, only that no write was lost) */
    CHECK(TEST_NATS_TSAN ? st.writes <= st.out_msgs : st.writes < st.out_msgs);
    tern_nats_sub_free(sc);
    tern_nats_sub_free(scb);
    tern_chan_free(ch);
    tern_nats_free(nc);
    return 0;
}

static void channel_and_callback_delivery(void)
{
    run_ok(chan_cb_main, NULL, 2);
}

/* ---- queue groups ---- */

static int queue_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    tern_nats_sub *q1, *q2, *all;
    tern_nats_sub_options qo = {.queue = "workers"};
    CHECK_EQ(tern_nats_subscribe(nc, "jobs", &qo, &q1), 0);
    CHECK_EQ(tern_nats_subscribe(nc, "jobs", &qo, &q2), 0);
    CHECK_EQ(tern_nats_subscribe(nc, "jobs", NULL, &all), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ(tern_nats_publish(nc, "jobs", "j", 1, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    int a = tern_nats_sub_pending(q1), b = tern_nats_sub_pending(q2);
    CHECK_EQ(a + b, 200);
    CHECK(a > 0 && b > 0);
    CHECK_EQ(tern_nats_sub_pending(all), 200);
    tern_nats_sub_free(q1);
    tern_nats_sub_free(q2);
    tern_nats_sub_free(all);
    tern_nats_free(nc);
    return 0;
}

static void queue_group_splits_messages(void)
{
    run_ok(queue_main, NULL, 2);
}

/* ---- request-reply ---- */

typedef struct responder {
    tern_nats *nc;
} responder;

static void echo_cb(tern_nats_msg *m, void *arg)
{
    responder *r = arg;
    char buf[128];
    int n = snprintf(buf, sizeof buf, "re:%.*s", (int)m->len, (const char *)m->data);
    size_t hl;
    const char *h = tern_nats_msg_header(m, "Want", &hl);
    tern_nats_header out = {"Got", h ? "yes" : "no"};
    CHECK_EQ(tern_nats_publish_msg(r->nc, m->reply, NULL, &out, 1, buf, (size_t)n, NULL), 0);
}

static void silent_cb(tern_nats_msg *m, void *arg)
{
    (void)m;
    (void)arg;
}

typedef struct req_arg {
    tern_nats *nc;
    int i;
    tern_waitgroup *wg;
} req_arg;

static int requester(void *arg)
{
    req_arg *a = arg;
    char q[32], want[40];
    int n = snprintf(q, sizeof q, "q%d", a->i);
    snprintf(want, sizeof want, "re:q%d", a->i);
    tern_nats_msg *m;
    tern_ctx *c = timeout(5 * TERN_SEC);
    CHECK_EQ(tern_nats_request(a->nc, "svc.echo", q, (size_t)n, &m, c), 0);
    tern_ctx_free(c);
    CHECK_EQ(m->len, strlen(want));
    CHECK(memcmp(m->data, want, m->len) == 0);
    tern_nats_msg_free(m);
    tern_waitgroup_done(a->wg);
    return 0;
}

static int request_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    responder r = {nc};
    tern_nats_sub *echo, *silent;
    tern_nats_sub_options eo = {.cb = echo_cb, .cb_arg = &r};
    tern_nats_sub_options so = {.cb = silent_cb};
    CHECK_EQ(tern_nats_subscribe(nc, "svc.echo", &eo, &echo), 0);
    CHECK_EQ(tern_nats_subscribe(nc, "svc.silent", &so, &silent), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);

    tern_nats_msg *m;
    tern_nats_header want = {"Want", "1"};
    CHECK_EQ(tern_nats_request_msg(nc, "svc.echo", &want, 1, "hi", 2, &m, NULL), 0);
    CHECK_EQ(m->len, 5);
    CHECK(memcmp(m->data, "re:hi", 5) == 0);
    size_t hl;
    const char *g = tern_nats_msg_header(m, "Got", &hl);
    CHECK(g && hl == 3 && memcmp(g, "yes", 3) == 0);
    tern_nats_msg_free(m);

    /* many at once over the one inbox */
    enum { N = 100 };
    req_arg ra[N];
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&wg, N);
    for (int i = 0; i < N; i++) {
        ra[i] = (req_arg){nc, i, &wg};
        CHECK_EQ(tern_go(requester, &ra[i]), 0);
    }
    tern_waitgroup_wait(&wg, NULL);

    /* nobody listens: at once, not at the deadline */
    tern_ctx *c = timeout(5 * TERN_SEC);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_nats_request(nc, "svc.nobody", "x", 1, &m, c), -ENXIO);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    CHECK(m == NULL);
    tern_ctx_free(c);

    /* a responder that never answers: the ctx bounds it */
    c = timeout(200 * TERN_MS);
    CHECK_EQ(tern_nats_request(nc, "svc.silent", "x", 1, &m, c), -ETIMEDOUT);
    tern_ctx_free(c);

    tern_nats_sub_free(echo);
    tern_nats_sub_free(silent);
    tern_nats_free(nc);
    return 0;
}

static void request_reply_and_no_responders(void)
{
    run_ok(request_main, NULL, 2);
}

/* ---- unsubscribe ---- */

static int unsub_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    tern_nats_sub *s, *five;
    CHECK_EQ(tern_nats_subscribe(nc, "u", NULL, &s), 0);
    CHECK_EQ(tern_nats_subscribe(nc, "u", NULL, &five), 0);
    CHECK_EQ(tern_nats_sub_unsubscribe(five, 5), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_publish(nc, "u", "1", 1, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_sub_unsubscribe(s, 0), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    for (int i = 0; i < 9; i++)
        CHECK_EQ(tern_nats_publish(nc, "u", "2", 1, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    /* s: the message before the unsubscribe, then closed */
    expect_msg(s, "u", "1");
    tern_nats_msg *m;
    CHECK_EQ(tern_nats_sub_next(s, &m, NULL), -EPIPE);
    /* five: exactly five */
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(tern_nats_sub_next(five, &m, NULL), 0);
        tern_nats_msg_free(m);
    }
    CHECK_EQ(tern_nats_sub_next(five, &m, NULL), -EPIPE);
    struct tern_nats_stats st;
    CHECK_EQ(tern_nats_stats(nc, &st), 0);
    CHECK_EQ(st.in_msgs, 6);  /* the server stopped sending to both */
    tern_nats_sub_free(s);
    tern_nats_sub_free(five);
    tern_nats_free(nc);
    return 0;
}

static void unsubscribe_now_and_after_max(void)
{
    run_ok(unsub_main, NULL, 2);
}

/* ---- slow consumer ---- */

static int slow_main(void *arg)
{
    (void)arg;
    events_slow = 0;
    tern_nats *nc = client();
    tern_nats_sub *slow, *fast;
    tern_nats_sub_options so = {.pending_msgs = 10};
    CHECK_EQ(tern_nats_subscribe(nc, "s", &so, &slow), 0);
    CHECK_EQ(tern_nats_subscribe(nc, "s", NULL, &fast), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(tern_nats_publish(nc, "s", "x", 1, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_sub_pending(slow), 10);
    CHECK_EQ(tern_nats_sub_dropped(slow), 90);
    CHECK_EQ(tern_nats_sub_pending(fast), 100);
    CHECK_EQ(tern_nats_sub_dropped(fast), 0);
    /* one report per episode, made by the reader just after the flush's PONG */
    for (int i = 0; i < 500 && events_slow < 1; i++)
        tern_sleep(2 * TERN_MS);
    tern_sleep(20 * TERN_MS);
    CHECK_EQ(events_slow, 1);
    struct tern_nats_stats st;
    CHECK_EQ(tern_nats_stats(nc, &st), 0);
    CHECK_EQ(st.slow_consumer_drops, 90);
    /* caught up: a new episode is reported again */
    tern_nats_msg *m;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(tern_nats_sub_next(slow, &m, NULL), 0);
        tern_nats_msg_free(m);
    }
    for (int i = 0; i < 11; i++)
        CHECK_EQ(tern_nats_publish(nc, "s", "x", 1, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_sub_dropped(slow), 91);
    for (int i = 0; i < 500 && events_slow < 2; i++)
        tern_sleep(2 * TERN_MS);
    CHECK_EQ(events_slow, 2);
    /* a byte bound too */
    tern_nats_sub *bytes;
    tern_nats_sub_options bo = {.pending_bytes = 100};
    CHECK_EQ(tern_nats_subscribe(nc, "b", &bo, &bytes), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    char blob[60] = {0};
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tern_nats_publish(nc, "b", blob, sizeof blob, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_sub_pending(bytes), 1);
    CHECK_EQ(tern_nats_sub_dropped(bytes), 2);
    tern_nats_sub_free(bytes);
    tern_nats_sub_free(slow);
    tern_nats_sub_free(fast);
    tern_nats_free(nc);
    return 0;
}

static void slow_consumer_dropped_counted_reported(void)
{
    run_ok(slow_main, NULL, 2);
}

/* ---- drain ---- */

static _Atomic int drained_count;

static void slow_cb(tern_nats_msg *m, void *arg)
{
    (void)m;
    (void)arg;
    tern_sleep(TERN_MS);
    drained_count++;
}

static int drain_main(void *arg)
{
    (void)arg;
    tern_nats *nc = client();
    tern_nats_sub *s;
    tern_nats_sub_options o = {.cb = slow_cb};
    CHECK_EQ(tern_nats_subscribe(nc, "d", &o, &s), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    for (int i = 0; i < 50; i++)
        CHECK_EQ(tern_nats_publish(nc, "d", "x", 1, NULL), 0);
    tern_ctx *c = timeout(10 * TERN_SEC);
    CHECK_EQ(tern_nats_drain(nc, c), 0);
    tern_ctx_free(c);
    CHECK_EQ(drained_count, 50);  /* every message received was handled */
    CHECK_EQ(tern_nats_publish(nc, "d", "x", 1, NULL), -ENOTCONN);
    tern_nats_sub_options none = {0};
    tern_nats_sub *s2;
    CHECK_EQ(tern_nats_subscribe(nc, "d", &none, &s2), -ENOTCONN);
    tern_nats_sub_free(s);
    tern_nats_free(nc);
    return 0;
}

static void drain_delivers_what_was_received(void)
{
    run_ok(drain_main, NULL, 2);
}

/* ---- connection failures ---- */

static int refused_main(void *arg)
{
    (void)arg;
    tern_nats_options o = {.servers = "nats://127.0.0.1:1", .connect_timeout = TERN_SEC};
    tern_nats *nc = (tern_nats *)1;
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), -ECONNREFUSED);
    CHECK(nc == NULL);
    o.servers = ",";
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), -EINVAL);
    return 0;
}

static void connect_refused(void)
{
    run_ok(refused_main, NULL, 1);
}

typedef struct load {
    tern_nats *nc;
    _Atomic bool stop;
    _Atomic int sent, eagain;
} load;

static int load_pub(void *arg)
{
    load *l = arg;
    while (!l->stop) {
        int err = tern_nats_publish(l->nc, "load", "x", 1, NULL);
        if (err == 0)
            l->sent++;
        else {
            CHECK_EQ(err, -EAGAIN);
            l->eagain++;
        }
        tern_sleep(200 * TERN_US);
    }
    return 0;
}

static int restart_main(void *arg)
{
    (void)arg;
    events_lost = events_back = 0;
    tern_nats *nc = client();
    tern_nats_sub *s;
    tern_nats_sub_options so = {.pending_msgs = 1 << 20};
    CHECK_EQ(tern_nats_subscribe(nc, "load", &so, &s), 0);
    tern_nats_sub *q;
    tern_nats_sub_options qo = {.queue = "grp"};
    CHECK_EQ(tern_nats_subscribe(nc, "after", &qo, &q), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    load l = {.nc = nc};
    CHECK_EQ(tern_go(load_pub, &l), 0);
    tern_sleep(100 * TERN_MS);

    nats_server_kill(&srv);
    for (int i = 0; i < 500 && !events_lost; i++)
        tern_sleep(2 * TERN_MS);
    CHECK_EQ(events_lost, 1);
    /* published while down: kept in the reconnect buffer */
    CHECK_EQ(tern_nats_publish(nc, "after", "buffered", 8, NULL), 0);
    tern_nats_msg *m;
    tern_ctx *c = timeout(50 * TERN_MS);
    CHECK_EQ(tern_nats_flush(nc, c), -ETIMEDOUT);   /* waits for the server */
    tern_ctx_free(c);
    tern_sleep(100 * TERN_MS);
    nats_server_start(&srv);
    for (int i = 0; i < 1000 && !events_back; i++)
        tern_sleep(5 * TERN_MS);
    CHECK_EQ(events_back, 1);
    c = timeout(5 * TERN_SEC);
    CHECK_EQ(tern_nats_flush(nc, c), 0);
    tern_ctx_free(c);
    /* resubscribed (queue group too), and the buffered publish arrived */
    expect_msg(q, "after", "buffered");
    l.stop = true;
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    int before = tern_nats_sub_pending(s);
    CHECK_EQ(tern_nats_publish(nc, "load", "y", 1, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    CHECK_EQ(tern_nats_sub_pending(s), before + 1);
    CHECK(l.sent > 0);
    struct tern_nats_stats st;
    CHECK_EQ(tern_nats_stats(nc, &st), 0);
    CHECK_EQ(st.reconnects, 1);
    CHECK_EQ(st.disconnects, 1);
    while (tern_nats_sub_pending(s)) {
        CHECK_EQ(tern_nats_sub_next(s, &m, NULL), 0);
        tern_nats_msg_free(m);
    }
    tern_nats_sub_free(s);
    tern_nats_sub_free(q);
    tern_nats_free(nc);
    return 0;
}

static void server_restarted_under_load(void)
{
    run_ok(restart_main, NULL, 2);
}

static int bufcap_main(void *arg)
{
    (void)arg;
    server_up();
    tern_nats_options o = {.servers = srv.addr, .reconnect_buf_size = 1000,
                           .reconnect_wait_min = 5 * TERN_MS, .reconnect_wait_max = 20 * TERN_MS};
    tern_nats *nc;
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), 0);
    nats_server_kill(&srv);
    struct tern_nats_stats st;
    do {
        tern_sleep(2 * TERN_MS);
        CHECK_EQ(tern_nats_stats(nc, &st), 0);
    } while (st.connected);
    char blob[300] = {0};
    int ok = 0, err;
    while ((err = tern_nats_publish(nc, "x", blob, sizeof blob, NULL)) == 0)
        ok++;
    CHECK_EQ(err, -EAGAIN);
    CHECK(ok >= 2 && ok <= 3);
    nats_server_start(&srv);
    tern_ctx *c = timeout(5 * TERN_SEC);
    CHECK_EQ(tern_nats_flush(nc, c), 0);
    tern_ctx_free(c);
    CHECK_EQ(tern_nats_publish(nc, "x", blob, sizeof blob, NULL), 0);
    tern_nats_free(nc);
    return 0;
}

static void reconnect_buffer_is_bounded(void)
{
    run_ok(bufcap_main, NULL, 2);
}

/* A server that stops answering (SIGSTOP: the TCP connection stays up)
 * is found by the keepalive: max_pings_out PINGs unanswered. */
static int stale_main(void *arg)
{
    (void)arg;
    events_lost = events_back = 0;
    server_up();
    tern_nats_options o = {.servers = srv.addr, .ping_interval = 100 * TERN_MS,
                           .max_pings_out = 2, .reconnect_wait_min = 5 * TERN_MS,
                           .reconnect_wait_max = 50 * TERN_MS, .connect_timeout = 200 * TERN_MS,
                           .on_event = on_event};
    tern_nats *nc;
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), 0);
    tern_sleep(350 * TERN_MS);
    struct tern_nats_stats st;
    CHECK_EQ(tern_nats_stats(nc, &st), 0);
    CHECK(st.pings_sent >= 2);
    CHECK(st.pongs_received >= 1);
    CHECK_EQ(events_lost, 0);
    kill(srv.pid, SIGSTOP);
    int64_t t0 = tern_now();
    for (int i = 0; i < 1000 && !events_lost; i++)
        tern_sleep(5 * TERN_MS);
    CHECK_EQ(events_lost, 1);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    kill(srv.pid, SIGCONT);
    tern_ctx *c = timeout(5 * TERN_SEC);
    CHECK_EQ(tern_nats_flush(nc, c), 0);
    tern_ctx_free(c);
    CHECK_EQ(events_back, 1);
    tern_nats_free(nc);
    return 0;
}

static void keepalive_finds_a_stale_server(void)
{
    run_ok(stale_main, NULL, 2);
}

/* A request whose bytes went out on a connection that then breaks ends
 * with -ECONNRESET when the break is found, not at its deadline (its
 * answer would go to the dead connection); one made while disconnected
 * waits in the reconnect buffer and is answered after the reconnection. */
typedef struct late_req {
    tern_nats *nc;
    int rc;
    char got[16];
    tern_waitgroup *wg;
} late_req;

static int late_requester(void *arg)
{
    late_req *a = arg;
    tern_ctx *c = timeout(10 * TERN_SEC);
    tern_nats_msg *m = NULL;
    a->rc = tern_nats_request(a->nc, "svc.echo", "late", 4, &m, c);
    tern_ctx_free(c);
    if (a->rc == 0) {
        snprintf(a->got, sizeof a->got, "%.*s", (int)m->len, (const char *)m->data);
        tern_nats_msg_free(m);
    }
    tern_waitgroup_done(a->wg);
    return 0;
}

/* SIGSTOP takes effect when the kernel next schedules the process: wait
 * until /proc says it is stopped (state T), or a request sent at once may
 * still be answered. */
static void stop_server_now(pid_t pid)
{
    kill(pid, SIGSTOP);
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 1000; i++) {
        FILE *f = fopen(path, "r");
        CHECK(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *rp = strrchr(buf, ')');
        if (rp && (rp[2] == 'T' || rp[2] == 't'))
            return;
        tern_sleep(1 * TERN_MS);
    }
    CHECK(!"the NATS server did not stop");
}

static int broken_req_main(void *arg)
{
    (void)arg;
    events_lost = events_back = 0;
    server_up();
    tern_nats_options o = {.servers = srv.addr, .ping_interval = 100 * TERN_MS,
                           .max_pings_out = 2, .reconnect_wait_min = 5 * TERN_MS,
                           .reconnect_wait_max = 50 * TERN_MS, .connect_timeout = 200 * TERN_MS,
                           .on_event = on_event};
    tern_nats *nc;
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), 0);
    responder r = {nc};
    tern_nats_sub *echo;
    CHECK_EQ(tern_nats_subscribe(nc, "svc.echo", &(tern_nats_sub_options){.cb = echo_cb, .cb_arg = &r}, &echo),
             0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    tern_nats_msg *m;
    CHECK_EQ(tern_nats_request(nc, "svc.echo", "a", 1, &m, NULL), 0);
    tern_nats_msg_free(m);

    stop_server_now(srv.pid);
    tern_ctx *c = timeout(8 * TERN_SEC);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_nats_request(nc, "svc.echo", "b", 1, &m, c), -ECONNRESET);
    CHECK(tern_now() - t0 < 3 * TERN_SEC);
    tern_ctx_free(c);

    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    late_req lr = {.nc = nc, .rc = 1, .wg = &wg};
    tern_waitgroup_add(&wg, 1);
    CHECK_EQ(tern_go(late_requester, &lr), 0);
    tern_sleep(100 * TERN_MS);
    CHECK_EQ(lr.rc, 1);                 /* still waiting, in the reconnect buffer */
    kill(srv.pid, SIGCONT);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(lr.rc, 0);
    CHECK(strcmp(lr.got, "re:late") == 0);
    tern_nats_sub_free(echo);
    tern_nats_free(nc);
    return 0;
}

static void request_fails_when_its_connection_breaks(void)
{
    run_ok(broken_req_main, NULL, 2);
}

/* CONNECT's credentials: user/pass and token, right and wrong. */
static nats_server auth_srv;

static void stop_auth(void)
{
    nats_server_stop(&auth_srv);
}

static int auth_main(void *arg)
{
    (void)arg;
    tern_nats_options o = {.connect_timeout = 5 * TERN_SEC};
    tern_nats *nc;
    auth_srv = (nats_server){.extra = {"--user", "alice", "--pass", "s3cret"}};
    atexit(stop_auth);
    nats_server_start(&auth_srv);
    o.servers = auth_srv.addr;
    o.user = "alice";
    o.pass = "wrong";
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), -EACCES);
    o.pass = "s3cret";
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    tern_nats_free(nc);
    nats_server_stop(&auth_srv);

    auth_srv = (nats_server){.extra = {"--auth", "tok123"}};
    nats_server_start(&auth_srv);
    o = (tern_nats_options){.servers = auth_srv.addr, .token = "nope"};
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), -EACCES);
    o.token = "tok123";
    CHECK_EQ(tern_nats_new(&o, &nc, NULL), 0);
    CHECK_EQ(tern_nats_publish(nc, "x", "y", 1, NULL), 0);
    CHECK_EQ(tern_nats_flush(nc, NULL), 0);
    tern_nats_free(nc);
    nats_server_stop(&auth_srv);
    auth_srv = (nats_server){0};
    return 0;
}

static void credentials_user_pass_and_token(void)
{
    run_ok(auth_main, NULL, 2);
}

static int nuid_main(void *arg)
{
    (void)arg;
    char a[23], b[23];
    tern_nats_nuid(a);
    tern_nats_nuid(b);
    CHECK_EQ(strlen(a), 22);
    CHECK(strcmp(a, b) != 0);
    return 0;
}

static void nuid_unique(void)
{
    run_ok(nuid_main, NULL, 1);
}

TESTS(T(pubsub_sync_and_headers), T(channel_and_callback_delivery),
      T(queue_group_splits_messages), T(request_reply_and_no_responders),
      T(unsubscribe_now_and_after_max), T(slow_consumer_dropped_counted_reported),
      T(drain_delivers_what_was_received), T(connect_refused), T(server_restarted_under_load),
      T(reconnect_buffer_is_bounded), T(keepalive_finds_a_stale_server),
      T(request_fails_when_its_connection_breaks),
      T(credentials_user_pass_and_token), T(nuid_unique))
