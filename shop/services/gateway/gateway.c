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
 */
#include <errno.h>
#include <stdlib.h>

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
    tern_gateway *gw;
    char err[512] = "";
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
