/*
 * config.c - the shop's configuration: one set of keys for every role,
 * from the embedded defaults, a JSON file (--config FILE), the environment
 * (SHOP_DATA_DIR, SHOP_ORDERS_ADDR, SHOP_PAYMENTS_FAILURE_RATE, ...) and
 * flags (--orders.addr=...).  One set rather than one per role so that
 * `shop all` and `shop orders` read the same file and a role knows where
 * its neighbours are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shop.h"

static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};

static const tern_config_key keys[] = {
    TERN_CONFIG_KEY("data_dir", TERN_CONFIG_STRING, .def = "./.shop-data",
                    .help = "folder of the SQLite files (one per role), made if missing"),
    TERN_CONFIG_KEY("log.level", TERN_CONFIG_STRING, .def = "info", .one_of = log_levels,
                    .help = "debug, info, warn, error or off"),
    TERN_CONFIG_KEY("users.addr", TERN_CONFIG_STRING, .def = "127.0.0.1:7001",
                    .help = "users: gRPC (h2c), probes and /metrics"),
    TERN_CONFIG_KEY("catalog.addr", TERN_CONFIG_STRING, .def = "127.0.0.1:7002",
                    .help = "catalog: gRPC (h2c), probes and /metrics"),
    TERN_CONFIG_KEY("inventory.addr", TERN_CONFIG_STRING, .def = "127.0.0.1:7003",
                    .help = "inventory: gRPC (h2c), probes and /metrics"),
    TERN_CONFIG_KEY("orders.addr", TERN_CONFIG_STRING, .def = "127.0.0.1:7004",
                    .help = "orders: gRPC (h2c), probes and /metrics"),
    TERN_CONFIG_KEY("payments.addr", TERN_CONFIG_STRING, .def = "127.0.0.1:7005",
                    .help = "payments: gRPC (h2c), probes and /metrics"),
    TERN_CONFIG_KEY("gateway.addr", TERN_CONFIG_STRING, .def = "127.0.0.1:8080",
                    .help = "gateway: REST/JSON, probes and /metrics"),
    TERN_CONFIG_KEY("gateway.admin", TERN_CONFIG_STRING, .def = "127.0.0.1:7100",
                    .help = "gateway's admin listener; empty: none"),
    TERN_CONFIG_KEY("gateway.config", TERN_CONFIG_STRING, .def = "shop/config/gateway.yaml",
                    .help = "the gateway's routes, upstreams, JWT and limits (YAML), reloaded when it changes"),
    TERN_CONFIG_KEY("users.admin", TERN_CONFIG_STRING, .def = "127.0.0.1:7101",
                    .help = "users' admin listener (/debug; keep it loopback); empty: none"),
    TERN_CONFIG_KEY("catalog.admin", TERN_CONFIG_STRING, .def = "127.0.0.1:7102",
                    .help = "catalog's admin listener; empty: none"),
    TERN_CONFIG_KEY("inventory.admin", TERN_CONFIG_STRING, .def = "127.0.0.1:7103",
                    .help = "inventory's admin listener; empty: none"),
    TERN_CONFIG_KEY("orders.admin", TERN_CONFIG_STRING, .def = "127.0.0.1:7104",
                    .help = "orders' admin listener; empty: none"),
    TERN_CONFIG_KEY("payments.admin", TERN_CONFIG_STRING, .def = "127.0.0.1:7105",
                    .help = "payments' admin listener; empty: none"),
    TERN_CONFIG_KEY("events.nats", TERN_CONFIG_STRING, .def = "",
                    .help = "NATS servers (nats://host:4222,...) whose JetStream carries the events between "
                            "processes (env SHOP_EVENTS_NATS, or SHOP_NATS_URL); empty: the in-process bus "
                            "(every role in one process)"),
    /* NATS's own default is 2 min: a network cut (a container
     * disconnected, a node gone) leaves a TCP connection that never
     * errors, and events would wait in the outbox until the pings give up */
    TERN_CONFIG_KEY("events.ping_interval", TERN_CONFIG_DURATION, .def = "2s", .min = "100ms",
                    .help = "how often the NATS connection is pinged; two pings unanswered and it is taken for "
                            "dead and made again"),
    TERN_CONFIG_KEY("pg.url", TERN_CONFIG_STRING, .def = "",
                    .help = "PostgreSQL (libpq conninfo or postgres:// URL) for users, inventory, orders and payments; "
                            "empty: their SQLite files in data_dir"),
    TERN_CONFIG_KEY("redis.addr", TERN_CONFIG_STRING, .def = "",
                    .help = "Redis (host:port) for the users' sessions and the gateway's global rate limits; "
                            "empty: sessions in the users' database, rate limits per gateway"),
    TERN_CONFIG_KEY("etcd", TERN_CONFIG_STRING, .def = "",
                    .help = "etcd endpoints (http://host:2379,...): each role registers its address under "
                            "discovery.prefix, and the channels between roles follow what is registered there; "
                            "empty: the <role>.addr addresses"),
    TERN_CONFIG_KEY("discovery.prefix", TERN_CONFIG_STRING, .def = "/shop/",
                    .help = "where the roles register: <prefix><role>/<addr>"),
    TERN_CONFIG_KEY("discovery.ttl", TERN_CONFIG_DURATION, .def = "10s", .min = "2s",
                    .help = "lease of a role's registration: how long a crashed role stays listed"),
    TERN_CONFIG_KEY("discovery.advertise", TERN_CONFIG_STRING, .def = "",
                    .help = "the address other roles reach this process's roles at (host, or host:port for "
                            "one role); empty: the address each role listens on"),
    TERN_CONFIG_KEY("outbox.retention", TERN_CONFIG_DURATION, .def = "1h", .min = "1ms",
                    .help = "how long published events stay in a role's outbox table before they are purged"),
    TERN_CONFIG_KEY("seed", TERN_CONFIG_BOOL, .def = "true",
                    .help = "fill an empty catalog (and its stock) with sample products"),
    TERN_CONFIG_KEY("call.timeout", TERN_CONFIG_DURATION, .def = "5s", .min = "1ms",
                    .help = "budget of a call one service makes to another"),
    TERN_CONFIG_KEY("shutdown.pre_stop", TERN_CONFIG_DURATION, .def = "0s",
                    .help = "not-ready time before a role stops accepting (load balancers)"),
    TERN_CONFIG_KEY("shutdown.drain", TERN_CONFIG_DURATION, .def = "10s", .min = "1ms",
                    .help = "how long calls in flight get to finish when stopping"),
    TERN_CONFIG_KEY("users.scrypt_n", TERN_CONFIG_INT, .def = "16384", .min = "2", .max = "1048576",
                    .help = "scrypt's cost N for new passwords (a power of two)"),
    TERN_CONFIG_KEY("users.jwt_secret", TERN_CONFIG_STRING, .def = SHOP_DEV_JWT_SECRET,
                    .help = "HS256 secret login tokens are signed with, at least 32 bytes (the gateway "
                            "verifies them)"),
    TERN_CONFIG_KEY("users.jwt_kid", TERN_CONFIG_STRING, .def = "shop-1",
                    .help = "key id in the tokens' header"),
    TERN_CONFIG_KEY("users.token_ttl", TERN_CONFIG_DURATION, .def = "1h", .min = "1s",
                    .help = "lifetime of a login token"),
    TERN_CONFIG_KEY("inventory.reservation_ttl", TERN_CONFIG_DURATION, .def = "15m", .min = "1ms",
                    .help = "a reservation not committed by then is released"),
    TERN_CONFIG_KEY("inventory.sweep_interval", TERN_CONFIG_DURATION, .def = "1s", .min = "1ms",
                    .help = "how often expired reservations are looked for"),
    TERN_CONFIG_KEY("orders.recheck_after", TERN_CONFIG_DURATION, .def = "10s", .min = "1ms",
                    .help = "an order awaiting payment this long is looked at again "
                            "(payment asked, OrderCreated sent again)"),
    TERN_CONFIG_KEY("payments.failure_rate", TERN_CONFIG_DOUBLE, .def = "0", .min = "0", .max = "1",
                    .help = "share of payments the simulated processor declines"),
    TERN_CONFIG_KEY("payments.latency", TERN_CONFIG_DURATION, .def = "50ms", .min = "0s",
                    .help = "how long the simulated processor takes per payment"),
};

/* SHOP_NATS_URL names the events' NATS as the other backends are named
 * (SHOP_PG_URL, SHOP_REDIS_ADDR, SHOP_ETCD); the key stays events.nats,
 * whose own variable wins when both are set. */
static void env_aliases(void)
{
    const char *nats = getenv("SHOP_NATS_URL");
    if (nats && !getenv("SHOP_EVENTS_NATS"))
        setenv("SHOP_EVENTS_NATS", nats, 0);
}

int shop_config_new(int argc, char **argv, tern_config **out)
{
    env_aliases();
    tern_config_options o = {.keys = keys, .nkeys = sizeof keys / sizeof keys[0], .env_prefix = "SHOP"};
    tern_config_error err = {0};
    int rc = tern_config_new(argc, argv, &err, &o, out);
    if (rc == 1) {
        char help[8192];
        tern_config_help(*out, help, sizeof help);
        printf("usage: shop ROLE [--config FILE] [--key value ...]\n"
               "ROLE: all, users, catalog, inventory, orders, payments, or a list (catalog,inventory)\n%s",
               help);
    } else if (rc < 0) {
        fprintf(stderr, "shop: %s\n", err.msg);
    }
    return rc;
}
