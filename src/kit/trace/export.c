/*
 * export.c - the tracer's state (tern_trace_init / shutdown) and its
 * batching exporter.
 *
 * A finished span is appended to a bounded ring under a mutex that is
 * held for a few stores and never across a park, so tern_trace_span_end
 * costs a request almost nothing and cannot wait on the collector: when
 * the ring is full the span is dropped and counted.  One background
 * coroutine owns everything slow: it wakes every batch_delay, or when a
 * batch_size worth of spans is waiting (a 1-slot channel, poked with a
 * non-blocking send), and POSTs the spans in batches through its own
 * tern_http_client, one POST at a time.  A slow collector therefore only
 * fills the ring.  With nothing queued it waits for the first span (the
 * submitter pokes it then) instead of waking every batch_delay: an idle
 * service's process sleeps.
 *
 * Shutdown stops new spans from being queued, wakes the coroutine and
 * waits for it to send what was queued before, each POST bounded by the
 * shutdown deadline; what is left when the deadline passes is dropped and
 * counted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kit/trace/internal.h"
#include "tern/chan.h"
#include "base/check.h"
#include "tern/runtime.h"

static struct {
    pthread_mutex_t mu;
    bool inited;                /* between init and the end of shutdown */
    bool accepting;             /* span_end may queue */
    bool stopping;
    int64_t stop_deadline;
    tern_ctx *stop_ctx;         /* the shutdown's (may be NULL): its end ends POSTs */
    bool left_behind;           /* the coroutine dropped spans at the deadline */
    tern_trace_span **q;        /* ring */
    size_t cap, head, len;
    size_t batch_size;
    tern_chan *wake;            /* 1 slot: "a batch is ready", "a first span" or "stop" */
    bool idle;                  /* the coroutine waits for a first span, no timeout */
    tern_chan *done;            /* closed by the coroutine as it ends */
    /* read only by the coroutine once started */
    bool no_export;
    char *url, *service;
    int64_t batch_delay, timeout;
    tern_http_client *client;
} ex = {.mu = PTHREAD_MUTEX_INITIALIZER};

static _Atomic uint64_t n_exported, n_dropped, n_failed, n_batches;

static void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void tern__trace_export_submit(tern_trace_span *s)
{
    pthread_mutex_lock(&ex.mu);
    if (!ex.accepting) {
        pthread_mutex_unlock(&ex.mu);
        return;
    }
    if (ex.len == ex.cap) {
        pthread_mutex_unlock(&ex.mu);
        count(&n_dropped, 1);
        return;
    }
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    ex.q[(ex.head + ex.len++) % ex.cap] = s;
    if (ex.len >= ex.batch_size || ex.idle) {
        ex.idle = false;
        tern_chan_try_send(ex.wake, &(char){1});   /* full slot: already poked */
    }
    pthread_mutex_unlock(&ex.mu);
}

/* Take up to max queued spans; how many. */
static size_t take(tern_trace_span **out, size_t max)
{
    pthread_mutex_lock(&ex.mu);
    size_t n = ex.len < max ? ex.len : max;
    for (size_t i = 0; i < n; i++)
        out[i] = ex.q[(ex.head + i) % ex.cap];
    ex.head = (ex.head + n) % ex.cap;
    ex.len -= n;
    pthread_mutex_unlock(&ex.mu);
    return n;
}

/* POST one batch; true when the collector answered 2xx. */
static bool post(tern_trace_span *const *spans, size_t n, int64_t deadline, tern_ctx *parent)
{
    size_t body_len = 0;
    char *body = tern__trace_otlp_json(ex.service, spans, n, &body_len);
    tern_ctx *ctx = NULL;
    if (body)
        tern_ctx_with_deadline(parent, deadline, &ctx);   /* NULL on failure: not posted */
    bool ok = false;
    if (ctx) {
        static const char *const headers[] = {"Content-Type", "application/json", NULL};
        tern_http_client_request req = {.method = "POST", .url = ex.url, .headers = headers,
                                        .body = body, .body_len = body_len};
        tern_http_client_response *resp;
        count(&n_batches, 1);
        if (tern_http_client_do(ex.client, &req, &resp, ctx) == 0) {
            int st = tern_http_client_response_status(resp);
            const char *data;
            size_t len;
            /* read the (small) answer so the connection can be reused */
            tern_http_client_response_body(resp, 64 * 1024, &data, &len);
            tern_http_client_response_free(resp);
            ok = st >= 200 && st < 300;
        }
    }
    tern_ctx_free(ctx);
    free(body);
    return ok;
}

