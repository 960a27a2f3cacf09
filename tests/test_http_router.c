/*
 * test_http_router.c - the router, through a real server: routes and their
 * priority, parameters and catch-alls, 404 and 405 with Allow, groups and
 * the order their middleware runs in, a group serving its own prefix, and
 * registration errors.  The fixture is http_server_fixture.h.
 */
#include "check.h"

#include "http_server_fixture.h"

static void expect_body(cl *k, const char *method, const char *path, int status, const char *body)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
    resp r;
    roundtrip(k, req, &r);
    if (r.status != status || r.body_len != strlen(body) || memcmp(r.body, body, r.body_len)) {
        fprintf(stderr, "%s %s: %d \"%s\", expected %d \"%s\"\n", method, path, r.status,
                r.body, status, body);
        abort();
    }
    resp_free(&r);
}

static void expect_405(cl *k, const char *method, const char *path, const char *allow)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
    resp r;
    roundtrip(k, req, &r);
    CHECK_EQ(r.status, 405);
    CHECK_STR(r.reason, "Method Not Allowed");
    CHECK_STR(hdr(&r, "Allow"), allow);
    if (strcmp(method, "HEAD") != 0)
        CHECK_MEM(r.body, r.body_len, "405 Method Not Allowed\n");
    else
        CHECK_STR(hdr(&r, "Content-Length"), "23");     /* of the GET-like answer */
    CHECK(hdr(&r, "Connection") == NULL);     /* an answer, not a broken conn */
    resp_free(&r);
}

SERVER_TEST(router_prefers_static_then_param_then_catch_all_with_404_and_405)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    /* parameters registered before the static routes they compete with */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/users/:id", h_tag, "user"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/users/new", h_tag, "new"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/users/:id", h_tag, "post"), 0);
    /* and after */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/c/d", h_tag, "cd"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/c/:y", h_tag, "cy"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/files/*path", h_tag, "files"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/m/*rest", h_tag, "mrest"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/m/:p", h_tag, "mp"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/b/:x/c", h_tag, "bxc"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/b/y/d", h_tag, "byd"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/thing", h_tag, "thing-get"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "DELETE", "/thing", h_tag, "thing-del"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/postonly", h_tag, "postonly"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "*", "/any", h_tag, "any"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/", h_tag, "root"), 0);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);

    expect_body(k, "GET", "/", 200, "root route=/");
    expect_body(k, "GET", "/users/42", 200, "user id=42 route=/users/:id");
    expect_body(k, "GET", "/users/new", 200, "new route=/users/new");
    expect_body(k, "GET", "/users/newer", 200, "user id=newer route=/users/:id");
    expect_body(k, "GET", "/users/ne", 200, "user id=ne route=/users/:id");
    expect_body(k, "GET", "/users/a%20b", 200, "user id=a b route=/users/:id");
    expect_body(k, "POST", "/users/7", 200, "post id=7 route=/users/:id");
    expect_body(k, "GET", "/c/d", 200, "cd route=/c/d");
    expect_body(k, "GET", "/c/e", 200, "cy y=e route=/c/:y");
    expect_body(k, "GET", "/files/css/a.css", 200, "files path=css/a.css route=/files/*path");
    expect_body(k, "GET", "/files/", 200, "files path= route=/files/*path");
    expect_body(k, "GET", "/m/one", 200, "mp p=one route=/m/:p");
    expect_body(k, "GET", "/m/one/two", 200, "mrest rest=one/two route=/m/*rest");
    expect_body(k, "GET", "/b/y/c", 200, "bxc x=y route=/b/:x/c");   /* backtracks */
    expect_body(k, "GET", "/b/y/d", 200, "byd route=/b/y/d");
    expect_body(k, "PATCH", "/any", 200, "any route=/any");
    expect_body(k, "GET", "/any", 200, "any route=/any");
    expect_body(k, "DELETE", "/thing", 200, "thing-del route=/thing");

    /* 404 */
    expect_body(k, "GET", "/nope", 404, "404 Not Found\n");
    expect_body(k, "GET", "/users/42/extra", 404, "404 Not Found\n");
    expect_body(k, "GET", "/users", 404, "404 Not Found\n");
    expect_body(k, "GET", "/thing/", 404, "404 Not Found\n");
    expect_body(k, "GET", "/b/y", 404, "404 Not Found\n");

    /* 405 with Allow; HEAD listed where GET exists */
    expect_405(k, "PUT", "/users/7", "GET, POST, HEAD");
    expect_405(k, "PUT", "/thing", "GET, DELETE, HEAD");
    expect_405(k, "GET", "/postonly", "POST");
    expect_405(k, "HEAD", "/postonly", "POST");

    /* HEAD is served by GET */
    resp r;
    roundtrip(k, "HEAD /thing HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    char want[16];
    snprintf(want, sizeof want, "%zu", strlen("thing-get route=/thing"));
    CHECK_STR(hdr(&r, "Content-Length"), want);
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);
    CHECK(cl_quiet(k, 10 * TERN_MS));
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* No runtime needed: registration only. */
static void router_refuses_duplicate_and_malformed_patterns(void)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:id", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:id", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/a/:id", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "*", "/a/:id", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, NULL, "/a/:id", h_tag, NULL), -EEXIST);
    /* a parameter named differently at the same place */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:name/x", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:id/x", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/s/*rest", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/s/*other", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/s/*rest", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/dup", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/dup", h_tag, NULL), -EEXIST);
    /* malformed patterns */
    static const char *bad[] = { "", "x", "a/b", "/a/:", "/a/b:c", "/a/*p/b", "/a/*",
                                 "/a/:x:y", "/a/x*y", "/:/b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tern_http_router_handle(rt, "GET", bad[i], h_tag, NULL);
        if (rc != -EINVAL) {
            fprintf(stderr, "pattern \"%s\": %d, expected -EINVAL\n", bad[i], rc);
            abort();
        }
    }
    CHECK_EQ(tern_http_router_handle(rt, "GET", NULL, h_tag, NULL), -EINVAL);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/ok", NULL, NULL), -EINVAL);
    tern_http_router_free(rt);
    tern_http_router_free(NULL);
}

