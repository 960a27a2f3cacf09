/*
 * interop_client - gRPC's interoperability test cases
 * (grpc/doc/interop-test-descriptions.md, "Client") run by tern's channel
 * through the stubs tern_grpc_generate makes of Debian's
 * /usr/share/grpc-proto/grpc/testing/test.proto.
 *
 *     interop_client --server_port=N [--server_host=H] [--server_host_override=NAME]
 *                    [--use_tls=true --ca_file=CA.pem] [--test_case=NAME|all]
 *                    [--server_checks_compression=false]
 *
 * Runs one case, or all of them in order ("all", the default), printing
 * "PASS name" or "FAIL name: why" for each; exits 0 when all passed.
 * --ca_file stands for the official --use_test_ca (a CA of the test's own
 * making).  --server_checks_compression=false leaves out the feature
 * probes of client_compressed_unary / _streaming, for servers that cannot
 * see whether a request was compressed (grpcio's Python servers: gRPC's own
 * interop matrix skips those cases for them).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/error.h>
#include <tern/runtime.h>
#include <tern/tls.h>

#include "grpc/testing/test.tern-grpc.h"

#define CASE_TIMEOUT (20 * TERN_SEC)

typedef Grpc__Testing__SimpleRequest simple_req;
typedef Grpc__Testing__SimpleResponse simple_resp;
typedef Grpc__Testing__StreamingOutputCallRequest out_req;
typedef Grpc__Testing__StreamingOutputCallResponse out_resp;
typedef Grpc__Testing__StreamingInputCallRequest in_req;
typedef Grpc__Testing__StreamingInputCallResponse in_resp;
typedef Grpc__Testing__ResponseParameters params;

typedef struct env {
    tern_grpc_channel *ch;
    tern_ctx *ctx;              /* the case's deadline */
    bool server_checks_compression;
    char why[512];
} env;

static int fail(env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(env *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof e->why, fmt, ap);
    va_end(ap);
    return -1;
}

#define EXPECT(e, cond, ...)                                                                                 \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            return fail(e, __VA_ARGS__);                                                                     \
    } while (0)

/* ---- messages --------------------------------------------------------------- */

static uint8_t *zeros(size_t n)
{
    static uint8_t buf[512 * 1024];
    return n <= sizeof buf ? buf : NULL;
}

static Grpc__Testing__Payload *payload(Grpc__Testing__Payload *p, size_t n)
{
    grpc__testing__payload__init(p);
    p->body.len = n;
    p->body.data = zeros(n);
    return p;
}

static bool all_zero(const Grpc__Testing__Payload *p, size_t want)
{
    if (!p || p->body.len != want)
        return false;
    for (size_t i = 0; i < want; i++)
        if (p->body.data[i])
            return false;
    return true;
}

static size_t body_len(const Grpc__Testing__Payload *p)
{
    return p ? p->body.len : 0;
}

/* ---- unary ------------------------------------------------------------------ */

static int empty_unary(env *e)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp;
    int rc = grpc_testing_test_service_empty_call(e->ch, &req, &resp, NULL, NULL, e->ctx);
    EXPECT(e, rc == 0, "EmptyCall: %s", tern_strerror(rc));
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return 0;
}

/* UnaryCall for 314159 zeros with 271828 of them; *status filled. */
static int large_call(env *e, const tern_grpc_call_options *opts, Grpc__Testing__BoolValue *expect_compressed,
                      tern_grpc_status *st)
{
    simple_req req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload body;
    req.response_size = 314159;
    req.payload = payload(&body, 271828);
    req.expect_compressed = expect_compressed;
    simple_resp *resp;
    int rc = grpc_testing_test_service_unary_call(e->ch, &req, &resp, opts, st, e->ctx);
    if (rc < 0)
        return rc;
    bool ok = all_zero(resp->payload, 314159);
    size_t got = body_len(resp->payload);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    EXPECT(e, ok, "UnaryCall: a payload of %zu bytes, not 314159 zeros", got);
    return 0;
}

static int large_unary(env *e)
{
    tern_grpc_status st = {0};
    int rc = large_call(e, NULL, NULL, &st);
    tern_grpc_status_clear(&st);
    EXPECT(e, rc != -1, "%s", e->why);
    EXPECT(e, rc == 0, "UnaryCall: %s", tern_strerror(rc));
    return 0;
}

