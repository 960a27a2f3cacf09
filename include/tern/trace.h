/*
 * tern/trace.h - distributed tracing: W3C Trace Context propagation, spans,
 * sampling, and a batching exporter to an OTLP/HTTP (JSON) collector.
 *
 *     tern_trace_init(NULL);                      // from a coroutine; env config
 *     static const tern_http_link chain[] = {
 *         {tern_http_mw_trace, NULL},             // a SERVER span per request
 *         {handler, NULL},
 *     };
 *     ...in a handler:
 *     tern_trace_span *parent = tern_trace_span_from_ctx(tern_http_req_ctx(r));
 *     tern_trace_span *child;
 *     tern_trace_span_start("load user", TERN_TRACE_KIND_INTERNAL,
 *                           tern_trace_span_context_of(parent), &child);
 *     tern_trace_span_set(child, &TERN_TRACE_INT("user.id", 42));
 *     tern_trace_span_end(child);
 *     tern_trace_span_free(child);
 *     ...
 *     tern_trace_shutdown(ctx);      // flush, bounded by ctx (2 s, say)
 *
 * Configuration (tern_trace_init with NULL fields) follows OpenTelemetry's
 * environment variables: OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER
 * (always_on, always_off, traceidratio, parentbased_always_on (the
 * default), parentbased_always_off, parentbased_traceidratio),
 * OTEL_TRACES_SAMPLER_ARG (the ratio, default 1.0),
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
 * OTEL_EXPORTER_OTLP_ENDPOINT (+ "/v1/traces"); default
 * http://localhost:4318/v1/traces.  An unknown sampler name or a ratio
 * outside [0, 1] falls back to the default, as the specification asks.
 *
 * Export never blocks a request: a finished, sampled span goes into a
 * bounded queue (one short mutex hold, no parking); when the queue is
 * full it is dropped and counted (tern_trace_stats).  A background
 * coroutine POSTs batches (every batch_delay, or as soon as batch_size
 * spans wait) through tern_http_client as ExportTraceServiceRequest JSON.
 * A failed POST drops its batch (counted); there is no retry.
 *
 * Without tern_trace_init spans still work (ids, propagation, the log
 * hook) with the parentbased_always_on sampler, and are freed unexported.
 *
 * Threads: a span belongs to one coroutine at a time (hand it over as you
 * would any object).  Everything else may be called from any coroutine.
 */
#ifndef TERN_TRACE_H
#define TERN_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/http.h"
#include "tern/http_client.h"
#include "tern/log.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- span context and W3C Trace Context ---------------------------------- */

#define TERN_TRACE_FLAG_SAMPLED 0x01
/* A traceparent, "00-" 32 hex "-" 16 hex "-" 2 hex, and its NUL. */
#define TERN_TRACE_PARENT_LEN 55
/* tracestate is kept opaque but bounded: at most this many bytes (the
 * spec's propagation minimum) and TERN_TRACE_STATE_MAX_ENTRIES members. */
#define TERN_TRACE_STATE_MAX 512
#define TERN_TRACE_STATE_MAX_ENTRIES 32

typedef struct tern_trace_span_context {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;              /* TERN_TRACE_FLAG_SAMPLED */
    bool remote;                /* parsed from a traceparent */
    char tracestate[TERN_TRACE_STATE_MAX + 1];  /* "" when none */
} tern_trace_span_context;

/* Parse a traceparent header value into *sc (tracestate left ""), strictly:
 * version 00 is exactly 55 characters; lowercase hex only; version ff, an
 * all-zero trace id or span id are invalid.  A higher version is read as
 * 00 when its first 55 characters are well formed and end the value or
 * are followed by '-' (the spec's forward compatibility), keeping only
 * the sampled flag.  0 or -EINVAL. */
int tern_trace_parse_traceparent(const char *value, tern_trace_span_context *sc);

/* Check a tracestate header value and copy it to sc->tracestate: 0, or
 * -EINVAL (malformed member, duplicate key, more than 32 members) or
 * -E2BIG (over TERN_TRACE_STATE_MAX bytes), leaving sc->tracestate "".
 * NULL or "" is valid and empty. */
int tern_trace_parse_tracestate(const char *value, tern_trace_span_context *sc);

/* Format sc as a version 00 traceparent into buf (at least
 * TERN_TRACE_PARENT_LEN + 1 bytes): 0, or -EINVAL for all-zero ids. */
int tern_trace_format_traceparent(const tern_trace_span_context *sc, char *buf, size_t len);

/* Lowercase hex of an id: out gets 2n characters and a NUL. */
void tern_trace_hex(const uint8_t *id, size_t n, char *out);

/* ---- sampling -------------------------------------------------------------- */

