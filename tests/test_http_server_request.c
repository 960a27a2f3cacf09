/*
 * test_http_server_request.c - the request as a handler sees it: the
 * accessors (method, target, path, query, cookies, headers, params, forms,
 * JSON), and the request's context (replaced, and values added before it
 * exists).  The fixture is http_server_fixture.h.
 */
#include "check.h"

#include "http_server_fixture.h"

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    CHECK(v);
    return json_is_null(v) ? NULL : json_string_value(v);
}

SERVER_TEST(req_accessors_read_path_query_cookies_headers_forms_and_json)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "GET /acc/a%20b?name=J%C3%B6rg+X&empty=&dup=1&dup=2&nokey HTTP/1.1\r\n"
                 "Host: t\r\nX-Custom:   v1  \r\nCookie: a=1; sess=\"abc\"; b=2\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    json_error_t err;
    json_t *v = json_loadb(r.body, r.body_len, 0, &err);
    CHECK(v);
    CHECK_STR(jstr(v, "method"), "GET");
    CHECK_STR(jstr(v, "target"), "/acc/a%20b?name=J%C3%B6rg+X&empty=&dup=1&dup=2&nokey");
    CHECK_STR(jstr(v, "path"), "/acc/a b");
    CHECK_STR(jstr(v, "raw"), "name=J%C3%B6rg+X&empty=&dup=1&dup=2&nokey");
    CHECK_STR(jstr(v, "route"), "/acc/:id");
    CHECK_STR(jstr(v, "id"), "a b");
    CHECK(jstr(v, "noparam") == NULL);
    CHECK_STR(jstr(v, "name"), "J\xc3\xb6rg X");
    CHECK_STR(jstr(v, "empty"), "");
    CHECK_STR(jstr(v, "dup"), "1");
    CHECK_STR(jstr(v, "nokey"), "");
    CHECK(jstr(v, "missing") == NULL);
    CHECK_STR(jstr(v, "sess"), "abc");
    CHECK_STR(jstr(v, "b"), "2");
    CHECK(jstr(v, "nocookie") == NULL);
    CHECK_STR(jstr(v, "hdr"), "v1");
    CHECK(jstr(v, "nohdr") == NULL);
    CHECK_EQ(json_integer_value(json_object_get(v, "minor")), 1);
    CHECK_EQ(json_integer_value(json_object_get(v, "cl")), -1);
    CHECK_EQ(json_integer_value(json_object_get(v, "nh")), 3);
    CHECK_STR(jstr(v, "h0"), "Host");
    CHECK_STR(jstr(v, "v0"), "t");
    json_decref(v);
    resp_free(&r);

    /* an HTTP/1.0 request without a query */
    cl_send(k, "GET /acc/7 HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    v = json_loadb(r.body, r.body_len, 0, &err);
    CHECK(v);
    CHECK_STR(jstr(v, "raw"), "");
    CHECK(jstr(v, "name") == NULL);
    CHECK_EQ(json_integer_value(json_object_get(v, "minor")), 0);
    CHECK_EQ(json_integer_value(json_object_get(v, "cl")), 0);
    json_decref(v);
    resp_free(&r);

    /* a form */
    roundtrip(k, "POST /form HTTP/1.1\r\nHost: t\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\n\r\n"
                 "x=1&y=hello+world&z=%21&", &r);
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "x=1|y=hello world|z=!|m=(null)");
    resp_free(&r);
    /* not a form: no fields (the body is drained) */
    roundtrip(k, "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 3\r\n\r\nx=1", &r);
    CHECK_MEM(r.body, r.body_len, "x=(null)|y=(null)|z=(null)|m=(null)");
    resp_free(&r);

    /* JSON in and out */
    roundtrip(k, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 "Content-Length: 17\r\n\r\n{\"n\": 41, \"s\": 1}", &r);
    CHECK_EQ(r.status, 201);
    CHECK_STR(r.reason, "Created");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    CHECK_MEM(r.body, r.body_len, "{\"n\":42,\"ok\":true,\"list\":[1,2],\"s\":\"a\\\"b\"}");
    resp_free(&r);
    roundtrip(k, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n{nop}", &r);
    CHECK_EQ(r.status, 400);
    CHECK_MEM(r.body, r.body_len, "bad json\n");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* A JSON body nested n deep: n '[' then n ']' (closed), or n '[' alone. */
static char *deep_json_request(size_t n, bool closed)
{
    size_t body = closed ? 2 * n : n;
    char *req = malloc(body + 256);
    CHECK(req);
    int h = snprintf(req, 256, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\n\r\n", body);
    memset(req + h, '[', n);
    if (closed)
        memset(req + h + n, ']', n);
    req[(size_t)h + body] = '\0';
    return req;
}

/* jansson recurses per level: a deep body used to overflow the
 * connection's 64 KiB stack (~550 levels were enough) and abort the whole
 * process.  Refused with 400 before parsing; the limit itself parses. */
SERVER_TEST(req_json_refuses_deep_nesting_and_the_server_survives)
{
    (void)arg;
    tern_http_server_options o = {.max_body_bytes = 1024 * 1024};
    tsrv *t = app_start(&o);
    cl *k = cl_dial(t->addr);
    resp r;
    struct {
        size_t n;
        bool closed;
        int status;
    } cases[] = {
        {100000, false, 400},
        {100000, true, 400},
        {TERN_HTTP_JSON_MAX_DEPTH + 1, true, 400},
        {TERN_HTTP_JSON_MAX_DEPTH, true, 201},     /* exactly at the limit: parsed */
        {1000, true, 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *req = deep_json_request(cases[i].n, cases[i].closed);
        roundtrip(k, req, &r);
        free(req);
        CHECK_EQ(r.status, cases[i].status);
        resp_free(&r);
    }
    /* the connection and the server are still there */
    roundtrip(k, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n{\"n\": 1}", &r);
    CHECK_EQ(r.status, 201);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Replace the request's context seven times (each a child of the one
 * before), then once too often. */
static int h_ctx(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    CHECK_EQ(tern_http_req_set_ctx(r, NULL), -EINVAL);
    tern_ctx *base = tern_http_req_ctx(r);
    CHECK(base && tern_http_req_ctx(r) == base);
    tern_ctx *chain[7];
    for (int i = 0; i < 7; i++) {
        CHECK_EQ(tern_ctx_with_cancel(tern_http_req_ctx(r), &chain[i]), 0);
        CHECK(chain[i]);
        CHECK_EQ(tern_http_req_set_ctx(r, chain[i]), 0);
        CHECK(tern_http_req_ctx(r) == chain[i]);
    }
    tern_ctx *extra;
    CHECK_EQ(tern_ctx_with_cancel(tern_http_req_ctx(r), &extra), 0);
    CHECK_EQ(tern_http_req_set_ctx(r, extra), -ENOSPC);
    CHECK(tern_http_req_ctx(r) == chain[6]);
    tern_ctx_free(extra);                   /* refused: still ours */
    /* the earlier ones stay valid; cancelling one ends its descendants */
    tern_ctx_cancel(chain[3]);
    CHECK_EQ(tern_ctx_err(tern_http_req_ctx(r)), -ECANCELED);
    CHECK_EQ(tern_ctx_err(chain[2]), 0);
    CHECK_EQ(tern_ctx_err(base), 0);
    return tern_http_resp_text(w, 200, "ok");
}

SERVER_TEST(req_set_ctx_replaces_and_counts_per_request)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_ctx};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    /* twice on one connection: the count and the contexts are per request
     * (the request frees them: ASan's leak check would see otherwise) */
    for (int i = 0; i < 2; i++) {
        resp r;
        get(k, "/", &r);
        CHECK_EQ(r.status, 200);
        CHECK_MEM(r.body, r.body_len, "ok");
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Values added before the context exists wait for it, in order (the
 * last added is nearest); after, they wrap it at once. */
static const char k1, k2, k3, k4, k5, k6;

static int h_ctx_values(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k1, (void *)"one"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k2, (void *)"two"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k3, (void *)"three"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k1, (void *)"uno"), 0);     /* shadows */
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k4, (void *)"four"), -ENOSPC);
    tern_ctx *c = tern_http_req_ctx(r);
    CHECK(c && tern_http_req_ctx(r) == c);
    CHECK_STR(tern_ctx_value(c, &k1), "uno");
    CHECK_STR(tern_ctx_value(c, &k2), "two");
    CHECK_STR(tern_ctx_value(c, &k3), "three");
    CHECK(tern_ctx_value(c, &k4) == NULL);
    CHECK_EQ(tern_ctx_err(c), 0);
    /* now the context exists: a value wraps it, and is the request's */
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k5, (void *)"five"), 0);
    tern_ctx *c2 = tern_http_req_ctx(r);
    CHECK(c2 != c);
    CHECK_STR(tern_ctx_value(c2, &k5), "five");
    CHECK_STR(tern_ctx_value(c2, &k2), "two");
    /* the owned contexts: 1 cancel + 4 values + this = 6 of 8; two more fit */
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k6, (void *)"six"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k6, (void *)"seven"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k6, (void *)"eight"), -ENOSPC);
    CHECK_STR(tern_ctx_value(tern_http_req_ctx(r), &k6), "seven");
    return tern_http_resp_text(w, 200, "ok");
}

