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
#include <stdatomic.h>
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

/* A gateway shop-load sends to, and whether its readiness probe last
 * answered 200 (gateways.c). */
typedef struct load_gateway {
    char url[256];              /* "http://127.0.0.1:8080", no trailing '/' */
    atomic_bool ready;
} load_gateway;

#define LOAD_MAX_GATEWAYS 8

/* One second of the run (by the requests' due times): what was sent, what
 * failed, which checkouts were answered 2xx; so a fault's window shows. */
typedef struct load_second {
    uint64_t sent, errors, checkouts_ok;
} load_second;

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
    const char *gateway;        /* -gateway as given: one URL or a comma-separated list */
    load_gateway gateways[LOAD_MAX_GATEWAYS];
    int ngateways;
    atomic_uint next_gateway;   /* round robin */
    atomic_bool watch_stop;     /* ends the readiness watcher */
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
    load_second *timeline;      /* one per second of run->duration (rounded up) */
    size_t nseconds;
    int64_t start_wall;         /* for unique keys and emails */
    int64_t start;              /* tern_now() of the run's first request */
} load_run;

/* One call: method, path under the gateway ("/api/..."), an optional
 * bearer token and idempotency key, an optional JSON body.  *status is the
 * HTTP status (0: no answer) and *body the parsed JSON answer or NULL
 * (the caller's: json_decref).  0, or the transport's -errno. */
int load_call(load_run *run, const char *method, const char *path, const char *token, const char *idem,
              const char *body, int *status, json_t **json);

/* -gateway's list into run->gateways: 0, -EINVAL (not http://... URLs) or
 * -E2BIG (more than LOAD_MAX_GATEWAYS). */
int load_gateways_parse(load_run *run, const char *list);

/* The base URL of the gateway the next call goes to: the next ready one. */
const char *load_gateway_pick(load_run *run);

/* With more than one gateway, a coroutine in g probes each one's /readyz
 * every 100 ms until load_gateways_unwatch.  0 or -errno. */
int load_gateways_watch(load_run *run, tern_group *g);
void load_gateways_unwatch(load_run *run);

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
