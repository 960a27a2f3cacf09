/*
 * stream.c - Redis Streams with consumer groups, for at-least-once
 * consumers: XADD, XGROUP CREATE, XREADGROUP (blocking, so on a dedicated
 * connection: on the shared pipeline a BLOCK would hold up every caller
 * queued behind it), XACK, XAUTOCLAIM.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "data/redis/internal.h"

enum { XADD_FIELDS_MAX = 64 };

int tern_redis_xadd(tern_redis_client *cl, const char *stream, int nfields,
                    const char *const *kv, char *id, tern_ctx *ctx)
{
    TERN_CHECK_ARG(stream);
    if (nfields < 1 || nfields > XADD_FIELDS_MAX)
        return -EINVAL;
    TERN_CHECK_ARG(kv);
    const char *argv[3 + 2 * XADD_FIELDS_MAX] = {"XADD", stream, "*"};
    memcpy(argv + 3, kv, (size_t)(2 * nfields) * sizeof *kv);
    tern_redis_reply *r;
    int err = tern_redis_command(cl, 3 + 2 * nfields, argv, NULL, &r, ctx);
    if (!err && id) {
        size_t n;
        const char *s = tern_redis_reply_str(r, &n);
        if (!s || n >= TERN_REDIS_ID_MAX)
            err = -EPROTO;
        else
            memcpy(id, s, n + 1);
    }
    tern_redis_reply_free(r);
    return err;
}

int tern_redis_xgroup_create(tern_redis_client *cl, const char *stream, const char *group,
                             const char *start, tern_ctx *ctx)
{
    TERN_CHECK_ARG(stream);
    TERN_CHECK_ARG(group);
    TERN_CHECK_ARG(start);
    const char *argv[] = {"XGROUP", "CREATE", stream, group, start, "MKSTREAM"};
    tern_redis_reply *r;
    int err = tern_redis_command(cl, 6, argv, NULL, &r, ctx);
    if (err == -EREMOTEIO && strncmp(tern_redis_reply_str(r, NULL), "BUSYGROUP", 9) == 0)
        err = -EEXIST;
    tern_redis_reply_free(r);
    return err;
}

int tern_redis_xreadgroup(tern_redis_client *cl, const char *stream, const char *group,
                          const char *consumer, int count, int64_t block,
                          tern_redis_reply **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(stream);
    TERN_CHECK_ARG(group);
    TERN_CHECK_ARG(consumer);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (count < 1 || block < 0)
        return -EINVAL;
    char cnt[16], ms[24];
    snprintf(cnt, sizeof cnt, "%d", count);
    /* BLOCK 0 would mean "for ever" to Redis: no wait is no BLOCK. */
    snprintf(ms, sizeof ms, "%lld", (long long)((block + TERN_MS - 1) / TERN_MS));
    const char *argv[] = {"XREADGROUP", "GROUP", group, consumer, "COUNT", cnt,
                          "STREAMS", stream, ">", NULL, NULL};
    if (block) {
        memmove(argv + 8, argv + 6, 3 * sizeof *argv);
        argv[6] = "BLOCK";
        argv[7] = ms;
    }
    int argc = block ? 11 : 9;
    tern_redis_reply *r;
    int err = tern_redis_blocking_command(cl, argc, argv, NULL, &r, ctx);
    if (!err && tern_redis_reply_type(r) == TERN_REDIS_NIL)
        err = -ENOENT;
    if (err) {
        if (err == -EREMOTEIO)
            *out = r;
        else
            tern_redis_reply_free(r);
        return err;
    }
    *out = r;
    return 0;
}

int tern_redis_xack(tern_redis_client *cl, const char *stream, const char *group,
                    const char *id, tern_ctx *ctx)
{
    TERN_CHECK_ARG(stream);
    TERN_CHECK_ARG(group);
    TERN_CHECK_ARG(id);
    const char *argv[] = {"XACK", stream, group, id};
    tern_redis_reply *r;
    int err = tern_redis_command(cl, 4, argv, NULL, &r, ctx);
    if (!err && tern_redis_reply_int(r) != 1)
        err = -ENOENT;
    tern_redis_reply_free(r);
    return err;
}

int tern_redis_xautoclaim(tern_redis_client *cl, const char *stream, const char *group,
                          const char *consumer, int64_t min_idle, const char *start,
                          int count, tern_redis_reply **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(stream);
    TERN_CHECK_ARG(group);
    TERN_CHECK_ARG(consumer);
    TERN_CHECK_ARG(start);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (count < 1 || min_idle < 0)
        return -EINVAL;
    char idle[24], cnt[16];
    snprintf(idle, sizeof idle, "%lld", (long long)(min_idle / TERN_MS));
    snprintf(cnt, sizeof cnt, "%d", count);
    const char *argv[] = {"XAUTOCLAIM", stream, group, consumer, idle, start, "COUNT", cnt};
    return tern_redis_command(cl, 8, argv, NULL, out, ctx);
}
