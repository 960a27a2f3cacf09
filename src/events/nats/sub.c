/*
 * sub.c - subscriptions.
 *
 * Each subscription has a queue of received messages, bounded by
 * pending_msgs and pending_bytes.  The reader appends to it (under nc->mu
 * and then sub->mu) and never waits: a message that does not fit is
 * dropped and counted, and the first drop of an episode is reported (a
 * slow consumer, as nats.go reports one); the episode ends when the queue
 * has room again.  Delivery takes from the queue: a coroutine of the
 * subscription's own sends each message to the user's channel or runs the
 * callback; without either, tern_nats_sub_next takes them.
 *
 * End of a subscription: tern_nats_sub_unsubscribe(0), its max reached,
 * a drain or the client closing take it out of nc->subs and close its
 * queue (qclosed): what is queued is still delivered, then the delivery
 * coroutine leaves and tern_nats_sub_next says -EPIPE.  tern_nats_sub_free
 * sets `stop` as well: queued messages are dropped.  The memory goes with
 * the last reference (the owner's, and one the reader takes while it
 * reports a slow consumer outside the locks).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "events/nats/internal.h"

enum { DEFAULT_PENDING_MSGS = 65536, DEFAULT_PENDING_BYTES = 64 << 20 };

static int out_sub(tern_nats *nc, tern_nats_sub *s)
{
    char line[600];
    int n = snprintf(line, sizeof line, "SUB %s%s%s %llu\r\n", s->subject, s->queue ? " " : "",
                     s->queue ? s->queue : "", (unsigned long long)s->sid);
    if (n < 0 || (size_t)n >= sizeof line) {
        char *big = malloc((size_t)n + 1);
        if (!big)
            return -ENOMEM;
        snprintf(big, (size_t)n + 1, "SUB %s%s%s %llu\r\n", s->subject, s->queue ? " " : "",
                 s->queue ? s->queue : "", (unsigned long long)s->sid);
        int err = tern__nats_out(nc, big, (size_t)n);
        free(big);
        return err;
    }
    int err = tern__nats_out(nc, line, (size_t)n);
    if (!err && s->max > s->received) {
        n = snprintf(line, sizeof line, "UNSUB %llu %llu\r\n", (unsigned long long)s->sid,
                     (unsigned long long)(s->max - s->received));
        err = tern__nats_out(nc, line, (size_t)n);
    }
    return err;
}

int tern__nats_resubscribe(tern_nats *nc)
{
    TERN__NATS_MAP_EACH(&nc->subs, i) {
        int err = out_sub(nc, nc->subs.vals[i]);
        if (err)
            return err;
    }
    return 0;
}

static void free_queue(tern_nats_sub *s)
{
    tern__nats_msg *m = s->qh;
    while (m) {
        tern__nats_msg *n = m->next;
        tern__nats_msg_release(m);
        m = n;
    }
    s->qh = s->qt = NULL;
    atomic_store_explicit(&s->qlen, 0, memory_order_relaxed);
    s->qbytes = 0;
}

void tern__nats_sub_unref(tern_nats_sub *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    free_queue(s);
    tern_ctx_free(s->ctx);
    free(s->subject);
    free(s->queue);
    free(s);
}

bool tern__nats_sub_deliver(tern_nats_sub *s, tern__nats_msg *m)
{
    tern_mutex_lock(&s->mu);
    int qlen = atomic_load_explicit(&s->qlen, memory_order_relaxed);
    if (s->qclosed || qlen >= s->max_pending || s->qbytes + m->size > s->max_bytes) {
        bool began = false;
        if (!s->qclosed) {
            atomic_fetch_add_explicit(&s->dropped, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&s->nc->st.slow, 1, memory_order_relaxed);
            began = !s->slow;
            s->slow = true;
        }
        tern_mutex_unlock(&s->mu);
        tern__nats_msg_release(m);
        return began;
    }
    m->next = NULL;
    if (s->qt)
        s->qt->next = m;
    else
        s->qh = m;
    s->qt = m;
    atomic_store_explicit(&s->qlen, qlen + 1, memory_order_relaxed);
    s->qbytes += m->size;
    if (!qlen)
        tern_cond_broadcast(&s->cond);
    tern_mutex_unlock(&s->mu);
    return false;
}

/* Take the queue's head (under s->mu). */
static tern__nats_msg *take(tern_nats_sub *s)
{
    tern__nats_msg *m = s->qh;
    if (!m)
        return NULL;
    s->qh = m->next;
    if (!s->qh)
        s->qt = NULL;
    atomic_fetch_sub_explicit(&s->qlen, 1, memory_order_relaxed);
    s->qbytes -= m->size;
    m->next = NULL;
    /* The episode ends once the queue has room again. */
    if (s->slow && atomic_load_explicit(&s->qlen, memory_order_relaxed) < s->max_pending / 2 + 1)
        s->slow = false;
    return m;
}

