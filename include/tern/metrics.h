/*
 * tern/metrics.h - counters, gauges and histograms with labels, exposed in
 * the Prometheus text format (0.0.4), plus built-in runtime, process and
 * HTTP metrics.
 *
 *     tern_metrics_family *reqs;
 *     const char *labels[] = {"method", "code", NULL};
 *     tern_metrics_family_options o = {.type = TERN_METRICS_COUNTER,
 *         .name = "app_requests_total", .help = "Requests handled.", .labels = labels};
 *     tern_metrics_family_new(NULL, &o, &reqs);
 *     tern_metrics_counter *ok;
 *     tern_metrics_counter_with(reqs, &ok, "GET", "200");   // once
 *     ...
 *     tern_metrics_counter_inc(ok);                         // hot path
 *
 *     tern_http_router_handle(rt, "GET", "/metrics", tern_metrics_handler, NULL);
 *
 * A family has a name, help text, a type and label names; each distinct
 * tuple of label values is a child, made on first lookup and kept until
 * the registry is freed.  Look a child up once and keep its handle: the
 * lookup hashes the values and, the first time, allocates.  The handle's
 * operations are the hot path: no lock, no allocation.
 *
 * Counters and histograms are sharded: each thread (tern runs one worker
 * thread per P) adds to its own cache-line-padded slot, and a scrape sums
 * the slots, so increments from different Ps never contend on a line.  A
 * scrape taken while increments run sees each one either wholly or not at
 * all, but not a single instant: a histogram's _count always equals its
 * +Inf bucket (both come from the same reads), its _sum may be a few
 * observations ahead or behind.  Gauges are one shared value (set must
 * replace it), so a gauge changed on every request on every P costs a
 * contended cache line; prefer counters on hot paths.
 *
 * Names: metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* and may not start with "__" (reserved) nor, for
 * a histogram, be "le".  Label values are any NUL-terminated bytes; they
 * are escaped on output (\\, \", \n).  Keep their number small: every
 * distinct value is a child kept for the registry's life (never label by
 * a raw path, a user id or an error message).
 *
 * Output is deterministic: families by name, children by their label
 * values (byte order, first label first).  An unlabelled family always
 * shows its one sample; a labelled one shows nothing until it has a child.
 *
 * Threads: everything here may be called from any thread, coroutine or
 * not, except the HTTP parts, which run inside a server or a client.
 */
#ifndef TERN_METRICS_H
#define TERN_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tern/http.h"
#include "tern/http_client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_metrics_registry tern_metrics_registry;
typedef struct tern_metrics_family tern_metrics_family;
typedef struct tern_metrics_counter tern_metrics_counter;
typedef struct tern_metrics_gauge tern_metrics_gauge;
typedef struct tern_metrics_histogram tern_metrics_histogram;

/* Labels a family may have. */
#define TERN_METRICS_MAX_LABELS 8
/* Bucket bounds a histogram may have (the +Inf bucket not counted). */
#define TERN_METRICS_MAX_BUCKETS 64

/* ---- registries ----------------------------------------------------------- */

/* A registry of its own (tests, a separate endpoint).  0 or -ENOMEM. */
int tern_metrics_registry_new(tern_metrics_registry **out);
/* Free r, its families and their children: no handle of them may be used
 * after.  Runs the release functions given to tern_metrics_on_scrape. */
void tern_metrics_registry_free(tern_metrics_registry *r);
/* The process-wide registry, made on first use, never freed.  Every
 * function below that takes a registry takes NULL to mean this one. */
tern_metrics_registry *tern_metrics_default(void);

/* ---- families --------------------------------------------------------------- */

typedef enum tern_metrics_type {
    TERN_METRICS_COUNTER = 1,           /* 0 is no type: -EINVAL */
    TERN_METRICS_GAUGE,
    TERN_METRICS_HISTOGRAM,
} tern_metrics_type;

/* The Prometheus client default: 5 ms to 10 s, for request durations. */
#define TERN_METRICS_DEFAULT_BUCKETS \
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10

