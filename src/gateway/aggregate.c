/*
 * aggregate.c - one REST answer made of several upstream calls (policy.h):
 * route {match, aggregate: {timeout, parts: {name: {grpc: {upstream,
 * method}} | {upstream, path}}}}.  Every part runs in its own coroutine of
 * a tern_group, all bounded by the one timeout; the answer is
 * {"<part>": <its JSON>, ...} with the parts that failed or ran out of
 * time named in "_partial" and explained in "_errors", so a page can
 * render what came back; 502 only when nothing did.
 *
 * The request is read only in the serving coroutine: the parts' request
 * messages, paths and metadata are all made before the group starts, and
 * the children touch nothing but their own job.  A child always returns 0
 * (its outcome is in its job): a failing part must not cancel the group's
 * context, which errgroup semantics would do, and with it its siblings.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/json_depth.h"
#include "gateway/transcode_internal.h"
#include "tern/error.h"
#include "tern/group.h"

#define AGG_DEFAULT_TIMEOUT 1000000000LL        /* ns, when the route gives none */
#define AGG_MAX_BODY (4u << 20)                 /* an HTTP part's response */
#define AGG_MAX_PARTS 32

typedef struct agg_part {
    char *name;
    /* a gRPC part */
    tern_grpc_channel *ch;
    const tern_grpc_method_desc *m;
    /* an HTTP part: GET upstream path, ":name" segments from the request */
    char *upstream;
    char *path;
} agg_part;

struct tern__gw_aggregate {
    tern__gw_env env;                           /* copied: its functions and core are the generation's */
    int64_t timeout;
    char **params;                              /* the route's path parameter names */
    agg_part *parts;
    size_t n;
};

/* One part's call, in a child coroutine. */
typedef struct agg_job {
    const tern__gw_aggregate *a;
    const agg_part *p;
    tern_ctx *ctx;
    /* in */
    ProtobufCMessage *req;                      /* gRPC */
    const tern__gw_tc_md *md;
    char *path_query;                           /* HTTP */
    const tern__gw_fwd *hdrs;
    /* out */
    json_t *result;                             /* NULL: failed */
    char *error;                                /* malloc'd reason when failed */
} agg_job;

