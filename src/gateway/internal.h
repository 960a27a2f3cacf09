/*
 * internal.h - what the gateway core's files share.
 *
 * A tern_gateway (gateway.c) holds the current configuration generation
 * and what outlives generations: the HTTP clients (their keep-alive pools
 * survive reloads), the metrics families, the counters.  A generation
 * (gen.c) is everything one configuration builds: its upstreams
 * (upstream.c: balancer, resolver, breaker, retry budget, gRPC channel),
 * its routes (route.c: matching, a tern_http_router) and the policies
 * each route asked for (policy.h).  conf.c reads the configuration text
 * into JSON and checks its values with sentences that name the key.
 * proxy.c forwards a request to an upstream; split.c picks a split
 * route's upstream.
 *
 * Generation life: the gateway's pointer holds one reference; each
 * request takes one for its whole life (gw_acquire / gw_release), so a
 * reload swaps the pointer and the old generation is freed by whoever
 * drops the last reference (in a coroutine of its own: freeing waits for
 * health checkers and resolvers).
 */
#ifndef TERN_GATEWAY_INTERNAL_H
#define TERN_GATEWAY_INTERNAL_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/check.h"
#include "base/spin.h"
#include "gateway/policy.h"
#include "tern/discovery.h"
#include "tern/error.h"
#include "tern/gateway.h"
#include "tern/grpc.h"
#include "tern/http.h"
#include "tern/http_client.h"
#include "tern/http_router.h"
#include "tern/metrics.h"
#include "tern/redis.h"
#include "tern/resilience.h"
#include "tern/chan.h"
#include "tern/sync.h"

#define GW_SEC ((int64_t)1000000000)
#define GW_MS ((int64_t)1000000)

/* Defaults, named (gateway.h's schema leaves them to us). */
#define GW_DEFAULT_TIMEOUT (30 * GW_SEC)         /* per try, when neither route nor upstream says */
#define GW_DEFAULT_WATCH_INTERVAL GW_SEC
#define GW_BUFFER_FOR_RETRY (64 * 1024)           /* request bodies up to this are kept for retries */
#define GW_RETRY_BUDGET_RATIO 0.2                 /* retries add at most 20% load */
#define GW_MAX_ATTEMPTS 5
#define GW_RESOLVE_WAIT (5 * GW_SEC)              /* for a resolver's first set */

enum gw_proto { GW_HTTP1, GW_H2C, GW_GRPC };

/* ---- conf.c: JSON values with sentences that name the key ---- */

typedef struct gw_err {
    char *buf;
    size_t len;
    const char *file;           /* for the sentence; "config" when text */
} gw_err;

/* Write "FILE: KEY: what" into e (the first failure wins); returns -EINVAL. */
int tern__gw_fail(gw_err *e, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A policy's _new failed with rc (policy.h): its sentence (written into
 * e->buf without the file and route) becomes "FILE: KEY.<sentence>" when it
 * names its own section first ("ratelimit.rate: ..."), "FILE: KEY: <sentence>"
 * otherwise, "FILE: <sentence>" when key is NULL (a top-level section); with
 * no sentence, "FILE: KEY: section: <strerror>".  Returns rc. */
int tern__gw_policy_failed(gw_err *e, const char *key, const char *section, int rc);
/* Text to JSON: YAML unless it looks like JSON ('{' first, or a .json file). */
int tern__gw_parse_text(const char *text, size_t len, bool json_name, json_t **out, gw_err *e);
/* "250ms", "2s", "1m", "1h30m", an integer (ns): 0 or -EINVAL. */
int tern__gw_duration(const json_t *v, int64_t *out);
/* Read a duration at obj[name] into *out (absent: unchanged).  Errors name key.name. */
int tern__gw_get_duration(const json_t *obj, const char *name, const char *key, int64_t *out, gw_err *e);
/* Refuse keys of obj not in the NULL-terminated list, naming key.k. */
int tern__gw_only_keys(const json_t *obj, const char *key, const char *const *allowed, gw_err *e);
/* A string at obj[name] or NULL (absent); a non-string is an error. */
int tern__gw_get_string(const json_t *obj, const char *name, const char *key, const char **out, gw_err *e);