static const char order_key;

static char *order_buf(tern_http_req *r)
{
    char *b = tern_http_req_value(r, &order_key);
    if (!b) {
        b = tern_http_req_alloc(r, 256);
        CHECK(b);
        b[0] = '\0';
        CHECK_EQ(tern_http_req_set_value(r, &order_key, b), 0);
    }
    return b;
}

/* Records "<tag>>" before the rest of the chain and "<tag>" in X-After after. */
static int mw_order(tern_http_req *r, tern_http_resp *w, void *arg)
{
    const char *tag = arg;
    char *b = order_buf(r);
    strcat(b, tag);
    strcat(b, ">");
    int rc = tern_http_next(r, w);
    const char *prev = tern_http_resp_header(w, "X-After");
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s%s%s", prev ? prev : "", prev ? "<" : "", tag);
    CHECK_EQ(tern_http_resp_set_header(w, "X-After", tmp), 0);
    return rc;
}

static int h_order(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    char *b = order_buf(r);
    strcat(b, "h");
    /* the chain is over for the handler */
    CHECK_EQ(tern_http_next(r, w), 0);
    return tern_http_resp_text(w, 200, b);
}

static int my_404(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    return tern_http_resp_printf(w, "custom 404 for %s", tern_http_req_path(r)) < 0 ? -EIO :
           tern_http_resp_set_status(w, 404);
}

static void expect_order(cl *k, const char *method, const char *path, int status,
                         const char *body, const char *after)
{
    char req[256];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
    resp r;
    roundtrip(k, req, &r);
    if (r.status != status || r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) ||
        !hdr(&r, "X-After") || strcmp(hdr(&r, "X-After"), after)) {
        fprintf(stderr, "%s %s: %d \"%s\" X-After \"%s\", expected %d \"%s\" \"%s\"\n", method,
                path, r.status, r.body, hdr(&r, "X-After") ? hdr(&r, "X-After") : "(none)",
                status, body, after);
        abort();
    }
    resp_free(&r);
}

