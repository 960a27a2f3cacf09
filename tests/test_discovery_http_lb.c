/*
 * test_discovery_http_lb.c - an HTTP client balanced by a tern_balancer
 * (tern_balancer_http_picker) over three real tern HTTP servers, the
 * balancer following a static resolver: requests for the logical name
 * "orders" spread over all three, each server's connection kept in its
 * own pool and Host still "orders"; a slow server gets few requests (p2c
 * over EWMA latency); a stopped server is ejected and no request fails
 * meanwhile; a server answering 503 is ejected; a ring hash sends one
 * affinity key to one server; over h2c each endpoint has one connection;
 * a redirect to the name is picked again; a URL for another host is not
 * picked.
 */
#include "check.h"
#include "lb_client_check.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/context.h>
#include <tern/discovery.h>
#include <tern/http.h>
#include <tern/http_client.h>
#include <tern/runtime.h>
#include <tern/sync.h>

typedef struct upstream {
    int index;
    atomic_int calls;
    atomic_int wrong_host;      /* requests whose Host was not "orders" */
    _Atomic int64_t delay;      /* ns each request sleeps */
    atomic_bool fail;           /* answer 503 */
    tern_http_server *srv;
    char addr[64];
    tern_waitgroup done;
} upstream;

static int who(tern_http_req *r, tern_http_resp *w, void *arg)
{
    upstream *u = arg;
    atomic_fetch_add(&u->calls, 1);
    const char *host = tern_http_req_header(r, "Host");
    if (!host || strcmp(host, "orders") != 0)
        atomic_fetch_add(&u->wrong_host, 1);
    if (!strcmp(tern_http_req_path(r), "/go")) {      /* a relative redirect to /who */
        tern_http_resp_set_header(w, "Location", "who");
        return tern_http_resp_text(w, 302, "");
    }
    int64_t d = atomic_load(&u->delay);
    if (d)
        tern_sleep(d);
    char body[16];
    snprintf(body, sizeof body, "%d", u->index);
    return tern_http_resp_text(w, atomic_load(&u->fail) ? 503 : 200, body);
}

static int serve_co(void *arg)
{
    upstream *u = arg;
    tern_http_server_serve(u->srv, NULL);
    tern_waitgroup_done(&u->done);
    return 0;
}

static void up_start(upstream *u, int index)
{
    u->index = index;
    atomic_store(&u->calls, 0);
    atomic_store(&u->wrong_host, 0);
    atomic_store(&u->delay, 0);
    atomic_store(&u->fail, false);
    tern_http_server_options o = {.handler = who, .arg = u};
    CHECK_EQ(tern_http_server_new(&o, &u->srv), 0);
    CHECK_EQ(tern_http_server_listen(u->srv, "127.0.0.1:0"), 0);
    snprintf(u->addr, sizeof u->addr, "127.0.0.1:%d", tern_http_server_port(u->srv));
    u->done = (tern_waitgroup)TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&u->done, 1);
    CHECK_EQ(tern_go(serve_co, u), 0);
}

static void up_stop(upstream *u)
{
    if (!u->srv)
        return;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    tern_http_server_shutdown(u->srv, ctx);
    tern_ctx_free(ctx);
    tern_waitgroup_wait(&u->done, NULL);
    tern_http_server_free(u->srv);
    u->srv = NULL;
}

static upstream ups[3];

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

typedef struct lb {
    tern_resolver *r;
    tern_balancer *b;
    tern_http_client *c;
} lb;

static void lb_open(lb *l, const tern_balancer_options *bo)
{
    tern_endpoint eps[3];
    for (size_t i = 0; i < 3; i++)
        eps[i] = (tern_endpoint){.addr = ups[i].addr};
    CHECK_EQ(tern_resolver_static_new(eps, 3, &l->r), 0);
    CHECK_EQ(tern_balancer_new(bo, &l->b), 0);
    CHECK_EQ(tern_balancer_follow(l->b, l->r), 0);
    tern_http_client_options o = {.picker = tern_balancer_http_picker(), .picker_arg = l->b,
                                  .picker_host = "orders"};
    CHECK_EQ(tern_http_client_new(&o, &l->c), 0);
}