/* ---- upstream.c ---- */

typedef struct gw_upstream {
    struct tern_gateway *gw;
    atomic_int refs;            /* one per generation that lists it */
    json_t *cfg;                /* its section, to see whether a reload changed it */
    char *name;
    enum gw_proto proto;
    tern_balancer *lb;
    tern_resolver *resolver;    /* NULL: a static set */
    tern_breaker *breaker;      /* NULL: none configured */
    tern_retry_budget *budget;
    tern_grpc_channel *channel; /* proto grpc */
    tern_resolver *grpc_resolver;
    int64_t timeout;            /* per try; 0: not set */
    bool hash;                  /* ring_hash / maglev: a key per request */
    char *hash_key;             /* "header:X", "cookie:X", "ip" */
    tern_metrics_histogram *latency;
} gw_upstream;

struct gw_gen;
int tern__gw_upstream_new(struct gw_gen *g, const char *name, const json_t *cfg, gw_upstream **out, gw_err *e);
/* Drop a generation's reference; the last one frees it. */
void tern__gw_upstream_release(gw_upstream *u);
gw_upstream *tern__gw_upstream_find(struct gw_gen *g, const char *name);
/* The affinity key of a request for a hashing upstream (request memory). */
const char *tern__gw_upstream_key(const gw_upstream *u, tern_http_req *r, size_t *len);

/* ---- route.c ---- */

enum gw_action { GW_PROXY, GW_SPLIT, GW_TRANSCODE, GW_AGGREGATE };
enum gw_auth_mode { GW_AUTH_NONE, GW_AUTH_OPTIONAL, GW_AUTH_REQUIRED };

typedef struct gw_split_leg {
    gw_upstream *up;
    int weight;                 /* percent; the legs sum to 100 */
} gw_split_leg;

typedef struct gw_route {
    struct gw_gen *gen;
    int index;
    char *name;                 /* metrics label */
    char **methods;             /* NULL: any */
    size_t nmethods;
    char *host;                 /* NULL: any; "*.a.b": a suffix */
    char **hdr_names, **hdr_values;
    size_t nhdrs;
    char *prefix;               /* match.prefix, for strip / the rest */
    enum gw_action action;
    gw_upstream *up;            /* GW_PROXY */
    gw_split_leg *legs;         /* GW_SPLIT */
    size_t nlegs;
    char *split_header, *split_cookie;
    char *strip_prefix;         /* rewrite */
    char *rewrite_path;         /* with :params */
    int64_t timeout;            /* 0: the upstream's */
    int attempts;               /* in all, the first included; 1: no retry */
    bool retry_connect, retry_502, retry_503, retry_504, retry_reset;
    enum gw_auth_mode auth;
    tern__gw_limit *limit;
    tern__gw_transcode *transcode;
    tern__gw_aggregate *aggregate;
} gw_route;

/* The routes registered on one router pattern, tried in configuration order. */
typedef struct gw_slot {
    struct gw_gen *gen;
    char *pattern;
    gw_route **routes;
    size_t n;
} gw_slot;

int tern__gw_routes_build(struct gw_gen *g, const json_t *routes, gw_err *e);
void tern__gw_route_free(gw_route *r);
void tern__gw_slot_free(gw_slot *s);
/* The router's handler for a slot (arg: the gw_slot). */
int tern__gw_slot_serve(tern_http_req *r, tern_http_resp *w, void *slot);
/* The path to send upstream: rewritten per the route, with the query. */
char *tern__gw_upstream_target(gw_route *rt, tern_http_req *r);

/* ---- gen.c ---- */

typedef struct gw_gen {
    struct tern_gateway *gw;
    atomic_long refs;
    uint64_t number;
    json_t *root;
    char *config_dir;
    tern__gw_env env;
    tern_redis_client *redis;
    tern__gw_auth *auth;
    gw_upstream **ups;
    size_t nups;
    gw_route **routes;
    size_t nroutes;
    gw_slot **slots;
    size_t nslots;
    const char **strip;         /* headers the jwt section forwards claims in */
    size_t nstrip;
    tern_http_router *router;
} gw_gen;

