/*
 * test_gateway_routing.c - the gateway's route matching and proxying, end
 * to end through real sockets: a tern HTTP server runs tern_gateway_handler
 * in front of real tern HTTP upstreams, and a tern HTTP client asks.
 */
#include "check.h"
#include "gateway_fixture.h"

static upstream A, B, C;

static const char *config_fmt =
    "upstreams:\n"
    "  a: {endpoints: [\"%s\"]}\n"
    "  b:\n"
    "    endpoints:\n"
    "      - {addr: \"%s\", weight: 1}\n"
    "  c: {endpoints: [\"%s\"], timeout: 2s}\n"
    "routes:\n"
    "  - name: product\n"
    "    match: {path: \"/api/products/:id\", methods: [GET]}\n"
    "    upstream: a\n"
    "    rewrite: {path: \"/v1/items/:id\"}\n"
    "  - match: {path: \"/api/products/:id\", methods: [DELETE]}\n"
    "    upstream: b\n"
    "  - match: {path: \"/api/products/new\"}\n"
    "    upstream: c\n"
    "  - match: {prefix: \"/static/\"}\n"
    "    upstream: b\n"
    "    rewrite: {strip_prefix: \"/static\"}\n"
    "  - match: {prefix: \"/beta\", headers: {X-Beta: \"1\"}}\n"
    "    upstream: c\n"
    "  - match: {prefix: \"/beta\"}\n"
    "    upstream: a\n"
    "  - match: {prefix: \"/\", host: \"shop.local\"}\n"
    "    upstream: c\n"
    "  - match: {prefix: \"/\", host: \"*.example.com\"}\n"
    "    upstream: b\n"
    "  - match: {path: \"/exact\"}\n"
    "    upstream: a\n";

static void start(gwsrv *s)
{
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    upstream_start(&C, "C");
    char cfg[4096];
    snprintf(cfg, sizeof cfg, config_fmt, A.addr, B.addr, C.addr);
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
    upstream_stop(&C);
}

static int matrix_main(void *arg)
{
    (void)arg;
    gwsrv s;
    start(&s);
    reply r;
    /* a :param, rewritten into another path with the query kept */
    CHECK_EQ(gw_get(&s, "/api/products/42?color=red", &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "A GET /v1/items/42?color=red");
    /* HEAD follows GET's route */
    CHECK_EQ(gw_call(&s, "HEAD", "/api/products/42", NULL, NULL, NULL, &r), 0);
    CHECK_EQ(r.status, 200);
    /* the same pattern, another method: another route */
    CHECK_EQ(gw_call(&s, "DELETE", "/api/products/42", NULL, NULL, NULL, &r), 0);
    CHECK_STR(r.body, "B DELETE /api/products/42");
    /* a method no route on the pattern takes: 405 as JSON */
    CHECK_EQ(gw_call(&s, "POST", "/api/products/42", NULL, "{}", NULL, &r), 0);
    CHECK_EQ(r.status, 405);
    CHECK_STR(r.body, "{\"error\":\"method not allowed\",\"status\":405}");
    /* static beats :param */
    CHECK_EQ(gw_get(&s, "/api/products/new", &r), 0);
    CHECK_STR(r.body, "C GET /api/products/new");
    /* a prefix, stripped; the rest of the path and the query go along */
    CHECK_EQ(gw_get(&s, "/static/css/site.css?v=3", &r), 0);
    CHECK_STR(r.body, "B GET /css/site.css?v=3");
    CHECK_EQ(gw_get(&s, "/static/", &r), 0);
    CHECK_STR(r.body, "B GET /");
    /* a header picks among routes of one prefix; without it the next one */
    const char *beta[] = {"X-Beta", "1", NULL};
    CHECK_EQ(gw_call(&s, "GET", "/beta/x", beta, NULL, NULL, &r), 0);
    CHECK_STR(r.body, "C GET /beta/x");
    CHECK_EQ(gw_get(&s, "/beta/x", &r), 0);
    CHECK_STR(r.body, "A GET /beta/x");
    /* a prefix without a slash matches itself too */
    CHECK_EQ(gw_get(&s, "/beta", &r), 0);
    CHECK_STR(r.body, "A GET /beta");
    /* hosts: exact (the port ignored) and a wildcard */
    const char *shop[] = {"Host", "shop.local:8080", NULL};
    CHECK_EQ(gw_call(&s, "GET", "/anything", shop, NULL, NULL, &r), 0);
    CHECK_STR(r.body, "C GET /anything");
    const char *ex[] = {"Host", "api.example.com", NULL};
    CHECK_EQ(gw_call(&s, "GET", "/anything", ex, NULL, NULL, &r), 0);
    CHECK_STR(r.body, "B GET /anything");
    const char *bare[] = {"Host", "example.com", NULL};
    CHECK_EQ(gw_call(&s, "GET", "/anything", bare, NULL, NULL, &r), 0);
    CHECK_EQ(r.status, 404);
    /* an exact path */
    CHECK_EQ(gw_get(&s, "/exact", &r), 0);
    CHECK_STR(r.body, "A GET /exact");
    /* nothing matches: 404 as JSON */
    CHECK_EQ(gw_get(&s, "/nowhere", &r), 0);
    CHECK_EQ(r.status, 404);
    CHECK_STR(r.body, "{\"error\":\"no route\",\"status\":404}");
    CHECK_EQ(gw_get(&s, "/exact/more", &r), 0);
    CHECK_EQ(r.status, 404);
    struct tern_gateway_stats st;
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.requests, 16);
    CHECK_EQ(st.no_route, 4);
    CHECK_EQ(st.generation, 1);
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(s.reg, &text, &len), 0);
    CHECK(strstr(text, "tern_gateway_requests_total{route=\"-\",upstream=\"-\",code=\"404\"} 3"));
    CHECK(strstr(text, "tern_gateway_requests_total{route=\"-\",upstream=\"-\",code=\"405\"} 1"));
    CHECK(strstr(text, "tern_gateway_requests_total{route=\"product\",upstream=\"a\",code=\"200\"} 2"));
    CHECK(strstr(text, "tern_gateway_upstream_duration_seconds_count{upstream=\"a\"}"));
    free(text);
    stop(&s);
    return 0;
}

