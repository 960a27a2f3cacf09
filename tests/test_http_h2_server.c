/*
 * test_http_h2_server.c - the HTTP/2 server against tern's own HTTP/2
 * client (h2c with prior knowledge; two independent nghttp2 sessions, one
 * per side), in one runtime: the protocol a handler sees, bodies both
 * ways past the windows, response trailers, many streams on one
 * connection running their handlers at once, a reset cancelling its
 * handler's context (also one the handler asks for only after the reset),
 * a graceful shutdown letting a stream finish, and the heap a small
 * open stream holds.
 * The scripts (http_h2_*.py, http_h2_h2spec.sh) test the same server
 * against other peers.
 */
#include "check.h"
#include "heap_use.h"

#include <errno.h>
#include <stdatomic.h>

#include <tern/http.h>
#include <tern/http_client.h>

typedef struct fixture {
    tern_http_server *srv;
    tern_http_client *cli;
    char base[64];
    tern_waitgroup serving;
    atomic_int cancelled;           /* handlers that saw their context end */
    atomic_int held;                /* /hold handlers waiting on `gate` */
    tern_waitgroup gate;
} fixture;

static fixture fx;

static int handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *path = tern_http_req_path(r);
    if (!strcmp(path, "/proto"))
        return tern_http_resp_text(w, 200, tern_http_req_proto(r));
    if (!strcmp(path, "/echo")) {
        char buf[4096];
        ssize_t n;
        while ((n = tern_http_req_read(r, buf, sizeof buf)) > 0)
            if (tern_http_resp_write(w, buf, (size_t)n) < 0)
                return -EIO;
        return (int)n;
    }
    if (!strcmp(path, "/trailers")) {
        tern_http_resp_set_trailer(w, "X-Sum", "42");
        return tern_http_resp_text(w, 200, "body\n");
    }
    if (!strcmp(path, "/late-ctx")) {
        /* asks for its context only after the client has reset the
         * stream: the server makes it on first use, and must hand out
         * one already cancelled */
        tern_sleep(200 * TERN_MS);
        if (tern_ctx_err(tern_http_req_ctx(r)) == -ECANCELED)
            atomic_fetch_add(&fx.cancelled, 1);
        return tern_http_resp_text(w, 200, "late");
    }
    if (!strcmp(path, "/hang")) {
        /* long enough that only the client's reset ends it, however
         * late a loaded machine runs the two sides */
        int rc = tern_ctx_sleep(5 * TERN_SEC, tern_http_req_ctx(r));
        if (rc < 0) {
            atomic_fetch_add(&fx.cancelled, 1);
            return rc;
        }
        return tern_http_resp_text(w, 200, "hung");
    }
    if (!strcmp(path, "/hold")) {
        /* a small request and answer, held open (the answer buffered,
         * not sent) until the test has measured the heap */
        char buf[64];
        ssize_t n, got = 0;
        while ((n = tern_http_req_read(r, buf, sizeof buf)) > 0)
            got += n;
        if (n < 0)
            return (int)n;
        int k = snprintf(buf, sizeof buf, "held %zd bytes", got);
        if (tern_http_resp_write(w, buf, (size_t)k) < 0)
            return -EIO;
        atomic_fetch_add(&fx.held, 1);
        tern_waitgroup_wait(&fx.gate, NULL);
        return 0;
    }
    if (!strcmp(path, "/sleep")) {
        int rc = tern_ctx_sleep(200 * TERN_MS, tern_http_req_ctx(r));
        if (rc < 0) {
            atomic_fetch_add(&fx.cancelled, 1);
            return rc;
        }
        return tern_http_resp_text(w, 200, "slept");
    }
    return tern_http_resp_error(w, 404, NULL);
}

static int serve(void *arg)
{
    (void)arg;
    tern_http_server_serve(fx.srv, NULL);
    tern_waitgroup_done(&fx.serving);
    return 0;
}

static void start(void)
{
    memset(&fx, 0, sizeof fx);
    tern_http_server_options o = { .handler = handler };
    CHECK_EQ(tern_http_server_new(&o, &fx.srv), 0);
    CHECK_EQ(tern_http_server_listen(fx.srv, "127.0.0.1:0"), 0);
    snprintf(fx.base, sizeof fx.base, "http://%s", tern_http_server_addr(fx.srv));
    tern_waitgroup_add(&fx.serving, 1);
    CHECK_EQ(tern_go(serve, NULL), 0);
    tern_http_client_options co = { .h2c_prior_knowledge = true, .timeout = 20 * TERN_SEC };
    CHECK_EQ(tern_http_client_new(&co, &fx.cli), 0);
}

static void stop(void)
{
    tern_http_client_free(fx.cli);
    CHECK_EQ(tern_http_server_shutdown(fx.srv, NULL), 0);
    tern_waitgroup_wait(&fx.serving, NULL);
    tern_http_server_free(fx.srv);
}

