/*
 * users.c - shop.users.v1.Users: sign-up, login, a user by id.
 *
 * Passwords are scrypt hashes (password.c); a login that names no user
 * still runs the KDF, so the answer's timing does not tell which emails
 * have accounts, and both failures read the same.  Login answers with a
 * JWT (token.c) that the gateway verifies with the same secret, and a
 * session (session.c: Redis in production) that Logout ends; the token
 * names it in its "sid" claim.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/shop.h"
#include "users.tern-grpc.h"
#include "users/users.h"

#define MIN_PASSWORD 8
#define MAX_PASSWORD 1024
#define MAX_EMAIL 254

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS users ("
    "  id TEXT PRIMARY KEY,"
    "  email TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  password TEXT NOT NULL,"
    "  created_ms BIGINT NOT NULL);";

/* A hash of nothing anyone's password is, for logins that name no user. */
static const char decoy[] = "16384$00000000000000000000000000000000$"
                            "0000000000000000000000000000000000000000000000000000000000000000";

typedef struct users {
    shop_token *token;
    shop_sessions *sessions;
} users;

static int fill_user(tern_grpc_call *call, const shop_rows *res, Shop__Users__V1__User *u)
{
    u->id = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "id"));
    u->email = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "email"));
    u->name = tern_grpc_call_strdup(call, shop_rows_str(res, 0, "name"));
    u->created_at_unix_ms = shop_rows_i64(res, 0, "created_ms");
    return u->id && u->email && u->name ? 0 : -ENOMEM;
}

/* Emails compare in lower case: Ann@x.org and ann@x.org are one account. */
static int normalise_email(tern_grpc_call *call, const char *in, char *out)
{
    size_t n = strlen(in);
    const char *at = strchr(in, '@');
    if (n == 0 || n > MAX_EMAIL || !at || at == in || !at[1] || strchr(at + 1, '@'))
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "email: not an address");
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    return 0;
}

static int sign_up(tern_grpc_call *call, const Shop__Users__V1__SignUpRequest *req, Shop__Users__V1__User *resp,
                   void *arg)
{
    shop_role *r = arg;
    char email[MAX_EMAIL + 1];
    int rc = normalise_email(call, req->email, email);
    if (rc < 0)
        return rc;
    size_t plen = strlen(req->password);
    if (plen < MIN_PASSWORD || plen > MAX_PASSWORD)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "password: %d to %d bytes", MIN_PASSWORD,
                                   MAX_PASSWORD);
    if (strlen(req->name) > 200)
        return tern_grpc_call_fail(call, TERN_GRPC_INVALID_ARGUMENT, "name: at most 200 bytes");
    char hash[SHOP_PASSWORD_MAX];
    if ((rc = shop_password_hash(req->password, tern_config_int(r->cfg, "users.scrypt_n"), hash)) < 0)
        return shop_fail(call, rc, "hashing the password failed");
    char id[SHOP_ID_MAX], now[SHOP_I64_MAX];
    shop_id_new("u-", id);
    shop_rows *res;
    rc = shop_db_query(r->store,
                       "INSERT INTO users (id, email, name, password, created_ms) VALUES ($1, $2, $3, $4, $5)"
                       " RETURNING *",
                       SHOP_PARAMS(id, email, req->name, hash, shop_i64(now, shop_now_ms())), &res,
                       tern_grpc_call_ctx(call));
    if (rc == -EEXIST)
        return tern_grpc_call_fail(call, TERN_GRPC_ALREADY_EXISTS, "%s has an account already", email);
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    rc = fill_user(call, res, resp);
    shop_rows_free(res);
    tern_log_info("users: signed up", TERN_LOG_STR("user", id));
    return rc;
}

