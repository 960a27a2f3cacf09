/*
 * upstream.c - one named upstream of a generation: where its replicas are
 * (a fixed list, or any resolver of tern/discovery.h), which one gets the
 * next request (a tern_balancer with outlier ejection and, when asked,
 * active health checks), when to stop calling it (a tern_breaker), how
 * much retrying it may take (a tern_retry_budget), and for gRPC upstreams
 * a tern_grpc_channel fed by the same kind of resolver.
 *
 * A reload that leaves an upstream's section as it was hands the same
 * upstream to the new generation (a reference per generation), so its
 * balancer keeps its latencies, ejections and health, its gRPC channel
 * its connections, and no resolver starts over.  A changed section
 * builds a new one.  The HTTP clients (keep-alive pools) are the
 * gateway's and survive every reload.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"

static const char *const upstream_keys[] = {"endpoints", "resolver", "protocol", "policy", "hash_key",
                                            "timeout", "health_check", "breaker", "outlier", NULL};

static int parse_endpoints(const json_t *arr, const char *key, tern_endpoint **out, size_t *n, gw_err *e)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return tern__gw_fail(e, key, "endpoints: must be a non-empty list of \"host:port\" or {addr, weight}");
    size_t cnt = json_array_size(arr);
    tern_endpoint *eps = calloc(cnt, sizeof *eps);
    if (!eps)
        return -ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        json_t *v = json_array_get(arr, i);
        if (json_is_string(v)) {
            eps[i].addr = json_string_value(v);
        } else if (json_is_object(v) && json_is_string(json_object_get(v, "addr"))) {
            eps[i].addr = json_string_value(json_object_get(v, "addr"));
            json_t *w = json_object_get(v, "weight");
            if (w && (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 10000)) {
                free(eps);
                return tern__gw_fail(e, key, "endpoints[%zu].weight: must be an integer from 1 to 10000", i);
            }
            eps[i].weight = w ? (uint32_t)json_integer_value(w) : 1;
        } else {
            free(eps);
            return tern__gw_fail(e, key, "endpoints[%zu]: must be \"host:port\" or {addr: \"host:port\", weight: n}", i);
        }
        if (!strchr(eps[i].addr, ':')) {
            int rc = tern__gw_fail(e, key, "endpoints[%zu]: \"%s\" has no port", i, eps[i].addr);
            free(eps);
            return rc;
        }
    }
    *out = eps;
    *n = cnt;
    return 0;
}

/* resolver: {file: path} | {dns: "host:port"} | {dns_srv: name} | {etcd: {endpoints, prefix}} */
static int make_resolver(const json_t *cfg, const char *key, const char *dir, tern_resolver **out, gw_err *e)
{
    if (!json_is_object(cfg) || json_object_size(cfg) != 1)
        return tern__gw_fail(e, key, "resolver: must be one of {file: path}, {dns: \"host:port\"}, "
                               "{dns_srv: name}, {etcd: {endpoints: [...], prefix: ...}}");
    const char *kind = json_object_iter_key(json_object_iter((json_t *)cfg));
    json_t *v = json_object_iter_value(json_object_iter((json_t *)cfg));
    int rc;
    if (strcmp(kind, "file") == 0 && json_is_string(v)) {
        const char *p = json_string_value(v);
        char *path = NULL;
        if (p[0] != '/' && dir && asprintf(&path, "%s/%s", dir, p) < 0)
            return -ENOMEM;
        rc = tern_resolver_file_new(path ? path : p, NULL, out);
        free(path);
    } else if ((strcmp(kind, "dns") == 0 || strcmp(kind, "dns_srv") == 0) && json_is_string(v)) {
        tern_resolver_dns_options o = {.srv = strcmp(kind, "dns_srv") == 0};
        rc = tern_resolver_dns_new(json_string_value(v), &o, out);
    } else if (strcmp(kind, "etcd") == 0 && json_is_object(v)) {
        json_t *eps = json_object_get(v, "endpoints");
        const char *prefix = json_string_value(json_object_get(v, "prefix"));
        /* the members as one comma-separated list: the client fails over */
        char list[1024] = "";
        size_t len = 0;
        bool ok = prefix && (json_is_string(eps) || (json_is_array(eps) && json_array_size(eps) > 0));
        for (size_t i = 0; ok && i < (json_is_array(eps) ? json_array_size(eps) : 1); i++) {
            json_t *ep = json_is_array(eps) ? json_array_get(eps, i) : eps;
            const char *s = json_string_value(ep);
            ok = s && *s && !strchr(s, ',') && len + strlen(s) + 2 < sizeof list;
            if (ok)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? "," : "", s);
        }
        if (!ok)
            return tern__gw_fail(e, key, "resolver.etcd: needs endpoints: [\"http://host:2379\", ...] "
                                         "(at most 1 KB in all) and prefix");
        tern_resolver_etcd_options o = {.endpoint = list, .prefix = prefix};
        rc = tern_resolver_etcd_new(&o, out);
    } else {
        return tern__gw_fail(e, key, "resolver: unknown kind \"%s\" or a value of the wrong type "
                               "(file, dns, dns_srv: a string; etcd: a mapping)", kind);
    }
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return tern__gw_fail(e, key, "resolver.%s: %s", kind, tern_strerror(rc));
    return 0;
}

