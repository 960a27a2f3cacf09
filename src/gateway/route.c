/*
 * route.c - the routes of a generation: parsing each (match, action,
 * rewrite, timeout, retries, auth, rate limit), registering them on the
 * generation's tern_http_router, and serving a request that the router
 * found.
 *
 * The router matches paths (static beats :param beats *catch-all, with
 * backtracking), so path parameters come out of it readable through
 * tern_http_req_param, as policy.h promises the transcoder.  What it does
 * not match (method, host, headers) is checked here: every route is
 * registered for any method on its pattern, several routes on one
 * pattern share a slot, and the first route of the slot whose method,
 * host and headers match serves, in configuration order.  A prefix
 * "/static/" is that path followed by the catch-all "*rest"; one without the
 * trailing slash also matches itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/internal.h"

static const char *const route_keys[] = {"name", "match", "upstream", "split", "split_override", "grpc",
                                         "aggregate", "rewrite", "timeout", "retries", "auth",
                                         "ratelimit", NULL};
static const char *const match_keys[] = {"path", "prefix", "methods", "host", "headers", NULL};

static int strdup_to(char **dst, const char *s)
{
    if (!s)
        return 0;
    return (*dst = strdup(s)) ? 0 : -ENOMEM;
}

static int parse_match(gw_route *rt, const json_t *m, const char *key, gw_err *e)
{
    char k[96];
    snprintf(k, sizeof k, "%s.match", key);
    if (!json_is_object(m))
        return tern__gw_fail(e, k, "must be a mapping {path or prefix, methods, host, headers}");
    int rc = tern__gw_only_keys(m, k, match_keys, e);
    if (rc < 0)
        return rc;
    const char *path, *prefix, *host;
    if ((rc = tern__gw_get_string(m, "path", k, &path, e)) < 0 ||
        (rc = tern__gw_get_string(m, "prefix", k, &prefix, e)) < 0 ||
        (rc = tern__gw_get_string(m, "host", k, &host, e)) < 0)
        return rc;
    if (!path == !prefix)
        return tern__gw_fail(e, k, "needs exactly one of path and prefix");
    const char *p = path ? path : prefix;
    if (p[0] != '/')
        return tern__gw_fail(e, k, "%s: \"%s\" must start with '/'", path ? "path" : "prefix", p);
    if (prefix && strpbrk(prefix, ":*"))
        return tern__gw_fail(e, k, "prefix: \"%s\" may hold no :param or *", prefix);
    if ((rc = strdup_to(&rt->prefix, prefix)) < 0 || (rc = strdup_to(&rt->host, host)) < 0)
        return rc;
    json_t *ms = json_object_get(m, "methods");
    if (ms) {
        if (!json_is_array(ms) || json_array_size(ms) == 0)
            return tern__gw_fail(e, k, "methods: must be a non-empty list ([GET, POST])");
        rt->methods = calloc(json_array_size(ms), sizeof *rt->methods);
        if (!rt->methods)
            return -ENOMEM;
        for (size_t i = 0; i < json_array_size(ms); i++) {
            const char *s = json_string_value(json_array_get(ms, i));
            if (!s || !*s || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(s))
                return tern__gw_fail(e, k, "methods[%zu]: must be a method in capitals (GET)", i);
            if ((rc = strdup_to(&rt->methods[rt->nmethods++], s)) < 0)
                return rc;
        }
    }
    json_t *hs = json_object_get(m, "headers");
    if (hs) {
        if (!json_is_object(hs))
            return tern__gw_fail(e, k, "headers: must be a mapping {Name: value}");
        size_t n = json_object_size(hs);
        rt->hdr_names = calloc(n + 1, sizeof *rt->hdr_names);
        rt->hdr_values = calloc(n + 1, sizeof *rt->hdr_values);
        if (!rt->hdr_names || !rt->hdr_values)
            return -ENOMEM;
        const char *name;
        json_t *v;
        json_object_foreach(hs, name, v) {
            if (!json_is_string(v))
                return tern__gw_fail(e, k, "headers.%s: must be a string", name);
            if ((rc = strdup_to(&rt->hdr_names[rt->nhdrs], name)) < 0 ||
                (rc = strdup_to(&rt->hdr_values[rt->nhdrs], json_string_value(v))) < 0)
                return rc;
            rt->nhdrs++;
        }
    }
    return 0;
}

static int parse_retries(gw_route *rt, const json_t *rv, const char *key, gw_err *e)
{
    char k[96];
    snprintf(k, sizeof k, "%s.retries", key);
    static const char *const keys[] = {"attempts", "on", NULL};
    if (!json_is_object(rv))
        return tern__gw_fail(e, k, "must be a mapping {attempts, on}");
    int rc = tern__gw_only_keys(rv, k, keys, e);
    if (rc < 0)
        return rc;
    json_t *a = json_object_get(rv, "attempts");
    if (!json_is_integer(a) || json_integer_value(a) < 1 || json_integer_value(a) > GW_MAX_ATTEMPTS)
        return tern__gw_fail(e, k, "attempts: must be an integer from 1 to %d (tries in all)", GW_MAX_ATTEMPTS);
    rt->attempts = (int)json_integer_value(a);
    json_t *on = json_object_get(rv, "on");
    if (!on) {
        rt->retry_connect = rt->retry_502 = rt->retry_503 = rt->retry_504 = true;
        return 0;
    }
    if (!json_is_array(on))
        return tern__gw_fail(e, k, "on: must be a list of connect, reset, 502, 503, 504");
    for (size_t i = 0; i < json_array_size(on); i++) {
        json_t *v = json_array_get(on, i);
        const char *s = json_string_value(v);
        long code = json_is_integer(v) ? (long)json_integer_value(v) : s ? strtol(s, NULL, 10) : 0;
        if (s && strcmp(s, "connect") == 0)
            rt->retry_connect = true;
        else if (s && strcmp(s, "reset") == 0)
            rt->retry_reset = true;
        else if (code == 502)
            rt->retry_502 = true;
        else if (code == 503)
            rt->retry_503 = true;
        else if (code == 504)
            rt->retry_504 = true;
        else
            return tern__gw_fail(e, k, "on[%zu]: not one of connect, reset, 502, 503, 504", i);
    }
    return 0;
}

static int parse_rewrite(gw_route *rt, const json_t *rw, const char *key, gw_err *e)
{
    char k[96];
    snprintf(k, sizeof k, "%s.rewrite", key);
    static const char *const keys[] = {"strip_prefix", "path", NULL};
    if (!json_is_object(rw))
        return tern__gw_fail(e, k, "must be a mapping {strip_prefix} or {path}");
    int rc = tern__gw_only_keys(rw, k, keys, e);
    if (rc < 0)
        return rc;
    const char *sp, *path;
    if ((rc = tern__gw_get_string(rw, "strip_prefix", k, &sp, e)) < 0 ||
        (rc = tern__gw_get_string(rw, "path", k, &path, e)) < 0)
        return rc;
    if (sp && path)
        return tern__gw_fail(e, k, "strip_prefix and path exclude each other");
    if ((sp && sp[0] != '/') || (path && path[0] != '/'))
        return tern__gw_fail(e, k, "must start with '/'");
    if ((rc = strdup_to(&rt->strip_prefix, sp)) < 0 || (rc = strdup_to(&rt->rewrite_path, path)) < 0)
        return rc;
    return 0;
}

static int parse_split(gw_route *rt, const json_t *route, const char *key, gw_err *e)
{
    char k[96];
    snprintf(k, sizeof k, "%s.split", key);
    json_t *sp = json_object_get(route, "split");
    if (!json_is_array(sp) || json_array_size(sp) < 1)
        return tern__gw_fail(e, k, "must be a list of {upstream, weight}");
    rt->nlegs = json_array_size(sp);
    rt->legs = calloc(rt->nlegs, sizeof *rt->legs);
    if (!rt->legs)
        return -ENOMEM;
    int total = 0;
    for (size_t i = 0; i < rt->nlegs; i++) {
        json_t *leg = json_array_get(sp, i);
        const char *name = json_string_value(json_object_get(leg, "upstream"));
        json_t *w = json_object_get(leg, "weight");
        if (!name)
            return tern__gw_fail(e, k, "[%zu].upstream: required, a name under upstreams", i);
        if (!(rt->legs[i].up = tern__gw_upstream_find(rt->gen, name)))
            return tern__gw_fail(e, k, "[%zu].upstream: no upstream called \"%s\"", i, name);
        if (rt->legs[i].up->proto == GW_GRPC)
            return tern__gw_fail(e, k, "[%zu].upstream: \"%s\" is gRPC; split proxies HTTP", i, name);
        if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 100)
            return tern__gw_fail(e, k, "[%zu].weight: must be an integer percentage from 0 to 100", i);
        rt->legs[i].weight = (int)json_integer_value(w);
        total += rt->legs[i].weight;
    }
    if (total != 100)
        return tern__gw_fail(e, k, "weights add up to %d, not 100", total);
    json_t *ov = json_object_get(route, "split_override");
    if (ov) {
        snprintf(k, sizeof k, "%s.split_override", key);
        static const char *const keys[] = {"header", "cookie", NULL};
        if (!json_is_object(ov))
            return tern__gw_fail(e, k, "must be a mapping {header, cookie}");
        int rc = tern__gw_only_keys(ov, k, keys, e);
        const char *h, *c;
        if (rc < 0 || (rc = tern__gw_get_string(ov, "header", k, &h, e)) < 0 ||
            (rc = tern__gw_get_string(ov, "cookie", k, &c, e)) < 0)
            return rc;
        if ((rc = strdup_to(&rt->split_header, h)) < 0 || (rc = strdup_to(&rt->split_cookie, c)) < 0)
            return rc;
    }
    return 0;
}

static int parse_action(gw_route *rt, const json_t *route, const char *key, gw_err *e)
{
    const char *actions[] = {"upstream", "split", "grpc", "aggregate"};
    int found = -1, count = 0;
    for (int i = 0; i < 4; i++)
        if (json_object_get(route, actions[i])) {
            found = i;
            count++;
        }
    if (count != 1)
        return tern__gw_fail(e, key, "needs exactly one of upstream, split, grpc and aggregate");
    if (json_object_get(route, "split_override") && found != 1)
        return tern__gw_fail(e, key, "split_override: only with split");
    int rc;
    switch (found) {
    case 0: {
        const char *name = json_string_value(json_object_get(route, "upstream"));
        if (!name)
            return tern__gw_fail(e, key, "upstream: must be the name of an upstream");
        if (!(rt->up = tern__gw_upstream_find(rt->gen, name)))
            return tern__gw_fail(e, key, "upstream: no upstream called \"%s\"", name);
        if (rt->up->proto == GW_GRPC)
            return tern__gw_fail(e, key, "upstream: \"%s\" is gRPC: use grpc: {upstream, method}", name);
        rt->action = GW_PROXY;
        return 0;
    }
    case 1:
        rt->action = GW_SPLIT;
        return parse_split(rt, route, key, e);
    case 2:
        rt->action = GW_TRANSCODE;
        rc = tern__gw_transcode_new(route, &rt->gen->env, &rt->transcode, e->buf, e->len);
        break;
    default:
        rt->action = GW_AGGREGATE;
        rc = tern__gw_aggregate_new(route, &rt->gen->env, &rt->aggregate, e->buf, e->len);
        break;
    }
    return tern__gw_policy_failed(e, key, actions[found], rc);
}

static int parse_route(gw_gen *g, const json_t *route, int index, gw_route **out, gw_err *e)
{
    char key[64];
    snprintf(key, sizeof key, "routes[%d]", index);
    if (!json_is_object(route))
        return tern__gw_fail(e, key, "must be a mapping {match, upstream | split | grpc | aggregate, ...}");
    int rc = tern__gw_only_keys(route, key, route_keys, e);
    if (rc < 0)
        return rc;
    gw_route *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->gen = g;
    rt->index = index;
    rt->attempts = 1;
    *out = rt;
    json_t *m = json_object_get(route, "match");
    if (!m)
        return tern__gw_fail(e, key, "match: required");
    if ((rc = parse_match(rt, m, key, e)) < 0)
        return rc;
    const char *name;
    if ((rc = tern__gw_get_string(route, "name", key, &name, e)) < 0)
        return rc;
    if (!name)
        name = json_string_value(json_object_get(m, json_object_get(m, "path") ? "path" : "prefix"));
    if ((rc = strdup_to(&rt->name, name)) < 0)
        return rc;
    if ((rc = tern__gw_get_duration(route, "timeout", key, &rt->timeout, e)) < 0)
        return rc;
    json_t *v;
    if ((v = json_object_get(route, "retries")) && (rc = parse_retries(rt, v, key, e)) < 0)
        return rc;
    if ((v = json_object_get(route, "rewrite")) && (rc = parse_rewrite(rt, v, key, e)) < 0)
        return rc;
    const char *auth;
    if ((rc = tern__gw_get_string(route, "auth", key, &auth, e)) < 0)
        return rc;
    if (!auth || strcmp(auth, "none") == 0)
        rt->auth = GW_AUTH_NONE;
    else if (strcmp(auth, "optional") == 0)
        rt->auth = GW_AUTH_OPTIONAL;
    else if (strcmp(auth, "required") == 0)
        rt->auth = GW_AUTH_REQUIRED;
    else
        return tern__gw_fail(e, key, "auth: \"%s\" is not required, optional or none", auth);
    if (rt->auth != GW_AUTH_NONE && !g->auth)
        return tern__gw_fail(e, key, "auth: %s needs a top-level jwt section", auth);
    if ((rc = parse_action(rt, route, key, e)) < 0)
        return rc;
    if ((v = json_object_get(route, "ratelimit"))) {
        rc = tern__gw_limit_new(v, &g->env, &rt->limit, e->buf, e->len);
        if (rc < 0)
            return tern__gw_policy_failed(e, key, "ratelimit", rc);
    }
    return 0;
}

void tern__gw_route_free(gw_route *rt)
{
    if (!rt)
        return;
    tern__gw_limit_free(rt->limit);
    tern__gw_transcode_free(rt->transcode);
    tern__gw_aggregate_free(rt->aggregate);
    for (size_t i = 0; i < rt->nmethods; i++)
        free(rt->methods[i]);
    free(rt->methods);
    for (size_t i = 0; i < rt->nhdrs; i++) {
        free(rt->hdr_names[i]);
        free(rt->hdr_values[i]);
    }
    free(rt->hdr_names);
    free(rt->hdr_values);
    free(rt->legs);
    free(rt->split_header);
    free(rt->split_cookie);
    free(rt->strip_prefix);
    free(rt->rewrite_path);
    free(rt->prefix);
    free(rt->host);
    free(rt->name);
    free(rt);
}

void tern__gw_slot_free(gw_slot *s)
{
    if (!s)
        return;
    free(s->routes);
    free(s->pattern);
    free(s);
}

/* The route joins the slot of pattern p, made on first use. */
static int add_to_slot(gw_gen *g, gw_route *rt, const char *p, gw_err *e)
{
    gw_slot *s = NULL;
    for (size_t i = 0; i < g->nslots && !s; i++)
        if (strcmp(g->slots[i]->pattern, p) == 0)
            s = g->slots[i];
    if (!s) {
        gw_slot **ns = realloc(g->slots, (g->nslots + 1) * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        g->slots = ns;
        if (!(s = calloc(1, sizeof *s)) || !(s->pattern = strdup(p))) {
            free(s);
            return -ENOMEM;
        }
        s->gen = g;
        g->slots[g->nslots++] = s;
        int rc = tern_http_router_handle(g->router, NULL, p, tern__gw_slot_serve, s);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0) {
            char k[64];
            snprintf(k, sizeof k, "routes[%d].match", rt->index);
            return tern__gw_fail(e, k, "\"%s\" conflicts with another route (%s: a :param named "
                                 "differently at the same place?)", p, tern_strerror(rc));
        }
    }
    gw_route **nr = realloc(s->routes, (s->n + 1) * sizeof *nr);
    if (!nr)
        return -ENOMEM;
    s->routes = nr;
    s->routes[s->n++] = rt;
    return 0;
}

