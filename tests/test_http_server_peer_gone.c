/*
 * test_http_server_peer_gone.c - a request's context ends when its client
 * goes away (issue 15, item 9), as Go's r.Context() does: by a FIN or a
 * reset, for a handler that waits with or without having read a body; a
 * half-closed client still gets its answer; and it does not end for
 * clients that stay (keep-alive, pipelining).  The
 * fixture is http_server_fixture.h.
 */
#include "check.h"

#include <sys/socket.h>

#include "http_server_fixture.h"

#define WAIT_NS (5 * TERN_SEC)      /* the handler's wait: far longer than any check */

typedef enum { CTX_FIRST, BODY_FIRST } order;

static tern_chan *began;            /* a handler is waiting on its context */
static tern_chan *ended;            /* its result: the wait's error */
static atomic_int served;

/* Waits on the request's context for WAIT_NS: reports how the wait ended.
 * /first asks for the context before reading the body, /after after. */
static int h_wait_ctx(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    order o = strcmp(tern_http_req_path(r), "/first") == 0 ? CTX_FIRST : BODY_FIRST;
    tern_ctx *ctx = o == CTX_FIRST ? tern_http_req_ctx(r) : NULL;
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_req_body(r, &data, &len), 0);
    if (!ctx)
        ctx = tern_http_req_ctx(r);
    int one = 1;
    CHECK_EQ(tern_chan_send(began, &one, NULL), 0);
    int64_t t0 = tern_now();
    int rc = tern_ctx_sleep(WAIT_NS, ctx);
    int64_t took = tern_now() - t0;
    /* cancelled well before WAIT_NS, and a status that blames nobody */
    int res = rc == -ECANCELED && took < 2 * TERN_SEC ? 1 : rc;
    if (res == 1 && tern_http_error_status(r, rc) != 499)
        res = -tern_http_error_status(r, rc);
    CHECK_EQ(tern_chan_send(ended, &res, NULL), 0);
    atomic_fetch_add(&served, 1);
    return tern_http_resp_send(w, 200, "text/plain", "late", 4);
}

/* Answers at once, after checking its context is alive. */
static int h_alive(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_ctx *ctx = tern_http_req_ctx(r);
    CHECK_EQ(tern_ctx_err(ctx), 0);
    atomic_fetch_add(&served, 1);
    return tern_http_resp_send(w, 200, "text/plain", "ok", 2);
}

static tsrv *start(tern_http_handler_fn *h)
{
    CHECK_EQ(tern_chan_new(sizeof(int), 4, &began), 0);
    CHECK_EQ(tern_chan_new(sizeof(int), 4, &ended), 0);
    atomic_store(&served, 0);
    tern_http_server_options o = {.handler = h};
    return srv_start(&o, NULL);
}

static void finish(tsrv *t)
{
    srv_stop(t);
    tern_chan_free(began);
    tern_chan_free(ended);
}

static int recv_int(tern_chan *ch)
{
    int v = 0;
    bool ok;
    tern_ctx *to;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 3 * TERN_SEC, &to), 0);
    CHECK_EQ(tern_chan_recv(ch, &v, &ok, to), 0);
    tern_ctx_free(to);
    return v;
}

/* Sends req, waits until the handler waits, hangs up (with a reset when
 * asked), and expects the handler's context to end within 2 s. */
static void hang_up_during(tsrv *t, const char *req, bool reset)
{
    cl *k = cl_dial(t->addr);
    cl_send(k, req);
    CHECK_EQ(recv_int(began), 1);
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        CHECK_EQ(setsockopt(tern_conn_fd(k->c), SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    }
    cl_close(k);
    CHECK_EQ(recv_int(ended), 1);   /* -ECANCELED, well before WAIT_NS */
}

SERVER_TEST(request_ctx_ends_when_the_client_closes)
{
    (void)arg;
    tsrv *t = start(h_wait_ctx);
    hang_up_during(t, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n", false);
    finish(t);
    return 0;
}

SERVER_TEST(request_ctx_ends_when_the_client_resets)
{
    (void)arg;
    tsrv *t = start(h_wait_ctx);
    hang_up_during(t, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n", true);
    finish(t);
    return 0;
}

SERVER_TEST(request_ctx_ends_when_the_client_closes_after_its_body)
{
    (void)arg;
    tsrv *t = start(h_wait_ctx);
    /* the context made before the body is read, and after */
    hang_up_during(t, "POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", false);
    hang_up_during(t, "POST /after HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", false);
    hang_up_during(t, "POST /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n0\r\n\r\n", false);
    finish(t);
    return 0;
}

/* A client that sends its body in pieces, then half-closes: the handler
 * (which asked for its context before the body came) reads the body whole,
 * its context ends at the FIN, and its answer still reaches the client. */
SERVER_TEST(a_half_closed_client_ends_the_ctx_and_still_gets_the_answer)
{
    (void)arg;
    tsrv *t = start(h_wait_ctx);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
    tern_sleep(50 * TERN_MS);           /* the handler has its ctx and reads */
    cl_send(k, "world");
    CHECK_EQ(recv_int(began), 1);       /* the body arrived whole */
    CHECK_EQ(tern_conn_close_write(k->c), 0);
    CHECK_EQ(recv_int(ended), 1);
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);            /* the handler answered; the client reads it */
    resp_free(&r);
    cl_close(k);
    finish(t);
    return 0;
}

/* The watch is per request: on a kept-alive connection, requests after a
 * watched one are served (the watch was disarmed, nothing cancelled), and
 * pipelined ones too. */
SERVER_TEST(request_ctx_stays_alive_for_clients_that_stay)
{
    (void)arg;
    tsrv *t = start(h_alive);
    cl *k = cl_dial(t->addr);
    for (int i = 0; i < 20; i++) {
        resp r;
        get(k, "/x", &r);
        CHECK_EQ(r.status, 200);
        CHECK_MEM(r.body, r.body_len, "ok");
        resp_free(&r);
    }
    cl_send(k, "GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        resp r;
        CHECK_R(cl_response(k, &r, false));
        CHECK_EQ(r.status, 200);
        resp_free(&r);
    }
    expect_eof(k);
    CHECK_EQ(atomic_load(&served), 23);
    cl_close(k);
    finish(t);
    return 0;
}

TESTS(T(request_ctx_ends_when_the_client_closes),
      T(request_ctx_ends_when_the_client_resets),
      T(request_ctx_ends_when_the_client_closes_after_its_body),
      T(a_half_closed_client_ends_the_ctx_and_still_gets_the_answer),
      T(request_ctx_stays_alive_for_clients_that_stay))
