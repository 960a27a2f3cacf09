/*
 * transport_redis.c - the events transport on Redis Streams (built where
 * hiredis is): a topic is a stream (prefix + topic), a group a consumer
 * group, a subscription a consumer of its own random name.
 *
 * An entry holds three fields: id (the event's), type, data (bytes).
 * fetch first looks for entries of the group that have sat unacknowledged
 * longer than the ack timeout (XAUTOCLAIM, scanned at most every quarter
 * timeout, or at once after a nak), taking them over with their delivery
 * count from XPENDING; else it reads new entries (XREADGROUP >, BLOCK on
 * a dedicated connection).  Streams have no nak: the entry's idle time is
 * set past the timeout (XCLAIM ... IDLE ... JUSTID, which does not count a
 * delivery) so the next scan takes it.  Events published before a group
 * existed are delivered too: a group starts at the stream's beginning.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/internal.h"
#include "tern/runtime.h"

#define DEFAULT_BLOCK_NS TERN_SEC
#define NAK_BOUND_NS (5 * TERN_SEC)

typedef struct rs_bus {
    tern_redis_client *cl;
    char *prefix;
    int64_t block_ns;
    int64_t maxlen;
} rs_bus;

typedef struct rs_sub {
    rs_bus *bus;
    char *key, *group;
    char consumer[40];
    int64_t ack_timeout;
    int64_t next_scan;          /* monotonic ns of the next XAUTOCLAIM */
    char cursor[TERN_REDIS_ID_MAX];
} rs_sub;

typedef struct rs_tok {
    tern_redis_reply *reply;    /* the entry's strings live here */
    char id[TERN_REDIS_ID_MAX]; /* the stream entry's id */
} rs_tok;

static int rs_publish(void *self, const tern_event *ev, tern_ctx *ctx)
{
    rs_bus *b = self;
    char *key;
    if (asprintf(&key, "%s%s", b->prefix, ev->topic) < 0)
        return -ENOMEM;
    char maxlen[24];
    snprintf(maxlen, sizeof maxlen, "%lld", (long long)b->maxlen);
    const char *argv[12];
    size_t lens[12];
    int n = 0;
#define ARG(s, l) (argv[n] = (s), lens[n] = (l), n++)
    ARG("XADD", 4);
    ARG(key, strlen(key));
    if (b->maxlen > 0) {
        ARG("MAXLEN", 6);
        ARG("~", 1);
        ARG(maxlen, strlen(maxlen));
    }
    ARG("*", 1);
    ARG("id", 2);
    ARG(ev->id, strlen(ev->id));
    ARG("type", 4);
    ARG(ev->type, strlen(ev->type));
    ARG("data", 4);
    ARG(ev->len ? (const char *)ev->data : "", ev->len);
#undef ARG
    int rc = tern_redis_command(b->cl, n, argv, lens, NULL, ctx);
    free(key);
    return rc;
}

static int rs_subscribe(void *self, const char *topic, const char *group, int64_t ack_timeout_ns, void **sub,
                        tern_ctx *ctx)
{
    rs_bus *b = self;
    rs_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->bus = b;
    s->ack_timeout = ack_timeout_ns;
    snprintf(s->cursor, sizeof s->cursor, "0-0");
    char rnd[TERN_EVENTS_ID_MAX];
    tern__ev_make_id(rnd);
    snprintf(s->consumer, sizeof s->consumer, "c-%.24s", rnd);
    if (asprintf(&s->key, "%s%s", b->prefix, topic) < 0 || !(s->group = strdup(group))) {
        free(s->key);
        free(s);
        return -ENOMEM;
    }
    int rc = tern_redis_xgroup_create(b->cl, s->key, group, "0", ctx);
    if (rc < 0 && rc != -EEXIST) {
        free(s->key);
        free(s->group);
        free(s);
        return rc;
    }
    *sub = s;
    return 0;
}

