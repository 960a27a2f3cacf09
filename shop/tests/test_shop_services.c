/*
 * test_shop_services.c - the shop's services end to end in one process:
 * every role on its own loopback port, the test a gRPC client of them.
 */
#include "shop_fixture.h"

#include <tern/jwt.h>

#define ORDER(s) SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_##s

/* ---- users -------------------------------------------------------------------- */

static int sign_up(shop_fx *fx, const char *email, const char *password, Shop__Users__V1__User **out,
                   tern_grpc_status *st)
{
    Shop__Users__V1__SignUpRequest req = SHOP__USERS__V1__SIGN_UP_REQUEST__INIT;
    req.email = (char *)email;
    req.password = (char *)password;
    req.name = "Ann";
    tern_ctx *ctx = shop_fx_ctx();
    int rc = shop_users_v1_users_sign_up(fx->ch[SHOP_USERS], &req, out, NULL, st, ctx);
    tern_ctx_free(ctx);
    return rc;
}

static int login(shop_fx *fx, const char *email, const char *password, Shop__Users__V1__LoginResponse **out)
{
    Shop__Users__V1__LoginRequest req = SHOP__USERS__V1__LOGIN_REQUEST__INIT;
    req.email = (char *)email;
    req.password = (char *)password;
    tern_ctx *ctx = shop_fx_ctx();
    *out = NULL;
    int rc = shop_users_v1_users_login(fx->ch[SHOP_USERS], &req, out, NULL, NULL, ctx);
    tern_ctx_free(ctx);
    return rc;
}

static int users_body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, NULL);

    Shop__Users__V1__User *u = NULL;
    CHECK_EQ(sign_up(&fx, "Ann@Example.org", "correct horse", &u, NULL), 0);
    CHECK(!strncmp(u->id, "u-", 2));
    CHECK(!strcmp(u->email, "ann@example.org"));     /* emails are kept in lower case */

    /* the same address again, in any case: refused */
    Shop__Users__V1__User *dup = NULL;
    tern_grpc_status st = {0};
    CHECK_EQ(sign_up(&fx, "ann@example.ORG", "another one", &dup, &st), -EEXIST);
    CHECK_EQ(st.code, TERN_GRPC_ALREADY_EXISTS);
    tern_grpc_status_clear(&st);
    CHECK_EQ(sign_up(&fx, "not-an-address", "long enough", &dup, NULL), -EINVAL);
    CHECK_EQ(sign_up(&fx, "bob@example.org", "short", &dup, NULL), -EINVAL);

    Shop__Users__V1__LoginResponse *lr = NULL;
    CHECK_EQ(login(&fx, "ann@example.org", "wrong horse", &lr), -ENOKEY);          /* UNAUTHENTICATED */
    CHECK_EQ(login(&fx, "nobody@example.org", "correct horse", &lr), -ENOKEY);
    int rc = login(&fx, "ANN@example.org", "correct horse", &lr);
    CHECK_EQ(rc, 0);
    CHECK(!strcmp(lr->user->id, u->id));
    CHECK(lr->expires_at_unix_ms > shop_now_ms());
    /* header.claims.signature, and it verifies with the configured secret */
    CHECK(strchr(lr->token, '.') && strchr(strchr(lr->token, '.') + 1, '.'));
    tern_jwt_keys *keys;
    CHECK_EQ(tern_jwt_keys_new(&keys), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(keys, "shop-1", SHOP_DEV_JWT_SECRET, strlen(SHOP_DEV_JWT_SECRET)), 0);
    const char *aud[] = {"shop"};
    tern_jwt_verify_options vo = {.issuer = "shop-users", .audiences = aud, .n_audiences = 1, .require_exp = true};
    tern_jwt *t;
    const char *why;
    CHECK_EQ(tern_jwt_verify(keys, lr->token, strlen(lr->token), &vo, &t, &why), 0);
    CHECK(!strcmp(tern_jwt_claim_string(t, "sub"), u->id));
    tern_jwt_free(t);
    tern_jwt_keys_free(keys);
    FREE_MSG(lr);

    Shop__Users__V1__GetUserRequest gr = SHOP__USERS__V1__GET_USER_REQUEST__INIT;
    gr.id = u->id;
    Shop__Users__V1__User *got = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_users_v1_users_get_user(fx.ch[SHOP_USERS], &gr, &got, NULL, NULL, ctx), 0);
    CHECK(!strcmp(got->email, "ann@example.org"));
    gr.id = "u-nobody";
    FREE_MSG(got);
    CHECK_EQ(shop_users_v1_users_get_user(fx.ch[SHOP_USERS], &gr, &got, NULL, NULL, ctx), -ENOENT);
    tern_ctx_free(ctx);
    FREE_MSG(u);
    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void users_sign_up_and_login_with_scrypt_passwords(void)
{
    run_ok(users_body, NULL, 2);
}

