/*
 * trace_otlp.c - a batch of spans as OTLP's ExportTraceServiceRequest in
 * the protobuf JSON mapping that OTLP/HTTP JSON uses:
 *
 *   {"resourceSpans":[{"resource":{"attributes":[service.name]},
 *     "scopeSpans":[{"scope":{"name":"tern","version":...},"spans":[...]}]}]}
 *
 * OTLP departs from plain proto3 JSON in two places, both followed here:
 * trace and span ids are lowercase hex (not base64), and enums (kind,
 * status code) are integers.  64-bit integers (times, intValue) are
 * decimal strings, as proto3 JSON writes int64 and fixed64.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include <jansson.h>

#include "kit/trace_internal.h"

static json_t *u64_string(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return json_string(buf);
}

static json_t *any_value(const tern_trace_attr *a)
{
    switch (a->kind) {
    case TERN_TRACE_ATTR_STR: {
        /* invalid UTF-8 is not representable in JSON: sent as "" */
        json_t *v = json_string(a->v.s);
        return json_pack("{s:o}", "stringValue", v ? v : json_string(""));
    }
    case TERN_TRACE_ATTR_INT:
        return json_pack("{s:o}", "intValue", u64_string(a->v.i));
    case TERN_TRACE_ATTR_DOUBLE:
        /* JSON has no NaN or infinity; proto3 JSON spells them as strings */
        if (isnan(a->v.d))
            return json_pack("{s:s}", "doubleValue", "NaN");
        if (isinf(a->v.d))
            return json_pack("{s:s}", "doubleValue", a->v.d > 0 ? "Infinity" : "-Infinity");
        return json_pack("{s:f}", "doubleValue", a->v.d);
    case TERN_TRACE_ATTR_BOOL:
        return json_pack("{s:b}", "boolValue", a->v.b);
    }
    return json_object();
}

static json_t *attributes(const tern_trace_attr *attrs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s,s:o}", "key", attrs[i].key,
                                             "value", any_value(&attrs[i])));
    return arr;
}

static json_t *events(const tern_trace_span *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < s->nevents; i++) {
        const tern__trace_event *e = &s->events[i];
        json_t *o = json_pack("{s:o,s:s,s:o}", "timeUnixNano", u64_string(e->time_ns), "name",
                              e->name, "attributes", attributes(e->attrs, e->nattrs));
        if (o && e->dropped_attrs)
            json_object_set_new(o, "droppedAttributesCount", json_integer(e->dropped_attrs));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *span_json(const tern_trace_span *s)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:o,s:o,s:o,s:o}", "traceId", s->trace_hex,
                          "spanId", s->span_hex, "name", s->name, "kind", (int)s->kind,
                          "startTimeUnixNano", u64_string(s->start_ns),
                          "endTimeUnixNano", u64_string(s->end_ns),
                          "attributes", attributes(s->attrs, s->nattrs), "events", events(s));
    if (!o)
        return NULL;
    if (s->has_parent) {
        char hex[17];
        tern_trace_hex(s->parent_id, 8, hex);
        json_object_set_new(o, "parentSpanId", json_string(hex));
    }
    if (s->sc.tracestate[0])
        json_object_set_new(o, "traceState", json_string(s->sc.tracestate));
    if (s->dropped_attrs)
        json_object_set_new(o, "droppedAttributesCount", json_integer(s->dropped_attrs));
    if (s->dropped_events)
        json_object_set_new(o, "droppedEventsCount", json_integer(s->dropped_events));
    json_t *st = json_pack("{s:i}", "code", (int)s->status);
    if (s->status_msg)
        json_object_set_new(st, "message", json_string(s->status_msg));
    json_object_set_new(o, "status", st);
    return o;
}

json_t *tern__trace_otlp_json(const char *service_name, tern_trace_span *const *spans, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, span_json(spans[i]));
    tern_trace_attr svc = TERN_TRACE_STR("service.name", service_name);
    return json_pack("{s:[{s:{s:o},s:[{s:{s:s,s:s},s:o}]}]}", "resourceSpans", "resource",
                     "attributes", attributes(&svc, 1), "scopeSpans", "scope", "name", "tern",
                     "version", "0.1.0", "spans", arr);
}
