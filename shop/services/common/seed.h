/*
 * seed.h - sample products for an empty catalog.
 */
#ifndef SHOP_SEED_H
#define SHOP_SEED_H

#include "common/shop.h"

/* When the catalog is empty, create the sample products and their stock
 * through the catalog's and inventory's gRPC services (as any client
 * would).  0 (also when there was something already), or -errno. */
int shop_seed(shop_app *app, tern_ctx *ctx);

#endif
