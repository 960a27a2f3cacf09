/*
 * trace.c - traces across the shop's gRPC hops, W3C trace context in the
 * calls' metadata.
 *
 * The kit's gRPC interceptors (tern_grpc_server_use_kit and
 * tern_grpc_kit_client_interceptors, set up in app.c) do the calls: a
 * SERVER span per call, current in its handler, and a CLIENT span per
 * call a handler makes, its traceparent in the metadata.  A CreateOrder
 * that prices at the catalog and reserves at the inventory is thus one
 * trace.  Events have no headers (tern_event), so
 * OrderCreated and PaymentOutcome carry a traceparent field, and their
 * handlers run in a CONSUMER span that continues it: the whole saga, from
 * the order to the committed stock, is one trace.
 */
#include <stdio.h>
#include <string.h>

#include "common/shop.h"

const tern_grpc_call_options *shop_call_options(shop_call_md *md)
{
    memset(md, 0, sizeof *md);
    md->opts.wait_for_ready = true;
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
