/*
 * shop.h - what the shop's services share: the process (shop_app) that
 * runs one or more roles, each role a tern_service carrying its gRPC
 * server, and the small helpers every service uses (ids, clocks, SQL
 * parameters).
 *
 * A role's life, driven by app.c:
 *   init   open its SQLite file in the data directory, make its schema,
 *          register its gRPC service on role->grpc (and set role->outbox
 *          if it publishes events);
 *          then the runner makes the tern_service (listening: every port
 *          in the process is known before any role starts);
 *   start  (the service's start function: readiness waits for it) open
 *          channels to the roles it calls, subscribe to the events it
 *          consumes, start background work;
 *          then the runner starts the outbox relays, after every
 *          subscription exists (the in-process bus gives a group only
 *          the events published after it subscribed);
 *   stop   after the service drained: stop background work and
 *          subscriptions, free channels and state (the runner then stops
 *          the relay and closes the database).
 *
 * Only include/tern/ is used: the shop is the proof that the public API
 * suffices for a system of services.
 */
#ifndef SHOP_H
#define SHOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tern/tern.h>
#include <tern/events.h>
#include <tern/grpc.h>
#include <tern/grpc_reflection.h>
#include <tern/health_grpc.h>
#include <tern/sqlite.h>
#include <tern/trace.h>
#include <tern/discovery.h>

#include "common/db.h"

/* The roles; the first SHOP_NSERVICES are the gRPC services, then the
 * gateway in front of them. */
typedef enum shop_role_id {
    SHOP_USERS,
    SHOP_CATALOG,
    SHOP_INVENTORY,
    SHOP_ORDERS,
    SHOP_PAYMENTS,
    SHOP_GATEWAY,
    SHOP_NROLES,
} shop_role_id;

#define SHOP_NSERVICES 5
/* The roles' bits: every gRPC service. */
#define SHOP_SERVICES ((1u << SHOP_NSERVICES) - 1)

typedef struct shop_app shop_app;
typedef struct shop_role shop_role;

typedef struct shop_role_ops {
    const char *name;                           /* "orders": its config keys, file, metrics */
    /* No database and no gRPC server: init sets role->handler, which
     * serves every request the probes and /metrics do not (the gateway). */
    bool http_only;
    /* Its store may be PostgreSQL (pg.url): its SQL is written for both
     * through r->store; the others use r->db, always SQLite. */
    bool pg;
    /* It publishes or subscribes to events: a process with no such role
     * needs no NATS even when events.nats is set (production's shared
     * configuration), so users, catalog, inventory and the gateway start
     * without it. */
    bool events;
    int (*init)(shop_role *r);
    int (*start)(shop_role *r);                 /* NULL: nothing to start */
    void (*stop)(shop_role *r);                 /* NULL: nothing to stop */
} shop_role_ops;

struct shop_role {
    shop_app *app;
    shop_role_id id;
    const shop_role_ops *ops;
    tern_config *cfg;                           /* the app's */
    tern_sqlite *db;                            /* <data_dir>/<name>.db, opened by the runner; NULL on PostgreSQL */
    shop_db *store;                             /* r->db's or PostgreSQL's (ops->pg and pg.url) */
    tern_outbox *outbox;                        /* set by init if the role publishes */
    tern_outbox_relay *relay;
    tern_grpc_server *grpc;
    tern_http_router *rt;
    tern_service *svc;
    void *state;                                /* the service's own */
    tern_http_handler_fn *handler;              /* http_only: set by init */
    void *handler_arg;
    bool started;                               /* start ran and succeeded */
    bool inited;                                /* init succeeded and stop has not run */
};

/* The default of users.jwt_secret: for a demo on one machine only (the
 * users service warns when it signs with it).  HS256 wants at least 32
 * bytes of secret (RFC 7518 3.2). */
#define SHOP_DEV_JWT_SECRET "shop-development-secret-change-me"

/* The events between the services: topic "orders" carries OrderCreated
 * (shop.orders.v1.OrderCreated), topic "payments" the payment's outcome
 * (shop.payments.v1.PaymentOutcome under either type). */
#define SHOP_EVENT_ORDER_CREATED "shop.orders.v1.OrderCreated"
#define SHOP_EVENT_PAYMENT_SUCCEEDED "shop.payments.v1.PaymentSucceeded"
#define SHOP_EVENT_PAYMENT_FAILED "shop.payments.v1.PaymentFailed"

/* ---- the process --------------------------------------------------------- */

/* The configuration every role reads (keys in config.c; env SHOP_...).
 * argv[0] is skipped.  0, 1 (--help: text printed to stdout), -EINVAL
 * (the reason printed to stderr). */
int shop_config_new(int argc, char **argv, tern_config **out);

/* The roles a list names ("all", or "catalog,inventory"), as a bit per
 * shop_role_id.  -EINVAL naming the unknown role in err. */
int shop_roles_parse(const char *list, unsigned *mask, char *err, size_t errlen);

