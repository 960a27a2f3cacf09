/*
 * test_shop_trace.c - one trace across the shop's hops: a CreateOrder sent
 * with a traceparent gives the orders span, the spans of the calls orders
 * makes (the catalog's GetProduct, the inventory's Reserve), and the
 * saga's through the events (payments' charge, orders' handling of the
 * outcome, the inventory's Commit), all in the caller's trace.  The spans are exported (OTLP/HTTP JSON) to a
 * collector the test runs: a tern HTTP server.
 */
#include "shop_fixture.h"

#include <jansson.h>

typedef struct collector {
    tern_mutex mu;
    json_t *spans;                      /* every span received */
} collector;

static collector col = {.mu = TERN_MUTEX_INIT};

static int collect(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    json_t *body;
    if (tern_http_req_json(r, &body) < 0)
        return tern_http_resp_send(w, 400, "text/plain", "bad json\n", 9);
    tern_mutex_lock(&col.mu);
    size_t i, j, k;
    json_t *rs, *ss, *sp;
    json_array_foreach(json_object_get(body, "resourceSpans"), i, rs)
        json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss)
            json_array_foreach(json_object_get(ss, "spans"), k, sp)
                json_array_append(col.spans, sp);
    tern_mutex_unlock(&col.mu);
    json_decref(body);
    return tern_http_resp_send(w, 200, "application/json", "{}", 2);
}

/* The span named name in trace (hex), if the collector has it. */
static bool has_span(const char *name, const char *trace)
{
    tern_mutex_lock(&col.mu);
    bool found = false;
    size_t i;
    json_t *sp;
    json_array_foreach(col.spans, i, sp) {
        const char *n = json_string_value(json_object_get(sp, "name"));
        const char *t = json_string_value(json_object_get(sp, "traceId"));
        if (n && t && !strcmp(n, name) && !strcasecmp(t, trace))
            found = true;
    }
    tern_mutex_unlock(&col.mu);
    return found;
}

static int serve(void *s)
{
    return tern_http_server_serve(s, NULL);
}

static int body(void *arg)
{
    (void)arg;
    col.spans = json_array();
    tern_http_server *srv;
    CHECK_EQ(tern_http_server_new(&(tern_http_server_options){.handler = collect}, &srv), 0);
    CHECK_EQ(tern_http_server_listen(srv, "127.0.0.1:0"), 0);
    tern_join *sj;
    CHECK_EQ(tern_go_opts(serve, srv, &(tern_go_options){.join = &sj}, NULL), 0);
    char url[128];
    snprintf(url, sizeof url, "http://%s/v1/traces", tern_http_server_addr(srv));
    tern_trace_sampler always;
    CHECK_EQ(tern_trace_sampler_parse("always_on", NULL, &always), 0);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.service_name = "shop-test", .endpoint = url,
                                                   .sampler = &always, .batch_delay = 20 * TERN_MS}),
             0);

    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, NULL);

    const char *trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    char tp[64];
    snprintf(tp, sizeof tp, "00-%s-00f067aa0ba902b7-01", trace);
    Shop__Orders__V1__CreateOrderRequest__Line line = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__LINE__INIT;
    line.product_id = "mug";
    line.quantity = 1;
    Shop__Orders__V1__CreateOrderRequest__Line *lines[] = {&line};
    Shop__Orders__V1__CreateOrderRequest req = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
    req.user_id = "u-trace";
    req.items = lines;
    req.n_items = 1;
    const char *md[] = {"traceparent", tp, NULL};
    tern_grpc_call_options co = {.metadata = md};
    Shop__Orders__V1__Order *o = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_orders_v1_orders_create_order(fx.ch[SHOP_ORDERS], &req, &o, &co, NULL, ctx), 0);
    tern_ctx_free(ctx);
    FREE_MSG(o);

    /* the call's hops, then the saga's: the events' handlers and the
     * commit they make, all in the caller's trace */
    const char *hops[] = {"shop.orders.v1.Orders/CreateOrder", "shop.catalog.v1.Catalog/GetProduct",
                          "shop.inventory.v1.Inventory/Reserve", "payments: charge",
                          "orders: payment succeeded", "shop.inventory.v1.Inventory/Commit"};
    for (size_t h = 0; h < sizeof hops / sizeof hops[0]; h++) {
        int i = 0;
        while (!has_span(hops[h], trace) && i++ < 500)
            tern_sleep(10 * TERN_MS);
        if (!has_span(hops[h], trace))
            fprintf(stderr, "no span %s in trace %s\n", hops[h], trace);
        CHECK(has_span(hops[h], trace));
    }

    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    ctx = shop_fx_ctx();
    tern_trace_shutdown(ctx);
    tern_http_server_shutdown(srv, ctx);
    tern_ctx_free(ctx);
    tern_join_wait(sj, NULL, NULL);
    tern_join_free(sj);
    tern_http_server_free(srv);
    json_decref(col.spans);
    return 0;
}

static void one_trace_across_the_grpc_hops(void)
{
    run_ok(body, NULL, 2);
}

TESTS(T(one_trace_across_the_grpc_hops))
