/*
 * test_discovery_grpc_health.c - active gRPC health checks
 * (grpc.health.v1.Health/Check) against real tern gRPC servers with the
 * kit's health service: an endpoint whose server turns not ready is
 * taken out after the threshold and comes back after passes; a service
 * the server does not know (NOT_FOUND) and a stopped server fail; a
 * service that is known and ready passes; the options' refusals.
 */
#include "check.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/context.h>
#include <tern/discovery.h>
#include <tern/grpc.h>
#include <tern/health.h>
#include <tern/health_grpc.h>
#include <tern/runtime.h>
#include <tern/sync.h>

typedef struct upstream {
    tern_grpc_server *srv;
    tern_health *health;
    tern_ctx *ctx;
    char addr[64];
    tern_waitgroup done;
} upstream;

static int serve_co(void *arg)
{
    upstream *u = arg;
    tern_grpc_server_serve(u->srv, u->ctx);
    tern_waitgroup_done(&u->done);
    return 0;
}

static void up_start(upstream *u)
{
    CHECK_EQ(tern_health_new(NULL, &u->health), 0);
    tern_health_set_ready(u->health, true);
    CHECK_EQ(tern_grpc_server_new(NULL, &u->srv), 0);
    CHECK_EQ(tern_health_grpc_register(u->srv, u->health), 0);
    CHECK_EQ(tern_grpc_server_listen(u->srv, "127.0.0.1:0"), 0);
    snprintf(u->addr, sizeof u->addr, "127.0.0.1:%d", tern_grpc_server_port(u->srv));
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
    tern_grpc_server_free(u->srv);
    tern_health_free(u->health);
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

static tern_balancer *checked(upstream *u, size_t n, const char *service)
{
    tern_endpoint eps[3];
    for (size_t i = 0; i < n; i++)
        eps[i] = (tern_endpoint){.addr = u[i].addr};
    tern_balancer_options bo = {.policy = TERN_LB_ROUND_ROBIN};
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(&bo, &b), 0);
    CHECK_EQ(tern_balancer_update(b, eps, n), 0);
    tern_lb_health_options ho = {.grpc = true, .grpc_service = service, .interval = 30 * TERN_MS,
                                 .timeout = 500 * TERN_MS, .unhealthy_threshold = 2, .healthy_threshold = 3};
    CHECK_EQ(tern_balancer_health_start(b, &ho), 0);
    return b;
}

static int body(void *arg)
{
    (void)arg;
    static upstream u[3];
    for (int i = 0; i < 3; i++)
        up_start(&u[i]);
    tern_balancer *b = checked(u, 3, NULL);
    /* all serving: none out after a few rounds */
    tern_sleep(200 * TERN_MS);
    struct tern_balancer_stats st;
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.unhealthy, 0);
    /* the second's server is not ready: NOT_SERVING takes it out */
    tern_health_set_ready(u[1].health, false);
    CHECK(health_becomes(b, 1, true));
    for (int k = 0; k < 30; k++) {
        tern_lb_pick p;
        CHECK_EQ(tern_balancer_pick(b, NULL, 0, &p), 0);
        CHECK(strcmp(p.addr, u[1].addr) != 0);
        tern_balancer_done(b, &p, 1000, TERN_LB_OK);
    }
    /* ready again: back after the passes */
    tern_health_set_ready(u[1].health, true);
    CHECK(health_becomes(b, 1, false));
    /* a stopped server fails */
    up_stop(&u[2]);
    CHECK(health_becomes(b, 2, true));
    tern_balancer_free(b);

    /* a service asked about by name: the health service itself is known
     * (SERVING when ready), an unknown one is NOT_FOUND */
    b = checked(u, 2, "grpc.health.v1.Health");
    tern_sleep(200 * TERN_MS);
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.unhealthy, 0);
    tern_balancer_free(b);
    b = checked(u, 2, "no.such.Service");
    CHECK(health_becomes(b, 0, true));
    CHECK(health_becomes(b, 1, true));
    tern_balancer_free(b);
    up_stop(&u[0]);
    up_stop(&u[1]);

    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    tern_lb_health_options bad = {.grpc = true, .grpc_service = longname};
    CHECK_EQ(tern_balancer_health_start(b, &bad), -EINVAL);
    bad = (tern_lb_health_options){.grpc = true, .timeout = -1};
    CHECK_EQ(tern_balancer_health_start(b, &bad), -EINVAL);
    tern_balancer_free(b);
    return 0;
}

static void grpc_health_checks_take_endpoints_out_and_back(void)
{
    run_ok(body, NULL, 2);
}

TESTS(T(grpc_health_checks_take_endpoints_out_and_back))