static int register_route(gw_gen *g, gw_route *rt, const json_t *route, gw_err *e)
{
    json_t *m = json_object_get(route, "match");
    const char *path = json_string_value(json_object_get(m, "path"));
    if (path)
        return add_to_slot(g, rt, path, e);
    char *p = NULL;
    size_t n = strlen(rt->prefix);
    bool slash = rt->prefix[n - 1] == '/';
    if (asprintf(&p, "%s%s*rest", rt->prefix, slash ? "" : "/") < 0)
        return -ENOMEM;
    int rc = add_to_slot(g, rt, p, e);
    free(p);
    if (rc == 0 && !slash)
        rc = add_to_slot(g, rt, rt->prefix, e);
    return rc;
}

int tern__gw_routes_build(gw_gen *g, const json_t *routes, gw_err *e)
{
    if (!routes)
        return 0;
    if (!json_is_array(routes))
        return tern__gw_fail(e, "routes", "must be a list");
    size_t n = json_array_size(routes);
    g->routes = calloc(n ? n : 1, sizeof *g->routes);
    if (!g->routes)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *route = json_array_get(routes, i);
        int rc = parse_route(g, route, (int)i, &g->routes[g->nroutes], e);
        if (g->routes[g->nroutes])
            g->nroutes++;
        if (rc < 0)
            return rc;
        if ((rc = register_route(g, g->routes[g->nroutes - 1], route, e)) < 0)
            return rc;
    }
    return 0;
}

