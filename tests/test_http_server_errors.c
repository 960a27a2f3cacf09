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
    CHECK_EQ(tern_http_error_status(-EMSGSIZE), 413);
    CHECK_EQ(tern_http_error_status(-EBADMSG), 400);
    const int others[] = {-ENOMEM, -EIO, -ETIMEDOUT, -ECONNRESET, -EINVAL, -1, EMSGSIZE, EBADMSG};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        CHECK_EQ(tern_http_error_status(others[i]), 500);
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
      T(http_null_objects_abort_naming_the_function))
