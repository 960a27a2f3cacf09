/*
 * gen.c - one configuration generation: built whole from the parsed
 * configuration (Redis client, JWT verifier, upstreams, routes, router)
 * before it is swapped in, so a configuration that fails anywhere leaves
 * the running one untouched, and freed whole once its last request ends.
 * Also the env's http_fetch (policy.h): a request to a named upstream
 * through its balancer, breaker and timeout, for the aggregator.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"
#include "tern/runtime.h"

static const char *const top_keys[] = {"redis", "jwt", "upstreams", "routes", NULL};

static int not_found(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    gw_gen *g = arg;
    atomic_fetch_add(&g->gw->no_route, 1);
    tern__gw_count(g->gw, NULL, "-", 404);
    return tern__gw_error(w, 404, "no route");
}

static int build_jwt(gw_gen *g, json_t *jwt, gw_err *e)
{
    if (!json_is_object(jwt))
        return tern__gw_fail(e, "jwt", "must be a mapping (jwks_file or hs256_secret_env, issuer, ...)");
    json_t *fc = json_object_get(jwt, "forward_claims");
    if (fc) {
        if (!json_is_object(fc))
            return tern__gw_fail(e, "jwt", "forward_claims: must be a mapping {claim: Header-Name}");
        g->strip = calloc(json_object_size(fc) + 1, sizeof *g->strip);
        if (!g->strip)
            return -ENOMEM;
        const char *k;
        json_t *v;
        json_object_foreach(fc, k, v) {
            if (!json_is_string(v))
                return tern__gw_fail(e, "jwt", "forward_claims.%s: must be a header name", k);
            g->strip[g->nstrip++] = json_string_value(v);
        }
    }
    int rc = tern__gw_auth_new(jwt, &g->env, &g->auth, e->buf, e->len);
    return tern__gw_policy_failed(e, NULL, "jwt", rc);   /* its sentences start "jwt." */
}

int tern__gw_gen_new(tern_gateway *gw, json_t *root, const char *config_dir, gw_gen **out, gw_err *e)
{
    *out = NULL;
    int rc = tern__gw_only_keys(root, "", top_keys, e);
    if (rc < 0) {
        json_decref(root);
        return rc;
    }
    gw_gen *g = calloc(1, sizeof *g);
    if (!g) {
        json_decref(root);
        return -ENOMEM;
    }
    g->gw = gw;
    g->root = root;
    atomic_init(&g->refs, 1);
    if (config_dir && !(g->config_dir = strdup(config_dir))) {
        rc = -ENOMEM;
        goto fail;
    }
    g->env = (tern__gw_env){.config_dir = g->config_dir ? g->config_dir : ".", .metrics = gw->metrics,
                            .core = g, .grpc_channel = tern__gw_grpc_channel, .http_fetch = tern__gw_http_fetch};
    json_t *v;
    if ((v = json_object_get(root, "redis"))) {
        if (!json_is_string(v)) {
            rc = tern__gw_fail(e, "redis", "must be \"host:port\" or a Unix socket path");
            goto fail;
        }
        tern_redis_client_options ro = {.addr = json_string_value(v)};
        if ((rc = tern_redis_client_new(&ro, &g->redis)) < 0) {
            tern__gw_fail(e, "redis", "%s", tern_strerror(rc));
            goto fail;
        }
        g->env.redis = g->redis;
    }
    if ((v = json_object_get(root, "jwt")) && (rc = build_jwt(g, v, e)) < 0)
        goto fail;
    json_t *ups = json_object_get(root, "upstreams");
    if (ups && !json_is_object(ups)) {
        rc = tern__gw_fail(e, "upstreams", "must be a mapping of names to upstreams");
        goto fail;
    }
    g->ups = calloc(ups ? json_object_size(ups) + 1 : 1, sizeof *g->ups);
    if (!g->ups) {
        rc = -ENOMEM;
        goto fail;
    }
    const char *name;
    json_object_foreach(ups, name, v) {
        /* the running generation's, if its section is unchanged (a reload
         * runs under reload_mu, so cur cannot change meanwhile) */
        gw_upstream *old = gw->cur ? tern__gw_upstream_find(gw->cur, name) : NULL;
        if (old && json_equal(old->cfg, v)) {
            atomic_fetch_add(&old->refs, 1);
            g->ups[g->nups++] = old;
            continue;
        }
        if ((rc = tern__gw_upstream_new(g, name, v, &g->ups[g->nups], e)) < 0)
            goto fail;
        g->nups++;
    }
    tern_http_router_options ro = {.not_found = not_found, .not_found_arg = g};
    if ((rc = tern_http_router_new(&ro, &g->router)) < 0)
        goto fail;
    if ((rc = tern__gw_routes_build(g, json_object_get(root, "routes"), e)) < 0)
        goto fail;
    *out = g;
    return 0;
fail:
    if (rc == -ENOMEM && !e->buf[0])
        tern__gw_fail(e, NULL, "out of memory");
    tern__gw_gen_free(g);
    return rc;
}

