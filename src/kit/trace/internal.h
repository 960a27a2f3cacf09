/*
 * internal.h - what the tracing files share: the span's layout (the
 * exporter reads ended spans directly), the exporter's entry points used
 * by span_end and init, and the sampler in force.
 */
#ifndef TERN_KIT_TRACE_INTERNAL_H
#define TERN_KIT_TRACE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "tern/trace.h"

typedef struct tern__trace_event {
    char *name;
    int64_t time_ns;            /* Unix ns */
    tern_trace_attr attrs[TERN_TRACE_MAX_EVENT_ATTRS];
    size_t nattrs;
    uint32_t dropped_attrs;
} tern__trace_event;

/* Mutable until `ended`; afterwards read-only, so the exporter coroutine
 * may read it while the owner still holds its reference. */
struct tern_trace_span {
    atomic_int refs;
    bool ended;
    bool recording;
    bool has_parent;
    bool borrowed;              /* in its owner's memory: freeing does not free it */
    tern_trace_kind kind;
    tern_trace_span_context sc;
    uint8_t parent_id[8];
    char trace_hex[33], span_hex[17];
    char *name;                 /* name_inline, or allocated when longer */
    char name_inline[32];
    int64_t start_ns, end_ns;   /* Unix ns */
    size_t nattrs;
    uint32_t dropped_attrs;
    tern__trace_event *events;
    size_t nevents, events_cap;
    uint32_t dropped_events;
    tern_trace_status status;
    char *status_msg;
    /* Last: a new span zeroes everything before it, not this kilobyte
     * that nattrs says is empty, and an unsampled span (which never holds
     * attributes) is allocated without it. */
    tern_trace_attr attrs[TERN_TRACE_MAX_ATTRS];   /* strings owned */
};

/* The size of an unsampled span: no attribute array. */
#define TERN__TRACE_UNSAMPLED_SIZE offsetof(struct tern_trace_span, attrs)

/* The attributes are last (an unsampled span is allocated without them),
 * the unsampled size is 8-aligned (made in the caller's memory), and the
 * span context ends with tracestate, right before parent_id (span_start
 * zeroes everything but tracestate with two memsets). */
_Static_assert(offsetof(struct tern_trace_span, attrs) +
                   sizeof ((struct tern_trace_span *)0)->attrs == sizeof(struct tern_trace_span),
               "attrs is the span's last field");
_Static_assert(TERN__TRACE_UNSAMPLED_SIZE % 8 == 0, "an unsampled span is 8-aligned");
_Static_assert(offsetof(struct tern_trace_span, sc.tracestate) +
                   sizeof ((tern_trace_span_context *)0)->tracestate ==
                   offsetof(struct tern_trace_span, sc) + sizeof(tern_trace_span_context) &&
               offsetof(struct tern_trace_span, sc) + sizeof(tern_trace_span_context) ==
                   offsetof(struct tern_trace_span, parent_id),
               "tracestate ends the span context, which parent_id follows");

/* tern_trace_span_start, but an unsampled span is made in mem (at least
 * TERN__TRACE_UNSAMPLED_SIZE bytes, 8-aligned, living until the span is
 * freed) rather than allocated.  The server middleware passes memory of
 * the request's, which it frees the span before: most spans are
 * unsampled, and then a request mallocs nothing for tracing. */
int tern__trace_span_start_in(void *mem, const char *name, tern_trace_kind kind,
                              const tern_trace_span_context *parent, tern_trace_span **out);

/* Hand an ended, recorded span to the exporter (which takes a reference
 * when it queues it).  Never parks. */
void tern__trace_export_submit(tern_trace_span *s);

/* The sampler tern_trace_span_start consults. */
void tern__trace_set_sampler(const tern_trace_sampler *s);

/* The context value key under which a tern_trace_span ** (a holder) makes
 * tern_trace_span_from_ctx return *holder (when no span was put there
 * with tern_trace_ctx_with_span). */
const void *tern__trace_holder_key(void);

/* The OTLP JSON of one batch, an ExportTraceServiceRequest: malloc'd text
 * (NUL-terminated; *len without the NUL), or NULL when out of memory. */
char *tern__trace_otlp_json(const char *service_name, tern_trace_span *const *spans, size_t n,
                            size_t *len);

#endif
