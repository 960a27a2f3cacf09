/*
 * shop_fixture.h - the shop's services in the test's process, on port 0,
 * with a data directory of the test's own: the real runner (shop_app),
 * real SQLite files, real gRPC over loopback; the test talks to the
 * services through the generated stubs, as any client does.
 */
#ifndef SHOP_FIXTURE_H
#define SHOP_FIXTURE_H

#include "check.h"

#include <errno.h>
#include <stdarg.h>

#include "catalog.tern-grpc.h"
#include "common/shop.h"
#include "inventory.tern-grpc.h"
#include "orders.tern-grpc.h"
#include "payments.tern-grpc.h"
#include "users.tern-grpc.h"

typedef struct shop_fx {
    char dir[256];
    tern_config *cfg;
    shop_app *app;
    tern_join *run;
    tern_grpc_channel *ch[SHOP_NROLES];
} shop_fx;

/* A fresh data directory (removed by the caller's shop_fx_rmdir). */
static inline void shop_fx_mkdir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/shop-test-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static int shop_fx_system(void *cmd)
{
    return system(cmd);
}

/* Remove dir and what it holds (on the blocking pool: a worker must not wait for rm). */
static inline void shop_fx_rmdir(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(tern_blocking(shop_fx_system, cmd) == 0);
}

static int shop_fx_run(void *arg)
{
    return shop_app_run(arg, NULL);
}

/* Start the roles (bits of shop_role_id) in dir with the fixture's settings
 * (fast payments, cheap scrypt, quick watchdogs, every port free) and the
 * extra flags in ap ("--payments.failure_rate=1", ..., NULL-terminated;
 * a flag given twice: the last wins); wait until ready. */
static inline void shop_fx_startv(shop_fx *fx, const char *dir, unsigned roles, va_list ap)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "%s", dir);
    char data[300];
    snprintf(data, sizeof data, "--data_dir=%s", dir);
    const char *argv[64] = {
        "shop-test", data, "--users.addr=127.0.0.1:0", "--catalog.addr=127.0.0.1:0",
        "--inventory.addr=127.0.0.1:0", "--orders.addr=127.0.0.1:0", "--payments.addr=127.0.0.1:0",
        "--users.scrypt_n=1024", "--payments.latency=1ms", "--inventory.sweep_interval=50ms",
        "--orders.recheck_after=2s", "--log.level=warn",
        /* the admin listeners on any free port (their defaults are fixed ports) */
        "--users.admin=127.0.0.1:0", "--catalog.admin=127.0.0.1:0", "--inventory.admin=127.0.0.1:0",
        "--orders.admin=127.0.0.1:0", "--payments.admin=127.0.0.1:0",
    };
    int argc = 17;
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 63;)
        argv[argc++] = a;
    /* SHOP_TEST_DEBUG=1: the services' logs, and a failed CreateOrder's status */
    tern_log_set_level(getenv("SHOP_TEST_DEBUG") ? TERN_LOG_DEBUG : TERN_LOG_WARN);
    CHECK_EQ(shop_config_new(argc, (char **)argv, &fx->cfg), 0);
    CHECK_EQ(shop_app_new(fx->cfg, &(shop_app_options){.roles = roles, .no_signals = true}, &fx->app), 0);
    CHECK_EQ(tern_go_opts(shop_fx_run, fx->app, &(tern_go_options){.join = &fx->run}, NULL), 0);
    tern_ctx *ctx;
    tern_ctx_with_timeout(NULL, 20 * TERN_SEC, &ctx);
    CHECK_EQ(shop_app_wait_ready(fx->app, ctx), 0);
    tern_ctx_free(ctx);
    for (int i = 0; i < SHOP_NSERVICES; i++)
        CHECK_EQ(tern_grpc_channel_new(shop_app_addr(fx->app, i), NULL, &fx->ch[i]), 0);
}

/* Every gRPC service in dir, and the extra flags (NULL-terminated). */
static inline void shop_fx_start(shop_fx *fx, const char *dir, ...)
{
    va_list ap;
    va_start(ap, dir);
    shop_fx_startv(fx, dir, SHOP_SERVICES, ap);
    va_end(ap);
}

