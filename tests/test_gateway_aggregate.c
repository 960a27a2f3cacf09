/*
 * test_gateway_aggregate.c - the gateway's aggregated routes
 * (src/gateway/aggregate.c through policy.h), end to end: one GET answered
 * from a gRPC part (a real tern gRPC server) and an HTTP part (a real tern
 * HTTP server), both run at once under the route's timeout
 * (gateway_transcode_fixture.h).  Partial answers name what failed and
 * why; 502 only when every part failed; configuration errors name the key.
 */
#include "check.h"

#include "gateway_transcode_fixture.h"

/* the parts' sleeps and the route's timeout, in ms: longer in sanitizer
 * builds (TERN_TEST_SCALE set), whose overhead would otherwise eat the
 * margin between "in parallel" and "one after the other" */
static int part_ms = 300;

static const char order_route[] =
    "{\"name\": \"order\", \"match\": {\"path\": \"/orders/:id\", \"methods\": [\"GET\"]},"
    " \"aggregate\": {\"timeout\": %lld, \"parts\": {"
    "   \"item\": {\"grpc\": {\"upstream\": \"items\", \"method\": \"terntest.json.v1.Items/GetItem\"}},"
    "   \"payment\": {\"upstream\": \"payments\", \"path\": \"/payments/by-order/:id\"}}}}";
static const char down_route[] =
    "{\"match\": {\"path\": \"/down/:id\"}, \"aggregate\": {\"parts\": {"
    "   \"item\": {\"grpc\": {\"upstream\": \"items_down\", \"method\": \"terntest.json.v1.Items/GetItem\"}},"
    "   \"payment\": {\"upstream\": \"payments_down\", \"path\": \"/payments/by-order/:id\"},"
    "   \"ok\": {\"upstream\": \"payments\", \"path\": \"/payments/by-order/:id?fixed=1\"}}}}";

static int serve(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern__gw_fwd fwd = {0};
    const char *u = tern_http_req_header(r, "x-user");
    if (u)
        CHECK_EQ(tern__gw_fwd_add(&fwd, "X-User-Id", u), 0);
    return tern__gw_aggregate_serve(arg, r, w, &fwd, tern_http_req_ctx(r));
}

static tern__gw_aggregate *mount(const char *route, const char *pattern)
{
    json_t *j = route_json(route);
    tern__gw_aggregate *a;
    char err[256] = "";
    int rc = tern__gw_aggregate_new(j, &fx.env, &a, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "aggregate_new: %s\n", err);
    CHECK_EQ(rc, 0);
    json_decref(j);
    CHECK_EQ(tern_http_router_handle(fx.gw.rt, "GET", pattern, serve, a), 0);
    return a;
}

static void every_part_answers_in_parallel(void)
{
    json_t *j;
    const char *h[] = {"X-User", "u-5", NULL};
    /* connections made first, so that only the parts' time is measured */
    CHECK_EQ(gw_call("GET", "/orders/0", NULL, NULL, &j), 200);
    json_decref(j);
    /* each part takes part_ms: one after the other would be twice that,
     * the route's timeout */
    char path[128], want[512];
    snprintf(path, sizeof path, "/orders/9?sleep_ms=%d&slow_payment=%d", part_ms, part_ms);
    int64_t t0 = tern_now();
    CHECK_EQ(gw_call("GET", path, NULL, h, &j), 200);
    int64_t took = tern_now() - t0;
    CHECK(took >= part_ms * TERN_MS && took < (2 * part_ms - 10) * TERN_MS);
    snprintf(want, sizeof want,
             "{\"item\": {\"id\": \"9\", \"name\": \"item 9\", \"priceCents\": \"9007199254740993\","
             " \"user\": \"u-5\"},"
             " \"payment\": {\"order\": \"9\", \"paid\": true, \"user\": \"u-5\","
             " \"query\": \"sleep_ms=%d&slow_payment=%d\"}}", part_ms, part_ms);
    check_json(j, want);
    json_decref(j);
    /* a path parameter goes to the HTTP part percent-encoded, to the gRPC
     * part as the field's value */
    CHECK_EQ(gw_call("GET", "/orders/a%20b%2Bc", NULL, NULL, &j), 200);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "payment"), "order")), "a b+c");
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "item"), "id")), "a b+c");
    json_decref(j);
    /* the trace reaches both parts */
    const char *t[] = {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", NULL};
    CHECK_EQ(gw_call("GET", "/orders/10", NULL, t, &j), 200);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "item"), "traceparent")), t[1]);
    json_decref(j);
}

