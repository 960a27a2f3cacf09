/*
 * catalog.c - shop.catalog.v1.Catalog: products and their prices, search
 * by words and category, pages.
 *
 * Search is a substring match of every word (lower-cased, at most
 * MAX_WORDS) against a lower-cased copy of name and description kept in
 * the row: a small catalog needs no full-text index, and the same SQL
 * runs on PostgreSQL.  Pages are keyset pages by id (the page token is the
 * last id shown), so a page costs the same however deep it is and a
 * product added meanwhile never shifts one.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "catalog.tern-grpc.h"
#include "common/shop.h"

#define DEFAULT_PAGE 20
#define MAX_PAGE 100
#define MAX_WORDS 4
#define MAX_TEXT 4096

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS products ("
    "  id TEXT PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  description TEXT NOT NULL,"
    "  category TEXT NOT NULL,"
    "  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),"
    "  currency TEXT NOT NULL,"
    "  search TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS products_by_category ON products (category, id);";

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static int fill(tern_grpc_call *call, const tern_sqlite_result *res, int row, Shop__Catalog__V1__Product *p)
{
    p->id = tern_grpc_call_strdup(call, shop_col(res, row, "id"));
    p->name = tern_grpc_call_strdup(call, shop_col(res, row, "name"));
    p->description = tern_grpc_call_strdup(call, shop_col(res, row, "description"));
    p->category = tern_grpc_call_strdup(call, shop_col(res, row, "category"));
    p->currency = tern_grpc_call_strdup(call, shop_col(res, row, "currency"));
    p->price_cents = shop_col_i64(res, row, "price_cents");
    return p->id && p->name && p->description && p->category && p->currency ? 0 : -ENOMEM;
}

static int create_product(tern_grpc_call *call, const Shop__Catalog__V1__CreateProductRequest *req,
                          Shop__Catalog__V1__Product *resp, void *arg)
{
    shop_role *r = arg;
    const Shop__Catalog__V1__Product *p = req->product;
    if (!p || !*p->name || !*p->category)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "product.name and product.category are required");
    if (p->price_cents < 0)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "product.price_cents must not be negative");
    if (strlen(p->name) + strlen(p->description) + 2 > MAX_TEXT)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "product.name and description: too long");
    char id[SHOP_ID_MAX], price[SHOP_I64_MAX], search[MAX_TEXT];
    if (*p->id)
        snprintf(id, sizeof id, "%s", p->id);
    else
        shop_id_new("p-", id);
    snprintf(search, sizeof search, "%s %s", p->name, p->description);
    lower(search);
    tern_sqlite_result *res;
    tern_sqlite_error err;
    int rc = tern_sqlite_query(r->db,
                               "INSERT INTO products (id, name, description, category, price_cents, currency, search)"
                               " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
                               SHOP_PARAMS(id, p->name, p->description, p->category, shop_i64(price, p->price_cents),
                                           *p->currency ? p->currency : "EUR", search),
                               &res, &err, tern_grpc_call_ctx(call));
    if (rc == -EEXIST)
        return tern_grpc_call_fail(call, TERN_GRPC_ALREADY_EXISTS, "product %s exists", id);
    if (rc < 0)
        return shop_fail(call, rc, err.message);
    rc = fill(call, res, 0, resp);
    tern_sqlite_result_free(res);
    return rc;
}

static int get_product(tern_grpc_call *call, const Shop__Catalog__V1__GetProductRequest *req,
                       Shop__Catalog__V1__Product *resp, void *arg)
{
    shop_role *r = arg;
    tern_sqlite_result *res;
    int rc = tern_sqlite_query(r->db, "SELECT * FROM products WHERE id = $1", SHOP_PARAMS(req->id), &res, NULL,
                               tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    if (tern_sqlite_result_rows(res) == 0)
        rc = tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no product %s", req->id);
    else
        rc = fill(call, res, 0, resp);
    tern_sqlite_result_free(res);
    return rc;
}

static int list_products(tern_grpc_call *call, const Shop__Catalog__V1__ListProductsRequest *req,
                         Shop__Catalog__V1__ListProductsResponse *resp, void *arg)
{
    shop_role *r = arg;
    int size = req->page_size <= 0 ? DEFAULT_PAGE : req->page_size > MAX_PAGE ? MAX_PAGE : req->page_size;
    if (strlen(req->query) >= MAX_TEXT)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "query: too long");
    char query[MAX_TEXT], limit[SHOP_I64_MAX];
    snprintf(query, sizeof query, "%s", req->query);
    lower(query);

    /* $1 the page token, $2 the category ('' any), $3 the limit, then one per word */
    const char *values[3 + MAX_WORDS] = {req->page_token, req->category, shop_i64(limit, size + 1)};
    char sql[1024];
    int n = snprintf(sql, sizeof sql, "SELECT * FROM products WHERE id > $1 AND ($2 = '' OR category = $2)");
    int nwords = 0;
    for (char *save = NULL, *w = strtok_r(query, " \t", &save); w && nwords < MAX_WORDS;
         w = strtok_r(NULL, " \t", &save)) {
        values[3 + nwords] = w;
        nwords++;
        n += snprintf(sql + n, sizeof sql - (size_t)n, " AND instr(search, $%d) > 0", 3 + nwords);
    }
    assert(nwords <= MAX_WORDS && (size_t)n < sizeof sql / 2);  /* the SQL is short by construction */
    snprintf(sql + n, sizeof sql - (size_t)n, " ORDER BY id LIMIT $3");
    tern_sqlite_params params = {.n = 3 + nwords, .values = values};
    tern_sqlite_result *res;
    int rc = tern_sqlite_query(r->db, sql, &params, &res, NULL, tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    int rows = tern_sqlite_result_rows(res);
    int shown = rows > size ? size : rows;
    resp->products = tern_grpc_call_alloc(call, sizeof *resp->products * (size_t)(shown ? shown : 1));
    Shop__Catalog__V1__Product *ps = tern_grpc_call_alloc(call, sizeof *ps * (size_t)(shown ? shown : 1));
    if (!resp->products || !ps) {
        tern_sqlite_result_free(res);
        return -ENOMEM;
    }
    for (int i = 0; i < shown && rc == 0; i++) {
        shop__catalog__v1__product__init(&ps[i]);
        rc = fill(call, res, i, &ps[i]);
        resp->products[i] = &ps[i];
    }
    resp->n_products = (size_t)shown;
    if (rc == 0 && rows > size && !(resp->next_page_token = tern_grpc_call_strdup(call, ps[shown - 1].id)))
        rc = -ENOMEM;
    tern_sqlite_result_free(res);
    return rc;
}