static int client_compressed_unary(env *e)
{
    Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT, no = GRPC__TESTING__BOOL_VALUE__INIT;
    yes.value = true;
    tern_grpc_status st = {0};
    int rc;
    if (e->server_checks_compression) {
        /* the feature probe: an uncompressed request that says it is compressed */
        rc = large_call(e, NULL, &yes, &st);
        tern_grpc_code code = st.code;
        tern_grpc_status_clear(&st);
        EXPECT(e, rc == -EINVAL && code == TERN_GRPC_INVALID_ARGUMENT,
               "probe: %s (%s), not INVALID_ARGUMENT", tern_grpc_code_name(code), tern_strerror(rc));
    }
    tern_grpc_call_options gzip = {.compression = "gzip"};
    rc = large_call(e, &gzip, &yes, &st);
    tern_grpc_status_clear(&st);
    EXPECT(e, rc != -1, "compressed: %s", e->why);
    EXPECT(e, rc == 0, "compressed: %s", tern_strerror(rc));
    rc = large_call(e, NULL, &no, &st);
    tern_grpc_status_clear(&st);
    EXPECT(e, rc != -1, "uncompressed: %s", e->why);
    EXPECT(e, rc == 0, "uncompressed: %s", tern_strerror(rc));
    return 0;
}

/* The response's compressed flag is the channel's business (tern's client
 * does not expose it, as some languages' do not: the descriptions allow
 * it); the payload is checked both ways. */
static int server_compressed_unary(env *e)
{
    for (int compressed = 1; compressed >= 0; compressed--) {
        Grpc__Testing__BoolValue want = GRPC__TESTING__BOOL_VALUE__INIT;
        want.value = compressed;
        simple_req req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
        Grpc__Testing__Payload body;
        req.response_size = 314159;
        req.payload = payload(&body, 271828);
        req.response_compressed = &want;
        simple_resp *resp;
        int rc = grpc_testing_test_service_unary_call(e->ch, &req, &resp, NULL, NULL, e->ctx);
        EXPECT(e, rc == 0, "response_compressed=%d: %s", compressed, tern_strerror(rc));
        bool ok = all_zero(resp->payload, 314159);
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        EXPECT(e, ok, "response_compressed=%d: wrong payload", compressed);
    }
    return 0;
}

/* ---- streams ------------------------------------------------------------------ */

static int client_streaming(env *e)
{
    static const size_t sizes[] = {27182, 8, 1828, 45904};
    tern_grpc_stream *st;
    int rc = grpc_testing_test_service_streaming_input_call_open(e->ch, NULL, &st, e->ctx);
    EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        in_req req = GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__Payload body;
        req.payload = payload(&body, sizes[i]);
        rc = grpc_testing_test_service_streaming_input_call_stream_send(st, &req, e->ctx);
    }
    in_resp *resp = NULL;
    if (rc == 0)
        rc = grpc_testing_test_service_streaming_input_call_close_and_recv(st, &resp, e->ctx);
    tern_grpc_stream_free(st);
    EXPECT(e, rc == 0, "StreamingInputCall: %s", tern_strerror(rc));
    int32_t total = resp->aggregated_payload_size;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    EXPECT(e, total == 74922, "aggregated_payload_size %d, not 74922", (int)total);
    return 0;
}

