/*
 * bus.c - the bus: publishing through a transport, and the consumer
 * coroutines of a subscription (fetch, hand to the handler, acknowledge or
 * give back, dead-letter after max_deliveries).
 *
 * Redelivery is the transport's (an in-memory deadline, XAUTOCLAIM,
 * JetStream's AckWait); the bus only reads the delivery count it reports,
 * so a consumer that died mid-event (its coroutine's ctx cancelled, or its
 * process gone) counts as a failed delivery when the event comes back.
 * An event that has been delivered max_deliveries times without success is
 * published to the dead-letter topic and then acknowledged: published
 * first, so that a crash in between leaves it in both places, never in
 * neither.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rand.h"
#include "events/internal.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define DEFAULT_MAX_DELIVERIES 5
#define DEFAULT_ACK_TIMEOUT_NS (30 * TERN_SEC)
#define ACK_BOUND_NS (5 * TERN_SEC)
#define FETCH_ERROR_PAUSE_NS (100 * TERN_MS)

struct tern_events_bus {
    tern_events_transport t;
    char *name;
    tern_events_metrics *metrics;
    atomic_ullong published, delivered, redelivered, dead, acked, failed;
};

/* One consumer coroutine and its own transport subscription (a Redis
 * consumer name each: their cursors are not shared). */
typedef struct ev_consumer {
    struct tern_events_sub *s;
    void *tsub;
} ev_consumer;

struct tern_events_sub {
    tern_events_bus *bus;
    ev_consumer *cons;
    int n;
    char *topic, *dlq;
    tern_events_handler *fn;
    void *arg;
    int max_deliveries;
    tern_ctx *ctx;              /* cancelled by tern_events_sub_free */
    tern_waitgroup wg;
    ev_counters c;
};

void tern__ev_make_id(char out[TERN_EVENTS_ID_MAX])
{
    uint8_t b[16];
    tern__rand_fill(b, sizeof b);
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof b; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * sizeof b] = '\0';
}

int tern_events_bus_new(const tern_events_transport *t, const tern_events_bus_options *o,
                        tern_events_bus **out)
{
    TERN_CHECK_ARG(t);
    TERN_CHECK_ARG(t->ops);
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_events_bus *b = calloc(1, sizeof *b);
    const char *name = o && o->name ? o->name : t->ops->name ? t->ops->name : "bus";
    if (!b || !(b->name = strdup(name))) {
        free(b);
        if (t->ops->free)
            t->ops->free(t->self);
        return -ENOMEM;
    }
    b->t = *t;
    b->metrics = o ? o->metrics : NULL;
    *out = b;
    return 0;
}

void tern_events_bus_free(tern_events_bus *bus)
{
    if (!bus)
        return;
    if (bus->t.ops->free)
        bus->t.ops->free(bus->t.self);
    free(bus->name);
    free(bus);
}

static int publish(tern_events_bus *bus, const tern_event *ev, const ev_counters *c, tern_ctx *ctx)
{
    int rc = bus->t.ops->publish(bus->t.self, ev, ctx);
    if (rc == 0) {
        atomic_fetch_add(&bus->published, 1);
        if (c->published)
            tern_metrics_counter_inc(c->published);
    }
    return rc;
}

int tern_events_publish(tern_events_bus *bus, const tern_event *ev, tern_ctx *ctx)
{
    TERN_CHECK_ARG(bus);
    TERN_CHECK_ARG(ev);
    if (!ev->topic || !ev->topic[0] || (ev->len && !ev->data))
        return -EINVAL;
    tern_event e = *ev;
    char id[TERN_EVENTS_ID_MAX];
    if (!e.id) {
        tern__ev_make_id(id);
        e.id = id;
    }
    if (!e.type)
        e.type = "";
    ev_counters c;
    tern__ev_counters(bus->metrics, bus->name, e.topic, &c);
    return publish(bus, &e, &c, ctx);
}

/* Publish ev to the dead-letter topic, then acknowledge it. */
static void dead_letter(ev_consumer *k, const tern_event *ev, void *tok)
{
    tern_events_sub *s = k->s;
    const tern_events_transport_ops *ops = s->bus->t.ops;
    tern_event d = *ev;
    d.topic = s->dlq;
    ev_counters dc;
    tern__ev_counters(s->bus->metrics, s->bus->name, s->dlq, &dc);
    if (publish(s->bus, &d, &dc, s->ctx) < 0) {
        ops->nak(k->tsub, tok);
        return;
    }
    atomic_fetch_add(&s->bus->dead, 1);
    if (s->c.dead)
        tern_metrics_counter_inc(s->c.dead);
    tern_ctx *actx = NULL;
    if (tern_ctx_with_timeout(NULL, ACK_BOUND_NS, &actx) == 0) {
        ops->ack(k->tsub, tok, actx);
        tern_ctx_free(actx);
    } else {
        ops->nak(k->tsub, tok);
    }
}

static void ack(ev_consumer *k, void *tok)
{
    tern_events_sub *s = k->s;
    /* Not bounded by the subscription's ctx: the handler's effect is
     * done, and a stop right now should not make it happen twice. */
    tern_ctx *actx = NULL;
    if (tern_ctx_with_timeout(NULL, ACK_BOUND_NS, &actx) < 0) {
        s->bus->t.ops->drop(k->tsub, tok);
        return;
    }
    if (s->bus->t.ops->ack(k->tsub, tok, actx) == 0)
        atomic_fetch_add(&s->bus->acked, 1);
    tern_ctx_free(actx);
}

