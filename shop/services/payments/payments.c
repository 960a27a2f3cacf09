/*
 * payments.c - shop.payments.v1.Payments: a simulated card processor.
 *
 * It consumes OrderCreated (topic "orders", group "payments"), takes
 * payments.latency to "charge", declines payments.failure_rate of them,
 * and records one payment per order: the order id is the table's key, so
 * an event delivered twice (at least once is the bus's promise, and the
 * orders service sends OrderCreated again for an order it has heard
 * nothing about) charges once.  The outcome, PaymentSucceeded or
 * PaymentFailed (topic "payments"), goes into the outbox in the same
 * transaction as the payment row: it is published if and only if the
 * payment was recorded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shop.h"
#include "orders.tern-grpc.h"
#include "payments.tern-grpc.h"


enum { PAID_OK = SHOP__PAYMENTS__V1__PAYMENT_STATUS__PAYMENT_STATUS_SUCCEEDED,
       PAID_FAILED = SHOP__PAYMENTS__V1__PAYMENT_STATUS__PAYMENT_STATUS_FAILED };

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS payments ("
    "  order_id TEXT PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  amount_cents BIGINT NOT NULL,"
    "  currency TEXT NOT NULL,"
    "  status BIGINT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  created_ms BIGINT NOT NULL);";

typedef struct payments {
    tern_events_sub *sub;
} payments;

static int get_payment(tern_grpc_call *call, const Shop__Payments__V1__GetPaymentRequest *req,
                       Shop__Payments__V1__Payment *resp, void *arg)
{
    shop_role *r = arg;
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM payments WHERE order_id = $1", SHOP_PARAMS(req->order_id), &res,
                           tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    if (shop_rows_count(res) == 0) {
        shop_rows_free(res);
        return tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no payment for order %s", req->order_id);
    }
    resp->id = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "id"));
    resp->order_id = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "order_id"));
    resp->currency = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "currency"));
    resp->reason = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "reason"));
    resp->amount_cents = shop_rows_i64(res, 0, "amount_cents");
    resp->status = (Shop__Payments__V1__PaymentStatus)shop_rows_i64(res, 0, "status");
    resp->created_at_unix_ms = shop_rows_i64(res, 0, "created_ms");
    shop_rows_free(res);
    return resp->id && resp->order_id && resp->currency && resp->reason ? 0 : -ENOMEM;
}

typedef struct record_tx {
    shop_role *r;
    const Shop__Orders__V1__OrderCreated *oc;
    const char *payment_id;
    bool ok;
    const char *reason;
} record_tx;

static int record_body(shop_tx *tx, tern_ctx *ctx, void *arg)
{
    record_tx *a = arg;
    char amount[SHOP_I64_MAX], status[SHOP_I64_MAX], now[SHOP_I64_MAX];
    int64_t added = 0;
    int rc = shop_tx_exec(tx,
                          "INSERT INTO payments (order_id, id, amount_cents, currency, status, reason, created_ms)"
                          " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO NOTHING",
                          SHOP_PARAMS(a->oc->order_id, a->payment_id, shop_i64(amount, a->oc->amount_cents),
                                             a->oc->currency, shop_i64(status, a->ok ? PAID_OK : PAID_FAILED),
                                             a->reason, shop_i64(now, shop_now_ms())),
                          &added, ctx);
    if (rc < 0 || added == 0)
        return rc;                      /* paid before: its outcome is in the outbox already */
    Shop__Payments__V1__PaymentOutcome out = SHOP__PAYMENTS__V1__PAYMENT_OUTCOME__INIT;
    out.payment_id = (char *)a->payment_id;
    out.order_id = a->oc->order_id;
    out.succeeded = a->ok;
    out.reason = (char *)a->reason;
    char tp[TERN_TRACE_PARENT_LEN + 1];
    shop_traceparent(tp);
    out.traceparent = tp;
    size_t len;
    void *data = shop_pack(&out.base, &len);
    if (!data)
        return -ENOMEM;
    char id[TERN_EVENTS_ID_MAX];
    snprintf(id, sizeof id, "paid-%s", a->oc->order_id);
    tern_event ev = {.id = id, .topic = "payments", .type = a->ok ? SHOP_EVENT_PAYMENT_SUCCEEDED : SHOP_EVENT_PAYMENT_FAILED, .data = data, .len = len};
    rc = shop_tx_outbox_add(tx, a->r->outbox, &ev, ctx);
    free(data);
    return rc;
}

static int on_order_created(const tern_event *ev, int attempt, tern_ctx *ctx, void *arg)
{
    (void)attempt;
    shop_role *r = arg;
    if (strcmp(ev->type, SHOP_EVENT_ORDER_CREATED) != 0)
        return 0;
    Shop__Orders__V1__OrderCreated *oc =
        shop__orders__v1__order_created__unpack(NULL, ev->len, ev->data);
    if (!oc) {
        tern_log_warn("payments: undecodable event dropped", TERN_LOG_STR("id", ev->id));
        return 0;                       /* redelivering it would not make it decodable */
    }
    shop_event_span span;
    shop_event_span_begin(&span, "payments: charge", oc->traceparent);
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT 1 FROM payments WHERE order_id = $1", SHOP_PARAMS(oc->order_id), &res,
                           ctx);
    bool paid = rc == 0 && shop_rows_count(res) > 0;
    if (rc == 0)
        shop_rows_free(res);
    if (rc == 0 && !paid) {
        /* the processor's latency, outside any transaction: the writer is
         * not held while "the card network" thinks */
        rc = tern_ctx_sleep(tern_config_duration(r->cfg, "payments.latency"), ctx);
    }
    if (rc == 0 && !paid) {
        char pid[SHOP_ID_MAX];
        shop_id_new("pay-", pid);
        bool ok = oc->amount_cents >= 0 && shop_random() >= tern_config_double(r->cfg, "payments.failure_rate");
        record_tx a = {.r = r, .oc = oc, .payment_id = pid, .ok = ok,
                       .reason = ok ? "" : "card declined (simulated)"};
        rc = shop_db_tx(r->store, record_body, &a, ctx);
        if (rc == 0)
            tern_log_info("payments: charged", TERN_LOG_STR("order", oc->order_id), TERN_LOG_BOOL("ok", ok),
                          TERN_LOG_INT("amount_cents", oc->amount_cents));
    }
    shop_event_span_end(&span, rc);
    protobuf_c_message_free_unpacked(&oc->base, NULL);
    return rc;
}

static const shop_payments_v1_payments_server impl = {.get_payment = get_payment};

static int init(shop_role *r)
{
    int rc = shop_db_schema(r->store, schema, NULL);
    if (rc == 0)
        rc = shop_db_outbox(r->store, "payments", &r->outbox, NULL);
    if (rc == 0 && !(r->state = calloc(1, sizeof(payments))))
        rc = -ENOMEM;
    if (rc == 0)
        rc = shop_payments_v1_payments_register(r->grpc, &impl, r);
    return rc;
}

static int start(shop_role *r)
{
    payments *p = r->state;
    tern_events_sub_options so = {.group = "payments", .max_deliveries = 20, .consumers = 4};
    return tern_events_subscribe(shop_app_bus(r->app), "orders", on_order_created, r, &so, &p->sub, NULL);
}

static void stop(shop_role *r)
{
    payments *p = r->state;
    tern_events_sub_free(p->sub);
    p->sub = NULL;
}

const shop_role_ops shop_payments_ops = {.name = "payments", .pg = true, .events = true, .init = init, .start = start, .stop = stop};
