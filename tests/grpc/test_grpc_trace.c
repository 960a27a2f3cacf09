/*
 * test_grpc_trace.c - the kit's gRPC tracing interceptors end to end: a
 * traced client calls a traced tern server whose handler side calls the
 * server again with the call's ctx; the spans reach a real OTLP/HTTP
 * receiver (a tern HTTP server in the test) and are checked there: one
 * trace, CLIENT -> SERVER -> CLIENT -> SERVER parent links, OTel's rpc.*
 * attributes and status rules; an untraced caller's traceparent metadata
 * is continued; a stream's CLIENT span ends with the stream.
 */
#include "grpc_fixture.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <tern/http.h>
#include <tern/trace.h>

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* ---- the OTLP receiver -------------------------------------------------- */

static pthread_mutex_t rx_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *rx_docs;

static int traces_h(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    json_t *doc;
    CHECK_EQ(tern_http_req_json(r, &doc), 0);
    pthread_mutex_lock(&rx_mu);
    json_array_append_new(rx_docs, doc);
    pthread_mutex_unlock(&rx_mu);
    return tern_http_resp_send(w, 200, "application/json", "{}", 2);
}

typedef struct hsrv {
    tern_http_server *s;
    tern_waitgroup wg;
} hsrv;

static int hserve_co(void *arg)
{
    hsrv *h = arg;
    tern_http_server_serve(h->s, NULL);
    tern_waitgroup_done(&h->wg);
    return 0;
}

static size_t spans(json_t **out, size_t max)
{
    size_t n = 0, i, j, k, m;
    json_t *doc, *rs, *ss, *sp;
    json_array_foreach(rx_docs, i, doc) {
        json_array_foreach(json_object_get(doc, "resourceSpans"), j, rs) {
            json_array_foreach(json_object_get(rs, "scopeSpans"), k, ss) {
                json_array_foreach(json_object_get(ss, "spans"), m, sp) {
                    if (n < max)
                        out[n] = sp;
                    n++;
                }
            }
        }
    }
    return n;
}

static const char *field(json_t *sp, const char *key)
{
    const char *v = json_string_value(json_object_get(sp, key));
    return v ? v : "";
}

static int kind_of(json_t *sp)
{
    return (int)json_integer_value(json_object_get(sp, "kind"));
}

static int status_of(json_t *sp)
{
    return (int)json_integer_value(json_object_get(json_object_get(sp, "status"), "code"));
}

static const char *attr(json_t *sp, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(sp, "attributes"), i, a) {
        if (strcmp(field(a, "key"), key) != 0)
            continue;
        json_t *v = json_object_get(a, "value");
        const char *s = json_string_value(json_object_get(v, "stringValue"));
        return s ? s : json_string_value(json_object_get(v, "intValue"));
    }
    return NULL;
}

