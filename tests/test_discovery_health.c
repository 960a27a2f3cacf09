/*
 * test_discovery_health.c - active health checks against real HTTP servers
 * (tern's, on loopback): an endpoint whose /healthz fails is taken out
 * after the threshold and brought back after passes, a stopped server is
 * taken out, picks avoid what is out, and with everything out picks still
 * choose among all.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/context.h>
#include <tern/discovery.h>
#include <tern/http.h>
#include <tern/runtime.h>
#include <tern/sync.h>

typedef struct upstream {
    tern_http_server *srv;
    tern_ctx *ctx;
    TERN__ATOMIC(bool) healthy;
    char addr[64];
    tern_waitgroup done;
} upstream;

static int healthz(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    upstream *u = arg;
    return atomic_load(&u->healthy) ? tern_http_resp_text(w, 200, "ok")
                                    : tern_http_resp_text(w, 503, "not ready");
}

static int serve_co(void *arg)
{
    upstream *u = arg;
    tern_http_server_serve(u->srv, u->ctx);
    tern_waitgroup_done(&u->done);
    return 0;
}

static void up_start(upstream *u)
{
    atomic_store(&u->healthy, true);
    tern_http_server_options o = {.handler = healthz, .arg = u};
    CHECK_EQ(tern_http_server_new(&o, &u->srv), 0);
    CHECK_EQ(tern_http_server_listen(u->srv, "127.0.0.1:0"), 0);
    snprintf(u->addr, sizeof u->addr, "127.0.0.1:%d", tern_http_server_port(u->srv));
    CHECK_EQ(tern_ctx_with_cancel(NULL, &u->ctx), 0);
    u->done = (tern_waitgroup)TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&u->done, 1);
    CHECK_EQ(tern_go(serve_co, u), 0);
}

static void up_stop(upstream *u)
{
    if (!u->srv)
        return;
    tern_ctx_cancel(u->ctx);
    tern_waitgroup_wait(&u->done, NULL);
    tern_http_server_free(u->srv);
    tern_ctx_free(u->ctx);
    u->srv = NULL;
}

/* Wait up to 5 s for endpoint i's unhealthy flag to read want. */
static bool health_becomes(tern_balancer *b, size_t i, bool unhealthy)
{
    for (int k = 0; k < 500; k++) {
        tern_lb_endpoint_stats es[4];
        size_t n = tern_balancer_endpoint_stats(b, es, 4);
        CHECK(i < n);
        if (es[i].unhealthy == unhealthy)
            return true;
        tern_sleep(10 * TERN_MS);
    }
    return false;
}

static int body(void *arg)
{
    (void)arg;
    static upstream u[3];
    for (int i = 0; i < 3; i++)
        up_start(&u[i]);
    tern_endpoint eps[3];
    for (int i = 0; i < 3; i++)
        eps[i] = (tern_endpoint){.addr = u[i].addr};
    tern_balancer_options bo = {.policy = TERN_LB_ROUND_ROBIN};
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&bo, &b), 0);
    CHECK_EQ(tern_balancer_update(b, eps, 3), 0);
    tern_lb_health_options ho = {.path = "/healthz", .interval = 30 * TERN_MS, .timeout = 500 * TERN_MS,
                                 .unhealthy_threshold = 2, .healthy_threshold = 3};
    CHECK_EQ(tern_balancer_health_start(b, &ho), 0);
    CHECK_EQ(tern_balancer_health_start(b, &ho), -EBUSY);

    /* the second fails its checks: out, and picks pass it by */
    atomic_store(&u[1].healthy, false);
    CHECK(health_becomes(b, 1, true));
    struct tern_balancer_stats st;
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.unhealthy, 1);
    for (int k = 0; k < 30; k++) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        CHECK(strcmp(p.addr, u[1].addr) != 0);
        tern_balancer_done(b, &p, 1000, TERN_LB_OK);
    }
    /* healthy again: back after the passes */
    atomic_store(&u[1].healthy, true);
    CHECK(health_becomes(b, 1, false));
    /* a server that is gone fails its checks too */
    up_stop(&u[2]);
    CHECK(health_becomes(b, 2, true));
    /* everything out: picks choose among all rather than fail */
    atomic_store(&u[0].healthy, false);
    atomic_store(&u[1].healthy, false);
    CHECK(health_becomes(b, 0, true));
    CHECK(health_becomes(b, 1, true));
    int seen[3] = {0};
    for (int k = 0; k < 30; k++) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        for (int i = 0; i < 3; i++)
            seen[i] += !strcmp(p.addr, u[i].addr);
        tern_balancer_done(b, &p, 1000, TERN_LB_OK);
    }
    CHECK(seen[0] == 10 && seen[1] == 10 && seen[2] == 10);
    /* an update keeps the endpoints' health */
    CHECK_EQ(tern_balancer_update(b, eps, 2), 0);
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.unhealthy, 2);
    tern_balancer_free(b);          /* stops the checker */
    up_stop(&u[0]);
    up_stop(&u[1]);

    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    tern_lb_health_options bad = {.path = "healthz"};
    CHECK_EQ(tern_balancer_health_start(b, &bad), -EINVAL);
    bad = (tern_lb_health_options){.path = "/h", .interval = -1};
    CHECK_EQ(tern_balancer_health_start(b, &bad), -EINVAL);
    CHECK_EQ(tern_balancer_health_start(b, NULL), -EINVAL);
    tern_balancer_free(b);
    return 0;
}

static void active_health_checks_take_endpoints_out_and_back(void)
{
    run_ok(body, NULL, 2);
}

TESTS(T(active_health_checks_take_endpoints_out_and_back))
