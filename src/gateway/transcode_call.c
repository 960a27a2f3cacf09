/*
 * transcode_call.c - an HTTP request as a gRPC call and its outcome as
 * HTTP, for the transcoding routes (transcode.c) and the gRPC parts of
 * aggregates (aggregate.c).
 *
 * The request message is built as JSON first and decoded once by the
 * JSON mapping (tern/grpc_json.h), so that every value, wherever it came
 * from, meets the same checks and errors name the field: the body is the
 * start, query parameters then path parameters override it (as
 * grpc-gateway does: the path names the resource, so it wins).  Query and
 * path values are text; they become the JSON the field's type expects,
 * which the mapping already accepts as strings for numbers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/check.h"
#include "gateway/transcode_internal.h"
#include "tern/error.h"
#include "tern/http_parse.h"
#include "tern/trace.h"

/* protoc's JSON name of a field ("unit_price" -> "unitPrice") */
static void json_name(const char *name, char *out, size_t cap)
{
    size_t k = 0;
    bool up = false;
    for (; *name && k + 1 < cap; name++) {
        if (*name == '_') {
            up = true;
            continue;
        }
        out[k++] = up && *name >= 'a' && *name <= 'z' ? (char)(*name - 'a' + 'A') : *name;
        up = false;
    }
    out[k] = '\0';
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *d, const char *name,
                                                   size_t len)
{
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *fn = d->fields[i].name;
        char jn[128];
        json_name(fn, jn, sizeof jn);
        if ((strlen(fn) == len && !memcmp(fn, name, len)) || (strlen(jn) == len && !memcmp(jn, name, len)))
            return &d->fields[i];
    }
    return NULL;
}

int tern__gw_tc_param_names(const json_t *route, char ***out)
{
    *out = NULL;
    const char *path = json_string_value(json_object_get(json_object_get(route, "match"), "path"));
    if (!path)
        return 0;
    size_t n = 0;
    for (const char *p = path; *p; p++)
        n += (*p == ':' || *p == '*') && p > path && p[-1] == '/';
    if (!n)
        return 0;
    char **names = calloc(n + 1, sizeof *names);
    if (!names)
        return -ENOMEM;
    size_t k = 0;
    for (const char *p = path; *p; p++) {
        if (!((*p == ':' || *p == '*') && p > path && p[-1] == '/'))
            continue;
        size_t len = strcspn(p + 1, "/");
        if (!(names[k++] = strndup(p + 1, len))) {
            tern__gw_tc_names_free(names);
            return -ENOMEM;
        }
    }
    *out = names;
    return 0;
}

void tern__gw_tc_names_free(char **names)
{
    for (char **p = names; p && *p; p++)
        free(*p);
    free(names);
}

static json_t *text_value(const ProtobufCFieldDescriptor *f, const char *text)
{
    if (f->type == PROTOBUF_C_TYPE_BOOL && (!strcmp(text, "true") || !strcmp(text, "false")))
        return json_boolean(text[0] == 't');
    if (f->type == PROTOBUF_C_TYPE_ENUM) {
        char *end;
        long long v = strtoll(text, &end, 10);
        if (*text && !*end)
            return json_integer(v);
    }
    return json_string(text);       /* numbers as strings: the mapping parses and checks them */
}

/* The field a dotted name ends at, through singular message fields; NULL
 * when a part names no field. */
static const ProtobufCFieldDescriptor *field_path(const ProtobufCMessageDescriptor *d, const char *name)
{
    for (;;) {
        size_t len = strcspn(name, ".");
        const ProtobufCFieldDescriptor *f = field_named(d, name, len);
        if (!f || !name[len])
            return f;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            return NULL;
        d = f->descriptor;
        name += len + 1;
    }
}

int tern__gw_tc_put(const ProtobufCMessageDescriptor *d, json_t *obj, const char *name, const char *text)
{
    if (!field_path(d, name))
        return -ENOENT;         /* checked whole first: no empty message made on the way */
    for (;;) {
        size_t len = strcspn(name, ".");
        const ProtobufCFieldDescriptor *f = field_named(d, name, len);
        if (!f)
            return -ENOENT;
        if (name[len] == '.') {
            if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
                return -ENOENT;
            json_t *sub = json_object_get(obj, f->name);
            if (!json_is_object(sub)) {
                if (!(sub = json_object()) || json_object_set_new(obj, f->name, sub) < 0)
                    return -ENOMEM;
            }
            obj = sub;
            d = f->descriptor;
            name += len + 1;
            continue;
        }
        json_t *v = text_value(f, text);
        if (!v)
            return -EILSEQ;     /* jansson refuses text that is not UTF-8 (or memory ran out) */
        if (f->label != PROTOBUF_C_LABEL_REPEATED)
            return json_object_set_new(obj, f->name, v) < 0 ? -ENOMEM : 0;
        json_t *arr = json_object_get(obj, f->name);
        if (!json_is_array(arr)) {
            if (!(arr = json_array()) || json_object_set_new(obj, f->name, arr) < 0) {
                json_decref(v);
                return -ENOMEM;
            }
        }
        return json_array_append_new(arr, v) < 0 ? -ENOMEM : 0;
    }
}