/* ---- serving --------------------------------------------------------------- */

static bool host_matches(const char *want, const char *got)
{
    if (!got)
        return false;
    size_t n = strcspn(got, ":");
    if (got[0] == '[')
        n = strcspn(got, "]") + 1;
    if (want[0] == '*' && want[1] == '.') {
        size_t w = strlen(want + 1);
        return n > w && strncasecmp(got + n - w, want + 1, w) == 0;
    }
    return strlen(want) == n && strncasecmp(want, got, n) == 0;
}

static bool method_ok(const gw_route *rt, const char *m)
{
    if (!rt->nmethods)
        return true;
    for (size_t i = 0; i < rt->nmethods; i++)
        if (strcmp(rt->methods[i], m) == 0 || (strcmp(m, "HEAD") == 0 && strcmp(rt->methods[i], "GET") == 0))
            return true;
    return false;
}

static bool others_ok(const gw_route *rt, tern_http_req *r)
{
    if (rt->host && !host_matches(rt->host, tern_http_req_header(r, "Host")))
        return false;
    for (size_t i = 0; i < rt->nhdrs; i++) {
        const char *v = tern_http_req_header(r, rt->hdr_names[i]);
        if (!v || strcmp(v, rt->hdr_values[i]) != 0)
            return false;
    }
    return true;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-._~!$&'()*+,;=:@", c);
}