static int parse_policy(const char *s, tern_lb_policy *p)
{
    static const struct {
        const char *name;
        tern_lb_policy p;
    } ps[] = {{"p2c", TERN_LB_P2C}, {"round_robin", TERN_LB_ROUND_ROBIN},
              {"weighted_round_robin", TERN_LB_WEIGHTED_ROUND_ROBIN}, {"ring_hash", TERN_LB_RING_HASH},
              {"maglev", TERN_LB_MAGLEV}};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        if (strcmp(s, ps[i].name) == 0) {
            *p = ps[i].p;
            return 0;
        }
    return -EINVAL;
}

static int parse_outlier(const json_t *o, const char *key, tern_lb_outlier_options *out, gw_err *e)
{
    static const char *const keys[] = {"disabled", "consecutive_failures", "interval",
                                       "base_ejection_time", "max_ejection_time",
                                       "max_ejection_percent", "success_rate_min_calls", NULL};
    char k[240];
    snprintf(k, sizeof k, "%s.outlier", key);
    if (!json_is_object(o))
        return tern__gw_fail(e, k, "must be a mapping");
    int rc = tern__gw_only_keys(o, k, keys, e);
    if (rc < 0)
        return rc;
    out->disabled = json_is_true(json_object_get(o, "disabled"));
    json_t *v;
    if ((v = json_object_get(o, "consecutive_failures"))) {
        if (!json_is_integer(v))
            return tern__gw_fail(e, k, "consecutive_failures: must be an integer");
        out->consecutive_failures = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "max_ejection_percent"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100)
            return tern__gw_fail(e, k, "max_ejection_percent: must be an integer from 1 to 100");
        out->max_ejection_percent = (int)json_integer_value(v);
    }
    if ((v = json_object_get(o, "success_rate_min_calls"))) {
        if (!json_is_integer(v))
            return tern__gw_fail(e, k, "success_rate_min_calls: must be an integer");
        out->success_rate_min_calls = (int)json_integer_value(v);
    }
    if ((rc = tern__gw_get_duration(o, "interval", k, &out->interval, e)) < 0 ||
        (rc = tern__gw_get_duration(o, "base_ejection_time", k, &out->base_ejection_time, e)) < 0 ||
        (rc = tern__gw_get_duration(o, "max_ejection_time", k, &out->max_ejection_time, e)) < 0)
        return rc;
    return 0;
}