static int client_compressed_streaming(env *e)
{
    Grpc__Testing__BoolValue yes = GRPC__TESTING__BOOL_VALUE__INIT, no = GRPC__TESTING__BOOL_VALUE__INIT;
    yes.value = true;
    tern_grpc_stream *st;
    in_resp *resp = NULL;
    int rc;
    if (e->server_checks_compression) {
        rc = grpc_testing_test_service_streaming_input_call_open(e->ch, NULL, &st, e->ctx);
        EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
        in_req probe = GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__Payload body;
        probe.payload = payload(&body, 27182);
        probe.expect_compressed = &yes;
        rc = grpc_testing_test_service_streaming_input_call_stream_send(st, &probe, e->ctx);
        if (rc == 0)
            rc = grpc_testing_test_service_streaming_input_call_close_and_recv(st, &resp, e->ctx);
        tern_grpc_code code = tern_grpc_stream_status(st)->code;
        tern_grpc_stream_free(st);
        if (resp)
            protobuf_c_message_free_unpacked(&resp->base, NULL);
        EXPECT(e, rc == -EINVAL && code == TERN_GRPC_INVALID_ARGUMENT, "probe: %s (%s), not INVALID_ARGUMENT",
               tern_grpc_code_name(code), tern_strerror(rc));
        resp = NULL;
    }
    tern_grpc_call_options gzip = {.compression = "gzip"};
    rc = grpc_testing_test_service_streaming_input_call_open(e->ch, &gzip, &st, e->ctx);
    EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
    in_req first = GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    in_req second = GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__Payload b1, b2;
    first.payload = payload(&b1, 27182);
    first.expect_compressed = &yes;
    second.payload = payload(&b2, 45904);
    second.expect_compressed = &no;
    rc = grpc_testing_test_service_streaming_input_call_stream_send(st, &first, e->ctx);
    if (rc == 0)
        rc = tern_grpc_stream_set_compression(st, false);
    if (rc == 0)
        rc = grpc_testing_test_service_streaming_input_call_stream_send(st, &second, e->ctx);
    if (rc == 0)
        rc = grpc_testing_test_service_streaming_input_call_close_and_recv(st, &resp, e->ctx);
    tern_grpc_stream_free(st);
    EXPECT(e, rc == 0, "StreamingInputCall: %s", tern_strerror(rc));
    int32_t total = resp->aggregated_payload_size;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    EXPECT(e, total == 73086, "aggregated_payload_size %d, not 73086", (int)total);
    return 0;
}

/* StreamingOutputCall with these sizes (and compressed flags, when given,
 * for the server to honour): each response's size and zeros checked. */
static int output_call(env *e, const int32_t *sizes, const int *compressed, size_t n)
{
    out_req req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    params p[8], *pp[8];
    Grpc__Testing__BoolValue flags[8];
    for (size_t i = 0; i < n; i++) {
        grpc__testing__response_parameters__init(&p[i]);
        p[i].size = sizes[i];
        if (compressed) {
            grpc__testing__bool_value__init(&flags[i]);
            flags[i].value = compressed[i];
            p[i].compressed = &flags[i];
        }
        pp[i] = &p[i];
    }
    req.n_response_parameters = n;
    req.response_parameters = pp;
    tern_grpc_stream *st;
    int rc = grpc_testing_test_service_streaming_output_call_open(e->ch, &req, NULL, &st, e->ctx);
    EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
    const out_resp *r = NULL;
    size_t got = 0;
    while ((rc = grpc_testing_test_service_streaming_output_call_stream_recv(st, &r, e->ctx)) == 1) {
        if (got >= n || !all_zero(r->payload, (size_t)sizes[got])) {
            tern_grpc_stream_free(st);
            return fail(e, "response %zu: %zu bytes, wanted %d zeros", got, body_len(r->payload),
                        got < n ? (int)sizes[got] : -1);
        }
        got++;
    }
    tern_grpc_stream_free(st);
    EXPECT(e, rc == 0, "after %zu responses: %s", got, tern_strerror(rc));
    EXPECT(e, got == n, "%zu responses, wanted %zu", got, n);
    return 0;
}

static int server_streaming(env *e)
{
    static const int32_t sizes[] = {31415, 9, 2653, 58979};
    return output_call(e, sizes, NULL, 4);
}

static int server_compressed_streaming(env *e)
{
    static const int32_t sizes[] = {31415, 92653};
    static const int compressed[] = {1, 0};
    return output_call(e, sizes, compressed, 2);
}

/* One FullDuplexCall request: respond_size bytes asked for, body_size sent. */
static int duplex_send(tern_grpc_stream *st, int32_t respond_size, size_t body_size,
                       Grpc__Testing__EchoStatus *status, tern_ctx *ctx)
{
    out_req req = GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    params p = GRPC__TESTING__RESPONSE_PARAMETERS__INIT, *pp = &p;
    Grpc__Testing__Payload body;
    p.size = respond_size;
    if (respond_size >= 0) {
        req.n_response_parameters = 1;
        req.response_parameters = &pp;
    }
    req.payload = payload(&body, body_size);
    req.response_status = status;
    return grpc_testing_test_service_full_duplex_call_stream_send(st, &req, ctx);
}

