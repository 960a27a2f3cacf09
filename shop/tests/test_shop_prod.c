/*
 * test_shop_prod.c - production mode, chosen by configuration alone, with
 * real servers started by the test: PostgreSQL (users, inventory, orders, payments
 * and their outboxes), Redis (sessions), NATS JetStream (events), etcd
 * (each role registers; channels between roles follow it).  The roles in
 * three apps (inventory; payments; users, catalog and orders), so every
 * call between them crosses through etcd's addresses and every event
 * through JetStream: the saga reaches PAID, the rows are PostgreSQL's, a
 * login's session is a Redis key that Logout removes, and a second
 * inventory replica joins the channel and leaves it when it stops; the
 * gateway role reaches the services through etcd and counts its per-user
 * limits in Redis.
 * Also: sessions without Redis (the default mode: the users' database).
 */
#include "shop_fixture.h"

#include <tern/pg.h>
#include <tern/redis.h>

#include "etcd_server.h"
#include "nats_server.h"
#include "pg_fixture.h"
#include "redis_server.h"

#define ORDER(s) SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_##s
#define BIT(r) (1u << (r))

static Shop__Users__V1__LoginResponse *sign_up_and_login(tern_grpc_channel *users, const char *email)
{
    tern_ctx *ctx = shop_fx_ctx();
    Shop__Users__V1__SignUpRequest su = SHOP__USERS__V1__SIGN_UP_REQUEST__INIT;
    su.email = (char *)email;
    su.password = "correct horse";
    su.name = "Ann";
    Shop__Users__V1__User *u = NULL;
    CHECK_EQ(shop_users_v1_users_sign_up(users, &su, &u, NULL, NULL, ctx), 0);
    FREE_MSG(u);
    Shop__Users__V1__LoginRequest lr = SHOP__USERS__V1__LOGIN_REQUEST__INIT;
    lr.email = (char *)email;
    lr.password = "correct horse";
    Shop__Users__V1__LoginResponse *resp = NULL;
    CHECK_EQ(shop_users_v1_users_login(users, &lr, &resp, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    CHECK(strncmp(resp->session_id, "s-", 2) == 0);
    return resp;
}

/* GetSession's rc, the user in user (may be NULL). */
static int get_session(tern_grpc_channel *users, const char *sid, char *user, size_t len)
{
    Shop__Users__V1__GetSessionRequest req = SHOP__USERS__V1__GET_SESSION_REQUEST__INIT;
    req.session_id = (char *)sid;
    Shop__Users__V1__Session *s = NULL;
    tern_grpc_status st = {0};
    tern_ctx *ctx = shop_fx_ctx();
    int rc = shop_users_v1_users_get_session(users, &req, &s, NULL, &st, ctx);
    tern_ctx_free(ctx);
    if (rc == 0 && user)
        snprintf(user, len, "%s", s->user_id);
    if (rc < 0)
        CHECK_EQ(st.code, TERN_GRPC_NOT_FOUND);
    tern_grpc_status_clear(&st);
    FREE_MSG(s);
    return rc;
}

static bool logout(tern_grpc_channel *users, const char *sid)
{
    Shop__Users__V1__LogoutRequest req = SHOP__USERS__V1__LOGOUT_REQUEST__INIT;
    req.session_id = (char *)sid;
    Shop__Users__V1__LogoutResponse *r = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_users_v1_users_logout(users, &req, &r, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    bool ended = r->ended;
    FREE_MSG(r);
    return ended;
}

/* Whose stock answers: the available units of "mug" by the replica the
 * channel picked (-1: that replica has none). */
static int64_t mug_available(tern_grpc_channel *inv)
{
    Shop__Inventory__V1__GetStockRequest req = SHOP__INVENTORY__V1__GET_STOCK_REQUEST__INIT;
    req.product_id = "mug";
    Shop__Inventory__V1__Stock *s = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    int rc = shop_inventory_v1_inventory_get_stock(inv, &req, &s, NULL, NULL, ctx);
    tern_ctx_free(ctx);
    int64_t n = rc == 0 ? s->available : -1;
    FREE_MSG(s);
    return n;
}

static int64_t pg_i64(tern_pg_pool *pool, const char *sql, const char *arg)
{
    tern_pg_result *res;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(tern_pg_pool_query(pool, sql, &(tern_pg_params){.n = 1, .values = (const char *const[]){arg}}, &res,
                                NULL, ctx),
             0);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_pg_result_rows(res), 1);
    int64_t v = -1;
    CHECK_EQ(tern_pg_result_int64(res, 0, 0, &v), 0);
    tern_pg_result_free(res);
    return v;
}

/* A request to the gateway: its status, the body into body (len bytes). */
static int http_call(tern_http_client *c, const char *method, const char *url, const char *token, const char *json,
                char *body, size_t len)
{
    char auth[2048];
    snprintf(auth, sizeof auth, "Bearer %s", token ? token : "");
    const char *headers[] = {"Content-Type", "application/json", token ? "Authorization" : NULL, auth, NULL};
    tern_http_client_request rq = {.method = method, .url = url, .headers = headers, .body = json,
                                   .body_len = json ? strlen(json) : 0};
    tern_http_client_response *r;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(tern_http_client_do(c, &rq, &r, ctx), 0);
    const char *data;
    size_t n;
    CHECK_EQ(tern_http_client_response_body(r, 1 << 20, &data, &n), 0);
    snprintf(body, len, "%.*s", (int)n, data);
    tern_ctx_free(ctx);
    int status = tern_http_client_response_status(r);
    tern_http_client_response_free(r);
    return status;
}

static int64_t redis_keys(tern_redis_client *redis)
{
    tern_redis_reply *rep;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(tern_redis_commandf(redis, &rep, ctx, "DBSIZE"), 0);
    tern_ctx_free(ctx);
    int64_t n = tern_redis_reply_int(rep);
    tern_redis_reply_free(rep);
    return n;
}

static int production(void *arg)
{
    (void)arg;
    const pg_fixture *pg = pg_fixture_start();
    redis_server rs = {0};
    redis_server_start(&rs);
    nats_server ns = {0};
    nats_server_start(&ns);
    etcd_server es = {0};
    etcd_server_start(&es);

    char pg_flag[512], redis_flag[512], nats_flag[256], etcd_flag[256];
    snprintf(pg_flag, sizeof pg_flag, "--pg.url=%s", pg->tcp);
    snprintf(redis_flag, sizeof redis_flag, "--redis.addr=%s", rs.sock);
    snprintf(nats_flag, sizeof nats_flag, "--events.nats=nats://%s", ns.addr);
    snprintf(etcd_flag, sizeof etcd_flag, "--etcd=%s", es.url);
#define PROD pg_flag, redis_flag, nats_flag, etcd_flag, "--discovery.ttl=2s"

    char inv_dir[256], pay_dir[256], rest_dir[256], inv2_dir[256];
    shop_fx_mkdir(inv_dir, sizeof inv_dir);
    shop_fx_mkdir(pay_dir, sizeof pay_dir);
    shop_fx_mkdir(rest_dir, sizeof rest_dir);
    shop_fx_mkdir(inv2_dir, sizeof inv2_dir);
    shop_fx inv, pay, rest;
    shop_fx_start_roles(&inv, inv_dir, BIT(SHOP_INVENTORY), PROD, NULL);
    shop_fx_start_roles(&pay, pay_dir, BIT(SHOP_PAYMENTS), PROD, NULL);
    /* the rest seeds the catalog and its stock, at the inventory found in etcd */
    shop_fx_start_roles(&rest, rest_dir, BIT(SHOP_USERS) | BIT(SHOP_CATALOG) | BIT(SHOP_ORDERS), PROD, NULL);

    /* the seed stocks an inventory of its own process only: this one's by hand */
    Shop__Inventory__V1__AddStockRequest ar = SHOP__INVENTORY__V1__ADD_STOCK_REQUEST__INIT;
    ar.product_id = "mug";
    ar.quantity = 100;
    Shop__Inventory__V1__Stock *added = NULL;
    tern_ctx *actx = shop_fx_ctx();
    CHECK_EQ(shop_inventory_v1_inventory_add_stock(inv.ch[SHOP_INVENTORY], &ar, &added, NULL, NULL, actx), 0);
    tern_ctx_free(actx);
    FREE_MSG(added);

    /* the saga: orders -> inventory (etcd) -> JetStream -> payments -> orders */
    Shop__Orders__V1__Order *o;
    CHECK_EQ(shop_fx_order(&rest, "u-prod", "mug", 2, "k-1", &o), 0);
    char id[64];
    snprintf(id, sizeof id, "%s", o->id);
    FREE_MSG(o);
    int st = shop_fx_settled(&rest, id);
    if (st != ORDER(PAID)) {
        o = shop_fx_get_order(&rest, id);
        fprintf(stderr, "order %s: status %d, %s\n", id, st, o->reason);
        FREE_MSG(o);
    }
    CHECK_EQ(st, ORDER(PAID));
    Shop__Inventory__V1__Stock *s = shop_fx_stock(&inv, "mug");
    CHECK_EQ(s->sold, 2);
    CHECK_EQ(s->reserved, 0);
    FREE_MSG(s);
    /* the idempotency key holds on PostgreSQL too */
    CHECK_EQ(shop_fx_order(&rest, "u-prod", "mug", 2, "k-1", &o), 0);
    CHECK(strcmp(o->id, id) == 0);
    FREE_MSG(o);

    /* the rows are PostgreSQL's; the outboxes one table per role */
    tern_pg_pool *pool;
    CHECK_EQ(tern_pg_pool_new(pg->tcp, NULL, &pool), 0);
    CHECK_EQ(pg_i64(pool, "SELECT status FROM orders WHERE id = $1", id), ORDER(PAID));
    CHECK_EQ(pg_i64(pool, "SELECT count(*) FROM payments WHERE order_id = $1", id), 1);
    CHECK_EQ(pg_i64(pool, "SELECT sold FROM stock WHERE product_id = $1", "mug"), 2);
    CHECK_EQ(pg_i64(pool, "SELECT count(*) FROM orders_outbox WHERE $1 <> ''", "x"), 1);
    CHECK(pg_i64(pool, "SELECT count(*) FROM payments_outbox WHERE $1 <> ''", "x") >= 1);

    /* payments found through etcd: its GetPayment from the rest's channel */
    tern_grpc_channel *pch;
    CHECK_EQ(shop_app_channel(rest.app, SHOP_PAYMENTS, &pch), 0);
    Shop__Payments__V1__GetPaymentRequest gp = SHOP__PAYMENTS__V1__GET_PAYMENT_REQUEST__INIT;
    gp.order_id = id;
    Shop__Payments__V1__Payment *p = NULL;
    tern_ctx *ctx = shop_fx_ctx();
    CHECK_EQ(shop_payments_v1_payments_get_payment(pch, &gp, &p, NULL, NULL, ctx), 0);
    tern_ctx_free(ctx);
    CHECK(strcmp(p->order_id, id) == 0);
    FREE_MSG(p);
    tern_grpc_channel_free(pch);

    /* sessions in Redis: a key per login, gone at Logout */
    Shop__Users__V1__LoginResponse *login = sign_up_and_login(rest.ch[SHOP_USERS], "ann@prod.example");
    CHECK_EQ(pg_i64(pool, "SELECT count(*) FROM users WHERE email = $1", "ann@prod.example"), 1);
    tern_redis_client *redis;
    CHECK_EQ(tern_redis_client_new(&(tern_redis_client_options){.addr = rs.sock}, &redis), 0);
    char key[128], *val = NULL, user[64] = "";
    snprintf(key, sizeof key, "shop:session:%s", login->session_id);
    ctx = shop_fx_ctx();
    CHECK_EQ(tern_redis_get(redis, key, &val, NULL, ctx), 0);
    CHECK(strcmp(val, login->user->id) == 0);
    free(val);
    CHECK_EQ(get_session(rest.ch[SHOP_USERS], login->session_id, user, sizeof user), 0);
    CHECK(strcmp(user, login->user->id) == 0);
    CHECK(logout(rest.ch[SHOP_USERS], login->session_id));
    CHECK_EQ(tern_redis_get(redis, key, &val, NULL, ctx), -ENOENT);
    CHECK(get_session(rest.ch[SHOP_USERS], login->session_id, NULL, 0) < 0);
    CHECK(!logout(rest.ch[SHOP_USERS], login->session_id));
    tern_ctx_free(ctx);
    FREE_MSG(login);

    /* the gateway role in production: its upstreams through etcd, the
     * per-user limits counted in Redis */
    char gw_dir[256], gw_url[160], body[8192];
    shop_fx_mkdir(gw_dir, sizeof gw_dir);
    /* a copy of the shop's file: edited below, and reloaded */
    char gw_file[300], gw_flag[320];
    snprintf(gw_file, sizeof gw_file, "%s/gateway.yaml", gw_dir);
    snprintf(gw_flag, sizeof gw_flag, "--gateway.config=%s", gw_file);
    {
        FILE *in = fopen(SHOP_SOURCE_DIR "/config/gateway.yaml", "r"), *out = fopen(gw_file, "w");
        CHECK(in && out);
        char chunk[4096];
        for (size_t n; (n = fread(chunk, 1, sizeof chunk, in)) > 0;)
            CHECK_EQ(fwrite(chunk, 1, n, out), n);
        fclose(in);
        CHECK_EQ(fclose(out), 0);
    }
    shop_fx gw;
    shop_fx_start_roles(&gw, gw_dir, BIT(SHOP_GATEWAY), PROD, "--gateway.addr=127.0.0.1:0",
                        "--gateway.admin=127.0.0.1:0", gw_flag, NULL);
    tern_http_client *http;
    CHECK_EQ(tern_http_client_new(NULL, &http), 0);
    snprintf(gw_url, sizeof gw_url, "http://%s/api/login", shop_app_addr(gw.app, SHOP_GATEWAY));
    const char *creds = "{\"email\":\"ann@prod.example\",\"password\":\"correct horse\"}";
    CHECK_EQ(http_call(http, "POST", gw_url, NULL, creds, body, sizeof body), 200);
    char *sid = strstr(body, "\"sessionId\":\"s-");
    CHECK(sid != NULL);
    char logout_body[128];
    snprintf(logout_body, sizeof logout_body, "{\"sessionId\":\"%.*s\"}", (int)strcspn(sid + 13, "\""), sid + 13);
    char *tok = strstr(body, "\"token\":\"");
    CHECK(tok != NULL);
    tok += 9;
    *strchr(tok, '"') = 0;
    char token[2048];
    snprintf(token, sizeof token, "%s", tok);
    int64_t keys = redis_keys(redis);
    snprintf(gw_url, sizeof gw_url, "http://%s/api/orders", shop_app_addr(gw.app, SHOP_GATEWAY));
    CHECK_EQ(http_call(http, "GET", gw_url, token, NULL, body, sizeof body), 200);
    CHECK(redis_keys(redis) > keys);    /* the limiter's count for this user */
    snprintf(gw_url, sizeof gw_url, "http://%s/api/logout", shop_app_addr(gw.app, SHOP_GATEWAY));
    CHECK_EQ(http_call(http, "POST", gw_url, token, logout_body, body, sizeof body), 200);
    CHECK(strstr(body, "\"ended\":true") != NULL);
    CHECK_EQ(http_call(http, "POST", gw_url, token, logout_body, body, sizeof body), 200);
    CHECK(strstr(body, "ended") == NULL);   /* false: a default value, left out */

    /* the file is edited: the gateway reloads it, production's settings
     * put on again (its catalog upstream still found through etcd) */
    snprintf(gw_url, sizeof gw_url, "http://%s/api/reloaded", shop_app_addr(gw.app, SHOP_GATEWAY));
    CHECK_EQ(http_call(http, "GET", gw_url, NULL, NULL, body, sizeof body), 404);
    {
        FILE *f = fopen(gw_file, "a");
        CHECK(f);
        fputs("  - name: reloaded\n"
              "    match: {path: /api/reloaded, methods: [GET]}\n"
              "    grpc: {upstream: catalog, method: \"shop.catalog.v1.Catalog/ListCategories\"}\n", f);
        CHECK_EQ(fclose(f), 0);
    }
    int got = 404;
    for (int i = 0; i < 100 && got == 404; i++) {
        tern_sleep(50 * TERN_MS);
        got = http_call(http, "GET", gw_url, NULL, NULL, body, sizeof body);
    }
    CHECK_EQ(got, 200);
    tern_http_client_free(http);
    shop_fx_stop(&gw);
    shop_fx_rmdir(gw_dir);
    tern_redis_client_free(redis);

    /* a second inventory replica (its own, empty, database) joins the channel,
     * and leaves it when it stops (its registration revoked) */
    tern_pg_result *made;
    ctx = shop_fx_ctx();
    CHECK_EQ(tern_pg_pool_query(pool, "CREATE DATABASE inv2", NULL, &made, NULL, ctx), 0);
    tern_ctx_free(ctx);
    tern_pg_result_free(made);
    char pg2_flag[300];
    snprintf(pg2_flag, sizeof pg2_flag, "--pg.url=host=127.0.0.1 port=%d user=postgres dbname=inv2", pg->port);
    shop_fx inv2;
    shop_fx_start_roles(&inv2, inv2_dir, BIT(SHOP_INVENTORY), PROD, pg2_flag, NULL);
    tern_grpc_channel *ich;
    CHECK_EQ(shop_app_channel(rest.app, SHOP_INVENTORY, &ich), 0);
    int first = 0, second = 0;
    for (int i = 0; i < 200 && (first == 0 || second == 0); i++) {
        if (mug_available(ich) >= 0)
            first++;
        else
            second++;
    }
    CHECK(first > 0);
    CHECK(second > 0);
    shop_fx_stop(&inv2);
    int streak = 0;
    for (int i = 0; i < 500 && streak < 50; i++) {
        streak = mug_available(ich) >= 0 ? streak + 1 : 0;
        if (streak == 0)
            tern_sleep(10 * TERN_MS);
    }
    CHECK_EQ(streak, 50);
    tern_grpc_channel_free(ich);

    tern_pg_pool_free(pool);
    shop_fx_stop(&rest);
    shop_fx_stop(&pay);
    shop_fx_stop(&inv);
    etcd_server_stop(&es);
    nats_server_stop(&ns);
    redis_server_stop(&rs);
    shop_fx_rmdir(inv_dir);
    shop_fx_rmdir(pay_dir);
    shop_fx_rmdir(rest_dir);
    shop_fx_rmdir(inv2_dir);
    return 0;
}

static int sessions_default(void *arg)
{
    (void)arg;
    char dir[256];
    shop_fx_mkdir(dir, sizeof dir);
    shop_fx fx;
    shop_fx_start_roles(&fx, dir, BIT(SHOP_USERS), NULL);
    Shop__Users__V1__LoginResponse *login = sign_up_and_login(fx.ch[SHOP_USERS], "bob@example.org");
    char user[64] = "";
    CHECK_EQ(get_session(fx.ch[SHOP_USERS], login->session_id, user, sizeof user), 0);
    CHECK(strcmp(user, login->user->id) == 0);
    CHECK(get_session(fx.ch[SHOP_USERS], "s-nosuchsession", NULL, 0) < 0);
    CHECK(logout(fx.ch[SHOP_USERS], login->session_id));
    CHECK(get_session(fx.ch[SHOP_USERS], login->session_id, NULL, 0) < 0);
    CHECK(!logout(fx.ch[SHOP_USERS], login->session_id));
    FREE_MSG(login);
    shop_fx_stop(&fx);
    shop_fx_rmdir(dir);
    return 0;
}

static void production_mode_saga_sessions_and_discovery_on_pg_redis_nats_etcd(void)
{
    if (access(ETCD_SERVER_BIN, X_OK) != 0) {
        fprintf(stderr, "skipped: no %s (Debian: etcd-server)\n", ETCD_SERVER_BIN);
        return;
    }
    run_ok(production, NULL, 2);
}

static void sessions_without_redis_live_in_the_users_database_until_logout(void)
{
    run_ok(sessions_default, NULL, 2);
}

TESTS(T(sessions_without_redis_live_in_the_users_database_until_logout),
      T(production_mode_saga_sessions_and_discovery_on_pg_redis_nats_etcd))
