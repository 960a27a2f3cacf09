/* test_http_client_h2_tls.c - the HTTP client choosing HTTP/2 by ALPN over
 * https://, against tern's own TLS server: a server offering h2 gets
 * HTTP/2 and a burst of concurrent requests shares one connection; a
 * server that lists only http/1.1, or a client with disable_h2, stays on
 * HTTP/1.1. */
#include "tls_pair.h"

#include <tern/http.h>
#include <tern/http_client.h>

typedef struct srv {
    tern_http_server *s;
    tern_tls_config *cfg;
    int port;
    tern_waitgroup done;
} srv;

static int app(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    char body[128];
    snprintf(body, sizeof body, "%s %s", tern_http_req_proto(r), tern_http_req_path(r));
    return tern_http_resp_text(w, 200, body);
}

static int serve_co(void *arg)
{
    srv *v = arg;
    tern_http_server_serve(v->s, NULL);
    tern_waitgroup_done(&v->done);
    return 0;
}

/* A TLS server whose ALPN list is alpn (NULL: the default, http/1.1). */
static void srv_start(srv *v, const char *const *alpn)
{
    memset(v, 0, sizeof *v);
    tern_tls_cert certs[] = {{tls_path("srv.pem"), tls_path("srv.key")}};
    tern_tls_server_options so = {.certs = certs, .ncerts = 1, .alpn = alpn};
    CHECK_EQ(tern_tls_server_config_new(&so, &v->cfg), 0);
    tern_http_server_options o = {.handler = app};
    CHECK_EQ(tern_http_server_new(&o, &v->s), 0);
    CHECK_EQ(tern_http_server_listen_tls(v->s, "127.0.0.1:0", v->cfg), 0);
    v->port = tern_http_server_port(v->s);
    tern_waitgroup_add(&v->done, 1);
    CHECK_EQ(tern_go(serve_co, v), 0);
}

static void srv_stop(srv *v)
{
    CHECK_EQ(tern_http_server_shutdown(v->s, NULL), 0);
    tern_waitgroup_wait(&v->done, NULL);
    tern_http_server_free(v->s);
    tern_tls_config_free(v->cfg);
}

static const char *const h2_h1[] = {"h2", "http/1.1", NULL};
static const char *const h1_only[] = {"http/1.1", NULL};

static tern_tls_config *client_alpn(const char *const *alpn)
{
    tern_tls_client_options o = {.ca_file = tls_path("ca.pem"), .alpn = alpn};
    tern_tls_config *cfg;
    CHECK_EQ(tern_tls_client_config_new(&o, &cfg), 0);
    return cfg;
}

/* GET path: 200 with the body "<server's proto> <path>", and the client's
 * proto into proto. */
static void get(tern_http_client *c, int port, const char *path, const char **proto)
{
    char url[128], want[128];
    snprintf(url, sizeof url, "https://localhost:%d%s", port, path);
    tern_http_client_response *r;
    int rc = tern_http_client_get(c, url, &r, NULL);
    if (rc < 0)
        fprintf(stderr, "GET %s: %s\n", url, tern_strerror(rc));
    CHECK_EQ(rc, 0);
    CHECK_EQ(tern_http_client_response_status(r), 200);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, 1 << 20, &body, &len), 0);
    *proto = tern_http_client_response_proto(r);
    snprintf(want, sizeof want, "%s %s", *proto, path);
    if (strcmp(body, want) != 0)
        fprintf(stderr, "body \"%s\", want \"%s\"\n", body, want);
    CHECK(!strcmp(body, want));     /* both ends agree on the protocol */
    tern_http_client_response_free(r);
}

typedef struct burst {
    tern_http_client *c;
    int port, i;
    atomic_int *h2;
    tern_waitgroup *wg;
} burst;

static int burst_co(void *arg)
{
    burst *b = arg;
    char path[32];
    snprintf(path, sizeof path, "/b%d", b->i);
    const char *proto;
    get(b->c, b->port, path, &proto);
    if (!strcmp(proto, "HTTP/2"))
        atomic_fetch_add(b->h2, 1);
    tern_waitgroup_done(b->wg);
    return 0;
}