static int bad(const json_t *route, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int bad(const json_t *route, char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return -EINVAL;
    const char *name = json_string_value(json_object_get(route, "name"));
    if (!name)
        name = json_string_value(json_object_get(json_object_get(route, "match"), "path"));
    int n = name ? snprintf(err, errlen, "route \"%s\": ", name) : 0;
    if (n < 0 || (size_t)n >= errlen)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* "250ms", "2s", "1.5s", "1m", "100us", "10ns", or an integer of ns:
 * gateway.h's durations.  0 or -EINVAL. */
static int duration(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out > 0 ? 0 : -EINVAL;
    }
    const char *s = json_string_value(v);
    if (!s || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    char *end;
    double x = strtod(s, &end);
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (!strcmp(end, units[i].unit)) {
            double ns = x * units[i].ns;
            if (!(ns >= 1 && ns < 9e18))
                return -EINVAL;
            *out = (int64_t)ns;
            return 0;
        }
    }
    return -EINVAL;
}

static bool is_param(const char *const *names, const char *name, size_t len)
{
    for (; names && *names; names++)
        if (strlen(*names) == len && !memcmp(*names, name, len))
            return true;
    return false;
}

static int part_new(const json_t *route, const tern__gw_env *env, char **params, const char *name,
                    const json_t *cfg, agg_part *p, char *err, size_t errlen)
{
    if (!json_is_object(cfg))
        return bad(route, err, errlen, "aggregate.parts.%s: must be {grpc: {upstream, method}} or {upstream, path}",
                   name);
    if (!(p->name = strdup(name)))
        return -ENOMEM;
    const json_t *g = json_object_get(cfg, "grpc");
    if (g) {
        const char *up = json_string_value(json_object_get(g, "upstream"));
        const char *method = json_string_value(json_object_get(g, "method"));
        if (json_object_size(cfg) != 1 || !json_is_object(g) || json_object_size(g) != 2 || !up || !method)
            return bad(route, err, errlen, "aggregate.parts.%s.grpc: must be exactly {upstream, method}", name);
        if (tern_grpc_json_find(method, &p->m) < 0)
            return bad(route, err, errlen,
                       "aggregate.parts.%s.grpc.method: \"%s\" is not known to this program (its service is "
                       "not registered with tern_grpc_json_register)", name, method);
        if (p->m->type != TERN_GRPC_UNARY)
            return bad(route, err, errlen, "aggregate.parts.%s.grpc.method: \"%s\" streams; only unary methods",
                       name, method);
        if (!(p->ch = env->grpc_channel ? env->grpc_channel(env->core, up) : NULL))
            return bad(route, err, errlen, "aggregate.parts.%s.grpc.upstream: no gRPC upstream called \"%s\"",
                       name, up);
        return 0;
    }
    const char *up = json_string_value(json_object_get(cfg, "upstream"));
    const char *path = json_string_value(json_object_get(cfg, "path"));
    if (json_object_size(cfg) != 2 || !up || !path || path[0] != '/')
        return bad(route, err, errlen, "aggregate.parts.%s: must be {grpc: {upstream, method}} or {upstream, "
                   "path: \"/...\"}", name);
    for (const char *s = path; *s; s++) {
        if (*s != ':' || s[-1] != '/')
            continue;
        size_t len = strcspn(s + 1, "/?");
        if (!is_param((const char *const *)params, s + 1, len))
            return bad(route, err, errlen, "aggregate.parts.%s.path: \":%.*s\" is not a parameter of match.path",
                       name, (int)len, s + 1);
    }
    if (!(p->upstream = strdup(up)) || !(p->path = strdup(path)))
        return -ENOMEM;
    return 0;
}

int tern__gw_aggregate_new(const json_t *route, const tern__gw_env *env, tern__gw_aggregate **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    const json_t *cfg = json_object_get(route, "aggregate");
    if (!json_is_object(cfg))
        return bad(route, err, errlen, "aggregate: must be a mapping {timeout, parts}");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cfg, key, v)
        if (strcmp(key, "timeout") && strcmp(key, "parts"))
            return bad(route, err, errlen, "aggregate.%s: unknown key (aggregate takes timeout and parts)", key);
    const json_t *parts = json_object_get(cfg, "parts");
    if (!json_is_object(parts) || json_object_size(parts) == 0 || json_object_size(parts) > AGG_MAX_PARTS)
        return bad(route, err, errlen, "aggregate.parts: must map 1 to %d part names to their calls", AGG_MAX_PARTS);
    int64_t timeout = AGG_DEFAULT_TIMEOUT;
    const json_t *t = json_object_get(cfg, "timeout");
    if (t && duration(t, &timeout) < 0)
        return bad(route, err, errlen, "aggregate.timeout: must be a positive duration (\"500ms\", \"2s\")");
    tern__gw_aggregate *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->env = *env;
    a->timeout = timeout;
    int rc = tern__gw_tc_param_names(route, &a->params);
    if (rc == 0 && !(a->parts = calloc(json_object_size(parts), sizeof *a->parts)))
        rc = -ENOMEM;
    json_object_foreach((json_t *)parts, key, v) {
        if (rc < 0)
            break;
        if (key[0] == '_')
            rc = bad(route, err, errlen, "aggregate.parts.%s: a part's name may not start with '_' (the "
                     "answer's _partial and _errors)", key);
        else
            rc = part_new(route, env, a->params, key, v, &a->parts[a->n++], err, errlen);
    }
    if (rc < 0) {
        tern__gw_aggregate_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void tern__gw_aggregate_free(tern__gw_aggregate *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->parts[i].name);
        free(a->parts[i].upstream);
        free(a->parts[i].path);
    }
    free(a->parts);
    tern__gw_tc_names_free(a->params);
    free(a);
}