SERVER_TEST(router_groups_run_their_middleware_outermost_first)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    tern_http_group *root = tern_http_router_root(rt);
    CHECK(root);
    CHECK_EQ(tern_http_router_use(rt, mw_order, "root"), 0);
    tern_http_group *bad = root;
    CHECK_EQ(tern_http_group_new(root, "api", &bad), -EINVAL);
    CHECK(bad == NULL);
    CHECK_EQ(tern_http_group_new(root, "/api/", &bad), -EINVAL);
    tern_http_group *api;
    CHECK_EQ(tern_http_group_new(root, "/api", &api), 0);
    CHECK_EQ(tern_http_group_use(api, mw_order, "g1"), 0);
    CHECK_EQ(tern_http_group_use(api, NULL, NULL), -EINVAL);
    tern_http_group *v1;
    CHECK_EQ(tern_http_group_new(api, "/v1", &v1), 0);
    CHECK_EQ(tern_http_group_use(v1, mw_order, "g2a"), 0);
    CHECK_EQ(tern_http_group_use(v1, mw_order, "g2b"), 0);
    tern_http_group *other;
    CHECK_EQ(tern_http_group_new(root, "/other", &other), 0);
    CHECK_EQ(tern_http_group_use(other, mw_order, "o"), 0);
    CHECK_EQ(tern_http_group_handle(v1, "GET", "/ping/:n", h_order, NULL), 0);
    CHECK_EQ(tern_http_group_handle(api, "GET", "/info", h_order, NULL), 0);
    CHECK_EQ(tern_http_group_handle(other, "GET", "/x", h_order, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/top", h_order, NULL), 0);
    /* middleware after routes: refused, on the group and on its parents */
    CHECK_EQ(tern_http_group_use(v1, mw_order, "late"), -EBUSY);
    CHECK_EQ(tern_http_group_use(api, mw_order, "late"), -EBUSY);
    CHECK_EQ(tern_http_router_use(rt, mw_order, "late"), -EBUSY);
    /* a duplicate through a group */
    CHECK_EQ(tern_http_group_handle(api, "GET", "/v1/ping/:n", h_order, NULL), -EEXIST);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);
    expect_order(k, "GET", "/api/v1/ping/3", 200, "root>g1>g2a>g2b>h", "g2b<g2a<g1<root");
    expect_order(k, "GET", "/api/info", 200, "root>g1>h", "g1<root");
    expect_order(k, "GET", "/other/x", 200, "root>o>h", "o<root");
    expect_order(k, "GET", "/top", 200, "root>h", "root");
    /* the root's middleware runs for 404 and 405 too; a group's does not */
    expect_order(k, "GET", "/v1/ping/3", 404, "404 Not Found\n", "root");
    expect_order(k, "GET", "/api/nope", 404, "404 Not Found\n", "root");
    expect_order(k, "POST", "/api/info", 405, "405 Method Not Allowed\n", "root");
    cl_close(k);
    srv_stop(t);        /* frees the router too */

    /* a custom 404, from the router's options */
    CHECK_EQ(tern_http_router_new(&(tern_http_router_options){.not_found = my_404}, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a", h_order, NULL), 0);
    t = srv_start(&o, rt);
    k = cl_dial(t->addr);
    expect_body(k, "GET", "/zz%21", 404, "custom 404 for /zz!");
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(group_serves_its_own_prefix)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    tern_http_group *notes;
    CHECK_EQ(tern_http_group_new(tern_http_router_root(rt), "/notes", &notes), 0);
    CHECK_EQ(tern_http_group_handle(notes, "POST", "", h_tag, "create"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "GET", "", h_tag, "list"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "GET", "/", h_tag, "slash"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "GET", "/:id", h_tag, "one"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "POST", "", h_tag, "again"), -EEXIST);
    /* the root has no prefix to serve: "" is as malformed there as "x" */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "", h_tag, "root"), -EINVAL);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);
    expect_body(k, "POST", "/notes", 200, "create route=/notes");
    expect_body(k, "GET", "/notes", 200, "list route=/notes");
    expect_body(k, "GET", "/notes/", 200, "slash route=/notes/");
    expect_body(k, "GET", "/notes/7", 200, "one id=7 route=/notes/:id");
    expect_body(k, "GET", "/notesx", 404, "404 Not Found\n");
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* The root group's middleware with routes: freeing the router must work.
 * Found: each route kept a pointer past the root's links into its chain's
 * allocation and freed that pointer (free(): invalid pointer). */
static void router_with_root_middleware_frees_cleanly(void)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_use(rt, mw_order, "root"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a", h_order, NULL), 0);
    tern_http_router_free(rt);
}

TESTS(T(router_prefers_static_then_param_then_catch_all_with_404_and_405),
      T(router_refuses_duplicate_and_malformed_patterns),
      T(router_groups_run_their_middleware_outermost_first), T(group_serves_its_own_prefix),
      T(router_with_root_middleware_frees_cleanly))