int tern__gw_gen_new(struct tern_gateway *gw, json_t *root, const char *config_dir, gw_gen **out, gw_err *e);
void tern__gw_gen_free(gw_gen *g);
/* The env's http_fetch and grpc_channel. */
int tern__gw_http_fetch(void *core, const char *name, const char *method, const char *path_query,
                  const tern__gw_fwd *hdrs, const void *req_body, size_t req_len, size_t max_body,
                  int *status, char **body, size_t *body_len, tern_ctx *ctx);
tern_grpc_channel *tern__gw_grpc_channel(void *core, const char *name);

/* ---- gateway.c ---- */

struct tern_gateway {
    tern__spin lock;            /* guards cur and its reference taking */
    gw_gen *cur;
    tern_mutex reload_mu;       /* one reload at a time */
    char *config_path;
    char *config_dir;
    char *config_text;
    size_t config_len;
    int (*config_edit)(const char *json, size_t len, char **out, void *arg, char *err, size_t errlen);
    void *config_edit_arg;
    tern_metrics_registry *metrics;
    tern_metrics_family *requests;  /* {route, upstream, code}; NULL if taken */
    tern_metrics_family *latency;   /* {upstream} */
    struct gw_epm *epm;             /* per-endpoint metrics; NULL if taken */
    tern_http_client *h1, *h2;
    atomic_uint_least64_t requests_n, no_route, upstream_errors, rejected_auth, rejected_limit;
    atomic_uint_least64_t reloads, reload_failures, generation;
    /* the file watcher */
    bool watching;
    int64_t watch_interval;
    atomic_bool stop_watch;         /* set by free; the watcher clears it as it ends */
    tern_ctx *watch_stop;           /* cancelled by free to end the watcher's sleep */
    struct { uint64_t ino, size; int64_t mtime; } seen;
    /* generations being freed */
    atomic_int freeing;
};

/* Answer an error of the gateway's own: {"error": msg, "status": status}. */
int tern__gw_error(tern_http_resp *w, int status, const char *msg);
void tern__gw_count(tern_gateway *gw, gw_route *rt, const char *upstream, int status);

/* ---- proxy.c ---- */

/* Forward r to up (the route's settings), writing the answer to w. */
int tern__gw_proxy(gw_route *rt, gw_upstream *up, tern_http_req *r, tern_http_resp *w, const tern__gw_fwd *fwd);
/* tunnel.c: Upgrade pass-through (HTTP/1.1 upstreams): whether r asks for
 * one, and the exchange, with the proxied headers (name, value, ..., NULL)
 * and the upstream's target. */
bool tern__gw_wants_upgrade(tern_http_req *r);
int tern__gw_tunnel(gw_route *rt, gw_upstream *up, tern_http_req *r, tern_http_resp *w, const char *const *headers,
                    const char *target);
/* The upstream's client for its protocol. */
tern_http_client *tern__gw_client(gw_upstream *up);

/* ---- endpoint_metrics.c ---- */

typedef struct gw_epm gw_epm;
/* Families {upstream, endpoint} in gw->metrics and a scrape hook; sets
 * gw->epm.  -EEXIST when another gateway reports there; -ENOMEM. */
int tern__gw_epm_new(tern_gateway *gw);
/* Before the gateway goes: the hook (the registry's) stops looking at it. */
void tern__gw_epm_detach(tern_gateway *gw);
/* One try to endpoint addr of up: counted, timed, failed or not. */
void tern__gw_epm_observe(tern_gateway *gw, const gw_upstream *up, const char *addr, int64_t head_ns, bool failed);
/* gateway.c: a reference on the serving generation, and its release. */
gw_gen *tern__gw_acquire(tern_gateway *gw);
void tern__gw_release(gw_gen *g);

/* ---- split.c ---- */

/* The leg for this request; may set the sticky cookie on w. */
gw_upstream *tern__gw_split_pick(gw_route *rt, tern_http_req *r, tern_http_resp *w);

#endif