typedef enum tern_trace_sampler_kind {
    TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON = 0,  /* the default */
    TERN_TRACE_SAMPLER_ALWAYS_ON,
    TERN_TRACE_SAMPLER_ALWAYS_OFF,
    TERN_TRACE_SAMPLER_TRACEIDRATIO,
    TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_OFF,
    TERN_TRACE_SAMPLER_PARENTBASED_TRACEIDRATIO,
} tern_trace_sampler_kind;

typedef struct tern_trace_sampler {
    tern_trace_sampler_kind kind;
    double ratio;               /* [0, 1], for the traceidratio kinds */
} tern_trace_sampler;

/* A sampler from OTEL_TRACES_SAMPLER's and OTEL_TRACES_SAMPLER_ARG's
 * syntax (either may be NULL).  -EINVAL for an unknown name or a bad
 * ratio; *out then holds the default (parentbased_always_on). */
int tern_trace_sampler_parse(const char *name, const char *arg, tern_trace_sampler *out);

/* Whether a new span of trace_id with this parent (NULL: a root) is
 * sampled.  Ratio: the trace id's last 8 bytes, read as a big-endian
 * integer, are below ratio * 2^64 (so the decision is the same in every
 * service that uses the same ratio).  Parent-based: a parent's sampled
 * flag decides; the inner sampler only decides for roots. */
bool tern_trace_sampler_decide(const tern_trace_sampler *s, const tern_trace_span_context *parent,
                               const uint8_t trace_id[16]);

/* ---- spans ------------------------------------------------------------------ */

typedef struct tern_trace_span tern_trace_span;

/* OTLP's numbering, sent as integers. */
typedef enum tern_trace_kind {
    TERN_TRACE_KIND_INTERNAL = 1,
    TERN_TRACE_KIND_SERVER = 2,
    TERN_TRACE_KIND_CLIENT = 3,
    TERN_TRACE_KIND_PRODUCER = 4,
    TERN_TRACE_KIND_CONSUMER = 5,
} tern_trace_kind;

typedef enum tern_trace_status {
    TERN_TRACE_STATUS_UNSET = 0,
    TERN_TRACE_STATUS_OK = 1,
    TERN_TRACE_STATUS_ERROR = 2,
} tern_trace_status;

typedef enum tern_trace_attr_kind {
    TERN_TRACE_ATTR_STR = 1,
    TERN_TRACE_ATTR_INT,
    TERN_TRACE_ATTR_DOUBLE,
    TERN_TRACE_ATTR_BOOL,
} tern_trace_attr_kind;

typedef struct tern_trace_attr {
    const char *key;
    tern_trace_attr_kind kind;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } v;
} tern_trace_attr;

#define TERN_TRACE_STR(k, x)    ((tern_trace_attr){.key = (k), .kind = TERN_TRACE_ATTR_STR, .v.s = (x)})
#define TERN_TRACE_INT(k, x)    ((tern_trace_attr){.key = (k), .kind = TERN_TRACE_ATTR_INT, .v.i = (x)})
#define TERN_TRACE_DOUBLE(k, x) ((tern_trace_attr){.key = (k), .kind = TERN_TRACE_ATTR_DOUBLE, .v.d = (x)})
#define TERN_TRACE_BOOL(k, x)   ((tern_trace_attr){.key = (k), .kind = TERN_TRACE_ATTR_BOOL, .v.b = (x)})

/* Limits per span; more is counted (droppedAttributesCount,
 * droppedEventsCount) and refused with -ENOSPC.  Strings are copied;
 * a name or string value longer than TERN_TRACE_STR_MAX is cut. */
#define TERN_TRACE_MAX_ATTRS 32
#define TERN_TRACE_MAX_EVENTS 16
#define TERN_TRACE_MAX_EVENT_ATTRS 8
#define TERN_TRACE_STR_MAX 1024

/* Start a span: a child of parent (same trace, parent's span id as
 * parentSpanId, parent's tracestate), or the root of a new trace when
 * parent is NULL.  Fresh ids come from a per-thread xoshiro256** seeded by
 * getrandom(2).  The sampler of tern_trace_init decides whether it is
 * recorded; an unrecorded span still carries ids (flags 00) so
 * propagation works, and its setters do nothing.  The start time is now.
 * 0, -EINVAL (NULL name or out), -ENOMEM.  Free with tern_trace_span_free. */
int tern_trace_span_start(const char *name, tern_trace_kind kind,
                          const tern_trace_span_context *parent, tern_trace_span **out);

/* Its ids, flags and tracestate; NULL for a NULL span (so
 * tern_trace_span_context_of(tern_trace_span_from_ctx(ctx)) is a valid
 * parent argument either way). */
const tern_trace_span_context *tern_trace_span_context_of(const tern_trace_span *s);
/* Whether s is recorded (sampled): false for an unrecorded or NULL span,
 * whose setters do nothing. */