void tern__nats_sub_remove(tern_nats_sub *s)
{
    if (!s->active)
        return;
    s->active = false;
    tern__nats_map_del(&s->nc->subs, s->sid);
    tern_mutex_lock(&s->mu);
    s->qclosed = true;
    tern_cond_broadcast(&s->cond);
    tern_mutex_unlock(&s->mu);
}

/* The delivery coroutine takes the whole queue at once and delivers it
 * outside the lock; the messages taken still count as pending until
 * their batch is done, so the bounds hold for what is received and not
 * yet handled. */
static int deliver_main(void *arg)
{
    tern_nats_sub *s = arg;
    tern_mutex_lock(&s->mu);
    for (;;) {
        while (!s->qh && !s->qclosed && !s->stop)
            tern_cond_wait(&s->cond, &s->mu, NULL);
        if (s->stop || !s->qh)
            break;
        tern__nats_msg *batch = s->qh;
        s->qh = s->qt = NULL;
        s->busy = true;
        tern_mutex_unlock(&s->mu);
        int n = 0;
        size_t bytes = 0;
        while (batch) {
            tern__nats_msg *m = batch;
            batch = m->next;
            m->next = NULL;
            n++;
            bytes += m->size;
            if (atomic_load_explicit(&s->halt, memory_order_relaxed))
                tern__nats_msg_release(m);        /* tern_nats_sub_free: the rest is dropped */
            else if (s->cb) {
                s->cb(&m->pub, s->cb_arg);
                tern__nats_msg_release(m);
            } else {
                tern_nats_msg *p = &m->pub;
                if (tern_chan_send(s->chan, &p, s->ctx) != 0)
                    tern__nats_msg_release(m);    /* the channel closed, or the sub is being freed */
            }
        }
        tern_mutex_lock(&s->mu);
        atomic_fetch_sub_explicit(&s->qlen, n, memory_order_relaxed);
        s->qbytes -= bytes;
        if (s->slow && atomic_load_explicit(&s->qlen, memory_order_relaxed) < s->max_pending / 2 + 1)
            s->slow = false;
        s->busy = false;
        if (!s->qh)
            tern_cond_broadcast(&s->cond);  /* tern__nats_sub_wait_idle */
    }
    tern_mutex_unlock(&s->mu);
    tern_waitgroup_done(&s->wg);
    return 0;
}

static tern_nats_sub *sub_alloc(tern_nats *nc, const char *subject, const char *queue)
{
    tern_nats_sub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->nc = nc;
    s->subject = strdup(subject);
    s->queue = queue ? strdup(queue) : NULL;
    atomic_store_explicit(&s->refs, 1, memory_order_relaxed);
    s->max_pending = DEFAULT_PENDING_MSGS;
    s->max_bytes = DEFAULT_PENDING_BYTES;
    if (!s->subject || (queue && !s->queue)) {
        tern__nats_sub_unref(s);
        return NULL;
    }
    return s;
}

/* Register s (under nc->mu): a sid, the map, SUB when connected. */
static int sub_register(tern_nats *nc, tern_nats_sub *s)
{
    if (nc->state == NATS_CLOSED || nc->drained)
        return -ENOTCONN;
    s->sid = ++nc->next_sid;
    int err = tern__nats_map_put(&nc->subs, s->sid, s);
    if (err)
        return err;
    s->active = true;
    if (nc->state == NATS_CONNECTED)
        err = out_sub(nc, s);
    if (err) {
        tern__nats_map_del(&nc->subs, s->sid);
        s->active = false;
    }
    return err;
}

int tern__nats_sub_new_locked(tern_nats *nc, const char *subject, const char *queue,
                              tern_nats_sub **out)
{
    tern_nats_sub *s = sub_alloc(nc, subject, queue);
    if (!s)
        return -ENOMEM;
    int err = sub_register(nc, s);
    if (err) {
        tern__nats_sub_unref(s);
        return err;
    }
    *out = s;
    return 0;
}