static int ping_pong(env *e)
{
    static const int32_t resp_sizes[] = {31415, 9, 2653, 58979};
    static const size_t req_sizes[] = {27182, 8, 1828, 45904};
    tern_grpc_stream *st;
    int rc = grpc_testing_test_service_full_duplex_call_open(e->ch, NULL, &st, e->ctx);
    EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
    for (size_t i = 0; i < 4; i++) {
        const out_resp *r = NULL;
        rc = duplex_send(st, resp_sizes[i], req_sizes[i], NULL, e->ctx);
        if (rc == 0)
            rc = grpc_testing_test_service_full_duplex_call_stream_recv(st, &r, e->ctx);
        if (rc != 1 || !all_zero(r->payload, (size_t)resp_sizes[i])) {
            tern_grpc_stream_free(st);
            return fail(e, "round %zu: %s", i, rc == 1 ? "wrong payload" : tern_strerror(rc));
        }
    }
    const out_resp *r = NULL;
    rc = tern_grpc_stream_close_send(st, e->ctx);
    if (rc == 0)
        rc = grpc_testing_test_service_full_duplex_call_stream_recv(st, &r, e->ctx);
    tern_grpc_stream_free(st);
    EXPECT(e, rc == 0, "after the half-close: %s", rc == 1 ? "a fifth response" : tern_strerror(rc));
    return 0;
}

static int empty_stream(env *e)
{
    tern_grpc_stream *st;
    int rc = grpc_testing_test_service_full_duplex_call_open(e->ch, NULL, &st, e->ctx);
    EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
    const out_resp *r = NULL;
    rc = tern_grpc_stream_close_send(st, e->ctx);
    if (rc == 0)
        rc = grpc_testing_test_service_full_duplex_call_stream_recv(st, &r, e->ctx);
    tern_grpc_stream_free(st);
    EXPECT(e, rc == 0, "%s", rc == 1 ? "a response" : tern_strerror(rc));
    return 0;
}

/* ---- metadata and status ------------------------------------------------------- */

static const char initial_value[] = "test_initial_metadata_value";
static const uint8_t trailing_value[] = {0xab, 0xab, 0xab};

typedef struct seen {
    bool initial, trailing;
} seen;

static void on_metadata(const tern_grpc_metadata *md, bool trailer, void *arg)
{
    seen *s = arg;
    if (!trailer && !strcmp(md->name, "x-grpc-test-echo-initial") && md->len == strlen(initial_value) &&
        !memcmp(md->value, initial_value, md->len))
        s->initial = true;
    if (trailer && !strcmp(md->name, "x-grpc-test-echo-trailing-bin") && md->len == sizeof trailing_value &&
        !memcmp(md->value, trailing_value, md->len))
        s->trailing = true;
}

static int custom_metadata(env *e)
{
    const tern_grpc_metadata md[] = {
        {"x-grpc-test-echo-initial", initial_value, strlen(initial_value)},
        {"x-grpc-test-echo-trailing-bin", trailing_value, sizeof trailing_value},
    };
    seen unary = {0}, duplex = {0};
    tern_grpc_call_options opts = {.md = md, .n_md = 2, .on_metadata = on_metadata, .on_metadata_arg = &unary};
    tern_grpc_status st = {0};
    int rc = large_call(e, &opts, NULL, &st);
    tern_grpc_status_clear(&st);
    EXPECT(e, rc != -1, "UnaryCall: %s", e->why);
    EXPECT(e, rc == 0, "UnaryCall: %s", tern_strerror(rc));
    EXPECT(e, unary.initial && unary.trailing, "UnaryCall: echoed initial %d, trailing %d", unary.initial,
           unary.trailing);

    opts.on_metadata_arg = &duplex;
    tern_grpc_stream *s;
    rc = grpc_testing_test_service_full_duplex_call_open(e->ch, &opts, &s, e->ctx);
    EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
    const out_resp *r = NULL;
    rc = duplex_send(s, 314159, 271828, NULL, e->ctx);
    if (rc == 0)
        rc = tern_grpc_stream_close_send(s, e->ctx);
    int n = 0;
    while (rc == 0 && (rc = grpc_testing_test_service_full_duplex_call_stream_recv(s, &r, e->ctx)) == 1) {
        n++;
        rc = all_zero(r->payload, 314159) ? 0 : -EBADMSG;
    }
    tern_grpc_stream_free(s);
    EXPECT(e, rc == 0 && n == 1, "FullDuplexCall: %d responses, %s", n, tern_strerror(rc));
    EXPECT(e, duplex.initial && duplex.trailing, "FullDuplexCall: echoed initial %d, trailing %d",
           duplex.initial, duplex.trailing);
    return 0;
}

