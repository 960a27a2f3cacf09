/*
 * test_gateway_transcode.c - the gateway's REST -> gRPC routes
 * (src/gateway/transcode.c through policy.h), end to end: an HTTP client
 * against a tern HTTP server whose router runs the policy, which calls a
 * real tern gRPC server (gateway_transcode_fixture.h).  The request message
 * from path parameters, query and JSON body; the response as proto3 JSON;
 * gRPC errors as HTTP statuses; forwarded headers and the traceparent as
 * metadata; the caller's deadline; and the configuration errors _new
 * reports.
 */
#include "check.h"

#include "gateway_transcode_fixture.h"

static const char get_route[] =
    "{\"name\": \"item\", \"match\": {\"path\": \"/items/:id\", \"methods\": [\"GET\"]},"
    " \"grpc\": {\"upstream\": \"items\", \"method\": \"terntest.json.v1.Items/GetItem\"}}";
static const char create_route[] =
    "{\"match\": {\"path\": \"/shelves/:shelf/items\"},"
    " \"grpc\": {\"upstream\": \"items\", \"method\": \"/terntest.json.v1.Items/CreateItem\"}}";
static const char down_route[] =
    "{\"match\": {\"path\": \"/down/:id\"},"
    " \"grpc\": {\"upstream\": \"items_down\", \"method\": \"terntest.json.v1.Items/GetItem\"}}";

/* the route's handler: what the core does for a grpc route, with the
 * X-User header forwarded as x-user-id (as auth's forward_claims would) */
static int serve(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern__gw_fwd fwd = {0};
    const char *u = tern_http_req_header(r, "x-user");
    if (u)
        CHECK_EQ(tern__gw_fwd_add(&fwd, "x-user-id", u), 0);
    return tern__gw_transcode_serve(arg, r, w, &fwd, tern_http_req_ctx(r));
}

/* the same under a 200 ms route timeout */
static int serve_200ms(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(tern_http_req_ctx(r), 200 * TERN_MS, &c), 0);
    int rc = tern__gw_transcode_serve(arg, r, w, NULL, c);
    tern_ctx_free(c);
    return rc;
}

/* the same inside a span of the gateway's own (as its tracing middleware
 * makes): the call carries that span's traceparent, not the client's */
static char traced_ids[64];
static int serve_traced(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern_trace_span_context client;
    const tern_trace_span_context *parent = NULL;
    if (tern_trace_parse_traceparent(tern_http_req_header(r, "traceparent"), &client) == 0)
        parent = &client;
    tern_trace_span *s;
    CHECK_EQ(tern_trace_span_start("gateway", TERN_TRACE_KIND_SERVER, parent, &s), 0);
    snprintf(traced_ids, sizeof traced_ids, "%s-%s", tern_trace_span_trace_id(s), tern_trace_span_span_id(s));
    tern_ctx *c;
    CHECK_EQ(tern_trace_ctx_with_span(tern_http_req_ctx(r), s, &c), 0);
    int rc = tern__gw_transcode_serve(arg, r, w, NULL, c);
    tern_ctx_free(c);
    tern_trace_span_free(s);
    return rc;
}

static tern__gw_transcode *mount(const char *route, const char *method, const char *pattern,
                                 tern_http_handler_fn *h)
{
    json_t *j = route_json(route);
    tern__gw_transcode *t;
    char err[256] = "";
    int rc = tern__gw_transcode_new(j, &fx.env, &t, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "transcode_new: %s\n", err);
    CHECK_EQ(rc, 0);
    json_decref(j);
    CHECK_EQ(tern_http_router_handle(fx.gw.rt, method, pattern, h, t), 0);
    return t;
}