/* ---- catalog -------------------------------------------------------------------- */

static Shop__Catalog__V1__ListProductsResponse *list(shop_fx *fx, const char *category, const char *query, int size,
                                                     const char *token)
{
    Shop__Catalog__V1__ListProductsRequest req = SHOP__CATALOG__V1__LIST_PRODUCTS_REQUEST__INIT;
    req.category = (char *)category;
    req.query = (char *)query;
    req.page_size = size;
    req.page_token = (char *)token;
    Shop__Catalog__V1__ListProductsResponse *resp = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_catalog_v1_catalog_list_products(fx->ch[SHOP_CATALOG], &req, &resp, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    return resp;
}

static int catalog_body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, NULL);

    /* the seed: 12 products in 4 categories, stock for each */
    Shop__Catalog__V1__ListProductsResponse *r = list(&fx, "", "", 100, "");
    CHECK_EQ(r->n_products, 12);
    CHECK(!strcmp(r->next_page_token, ""));
    FREE_MSG(r);
    r = list(&fx, "brewing", "", 0, "");
    CHECK_EQ(r->n_products, 4);
    for (size_t i = 0; i < r->n_products; i++)
        CHECK(!strcmp(r->products[i]->category, "brewing"));
    FREE_MSG(r);
    /* words, any case, all of them must match, in name or description */
    r = list(&fx, "", "Beans", 0, "");
    CHECK_EQ(r->n_products, 3);
    FREE_MSG(r);
    r = list(&fx, "", "beans ethiopia", 0, "");
    CHECK_EQ(r->n_products, 1);
    CHECK(!strcmp(r->products[0]->id, "filter-beans"));
    CHECK_EQ(r->products[0]->price_cents, 1590);
    FREE_MSG(r);
    r = list(&fx, "cups", "beans", 0, "");
    CHECK_EQ(r->n_products, 0);
    FREE_MSG(r);

    /* pages of 5: 5, 5, 2, each after the last, none twice */
    char token[64] = "", seen[12][64];
    int n = 0, pages = 0;
    do {
        r = list(&fx, "", "", 5, token);
        for (size_t i = 0; i < r->n_products; i++) {
            for (int j = 0; j < n; j++)
                CHECK(strcmp(seen[j], r->products[i]->id) != 0);
            snprintf(seen[n++], 64, "%s", r->products[i]->id);
        }
        snprintf(token, sizeof token, "%s", r->next_page_token);
        pages++;
        CHECK_EQ(r->n_products, pages < 3 ? 5 : 2);
        FREE_MSG(r);
    } while (*token);
    CHECK_EQ(n, 12);
    CHECK_EQ(pages, 3);

    tern_ctx *ctx = shop_fx_ctx();
    Shop__Catalog__V1__ListCategoriesRequest cr = SHOP__CATALOG__V1__LIST_CATEGORIES_REQUEST__INIT;
    Shop__Catalog__V1__ListCategoriesResponse *cats = NULL;
    CHECK_EQ(shop_catalog_v1_catalog_list_categories(fx.ch[SHOP_CATALOG], &cr, &cats, NULL, NULL, ctx), 0);
    CHECK_EQ(cats->n_categories, 4);
    CHECK(!strcmp(cats->categories[0], "brewing"));
    FREE_MSG(cats);

    Shop__Catalog__V1__GetProductRequest gr = SHOP__CATALOG__V1__GET_PRODUCT_REQUEST__INIT;
    gr.id = "moka-pot";
    Shop__Catalog__V1__Product *p = NULL;
    CHECK_EQ(shop_catalog_v1_catalog_get_product(fx.ch[SHOP_CATALOG], &gr, &p, NULL, NULL, ctx), 0);
    CHECK_EQ(p->price_cents, 3490);
    CHECK(!strcmp(p->currency, "EUR"));
    FREE_MSG(p);
    gr.id = "no-such";
    CHECK_EQ(shop_catalog_v1_catalog_get_product(fx.ch[SHOP_CATALOG], &gr, &p, NULL, NULL, ctx), -ENOENT);

    /* a new product gets an id; a bad one is refused naming the field */
    Shop__Catalog__V1__Product np = SHOP__CATALOG__V1__PRODUCT__INIT;
    np.name = "Cold brew bottle";
    np.category = "brewing";
    np.price_cents = 1990;
    Shop__Catalog__V1__CreateProductRequest req = SHOP__CATALOG__V1__CREATE_PRODUCT_REQUEST__INIT;
    req.product = &np;
    CHECK_EQ(shop_catalog_v1_catalog_create_product(fx.ch[SHOP_CATALOG], &req, &p, NULL, NULL, ctx), 0);
    CHECK(!strncmp(p->id, "p-", 2));
    CHECK(!strcmp(p->currency, "EUR"));
    FREE_MSG(p);
    np.price_cents = -1;
    tern_grpc_status st = {0};
    CHECK_EQ(shop_catalog_v1_catalog_create_product(fx.ch[SHOP_CATALOG], &req, &p, NULL, &st, ctx), -EINVAL);
    CHECK(strstr(st.message, "price_cents"));
    tern_grpc_status_clear(&st);
    /* a price that cannot be totalled: the order is refused, nothing overflows */
    np.id = "gold";
    np.price_cents = INT64_MAX / 2;
    CHECK_EQ(shop_catalog_v1_catalog_create_product(fx.ch[SHOP_CATALOG], &req, &p, NULL, NULL, ctx), 0);
    FREE_MSG(p);
    Shop__Orders__V1__Order *gold = NULL;
    CHECK_EQ(shop_fx_order(&fx, "u-gold", "gold", 3, NULL, &gold), -EINVAL);
    np.id = "mug";
    np.price_cents = 1;
    CHECK_EQ(shop_catalog_v1_catalog_create_product(fx.ch[SHOP_CATALOG], &req, &p, NULL, NULL, ctx), -EEXIST);
    tern_ctx_free(ctx);
    r = list(&fx, "brewing", "", 0, "");
    CHECK_EQ(r->n_products, 6);
    FREE_MSG(r);

    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void catalog_browse_search_and_pages(void)
{
    run_ok(catalog_body, NULL, 2);
}

