/*
 * tern/discovery.h - where a service's replicas are (resolvers) and which
 * one gets the next call (balancers).
 *
 * A resolver delivers the whole current set of endpoints whenever it
 * changes; a balancer keeps per-endpoint state (in-flight calls, latency,
 * failures) across those updates and picks one endpoint per call:
 *
 *     tern_resolver *r;
 *     tern_resolver_file_new("/etc/shop/orders.endpoints", NULL, &r);
 *     tern_balancer *b;
 *     tern_balancer_new(NULL, &b);                  // p2c over EWMA latency
 *     tern_balancer_follow(b, r);                   // updates flow in
 *     ...
 *     tern_lb_pick p;
 *     if (tern_balancer_pick(b, NULL, 0, &p) == 0) {
 *         int64_t t0 = tern_now();
 *         int rc = call(p.addr);
 *         tern_balancer_done(b, &p, tern_now() - t0,
 *                            rc == 0 ? TERN_LB_OK : TERN_LB_FAILED);
 *     }
 *
 * Policies: round robin; smooth weighted round robin (an endpoint of
 * weight 3 gets 3 of every 4 picks beside one of weight 1, interleaved,
 * not in bursts); power of two choices over load (the default): of two
 * endpoints drawn at random, the one with the lower EWMA latency times
 * (in-flight + 1), where an endpoint not picked for a second is taken
 * once so that a slow one is measured again; consistent hashing by a
 * key (a ring of virtual nodes, or Maglev's lookup table), so that one
 * key keeps going to one endpoint and a change of the set moves few keys.
 *
 * Outlier ejection (on by default): an endpoint whose calls failed
 * `consecutive_failures` times in a row, or whose success rate over an
 * interval lies far below its peers' (mean - 1.9 standard deviations,
 * with at least `success_rate_min_calls` calls each), is taken out of the
 * picks for base_ejection_time x the number of times it was ejected
 * (capped at max_ejection_time), then returns.  Never more than
 * max_ejection_percent of the endpoints are out at once, and never the
 * last one: a balancer always picks something while it has endpoints.
 * Calls that failed for the caller's reasons (its ctx ended) are reported
 * as TERN_LB_LOCAL and count against nobody.
 *
 * The gRPC channel and the HTTP client pick through a balancer of their
 * own (tern_balancer_grpc_picker, tern_balancer_http_picker, at the end):
 * their calls then report to it as above, by themselves.
 *
 * Threads: a balancer and a resolver are shared freely by coroutines and
 * threads.  A pick holds a reference on its endpoint: its addr stays
 * valid until tern_balancer_done, even if an update removed it.
 *
 * Ownership: the caller frees what it made (_free); endpoint strings given
 * to update and to the static resolver are copied.  Errors are negative
 * errno (tern_strerror explains them).
 */
#ifndef TERN_DISCOVERY_H
#define TERN_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One replica: an address a client can dial ("10.0.0.7:8080",
 * "[::1]:50051", "unix:/run/orders.sock") and its weight. */
typedef struct tern_endpoint {
    const char *addr;
    uint32_t weight;            /* 0: 1; at most 10000 */
} tern_endpoint;

/* ---- balancers ---- */

typedef enum tern_lb_policy {
    TERN_LB_P2C = 0,            /* the default: two random choices, lower
                                   EWMA latency x (in-flight + 1) wins */
    TERN_LB_ROUND_ROBIN,        /* weights ignored */
    TERN_LB_WEIGHTED_ROUND_ROBIN,
    TERN_LB_RING_HASH,          /* by key; virtual nodes per unit of weight */
    TERN_LB_MAGLEV,             /* by key; Maglev's lookup table */
} tern_lb_policy;

