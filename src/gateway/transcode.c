/*
 * transcode.c - a REST route served by a unary gRPC method (policy.h):
 * route {match, grpc: {upstream, method}}.  The request message comes from
 * the JSON body (POST, PUT, PATCH), the query and the path parameters; the
 * response message goes back as JSON, and a gRPC error as the HTTP status
 * google.rpc maps its code to, with {"error", "status", "code"}.  The
 * call's metadata: the core's forwarded claims (fwd), the trace, and of
 * the client's headers only Idempotency-Key and X-Request-Id.
 *
 * Everything that can be checked before traffic is checked when the
 * configuration is built: the method is registered (tern_grpc_json_register)
 * and unary, the upstream speaks gRPC, every path parameter names a field
 * of the request.  So a route that loads only fails per request for what
 * the request itself got wrong or what the upstream answered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "gateway/transcode_internal.h"

struct tern__gw_transcode {
    tern_grpc_channel *ch;                  /* the generation's */
    const tern_grpc_method_desc *m;         /* the registry's (static data) */
    char **params;                          /* the route's path parameter names */
};

/* "route \"name\": grpc.method: ..." (the route by its name, else its path) */
static int bad(const json_t *route, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(const json_t *route, char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return -EINVAL;
    const char *name = json_string_value(json_object_get(route, "name"));
    const json_t *match = json_object_get(route, "match");
    if (!name)
        name = json_string_value(json_object_get(match, "path"));
    if (!name)
        name = json_string_value(json_object_get(match, "prefix"));
    int n = name ? snprintf(err, errlen, "route \"%s\": ", name) : 0;
    if (n < 0 || (size_t)n >= errlen)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int tern__gw_transcode_new(const json_t *route, const tern__gw_env *env, tern__gw_transcode **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    const json_t *g = json_object_get(route, "grpc");
    if (!json_is_object(g))
        return bad(route, err, errlen, "grpc: must be a mapping {upstream, method}");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)g, key, v)
        if (strcmp(key, "upstream") && strcmp(key, "method"))
            return bad(route, err, errlen, "grpc.%s: unknown key (grpc takes upstream and method)", key);
    const char *up = json_string_value(json_object_get(g, "upstream"));
    const char *method = json_string_value(json_object_get(g, "method"));
    if (!up)
        return bad(route, err, errlen, "grpc.upstream: must be the name of a gRPC upstream");
    if (!method)
        return bad(route, err, errlen, "grpc.method: must be \"package.Service/Method\"");
    const tern_grpc_method_desc *m;
    if (tern_grpc_json_find(method, &m) < 0)
        return bad(route, err, errlen,
                   "grpc.method: \"%s\" is not known to this program (its service is not registered with "
                   "tern_grpc_json_register)", method);
    if (m->type != TERN_GRPC_UNARY)
        return bad(route, err, errlen, "grpc.method: \"%s\" streams; only unary methods are transcoded", method);
    tern_grpc_channel *ch = env->grpc_channel ? env->grpc_channel(env->core, up) : NULL;
    if (!ch)
        return bad(route, err, errlen, "grpc.upstream: no gRPC upstream called \"%s\" (protocol: grpc)", up);
    tern__gw_transcode *t = calloc(1, sizeof *t);
    if (!t || tern__gw_tc_param_names(route, &t->params) < 0) {
        free(t);
        return -ENOMEM;
    }
    t->ch = ch;
    t->m = m;
    for (char **p = t->params; p && *p; p++) {
        json_t *probe = json_object();
        int rc = probe ? tern__gw_tc_put(m->input, probe, *p, "0") : -ENOMEM;
        json_decref(probe);
        if (rc == -ENOENT) {
            rc = bad(route, err, errlen, "match.path: parameter \"%s\" is not a field of %s", *p,
                     m->input->name);
        }
        if (rc < 0) {
            tern__gw_transcode_free(t);
            return rc;
        }
    }
    *out = t;
    return 0;
}

void tern__gw_transcode_free(tern__gw_transcode *t)
{
    if (!t)
        return;
    tern__gw_tc_names_free(t->params);
    free(t);
}

static bool has_body(const char *method)
{
    return !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
}

int tern__gw_transcode_serve(tern__gw_transcode *t, tern_http_req *r, tern_http_resp *w,
                             const tern__gw_fwd *fwd, tern_ctx *ctx)
{
    TERN_ASSERT(t && t->m && t->ch);
    char err[256] = "";
    ProtobufCMessage *req = NULL;
    int rc = tern__gw_tc_request(t->m, r, t->params, has_body(tern_http_req_method(r)), &req, err, sizeof err);
    if (rc == -EMSGSIZE)
        return tern__gw_tc_error(w, 413, TERN_GRPC_INVALID_ARGUMENT, "the body is too large");
    if (rc == -ENOMEM)
        return tern__gw_tc_error(w, 500, TERN_GRPC_INTERNAL, "out of memory");
    if (rc < 0)
        return tern__gw_tc_error(w, 400, TERN_GRPC_INVALID_ARGUMENT, err[0] ? err : "the body could not be read");
    json_t *resp;
    tern_grpc_code code;
    char *msg;
    tern__gw_tc_md md;
    tern__gw_tc_metadata(r, fwd, &md, ctx);
    rc = tern__gw_tc_call(t->ch, t->m, req, &md, &resp, &code, &msg, ctx);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc == 0) {
        rc = tern_http_resp_json(w, 200, resp);
        json_decref(resp);
        return rc;
    }
    rc = tern__gw_tc_error(w, tern__gw_tc_http_status(code), code, msg);
    free(msg);
    return rc;
}
