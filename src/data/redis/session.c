/*
 * session.c - sessions with a sliding TTL: SET ... PX to store, GETEX ...
 * PX to read and extend in one round trip (Redis 6.2+), so no reader
 * needs a second command to keep a session alive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "data/redis/internal.h"

int tern_redis_session_put(tern_redis_client *cl, const char *key, const void *data,
                           size_t len, int64_t ttl, tern_ctx *ctx)
{
    if (ttl < TERN_MS)
        return -EINVAL;
    return tern_redis_set(cl, key, data, len, ttl, ctx);
}

int tern_redis_session_get(tern_redis_client *cl, const char *key, int64_t ttl, char **data,
                           size_t *len, tern_ctx *ctx)
{
    TERN_CHECK_ARG(key);
    TERN_CHECK_ARG(data);
    *data = NULL;
    if (ttl < TERN_MS)
        return -EINVAL;
    char ms[24];
    snprintf(ms, sizeof ms, "%lld", (long long)((ttl + TERN_MS - 1) / TERN_MS));
    const char *argv[] = {"GETEX", key, "PX", ms};
    tern_redis_reply *r;
    int err = tern_redis_command(cl, 4, argv, NULL, &r, ctx);
    if (!err && tern_redis_reply_type(r) == TERN_REDIS_NIL)
        err = -ENOENT;
    else if (!err && tern_redis_reply_type(r) != TERN_REDIS_STRING)
        err = -EPROTO;
    if (!err) {
        size_t n;
        const char *s = tern_redis_reply_str(r, &n);
        char *v = malloc(n + 1);
        if (v) {
            memcpy(v, s, n);
            v[n] = '\0';
            *data = v;
            if (len)
                *len = n;
        } else {
            err = -ENOMEM;
        }
    }
    tern_redis_reply_free(r);
    return err;
}
