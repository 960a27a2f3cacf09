/*
 * test_http_server_errors.c - errors: a handler's (500 before streaming, a
 * cut chunked body after), the status a body read's error maps to, and a
 * programmer's (a NULL object aborts naming the function).  The fixture is
 * http_server_fixture.h.
 */
#include "check.h"

#include <tern/http_client.h>

#include "http_server_fixture.h"

SERVER_TEST(handler_error_before_writing_answers_500_and_keeps_the_conn)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    for (int i = 0; i < 2; i++) {
        get(k, "/fail", &r);
        CHECK_EQ(r.status, 500);
        CHECK_STR(r.reason, "Internal Server Error");
        CHECK(hdr(&r, "X-Partial") == NULL);        /* its headers are dropped */
        CHECK(hdr(&r, "Connection") == NULL);
        CHECK_MEM(r.body, r.body_len, "500 Internal Server Error\n");
        resp_free(&r);
        get(k, "/plaintext", &r);                   /* the same connection goes on */
        CHECK_EQ(r.status, 200);
        CHECK_MEM(r.body, r.body_len, "Hello, World!");
        resp_free(&r);
    }
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 1);
    CHECK_EQ(srv_stats(t).requests, 4);
    srv_stop(t);
    return 0;
}

SERVER_TEST(handler_error_after_streaming_cuts_the_chunked_body)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /failstream HTTP/1.1\r\nHost: t\r\n\r\n");
    resp r;
    CHECK_R(cl_head(k, &r));
    CHECK_EQ(r.status, 200);
    CHECK(r.chunked);
    int rc = cl_body(k, &r, false);
    CHECK_EQ(rc, RS_TRUNC);                 /* no last chunk: the client knows */
    CHECK(!strncmp(r.body, "abc", 3));     /* what was flushed arrived */
    resp_free(&r);
    cl_close(k);
    /* other connections are not affected */
    once(t->addr, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    srv_stop(t);
    return 0;
}

static void error_status_maps_body_errors(void)
{
    /* with no request, a code is never the client's body's */
    CHECK_EQ(tern_http_error_status(NULL, -EMSGSIZE), 502);
    CHECK_EQ(tern_http_error_status(NULL, -EBADMSG), 502);
    CHECK_EQ(tern_http_error_status(NULL, -ECONNRESET), 502);
    CHECK_EQ(tern_http_error_status(NULL, -EPROTO), 502);
    CHECK_EQ(tern_http_error_status(NULL, -ETIMEDOUT), 504);
    CHECK_EQ(tern_http_error_status(NULL, -EAGAIN), 503);
    const int others[] = {-ENOMEM, -EIO, -EINVAL, -ECANCELED, -1, EMSGSIZE, EBADMSG};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        CHECK_EQ(tern_http_error_status(NULL, others[i]), 500);
}

/* ---- a downstream's failures are not the client's ------------------------ */

/* Sends a byte, then drips nothing for 2 s (until its client gives up). */
static int h_drip(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_http_resp_write(w, "a", 1);
    CHECK_EQ(tern_http_resp_flush(w), 0);
    tern_ctx_sleep(2 * TERN_SEC, tern_http_req_ctx(r));
    return tern_http_resp_write(w, "b", 1) < 0 ? -EIO : 0;
}

/* A gateway: GET /gw?to=<path of the app server> reads its body (at most
 * 1000 bytes, within 300 ms) and returns whatever error it got, as a
 * handler that just passes errors up would. */
static int h_gateway(tern_http_req *r, tern_http_resp *w, void *arg)
{
    const char *down = arg;
    char url[256];
    snprintf(url, sizeof url, "http://%s%s", down, tern_http_req_query(r, "to"));
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(tern_http_req_ctx(r), 300 * TERN_MS, &ctx), 0);
    tern_http_client_response *resp = NULL;
    int rc = tern_http_client_do(c, &(tern_http_client_request){.url = url}, &resp, ctx);
    if (rc == 0) {
        const char *data;
        size_t len;
        rc = tern_http_client_response_body(resp, 1000, &data, &len);
        if (rc == 0)
            rc = tern_http_resp_send(w, 200, "text/plain", data, len);
    }
    tern_http_client_response_free(resp);
    tern_ctx_free(ctx);
    tern_http_client_free(c);
    return rc;
}

