/*
 * test_discovery_grpc_lb.c - a gRPC channel balanced by a tern_balancer
 * (tern_balancer_grpc_picker) over three real tern gRPC servers, their
 * addresses from a static resolver through tern_resolver_grpc: p2c
 * spreads calls over all three; a slow server gets few of them (EWMA
 * latency); a stopped server is ejected and no call fails meanwhile; a
 * ring hash sends one affinity key to one server; the channel's own
 * round_robin is untouched by all this; with nothing up a call fails
 * UNAVAILABLE, or waits for ready within its ctx.
 */
#include "check.h"
#include "lb_client_check.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <tern/context.h>
#include <tern/discovery.h>
#include <tern/grpc.h>
#include <tern/runtime.h>
#include <tern/sync.h>

#include "grpc_test.pb-c.h"

/* ---- three servers of terntest.Test/Unary that say who they are ---- */

typedef struct upstream {
    int index;
    atomic_int calls;
    _Atomic int64_t delay;      /* ns each call sleeps */
    tern_grpc_server *srv;
    tern_ctx *ctx;
    char addr[64];
    tern_waitgroup done;
} upstream;

static int who(tern_grpc_call *call, const void *impl, void *arg)
{
    (void)impl;
    upstream *u = arg;
    ProtobufCMessage *m;
    int rc = tern_grpc_call_recv(call, &m, NULL);
    if (rc <= 0)
        return rc < 0 ? rc : -EINVAL;
    atomic_fetch_add(&u->calls, 1);
    int64_t d = atomic_load(&u->delay);
    if (d && (rc = tern_ctx_sleep(d, tern_grpc_call_ctx(call))) < 0)
        return rc;
    Terntest__Resp resp = TERNTEST__RESP__INIT;
    resp.index = u->index;
    return tern_grpc_call_send(call, &resp.base, NULL);
}

static const tern_grpc_method_desc methods[] = {
    {"Unary", "/terntest.Test/Unary", TERN_GRPC_UNARY, &terntest__req__descriptor, &terntest__resp__descriptor,
     who},
};
static const tern_grpc_service_desc service = {"terntest.Test", methods, 1, NULL};

static int serve_co(void *arg)
{
    upstream *u = arg;
    tern_grpc_server_serve(u->srv, u->ctx);
    tern_waitgroup_done(&u->done);
    return 0;
}

static void up_start_at(upstream *u, int index, const char *addr)
{
    u->index = index;
    atomic_store(&u->calls, 0);
    atomic_store(&u->delay, 0);
    CHECK_EQ(tern_grpc_server_new(NULL, &u->srv), 0);
    CHECK_EQ(tern_grpc_server_add_service(u->srv, &service, NULL, u), 0);
    CHECK_EQ(tern_grpc_server_listen(u->srv, addr), 0);
    snprintf(u->addr, sizeof u->addr, "127.0.0.1:%d", tern_grpc_server_port(u->srv));
    CHECK_EQ(tern_ctx_with_cancel(NULL, &u->ctx), 0);
    u->done = (tern_waitgroup)TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&u->done, 1);
    CHECK_EQ(tern_go(serve_co, u), 0);
}

static void up_start(upstream *u, int index)
{
    up_start_at(u, index, "127.0.0.1:0");
}

static void up_stop(upstream *u)
{
    if (!u->srv)
        return;
    tern_ctx_cancel(u->ctx);
    tern_waitgroup_wait(&u->done, NULL);
    tern_grpc_server_free(u->srv);
    tern_ctx_free(u->ctx);
    u->srv = NULL;
}

/* ---- a channel through a balancer ---- */

typedef struct lb {
    tern_resolver *r;
    tern_balancer *b;
    tern_grpc_channel *ch;
} lb;