/* ---- the order saga ---------------------------------------------------------------- */

static Shop__Payments__V1__Payment *payment(shop_fx *fx, const char *order_id)
{
    Shop__Payments__V1__GetPaymentRequest req = SHOP__PAYMENTS__V1__GET_PAYMENT_REQUEST__INIT;
    req.order_id = (char *)order_id;
    Shop__Payments__V1__Payment *p = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_payments_v1_payments_get_payment(fx->ch[SHOP_PAYMENTS], &req, &p, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    return p;
}

static int saga_paid_body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, NULL);

    Shop__Orders__V1__Order *o;
    CHECK_EQ(shop_fx_order(&fx, "u-1", "mug", 2, NULL, &o), 0);
    CHECK(o->status == ORDER(AWAITING_PAYMENT) || o->status == ORDER(PAID));
    CHECK_EQ(o->total_cents, 2 * 1200);
    CHECK(!strcmp(o->currency, "EUR"));
    CHECK_EQ(o->n_items, 1);
    CHECK_EQ(o->items[0]->unit_price_cents, 1200);
    char id[64];
    snprintf(id, sizeof id, "%s", o->id);
    FREE_MSG(o);

    CHECK_EQ(shop_fx_settled(&fx, id), ORDER(PAID));
    Shop__Inventory__V1__Stock *s = shop_fx_stock(&fx, "mug");
    CHECK_EQ(s->available, 98);
    CHECK_EQ(s->reserved, 0);
    CHECK_EQ(s->sold, 2);
    FREE_MSG(s);
    Shop__Payments__V1__Payment *p = payment(&fx, id);
    CHECK_EQ(p->status, SHOP__PAYMENTS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED);
    CHECK_EQ(p->amount_cents, 2400);
    FREE_MSG(p);

    /* more than there is: rejected, nothing taken */
    CHECK_EQ(shop_fx_order(&fx, "u-1", "grinder", 9, NULL, &o), 0);
    CHECK_EQ(o->status, ORDER(REJECTED));
    CHECK(strstr(o->reason, "out of stock"));
    FREE_MSG(o);
    s = shop_fx_stock(&fx, "grinder");
    CHECK_EQ(s->available, 8);
    CHECK_EQ(s->reserved, 0);
    FREE_MSG(s);
    /* a product the catalog does not have */
    CHECK_EQ(shop_fx_order(&fx, "u-1", "no-such", 1, NULL, &o), -EINVAL);

    /* the user from x-user-id (the gateway's, from the token) wins over the body's */
    Shop__Orders__V1__CreateOrderRequest__Line line = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__LINE__INIT;
    line.product_id = "filters";
    line.quantity = 1;
    Shop__Orders__V1__CreateOrderRequest__Line *lines[] = {&line};
    Shop__Orders__V1__CreateOrderRequest cr = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
    cr.user_id = "u-somebody-else";
    cr.items = lines;
    cr.n_items = 1;
    const char *md[] = {"x-user-id", "u-1", NULL};
    tern_grpc_call_options co = {.metadata = md};
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_orders_v1_orders_create_order(fx.ch[SHOP_ORDERS], &cr, &o, &co, NULL, ctx), 0);
    CHECK(!strcmp(o->user_id, "u-1"));
    FREE_MSG(o);

    /* u-1's orders, two to a page: the paid one, the rejected one, this one */
    Shop__Orders__V1__ListOrdersRequest lr = SHOP__ORDERS__V1__LIST_ORDERS_REQUEST__INIT;
    lr.user_id = "u-1";
    lr.page_size = 2;
    Shop__Orders__V1__ListOrdersResponse *page = NULL;
    CHECK_EQ(shop_orders_v1_orders_list_orders(fx.ch[SHOP_ORDERS], &lr, &page, NULL, NULL, ctx), 0);
    CHECK_EQ(page->n_orders, 2);
    CHECK(*page->next_page_token);
    char token[64];
    snprintf(token, sizeof token, "%s", page->next_page_token);
    FREE_MSG(page);
    lr.page_token = token;
    CHECK_EQ(shop_orders_v1_orders_list_orders(fx.ch[SHOP_ORDERS], &lr, &page, NULL, NULL, ctx), 0);
    CHECK_EQ(page->n_orders, 1);
    CHECK(!*page->next_page_token);
    CHECK(!strcmp(page->orders[0]->user_id, "u-1"));
    FREE_MSG(page);
    tern_ctx_free(ctx);

    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void order_saga_reaches_paid_and_commits_the_stock(void)
{
    run_ok(saga_paid_body, NULL, 2);
}