static void lb_close(lb *l)
{
    tern_http_client_free(l->c);
    tern_resolver_free(l->r);
    tern_balancer_free(l->b);
}

/* GET url: the index of the server that answered 200, 100 + index for a
 * 503, or -errno. */
static int get(tern_http_client *c, const char *url, const char *key)
{
    tern_http_client_request req = {.url = url, .affinity_key = key, .affinity_key_len = key ? strlen(key) : 0};
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    tern_http_client_response *r;
    int rc = tern_http_client_do(c, &req, &r, ctx);
    if (rc == 0) {
        const char *body;
        size_t len;
        CHECK_EQ(tern_http_client_response_body(r, 64, &body, &len), 0);
        rc = atoi(body) + (tern_http_client_response_status(r) == 503 ? 100 : 0);
        tern_http_client_response_free(r);
    }
    tern_ctx_free(ctx);
    return rc;
}

/* one request for lb_client_check.h */
static int one_get(void *c)
{
    return get(c, "http://orders/who", NULL);
}

static int spread_body(void *arg)
{
    (void)arg;
    start_all();
    lb l;
    /* latency samples fade over 20 ms: the first ones, a dial's
     * included, do not decide the whole run */
    lb_open(&l, &(tern_balancer_options){.ewma_decay = 20 * TERN_MS});
    int got[3];
    int total = lb_run_load_for(one_get, l.c, 12, 25, 100 * TERN_MS, got);
    fprintf(stderr, "p2c over three, twelve callers: %d %d %d\n", got[0], got[1], got[2]);
    for (int i = 0; i < 3; i++) {
        CHECK(got[i] * 20 >= total); /* an even share is a third */
        CHECK_EQ(atomic_load(&ups[i].calls), got[i]);
        CHECK_EQ(atomic_load(&ups[i].wrong_host), 0);
    }
    /* a pool per endpoint: the connections the load made serve what
     * follows, each request going to its endpoint's own */
    struct tern_http_client_stats cs, cs2;
    CHECK_EQ(tern_http_client_stats(l.c, &cs), 0);
    CHECK(cs.dials >= 3 && cs.dials <= 36);
    CHECK_EQ(cs.idle, cs.dials);
    for (int k = 0; k < 60; k++)
        CHECK(get(l.c, "http://orders/who", NULL) >= 0);
    CHECK_EQ(tern_http_client_stats(l.c, &cs2), 0);
    CHECK_EQ(cs2.dials, cs.dials);
    CHECK_EQ(cs2.reuses, cs.reuses + 60);
    tern_lb_endpoint_stats es[3];
    CHECK_EQ(tern_balancer_endpoint_stats(l.b, es, 3), 3);
    for (int i = 0; i < 3; i++) {
        CHECK(es[i].ewma_latency > 0);
        CHECK_EQ(es[i].in_flight, 0);
    }
    /* another host is not picked: dialled as it is */
    char direct[96];
    snprintf(direct, sizeof direct, "http://%s/who", ups[1].addr);
    struct tern_balancer_stats before, after;
    CHECK_EQ(tern_balancer_stats(l.b, &before), 0);
    CHECK_EQ(get(l.c, direct, NULL), 1);
    CHECK_EQ(tern_balancer_stats(l.b, &after), 0);
    CHECK_EQ(after.picks, before.picks);
    CHECK_EQ(atomic_load(&ups[1].wrong_host), 1);     /* its Host was the address */
    lb_close(&l);
    stop_all();
    return 0;
}

static void requests_for_a_name_spread_over_every_server(void)
{
    run_ok(spread_body, NULL, 2);
}

static int slow_body(void *arg)
{
    (void)arg;
    start_all();
    atomic_store(&ups[1].delay, 20 * TERN_MS);
    lb l;
    lb_open(&l, NULL);
    int got[3];
    lb_run_load(one_get, l.c, 6, 50, got);
    fprintf(stderr, "p2c, six callers, the second server 20 ms slow: %d %d %d\n", got[0], got[1], got[2]);
    CHECK(got[1] <= 30);
    CHECK(got[0] >= 60 && got[2] >= 60);
    lb_close(&l);
    stop_all();
    return 0;
}

