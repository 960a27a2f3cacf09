/*
 * test_http_server_responses.c - responses: streamed and large bodies,
 * HEAD, header injection refused, Date and Server, no body after a 304, the
 * default Content-Type, and the response calls (status, headers, the
 * buffered body) checked from inside a handler.  The fixture is
 * http_server_fixture.h.
 */
#include "check.h"

#include <time.h>

#include "http_server_fixture.h"

SERVER_TEST(streamed_response_sends_each_flushed_piece_as_a_chunk)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 0, &stream_go), 0);
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    resp r;
    CHECK_R(cl_head(k, &r));
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Transfer-Encoding"), "chunked");
    CHECK(hdr(&r, "Content-Length") == NULL);
    CHECK(hdr(&r, "X-Late") == NULL);
    /* each piece arrives while the handler waits for us */
    static const char *wire[] = { "5\r\nalpha\r\n", "4\r\nbeta\r\n", "5\r\ngamma\r\n0\r\n\r\n" };
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(wire[i]);
        CHECK_R(cl_need(k, n));
        CHECK_MEM(k->buf + k->pos, n, wire[i]);
        k->pos += n;
        CHECK(cl_quiet(k, 30 * TERN_MS));
        if (i < 2) {
            int go = 1;
            CHECK_EQ(tern_chan_send(stream_go, &go, NULL), 0);
        }
    }
    resp_free(&r);
    /* the connection is still good */
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    /* HEAD of a streamed response: no body bytes at all */
    cl_send(k, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_R(cl_head(k, &r));
    CHECK_EQ(r.status, 200);
    for (int i = 0; i < 2; i++) {
        int go = 1;
        CHECK_EQ(tern_chan_send(stream_go, &go, NULL), 0);
    }
    resp_free(&r);
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    tern_chan_free(stream_go);
    stream_go = NULL;
    return 0;
}

SERVER_TEST(large_response_is_streamed_chunked_and_intact)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    for (int round = 0; round < 2; round++) {
        resp r;
        get(k, "/big", &r);
        CHECK_EQ(r.status, 200);
        CHECK(r.chunked);                      /* over 64 KiB: streamed */
        CHECK(hdr(&r, "Content-Length") == NULL);
        CHECK(r.nchunks >= 2);
        CHECK_EQ(r.body_len, BIG_LEN);
        for (size_t i = 0; i < BIG_LEN; i++)
            if (r.body[i] != big_byte(i)) {
                fprintf(stderr, "byte %zu differs\n", i);
                abort();
            }
        resp_free(&r);
    }
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 1);
    srv_stop(t);
    return 0;
}

SERVER_TEST(head_sends_the_full_length_and_no_body)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "13");
    CHECK_STR(hdr(&r, "Content-Type"), "text/plain");
    resp_free(&r);
    /* HEAD of a response that would stream: the full length, no chunking */
    roundtrip(k, "HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    char want[32];
    snprintf(want, sizeof want, "%d", BIG_LEN);
    CHECK_STR(hdr(&r, "Content-Length"), want);
    CHECK(hdr(&r, "Transfer-Encoding") == NULL);
    resp_free(&r);
    /* no body bytes were sent: the next response starts right here */
    CHECK(cl_quiet(k, 20 * TERN_MS));
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 1);
    srv_stop(t);
    return 0;
}

SERVER_TEST(header_injection_is_refused_by_set_and_add_header)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    resp r;
    once(t->addr, "GET /inject HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "%d %d %d %d %d 0 %d", -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EPERM,
             -EINVAL);
    CHECK_MEM(r.body, r.body_len, want);
    CHECK(strstr(r.raw_head, "Injected") == NULL);
    CHECK(hdr(&r, "X-A") == NULL && hdr(&r, "X-C") == NULL && hdr(&r, "X-D") == NULL);
    CHECK_STR(hdr(&r, "X-Ok"), "fine\tvalue");
    CHECK_EQ(hdr_count(&r, "Content-Length"), 1);
    resp_free(&r);
    srv_stop(t);
    return 0;
}

