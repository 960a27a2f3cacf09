/*
 * inventory.c - shop.inventory.v1.Inventory: stock per product and
 * reservations that cannot oversell.
 *
 * Why it cannot oversell, under any concurrency and across processes: a
 * reservation takes stock with one conditional statement per item,
 *     UPDATE stock SET available = available - n ... WHERE available >= n
 * inside one transaction for all the items: the database decides, not a
 * lock in this process, and an item that finds too little rolls the whole
 * reservation back.  The CHECK (available >= 0) constraint is the second
 * line: a statement that would go below zero fails instead.
 *
 * A reservation is keyed by the caller's id (the order id), so a retried
 * Reserve finds the first one instead of reserving twice; Commit (sold)
 * and Release (stock back) are idempotent the same way.  A reservation
 * neither committed nor released by its expiry is released by a sweeper
 * (inventory.sweep_interval), so a crashed or abandoned order gives its
 * stock back.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/shop.h"
#include "inventory.tern-grpc.h"

#define MAX_ITEMS 100
/* Stock added at once, and held in all (the schema's CHECK): far from
 * int64's end, so no sum in SQL can overflow into a REAL. */
#define MAX_QUANTITY 1000000000LL

enum { HELD = SHOP__INVENTORY__V1__RESERVATION_STATUS__RESERVATION_STATUS_HELD,
       COMMITTED = SHOP__INVENTORY__V1__RESERVATION_STATUS__RESERVATION_STATUS_COMMITTED,
       RELEASED = SHOP__INVENTORY__V1__RESERVATION_STATUS__RESERVATION_STATUS_RELEASED };

/* A reservation's body returns this when an item is short: not an errno,
 * so it cannot be mistaken for a database error. */
#define SHORT 1

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS stock ("
    "  product_id TEXT PRIMARY KEY,"
    "  available BIGINT NOT NULL CHECK (available >= 0 AND available <= 1000000000000),"
    "  reserved BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),"
    "  sold BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS reservations ("
    "  id TEXT NOT NULL,"
    "  product_id TEXT NOT NULL,"
    "  quantity BIGINT NOT NULL CHECK (quantity > 0),"
    "  status BIGINT NOT NULL,"
    "  expires_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (id, product_id));"
    "CREATE INDEX IF NOT EXISTS reservations_held ON reservations (status, expires_ms);";

/* ---- stock ----------------------------------------------------------------- */

static int fill_stock(tern_grpc_call *call, const shop_rows *res, Shop__Inventory__V1__Stock *s)
{
    s->product_id = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "product_id"));
    s->available = shop_rows_i64(res, 0, "available");
    s->reserved = shop_rows_i64(res, 0, "reserved");
    s->sold = shop_rows_i64(res, 0, "sold");
    return s->product_id ? 0 : -ENOMEM;
}

static int add_stock(tern_grpc_call *call, const Shop__Inventory__V1__AddStockRequest *req,
                     Shop__Inventory__V1__Stock *resp, void *arg)
{
    shop_role *r = arg;
    if (!*req->product_id || req->quantity <= 0 || req->quantity > MAX_QUANTITY)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT,
                                   "product_id and a quantity of 1 to %lld are required", (long long)MAX_QUANTITY);
    char q[SHOP_I64_MAX];
    shop_rows *res;
    /* only_if_new: the primary key decides, so two seeders at once add it once */
    int rc = shop_db_query(r->store,
                           req->only_if_new
                               ? "INSERT INTO stock (product_id, available) VALUES ($1, $2)"
                                 " ON CONFLICT (product_id) DO NOTHING RETURNING *"
                               : "INSERT INTO stock (product_id, available) VALUES ($1, $2)"
                                 " ON CONFLICT (product_id) DO UPDATE SET available = stock.available + excluded.available"
                                 " RETURNING *",
                           SHOP_PARAMS(req->product_id, shop_i64(q, req->quantity)), &res,
                           tern_grpc_call_ctx(call));
    if (rc == 0 && shop_rows_count(res) == 0) {      /* it had stock: as it is */
        shop_rows_free(res);
        rc = shop_db_query(r->store, "SELECT * FROM stock WHERE product_id = $1", SHOP_PARAMS(req->product_id),
                           &res, tern_grpc_call_ctx(call));
    }
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    rc = fill_stock(call, res, resp);
    shop_rows_free(res);
    return rc;
}

static int get_stock(tern_grpc_call *call, const Shop__Inventory__V1__GetStockRequest *req,
                     Shop__Inventory__V1__Stock *resp, void *arg)
{
    shop_role *r = arg;
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM stock WHERE product_id = $1", SHOP_PARAMS(req->product_id),
                           &res, tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    if (shop_rows_count(res) == 0)
        rc = tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no stock for product %s", req->product_id);
    else
        rc = fill_stock(call, res, resp);
    shop_rows_free(res);
    return rc;
}

/* ---- reservations ------------------------------------------------------------ */

