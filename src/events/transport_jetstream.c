/*
 * transport_jetstream.c - the events transport on NATS JetStream: one
 * stream (by default EVENTS, subjects "events.>") holds every topic, a
 * topic is a subject (prefix + topic), a group a durable pull consumer
 * filtered to that subject, whose AckWait is the subscription's ack
 * timeout.
 *
 * The event's id travels as Nats-Msg-Id ("topic:id": deduplication is per
 * stream, and the dead-letter copy of an event keeps its id), so the
 * stream drops a second publish of one event within its duplicate window (an outbox relay that
 * publishes a batch again after a crash stores each event once).  Its type
 * travels in the payload: the type's bytes, a NUL, then the data.  The
 * delivery count is JetStream's (num_delivered in the reply subject); a
 * nak is JetStream's nak (redelivered at once), a drop sends nothing (the
 * server redelivers after AckWait).  The bus does its own dead-lettering,
 * so consumers have no max_deliver.
 *
 * The stream is made on first use (publish or subscribe), under a mutex;
 * an existing stream of that name is used as it is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/internal.h"
#include "tern/nats.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define FETCH_WAIT (2 * TERN_SEC)
#define NAK_BOUND (5 * TERN_SEC)

typedef struct js_bus {
    tern_nats *nc;
    char *stream;
    char *prefix;               /* "events." */
    tern_mutex mu;
    bool ready;                 /* the stream exists */
} js_bus;

typedef struct js_sub {
    js_bus *bus;
    char durable[256];
} js_sub;

typedef struct js_tok {
    tern_nats_msg *m;
    char id[TERN_EVENTS_ID_MAX];
} js_tok;

