/*
 * client.c - the client: a pool of pipelined connections, the command
 * calls, and the idle dedicated connections of blocking commands.
 *
 * Calls are spread round-robin over the pipes that are up; a pipe that is
 * reconnecting is skipped while another is up, so one broken connection
 * does not fail calls that another could serve.  With none up, a call
 * waits on a pipe still making its connection (bounded by its ctx and the
 * attempt's connect_timeout), else fails at once with -ENOTCONN.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "data/redis/internal.h"

enum { POOL_MAX = 64, BLOCKING_MAX = 64 };

struct tern_redis_client {
    tern_redis_client_options opts;     /* strings below are copies */
    char *addr, *username, *password;
    tern_ctx *life;
    tern_waitgroup wg;
    tern__redis_counters cnt;
    _Atomic unsigned rr;
    int npipes;
    tern__redis_pipe *pipes[POOL_MAX];
    tern_mutex bmu;                     /* guards idle */
    int nidle;
    tern__redis_conn *idle[BLOCKING_MAX];
};

static char *dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d)
        *oom = true;
    else
        memcpy(d, s, n);
    return d;
}

int tern_redis_client_new(const tern_redis_client_options *opts, tern_redis_client **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_redis_client_options o = opts ? *opts : (tern_redis_client_options){0};
    if (o.pool_size < 0 || o.pool_size > POOL_MAX || o.blocking_pool < 0 ||
        o.blocking_pool > BLOCKING_MAX || o.connect_timeout < 0 || o.backoff_min < 0 ||
        o.backoff_max < 0 || o.db < 0)
        return -EINVAL;
    if (!o.addr)
        o.addr = "127.0.0.1:6379";
    if (!o.pool_size)
        o.pool_size = 2;
    if (!o.blocking_pool)
        o.blocking_pool = 2;
    if (!o.connect_timeout)
        o.connect_timeout = 5 * TERN_SEC;
    if (!o.backoff_min)
        o.backoff_min = 10 * TERN_MS;
    if (!o.backoff_max)
        o.backoff_max = TERN_SEC;
    if (!o.read_timeout)
        o.read_timeout = 5 * TERN_SEC;
    if (o.backoff_max < o.backoff_min)
        o.backoff_max = o.backoff_min;

    tern_redis_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    bool oom = false;
    cl->addr = dup_opt(o.addr, &oom);
    cl->username = dup_opt(o.username, &oom);
    cl->password = dup_opt(o.password, &oom);
    o.addr = cl->addr;
    o.username = cl->username;
    o.password = cl->password;
    cl->opts = o;
    int err = oom ? -ENOMEM : tern_ctx_with_cancel(NULL, &cl->life);
    for (int i = 0; !err && i < o.pool_size; i++) {
        err = tern__redis_pipe_new(&cl->opts, &cl->cnt, cl->life, &cl->wg, &cl->pipes[i]);
        if (!err)
            cl->npipes++;
    }
    if (err) {
        tern_redis_client_free(cl);
        return err;
    }
    *out = cl;
    return 0;
}

void tern_redis_client_free(tern_redis_client *cl)
{
    if (!cl)
        return;
    if (cl->life)
        tern_ctx_cancel(cl->life);
    for (int i = 0; i < cl->npipes; i++)
        tern__redis_pipe_stop(cl->pipes[i]);
    tern_waitgroup_wait(&cl->wg, NULL);
    for (int i = 0; i < cl->npipes; i++)
        tern__redis_pipe_free(cl->pipes[i]);
    for (int i = 0; i < cl->nidle; i++)
        tern__redis_conn_free(cl->idle[i]);
    tern_ctx_free(cl->life);
    free(cl->addr);
    free(cl->username);
    free(cl->password);
    free(cl);
}

int tern_redis_stats(const tern_redis_client *cl, struct tern_redis_stats *out)
{
    TERN_CHECK_ARG(cl);
    TERN_CHECK_ARG(out);
    const tern__redis_counters *c = &cl->cnt;
    *out = (struct tern_redis_stats){
        .commands = atomic_load(&c->commands),
        .errors = atomic_load(&c->errors),
        .error_replies = atomic_load(&c->error_replies),
        .batches = atomic_load(&c->batches),
        .batched = atomic_load(&c->batched),
        .dropped = atomic_load(&c->dropped),
        .reconnects = atomic_load(&c->reconnects),
    };
    for (int i = 0; i < cl->npipes; i++) {
        out->connected += tern__redis_pipe_status(cl->pipes[i]) == TERN__REDIS_PIPE_UP;
        out->inflight += tern__redis_pipe_inflight(cl->pipes[i]);
    }
    return 0;
}

/* The next pipe round-robin that is up; else one that is connecting (the
 * call waits for it); else any (it fails the call with -ENOTCONN). */
