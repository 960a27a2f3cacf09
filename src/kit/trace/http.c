/*
 * http.c - tracing at the HTTP edges: the server middleware that
 * continues (or starts) a trace for each request, and a client call that
 * propagates it.
 *
 * Tracing must never fail a request: when a span cannot be had (ENOMEM)
 * the request runs untraced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/check.h"
#include "kit/trace/internal.h"
#include "tern/error.h"
#include "tern/http_parse.h"
#include "tern/http_router.h"

/* The request's tracestate: its fields joined with ',' (a list may be
 * split across fields), or "" when malformed or too long. */
static void read_tracestate(tern_http_req *r, tern_trace_span_context *sc)
{
    char joined[TERN_TRACE_STATE_MAX + 1];
    size_t len = 0;
    const char *name, *value;
    for (size_t i = 0; tern_http_req_header_at(r, i, &name, &value) == 0; i++) {
        if (strcasecmp(name, "tracestate") != 0)
            continue;
        size_t n = strlen(value);
        if (len + (len > 0) + n > TERN_TRACE_STATE_MAX)
            return;     /* over the bound: dropped whole, never cut mid-member */
        if (len > 0)
            joined[len++] = ',';
        memcpy(joined + len, value, n);
        len += n;
    }
    joined[len] = 0;
    tern_trace_parse_tracestate(joined, sc);
}

/* "METHOD route" once the router has spoken, else the method alone (a
 * path would make one span name per URL). */
static void name_span(tern_trace_span *s, tern_http_req *r, const char *method)
{
    const char *route = tern_http_req_route(r);
    if (!route || !tern_trace_span_recording(s))
        return;         /* an unsampled span keeps nothing: skip the work */
    char name[512];
    snprintf(name, sizeof name, "%s %s", method, route);
    tern_trace_span_set_name(s, name);
    tern_trace_span_set(s, &TERN_TRACE_STR("http.route", route));
}

int tern_http_mw_trace(tern_http_req *r, tern_http_resp *w, void *opts)
{
    (void)opts;
    tern_trace_span_context parent;
    const tern_trace_span_context *pp = NULL;
    const char *tp = tern_http_req_header(r, "traceparent");
    if (tp && tern_trace_parse_traceparent(tp, &parent) == 0) {
        read_tracestate(r, &parent);
        pp = &parent;
    }
    const char *method = tern_http_req_method(r);
    tern_trace_span *s;
    /* unsampled (most requests), the span lives in the request's memory */
    if (tern__trace_span_start_in(tern_http_req_alloc(r, TERN__TRACE_UNSAMPLED_SIZE), method,
                                  TERN_TRACE_KIND_SERVER, pp, &s) != 0)
        return tern_http_next(r, w);
    bool recording = tern_trace_span_recording(s);
    if (recording) {
        tern_trace_span_set(s, &TERN_TRACE_STR("http.request.method", method));
        tern_trace_span_set(s, &TERN_TRACE_STR("url.path", tern_http_req_path(r)));
    }

    /* the request's context leads to the span, made only if asked for */
    tern_trace_span **holder = tern_http_req_alloc(r, sizeof *holder);
    if (holder) {
        *holder = s;
        if (tern_http_req_add_ctx_value(r, tern__trace_holder_key(), holder) != 0)
            holder = NULL;
    }
    /* in the arena, not on this stack: other coroutines walk the scope
     * list, and a shared-stack coroutine's stack moves while it parks */
    tern_trace_scope *scope = tern_http_req_alloc(r, sizeof *scope);
    if (scope)
        tern_trace_span_enter(scope, s);

    int rc = tern_http_next(r, w);

    if (scope)
        tern_trace_span_exit(scope);
    if (recording) {
        name_span(s, r, method);
        int status = rc < 0 && !tern_http_resp_committed(w) ? tern_http_error_status(r, rc)
                                                             : tern_http_resp_status(w);
        tern_trace_span_set(s, &TERN_TRACE_INT("http.response.status_code", status));
        if (rc < 0)
            tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, tern_strerror(rc));
        else if (status >= 500)
            tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, NULL);
    }
    tern_trace_span_end(s);
    if (holder)
        *holder = NULL;
    tern_trace_span_free(s);
    return rc;
}

/* ---- the client ------------------------------------------------------------------- */

/* The caller's headers without any traceparent/tracestate of theirs, then
 * ours; NULL-terminated.  malloc'd. */
static const char **inject(const char *const *given, const char *traceparent,
                           const char *tracestate)
{
    size_t n = 0;
    while (given && given[n])
        n++;
    const char **h = malloc((n + 5) * sizeof *h);
    if (!h)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (strcasecmp(given[i], "traceparent") == 0 || strcasecmp(given[i], "tracestate") == 0)
            continue;
        h[k++] = given[i];
        h[k++] = given[i + 1];
    }
    if (n % 2)
        h[k++] = given[n - 1];  /* a name without a value: the client says -EINVAL */
    h[k++] = "traceparent";
    h[k++] = traceparent;
    if (tracestate[0]) {
        h[k++] = "tracestate";
        h[k++] = tracestate;
    }
    h[k] = NULL;
    return h;
}

int tern_trace_http_client_do(tern_http_client *c, tern_trace_span *parent,
                              const tern_http_client_request *req,
                              tern_http_client_response **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(req);
    if (!parent)
        parent = tern_trace_span_from_ctx(ctx);
    if (!parent)
        parent = tern_trace_span_current();
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    tern_trace_span *s;
    int rc = tern_trace_span_start(method, TERN_TRACE_KIND_CLIENT,
                                   tern_trace_span_context_of(parent), &s);
    if (rc < 0)
        return rc;
    char traceparent[TERN_TRACE_PARENT_LEN + 1];
    tern_trace_format_traceparent(tern_trace_span_context_of(s), traceparent, sizeof traceparent);
    const char **headers = inject(req->headers, traceparent, s->sc.tracestate);
    if (!headers) {
        tern_trace_span_free(s);
        return -ENOMEM;
    }
    tern_trace_span_set(s, &TERN_TRACE_STR("http.request.method", method));
    /* OTel's url.full must not carry credentials (issue 15: a downstream
     * URL's password reached the exporter); a longer value is cut anyway. */
    char full[TERN_TRACE_STR_MAX + 1];
    tern_http_url_redact(req->url, full, sizeof full);
    tern_trace_span_set(s, &TERN_TRACE_STR("url.full", full));
    tern_http_client_request traced = *req;
    traced.headers = headers;
    rc = tern_http_client_do(c, &traced, out, ctx);
    if (rc == 0) {
        int status = tern_http_client_response_status(*out);
        tern_trace_span_set(s, &TERN_TRACE_INT("http.response.status_code", status));
        if (status >= 400)
            tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, NULL);
    } else {
        tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, tern_strerror(rc));
    }
    tern_trace_span_end(s);
    tern_trace_span_free(s);
    free(headers);
    return rc;
}
