/*
 * orders.c - shop.orders.v1.Orders: create an order once per idempotency
 * key, read orders back.
 *
 * CreateOrder prices the items at the catalog (over gRPC), writes the
 * order PENDING with its items, then runs the saga's first step
 * (saga.c: reserve stock, then AWAITING_PAYMENT with OrderCreated in the
 * outbox) and answers with the order as it then is.  The idempotency key
 * (the field, or the idempotency-key metadata the gateway forwards from
 * the Idempotency-Key header) is unique per user in the table: a retry,
 * even one racing the first request, finds the same order, and if that
 * one is still PENDING (the first attempt lost its reservation call) the
 * retry carries the saga on.  The key with other lines is refused.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/orders.h"

#define MAX_ITEMS 50
#define DEFAULT_PAGE 20
#define MAX_PAGE 100

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS orders ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  idempotency_key TEXT,"
    "  status BIGINT NOT NULL,"
    "  total_cents BIGINT NOT NULL,"
    "  currency TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  created_ms BIGINT NOT NULL,"
    "  updated_ms BIGINT NOT NULL,"
    "  UNIQUE (user_id, idempotency_key));"
    "CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, id);"
    "CREATE INDEX IF NOT EXISTS orders_open ON orders (status, updated_ms);"
    "CREATE TABLE IF NOT EXISTS order_items ("
    "  order_id TEXT NOT NULL,"
    "  product_id TEXT NOT NULL,"
    "  quantity BIGINT NOT NULL CHECK (quantity > 0),"
    "  unit_price_cents BIGINT NOT NULL,"
    "  PRIMARY KEY (order_id, product_id));";

int orders_set_status(shop_role *r, const char *order_id, int from, int to, const char *reason, tern_ctx *ctx)
{
    char f[SHOP_I64_MAX], t[SHOP_I64_MAX], now[SHOP_I64_MAX];
    int64_t changed = 0;
    int rc = shop_db_exec(r->store,
                          "UPDATE orders SET status = $3, reason = $4, updated_ms = $5 WHERE id = $1 AND status = $2",
                          SHOP_PARAMS(order_id, shop_i64(f, from), shop_i64(t, to), reason ? reason : "",
                                          shop_i64(now, shop_now_ms())),
                          &changed, ctx);
    return rc < 0 ? rc : (int)changed;
}

/* ---- reading ------------------------------------------------------------------ */

/* The user an order is for: the x-user-id metadata when there is one
 * (the gateway sets it from the verified token, so a body cannot order
 * for someone else), else the request's field. */
static const char *caller(tern_grpc_call *call, const char *field)
{
    const char *md = tern_grpc_call_metadata(call, "x-user-id");
    return md && *md ? md : field;
}


static int fill_order(tern_grpc_call *call, shop_role *r, const shop_rows *o, int row,
                      Shop__Orders__V1__Order *out)
{
    out->id = tern_grpc_call_strdup(call, shop_rows_str(o, row, "id"));
    out->user_id = tern_grpc_call_strdup(call, shop_rows_str(o, row, "user_id"));
    out->currency = tern_grpc_call_strdup(call, shop_rows_str(o, row, "currency"));
    out->reason = tern_grpc_call_strdup(call, shop_rows_str(o, row, "reason"));
    out->status = (Shop__Orders__V1__OrderStatus)shop_rows_i64(o, row, "status");
    out->total_cents = shop_rows_i64(o, row, "total_cents");
    out->created_at_unix_ms = shop_rows_i64(o, row, "created_ms");
    out->updated_at_unix_ms = shop_rows_i64(o, row, "updated_ms");
    if (!out->id || !out->user_id || !out->currency || !out->reason)
        return -ENOMEM;
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM order_items WHERE order_id = $1 ORDER BY product_id",
                           SHOP_PARAMS(out->id), &res, tern_grpc_call_ctx(call));
    if (rc < 0)
        return rc;
    int rows = shop_rows_count(res);
    out->items = tern_grpc_call_alloc(call, sizeof *out->items * (size_t)(rows ? rows : 1));
    Shop__Orders__V1__OrderItem *items = tern_grpc_call_alloc(call, sizeof *items * (size_t)(rows ? rows : 1));
    rc = out->items && items ? 0 : -ENOMEM;
    for (int i = 0; i < rows && rc == 0; i++) {
        shop__orders__v1__order_item__init(&items[i]);
        items[i].product_id = tern_grpc_call_strdup(call, shop_rows_str(res, i, "product_id"));
        items[i].quantity = shop_rows_i64(res, i, "quantity");
        items[i].unit_price_cents = shop_rows_i64(res, i, "unit_price_cents");
        out->items[out->n_items++] = &items[i];
        if (!items[i].product_id)
            rc = -ENOMEM;
    }
    shop_rows_free(res);
    return rc;
}

