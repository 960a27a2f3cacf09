/*
 * tern/gateway.h - tern-gateway as a library: an HTTP handler that routes
 * requests to upstreams by a configuration file, hot-reloaded.
 *
 *     tern_gateway *gw;
 *     tern_gateway_options o = {.config_path = "gateway.yaml", .watch = true};
 *     char err[256];
 *     if (tern_gateway_new(&o, &gw, err, sizeof err) != 0) { log err; exit }
 *     tern_service_options so = {.http = {.handler = tern_gateway_handler,
 *                                         .arg = gw}, .addr = ":8080"};
 *     ...  tern_service_run ...
 *     tern_gateway_free(gw);
 *
 * The configuration (YAML or JSON; durations as "250ms", "2s", "1m" or
 * integer ns):
 *
 *   redis: "127.0.0.1:6379"        # optional: global rate limits
 *   jwt:                           # optional: the bearer-token verifier
 *     jwks_file: keys.json         # RS256/ES256/HS256 keys (JWK Set)
 *     hs256_secret_env: JWT_SECRET # or a shared secret from the environment
 *     issuer: shop-users           # checked when given
 *     audiences: [shop]            # one must match when given
 *     leeway: 30s                  # clock skew allowed on exp/nbf
 *     cookie: session              # also look for the token in this cookie
 *     forward_claims: {sub: X-User-Id, role: X-User-Role}
 *   upstreams:
 *     catalog:
 *       endpoints: ["127.0.0.1:7001", {addr: "127.0.0.1:7002", weight: 2}]
 *       # or resolver: {file: path} | {dns: "host:port"} | {dns_srv: name}
 *       #            | {etcd: {endpoints: [...], prefix: "/svc/catalog/"}}
 *       protocol: http1            # http1 (default), h2c, grpc (h2c)
 *       policy: p2c                # p2c, round_robin, weighted_round_robin,
 *                                  # ring_hash, maglev (hash_key: header:X)
 *       timeout: 5s                # per try; a route's own wins
 *       health_check: {path: /readyz, interval: 5s}   # GET, a 2xx passes
 *       # or {grpc: true} (grpc.health.v1 Check, the whole server)
 *       #  | {grpc_service: shop.catalog.v1.Catalog} (one service)
 *       breaker: {failure_ratio: 0.5, min_calls: 20, open_for: 5s}
 *   routes:
 *     - name: products             # metrics label; default: the path
 *       match: {path: "/api/products/:id", methods: [GET],
 *               host: "shop.local", headers: {X-Beta: "1"}}
 *               # path: exact or with :params; prefix: "/static/"
 *       upstream: catalog          # exactly one of upstream, split,
 *                                  # grpc, aggregate
 *       rewrite: {strip_prefix: "/api"}     # or path: "/v1/products/:id"
 *       timeout: 2s
 *       retries: {attempts: 2, on: [connect, 502, 503, 504]}  # idempotent
 *                                  # attempts: tries in all, the first
 *                                  # included (1-5; 2 = one retry)
 *                                  # methods only, within a 20% budget
 *       auth: required             # required, optional, none (default)
 *       ratelimit: {key: "claim:sub", rate: 100, per: 1s, burst: 200,
 *                   global: true}  # key: ip, header:Name, claim:name
 *     - match: {prefix: "/api/orders/"}
 *       split:                     # canary: weights in percent
 *         - {upstream: orders, weight: 70}
 *         - {upstream: orders-canary, weight: 30}
 *       split_override: {header: X-Canary, cookie: canary}  # value: an
 *                                  # upstream name; else sticky by the
 *                                  # cookie the gateway sets
 *     - match: {path: "/api/catalog/:id", methods: [GET]}
 *       grpc: {upstream: catalog, method: "shop.catalog.v1.Catalog/GetProduct"}
 *                                  # JSON body + path params + query ->
 *                                  # request; response -> JSON
 *     - match: {path: "/api/orders/:id", methods: [GET]}
 *       aggregate:
 *         timeout: 500ms
 *         parts:
 *           order:   {grpc: {upstream: orders, method: "shop.orders.v1.Orders/GetOrder"}}
 *           payment: {upstream: payments, path: "/payments/by-order/:id"}
 *
 * Transcoding needs the methods' descriptors in the process: the program
 * registers its generated services with tern_grpc_json_register
 * (tern/grpc_json.h) before tern_gateway_new.
 *
 * Threads: the handler is called from any number of coroutines at once.
 * A reload builds the new routes and upstreams aside and swaps them in;
 * requests in flight finish on the generation they started on, which is
 * freed after the last of them.  A configuration that fails to load is
 * refused with a message and the running one stays.
 *
 * Upstream requests carry the client's Host (as nginx's proxy_set_header
 * Host $host): virtual hosts behind the gateway see the name the client
 * asked for; without one (HTTP/2's :authority only) :authority is sent as
 * Host.  An Upgrade request (WebSocket) to an http1 upstream is passed
 * through: the 101 and then the bytes both ways.
 *
 * Ownership: the caller frees the gateway (tern_gateway_free) after the
 * server that calls its handler.  Errors are negative errno (tern_strerror)
 * and, where a buffer is given, a sentence naming the file, the key and
 * what is wrong with it.
 */