/* ---- serving ---------------------------------------------------------- */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    if (vasprintf(&s, f, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* p's path with its ":name" segments replaced by the request's values,
 * percent-encoded as path segments. */
static char *expand_path(const char *tmpl, tern_http_req *r)
{
    size_t cap = strlen(tmpl) + 1;
    for (const char *s = tmpl; *s; s++)
        if (*s == ':' && s > tmpl && s[-1] == '/') {
            char name[64];
            size_t len = strcspn(s + 1, "/?");
            snprintf(name, sizeof name, "%.*s", (int)len, s + 1);
            const char *v = tern_http_req_param(r, name);
            cap += v ? 3 * strlen(v) : 0;
        }
    char *out = malloc(cap), *o = out;
    if (!out)
        return NULL;
    for (const char *s = tmpl; *s;) {
        if (!(*s == ':' && s > tmpl && s[-1] == '/')) {
            *o++ = *s++;
            continue;
        }
        char name[64];
        size_t len = strcspn(s + 1, "/?");
        snprintf(name, sizeof name, "%.*s", (int)len, s + 1);
        const char *v = tern_http_req_param(r, name);
        for (const unsigned char *c = (const unsigned char *)(v ? v : ""); *c; c++) {
            if (isalnum(*c) || strchr("-._~", *c))
                *o++ = (char)*c;
            else
                o += sprintf(o, "%%%02X", *c);
        }
        s += 1 + len;
    }
    *o = '\0';
    return out;
}

static void grpc_part(agg_job *j)
{
    json_t *resp;
    tern_grpc_code code;
    char *msg;
    int rc = tern__gw_tc_call(j->p->ch, j->p->m, j->req, j->md, &resp, &code, &msg, j->ctx);
    if (rc == 0) {
        j->result = resp;
        return;
    }
    if (code == TERN_GRPC_DEADLINE_EXCEEDED)
        j->error = strdup("timeout");
    else
        j->error = fmt("%s: %s", tern_grpc_code_name(code), msg ? msg : "");
    free(msg);
}

static void http_part(agg_job *j)
{
    const tern__gw_env *env = &j->a->env;
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    int rc = env->http_fetch ? env->http_fetch(env->core, j->p->upstream, "GET", j->path_query, j->hdrs, NULL, 0,
                                               AGG_MAX_BODY, &status, &body, &len, j->ctx)
                             : -ENOENT;
    if (rc == -ETIMEDOUT) {
        j->error = strdup("timeout");
    } else if (rc < 0) {
        j->error = fmt("%s", tern_strerror(rc));
    } else if (status < 200 || status > 299) {
        j->error = fmt("status %d", status);
    } else if (!tern__json_depth_ok(body, len, TERN_HTTP_JSON_MAX_DEPTH) ||
               !(j->result = json_loadb(body, len, JSON_DECODE_ANY, NULL))) {
        j->error = strdup("the answer is not JSON");
    }
    free(body);
}

static int run_part(void *arg)
{
    agg_job *j = arg;
    if (j->p->m)
        grpc_part(j);
    else
        http_part(j);
    if (!j->result && !j->error)
        j->error = strdup("out of memory");
    return 0;                   /* the outcome is in the job, and siblings run on */
}

/* The parts' inputs, made from the request in its own coroutine. */
static int prepare(const tern__gw_aggregate *a, tern_http_req *r, agg_job *jobs, const tern__gw_tc_md *md,
                   const tern__gw_fwd *hdrs, tern_ctx *ctx)
{
    for (size_t i = 0; i < a->n; i++) {
        agg_job *j = &jobs[i];
        *j = (agg_job){.a = a, .p = &a->parts[i], .ctx = ctx, .md = md, .hdrs = hdrs};
        if (j->p->m) {
            char err[200] = "";
            int rc = tern__gw_tc_request(j->p->m, r, a->params, false, &j->req, err, sizeof err);
            if (rc == -ENOMEM)
                return rc;
            if (rc < 0)
                j->error = strdup(err[0] ? err : "the request does not map to the part's message");
        } else {
            const char *q = tern_http_req_raw_query(r);
            char *path = expand_path(j->p->path, r);
            /* the client's query goes along unless the part has its own */
            j->path_query = path && *q && !strchr(path, '?') ? fmt("%s?%s", path, q) : path;
            if (j->path_query != path)
                free(path);
            if (!j->path_query)
                return -ENOMEM;
        }
    }
    return 0;
}

static void jobs_free(agg_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        protobuf_c_message_free_unpacked(jobs[i].req, NULL);
        free(jobs[i].path_query);
        json_decref(jobs[i].result);
        free(jobs[i].error);
    }
}

static int answer(const tern__gw_aggregate *a, agg_job *jobs, tern_http_resp *w)
{
    json_t *o = json_object(), *partial = json_array(), *errors = json_object();
    size_t ok = 0;
    int rc = o && partial && errors ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < a->n; i++) {
        const char *name = a->parts[i].name;
        if (jobs[i].result) {
            ok++;
            rc = json_object_set(o, name, jobs[i].result);
        } else {
            json_t *why = json_string(jobs[i].error);
            if (!why)           /* an upstream's message that is not UTF-8 */
                why = json_string("failed");
            rc = json_array_append_new(partial, json_string(name)) | json_object_set_new(errors, name, why);
        }
    }
    if (rc == 0 && ok < a->n) {
        if (ok == 0) {
            json_object_clear(o);
            rc = json_object_set_new(o, "error", json_string("every part of the aggregate failed")) |
                 json_object_set_new(o, "status", json_integer(502));
        } else {
            rc = json_object_set(o, "_partial", partial);
        }
        rc |= json_object_set(o, "_errors", errors);
    }
    if (rc == 0)
        rc = tern_http_resp_json(w, ok ? 200 : 502, o);
    else
        rc = -ENOMEM;
    json_decref(o);
    json_decref(partial);
    json_decref(errors);
    return rc;
}