static int load_order(tern_grpc_call *call, shop_role *r, const char *id, Shop__Orders__V1__Order *out)
{
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM orders WHERE id = $1", SHOP_PARAMS(id), &res,
                           tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    if (shop_rows_count(res) == 0)
        rc = tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no order %s", id);
    else
        rc = fill_order(call, r, res, 0, out);
    shop_rows_free(res);
    return rc;
}

static int get_order(tern_grpc_call *call, const Shop__Orders__V1__GetOrderRequest *req,
                     Shop__Orders__V1__Order *resp, void *arg)
{
    return load_order(call, arg, req->order_id, resp);
}

static int list_orders(tern_grpc_call *call, const Shop__Orders__V1__ListOrdersRequest *req,
                       Shop__Orders__V1__ListOrdersResponse *resp, void *arg)
{
    shop_role *r = arg;
    const char *user = caller(call, req->user_id);
    if (!*user)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "user_id is required");
    int size = req->page_size <= 0 ? DEFAULT_PAGE : req->page_size > MAX_PAGE ? MAX_PAGE : req->page_size;
    char limit[SHOP_I64_MAX];
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM orders WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                           SHOP_PARAMS(user, req->page_token, shop_i64(limit, size + 1)), &res,
                           tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    int rows = shop_rows_count(res);
    int shown = rows > size ? size : rows;
    resp->orders = tern_grpc_call_alloc(call, sizeof *resp->orders * (size_t)(shown ? shown : 1));
    Shop__Orders__V1__Order *os = tern_grpc_call_alloc(call, sizeof *os * (size_t)(shown ? shown : 1));
    rc = resp->orders && os ? 0 : -ENOMEM;
    for (int i = 0; i < shown && rc == 0; i++) {
        shop__orders__v1__order__init(&os[i]);
        rc = fill_order(call, r, res, i, &os[i]);
        resp->orders[resp->n_orders++] = &os[i];
    }
    if (rc == 0 && rows > size && !(resp->next_page_token = tern_grpc_call_strdup(call, os[shown - 1].id)))
        rc = -ENOMEM;
    shop_rows_free(res);
    return rc;
}

/* ---- creating ------------------------------------------------------------------- */

typedef struct priced {
    const char *product_id;
    int64_t quantity, unit_price;
} priced;

typedef struct insert_tx {
    const char *id, *user_id, *key, *currency;
    const priced *items;
    size_t n;
    int64_t total;
} insert_tx;

static int insert_body(shop_tx *tx, tern_ctx *ctx, void *arg)
{
    insert_tx *a = arg;
    char status[SHOP_I64_MAX], total[SHOP_I64_MAX], now[SHOP_I64_MAX];
    shop_i64(now, shop_now_ms());
    int rc = shop_tx_exec(tx,
                          "INSERT INTO orders (id, user_id, idempotency_key, status, total_cents, currency,"
                          " created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                          SHOP_PARAMS(a->id, a->user_id, a->key, shop_i64(status, PENDING),
                                             shop_i64(total, a->total), a->currency, now),
                          NULL, ctx);
    for (size_t i = 0; i < a->n && rc == 0; i++) {
        char q[SHOP_I64_MAX], p[SHOP_I64_MAX];
        rc = shop_tx_exec(tx,
                          "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents)"
                          " VALUES ($1, $2, $3, $4)",
                          SHOP_PARAMS(a->id, a->items[i].product_id, shop_i64(q, a->items[i].quantity),
                                             shop_i64(p, a->items[i].unit_price)),
                          NULL, ctx);
    }
    return rc;
}