bool tern_trace_span_recording(const tern_trace_span *s);
/* The span's lowercase hex ids (valid until it is freed). */
const char *tern_trace_span_trace_id(const tern_trace_span *s);
const char *tern_trace_span_span_id(const tern_trace_span *s);

/* Rename (a server span learns its route late).  0, -EALREADY once
 * ended, -ENOMEM. */
int tern_trace_span_set_name(tern_trace_span *s, const char *name);
/* Set an attribute; the same key again replaces its value.  0, -ENOSPC,
 * -EALREADY once ended, -EINVAL (NULL key), -ENOMEM. */
int tern_trace_span_set(tern_trace_span *s, const tern_trace_attr *a);
/* An event now, with up to TERN_TRACE_MAX_EVENT_ATTRS attributes. */
int tern_trace_span_add_event(tern_trace_span *s, const char *name, const tern_trace_attr *attrs,
                              size_t n);
/* Status: OK is final (later ERROR is ignored, as OTel asks); message is
 * kept for ERROR only.  0 or -EALREADY once ended. */
int tern_trace_span_set_status(tern_trace_span *s, tern_trace_status code, const char *message);

/* End the span now: a recorded span is queued for export.  Once only:
 * a second call returns -EALREADY and changes nothing.  The span stays
 * readable (and immutable) until tern_trace_span_free. */
int tern_trace_span_end(tern_trace_span *s);
/* Drop the caller's reference (the exporter keeps its own until sent).
 * Ending is not implied: a span freed unended is never exported. */
void tern_trace_span_free(tern_trace_span *s);

/* For tests and exporters: the status, attribute count, an attribute by
 * key (NULL if absent), event count, and the parent span id (false for a
 * root). */
tern_trace_status tern_trace_span_status(const tern_trace_span *s);
size_t tern_trace_span_attr_count(const tern_trace_span *s);
const tern_trace_attr *tern_trace_span_attr(const tern_trace_span *s, const char *key);
size_t tern_trace_span_event_count(const tern_trace_span *s);
bool tern_trace_span_parent_id(const tern_trace_span *s, uint8_t out[8]);
const char *tern_trace_span_name(const tern_trace_span *s);

/* ---- context: the span of a request -------------------------------------- */

/* A child of parent (NULL: background) whose tern_trace_span_from_ctx is
 * s (borrowed: s must outlive its use through the context).  0 and *out,
 * the caller's to free with tern_ctx_free; -ENOMEM (*out NULL). */
int tern_trace_ctx_with_span(tern_ctx *parent, tern_trace_span *s, tern_ctx **out);
/* The span put in ctx's chain by tern_trace_ctx_with_span, else the
 * request's span set by tern_http_mw_trace (only while that middleware
 * runs: NULL once it has returned and freed the span), else NULL. */
tern_trace_span *tern_trace_span_from_ctx(tern_ctx *ctx);

/* The calling coroutine's current span (set by tern_http_mw_trace around
 * the rest of its chain, or by tern_trace_span_enter), or NULL.  Keyed by
 * the coroutine (tern_self()), not the thread: a handler that parks and
 * resumes on another worker keeps it, and other coroutines running on its
 * thread meanwhile do not see it. */
tern_trace_span *tern_trace_span_current(void);
/* Make s the calling coroutine's current span until the matching
 * tern_trace_span_exit (LIFO; entries nest).  e is the caller's storage
 * (for example from tern_http_req_alloc) and must stay put until exit.
 * From a coroutine. */
typedef struct tern_trace_scope {
    void *co;
    tern_trace_span *span;
    struct tern_trace_scope *next;
} tern_trace_scope;
void tern_trace_span_enter(tern_trace_scope *e, tern_trace_span *s);
void tern_trace_span_exit(tern_trace_scope *e);

/* The tern_log context hook: the current span's ids.  tern_trace_init
 * installs it, tern_trace_shutdown removes it. */
bool tern_trace_log_ids(tern_log_ids *ids);

/* ---- the tracer and its exporter ------------------------------------------- */

typedef struct tern_trace_options {
    const char *service_name;   /* NULL: OTEL_SERVICE_NAME, else "unknown_service" */
    const char *endpoint;       /* the traces URL; NULL: from the environment */
    const tern_trace_sampler *sampler;  /* NULL: from the environment */
    bool no_export;             /* sample, but send nothing */
    size_t queue_size;          /* finished spans waiting; 0: 2048 */
    size_t batch_size;          /* spans per POST; 0: 512 */
    int64_t batch_delay;        /* ns between POSTs at most; 0: 5 s */
    int64_t export_timeout;     /* ns per POST; 0: 10 s */
} tern_trace_options;

