/*
 * interop_server - grpc.testing.TestService as gRPC's interoperability
 * tests describe it (grpc/doc/interop-test-descriptions.md, "Server"), on
 * the code tern_grpc_generate makes of Debian's
 * /usr/share/grpc-proto/grpc/testing/test.proto, with the standard health
 * and reflection services beside it.
 *
 *     interop_server [--port=N] [--use_tls=true --tls_cert=F --tls_key=F]
 *
 * Prints "listening on PORT" (port 0: one is chosen), serves until SIGTERM
 * or SIGINT.  Features: EmptyCall, UnaryCall, CacheableUnaryCall,
 * StreamingOutputCall, StreamingInputCall, FullDuplexCall, HalfDuplexCall;
 * CompressedRequest (expect_compressed), CompressedResponse (per message
 * in streams), Echo Status, Echo Metadata, ResponseParameters.interval_us.
 * UnimplementedCall is left NULL in the impl struct: UNIMPLEMENTED.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/grpc_reflection.h>
#include <tern/health_grpc.h>
#include <tern/runtime.h>
#include <tern/signal.h>
#include <tern/tls.h>

#include "grpc/testing/test.tern-grpc.h"

typedef Grpc__Testing__SimpleRequest simple_req;
typedef Grpc__Testing__SimpleResponse simple_resp;
typedef Grpc__Testing__StreamingOutputCallRequest out_req;
typedef Grpc__Testing__StreamingOutputCallResponse out_resp;
typedef Grpc__Testing__StreamingInputCallRequest in_req;
typedef Grpc__Testing__StreamingInputCallResponse in_resp;

/* Payload bodies are zeros: one read-only buffer serves every message up
 * to its size (the interop cases stay far below it). */
#define ZEROS_MAX (4 << 20)
static const uint8_t zeros[ZEROS_MAX];

static int payload(Grpc__Testing__Payload *p, int32_t size)
{
    if (size < 0 || size > ZEROS_MAX)
        return -EINVAL;
    grpc__testing__payload__init(p);
    p->body.len = (size_t)size;
    p->body.data = (uint8_t *)zeros;
    return 0;
}

/* Echo Metadata: x-grpc-test-echo-initial back as a header,
 * x-grpc-test-echo-trailing-bin back as a trailer. */
static int echo_metadata(tern_grpc_call *call)
{
    const char *initial = tern_grpc_call_metadata(call, "x-grpc-test-echo-initial");
    int rc = 0;
    if (initial)
        rc = tern_grpc_call_add_header(call, "x-grpc-test-echo-initial", initial, strlen(initial));
    const void *bin;
    size_t len;
    if (rc == 0 && tern_grpc_call_metadata_bin(call, "x-grpc-test-echo-trailing-bin", &bin, &len) == 0)
        rc = tern_grpc_call_add_trailer(call, "x-grpc-test-echo-trailing-bin", bin, len);
    return rc;
}

/* Echo Status */
static int echo_status(tern_grpc_call *call, const Grpc__Testing__EchoStatus *st)
{
    if (!st || st->code == 0)
        return 0;
    return tern_grpc_call_fail(call, (tern_grpc_code)st->code, "%s", st->message ? st->message : "");
}

/* CompressedRequest: a request that says it was compressed must have been. */
static int expect_compressed(tern_grpc_call *call, const Grpc__Testing__BoolValue *expect)
{
    if (expect && expect->value && !tern_grpc_call_recv_compressed(call))
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "expected a compressed request");
    return 0;
}

static int compress_if(tern_grpc_call *call, const Grpc__Testing__BoolValue *compressed)
{
    return tern_grpc_call_set_compression(call, compressed && compressed->value ? "gzip" : NULL);
}

static int empty_call(tern_grpc_call *call, const Grpc__Testing__Empty *req, Grpc__Testing__Empty *resp,
                      void *arg)
{
    (void)call, (void)req, (void)resp, (void)arg;
    return 0;
}