/* Some of the roles (bits of shop_role_id), and the extra flags. */
static inline void shop_fx_start_roles(shop_fx *fx, const char *dir, unsigned roles, ...)
{
    va_list ap;
    va_start(ap, roles);
    shop_fx_startv(fx, dir, roles, ap);
    va_end(ap);
}

static inline void shop_fx_stop(shop_fx *fx)
{
    for (int i = 0; i < SHOP_NSERVICES; i++)
        tern_grpc_channel_free(fx->ch[i]);
    shop_app_stop(fx->app);
    int result = -1;
    CHECK_EQ(tern_join_wait(fx->run, &result, NULL), 0);
    tern_join_free(fx->run);
    CHECK_EQ(result, 0);
    shop_app_free(fx->app);
    tern_config_free(fx->cfg);
}

/* A 10 s ctx for one call (the caller frees it). */
static inline tern_ctx *shop_fx_ctx(void)
{
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
    return ctx;
}

/* ---- calls the tests make often --------------------------------------------- */

static inline Shop__Inventory__V1__Stock *shop_fx_stock(shop_fx *fx, const char *product)
{
    Shop__Inventory__V1__GetStockRequest req = SHOP__INVENTORY__V1__GET_STOCK_REQUEST__INIT;
    req.product_id = (char *)product;
    Shop__Inventory__V1__Stock *s = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_inventory_v1_inventory_get_stock(fx->ch[SHOP_INVENTORY], &req, &s, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    return s;
}

/* An order for one product; the call's rc, the order in *out (NULL on failure). */
static inline int shop_fx_order(shop_fx *fx, const char *user, const char *product, int64_t qty, const char *key,
                                Shop__Orders__V1__Order **out)
{
    Shop__Orders__V1__CreateOrderRequest__Line line = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__LINE__INIT;
    line.product_id = (char *)product;
    line.quantity = qty;
    Shop__Orders__V1__CreateOrderRequest__Line *lines[] = {&line};
    Shop__Orders__V1__CreateOrderRequest req = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
    req.user_id = (char *)user;
    req.items = lines;
    req.n_items = 1;
    req.idempotency_key = (char *)(key ? key : "");
    tern_ctx *ctx = shop_fx_ctx();
    *out = NULL;
    tern_grpc_status st = {0};
    int rc = shop_orders_v1_orders_create_order(fx->ch[SHOP_ORDERS], &req, out, NULL, &st, ctx);
    tern_ctx_free(ctx);
    if (rc < 0 && getenv("SHOP_TEST_DEBUG"))
        fprintf(stderr, "CreateOrder: %d %s\n", (int)st.code, st.message ? st.message : "");
    tern_grpc_status_clear(&st);
    return rc;
}

static inline Shop__Orders__V1__Order *shop_fx_get_order(shop_fx *fx, const char *id)
{
    Shop__Orders__V1__GetOrderRequest req = SHOP__ORDERS__V1__GET_ORDER_REQUEST__INIT;
    req.order_id = (char *)id;
    Shop__Orders__V1__Order *o = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_orders_v1_orders_get_order(fx->ch[SHOP_ORDERS], &req, &o, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    return o;
}

/* Poll the order until its status is neither PENDING nor AWAITING_PAYMENT
 * (at most 10 s); the final status. */
static inline int shop_fx_settled(shop_fx *fx, const char *id)
{
    for (int i = 0; i < 1000; i++) {
        Shop__Orders__V1__Order *o = shop_fx_get_order(fx, id);
        int st = (int)o->status;
        protobuf_c_message_free_unpacked(&o->base, NULL);
        if (st != SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PENDING &&
            st != SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_AWAITING_PAYMENT)
            return st;
        tern_sleep(10 * TERN_MS);
    }
    return -ETIMEDOUT;
}

#define FREE_MSG(m)                                                                      \
    do {                                                                                 \
        if (m)                                                                           \
            protobuf_c_message_free_unpacked(&(m)->base, NULL);                          \
        (m) = NULL;                                                                      \
    } while (0)

#endif
