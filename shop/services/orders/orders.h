/*
 * orders.h - between the orders service's files: orders.c (the RPCs and
 * the rows) and saga.c (what happens to an order after it is written).
 */
#ifndef SHOP_ORDERS_H
#define SHOP_ORDERS_H

#include "catalog.tern-grpc.h"
#include "common/shop.h"
#include "inventory.tern-grpc.h"
#include "orders.tern-grpc.h"
#include "payments.tern-grpc.h"

enum {
    PENDING = SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PENDING,
    AWAITING_PAYMENT = SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_AWAITING_PAYMENT,
    PAID = SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PAID,
    CANCELLED = SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED,
    REJECTED = SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_REJECTED,
};

typedef struct orders {
    tern_grpc_channel *catalog, *inventory, *payments;
    tern_events_sub *sub;
} orders;

/* Move a PENDING order on: reserve its stock (the reservation is keyed by
 * the order id, so a retry is the same reservation), then, in one
 * transaction, AWAITING_PAYMENT and OrderCreated in the outbox; or
 * REJECTED when stock is short.  Safe to run again and concurrently.
 * 0, or -errno with the inventory's status in *st (may be NULL). */
int orders_saga_reserve(shop_role *r, const char *order_id, tern_grpc_status *st, tern_ctx *ctx);

/* Apply a payment's outcome to an order awaiting it: commit the
 * reservation and mark it PAID, or release it and mark it CANCELLED (the
 * compensation).  Idempotent; an order not awaiting payment is left
 * alone.  0 or -errno (the caller tries again later). */
int orders_saga_outcome(shop_role *r, const char *order_id, bool succeeded, const char *reason, tern_ctx *ctx);

/* Set an order's status (and reason) if it is `from` now: the rows
 * changed (0 or 1), or -errno. */
int orders_set_status(shop_role *r, const char *order_id, int from, int to, const char *reason, tern_ctx *ctx);

/* The saga's event handler and its watchdog (saga.c). */
int orders_saga_start(shop_role *r);

#endif