/* A parameter's decoded value, escaped again for a path; '/' kept for a catch-all. */
static void put_escaped(char **o, const char *v, bool slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        if (unreserved(c) || (slash && c == '/')) {
            *(*o)++ = (char)c;
        } else {
            *(*o)++ = '%';
            *(*o)++ = hex[c >> 4];
            *(*o)++ = hex[c & 15];
        }
    }
}

char *tern__gw_upstream_target(gw_route *rt, tern_http_req *r)
{
    const char *target = tern_http_req_target(r);
    size_t plen = strcspn(target, "?");
    const char *query = tern_http_req_raw_query(r);
    if (target[0] != '/') {                /* absolute-form: its path */
        const char *p = strchr(strstr(target, "//") ? strstr(target, "//") + 2 : target, '/');
        target = p ? p : "/";
        plen = strcspn(target, "?");
    }
    size_t qlen = strlen(query);
    char *out;
    if (rt->rewrite_path) {
        /* each :name or *name replaced by the request's value, escaped (3x) */
        size_t cap = strlen(rt->rewrite_path) + 1 + qlen + 2;
        for (const char *p = rt->rewrite_path; *p; p++)
            if (*p == ':' || *p == '*') {
                size_t n = strcspn(p + 1, "/");
                char name[64];
                snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), p + 1);
                const char *v = tern_http_req_param(r, name);
                cap += v ? 3 * strlen(v) : 0;
            }
        if (!(out = tern_http_req_alloc(r, cap)))
            return NULL;
        char *o = out;
        for (const char *p = rt->rewrite_path; *p;) {
            if (*p == ':' || *p == '*') {
                size_t n = strcspn(p + 1, "/");
                char name[64];
                snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), p + 1);
                const char *v = tern_http_req_param(r, name);
                if (v)
                    put_escaped(&o, v, *p == '*');
                p += n + 1;
            } else {
                *o++ = *p++;
            }
        }
        if (qlen) {
            *o++ = '?';
            memcpy(o, query, qlen);
            o += qlen;
        }
        *o = '\0';
        return out;
    }
    const char *path = target;
    if (rt->strip_prefix) {
        size_t sp = strlen(rt->strip_prefix);
        if (sp <= plen && strncmp(path, rt->strip_prefix, sp) == 0 &&
            (sp == plen || path[sp] == '/' || rt->strip_prefix[sp - 1] == '/')) {
            path += sp;
            plen -= sp;
        }
    }
    bool lead = plen == 0 || path[0] != '/';
    if (!(out = tern_http_req_alloc(r, plen + qlen + 3)))
        return NULL;
    /* "/" if the path lacks one, the path, "?query" if any */
    char *o = out;
    if (lead)
        *o++ = '/';
    memcpy(o, path, plen);
    o += plen;
    if (qlen) {
        *o++ = '?';
        memcpy(o, query, qlen);
        o += qlen;
    }
    *o = '\0';
    TERN_ASSERT((size_t)(o - out) < plen + qlen + 3);
    return out;
}