typedef struct tern_metrics_family_options {
    tern_metrics_type type;             /* required */
    const char *name;                   /* required */
    const char *help;                   /* required */
    /* NULL or a NULL-terminated array of label names (copied). */
    const char *const *labels;
    /* Histograms: the buckets' upper bounds (inclusive, as `le` says),
     * strictly increasing and finite, at most TERN_METRICS_MAX_BUCKETS;
     * NULL (and nbounds 0) for TERN_METRICS_DEFAULT_BUCKETS.  A +Inf
     * bucket is always added.  Must be NULL / 0 for other types. */
    const double *bounds;
    size_t nbounds;
} tern_metrics_family_options;

/* A family in r (NULL: the default registry), owned by r: it lives until
 * tern_metrics_registry_free.  0 and *out; -EINVAL (*out NULL) for NULL
 * opts, no or a bad type, a bad name, bad label name, more than
 * TERN_METRICS_MAX_LABELS labels, a repeated label, NULL help, bad bounds,
 * bounds on a non-histogram, or a histogram label called "le"; -EEXIST
 * when r already has a family of that name; -ENOMEM. */
int tern_metrics_family_new(tern_metrics_registry *r, const tern_metrics_family_options *opts,
                            tern_metrics_family **out);

/* Unlabelled metrics whose value fn(arg) computes at each scrape (a queue
 * length, a count kept elsewhere).  fn runs inside the scrape and must not
 * park; a counter's fn must never go down.  Errors as above. */
typedef double tern_metrics_value_fn(void *arg);
int tern_metrics_gauge_func(tern_metrics_registry *r, const char *name, const char *help,
                            tern_metrics_value_fn *fn, void *arg);
int tern_metrics_counter_func(tern_metrics_registry *r, const char *name, const char *help,
                              tern_metrics_value_fn *fn, void *arg);

/* Run fn(arg) at the start of every scrape of r, before any value is
 * read (to take one snapshot that several gauges show); scrapes of one
 * registry run one at a time, so fn never runs twice at once.  fn must not
 * park nor scrape r itself (it runs under r's scrape lock).
 * release(arg), if not NULL, runs when r is freed.  0, -EINVAL for a NULL
 * fn, or -ENOMEM. */
int tern_metrics_on_scrape(tern_metrics_registry *r, void (*fn)(void *arg),
                           void (*release)(void *arg), void *arg);

/* ---- children: look up once, keep the handle -------------------------------
 *
 * Pass exactly one value per label of the family, in its order (none for
 * an unlabelled family; the variadic forms read exactly that many).  0 and
 * *out, a handle owned by the family (valid until its registry is freed);
 * -EINVAL (*out NULL) when the family is of another type or a value is
 * NULL; -ENOMEM.  The same values always give the same handle. */
int tern_metrics_counter_with(tern_metrics_family *f, tern_metrics_counter **out, ...);
int tern_metrics_gauge_with(tern_metrics_family *f, tern_metrics_gauge **out, ...);
int tern_metrics_histogram_with(tern_metrics_family *f, tern_metrics_histogram **out, ...);
/* The same with the values in an array of the family's label count (NULL
 * for an unlabelled family). */
int tern_metrics_counter_with_values(tern_metrics_family *f, const char *const *values,
                                     tern_metrics_counter **out);
int tern_metrics_gauge_with_values(tern_metrics_family *f, const char *const *values,
                                   tern_metrics_gauge **out);
int tern_metrics_histogram_with_values(tern_metrics_family *f, const char *const *values,
                                       tern_metrics_histogram **out);

/* ---- the hot path ------------------------------------------------------------
 *
 * No NULL check here (each is a few ns; a NULL handle faults at once on
 * its first access, inside the function that names it in a backtrace). */

/* Add 1, or n, to the counter: one relaxed atomic add on the calling
 * thread's shard.  Any thread. */
void tern_metrics_counter_inc(tern_metrics_counter *c);
void tern_metrics_counter_add(tern_metrics_counter *c, uint64_t n);
/* The sum over every shard now. */
uint64_t tern_metrics_counter_value(const tern_metrics_counter *c);

/* Replace the gauge's value, add to it, or read it (one shared atomic
 * value: the last set wins).  Any thread. */
void tern_metrics_gauge_set(tern_metrics_gauge *g, double v);
void tern_metrics_gauge_add(tern_metrics_gauge *g, double delta);     /* negative to subtract */
double tern_metrics_gauge_value(const tern_metrics_gauge *g);