/* A handler that never asks for the context sees none of that cost, and
 * the next request on the connection starts with no values. */
static int h_ctx_values_unasked(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *q = tern_http_req_query(r, "ask");
    if (q) {
        CHECK(tern_ctx_value(tern_http_req_ctx(r), &k1) == NULL);
        return tern_http_resp_text(w, 200, "asked");
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(tern_http_req_add_ctx_value(r, &k1, (void *)"x"), 0);
    return tern_http_resp_text(w, 200, "ok");
}

SERVER_TEST(req_ctx_values_wait_for_the_context)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_ctx_values};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    for (int i = 0; i < 2; i++) {
        resp r;
        get(k, "/", &r);
        CHECK_EQ(r.status, 200);
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    o.handler = h_ctx_values_unasked;
    t = srv_start(&o, NULL);
    k = cl_dial(t->addr);
    resp r;
    get(k, "/", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    get(k, "/?ask=1", &r);
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "asked");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* RFC 9112 3.2: OPTIONS * is about the server (200 and Allow, as Go, no
 * handler); an absolute-form target is served as its path when it names
 * the Host; Host must be a host[:port]. */
SERVER_TEST(target_forms_and_host_values)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK(hdr(&r, "Allow") && strstr(hdr(&r, "Allow"), "GET"));
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);
    roundtrip(k, "GET http://t/plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    /* refused by the parser: the connection closes after the 400 */
    const char *bad[] = {"GET http://other/plaintext HTTP/1.1\r\nHost: t\r\n\r\n",
                         "GET /plaintext HTTP/1.1\r\nHost: a b\r\n\r\n",
                         "GET * HTTP/1.1\r\nHost: t\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        once(t->addr, bad[i], &r);
        CHECK_EQ(r.status, 400);
        resp_free(&r);
    }
    srv_stop(t);
    return 0;
}

TESTS(T(target_forms_and_host_values), T(req_accessors_read_path_query_cookies_headers_forms_and_json),
      T(req_json_refuses_deep_nesting_and_the_server_survives),
      T(req_set_ctx_replaces_and_counts_per_request), T(req_ctx_values_wait_for_the_context))
