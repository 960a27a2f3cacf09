/*
 * inproc.c - the in-process transport: at-least-once delivery within one
 * process, with the semantics of the others (consumer groups, ack, prompt
 * redelivery on nak, redelivery after the ack timeout, delivery counts).
 *
 * Each (topic, group) has a queue of ready events and a list of events in
 * flight ordered by their ack deadline (the timeout is the group's, so
 * appending keeps the order).  A fetch takes the first overdue event in
 * flight, else the first ready one, else parks on the group's condition
 * until a publish, a nak, or the earliest deadline.  A group keeps its
 * events while no one is subscribed, as a Redis consumer group does;
 * events published to a topic before any group exists are dropped.
 *
 * Memory: an event copy is shared by its list and by every token handed
 * out for it (a redelivery while a slow consumer still holds it), counted
 * in refs under the transport's mutex.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events/internal.h"
#include "tern/runtime.h"
#include "tern/sync.h"

typedef struct ip_list {
    struct ip_msg *head, *tail;
} ip_list;

typedef struct ip_msg {
    struct ip_msg *next, *prev;
    ip_list *list;              /* ready or in flight; NULL once acknowledged */
    int refs;
    int deliveries;
    int64_t deadline;
    tern_event ev;
    char buf[];
} ip_msg;

typedef struct ip_group {
    struct ip_group *next;
    char *topic, *name;
    int64_t ack_timeout;
    ip_list ready, inflight;
    tern_cond cond;
} ip_group;

typedef struct ip_bus {
    tern_mutex mu;
    ip_group *groups;
} ip_bus;

typedef struct ip_sub {
    ip_bus *bus;
    ip_group *g;
} ip_sub;

static void l_unlink(ip_msg *m)
{
    ip_list *l = m->list;
    if (m->prev)
        m->prev->next = m->next;
    else
        l->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        l->tail = m->prev;
    m->next = m->prev = NULL;
    m->list = NULL;
}

static void l_append(ip_list *l, ip_msg *m)
{
    m->next = NULL;
    m->prev = l->tail;
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    m->list = l;
}

static void l_push_front(ip_list *l, ip_msg *m)
{
    m->prev = NULL;
    m->next = l->head;
    if (l->head)
        l->head->prev = m;
    else
        l->tail = m;
    l->head = m;
    m->list = l;
}

static void unref(ip_msg *m)
{
    TERN_ASSERT(m->refs > 0);
    if (--m->refs == 0)
        free(m);
}

static ip_msg *copy_event(const tern_event *ev)
{
    size_t id = strlen(ev->id) + 1, topic = strlen(ev->topic) + 1, type = strlen(ev->type) + 1;
    ip_msg *m = malloc(sizeof *m + id + topic + type + ev->len + 1);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    char *w = m->buf;
    m->ev.id = memcpy(w, ev->id, id);
    w += id;
    m->ev.topic = memcpy(w, ev->topic, topic);
    w += topic;
    m->ev.type = memcpy(w, ev->type, type);
    w += type;
    if (ev->len)
        memcpy(w, ev->data, ev->len);
    w[ev->len] = '\0';
    m->ev.data = w;
    m->ev.len = ev->len;
    m->refs = 1;
    return m;
}

static int ip_publish(void *self, const tern_event *ev, tern_ctx *ctx)
{
    ip_bus *b = self;
    int rc = ctx ? tern_ctx_err(ctx) : 0;
    if (rc < 0)
        return rc;
    tern_mutex_lock(&b->mu);
    for (ip_group *g = b->groups; g; g = g->next) {
        if (strcmp(g->topic, ev->topic) != 0)
            continue;
        ip_msg *m = copy_event(ev);
        if (!m) {
            rc = -ENOMEM;
            continue;
        }
        l_append(&g->ready, m);
        tern_cond_signal(&g->cond);
    }
    tern_mutex_unlock(&b->mu);
    return rc;
}