static void lb_open(lb *l, upstream *u, size_t n, const tern_balancer_options *bo)
{
    tern_endpoint eps[3];
    for (size_t i = 0; i < n; i++)
        eps[i] = (tern_endpoint){.addr = u[i].addr};
    CHECK_EQ(tern_resolver_static_new(eps, n, &l->r), 0);
    CHECK_EQ(tern_balancer_new(bo, &l->b), 0);
    tern_grpc_channel_options o = {
        .resolver = tern_resolver_grpc(), .resolver_arg = l->r,
        .picker = tern_balancer_grpc_picker(), .picker_arg = l->b,
        .backoff_base = 200 * TERN_MS, .backoff_max = 1 * TERN_SEC,
    };
    CHECK_EQ(tern_grpc_channel_new("static:///test", &o, &l->ch), 0);
}

static void lb_close(lb *l)
{
    tern_grpc_channel_free(l->ch);
    tern_resolver_free(l->r);
    tern_balancer_free(l->b);
}

/* One call; the index of the server that answered (-errno if none). */
static int call(tern_grpc_channel *ch, const char *key)
{
    Terntest__Req req = TERNTEST__REQ__INIT;
    ProtobufCMessage *resp = NULL;
    tern_grpc_call_options co = {.affinity_key = key, .affinity_key_len = key ? strlen(key) : 0};
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    int rc = tern_grpc_unary(ch, &methods[0], &req.base, &resp, &co, NULL, ctx);
    tern_ctx_free(ctx);
    if (rc < 0)
        return rc;
    int who = ((Terntest__Resp *)resp)->index;
    protobuf_c_message_free_unpacked(resp, NULL);
    return who;
}

static upstream ups[3];

/* one call for lb_client_check.h (its load runs callers at once: p2c
 * weighs latency times calls in flight, so under concurrency it spreads) */
static int one_call(void *ch)
{
    return call(ch, NULL);
}

static void start_all(void)
{
    for (int i = 0; i < 3; i++)
        up_start(&ups[i], i);
}

static void stop_all(void)
{
    for (int i = 0; i < 3; i++)
        up_stop(&ups[i]);
}

static int spread_body(void *arg)
{
    (void)arg;
    start_all();
    lb l;
    /* latency samples fade over 20 ms: the first ones, a dial's
     * included, do not decide the whole run */
    lb_open(&l, ups, 3, &(tern_balancer_options){.ewma_decay = 20 * TERN_MS});
    int got[3];
    int total = lb_run_load_for(one_call, l.ch, 12, 25, 100 * TERN_MS, got);
    fprintf(stderr, "p2c over three, twelve callers: %d %d %d\n", got[0], got[1], got[2]);
    for (int i = 0; i < 3; i++) {
        CHECK(got[i] * 20 >= total); /* an even share is a third; the first latency
                                        samples decide who is favoured */
        CHECK_EQ(atomic_load(&ups[i].calls), got[i]);
    }
    /* the balancer saw every pick and measured every endpoint */
    tern_lb_endpoint_stats es[3];
    CHECK_EQ(tern_balancer_endpoint_stats(l.b, es, 3), 3);
    uint64_t picks = 0;
    for (int i = 0; i < 3; i++) {
        picks += es[i].picks;
        CHECK(es[i].ewma_latency > 0);
        CHECK_EQ(es[i].in_flight, 0);
    }
    CHECK_EQ(picks, (uint64_t)total);   /* one per call: a call waiting for another's dial keeps its pick */
    lb_close(&l);
    stop_all();
    return 0;
}

static void p2c_spreads_calls_over_every_server(void)
{
    run_ok(spread_body, NULL, 2);
}

static int slow_body(void *arg)
{
    (void)arg;
    start_all();
    atomic_store(&ups[1].delay, 20 * TERN_MS);
    lb l;
    lb_open(&l, ups, 3, NULL);
    int got[3];
    lb_run_load(one_call, l.ch, 6, 50, got);
    fprintf(stderr, "p2c, six callers, the second server 20 ms slow: %d %d %d\n", got[0], got[1], got[2]);
    /* measured, then taken when its rival is busier or it has not been
     * picked for a second */
    CHECK(got[1] <= 30);
    CHECK(got[0] >= 60 && got[2] >= 60);
    lb_close(&l);
    stop_all();
    return 0;
}