/* The order a user made with key, if any: its id into id. */
static int find_by_key(shop_role *r, const char *user_id, const char *key, char *id, tern_ctx *ctx)
{
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT id FROM orders WHERE user_id = $1 AND idempotency_key = $2",
                           SHOP_PARAMS(user_id, key), &res, ctx);
    if (rc < 0)
        return rc;
    rc = shop_rows_count(res) > 0 ? 1 : 0;
    if (rc)
        snprintf(id, SHOP_ID_MAX, "%s", shop_rows_str(res, 0, "id"));
    shop_rows_free(res);
    return rc;
}

/* Whether order id has exactly req's lines (the same products, the same
 * quantities): a key reused for another request is an error, not that
 * request's order (draft-ietf-httpapi-idempotency-key's 422). */
static int same_lines(shop_role *r, const char *id, const Shop__Orders__V1__CreateOrderRequest *req, tern_ctx *ctx)
{
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT product_id, quantity FROM order_items WHERE order_id = $1",
                           SHOP_PARAMS(id), &res, ctx);
    if (rc < 0)
        return rc;
    int rows = shop_rows_count(res);
    bool same = rows == (int)req->n_items;
    for (int i = 0; same && i < rows; i++) {
        bool found = false;
        for (size_t j = 0; !found && j < req->n_items; j++)
            found = !strcmp(shop_rows_str(res, i, "product_id"), req->items[j]->product_id) &&
                    shop_rows_i64(res, i, "quantity") == req->items[j]->quantity;
        same = found;
    }
    shop_rows_free(res);
    return same;
}

/* Price every line at the catalog: unit prices and the total into a. */
static int price(tern_grpc_call *call, shop_role *r, const Shop__Orders__V1__CreateOrderRequest *req, priced *items,
                 insert_tx *a, char *currency, size_t currency_len)
{
    shop_call_md md;
    orders *o = r->state;
    tern_ctx *ctx;
    int rc = shop_call_ctx(r, tern_grpc_call_ctx(call), &ctx);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < req->n_items && rc == 0; i++) {
        Shop__Catalog__V1__GetProductRequest gr = SHOP__CATALOG__V1__GET_PRODUCT_REQUEST__INIT;
        gr.id = req->items[i]->product_id;
        Shop__Catalog__V1__Product *p;
        tern_grpc_status st = {0};
        rc = shop_catalog_v1_catalog_get_product(o->catalog, &gr, &p, shop_call_options(&md), &st, ctx);
        if (rc == -ENOENT) {
            rc = tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "items[%zu]: no product %s", i, gr.id);
        } else if (rc < 0) {
            rc = tern_grpc_call_fail(call, TERN_GRPC_UNAVAILABLE, "catalog: %s",
                                     st.message ? st.message : tern_strerror(rc));
        } else {
            if (i == 0)
                snprintf(currency, currency_len, "%s", p->currency);
            if (strcmp(currency, p->currency) != 0)
                rc = tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "items[%zu]: priced in %s, not %s", i,
                                         p->currency, currency);
            items[i] = (priced){req->items[i]->product_id, req->items[i]->quantity, p->price_cents};
            int64_t line;
            if (rc == 0 && (__builtin_mul_overflow(p->price_cents, req->items[i]->quantity, &line) ||
                            __builtin_add_overflow(a->total, line, &a->total)))
                rc = tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "items[%zu]: the total does not fit", i);
            protobuf_c_message_free_unpacked(&p->base, NULL);
        }
        tern_grpc_status_clear(&st);
    }
    tern_ctx_free(ctx);
    return rc;
}

static int validate(tern_grpc_call *call, const char *user, const Shop__Orders__V1__CreateOrderRequest *req)
{
    if (!*user || strlen(user) > 200)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "user_id is required (at most 200 bytes)");
    if (req->n_items == 0 || req->n_items > MAX_ITEMS)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "an order has 1 to %d items", MAX_ITEMS);
    for (size_t i = 0; i < req->n_items; i++) {
        const Shop__Orders__V1__CreateOrderRequest__Line *l = req->items[i];
        if (!*l->product_id || l->quantity <= 0 || l->quantity > 1000000)
            return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT,
                                       "items[%zu]: product_id and a quantity of 1 to 1000000 are required", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l->product_id, req->items[j]->product_id))
                return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "items[%zu]: product %s is listed twice",
                                           i, l->product_id);
    }
    return 0;
}

