/*
 * access_log.c - one JSON line per request, written after the chain has
 * answered.
 *
 * The line is made by the logger's own formatter (kit/log/format.c), so an
 * access line is a tern_log line like any other ("time", "level", "msg",
 * then the fields) and the escaping lives in one place: quotes,
 * backslashes and control characters are escaped, bytes that are not
 * UTF-8 become U+FFFD, and the line never exceeds TERN_LOG_LINE_MAX.  No
 * allocation: the line is built on the stack.
 *
 * A client must not be able to make a line long enough to matter, so each
 * client-chosen string is cut to a fixed number of its own bytes before it
 * is escaped (at a character boundary, by the formatter as it copies).
 * The keys are fixed, so they go in as JSON already (TERN__LOG_KEY) and
 * are not scanned for escapes on every request.  The numbers go first: if a line
 * is still too long after that (a path of 1 KiB of control characters
 * escapes to 6 KiB) the formatter drops the trailing fields, and status,
 * bytes and duration are never among them.
 *
 * Placed inside the tracing middleware (tern_http_mw_trace), the line
 * carries the request's trace and span ids, as any line logged from the
 * handler does: an access line leads to its trace.
 */
#define _GNU_SOURCE
#include "tern/http_mw.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/wall.h"
#include "kit/log/internal.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/runtime.h"

#define PATH_MAX_BYTES 1024
#define UA_MAX_BYTES 256
#define SHORT_MAX_BYTES 128     /* method, remote address, request id */

/* Where a finished line goes: the options' fn or FILE, the logger's
 * ring, or stderr when no logger runs. */
static void emit(const tern_http_access_log_options *o, const char *line, size_t len)
{
    if (o && o->fn)
        o->fn(line, len, o->fn_arg);
    else if (o && o->out)
        fwrite(line, 1, len, o->out);
    else if (tern_log_write_line(line, len) == -ESRCH)
        fwrite(line, 1, len, stderr);   /* no logger: straight to stderr */
}

int tern_http_mw_access_log(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_access_log_options *o = opts;
    int rc = tern_http_next(r, w);

    int64_t start = tern_http_req_start_time(r), took = tern_now() - start;
    if (took < 0)
        took = 0;
    /* the server answers an error with 500 only if nothing was sent yet */
    int status = rc < 0 && !tern_http_resp_committed(w) ? tern_http_error_status(r, rc)
                                                        : tern_http_resp_status(w);

    /* inside the tracing middleware, the request's span is current */
    tern_log_ids ids;
    bool traced = tern__log_hook_ids(&ids);
    char line[TERN_LOG_LINE_MAX];
    tern__log_line l;
    static const char msg[] = "request";
    tern__log_line_begin(&l, line, tern__wall_from_mono(start), TERN_LOG_INFO, msg,
                         sizeof msg - 1, traced ? &ids : NULL);
    tern__log_lfield f[10];     /* every field below, optional ones included */
    size_t n = 0;
    f[n++] = TERN__LOG_LINT("status", status);
    f[n++] = TERN__LOG_LINT("bytes", (int64_t)tern_http_resp_body_bytes(w));
    f[n++] = TERN__LOG_LINT("duration_us", took / TERN_US);
    f[n++] = TERN__LOG_LSTRN("method", tern_http_req_method(r), SHORT_MAX_BYTES);
    f[n++] = TERN__LOG_LSTRN("proto", tern_http_req_proto(r), SHORT_MAX_BYTES);
    const char *s = tern_http_req_remote_addr(r);
    f[n++] = TERN__LOG_LSTRN("remote", s ? s : "", SHORT_MAX_BYTES);
    /* mTLS: who the client certificate says the client is */
    if ((s = tern_http_req_tls_peer_subject(r)))
        f[n++] = TERN__LOG_LSTRN("tls_peer", s, SHORT_MAX_BYTES);
    if ((s = tern_http_request_id(r)))
        f[n++] = TERN__LOG_LSTRN("request_id", s, SHORT_MAX_BYTES);
    if (rc < 0)
        f[n++] = TERN__LOG_LSTRN("error", tern_strerror(rc), SIZE_MAX);
    f[n++] = TERN__LOG_LSTRN("path", tern_http_req_path(r), PATH_MAX_BYTES);
    if ((s = tern_http_req_header(r, "User-Agent")))
        f[n++] = TERN__LOG_LSTRN("user_agent", s, UA_MAX_BYTES);
    tern__log_line_fields(&l, f, n);
    size_t len = tern__log_line_end(&l);
    emit(o, line, len);
    return rc;
}

void tern_http_access_log_refused(const tern_http_refusal *rf, void *opts)
{
    if (!rf)
        return;
    int64_t took = tern_now() - rf->start;
    char line[TERN_LOG_LINE_MAX];
    tern__log_line l;
    static const char msg[] = "request";
    tern__log_line_begin(&l, line, tern__wall_from_mono(rf->start), TERN_LOG_INFO, msg,
                         sizeof msg - 1, NULL);
    tern__log_lfield f[7];
    size_t n = 0;
    f[n++] = TERN__LOG_LINT("status", rf->status);
    f[n++] = TERN__LOG_LINT("bytes", 0);
    f[n++] = TERN__LOG_LINT("duration_us", took > 0 ? took / TERN_US : 0);
    f[n++] = TERN__LOG_LSTRN("method", rf->method ? rf->method : "", SHORT_MAX_BYTES);
    f[n++] = TERN__LOG_LSTRN("remote", rf->remote_addr ? rf->remote_addr : "", SHORT_MAX_BYTES);
    f[n++] = TERN__LOG_LSTRN("error", "refused by the server", SIZE_MAX);
    f[n++] = TERN__LOG_LSTRN("path", rf->target ? rf->target : "", PATH_MAX_BYTES);
    tern__log_line_fields(&l, f, n);
    size_t len = tern__log_line_end(&l);
    emit(opts, line, len);
}
