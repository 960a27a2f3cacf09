/*
 * app.c - one process of the shop: the roles it runs, each a tern_service
 * carrying its gRPC server, on one event bus.
 *
 * Every role listens before any starts, so `shop all` can run them on
 * port 0 (tests) and still point each at its neighbours' real ports;
 * they call each other over gRPC on loopback exactly as separate processes
 * would.  One signal watcher serves all the roles (a signal goes to one
 * waiter only, so the services themselves take none: no_signals), and one
 * ctx (app->ctx, cancelled when the app stops) bounds the background work
 * the roles start with shop_app_go.
 *
 * Stopping: every service is asked once (a second request, from a second
 * signal, is passed on and makes theirs immediate); they drain in
 * parallel; then the background work ends, the roles stop (subscriptions
 * first), the relays stop, and the databases close.
 */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/app.h"
#include "common/seed.h"

static const shop_role_ops *const role_ops[SHOP_NROLES] = {
    [SHOP_USERS] = &shop_users_ops,
    [SHOP_CATALOG] = &shop_catalog_ops,
    [SHOP_INVENTORY] = &shop_inventory_ops,
    [SHOP_ORDERS] = &shop_orders_ops,
    [SHOP_PAYMENTS] = &shop_payments_ops,
    [SHOP_GATEWAY] = &shop_gateway_ops,
};

static const char *const role_names[SHOP_NROLES] = {
    "users", "catalog", "inventory", "orders", "payments",
    "gateway",
};

