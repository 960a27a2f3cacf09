/*
 * saga.c - an order's way from PENDING to PAID, or to CANCELLED with its
 * stock given back: the saga, kept by the order's row.
 *
 *   PENDING           reserve stock (inventory.Reserve, keyed by the order id)
 *     -> REJECTED     stock was short
 *     -> AWAITING_PAYMENT, and OrderCreated into the outbox (one transaction)
 *   AWAITING_PAYMENT  wait for payments' outcome (topic "payments")
 *     -> PAID         PaymentSucceeded: inventory.Commit, then the status
 *     -> CANCELLED    PaymentFailed: inventory.Release (the compensation), then the status
 *
 * Each step first does the remote, idempotent part and then moves the
 * status with a conditional UPDATE (WHERE status = the step's state), so
 * running a step twice, or two of them racing, changes the order once.
 * Events come at least once; a failed step returns an error and the event
 * comes back.  The in-process bus keeps events in memory, so one in
 * flight when the process stops is gone: the watchdog looks at every
 * order left in PENDING or AWAITING_PAYMENT for orders.recheck_after and
 * moves it on: PENDING reserves again, AWAITING_PAYMENT asks payments
 * (GetPayment) and applies the outcome it has, or sends OrderCreated
 * again when payments never heard of the order (payments charges once
 * per order whatever it receives).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders/orders.h"


typedef struct publish_tx {
    shop_role *r;
    const char *order_id;
    bool again;                         /* the watchdog's resend: the order is AWAITING_PAYMENT already */
} publish_tx;

/* Into the outbox: OrderCreated for the order as its row says. */
static int add_order_created(publish_tx *a, shop_tx *tx, tern_ctx *ctx)
{
    shop_rows *res;
    int rc = shop_tx_query(tx, "SELECT * FROM orders WHERE id = $1", SHOP_PARAMS(a->order_id), &res, ctx);
    if (rc < 0)
        return rc;
    if (shop_rows_count(res) == 0) {
        shop_rows_free(res);
        return -ENOENT;
    }
    Shop__Orders__V1__OrderCreated oc = SHOP__ORDERS__V1__ORDER_CREATED__INIT;
    oc.order_id = (char *)a->order_id;
    oc.user_id = (char *)shop_rows_str(res, 0, "user_id");
    oc.currency = (char *)shop_rows_str(res, 0, "currency");
    oc.amount_cents = shop_rows_i64(res, 0, "total_cents");
    char tp[TERN_TRACE_PARENT_LEN + 1];
    shop_traceparent(tp);
    oc.traceparent = tp;
    size_t len;
    void *data = shop_pack(&oc.base, &len);
    shop_rows_free(res);
    if (!data)
        return -ENOMEM;
    /* the first one's id is the order's, so the outbox holds it once; a
     * resend gets a fresh id (the first one is sent already) */
    char id[TERN_EVENTS_ID_MAX];
    if (a->again)
        shop_id_new("order-created-again-", id);
    else
        snprintf(id, sizeof id, "order-created-%s", a->order_id);
    tern_event ev = {.id = id, .topic = "orders", .type = SHOP_EVENT_ORDER_CREATED, .data = data, .len = len};
    rc = shop_tx_outbox_add(tx, a->r->outbox, &ev, ctx);
    free(data);
    return rc;
}

static int publish_body(shop_tx *tx, tern_ctx *ctx, void *arg)
{
    publish_tx *a = arg;
    char from[SHOP_I64_MAX], to[SHOP_I64_MAX], now[SHOP_I64_MAX];
    int64_t moved = 0;
    int rc = shop_tx_exec(tx, "UPDATE orders SET status = $3, updated_ms = $4 WHERE id = $1 AND status = $2",
                          SHOP_PARAMS(a->order_id, shop_i64(from, a->again ? AWAITING_PAYMENT : PENDING),
                                             shop_i64(to, AWAITING_PAYMENT), shop_i64(now, shop_now_ms())),
                          &moved, ctx);
    if (rc < 0 || moved == 0)
        return rc;                      /* moved on already (by a racing retry) */
    return add_order_created(a, tx, ctx);
}

