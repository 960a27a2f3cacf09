/*
 * gateway_transcode_fixture.h - what test_gateway_transcode.c and
 * test_gateway_aggregate.c share: the real servers behind a gateway's
 * gRPC routes and a tern__gw_env built by hand in their place of the core.
 *
 *   - a tern gRPC server carrying terntest.json.v1.Items
 *     (tests/grpc_json/json_test.proto, stubs by tern_grpc_generate):
 *     GetItem echoes its request into an Item, with the x-user-id,
 *     traceparent and idempotency-key metadata it came with, sleeps sleep_ms first and fails
 *     with fail_code when asked;
 *   - a tern HTTP server as the "payments" upstream: GET
 *     /payments/by-order/:id answers {"order", "paid", "user", "query"},
 *     slowly (?slow_payment=ms), with another status (?payment_status=) or
 *     with a body that is not JSON (?payment_text=1);
 *   - the env: grpc_channel gives a tern_grpc_channel to the gRPC server
 *     ("items") or to a closed port ("items_down"); http_fetch sends the
 *     request with tern_http_client to the HTTP server ("payments") or a
 *     closed port ("payments_down");
 *   - the gateway's own HTTP server, a tern_http_router on which the test
 *     mounts its policies (the router sets the path parameters as the
 *     core's does), and a client (gw_call) that answers status and JSON.
 *
 * Include after check.h; everything is static.
 */
#ifndef TERN_TEST_GATEWAY_TRANSCODE_FIXTURE_H
#define TERN_TEST_GATEWAY_TRANSCODE_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <tern/grpc_json.h>
#include <tern/http_client.h>
#include <tern/http_router.h>

#include "gateway/policy.h"
#include "json_test.tern-grpc.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *sa_ = (a), *sb_ = (b);                                               \
        if (!sa_ || strcmp(sa_, sb_) != 0) {                                             \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s is \"%s\", expected \"%s\"\n",  \
                    __FILE__, __LINE__, #a, sa_ ? sa_ : "(null)", sb_);                  \
            abort();                                                                     \
        }                                                                                \
    } while (0)

typedef Terntest__Json__V1__GetItemRequest get_req;
typedef Terntest__Json__V1__CreateItemRequest create_req;
typedef Terntest__Json__V1__Item item;

/* ---- the gRPC server ---------------------------------------------------- */

static void item_from_call(tern_grpc_call *call, item *resp)
{
    const char *u = tern_grpc_call_metadata(call, "x-user-id");
    const char *tp = tern_grpc_call_metadata(call, "traceparent");
    resp->user = tern_grpc_call_strdup(call, u ? u : "");
    resp->traceparent = tern_grpc_call_strdup(call, tp ? tp : "");
    const char *ik = tern_grpc_call_metadata(call, "idempotency-key");
    resp->idempotency_key = tern_grpc_call_strdup(call, ik ? ik : "");
}

static int get_item(tern_grpc_call *call, const get_req *req, item *resp, void *arg)
{
    (void)arg;
    if (req->sleep_ms) {
        int rc = tern_ctx_sleep(req->sleep_ms * TERN_MS, tern_grpc_call_ctx(call));
        if (rc < 0)
            return rc;
    }
    if (req->fail_code)
        return tern_grpc_call_fail(call, (tern_grpc_code)req->fail_code, "item %s: failing as asked", req->id);
    char name[128];
    snprintf(name, sizeof name, "item %s", req->id);
    resp->id = tern_grpc_call_strdup(call, req->id);
    resp->name = tern_grpc_call_strdup(call, name);
    resp->price_cents = 9007199254740993LL;         /* 2^53 + 1: a double would lose it */
    resp->n_tags = req->n_tags;
    resp->tags = req->tags;                         /* the call's until the handler returns */
    resp->color = req->color;
    resp->limit = req->limit;
    item_from_call(call, resp);
    return 0;
}

static int create_item(tern_grpc_call *call, const create_req *req, item *resp, void *arg)
{
    (void)arg;
    if (req->item)
        *resp = *req->item;
    char id[256];
    snprintf(id, sizeof id, "%s/%s", req->shelf, req->item ? req->item->id : "-");
    resp->id = tern_grpc_call_strdup(call, id);
    item_from_call(call, resp);
    return 0;
}

static const terntest_json_v1_items_server items_impl = {.get_item = get_item, .create_item = create_item};

