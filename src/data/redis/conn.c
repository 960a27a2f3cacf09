/*
 * conn.c - one Redis connection used one command at a time.
 *
 * hiredis does what it does well here: redisReader parses RESP, and the
 * redisFormat* calls build commands.  The socket is tern's own tern_conn
 * on the netpoller, so a wait parks the coroutine and is bounded by the
 * caller's ctx.  (hiredis's async context would need an event-loop adapter
 * and callbacks, which turn a coroutine's straight-line call back into
 * continuation passing; the reader alone fits coroutines directly.)
 *
 * Used for the handshake of every connection (AUTH, SELECT), and as the
 * dedicated connection of blocking commands and pub/sub.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "data/redis/internal.h"

/* Bytes asked of the socket per read, on the caller's stack (a coroutine
 * has 64 KiB by default): a typical reply many times over. */
enum { READ_CHUNK = 4 * 1024 };

int tern__redis_reader_next(redisReader *rd, redisReply **out)
{
    void *r = NULL;
    if (redisReaderGetReply(rd, &r) != REDIS_OK)
        return -EPROTO;
    *out = r;
    return 0;
}

int tern__redis_conn_read_reply(tern__redis_conn *rc, redisReply **out, tern_ctx *ctx)
{
    char buf[READ_CHUNK];
    for (;;) {
        redisReply *r = NULL;
        int err = tern__redis_reader_next(rc->rd, &r);
        if (err)
            return err;
        if (r) {
            *out = r;
            return 0;
        }
        ssize_t n = tern_conn_read(rc->c, buf, sizeof buf, ctx);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0)
            return (int)n;
        if (redisReaderFeed(rc->rd, buf, (size_t)n) != REDIS_OK)
            return -ENOMEM;
    }
}

int tern__redis_conn_roundtrip(tern__redis_conn *rc, const char *cmd, size_t len,
                               redisReply **out, tern_ctx *ctx)
{
    *out = NULL;
    ssize_t w = tern_conn_write(rc->c, cmd, len, ctx);
    if (w < 0)
        return (int)w;
    redisReply *r;
    int err = tern__redis_conn_read_reply(rc, &r, ctx);
    if (err)
        return err;
    *out = r;
    return r->type == REDIS_REPLY_ERROR ? -EREMOTEIO : 0;
}

/* Run one handshake command; an error reply fails the connection. */
static int handshake(tern__redis_conn *rc, int argc, const char **argv, tern_ctx *ctx)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0)
        return -ENOMEM;
    redisReply *r;
    int err = tern__redis_conn_roundtrip(rc, cmd, (size_t)len, &r, ctx);
    redisFreeCommand(cmd);
    freeReplyObject(r);
    return err;
}

int tern__redis_conn_open(const tern_redis_client_options *opts, tern__redis_conn **out,
                          tern_ctx *ctx)
{
    *out = NULL;
    tern__redis_conn *rc = calloc(1, sizeof *rc);
    if (!rc)
        return -ENOMEM;
    rc->rd = redisReaderCreate();
    if (!rc->rd) {
        free(rc);
        return -ENOMEM;
    }
    const char *addr = opts->addr;
    tern_net net = (addr[0] == '/' || addr[0] == '@') ? TERN_NET_UNIX : TERN_NET_TCP;
    int err = tern_conn_dial(net, addr, &rc->c, ctx);
    if (!err && opts->password) {
        const char *a3[] = {"AUTH", opts->username, opts->password};
        const char *a2[] = {"AUTH", opts->password};
        err = opts->username ? handshake(rc, 3, a3, ctx) : handshake(rc, 2, a2, ctx);
    }
    if (!err && opts->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", opts->db);
        const char *a[] = {"SELECT", db};
        err = handshake(rc, 2, a, ctx);
    }
    if (err) {
        tern__redis_conn_free(rc);
        return err;
    }
    *out = rc;
    return 0;
}

void tern__redis_conn_free(tern__redis_conn *rc)
{
    if (!rc)
        return;
    tern_conn_free(rc->c);
    redisReaderFree(rc->rd);
    free(rc);
}