static int unary_call(tern_grpc_call *call, const simple_req *req, simple_resp *resp, void *arg)
{
    (void)arg;
    int rc = echo_metadata(call);
    if (rc == 0)
        rc = expect_compressed(call, req->expect_compressed);
    if (rc == 0)
        rc = echo_status(call, req->response_status);
    if (rc == 0 && req->response_compressed)
        rc = compress_if(call, req->response_compressed);
    if (rc < 0)
        return rc;
    resp->payload = tern_grpc_call_alloc(call, sizeof *resp->payload);
    if (!resp->payload)
        return -ENOMEM;
    if (payload(resp->payload, req->response_size) < 0)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "response_size %d", (int)req->response_size);
    return 0;
}

/* CacheableUnaryCall: the time as the payload, and headers a caching proxy
 * would honour. */
static int cacheable_unary_call(tern_grpc_call *call, const simple_req *req, simple_resp *resp, void *arg)
{
    (void)req, (void)arg;
    char now[32];
    int n = snprintf(now, sizeof now, "%lld", (long long)tern_now());
    resp->payload = tern_grpc_call_alloc(call, sizeof *resp->payload);
    char *body = tern_grpc_call_strdup(call, now);
    if (!resp->payload || !body)
        return -ENOMEM;
    grpc__testing__payload__init(resp->payload);
    resp->payload->body.data = (uint8_t *)body;
    resp->payload->body.len = (size_t)n;
    return tern_grpc_call_add_header(call, "cache-control", "max-age=60, public", 0);
}

/* One response per parameter, each after its interval. */
static int send_responses(tern_grpc_call *call, Grpc__Testing__ResponseParameters *const *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const Grpc__Testing__ResponseParameters *p = params[i];
        int rc = 0;
        if (p->interval_us > 0)
            rc = tern_ctx_sleep((int64_t)p->interval_us * 1000, tern_grpc_call_ctx(call));
        if (rc == 0 && p->compressed)
            rc = compress_if(call, p->compressed);
        out_resp resp = GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
        Grpc__Testing__Payload body;
        if (rc == 0 && payload(&body, p->size) < 0)
            rc = tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "size %d", (int)p->size);
        resp.payload = &body;
        if (rc == 0)
            rc = tern_grpc_call_send(call, &resp.base, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int streaming_output_call(tern_grpc_call *call, const out_req *req, void *arg)
{
    (void)arg;
    int rc = echo_metadata(call);
    if (rc == 0)
        rc = send_responses(call, req->response_parameters, req->n_response_parameters);
    if (rc == 0)
        rc = echo_status(call, req->response_status);
    return rc;
}

static int streaming_input_call(tern_grpc_call *call, in_resp *resp, void *arg)
{
    (void)arg;
    int rc = echo_metadata(call);
    const in_req *req = NULL;
    int64_t total = 0;
    while (rc == 0 && (rc = grpc_testing_test_service_streaming_input_call_recv(call, &req, NULL)) == 1) {
        rc = expect_compressed(call, req->expect_compressed);
        total += req->payload ? (int64_t)req->payload->body.len : 0;
    }
    if (rc < 0)
        return rc;
    resp->aggregated_payload_size = (int32_t)total;
    return 0;
}

static int full_duplex_call(tern_grpc_call *call, void *arg)
{
    (void)arg;
    int rc = echo_metadata(call);
    const out_req *req = NULL;
    while (rc == 0 && (rc = grpc_testing_test_service_full_duplex_call_recv(call, &req, NULL)) == 1) {
        /* all of req is used before the next recv replaces it */
        rc = echo_status(call, req->response_status);
        if (rc == 0)
            rc = send_responses(call, req->response_parameters, req->n_response_parameters);
    }
    return rc;
}

/* HalfDuplexCall: every request first, then the responses, in order. */
static int half_duplex_call(tern_grpc_call *call, void *arg)
{
    (void)arg;
    int rc = echo_metadata(call);
    Grpc__Testing__ResponseParameters **all = NULL;
    size_t n = 0, cap = 0;
    const out_req *req = NULL;
    while (rc == 0 && (rc = grpc_testing_test_service_half_duplex_call_recv(call, &req, NULL)) == 1) {
        for (size_t i = 0; i < req->n_response_parameters; i++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                Grpc__Testing__ResponseParameters **v = tern_grpc_call_alloc(call, cap * sizeof *v);
                if (!v)
                    return -ENOMEM;
                if (n)
                    memcpy(v, all, n * sizeof *v);
                all = v;
            }
            /* the parameters outlive this request: copied */
            Grpc__Testing__ResponseParameters *p = tern_grpc_call_alloc(call, sizeof *p);
            if (!p)
                return -ENOMEM;
            grpc__testing__response_parameters__init(p);
            p->size = req->response_parameters[i]->size;
            p->interval_us = req->response_parameters[i]->interval_us;
            all[n++] = p;
        }
    }
    if (rc < 0)
        return rc;
    return send_responses(call, all, n);
}

