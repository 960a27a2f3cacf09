/*
 * test_grpc_server.c - tern's gRPC server against grpcio's client
 * (grpc_peer.py client: unary, the three streaming kinds, metadata both
 * ways, status with unicode and percent signs, deadlines, cancellation,
 * unknown methods and services, gzip both ways, the receive limit) over
 * h2c and TLS; and what grpcio cannot send: a non-gRPC content-type (415),
 * gRPC and REST on one port.
 */
#include "grpc_fixture.h"

#include <tern/http_client.h>
#include <tern/http_router.h>

#include "../tls_certs.h"

typedef struct served {
    tern_grpc_server *s;
    tern_waitgroup wg;
} served;

static int serve_co(void *arg)
{
    served *sv = arg;
    CHECK_EQ(tern_grpc_server_serve(sv->s, NULL), 0);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

static void start(served *sv, tern_tls_config *tls)
{
    CHECK_EQ(tern_grpc_server_new(NULL, &sv->s), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv->s, &test_service, NULL, NULL), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv->s, &test_service, NULL, NULL), -EEXIST);
    if (tls)
        CHECK_EQ(tern_grpc_server_listen_tls(sv->s, "127.0.0.1:0", tls), 0);
    else
        CHECK_EQ(tern_grpc_server_listen(sv->s, "127.0.0.1:0"), 0);
    CHECK(tern_grpc_server_port(sv->s) > 0);
    tern_waitgroup_add(&sv->wg, 1);
    CHECK_EQ(tern_go(serve_co, sv), 0);
}

static void stop(served *sv)
{
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * SEC, &c), 0);
    tern_grpc_server_shutdown(sv->s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&sv->wg, NULL), 0);
    tern_grpc_server_free(sv->s);
}

static int grpcio_h2c_main(void *arg)
{
    (void)arg;
    served sv = { 0 };
    start(&sv, NULL);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", tern_grpc_server_port(sv.s));
    CHECK_EQ(run_py_client(target, NULL), 0);
    CHECK_EQ(atomic_load(&stream_cancelled), 1);
    /* the deadline_exceeded case's 0.3 s (grpcio rounds its grpc-timeout
     * up by a millisecond or so) */
    int64_t budget = atomic_load(&handler_budget);
    CHECK(budget > 0 && budget <= 320 * MS);
    stop(&sv);
    return 0;
}

static void grpcio_client_h2c(void)
{
    if (!have_grpcio())
        exit(77);
    CHECK_EQ(tern_run(grpcio_h2c_main, NULL), 0);
}

static int grpcio_tls_main(void *arg)
{
    (void)arg;
    tls_certs_make();
    tern_tls_cert cert = { tls_path("srv.pem"), tls_path("srv.key") };
    const char *alpn[] = { "h2", NULL };
    tern_tls_server_options to = { .certs = &cert, .ncerts = 1, .alpn = alpn };
    tern_tls_config *cfg;
    CHECK_EQ(tern_tls_server_config_new(&to, &cfg), 0);
    served sv = { 0 };
    start(&sv, cfg);
    char target[64];
    snprintf(target, sizeof target, "localhost:%d", tern_grpc_server_port(sv.s));
    CHECK_EQ(run_py_client(target, tls_path("ca.pem")), 0);
    stop(&sv);
    tern_tls_config_free(cfg);
    return 0;
}

static void grpcio_client_tls(void)
{
    if (!have_grpcio())
        exit(77);
    CHECK_EQ(tern_run(grpcio_tls_main, NULL), 0);
}

typedef struct http_served {
    tern_http_server *hs;
    tern_waitgroup *wg;
} http_served;

static int http_serve_co(void *arg)
{
    http_served *h = arg;
    tern_http_server_serve(h->hs, NULL);
    tern_waitgroup_done(h->wg);
    return 0;
}

/* POST with content-type application/json: 415, and on a shared port the
 * same request for a non-gRPC route reaches the REST handler. */
static int hello(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    (void)arg;
    return tern_http_resp_text(w, 200, "rest");
}

static int post(tern_http_client *c, const char *url, const char *ct, char *body, size_t cap)
{
    const char *hdrs[] = { "content-type", ct, NULL };
    tern_http_client_request rq = { .method = "POST", .url = url, .headers = hdrs, .body = "{}", .body_len = 2 };
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(c, &rq, &resp, NULL), 0);
    int status = tern_http_client_response_status(resp);
    const char *b;
    size_t n;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 16, &b, &n), 0);
    snprintf(body, cap, "%.*s", (int)n, b);
    tern_http_client_response_free(resp);
    return status;
}

static int content_type_main(void *arg)
{
    (void)arg;
    served sv = { 0 };
    start(&sv, NULL);
    tern_http_client *c;
    tern_http_client_options co = { .h2c_prior_knowledge = true };
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    char url[128], body[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/terntest.Test/Unary", tern_grpc_server_port(sv.s));
    CHECK_EQ(post(c, url, "application/json", body, sizeof body), 415);

    /* shared port: the gRPC server in front of a router */
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_use(rt, tern_grpc_server_http_handler, sv.s), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/rest", hello, NULL), 0);
    tern_http_server_options ho = { .handler = tern_http_router_serve, .arg = rt, .max_body_bytes = -1 };
    tern_http_server *hs;
    CHECK_EQ(tern_http_server_new(&ho, &hs), 0);
    CHECK_EQ(tern_http_server_listen(hs, "127.0.0.1:0"), 0);
    tern_waitgroup wg = { 0 };
    http_served hv = { hs, &wg };
    tern_waitgroup_add(&wg, 1);
    CHECK_EQ(tern_go(http_serve_co, &hv), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/rest", tern_http_server_port(hs));
    CHECK_EQ(post(c, url, "application/json", body, sizeof body), 200);
    CHECK(!strcmp(body, "rest"));
    snprintf(url, sizeof url, "http://127.0.0.1:%d/terntest.Test/Unary", tern_http_server_port(hs));
    CHECK_EQ(post(c, url, "application/json", body, sizeof body), 415);
    tern_http_server_shutdown(hs, NULL);
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    tern_http_server_free(hs);
    tern_http_router_free(rt);
    tern_http_client_free(c);
    stop(&sv);
    return 0;
}

static void non_grpc_content_type_is_415(void)
{
    CHECK_EQ(tern_run(content_type_main, NULL), 0);
}

TESTS({ "grpcio_client_h2c", grpcio_client_h2c }, { "grpcio_client_tls", grpcio_client_tls },
      { "non_grpc_content_type_is_415", non_grpc_content_type_is_415 })
