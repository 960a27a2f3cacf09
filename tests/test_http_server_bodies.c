/*
 * test_http_server_bodies.c - request bodies: chunked framing (good, bad,
 * split across writes, arriving after the head), Expect: 100-continue, and
 * tern_http_req_read with its errors and per-request limits.  The fixture is
 * http_server_fixture.h.
 */
#include "check.h"

#include "http_server_fixture.h"

SERVER_TEST(chunked_request_body_is_decoded_with_extensions_and_trailers)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    /* extensions (token, quoted, bare), a trailer, then a pipelined GET */
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Type: text/plain\r\n\r\n"
                 "5;ext=1\r\nhello\r\n"
                 "6 ; name=\"quoted;value\"\r\n world\r\n"
                 "A;bare\r\n0123456789\r\n"
                 "0\r\nX-Trailer: yes\r\n\r\n"
                 "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "21");
    CHECK_MEM(r.body, r.body_len, "hello world0123456789");
    resp_free(&r);
    CHECK_R(cl_response(k, &r, false));
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);

    /* the same, one byte per write */
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3;a=b\r\nabc\r\n"
                              "1\r\nd\r\n"
                              "10\r\n0123456789abcdef\r\n"
                              "0\r\n\r\n";
    for (size_t i = 0; i < sizeof req - 1; i++) {
        cl_sendn(k, req + i, 1);
        tern_sleep(200 * TERN_US);
    }
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "abcd0123456789abcdef");
    resp_free(&r);
    /* an empty chunked body */
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "0");
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* A chunked body with bad framing: the handler's read fails (-EBADMSG,
 * here answered 400 by the server), the connection closes, and the rest of
 * the bad body is never parsed as a request.  Found: a second 400 came,
 * from parsing the body's remains as a request. */
SERVER_TEST(bad_chunked_framing_answers_400_and_closes_the_conn)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabcX\r\n0\r\n\r\n", &r);
    CHECK_EQ(r.status, 400);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_stats(t).requests, 1);
    srv_stop(t);
    return 0;
}

/* The head's strings survive reading a chunked body that arrives later
 * (the body is decoded in the buffer the head was read into). */
SERVER_TEST(head_survives_chunked_body)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /headafter/x%20y?q=1 HTTP/1.1\r\nHost: a\r\nX-Tag: kept\r\n"
               "Transfer-Encoding: chunked\r\n\r\n");
    tern_sleep(30 * TERN_MS);
    cl_send(k, "5\r\nhello\r\n");
    tern_sleep(10 * TERN_MS);
    cl_send(k, "0\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    const char *want = "POST /headafter/x%20y?q=1 tag=kept path=/headafter/x y body=hello";
    if (r.body_len != strlen(want) || memcmp(r.body, want, r.body_len))
        fprintf(stderr, "got: %.*s\n", (int)r.body_len, r.body);
    CHECK(r.body_len == strlen(want) && !memcmp(r.body, want, r.body_len));
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(expect_continue_sends_100_only_when_the_body_is_wanted)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
               "Expect: 100-continue\r\nContent-Type: text/plain\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 100);
    CHECK_MEM(r.raw_head, r.head_len, "HTTP/1.1 100 Continue\r\n\r\n");
    resp_free(&r);
    CHECK(cl_quiet(k, 20 * TERN_MS));      /* the final answer waits for the body */
    cl_send(k, "hello world");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "hello world");
    CHECK(hdr(&r, "Connection") == NULL);
    resp_free(&r);
    /* the connection goes on */
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);

    /* a handler that does not read the body: no 100, the answer, then close */
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);

    /* over the limit with Expect: 413 at once, never a 100 */
    k = cl_dial(t->addr);
    char req[256];
    snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
             "Expect: 100-continue\r\n\r\n", APP_MAX_BODY + 1);
    k->timeout = TERN_SEC;
    cl_send(k, req);
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 413);
    CHECK_STR(r.reason, "Content Too Large");
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "413 Content Too Large\n");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* A pipelined answer is buffered when the next request asks for 100
 * Continue, and that request's handler has already written: the 100 goes
 * between the two answers, and no byte of the second precedes its head. */
