/*
 * session.c - login sessions: the id a login hands out (also the token's
 * "sid" claim), the user it is for, and an expiry; Logout ends one early.
 *
 * In production (redis.addr) a session is a Redis key with a sliding
 * expiry (tern_redis_session_put/get: every read pushes it ahead), so any
 * users replica sees it and nothing has to sweep; without Redis it is a
 * row of the users' database with its expiry checked on read (rows of
 * sessions that ended stay until the same id is used, which never
 * happens: ids are random).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/redis.h>

#include "users/users.h"

#define KEY_PREFIX "shop:session:"

struct shop_sessions {
    tern_redis_client *redis;           /* NULL: the database */
    shop_db *db;                        /* borrowed */
    int64_t ttl;                        /* ns */
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS sessions ("
    "  id TEXT PRIMARY KEY,"
    "  user_id TEXT NOT NULL,"
    "  expires_ms BIGINT NOT NULL);";

int shop_sessions_new(const char *redis_addr, shop_db *db, int64_t ttl, shop_sessions **out)
{
    *out = NULL;
    shop_sessions *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->db = db;
    s->ttl = ttl;
    int rc = redis_addr && *redis_addr
                 ? tern_redis_client_new(&(tern_redis_client_options){.addr = redis_addr}, &s->redis)
                 : shop_db_schema(db, schema, NULL);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void shop_sessions_free(shop_sessions *s)
{
    if (!s)
        return;
    tern_redis_client_free(s->redis);
    free(s);
}

bool shop_sessions_redis(const shop_sessions *s)
{
    return s->redis != NULL;
}

int shop_sessions_put(shop_sessions *s, const char *id, const char *user_id, int64_t *exp_ms, tern_ctx *ctx)
{
    *exp_ms = shop_now_ms() + s->ttl / TERN_MS;
    if (s->redis) {
        char key[SHOP_ID_MAX + sizeof KEY_PREFIX];
        snprintf(key, sizeof key, KEY_PREFIX "%s", id);
        return tern_redis_session_put(s->redis, key, user_id, strlen(user_id), s->ttl, ctx);
    }
    char exp[SHOP_I64_MAX];
    return shop_db_exec(s->db, "INSERT INTO sessions (id, user_id, expires_ms) VALUES ($1, $2, $3)",
                        SHOP_PARAMS(id, user_id, shop_i64(exp, *exp_ms)), NULL, ctx);
}

int shop_sessions_get(shop_sessions *s, const char *id, char *user_id, size_t len, tern_ctx *ctx)
{
    if (s->redis) {
        char key[SHOP_ID_MAX + sizeof KEY_PREFIX], *val = NULL;
        if (strlen(id) >= SHOP_ID_MAX)
            return -ENOENT;
        snprintf(key, sizeof key, KEY_PREFIX "%s", id);
        int rc = tern_redis_session_get(s->redis, key, s->ttl, &val, NULL, ctx);
        if (rc == 0)
            snprintf(user_id, len, "%s", val);
        free(val);
        return rc;
    }
    char now[SHOP_I64_MAX];
    shop_rows *rows;
    int rc = shop_db_query(s->db, "SELECT user_id FROM sessions WHERE id = $1 AND expires_ms > $2",
                           SHOP_PARAMS(id, shop_i64(now, shop_now_ms())), &rows, ctx);
    if (rc < 0)
        return rc;
    rc = shop_rows_count(rows) > 0 ? 0 : -ENOENT;
    if (rc == 0)
        snprintf(user_id, len, "%s", shop_rows_str(rows, 0, "user_id"));
    shop_rows_free(rows);
    return rc;
}

int shop_sessions_end(shop_sessions *s, const char *id, tern_ctx *ctx)
{
    if (s->redis) {
        char key[SHOP_ID_MAX + sizeof KEY_PREFIX];
        if (strlen(id) >= SHOP_ID_MAX)
            return 0;
        snprintf(key, sizeof key, KEY_PREFIX "%s", id);
        int rc = tern_redis_del(s->redis, key, ctx);
        return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
    }
    char now[SHOP_I64_MAX];
    int64_t gone = 0;
    int rc = shop_db_exec(s->db, "DELETE FROM sessions WHERE id = $1 AND expires_ms > $2",
                          SHOP_PARAMS(id, shop_i64(now, shop_now_ms())), &gone, ctx);
    return rc < 0 ? rc : gone > 0;
}
