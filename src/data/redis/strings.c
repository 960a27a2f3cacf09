/*
 * strings.c - GET, SET and DEL as plain calls, for the common case where
 * a reply object would only be unwrapped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "data/redis/internal.h"

/* GET key: 0 with *r a STRING reply, or -ENOENT / an error. */
static int get(tern_redis_client *cl, const char *key, tern_redis_reply **r, tern_ctx *ctx)
{
    TERN_CHECK_ARG(key);
    const char *argv[] = {"GET", key};
    int err = tern_redis_command(cl, 2, argv, NULL, r, ctx);
    if (err) {
        tern_redis_reply_free(*r);
        *r = NULL;
        return err;
    }
    if (tern_redis_reply_type(*r) == TERN_REDIS_STRING)
        return 0;
    int type = tern_redis_reply_type(*r);
    tern_redis_reply_free(*r);
    *r = NULL;
    return type == TERN_REDIS_NIL ? -ENOENT : -EPROTO;
}

int tern_redis_get(tern_redis_client *cl, const char *key, char **val, size_t *len,
                   tern_ctx *ctx)
{
    TERN_CHECK_ARG(val);
    *val = NULL;
    tern_redis_reply *r;
    int err = get(cl, key, &r, ctx);
    if (err)
        return err;
    size_t n;
    const char *s = tern_redis_reply_str(r, &n);
    char *v = malloc(n + 1);
    if (v) {
        memcpy(v, s, n);
        v[n] = '\0';
        *val = v;
        if (len)
            *len = n;
    }
    tern_redis_reply_free(r);
    return v ? 0 : -ENOMEM;
}

int tern_redis_get_buf(tern_redis_client *cl, const char *key, void *buf, size_t cap,
                       size_t *len, tern_ctx *ctx)
{
    TERN_CHECK_ARG(len);
    *len = 0;
    tern_redis_reply *r;
    int err = get(cl, key, &r, ctx);
    if (err)
        return err;
    size_t n;
    const char *s = tern_redis_reply_str(r, &n);
    *len = n;
    if (n <= cap)
        memcpy(buf, s, n);
    tern_redis_reply_free(r);
    return n <= cap ? 0 : -ENOSPC;
}

int tern_redis_set(tern_redis_client *cl, const char *key, const void *val, size_t len,
                   int64_t ttl, tern_ctx *ctx)
{
    TERN_CHECK_ARG(key);
    if (ttl < 0)
        return -EINVAL;
    char ms[24];
    snprintf(ms, sizeof ms, "%lld", (long long)((ttl + TERN_MS - 1) / TERN_MS));
    const char *argv[] = {"SET", key, val, "PX", ms};
    size_t lens[] = {3, strlen(key), len, 2, strlen(ms)};
    return tern_redis_command(cl, ttl ? 5 : 3, argv, lens, NULL, ctx);
}

int tern_redis_del(tern_redis_client *cl, const char *key, tern_ctx *ctx)
{
    TERN_CHECK_ARG(key);
    const char *argv[] = {"DEL", key};
    tern_redis_reply *r;
    int err = tern_redis_command(cl, 2, argv, NULL, &r, ctx);
    if (!err)
        err = tern_redis_reply_int(r) > 0 ? 0 : -ENOENT;
    tern_redis_reply_free(r);
    return err;
}