static int saga_failed_body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, "--payments.failure_rate=1", NULL);

    Shop__Orders__V1__Order *o;
    CHECK_EQ(shop_fx_order(&fx, "u-2", "moka-pot", 3, NULL, &o), 0);
    char id[64];
    snprintf(id, sizeof id, "%s", o->id);
    FREE_MSG(o);
    CHECK_EQ(shop_fx_settled(&fx, id), ORDER(CANCELLED));
    o = shop_fx_get_order(&fx, id);
    CHECK(strstr(o->reason, "payment failed"));
    FREE_MSG(o);
    /* compensated: the reservation released, every unit back */
    Shop__Inventory__V1__Stock *s = shop_fx_stock(&fx, "moka-pot");
    CHECK_EQ(s->available, 15);
    CHECK_EQ(s->reserved, 0);
    CHECK_EQ(s->sold, 0);
    FREE_MSG(s);
    Shop__Payments__V1__Payment *p = payment(&fx, id);
    CHECK_EQ(p->status, SHOP__PAYMENTS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED);
    FREE_MSG(p);

    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void order_saga_compensates_when_payment_fails(void)
{
    run_ok(saga_failed_body, NULL, 2);
}

/* ---- idempotency --------------------------------------------------------------------- */

typedef struct racer {
    shop_fx *fx;
    const char *product, *key;
    int rc;
    int status;
    char id[64];
    tern_waitgroup *wg;
} racer;

static int race_order(void *arg)
{
    racer *r = arg;
    Shop__Orders__V1__Order *o = NULL;
    char user[32];
    /* the idempotency racers are one user; the oversell racers many */
    snprintf(user, sizeof user, "%s", r->key ? "u-same" : "u-racer");
    r->rc = shop_fx_order(r->fx, user, r->product, 1, r->key, &o);
    if (o) {
        r->status = (int)o->status;
        snprintf(r->id, sizeof r->id, "%s", o->id);
        FREE_MSG(o);
    }
    tern_waitgroup_done(r->wg);
    return 0;
}