/* Send everything queued now, batch by batch.  Once stopping (looked at
 * before each batch, so a shutdown need not wait for a long backlog at
 * the normal timeout), each POST is bounded by the shutdown deadline and
 * what is left after it is dropped. */
static void drain(void)
{
    tern_trace_span **batch = malloc(ex.batch_size * sizeof *batch);
    size_t n;
    while (batch && (n = take(batch, ex.batch_size)) > 0) {
        pthread_mutex_lock(&ex.mu);
        bool stopping = ex.stopping;
        int64_t stop_deadline = ex.stop_deadline;
        tern_ctx *stop_ctx = ex.stop_ctx;
        pthread_mutex_unlock(&ex.mu);
        int64_t deadline = tern_deadline_after(ex.timeout);
        if (stopping && deadline > stop_deadline)
            deadline = stop_deadline;
        if (ex.no_export)
            ;   /* sampled for the ids' sake, nowhere to go */
        else if (stopping && (tern_now() >= stop_deadline ||
                              (stop_ctx && tern_ctx_err(stop_ctx) < 0)))
            count(&n_dropped, n), ex.left_behind = true;
        else if (post(batch, n, deadline, stopping ? stop_ctx : NULL))
            count(&n_exported, n);
        else
            count(&n_failed, n);
        for (size_t i = 0; i < n; i++)
            tern_trace_span_free(batch[i]);
    }
    free(batch);
}

static int exporter_co(void *arg)
{
    (void)arg;
    for (;;) {
        tern_ctx *tick;
        char c;
        bool ok;
        pthread_mutex_lock(&ex.mu);
        bool empty = ex.len == 0 && !ex.stopping;
        ex.idle = empty;
        pthread_mutex_unlock(&ex.mu);
        if (empty) {
            /* until the first span (then the batch's delay as usual) or a stop */
            tern_chan_recv(ex.wake, &c, &ok, NULL);
            pthread_mutex_lock(&ex.mu);
            ex.idle = false;
            bool stop_now = ex.stopping;
            pthread_mutex_unlock(&ex.mu);
            if (stop_now) {
                drain();
                break;
            }
        }
        if (tern_ctx_with_timeout(NULL, ex.batch_delay, &tick) == 0)
            tern_chan_recv(ex.wake, &c, &ok, tick);
        else
            tern_sleep(ex.batch_delay);
        tern_ctx_free(tick);
        pthread_mutex_lock(&ex.mu);
        bool stopping = ex.stopping;
        pthread_mutex_unlock(&ex.mu);
        /* read before draining: spans queued before shutdown are all sent */
        drain();
        if (stopping)
            break;
    }
    tern_chan_close(ex.done);
    return 0;
}

/* ---- configuration ---------------------------------------------------------------- */

static char *traces_url(const char *given)
{
    if (given)
        return strdup(given);
    const char *e = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if (e && *e)
        return strdup(e);
    e = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (!e || !*e)
        e = "http://localhost:4318";
    size_t n = strlen(e);
    while (n && e[n - 1] == '/')
        n--;
    char *u = malloc(n + sizeof "/v1/traces");
    if (u) {
        memcpy(u, e, n);
        memcpy(u + n, "/v1/traces", sizeof "/v1/traces");
    }
    return u;
}

static void release_state(void)
{
    tern_chan_free(ex.wake);
    tern_chan_free(ex.done);
    if (ex.client)
        tern_http_client_free(ex.client);
    free(ex.q);
    free(ex.url);
    free(ex.service);
    ex.wake = ex.done = NULL;
    ex.client = NULL;
    ex.q = NULL;
    ex.url = ex.service = NULL;
}