static void p2c_sends_fewer_calls_to_a_slow_server(void)
{
    run_ok(slow_body, NULL, 2);
}

/* Stop the third server gracefully (GOAWAY: a rolling deploy) and give
 * the client a moment to read it: a call sent at the very instant a
 * server dies can die with it (nothing retries it transparently). */
static void stop_third(void)
{
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    tern_grpc_server_shutdown(ups[2].srv, ctx);
    tern_ctx_free(ctx);
    up_stop(&ups[2]);
    tern_sleep(50 * TERN_MS);
}

static int stopped_body(void *arg)
{
    (void)arg;
    /* round robin: the stopped server's turn comes every third pick, and
     * five failures in a row (the default) take it out */
    start_all();
    lb l;
    lb_open(&l, ups, 3, &(tern_balancer_options){.policy = TERN_LB_ROUND_ROBIN});
    for (int k = 0; k < 30; k++)
        CHECK(call(l.ch, NULL) >= 0);      /* every subchannel connected */
    stop_third();
    int n = lb_until_ejected(l.b, ups[2].addr, one_call, l.ch);
    fprintf(stderr, "round robin: ejected after %d calls\n", n);
    CHECK(n <= 20);
    tern_lb_endpoint_stats es[3];
    CHECK_EQ(tern_balancer_endpoint_stats(l.b, es, 3), 3);
    CHECK_EQ(es[2].failures, 5);
    lb_check_ejected(l.b, one_call, l.ch);
    lb_close(&l);
    stop_all();

    /* p2c stays away from it by its own measure (a failing endpoint looks
     * slow) and tries it again about once a second; two failures in a row
     * take it out here */
    start_all();
    lb_open(&l, ups, 3, &(tern_balancer_options){.outlier.consecutive_failures = 2});
    for (int k = 0; k < 30; k++)
        CHECK(call(l.ch, NULL) >= 0);
    stop_third();
    n = lb_until_ejected(l.b, ups[2].addr, one_call, l.ch);
    fprintf(stderr, "p2c: ejected after %d calls\n", n);
    lb_check_ejected(l.b, one_call, l.ch);
    lb_close(&l);
    stop_all();
    return 0;
}

static void a_stopped_server_is_ejected_and_calls_keep_succeeding(void)
{
    run_ok(stopped_body, NULL, 2);
}

static int ring_body(void *arg)
{
    (void)arg;
    start_all();
    lb l;
    lb_open(&l, ups, 3, &(tern_balancer_options){.policy = TERN_LB_RING_HASH});
    bool used[3] = {false};
    for (int u = 0; u < 30; u++) {
        char key[32];
        snprintf(key, sizeof key, "user-%d", u);
        int first = call(l.ch, key);
        CHECK(first >= 0 && first < 3);
        used[first] = true;
        for (int k = 0; k < 5; k++)
            CHECK_EQ(call(l.ch, key), first);
    }
    CHECK(used[0] && used[1] && used[2]);  /* 30 keys land on all three */
    lb_close(&l);

    /* Maglev the same */
    lb_open(&l, ups, 3, &(tern_balancer_options){.policy = TERN_LB_MAGLEV, .maglev_table_size = 251});
    for (int u = 0; u < 10; u++) {
        char key[32];
        snprintf(key, sizeof key, "session-%d", u);
        int first = call(l.ch, key);
        for (int k = 0; k < 5; k++)
            CHECK_EQ(call(l.ch, key), first);
    }
    lb_close(&l);
    stop_all();
    return 0;
}

static void ring_hash_sends_one_key_to_one_server(void)
{
    run_ok(ring_body, NULL, 2);
}

/* The built-in policies stay as they were: round_robin takes turns, a
 * picker with an lb_policy is refused. */