/* Fill ev from an entry [id, [field, value, ...]] of reply. */
static int entry(const tern_redis_reply *e, tern_event *ev, rs_tok *t)
{
    if (tern_redis_reply_len(e) != 2)
        return -EPROTO;
    const char *sid = tern_redis_reply_str(tern_redis_reply_at(e, 0), NULL);
    const tern_redis_reply *kv = tern_redis_reply_at(e, 1);
    if (!sid || strlen(sid) >= sizeof t->id)
        return -EPROTO;
    snprintf(t->id, sizeof t->id, "%s", sid);
    *ev = (tern_event){.type = ""};
    for (size_t i = 0; i + 1 < tern_redis_reply_len(kv); i += 2) {
        const char *k = tern_redis_reply_str(tern_redis_reply_at(kv, i), NULL);
        size_t len = 0;
        const char *v = tern_redis_reply_str(tern_redis_reply_at(kv, i + 1), &len);
        if (!k || !v)
            continue;
        if (strcmp(k, "id") == 0)
            ev->id = v;
        else if (strcmp(k, "type") == 0)
            ev->type = v;
        else if (strcmp(k, "data") == 0) {
            ev->data = v;
            ev->len = len;
        }
    }
    /* deleted under us (XAUTOCLAIM gives a nil body), or not ours */
    return ev->id && ev->data ? 0 : -ENOENT;
}

/* How many times the group has delivered the entry (XPENDING). */
static int deliveries_of(rs_sub *s, const char *id, tern_ctx *ctx)
{
    const char *argv[] = {"XPENDING", s->key, s->group, id, id, "1"};
    tern_redis_reply *r = NULL;
    int n = 1;
    if (tern_redis_command(s->bus->cl, 6, argv, NULL, &r, ctx) == 0 && tern_redis_reply_len(r) == 1) {
        const tern_redis_reply *row = tern_redis_reply_at(r, 0);
        if (tern_redis_reply_len(row) == 4)
            n = (int)tern_redis_reply_int(tern_redis_reply_at(row, 3));
    }
    tern_redis_reply_free(r);
    return n > 0 ? n : 1;
}

/* One overdue entry taken over, or -ENOENT. */
static int claim(rs_sub *s, tern_event *ev, int *deliveries, rs_tok *t, tern_ctx *ctx)
{
    for (;;) {
        tern_redis_reply *r = NULL;
        int rc = tern_redis_xautoclaim(s->bus->cl, s->key, s->group, s->consumer, s->ack_timeout, s->cursor, 1, &r,
                                       ctx);
        if (rc < 0)
            return rc;
        const char *next = tern_redis_reply_str(tern_redis_reply_at(r, 0), NULL);
        snprintf(s->cursor, sizeof s->cursor, "%s", next ? next : "0-0");
        const tern_redis_reply *list = tern_redis_reply_at(r, 1);
        if (tern_redis_reply_len(list) > 0 && entry(tern_redis_reply_at(list, 0), ev, t) == 0) {
            t->reply = r;
            *deliveries = deliveries_of(s, t->id, ctx);
            return 0;
        }
        if (tern_redis_reply_len(list) > 0) {
            /* an entry trimmed away: nothing to deliver, stop it coming back */
            tern_redis_xack(s->bus->cl, s->key, s->group, t->id, ctx);
        }
        tern_redis_reply_free(r);
        if (strcmp(s->cursor, "0-0") == 0)
            return -ENOENT;
    }
}