/* Configure sampling and start the exporter coroutine; NULL options: the
 * environment.  From a coroutine.  0, -EALREADY (initialised already),
 * -EINVAL (an endpoint not http:// or https://; https is refused by
 * tern_http_client, so its POSTs fail and are counted), -ENOMEM.
 * Installs the tern_log hook.  The exporter is a coroutine of the running
 * runtime: call tern_trace_shutdown before tern_run's entry returns, or a
 * later runtime's tern_trace_init gets -EALREADY. */
int tern_trace_init(const tern_trace_options *o);

/* Export what is queued (spans ended before the call) until ctx ends
 * (NULL: until all is sent, each POST within export_timeout), then stop
 * the exporter and return to the uninitialised state.  A POST already in
 * flight when it is called keeps its own export_timeout, so the call may
 * return up to that much past ctx's end.  From a coroutine.  0,
 * -ETIMEDOUT or -ECANCELED as ctx ended with spans left unsent (counted
 * as dropped), -ESRCH when not initialised. */
int tern_trace_shutdown(tern_ctx *ctx);

/* The struct shares the function's name (as POSIX's struct stat and
 * stat() do): name it with its tag. */
struct tern_trace_stats {
    uint64_t exported;          /* spans the collector accepted (2xx) */
    uint64_t dropped;           /* spans lost: queue full, or unsent at shutdown */
    uint64_t failed;            /* spans in POSTs that failed or got non-2xx */
    uint64_t batches;           /* POSTs sent */
    uint64_t queued;            /* waiting now */
};

/* Counters since the first tern_trace_init (they survive shutdown) into
 * *out; 0.  Any thread. */
int tern_trace_stats(struct tern_trace_stats *out);

/* ---- HTTP --------------------------------------------------------------------
 *
 * tern_http_mw_trace: a SERVER span per request, a child of an incoming
 * valid traceparent (with its tracestate), else the root of a new trace.
 * Named "METHOD route" once the chain has run (tern_http_req_route; the
 * method alone when no route matched), with http.request.method,
 * url.path, http.route (when matched) and http.response.status_code;
 * status ERROR for 5xx or a handler error.  During the rest of the chain
 * the span is in the request's context (tern_trace_span_from_ctx) and is
 * the coroutine's current span (log lines carry its ids).  Put it first
 * (or right after the access log) so that it sees the final status.
 *
 * No traceresponse header is sent: that header is still a draft (Trace
 * Context Level 2), and it would tell any caller our span ids and sampling
 * decision.  opts is unused (NULL). */
int tern_http_mw_trace(tern_http_req *r, tern_http_resp *w, void *opts);

/* tern_http_client_do bounded by ctx (NULL: unbounded) inside a CLIENT
 * span, named after the method, child of parent (NULL: the span in ctx,
 * else the current span, else a new trace), with traceparent (and tracestate) added to the request's
 * headers, http.request.method, url.full, http.response.status_code, and
 * status ERROR for a failure or a status of 400 and above (OTel's rule
 * for client spans; a server span leaves 4xx unset).  The span ends when the head has
 * arrived.  Returns what tern_http_client_do returns; -ENOMEM. */
int tern_trace_http_client_do(tern_http_client *c, tern_trace_span *parent,
                              const tern_http_client_request *req,
                              tern_http_client_response **out, tern_ctx *ctx);

/* ---- gRPC -------------------------------------------------------------------
 *
 * Interceptors (arg unused, NULL) after OpenTelemetry's RPC conventions:
 * spans named "pkg.Service/Method" with rpc.system "grpc", rpc.service,
 * rpc.method and rpc.grpc.status_code (and rpc.grpc.attempts on a client
 * call that took more than one); the trace crosses in W3C traceparent and
 * tracestate metadata.
 *
 * The server interceptor (tern_grpc_server_add_interceptor): a SERVER span
 * per call, a child of the caller's traceparent (or of an HTTP tracing
 * middleware's span in front of a shared port), ended when the handler
 * returns; status ERROR for the codes that blame the server (UNKNOWN,
 * DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS).
 * While the handler runs the span is in the call's ctx
 * (tern_trace_span_from_ctx(tern_grpc_call_ctx(call))) and is the
 * coroutine's current span, so the handler's own calls continue the trace.
 *
 * The client interceptor (tern_grpc_channel_options.interceptors): a CLIENT
 * span per call, a child of the span in the call's ctx, else the current
 * span, else a new trace; it ends when the call does (a stream: when recv
 * sees the end or the stream is freed); status ERROR for any code but OK. */
struct tern_grpc_call;
struct tern_grpc_client_call;
int tern_grpc_trace_server_interceptor(struct tern_grpc_call *call, void *arg);
int tern_grpc_trace_client_interceptor(struct tern_grpc_client_call *cc, void *arg);

#ifdef __cplusplus
}
#endif
#endif
