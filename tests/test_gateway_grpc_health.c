/*
 * test_gateway_grpc_health.c - an upstream's `health_check: {grpc: true}`
 * end to end: two h2c upstreams that serve REST and gRPC on one port (the
 * kit's grpc.health.v1 service in front of a text handler, as the shop's
 * services do); the one whose health turns NOT_SERVING stops getting
 * requests, and gets them again once it serves.
 */
#include "check.h"
#include "gateway_fixture.h"
#include <tern/grpc.h>
#include <tern/health.h>
#include <tern/health_grpc.h>
#include <tern/runtime.h>

typedef struct svc {
    const char *name;
    tern_health *health;
    tern_grpc_server *grpc;
    tern_http_server *srv;
    char addr[64];
} svc;

static int text(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    return tern_http_resp_text(w, 200, ((svc *)arg)->name);
}

static int front(tern_http_req *r, tern_http_resp *w, void *arg)
{
    svc *s = arg;
    tern_http_link chain[2] = {{tern_grpc_server_http_handler, s->grpc}, {text, s}};
    return tern_http_run_chain(r, w, chain, 2);
}

static int svc_serve(void *arg)
{
    tern_http_server_serve(((svc *)arg)->srv, NULL);
    return 0;
}

static void svc_start(svc *s, const char *name)
{
    s->name = name;
    CHECK_EQ(tern_health_new(NULL, &s->health), 0);
    tern_health_set_ready(s->health, true);
    CHECK_EQ(tern_grpc_server_new(NULL, &s->grpc), 0);
    CHECK_EQ(tern_health_grpc_register(s->grpc, s->health), 0);
    tern_http_server_options o = {.handler = front, .arg = s, .max_body_bytes = -1};
    CHECK_EQ(tern_http_server_new(&o, &s->srv), 0);
    CHECK_EQ(tern_http_server_listen(s->srv, "127.0.0.1:0"), 0);
    snprintf(s->addr, sizeof s->addr, "%s", tern_http_server_addr(s->srv));
    CHECK_EQ(tern_go(svc_serve, s), 0);
}

static void svc_stop(svc *s)
{
    tern_http_server_shutdown(s->srv, NULL);
    tern_sleep(5 * MS);
    tern_http_server_free(s->srv);
    tern_grpc_server_free(s->grpc);
    tern_health_free(s->health);
}

/* Of n requests, how many A answered (B the rest). */
static int answered_by_a(gwsrv *g, int n)
{
    int a = 0;
    for (int i = 0; i < n; i++) {
        reply r;
        CHECK_EQ(gw_get(g, "/x", &r), 0);
        CHECK_EQ(r.status, 200);
        a += strcmp(r.body, "A") == 0;
    }
    return a;
}

static int body(void *arg)
{
    (void)arg;
    svc a, b;
    svc_start(&a, "A");
    svc_start(&b, "B");
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "upstreams:\n"
             "  u:\n"
             "    endpoints: [\"%s\", \"%s\"]\n"
             "    protocol: h2c\n"
             "    policy: round_robin\n"
             "    health_check: {grpc: true, interval: 20ms, timeout: 500ms,\n"
             "                   unhealthy_threshold: 1, healthy_threshold: 1}\n"
             "routes: [{match: {prefix: /}, upstream: u}]\n",
             a.addr, b.addr);
    gwsrv g;
    char err[256];
    int rc = gw_start_text(&g, cfg, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "gateway: %s\n", err);
    CHECK_EQ(rc, 0);
    tern_sleep(100 * MS);
    CHECK_EQ(answered_by_a(&g, 20), 10);
    tern_health_set_ready(a.health, false);
    tern_sleep(200 * MS);
    CHECK_EQ(answered_by_a(&g, 20), 0);
    tern_health_set_ready(a.health, true);
    tern_sleep(200 * MS);
    CHECK_EQ(answered_by_a(&g, 20), 10);
    gw_stop(&g);
    svc_stop(&a);
    svc_stop(&b);
    return 0;
}

static void grpc_health_check_takes_a_not_serving_endpoint_out(void) { run_ok(body, NULL, 2); }

TESTS(T(grpc_health_check_takes_a_not_serving_endpoint_out))