static int create_order(tern_grpc_call *call, const Shop__Orders__V1__CreateOrderRequest *req,
                        Shop__Orders__V1__Order *resp, void *arg)
{
    shop_role *r = arg;
    const char *user = caller(call, req->user_id);
    int rc = validate(call, user, req);
    if (rc < 0)
        return rc;
    const char *key = *req->idempotency_key ? req->idempotency_key : tern_grpc_call_metadata(call, "idempotency-key");
    if (key && (!*key || strlen(key) > 200))
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "idempotency key: 1 to 200 bytes");
    tern_ctx *ctx = tern_grpc_call_ctx(call);
    char id[SHOP_ID_MAX];
    rc = key ? find_by_key(r, user, key, id, ctx) : 0;
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    if (rc == 0) {
        priced *items = calloc(req->n_items, sizeof *items);
        if (!items)
            return -ENOMEM;
        char currency[16] = "";
        shop_id_new("o-", id);
        insert_tx a = {.id = id, .user_id = user, .key = key, .items = items, .n = req->n_items};
        rc = price(call, r, req, items, &a, currency, sizeof currency);
        assert(rc < 0 || a.total >= 0);     /* prices are never negative (the catalog's CHECK) */
        a.currency = currency;
        if (rc == 0)
            rc = shop_db_tx(r->store, insert_body, &a, ctx);
        free(items);
        if (rc == -EEXIST && key && find_by_key(r, user, key, id, ctx) == 1)
            rc = 0;                     /* a concurrent retry wrote it first: that one is the order */
        else if (rc == -EEXIST || (rc < 0 && tern_grpc_call_code(call) == TERN_GRPC_OK))
            return shop_fail(call, rc, NULL);
        if (rc < 0)
            return rc;
    }
    if (key && (rc = same_lines(r, id, req, ctx)) <= 0)
        return rc < 0 ? shop_fail(call, rc, NULL)
                      : tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT,
                                            "idempotency key %s was used for another order (%s)", key, id);
    tern_grpc_status st = {0};
    rc = orders_saga_reserve(r, id, &st, ctx);
    if (rc < 0) {
        /* the order stays PENDING: a retry with the key, or the watchdog,
         * carries it on */
        rc = tern_grpc_call_fail(call, TERN_GRPC_UNAVAILABLE, "order %s: inventory: %s", id,
                                 st.message ? st.message : tern_strerror(rc));
        tern_grpc_status_clear(&st);
        return rc;
    }
    tern_grpc_status_clear(&st);
    return load_order(call, r, id, resp);
}

static const shop_orders_v1_orders_server impl = {
    .create_order = create_order,
    .get_order = get_order,
    .list_orders = list_orders,
};

static int init(shop_role *r)
{
    int rc = shop_db_schema(r->store, schema, NULL);
    if (rc == 0)
        rc = shop_db_outbox(r->store, "orders", &r->outbox, NULL);
    if (rc == 0 && !(r->state = calloc(1, sizeof(orders))))
        rc = -ENOMEM;
    if (rc == 0)
        rc = shop_orders_v1_orders_register(r->grpc, &impl, r);
    return rc;
}

static int start(shop_role *r)
{
    orders *o = r->state;
    int rc = shop_app_channel(r->app, SHOP_CATALOG, &o->catalog);
    if (rc == 0)
        rc = shop_app_channel(r->app, SHOP_INVENTORY, &o->inventory);
    if (rc == 0)
        rc = shop_app_channel(r->app, SHOP_PAYMENTS, &o->payments);
    if (rc == 0)
        rc = orders_saga_start(r);
    return rc;
}

static void stop(shop_role *r)
{
    orders *o = r->state;
    tern_events_sub_free(o->sub);
    tern_grpc_channel_free(o->catalog);
    tern_grpc_channel_free(o->inventory);
    tern_grpc_channel_free(o->payments);
    *o = (orders){0};
}

const shop_role_ops shop_orders_ops = {.name = "orders", .pg = true, .events = true, .init = init, .start = start, .stop = stop};