/* Count v in the first bucket whose bound is >= v (le is inclusive) and
 * add it to the sum.  NaN counts in +Inf and makes the sum NaN. */
void tern_metrics_histogram_observe(tern_metrics_histogram *h, double v);
/* Totals now: the observation count and sum (either may be NULL). */
void tern_metrics_histogram_totals(const tern_metrics_histogram *h, uint64_t *count, double *sum);

/* ---- exposition -------------------------------------------------------------- */

/* Write r in the text format 0.0.4.  0, -EIO when out fails, -ENOMEM. */
int tern_metrics_write(tern_metrics_registry *r, FILE *out);
/* The same into a malloc'd, NUL-terminated buffer (yours to free).
 * 0 or -ENOMEM. */
int tern_metrics_format(tern_metrics_registry *r, char **out, size_t *len);

/* An HTTP handler serving arg's registry (NULL: the default) with
 * Content-Type "text/plain; version=0.0.4; charset=utf-8". */
int tern_metrics_handler(tern_http_req *req, tern_http_resp *w, void *registry);

/* ---- runtime and process metrics ----------------------------------------------
 *
 * Registers, in r, gauges and counters read at scrape time from
 * tern_runtime_stats and /proc (0 while no runtime runs):
 *   tern_coroutines                     coroutines alive
 *   tern_coroutines_runnable            in a run queue
 *   tern_sched_procs                    Ps
 *   tern_sched_runqueue_length{p}       each P's local run queue
 *   tern_sched_global_runqueue_length
 *   tern_sched_steals_total             successful steals
 *   tern_sched_switches_total           coroutine switches
 *   tern_blocking_threads, tern_blocking_queued, tern_blocking_running
 *                                       the tern_blocking() pool
 * and the standard process metrics: process_cpu_seconds_total,
 * process_start_time_seconds, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds.
 * 0, -EEXIST if r already has one of these names, -ENOMEM. */
int tern_metrics_runtime_register(tern_metrics_registry *r);

/* ---- HTTP server and client metrics ---------------------------------------------
 *
 * Server (tern_http_mw_metrics, outermost in the chain so that it sees the
 * final status and times the whole chain):
 *   http_server_requests_total{route,method,code}         counter
 *   http_server_request_duration_seconds{route,method}    histogram, from
 *                      the request's head being read to the chain's end
 *   http_server_requests_in_flight                        gauge
 * route is the router's pattern (tern_http_req_route: "/users/:id"), or
 * "unmatched" when no route matched (404s, chains without a router),
 * "refused" for requests the server answered itself (below):
 * never the raw path, whose values are unbounded.  For the same reason a
 * method outside the standard nine is counted as "OTHER".  The router
 * sets the route while it runs, so put the middleware around the router
 * (in the server's chain or as the router's root middleware).
 *
 * Client (tern_http_metrics_client_do):
 *   http_client_requests_total{host,method,code}          counter; code
 *                      "error" when no response came (the -errno)
 *   http_client_request_duration_seconds{host,method}     histogram, until
 *                      the response head (the body is read later) */
typedef struct tern_http_metrics tern_http_metrics;

typedef struct tern_http_metrics_options {
    tern_metrics_registry *registry;    /* NULL: the default */
    const double *buckets;              /* durations in seconds; NULL: defaults */
    size_t nbuckets;
} tern_http_metrics_options;

/* Register the families above in the registry.  o may be NULL.  Errors as
 * the family constructors (-EEXIST: a second set in one registry).  The
 * set lives as long as its registry; tern_http_metrics_free only frees
 * the handle's own memory (after the server and clients are done). */
int tern_http_metrics_new(const tern_http_metrics_options *o, tern_http_metrics **out);
void tern_http_metrics_free(tern_http_metrics *m);

/* The middleware: arg is a tern_http_metrics, or NULL for a set in the
 * default registry made on first use. */
int tern_http_mw_metrics(tern_http_req *r, tern_http_resp *w, void *metrics);

/* Count a request the server refused itself (tern_http_server_options.
 * on_refused; arg as the middleware's) in the same families, with route
 * "refused": a flood of malformed requests shows in the 4xx rates.  The
 * duration runs from the head's first byte to the refusal. */
