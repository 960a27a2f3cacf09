/*
 * seed.c - a first start's catalog: sample products and their stock,
 * written through the catalog's and inventory's gRPC services as any
 * client would, and only into an empty catalog, so a second start (make
 * run again) finds the data it left.
 */
#include <errno.h>

#include "catalog.tern-grpc.h"
#include "common/app.h"
#include "common/seed.h"
#include "inventory.tern-grpc.h"

typedef struct sample {
    const char *id, *name, *description, *category;
    int64_t price_cents, stock;
} sample;

static const sample samples[] = {
    {"espresso-beans", "Espresso beans, 1 kg", "Dark roast, chocolate and hazelnut", "coffee", 2490, 40},
    {"filter-beans", "Filter beans, 500 g", "Light roast from Ethiopia, citrus and jasmine", "coffee", 1590, 60},
    {"decaf-beans", "Decaf beans, 500 g", "Swiss water process, caramel", "coffee", 1390, 25},
    {"moka-pot", "Moka pot, 6 cups", "Aluminium stovetop coffee maker", "brewing", 3490, 15},
    {"pour-over", "Pour-over dripper", "Ceramic cone for paper filters", "brewing", 2290, 20},
    {"french-press", "French press, 1 l", "Glass and steel, double filter", "brewing", 2990, 12},
    {"grinder", "Hand grinder", "Conical steel burrs, 40 settings", "brewing", 6900, 8},
    {"mug", "Stoneware mug", "350 ml, dishwasher safe", "cups", 1200, 100},
    {"cup-set", "Espresso cup set", "Four porcelain cups with saucers", "cups", 2800, 30},
    {"travel-mug", "Travel mug", "Insulated steel, keeps coffee hot for 6 hours", "cups", 2400, 35},
    {"filters", "Paper filters, 100", "Unbleached, for the pour-over dripper", "supplies", 590, 200},
    {"descaler", "Descaler", "Citric acid, for kettles and machines", "supplies", 890, 50},
};

int shop_seed(shop_app *app, tern_ctx *ctx)
{
    shop_call_md md;
    tern_grpc_channel *catalog = NULL, *inventory = NULL;
    int rc = shop_app_channel(app, SHOP_CATALOG, &catalog);
    if (rc == 0)
        rc = shop_app_channel(app, SHOP_INVENTORY, &inventory);
    Shop__Catalog__V1__ListProductsRequest lr = SHOP__CATALOG__V1__LIST_PRODUCTS_REQUEST__INIT;
    lr.page_size = 1;
    Shop__Catalog__V1__ListProductsResponse *list = NULL;
    if (rc == 0)
        rc = shop_catalog_v1_catalog_list_products(catalog, &lr, &list, shop_call_options(&md), NULL, ctx);
    bool empty = rc == 0 && list->n_products == 0;
    if (list)
        protobuf_c_message_free_unpacked(&list->base, NULL);
    for (size_t i = 0; empty && rc == 0 && i < sizeof samples / sizeof samples[0]; i++) {
        const sample *s = &samples[i];
        Shop__Catalog__V1__Product p = SHOP__CATALOG__V1__PRODUCT__INIT;
        p.id = (char *)s->id;
        p.name = (char *)s->name;
        p.description = (char *)s->description;
        p.category = (char *)s->category;
        p.price_cents = s->price_cents;
        p.currency = "EUR";
        Shop__Catalog__V1__CreateProductRequest cr = SHOP__CATALOG__V1__CREATE_PRODUCT_REQUEST__INIT;
        cr.product = &p;
        Shop__Catalog__V1__Product *made = NULL;
        rc = shop_catalog_v1_catalog_create_product(catalog, &cr, &made, shop_call_options(&md), NULL, ctx);
        if (made)
            protobuf_c_message_free_unpacked(&made->base, NULL);
        if (rc == -EEXIST)
            rc = 0;
        Shop__Inventory__V1__AddStockRequest ar = SHOP__INVENTORY__V1__ADD_STOCK_REQUEST__INIT;
        ar.product_id = (char *)s->id;
        ar.quantity = s->stock;
        ar.only_if_new = true;      /* another catalog replica may be seeding too */
        Shop__Inventory__V1__Stock *stock = NULL;
        /* an inventory elsewhere only when etcd finds it (production):
         * otherwise the configured address may be no inventory at all */
        if (rc == 0 && (app->on[SHOP_INVENTORY] || *tern_config_str(app->cfg, "etcd")))
            rc = shop_inventory_v1_inventory_add_stock(inventory, &ar, &stock, shop_call_options(&md), NULL, ctx);
        if (stock)
            protobuf_c_message_free_unpacked(&stock->base, NULL);
    }
    if (empty && rc == 0)
        tern_log_info("shop: catalog seeded", TERN_LOG_INT("products", (int64_t)(sizeof samples / sizeof samples[0])));
    tern_grpc_channel_free(catalog);
    tern_grpc_channel_free(inventory);
    return rc;
}
