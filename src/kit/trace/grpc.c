/*
 * grpc.c - tracing for gRPC, as OpenTelemetry's RPC conventions name it:
 * a SERVER span per call served and a CLIENT span per call made, named
 * "pkg.Service/Method", with rpc.system "grpc", rpc.service, rpc.method
 * and rpc.grpc.status_code; the trace travels in W3C traceparent (and
 * tracestate) metadata, as grpc-go's and grpc-java's OTel plugins send it.
 *
 * The server span is the handler's: the call's ctx leads to it
 * (tern_trace_span_from_ctx) and it is the coroutine's current span, so a
 * client call the handler makes, with the call's ctx or none, continues
 * the trace.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kit/trace/internal.h"
#include "tern/grpc.h"
#include "tern/trace.h"

/* "/pkg.Svc/Method" -> service and method (into svc, cut to its size). */
static void split_path(const tern_grpc_method_desc *m, char *svc, size_t cap, const char **meth)
{
    const char *p = m && m->path ? m->path + (m->path[0] == '/') : "";
    const char *slash = strrchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    if (n >= cap)
        n = cap - 1;
    memcpy(svc, p, n);
    svc[n] = '\0';
    *meth = slash ? slash + 1 : "";
}

static void set_rpc(tern_trace_span *s, const char *svc, const char *meth)
{
    tern_trace_span_set(s, &TERN_TRACE_STR("rpc.system", "grpc"));
    tern_trace_span_set(s, &TERN_TRACE_STR("rpc.service", svc));
    tern_trace_span_set(s, &TERN_TRACE_STR("rpc.method", meth));
}

/* OTel: a server span is an error only for codes that say the server
 * failed, not the caller. */
static bool server_error(tern_grpc_code c)
{
    return c == TERN_GRPC_UNKNOWN || c == TERN_GRPC_DEADLINE_EXCEEDED || c == TERN_GRPC_UNIMPLEMENTED ||
           c == TERN_GRPC_INTERNAL || c == TERN_GRPC_UNAVAILABLE || c == TERN_GRPC_DATA_LOSS;
}

int tern_grpc_trace_server_interceptor(tern_grpc_call *call, void *arg)
{
    (void)arg;
    TERN_CHECK_ARG(call);
    const tern_grpc_method_desc *m = tern_grpc_call_method(call);
    tern_http_req *r = tern_grpc_call_http_req(call);
    tern_ctx *base = tern_grpc_call_ctx(call);
    /* an HTTP tracing middleware in front (a shared REST+gRPC port) has
     * already continued the caller's trace: nest under its span */
    tern_trace_span *outer = tern_trace_span_from_ctx(base);
    tern_trace_span_context parent;
    const tern_trace_span_context *pp = tern_trace_span_context_of(outer);
    const char *tp = tern_grpc_call_metadata(call, "traceparent");
    if (!pp && tp && tern_trace_parse_traceparent(tp, &parent) == 0) {
        const char *ts = tern_grpc_call_metadata(call, "tracestate");
        if (ts)
            tern_trace_parse_tracestate(ts, &parent);
        pp = &parent;
    }
    const char *name = m && m->path ? m->path + (m->path[0] == '/') : "grpc";
    tern_trace_span *s;
    /* unsampled (most calls), the span lives in the request's memory */
    if (tern__trace_span_start_in(tern_http_req_alloc(r, TERN__TRACE_UNSAMPLED_SIZE), name,
                                  TERN_TRACE_KIND_SERVER, pp, &s) != 0)
        return tern_grpc_call_next(call);
    char svc[256];
    const char *meth;
    split_path(m, svc, sizeof svc, &meth);
    set_rpc(s, svc, meth);

    /* the call's ctx leads to the span through a holder emptied at the end,
     * so a ctx kept past the call finds no freed span */
    tern_trace_span **holder = tern_http_req_alloc(r, sizeof *holder);
    tern_ctx *c = NULL;
    bool owned = false;
    if (holder) {
        *holder = s;
        if (tern_ctx_with_value(base, tern__trace_holder_key(), holder, &c) == 0) {
            if (tern_http_req_set_ctx(r, c) != 0)
                owned = true;       /* the request keeps no more: ours to free */
            tern_grpc_call_set_ctx(call, c);
        }
    }
    tern_trace_scope *scope = tern_http_req_alloc(r, sizeof *scope);
    if (scope)
        tern_trace_span_enter(scope, s);

    int rc = tern_grpc_call_next(call);

    if (scope)
        tern_trace_span_exit(scope);
    tern_grpc_code code = tern_grpc_call_code(call);
    if (code == TERN_GRPC_OK && rc < 0)
        code = tern_grpc_errno_to_code(rc);     /* an inner interceptor failed without a status */
    tern_trace_span_set(s, &TERN_TRACE_INT("rpc.grpc.status_code", (int64_t)code));
    if (server_error(code))
        tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, tern_grpc_code_name(code));
    tern_trace_span_end(s);
    if (holder)
        *holder = NULL;
    if (owned) {
        tern_grpc_call_set_ctx(call, base);
        tern_ctx_free(c);
    }
    tern_trace_span_free(s);
    return rc;
}

static void client_done(tern_grpc_client_call *cc, void *arg)
{
    tern_trace_span *s = arg;
    tern_grpc_code code = tern_grpc_client_call_code(cc);
    tern_trace_span_set(s, &TERN_TRACE_INT("rpc.grpc.status_code", (int64_t)code));
    int attempts = tern_grpc_client_call_attempts(cc);
    if (attempts > 1)
        tern_trace_span_set(s, &TERN_TRACE_INT("rpc.grpc.attempts", attempts));
    if (code != TERN_GRPC_OK) {
        const char *msg = tern_grpc_client_call_message(cc);
        tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, msg ? msg : tern_grpc_code_name(code));
    }
    tern_trace_span_end(s);
    tern_trace_span_free(s);
}

int tern_grpc_trace_client_interceptor(tern_grpc_client_call *cc, void *arg)
{
    (void)arg;
    TERN_CHECK_ARG(cc);
    tern_trace_span *parent = tern_trace_span_from_ctx(tern_grpc_client_call_ctx(cc));
    if (!parent)
        parent = tern_trace_span_current();
    const tern_grpc_method_desc *m = tern_grpc_client_call_method(cc);
    const char *name = m && m->path ? m->path + (m->path[0] == '/') : "grpc";
    tern_trace_span *s;
    if (tern_trace_span_start(name, TERN_TRACE_KIND_CLIENT, tern_trace_span_context_of(parent), &s) != 0)
        return tern_grpc_client_call_next(cc);     /* no memory for a span: the call still goes */
    char svc[256];
    const char *meth;
    split_path(m, svc, sizeof svc, &meth);
    set_rpc(s, svc, meth);
    char tp[TERN_TRACE_PARENT_LEN + 1];
    tern_trace_format_traceparent(tern_trace_span_context_of(s), tp, sizeof tp);
    int rc = tern_grpc_client_call_add_metadata(cc, "traceparent", tp, strlen(tp));
    if (rc == 0 && s->sc.tracestate[0])
        rc = tern_grpc_client_call_add_metadata(cc, "tracestate", s->sc.tracestate, strlen(s->sc.tracestate));
    if (rc == 0)
        rc = tern_grpc_client_call_on_done(cc, client_done, s);
    if (rc < 0) {
        tern_trace_span_free(s);    /* untraced rather than refused */
        return tern_grpc_client_call_next(cc);
    }
    return tern_grpc_client_call_next(cc);
}