SERVER_TEST(date_is_an_imf_fixdate_of_now_and_server_is_as_configured)
{
    (void)arg;
    tern_http_server_options o = { .server_header = "tern-test" };
    tsrv *t = app_start(&o);
    cl *k = cl_dial(t->addr);
    for (int i = 0; i < 2; i++) {
        resp r;
        get(k, i ? "/nope" : "/plaintext", &r);
        CHECK_STR(hdr(&r, "Server"), "tern-test");
        CHECK_EQ(hdr_count(&r, "Date"), 1);
        const char *d = hdr(&r, "Date");
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        CHECK_EQ(strlen(d), 29);
        static const char shape[] = "Aaa, 00 Aaa 0000 00:00:00 GMT";
        for (int j = 0; j < 29; j++) {
            char c = shape[j];
            if (c == 'A')
                CHECK(isupper((unsigned char)d[j]));
            else if (c == 'a')
                CHECK(islower((unsigned char)d[j]));
            else if (c == '0')
                CHECK(isdigit((unsigned char)d[j]));
            else
                CHECK(d[j] == c);
        }
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        CHECK(end && *end == '\0');
        time_t when = timegm(&tm);
        time_t now = time(NULL);
        CHECK(when <= now + 1 && when >= now - 3);
        /* the weekday agrees with the date */
        struct tm back;
        gmtime_r(&when, &back);
        CHECK_EQ(back.tm_wday, tm.tm_wday);
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Body bytes written before a 304 never reach the wire. */
SERVER_TEST(no_body_bytes_after_304)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 304);
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);
    CHECK_R(cl_response(k, &r, false));    /* not "SMUGGLEDHTTP/1.1 200" */
    CHECK_EQ(r.status, 200);
    CHECK(r.body_len == 13 && !memcmp(r.body, "Hello, World!", 13));
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

static int h_untyped(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    const char *what = arg;
    if (!strcmp(what, "typed"))
        CHECK_EQ(tern_http_resp_set_header(w, "content-type", "application/x-thing"), 0);
    if (!strcmp(what, "empty"))
        return 0;
    if (!strcmp(what, "204"))
        return tern_http_resp_set_status(w, 204);
    return tern_http_resp_write(w, "body", 4) == 4 ? 0 : -EIO;
}

SERVER_TEST(untyped_body_is_sent_as_text)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/untyped", h_untyped, "untyped"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/typed", h_untyped, "typed"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/empty", h_untyped, "empty"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/204", h_untyped, "204"), 0);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);
    resp r;
    get(k, "/untyped", &r);
    CHECK_STR(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
    CHECK_EQ(hdr_count(&r, "Content-Type"), 1);
    resp_free(&r);
    get(k, "/typed", &r);                /* the handler's own, in any case, alone */
    CHECK_STR(hdr(&r, "Content-Type"), "application/x-thing");
    CHECK_EQ(hdr_count(&r, "Content-Type"), 1);
    resp_free(&r);
    get(k, "/empty", &r);                /* no body: nothing to type */
    CHECK(hdr(&r, "Content-Type") == NULL);
    resp_free(&r);
    get(k, "/204", &r);
    CHECK(hdr(&r, "Content-Type") == NULL);
    resp_free(&r);
    roundtrip(k, "HEAD /untyped HTTP/1.1\r\nHost: t\r\n\r\n", &r);   /* as GET would */
    CHECK_STR(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Status, headers and the buffered body, from inside a handler. */
static int h_resp_api(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *p = tern_http_req_path(r);
    char *d;
    size_t n;
    if (!strcmp(p, "/resp")) {
        CHECK_EQ(tern_http_resp_status(w), 200);            /* the default */
        CHECK_EQ(tern_http_resp_set_status(w, 199), -EINVAL);
        CHECK_EQ(tern_http_resp_set_status(w, 1000), -EINVAL);
        CHECK_EQ(tern_http_resp_status(w), 200);            /* refused: unchanged */
        CHECK_EQ(tern_http_resp_set_status(w, 299), 0);
        CHECK_EQ(tern_http_resp_status(w), 299);
        CHECK_EQ(tern_http_resp_set_status(w, 201), 0);
        CHECK_EQ(tern_http_resp_status(w), 201);

        CHECK_EQ(tern_http_resp_set_header(w, "X-Keep", "k"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "X-Dup", "1"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "x-dup", "2"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "X-Other", "o"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "X-Dup", "3"), 0);
        CHECK_EQ(tern_http_resp_del_header(w, "X-DUP"), 0);     /* every one, any case */
        CHECK(tern_http_resp_header(w, "X-Dup") == NULL);
        CHECK_STR(tern_http_resp_header(w, "X-Keep"), "k");
        CHECK_STR(tern_http_resp_header(w, "X-Other"), "o");
        CHECK_EQ(tern_http_resp_del_header(w, "X-Absent"), 0);
        CHECK_EQ(tern_http_resp_del_header(w, "X-Other"), 0);
        CHECK(tern_http_resp_header(w, "X-Other") == NULL);
        /* as set and add: a name must be a token, and the framing
         * fields are the server's */
        CHECK_EQ(tern_http_resp_del_header(w, NULL), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, ""), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, "X Keep"), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, "X-Keep\r\n"), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, "Content-Length"), -EPERM);
        CHECK_EQ(tern_http_resp_del_header(w, "transfer-encoding"), -EPERM);
        CHECK_STR(tern_http_resp_header(w, "X-Keep"), "k");

        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, 0);
        CHECK_EQ(tern_http_resp_write(w, "hello, world", 12), 12);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_MEM(d, n, "hello, world");
        /* replaced by a part of itself (the buffers overlap) */
        CHECK_EQ(tern_http_resp_replace_body(w, d + 2, n - 2), 0);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_MEM(d, n, "llo, world");
        CHECK_EQ(tern_http_resp_body_bytes(w), 10);
        /* replaced, then written to: the writes follow the new body */
        CHECK_EQ(tern_http_resp_replace_body(w, "abc", 3), 0);
        CHECK_EQ(tern_http_resp_write(w, "def", 3), 3);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_MEM(d, n, "abcdef");
        CHECK_EQ(tern_http_resp_body_bytes(w), 6);
        return 0;
    }
    if (!strcmp(p, "/empty")) {
        CHECK_EQ(tern_http_resp_write(w, "junk", 4), 4);
        CHECK_EQ(tern_http_resp_replace_body(w, NULL, 0), 0);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, 0);
        return 0;
    }
    if (!strcmp(p, "/head")) {
        /* HEAD: the bytes are counted, not kept; the length is the new one */
        CHECK_EQ(tern_http_resp_write(w, "abc", 3), 3);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, tern_http_req_is_head(r) ? 0 : 3);
        CHECK_EQ(tern_http_resp_replace_body(w, "0123456789", 10), 0);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, tern_http_req_is_head(r) ? 0 : 10);
        CHECK_EQ(tern_http_resp_body_bytes(w), 10);
        return 0;
    }
    if (!strcmp(p, "/streamed")) {
        CHECK_EQ(tern_http_resp_set_header(w, "X-Gone", "g"), 0);
        CHECK_EQ(tern_http_resp_write(w, "x", 1), 1);
        CHECK_EQ(tern_http_resp_flush(w), 0);
        /* once streaming: nothing buffered to hand out or replace */
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), -EALREADY);
        CHECK_EQ(tern_http_resp_replace_body(w, "no", 2), -EALREADY);
        CHECK_EQ(tern_http_resp_del_header(w, "X-Gone"), -EALREADY);
        CHECK_EQ(tern_http_resp_status(w), 200);
        CHECK_EQ(tern_http_resp_write(w, "y", 1), 1);
        return 0;
    }
    if (!strcmp(p, "/method")) {
        CHECK_EQ(tern_http_resp_set_header(w, "X-Is-Head", tern_http_req_is_head(r) ? "1" : "0"), 0);
        return tern_http_resp_printf(w, "%s", tern_http_req_method(r)) < 0 ? -EIO : 0;
    }
    return tern_http_resp_error(w, 404, NULL);
}