static int serve_route(gw_route *rt, tern_http_req *r, tern_http_resp *w)
{
    gw_gen *g = rt->gen;
    tern_gateway *gw = g->gw;
    tern__gw_fwd fwd = {0};
    const char *subject = NULL;
    if (rt->auth != GW_AUTH_NONE) {
        const char *why = NULL;
        int rc = tern__gw_auth_check(g->auth, r, &fwd, &subject, &why);
        if (rc == -ENOENT && rt->auth == GW_AUTH_OPTIONAL)
            rc = 0;
        if (rc < 0) {
            atomic_fetch_add(&gw->rejected_auth, 1);
            tern_http_resp_set_header(w, "WWW-Authenticate", "Bearer");
            tern__gw_count(gw, rt, "-", 401);
            return tern__gw_error(w, 401, rc == -ENOENT ? "missing bearer token" : why ? why : "invalid token");
        }
    }
    if (rt->limit) {
        int64_t retry_after = 0;
        int rc = tern__gw_limit_take(rt->limit, r, subject, &retry_after, tern_http_req_ctx(r));
        if (rc == -EAGAIN) {
            atomic_fetch_add(&gw->rejected_limit, 1);
            char s[24];
            snprintf(s, sizeof s, "%lld", (long long)((retry_after + GW_SEC - 1) / GW_SEC));
            tern_http_resp_set_header(w, "Retry-After", s);
            tern__gw_count(gw, rt, "-", 429);
            return tern__gw_error(w, 429, "rate limit exceeded");
        }
    }
    switch (rt->action) {
    case GW_PROXY:
        return tern__gw_proxy(rt, rt->up, r, w, &fwd);
    case GW_SPLIT:
        return tern__gw_proxy(rt, tern__gw_split_pick(rt, r, w), r, w, &fwd);
    case GW_TRANSCODE: {
        int rc = tern__gw_transcode_serve(rt->transcode, r, w, &fwd, tern_http_req_ctx(r));
        tern__gw_count(gw, rt, "grpc", tern_http_resp_status(w));
        return rc;
    }
    default: {
        int rc = tern__gw_aggregate_serve(rt->aggregate, r, w, &fwd, tern_http_req_ctx(r));
        tern__gw_count(gw, rt, "aggregate", tern_http_resp_status(w));
        return rc;
    }
    }
}

int tern__gw_slot_serve(tern_http_req *r, tern_http_resp *w, void *arg)
{
    gw_slot *s = arg;
    const char *m = tern_http_req_method(r);
    bool other_method = false;
    for (size_t i = 0; i < s->n; i++) {
        if (!others_ok(s->routes[i], r))
            continue;
        if (method_ok(s->routes[i], m))
            return serve_route(s->routes[i], r, w);
        other_method = true;
    }
    atomic_fetch_add(&s->gen->gw->no_route, 1);
    tern__gw_count(s->gen->gw, NULL, "-", other_method ? 405 : 404);
    return other_method ? tern__gw_error(w, 405, "method not allowed") : tern__gw_error(w, 404, "no route");
}