void tern__gw_gen_free(gw_gen *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nroutes; i++)
        tern__gw_route_free(g->routes[i]);
    free(g->routes);
    for (size_t i = 0; i < g->nslots; i++)
        tern__gw_slot_free(g->slots[i]);
    free(g->slots);
    tern_http_router_free(g->router);
    tern__gw_auth_free(g->auth);
    for (size_t i = 0; i < g->nups; i++)
        tern__gw_upstream_release(g->ups[i]);
    free(g->ups);
    tern_redis_client_free(g->redis);
    free(g->strip);
    free(g->config_dir);
    json_decref(g->root);
    free(g);
}

/* ---- the env's http_fetch ------------------------------------------------------ */

int tern__gw_http_fetch(void *core, const char *name, const char *method, const char *path_query,
                  const tern__gw_fwd *hdrs, const void *req_body, size_t req_len, size_t max_body,
                  int *status, char **body, size_t *body_len, tern_ctx *ctx)
{
    gw_gen *g = core;
    gw_upstream *up = tern__gw_upstream_find(g, name);
    *body = NULL;
    *body_len = 0;
    if (!up || up->proto == GW_GRPC)
        return -ENOENT;
    tern_breaker_ticket ticket = 0;
    if (up->breaker && tern_breaker_allow(up->breaker, &ticket) < 0)
        return -EAGAIN;
    tern_lb_pick pick;
    int rc = tern_balancer_pick(up->lb, NULL, 0, &pick);
    if (rc < 0) {
        if (up->breaker)
            tern_breaker_record(up->breaker, ticket, true);
        return rc;
    }
    const char *h[2 * TERN__GW_FWD_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; hdrs && i < hdrs->n; i++) {
        h[k++] = hdrs->kv[2 * i];
        h[k++] = hdrs->kv[2 * i + 1];
    }
    h[k] = NULL;
    char *url = NULL;
    tern_ctx *actx = NULL;
    tern_http_client_response *resp = NULL;
    int64_t t0 = tern_now();
    if (asprintf(&url, "http://%s%s", pick.addr, path_query) < 0)
        rc = -ENOMEM;
    else
        rc = tern_ctx_with_timeout(ctx, up->timeout ? up->timeout : GW_DEFAULT_TIMEOUT, &actx);
    if (rc == 0) {
        tern_http_client_request req = {.method = method, .url = url, .headers = h,
                                        .body = req_body, .body_len = req_len};
        rc = tern_http_client_do(tern__gw_client(up), &req, &resp, actx);
    }
    const char *data;
    size_t len;
    if (rc == 0 && (rc = tern_http_client_response_body(resp, max_body, &data, &len)) == 0) {
        *status = tern_http_client_response_status(resp);
        if (!(*body = malloc(len + 1))) {
            rc = -ENOMEM;
        } else {
            memcpy(*body, data, len);
            (*body)[len] = '\0';
            *body_len = len;
        }
    }
    int64_t took = tern_now() - t0;
    bool local = rc == -ENOMEM || rc == -EMSGSIZE || (ctx && tern_ctx_err(ctx));
    bool failed = rc < 0 ? !local : *status >= 500;
    tern_balancer_done(up->lb, &pick, took, local ? TERN_LB_LOCAL : failed ? TERN_LB_FAILED : TERN_LB_OK);
    if (up->breaker)
        tern_breaker_record(up->breaker, ticket, !failed);
    if (up->latency)
        tern_metrics_histogram_observe(up->latency, (double)took / 1e9);
    tern_http_client_response_free(resp);
    tern_ctx_free(actx);
    free(url);
    return rc;
}