/* The span of that kind whose parent is parent_id (NULL: any), else NULL. */
static json_t *child_of(const char *parent_id, int kind, const char *name)
{
    json_t *all[64];
    size_t n = spans(all, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        if (kind_of(all[i]) == kind && (!parent_id || !strcmp(field(all[i], "parentSpanId"), parent_id)) &&
            (!name || !strcmp(field(all[i], "name"), name)))
            return all[i];
    fprintf(stderr, "no span of kind %d under %s\n", kind, parent_id ? parent_id : "-");
    return NULL;
}

/* ---- the traced server ------------------------------------------------------ */

typedef struct srv {
    tern_grpc_server *s;
    tern_waitgroup wg;
    char addr[64];
} srv;

static tern_grpc_channel *traced;       /* the channel handlers call back on */
static atomic_int span_in_ctx, span_current;

/* Inside the trace interceptor: what a handler sees; a call named "nest"
 * first calls the server again (name "leaf") with the call's ctx. */
static int inner_icept(tern_grpc_call *call, void *arg)
{
    (void)arg;
    tern_trace_span *s = tern_trace_span_from_ctx(tern_grpc_call_ctx(call));
    if (s)
        atomic_fetch_add(&span_in_ctx, 1);
    if (s && s == tern_trace_span_current())
        atomic_fetch_add(&span_current, 1);
    const char *nest = tern_grpc_call_metadata(call, "x-nest");
    if (nest) {
        Terntest__Req req = TERNTEST__REQ__INIT;
        req.name = "leaf";
        ProtobufCMessage *resp;
        CHECK_EQ(tern_grpc_unary(traced, M_UNARY, &req.base, &resp, NULL, NULL, tern_grpc_call_ctx(call)), 0);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    return tern_grpc_call_next(call);
}

static int serve_co(void *arg)
{
    srv *sv = arg;
    tern_grpc_server_serve(sv->s, NULL);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

static int trace_main(void *arg)
{
    (void)arg;
    rx_docs = json_array();
    hsrv rx = { 0 };
    tern_http_server_options ho = { .handler = traces_h };
    CHECK_EQ(tern_http_server_new(&ho, &rx.s), 0);
    CHECK_EQ(tern_http_server_listen(rx.s, "127.0.0.1:0"), 0);
    tern_waitgroup_add(&rx.wg, 1);
    CHECK_EQ(tern_go(hserve_co, &rx), 0);
    char ep[96];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/v1/traces", tern_http_server_port(rx.s));
    tern_trace_sampler on;
    CHECK_EQ(tern_trace_sampler_parse("always_on", NULL, &on), 0);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){ .endpoint = ep, .sampler = &on,
                                                    .service_name = "grpc-trace-test",
                                                    .batch_delay = 20 * MS }), 0);

    srv sv = { 0 };
    CHECK_EQ(tern_grpc_server_new(NULL, &sv.s), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv.s, tern_grpc_trace_server_interceptor, NULL), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv.s, inner_icept, NULL), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv.s, &test_service, NULL, NULL), 0);
    CHECK_EQ(tern_grpc_server_listen(sv.s, "127.0.0.1:0"), 0);
    snprintf(sv.addr, sizeof sv.addr, "127.0.0.1:%d", tern_grpc_server_port(sv.s));
    tern_waitgroup_add(&sv.wg, 1);
    CHECK_EQ(tern_go(serve_co, &sv), 0);

    tern_grpc_client_interceptor ics[] = { { tern_grpc_trace_client_interceptor, NULL } };
    tern_grpc_channel_options co = { .interceptors = ics, .n_interceptors = 1 };
    CHECK_EQ(tern_grpc_channel_new(sv.addr, &co, &traced), 0);
    tern_grpc_channel *plain;
    CHECK_EQ(tern_grpc_channel_new(sv.addr, NULL, &plain), 0);

    /* caller -> CLIENT -> SERVER (nest) -> CLIENT -> SERVER (leaf) */
    tern_trace_span *caller;
    CHECK_EQ(tern_trace_span_start("caller", TERN_TRACE_KIND_INTERNAL, NULL, &caller), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_trace_ctx_with_span(NULL, caller, &ctx), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "nest";
    static const char *const nest_md[] = { "x-nest", "1", NULL };
    tern_grpc_call_options opts = { .metadata = nest_md };
    ProtobufCMessage *resp;
    CHECK_EQ(tern_grpc_unary(traced, M_UNARY, &req.base, &resp, &opts, NULL, ctx), 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    CHECK_EQ(atomic_load(&span_in_ctx), 2);
    CHECK_EQ(atomic_load(&span_current), 2);

    /* failures: NOT_FOUND blames the caller (server span unset), INTERNAL the server */
    req.name = "f";
    req.code = TERN_GRPC_NOT_FOUND;
    req.message = "nf";
    CHECK_EQ(tern_grpc_unary(traced, M_UNARY, &req.base, &resp, NULL, NULL, ctx), -ENOENT);
    req.code = TERN_GRPC_INTERNAL;
    req.message = "boom";
    CHECK_EQ(tern_grpc_unary(traced, M_UNARY, &req.base, &resp, NULL, NULL, ctx), -EPROTO);
    req.code = 0;

    /* a stream: its CLIENT span ends when recv sees the end */
    req.name = "st";
    req.count = 2;
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(traced, M_SSTREAM, NULL, &s, ctx), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    ProtobufCMessage *msg;
    while (tern_grpc_stream_recv(s, &msg, NULL) == 1) {
    }
    tern_grpc_stream_free(s);
    req.count = 0;
    tern_ctx_free(ctx);
    tern_trace_span_end(caller);
    char caller_id[17], caller_trace[33];
    snprintf(caller_id, sizeof caller_id, "%s", tern_trace_span_span_id(caller));
    snprintf(caller_trace, sizeof caller_trace, "%s", tern_trace_span_trace_id(caller));
    tern_trace_span_free(caller);

    /* an untraced caller (grpcio, say) sending traceparent itself */
    static const char *const tp_md[] = { "traceparent", TP, "tracestate", "congo=t61", NULL };
    tern_grpc_call_options tpo = { .metadata = tp_md };
    req.name = "remote";
    CHECK_EQ(tern_grpc_unary(plain, M_UNARY, &req.base, &resp, &tpo, NULL, NULL), 0);
    protobuf_c_message_free_unpacked(resp, NULL);

    tern_grpc_channel_free(traced);
    tern_grpc_channel_free(plain);
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, SEC, &c), 0);
    tern_grpc_server_shutdown(sv.s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&sv.wg, NULL), 0);
    tern_grpc_server_free(sv.s);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * SEC, &c), 0);
    CHECK_EQ(tern_trace_shutdown(c), 0);
    tern_ctx_free(c);

    /* caller + 2x(client, server) nested + 2x(client, server) failing + stream pair + remote server */
    json_t *all[64];
    CHECK_EQ(spans(all, 64), 12);
    json_t *c1 = child_of(caller_id, 3, "terntest.Test/Unary");
    CHECK(c1);
    CHECK(!strcmp(field(c1, "traceId"), caller_trace));
    CHECK(!strcmp(attr(c1, "rpc.system"), "grpc"));
    CHECK(!strcmp(attr(c1, "rpc.service"), "terntest.Test"));
    CHECK(!strcmp(attr(c1, "rpc.method"), "Unary"));
    CHECK(!strcmp(attr(c1, "rpc.grpc.status_code"), "0"));
    json_t *s1 = child_of(field(c1, "spanId"), 2, NULL);
    CHECK(s1);
    CHECK(!strcmp(field(s1, "name"), "terntest.Test/Unary"));
    CHECK(!strcmp(field(s1, "traceId"), caller_trace));
    CHECK(!strcmp(attr(s1, "rpc.method"), "Unary"));
    json_t *c2 = child_of(field(s1, "spanId"), 3, NULL);       /* the handler's own call */
    CHECK(c2);
    json_t *s2 = child_of(field(c2, "spanId"), 2, NULL);
    CHECK(s2);
    CHECK(!strcmp(field(s2, "traceId"), caller_trace));

    /* the failing pair: a client span is an error for any code, a server span not for NOT_FOUND */
    size_t n = spans(all, 64);
    int client_err = 0, server_err = 0, server_unset_nf = 0;
    for (size_t i = 0; i < n; i++) {
        const char *code = attr(all[i], "rpc.grpc.status_code");
        if (!code)
            continue;
        if (kind_of(all[i]) == 3 && strcmp(code, "0") != 0)
            client_err += status_of(all[i]) == 2;
        if (kind_of(all[i]) == 2 && !strcmp(code, "13"))
            server_err += status_of(all[i]) == 2;
        if (kind_of(all[i]) == 2 && !strcmp(code, "5"))
            server_unset_nf += status_of(all[i]) == 0;
    }
    CHECK_EQ(client_err, 2);
    CHECK_EQ(server_err, 1);
    CHECK_EQ(server_unset_nf, 1);

    json_t *cs = child_of(caller_id, 3, "terntest.Test/ServerStream");
    CHECK(cs);
    CHECK(!strcmp(attr(cs, "rpc.method"), "ServerStream"));
    CHECK(!strcmp(attr(cs, "rpc.grpc.status_code"), "0"));
    CHECK(child_of(field(cs, "spanId"), 2, "terntest.Test/ServerStream"));

    json_t *rs = child_of("00f067aa0ba902b7", 2, NULL);
    CHECK(rs);
    CHECK(!strcmp(field(rs, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736"));
    CHECK(!strcmp(field(rs, "traceState"), "congo=t61"));

    CHECK_EQ(tern_ctx_with_timeout(NULL, SEC, &c), 0);
    tern_http_server_shutdown(rx.s, c);
    tern_ctx_free(c);
    tern_waitgroup_wait(&rx.wg, NULL);
    tern_http_server_free(rx.s);
    json_decref(rx_docs);
    return 0;
}

static void traces_cross_grpc_calls(void)
{
    CHECK_EQ(tern_run(trace_main, NULL), 0);
}

TESTS({ "traces_cross_grpc_calls", traces_cross_grpc_calls })
