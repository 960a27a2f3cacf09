/*
 * load.h - what shop-load's files share: the run's settings, its users,
 * the orders it placed (for the books), and one HTTP call through the
 * gateway's REST routes.
 *
 * Ownership: everything hangs off one load_run, made and freed by main.c;
 * the arrays grow under run->lock, which is never held across a wait.
 */
#ifndef SHOP_LOAD_H
#define SHOP_LOAD_H

#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <tern/tern.h>

#include "hist.h"

/* The mix's routes, in the report's order. */
enum { ROUTE_BROWSE, ROUTE_PRODUCT, ROUTE_CHECKOUT, ROUTE_LOGIN, NROUTES };

typedef struct load_stats {
    load_hist hist;             /* latency from the intended start, ns */
    uint64_t errors;            /* transport errors and non-2xx answers */
    uint64_t status[6];         /* answers by class: [2] 2xx ... [5] 5xx; [0] no answer */
} load_stats;

typedef struct load_user {
    char email[96];
    char token[2048];           /* "" until logged in */
} load_user;

/* An order shop-load tried to place: known by its idempotency key, so one
 * whose answer was lost can be asked for again while settling. */
typedef struct load_order {
    char key[48];               /* the Idempotency-Key sent */
    char id[64];                /* "" until known */
    char product[64];
    int64_t quantity;
    int user;
    int status;                 /* ORDER_STATUS_* number, 0 unknown */
} load_order;

/* the orders service's statuses (shop/proto/orders.proto) */
enum {
    ORDER_UNKNOWN = 0,
    ORDER_PENDING = 1,
    ORDER_AWAITING_PAYMENT = 2,
    ORDER_PAID = 3,
    ORDER_CANCELLED = 4,
    ORDER_REJECTED = 5,
};

typedef struct load_run {
    /* settings */
    const char *gateway;        /* "http://127.0.0.1:8080" */
    double rate;                /* requests per second, all routes */
    int64_t duration;           /* ns */
    int64_t timeout;            /* ns per request */
    int64_t settle;             /* ns to wait for orders to settle */
    int nusers;
    uint64_t seed;
    bool quiet;

    tern_http_client *client;
    pthread_mutex_t lock;       /* guards everything below */
    load_stats stats[NROUTES];
    load_user *users;
    char (*products)[64];       /* the catalog's product ids */
    size_t nproducts;
    char (*categories)[64];
    size_t ncategories;
    load_order *orders;
    size_t norders, orders_cap;
    uint64_t late;              /* requests started over 1 ms past their time */
    int64_t start_wall;         /* for unique keys and emails */
} load_run;

/* One call: method, path under the gateway ("/api/..."), an optional
 * bearer token and idempotency key, an optional JSON body.  *status is the
 * HTTP status (0: no answer) and *body the parsed JSON answer or NULL
 * (the caller's: json_decref).  0, or the transport's -errno. */
int load_call(load_run *run, const char *method, const char *path, const char *token, const char *idem,
              const char *body, int *status, json_t **json);

/* An int64 of proto3 JSON: a string or a number; missing: 0. */
int64_t load_json_i64(const json_t *obj, const char *name);

/* An order status name ("ORDER_STATUS_PAID") or number as its number. */
int load_order_status(const json_t *v);

/* The books: wait up to run->settle for every order to settle (orders
 * whose answer was lost are found again by their idempotency key), then
 * compare orders and stock with stock_before (per product: available,
 * reserved, sold); a report on out and into json.  true if they balance. */
bool load_books(load_run *run, const int64_t (*stock_before)[3], FILE *out, json_t *json);

/* The stock of every product in run->products into stock[i][0..2]
 * (available, reserved, sold).  0 or -errno / -EPROTO. */
int load_stock(load_run *run, int64_t (*stock)[3]);

#endif
