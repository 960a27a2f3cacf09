/*
 * test_gateway_upstreams.c - what an upstream's configuration does: h2c
 * upstreams, consistent hashing by a header, active health checks taking
 * an endpoint out, gRPC upstreams built (and refused where HTTP is
 * proxied), and the trace context continued through the gateway when a
 * tracing middleware runs in front of it.
 */
#include "check.h"
#include "gateway_fixture.h"

static upstream A, B;

static void start(gwsrv *s, const char *fmt)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg, fmt, A.addr, B.addr);
    char err[512];
    int rc = gw_start_text(s, cfg, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "gateway: %s\n", err);
    CHECK_EQ(rc, 0);
}

static void stop(gwsrv *s)
{
    gw_stop(s);
    upstream_stop(&A);
    upstream_stop(&B);
}

static int h2c_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    gwsrv s;
    start(&s, "upstreams: {a: {endpoints: [\"%s\"], protocol: h2c}, b: {endpoints: [\"%s\"]}}\n"
              "routes: [{match: {prefix: /}, upstream: a}]\n");
    reply r;
    const char *want[] = {"X-Proto", "X-Body-Len", NULL};
    CHECK_EQ(gw_call(&s, "GET", "/h2?x=1", NULL, NULL, want, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "A GET /h2?x=1");
    CHECK_STR(r.hdr[0], "HTTP/2");
    /* a body larger than the retry buffer: sent from memory to h2c */
    char *big = malloc(200001);
    memset(big, 'b', 200000);
    big[200000] = '\0';
    CHECK_EQ(gw_call(&s, "POST", "/h2", NULL, big, want, &r), 0);
    free(big);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.hdr[1], "200000");
    stop(&s);
    return 0;
}

static void h2c_upstream(void) { run_ok(h2c_main, NULL, 2); }

static int hash_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    gwsrv s;
    start(&s, "upstreams: {u: {endpoints: [\"%s\", \"%s\"], policy: ring_hash, hash_key: \"header:X-User\"}}\n"
              "routes: [{match: {prefix: /}, upstream: u}]\n");
    int on_a = 0;
    for (int user = 0; user < 20; user++) {
        char id[16];
        snprintf(id, sizeof id, "user-%d", user);
        const char *h[] = {"X-User", id, NULL};
        char first = 0;
        for (int i = 0; i < 5; i++) {
            reply r;
            CHECK_EQ(gw_call(&s, "GET", "/h", h, NULL, NULL, &r), 0);
            CHECK_EQ(r.status, 200);
            if (!first)
                first = r.body[0];
            CHECK_EQ(r.body[0], first);     /* one user, one endpoint */
        }
        on_a += first == 'A';
    }
    CHECK(on_a > 0 && on_a < 20);           /* and the users spread */
    stop(&s);
    return 0;
}

static void ring_hash_keeps_a_user_on_one_endpoint(void) { run_ok(hash_main, NULL, 2); }

static int health_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    atomic_store(&A.unhealthy, true);
    gwsrv s;
    start(&s, "upstreams:\n"
              "  u:\n"
              "    endpoints: [\"%s\", \"%s\"]\n"
              "    policy: round_robin\n"
              "    health_check: {path: /healthz, interval: 20ms, timeout: 500ms, unhealthy_threshold: 1}\n"
              "routes: [{match: {prefix: /}, upstream: u}]\n");
    tern_sleep(200 * MS);
    for (int i = 0; i < 20; i++) {
        reply r;
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        CHECK_STR(r.body, "B GET /x");
    }
    stop(&s);
    return 0;
}

static void health_checks_take_a_failing_endpoint_out(void) { run_ok(health_main, NULL, 2); }

static int grpc_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    char err[512];
    gwsrv s;
    /* a gRPC upstream is built (its channel connects lazily) */
    start(&s, "upstreams: {g: {endpoints: [\"%s\"], protocol: grpc}, h: {endpoints: [\"%s\"]}}\n"
              "routes: [{match: {prefix: /}, upstream: h}]\n");
    reply r;
    CHECK_EQ(gw_get(&s, "/x", &r), 0);
    CHECK_STR(r.body, "B GET /x");
    /* ... and is not proxied as HTTP */
    const char *bad = "upstreams: {g: {endpoints: [\"127.0.0.1:1\"], protocol: grpc}}\n"
                      "routes: [{match: {prefix: /}, upstream: g}]\n";
    CHECK_EQ(tern_gateway_reload(s.gw, bad, strlen(bad), err, sizeof err), -EINVAL);
    CHECK_STR(err, "config: routes[0]: upstream: \"g\" is gRPC: use grpc: {upstream, method}");
    stop(&s);
    return 0;
}

static void grpc_upstreams(void) { run_ok(grpc_main, NULL, 2); }

static gwsrv *traced_gw;

static int traced(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    static const tern_http_link chain[2] = {{tern_http_mw_trace, NULL}, {tern_gateway_handler, NULL}};
    tern_http_link c[2] = {chain[0], {tern_gateway_handler, traced_gw->gw}};
    return tern_http_run_chain(r, w, c, 2);
}

static int trace_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    gwsrv s;
    start(&s, "upstreams: {a: {endpoints: [\"%s\"]}, b: {endpoints: [\"%s\"]}}\n"
              "routes: [{match: {prefix: /}, upstream: a}]\n");
    /* a second server in front of the same gateway, with the tracing middleware */
    traced_gw = &s;
    tern_http_server_options so = {.handler = traced};
    tern_http_server *srv;
    CHECK_EQ(tern_http_server_new(&so, &srv), 0);
    CHECK_EQ(tern_http_server_listen(srv, "127.0.0.1:0"), 0);
    gwsrv front = s;
    snprintf(front.base, sizeof front.base, "http://%s", tern_http_server_addr(srv));
    front.srv = srv;
    CHECK_EQ(tern_go(gw_serve_co, &front), 0);
    const char *in = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const char *h[] = {"traceparent", in, NULL};
    const char *want[] = {"X-Seen-Traceparent", NULL};
    reply r;
    CHECK_EQ(gw_call(&front, "GET", "/t", h, NULL, want, &r), 0);
    CHECK_EQ(r.status, 200);
    /* the same trace, a new parent span: the gateway's client span */
    CHECK_EQ(strlen(r.hdr[0]), 55);
    CHECK_EQ(strncmp(r.hdr[0], in, 36), 0);
    CHECK(strncmp(r.hdr[0] + 36, in + 36, 16) != 0);
    CHECK_EQ(strcmp(r.hdr[0] + 52, "-01"), 0);
    tern_http_server_shutdown(srv, NULL);
    tern_sleep(5 * MS);
    tern_http_server_free(srv);
    stop(&s);
    return 0;
}

static void trace_context_continued(void) { run_ok(trace_main, NULL, 2); }

TESTS(T(h2c_upstream), T(ring_hash_keeps_a_user_on_one_endpoint), T(health_checks_take_a_failing_endpoint_out),
      T(grpc_upstreams), T(trace_context_continued))