static int builtin_body(void *arg)
{
    (void)arg;
    start_all();
    char target[256];
    snprintf(target, sizeof target, "ipv4:%s,%s,%s", ups[0].addr, ups[1].addr, ups[2].addr);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, &(tern_grpc_channel_options){.lb_policy = "round_robin"}, &ch), 0);
    int got[3] = {0};
    for (int k = 0; k < 30; k++)
        got[call(ch, NULL)]++;
    CHECK(got[0] == 10 && got[1] == 10 && got[2] == 10);
    tern_grpc_channel_free(ch);
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    tern_grpc_channel_options bad = {.lb_policy = "round_robin", .picker = tern_balancer_grpc_picker(),
                                     .picker_arg = b};
    CHECK_EQ(tern_grpc_channel_new(target, &bad, &ch), -EINVAL);
    /* a picker over a built-in target: the channel feeds it the list */
    tern_grpc_channel_options good = {.picker = tern_balancer_grpc_picker(), .picker_arg = b};
    CHECK_EQ(tern_grpc_channel_new(target, &good, &ch), 0);
    struct tern_balancer_stats st;
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.endpoints, 3);
    for (int k = 0; k < 10; k++)
        CHECK(call(ch, NULL) >= 0);
    tern_grpc_channel_free(ch);
    tern_balancer_free(b);
    stop_all();
    return 0;
}

static void builtin_policies_are_unchanged_and_exclusive_with_a_picker(void)
{
    run_ok(builtin_body, NULL, 2);
}

/* Nothing listening: a call fails with the dial's error (UNAVAILABLE)
 * after the picker tried every address, and both endpoints count it; with
 * wait_for_ready it waits, bounded by its ctx, and a server that comes up
 * at one of the addresses meanwhile serves it. */
static int late_server(void *arg)
{
    tern_sleep(150 * TERN_MS);
    up_start_at(&ups[0], 7, arg);
    return 0;
}

static int down_body(void *arg)
{
    (void)arg;
    start_all();
    char addrs[2][64];
    for (int i = 0; i < 2; i++)
        snprintf(addrs[i], sizeof addrs[i], "%s", ups[i].addr);
    stop_all();                             /* two addresses nobody listens on */
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&(tern_balancer_options){.policy = TERN_LB_ROUND_ROBIN,
                                                       .outlier.disabled = true},
                               &b),
             0);
    char target[160];
    snprintf(target, sizeof target, "ipv4:%s,%s", addrs[0], addrs[1]);
    tern_grpc_channel_options o = {.picker = tern_balancer_grpc_picker(), .picker_arg = b,
                                   .backoff_base = 100 * TERN_MS, .backoff_max = 100 * TERN_MS};
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, &o, &ch), 0);
    tern_grpc_status st = {0};
    Terntest__Req req = TERNTEST__REQ__INIT;
    ProtobufCMessage *resp = NULL;
    CHECK_EQ(tern_grpc_unary(ch, &methods[0], &req.base, &resp, NULL, &st, NULL), -ECONNREFUSED);
    CHECK_EQ(st.code, TERN_GRPC_UNAVAILABLE);
    tern_grpc_status_clear(&st);
    tern_lb_endpoint_stats es[2];
    CHECK_EQ(tern_balancer_endpoint_stats(b, es, 2), 2);
    CHECK(es[0].failures >= 1 && es[1].failures >= 1);
    CHECK_EQ(es[0].in_flight + es[1].in_flight, 0);
    /* wait_for_ready: bounded by the ctx */
    tern_grpc_call_options wfr = {.wait_for_ready = true};
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 300 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_grpc_unary(ch, &methods[0], &req.base, &resp, &wfr, NULL, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_balancer_endpoint_stats(b, es, 2), 2);
    CHECK_EQ(es[0].in_flight + es[1].in_flight, 0);
    /* a server comes up at the first address while a call waits */
    CHECK_EQ(tern_go(late_server, addrs[0]), 0);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_grpc_unary(ch, &methods[0], &req.base, &resp, &wfr, NULL, ctx), 0);
    CHECK_EQ(((Terntest__Resp *)resp)->index, 7);
    protobuf_c_message_free_unpacked(resp, NULL);
    tern_ctx_free(ctx);
    tern_grpc_channel_free(ch);
    tern_balancer_free(b);
    up_stop(&ups[0]);
    return 0;
}