/* The reservation's rows as the answer (NOT_FOUND when there are none). */
static int answer(tern_grpc_call *call, shop_role *r, const char *id, Shop__Inventory__V1__Reservation *resp)
{
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM reservations WHERE id = $1 ORDER BY product_id",
                           SHOP_PARAMS(id), &res, tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    int rows = shop_rows_count(res);
    if (rows == 0) {
        shop_rows_free(res);
        return tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no reservation %s", id);
    }
    resp->reservation_id = tern_grpc_call_strdup(call, id);
    resp->status = (Shop__Inventory__V1__ReservationStatus)shop_rows_i64(res, 0, "status");
    resp->expires_at_unix_ms = shop_rows_i64(res, 0, "expires_ms");
    resp->items = tern_grpc_call_alloc(call, sizeof *resp->items * (size_t)rows);
    Shop__Inventory__V1__Item *items = tern_grpc_call_alloc(call, sizeof *items * (size_t)rows);
    rc = resp->reservation_id && resp->items && items ? 0 : -ENOMEM;
    for (int i = 0; i < rows && rc == 0; i++) {
        shop__inventory__v1__item__init(&items[i]);
        items[i].product_id = tern_grpc_call_strdup(call, shop_rows_str(res, i, "product_id"));
        items[i].quantity = shop_rows_i64(res, i, "quantity");
        resp->items[i] = &items[i];
        resp->n_items++;
        if (!items[i].product_id)
            rc = -ENOMEM;
    }
    shop_rows_free(res);
    return rc;
}

typedef struct reserve_tx {
    const Shop__Inventory__V1__ReserveRequest *req;
    int64_t expires_ms;
    char short_product[128];            /* the item that was short */
} reserve_tx;

static int reserve_body(shop_tx *tx, tern_ctx *ctx, void *arg)
{
    reserve_tx *a = arg;
    const Shop__Inventory__V1__ReserveRequest *req = a->req;
    shop_rows *res;
    int rc = shop_tx_query(tx, "SELECT 1 FROM reservations WHERE id = $1 LIMIT 1",
                           SHOP_PARAMS(req->reservation_id), &res, ctx);
    if (rc < 0)
        return rc;
    bool exists = shop_rows_count(res) > 0;
    shop_rows_free(res);
    if (exists)
        return 0;                       /* a retry: the first reservation stands */
    char q[SHOP_I64_MAX], status[SHOP_I64_MAX], expires[SHOP_I64_MAX];
    shop_i64(status, HELD);
    shop_i64(expires, a->expires_ms);
    for (size_t i = 0; i < req->n_items; i++) {
        const Shop__Inventory__V1__Item *it = req->items[i];
        int64_t taken = 0;
        shop_i64(q, it->quantity);
        rc = shop_tx_exec(tx,
                          "UPDATE stock SET available = available - $2, reserved = reserved + $2"
                          " WHERE product_id = $1 AND available >= $2",
                          SHOP_PARAMS(it->product_id, q), &taken, ctx);
        if (rc < 0)
            return rc;
        if (taken == 0) {
            snprintf(a->short_product, sizeof a->short_product, "%s", it->product_id);
            return SHORT;
        }
        rc = shop_tx_exec(tx,
                          "INSERT INTO reservations (id, product_id, quantity, status, expires_ms)"
                          " VALUES ($1, $2, $3, $4, $5)",
                          SHOP_PARAMS(req->reservation_id, it->product_id, q, status, expires), NULL, ctx);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int reserve(tern_grpc_call *call, const Shop__Inventory__V1__ReserveRequest *req,
                   Shop__Inventory__V1__Reservation *resp, void *arg)
{
    shop_role *r = arg;
    if (!*req->reservation_id || req->n_items == 0 || req->n_items > MAX_ITEMS)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT,
                                   "reservation_id and 1 to %d items are required", MAX_ITEMS);
    for (size_t i = 0; i < req->n_items; i++) {
        if (!*req->items[i]->product_id || req->items[i]->quantity <= 0 || req->items[i]->quantity > MAX_QUANTITY)
            return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT,
                                       "items[%zu]: product_id and a positive quantity are required", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(req->items[i]->product_id, req->items[j]->product_id))
                return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT,
                                           "items[%zu]: product %s is listed twice", i, req->items[i]->product_id);
    }
    int64_t ttl_ms = req->ttl_seconds > 0 ? req->ttl_seconds * 1000
                                          : tern_config_duration(r->cfg, "inventory.reservation_ttl") / TERN_MS;
    reserve_tx a = {.req = req, .expires_ms = shop_now_ms() + ttl_ms};
    int rc = shop_db_tx(r->store, reserve_body, &a, tern_grpc_call_ctx(call));
    if (rc == SHORT)
        return tern_grpc_call_fail(call, TERN_GRPC_FAILED_PRECONDITION, "out of stock: product %s",
                                   a.short_product);
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    return answer(call, r, req->reservation_id, resp);
}