typedef struct tern_lb_outlier_options {
    bool disabled;                  /* no ejection at all */
    int consecutive_failures;       /* 0: 5; < 0: not by consecutive failures */
    int64_t interval;               /* ns between success-rate sweeps; 0: 10 s */
    int success_rate_min_calls;     /* calls an endpoint needs in an interval to be
                                       judged by success rate; 0: 100; < 0: no
                                       success-rate ejection */
    int success_rate_min_hosts;     /* endpoints with enough calls needed for
                                       a sweep; 0: 3 */
    int64_t base_ejection_time;     /* ns; 0: 30 s */
    int64_t max_ejection_time;      /* ns; 0: 300 s */
    int max_ejection_percent;       /* of the endpoints out at once; 0: 50;
                                       at least one of two or more */
} tern_lb_outlier_options;

typedef struct tern_balancer_options {
    tern_lb_policy policy;
    int ring_nodes_per_weight;      /* ring hash: virtual nodes per unit of
                                       weight; 0: 100 */
    uint32_t maglev_table_size;     /* a prime; 0: 65537 */
    int64_t ewma_decay;             /* p2c: ns over which latency samples fade
                                       (time constant); 0: 10 s */
    tern_lb_outlier_options outlier;
} tern_balancer_options;

typedef struct tern_balancer tern_balancer;

/* A balancer with no endpoints yet.  o NULL: the defaults.  0, -EINVAL (an
 * unknown policy, a negative value where none is allowed, a Maglev size
 * that is not a prime above 2 or is below 2x... see the options), -ENOMEM. */
int tern_balancer_new(const tern_balancer_options *o, tern_balancer **out);
/* Picks must all be done; a resolver it follows must be freed first.
 * With active health checks it must be called from a coroutine (it waits
 * for the checker to stop).  NULL: a no-op. */
void tern_balancer_free(tern_balancer *b);

/* Replace the set of endpoints.  An endpoint whose addr stays keeps its
 * state (latency, failures, ejection); a new one starts fresh; a removed
 * one lives until its picks are done.  Duplicate addrs: -EINVAL; a NULL
 * addr or a weight over 10000: -EINVAL; -ENOMEM.  On error nothing
 * changed.  n may be 0 (picks then fail with -ENOENT). */
int tern_balancer_update(tern_balancer *b, const tern_endpoint *eps, size_t n);

/* What a pick hands out: the endpoint's address (valid until done) and
 * the balancer's handle on it. */
typedef struct tern_lb_pick {
    const char *addr;
    void *ep_;                  /* the balancer's; do not touch */
    int64_t start_;
} tern_lb_pick;

/* Choose an endpoint for a call.  key/key_len: the affinity key for the
 * hash policies (a user id, a session); NULL for the others, and for a
 * hash policy NULL picks at random.  0, or -ENOENT when there are no
 * endpoints.  Every successful pick must be followed by exactly one
 * tern_balancer_done.  Never blocks. */
int tern_balancer_pick(tern_balancer *b, const void *key, size_t key_len, tern_lb_pick *out);

typedef enum tern_lb_outcome {
    TERN_LB_OK = 0,             /* the endpoint answered (a 4xx is an answer) */
    TERN_LB_FAILED,             /* the endpoint's fault: refused, reset, 5xx,
                                   its timeout; counts toward ejection */
    TERN_LB_LOCAL,              /* the caller's: its ctx ended, it gave up;
                                   counts for nobody */
} tern_lb_outcome;

/* The call that pick started has ended after latency ns (< 0: measured by
 * the balancer since the pick).  Releases the pick. */
void tern_balancer_done(tern_balancer *b, tern_lb_pick *p, int64_t latency, tern_lb_outcome outcome);

/* Active health checks: every interval each endpoint gets
 * GET http(s)://<addr><path>, healthy on a 2xx within the timeout; or,
 * with grpc, gRPC's health protocol (grpc.health.v1.Health/Check for
 * grpc_service, "" or NULL: the server as a whole) over HTTP/2 (h2c, or
 * h2 with tls), healthy on grpc-status 0 with status SERVING.
 * unhealthy_threshold failures in a row take it out of the picks,
 * healthy_threshold passes in a row bring it back (hysteresis, so a
 * flapping endpoint does not flap the set).  A new endpoint counts as
 * healthy until checks say otherwise.  If every endpoint is out (failing
 * checks or ejected), picks ignore both and choose among all. */