static const char tp[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

static void path_query_and_metadata_fill_the_request(void)
{
    json_t *j;
    const char *h[] = {"X-User", "u-17", "traceparent", tp, NULL};
    /* repeated from repeated parameters, enums by name, numbers from text;
     * a parameter that names no field is ignored */
    CHECK_EQ(gw_call("GET", "/items/42?limit=5&tags=a&tags=b%20c&color=GREEN&cachebuster=1", NULL, h, &j), 200);
    check_json(j, "{\"id\": \"42\", \"name\": \"item 42\", \"priceCents\": \"9007199254740993\","
                  " \"tags\": [\"a\", \"b c\"], \"color\": \"GREEN\", \"limit\": 5, \"user\": \"u-17\","
                  " \"traceparent\": \"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}");
    json_decref(j);
    /* inside the gateway's span: its trace id, its span id */
    const char *h1[] = {"traceparent", tp, NULL};
    CHECK_EQ(gw_call("GET", "/traced/5", NULL, h1, &j), 200);
    const char *sent = json_string_value(json_object_get(j, "traceparent"));
    CHECK(sent && !strncmp(sent, "00-0af7651916cd43dd8448eb211c80319c-", 36));
    CHECK(strstr(sent, traced_ids) == sent + 3);
    CHECK(strcmp(sent, tp) != 0);
    json_decref(j);
    /* Idempotency-Key passes as metadata; a client's own x-user-id (or
     * anything else) does not: only the gateway's fwd sets it */
    const char *h2[] = {"Idempotency-Key", "k-1", "X-User-Id", "root", "Grpc-Metadata-X-User-Id", "root", NULL};
    CHECK_EQ(gw_call("POST", "/shelves/s9/items", NULL, h2, &j), 200);
    check_json(j, "{\"id\": \"s9/-\", \"idempotencyKey\": \"k-1\"}");
    json_decref(j);
    /* the path wins over the query; enum by number; defaults left out */
    CHECK_EQ(gw_call("GET", "/items/a%20b?id=nope&color=1", NULL, NULL, &j), 200);
    check_json(j, "{\"id\": \"a b\", \"name\": \"item a b\", \"priceCents\": \"9007199254740993\","
                  " \"color\": \"RED\"}");
    json_decref(j);
}

static void the_body_then_query_then_path(void)
{
    json_t *j;
    /* shelf from the path beats the body's; nested fields by JSON name */
    CHECK_EQ(gw_call("POST", "/shelves/s1/items",
                     "{\"shelf\": \"other\", \"item\": {\"id\": \"x\", \"priceCents\": 250, \"tags\": [\"t\"]}}",
                     NULL, &j), 200);
    check_json(j, "{\"id\": \"s1/x\", \"priceCents\": \"250\", \"tags\": [\"t\"]}");
    json_decref(j);
    /* the query reaches nested fields by dotted names, over the body */
    CHECK_EQ(gw_call("POST", "/shelves/s2/items?item.name=from%20query&item.limit=3",
                     "{\"item\": {\"id\": \"y\", \"name\": \"from body\", \"color\": \"GREEN\"}}", NULL, &j),
             200);
    check_json(j, "{\"id\": \"s2/y\", \"name\": \"from query\", \"limit\": 3, \"color\": \"GREEN\"}");
    json_decref(j);
    /* the proto name in the body is merged with the query's too */
    CHECK_EQ(gw_call("PUT", "/shelves/s3/items?item.limit=4", "{\"item\": {\"price_cents\": \"7\"}}", NULL, &j),
             200);
    check_json(j, "{\"id\": \"s3/\", \"priceCents\": \"7\", \"limit\": 4}");
    json_decref(j);
    /* no body at all: the path alone (parameters that name no field,
     * nested or not, make no empty item on the way) */
    CHECK_EQ(gw_call("POST", "/shelves/s4/items?item.nope=1&item.=2&shelf.x=3", NULL, NULL, &j), 200);
    check_json(j, "{\"id\": \"s4/-\"}");
    json_decref(j);
}

static void bad_requests_are_400_naming_the_field(void)
{
    json_t *j;
    CHECK_EQ(gw_call("GET", "/items/1?limit=abc", NULL, NULL, &j), 400);
    check_json(j, "{\"error\": \"limit: \\\"abc\\\" is not an integer\", \"status\": 400,"
                  " \"code\": \"INVALID_ARGUMENT\"}");
    json_decref(j);
    CHECK_EQ(gw_call("GET", "/items/1?color=BLUE", NULL, NULL, &j), 400);
    CHECK_STR(json_string_value(json_object_get(j, "error")),
              "color: \"BLUE\" is not a value of terntest.json.v1.Color");
    json_decref(j);
    CHECK_EQ(gw_call("POST", "/shelves/s/items", "{\"item\": {\"bogus\": 1}}", NULL, &j), 400);
    CHECK_STR(json_string_value(json_object_get(j, "error")), "item.bogus: no such field in terntest.json.v1.Item");
    json_decref(j);
    CHECK_EQ(gw_call("POST", "/shelves/s/items", "{not json", NULL, &j), 400);
    CHECK_STR(json_string_value(json_object_get(j, "error")), "the body is not JSON");
    json_decref(j);
    CHECK_EQ(gw_call("POST", "/shelves/s/items", "[1, 2]", NULL, &j), 400);
    CHECK_STR(json_string_value(json_object_get(j, "error")), "the body must be a JSON object");
    json_decref(j);
    CHECK_EQ(gw_call("GET", "/items/1?tags=%zz", NULL, NULL, &j), 400);
    json_decref(j);
    /* past the server's body limit (64 KiB here): a declared length is
     * refused by the server before the route runs; a chunked one would be
     * the route's -EMSGSIZE, answered 413 the same */
    char *big = malloc(100000);
    memset(big, ' ', 99999);
    memcpy(big, "{\"shelf\": \"", 10);
    memcpy(big + 99990, "\"}", 2);
    big[99999] = '\0';
    CHECK_EQ(gw_call("POST", "/shelves/s/items", big, NULL, &j), 413);
    json_decref(j);
    free(big);
}

static void grpc_errors_become_http_statuses(void)
{
    static const struct {
        int code, status;
        const char *name;
    } cases[] = {
        {5, 404, "NOT_FOUND"}, {3, 400, "INVALID_ARGUMENT"}, {7, 403, "PERMISSION_DENIED"},
        {16, 401, "UNAUTHENTICATED"}, {8, 429, "RESOURCE_EXHAUSTED"}, {6, 409, "ALREADY_EXISTS"},
        {9, 400, "FAILED_PRECONDITION"}, {12, 501, "UNIMPLEMENTED"}, {14, 503, "UNAVAILABLE"},
        {13, 500, "INTERNAL"}, {2, 500, "UNKNOWN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[64], want[256];
        snprintf(path, sizeof path, "/items/7?fail_code=%d", cases[i].code);
        json_t *j;
        CHECK_EQ(gw_call("GET", path, NULL, NULL, &j), cases[i].status);
        snprintf(want, sizeof want, "{\"error\": \"item 7: failing as asked\", \"status\": %d, \"code\": \"%s\"}",
                 cases[i].status, cases[i].name);
        check_json(j, want);
        json_decref(j);
    }
}

static void deadlines_and_dead_upstreams(void)
{
    json_t *j;
    int64_t t0 = tern_now();
    CHECK_EQ(gw_call("GET", "/slow/1?sleep_ms=3000", NULL, NULL, &j), 504);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    CHECK_STR(json_string_value(json_object_get(j, "code")), "DEADLINE_EXCEEDED");
    json_decref(j);
    /* within the deadline it answers */
    CHECK_EQ(gw_call("GET", "/slow/1?sleep_ms=10", NULL, NULL, &j), 200);
    json_decref(j);
    CHECK_EQ(gw_call("GET", "/down/1", NULL, NULL, &j), 503);
    CHECK_STR(json_string_value(json_object_get(j, "code")), "UNAVAILABLE");
    json_decref(j);
}

/* _new's errors name the route and the key */
static void bad_routes_are_refused_with_the_key(void)
{
    static const struct {
        const char *route, *err;
    } cases[] = {
        {"{\"name\": \"r\", \"grpc\": 1}", "route \"r\": grpc: must be a mapping {upstream, method}"},
        {"{\"name\": \"r\", \"grpc\": {\"method\": \"terntest.json.v1.Items/GetItem\"}}",
         "route \"r\": grpc.upstream: must be the name of a gRPC upstream"},
        {"{\"match\": {\"path\": \"/x\"}, \"grpc\": {\"upstream\": \"items\"}}",
         "route \"/x\": grpc.method: must be \"package.Service/Method\""},
        {"{\"name\": \"r\", \"grpc\": {\"upstream\": \"items\", \"method\": \"a.B/C\", \"x\": 1}}",
         "route \"r\": grpc.x: unknown key (grpc takes upstream and method)"},
        {"{\"name\": \"r\", \"grpc\": {\"upstream\": \"items\", \"method\": \"a.B/C\"}}",
         "route \"r\": grpc.method: \"a.B/C\" is not known to this program (its service is not registered with "
         "tern_grpc_json_register)"},
        {"{\"name\": \"r\", \"grpc\": {\"upstream\": \"items\", \"method\": \"terntest.json.v1.Items/Watch\"}}",
         "route \"r\": grpc.method: \"terntest.json.v1.Items/Watch\" streams; only unary methods are transcoded"},
        {"{\"name\": \"r\", \"grpc\": {\"upstream\": \"payments\", \"method\": \"terntest.json.v1.Items/GetItem\"}}",
         "route \"r\": grpc.upstream: no gRPC upstream called \"payments\" (protocol: grpc)"},
        {"{\"match\": {\"path\": \"/items/:nope\"}, \"grpc\": {\"upstream\": \"items\", \"method\": "
         "\"terntest.json.v1.Items/GetItem\"}}",
         "route \"/items/:nope\": match.path: parameter \"nope\" is not a field of terntest.json.v1.GetItemRequest"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *j = route_json(cases[i].route);
        tern__gw_transcode *t = (tern__gw_transcode *)1;
        char err[512] = "";
        CHECK_EQ(tern__gw_transcode_new(j, &fx.env, &t, err, sizeof err), -EINVAL);
        CHECK(t == NULL);
        CHECK_STR(err, cases[i].err);
        /* no error buffer: still refused */
        CHECK_EQ(tern__gw_transcode_new(j, &fx.env, &t, NULL, 0), -EINVAL);
        json_decref(j);
    }
    tern__gw_transcode_free(NULL);
}

static int run(void *arg)
{
    (void)arg;
    fixture_start();
    tern__gw_transcode *ts[] = {
        mount(get_route, "GET", "/items/:id", serve),
        mount(create_route, "POST", "/shelves/:shelf/items", serve),
        mount(create_route, "PUT", "/shelves/:shelf/items", serve),
        mount("{\"match\": {\"path\": \"/slow/:id\"}, \"grpc\": {\"upstream\": \"items\", \"method\": "
              "\"terntest.json.v1.Items/GetItem\"}}", "GET", "/slow/:id", serve_200ms),
        mount(down_route, "GET", "/down/:id", serve),
        mount("{\"match\": {\"path\": \"/traced/:id\"}, \"grpc\": {\"upstream\": \"items\", \"method\": "
              "\"terntest.json.v1.Items/GetItem\"}}", "GET", "/traced/:id", serve_traced),
    };
    fx.gw.max_body = 64 << 10;
    http_start(&fx.gw);
    path_query_and_metadata_fill_the_request();
    the_body_then_query_then_path();
    bad_requests_are_400_naming_the_field();
    grpc_errors_become_http_statuses();
    deadlines_and_dead_upstreams();
    bad_routes_are_refused_with_the_key();
    fixture_stop();
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++)
        tern__gw_transcode_free(ts[i]);
    return 0;
}

static void transcoding_end_to_end(void)
{
    run_ok(run, NULL, 2);
}

TESTS(T(transcoding_end_to_end))
