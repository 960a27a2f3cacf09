/*
 * shop - the shop's one binary: `shop ROLE [--config FILE] [--key value ...]`.
 *
 *     shop all                     every service in this process, each on its
 *                                  own port, calling each other over gRPC
 *     shop catalog                 one service (users, catalog, inventory,
 *     shop catalog,inventory       orders, payments), or a list of them
 *
 * Configuration: embedded defaults < --config FILE (JSON) < SHOP_* in the
 * environment < flags; `shop all --help` lists every key.  SIGINT or
 * SIGTERM stops gracefully (a second one: at once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shop.h"

typedef struct run_args {
    tern_config *cfg;
    unsigned roles;
} run_args;

static int run(void *arg)
{
    run_args *a = arg;
    int level = tern_log_level_parse(tern_config_str(a->cfg, "log.level"));
    tern_log_init(&(tern_log_options){.level = level > 0 ? level : TERN_LOG_INFO});
    /* spans are exported where a collector is named (OTEL_EXPORTER_OTLP_*
     * ENDPOINT); without one the trace context still travels between the
     * services, and nothing is posted to a collector that is not there */
    const char *otlp = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if (!otlp || !*otlp)
        otlp = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    bool tracing = otlp && *otlp && tern_trace_init(&(tern_trace_options){.service_name = getenv("OTEL_SERVICE_NAME") ? NULL : "shop"}) == 0;
    shop_app *app;
    int rc = shop_app_new(a->cfg, &(shop_app_options){.roles = a->roles}, &app);
    if (rc == 0) {
        rc = shop_app_run(app, NULL);
        shop_app_free(app);
    }
    if (tracing) {
        tern_ctx *ctx;
        if (tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx) == 0) {
            tern_trace_shutdown(ctx);
            tern_ctx_free(ctx);
        }
    }
    if (rc < 0)
        fprintf(stderr, "shop: %s\n", tern_strerror(rc));
    tern_log_shutdown();
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            tern_config *cfg;
            if (shop_config_new(argc, argv, &cfg) == 1)
                tern_config_free(cfg);
            return 0;
        }
        fprintf(stderr, "usage: shop ROLE [--config FILE] [--key value ...]  (shop --help)\n");
        return 2;
    }
    char err[256];
    run_args a = {0};
    if (shop_roles_parse(argv[1], &a.roles, err, sizeof err) < 0) {
        fprintf(stderr, "shop: %s\n", err);
        return 2;
    }
    /* the role takes argv[0]'s place: the config skips it */
    int rc = shop_config_new(argc - 1, argv + 1, &a.cfg);
    if (rc != 0) {
        if (rc == 1)
            tern_config_free(a.cfg);
        return rc == 1 ? 0 : 2;
    }
    rc = tern_run(run, &a);
    tern_config_free(a.cfg);
    return rc;
}