SERVER_TEST(downstream_body_errors_answer_502_or_504)
{
    (void)arg;
    tern_http_router *drt = app_router();
    CHECK_EQ(tern_http_router_handle(drt, "GET", "/drip", h_drip, NULL), 0);
    tern_http_server_options dopt = {.max_body_bytes = APP_MAX_BODY};
    tsrv *down = srv_start(&dopt, drt);
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/gw", h_gateway, down->addr), 0);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    resp r;
    /* a body over the gateway's limit: the downstream's fault, not a 413 */
    once(t->addr, "GET /gw?to=/big HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 502);
    resp_free(&r);
    /* a body cut short (the last chunk never comes) */
    once(t->addr, "GET /gw?to=/failstream HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 502);
    resp_free(&r);
    /* a body that drips past the deadline */
    once(t->addr, "GET /gw?to=/drip HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 504);
    resp_free(&r);
    /* and a good one still passes */
    once(t->addr, "GET /gw?to=/plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    srv_stop(t);
    srv_stop(down);
    return 0;
}

/* ---- a path no handler can use ------------------------------------------ */

SERVER_TEST(malformed_path_answers_400_not_a_handler_error)
{
    (void)arg;
    /* examples/hello's route: its handler puts :id into JSON, which an
     * invalid UTF-8 string would fail with a 500 */
    tern_http_router *rt = app_router();
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/users/:id", h_fail, NULL), 0);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    const char *bad[] = {"/users/%FF", "/users/%C0%AF", "/users/%ED%A0%80", "/users/%zz",
                         "/users/%4", "/users/a%00b"};
    cl *k = cl_dial(t->addr);
    resp r;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", bad[i]);
        cl_send(k, req);
        CHECK_R(cl_response(k, &r, false));
        CHECK_EQ(r.status, 400);
        resp_free(&r);
    }
    /* the connection goes on, and valid UTF-8 still reaches the handler */
    get(k, "/acc/%C3%A9t%C3%A9", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* ---- NULL objects: a message naming the function, not a SIGSEGV ---------- */

static int null_case;

static void null_child(void)
{
    struct tern_http_server_stats st;
    tern_http_client_response *resp = NULL;
    tern_http_client_request req = {.url = "http://127.0.0.1:1/"};
    switch (null_case) {
    case 0: (void)tern_http_server_serve(NULL, NULL); break;
    case 1: (void)tern_http_server_shutdown(NULL, NULL); break;
    case 2: (void)tern_http_server_stats(NULL, &st); break;
    case 3: (void)tern_http_router_handle(NULL, "GET", "/", h_tag, NULL); break;
    case 4: (void)tern_http_group_handle(NULL, "GET", "/", h_tag, NULL); break;
    case 5: (void)tern_http_client_do(NULL, &req, &resp, NULL); break;
    case 6: (void)tern_http_client_response_status(NULL); break;
    }
}

static void http_null_objects_abort_naming_the_function(void)
{
    static const char *const want[] = {
        "tern: tern_http_server_serve: s is NULL",
        "tern: tern_http_server_shutdown: s is NULL",
        "tern: tern_http_server_stats: s is NULL",
        "tern: tern_http_router_handle: rt is NULL",
        "tern: tern_http_group_handle: g is NULL",
        "tern: tern_http_client_do: c is NULL",
        "tern: tern_http_client_response_status: r is NULL",
    };
    for (null_case = 0; null_case < 7; null_case++) {
        child_result r = run_child(null_child);
        CHECK(!r.exited && r.sig == SIGABRT);
        CHECK(strstr(r.err, want[null_case]) != NULL);
    }
    /* freeing NULL is no error */
    tern_http_server_free(NULL);
    tern_http_router_free(NULL);
    tern_http_client_free(NULL);
    tern_http_client_response_free(NULL);
}

TESTS(T(handler_error_before_writing_answers_500_and_keeps_the_conn),
      T(handler_error_after_streaming_cuts_the_chunked_body), T(error_status_maps_body_errors),
      T(downstream_body_errors_answer_502_or_504), T(malformed_path_answers_400_not_a_handler_error),
      T(http_null_objects_abort_naming_the_function))