int orders_saga_reserve(shop_role *r, const char *order_id, tern_grpc_status *st, tern_ctx *parent)
{
    shop_call_md md;
    orders *o = r->state;
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM orders WHERE id = $1", SHOP_PARAMS(order_id), &res, parent);
    if (rc < 0)
        return rc;
    if (shop_rows_count(res) == 0 || shop_rows_i64(res, 0, "status") != PENDING) {
        shop_rows_free(res);
        return 0;                       /* nothing (more) to reserve */
    }
    shop_rows_free(res);
    if ((rc = shop_db_query(r->store, "SELECT * FROM order_items WHERE order_id = $1", SHOP_PARAMS(order_id), &res,
                            parent)) < 0)
        return rc;
    int rows = shop_rows_count(res);
    Shop__Inventory__V1__Item *items = calloc((size_t)rows + 1, sizeof *items);
    Shop__Inventory__V1__Item **ptrs = calloc((size_t)rows + 1, sizeof *ptrs);
    Shop__Inventory__V1__ReserveRequest req = SHOP__INVENTORY__V1__RESERVE_REQUEST__INIT;
    req.reservation_id = (char *)order_id;
    req.items = ptrs;
    req.n_items = (size_t)rows;
    for (int i = 0; items && ptrs && i < rows; i++) {
        shop__inventory__v1__item__init(&items[i]);
        items[i].product_id = (char *)shop_rows_str(res, i, "product_id");
        items[i].quantity = shop_rows_i64(res, i, "quantity");
        ptrs[i] = &items[i];
    }
    tern_ctx *ctx = NULL;
    Shop__Inventory__V1__Reservation *resv = NULL;
    rc = items && ptrs ? shop_call_ctx(r, parent, &ctx) : -ENOMEM;
    if (rc == 0)
        rc = shop_inventory_v1_inventory_reserve(o->inventory, &req, &resv, shop_call_options(&md), st, ctx);
    tern_ctx_free(ctx);
    shop_rows_free(res);
    free(items);
    free(ptrs);
    if (resv)
        protobuf_c_message_free_unpacked(&resv->base, NULL);
    if (rc == -EPERM) {                 /* FAILED_PRECONDITION: short of stock */
        rc = orders_set_status(r, order_id, PENDING, REJECTED, st && st->message ? st->message : "out of stock",
                               parent);
        return rc < 0 ? rc : 0;
    }
    if (rc < 0)
        return rc;
    publish_tx a = {.r = r, .order_id = order_id};
    return shop_db_tx(r->store, publish_body, &a, parent);
}

int orders_saga_outcome(shop_role *r, const char *order_id, bool succeeded, const char *reason, tern_ctx *parent)
{
    shop_call_md md;
    orders *o = r->state;
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT status FROM orders WHERE id = $1", SHOP_PARAMS(order_id), &res,
                           parent);
    if (rc < 0)
        return rc;
    bool awaiting = shop_rows_count(res) > 0 && shop_rows_i64(res, 0, "status") == AWAITING_PAYMENT;
    shop_rows_free(res);
    if (!awaiting)
        return 0;                       /* settled already, or not ours */
    tern_ctx *ctx;
    if ((rc = shop_call_ctx(r, parent, &ctx)) < 0)
        return rc;
    Shop__Inventory__V1__ReservationRef ref = SHOP__INVENTORY__V1__RESERVATION_REF__INIT;
    ref.reservation_id = (char *)order_id;
    Shop__Inventory__V1__Reservation *resv = NULL;
    tern_grpc_status st = {0};
    if (succeeded)
        rc = shop_inventory_v1_inventory_commit(o->inventory, &ref, &resv, shop_call_options(&md), &st, ctx);
    else
        rc = shop_inventory_v1_inventory_release(o->inventory, &ref, &resv, shop_call_options(&md), &st, ctx);
    tern_ctx_free(ctx);
    if (resv)
        protobuf_c_message_free_unpacked(&resv->base, NULL);
    int to = succeeded ? PAID : CANCELLED;
    char why[300] = "";
    if (!succeeded) {
        snprintf(why, sizeof why, "payment failed: %s", reason && *reason ? reason : "declined");
    } else if (rc == -EPERM) {
        /* paid after the reservation expired and its stock went back: the
         * order cannot be filled (a refund would follow in a real shop) */
        to = CANCELLED;
        snprintf(why, sizeof why, "reservation expired before the payment: %s", st.message ? st.message : "");
        rc = 0;
    }
    if (rc == -ENOENT && !succeeded)
        rc = 0;                         /* nothing reserved, nothing to give back */
    if (rc < 0) {
        tern_log_warn("orders: settling the reservation failed; will retry", TERN_LOG_STR("order", order_id),
                      TERN_LOG_STR("error", st.message ? st.message : tern_strerror(rc)));
        tern_grpc_status_clear(&st);
        return rc;
    }
    tern_grpc_status_clear(&st);
    rc = orders_set_status(r, order_id, AWAITING_PAYMENT, to, why, parent);
    if (rc == 1)
        tern_log_info("orders: settled", TERN_LOG_STR("order", order_id),
                      TERN_LOG_STR("status", to == PAID ? "PAID" : "CANCELLED"));
    return rc < 0 ? rc : 0;
}