#define NBURST 40

static int h2_body(void *arg)
{
    (void)arg;
    srv v;
    srv_start(&v, h2_h1);
    tern_tls_config *cc = client_alpn(h2_h1);
    tern_http_client_options co = {.tls = cc};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    /* a burst before the origin's protocol is known: one handshake, one
     * connection, every request on it */
    burst b[NBURST];
    atomic_int h2 = 0;
    tern_waitgroup wg = {0};
    tern_waitgroup_add(&wg, NBURST);
    for (int i = 0; i < NBURST; i++) {
        b[i] = (burst){.c = c, .port = v.port, .i = i, .h2 = &h2, .wg = &wg};
        CHECK_EQ(tern_go(burst_co, &b[i]), 0);
    }
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(atomic_load(&h2), NBURST);
    struct tern_http_client_stats st;
    tern_http_client_stats(c, &st);
    CHECK_EQ(st.h2_conns, 1);
    CHECK_EQ(st.dials, 1);
    CHECK_EQ(st.requests, NBURST);
    CHECK_EQ(st.idle, 0);       /* nothing in the HTTP/1.1 pool */
    const char *proto;
    get(c, v.port, "/again", &proto);
    CHECK(!strcmp(proto, "HTTP/2"));
    tern_http_client_stats(c, &st);
    CHECK_EQ(st.dials, 1);
    tern_http_client_free(c);

    /* disable_h2 with a config that offers h2: the server agrees on h2,
     * which the client may not speak */
    co.disable_h2 = true;
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d/x", v.port);
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url, &r, NULL), -EPROTO);
    tern_http_client_free(c);
    tern_tls_config_free(cc);

    /* a config offering only http/1.1: HTTP/1.1 on the same server */
    cc = client_alpn(h1_only);
    co = (tern_http_client_options){.tls = cc};
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    get(c, v.port, "/h1", &proto);
    CHECK(!strcmp(proto, "HTTP/1.1"));
    tern_http_client_stats(c, &st);
    CHECK_EQ(st.h2_conns, 0);
    tern_http_client_free(c);
    tern_tls_config_free(cc);
    srv_stop(&v);
    return 0;
}

static void https_h2_by_alpn_one_connection_for_a_burst(void)
{
    tls_certs_make();
    run_ok(h2_body, NULL, 2);
}

static int h1_body(void *arg)
{
    (void)arg;
    srv v;
    srv_start(&v, h1_only);
    tern_tls_config *cc = client_alpn(h2_h1);
    tern_http_client_options co = {.tls = cc};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    /* a burst to an origin that turns out HTTP/1.1: the waiters go to the
     * HTTP/1.1 pool, the first request keeps the connection it handshook */
    burst b[8];
    atomic_int h2 = 0;
    tern_waitgroup wg = {0};
    tern_waitgroup_add(&wg, 8);
    for (int i = 0; i < 8; i++) {
        b[i] = (burst){.c = c, .port = v.port, .i = i, .h2 = &h2, .wg = &wg};
        CHECK_EQ(tern_go(burst_co, &b[i]), 0);
    }
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(atomic_load(&h2), 0);
    const char *proto;
    get(c, v.port, "/seq1", &proto);
    CHECK(!strcmp(proto, "HTTP/1.1"));
    get(c, v.port, "/seq2", &proto);
    CHECK(!strcmp(proto, "HTTP/1.1"));
    struct tern_http_client_stats st;
    tern_http_client_stats(c, &st);
    CHECK_EQ(st.h2_conns, 0);
    CHECK_EQ(st.requests, 10);
    CHECK(st.dials >= 1 && st.dials <= 8);
    CHECK(st.reuses >= 2);      /* keep-alive as before */
    tern_http_client_free(c);
    tern_tls_config_free(cc);
    srv_stop(&v);
    return 0;
}

static void https_server_with_only_http11_gets_http11(void)
{
    tls_certs_make();
    run_ok(h1_body, NULL, 2);
}

TESTS(T(https_h2_by_alpn_one_connection_for_a_burst),
      T(https_server_with_only_http11_gets_http11))