typedef struct shop_app_options {
    unsigned roles;                             /* bits of shop_role_id */
    bool no_signals;                            /* stop only by shop_app_stop or ctx */
    bool no_seed;                               /* never seed the catalog (config "seed" too) */
} shop_app_options;

/* Open the roles' databases, register their services, listen on their
 * addresses.  cfg is borrowed.  From a coroutine.  On failure *out is NULL
 * and the reason logged. */
int shop_app_new(tern_config *cfg, const shop_app_options *o, shop_app **out);
/* Start the roles and serve until SIGINT/SIGTERM, shop_app_stop or ctx's
 * end, then stop gracefully.  0 or the first role's error. */
int shop_app_run(shop_app *app, tern_ctx *ctx);
/* Ask a running app to stop (any coroutine). */
void shop_app_stop(shop_app *app);
/* Wait until every role of the app is ready (and the seed, if any, is
 * done): 0, or ctx's error, or -ESHUTDOWN once the app stopped. */
int shop_app_wait_ready(shop_app *app, tern_ctx *ctx);
/* After run returned (or instead).  NULL: no-op. */
void shop_app_free(shop_app *app);

/* Where a role is reached: its real address when it runs in this process,
 * else its configured one. */
const char *shop_app_addr(const shop_app *app, shop_role_id id);
/* A channel to a role (in this process or not); the caller frees it. */
int shop_app_channel(shop_app *app, shop_role_id id, tern_grpc_channel **out);
/* The process's event bus (in-process, or JetStream with events.nats). */
tern_events_bus *shop_app_bus(shop_app *app);
/* Cancelled when the app stops: bounds the roles' background work. */
tern_ctx *shop_app_ctx(shop_app *app);
/* Run fn(arg) as background work of the app (under shop_app_ctx); the app
 * waits for it after the services drained and before the roles stop.
 * From a role's start. */
int shop_app_go(shop_app *app, tern_fn *fn, void *arg);


/* The roles' operations (services/<name>/). */
extern const shop_role_ops shop_users_ops, shop_catalog_ops, shop_inventory_ops, shop_orders_ops,
    shop_payments_ops;
extern const shop_role_ops shop_gateway_ops;

/* ---- helpers -------------------------------------------------------------- */

/* A fresh id: prefix and 16 random hex digits ("o-3f9c...").  buf holds
 * at least SHOP_ID_MAX bytes. */
#define SHOP_ID_MAX 40
void shop_id_new(const char *prefix, char *buf);
/* A uniform random number in [0, 1). */
double shop_random(void);
/* Pack m into a malloc'd buffer (*len bytes); NULL: out of memory. */
void *shop_pack(const ProtobufCMessage *m, size_t *len);
/* Wall clock, Unix ms. */
int64_t shop_now_ms(void);
/* v as decimal text into buf (SHOP_I64_MAX bytes); returns buf. */
#define SHOP_I64_MAX 24
const char *shop_i64(char *buf, int64_t v);

/* Text parameters for tern_sqlite: SHOP_PARAMS("a", b, ...) (NULL: SQL NULL). */
#define SHOP_PARAMS(...)                                                               \
    (&(tern_sqlite_params){                                                            \
        .n = (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),       \
        .values = (const char *const[]){__VA_ARGS__}})

/* The column named col of row as text/int64 ("" / 0 when absent). */
const char *shop_col(const tern_sqlite_result *res, int row, const char *col);
int64_t shop_col_i64(const tern_sqlite_result *res, int row, const char *col);

/* A ctx bounded by the config's call timeout under parent (for calls a
 * service makes to another). */
int shop_call_ctx(shop_role *r, tern_ctx *parent, tern_ctx **out);
/* The call options every inter-service call uses: wait for the peer to
 * be connected (bounded by the call's ctx) rather than failing at once
 * while it starts (the trace context goes by the channel's kit
 * interceptors).  md is the caller's storage for the call. */
typedef struct shop_call_md {
    tern_grpc_call_options opts;
} shop_call_md;
const tern_grpc_call_options *shop_call_options(shop_call_md *md);
/* The calling coroutine's current span as a traceparent into buf
 * (TERN_TRACE_PARENT_LEN + 1 bytes; "" when there is none): events carry
 * it in their message, having no headers. */
void shop_traceparent(char *buf);
/* An event handler's CONSUMER span, a child of the traceparent its event
 * carried (NULL or "": a new trace), current in the calling coroutine
 * until shop_event_span_end (rc: the handler's result). */
typedef struct shop_event_span {
    tern_trace_span *span;
    tern_trace_scope scope;
} shop_event_span;
void shop_event_span_begin(shop_event_span *s, const char *name, const char *traceparent);
void shop_event_span_end(shop_event_span *s, int rc);

/* Fail the gRPC call with the status matching -errno rc and a message
 * (rc's text when msg is NULL); returns rc's errno for the code. */
int shop_fail(tern_grpc_call *call, int rc, const char *what);

#endif