typedef struct tern_lb_health_options {
    const char *path;           /* "/healthz"; required, copied */
    tern_tls_config *tls;       /* https with this client config (borrowed);
                                   NULL: http */
    int64_t interval;           /* ns; 0: 5 s */
    int64_t timeout;            /* ns per check; 0: 1 s */
    int unhealthy_threshold;    /* 0: 3 */
    int healthy_threshold;      /* 0: 2 */
    bool grpc;                  /* gRPC health instead of GET path (path unused) */
    const char *grpc_service;   /* the service asked about; NULL: ""; copied */
} tern_lb_health_options;

/* Start checking (a coroutine per balancer, a check per endpoint at once).
 * -EINVAL (HTTP: no path, one not starting with '/'; gRPC: a service name
 * over 200 bytes; negative values), -EBUSY if
 * already started, -ENOMEM.  From a coroutine; stopped by
 * tern_balancer_free. */
int tern_balancer_health_start(tern_balancer *b, const tern_lb_health_options *o);

/* One endpoint's state, for metrics and /debug (copied: an update may
 * free the endpoint right after). */
#define TERN_LB_ADDR_MAX 288    /* a host name (253), a port, brackets, NUL */
typedef struct tern_lb_endpoint_stats {
    char addr[TERN_LB_ADDR_MAX];    /* cut if longer */
    uint32_t weight;
    int64_t in_flight;
    uint64_t picks, failures;   /* since it joined */
    int64_t ewma_latency;       /* ns; 0: no sample yet */
    bool ejected;
    bool unhealthy;             /* failing its active health checks */
    int ejections;              /* times ejected so far */
} tern_lb_endpoint_stats;

struct tern_balancer_stats {
    size_t endpoints;
    size_t ejected;
    size_t unhealthy;
    uint64_t picks;
    uint64_t ejections;         /* ever */
};

/* The balancer's counts now.  0. */
int tern_balancer_stats(const tern_balancer *b, struct tern_balancer_stats *out);
/* Up to n endpoints' stats into out, in the order of the last update;
 * returns how many there are (which may exceed n). */
size_t tern_balancer_endpoint_stats(const tern_balancer *b, tern_lb_endpoint_stats *out, size_t n);

/* ---- resolvers ---- */

typedef struct tern_resolver tern_resolver;

/* A new set (the whole of it; n may be 0), or err < 0 when resolving
 * failed (eps NULL: consumers keep the set they have).  Called from the
 * resolver's coroutine or from tern_resolver_watch itself; must not block
 * for long. */
typedef void tern_resolver_update_fn(const tern_endpoint *eps, size_t n, int err, void *arg);

/* A resolver of one's own (etcd, Kubernetes, Consul): start begins
 * delivering updates through update(arg) (the first one soon, ideally
 * before start returns), stop ends them and waits until no update is
 * running or will run, free releases impl.  start may spawn coroutines. */
typedef struct tern_resolver_ops {
    int (*start)(void *impl, tern_resolver_update_fn *update, void *arg);
    void (*stop)(void *impl);
    void (*free)(void *impl);
} tern_resolver_ops;

/* Wrap ops/impl (ops borrowed; impl owned from now on, freed by
 * tern_resolver_free, also when this fails). */
int tern_resolver_new(const tern_resolver_ops *ops, void *impl, tern_resolver **out);

/* A fixed set (copied). */
int tern_resolver_static_new(const tern_endpoint *eps, size_t n, tern_resolver **out);

typedef struct tern_resolver_file_options {
    int64_t poll_interval;      /* ns between looks at the file; 0: 1 s */
} tern_resolver_file_options;

/* Endpoints from a file, read again when it changes (its mtime, size or
 * inode: a ConfigMap's symlink swap counts).  Either JSON, an array of
 * {"addr": "...", "weight": n} or of strings, or lines of "addr [weight]"
 * with '#' comments.  A file that is missing or malformed is reported as
 * an update with err (-ENOENT, -EBADMSG) and the last good set stays.
 * Must be created and freed in a coroutine (its watcher is one). */
