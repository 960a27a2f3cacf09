/*
 * gateway_fixture.h - what the test_gateway_*.c suites share: real tern
 * HTTP servers as upstreams (an echo that says which upstream answered
 * and what it was sent, plus streaming, slow and failing endpoints), a
 * gateway served by a real tern HTTP server on 127.0.0.1:0, and a client
 * (tern_http_client) that talks to it.  Include after check.h.
 */
#ifndef TERN_TEST_GATEWAY_FIXTURE_H
#define TERN_TEST_GATEWAY_FIXTURE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <tern/gateway.h>
#include <tern/http.h>
#include <tern/http_client.h>
#include <tern/http_router.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *sa_ = (a), *sb_ = (b);                                               \
        if (!sa_ || strcmp(sa_, sb_) != 0) {                                             \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s is \"%s\", expected \"%s\"\n",  \
                    __FILE__, __LINE__, #a, sa_ ? sa_ : "(null)", sb_);                  \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_HAS(hay, needle)                                                           \
    do {                                                                                 \
        const char *h_ = (hay), *n_ = (needle);                                          \
        if (!h_ || !strstr(h_, n_)) {                                                    \
            fprintf(stderr, "%s:%d: CHECK_HAS failed: %s is \"%s\", lacks \"%s\"\n",     \
                    __FILE__, __LINE__, #hay, h_ ? h_ : "(null)", n_);                   \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* ---- upstreams ---- */

typedef struct upstream {
    const char *name;
    tern_http_server *srv;
    char addr[64];
    atomic_int hits;
    atomic_int fail_next;       /* answer this many requests with fail_status first */
    int fail_status;
    atomic_long uploaded;       /* bytes of the last /upload */
    int64_t delay;              /* ns before answering /slow */
    atomic_bool unhealthy;      /* /healthz answers 503 */
} upstream;

static void echo_header(tern_http_req *r, tern_http_resp *w, const char *in, const char *out)
{
    const char *v = tern_http_req_header(r, in);
    if (v)
        tern_http_resp_set_header(w, out, v);
}

static int upstream_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    upstream *u = arg;
    atomic_fetch_add(&u->hits, 1);
    const char *path = tern_http_req_path(r);
    if (atomic_load(&u->fail_next) > 0 && atomic_fetch_sub(&u->fail_next, 1) > 0)
        return tern_http_resp_error(w, u->fail_status, NULL);
    if (strcmp(path, "/upload") == 0) {
        char *buf = malloc(64 * 1024);
        long total = 0;
        ssize_t n;
        while ((n = tern_http_req_read(r, buf, 64 * 1024)) > 0) {
            total += n;
            if ((total >> 16) % 8 == 0)
                tern_yield();
        }
        free(buf);
        if (n < 0)
            return (int)n;
        atomic_store(&u->uploaded, total);
        return tern_http_resp_printf(w, "%ld", total) < 0 ? -EIO : 0;
    }
    if (strcmp(path, "/download") == 0) {
        const char *q = tern_http_req_query(r, "n");
        long left = q ? atol(q) : 0;
        char *buf = malloc(64 * 1024);
        memset(buf, 'd', 64 * 1024);
        int rc = 0;
        while (left > 0 && rc == 0) {
            size_t k = left < 64 * 1024 ? (size_t)left : 64 * 1024;
            if (tern_http_resp_write(w, buf, k) < 0)
                rc = -EPIPE;
            left -= (long)k;
            tern_yield();
        }
        free(buf);
        return rc;
    }
    if (strcmp(path, "/slow") == 0)
        tern_sleep(u->delay);
    if (strcmp(path, "/healthz") == 0)
        return tern_http_resp_text(w, atomic_load(&u->unhealthy) ? 503 : 200, "health");
    echo_header(r, w, "X-User", "X-Seen-User");
    tern_http_resp_set_header(w, "X-Proto", tern_http_req_proto(r));
    if (tern_http_req_content_length(r) > 0 || tern_http_req_header(r, "Transfer-Encoding")) {
        const char *data;
        size_t len;
        int rc = tern_http_req_body(r, &data, &len);
        if (rc < 0)
            return rc;
        char n[24];
        snprintf(n, sizeof n, "%zu", len);
        tern_http_resp_set_header(w, "X-Body-Len", n);
    }
    tern_http_resp_set_header(w, "X-Upstream", u->name);
    echo_header(r, w, "X-Forwarded-For", "X-Seen-XFF");
    echo_header(r, w, "X-Forwarded-Proto", "X-Seen-Proto");
    echo_header(r, w, "Via", "X-Seen-Via");
    echo_header(r, w, "X-Hop", "X-Seen-Hop");
    echo_header(r, w, "Keep-Alive", "X-Seen-Keep-Alive");
    echo_header(r, w, "traceparent", "X-Seen-Traceparent");
    echo_header(r, w, "X-Custom", "X-Seen-Custom");
    tern_http_resp_set_header(w, "Keep-Alive", "timeout=5");
    return tern_http_resp_printf(w, "%s %s %s", u->name, tern_http_req_method(r), tern_http_req_target(r)) < 0
               ? -EIO
               : 0;
}

static int upstream_serve_co(void *arg)
{
    upstream *u = arg;
    tern_http_server_serve(u->srv, NULL);
    return 0;
}

static void upstream_start(upstream *u, const char *name)
{
    u->name = name;
    u->fail_status = u->fail_status ? u->fail_status : 503;
    atomic_store(&u->hits, 0);
    atomic_store(&u->fail_next, 0);
    atomic_store(&u->uploaded, 0);
    atomic_store(&u->unhealthy, false);
    tern_http_server_options o = {.handler = upstream_handler, .arg = u, .max_body_bytes = -1};
    CHECK_EQ(tern_http_server_new(&o, &u->srv), 0);
    CHECK_EQ(tern_http_server_listen(u->srv, "127.0.0.1:0"), 0);
    snprintf(u->addr, sizeof u->addr, "%s", tern_http_server_addr(u->srv));
    CHECK_EQ(tern_go(upstream_serve_co, u), 0);
}

static void upstream_stop(upstream *u)
{
    if (!u->srv)
        return;
    tern_http_server_shutdown(u->srv, NULL);
    tern_sleep(5 * MS);         /* serve returns */
    tern_http_server_free(u->srv);
    u->srv = NULL;
}

/* ---- the gateway behind a server ---- */

typedef struct gwsrv {
    tern_gateway *gw;
    tern_http_server *srv;
    char base[80];              /* "http://127.0.0.1:port" */
    tern_http_client *c;
    tern_metrics_registry *reg;
} gwsrv;

static int gw_serve_co(void *arg)
{
    gwsrv *s = arg;
    tern_http_server_serve(s->srv, NULL);
    return 0;
}

/* Start a gateway on text (YAML or JSON); 0, or the error of tern_gateway_new. */
static int gw_start_text(gwsrv *s, const char *text, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    CHECK_EQ(tern_metrics_registry_new(&s->reg), 0);
    tern_gateway_options o = {.config_text = text, .config_len = strlen(text), .metrics = s->reg};
    int rc = tern_gateway_new(&o, &s->gw, err, errlen);
    if (rc < 0) {
        tern_metrics_registry_free(s->reg);
        return rc;
    }
    tern_http_server_options so = {.handler = tern_gateway_handler, .arg = s->gw, .max_body_bytes = -1};
    CHECK_EQ(tern_http_server_new(&so, &s->srv), 0);
    CHECK_EQ(tern_http_server_listen(s->srv, "127.0.0.1:0"), 0);
    snprintf(s->base, sizeof s->base, "http://%s", tern_http_server_addr(s->srv));
    CHECK_EQ(tern_go(gw_serve_co, s), 0);
    CHECK_EQ(tern_http_client_new(NULL, &s->c), 0);
    return 0;
}

static void gw_stop(gwsrv *s)
{
    tern_http_client_free(s->c);
    tern_http_server_shutdown(s->srv, NULL);
    tern_sleep(5 * MS);
    tern_http_server_free(s->srv);
    tern_gateway_free(s->gw);
    tern_metrics_registry_free(s->reg);
}

/* A response, read whole. */
typedef struct reply {
    int status;
    char body[4096];
    char hdr[8][256];           /* the headers asked for, "" when absent */
} reply;

/* method path [headers...] -> reply; hdr_names: up to 8 response headers to keep. */
static int gw_call(gwsrv *s, const char *method, const char *path, const char *const *headers,
                   const char *body, const char *const *hdr_names, reply *out)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    tern_http_client_request req = {.method = method, .url = url, .headers = headers, .body = body,
                                    .body_len = body ? strlen(body) : 0};
    tern_http_client_response *resp;
    memset(out, 0, sizeof *out);
    int rc = tern_http_client_do(s->c, &req, &resp, NULL);
    if (rc < 0)
        return rc;
    out->status = tern_http_client_response_status(resp);
    const char *data;
    size_t len;
    rc = tern_http_client_response_body(resp, sizeof out->body - 1, &data, &len);
    if (rc == 0)
        memcpy(out->body, data, len);
    for (int i = 0; hdr_names && i < 8 && hdr_names[i]; i++) {
        const char *v = tern_http_client_response_header(resp, hdr_names[i]);
        snprintf(out->hdr[i], sizeof out->hdr[i], "%s", v ? v : "");
    }
    tern_http_client_response_free(resp);
    return rc;
}

static int gw_get(gwsrv *s, const char *path, reply *out)
{
    return gw_call(s, "GET", path, NULL, NULL, NULL, out);
}

#pragma GCC diagnostic pop
#endif