static int setup(const tern_trace_options *o)
{
    ex.cap = o->queue_size ? o->queue_size : 2048;
    ex.batch_size = o->batch_size ? o->batch_size : 512;
    ex.batch_delay = o->batch_delay > 0 ? o->batch_delay : 5 * TERN_SEC;
    ex.timeout = o->export_timeout > 0 ? o->export_timeout : 10 * TERN_SEC;
    ex.no_export = o->no_export;
    ex.head = ex.len = 0;
    ex.idle = false;
    ex.stopping = ex.left_behind = false;
    const char *svc = o->service_name ? o->service_name : getenv("OTEL_SERVICE_NAME");
    ex.service = strdup(svc && *svc ? svc : "unknown_service");
    ex.url = traces_url(o->endpoint);
    ex.q = malloc(ex.cap * sizeof *ex.q);
    tern_http_client_options co = {.user_agent = "tern-otlp"};
    if (!ex.service || !ex.url || !ex.q || tern_chan_new(1, 1, &ex.wake) != 0 ||
        tern_chan_new(1, 0, &ex.done) != 0 ||
        tern_http_client_new(&co, &ex.client) != 0)
        return -ENOMEM;
    if (strncmp(ex.url, "http://", 7) != 0 && strncmp(ex.url, "https://", 8) != 0)
        return -EINVAL;
    return 0;
}

int tern_trace_init(const tern_trace_options *o)
{
    static const tern_trace_options defaults;
    if (!o)
        o = &defaults;
    pthread_mutex_lock(&ex.mu);
    bool busy = ex.inited;
    ex.inited = true;
    pthread_mutex_unlock(&ex.mu);
    if (busy)
        return -EALREADY;
    int rc = setup(o);
    tern_go_options go = {.name = "trace-export", .stack_size = 256 * 1024};
    if (rc == 0 && tern_go_opts(exporter_co, NULL, &go, NULL) != 0)
        rc = -ENOMEM;
    if (rc < 0) {
        release_state();
        pthread_mutex_lock(&ex.mu);
        ex.inited = false;
        pthread_mutex_unlock(&ex.mu);
        return rc;
    }
    tern_trace_sampler s;
    if (o->sampler)
        s = *o->sampler;
    else
        tern_trace_sampler_parse(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG"),
                                 &s);   /* an unknown one leaves the default */
    tern__trace_set_sampler(&s);
    pthread_mutex_lock(&ex.mu);
    ex.accepting = true;
    pthread_mutex_unlock(&ex.mu);
    tern_log_set_context_hook(tern_trace_log_ids);
    return 0;
}

int tern_trace_shutdown(tern_ctx *ctx)
{
    int64_t deadline = TERN_FOREVER;
    if (ctx)
        tern_ctx_deadline(ctx, &deadline);
    pthread_mutex_lock(&ex.mu);
    if (!ex.inited || ex.stopping) {
        pthread_mutex_unlock(&ex.mu);
        return -ESRCH;
    }
    ex.accepting = false;
    ex.stopping = true;
    ex.stop_deadline = deadline;
    ex.stop_ctx = ctx;
    tern_chan_try_send(ex.wake, &(char){1});
    pthread_mutex_unlock(&ex.mu);
    /* Each POST is bounded by the deadline, so this wait is too. */
    char c;
    bool ok;
    tern_chan_recv(ex.done, &c, &ok, NULL);
    bool late = ex.left_behind;
    int cause = ctx && tern_ctx_err(ctx) < 0 ? tern_ctx_err(ctx) : -ETIMEDOUT;
    ex.stop_ctx = NULL;
    tern_log_set_context_hook(NULL);
    release_state();
    tern__trace_set_sampler(&(tern_trace_sampler){TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON, 1.0});
    pthread_mutex_lock(&ex.mu);
    ex.inited = false;
    ex.stopping = false;
    pthread_mutex_unlock(&ex.mu);
    return late ? cause : 0;
}

int tern_trace_stats(struct tern_trace_stats *out)
{
    TERN_CHECK_ARG(out);
    pthread_mutex_lock(&ex.mu);
    out->queued = ex.len;
    pthread_mutex_unlock(&ex.mu);
    out->exported = atomic_load_explicit(&n_exported, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&n_dropped, memory_order_relaxed);
    out->failed = atomic_load_explicit(&n_failed, memory_order_relaxed);
    out->batches = atomic_load_explicit(&n_batches, memory_order_relaxed);
    return 0;
}