static int make_breaker(const json_t *b, const char *key, tern_breaker **out, gw_err *e)
{
    static const char *const keys[] = {"failure_ratio", "min_calls", "open_for", "window", "half_open_max", NULL};
    char k[240];
    snprintf(k, sizeof k, "%s.breaker", key);
    if (!json_is_object(b))
        return tern__gw_fail(e, k, "must be a mapping {failure_ratio, min_calls, open_for}");
    int rc = tern__gw_only_keys(b, k, keys, e);
    if (rc < 0)
        return rc;
    tern_breaker_options o = {0};
    json_t *v;
    if ((v = json_object_get(b, "failure_ratio"))) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 1)
            return tern__gw_fail(e, k, "failure_ratio: must be a number in (0, 1]");
        o.failure_ratio = json_number_value(v);
    }
    if ((v = json_object_get(b, "min_calls"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return tern__gw_fail(e, k, "min_calls: must be a positive integer");
        o.min_requests = (uint32_t)json_integer_value(v);
    }
    if ((v = json_object_get(b, "half_open_max"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return tern__gw_fail(e, k, "half_open_max: must be a positive integer");
        o.half_open_max = (uint32_t)json_integer_value(v);
    }
    if ((rc = tern__gw_get_duration(b, "open_for", k, &o.open_duration, e)) < 0 ||
        (rc = tern__gw_get_duration(b, "window", k, &o.window, e)) < 0)
        return rc;
    rc = tern_breaker_new(&o, out);
    if (rc == -EINVAL)
        return tern__gw_fail(e, k, "refused by the breaker: %s", tern_strerror(rc));
    return rc;
}

static int start_health(gw_upstream *u, const json_t *h, const char *key, gw_err *e)
{
    static const char *const keys[] = {"path", "interval", "timeout", "unhealthy_threshold",
                                       "healthy_threshold", "grpc", "grpc_service", NULL};
    char k[240];
    snprintf(k, sizeof k, "%s.health_check", key);
    if (!json_is_object(h))
        return tern__gw_fail(e, k, "must be a mapping {path, interval}");
    int rc = tern__gw_only_keys(h, k, keys, e);
    if (rc < 0)
        return rc;
    tern_lb_health_options o = {0};
    if ((rc = tern__gw_get_string(h, "path", k, &o.path, e)) < 0 ||
        (rc = tern__gw_get_string(h, "grpc_service", k, &o.grpc_service, e)) < 0)
        return rc;
    /* gRPC's health protocol: {grpc: true} asks about the server, {grpc_service: name} about one service */
    json_t *g = json_object_get(h, "grpc");
    if (g && !json_is_boolean(g))
        return tern__gw_fail(e, k, "grpc: must be true or false");
    o.grpc = json_is_true(g) || o.grpc_service;
    if (json_is_false(g) && o.grpc_service)
        return tern__gw_fail(e, k, "grpc_service: needs grpc (it names the service gRPC's health check asks about)");
    if (o.grpc && o.path)
        return tern__gw_fail(e, k, "path: a gRPC health check has none (grpc.health.v1.Health/Check)");
    if (!o.grpc && (!o.path || o.path[0] != '/'))
        return tern__gw_fail(e, k, "path: required, starting with '/' (or grpc: true)");
    if ((rc = tern__gw_get_duration(h, "interval", k, &o.interval, e)) < 0 ||
        (rc = tern__gw_get_duration(h, "timeout", k, &o.timeout, e)) < 0)
        return rc;
    json_t *v;
    if ((v = json_object_get(h, "unhealthy_threshold")) && json_is_integer(v))
        o.unhealthy_threshold = (int)json_integer_value(v);
    if ((v = json_object_get(h, "healthy_threshold")) && json_is_integer(v))
        o.healthy_threshold = (int)json_integer_value(v);
    rc = tern_balancer_health_start(u->lb, &o);
    if (rc == -EINVAL)
        return tern__gw_fail(e, k, "refused: %s", tern_strerror(rc));
    return rc;
}

/* A generation is swapped in with its endpoints known, so that a reload
 * never serves 503s while its resolvers start: wait for the first set
 * (a bounded time), and refuse the configuration if it is an error. */
static int first_set(gw_upstream *u, const char *key, gw_err *e)
{
    tern_ctx *ctx;
    int rc = tern_ctx_with_timeout(NULL, GW_RESOLVE_WAIT, &ctx);
    if (rc < 0)
        return rc;
    rc = tern_resolver_wait(u->resolver, ctx);
    tern_ctx_free(ctx);
    if (rc < 0 && rc != -ENOMEM)
        return tern__gw_fail(e, key, "resolver: no endpoints: %s", tern_strerror(rc));
    return rc;
}

static int build_grpc(gw_upstream *u, const tern_endpoint *eps, size_t n, const json_t *res,
                      const char *key, const char *dir, gw_err *e)
{
    int rc;
    if (res)
        rc = make_resolver(res, key, dir, &u->grpc_resolver, e);
    else
        rc = tern_resolver_static_new(eps, n, &u->grpc_resolver);
    if (rc < 0)
        return rc;
    tern_grpc_channel_options o = {.resolver = tern_resolver_grpc(), .resolver_arg = u->grpc_resolver,
                                   .authority = u->name, .lb_policy = "round_robin"};
    char target[300];
    snprintf(target, sizeof target, "gateway:%s", u->name);
    rc = tern_grpc_channel_new(target, &o, &u->channel);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return tern__gw_fail(e, key, "the gRPC channel: %s", tern_strerror(rc));
    return 0;
}

int tern__gw_upstream_new(gw_gen *g, const char *name, const json_t *cfg, gw_upstream **out, gw_err *e)
{
    char key[200];
    snprintf(key, sizeof key, "upstreams.%s", name);
    *out = NULL;
    if (!json_is_object(cfg))
        return tern__gw_fail(e, key, "must be a mapping (endpoints or resolver, protocol, ...)");
    int rc = tern__gw_only_keys(cfg, key, upstream_keys, e);
    if (rc < 0)
        return rc;
    json_t *eps_cfg = json_object_get(cfg, "endpoints");
    json_t *res_cfg = json_object_get(cfg, "resolver");
    if (!eps_cfg == !res_cfg)
        return tern__gw_fail(e, key, "needs exactly one of endpoints and resolver");
    gw_upstream *u = calloc(1, sizeof *u);
    if (!u || !(u->name = strdup(name))) {
        free(u);
        return -ENOMEM;
    }
    u->gw = g->gw;
    atomic_init(&u->refs, 1);
    u->cfg = json_incref((json_t *)cfg);
    tern_endpoint *eps = NULL;
    size_t neps = 0;
    const char *s;
    if ((rc = tern__gw_get_string(cfg, "protocol", key, &s, e)) < 0)
        goto fail;
    if (!s || strcmp(s, "http1") == 0)
        u->proto = GW_HTTP1;
    else if (strcmp(s, "h2c") == 0)
        u->proto = GW_H2C;
    else if (strcmp(s, "grpc") == 0)
        u->proto = GW_GRPC;
    else {
        rc = tern__gw_fail(e, key, "protocol: \"%s\" is not http1, h2c or grpc", s);
        goto fail;
    }
    if ((rc = tern__gw_get_duration(cfg, "timeout", key, &u->timeout, e)) < 0)
        goto fail;
    if (eps_cfg && (rc = parse_endpoints(eps_cfg, key, &eps, &neps, e)) < 0)
        goto fail;
    if (u->proto == GW_GRPC) {
        if ((rc = build_grpc(u, eps, neps, res_cfg, key, g->config_dir, e)) < 0)
            goto fail;
    } else {
        tern_balancer_options bo = {0};
        if ((rc = tern__gw_get_string(cfg, "policy", key, &s, e)) < 0)
            goto fail;
        if (s && parse_policy(s, &bo.policy) < 0) {
            rc = tern__gw_fail(e, key, "policy: \"%s\" is not p2c, round_robin, weighted_round_robin, "
                                 "ring_hash or maglev", s);
            goto fail;
        }
        u->hash = bo.policy == TERN_LB_RING_HASH || bo.policy == TERN_LB_MAGLEV;
        if ((rc = tern__gw_get_string(cfg, "hash_key", key, &s, e)) < 0)
            goto fail;
        if (s && strncmp(s, "header:", 7) != 0 && strncmp(s, "cookie:", 7) != 0 && strcmp(s, "ip") != 0) {
            rc = tern__gw_fail(e, key, "hash_key: \"%s\" is not header:NAME, cookie:NAME or ip", s);
            goto fail;
        }
        if (s && !(u->hash_key = strdup(s))) {
            rc = -ENOMEM;
            goto fail;
        }
        json_t *ol = json_object_get(cfg, "outlier");
        if (ol && (rc = parse_outlier(ol, key, &bo.outlier, e)) < 0)
            goto fail;
        if ((rc = tern_balancer_new(&bo, &u->lb)) < 0) {
            if (rc == -EINVAL)
                rc = tern__gw_fail(e, key, "the balancer refused these options: %s", tern_strerror(rc));
            goto fail;
        }
        if (eps) {
            if ((rc = tern_balancer_update(u->lb, eps, neps)) < 0) {
                if (rc == -EINVAL)
                    rc = tern__gw_fail(e, key, "endpoints: duplicate addresses");
                goto fail;
            }
        } else {
            if ((rc = make_resolver(res_cfg, key, g->config_dir, &u->resolver, e)) < 0)
                goto fail;
            if ((rc = tern_balancer_follow(u->lb, u->resolver)) < 0 ||
                (rc = first_set(u, key, e)) < 0)
                goto fail;
        }
        json_t *hc = json_object_get(cfg, "health_check");
        if (hc && (rc = start_health(u, hc, key, e)) < 0)
            goto fail;
    }
    json_t *br = json_object_get(cfg, "breaker");
    if (br && (rc = make_breaker(br, key, &u->breaker, e)) < 0)
        goto fail;
    tern_retry_budget_options rb = {.ratio = GW_RETRY_BUDGET_RATIO};
    if ((rc = tern_retry_budget_new(&rb, &u->budget)) < 0)
        goto fail;
    if (g->gw->latency)
        tern_metrics_histogram_with(g->gw->latency, &u->latency, u->name);
    free(eps);
    *out = u;
    return 0;
fail:
    free(eps);
    tern__gw_upstream_release(u);
    return rc;
}

void tern__gw_upstream_release(gw_upstream *u)
{
    if (!u)
        return;
    int before = atomic_fetch_sub(&u->refs, 1);
    TERN_ASSERT(before > 0);
    if (before != 1)
        return;
    json_decref(u->cfg);
    tern_grpc_channel_free(u->channel);
    tern_resolver_free(u->grpc_resolver);
    tern_resolver_free(u->resolver);   /* before the balancer that follows it */
    tern_balancer_free(u->lb);
    tern_breaker_free(u->breaker);
    tern_retry_budget_free(u->budget);
    free(u->hash_key);
    free(u->name);
    free(u);
}

gw_upstream *tern__gw_upstream_find(gw_gen *g, const char *name)
{
    for (size_t i = 0; i < g->nups; i++)
        if (strcmp(g->ups[i]->name, name) == 0)
            return g->ups[i];
    return NULL;
}

const char *tern__gw_upstream_key(const gw_upstream *u, tern_http_req *r, size_t *len)
{
    const char *k = NULL;
    if (!u->hash_key)
        k = NULL;
    else if (strncmp(u->hash_key, "header:", 7) == 0)
        k = tern_http_req_header(r, u->hash_key + 7);
    else if (strncmp(u->hash_key, "cookie:", 7) == 0)
        k = tern_http_req_cookie(r, u->hash_key + 7);
    else {
        k = tern_http_req_remote_addr(r);
        const char *colon = k ? strrchr(k, ':') : NULL;
        if (colon) {
            *len = (size_t)(colon - k);     /* the address without the port */
            return k;
        }
    }
    *len = k ? strlen(k) : 0;
    return k;
}

tern_grpc_channel *tern__gw_grpc_channel(void *core, const char *name)
{
    gw_upstream *u = tern__gw_upstream_find(core, name);
    return u && u->proto == GW_GRPC ? u->channel : NULL;
}