static int ip_subscribe(void *self, const char *topic, const char *group, int64_t ack_timeout_ns, void **sub,
                        tern_ctx *ctx)
{
    (void)ctx;
    ip_bus *b = self;
    ip_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->bus = b;
    tern_mutex_lock(&b->mu);
    ip_group *g = b->groups;
    while (g && (strcmp(g->topic, topic) != 0 || strcmp(g->name, group) != 0))
        g = g->next;
    if (!g && (g = calloc(1, sizeof *g))) {
        g->topic = strdup(topic);
        g->name = strdup(group);
        if (!g->topic || !g->name) {
            free(g->topic);
            free(g->name);
            free(g);
            g = NULL;
        } else {
            g->next = b->groups;
            b->groups = g;
        }
    }
    if (g)
        g->ack_timeout = ack_timeout_ns;
    tern_mutex_unlock(&b->mu);
    if (!g) {
        free(s);
        return -ENOMEM;
    }
    s->g = g;
    *sub = s;
    return 0;
}

static int ip_fetch(void *sub, tern_event *ev, int *deliveries, void **token, tern_ctx *ctx)
{
    ip_sub *s = sub;
    ip_group *g = s->g;
    tern_mutex_lock(&s->bus->mu);
    ip_msg *m;
    int64_t now;
    for (;;) {
        int rc = ctx ? tern_ctx_err(ctx) : 0;
        if (rc < 0) {
            tern_mutex_unlock(&s->bus->mu);
            return rc;
        }
        now = tern_now();
        m = g->inflight.head;
        if (m && m->deadline <= now)
            break;
        if ((m = g->ready.head))
            break;
        /* Park until a publish or nak signals, or the first deadline. */
        tern_ctx *until = NULL;
        if (g->inflight.head && tern_ctx_with_deadline(ctx, g->inflight.head->deadline, &until) < 0)
            until = NULL;
        tern_cond_wait(&g->cond, &s->bus->mu, until ? until : ctx);
        tern_ctx_free(until);
    }
    l_unlink(m);
    m->deliveries++;
    m->deadline = now + g->ack_timeout;
    l_append(&g->inflight, m);
    m->refs++;                  /* the token's */
    tern_mutex_unlock(&s->bus->mu);
    *ev = m->ev;
    *deliveries = m->deliveries;
    *token = m;
    return 0;
}

static int ip_ack(void *sub, void *token, tern_ctx *ctx)
{
    (void)ctx;
    ip_sub *s = sub;
    ip_msg *m = token;
    tern_mutex_lock(&s->bus->mu);
    /* done, wherever it waits now (a redelivery may be queued): the
     * list's reference goes with the token's */
    int refs = 1;
    if (m->list) {
        l_unlink(m);
        refs++;
    }
    TERN_ASSERT(m->refs >= refs);
    m->refs -= refs;
    if (m->refs == 0)
        free(m);
    tern_mutex_unlock(&s->bus->mu);
    return 0;
}

static void ip_nak(void *sub, void *token)
{
    ip_sub *s = sub;
    ip_msg *m = token;
    tern_mutex_lock(&s->bus->mu);
    if (m->list == &s->g->inflight) {
        l_unlink(m);
        l_push_front(&s->g->ready, m);
        tern_cond_signal(&s->g->cond);
    }
    unref(m);
    tern_mutex_unlock(&s->bus->mu);
}

static void ip_drop(void *sub, void *token)
{
    ip_sub *s = sub;
    tern_mutex_lock(&s->bus->mu);
    unref(token);
    tern_mutex_unlock(&s->bus->mu);
}

static void ip_unsubscribe(void *sub)
{
    free(sub);
}

static void free_list(ip_list *l)
{
    while (l->head) {
        ip_msg *m = l->head;
        l_unlink(m);
        unref(m);
    }
}

static void ip_free(void *self)
{
    ip_bus *b = self;
    while (b->groups) {
        ip_group *g = b->groups;
        b->groups = g->next;
        free_list(&g->ready);
        free_list(&g->inflight);
        free(g->topic);
        free(g->name);
        free(g);
    }
    free(b);
}

static const tern_events_transport_ops inproc_ops = {
    .name = "inproc",
    .publish = ip_publish,
    .subscribe = ip_subscribe,
    .fetch = ip_fetch,
    .ack = ip_ack,
    .nak = ip_nak,
    .drop = ip_drop,
    .unsubscribe = ip_unsubscribe,
    .free = ip_free,
};

int tern_events_inproc_transport(tern_events_transport *out)
{
    TERN_CHECK_ARG(out);
    ip_bus *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    out->ops = &inproc_ops;
    out->self = b;
    return 0;
}
