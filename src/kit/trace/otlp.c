/*
 * otlp.c - a batch of spans as OTLP's ExportTraceServiceRequest in
 * the protobuf JSON mapping that OTLP/HTTP JSON uses:
 *
 *   {"resourceSpans":[{"resource":{"attributes":[service.name]},
 *     "scopeSpans":[{"scope":{"name":"tern","version":...},"spans":[...]}]}]}
 *
 * OTLP departs from plain proto3 JSON in two places, both followed here:
 * trace and span ids are lowercase hex (not base64), and enums (kind,
 * status code) are integers.  64-bit integers (times, intValue) are
 * decimal strings, as proto3 JSON writes int64 and fixed64.
 *
 * The document is written straight into one growing buffer: the schema is
 * fixed, and building a jansson tree only to serialise it at once cost
 * about 90,000 instructions per span, more than the request the span
 * described.  Strings go through the logger's JSON string writer
 * (tern__json_quote), so the escaping rules are those of a log line and
 * bytes that are not UTF-8 arrive as U+FFFD.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "kit/log/internal.h"
#include "kit/trace/internal.h"

typedef tern__buf jbuf;

static void raw(jbuf *b, const char *s, size_t n) { tern__buf_put(b, s, n); }

#define LIT(b, s) raw((b), (s), sizeof(s) - 1)

static void str(jbuf *b, const char *s)
{
    if (!s)
        s = "";
    if (tern__buf_room(b, TERN__JSON_QUOTE_MAX(strlen(s))))
        b->len += tern__json_quote(b->p + b->len, s);
}

static void fmt(jbuf *b, const char *f, int64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof t, f, v);
    raw(b, t, (size_t)n);
}

/* int64 as proto3 JSON writes it: a decimal string */
static void i64(jbuf *b, int64_t v) { fmt(b, "\"%" PRId64 "\"", v); }
static void num(jbuf *b, int64_t v) { fmt(b, "%" PRId64, v); }

static void any_value(jbuf *b, const tern_trace_attr *a)
{
    switch (a->kind) {
    case TERN_TRACE_ATTR_STR:
        LIT(b, "{\"stringValue\":");
        str(b, a->v.s);
        break;
    case TERN_TRACE_ATTR_INT:
        LIT(b, "{\"intValue\":");
        i64(b, a->v.i);
        break;
    case TERN_TRACE_ATTR_DOUBLE: {
        /* JSON has no NaN or infinity; proto3 JSON spells them as strings */
        LIT(b, "{\"doubleValue\":");
        double d = a->v.d;
        char t[40];
        int n = isnan(d)   ? snprintf(t, sizeof t, "\"NaN\"")
              : isinf(d)   ? snprintf(t, sizeof t, d > 0 ? "\"Infinity\"" : "\"-Infinity\"")
                           : snprintf(t, sizeof t, "%.17g", d);
        raw(b, t, (size_t)n);
        break;
    }
    case TERN_TRACE_ATTR_BOOL:
        LIT(b, "{\"boolValue\":");
        if (a->v.b)
            LIT(b, "true");
        else
            LIT(b, "false");
        break;
    default:
        LIT(b, "{");    /* no value: an empty AnyValue */
    }
    LIT(b, "}");
}

/* "attributes":[...], then their dropped count when there is one */
static void attributes(jbuf *b, const tern_trace_attr *attrs, size_t n, uint32_t dropped)
{
    LIT(b, "\"attributes\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            LIT(b, ",");
        LIT(b, "{\"key\":");
        str(b, attrs[i].key);
        LIT(b, ",\"value\":");
        any_value(b, &attrs[i]);
        LIT(b, "}");
    }
    LIT(b, "]");
    if (dropped) {
        LIT(b, ",\"droppedAttributesCount\":");
        num(b, dropped);
    }
}

static void events(jbuf *b, const tern_trace_span *s)
{
    LIT(b, "[");
    for (size_t i = 0; i < s->nevents; i++) {
        const tern__trace_event *e = &s->events[i];
        if (i)
            LIT(b, ",");
        LIT(b, "{\"timeUnixNano\":");
        i64(b, e->time_ns);
        LIT(b, ",\"name\":");
        str(b, e->name);
        LIT(b, ",");
        attributes(b, e->attrs, e->nattrs, e->dropped_attrs);
        LIT(b, "}");
    }
    LIT(b, "]");
}

static void span(jbuf *b, const tern_trace_span *s)
{
    LIT(b, "{\"traceId\":\"");
    raw(b, s->trace_hex, 32);
    LIT(b, "\",\"spanId\":\"");
    raw(b, s->span_hex, 16);
    LIT(b, "\"");
    if (s->has_parent) {
        char hex[17];
        tern_trace_hex(s->parent_id, 8, hex);
        LIT(b, ",\"parentSpanId\":\"");
        raw(b, hex, 16);
        LIT(b, "\"");
    }
    if (s->sc.tracestate[0]) {
        LIT(b, ",\"traceState\":");
        str(b, s->sc.tracestate);
    }
    LIT(b, ",\"name\":");
    str(b, s->name);
    LIT(b, ",\"kind\":");
    num(b, (int64_t)s->kind);
    LIT(b, ",\"startTimeUnixNano\":");
    i64(b, s->start_ns);
    LIT(b, ",\"endTimeUnixNano\":");
    i64(b, s->end_ns);
    LIT(b, ",");
    attributes(b, s->attrs, s->nattrs, s->dropped_attrs);
    LIT(b, ",\"events\":");
    events(b, s);
    if (s->dropped_events) {
        LIT(b, ",\"droppedEventsCount\":");
        num(b, s->dropped_events);
    }
    LIT(b, ",\"status\":{\"code\":");
    num(b, (int64_t)s->status);
    if (s->status_msg) {
        LIT(b, ",\"message\":");
        str(b, s->status_msg);
    }
    LIT(b, "}}");
}

char *tern__trace_otlp_json(const char *service_name, tern_trace_span *const *spans, size_t n,
                            size_t *len)
{
    jbuf b = {0};
    LIT(&b, "{\"resourceSpans\":[{\"resource\":{");
    tern_trace_attr svc = TERN_TRACE_STR("service.name", service_name);
    attributes(&b, &svc, 1, 0);
    LIT(&b, "},\"scopeSpans\":[{\"scope\":{\"name\":\"tern\",\"version\":\"0.1.0\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            LIT(&b, ",");
        span(&b, spans[i]);
    }
    LIT(&b, "]}]}]}");
    raw(&b, "", 1);     /* a NUL, not counted */
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len - 1;
    return b.p;
}
