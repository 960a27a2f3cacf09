/*
 * test_http_server_conns.c - the server's connections: keep-alive (many
 * requests on one connection, bodies consumed or drained exactly),
 * pipelining, HTTP/1.0, Connection: close, and serving on a listener the
 * caller made (a Unix socket).  The fixture is http_server_fixture.h.
 */
#include "check.h"

#include "http_server_fixture.h"

SERVER_TEST(keep_alive_serves_many_requests_on_one_conn)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    for (int i = 0; i < 5; i++) {
        resp r;
        get(k, "/plaintext", &r);
        CHECK_EQ(r.minor, 1);
        CHECK_EQ(r.status, 200);
        CHECK_STR(r.reason, "OK");
        CHECK_STR(hdr(&r, "Content-Type"), "text/plain");
        CHECK_STR(hdr(&r, "Content-Length"), "13");
        CHECK(hdr(&r, "Connection") == NULL);       /* HTTP/1.1: keep-alive is implied */
        CHECK(hdr(&r, "Server") == NULL);           /* server_header NULL: none */
        CHECK_MEM(r.body, r.body_len, "Hello, World!");
        resp_free(&r);
    }
    /* a POST with a body, then a GET: the body was consumed exactly */
    resp r;
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\n"
                 "Content-Length: 11\r\n\r\nhello world", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Type"), "text/x-test");
    CHECK_MEM(r.body, r.body_len, "hello world");
    resp_free(&r);
    /* a body the handler never reads is drained, and the conn carries on */
    roundtrip(k, "POST /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r);
    CHECK_EQ(r.status, 405);
    resp_free(&r);
    roundtrip(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n12345", &r);
    CHECK_EQ(r.status, 200);
    CHECK(hdr(&r, "Connection") == NULL);
    resp_free(&r);
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    struct tern_http_server_stats st = srv_stats(t);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.requests, 9);
    CHECK_EQ(st.conns, 1);
    CHECK_EQ(st.rejected, 0);
    CHECK(cl_quiet(k, 20 * TERN_MS));
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(pipelined_requests_are_answered_in_order_in_one_batch)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    char all[4096];
    size_t len = 0;
    for (int i = 0; i < 16; i++) {
        if (i % 2 == 0)
            len += (size_t)snprintf(all + len, sizeof all - len,
                                    "GET /acc/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        else
            len += (size_t)snprintf(all + len, sizeof all - len,
                                    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n"
                                    "req-%02d", i);
    }
    cl_sendn(k, all, len);
    /* all 16 answers go out together: one read after a pause gets them all */
    tern_sleep(50 * TERN_MS);
    ssize_t n = cl_fill(k);
    CHECK(n > 0);
    k->frozen = true;
    for (int i = 0; i < 16; i++) {
        resp r;
        int rc = cl_response(k, &r, false);
        if (rc != RS_OK) {
            fprintf(stderr, "response %d of 16: %s (not in the first read of %zd bytes)\n", i,
                    rname(rc), n);
            abort();
        }
        CHECK_EQ(r.status, 200);
        if (i % 2 == 0) {
            json_t *v = json_loadb(r.body, r.body_len, 0, NULL);
            CHECK(v);
            char want[8];
            snprintf(want, sizeof want, "%d", i);
            CHECK_STR(json_string_value(json_object_get(v, "id")), want);
            json_decref(v);
        } else {
            char want[8];
            snprintf(want, sizeof want, "req-%02d", i);
            CHECK_MEM(r.body, r.body_len, want);
        }
        resp_free(&r);
    }
    CHECK_EQ(k->pos, k->len);       /* nothing more */
    k->frozen = false;
    CHECK(cl_quiet(k, 20 * TERN_MS));
    struct tern_http_server_stats st = srv_stats(t);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.requests, 16);
    /* a pipeline that ends mid-request: the complete ones are answered */
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\nGET /plain");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_send(k, "text HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(http10_closes_after_each_response_unless_keep_alive_is_asked)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "GET /plaintext HTTP/1.0\r\n\r\n", &r);
    CHECK_EQ(r.minor, 0);
    CHECK(!strncmp(r.raw_head, "HTTP/1.0 200 OK\r\n", 17));
    CHECK_STR(hdr(&r, "Content-Length"), "13");
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);

    /* keep-alive asked: kept */
    k = cl_dial(t->addr);
    for (int i = 0; i < 3; i++) {
        roundtrip(k, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
        CHECK_EQ(r.minor, 0);
        CHECK_STR(hdr(&r, "Connection"), "keep-alive");
        CHECK_MEM(r.body, r.body_len, "Hello, World!");
        resp_free(&r);
    }
    CHECK(cl_quiet(k, 20 * TERN_MS));
    /* a large body over 1.0: no chunking, it ends at close */
    roundtrip(k, "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
    CHECK_EQ(r.minor, 0);
    CHECK(hdr(&r, "Transfer-Encoding") == NULL);
    CHECK(r.until_close);
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_EQ(r.body_len, BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        CHECK(r.body[i] == big_byte(i));
    resp_free(&r);
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 2);
    srv_stop(t);
    return 0;
}

/* Connection: close is honoured: the answer says close, and nothing after
 * that request is processed (RFC 9112 9.6: "MUST NOT process any further
 * requests received on that connection"), even when already buffered.
 * Found: the serve loop checked `closing` only with an empty input buffer. */
SERVER_TEST(connection_close_ends_the_conn_even_with_a_request_buffered)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    /* a token list, any case */
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: foo, CLOSE\r\n\r\n", &r);
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    /* a request pipelined after the one saying close is never answered */
    k = cl_dial(t->addr);
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
               "GET /acc/second HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_stats(t).requests, 2);
    srv_stop(t);
    return 0;
}