int tern_resolver_file_new(const char *path, const tern_resolver_file_options *o,
                           tern_resolver **out);

typedef struct tern_resolver_dns_options {
    bool srv;                   /* target is an SRV name ("_grpc._tcp.orders.shop.svc"):
                                   its records of the lowest priority, each
                                   target resolved, the record's weight the
                                   endpoint's.  false: target is "host:port"
                                   (or "[v6]:port") and its A/AAAA records
                                   are the endpoints */
    int family;                 /* AF_UNSPEC (0: both), AF_INET, AF_INET6 */
    const char *servers;        /* "127.0.0.1:5353,[::1]:53" (copied); NULL:
                                   the system's (/etc/resolv.conf, and
                                   /etc/hosts first) */
    int64_t min_refresh;        /* ns; 0: 1 s.  The TTL-driven refresh is
                                   clamped to [min, max], and after a failure
                                   the next try waits min, doubling to max */
    int64_t max_refresh;        /* ns; 0: 30 s */
    int64_t timeout;            /* ns for one lookup (two tries); 0: 5 s */
} tern_resolver_dns_options;

/* Endpoints from DNS (c-ares, on the netpoller: no thread), looked up again
 * when the shortest TTL of the answer ends.  Each change is delivered as a
 * new set (sorted by address); a failed lookup (-ENOENT: no such name or
 * no records; -ETIMEDOUT; -ECONNREFUSED) is delivered as an error once per
 * kind, and the last good set stays.  -EINVAL for a target without a port
 * (A/AAAA) or bad options; -ENOTSUP where tern was built without c-ares.
 * Create and free it in a coroutine. */
int tern_resolver_dns_new(const char *target, const tern_resolver_dns_options *o, tern_resolver **out);

typedef struct tern_resolver_etcd_options {
    const char *endpoint;       /* etcd's client URL: "http://127.0.0.1:2379"
                                   (https:// with tls), or several members'
                                   comma-separated: a call goes to the one
                                   that answered last, the next when it
                                   cannot be reached or has no leader */
    tern_tls_config *tls;       /* borrowed; NULL: the system's trust */
    const char *prefix;         /* the keys to follow: "/services/orders/" */
    int64_t retry_min;          /* ns before reconnecting; 0: 500 ms, doubling */
    int64_t retry_max;          /* ns; 0: 10 s */
} tern_resolver_etcd_options;

/* Endpoints registered in etcd v3 under a prefix (through its JSON
 * gateway, /v3/...): the range at a revision, then a watch from the next
 * one, resumed after a disconnect from the last revision seen, the whole
 * range read again when etcd compacted past it.  A key's value is the
 * endpoint: "host:port" or {"addr": "host:port", "weight": n}.  Strings
 * copied.  -EINVAL (no prefix, an endpoint URL that is not http(s)://).
 * Create and free it in a coroutine. */
int tern_resolver_etcd_new(const tern_resolver_etcd_options *o, tern_resolver **out);

/* ---- registration ---- */

/* An instance's own key in etcd, bound to a lease kept alive at a third of
 * its TTL and revoked when freed: it vanishes at once on a graceful stop
 * and within the TTL after a crash.  When the lease is found gone (an
 * outage longer than the TTL) the key is put again under a new one. */
typedef struct tern_etcd_registration tern_etcd_registration;

typedef struct tern_etcd_registration_options {
    const char *endpoint;       /* as tern_resolver_etcd_options */
    tern_tls_config *tls;
    const char *key;            /* "/services/orders/10.0.0.7:8080" */
    const char *value;          /* the endpoint: "10.0.0.7:8080" or its JSON */
    int64_t ttl;                /* ns, whole seconds (rounded up, at least 2);
                                   0: 10 s */
} tern_etcd_registration_options;

/* Grant the lease and put the key (bounded by ctx), then keep it alive in
 * a coroutine.  0; -EINVAL; the etcd call's error (-ECONNREFUSED, ...).
 * From a coroutine. */
