/*
 * gateway.c - the shop's front door: tern's gateway (tern/gateway.h) with
 * the shop's routes (shop/config/gateway.yaml: REST/JSON transcoded to the
 * services' gRPC, JWT auth, per-user rate limits, an aggregated order
 * view, a canary split), as a role of the shop like the others (probes,
 * /metrics, access log, graceful stop).
 *
 * Transcoding needs every method's descriptors in the process: the role
 * registers the five services' with tern_grpc_json_register before the
 * gateway loads its routes.  The routes' JWT secret comes from the
 * environment (SHOP_USERS_JWT_SECRET); when that is unset the role sets
 * it from the shop's own configuration (users.jwt_secret), so `shop all`
 * signs and verifies with one secret whatever configured it.
 *
 * Production mode changes the configuration at every load (production(),
 * the gateway's config_edit, so the file is watched and reloaded as in
 * development): with redis.addr its `redis:` is set and the per-user
 * limits (key claim:...) become global, counted in Redis across gateway
 * replicas; with etcd the services' upstreams follow the roles registered
 * there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tern/gateway.h>
#include <tern/grpc_json.h>

#include "catalog.tern-grpc.h"
#include "common/shop.h"
#include "inventory.tern-grpc.h"
#include "orders.tern-grpc.h"
#include "payments.tern-grpc.h"
#include "users.tern-grpc.h"

static const tern_grpc_service_desc *const services[] = {
    &shop_users_v1_users_desc,         &shop_catalog_v1_catalog_desc, &shop_inventory_v1_inventory_desc,
    &shop_orders_v1_orders_desc,       &shop_payments_v1_payments_desc,
};

static const char *const upstreams[] = {"users", "catalog", "inventory", "orders", "payments"};

/* Production mode's settings put on the configuration at every load (the
 * gateway's config_edit, so the file stays watched): JSON in, JSON out. */
static int production(const char *json, size_t len, char **text, void *arg, char *err, size_t errlen)
{
    shop_role *r = arg;
    json_error_t je;
    json_t *cfg = json_loadb(json, len, 0, &je);
    if (!cfg) {
        snprintf(err, errlen, "%s", je.text);
        return -EINVAL;
    }
    const char *redis = tern_config_str(r->cfg, "redis.addr");
    if (*redis) {
        json_object_set_new(cfg, "redis", json_string(redis));
        size_t i;
        json_t *route;
        json_array_foreach(json_object_get(cfg, "routes"), i, route) {
            json_t *lim = json_object_get(route, "ratelimit");
            const char *key = json_string_value(json_object_get(lim, "key"));
            if (key && !strncmp(key, "claim:", 6))
                json_object_set_new(lim, "global", json_true());
        }
    }
    const char *etcd = tern_config_str(r->cfg, "etcd");
    for (size_t i = 0; *etcd && i < sizeof upstreams / sizeof upstreams[0]; i++) {
        json_t *up = json_object_get(json_object_get(cfg, "upstreams"), upstreams[i]);
        if (!up)
            continue;
        char prefix[256];
        snprintf(prefix, sizeof prefix, "%s%s/", tern_config_str(r->cfg, "discovery.prefix"), upstreams[i]);
        json_t *eps = json_array();
        for (const char *p = etcd; *p;) {
            size_t n = strcspn(p, ",");
            json_array_append_new(eps, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
        json_object_del(up, "endpoints");
        json_object_set_new(up, "resolver",
                            json_pack("{s:{s:o, s:s}}", "etcd", "endpoints", eps, "prefix", prefix));
    }
    *text = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    return *text ? 0 : -ENOMEM;
}

static int init(shop_role *r)
{
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
        int rc = tern_grpc_json_register(services[i]);
        if (rc < 0)
            return rc;
    }
    /* before any thread of ours reads the environment for it */
    if (!getenv("SHOP_USERS_JWT_SECRET") &&
        setenv("SHOP_USERS_JWT_SECRET", tern_config_str(r->cfg, "users.jwt_secret"), 0) < 0)
        return -errno;
    const char *path = tern_config_str(r->cfg, "gateway.config");
    tern_gateway_options o = {.config_path = path, .watch = true};
    if (*tern_config_str(r->cfg, "redis.addr") || *tern_config_str(r->cfg, "etcd")) {
        o.config_edit = production;
        o.config_edit_arg = r;
    }
    char err[512] = "";
    tern_gateway *gw;
    int rc = tern_gateway_new(&o, &gw, err, sizeof err);
    if (rc < 0) {
        tern_log_error("gateway: configuration", TERN_LOG_STR("file", path), TERN_LOG_STR("error", err));
        return rc;
    }
    r->state = NULL;                    /* the gateway is freed by stop, not with free() */
    r->handler = tern_gateway_handler;
    r->handler_arg = gw;
    return 0;
}

/* After the service drained: nothing calls the handler any more. */
static void stop(shop_role *r)
{
    tern_gateway_free(r->handler_arg);
    r->handler_arg = NULL;
}

const shop_role_ops shop_gateway_ops = {.name = "gateway", .http_only = true, .init = init, .stop = stop};