static const grpc_testing_test_service_server test_service = {
    .empty_call = empty_call,
    .unary_call = unary_call,
    .cacheable_unary_call = cacheable_unary_call,
    .streaming_output_call = streaming_output_call,
    .streaming_input_call = streaming_input_call,
    .full_duplex_call = full_duplex_call,
    .half_duplex_call = half_duplex_call,
    /* .unimplemented_call: NULL answers UNIMPLEMENTED */
};

typedef struct flags {
    const char *port, *cert, *key;
    bool tls;
} flags;

static int stop_on_signal(void *server)
{
    int sigs[] = {SIGTERM, SIGINT};
    tern_signal_wait(sigs, 2, TERN_FOREVER);
    tern_ctx *grace;
    if (tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &grace) == 0) {
        tern_grpc_server_shutdown(server, grace);
        tern_ctx_free(grace);
    }
    return 0;
}

static int serve(void *arg)
{
    const flags *f = arg;
    tern_grpc_server *s = NULL;
    tern_health *health = NULL;
    tern_tls_config *tls = NULL;
    char addr[64];
    snprintf(addr, sizeof addr, "0.0.0.0:%s", f->port);
    int rc = tern_grpc_server_new(NULL, &s);
    if (rc == 0)
        rc = grpc_testing_test_service_register(s, &test_service, NULL);
    if (rc == 0)
        rc = tern_health_new(NULL, &health);
    if (rc == 0)
        rc = tern_health_grpc_register(s, health);
    if (rc == 0)
        rc = tern_grpc_server_enable_reflection(s);
    if (rc == 0 && f->tls) {
        tern_tls_cert cert = {f->cert, f->key};
        const char *alpn[] = {"h2", NULL};
        tern_tls_server_options o = {.certs = &cert, .ncerts = 1, .alpn = alpn};
        rc = tern_tls_server_config_new(&o, &tls);
    }
    if (rc == 0)
        rc = tls ? tern_grpc_server_listen_tls(s, addr, tls) : tern_grpc_server_listen(s, addr);
    if (rc < 0) {
        fprintf(stderr, "interop_server: %s: %s\n", addr, tern_strerror(rc));
        return 1;
    }
    tern_health_set_ready(health, true);
    int sigs[] = {SIGTERM, SIGINT};
    tern_signal_notify(sigs, 2);
    tern_go(stop_on_signal, s);
    printf("listening on %d\n", tern_grpc_server_port(s));
    fflush(stdout);
    rc = tern_grpc_server_serve(s, NULL);
    tern_health_set_ready(health, false);
    tern_grpc_server_free(s);
    tern_health_free(health);
    tern_tls_config_free(tls);
    return rc < 0;
}

static const char *flag(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, name, n) && arg[n] == '=' ? arg + n + 1 : NULL;
}

int main(int argc, char **argv)
{
    flags f = {.port = "0"};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = flag(argv[i], "--port")))
            f.port = v;
        else if ((v = flag(argv[i], "--use_tls")))
            f.tls = !strcmp(v, "true");
        else if ((v = flag(argv[i], "--tls_cert")))
            f.cert = v;
        else if ((v = flag(argv[i], "--tls_key")))
            f.key = v;
        else {
            fprintf(stderr, "usage: interop_server [--port=N] [--use_tls=true --tls_cert=F --tls_key=F]\n");
            return 2;
        }
    }
    if (f.tls && (!f.cert || !f.key)) {
        fprintf(stderr, "interop_server: --use_tls=true needs --tls_cert and --tls_key\n");
        return 2;
    }
    return tern_run(serve, &f);
}
