/*
 * policy.h - the gateway core's interface to its per-route policies (JWT
 * authentication and rate limits: auth.c, limit.c; gRPC transcoding and
 * aggregation: transcode.c, aggregate.c).  The core (gateway.c, route.c,
 * proxy.c, ...) parses the configuration, matches routes and owns the
 * upstreams; each policy is built from its own JSON section when a
 * configuration generation is built and freed with that generation.
 *
 * Error sentences from *_new name the key ("routes[2].ratelimit.rate:
 * must be a positive number") and are written into err (errlen bytes).
 */
#ifndef TERN_GATEWAY_POLICY_H
#define TERN_GATEWAY_POLICY_H

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/gateway.h"
#include "tern/grpc.h"
#include "tern/http.h"
#include "tern/metrics.h"
#include "tern/redis.h"

/* Headers to add to the upstream request (or metadata to add to a gRPC
 * call), name/value pairs.  Strings live as long as the request (allocate
 * them with tern_http_req_strdup). */
#define TERN__GW_FWD_MAX 16
typedef struct tern__gw_fwd {
    const char *kv[2 * TERN__GW_FWD_MAX];
    size_t n;                                   /* pairs */
} tern__gw_fwd;

static inline int tern__gw_fwd_add(tern__gw_fwd *f, const char *name, const char *value)
{
    if (f->n == TERN__GW_FWD_MAX)
        return -ENOSPC;
    f->kv[2 * f->n] = name;
    f->kv[2 * f->n + 1] = value;
    f->n++;
    return 0;
}

/* What the core lends a policy of one configuration generation. */
typedef struct tern__gw_env {
    const char *config_dir;                     /* relative file names start here */
    tern_redis_client *redis;                   /* NULL: no "redis" configured */
    tern_metrics_registry *metrics;             /* never NULL */
    void *core;                                 /* the generation, for the calls below */
    /* The upstream named `name`'s gRPC channel (protocol grpc); NULL if there
     * is no such upstream or it is not gRPC.  Owned by the generation. */
    tern_grpc_channel *(*grpc_channel)(void *core, const char *name);
    /* A request to the upstream named `name` (any protocol but grpc), through
     * its balancer, breaker and timeout: path_query is "/a/b?c=d"; hdrs extra
     * headers.  0 with *status and the body (malloc'd, *body_len bytes, at most
     * max_body: -EMSGSIZE past it), or -errno (-ENOENT: no such upstream,
     * -ETIMEDOUT, -ECONNREFUSED, ...). */
    int (*http_fetch)(void *core, const char *name, const char *method, const char *path_query,
                      const tern__gw_fwd *hdrs, const void *req_body, size_t req_len, size_t max_body,
                      int *status, char **body, size_t *body_len, tern_ctx *ctx);
} tern__gw_env;

/* ---- JWT authentication (auth.c): cfg is the top-level "jwt" object ---- */
typedef struct tern__gw_auth tern__gw_auth;
int tern__gw_auth_new(const json_t *cfg, const tern__gw_env *env, tern__gw_auth **out, char *err,
                      size_t errlen);
void tern__gw_auth_free(tern__gw_auth *a);
/* Verify the request's token ("Authorization: Bearer ..." or the configured
 * cookie).  0: valid; the forwarded claims are added to fwd and *subject is
 * the "sub" claim (request-allocated; NULL if absent).  -ENOENT: no token.
 * -EACCES: a token that fails (bad signature, alg none, expired, wrong
 * audience or issuer, unknown kid); *why is a short static reason for the
 * 401 body and the log.  Writes no response. */
int tern__gw_auth_check(tern__gw_auth *a, tern_http_req *r, tern__gw_fwd *fwd, const char **subject,
                        const char **why);
/* The verified-token cache (auth.c), for tests: entries held, and lookups
 * it answered. */
void tern__gw_auth_cache_stats(tern__gw_auth *a, size_t *entries, uint64_t *hits);
/* For tests: verify as if the wall clock read wall_ns (0: the real clock). */
void tern__gw_auth_set_clock(tern__gw_auth *a, int64_t wall_ns);

/* ---- rate limits (limit.c): cfg is a route's "ratelimit" object ---- */
typedef struct tern__gw_limit tern__gw_limit;
int tern__gw_limit_new(const json_t *cfg, const tern__gw_env *env, tern__gw_limit **out, char *err,
                       size_t errlen);
void tern__gw_limit_free(tern__gw_limit *l);
/* Take one token for the request's client key (per cfg "key": ip, header:X,
 * claim:sub -> subject).  0: allowed; -EAGAIN: over the limit, with
 * *retry_after (ns) for the Retry-After header.  A global limit whose Redis
 * does not answer within a few ms falls back to the local bucket (counted,
 * logged once per outage) and never fails the request for that. */
int tern__gw_limit_take(tern__gw_limit *l, tern_http_req *r, const char *subject, int64_t *retry_after,
                        tern_ctx *ctx);

/* ---- gRPC transcoding (transcode.c): route is the whole route object,
 * its "grpc" key {upstream, method} ---- */
typedef struct tern__gw_transcode tern__gw_transcode;
int tern__gw_transcode_new(const json_t *route, const tern__gw_env *env, tern__gw_transcode **out,
                           char *err, size_t errlen);
void tern__gw_transcode_free(tern__gw_transcode *t);
/* Serve one request: the JSON body (POST/PUT/PATCH), the path parameters
 * (tern_http_req_param: the core's router sets them) and the query fill the
 * request message; fwd and the traceparent go as metadata; the response is
 * written as JSON (proto3 JSON mapping), a gRPC error as its HTTP status
 * (google.rpc mapping: NOT_FOUND 404, INVALID_ARGUMENT 400, ...) with
 * {"error": message, "status": http, "code": "NOT_FOUND"}.  Returns 0 once
 * a response is written. */
int tern__gw_transcode_serve(tern__gw_transcode *t, tern_http_req *r, tern_http_resp *w,
                             const tern__gw_fwd *fwd, tern_ctx *ctx);

/* ---- aggregation (aggregate.c): route is the whole route object, its
 * "aggregate" key {timeout, parts: {name: {grpc: {...}} | {upstream, path}}} ---- */
typedef struct tern__gw_aggregate tern__gw_aggregate;
int tern__gw_aggregate_new(const json_t *route, const tern__gw_env *env, tern__gw_aggregate **out,
                           char *err, size_t errlen);
void tern__gw_aggregate_free(tern__gw_aggregate *a);
/* Call every part in parallel (path parameters substituted from the
 * request's), each bounded by the aggregate's timeout; answer 200 with
 * {"<part>": <its JSON>, ...}; a part that failed or timed out is left
 * out and named in "_partial": ["payment"] (with "_errors": {"payment":
 * "timeout"}); 502 only when every part failed. */
int tern__gw_aggregate_serve(tern__gw_aggregate *a, tern_http_req *r, tern_http_resp *w,
                             const tern__gw_fwd *fwd, tern_ctx *ctx);

#endif