void tern_http_metrics_refused(const tern_http_refusal *rf, void *metrics);

/* tern_http_client_do bounded by ctx (NULL: unbounded), counted and
 * timed in m (NULL: the default set).  Returns what tern_http_client_do
 * returns; *out is the caller's, released with
 * tern_http_client_response_free. */
int tern_http_metrics_client_do(tern_http_metrics *m, tern_http_client *c,
                                const tern_http_client_request *req,
                                tern_http_client_response **out, tern_ctx *ctx);

/* ---- gRPC server metrics ------------------------------------------------------
 *
 * The families go-grpc-prometheus defines, so Go services' dashboards and
 * alerts read tern's unchanged:
 *   grpc_server_started_total{grpc_type,grpc_service,grpc_method}         counter
 *   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code} counter
 *   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}      histogram
 * grpc_type: unary, client_stream, server_stream, bidi_stream; grpc_code:
 * Go's names (OK, NotFound, DeadlineExceeded, ...).  Counted by a server
 * interceptor: tern_grpc_server_add_interceptor(s,
 * tern_grpc_metrics_interceptor, m), added first so it times everything. */
typedef struct tern_grpc_metrics tern_grpc_metrics;

typedef struct tern_grpc_metrics_options {
    tern_metrics_registry *registry;    /* NULL: the default */
    const double *buckets;              /* seconds; NULL: the defaults */
    size_t nbuckets;
} tern_grpc_metrics_options;

/* Register the families in the registry (o may be NULL): 0; errors as the
 * family constructors (-EEXIST: a second set in one registry).  The
 * families live as long as the registry; _free frees the handle only. */
int tern_grpc_metrics_new(const tern_grpc_metrics_options *o, tern_grpc_metrics **out);
void tern_grpc_metrics_free(tern_grpc_metrics *m);

/* The server interceptor: metrics is a tern_grpc_metrics, or NULL for a set
 * in the default registry made on first use. */
struct tern_grpc_call;
int tern_grpc_metrics_interceptor(struct tern_grpc_call *call, void *metrics);

/* ---- gRPC client metrics --------------------------------------------------------
 *
 * go-grpc-prometheus's client families, counted by a client interceptor
 * (tern_grpc_channel_options.interceptors, first, so it times everything):
 *   grpc_client_started_total{grpc_type,grpc_service,grpc_method}           counter
 *   grpc_client_handled_total{grpc_type,grpc_service,grpc_method,grpc_code} counter
 *   grpc_client_handling_seconds{grpc_type,grpc_service,grpc_method}        histogram
 * A call is handled when its status is final (a stream: recv saw the end,
 * or it was freed: Canceled); retries inside it count once. */
typedef struct tern_grpc_client_metrics tern_grpc_client_metrics;
/* As tern_grpc_metrics_new, for the client families (options alike). */
int tern_grpc_client_metrics_new(const tern_grpc_metrics_options *o, tern_grpc_client_metrics **out);
void tern_grpc_client_metrics_free(tern_grpc_client_metrics *m);
/* The client interceptor: metrics is a tern_grpc_client_metrics, or NULL
 * for a set in the default registry made on first use. */
struct tern_grpc_client_call;
int tern_grpc_client_metrics_interceptor(struct tern_grpc_client_call *cc, void *metrics);

/* ---- the kit's gRPC defaults ------------------------------------------------------
 *
 * What a tern service puts on its gRPC servers and channels: metrics
 * (default registry) outermost, then tracing, then on servers the access
 * log (tern/log.h, tern_grpc_access_log_interceptor, to the tern_log writer).
 * tern_grpc_server_use_kit adds the three server interceptors to s (before
 * its own: call it first); 0, -EBUSY once serving, -ENOMEM.
 * tern_grpc_kit_client_interceptors gives the two client ones (static;
 * *n set) for tern_grpc_channel_options.interceptors. */
struct tern_grpc_server;
struct tern_grpc_client_interceptor;
int tern_grpc_server_use_kit(struct tern_grpc_server *s);
const struct tern_grpc_client_interceptor *tern_grpc_kit_client_interceptors(size_t *n);

#ifdef __cplusplus
}
#endif
#endif
