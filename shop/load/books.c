/*
 * books.c - after the run, do the shop's books balance?  Every order
 * shop-load placed must end PAID, CANCELLED (the saga compensated: stock
 * released) or REJECTED (no stock: nothing reserved), and the stock the
 * inventory counts as sold must have grown by exactly the quantities of
 * the PAID orders, with nothing left reserved and no unit made or lost
 * (available + reserved + sold unchanged: nobody adds stock meanwhile).
 *
 * A checkout whose answer was lost (a timeout, a 5xx) may or may not have
 * made its order, so it is asked again with the same Idempotency-Key: the
 * orders service then answers with the order it made, or makes it now;
 * either way the books know it.  A checkout the gateway refused (4xx) made
 * nothing and is not counted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

int load_stock(load_run *run, int64_t (*stock)[3])
{
    for (size_t i = 0; i < run->nproducts; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/stock/%s", run->products[i]);
        int status;
        json_t *j;
        int rc = load_call(run, "GET", path, NULL, NULL, NULL, &status, &j);
        if (rc == 0 && (status != 200 || !json_is_object(j)))
            rc = -EPROTO;
        if (rc == 0) {
            stock[i][0] = load_json_i64(j, "available");
            stock[i][1] = load_json_i64(j, "reserved");
            stock[i][2] = load_json_i64(j, "sold");
        }
        json_decref(j);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool settled(int status)
{
    return status == ORDER_PAID || status == ORDER_CANCELLED || status == ORDER_REJECTED;
}

/* Ask the shop once about o: its status, and its id when unknown. */
static void look_up(load_run *run, load_order *o)
{
    load_user *u = &run->users[o->user];
    int status;
    json_t *j = NULL;
    const json_t *order = NULL;
    if (!o->id[0]) {
        char body[256];
        snprintf(body, sizeof body, "{\"items\":[{\"productId\":\"%s\",\"quantity\":%lld}]}", o->product,
                 (long long)o->quantity);
        if (load_call(run, "POST", "/api/orders", u->token, o->key, body, &status, &j) == 0 && status == 200)
            order = j;
    } else {
        char path[128];
        snprintf(path, sizeof path, "/api/orders/%s", o->id);
        if (load_call(run, "GET", path, u->token, NULL, NULL, &status, &j) == 0 && status == 200)
            order = json_object_get(j, "order");
    }
    if (json_is_object(order)) {
        const char *id = json_string_value(json_object_get(order, "id"));
        if (id && !o->id[0])
            snprintf(o->id, sizeof o->id, "%s", id);
        o->status = load_order_status(json_object_get(order, "status"));
    }
    json_decref(j);
}

bool load_books(load_run *run, const int64_t (*before)[3], FILE *out, json_t *json)
{
    int64_t deadline = tern_now() + run->settle;
    size_t open;
    for (;;) {
        open = 0;
        for (size_t i = 0; i < run->norders; i++) {
            load_order *o = &run->orders[i];
            if (!settled(o->status))
                look_up(run, o);
            open += !settled(o->status);
        }
        if (open == 0 || tern_now() >= deadline)
            break;
        tern_sleep(200 * 1000000LL);
    }

    size_t n[6] = {0}, unknown = 0;
    int64_t (*after)[3] = calloc(run->nproducts ? run->nproducts : 1, sizeof *after);
    int64_t *paid_qty = calloc(run->nproducts ? run->nproducts : 1, sizeof *paid_qty);
    int64_t *held_qty = calloc(run->nproducts ? run->nproducts : 1, sizeof *held_qty);
    if (!after || !paid_qty || !held_qty) {
        free(after), free(paid_qty), free(held_qty);
        fprintf(out, "books: out of memory\n");
        return false;
    }
    for (size_t i = 0; i < run->norders; i++) {
        const load_order *o = &run->orders[i];
        if (!o->id[0] || o->status <= ORDER_UNKNOWN || o->status > ORDER_REJECTED) {
            unknown++;
            continue;
        }
        n[o->status]++;
        for (size_t p = 0; p < run->nproducts; p++) {
            if (strcmp(run->products[p], o->product) != 0)
                continue;
            if (o->status == ORDER_PAID)
                paid_qty[p] += o->quantity;
            else if (!settled(o->status))
                held_qty[p] += o->quantity;
        }
    }
    size_t pending = n[ORDER_PENDING] + n[ORDER_AWAITING_PAYMENT];
    size_t placed = n[ORDER_PAID] + n[ORDER_CANCELLED] + pending;

    int rc = load_stock(run, after);
    int64_t sold = 0, paid = 0, reserved = 0, held = 0, made = 0;
    size_t off = 0;
    for (size_t p = 0; rc == 0 && p < run->nproducts; p++) {
        int64_t d_sold = after[p][2] - before[p][2], d_res = after[p][1] - before[p][1];
        int64_t d_all = after[p][0] + after[p][1] + after[p][2] - before[p][0] - before[p][1] - before[p][2];
        sold += d_sold, paid += paid_qty[p], reserved += d_res, held += held_qty[p], made += d_all;
        if (d_sold != paid_qty[p] || d_res != held_qty[p] || d_all != 0) {
            off++;
            fprintf(out, "books: %s: sold %+lld but paid orders hold %lld; reserved %+lld, pending orders %lld; "
                         "units made or lost %+lld\n",
                    run->products[p], (long long)d_sold, (long long)paid_qty[p], (long long)d_res,
                    (long long)held_qty[p], (long long)d_all);
        }
    }
    bool ok = rc == 0 && off == 0 && pending == 0 && unknown == 0;
    fprintf(out, "books: orders placed %zu = paid %zu + compensated %zu + still pending %zu; rejected (no stock) %zu; "
                 "unknown %zu\n",
            placed, n[ORDER_PAID], n[ORDER_CANCELLED], pending, n[ORDER_REJECTED], unknown);
    if (rc < 0)
        fprintf(out, "books: the stock could not be read: %s\n", tern_strerror(rc));
    else
        fprintf(out, "books: stock sold %+lld = paid quantity %lld; reserved %+lld (pending %lld); "
                     "products off %zu\n",
                (long long)sold, (long long)paid, (long long)reserved, (long long)held, off);
    fprintf(out, "books: %s\n", ok ? "balanced" : "NOT BALANCED");
    json_object_set_new(json, "placed", json_integer((json_int_t)placed));
    json_object_set_new(json, "paid", json_integer((json_int_t)n[ORDER_PAID]));
    json_object_set_new(json, "compensated", json_integer((json_int_t)n[ORDER_CANCELLED]));
    json_object_set_new(json, "pending", json_integer((json_int_t)pending));
    json_object_set_new(json, "rejected", json_integer((json_int_t)n[ORDER_REJECTED]));
    json_object_set_new(json, "unknown", json_integer((json_int_t)unknown));
    json_object_set_new(json, "stock_sold", json_integer(sold));
    json_object_set_new(json, "paid_quantity", json_integer(paid));
    json_object_set_new(json, "stock_reserved", json_integer(reserved));
    json_object_set_new(json, "stock_made_or_lost", json_integer(made));
    json_object_set_new(json, "balanced", json_boolean(ok));
    free(after), free(paid_qty), free(held_qty);
    return ok;
}
