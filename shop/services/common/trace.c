/*
 * trace.c - traces across the shop's gRPC hops, W3C trace context in the
 * calls' metadata.
 *
 * tern's gRPC layer has no tracing interceptor yet, so the shop carries
 * one: the server interceptor starts a SERVER span per call, a child of
 * the call's traceparent metadata when it has a valid one, and makes it
 * the handler coroutine's current span; the calls a handler makes to
 * other services (shop_call_options) send that span's traceparent.  A
 * CreateOrder that prices at the catalog and reserves at the inventory is
 * thus one trace of three spans.  Events have no headers (tern_event), so
 * OrderCreated and PaymentOutcome carry a traceparent field, and their
 * handlers run in a CONSUMER span that continues it: the whole saga, from
 * the order to the committed stock, is one trace.
 */
#include <stdio.h>
#include <string.h>

#include "common/shop.h"

int shop_trace_interceptor(tern_grpc_call *call, void *arg)
{
    (void)arg;
    tern_trace_span_context parent;
    const char *tp = tern_grpc_call_metadata(call, "traceparent");
    bool child = tp && tern_trace_parse_traceparent(tp, &parent) == 0;
    const tern_grpc_method_desc *m = tern_grpc_call_method(call);
    tern_trace_span *span;
    if (tern_trace_span_start(m ? m->path : "grpc", TERN_TRACE_KIND_SERVER, child ? &parent : NULL, &span) < 0)
        return tern_grpc_call_next(call);      /* no memory for a span: serve untraced */
    tern_trace_span_set(span, &TERN_TRACE_STR("rpc.system", "grpc"));
    tern_trace_span_set(span, &TERN_TRACE_STR("net.peer.name", tern_grpc_call_peer(call)));
    tern_trace_scope scope;
    tern_trace_span_enter(&scope, span);
    int rc = tern_grpc_call_next(call);
    tern_trace_span_exit(&scope);
    tern_grpc_code code = tern_grpc_call_code(call);
    if (code == TERN_GRPC_OK && rc < 0)
        code = tern_grpc_errno_to_code(rc);
    tern_trace_span_set(span, &TERN_TRACE_INT("rpc.grpc.status_code", code));
    tern_trace_span_set_status(span, code == TERN_GRPC_OK ? TERN_TRACE_STATUS_OK : TERN_TRACE_STATUS_ERROR,
                               tern_grpc_code_name(code));
    tern_trace_span_end(span);
    tern_trace_span_free(span);
    return rc;
}

const tern_grpc_call_options *shop_call_options(shop_call_md *md)
{
    memset(md, 0, sizeof *md);
    md->opts.wait_for_ready = true;
    const tern_trace_span_context *sc = tern_trace_span_context_of(tern_trace_span_current());
    if (sc && tern_trace_format_traceparent(sc, md->traceparent, sizeof md->traceparent) == 0) {
        md->kv[0] = "traceparent";
        md->kv[1] = md->traceparent;
        md->opts.metadata = md->kv;
    }
    return &md->opts;
}

void shop_traceparent(char *buf)
{
    const tern_trace_span_context *sc = tern_trace_span_context_of(tern_trace_span_current());
    if (!sc || tern_trace_format_traceparent(sc, buf, TERN_TRACE_PARENT_LEN + 1) != 0)
        buf[0] = 0;
}

void shop_event_span_begin(shop_event_span *s, const char *name, const char *traceparent)
{
    tern_trace_span_context parent;
    bool child = traceparent && *traceparent && tern_trace_parse_traceparent(traceparent, &parent) == 0;
    s->span = NULL;
    if (tern_trace_span_start(name, TERN_TRACE_KIND_CONSUMER, child ? &parent : NULL, &s->span) < 0)
        return;                         /* no memory for a span: handle untraced */
    tern_trace_span_enter(&s->scope, s->span);
}

void shop_event_span_end(shop_event_span *s, int rc)
{
    if (!s->span)
        return;
    tern_trace_span_exit(&s->scope);
    tern_trace_span_set_status(s->span, rc == 0 ? TERN_TRACE_STATUS_OK : TERN_TRACE_STATUS_ERROR,
                               rc == 0 ? NULL : tern_strerror(rc));
    tern_trace_span_end(s->span);
    tern_trace_span_free(s->span);
    s->span = NULL;
}