static void a_slow_server_gets_fewer_requests(void)
{
    run_ok(slow_body, NULL, 2);
}

static int stopped_body(void *arg)
{
    (void)arg;
    /* round robin: the stopped server's turn comes every third pick; its
     * refused connections, five in a row, take it out */
    start_all();
    lb l;
    lb_open(&l, &(tern_balancer_options){.policy = TERN_LB_ROUND_ROBIN});
    for (int k = 0; k < 30; k++)
        CHECK(get(l.c, "http://orders/who", NULL) >= 0);
    up_stop(&ups[2]);
    int n = lb_until_ejected(l.b, ups[2].addr, one_get, l.c);
    fprintf(stderr, "round robin: ejected after %d requests\n", n);
    CHECK(n <= 20);
    tern_lb_endpoint_stats es[3];
    CHECK_EQ(tern_balancer_endpoint_stats(l.b, es, 3), 3);
    CHECK_EQ(es[2].failures, 5);
    lb_check_ejected(l.b, one_get, l.c);
    lb_close(&l);
    stop_all();

    /* p2c: tried again about once a second; two failures in a row here */
    start_all();
    lb_open(&l, &(tern_balancer_options){.outlier.consecutive_failures = 2});
    for (int k = 0; k < 30; k++)
        CHECK(get(l.c, "http://orders/who", NULL) >= 0);
    up_stop(&ups[2]);
    n = lb_until_ejected(l.b, ups[2].addr, one_get, l.c);
    fprintf(stderr, "p2c: ejected after %d requests\n", n);
    lb_check_ejected(l.b, one_get, l.c);
    lb_close(&l);
    stop_all();
    return 0;
}

static void a_stopped_server_is_ejected_and_requests_keep_succeeding(void)
{
    run_ok(stopped_body, NULL, 2);
}

static int failing_body(void *arg)
{
    (void)arg;
    start_all();
    atomic_store(&ups[0].fail, true);
    lb l;
    /* round robin: its turn every third request, whatever it measures */
    lb_open(&l, &(tern_balancer_options){.policy = TERN_LB_ROUND_ROBIN});
    int failed = 0;
    for (int k = 0; k < 200; k++) {
        int w = get(l.c, "http://orders/who", NULL);
        CHECK(w == 100 || w == 1 || w == 2);
        failed += w == 100;
    }
    fprintf(stderr, "503s before the first server was ejected: %d\n", failed);
    CHECK_EQ(failed, 5);                   /* consecutive_failures' default, then out */
    tern_lb_endpoint_stats es[3];
    CHECK_EQ(tern_balancer_endpoint_stats(l.b, es, 3), 3);
    CHECK(es[0].ejected);
    CHECK_EQ(es[0].failures, 5);
    lb_close(&l);
    stop_all();
    return 0;
}

static void a_server_answering_5xx_is_ejected(void)
{
    run_ok(failing_body, NULL, 2);
}

static int ring_body(void *arg)
{
    (void)arg;
    start_all();
    lb l;
    lb_open(&l, &(tern_balancer_options){.policy = TERN_LB_RING_HASH});
    bool used[3] = {false};
    for (int u = 0; u < 30; u++) {
        char key[32];
        snprintf(key, sizeof key, "user-%d", u);
        int first = get(l.c, "http://orders/who", key);
        CHECK(first >= 0 && first < 3);
        used[first] = true;
        for (int k = 0; k < 5; k++)
            CHECK_EQ(get(l.c, "http://orders/who", key), first);
    }
    CHECK(used[0] && used[1] && used[2]);
    lb_close(&l);
    stop_all();
    return 0;
}

static void ring_hash_sends_one_key_to_one_server(void)
{
    run_ok(ring_body, NULL, 2);
}

/* HTTP/2 (h2c): one connection per endpoint carries everything, its
 * :authority the logical name; a stopped endpoint's requests go elsewhere. */
