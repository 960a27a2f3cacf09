/*
 * token.c - login tokens: the one place the shop signs a JWT.
 * HS256 through tern_jwt_sign (tern/jwt.h), verified by the gateway with
 * the same secret.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "users/users.h"

#include <tern/jwt.h>

struct shop_token {
    char kid[64];
    int64_t ttl_ns;
    tern_jwt_keys *keys;
};

int shop_token_new(const char *kid, const char *secret, int64_t ttl_ns, shop_token **out)
{
    *out = NULL;
    if (!kid || !*kid || strlen(kid) >= sizeof((shop_token *)0)->kid || !secret || !*secret || ttl_ns <= 0)
        return -EINVAL;
    shop_token *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    strcpy(t->kid, kid);
    t->ttl_ns = ttl_ns;
    int rc = tern_jwt_keys_new(&t->keys);
    if (rc == 0)
        rc = tern_jwt_keys_add_hmac(t->keys, kid, secret, strlen(secret));
    if (rc < 0) {
        shop_token_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void shop_token_free(shop_token *t)
{
    if (!t)
        return;
    tern_jwt_keys_free(t->keys);
    free(t);
}

int shop_token_issue(shop_token *t, const char *user_id, const char *email, const char *sid, char **jwt,
                     int64_t *exp_ms)
{
    *jwt = NULL;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t iat = now.tv_sec, exp = iat + t->ttl_ns / 1000000000;
    *exp_ms = exp * 1000;
    json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "sub", user_id, "email", email, "iss", "shop-users",
                               "aud", "shop", "iat", (json_int_t)iat, "exp", (json_int_t)exp);
    if (!claims || (sid && json_object_set_new(claims, "sid", json_string(sid)) < 0)) {
        json_decref(claims);
        return -ENOMEM;
    }
    char *text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (!text)
        return -ENOMEM;
    int rc = tern_jwt_sign(t->keys, t->kid, text, jwt);
    free(text);
    return rc;
}