SERVER_TEST(resp_status_headers_and_buffered_body)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_resp_api};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    get(k, "/resp", &r);
    CHECK_EQ(r.status, 201);
    CHECK_STR(hdr(&r, "X-Keep"), "k");
    CHECK_EQ(hdr_count(&r, "X-Dup"), 0);
    CHECK_EQ(hdr_count(&r, "X-Other"), 0);
    CHECK_STR(hdr(&r, "Content-Length"), "6");
    CHECK_MEM(r.body, r.body_len, "abcdef");
    resp_free(&r);

    get(k, "/empty", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "0");
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);

    get(k, "/head", &r);
    CHECK_STR(hdr(&r, "Content-Length"), "10");
    CHECK_MEM(r.body, r.body_len, "0123456789");
    resp_free(&r);
    roundtrip(k, "HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "10");
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);

    get(k, "/streamed", &r);
    CHECK_EQ(r.status, 200);
    CHECK(r.chunked);
    CHECK_STR(hdr(&r, "X-Gone"), "g");
    CHECK_MEM(r.body, r.body_len, "xy");
    resp_free(&r);

    /* the connection served them all */
    get(k, "/method", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(req_is_head_only_for_head)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_resp_api};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    static const struct {
        const char *method;
        const char *is_head;
    } cases[] = {{"GET", "0"}, {"HEAD", "1"}, {"POST", "0"}, {"HEADX", "0"},
                 {"HEA", "0"}, {"head", "0"}, {"XHEAD", "0"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[128];
        snprintf(req, sizeof req, "%s /method HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                 cases[i].method);
        resp r;
        roundtrip(k, req, &r);
        CHECK_EQ(r.status, 200);
        CHECK_STR(hdr(&r, "X-Is-Head"), cases[i].is_head);
        if (cases[i].is_head[0] == '1') {
            CHECK_EQ(r.body_len, 0);
            CHECK_STR(hdr(&r, "Content-Length"), "4");
        } else {
            CHECK_MEM(r.body, r.body_len, cases[i].method);
        }
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    return 0;
}

TESTS(T(streamed_response_sends_each_flushed_piece_as_a_chunk),
      T(large_response_is_streamed_chunked_and_intact), T(head_sends_the_full_length_and_no_body),
      T(header_injection_is_refused_by_set_and_add_header),
      T(date_is_an_imf_fixdate_of_now_and_server_is_as_configured), T(no_body_bytes_after_304),
      T(untyped_body_is_sent_as_text), T(resp_status_headers_and_buffered_body),
      T(req_is_head_only_for_head))