static void with_nothing_up_a_call_fails_unavailable_or_waits_for_ready(void)
{
    run_ok(down_body, NULL, 2);
}

/* A picker with nothing to pick (-ENOENT: every address ejected, say) is
 * asked once, not again and again: the call fails UNAVAILABLE at once, or
 * with wait_for_ready waits for the next update. */
typedef struct shut_picker {
    char addr[64];
    atomic_bool open;
    atomic_int picks;
} shut_picker;

static int shut_update(void *arg, const char *const *addrs, const uint32_t *weights, size_t n)
{
    (void)weights;
    shut_picker *p = arg;
    if (n)
        snprintf(p->addr, sizeof p->addr, "%s", addrs[0]);
    return 0;
}

static int shut_pick(void *arg, const void *key, size_t key_len, tern_grpc_pick *out)
{
    (void)key;
    (void)key_len;
    shut_picker *p = arg;
    atomic_fetch_add(&p->picks, 1);
    if (!atomic_load(&p->open))
        return -ENOENT;
    out->addr = p->addr;
    return 0;
}

static void shut_done(void *arg, tern_grpc_pick *pk, int64_t latency, tern_grpc_pick_outcome outcome)
{
    (void)arg;
    (void)pk;
    (void)latency;
    (void)outcome;
}

static const tern_grpc_picker shut_ops = {shut_update, shut_pick, shut_done};

typedef struct opener {
    shut_picker *p;
    tern_grpc_channel *ch;
} opener;

static int open_later(void *arg)
{
    opener *o = arg;
    tern_sleep(150 * TERN_MS);
    atomic_store(&o->p->open, true);
    char addr[64];
    snprintf(addr, sizeof addr, "%s", o->p->addr);  /* the update copies into p->addr */
    const char *addrs[] = {addr};
    CHECK_EQ(tern_grpc_channel_update(o->ch, addrs, 1), 0);
    return 0;
}

static int refused_body(void *arg)
{
    (void)arg;
    up_start(&ups[0], 0);
    shut_picker p = {0};
    char target[96];
    snprintf(target, sizeof target, "ipv4:%s", ups[0].addr);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, &(tern_grpc_channel_options){.picker = &shut_ops, .picker_arg = &p}, &ch),
             0);
    tern_grpc_status st = {0};
    Terntest__Req req = TERNTEST__REQ__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = tern_grpc_unary(ch, &methods[0], &req.base, &resp, NULL, &st, NULL);
    CHECK(rc < 0);
    CHECK_EQ(st.code, TERN_GRPC_UNAVAILABLE);
    CHECK_EQ(atomic_load(&p.picks), 1);
    tern_grpc_status_clear(&st);
    /* wait_for_ready: the update that opens the picker wakes the call */
    opener o = {&p, ch};
    CHECK_EQ(tern_go(open_later, &o), 0);
    tern_grpc_call_options wfr = {.wait_for_ready = true};
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_grpc_unary(ch, &methods[0], &req.base, &resp, &wfr, NULL, ctx), 0);
    CHECK(tern_now() - t0 >= 100 * TERN_MS);
    CHECK(atomic_load(&p.picks) <= 4);       /* asked again on the update, not in a loop */
    CHECK_EQ(((Terntest__Resp *)resp)->index, 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    tern_ctx_free(ctx);
    tern_grpc_channel_free(ch);
    up_stop(&ups[0]);
    return 0;
}

static void a_picker_with_nothing_to_pick_is_asked_once(void)
{
    run_ok(refused_body, NULL, 2);
}

TESTS(T(p2c_spreads_calls_over_every_server), T(p2c_sends_fewer_calls_to_a_slow_server),
      T(a_stopped_server_is_ejected_and_calls_keep_succeeding), T(ring_hash_sends_one_key_to_one_server),
      T(builtin_policies_are_unchanged_and_exclusive_with_a_picker),
      T(with_nothing_up_a_call_fails_unavailable_or_waits_for_ready),
      T(a_picker_with_nothing_to_pick_is_asked_once))