static int consumer(void *arg)
{
    ev_consumer *k = arg;
    tern_events_sub *s = k->s;
    const tern_events_transport_ops *ops = s->bus->t.ops;
    while (!tern_ctx_err(s->ctx)) {
        tern_event ev;
        int n = 0;
        void *tok = NULL;
        int rc = ops->fetch(k->tsub, &ev, &n, &tok, s->ctx);
        if (rc < 0) {
            if (!tern_ctx_err(s->ctx))
                tern_ctx_sleep(FETCH_ERROR_PAUSE_NS, s->ctx);
            continue;
        }
        atomic_fetch_add(&s->bus->delivered, 1);
        if (s->c.delivered)
            tern_metrics_counter_inc(s->c.delivered);
        if (n > 1) {
            atomic_fetch_add(&s->bus->redelivered, 1);
            if (s->c.redelivered)
                tern_metrics_counter_inc(s->c.redelivered);
        }
        if (n > s->max_deliveries) {
            dead_letter(k, &ev, tok);
            continue;
        }
        int h = s->fn(&ev, n, s->ctx, s->arg);
        if (tern_ctx_err(s->ctx) && h != 0) {
            ops->drop(k->tsub, tok);    /* stopped mid-event: redelivered later */
            break;
        }
        if (h == 0) {
            ack(k, tok);
        } else {
            atomic_fetch_add(&s->bus->failed, 1);
            if (n >= s->max_deliveries)
                dead_letter(k, &ev, tok);
            else
                ops->nak(k->tsub, tok);
        }
    }
    tern_waitgroup_done(&s->wg);
    return 0;
}

static void sub_destroy(tern_events_sub *s)
{
    for (int i = 0; s->cons && i < s->n; i++)
        if (s->cons[i].tsub)
            s->bus->t.ops->unsubscribe(s->cons[i].tsub);
    free(s->cons);
    tern_ctx_free(s->ctx);
    free(s->topic);
    free(s->dlq);
    free(s);
}

int tern_events_subscribe(tern_events_bus *bus, const char *topic, tern_events_handler *handler, void *arg,
                          const tern_events_sub_options *o, tern_events_sub **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(bus);
    TERN_CHECK_ARG(topic);
    TERN_CHECK_ARG(handler);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!topic[0])
        return -EINVAL;
    tern_events_sub_options so = o ? *o : (tern_events_sub_options){0};
    tern_events_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->bus = bus;
    s->fn = handler;
    s->arg = arg;
    s->max_deliveries = so.max_deliveries > 0 ? so.max_deliveries : DEFAULT_MAX_DELIVERIES;
    s->topic = strdup(topic);
    if (so.dead_letter_topic)
        s->dlq = strdup(so.dead_letter_topic);
    else if (asprintf(&s->dlq, "%s.dead", topic) < 0)
        s->dlq = NULL;
    int n = so.consumers > 0 ? so.consumers : 1;
    s->n = n;
    s->cons = calloc((size_t)n, sizeof *s->cons);
    int rc = s->topic && s->dlq && s->cons ? tern_ctx_with_cancel(NULL, &s->ctx) : -ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        s->cons[i].s = s;
        rc = bus->t.ops->subscribe(bus->t.self, topic, so.group ? so.group : "default",
                                   so.ack_timeout_ns > 0 ? so.ack_timeout_ns : DEFAULT_ACK_TIMEOUT_NS,
                                   &s->cons[i].tsub, ctx);
        if (rc < 0)
            s->cons[i].tsub = NULL;
    }
    if (rc < 0) {
        sub_destroy(s);
        return rc;
    }
    tern__ev_counters(bus->metrics, bus->name, topic, &s->c);
    tern_waitgroup_add(&s->wg, n);
    for (int i = 0; i < n; i++) {
        if (tern_go(consumer, &s->cons[i]) < 0) {
            tern_waitgroup_add(&s->wg, -(n - i));
            tern_ctx_cancel(s->ctx);
            tern_waitgroup_wait(&s->wg, NULL);
            sub_destroy(s);
            return -ENOMEM;
        }
    }
    *out = s;
    return 0;
}

void tern_events_sub_free(tern_events_sub *sub)
{
    if (!sub)
        return;
    tern_ctx_cancel(sub->ctx);
    tern_waitgroup_wait(&sub->wg, NULL);
    sub_destroy(sub);
}

int tern_events_bus_stats(const tern_events_bus *bus, struct tern_events_bus_stats *out)
{
    TERN_CHECK_ARG(bus);
    TERN_CHECK_ARG(out);
    tern_events_bus *b = (tern_events_bus *)bus;
    *out = (struct tern_events_bus_stats){
        .published = atomic_load(&b->published),
        .delivered = atomic_load(&b->delivered),
        .redelivered = atomic_load(&b->redelivered),
        .dead_lettered = atomic_load(&b->dead),
        .acked = atomic_load(&b->acked),
        .failed = atomic_load(&b->failed),
    };
    return 0;
}