static int unary_status(env *e, const char *message)
{
    simple_req req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__EchoStatus echo = GRPC__TESTING__ECHO_STATUS__INIT;
    echo.code = 2;
    echo.message = (char *)message;
    req.response_status = &echo;
    simple_resp *resp = NULL;
    tern_grpc_status st = {0};
    int rc = grpc_testing_test_service_unary_call(e->ch, &req, &resp, NULL, &st, e->ctx);
    if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    bool ok = rc == -EREMOTEIO && st.code == TERN_GRPC_UNKNOWN && st.message && !strcmp(st.message, message);
    if (!ok)
        fail(e, "UnaryCall: %s, %s \"%s\"", tern_strerror(rc), tern_grpc_code_name(st.code),
             st.message ? st.message : "");
    tern_grpc_status_clear(&st);
    return ok ? 0 : -1;
}

static int status_code_and_message(env *e)
{
    static const char message[] = "test status message";
    if (unary_status(e, message) < 0)
        return -1;
    Grpc__Testing__EchoStatus echo = GRPC__TESTING__ECHO_STATUS__INIT;
    echo.code = 2;
    echo.message = (char *)message;
    tern_grpc_stream *st;
    int rc = grpc_testing_test_service_full_duplex_call_open(e->ch, NULL, &st, e->ctx);
    EXPECT(e, rc == 0, "open: %s", tern_strerror(rc));
    const out_resp *r = NULL;
    rc = duplex_send(st, -1, 0, &echo, e->ctx);
    if (rc == 0)
        rc = tern_grpc_stream_close_send(st, e->ctx);
    if (rc == 0)
        rc = grpc_testing_test_service_full_duplex_call_stream_recv(st, &r, e->ctx);
    const tern_grpc_status *s = tern_grpc_stream_status(st);
    bool ok = rc == -EREMOTEIO && s->code == TERN_GRPC_UNKNOWN && s->message && !strcmp(s->message, message);
    if (!ok)
        fail(e, "FullDuplexCall: %s, %s \"%s\"", tern_strerror(rc), tern_grpc_code_name(s->code),
             s->message ? s->message : "");
    tern_grpc_stream_free(st);
    return ok ? 0 : -1;
}

static int special_status_message(env *e)
{
    return unary_status(e, "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba and non-BMP "
                           "\xf0\x9f\x98\x88\t\n");
}

static int unimplemented_method(env *e)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    tern_grpc_status st = {0};
    int rc = grpc_testing_test_service_unimplemented_call(e->ch, &req, &resp, NULL, &st, e->ctx);
    tern_grpc_code code = st.code;
    tern_grpc_status_clear(&st);
    EXPECT(e, rc == -ENOSYS && code == TERN_GRPC_UNIMPLEMENTED, "%s (%s)", tern_grpc_code_name(code),
           tern_strerror(rc));
    return 0;
}

static int unimplemented_service(env *e)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *resp = NULL;
    tern_grpc_status st = {0};
    int rc = grpc_testing_unimplemented_service_unimplemented_call(e->ch, &req, &resp, NULL, &st, e->ctx);
    tern_grpc_code code = st.code;
    tern_grpc_status_clear(&st);
    EXPECT(e, rc == -ENOSYS && code == TERN_GRPC_UNIMPLEMENTED, "%s (%s)", tern_grpc_code_name(code),
           tern_strerror(rc));
    return 0;
}