#ifndef TERN_GATEWAY_H
#define TERN_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/http.h"
#include "tern/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_gateway tern_gateway;

typedef struct tern_gateway_options {
    const char *config_path;        /* YAML (.yaml/.yml) or JSON; relative
                                       paths in it are relative to its folder */
    const char *config_text;        /* used when config_path is NULL: YAML or
                                       JSON text, config_len bytes (copied) */
    size_t config_len;
    bool watch;                     /* reload when the file changes */
    int64_t watch_interval;         /* ns between checks; 0: 1 s */
    tern_metrics_registry *metrics; /* borrowed; NULL: tern_metrics_default() */
    /* Optional: called on every load (the first, each reload, a text given
     * to tern_gateway_reload) with the configuration as compact JSON (YAML
     * already converted; json NUL-terminated, len bytes): 0 with *out a
     * malloc'd JSON text to load instead (the gateway frees it), or -errno
     * with a sentence in err (errlen bytes), which refuses the load.  For a
     * program that adds what only it knows (addresses from its own
     * settings, say) and still lets the file be watched.  Runs in the
     * loading coroutine, never two at once. */
    int (*config_edit)(const char *json, size_t len, char **out, void *arg, char *err, size_t errlen);
    void *config_edit_arg;
} tern_gateway_options;

/* Load the configuration, build routes and upstreams.  0; -EINVAL with the
 * reason in err (errlen bytes, may be 0) for a configuration that does not
 * load; -ENOMEM.  From a coroutine. */
int tern_gateway_new(const tern_gateway_options *o, tern_gateway **out, char *err, size_t errlen);
/* From a coroutine: it parks until the file watcher and the last
 * generation's health checkers, resolvers and channels have stopped.  Its
 * metric families stay in the registry (a later scrape shows their last
 * values).  NULL: no-op. */
void tern_gateway_free(tern_gateway *gw);

/* The HTTP handler (arg: the gateway).  Answers what no route matches with
 * 404 and a JSON error body, as every error the gateway itself makes:
 * {"error": "...", "status": 502}. */
int tern_gateway_handler(tern_http_req *r, tern_http_resp *w, void *gw);

/* Load the configuration again (the file, or the given text when text is
 * not NULL) and swap it in.  0, or -EINVAL with err and the old one kept.
 * From a coroutine (it waits for new resolvers' first sets). */
int tern_gateway_reload(tern_gateway *gw, const char *text, size_t len, char *err, size_t errlen);

/* Counters since creation. */
struct tern_gateway_stats {
    uint64_t requests, no_route, upstream_errors, rejected_auth, rejected_limit;
    uint64_t reloads, reload_failures;
    uint64_t generation;            /* 1 at creation, +1 per successful reload */
};
int tern_gateway_stats(const tern_gateway *gw, struct tern_gateway_stats *out);

#ifdef __cplusplus
}
#endif

#endif