/* ---- the payments upstream (HTTP) --------------------------------------- */

static int payment(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *slow = tern_http_req_query(r, "slow_payment");
    if (slow)
        tern_ctx_sleep(atoi(slow) * TERN_MS, tern_http_req_ctx(r));
    const char *st = tern_http_req_query(r, "payment_status");
    if (st)
        return tern_http_resp_error(w, atoi(st), NULL);
    if (tern_http_req_query(r, "payment_text"))
        return tern_http_resp_text(w, 200, "paid, in text");
    const char *u = tern_http_req_header(r, "x-user-id");
    json_t *o = json_pack("{s:s, s:b, s:s, s:s}", "order", tern_http_req_param(r, "id"), "paid", 1, "user",
                          u ? u : "", "query", tern_http_req_raw_query(r));
    int rc = tern_http_resp_json(w, 200, o);
    json_decref(o);
    return rc;
}

/* ---- servers ------------------------------------------------------------ */

typedef struct http_srv {
    tern_http_server *s;
    tern_http_router *rt;
    tern_waitgroup wg;
    char base[64];                      /* "http://127.0.0.1:port" */
    int64_t max_body;                   /* the server's limit; 0: its default */
} http_srv;

static int http_serve_co(void *arg)
{
    http_srv *h = arg;
    tern_http_server_serve(h->s, NULL);
    tern_waitgroup_done(&h->wg);
    return 0;
}

static void http_start(http_srv *h)
{
    if (!h->rt)
        CHECK_EQ(tern_http_router_new(NULL, &h->rt), 0);
    tern_http_server_options o = {.handler = tern_http_router_serve, .arg = h->rt, .max_body_bytes = h->max_body};
    CHECK_EQ(tern_http_server_new(&o, &h->s), 0);
    CHECK_EQ(tern_http_server_listen(h->s, "127.0.0.1:0"), 0);
    snprintf(h->base, sizeof h->base, "http://127.0.0.1:%d", tern_http_server_port(h->s));
    tern_waitgroup_add(&h->wg, 1);
    CHECK_EQ(tern_go(http_serve_co, h), 0);
}

static void http_stop(http_srv *h)
{
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &c), 0);
    tern_http_server_shutdown(h->s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&h->wg, NULL), 0);
    tern_http_server_free(h->s);
    tern_http_router_free(h->rt);
    memset(h, 0, sizeof *h);
}

typedef struct fixture {
    tern_grpc_server *gs;
    tern_waitgroup gwg;
    tern_grpc_channel *items, *items_down;
    http_srv payments;                  /* the HTTP upstream */
    http_srv gw;                        /* the gateway: the test's routes */
    tern_http_client *client;           /* the env's http_fetch, and the test's client */
    tern__gw_env env;
} fixture;

static fixture fx;

static int grpc_serve_co(void *arg)
{
    (void)arg;
    tern_grpc_server_serve(fx.gs, NULL);
    tern_waitgroup_done(&fx.gwg);
    return 0;
}

static tern_grpc_channel *env_grpc_channel(void *core, const char *name)
{
    fixture *f = core;
    if (!strcmp(name, "items"))
        return f->items;
    if (!strcmp(name, "items_down"))
        return f->items_down;
    return NULL;
}

/* A port that refuses connections for the whole test: a socket bound to
 * it but not listening.  (Listening and closing would free the port, and a
 * listener made later in the test, or another program, could take it: the
 * "dead" upstreams would then answer.)  The socket stays open until
 * fixture_stop. */
static int down_fd = -1;