static int list_categories(tern_grpc_call *call, const Shop__Catalog__V1__ListCategoriesRequest *req,
                           Shop__Catalog__V1__ListCategoriesResponse *resp, void *arg)
{
    (void)req;
    shop_role *r = arg;
    tern_sqlite_result *res;
    int rc = tern_sqlite_query(r->db, "SELECT DISTINCT category FROM products ORDER BY category", NULL, &res, NULL,
                               tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    int rows = tern_sqlite_result_rows(res);
    resp->categories = tern_grpc_call_alloc(call, sizeof(char *) * (size_t)(rows ? rows : 1));
    if (!resp->categories)
        rc = -ENOMEM;
    for (int i = 0; i < rows && rc == 0; i++)
        if (!(resp->categories[resp->n_categories++] = tern_grpc_call_strdup(call, tern_sqlite_result_text(res, i, 0))))
            rc = -ENOMEM;
    tern_sqlite_result_free(res);
    return rc;
}

static const shop_catalog_v1_catalog_server impl = {
    .create_product = create_product,
    .get_product = get_product,
    .list_products = list_products,
    .list_categories = list_categories,
};

static int init(shop_role *r)
{
    int rc = tern_sqlite_exec(r->db, schema, NULL, NULL, NULL, NULL);
    if (rc < 0)
        return rc;
    return shop_catalog_v1_catalog_register(r->grpc, &impl, r);
}

const shop_role_ops shop_catalog_ops = {.name = "catalog", .init = init};
