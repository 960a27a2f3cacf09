/*
 * users.h - between the users service's files: users.c (the RPCs),
 * password.c (scrypt) and token.c (the login token).
 */
#ifndef SHOP_USERS_H
#define SHOP_USERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/shop.h"

/* A password's hash: scrypt (N, r 8, p 1) of the password with a random
 * 16-byte salt, as "N$salt-hex$hash-hex" (SHOP_PASSWORD_MAX bytes at
 * most).  Runs on the blocking pool (scrypt takes tens of ms and 16 MiB
 * at the default N): the worker threads go on serving.  From a
 * coroutine.  0, -EINVAL (N not a power of two > 1), -ENOMEM, -EIO. */
#define SHOP_PASSWORD_MAX 192
int shop_password_hash(const char *password, int64_t n, char *out);
/* 1 when password matches stored (in constant time), 0 when not, -EINVAL
 * for a stored value that is not one of ours. */
int shop_password_check(const char *password, const char *stored);

/* Login tokens: JWTs signed HS256 with kid, claims sub, email, iss
 * "shop-users", aud "shop", iat, exp (iat + ttl).  Through tern/jwt.h;
 * where this tern has none yet, shop_token_issue answers -ENOTSUP. */
typedef struct shop_token shop_token;
int shop_token_new(const char *kid, const char *secret, int64_t ttl_ns, shop_token **out);
void shop_token_free(shop_token *t);
/* *jwt is malloc'd (the caller frees it); *exp_ms the expiry, Unix ms. */
int shop_token_issue(shop_token *t, const char *user_id, const char *email, const char *sid, char **jwt,
                     int64_t *exp_ms);

/* Login sessions (session.c): in Redis at redis_addr (a sliding expiry of
 * ttl ns), or, with redis_addr empty, in db's sessions table.  id is a
 * shop_id_new ("s-..."). */
typedef struct shop_sessions shop_sessions;
int shop_sessions_new(const char *redis_addr, shop_db *db, int64_t ttl, shop_sessions **out);
void shop_sessions_free(shop_sessions *s);
bool shop_sessions_redis(const shop_sessions *s);
/* *exp_ms: when it ends unless used (Unix ms). */
int shop_sessions_put(shop_sessions *s, const char *id, const char *user_id, int64_t *exp_ms, tern_ctx *ctx);
/* The session's user into user_id (len bytes), extending it: 0, -ENOENT
 * (unknown, ended or expired), or the store's error. */
int shop_sessions_get(shop_sessions *s, const char *id, char *user_id, size_t len, tern_ctx *ctx);
/* 1 when it was live and is ended now, 0 when there was none, -errno. */
int shop_sessions_end(shop_sessions *s, const char *id, tern_ctx *ctx);

#endif