static void a_slow_or_failing_part_is_left_out_and_named(void)
{
    json_t *j;
    int64_t t0 = tern_now();
    char path[128];
    snprintf(path, sizeof path, "/orders/9?slow_payment=%d", 6 * part_ms);
    CHECK_EQ(gw_call("GET", path, NULL, NULL, &j), 200);
    int64_t took = tern_now() - t0;
    CHECK(took >= 2 * part_ms * TERN_MS && took < 5 * part_ms * TERN_MS);   /* the timeout, not the slow part */
    check_json(j, "{\"item\": {\"id\": \"9\", \"name\": \"item 9\", \"priceCents\": \"9007199254740993\"},"
                  " \"_partial\": [\"payment\"], \"_errors\": {\"payment\": \"timeout\"}}");
    json_decref(j);
    snprintf(path, sizeof path, "/orders/9?sleep_ms=%d", 6 * part_ms);
    CHECK_EQ(gw_call("GET", path, NULL, NULL, &j), 200);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "_errors"), "item")), "timeout");
    CHECK(json_object_get(j, "payment") != NULL);
    json_decref(j);
    CHECK_EQ(gw_call("GET", "/orders/9?fail_code=5", NULL, NULL, &j), 200);
    check_json(j, "{\"payment\": {\"order\": \"9\", \"paid\": true, \"user\": \"\", \"query\": \"fail_code=5\"},"
                  " \"_partial\": [\"item\"], \"_errors\": {\"item\": \"NOT_FOUND: item 9: failing as asked\"}}");
    json_decref(j);
    CHECK_EQ(gw_call("GET", "/orders/9?payment_text=1", NULL, NULL, &j), 200);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "_errors"), "payment")),
              "the answer is not JSON");
    json_decref(j);
    /* a request that does not map to a part's message fails that part only */
    CHECK_EQ(gw_call("GET", "/orders/9?limit=many", NULL, NULL, &j), 200);
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "_errors"), "item")),
              "limit: \"many\" is not an integer");
    CHECK(json_object_get(j, "payment") != NULL);
    json_decref(j);
}

static void every_part_failing_is_502(void)
{
    json_t *j;
    CHECK_EQ(gw_call("GET", "/orders/9?fail_code=14&payment_status=503", NULL, NULL, &j), 502);
    check_json(j, "{\"error\": \"every part of the aggregate failed\", \"status\": 502, \"_errors\": {"
                  " \"item\": \"UNAVAILABLE: item 9: failing as asked\", \"payment\": \"status 503\"}}");
    json_decref(j);
    /* dead upstreams: refused connections, the third part still answers
     * (with its own query, not the client's) */
    CHECK_EQ(gw_call("GET", "/down/3?x=1", NULL, NULL, &j), 200);
    json_t *e = json_object_get(j, "_errors");
    const char *item_err = json_string_value(json_object_get(e, "item"));
    if (!item_err || strncmp(item_err, "UNAVAILABLE: ", 13))
        fprintf(stderr, "the dead gRPC part's error: %s\n", item_err ? item_err : "(none)");
    CHECK(item_err && !strncmp(item_err, "UNAVAILABLE: ", 13));
    CHECK_STR(json_string_value(json_object_get(e, "payment")), tern_strerror(-ECONNREFUSED));
    CHECK_STR(json_string_value(json_object_get(json_object_get(j, "ok"), "query")), "fixed=1");
    CHECK_EQ(json_array_size(json_object_get(j, "_partial")), 2);
    json_decref(j);
}

