/*
 * pubsub.c - SUBSCRIBE on a connection of its own, messages to a channel.
 *
 * A subscribed connection accepts only (UN)SUBSCRIBE and PING, so it
 * cannot share the pipeline.  One coroutine reads it: each "message" push
 * becomes a tern_redis_msg sent to the subscription's channel, where the
 * send parks while the buffer is full (backpressure reaches the socket,
 * then the server, which cuts off a client that falls too far behind).
 * When the connection is lost the reader subscribes again on a new one,
 * backing off as the client's pipelines do; the channel closes only when
 * the subscription is freed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/check.h"
#include "data/redis/internal.h"

enum { CHANNELS_MAX = 256 };

struct tern_redis_sub {
    tern_redis_client *cl;
    tern_chan *ch;
    tern_ctx *life;             /* cancelled by tern_redis_sub_free */
    tern_waitgroup wg;          /* the reader */
    char *cmd;                  /* SUBSCRIBE ..., formatted once, sent on each connection */
    int len, n;
    tern_mutex mu;              /* guards rc against free's shutdown */
    tern__redis_conn *rc;
    _Atomic uint64_t resubscribed;
};

static bool is(const redisReply *r, const char *s)
{
    return r->type == REDIS_REPLY_STRING && strcmp(r->str, s) == 0;
}

static char *copy(const redisReply *r)
{
    char *s = malloc(r->len + 1);
    if (s) {
        memcpy(s, r->str, r->len);
        s[r->len] = '\0';
    }
    return s;
}

static tern_redis_msg *message(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || !is(r->element[0], "message") ||
        r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_STRING)
        return NULL;
    tern_redis_msg *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->channel = copy(r->element[1]);
    m->data = copy(r->element[2]);
    m->len = r->element[2]->len;
    if (!m->channel || !m->data) {
        tern_redis_msg_free(m);
        return NULL;
    }
    return m;
}

/* Dial and subscribe to every channel, waiting for each confirmation
 * (["subscribe", name, count], in order).  0 with *out the connection. */
static int connect_sub(tern_redis_sub *s, tern__redis_conn **out, tern_ctx *ctx)
{
    tern__redis_conn *rc;
    int err = tern__redis_dial(s->cl, &rc, ctx);
    if (err)
        return err;
    ssize_t w = tern_conn_write(rc->c, s->cmd, (size_t)s->len, ctx);
    err = w < 0 ? (int)w : 0;
    for (int i = 0; !err && i < s->n; i++) {
        redisReply *r = NULL;
        err = tern__redis_conn_read_reply(rc, &r, ctx);
        if (!err && r->type == REDIS_REPLY_ERROR)
            err = -EREMOTEIO;
        else if (!err && (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
                          !is(r->element[0], "subscribe")))
            err = -EPROTO;
        freeReplyObject(r);
    }
    if (err) {
        tern__redis_conn_free(rc);
        return err;
    }
    *out = rc;
    return 0;
}

/* Swap the connection under mu; false (and rc freed) once s is being
 * freed, which also shuts down the connection in place. */
static bool set_conn(tern_redis_sub *s, tern__redis_conn *rc)
{
    tern_mutex_lock(&s->mu);
    tern__redis_conn *old = s->rc;
    bool live = tern_ctx_err(s->life) == 0;
    s->rc = live ? rc : NULL;
    tern_mutex_unlock(&s->mu);
    tern__redis_conn_free(old);
    if (!live)
        tern__redis_conn_free(rc);
    return live;
}

/* Read messages until the connection fails; false when s is being freed. */
static bool deliver(tern_redis_sub *s)
{
    for (;;) {
        redisReply *r;
        if (tern__redis_conn_read_reply(s->rc, &r, NULL) != 0)
            return tern_ctx_err(s->life) == 0;
        tern_redis_msg *m = message(r);
        freeReplyObject(r);
        if (m && tern_chan_send(s->ch, &m, s->life) != 0) {
            tern_redis_msg_free(m);
            return false;
        }
    }
}