static int rs_fetch(void *sub, tern_event *ev, int *deliveries, void **token, tern_ctx *ctx)
{
    rs_sub *s = sub;
    rs_tok *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    for (;;) {
        int rc = ctx ? tern_ctx_err(ctx) : 0;
        if (rc < 0)
            break;
        if (tern_now() >= s->next_scan) {
            rc = claim(s, ev, deliveries, t, ctx);
            if (rc == 0) {
                *token = t;
                return 0;
            }
            if (rc != -ENOENT)
                break;
            int64_t every = s->ack_timeout / 4;
            s->next_scan = tern_now() + (every < TERN_MS ? TERN_MS : every);
        }
        int64_t block = s->bus->block_ns;
        int64_t until_scan = s->next_scan - tern_now();
        if (until_scan < block)
            block = until_scan > TERN_MS ? until_scan : TERN_MS;
        tern_redis_reply *r = NULL;
        rc = tern_redis_xreadgroup(s->bus->cl, s->key, s->group, s->consumer, 1, block, &r, ctx);
        if (rc == -ENOENT)
            continue;
        if (rc < 0)
            break;
        /* [[stream, [[id, [field, value, ...]]]]] */
        const tern_redis_reply *list = tern_redis_reply_at(tern_redis_reply_at(r, 0), 1);
        if (tern_redis_reply_len(list) > 0 && entry(tern_redis_reply_at(list, 0), ev, t) == 0) {
            t->reply = r;
            *deliveries = 1;
            *token = t;
            return 0;
        }
        tern_redis_reply_free(r);
    }
    free(t);
    return ctx && tern_ctx_err(ctx) ? tern_ctx_err(ctx) : -EIO;
}

static void tok_free(rs_tok *t)
{
    tern_redis_reply_free(t->reply);
    free(t);
}

static int rs_ack(void *sub, void *token, tern_ctx *ctx)
{
    rs_sub *s = sub;
    rs_tok *t = token;
    int rc = tern_redis_xack(s->bus->cl, s->key, s->group, t->id, ctx);
    tok_free(t);
    return rc == -ENOENT ? 0 : rc;
}

static void rs_nak(void *sub, void *token)
{
    rs_sub *s = sub;
    rs_tok *t = token;
    char idle[24];
    snprintf(idle, sizeof idle, "%lld", (long long)(s->ack_timeout / TERN_MS + 1));
    const char *argv[] = {"XCLAIM", s->key, s->group, s->consumer, "0", t->id, "IDLE", idle, "JUSTID"};
    tern_ctx *ctx = NULL;
    if (tern_ctx_with_timeout(NULL, NAK_BOUND_NS, &ctx) == 0) {
        tern_redis_command(s->bus->cl, 9, argv, NULL, NULL, ctx);
        tern_ctx_free(ctx);
    }
    s->next_scan = 0;
    snprintf(s->cursor, sizeof s->cursor, "0-0");
    tok_free(t);
}

static void rs_drop(void *sub, void *token)
{
    (void)sub;
    tok_free(token);
}

static void rs_unsubscribe(void *sub)
{
    rs_sub *s = sub;
    free(s->key);
    free(s->group);
    free(s);
}

static void rs_free(void *self)
{
    rs_bus *b = self;
    free(b->prefix);
    free(b);
}

static const tern_events_transport_ops redis_ops = {
    .name = "redis",
    .publish = rs_publish,
    .subscribe = rs_subscribe,
    .fetch = rs_fetch,
    .ack = rs_ack,
    .nak = rs_nak,
    .drop = rs_drop,
    .unsubscribe = rs_unsubscribe,
    .free = rs_free,
};

int tern_events_redis_transport(tern_redis_client *cl, const tern_events_redis_options *o,
                                tern_events_transport *out)
{
    TERN_CHECK_ARG(cl);
    TERN_CHECK_ARG(out);
    rs_bus *b = calloc(1, sizeof *b);
    if (!b || !(b->prefix = strdup(o && o->prefix ? o->prefix : "events:"))) {
        free(b);
        return -ENOMEM;
    }
    b->cl = cl;
    b->block_ns = o && o->block_ns > 0 ? o->block_ns : DEFAULT_BLOCK_NS;
    b->maxlen = o ? o->maxlen : 0;
    out->ops = &redis_ops;
    out->self = b;
    return 0;
}