static int login(tern_grpc_call *call, const Shop__Users__V1__LoginRequest *req, Shop__Users__V1__LoginResponse *resp,
                 void *arg)
{
    shop_role *r = arg;
    users *u = r->state;
    char email[MAX_EMAIL + 1];
    if (normalise_email(call, req->email, email) < 0 || strlen(req->password) > MAX_PASSWORD)
        return tern_grpc_call_fail(call, TERN_GRPC_UNAUTHENTICATED, "wrong email or password");
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM users WHERE email = $1", SHOP_PARAMS(email), &res,
                           tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    bool found = shop_rows_count(res) > 0;
    rc = shop_password_check(req->password, found ? shop_rows_str(res, 0, "password") : decoy);
    if (rc < 0 || !found || rc == 0) {
        shop_rows_free(res);
        if (rc < 0 && found)
            return shop_fail(call, rc, "checking the password failed");
        return tern_grpc_call_fail(call, TERN_GRPC_UNAUTHENTICATED, "wrong email or password");
    }
    Shop__Users__V1__User *user = tern_grpc_call_alloc(call, sizeof *user);
    if (!user) {
        shop_rows_free(res);
        return -ENOMEM;
    }
    shop__users__v1__user__init(user);
    rc = fill_user(call, res, user);
    shop_rows_free(res);
    if (rc < 0)
        return rc;
    char sid[SHOP_ID_MAX];
    int64_t session_exp;
    shop_id_new("s-", sid);
    if ((rc = shop_sessions_put(u->sessions, sid, user->id, &session_exp, tern_grpc_call_ctx(call))) < 0)
        return shop_fail(call, rc, "storing the session failed");
    if (!(resp->session_id = tern_grpc_call_strdup(call, sid)))
        return -ENOMEM;
    char *jwt = NULL;
    rc = shop_token_issue(u->token, user->id, user->email, sid, &jwt, &resp->expires_at_unix_ms);
    if (rc == -ENOTSUP)
        return tern_grpc_call_fail(call, TERN_GRPC_UNIMPLEMENTED, "this build has no JWT signing (tern/jwt.h)");
    if (rc < 0)
        return shop_fail(call, rc, "issuing the token failed");
    resp->token = tern_grpc_call_strdup(call, jwt);
    free(jwt);
    resp->user = user;
    return resp->token ? 0 : -ENOMEM;
}

static int get_user(tern_grpc_call *call, const Shop__Users__V1__GetUserRequest *req, Shop__Users__V1__User *resp,
                    void *arg)
{
    shop_role *r = arg;
    shop_rows *res;
    int rc = shop_db_query(r->store, "SELECT * FROM users WHERE id = $1", SHOP_PARAMS(req->id), &res,
                           tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, NULL);
    if (shop_rows_count(res) == 0)
        rc = tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no user %s", req->id);
    else
        rc = fill_user(call, res, resp);
    shop_rows_free(res);
    return rc;
}

static int logout(tern_grpc_call *call, const Shop__Users__V1__LogoutRequest *req,
                  Shop__Users__V1__LogoutResponse *resp, void *arg)
{
    users *u = ((shop_role *)arg)->state;
    int rc = shop_sessions_end(u->sessions, req->session_id, tern_grpc_call_ctx(call));
    if (rc < 0)
        return shop_fail(call, rc, "ending the session failed");
    resp->ended = rc == 1;
    return 0;
}

static int get_session(tern_grpc_call *call, const Shop__Users__V1__GetSessionRequest *req,
                       Shop__Users__V1__Session *resp, void *arg)
{
    users *u = ((shop_role *)arg)->state;
    char user[SHOP_ID_MAX + 8];
    int rc = shop_sessions_get(u->sessions, req->session_id, user, sizeof user, tern_grpc_call_ctx(call));
    if (rc == -ENOENT)
        return tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "no live session %s", req->session_id);
    if (rc < 0)
        return shop_fail(call, rc, "reading the session failed");
    resp->session_id = tern_grpc_call_strdup(call, req->session_id);
    resp->user_id = tern_grpc_call_strdup(call, user);
    return resp->session_id && resp->user_id ? 0 : -ENOMEM;
}

static const shop_users_v1_users_server impl = {
    .sign_up = sign_up, .login = login, .get_user = get_user, .logout = logout, .get_session = get_session};

static int init(shop_role *r)
{
    int rc = shop_db_schema(r->store, schema, NULL);
    if (rc < 0)
        return rc;
    users *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    r->state = u;
    const char *secret = tern_config_str(r->cfg, "users.jwt_secret");
    if (strlen(secret) < 32) {
        tern_log_error("users: users.jwt_secret: at least 32 bytes are needed (RFC 7518 3.2)",
                       TERN_LOG_INT("bytes", (int64_t)strlen(secret)));
        return -EINVAL;
    }
    if (!strcmp(secret, SHOP_DEV_JWT_SECRET))
        tern_log_warn("users: signing tokens with the development secret (set SHOP_USERS_JWT_SECRET)");
    rc = shop_token_new(tern_config_str(r->cfg, "users.jwt_kid"), secret, tern_config_duration(r->cfg, "users.token_ttl"),
                        &u->token);
    if (rc < 0)
        return rc;
    const char *redis = tern_config_str(r->cfg, "redis.addr");
    if ((rc = shop_sessions_new(redis, r->store, tern_config_duration(r->cfg, "users.token_ttl"), &u->sessions)) < 0) {
        tern_log_error("users: sessions", TERN_LOG_STR("redis", redis), TERN_LOG_STR("error", tern_strerror(rc)));
        return rc;
    }
    return shop_users_v1_users_register(r->grpc, &impl, r);
}

static void stop(shop_role *r)
{
    users *u = r->state;
    shop_token_free(u->token);
    shop_sessions_free(u->sessions);
    u->token = NULL;
    u->sessions = NULL;
}

const shop_role_ops shop_users_ops = {.name = "users", .pg = true, .init = init, .stop = stop};
