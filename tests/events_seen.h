/*
 * events_seen.h - a bus handler that records what it saw on a channel, for
 * the event-transport tests (the same semantics checked on each transport):
 * it can fail an event's first deliveries or park like a consumer that dies.
 */
#ifndef TERN_TEST_EVENTS_SEEN_H
#define TERN_TEST_EVENTS_SEEN_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <tern/chan.h>
#include <tern/context.h>
#include <tern/events.h>

/* A handler that records what it saw on a channel. */
typedef struct seen {
    tern_chan *ch;              /* of seen_item */
    int fail_first;             /* fail this many deliveries of each event */
    bool block;                 /* park until the ctx ends (a consumer that dies) */
} seen;

typedef struct seen_item {
    char id[TERN_EVENTS_ID_MAX];
    char payload[32];
    char type[32];
    int attempt;
} seen_item;

static int record(const tern_event *ev, int attempt, tern_ctx *ctx, void *arg)
{
    seen *s = arg;
    seen_item it = {.attempt = attempt};
    snprintf(it.id, sizeof it.id, "%s", ev->id);
    snprintf(it.payload, sizeof it.payload, "%.*s", (int)ev->len, (const char *)ev->data);
    snprintf(it.type, sizeof it.type, "%s", ev->type);
    CHECK_EQ(tern_chan_send(s->ch, &it, NULL), 0);
    if (s->block) {
        tern_ctx_sleep(60 * TERN_SEC, ctx);
        return -ECANCELED;
    }
    return attempt <= s->fail_first ? -EIO : 0;
}

static seen_item next(seen *s, int64_t within)
{
    seen_item it;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, within, &ctx), 0);
    int rc = tern_chan_recv(s->ch, &it, NULL, ctx);
    tern_ctx_free(ctx);
    CHECK_EQ(rc, 0);
    return it;
}

static bool nothing_within(seen *s, int64_t ns)
{
    seen_item it;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, ns, &ctx), 0);
    int rc = tern_chan_recv(s->ch, &it, NULL, ctx);
    tern_ctx_free(ctx);
    return rc == -ETIMEDOUT;
}

static seen *seen_new(void)
{
    seen *s = calloc(1, sizeof *s);
    CHECK(s);
    CHECK_EQ(tern_chan_new(sizeof(seen_item), 1024, &s->ch), 0);
    return s;
}

static void seen_free(seen *s)
{
    tern_chan_free(s->ch);
    free(s);
}

#endif