static int h2c_body(void *arg)
{
    (void)arg;
    start_all();
    tern_endpoint eps[3];
    for (size_t i = 0; i < 3; i++)
        eps[i] = (tern_endpoint){.addr = ups[i].addr};
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&(tern_balancer_options){.policy = TERN_LB_ROUND_ROBIN}, &b), 0);
    CHECK_EQ(tern_balancer_update(b, eps, 3), 0);
    tern_http_client_options o = {.picker = tern_balancer_http_picker(), .picker_arg = b,
                                  .picker_host = "orders", .h2c_prior_knowledge = true};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&o, &c), 0);
    int got[3];
    lb_run_load(one_get, c, 6, 20, got);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(got[i], 40);                 /* round robin: 120 in turns */
        CHECK_EQ(atomic_load(&ups[i].wrong_host), 0);
    }
    struct tern_http_client_stats cs;
    CHECK_EQ(tern_http_client_stats(c, &cs), 0);
    CHECK_EQ(cs.h2_conns, 3);
    CHECK_EQ(cs.dials, 3);
    up_stop(&ups[1]);
    for (int k = 0; k < 30; k++) {
        int w = get(c, "http://orders/who", NULL);
        CHECK(w == 0 || w == 2);
    }
    tern_http_client_free(c);
    tern_balancer_free(b);
    stop_all();
    return 0;
}

static void over_h2c_each_endpoint_has_its_connection(void)
{
    run_ok(h2c_body, NULL, 2);
}

/* A redirect to the same name is picked again: its hop resolves against
 * the URL ("orders"), not against the address the first hop went to. */
static int redirect_body(void *arg)
{
    (void)arg;
    start_all();
    tern_endpoint eps[3];
    for (size_t i = 0; i < 3; i++)
        eps[i] = (tern_endpoint){.addr = ups[i].addr};
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&(tern_balancer_options){.policy = TERN_LB_ROUND_ROBIN}, &b), 0);
    CHECK_EQ(tern_balancer_update(b, eps, 3), 0);
    tern_http_client_options o = {.picker = tern_balancer_http_picker(), .picker_arg = b,
                                  .picker_host = "orders", .max_redirects = 2};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&o, &c), 0);
    /* round robin: the 302 from one, the answer from the next */
    for (int k = 0; k < 6; k++)
        CHECK_EQ(get(c, "http://orders/go", NULL), (2 * k + 1) % 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(atomic_load(&ups[i].calls), 4);
        CHECK_EQ(atomic_load(&ups[i].wrong_host), 0);
    }
    struct tern_balancer_stats st;
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.picks, 12);
    tern_http_client_free(c);
    tern_balancer_free(b);
    stop_all();
    return 0;
}

static void a_redirect_to_the_name_is_picked_again(void)
{
    run_ok(redirect_body, NULL, 2);
}

static int options_body(void *arg)
{
    (void)arg;
    tern_http_picker half = {.pick = NULL, .done = NULL};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&(tern_http_client_options){.picker = &half}, &c), -EINVAL);
    /* a balancer without endpoints: the pick's error */
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    CHECK_EQ(tern_http_client_new(&(tern_http_client_options){.picker = tern_balancer_http_picker(),
                                                              .picker_arg = b},
                                  &c),
             0);
    CHECK_EQ(get(c, "http://orders/who", NULL), -ENOENT);
    tern_http_client_free(c);
    tern_balancer_free(b);
    return 0;
}

static void picker_options_and_an_empty_balancer(void)
{
    run_ok(options_body, NULL, 2);
}

TESTS(T(requests_for_a_name_spread_over_every_server), T(a_slow_server_gets_fewer_requests),
      T(a_stopped_server_is_ejected_and_requests_keep_succeeding), T(a_server_answering_5xx_is_ejected),
      T(ring_hash_sends_one_key_to_one_server), T(over_h2c_each_endpoint_has_its_connection),
      T(a_redirect_to_the_name_is_picked_again),
      T(picker_options_and_an_empty_balancer))