static const char *url(const char *path)
{
    static _Thread_local char u[128];
    snprintf(u, sizeof u, "%s%s", fx.base, path);
    return u;
}

/* The body of a GET (or of a POST when body != NULL), and its status. */
static int fetch(const char *path, const void *body, size_t len, const char **out, size_t *outlen,
                 tern_http_client_response **resp)
{
    tern_http_client_request req = { .url = url(path), .body = body, .body_len = len };
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_do(fx.cli, &req, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_body(r, 64 << 20, out, outlen), 0);
    int status = tern_http_client_response_status(r);
    *resp = r;
    return status;
}

static int proto_main(void *arg)
{
    (void)arg;
    start();
    tern_http_client_response *r;
    const char *b;
    size_t n;
    CHECK_EQ(fetch("/proto", NULL, 0, &b, &n, &r), 200);
    CHECK(strcmp(b, "HTTP/2") == 0);
    CHECK(strcmp(tern_http_client_response_proto(r), "HTTP/2") == 0);
    tern_http_client_response_free(r);
    stop();
    return 0;
}

static void handler_sees_http2(void)
{
    run_ok(proto_main, NULL, 2);
}

static int echo_main(void *arg)
{
    (void)arg;
    start();
    size_t len = 3 << 20;           /* well past every window */
    char *body = malloc(len);
    CHECK(body);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)(i * 7 + i / 4096);
    tern_http_client_response *r;
    const char *b;
    size_t n;
    CHECK_EQ(fetch("/echo", body, len, &b, &n, &r), 200);
    CHECK_EQ(n, len);
    CHECK(memcmp(b, body, len) == 0);
    tern_http_client_response_free(r);
    free(body);
    stop();
    return 0;
}

static void large_body_echoed_through_flow_control(void)
{
    run_ok(echo_main, NULL, 2);
}

static int trailers_main(void *arg)
{
    (void)arg;
    start();
    tern_http_client_response *r;
    const char *b;
    size_t n;
    CHECK_EQ(fetch("/trailers", NULL, 0, &b, &n, &r), 200);
    CHECK(strcmp(b, "body\n") == 0);
    const char *t = tern_http_client_response_trailer(r, "x-sum");
    CHECK(t && strcmp(t, "42") == 0);
    tern_http_client_response_free(r);
    stop();
    return 0;
}

static void response_trailers_reach_the_client(void)
{
    run_ok(trailers_main, NULL, 2);
}

#define NPAR 40

static int one_sleep(void *arg)
{
    tern_waitgroup *wg = arg;
    tern_http_client_response *r;
    const char *b;
    size_t n;
    CHECK_EQ(fetch("/sleep", NULL, 0, &b, &n, &r), 200);
    CHECK(strcmp(b, "slept") == 0);
    tern_http_client_response_free(r);
    tern_waitgroup_done(wg);
    return 0;
}

static int concurrent_main(void *arg)
{
    (void)arg;
    start();
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    int64_t t0 = tern_now();
    tern_waitgroup_add(&wg, NPAR);
    for (int i = 0; i < NPAR; i++)
        CHECK_EQ(tern_go(one_sleep, &wg), 0);
    tern_waitgroup_wait(&wg, NULL);
    int64_t took = tern_now() - t0;
    /* 40 handlers of 200 ms each, at once: well under 40 x 200 ms */
    CHECK(took < 2 * TERN_SEC);
    struct tern_http_client_stats st;
    tern_http_client_stats(fx.cli, &st);
    CHECK_EQ(st.dials, 1);                  /* all on one connection */
    struct tern_http_server_stats ss;
    /* a stream is counted once its handler has left, just after the
     * client has the response */
    for (int i = 0; i < 100; i++) {
        tern_http_server_stats(fx.srv, &ss);
        if (ss.requests == NPAR)
            break;
        tern_sleep(10 * TERN_MS);
    }
    CHECK_EQ(ss.accepted, 1);
    CHECK_EQ(ss.requests, NPAR);
    stop();
    return 0;
}

static void streams_on_one_connection_run_at_once(void)
{
    run_ok(concurrent_main, NULL, 2);
}

static int cancel_main(void *arg)
{
    (void)arg;
    start();
    /* the client gives up on the request: its stream is reset, and the
     * handler's context ends with it */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    tern_http_client_request req = { .url = url("/hang") };
    tern_http_client_response *r = NULL;
    int rc = tern_http_client_do(fx.cli, &req, &r, ctx);
    CHECK(rc == -ETIMEDOUT || rc == -ECANCELED);
    tern_ctx_free(ctx);
    for (int i = 0; i < 300 && atomic_load(&fx.cancelled) == 0; i++)
        tern_sleep(10 * TERN_MS);
    CHECK_EQ(atomic_load(&fx.cancelled), 1);
    /* the connection serves on */
    const char *b;
    size_t n;
    CHECK_EQ(fetch("/proto", NULL, 0, &b, &n, &r), 200);
    tern_http_client_response_free(r);
    stop();
    return 0;
}