/* ---- cancellation and deadlines ------------------------------------------------- */

static int cancel_after_begin(env *e)
{
    tern_ctx *ctx;
    tern_grpc_stream *st;
    int rc = tern_ctx_with_cancel(e->ctx, &ctx);
    EXPECT(e, rc == 0, "ctx: %s", tern_strerror(rc));
    rc = grpc_testing_test_service_streaming_input_call_open(e->ch, NULL, &st, ctx);
    if (rc < 0) {
        tern_ctx_free(ctx);
        return fail(e, "open: %s", tern_strerror(rc));
    }
    tern_ctx_cancel(ctx);
    /* wait for the outcome without half-closing, which would let the server
     * answer (a race with the cancel the case is not about) */
    ProtobufCMessage *m = NULL;
    rc = tern_grpc_stream_recv(st, &m, ctx);
    tern_grpc_code code = tern_grpc_stream_status(st)->code;
    tern_grpc_stream_free(st);
    tern_ctx_free(ctx);
    EXPECT(e, rc == -ECANCELED && code == TERN_GRPC_CANCELLED, "%s (%s), not CANCELLED",
           tern_grpc_code_name(code), tern_strerror(rc));
    return 0;
}

static int cancel_after_first_response(env *e)
{
    tern_ctx *ctx;
    tern_grpc_stream *st;
    int rc = tern_ctx_with_cancel(e->ctx, &ctx);
    EXPECT(e, rc == 0, "ctx: %s", tern_strerror(rc));
    rc = grpc_testing_test_service_full_duplex_call_open(e->ch, NULL, &st, ctx);
    if (rc < 0) {
        tern_ctx_free(ctx);
        return fail(e, "open: %s", tern_strerror(rc));
    }
    const out_resp *r = NULL;
    rc = duplex_send(st, 31415, 27182, NULL, ctx);
    if (rc == 0)
        rc = grpc_testing_test_service_full_duplex_call_stream_recv(st, &r, ctx);
    if (rc == 1) {
        tern_ctx_cancel(ctx);
        rc = grpc_testing_test_service_full_duplex_call_stream_recv(st, &r, ctx);
    } else {
        rc = rc == 0 ? -EPROTO : rc;
        fail(e, "first response: %s", tern_strerror(rc));
        rc = 1;
    }
    tern_grpc_code code = tern_grpc_stream_status(st)->code;
    tern_grpc_stream_free(st);
    tern_ctx_free(ctx);
    if (rc == 1)
        return -1;
    EXPECT(e, rc == -ECANCELED && code == TERN_GRPC_CANCELLED, "%s (%s), not CANCELLED",
           tern_grpc_code_name(code), tern_strerror(rc));
    return 0;
}

static int timeout_on_sleeping_server(env *e)
{
    tern_ctx *ctx;
    tern_grpc_stream *st;
    int rc = tern_ctx_with_timeout(e->ctx, TERN_MS, &ctx);
    EXPECT(e, rc == 0, "ctx: %s", tern_strerror(rc));
    rc = grpc_testing_test_service_full_duplex_call_open(e->ch, NULL, &st, ctx);
    tern_grpc_code code = TERN_GRPC_DEADLINE_EXCEEDED;
    if (rc == 0) {
        const out_resp *r = NULL;
        /* no response is asked for: the server waits for more until the
         * deadline.  The send may already fail (the server ended the call
         * at its copy of the deadline): the outcome is the status, which
         * only a recv collects */
        duplex_send(st, -1, 27182, NULL, ctx);
        rc = grpc_testing_test_service_full_duplex_call_stream_recv(st, &r, ctx);
        code = tern_grpc_stream_status(st)->code;
        tern_grpc_stream_free(st);
    }
    tern_ctx_free(ctx);
    /* the 1 ms may pass while opening: that is the same outcome */
    EXPECT(e, rc == -ETIMEDOUT && code == TERN_GRPC_DEADLINE_EXCEEDED, "%s (%s), not DEADLINE_EXCEEDED",
           tern_grpc_code_name(code), tern_strerror(rc));
    return 0;
}

/* ---- the driver ----------------------------------------------------------------------- */

