/*
 * test_shop_restart.c - the shop's state is its SQLite files: stopped and
 * started again on the same data directory it has every user, product,
 * stock level and order, seeds nothing twice, and settles an order that
 * was waiting for its payment when it stopped.
 */
#include "shop_fixture.h"

#define ORDER(s) SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_##s

static int login_rc(shop_fx *fx, const char *email, const char *password)
{
    Shop__Users__V1__LoginRequest req = SHOP__USERS__V1__LOGIN_REQUEST__INIT;
    req.email = (char *)email;
    req.password = (char *)password;
    Shop__Users__V1__LoginResponse *resp = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    int rc = shop_users_v1_users_login(fx->ch[SHOP_USERS], &req, &resp, NULL, NULL, ctx);
    tern_ctx_free(ctx);
    FREE_MSG(resp);
    return rc;
}

static int count_products(shop_fx *fx)
{
    Shop__Catalog__V1__ListProductsRequest req = SHOP__CATALOG__V1__LIST_PRODUCTS_REQUEST__INIT;
    req.page_size = 100;
    Shop__Catalog__V1__ListProductsResponse *resp = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_catalog_v1_catalog_list_products(fx->ch[SHOP_CATALOG], &req, &resp, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    int n = (int)resp->n_products;
    FREE_MSG(resp);
    return n;
}

static int body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;

    /* first life: a user, a paid order */
    shop_fx_start(&fx, dir, NULL);
    Shop__Users__V1__SignUpRequest su = SHOP__USERS__V1__SIGN_UP_REQUEST__INIT;
    su.email = "kim@example.org";
    su.password = "a long password";
    Shop__Users__V1__User *u = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_users_v1_users_sign_up(fx.ch[SHOP_USERS], &su, &u, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    FREE_MSG(u);
    Shop__Orders__V1__Order *o;
    CHECK_EQ(shop_fx_order(&fx, "u-kim", "mug", 3, NULL, &o), 0);
    char paid[64];
    snprintf(paid, sizeof paid, "%s", o->id);
    FREE_MSG(o);
    CHECK_EQ(shop_fx_settled(&fx, paid), ORDER(PAID));
    shop_fx_stop(&fx);

    /* second life: a payment that takes 30 s, and a stop while it is under way */
    shop_fx_start(&fx, dir, "--payments.latency=30s", NULL);
    CHECK_EQ(count_products(&fx), 12);  /* not seeded twice */
    Shop__Inventory__V1__Stock *s = shop_fx_stock(&fx, "mug");
    CHECK_EQ(s->available, 97);
    CHECK_EQ(s->sold, 3);
    FREE_MSG(s);
    CHECK(login_rc(&fx, "kim@example.org", "a long password") != -ENOKEY);    /* the password is there */
    CHECK_EQ(login_rc(&fx, "kim@example.org", "not the password"), -ENOKEY);
    o = shop_fx_get_order(&fx, paid);
    CHECK_EQ(o->status, ORDER(PAID));
    CHECK_EQ(o->total_cents, 3600);
    FREE_MSG(o);
    CHECK_EQ(shop_fx_order(&fx, "u-kim", "grinder", 1, NULL, &o), 0);
    char waiting[64];
    snprintf(waiting, sizeof waiting, "%s", o->id);
    CHECK_EQ(o->status, ORDER(AWAITING_PAYMENT));
    FREE_MSG(o);
    tern_sleep(50 * TERN_MS);           /* payments has the event and "charges" */
    shop_fx_stop(&fx);                  /* the event dies with the in-process bus */

    /* third life: the watchdog finds the order waiting and sends
     * OrderCreated again; payments charges it once */
    shop_fx_start(&fx, dir, "--orders.recheck_after=100ms", NULL);
    o = shop_fx_get_order(&fx, waiting);
    CHECK(o->status == ORDER(AWAITING_PAYMENT) || o->status == ORDER(PAID));
    FREE_MSG(o);
    CHECK_EQ(shop_fx_settled(&fx, waiting), ORDER(PAID));

    /* 50 ms retention in orders.db's outbox, then its sent rows go */
    shop_fx_stop(&fx);
    shop_fx_start(&fx, dir, "--outbox.retention=50ms", NULL);
    char path[300];
    snprintf(path, sizeof path, "%s/orders.db", dir);
    tern_sqlite *db;
    CHECK_EQ(tern_sqlite_new(path, NULL, &db, NULL), 0);
    int64_t rows = -1;
    for (int i = 0; i < 300 && rows != 0; i++) {
        tern_sqlite_result *res;
        CHECK_EQ(tern_sqlite_query(db, "SELECT count(*) FROM outbox", NULL, &res, NULL, NULL), 0);
        CHECK_EQ(tern_sqlite_result_int64(res, 0, 0, &rows), 0);
        tern_sqlite_result_free(res);
        if (rows)
            tern_sleep(10 * TERN_MS);
    }
    CHECK_EQ(rows, 0);
    tern_sqlite_free(db);
    s = shop_fx_stock(&fx, "grinder");
    CHECK_EQ(s->available, 7);
    CHECK_EQ(s->reserved, 0);
    CHECK_EQ(s->sold, 1);
    FREE_MSG(s);
    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void restart_keeps_data_and_settles_orders_left_waiting(void)
{
    run_ok(body, NULL, 2);
}

TESTS(T(restart_keeps_data_and_settles_orders_left_waiting))