/* src (keys: proto names) over dst (either name), at message d's level:
 * a message present in both merges, anything else is replaced. */
static int merge(const ProtobufCMessageDescriptor *d, json_t *dst, json_t *src)
{
    const char *key;
    json_t *v;
    json_object_foreach(src, key, v) {
        const ProtobufCFieldDescriptor *f = field_named(d, key, strlen(key));
        if (!f)
            continue;           /* never: src was built from d */
        char jn[128];
        json_name(f->name, jn, sizeof jn);
        json_t *old = json_object_get(dst, f->name);
        if (!old && (old = json_object_get(dst, jn))) {
            json_incref(old);
            json_object_del(dst, jn);
            json_object_set_new(dst, f->name, old);
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED && json_is_object(old) &&
            json_is_object(v)) {
            int rc = merge(f->descriptor, old, v);
            if (rc < 0)
                return rc;
            continue;
        }
        if (json_object_set(dst, f->name, v) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* The query's parameters that name fields of d, into q. */
static int query_fields(const ProtobufCMessageDescriptor *d, tern_http_req *r, json_t *q, char *err,
                        size_t errlen)
{
    const char *s = tern_http_req_raw_query(r);
    size_t pos = 0, n = strlen(s), kl, vl;
    const char *k, *v;
    while (tern_http_form_next(s, n, &pos, &k, &kl, &v, &vl) == 1) {
        char *key = malloc(kl + 1), *val = malloc(vl + 1);
        int rc = -ENOMEM;
        if (key && val) {
            if (tern_http_unescape(k, kl, key, kl + 1, true) < 0 || tern_http_unescape(v, vl, val, vl + 1, true) < 0) {
                snprintf(err, errlen, "the query does not decode (a bad %%-escape or a NUL)");
                rc = -EINVAL;
            } else {
                rc = tern__gw_tc_put(d, q, key, val);
                if (rc == -ENOENT)
                    rc = 0;     /* a parameter that names no field (a cache buster) is no error */
                if (rc == -EILSEQ) {
                    snprintf(err, errlen, "query parameter %.60s: not UTF-8", key);
                    rc = -EINVAL;
                }
            }
        }
        free(key);
        free(val);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int request_json(const tern_grpc_method_desc *m, tern_http_req *r, char *const *names, json_t *body,
                        char *err, size_t errlen)
{
    json_t *q = json_object();
    if (!q)
        return -ENOMEM;
    int rc = query_fields(m->input, r, q, err, errlen);
    if (rc == 0)
        rc = merge(m->input, body, q);
    json_object_clear(q);
    for (char *const *p = names; rc == 0 && p && *p; p++) {
        const char *v = tern_http_req_param(r, *p);
        if (!v)
            continue;
        rc = tern__gw_tc_put(m->input, q, *p, v);
        if (rc == -ENOENT)
            rc = 0;             /* checked when the route was built; an aggregate's other parts' */
        if (rc == -EILSEQ) {
            snprintf(err, errlen, "path parameter %.60s: not UTF-8", *p);
            rc = -EINVAL;
        }
    }
    if (rc == 0)
        rc = merge(m->input, body, q);
    json_decref(q);
    return rc;
}

int tern__gw_tc_request(const tern_grpc_method_desc *m, tern_http_req *r, char *const *names, bool with_body,
                        ProtobufCMessage **out, char *err, size_t errlen)
{
    json_t *body = NULL;
    if (with_body) {
        const char *data;
        size_t len;
        int rc = tern_http_req_body(r, &data, &len);
        if (rc < 0)
            return rc;
        if (strspn(data, " \t\r\n") < len) {      /* an empty body is an empty message */
            if ((rc = tern_http_req_json(r, &body)) < 0) {
                snprintf(err, errlen, "the body is not JSON");
                return rc == -EBADMSG ? -EINVAL : rc;
            }
            if (!json_is_object(body)) {
                json_decref(body);
                snprintf(err, errlen, "the body must be a JSON object");
                return -EINVAL;
            }
        }
    }
    if (!body && !(body = json_object()))
        return -ENOMEM;
    int rc = request_json(m, r, names, body, err, errlen);
    if (rc == 0)
        rc = tern_grpc_json_to_message(m->input, body, out, err, errlen);
    json_decref(body);
    return rc;
}

/* The traceparent to send: the span the gateway runs in, else the client's. */
static const char *traceparent(tern_http_req *r, char *buf, size_t len, tern_ctx *ctx)
{
    tern_trace_span *s = ctx ? tern_trace_span_from_ctx(ctx) : NULL;
    if (!s)
        s = tern_trace_span_current();
    if (s && tern_trace_format_traceparent(tern_trace_span_context_of(s), buf, len) == 0)
        return buf;
    return r ? tern_http_req_header(r, "traceparent") : NULL;
}

/* ASCII metadata must be printable: a value that is not would fail the call */
static bool printable(const char *v)
{
    for (; *v; v++)
        if (*v < 0x20 || *v > 0x7e)
            return false;
    return true;
}

static bool fwd_has(const tern__gw_fwd *fwd, const char *name)
{
    for (size_t i = 0; fwd && i < fwd->n; i++)
        if (!strcasecmp(fwd->kv[2 * i], name))
            return true;
    return false;
}

void tern__gw_tc_metadata(tern_http_req *r, const tern__gw_fwd *fwd, tern__gw_tc_md *md, tern_ctx *ctx)
{
    size_t k = 0;
    for (size_t i = 0; fwd && i < fwd->n; i++) {
        md->kv[k++] = fwd->kv[2 * i];
        md->kv[k++] = fwd->kv[2 * i + 1];
    }
    const char *parent = traceparent(r, md->tp, sizeof md->tp, ctx);
    if (parent) {
        md->kv[k++] = "traceparent";
        md->kv[k++] = parent;
        const char *state = r ? tern_http_req_header(r, "tracestate") : NULL;
        if (state && parent != md->tp) {
            md->kv[k++] = "tracestate";
            md->kv[k++] = state;
        }
    }
    static const char *const pass[] = TERN__GW_TC_PASS;
    for (size_t i = 0; r && i < sizeof pass / sizeof *pass; i++) {
        const char *v = tern_http_req_header(r, pass[i]);
        if (v && printable(v) && !fwd_has(fwd, pass[i])) {
            md->kv[k++] = pass[i];
            md->kv[k++] = v;
        }
    }
    TERN_ASSERT(k < sizeof md->kv / sizeof *md->kv);
    md->kv[k] = NULL;
}

int tern__gw_tc_call(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                     const tern__gw_tc_md *md, json_t **resp, tern_grpc_code *code, char **msg, tern_ctx *ctx)
{
    tern_grpc_call_options o = {.metadata = md->kv};
    tern_grpc_status st = {0};
    ProtobufCMessage *out = NULL;
    *resp = NULL;
    *msg = NULL;
    int rc = tern_grpc_unary(ch, m, req, &out, &o, &st, ctx);
    if (rc == 0) {
        rc = tern_grpc_json_from_message(out, resp);
        protobuf_c_message_free_unpacked(out, NULL);
        *code = TERN_GRPC_OK;
        if (rc < 0) {
            *code = TERN_GRPC_INTERNAL;
            *msg = strdup("the response does not map to JSON");
        }
        tern_grpc_status_clear(&st);
        return rc;
    }
    /* a status from the server, or a local failure (no connection,
     * deadline) mapped the same way */
    *code = st.code != TERN_GRPC_OK ? st.code : tern_grpc_errno_to_code(rc);
    *msg = st.message ? strdup(st.message) : strdup(tern_strerror(rc));
    tern_grpc_status_clear(&st);
    return rc;
}

int tern__gw_tc_http_status(tern_grpc_code code)
{
    /* google/rpc/code.proto's HTTP mapping */
    static const int status[] = {
        [TERN_GRPC_OK] = 200, [TERN_GRPC_CANCELLED] = 499, [TERN_GRPC_UNKNOWN] = 500,
        [TERN_GRPC_INVALID_ARGUMENT] = 400, [TERN_GRPC_DEADLINE_EXCEEDED] = 504, [TERN_GRPC_NOT_FOUND] = 404,
        [TERN_GRPC_ALREADY_EXISTS] = 409, [TERN_GRPC_PERMISSION_DENIED] = 403,
        [TERN_GRPC_RESOURCE_EXHAUSTED] = 429, [TERN_GRPC_FAILED_PRECONDITION] = 400,
        [TERN_GRPC_ABORTED] = 409, [TERN_GRPC_OUT_OF_RANGE] = 400, [TERN_GRPC_UNIMPLEMENTED] = 501,
        [TERN_GRPC_INTERNAL] = 500, [TERN_GRPC_UNAVAILABLE] = 503, [TERN_GRPC_DATA_LOSS] = 500,
        [TERN_GRPC_UNAUTHENTICATED] = 401,
    };
    return (unsigned)code < sizeof status / sizeof *status ? status[code] : 500;
}

int tern__gw_tc_error(tern_http_resp *w, int status, tern_grpc_code code, const char *msg)
{
    json_t *o = json_pack("{s:s, s:i, s:s}", "error", msg ? msg : tern_grpc_code_name(code), "status", status,
                          "code", tern_grpc_code_name(code));
    if (!o) {
        /* a message that is not UTF-8 (from an upstream): say only the code */
        o = json_pack("{s:s, s:i, s:s}", "error", tern_grpc_code_name(code), "status", status, "code",
                      tern_grpc_code_name(code));
        if (!o)
            return -ENOMEM;
    }
    int rc = tern_http_resp_json(w, status, o);
    json_decref(o);
    return rc;
}