typedef struct settle_tx {
    const char *id;
    int to;                             /* COMMITTED or RELEASED */
    bool only_expired;                  /* the sweeper: only if still held and past its expiry */
    int64_t now_ms;
    int found;                          /* the status it had; 0: no such reservation */
} settle_tx;

static int settle_body(shop_tx *tx, tern_ctx *ctx, void *arg)
{
    settle_tx *a = arg;
    assert(a->to == COMMITTED || a->to == RELEASED);
    a->found = 0;
    shop_rows *res;
    int rc = shop_tx_query(tx, "SELECT * FROM reservations WHERE id = $1", SHOP_PARAMS(a->id), &res, ctx);
    if (rc < 0)
        return rc;
    int rows = shop_rows_count(res);
    if (rows > 0)
        a->found = (int)shop_rows_i64(res, 0, "status");
    if (a->found != HELD || (a->only_expired && shop_rows_i64(res, 0, "expires_ms") >= a->now_ms)) {
        shop_rows_free(res);
        return 0;
    }
    const char *sql = a->to == COMMITTED
        ? "UPDATE stock SET reserved = reserved - $2, sold = sold + $2 WHERE product_id = $1"
        : "UPDATE stock SET reserved = reserved - $2, available = available + $2 WHERE product_id = $1";
    for (int i = 0; i < rows && rc == 0; i++)
        rc = shop_tx_exec(tx, sql, SHOP_PARAMS(shop_rows_str(res, i, "product_id"), shop_rows_str(res, i, "quantity")),
                          NULL, ctx);
    shop_rows_free(res);
    char to[SHOP_I64_MAX];
    if (rc == 0)
        rc = shop_tx_exec(tx, "UPDATE reservations SET status = $2 WHERE id = $1",
                          SHOP_PARAMS(a->id, shop_i64(to, a->to)), NULL, ctx);
    return rc;
}

static int settle(tern_grpc_call *call, shop_role *r, const char *id, int to,
                  Shop__Inventory__V1__Reservation *resp)
{
    settle_tx a = {.id = id, .to = to};
    int rc = shop_db_tx(r->store, settle_body, &a, tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    if (a.found == 0)
        return tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no reservation %s", id);
    if (a.found != HELD && a.found != to)
        return tern_grpc_call_fail(call, TERN_GRPC_FAILED_PRECONDITION, "reservation %s was %s already", id,
                                   a.found == COMMITTED ? "committed" : "released");
    return answer(call, r, id, resp);
}

static int commit(tern_grpc_call *call, const Shop__Inventory__V1__ReservationRef *req,
                  Shop__Inventory__V1__Reservation *resp, void *arg)
{
    return settle(call, arg, req->reservation_id, COMMITTED, resp);
}

static int release(tern_grpc_call *call, const Shop__Inventory__V1__ReservationRef *req,
                   Shop__Inventory__V1__Reservation *resp, void *arg)
{
    return settle(call, arg, req->reservation_id, RELEASED, resp);
}

/* ---- expiry ------------------------------------------------------------------ */

static int sweeper(void *arg)
{
    shop_role *r = arg;
    tern_ctx *ctx = shop_app_ctx(r->app);
    int64_t every = tern_config_duration(r->cfg, "inventory.sweep_interval");
    char held[SHOP_I64_MAX];
    shop_i64(held, HELD);
    while (tern_ctx_sleep(every, ctx) == 0) {
        char now[SHOP_I64_MAX];
        int64_t now_ms = shop_now_ms();
        shop_rows *res;
        if (shop_db_query(r->store,
                          "SELECT DISTINCT id FROM reservations WHERE status = $2 AND expires_ms < $1 LIMIT 100",
                          SHOP_PARAMS(shop_i64(now, now_ms), held), &res, ctx) < 0)
            continue;
        for (int i = 0; i < shop_rows_count(res); i++) {
            settle_tx a = {.id = shop_rows_str(res, i, "id"), .to = RELEASED, .only_expired = true,
                           .now_ms = now_ms};
            if (shop_db_tx(r->store, settle_body, &a, ctx) == 0 && a.found == HELD)
                tern_log_info("inventory: reservation expired, stock released", TERN_LOG_STR("reservation", a.id));
        }
        shop_rows_free(res);
    }
    return 0;
}

static const shop_inventory_v1_inventory_server impl = {
    .add_stock = add_stock,
    .get_stock = get_stock,
    .reserve = reserve,
    .commit = commit,
    .release = release,
};

static int init(shop_role *r)
{
    int rc = shop_db_schema(r->store, schema, NULL);
    if (rc < 0)
        return rc;
    return shop_inventory_v1_inventory_register(r->grpc, &impl, r);
}

static int start(shop_role *r)
{
    return shop_app_go(r->app, sweeper, r);
}

const shop_role_ops shop_inventory_ops = {.name = "inventory", .pg = true, .init = init, .start = start};