static int on_payment(const tern_event *ev, int attempt, tern_ctx *ctx, void *arg)
{
    (void)attempt;
    shop_role *r = arg;
    bool ok = !strcmp(ev->type, SHOP_EVENT_PAYMENT_SUCCEEDED);
    if (!ok && strcmp(ev->type, SHOP_EVENT_PAYMENT_FAILED) != 0)
        return 0;
    Shop__Payments__V1__PaymentOutcome *po = shop__payments__v1__payment_outcome__unpack(NULL, ev->len, ev->data);
    if (!po) {
        tern_log_warn("orders: undecodable event dropped", TERN_LOG_STR("id", ev->id));
        return 0;
    }
    shop_event_span span;
    shop_event_span_begin(&span, ok ? "orders: payment succeeded" : "orders: payment failed", po->traceparent);
    int rc = orders_saga_outcome(r, po->order_id, ok, po->reason, ctx);
    shop_event_span_end(&span, rc);
    protobuf_c_message_free_unpacked(&po->base, NULL);
    return rc;
}

/* An order in AWAITING_PAYMENT too long: ask payments. */
static void recheck_awaiting(shop_role *r, const char *order_id, tern_ctx *parent)
{
    shop_call_md md;
    orders *o = r->state;
    tern_ctx *ctx;
    if (shop_call_ctx(r, parent, &ctx) < 0)
        return;
    Shop__Payments__V1__GetPaymentRequest req = SHOP__PAYMENTS__V1__GET_PAYMENT_REQUEST__INIT;
    req.order_id = (char *)order_id;
    Shop__Payments__V1__Payment *p = NULL;
    int rc = shop_payments_v1_payments_get_payment(o->payments, &req, &p, shop_call_options(&md), NULL, ctx);
    tern_ctx_free(ctx);
    if (rc == 0) {
        orders_saga_outcome(r, order_id, p->status == SHOP__PAYMENTS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED,
                            p->reason, parent);
        protobuf_c_message_free_unpacked(&p->base, NULL);
    } else if (rc == -ENOENT) {
        publish_tx a = {.r = r, .order_id = order_id, .again = true};
        if (shop_db_tx(r->store, publish_body, &a, parent) == 0)
            tern_log_info("orders: no payment yet, OrderCreated sent again", TERN_LOG_STR("order", order_id));
    }
}

static int watchdog(void *arg)
{
    shop_role *r = arg;
    tern_ctx *ctx = shop_app_ctx(r->app);
    int64_t after = tern_config_duration(r->cfg, "orders.recheck_after");
    int64_t every = after / 2 > 10 * TERN_MS ? after / 2 : 10 * TERN_MS;
    while (tern_ctx_sleep(every, ctx) == 0) {
        char before[SHOP_I64_MAX], p[SHOP_I64_MAX], a[SHOP_I64_MAX];
        shop_rows *res;
        if (shop_db_query(r->store,
                          "SELECT id, status FROM orders WHERE status IN ($1, $2) AND updated_ms < $3"
                          " ORDER BY updated_ms LIMIT 50",
                          SHOP_PARAMS(shop_i64(p, PENDING), shop_i64(a, AWAITING_PAYMENT),
                                          shop_i64(before, shop_now_ms() - after / TERN_MS)),
                          &res, ctx) < 0)
            continue;
        for (int i = 0; i < shop_rows_count(res) && tern_ctx_err(ctx) == 0; i++) {
            const char *id = shop_rows_str(res, i, "id");
            if (shop_rows_i64(res, i, "status") == PENDING)
                orders_saga_reserve(r, id, NULL, ctx);
            else
                recheck_awaiting(r, id, ctx);
        }
        shop_rows_free(res);
    }
    return 0;
}

int orders_saga_start(shop_role *r)
{
    orders *o = r->state;
    tern_events_sub_options so = {.group = "orders", .max_deliveries = 20, .consumers = 4};
    int rc = tern_events_subscribe(shop_app_bus(r->app), "payments", on_payment, r, &so, &o->sub, NULL);
    if (rc == 0)
        rc = shop_app_go(r->app, watchdog, r);
    return rc;
}