static int idempotency_body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, NULL);

    Shop__Orders__V1__Order *a, *b, *c;
    CHECK_EQ(shop_fx_order(&fx, "u-3", "travel-mug", 1, "key-1", &a), 0);
    CHECK_EQ(shop_fx_order(&fx, "u-3", "travel-mug", 1, "key-1", &b), 0);
    CHECK(!strcmp(a->id, b->id));
    CHECK_EQ(shop_fx_order(&fx, "u-3", "travel-mug", 1, "key-2", &c), 0);
    CHECK(strcmp(a->id, c->id) != 0);
    /* the key with other lines: refused, naming the order it belongs to */
    FREE_MSG(c);
    tern_grpc_status kst = {0};
    Shop__Orders__V1__CreateOrderRequest__Line other = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__LINE__INIT;
    other.product_id = "travel-mug";
    other.quantity = 2;
    Shop__Orders__V1__CreateOrderRequest__Line *others[] = {&other};
    Shop__Orders__V1__CreateOrderRequest oreq = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
    oreq.user_id = "u-3";
    oreq.items = others;
    oreq.n_items = 1;
    oreq.idempotency_key = "key-1";
    tern_ctx *kctx = shop_fx_ctx();
    CHECK_EQ(shop_orders_v1_orders_create_order(fx.ch[SHOP_ORDERS], &oreq, &c, NULL, &kst, kctx), -EINVAL);
    tern_ctx_free(kctx);
    CHECK(strstr(kst.message, a->id));
    tern_grpc_status_clear(&kst);
    /* the key is per user: another user's key-1 is another order */
    FREE_MSG(c);
    CHECK_EQ(shop_fx_order(&fx, "u-4", "travel-mug", 1, "key-1", &c), 0);
    CHECK(strcmp(a->id, c->id) != 0);
    FREE_MSG(c);

    /* the key as metadata (what the gateway forwards from Idempotency-Key) */
    Shop__Orders__V1__CreateOrderRequest__Line line = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__LINE__INIT;
    line.product_id = "travel-mug";
    line.quantity = 1;
    Shop__Orders__V1__CreateOrderRequest__Line *lines[] = {&line};
    Shop__Orders__V1__CreateOrderRequest req = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
    req.user_id = "u-3";
    req.items = lines;
    req.n_items = 1;
    const char *md[] = {"idempotency-key", "key-1", NULL};
    tern_grpc_call_options co = {.metadata = md};
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_orders_v1_orders_create_order(fx.ch[SHOP_ORDERS], &req, &c, &co, NULL, ctx), 0);
    tern_ctx_free(ctx);
    CHECK(!strcmp(a->id, c->id));
    FREE_MSG(c);
    CHECK_EQ(shop_fx_settled(&fx, a->id), ORDER(PAID));
    CHECK_EQ(shop_fx_settled(&fx, b->id), ORDER(PAID));
    FREE_MSG(a);
    FREE_MSG(b);

    /* 20 concurrent requests with one key: one order, one unit of stock */
    Shop__Inventory__V1__Stock *before = shop_fx_stock(&fx, "cup-set");
    racer rs[20];
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&wg, 20);
    for (int i = 0; i < 20; i++) {
        rs[i] = (racer){.fx = &fx, .product = "cup-set", .key = "race-key", .wg = &wg};
        CHECK_EQ(tern_go(race_order, &rs[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(rs[i].rc, 0);
        CHECK(!strcmp(rs[i].id, rs[0].id));
    }
    CHECK_EQ(shop_fx_settled(&fx, rs[0].id), ORDER(PAID));
    Shop__Inventory__V1__Stock *after = shop_fx_stock(&fx, "cup-set");
    CHECK_EQ(after->sold - before->sold, 1);
    CHECK_EQ(before->available - after->available, 1);
    FREE_MSG(before);
    FREE_MSG(after);

    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void idempotency_key_returns_the_same_order(void)
{
    run_ok(idempotency_body, NULL, 2);
}

/* ---- no oversell ----------------------------------------------------------------------- */

typedef struct reserver {
    shop_fx *fx;
    char id[32];
    int rc;
    tern_waitgroup *wg;
} reserver;

static int race_reserve(void *arg)
{
    reserver *v = arg;
    Shop__Inventory__V1__Item it = SHOP__INVENTORY__V1__ITEM__INIT;
    it.product_id = "limited";
    it.quantity = 1;
    Shop__Inventory__V1__Item *items[] = {&it};
    Shop__Inventory__V1__ReserveRequest rr = SHOP__INVENTORY__V1__RESERVE_REQUEST__INIT;
    rr.reservation_id = v->id;
    rr.items = items;
    rr.n_items = 1;
    Shop__Inventory__V1__Reservation *res = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    v->rc = shop_inventory_v1_inventory_reserve(v->fx->ch[SHOP_INVENTORY], &rr, &res, NULL, NULL, ctx);
    tern_ctx_free(ctx);
    FREE_MSG(res);
    tern_waitgroup_done(v->wg);
    return 0;
}

static int oversell_body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, NULL);

    /* a product with 10 in stock, 50 buyers at once */
    tern_ctx *ctx = shop_fx_ctx();
    Shop__Catalog__V1__Product np = SHOP__CATALOG__V1__PRODUCT__INIT;
    np.id = "limited";
    np.name = "Limited edition grinder";
    np.category = "brewing";
    np.price_cents = 9900;
    Shop__Catalog__V1__CreateProductRequest cr = SHOP__CATALOG__V1__CREATE_PRODUCT_REQUEST__INIT;
    cr.product = &np;
    Shop__Catalog__V1__Product *p = NULL;
    CHECK_EQ(shop_catalog_v1_catalog_create_product(fx.ch[SHOP_CATALOG], &cr, &p, NULL, NULL, ctx), 0);
    FREE_MSG(p);
    Shop__Inventory__V1__AddStockRequest ar = SHOP__INVENTORY__V1__ADD_STOCK_REQUEST__INIT;
    ar.product_id = "limited";
    ar.quantity = 10;
    Shop__Inventory__V1__Stock *s = NULL;
    CHECK_EQ(shop_inventory_v1_inventory_add_stock(fx.ch[SHOP_INVENTORY], &ar, &s, NULL, NULL, ctx), 0);
    CHECK_EQ(s->available, 10);
    FREE_MSG(s);
    /* a seed's only_if_new: stock that exists stays as it is */
    ar.only_if_new = true;
    ar.quantity = 7;
    CHECK_EQ(shop_inventory_v1_inventory_add_stock(fx.ch[SHOP_INVENTORY], &ar, &s, NULL, NULL, ctx), 0);
    CHECK_EQ(s->available, 10);
    FREE_MSG(s);
    ar.product_id = "limited-new";      /* and stock that does not, is made */
    CHECK_EQ(shop_inventory_v1_inventory_add_stock(fx.ch[SHOP_INVENTORY], &ar, &s, NULL, NULL, ctx), 0);
    CHECK_EQ(s->available, 7);
    FREE_MSG(s);
    ar.product_id = "limited";
    ar.only_if_new = false;
    tern_ctx_free(ctx);

    enum { BUYERS = 50 };
    static racer rs[BUYERS];
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&wg, BUYERS);
    for (int i = 0; i < BUYERS; i++) {
        rs[i] = (racer){.fx = &fx, .product = "limited", .wg = &wg};
        CHECK_EQ(tern_go(race_order, &rs[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    int got = 0, rejected = 0;
    for (int i = 0; i < BUYERS; i++) {
        CHECK_EQ(rs[i].rc, 0);
        if (rs[i].status == ORDER(REJECTED))
            rejected++;
        else
            got++;
    }
    CHECK_EQ(got, 10);
    CHECK_EQ(rejected, 40);
    for (int i = 0; i < BUYERS; i++)
        if (rs[i].status != ORDER(REJECTED))
            CHECK_EQ(shop_fx_settled(&fx, rs[i].id), ORDER(PAID));
    s = shop_fx_stock(&fx, "limited");
    CHECK_EQ(s->available, 0);
    CHECK_EQ(s->reserved, 0);
    CHECK_EQ(s->sold, 10);
    FREE_MSG(s);

    /* straight at the inventory: 50 reservations of 1 for 5 more units */
    ctx = shop_fx_ctx();
    ar.quantity = 5;
    CHECK_EQ(shop_inventory_v1_inventory_add_stock(fx.ch[SHOP_INVENTORY], &ar, &s, NULL, NULL, ctx), 0);
    FREE_MSG(s);
    tern_ctx_free(ctx);
    static reserver vs[BUYERS];
    tern_waitgroup_add(&wg, BUYERS);
    for (int i = 0; i < BUYERS; i++) {
        vs[i] = (reserver){.fx = &fx, .wg = &wg};
        snprintf(vs[i].id, sizeof vs[i].id, "direct-%d", i);
        CHECK_EQ(tern_go(race_reserve, &vs[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    int held = 0;
    for (int i = 0; i < BUYERS; i++) {
        CHECK(vs[i].rc == 0 || vs[i].rc == -EPERM);
        held += vs[i].rc == 0;
    }
    CHECK_EQ(held, 5);
    s = shop_fx_stock(&fx, "limited");
    CHECK_EQ(s->available, 0);
    CHECK_EQ(s->reserved, 5);
    FREE_MSG(s);
    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void no_oversell_under_concurrent_orders(void)
{
    run_ok(oversell_body, NULL, 2);
}

/* ---- reservations ------------------------------------------------------------------------- */

static int reservation_body(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start(&fx, dir, NULL);
    tern_ctx *ctx = shop_fx_ctx();
    tern_grpc_channel *inv = fx.ch[SHOP_INVENTORY];

    Shop__Inventory__V1__Item it = SHOP__INVENTORY__V1__ITEM__INIT, it2 = SHOP__INVENTORY__V1__ITEM__INIT;
    it.product_id = "descaler";
    it.quantity = 5;
    it2.product_id = "filters";
    it2.quantity = 300;                 /* more than the 200 there are */
    Shop__Inventory__V1__Item *both[] = {&it, &it2};
    Shop__Inventory__V1__ReserveRequest rr = SHOP__INVENTORY__V1__RESERVE_REQUEST__INIT;
    rr.reservation_id = "r-1";
    rr.items = both;
    rr.n_items = 2;
    Shop__Inventory__V1__Reservation *res = NULL;
    tern_grpc_status st = {0};
    /* all or nothing: the short item undoes the other */
    CHECK_EQ(shop_inventory_v1_inventory_reserve(inv, &rr, &res, NULL, &st, ctx), -EPERM);
    CHECK(strstr(st.message, "filters"));
    tern_grpc_status_clear(&st);
    Shop__Inventory__V1__Stock *s = shop_fx_stock(&fx, "descaler");
    CHECK_EQ(s->available, 50);
    FREE_MSG(s);

    /* held, then a retry of the same id is the same reservation */
    rr.n_items = 1;
    rr.ttl_seconds = 1;
    CHECK_EQ(shop_inventory_v1_inventory_reserve(inv, &rr, &res, NULL, NULL, ctx), 0);
    CHECK_EQ(res->status, SHOP__INVENTORY__V1__RESERVATION_STATUS__RESERVATION_STATUS_HELD);
    FREE_MSG(res);
    CHECK_EQ(shop_inventory_v1_inventory_reserve(inv, &rr, &res, NULL, NULL, ctx), 0);
    FREE_MSG(res);
    s = shop_fx_stock(&fx, "descaler");
    CHECK_EQ(s->available, 45);
    CHECK_EQ(s->reserved, 5);
    FREE_MSG(s);

    /* not committed within its second: the sweeper gives the stock back */
    for (int i = 0; i < 300; i++) {
        s = shop_fx_stock(&fx, "descaler");
        bool back = s->available == 50;
        FREE_MSG(s);
        if (back)
            break;
        tern_sleep(10 * TERN_MS);
    }
    s = shop_fx_stock(&fx, "descaler");
    CHECK_EQ(s->available, 50);
    CHECK_EQ(s->reserved, 0);
    FREE_MSG(s);
    /* and a released reservation cannot be committed */
    Shop__Inventory__V1__ReservationRef ref = SHOP__INVENTORY__V1__RESERVATION_REF__INIT;
    ref.reservation_id = "r-1";
    CHECK_EQ(shop_inventory_v1_inventory_commit(inv, &ref, &res, NULL, NULL, ctx), -EPERM);
    CHECK_EQ(shop_inventory_v1_inventory_release(inv, &ref, &res, NULL, NULL, ctx), 0);   /* idempotent */
    FREE_MSG(res);
    ref.reservation_id = "r-none";
    CHECK_EQ(shop_inventory_v1_inventory_release(inv, &ref, &res, NULL, NULL, ctx), -ENOENT);

    /* committed: sold, and committing again changes nothing */
    rr.reservation_id = "r-2";
    rr.ttl_seconds = 0;
    CHECK_EQ(shop_inventory_v1_inventory_reserve(inv, &rr, &res, NULL, NULL, ctx), 0);
    FREE_MSG(res);
    ref.reservation_id = "r-2";
    CHECK_EQ(shop_inventory_v1_inventory_commit(inv, &ref, &res, NULL, NULL, ctx), 0);
    FREE_MSG(res);
    CHECK_EQ(shop_inventory_v1_inventory_commit(inv, &ref, &res, NULL, NULL, ctx), 0);
    FREE_MSG(res);
    CHECK_EQ(shop_inventory_v1_inventory_release(inv, &ref, &res, NULL, NULL, ctx), -EPERM);
    s = shop_fx_stock(&fx, "descaler");
    CHECK_EQ(s->available, 45);
    CHECK_EQ(s->reserved, 0);
    CHECK_EQ(s->sold, 5);
    FREE_MSG(s);

    /* bad requests: a clear error */
    it.quantity = 0;
    CHECK_EQ(shop_inventory_v1_inventory_reserve(inv, &rr, &res, NULL, NULL, ctx), -EINVAL);
    it.quantity = INT64_MAX;
    CHECK_EQ(shop_inventory_v1_inventory_reserve(inv, &rr, &res, NULL, NULL, ctx), -EINVAL);
    Shop__Inventory__V1__AddStockRequest huge = SHOP__INVENTORY__V1__ADD_STOCK_REQUEST__INIT;
    huge.product_id = "descaler";
    huge.quantity = INT64_MAX;
    Shop__Inventory__V1__Stock *hs = NULL;
    CHECK_EQ(shop_inventory_v1_inventory_add_stock(inv, &huge, &hs, NULL, NULL, ctx), -EINVAL);
    Shop__Inventory__V1__Item *twice[] = {&it2, &it2};
    rr.items = twice;
    rr.n_items = 2;
    rr.reservation_id = "r-3";
    CHECK_EQ(shop_inventory_v1_inventory_reserve(inv, &rr, &res, NULL, NULL, ctx), -EINVAL);

    tern_ctx_free(ctx);
    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void reservations_all_or_nothing_idempotent_and_expiring(void)
{
    run_ok(reservation_body, NULL, 2);
}

/* ---- start-up failures ---------------------------------------------------------------- */

static int bad_start_body(void *arg)
{
    (void)arg;
    char dir[256], data[300];
    shop_fx_mkdir(dir, sizeof dir);
    snprintf(data, sizeof data, "--data_dir=%s", dir);
    /* payments, the last role, cannot listen: the roles before it were
     * made and are undone (ASan's leak check sees the rest) */
    const char *argv[] = {"shop-test", data, "--users.addr=127.0.0.1:0", "--catalog.addr=127.0.0.1:0",
                          "--inventory.addr=127.0.0.1:0", "--orders.addr=127.0.0.1:0",
                          "--payments.addr=256.1.1.1:1", "--users.admin=", "--catalog.admin=",
                          "--inventory.admin=", "--orders.admin=", "--payments.admin=", "--users.scrypt_n=1024"};
    tern_config *cfg;
    CHECK_EQ(shop_config_new(sizeof argv / sizeof argv[0], (char **)argv, &cfg), 0);
    shop_app *app = (shop_app *)1;
    CHECK(shop_app_new(cfg, &(shop_app_options){.roles = SHOP_SERVICES, .no_signals = true}, &app) < 0);
    CHECK(app == NULL);
    tern_config_free(cfg);

    /* a data directory that cannot be made */
    const char *argv2[] = {"shop-test", "--data_dir=/proc/no/such/dir"};
    CHECK_EQ(shop_config_new(2, (char **)argv2, &cfg), 0);
    CHECK(shop_app_new(cfg, &(shop_app_options){.roles = SHOP_SERVICES, .no_signals = true}, &app) < 0);
    tern_config_free(cfg);

    /* roles by name */
    unsigned mask;
    char err[128];
    CHECK_EQ(shop_roles_parse("all", &mask, err, sizeof err), 0);
    CHECK_EQ(mask & SHOP_SERVICES, SHOP_SERVICES);
    CHECK_EQ(shop_roles_parse("catalog,inventory", &mask, err, sizeof err), 0);
    CHECK_EQ(mask, (1u << SHOP_CATALOG) | (1u << SHOP_INVENTORY));
    CHECK_EQ(shop_roles_parse("catalog,shipping", &mask, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "\"shipping\""));
    CHECK_EQ(shop_roles_parse("", &mask, err, sizeof err), -EINVAL);
    shop_fx_rmdir(dir);
    return 0;
}

static void a_role_that_cannot_start_undoes_the_others(void)
{
    run_ok(bad_start_body, NULL, 2);
}

TESTS(T(a_role_that_cannot_start_undoes_the_others), T(users_sign_up_and_login_with_scrypt_passwords), T(catalog_browse_search_and_pages),
      T(order_saga_reaches_paid_and_commits_the_stock), T(order_saga_compensates_when_payment_fails),
      T(idempotency_key_returns_the_same_order), T(no_oversell_under_concurrent_orders),
      T(reservations_all_or_nothing_idempotent_and_expiring))