int tern_nats_subscribe(tern_nats *nc, const char *subject, const tern_nats_sub_options *opts,
                        tern_nats_sub **out)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_nats_sub_options o = opts ? *opts : (tern_nats_sub_options){0};
    if (!tern__nats_valid_subject(subject) || (o.queue && !tern__nats_valid_subject(o.queue)) ||
        (o.chan && o.cb) || o.pending_msgs < 0)
        return -EINVAL;
    tern_nats_sub *s = sub_alloc(nc, subject, o.queue);
    if (!s)
        return -ENOMEM;
    s->chan = o.chan;
    s->cb = o.cb;
    s->cb_arg = o.cb_arg;
    if (o.pending_msgs)
        s->max_pending = o.pending_msgs;
    if (o.pending_bytes)
        s->max_bytes = o.pending_bytes;
    int err = 0;
    if (s->chan || s->cb) {
        err = tern_ctx_with_cancel(NULL, &s->ctx);
        if (!err) {
            tern_waitgroup_add(&s->wg, 1);
            err = tern_go(deliver_main, s);
            if (err)
                tern_waitgroup_done(&s->wg);
        }
    }
    if (!err) {
        tern_mutex_lock(&nc->mu);
        err = sub_register(nc, s);
        tern_mutex_unlock(&nc->mu);
    }
    if (err) {
        tern_mutex_lock(&s->mu);
        s->stop = true;
        tern_cond_broadcast(&s->cond);
        tern_mutex_unlock(&s->mu);
        tern_waitgroup_wait(&s->wg, NULL);
        tern__nats_sub_unref(s);
        return err;
    }
    *out = s;
    return 0;
}

int tern_nats_sub_unsubscribe(tern_nats_sub *s, int max)
{
    TERN_CHECK_ARG(s);
    if (max < 0)
        return -EINVAL;
    tern_nats *nc = s->nc;
    tern_mutex_lock(&nc->mu);
    int err = 0;
    if (nc->state == NATS_CLOSED)
        err = -ENOTCONN;
    else if (s->active) {
        if (max > 0 && s->received >= (uint64_t)max)
            max = 0;
        char line[64];
        int n = max ? snprintf(line, sizeof line, "UNSUB %llu %d\r\n",
                               (unsigned long long)s->sid, max)
                    : snprintf(line, sizeof line, "UNSUB %llu\r\n", (unsigned long long)s->sid);
        if (nc->state == NATS_CONNECTED)
            err = tern__nats_out(nc, line, (size_t)n);
        if (max)
            s->max = (uint64_t)max;
        else
            tern__nats_sub_remove(s);
    }
    tern_mutex_unlock(&nc->mu);
    return err;
}

int tern_nats_sub_next(tern_nats_sub *s, tern_nats_msg **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    *out = NULL;
    if (s->chan || s->cb)
        return -EINVAL;
    tern_mutex_lock(&s->mu);
    int err = 0;
    while (!s->qh && !s->qclosed && !err)
        err = tern_cond_wait(&s->cond, &s->mu, ctx);
    tern__nats_msg *m = err ? NULL : take(s);
    if (!err && !m)
        err = -EPIPE;
    tern_mutex_unlock(&s->mu);
    if (m)
        *out = &m->pub;
    return err;
}

int tern__nats_sub_wait_idle(tern_nats_sub *s, tern_ctx *ctx)
{
    tern_mutex_lock(&s->mu);
    int err = 0;
    /* A subscription without delivery is idle when its owner says so: its
     * queue waits for tern_nats_sub_next. */
    while (!err && (s->chan || s->cb) && (s->qh || s->busy) && !s->stop)
        err = tern_cond_wait(&s->cond, &s->mu, ctx);
    tern_mutex_unlock(&s->mu);
    return err;
}

uint64_t tern_nats_sub_dropped(const tern_nats_sub *s)
{
    TERN_CHECK_ARG(s);
    return atomic_load_explicit(&((tern_nats_sub *)s)->dropped, memory_order_relaxed);
}

int tern_nats_sub_pending(const tern_nats_sub *s)
{
    TERN_CHECK_ARG(s);
    return atomic_load_explicit(&((tern_nats_sub *)s)->qlen, memory_order_relaxed);
}

void tern_nats_sub_free(tern_nats_sub *s)
{
    if (!s)
        return;
    tern_nats *nc = s->nc;
    tern_mutex_lock(&nc->mu);
    if (s->active) {
        char line[48];
        int n = snprintf(line, sizeof line, "UNSUB %llu\r\n", (unsigned long long)s->sid);
        if (nc->state == NATS_CONNECTED)
            tern__nats_out(nc, line, (size_t)n);
        tern__nats_sub_remove(s);
    }
    tern_mutex_unlock(&nc->mu);
    atomic_store_explicit(&s->halt, true, memory_order_relaxed);
    tern_mutex_lock(&s->mu);
    s->stop = true;
    s->qclosed = true;
    tern_cond_broadcast(&s->cond);
    tern_mutex_unlock(&s->mu);
    if (s->ctx)
        tern_ctx_cancel(s->ctx);
    tern_waitgroup_wait(&s->wg, NULL);
    tern_mutex_lock(&s->mu);
    free_queue(s);
    tern_mutex_unlock(&s->mu);
    tern__nats_sub_unref(s);
}
