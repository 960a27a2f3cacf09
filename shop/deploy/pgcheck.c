/*
 * pgcheck.c - `shop-pgcheck CONNINFO`: proof that a SHOP_STATIC build
 * carries a working libpq (shop/deploy/libpq-static.sh).  Linked exactly
 * as the static `shop` is (same archives, -static), it connects through
 * tern/pg.h, runs one query and prints one line: the server's version,
 * whether the session is encrypted (pg_stat_ssl) and its auth method as the
 * server saw it.  pg-static-test.sh runs it against a PostgreSQL that
 * demands TLS and SCRAM, on the host and in a FROM scratch container, so
 * the parts of libpq a static link could lose (OpenSSL, SCRAM in
 * libpgcommon, name lookup without NSS modules) are all exercised.
 * Exit status 0 when the query succeeded, 1 otherwise (the reason on
 * stderr).
 */
#include <stdio.h>
#include <string.h>
#include <tern/pg.h>
#include <tern/tern.h>

/* a connect plus one query; generous for qemu-user and loaded CI */
#define CHECK_TIMEOUT_NS (10 * TERN_SEC)

static const char *const check_sql =
    "SELECT current_setting('server_version'),"
    " coalesce((SELECT ssl::text || ' ' || coalesce(version, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()), 'none'),"
    " current_user";

static int check(void *arg)
{
    const char *conninfo = arg;
    tern_ctx *ctx;
    if (tern_ctx_with_timeout(tern_ctx_background(), CHECK_TIMEOUT_NS, &ctx) != 0)
        return 1;
    tern_pg_conn *c = NULL;
    tern_pg_error err;
    memset(&err, 0, sizeof err);
    int rc = tern_pg_conn_new(conninfo, NULL, &c, &err, ctx);
    if (rc != 0) {
        fprintf(stderr, "shop-pgcheck: connect: %s: %s\n", tern_strerror(rc), err.message);
        tern_ctx_free(ctx);
        return 1;
    }
    tern_pg_result *r = NULL;
    rc = tern_pg_query(c, check_sql, NULL, &r, ctx);
    if (rc != 0) {
        const tern_pg_error *e = tern_pg_conn_last_error(c);
        fprintf(stderr, "shop-pgcheck: query: %s: %s\n", tern_strerror(rc), e ? e->message : "");
        tern_pg_conn_free(c);
        tern_ctx_free(ctx);
        return 1;
    }
    printf("server %s ssl %s user %s\n", tern_pg_result_text(r, 0, 0), tern_pg_result_text(r, 0, 1),
           tern_pg_result_text(r, 0, 2));
    tern_pg_result_free(r);
    tern_pg_conn_free(c);
    tern_ctx_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: shop-pgcheck CONNINFO\n");
        return 2;
    }
    return tern_run(check, argv[1]) == 0 ? 0 : 1;
}