static tern__redis_pipe *pick(tern_redis_client *cl)
{
    unsigned start = atomic_fetch_add_explicit(&cl->rr, 1, memory_order_relaxed);
    tern__redis_pipe *best = cl->pipes[start % (unsigned)cl->npipes];
    int best_st = TERN__REDIS_PIPE_DOWN;
    for (int i = 0; i < cl->npipes; i++) {
        tern__redis_pipe *p = cl->pipes[(start + (unsigned)i) % (unsigned)cl->npipes];
        int st = tern__redis_pipe_status(p);
        if (st == TERN__REDIS_PIPE_UP)
            return p;
        if (st > best_st) {
            best = p;
            best_st = st;
        }
    }
    return best;
}

int tern__redis_format_err(int len)
{
    return len == -1 ? -EINVAL : -ENOMEM;
}

/* An error reply is a result, not a transport failure: -EREMOTEIO with the
 * reply kept for its message. */
static int reply_result(int err, redisReply *r, tern_redis_reply **out)
{
    if (!err && r && r->type == REDIS_REPLY_ERROR)
        err = -EREMOTEIO;
    if (out)
        *out = tern__redis_wrap(r);
    else
        freeReplyObject(r);
    return err;
}

int tern__redis_run(tern_redis_client *cl, char *cmd, int len, tern_redis_reply **out,
                    tern_ctx *ctx)
{
    if (out)
        *out = NULL;
    if (len < 0) {
        atomic_fetch_add_explicit(&cl->cnt.errors, 1, memory_order_relaxed);
        return tern__redis_format_err(len);
    }
    redisReply *r = NULL;
    int err = tern__redis_pipe_call(pick(cl), cmd, (size_t)len, &r, ctx);
    if (err)
        atomic_fetch_add_explicit(&cl->cnt.errors, 1, memory_order_relaxed);
    return reply_result(err, r, out);
}

int tern_redis_command(tern_redis_client *cl, int argc, const char *const *argv,
                       const size_t *argvlen, tern_redis_reply **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(cl);
    TERN_CHECK_ARG(argv);
    if (out)
        *out = NULL;
    if (argc < 1)
        return -EINVAL;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, argvlen);
    return tern__redis_run(cl, cmd, len, out, ctx);
}

int tern_redis_vcommandf(tern_redis_client *cl, tern_redis_reply **out, const char *fmt,
                         va_list ap, tern_ctx *ctx)
{
    TERN_CHECK_ARG(cl);
    TERN_CHECK_ARG(fmt);
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    return tern__redis_run(cl, cmd, len, out, ctx);
}

int tern_redis_commandf(tern_redis_client *cl, tern_redis_reply **out, tern_ctx *ctx,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int err = tern_redis_vcommandf(cl, out, fmt, ap, ctx);
    va_end(ap);
    return err;
}

/* ---- blocking commands on dedicated connections ---- */

const tern_redis_client_options *tern__redis_opts(const tern_redis_client *cl)
{
    return &cl->opts;
}

int tern__redis_dial(tern_redis_client *cl, tern__redis_conn **out, tern_ctx *ctx)
{
    *out = NULL;
    tern_ctx *cctx;
    int err = tern_ctx_with_timeout(ctx, cl->opts.connect_timeout, &cctx);
    if (err)
        return err;
    err = tern__redis_conn_open(&cl->opts, out, cctx);
    tern_ctx_free(cctx);
    return err;
}

static int take_conn(tern_redis_client *cl, tern__redis_conn **out, tern_ctx *ctx)
{
    tern_mutex_lock(&cl->bmu);
    *out = cl->nidle ? cl->idle[--cl->nidle] : NULL;
    tern_mutex_unlock(&cl->bmu);
    return *out ? 0 : tern__redis_dial(cl, out, ctx);
}

static void give_conn(tern_redis_client *cl, tern__redis_conn *rc)
{
    tern_mutex_lock(&cl->bmu);
    if (cl->nidle < cl->opts.blocking_pool) {
        cl->idle[cl->nidle++] = rc;
        rc = NULL;
    }
    tern_mutex_unlock(&cl->bmu);
    tern__redis_conn_free(rc);
}

int tern_redis_blocking_command(tern_redis_client *cl, int argc, const char *const *argv,
                                const size_t *argvlen, tern_redis_reply **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(cl);
    TERN_CHECK_ARG(argv);
    if (out)
        *out = NULL;
    if (argc < 1)
        return -EINVAL;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, (const char **)argv, argvlen);
    if (len < 0)
        return tern__redis_format_err(len);
    tern__redis_conn *rc;
    int err = take_conn(cl, &rc, ctx);
    redisReply *r = NULL;
    if (!err) {
        err = tern__redis_conn_roundtrip(rc, cmd, (size_t)len, &r, ctx);
        /* Only a connection that answered is known to be in step. */
        if (!err || err == -EREMOTEIO)
            give_conn(cl, rc);
        else
            tern__redis_conn_free(rc);
    }
    redisFreeCommand(cmd);
    atomic_fetch_add_explicit(&cl->cnt.commands, r != NULL, memory_order_relaxed);
    if (err && err != -EREMOTEIO)
        atomic_fetch_add_explicit(&cl->cnt.errors, 1, memory_order_relaxed);
    return reply_result(err, r, out);
}