int tern_etcd_registration_new(const tern_etcd_registration_options *o, tern_etcd_registration **out,
                               tern_ctx *ctx);
/* The lease the key is bound to now, and how many times the key was put
 * (1, plus one for each re-registration after a lost lease). */
int64_t tern_etcd_registration_lease(const tern_etcd_registration *r);
uint64_t tern_etcd_registration_count(const tern_etcd_registration *r);
/* Stop the keepalive and revoke the lease (up to 2 s; if etcd is away the
 * key ends with its lease).  NULL: a no-op.  From a coroutine. */
void tern_etcd_registration_free(tern_etcd_registration *r);

/* Start delivering this resolver's updates to fn(arg): one watcher per
 * resolver (-EBUSY for a second).  The first update may be delivered
 * before this returns.  -errno from the resolver's start. */
int tern_resolver_watch(tern_resolver *r, tern_resolver_update_fn *fn, void *arg);

/* Stop delivering to the watcher: when this returns no update is running
 * or will run (the resolver itself keeps running until freed; it cannot be
 * watched again).  From a coroutine. */
void tern_resolver_unwatch(tern_resolver *r);

/* Wait until the resolver delivered its first update (a set or an
 * error): 0, or the update's error, or -ETIMEDOUT/-ECANCELED. */
int tern_resolver_wait(tern_resolver *r, tern_ctx *ctx);

/* Stop (waiting for a running update) and release.  NULL: a no-op. */
void tern_resolver_free(tern_resolver *r);

/* The gRPC channel's resolver interface over a tern_resolver: with
 * tern_grpc_channel_options .resolver = tern_resolver_grpc() and
 * .resolver_arg = r, the channel dials what r delivers (r borrowed: it
 * must outlive the channel, which becomes its one watcher; the channel's
 * free unwatches it).  tern_grpc_channel_new waits for r's first update and
 * fails with its error (-ENOENT, -ECONNREFUSED, ...); later failures keep
 * the channel's addresses. */
struct tern_grpc_resolver;
const struct tern_grpc_resolver *tern_resolver_grpc(void);

/* A balancer as a gRPC channel's picker: with tern_grpc_channel_options
 * .picker = tern_balancer_grpc_picker() and .picker_arg = b (borrowed: it
 * must outlive the channel), each call attempt goes to the address b
 * picks (a call's affinity_key for the hash policies), and its latency
 * and outcome come back to b (UNAVAILABLE, a failed dial, an address in
 * connection backoff: TERN_LB_FAILED; the caller's ctx ending:
 * TERN_LB_LOCAL), so p2c weighs replicas by latency and outlier ejection
 * takes failing ones out.  The channel feeds b its address sets (with
 * .resolver = tern_resolver_grpc(), the resolver's endpoints and
 * weights): b must not follow a resolver itself, nor be updated by
 * anyone else.  One balancer per channel. */
struct tern_grpc_picker;
const struct tern_grpc_picker *tern_balancer_grpc_picker(void);

/* A balancer as an HTTP client's picker: with tern_http_client_options
 * .picker = tern_balancer_http_picker(), .picker_arg = b (borrowed: it
 * must outlive the client) and .picker_host = "orders", a request for
 * http://orders/... goes to the endpoint b picks (the request's
 * affinity_key for the hash policies), over that endpoint's own pool,
 * and b hears how it went (a 5xx or a failed connection:
 * TERN_LB_FAILED).  b gets its endpoints as usual: tern_balancer_follow
 * of a resolver, or tern_balancer_update.  A balancer may serve several
 * clients. */
struct tern_http_picker;
const struct tern_http_picker *tern_balancer_http_picker(void);

/* Feed r's updates to b (b keeps its set when r reports an error).  r is
 * borrowed and must be freed before b.  -EBUSY if r already has a
 * watcher. */
int tern_balancer_follow(tern_balancer *b, tern_resolver *r);

#ifdef __cplusplus
}
#endif
#endif