static int reader_main(void *arg)
{
    tern_redis_sub *s = arg;
    const tern_redis_client_options *o = tern__redis_opts(s->cl);
    while (deliver(s)) {
        /* Lost: subscribe again on a new connection, backing off while
         * that fails.  Messages published meanwhile are missed (pub/sub
         * delivers at most once; use a stream for more). */
        set_conn(s, NULL);
        int64_t backoff = o->backoff_min;
        tern__redis_conn *rc = NULL;
        while (tern_ctx_sleep(backoff, s->life) == 0 && connect_sub(s, &rc, s->life) != 0)
            backoff = backoff < o->backoff_max / 2 ? backoff * 2 : o->backoff_max;
        if (!rc || !set_conn(s, rc))
            break;
        atomic_fetch_add_explicit(&s->resubscribed, 1, memory_order_relaxed);
    }
    tern_chan_close(s->ch);
    tern_waitgroup_done(&s->wg);
    return 0;
}

static void sub_release(tern_redis_sub *s)
{
    tern_chan_free(s->ch);
    tern__redis_conn_free(s->rc);
    tern_ctx_free(s->life);
    redisFreeCommand(s->cmd);
    free(s);
}

int tern_redis_subscribe(tern_redis_client *cl, const char *const *channels, int n,
                         size_t buffer, tern_redis_sub **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(cl);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (n < 1 || n > CHANNELS_MAX)
        return -EINVAL;
    TERN_CHECK_ARG(channels);
    tern_redis_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->cl = cl;
    s->n = n;
    const char *argv[1 + CHANNELS_MAX] = {"SUBSCRIBE"};
    memcpy(argv + 1, channels, (size_t)n * sizeof *channels);
    s->len = redisFormatCommandArgv(&s->cmd, n + 1, argv, NULL);
    int err = s->len < 0 ? tern__redis_format_err(s->len) : 0;
    if (!err)
        err = tern_chan_new(sizeof(tern_redis_msg *), buffer, &s->ch);
    if (!err)
        err = tern_ctx_with_cancel(NULL, &s->life);
    if (!err)
        err = connect_sub(s, &s->rc, ctx);
    if (!err) {
        tern_waitgroup_add(&s->wg, 1);
        err = tern_go(reader_main, s);
        if (err)
            tern_waitgroup_done(&s->wg);
    }
    if (err) {
        sub_release(s);
        return err;
    }
    *out = s;
    return 0;
}

uint64_t tern_redis_sub_resubscribed(const tern_redis_sub *s)
{
    TERN_CHECK_ARG(s);
    return atomic_load_explicit(&s->resubscribed, memory_order_relaxed);
}

tern_chan *tern_redis_sub_chan(tern_redis_sub *s)
{
    TERN_CHECK_ARG(s);
    return s->ch;
}

void tern_redis_sub_free(tern_redis_sub *s)
{
    if (!s)
        return;
    tern_mutex_lock(&s->mu);
    tern_ctx_cancel(s->life);   /* a send parked on a full channel, a backoff */
    if (s->rc)                  /* a read parked on the socket */
        shutdown(tern_conn_fd(s->rc->c), SHUT_RDWR);
    tern_mutex_unlock(&s->mu);
    tern_waitgroup_wait(&s->wg, NULL);
    tern_redis_msg *m;
    bool ok;
    while (tern_chan_try_recv(s->ch, &m, &ok) == 0 && ok)
        tern_redis_msg_free(m);
    sub_release(s);
}

void tern_redis_msg_free(tern_redis_msg *m)
{
    if (!m)
        return;
    free(m->channel);
    free(m->data);
    free(m);
}

int tern_redis_publish(tern_redis_client *cl, const char *channel, const void *data,
                       size_t len, int64_t *receivers, tern_ctx *ctx)
{
    TERN_CHECK_ARG(channel);
    const char *argv[] = {"PUBLISH", channel, data};
    size_t lens[] = {7, strlen(channel), len};
    tern_redis_reply *r;
    int err = tern_redis_command(cl, 3, argv, lens, &r, ctx);
    if (receivers)
        *receivers = err ? 0 : tern_redis_reply_int(r);
    tern_redis_reply_free(r);
    return err;
}