static void routing_matrix(void) { run_ok(matrix_main, NULL, 2); }

static int headers_main(void *arg)
{
    (void)arg;
    gwsrv s;
    start(&s);
    reply r;
    const char *hdrs[] = {"Connection", "X-Hop", "X-Hop", "secret", "Keep-Alive", "timeout=1",
                          "X-Forwarded-For", "203.0.113.7", "Via", "1.1 edge",
                          "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                          "X-Custom", "kept", NULL};
    const char *want[] = {"X-Seen-Hop", "X-Seen-Keep-Alive", "X-Seen-XFF", "X-Seen-Via", "X-Seen-Proto",
                          "X-Seen-Traceparent", "X-Seen-Custom", "Keep-Alive"};
    CHECK_EQ(gw_call(&s, "GET", "/exact", hdrs, NULL, want, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.hdr[0], "");                        /* named in Connection: this hop's */
    CHECK_STR(r.hdr[1], "");                        /* hop-by-hop */
    CHECK_STR(r.hdr[2], "203.0.113.7, 127.0.0.1");  /* appended */
    CHECK_STR(r.hdr[3], "1.1 edge, 1.1 tern-gateway");
    CHECK_STR(r.hdr[4], "http");
    /* no tracing middleware here: the caller's trace context goes on as is */
    CHECK_STR(r.hdr[5], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    CHECK_STR(r.hdr[6], "kept");
    CHECK_STR(r.hdr[7], "");                        /* the upstream's Keep-Alive stays there */
    /* a POST body small enough to be buffered */
    CHECK_EQ(gw_call(&s, "POST", "/static/echo", NULL, "hello", NULL, &r), 0);
    CHECK_STR(r.body, "B POST /echo");
    stop(&s);
    return 0;
}

static void forwarded_headers(void) { run_ok(headers_main, NULL, 2); }

static int down_main(void *arg)
{
    (void)arg;
    /* an upstream whose only endpoint refuses connections: 502 as JSON */
    upstream_start(&A, "A");
    char dead[64];
    snprintf(dead, sizeof dead, "%s", A.addr);
    upstream_stop(&A);
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"upstreams\": {\"d\": {\"endpoints\": [\"%s\"]}},"
             " \"routes\": [{\"match\": {\"prefix\": \"/\"}, \"upstream\": \"d\"}]}", dead);
    gwsrv s;
    char err[256];
    CHECK_EQ(gw_start_text(&s, cfg, err, sizeof err), 0);
    reply r;
    CHECK_EQ(gw_get(&s, "/x", &r), 0);
    CHECK_EQ(r.status, 502);
    CHECK_HAS(r.body, "\"status\":502");
    struct tern_gateway_stats st;
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.upstream_errors, 1);
    /* the metrics name the route, the upstream and the status */
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(s.reg, &text, &len), 0);
    CHECK_HAS(text, "tern_gateway_requests_total{route=\"/\",upstream=\"d\",code=\"502\"} 1");
    free(text);
    gw_stop(&s);
    return 0;
}

static void upstream_down_is_502(void) { run_ok(down_main, NULL, 2); }

static int slow_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    A.delay = 2 * SEC;
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "upstreams: {a: {endpoints: [\"%s\"]}}\n"
             "routes: [{match: {prefix: /}, upstream: a, timeout: 100ms}]\n", A.addr);
    gwsrv s;
    char err[256];
    CHECK_EQ(gw_start_text(&s, cfg, err, sizeof err), 0);
    reply r;
    int64_t t0 = tern_now();
    CHECK_EQ(gw_get(&s, "/slow", &r), 0);
    CHECK_EQ(r.status, 504);
    CHECK(tern_now() - t0 < 1 * SEC);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void route_timeout_is_504(void) { run_ok(slow_main, NULL, 2); }

TESTS(T(routing_matrix), T(forwarded_headers), T(upstream_down_is_502), T(route_timeout_is_504))