int tern__gw_aggregate_serve(tern__gw_aggregate *a, tern_http_req *r, tern_http_resp *w,
                             const tern__gw_fwd *fwd, tern_ctx *ctx)
{
    TERN_ASSERT(a && a->n > 0 && a->n <= AGG_MAX_PARTS);
    tern_ctx *pctx = NULL;
    tern_group *g = NULL;
    agg_job jobs[AGG_MAX_PARTS];
    tern__gw_tc_md md;
    tern__gw_tc_metadata(r, fwd, &md, ctx);
    /* HTTP parts get fwd's headers and the trace too */
    tern__gw_fwd hdrs = fwd ? *fwd : (tern__gw_fwd){0};
    for (size_t i = 2 * hdrs.n; md.kv[i]; i += 2)
        tern__gw_fwd_add(&hdrs, md.kv[i], md.kv[i + 1]);
    memset(jobs, 0, sizeof jobs);
    int rc = tern_ctx_with_timeout(ctx, a->timeout, &pctx);
    if (rc == 0)
        rc = prepare(a, r, jobs, &md, &hdrs, pctx);
    if (rc == 0)
        rc = tern_group_new(pctx, NULL, &g);
    for (size_t i = 0; rc == 0 && i < a->n; i++)
        if (!jobs[i].error)     /* else its request did not map: failed before it ran */
            rc = tern_group_go(g, run_part, &jobs[i], NULL);
    if (g) {
        tern_group_wait(g, NULL);   /* the children return 0; each is bounded by pctx */
        tern_group_free(g);
    }
    tern_ctx_free(pctx);
    if (rc == 0)
        rc = answer(a, jobs, w);
    else
        rc = tern__gw_tc_error(w, 500, TERN_GRPC_INTERNAL, tern_strerror(rc));
    jobs_free(jobs, a->n);
    return rc;
}