/* A topic must be one or more subject tokens, without wildcards or spaces. */
static bool topic_ok(const char *t)
{
    if (!t || !*t || t[0] == '.' || t[strlen(t) - 1] == '.' || strstr(t, ".."))
        return false;
    for (const char *p = t; *p; p++)
        if (*p == '*' || *p == '>' || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            return false;
    return true;
}

/* Durable names allow letters, digits, '-' and '_' only. */
static void name_part(char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < size; s++)
        out[n++] = (char)((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                                  *s == '-'
                              ? *s
                              : '_');
    out[n] = 0;
}

static int ensure_stream(js_bus *b, tern_ctx *ctx)
{
    tern_mutex_lock(&b->mu);
    int rc = 0;
    if (!b->ready) {
        char subject[256];
        snprintf(subject, sizeof subject, "%s>", b->prefix);
        const char *subjects[] = {subject};
        tern_nats_stream_config cfg = {.name = b->stream, .subjects = subjects, .nsubjects = 1};
        rc = tern_nats_js_stream_create(b->nc, &cfg, ctx);
        if (rc == -EREMOTEIO) {         /* there already, perhaps configured otherwise: use it */
            tern_nats_stream_info info;
            rc = tern_nats_js_stream_info(b->nc, b->stream, &info, ctx);
        }
        b->ready = rc == 0;
    }
    tern_mutex_unlock(&b->mu);
    return rc;
}

static int js_publish(void *self, const tern_event *ev, tern_ctx *ctx)
{
    js_bus *b = self;
    if (!topic_ok(ev->topic))
        return -EINVAL;
    int rc = ensure_stream(b, ctx);
    if (rc < 0)
        return rc;
    size_t tlen = strlen(ev->type);
    char *payload = malloc(tlen + 1 + ev->len);
    char *subject = NULL;
    if (!payload || asprintf(&subject, "%s%s", b->prefix, ev->topic) < 0) {
        free(payload);
        return -ENOMEM;
    }
    memcpy(payload, ev->type, tlen + 1);
    if (ev->len)
        memcpy(payload + tlen + 1, ev->data, ev->len);
    /* deduplication is per stream, and one stream holds every topic: the
     * dead-letter copy of an event (same id, another topic) must not be
     * taken for a duplicate, so the topic is part of the message id */
    char *msg_id = NULL;
    if (asprintf(&msg_id, "%s:%s", ev->topic, ev->id) < 0) {
        free(subject);
        free(payload);
        return -ENOMEM;
    }
    rc = tern_nats_js_publish(b->nc, subject, payload, tlen + 1 + ev->len, msg_id, NULL, ctx);
    free(msg_id);
    free(subject);
    free(payload);
    return rc;
}

static int js_subscribe(void *self, const char *topic, const char *group, int64_t ack_timeout_ns, void **sub,
                        tern_ctx *ctx)
{
    js_bus *b = self;
    if (!topic_ok(topic))
        return -EINVAL;
    int rc = ensure_stream(b, ctx);
    if (rc < 0)
        return rc;
    js_sub *s = calloc(1, sizeof *s);
    char *filter = NULL;
    if (!s || asprintf(&filter, "%s%s", b->prefix, topic) < 0) {
        free(s);
        return -ENOMEM;
    }
    char g[120], t[120];
    name_part(g, sizeof g, group);
    name_part(t, sizeof t, topic);
    snprintf(s->durable, sizeof s->durable, "%s__%s", g, t);
    s->bus = b;
    tern_nats_consumer_config cc = {.durable = s->durable, .filter_subject = filter,
                                    .ack_wait = ack_timeout_ns};
    rc = tern_nats_js_consumer_create(b->nc, b->stream, &cc, ctx);
    free(filter);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *sub = s;
    return 0;
}

static int js_fetch(void *sub, tern_event *ev, int *deliveries, void **token, tern_ctx *ctx)
{
    js_sub *s = sub;
    for (;;) {
        tern_nats_msg *m = NULL;
        int n = 0;
        int rc = tern_nats_js_fetch(s->bus->nc, s->bus->stream, s->durable, 1, FETCH_WAIT, &m, &n, ctx);
        if (n == 0) {
            if (rc < 0)
                return rc;
            continue;               /* the pull expired empty: ask again */
        }
        js_tok *t = calloc(1, sizeof *t);
        tern_nats_js_meta meta;
        const char *nul = memchr(m->data, 0, m->len);
        size_t idlen = 0;
        const char *id = tern_nats_msg_header(m, "Nats-Msg-Id", &idlen);
        if (!t || !nul || tern_nats_js_metadata(m, &meta) < 0) {
            /* not one of ours (no type, not a JetStream delivery): end its
             * deliveries rather than see it forever */
            if (t)
                (void)tern_nats_js_term(s->bus->nc, m, ctx);
            tern_nats_msg_free(m);
            free(t);
            if (!t)
                return -ENOMEM;
            continue;
        }
        t->m = m;
        /* the message id is "topic:id" (js_publish) */
        const char *topic = m->subject + strlen(s->bus->prefix);
        size_t tl = strlen(topic);
        if (id && idlen > tl && !memcmp(id, topic, tl) && id[tl] == ':') {
            idlen -= tl + 1;
            id += tl + 1;
        }
        snprintf(t->id, sizeof t->id, "%.*s", id ? (int)idlen : 0, id ? id : "");
        *ev = (tern_event){
            .id = t->id,
            .topic = topic,
            .type = m->data,
            .data = nul + 1,
            .len = m->len - (size_t)(nul + 1 - (const char *)m->data),
        };
        *deliveries = meta.num_delivered > 0 ? (int)meta.num_delivered : 1;
        *token = t;
        return 0;
    }
}

static void tok_free(js_tok *t)
{
    tern_nats_msg_free(t->m);
    free(t);
}

static int js_ack(void *sub, void *token, tern_ctx *ctx)
{
    js_sub *s = sub;
    js_tok *t = token;
    int rc = tern_nats_js_ack(s->bus->nc, t->m, ctx);
    tok_free(t);
    return rc;
}

static void js_nak(void *sub, void *token)
{
    js_sub *s = sub;
    js_tok *t = token;
    tern_ctx *ctx;
    if (tern_ctx_with_timeout(NULL, NAK_BOUND, &ctx) == 0) {
        (void)tern_nats_js_nak(s->bus->nc, t->m, 0, ctx);   /* lost: redelivered after AckWait */
        tern_ctx_free(ctx);
    }
    tok_free(t);
}

static void js_drop(void *sub, void *token)
{
    (void)sub;
    tok_free(token);
}

static void js_unsubscribe(void *sub)
{
    free(sub);                  /* the durable consumer stays: the group resumes where it was */
}

static void js_free(void *self)
{
    js_bus *b = self;
    free(b->stream);
    free(b->prefix);
    free(b);
}

static const tern_events_transport_ops jetstream_ops = {
    .name = "jetstream",
    .publish = js_publish,
    .subscribe = js_subscribe,
    .fetch = js_fetch,
    .ack = js_ack,
    .nak = js_nak,
    .drop = js_drop,
    .unsubscribe = js_unsubscribe,
    .free = js_free,
};

int tern_events_jetstream_transport(tern_nats *nc, const tern_events_jetstream_options *o,
                                    tern_events_transport *out)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(out);
    const char *stream = o && o->stream ? o->stream : "EVENTS";
    const char *prefix = o && o->subject_prefix ? o->subject_prefix : "events";
    if (!*stream || strpbrk(stream, ".*> \t") || !topic_ok(prefix))
        return -EINVAL;
    js_bus *b = calloc(1, sizeof *b);
    if (!b || !(b->stream = strdup(stream)) || asprintf(&b->prefix, "%s.", prefix) < 0) {
        if (b)
            free(b->stream);
        free(b);
        return -ENOMEM;
    }
    b->nc = nc;
    out->ops = &jetstream_ops;
    out->self = b;
    return 0;
}