static void bad_aggregates_are_refused_with_the_key(void)
{
    static const struct {
        const char *route, *err;
    } cases[] = {
        {"{\"name\": \"a\", \"aggregate\": []}", "route \"a\": aggregate: must be a mapping {timeout, parts}"},
        {"{\"name\": \"a\", \"aggregate\": {\"parts\": {}}}",
         "route \"a\": aggregate.parts: must map 1 to 32 part names to their calls"},
        {"{\"name\": \"a\", \"aggregate\": {\"parts\": {\"p\": {\"upstream\": \"payments\", \"path\": \"/p\"}},"
         " \"retries\": 1}}", "route \"a\": aggregate.retries: unknown key (aggregate takes timeout and parts)"},
        {"{\"name\": \"a\", \"aggregate\": {\"timeout\": \"fast\", \"parts\": {\"p\": {\"upstream\": \"payments\","
         " \"path\": \"/p\"}}}}", "route \"a\": aggregate.timeout: must be a positive duration (\"500ms\", \"2s\")"},
        {"{\"name\": \"a\", \"aggregate\": {\"timeout\": \"0s\", \"parts\": {\"p\": {\"upstream\": \"payments\","
         " \"path\": \"/p\"}}}}", "route \"a\": aggregate.timeout: must be a positive duration (\"500ms\", \"2s\")"},
        {"{\"name\": \"a\", \"aggregate\": {\"parts\": {\"p\": {\"upstream\": \"payments\"}}}}",
         "route \"a\": aggregate.parts.p: must be {grpc: {upstream, method}} or {upstream, path: \"/...\"}"},
        {"{\"match\": {\"path\": \"/o/:id\"}, \"aggregate\": {\"parts\": {\"p\": {\"upstream\": \"payments\","
         " \"path\": \"/p/:order\"}}}}",
         "route \"/o/:id\": aggregate.parts.p.path: \":order\" is not a parameter of match.path"},
        {"{\"name\": \"a\", \"aggregate\": {\"parts\": {\"_p\": {\"upstream\": \"payments\", \"path\": \"/p\"}}}}",
         "route \"a\": aggregate.parts._p: a part's name may not start with '_' (the answer's _partial and "
         "_errors)"},
        {"{\"name\": \"a\", \"aggregate\": {\"parts\": {\"g\": {\"grpc\": {\"upstream\": \"items\"}}}}}",
         "route \"a\": aggregate.parts.g.grpc: must be exactly {upstream, method}"},
        {"{\"name\": \"a\", \"aggregate\": {\"parts\": {\"g\": {\"grpc\": {\"upstream\": \"items\", \"method\":"
         " \"x.Y/Z\"}}}}}", "route \"a\": aggregate.parts.g.grpc.method: \"x.Y/Z\" is not known to this program "
                          "(its service is not registered with tern_grpc_json_register)"},
        {"{\"name\": \"a\", \"aggregate\": {\"parts\": {\"g\": {\"grpc\": {\"upstream\": \"payments\", \"method\":"
         " \"terntest.json.v1.Items/GetItem\"}}}}}",
         "route \"a\": aggregate.parts.g.grpc.upstream: no gRPC upstream called \"payments\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = route_json(cases[i].route);
        tern__gw_aggregate *a = (tern__gw_aggregate *)1;
        char err[512] = "";
        CHECK_EQ(tern__gw_aggregate_new(j, &fx.env, &a, err, sizeof err), -EINVAL);
        CHECK(a == NULL);
        CHECK_STR(err, cases[i].err);
        json_decref(j);
    }
    /* durations in the forms gateway.h lists */
    static const char *ok[] = {"\"250ms\"", "\"1.5s\"", "\"1m\"", "\"100us\"", "5000000"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"aggregate\": {\"timeout\": %s, \"parts\": {\"p\": {\"upstream\":"
                 " \"payments\", \"path\": \"/p\"}}}}", ok[i]);
        json_t *j = route_json(text);
        tern__gw_aggregate *a;
        CHECK_EQ(tern__gw_aggregate_new(j, &fx.env, &a, NULL, 0), 0);
        tern__gw_aggregate_free(a);
        json_decref(j);
    }
    tern__gw_aggregate_free(NULL);
}

static int run(void *arg)
{
    (void)arg;
    fixture_start();
    if (getenv("TERN_TEST_SCALE"))
        part_ms = 1000;
    char route[1024];
    snprintf(route, sizeof route, order_route, 2LL * part_ms * TERN_MS);   /* integer ns */
    tern__gw_aggregate *as[] = {mount(route, "/orders/:id"), mount(down_route, "/down/:id")};
    http_start(&fx.gw);
    every_part_answers_in_parallel();
    a_slow_or_failing_part_is_left_out_and_named();
    every_part_failing_is_502();
    bad_aggregates_are_refused_with_the_key();
    fixture_stop();
    for (size_t i = 0; i < sizeof as / sizeof *as; i++)
        tern__gw_aggregate_free(as[i]);
    return 0;
}

static void aggregation_end_to_end(void)
{
    run_ok(run, NULL, 2);
}

TESTS(T(aggregation_end_to_end))