typedef struct test_case {
    const char *name;
    int (*fn)(env *);
} test_case;

static const test_case cases[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"client_compressed_unary", client_compressed_unary},
    {"server_compressed_unary", server_compressed_unary},
    {"client_streaming", client_streaming},
    {"client_compressed_streaming", client_compressed_streaming},
    {"server_streaming", server_streaming},
    {"server_compressed_streaming", server_compressed_streaming},
    {"ping_pong", ping_pong},
    {"empty_stream", empty_stream},
    {"custom_metadata", custom_metadata},
    {"status_code_and_message", status_code_and_message},
    {"special_status_message", special_status_message},
    {"unimplemented_method", unimplemented_method},
    {"unimplemented_service", unimplemented_service},
    {"cancel_after_begin", cancel_after_begin},
    {"cancel_after_first_response", cancel_after_first_response},
    {"timeout_on_sleeping_server", timeout_on_sleeping_server},
};

typedef struct flags {
    const char *host, *port, *host_override, *ca_file, *test_case;
    bool tls, server_checks_compression;
} flags;

static int run(void *arg)
{
    const flags *f = arg;
    tern_tls_config *tls = NULL;
    int rc = 0;
    if (f->tls) {
        const char *alpn[] = {"h2", NULL};
        tern_tls_client_options o = {.ca_file = f->ca_file, .alpn = alpn};
        rc = tern_tls_client_config_new(&o, &tls);
    }
    char target[256];
    snprintf(target, sizeof target, "%s:%s", f->host, f->port);
    char authority[300];
    snprintf(authority, sizeof authority, "%s:%s", f->host_override ? f->host_override : f->host, f->port);
    tern_grpc_channel_options o = {.tls = tls, .authority = f->host_override ? authority : NULL};
    env e = {.server_checks_compression = f->server_checks_compression};
    if (rc == 0)
        rc = tern_grpc_channel_new(target, &o, &e.ch);
    if (rc < 0) {
        fprintf(stderr, "interop_client: %s: %s\n", target, tern_strerror(rc));
        return 1;
    }
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(f->test_case, "all") && strcmp(f->test_case, cases[i].name))
            continue;
        ran++;
        e.why[0] = '\0';
        if (tern_ctx_with_timeout(NULL, CASE_TIMEOUT, &e.ctx) < 0)
            return 1;
        rc = cases[i].fn(&e);
        tern_ctx_free(e.ctx);
        if (rc == 0) {
            printf("PASS %s\n", cases[i].name);
        } else {
            printf("FAIL %s: %s\n", cases[i].name, e.why);
            failed++;
        }
        fflush(stdout);
    }
    tern_grpc_channel_free(e.ch);
    tern_tls_config_free(tls);
    if (!ran) {
        fprintf(stderr, "interop_client: no test case %s\n", f->test_case);
        return 2;
    }
    return failed ? 1 : 0;
}

static const char *flag(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, name, n) && arg[n] == '=' ? arg + n + 1 : NULL;
}

int main(int argc, char **argv)
{
    flags f = {.host = "127.0.0.1", .test_case = "all", .server_checks_compression = true};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = flag(argv[i], "--server_host")))
            f.host = v;
        else if ((v = flag(argv[i], "--server_port")))
            f.port = v;
        else if ((v = flag(argv[i], "--server_host_override")))
            f.host_override = v;
        else if ((v = flag(argv[i], "--use_tls")))
            f.tls = !strcmp(v, "true");
        else if ((v = flag(argv[i], "--ca_file")))
            f.ca_file = v;
        else if ((v = flag(argv[i], "--test_case")))
            f.test_case = v;
        else if ((v = flag(argv[i], "--server_checks_compression")))
            f.server_checks_compression = strcmp(v, "false") != 0;
        else
            f.port = NULL, i = argc;    /* unknown: the usage */
    }
    if (!f.port) {
        fprintf(stderr, "usage: interop_client --server_port=N [--server_host=H] [--server_host_override=NAME]\n"
                        "       [--use_tls=true --ca_file=CA.pem] [--test_case=NAME|all]\n"
                        "       [--server_checks_compression=false]\n");
        return 2;
    }
    return tern_run(run, &f);
}