static int closed_port(void)
{
    down_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(down_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(down_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    CHECK_EQ(getsockname(down_fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

static int down_port;

static int env_http_fetch(void *core, const char *name, const char *method, const char *path_query,
                          const tern__gw_fwd *hdrs, const void *req_body, size_t req_len, size_t max_body,
                          int *status, char **body, size_t *body_len, tern_ctx *ctx)
{
    fixture *f = core;
    char url[1024];
    if (!strcmp(name, "payments"))
        snprintf(url, sizeof url, "%s%s", f->payments.base, path_query);
    else if (!strcmp(name, "payments_down"))
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", down_port, path_query);
    else
        return -ENOENT;
    const char *h[2 * TERN__GW_FWD_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; hdrs && i < hdrs->n; i++) {
        h[k++] = hdrs->kv[2 * i];
        h[k++] = hdrs->kv[2 * i + 1];
    }
    h[k] = NULL;
    tern_http_client_request rq = {.method = method, .url = url, .headers = h, .body = req_body,
                                   .body_len = req_len};
    tern_http_client_response *resp;
    int rc = tern_http_client_do(f->client, &rq, &resp, ctx);
    if (rc < 0)
        return rc;
    const char *data;
    size_t len;
    rc = tern_http_client_response_body(resp, max_body, &data, &len);
    if (rc == 0) {
        *status = tern_http_client_response_status(resp);
        *body = malloc(len + 1);
        memcpy(*body, data, len + 1);
        *body_len = len;
    }
    tern_http_client_response_free(resp);
    return rc;
}

static void fixture_start(void)
{
    memset(&fx, 0, sizeof fx);
    CHECK_EQ(tern_grpc_json_register(&terntest_json_v1_items_desc), 0);
    CHECK_EQ(tern_grpc_server_new(NULL, &fx.gs), 0);
    CHECK_EQ(terntest_json_v1_items_register(fx.gs, &items_impl, NULL), 0);
    CHECK_EQ(tern_grpc_server_listen(fx.gs, "127.0.0.1:0"), 0);
    tern_waitgroup_add(&fx.gwg, 1);
    CHECK_EQ(tern_go(grpc_serve_co, NULL), 0);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", tern_grpc_server_port(fx.gs));
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &fx.items), 0);
    down_port = closed_port();
    snprintf(target, sizeof target, "127.0.0.1:%d", down_port);
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &fx.items_down), 0);
    CHECK_EQ(tern_http_router_new(NULL, &fx.payments.rt), 0);
    CHECK_EQ(tern_http_router_handle(fx.payments.rt, "GET", "/payments/by-order/:id", payment, NULL), 0);
    http_start(&fx.payments);
    CHECK_EQ(tern_http_client_new(NULL, &fx.client), 0);
    CHECK_EQ(tern_http_router_new(NULL, &fx.gw.rt), 0);
    CHECK_EQ(tern_metrics_registry_new(&fx.env.metrics), 0);
    fx.env.core = &fx;
    fx.env.grpc_channel = env_grpc_channel;
    fx.env.http_fetch = env_http_fetch;
    fx.env.config_dir = ".";
}

static void fixture_stop(void)
{
    http_stop(&fx.gw);
    http_stop(&fx.payments);
    tern_http_client_free(fx.client);
    tern_grpc_channel_free(fx.items);
    tern_grpc_channel_free(fx.items_down);
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &c), 0);
    tern_grpc_server_shutdown(fx.gs, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&fx.gwg, NULL), 0);
    tern_grpc_server_free(fx.gs);
    tern_metrics_registry_free(fx.env.metrics);
    close(down_fd);
    down_fd = -1;
}

/* A JSON route (text) for the policies' _new. */
static json_t *route_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fprintf(stderr, "bad route JSON: %s: %s\n", text, je.text);
    CHECK(j != NULL);
    return j;
}

/* The gateway's answer to method path (body NULL: none; hdrs NULL or
 * NULL-terminated): the status, and *out the JSON body (NULL when it is
 * not JSON). */
static int gw_call(const char *method, const char *path, const char *body, const char *const *hdrs,
                   json_t **out)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", fx.gw.base, path);
    tern_http_client_request rq = {.method = method, .url = url, .headers = hdrs, .body = body,
                                   .body_len = body ? strlen(body) : 0};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(fx.client, &rq, &resp, NULL), 0);
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 20, &data, &len), 0);
    int status = tern_http_client_response_status(resp);
    *out = json_loadb(data, len, 0, NULL);
    if (!*out && status != 413)
        fprintf(stderr, "%s %s: %d, not JSON: %.*s\n", method, path, status, (int)len, data);
    tern_http_client_response_free(resp);
    return status;
}

/* j equals the JSON text want, or the test fails showing both. */
static void check_json(const json_t *j, const char *want)
{
    json_t *w = route_json(want);
    if (!j || !json_equal(j, w)) {
        char *got = j ? json_dumps(j, JSON_SORT_KEYS) : NULL;
        fprintf(stderr, "JSON\n  got:    %s\n  wanted: %s\n", got ? got : "(none)", want);
        abort();
    }
    json_decref(w);
}

#pragma GCC diagnostic pop
#endif