SERVER_TEST(continue_after_buffered_answers)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"
               "POST /pre HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(r.body_len == 13 && !memcmp(r.body, "Hello, World!", 13));
    resp_free(&r);
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 100);
    resp_free(&r);
    cl_send(k, "hello");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(r.body_len == 9 && !memcmp(r.body, "pre:hello", 9));
    resp_free(&r);
    get(k, "/plaintext", &r);           /* still in step */
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Once the head is out, no 100 Continue lands inside the chunked body. */
SERVER_TEST(no_continue_after_commit)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /commit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n");
    tern_sleep(50 * TERN_MS);           /* the head and "abc" are out */
    cl_send(k, "hello");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(r.chunked);
    CHECK(r.body_len == 8 && !memcmp(r.body, "abchello", 8));
    resp_free(&r);
    get(k, "/plaintext", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Read the body in pieces of ?n= bytes (after lowering the limit to ?max=,
 * then ?max2=, if given) and answer "<each return>|<the bytes>"; with
 * ?ret=1, return the first error instead. */
static int h_read(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *q;
    size_t n = (q = tern_http_req_query(r, "n")) ? (size_t)atoi(q) : 3;
    if ((q = tern_http_req_query(r, "max")))
        tern_http_req_set_max_body(r, atoll(q));
    if ((q = tern_http_req_query(r, "max2")))
        tern_http_req_set_max_body(r, atoll(q));
    if (tern_http_req_query(r, "whole")) {
        const char *body;
        size_t len;
        int rc = tern_http_req_body(r, &body, &len);
        return rc < 0 ? rc : tern_http_resp_send(w, 200, "text/plain", body, len);
    }
    bool ret = tern_http_req_query(r, "ret") != NULL;
    char trace[512] = "", data[4096];
    size_t tl = 0, dl = 0;
    /* a zero-byte read: 0, and nothing is consumed */
    CHECK_EQ(tern_http_req_read(r, data, 0), 0);
    for (int i = 0; i < 64; i++) {
        ssize_t k = tern_http_req_read(r, data + dl, n);
        tl += (size_t)snprintf(trace + tl, sizeof trace - tl, "%s%zd", i ? "," : "", k);
        if (k < 0) {
            if (ret)
                return (int)k;
            CHECK(tern_http_req_read(r, data + dl, n) < 0);    /* failed for good */
            break;
        }
        if (k == 0) {                       /* the end, and it stays the end */
            k = tern_http_req_read(r, data + dl, n);
            tl += (size_t)snprintf(trace + tl, sizeof trace - tl, ",%zd", k);
            break;
        }
        CHECK((size_t)k <= n);
        dl += (size_t)k;
    }
    tern_http_resp_printf(w, "%s|", trace);
    return tern_http_resp_write(w, data, dl) < 0 ? -EIO : 0;
}

/* One request on a new connection, with the body sent in two parts and
 * then (if cut) a half-close; the whole response, its body as a string. */
static void read_case(const char *addr, const char *head, const char *body, bool cut, resp *r)
{
    cl *k = cl_dial(addr);
    cl_send(k, head);
    if (body)
        cl_send(k, body);
    if (cut)
        CHECK_EQ(tern_conn_close_write(k->c), 0);
    CHECK_R(cl_response(k, r, false));
    cl_close(k);
}

#define CHECK_BODY(r, want) CHECK_MEM((r)->body, (r)->body_len, want)

SERVER_TEST(req_read_streams_the_body_and_its_errors)
{
    (void)arg;
    /* no server limit, so that only tern_http_req_set_max_body sets one */
    tern_http_server_options o = {.handler = h_read, .max_body_bytes = -1,
                                  .read_body_timeout = 100 * TERN_MS};
    tsrv *t = srv_start(&o, NULL);
    resp r;
    const char *cl10 = "POST /?n=3 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n";

    /* Content-Length: pieces of at most n, then 0, and 0 again */
    read_case(t->addr, cl10, "0123456789", false, &r);
    CHECK_EQ(r.status, 200);
    CHECK_BODY(&r, "3,3,3,1,0,0|0123456789");
    resp_free(&r);
    /* no body at all: 0 at once */
    read_case(t->addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", NULL, false, &r);
    CHECK_BODY(&r, "0,0|");
    resp_free(&r);
    /* chunked: the chunks' bytes, in pieces of at most n */
    read_case(t->addr, "POST /?n=4 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "3\r\nabc\r\n6\r\ndefghi\r\n0\r\n\r\n", false, &r);
    CHECK_EQ(r.status, 200);
    const char *bar = memchr(r.body, '|', r.body_len);
    CHECK(bar);
    CHECK_MEM(bar + 1, r.body_len - (size_t)(bar + 1 - r.body), "abcdefghi");
    CHECK(bar - r.body >= 4 && !memcmp(bar - 4, ",0,0", 4));
    for (const char *c = r.body; c < bar - 4; c++)
        CHECK(*c == ',' || (*c >= '1' && *c <= '4'));
    resp_free(&r);

    /* bad chunked framing: -EBADMSG, then errors only; the conn is not reused */
    read_case(t->addr, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "zz\r\nabc\r\n0\r\n\r\n", false, &r);
    CHECK_BODY(&r, "-74|");
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    /* the body cut short by the client: what came, then -ECONNRESET */
    read_case(t->addr, cl10, "0123", true, &r);
    CHECK_BODY(&r, "3,1,-104|0123");
    resp_free(&r);
    /* the rest never comes: -ETIMEDOUT at the body's read deadline */
    int64_t t0 = tern_now();
    read_case(t->addr, cl10, "01", false, &r);
    CHECK(tern_now() - t0 >= 99 * TERN_MS);
    CHECK_BODY(&r, "2,-110|01");
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);

    /* tern_http_req_set_max_body: a limit where there was none */
    read_case(t->addr, "POST /?n=3&max=5 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    /* exactly at the limit is fine */
    read_case(t->addr, "POST /?n=3&max=10 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,3,3,1,0,0|0123456789");
    resp_free(&r);
    /* a higher value later is ignored, and so is a negative one */
    read_case(t->addr, "POST /?n=3&max=5&max2=100 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    read_case(t->addr, "POST /?n=3&max=5&max2=-1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    /* a lower one later wins */
    read_case(t->addr, "POST /?n=3&max=8&max2=6 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,3,-90|012345");
    resp_free(&r);
    /* chunked bodies are held to it too */
    read_case(t->addr, "POST /?n=3&max=4 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "a\r\n0123456789\r\n0\r\n\r\n", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    /* the whole body over the lowered limit: refused before reading */
    read_case(t->addr, "POST /?whole=1&max=9 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_EQ(r.status, 413);
    resp_free(&r);
    read_case(t->addr, "POST /?whole=1&max=10 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_EQ(r.status, 200);
    CHECK_BODY(&r, "0123456789");
    resp_free(&r);

    /* a handler returning the read's error: tern_http_error_status's answer */
    read_case(t->addr, "POST /?n=3&max=5&ret=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_EQ(r.status, 413);
    resp_free(&r);
    read_case(t->addr, "POST /?ret=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "zz\r\n", false, &r);
    CHECK_EQ(r.status, 400);
    resp_free(&r);
    /* the client went away mid-body: its fault, not the server's */
    read_case(t->addr, "POST /?ret=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n", "01",
              true, &r);
    CHECK_EQ(r.status, 400);
    resp_free(&r);
    /* a body too slow for read_body_timeout: 408 (as Go and nginx), and
     * the connection closes (the rest of the body may still come) */
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /?ret=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 408);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    srv_stop(t);
    return 0;
}

TESTS(T(chunked_request_body_is_decoded_with_extensions_and_trailers),
      T(bad_chunked_framing_answers_400_and_closes_the_conn), T(head_survives_chunked_body),
      T(expect_continue_sends_100_only_when_the_body_is_wanted), T(continue_after_buffered_answers),
      T(no_continue_after_commit), T(req_read_streams_the_body_and_its_errors))