int shop_roles_parse(const char *list, unsigned *mask, char *err, size_t errlen)
{
    *mask = 0;
    const char *p = list;
    while (p && *p) {
        size_t n = strcspn(p, ",");
        bool found = false;
        if (n == 3 && !strncmp(p, "all", 3)) {
            *mask |= (1u << SHOP_NROLES) - 1;
            found = true;
        }
        for (int i = 0; i < SHOP_NROLES && !found; i++)
            if (strlen(role_names[i]) == n && !strncmp(p, role_names[i], n)) {
                *mask |= 1u << i;
                found = true;
            }
        if (!found) {
            snprintf(err, errlen, "unknown role \"%.*s\" (all, users, catalog, inventory, orders, payments%s)",
                     (int)n, p, SHOP_NROLES > SHOP_NSERVICES ? ", gateway" : "");
            return -EINVAL;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (!*mask) {
        snprintf(err, errlen, "no role given");
        return -EINVAL;
    }
    return 0;
}

/* The metrics families live in the default registry, once per process
 * (a second set in one registry is refused): a test that runs the app
 * twice shares them. */
static tern_once metrics_once = TERN_ONCE_INIT;
static tern_sqlite_metrics *sqlite_metrics;
static tern_events_metrics *events_metrics;
static tern_pg_metrics *pg_metrics;

static void metrics_init(void *arg)
{
    (void)arg;
    tern_metrics_runtime_register(NULL);
    if (tern_sqlite_metrics_new(NULL, &sqlite_metrics) < 0)
        sqlite_metrics = NULL;
    if (tern_events_metrics_new(NULL, &events_metrics) < 0)
        events_metrics = NULL;
    if (tern_pg_metrics_new(NULL, &pg_metrics) < 0)
        pg_metrics = NULL;
}

const char *shop_app_addr(const shop_app *app, shop_role_id id)
{
    return app->addr[id];
}

tern_events_bus *shop_app_bus(shop_app *app)
{
    return app->bus;
}

tern_ctx *shop_app_ctx(shop_app *app)
{
    return app->ctx;
}

int shop_app_go(shop_app *app, tern_fn *fn, void *arg)
{
    return tern_group_go(app->bg, fn, arg, NULL);
}

/* A channel following <discovery.prefix><role>/ in etcd: every replica
 * registered there, round robin; one leaving (its lease revoked or run
 * out) leaves the channel.  Roles of this process are reached directly. */
static int etcd_channel(shop_app *app, shop_role_id id, tern_grpc_channel **out)
{
    const char *ep = tern_config_str(app->cfg, "etcd");     /* every member: the client fails over */
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s%s/", tern_config_str(app->cfg, "discovery.prefix"), role_names[id]);
    tern_resolver *res;
    int rc = tern_resolver_etcd_new(&(tern_resolver_etcd_options){.endpoint = ep, .prefix = prefix}, &res);
    if (rc < 0)
        return rc;
    tern_mutex_lock(&app->mu);
    tern_resolver **grown = realloc(app->resolvers, (app->nresolvers + 1) * sizeof *grown);
    if (grown) {
        app->resolvers = grown;
        grown[app->nresolvers++] = res;
    }
    tern_mutex_unlock(&app->mu);
    if (!grown) {
        tern_resolver_free(res);
        return -ENOMEM;
    }
    /* the authority a role's name: the target (a key prefix) is no host */
    tern_grpc_channel_options o = {.resolver = tern_resolver_grpc(), .resolver_arg = res,
                                   .authority = role_names[id], .lb_policy = "round_robin"};
    o.interceptors = tern_grpc_kit_client_interceptors(&o.n_interceptors);
    char target[64];
    snprintf(target, sizeof target, "etcd:%s", role_names[id]);
    return tern_grpc_channel_new(target, &o, out);
}

int shop_app_channel(shop_app *app, shop_role_id id, tern_grpc_channel **out)
{
    bool etcd = *tern_config_str(app->cfg, "etcd") && !app->on[id];
    /* the kit's client interceptors: metrics, and a CLIENT span whose
     * traceparent goes in the call's metadata */
    tern_grpc_channel_options o = {0};
    o.interceptors = tern_grpc_kit_client_interceptors(&o.n_interceptors);
    int rc = etcd ? etcd_channel(app, id, out) : tern_grpc_channel_new(app->addr[id], &o, out);
    if (rc < 0)
        tern_log_error("shop: channel", TERN_LOG_STR("to", role_names[id]),
                       TERN_LOG_STR("addr", app->addr[id]), TERN_LOG_STR("error", tern_strerror(rc)));
    return rc;
}

static int make_dir(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The address other processes reach role r at: discovery.advertise's
 * host with the port r listens on (or the whole of it, host:port, for
 * a process of one role), else the address r listens on. */
static void advertised(const shop_app *app, const shop_role *r, char *buf, size_t len)
{
    const char *adv = tern_config_str(app->cfg, "discovery.advertise");
    const char *addr = app->addr[r->id];
    const char *port = strrchr(addr, ':');
    if (!*adv)
        snprintf(buf, len, "%s", addr);
    else if (strchr(adv, ':') || !port)
        snprintf(buf, len, "%s", adv);
    else
        snprintf(buf, len, "%s%s", adv, port);
}

/* With etcd: r's key <discovery.prefix><role>/<addr> under a lease kept
 * alive while r runs; registered once r started, so the key means ready. */
static int etcd_register(shop_role *r)
{
    shop_app *app = r->app;
    if (!*tern_config_str(app->cfg, "etcd") || r->ops->http_only)
        return 0;
    const char *ep = tern_config_str(app->cfg, "etcd");
    char addr[160], key[512];
    advertised(app, r, addr, sizeof addr);
    snprintf(key, sizeof key, "%s%s/%s", tern_config_str(app->cfg, "discovery.prefix"), r->ops->name, addr);
    tern_ctx *ctx;
    int rc = tern_ctx_with_timeout(app->ctx, 10 * TERN_SEC, &ctx);
    if (rc < 0)
        return rc;
    tern_etcd_registration_options o = {.endpoint = ep, .key = key, .value = addr,
                                        .ttl = tern_config_duration(app->cfg, "discovery.ttl")};
    tern_etcd_registration *reg = NULL;
    rc = tern_etcd_registration_new(&o, &reg, ctx);
    tern_ctx_free(ctx);
    tern_mutex_lock(&app->mu);
    bool late = app->stopping;          /* a stop came while registering: undo it */
    if (!late)
        app->reg[r->id] = reg;
    tern_mutex_unlock(&app->mu);
    if (late)
        tern_etcd_registration_free(reg);
    if (rc < 0)
        tern_log_error("shop: etcd registration", TERN_LOG_STR("etcd", ep), TERN_LOG_STR("key", key),
                       TERN_LOG_STR("error", tern_strerror(rc)));
    return rc;
}

/* The service's start function: the role's start, counted so the app
 * knows when every subscription exists. */
static int role_start(void *arg)
{
    shop_role *r = arg;
    int rc = r->ops->start ? r->ops->start(r) : 0;
    if (rc == 0)
        rc = etcd_register(r);
    if (rc < 0)
        tern_log_error("shop: role failed to start", TERN_LOG_STR("role", r->ops->name),
                       TERN_LOG_STR("error", tern_strerror(rc)));
    shop_app *app = r->app;
    tern_mutex_lock(&app->mu);
    r->started = rc == 0;
    app->nstarted++;
    tern_cond_broadcast(&app->cond);
    tern_mutex_unlock(&app->mu);
    return rc;
}

static int grpc_server_new(shop_role *r);

/* Readiness: the role's database answers (a full disk, a corrupt file or
 * an unreachable PostgreSQL takes the role out of its load balancer
 * instead of failing its calls). */
static int db_check(char *msg, size_t len, tern_ctx *ctx, void *arg)
{
    shop_role *r = arg;
    return shop_db_ping(r->store, msg, len, ctx);
}

/* A gRPC service's database (<data_dir>/<name>.db, or PostgreSQL at
 * pg.url for the roles that may use it) and server. */
static int open_grpc_role(shop_role *r)
{
    const char *name = r->ops->name;
    const char *pg = tern_config_str(r->cfg, "pg.url");
    if (r->ops->pg && *pg) {
        int rc = shop_db_pg(pg, name, pg_metrics, &r->store);
        if (rc < 0) {
            tern_log_error("shop: pg.url", TERN_LOG_STR("role", name), TERN_LOG_STR("error", tern_strerror(rc)));
            return rc;
        }
        return grpc_server_new(r);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.db", tern_config_str(r->cfg, "data_dir"), name);
    tern_sqlite_options so = {.metrics = sqlite_metrics, .name = name, .synchronous_normal = true};
    tern_sqlite_error serr = {0};
    int rc = tern_sqlite_new(path, &so, &r->db, &serr);
    if (rc < 0) {
        tern_log_error("shop: database", TERN_LOG_STR("file", path), TERN_LOG_STR("error", tern_strerror(rc)),
                       TERN_LOG_STR("sqlite", serr.message));
        return rc;
    }
    if ((rc = shop_db_sqlite(r->db, &r->store)) < 0)
        return rc;
    return grpc_server_new(r);
}

static int grpc_server_new(shop_role *r)
{
    /* the kit's: metrics (go-grpc-prometheus's names) outermost, then each
     * call's SERVER span, current in its handler */
    int rc = tern_grpc_server_new(NULL, &r->grpc);
    if (rc == 0)
        rc = tern_grpc_server_use_kit(r->grpc);
    return rc;
}

static int role_new(shop_app *app, shop_role_id id)
{
    shop_role *r = &app->roles[id];
    r->app = app;
    r->id = id;
    r->ops = role_ops[id];
    r->cfg = app->cfg;
    const char *name = r->ops->name;

    int rc = r->ops->http_only ? 0 : open_grpc_role(r);
    if (rc < 0)
        return rc;
    if ((rc = r->ops->init(r)) < 0) {
        tern_log_error("shop: role failed to initialise", TERN_LOG_STR("role", name),
                       TERN_LOG_STR("error", tern_strerror(rc)));
        return rc;
    }
    r->inited = true;
    if (r->ops->http_only) {
        /* the probes and /metrics are routes; everything else is the
         * role's, with the kit's request id, tracing, metrics and access
         * log around it */
        assert(r->handler);
        tern_http_router_options ro = {.not_found = r->handler, .not_found_arg = r->handler_arg};
        if ((rc = tern_http_router_new(&ro, &r->rt)) < 0)
            return rc;
        tern_http_router_use(r->rt, tern_http_mw_request_id, NULL);
        tern_http_router_use(r->rt, tern_http_mw_trace, NULL);
        tern_http_router_use(r->rt, tern_http_mw_metrics, NULL);
        tern_http_router_use(r->rt, tern_http_mw_access_log, NULL);
    } else {
        if ((rc = tern_grpc_server_enable_reflection(r->grpc)) < 0)
            return rc;
        /* One port for gRPC (h2c), the probes and /metrics: the gRPC server
         * is the router's first middleware, so a gRPC call never reaches a
         * route and everything else never reaches the gRPC server. */
        if ((rc = tern_http_router_new(NULL, &r->rt)) < 0)
            return rc;
        tern_http_router_use(r->rt, tern_grpc_server_http_handler, r->grpc);
    }
    tern_http_router_handle(r->rt, "GET", "/metrics", tern_metrics_handler, NULL);

    char key[64], admin_key[64];
    snprintf(key, sizeof key, "%s.addr", name);
    snprintf(admin_key, sizeof admin_key, "%s.admin", name);
    tern_service_options svo = {
        .http = {.handler = tern_http_router_serve, .arg = r->rt,
                 /* streams last as long as their calls; messages are
                  * limited one by one by the gRPC server */
                 .max_body_bytes = -1, .read_body_timeout = -1, .write_timeout = -1},
        .addr = tern_config_str(app->cfg, key),
        .admin_addr = tern_config_str(app->cfg, admin_key),
        .start = role_start,
        .start_arg = r,
        .pre_stop_delay = tern_config_duration(app->cfg, "shutdown.pre_stop"),
        .drain_timeout = tern_config_duration(app->cfg, "shutdown.drain"),
        .no_signals = true,
    };
    if ((rc = tern_service_new(&svo, &r->svc)) < 0) {
        tern_log_error("shop: listen", TERN_LOG_STR("role", name), TERN_LOG_STR("addr", svo.addr),
                       TERN_LOG_STR("admin", svo.admin_addr), TERN_LOG_STR("error", tern_strerror(rc)));
        return rc;
    }
    tern_health *h = tern_service_health(r->svc);
    if ((rc = tern_health_mount(r->rt, h)) < 0 || (r->grpc && (rc = tern_health_grpc_register(r->grpc, h)) < 0) ||
        (r->store && (rc = tern_health_add(h, "db", TERN_HEALTH_READINESS, 0, db_check, r)) < 0))
        return rc;
    snprintf(app->addr[id], sizeof app->addr[id], "%s", tern_http_server_addr(tern_service_server(r->svc)));
    return 0;
}

/* The event bus: in-process (every role in this process), or NATS
 * JetStream (events.nats: roles in several processes; the stream keeps
 * what a stopped consumer has not taken, and a durable consumer per group
 * resumes where it was).  A process none of whose roles has events keeps
 * the in-process bus, unused, instead of depending on a NATS it never
 * talks to. */
static int bus_new(shop_app *app)
{
    bool events = false;
    for (int i = 0; i < SHOP_NROLES; i++)
        events |= (app->opts.roles & (1u << i)) && role_ops[i]->events;
    const char *servers = events ? tern_config_str(app->cfg, "events.nats") : "";
    tern_events_transport t;
    int rc;
    if (!*servers) {
        rc = tern_events_inproc_transport(&t);
    } else {
        tern_ctx *ctx;
        if ((rc = tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx)) < 0)
            return rc;
        tern_nats_options no = {.servers = servers, .name = "shop",
                                .ping_interval = tern_config_duration(app->cfg, "events.ping_interval")};
        rc = tern_nats_new(&no, &app->nats, ctx);
        tern_ctx_free(ctx);
        if (rc < 0) {
            tern_log_error("shop: events.nats", TERN_LOG_STR("servers", servers),
                           TERN_LOG_STR("error", tern_strerror(rc)));
            return rc;
        }
        rc = tern_events_jetstream_transport(
            app->nats, &(tern_events_jetstream_options){.stream = "SHOP", .subject_prefix = "shop"}, &t);
    }
    if (rc < 0)
        return rc;
    return tern_events_bus_new(&t, &(tern_events_bus_options){.name = "shop", .metrics = events_metrics}, &app->bus);
}

int shop_app_new(tern_config *cfg, const shop_app_options *o, shop_app **out)
{
    *out = NULL;
    shop_app *app = calloc(1, sizeof *app);
    if (!app)
        return -ENOMEM;
    app->cfg = cfg;
    app->opts = o ? *o : (shop_app_options){.roles = (1u << SHOP_NROLES) - 1};
    tern_once_do(&metrics_once, metrics_init, NULL);
    for (int i = 0; i < SHOP_NROLES; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.addr", role_names[i]);
        snprintf(app->addr[i], sizeof app->addr[i], "%s", tern_config_str(cfg, key));
    }

    const char *dir = tern_config_str(cfg, "data_dir");
    int rc = make_dir(dir);
    if (rc < 0) {
        tern_log_error("shop: data directory", TERN_LOG_STR("dir", dir), TERN_LOG_STR("error", tern_strerror(rc)));
        free(app);
        return rc;
    }
    if ((rc = bus_new(app)) < 0) {
        shop_app_free(app);
        return rc;
    }
    for (int i = 0; i < SHOP_NROLES; i++) {
        if (!(app->opts.roles & (1u << i)))
            continue;
        app->on[i] = true;
        app->nroles++;
        if ((rc = role_new(app, i)) < 0) {
            shop_app_free(app);
            return rc;
        }
    }
    *out = app;
    return 0;
}

/* Take role id's key out of etcd (revoking its lease), once. */
static void deregister(shop_app *app, int id)
{
    tern_mutex_lock(&app->mu);
    tern_etcd_registration *reg = app->reg[id];
    app->reg[id] = NULL;
    tern_mutex_unlock(&app->mu);
    tern_etcd_registration_free(reg);
}

/* Stop every service, once; a second external request (a second signal)
 * is passed on, which makes their stops immediate.  The etcd keys go
 * while the services are in their pre-stop delay (readiness false,
 * still serving), so callers following etcd leave before the drain. */
static void app_stop(shop_app *app, bool external)
{
    tern_mutex_lock(&app->mu);
    bool again = app->stopping;
    if (again && !external) {
        tern_mutex_unlock(&app->mu);
        return;
    }
    app->stopping = true;
    if (app->ctx)
        tern_ctx_cancel(app->ctx);
    tern_cond_broadcast(&app->cond);
    tern_mutex_unlock(&app->mu);
    for (int i = 0; i < SHOP_NROLES; i++)
        if (app->on[i] && app->roles[i].svc)
            tern_service_stop(app->roles[i].svc);
    for (int i = 0; i < SHOP_NROLES; i++)
        deregister(app, i);
}

void shop_app_stop(shop_app *app)
{
    app_stop(app, true);
}

int shop_app_wait_ready(shop_app *app, tern_ctx *ctx)
{
    int rc = 0;
    tern_mutex_lock(&app->mu);
    while (!app->ready && !app->stopping && rc == 0)
        rc = tern_cond_wait(&app->cond, &app->mu, ctx);
    if (rc == 0 && !app->ready)
        rc = -ESHUTDOWN;
    tern_mutex_unlock(&app->mu);
    return rc;
}

typedef struct role_run {
    shop_app *app;
    shop_role *r;
} role_run;

static int run_role(void *arg)
{
    role_run *rr = arg;
    int rc = tern_service_run(rr->r->svc, NULL);
    deregister(rr->app, rr->r->id);
    if (rc < 0)
        tern_log_error("shop: role stopped", TERN_LOG_STR("role", rr->r->ops->name),
                       TERN_LOG_STR("error", tern_strerror(rc)));
    tern_mutex_lock(&rr->app->mu);
    if (rc < 0 && rr->app->first_err == 0)
        rr->app->first_err = rc;
    tern_mutex_unlock(&rr->app->mu);
    app_stop(rr->app, false);           /* one role gone: the process goes */
    return 0;
}

/* Sent rows stay in an outbox until purged: every outbox.retention (at
 * most a minute), those sent longer ago than that go. */
static int purger(void *arg)
{
    shop_app *app = arg;
    int64_t keep = tern_config_duration(app->cfg, "outbox.retention");
    int64_t every = keep < 60 * TERN_SEC ? keep : 60 * TERN_SEC;
    while (tern_ctx_sleep(every, app->ctx) == 0) {
        for (int i = 0; i < SHOP_NROLES; i++) {
            int64_t gone = 0;
            int rc = app->on[i] && app->roles[i].outbox ? tern_outbox_purge(app->roles[i].outbox, keep, &gone, app->ctx)
                                                         : 0;
            if (rc < 0 && rc != -ECANCELED)
                tern_log_warn("shop: outbox purge failed", TERN_LOG_STR("role", role_names[i]),
                              TERN_LOG_STR("error", tern_strerror(rc)));
            else if (gone > 0)
                tern_log_debug("shop: outbox purged", TERN_LOG_STR("role", role_names[i]), TERN_LOG_INT("rows", gone));
        }
    }
    return 0;
}

/* Once every role started (every subscription exists), the relays and
 * their purger; then the seed; then the app is ready. */
static int starter(void *arg)
{
    shop_app *app = arg;
    tern_mutex_lock(&app->mu);
    while (app->nstarted < app->nroles && !app->stopping)
        tern_cond_wait(&app->cond, &app->mu, NULL);
    bool go = !app->stopping;
    tern_mutex_unlock(&app->mu);
    for (int i = 0; go && i < SHOP_NROLES; i++) {
        shop_role *r = &app->roles[i];
        if (!app->on[i] || !r->outbox)
            continue;
        tern_outbox_relay_options ro = {.metrics = events_metrics, .name = r->ops->name, .poll_ns = 5 * TERN_MS};
        int rc = tern_outbox_relay_start(r->outbox, app->bus, &ro, &r->relay);
        if (rc < 0) {
            tern_log_error("shop: outbox relay", TERN_LOG_STR("role", r->ops->name),
                           TERN_LOG_STR("error", tern_strerror(rc)));
            app_stop(app, false);
            go = false;
        }
    }
    if (go && shop_app_go(app, purger, app) < 0)
        tern_log_warn("shop: no outbox purger (out of memory)");
    if (go && app->on[SHOP_CATALOG] && !app->opts.no_seed && tern_config_bool(app->cfg, "seed")) {
        int rc = shop_seed(app, app->ctx);
        if (rc < 0 && rc != -ECANCELED)
            tern_log_warn("shop: seeding the catalog failed", TERN_LOG_STR("error", tern_strerror(rc)));
    }
    tern_mutex_lock(&app->mu);
    app->ready = go && !app->stopping;
    tern_cond_broadcast(&app->cond);
    tern_mutex_unlock(&app->mu);
    if (app->ready) {
        for (int i = 0; i < SHOP_NROLES; i++)
            if (app->on[i])
                tern_log_info("shop: serving", TERN_LOG_STR("role", role_names[i]),
                              TERN_LOG_STR("addr", app->addr[i]));
    }
    return 0;
}

/* The process's SIGINT/SIGTERM, for every role.  Waits with no deadline
 * (an idle shop wakes for nothing); once the app is done, shop_app_run
 * raises a SIGTERM of its own to end the wait. */
static int signal_watcher(void *arg)
{
    shop_app *app = arg;
    const int sigs[] = {SIGINT, SIGTERM};
    for (;;) {
        int sig = tern_signal_wait(sigs, 2, TERN_FOREVER);
        tern_mutex_lock(&app->mu);
        bool done = app->done;
        tern_mutex_unlock(&app->mu);
        if (done)
            return 0;
        if (sig < 0) {
            tern_log_error("shop: no longer takes SIGINT and SIGTERM",
                           TERN_LOG_STR("error", tern_strerror(sig)));
            return 0;
        }
        tern_log_info("shop: stopping", TERN_LOG_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
        shop_app_stop(app);
    }
}

/* ctx's end (the caller's or the app's own) stops the app. */
static int ctx_watcher(void *arg)
{
    shop_app *app = arg;
    tern_ctx_sleep(INT64_MAX / 4, app->ctx);
    app_stop(app, false);
    return 0;
}

/* A role's stop, once, if its init succeeded. */
static void role_stop(shop_role *r)
{
    if (r->inited && r->ops->stop)
        r->ops->stop(r);
    r->inited = false;
}

static tern_join *go_join(tern_fn *fn, void *arg)
{
    tern_join *j = NULL;
    if (tern_go_opts(fn, arg, &(tern_go_options){.join = &j}, NULL) < 0)
        return NULL;
    return j;
}

static void join(tern_join *j)
{
    if (j) {
        tern_join_wait(j, NULL, NULL);
        tern_join_free(j);
    }
}

int shop_app_run(shop_app *app, tern_ctx *ctx)
{
    int rc = tern_ctx_with_cancel(ctx, &app->ctx);
    if (rc < 0)
        return rc;
    if ((rc = tern_group_new(app->ctx, NULL, &app->bg)) < 0)
        return rc;
    if (!app->opts.no_signals) {
        const int sigs[] = {SIGINT, SIGTERM};
        if ((rc = tern_signal_notify(sigs, 2)) < 0)
            return rc;
    }
    role_run runs[SHOP_NROLES];
    tern_join *roles[SHOP_NROLES] = {0};
    for (int i = 0; i < SHOP_NROLES; i++) {
        if (!app->on[i])
            continue;
        runs[i] = (role_run){app, &app->roles[i]};
        if (!(roles[i] = go_join(run_role, &runs[i])))
            app_stop(app, false);
    }
    tern_join *cw = go_join(ctx_watcher, app);
    tern_join *sj = go_join(starter, app);
    tern_join *wj = app->opts.no_signals ? NULL : go_join(signal_watcher, app);

    for (int i = 0; i < SHOP_NROLES; i++)
        join(roles[i]);
    app_stop(app, false);               /* (if a role never ran) */
    join(cw);
    join(sj);
    tern_mutex_lock(&app->mu);
    app->done = true;
    tern_mutex_unlock(&app->mu);
    if (wj)
        raise(SIGTERM);                 /* tern's handler: the watcher wakes, sees done */
    join(wj);
    tern_group_wait(app->bg, NULL);
    tern_group_free(app->bg);
    app->bg = NULL;
    for (int i = SHOP_NROLES - 1; i >= 0; i--)
        role_stop(&app->roles[i]);
    for (int i = 0; i < SHOP_NROLES; i++) {
        tern_outbox_relay_stop(app->roles[i].relay);
        app->roles[i].relay = NULL;
    }
    tern_log_info("shop: stopped");
    return app->first_err;
}

void shop_app_free(shop_app *app)
{
    if (!app)
        return;
    for (int i = SHOP_NROLES - 1; i >= 0; i--)
        role_stop(&app->roles[i]);      /* roles that never ran (a later one failed to start) */
    for (int i = 0; i < SHOP_NROLES; i++) {
        shop_role *r = &app->roles[i];
        tern_outbox_relay_stop(r->relay);
        tern_service_free(r->svc);
        tern_grpc_server_free(r->grpc);
        tern_http_router_free(r->rt);
        tern_outbox_free(r->outbox);
        shop_db_free(r->store);
        tern_sqlite_free(r->db);
        free(r->state);
    }
    for (int i = 0; i < SHOP_NROLES; i++)
        tern_etcd_registration_free(app->reg[i]);
    for (size_t i = 0; i < app->nresolvers; i++)
        tern_resolver_free(app->resolvers[i]);  /* after the channels (the roles' stop) */
    free(app->resolvers);
    tern_events_bus_free(app->bus);
    tern_nats_free(app->nats);          /* after the bus, which uses it */
    tern_ctx_free(app->ctx);
    free(app);
}