static void client_reset_cancels_the_handler_context(void)
{
    run_ok(cancel_main, NULL, 2);
}

static int late_cancel_main(void *arg)
{
    (void)arg;
    start();
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    tern_http_client_request req = { .url = url("/late-ctx") };
    tern_http_client_response *r = NULL;
    int rc = tern_http_client_do(fx.cli, &req, &r, ctx);
    CHECK(rc == -ETIMEDOUT || rc == -ECANCELED);
    tern_ctx_free(ctx);
    for (int i = 0; i < 100 && atomic_load(&fx.cancelled) == 0; i++)
        tern_sleep(10 * TERN_MS);
    CHECK_EQ(atomic_load(&fx.cancelled), 1);
    stop();
    return 0;
}

static void context_asked_for_after_a_reset_is_cancelled(void)
{
    run_ok(late_cancel_main, NULL, 2);
}

static int in_flight(void *arg)
{
    tern_waitgroup *wg = arg;
    tern_http_client_response *r;
    const char *b;
    size_t n;
    CHECK_EQ(fetch("/sleep", NULL, 0, &b, &n, &r), 200);
    CHECK(strcmp(b, "slept") == 0);
    tern_http_client_response_free(r);
    tern_waitgroup_done(wg);
    return 0;
}

static int shutdown_main(void *arg)
{
    (void)arg;
    start();
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&wg, 1);
    CHECK_EQ(tern_go(in_flight, &wg), 0);
    tern_sleep(50 * TERN_MS);
    /* graceful: GOAWAY, the stream finishes, then the connection closes */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_http_server_shutdown(fx.srv, ctx), 0);
    tern_ctx_free(ctx);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(atomic_load(&fx.cancelled), 0);
    struct tern_http_server_stats ss;
    tern_http_server_stats(fx.srv, &ss);
    CHECK_EQ(ss.conns, 0);
    stop();
    return 0;
}

static void graceful_shutdown_lets_streams_finish(void)
{
    run_ok(shutdown_main, NULL, 2);
}

/* 64 small requests held open at once on one connection.  Measured
 * (Release, 2026-12-06): about 12 KB of heap per stream for both sides
 * together, about 19.5 KB when the server's request-body and response
 * buffers started at a growbuf's 4 KiB each. */
#define NHOLD 64
#define PERBOUND (16 * 1024)

static int one_hold(void *arg)
{
    tern_waitgroup *wg = arg;
    tern_http_client_response *r;
    const char *b;
    size_t n;
    CHECK_EQ(fetch("/hold", "0123456789ab", 12, &b, &n, &r), 200);
    CHECK(n == 13 && memcmp(b, "held 12 bytes", 13) == 0);
    tern_http_client_response_free(r);
    tern_waitgroup_done(wg);
    return 0;
}

static int hold_main(void *arg)
{
    (void)arg;
    start();
    tern_waitgroup_add(&fx.gate, 1);
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    /* one first, so the connection and both sessions exist before the count */
    tern_waitgroup_add(&wg, 1);
    CHECK_EQ(tern_go(one_hold, &wg), 0);
    while (atomic_load(&fx.held) < 1)
        tern_sleep(TERN_MS);
    size_t before = heap_in_use();
    tern_waitgroup_add(&wg, NHOLD);
    for (int i = 0; i < NHOLD; i++)
        CHECK_EQ(tern_go(one_hold, &wg), 0);
    for (int i = 0; i < 2000 && atomic_load(&fx.held) < NHOLD + 1; i++)
        tern_sleep(5 * TERN_MS);
    CHECK_EQ(atomic_load(&fx.held), NHOLD + 1);
    long long per = ((long long)heap_in_use() - (long long)before) / NHOLD;
    tern_waitgroup_done(&fx.gate);
    tern_waitgroup_wait(&wg, NULL);
    fprintf(stderr, "heap per open stream (server and client): %lld bytes\n", per);
    /* both sides' stream, request and coroutine block; the server's
     * body and response buffers start at H2_FIRST_BUF */
    CHECK(per < PERBOUND);
    stop();
    return 0;
}

static void open_streams_hold_small_buffers(void)
{
    run_ok(hold_main, NULL, 2);
}

TESTS(T(handler_sees_http2), T(large_body_echoed_through_flow_control),
      T(response_trailers_reach_the_client), T(streams_on_one_connection_run_at_once),
      T(client_reset_cancels_the_handler_context),
      T(context_asked_for_after_a_reset_is_cancelled), T(graceful_shutdown_lets_streams_finish),
      T(open_streams_hold_small_buffers))
