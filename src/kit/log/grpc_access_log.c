/*
 * grpc_access_log.c - one JSON line per gRPC call, written when its
 * handler has returned (a server interceptor).
 *
 * The HTTP access log's twin (access_log.c): the same formatter, the same
 * cuts of client-chosen strings, the same sinks; the fields are a call's:
 * its status by Go's name, its type, the method's path, the peer.  Among
 * the kit's interceptors it runs inside the tracing one, so the line
 * carries the call's trace and span ids.  The HTTP/2 status of a gRPC
 * call is 200 whatever happened, so the HTTP line would say nothing: a
 * gRPC port logs these instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/wall.h"
#include "kit/log/internal.h"
#include "kit/metrics/grpc_names.h"
#include "tern/grpc.h"
#include "tern/http.h"
#include "tern/log.h"
#include "tern/runtime.h"

#define METHOD_MAX_BYTES 512    /* the path: chosen by the client for an unknown one */
#define UA_MAX_BYTES 256
#define SHORT_MAX_BYTES 128     /* peer, TLS subject, request id */
#define MESSAGE_MAX_BYTES 512

static void emit(const tern_http_access_log_options *o, const char *line, size_t len)
{
    if (o && o->fn)
        o->fn(line, len, o->fn_arg);
    else if (o && o->out)
        fwrite(line, 1, len, o->out);
    else if (tern_log_write_line(line, len) == -ESRCH)
        fwrite(line, 1, len, stderr);
}

int tern_grpc_access_log_interceptor(tern_grpc_call *call, void *opts)
{
    const tern_http_access_log_options *o = opts;
    tern_http_req *r = tern_grpc_call_http_req(call);
    int64_t start = r ? tern_http_req_start_time(r) : tern_now();
    int rc = tern_grpc_call_next(call);
    int64_t took = tern_now() - start;
    if (took < 0)
        took = 0;

    const tern_grpc_method_desc *md = tern_grpc_call_method(call);
    tern__grpc_labels l = {.type = "unary"};
    if (md && md->path)
        tern__grpc_labels_of(md, &l);
    tern_grpc_code code = tern_grpc_call_code(call);

    tern_log_ids ids;
    bool traced = tern__log_hook_ids(&ids);
    char line[TERN_LOG_LINE_MAX];
    tern__log_line ll;
    static const char msg[] = "rpc";
    tern__log_line_begin(&ll, line, tern__wall_from_mono(start), TERN_LOG_INFO, msg, sizeof msg - 1,
                         traced ? &ids : NULL);
    tern__log_lfield f[10];
    size_t n = 0;
    f[n++] = TERN__LOG_LSTRN("grpc_code", tern__grpc_code_name(code), SIZE_MAX);
    f[n++] = TERN__LOG_LINT("duration_us", took / TERN_US);
    f[n++] = TERN__LOG_LSTRN("type", l.type, SIZE_MAX);
    f[n++] = TERN__LOG_LSTRN("method", md && md->path ? md->path : "", METHOD_MAX_BYTES);
    const char *s = tern_grpc_call_peer(call);
    f[n++] = TERN__LOG_LSTRN("peer", s ? s : "", SHORT_MAX_BYTES);
    if (r && (s = tern_http_req_tls_peer_subject(r)))
        f[n++] = TERN__LOG_LSTRN("tls_peer", s, SHORT_MAX_BYTES);
    if ((s = tern_grpc_call_metadata(call, "x-request-id")))
        f[n++] = TERN__LOG_LSTRN("request_id", s, SHORT_MAX_BYTES);
    if (code != TERN_GRPC_OK && (s = tern_grpc_call_message(call)))
        f[n++] = TERN__LOG_LSTRN("error", s, MESSAGE_MAX_BYTES);
    if (r && (s = tern_http_req_header(r, "user-agent")))     /* not metadata: the transport's */
        f[n++] = TERN__LOG_LSTRN("user_agent", s, UA_MAX_BYTES);
    tern__log_line_fields(&ll, f, n);
    size_t len = tern__log_line_end(&ll);
    emit(o, line, len);
    return rc;
}