SERVER_TEST(server_add_listener_serves_a_unix_socket)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "@tern-http-add-listener-%d", (int)getpid());
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_UNIX, path, NULL, &l), 0);
    tern_http_server_options o = {.handler = h_plaintext};
    tsrv *t = calloc(1, sizeof *t);
    CHECK(t);
    CHECK_EQ(tern_http_server_new(&o, &t->s), 0);
    CHECK_EQ(tern_http_server_add_listener(t->s, l), 0);
    CHECK_EQ(tern_http_server_port(t->s), 0);           /* a Unix socket has none */
    CHECK_STR(tern_http_server_addr(t->s), path);
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &t->done), 0);
    CHECK_EQ(tern_go(serve_co, t), 0);
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_UNIX, path, &c, NULL), 0);
    cl *k = cl_wrap(c);
    resp r;
    get(k, "/", &r);
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    /* not once serving: the listener stays the caller's */
    tern_listener *l2;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l2), 0);
    int64_t until = tern_now() + 2 * TERN_SEC;
    int rc;
    while ((rc = tern_http_server_add_listener(t->s, l2)) == 0 && tern_now() < until)
        CHECK(!"added while serving");
    CHECK_EQ(rc, -EBUSY);
    tern_listener_free(l2);
    srv_stop(t);                            /* frees l */

    /* at most 64 listeners: the 65th is refused and stays the caller's */
    tern_http_server *s;
    CHECK_EQ(tern_http_server_new(&o, &s), 0);
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
        CHECK_EQ(tern_http_server_add_listener(s, l), 0);
    }
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    CHECK_EQ(tern_http_server_add_listener(s, l), -ENOSPC);
    tern_listener_free(l);
    tern_http_server_free(s);               /* never served: frees its 64 */
    return 0;
}

/* An idle keep-alive connection's coroutine gives its whole stack back
 * (runtime/release.c: the burst's frame is left after a second of quiet,
 * then the idle wait allows release), and serves the next request on the
 * same connection with its stack copied back. */
SERVER_TEST(idle_conn_releases_its_stack_and_serves_on)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    get(k, "/plaintext", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    struct tern_runtime_stats st;
    int64_t end = tern_now() + 10 * TERN_SEC;
    do {    /* the two counts are two atomics: wait for both */
        tern_sleep(20 * TERN_MS);
        CHECK(tern_runtime_stats(&st, NULL, 0) > 0);
    } while ((st.stacks_released == 0 || st.stack_saved_bytes == 0) && tern_now() < end);
    CHECK(st.stacks_released >= 1);
    /* What is kept is the used part, well under the 64 KiB stack: ~600 B
     * with gcc -O2, 1.6 KB with clang -O2, more with a sanitizer's frames
     * (the burst's 20 KB of buffers are below the idle wait, given back) */
    CHECK(st.stack_saved_bytes > 0 && st.stack_saved_bytes < 16384 * st.stacks_released);
    for (int i = 0; i < 3; i++) {
        get(k, "/plaintext", &r);
        CHECK_EQ(r.status, 200);
        CHECK_MEM(r.body, r.body_len, "Hello, World!");
        resp_free(&r);
    }
    CHECK(tern_runtime_stats(&st, NULL, 0) > 0);
    /* the connection's came back; where any long-parked coroutine's stack
     * is given back ("any" mode), others may be out meanwhile */
    if (strcmp(st.stack_release, "promised") == 0)
        CHECK_EQ(st.stacks_released, 0);
    cl_close(k);
    srv_stop(t);
    return 0;
}

TESTS(T(keep_alive_serves_many_requests_on_one_conn),
      T(idle_conn_releases_its_stack_and_serves_on),
      T(pipelined_requests_are_answered_in_order_in_one_batch),
      T(http10_closes_after_each_response_unless_keep_alive_is_asked),
      T(connection_close_ends_the_conn_even_with_a_request_buffered),
      T(server_add_listener_serves_a_unix_socket))
