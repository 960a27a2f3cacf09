/*
 * chan.c - channels and select.
 *
 * A channel is a ring buffer plus two queues of parked coroutines, sendq
 * and recvq, under one spinlock.  Invariants (as in Go's chan.c):
 *   - at least one of sendq and recvq is empty (a waiting sender and a
 *     waiting receiver would have met), except when one select waits to
 *     both send on and receive from the same unbuffered channel (Go has
 *     the same exception);
 *   - sendq is non-empty only if the buffer is full (or cap is 0);
 *   - recvq is non-empty only if the buffer is empty.
 * A sender that finds a waiting receiver copies its value straight into
 * the receiver's destination (no trip through the buffer), and vice versa
 * for an unbuffered channel.  A coroutine in TERN_STACK_SHARED mode may
 * have its stack copied out while it waits, so its waits point the waker
 * at a bounce buffer in its wait node instead of at its stack.
 *
 * Waiters are claimed and given their data under the lock but readied
 * only after it is released: a woken receiver may free the channel at
 * once (the usual end of a producer/consumer pair), and the waker must
 * not touch it after that.
 *
 * select locks every channel involved in address order (so two selects
 * cannot deadlock), looks for a ready case in random order, and else
 * queues one node per case, all with the same ticket: the first waker to
 * claim the ticket fires its case; the others find the claim taken and
 * drop their node.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tern_chan {
    tern__spin lock;
    bool closed;
    size_t elem_size, cap, len;
    size_t head, tail;          /* ring indexes: next to receive, next free */
    tern_waitq sendq, recvq;    /* their own locks are unused */
    tern__time *timer;          /* a timer's channel (timer.c), or NULL */
    _Alignas(16) char buf[];
};

static atomic_long live_chans;       /* for tern_csp_stats */

/* The ring (lock held): head and tail run free, len counts what lies
 * between them. */
#define CHAN_RING_OK(ch) ((ch)->len <= (ch)->cap && (ch)->tail - (ch)->head == (ch)->len)

int tern_chan_new(size_t elem_size, size_t cap, tern_chan **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (elem_size == 0 || elem_size > 65536 || cap > ((size_t)1 << 40) / elem_size)
        return -EINVAL;
    tern_chan *ch = calloc(1, sizeof *ch + elem_size * cap);
    if (!ch)
        return -ENOMEM;
    ch->elem_size = elem_size;
    ch->cap = cap;
    tern__csp_leak_watch();
    atomic_fetch_add_explicit(&live_chans, 1, memory_order_relaxed);
    *out = ch;
    return 0;
}

long tern__chan_live(void)
{
    return atomic_load_explicit(&live_chans, memory_order_relaxed);
}

void tern__chan_set_timer(tern_chan *ch, tern__time *tm)
{
    ch->timer = tm;
}

void tern__chan_destroy(tern_chan *ch)
{
    if (ch->sendq.head || ch->recvq.head)
        tern__fatal("tern_chan_free: coroutines are still blocked on channel %p", (void *)ch);
    atomic_fetch_sub_explicit(&live_chans, 1, memory_order_relaxed);
    free(ch);
}

void tern_chan_free(tern_chan *ch)
{
    if (!ch)
        return;
    if (ch->timer) {
        if (!tern__time_after(ch->timer))
            tern__fatal("tern_chan_free: channel %p belongs to a timer or ticker: free that "
                        "(tern_time_timer_free, tern_time_ticker_free) instead", (void *)ch);
        tern__time_free(ch->timer);     /* frees ch too, now or when it fires */
        return;
    }
    tern__chan_destroy(ch);
}

size_t tern_chan_len(tern_chan *ch)
{
    if (!ch)
        return 0;
    tern__spin_lock(&ch->lock);
    size_t n = ch->len;
    tern__spin_unlock(&ch->lock);
    return n;
}

size_t tern_chan_cap(tern_chan *ch)
{
    return ch ? ch->cap : 0;
}

static char *slot(tern_chan *ch, size_t i)
{
    return ch->buf + (i % ch->cap) * ch->elem_size;
}

static void copy_out(tern_chan *ch, void *dst, const void *src)
{
    if (dst)
        memcpy(dst, src, ch->elem_size);
}

/* Ready a waiter claimed under the lock, after the lock is released. */
static void wake(tern_waitq_node *w)
{
    if (w)
        tern__wake_finish(w->co, w->case_idx);
}

/* Complete a send now if possible (lock held): 1 done, 0 would block,
 * -EPIPE closed.  *woken: a waiter to wake() after unlocking.
 * Not inlined: once tern_chan_send grew a ctx branch, gcc inlined this
 * into it, and a buffered channel hammered from two Ps got 19% slower
 * (csp_bench buffered, 15 interleaved runs, medians 116 -> 138 ns/item;
 * out of line again: 108 vs 104), though it ran fewer instructions. */
__attribute__((noinline)) static int send_locked(tern_chan *ch, const void *elem,
                                                 tern_waitq_node **woken)
{
    TERN_ASSERT(CHAN_RING_OK(ch));
    if (ch->closed)
        return -EPIPE;
    tern_waitq_node *w = waitq_pop_claimed(&ch->recvq);
    if (w) {
        TERN_ASSERT(ch->len == 0);  /* receivers wait only on an empty buffer */
        copy_out(ch, w->elem, elem);
        w->ok = true;
        *woken = w;
        return 1;
    }
    if (ch->len < ch->cap) {
        memcpy(slot(ch, ch->tail++), elem, ch->elem_size);
        ch->len++;
        return 1;
    }
    TERN_ASSERT(!ch->recvq.head && ch->len == ch->cap);
    return 0;
}

/* Complete a receive now if possible (lock held): 1 done (*ok says if a
 * value came), 0 would block.  *woken as for send_locked. */
static int recv_locked(tern_chan *ch, void *elem, bool *ok, tern_waitq_node **woken)
{
    TERN_ASSERT(CHAN_RING_OK(ch));
    tern_waitq_node *w = waitq_pop_claimed(&ch->sendq);
    if (w) {
        /* senders wait only on a full buffer, and close wakes them all */
        TERN_ASSERT(ch->len == ch->cap && !ch->closed);
        if (ch->cap == 0) {
            copy_out(ch, elem, w->elem);
        } else {
            /* full buffer: take its head, the sender's value goes to the
             * tail, which is the same slot */
            copy_out(ch, elem, slot(ch, ch->head++));
            memcpy(slot(ch, ch->tail++), w->elem, ch->elem_size);
        }
        w->ok = true;
        *woken = w;
        *ok = true;
        return 1;
    }
    if (ch->len > 0) {
        copy_out(ch, elem, slot(ch, ch->head++));
        ch->len--;
        *ok = true;
        return 1;
    }
    if (ch->closed) {
        if (elem)
            memset(elem, 0, ch->elem_size);
        *ok = false;
        return 1;
    }
    TERN_ASSERT(!ch->sendq.head && ch->len == 0);
    return 0;
}

/* Point the waker at the caller's buffer, or at a bounce buffer for a
 * shared-stack coroutine.  -ENOMEM if a large bounce cannot be had. */
static int node_bind(tern_waitq_node *n, tern_co *self, void *elem, size_t size, bool sending)
{
    n->bounced = false;
    n->elem = elem;
    if (!elem || !tern__co_shared(self))
        return 0;
    void *buf = size <= sizeof n->bounce ? n->bounce : malloc(size);
    if (!buf)
        return -ENOMEM;
    if (sending)
        memcpy(buf, elem, size);
    n->elem = buf;
    n->bounced = true;
    return 0;
}

static void node_unbind(tern_waitq_node *n, void *elem, size_t size, bool received)
{
    if (!n->bounced)
        return;
    if (received && elem)
        memcpy(elem, n->elem, size);
    if (n->elem != n->bounce)
        free(n->elem);
    n->bounced = false;
}

static _Noreturn void block_forever(const char *why)
{
    tern_ticket t = tern_wait_prepare();
    tern_wait(t, why, TERN_FOREVER);
    tern__fatal("%s: a nil channel woke up", why);
}

static int select_impl(tern_chan_case *cases, int n, tern_ctx *ctx, bool block);

/* A send or receive bounded by a context is a one-case select (whose
 * wait also watches the context); the unbounded forms below keep their
 * own shorter path, the common case on hot channels. */
static int send_ctx(tern_chan *ch, const void *elem, tern_ctx *ctx)
{
    tern_chan_case c = {.ch = ch, .op = TERN_CHAN_SEND, .elem = (void *)elem};
    int r = select_impl(&c, 1, ctx, true);
    if (r < 0)
        return r;
    return c.ok ? 0 : -EPIPE;
}

static int recv_ctx(tern_chan *ch, void *elem, bool *ok, tern_ctx *ctx)
{
    tern_chan_case c = {.ch = ch, .op = TERN_CHAN_RECV, .elem = elem};
    int r = select_impl(&c, 1, ctx, true);
    if (r < 0)
        return r;
    if (ok)
        *ok = c.ok;
    return 0;
}

int tern_chan_send(tern_chan *ch, const void *elem, tern_ctx *ctx)
{
    TERN_CHECK_ARG(elem);
    if (ctx)
        return send_ctx(ch, elem, ctx);
    tern_co *self = tern__self_checked("tern_chan_send");
    if (!ch)
        block_forever("chan send (nil chan)");
    tern_waitq_node *woken = NULL;
    tern__spin_lock(&ch->lock);
    int r = send_locked(ch, elem, &woken);
    if (r) {
        tern__spin_unlock(&ch->lock);
        wake(woken);
        return r < 0 ? r : 0;
    }
    tern_waitq_node *n = waitq_self_node(self);
    if ((r = node_bind(n, self, (void *)elem, ch->elem_size, true)) < 0) {
        tern__spin_unlock(&ch->lock);
        tern_wait_cancel(n->ticket);
        return r;
    }
    n->case_idx = 0;
    n->ok = false;
    TERN_ASSERT(!ch->closed && !ch->recvq.head);
    waitq_push(&ch->sendq, n);
    tern__spin_unlock(&ch->lock);
    tern_wait(n->ticket, "chan send", TERN_FOREVER);
    node_unbind(n, NULL, 0, false);
    return n->ok ? 0 : -EPIPE;
}

int tern_chan_recv(tern_chan *ch, void *elem, bool *ok, tern_ctx *ctx)
{
    if (ctx)
        return recv_ctx(ch, elem, ok, ctx);
    tern_co *self = tern__self_checked("tern_chan_recv");
    if (!ch)
        block_forever("chan receive (nil chan)");
    bool got;
    tern_waitq_node *woken = NULL;
    tern__spin_lock(&ch->lock);
    if (recv_locked(ch, elem, &got, &woken)) {
        tern__spin_unlock(&ch->lock);
        wake(woken);
        if (ok)
            *ok = got;
        return 0;
    }
    tern_waitq_node *n = waitq_self_node(self);
    int r = node_bind(n, self, elem, ch->elem_size, false);
    if (r < 0) {
        tern__spin_unlock(&ch->lock);
        tern_wait_cancel(n->ticket);
        return r;
    }
    n->case_idx = 0;
    n->ok = false;
    TERN_ASSERT(!ch->closed && !ch->sendq.head);
    waitq_push(&ch->recvq, n);
    tern__spin_unlock(&ch->lock);
    tern_wait(n->ticket, "chan receive", TERN_FOREVER);
    node_unbind(n, elem, ch->elem_size, true);  /* a value, or zeroes from close */
    if (ok)
        *ok = n->ok;
    return 0;
}

int tern_chan_try_send(tern_chan *ch, const void *elem)
{
    TERN_CHECK_ARG(elem);
    if (!ch)
        return -EAGAIN;
    tern_waitq_node *woken = NULL;
    tern__spin_lock(&ch->lock);
    int r = send_locked(ch, elem, &woken);
    tern__spin_unlock(&ch->lock);
    wake(woken);
    return r < 0 ? r : r ? 0 : -EAGAIN;
}

int tern_chan_try_recv(tern_chan *ch, void *elem, bool *ok)
{
    if (!ch)
        return -EAGAIN;
    bool got;
    tern_waitq_node *woken = NULL;
    tern__spin_lock(&ch->lock);
    int r = recv_locked(ch, elem, &got, &woken);
    tern__spin_unlock(&ch->lock);
    wake(woken);
    if (!r)
        return -EAGAIN;
    if (ok)
        *ok = got;
    return 0;
}

int tern_chan_close(tern_chan *ch)
{
    TERN_CHECK_ARG(ch);
    tern__spin_lock(&ch->lock);
    if (ch->closed) {
        tern__spin_unlock(&ch->lock);
        return -EALREADY;
    }
    ch->closed = true;
    tern_waitq all = {0}, *qs[2] = {&ch->recvq, &ch->sendq};
    tern_waitq_node *w;
    for (int i = 0; i < 2; i++)
        while ((w = waitq_pop_claimed(qs[i]))) {
            if (i == 0 && w->elem)
                memset(w->elem, 0, ch->elem_size);
            w->ok = false;
            waitq_push(&all, w);
        }
    TERN_ASSERT(!ch->recvq.head && !ch->sendq.head);  /* none can queue once closed */
    tern__spin_unlock(&ch->lock);
    waitq_wake_list(all.head, true);
    return 0;
}

/* ---- select -------------------------------------------------------------- */

typedef struct sel_locks {
    tern_chan *ch[TERN_CHAN_SELECT_MAX];
    int n;
} sel_locks;

static void sel_lock(sel_locks *l, tern_chan_case *cases, int n)
{
    l->n = 0;
    for (int i = 0; i < n; i++)
        if (cases[i].ch)
            l->ch[l->n++] = cases[i].ch;
    /* insertion sort: selects have a handful of cases, and qsort's
     * indirect compares cost more than the whole sort */
    for (int i = 1; i < l->n; i++) {
        tern_chan *c = l->ch[i];
        int j = i;
        for (; j > 0 && (uintptr_t)l->ch[j - 1] > (uintptr_t)c; j--)
            l->ch[j] = l->ch[j - 1];
        l->ch[j] = c;
    }
    int u = 0;
    for (int i = 0; i < l->n; i++)
        if (u == 0 || l->ch[u - 1] != l->ch[i])
            l->ch[u++] = l->ch[i];
    l->n = u;
    for (int i = 0; i < l->n; i++) {
        /* strictly ascending: two selects cannot deadlock, none locks twice */
        TERN_ASSERT(i == 0 || (uintptr_t)l->ch[i - 1] < (uintptr_t)l->ch[i]);
        tern__spin_lock(&l->ch[i]->lock);
    }
}

static void sel_unlock(sel_locks *l)
{
    for (int i = l->n - 1; i >= 0; i--)
        tern__spin_unlock(&l->ch[i]->lock);
}

/* A ready case in random order: its index, or -1.  Locks held. */
static int sel_ready(tern_chan_case *cases, int n, tern_waitq_node **woken)
{
    uint16_t order[TERN_CHAN_SELECT_MAX];
    for (int i = 0; i < n; i++)
        order[i] = (uint16_t)i;
    uint32_t x = tern__rand() | 1;      /* one draw, then a local xorshift */
    for (int i = n - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int j = (int)(x % (uint32_t)(i + 1));
        uint16_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < n; k++) {
        tern_chan_case *c = &cases[order[k]];
        if (!c->ch)
            continue;
        if (c->op == TERN_CHAN_RECV) {
            if (recv_locked(c->ch, c->elem, &c->ok, woken))
                return order[k];
        } else {
            int r = send_locked(c->ch, c->elem, woken);
            if (r) {
                c->ok = r > 0;
                return order[k];
            }
        }
    }
    return -1;
}

static int select_impl(tern_chan_case *cases, int n, tern_ctx *ctx, bool block)
{
    if (n < 0 || n > TERN_CHAN_SELECT_MAX || (n > 0 && !cases))
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (cases[i].op != TERN_CHAN_RECV && cases[i].op != TERN_CHAN_SEND)
            return -EINVAL;
    sel_locks locks;
    sel_lock(&locks, cases, n);
    tern_waitq_node *woken = NULL;
    int fired = sel_ready(cases, n, &woken);
    if (fired >= 0 || !block) {
        sel_unlock(&locks);
        wake(woken);
        return fired >= 0 ? fired : -EAGAIN;
    }
    tern_co *self = tern__self_checked("tern_chan_select");
    int err = tern_ctx_err(ctx);
    if (err) {
        sel_unlock(&locks);
        return err;
    }
    tern_ticket t = tern_wait_prepare();
    tern_waitq_node *nodes[TERN_CHAN_SELECT_MAX];
    int r = 0;
    for (int i = 0; i < n; i++) {
        nodes[i] = NULL;
        tern_chan_case *c = &cases[i];
        if (!c->ch || r < 0)
            continue;
        tern_waitq_node *nd = tern__node_get();
        if (!nd || node_bind(nd, self, c->elem, c->ch->elem_size, c->op == TERN_CHAN_SEND) < 0) {
            if (nd)
                tern__node_put(nd);
            r = -ENOMEM;
            continue;
        }
        nd->co = self;
        nd->ticket = t;
        nd->case_idx = i;
        nd->ok = false;
        waitq_push(c->op == TERN_CHAN_SEND ? &c->ch->sendq : &c->ch->recvq, nd);
        nodes[i] = nd;
    }
    tern_waitq_node *cn = tern__co_ctx_node(self);
    bool watching = r == 0 && ctx;
    if (watching) {
        tern__ctx_ref(ctx);
        cn->co = self;
        cn->ticket = t;
        cn->case_idx = n;
        r = tern__ctx_watch(ctx, cn);
    }
    sel_unlock(&locks);
    if (r < 0 && !tern_wait_cancel(t))
        r = 0;          /* a case fired meanwhile: collect it */
    if (r == 0)
        fired = tern_wait(t, "select", TERN_FOREVER);
    sel_lock(&locks, cases, n);
    for (int i = 0; i < n; i++)
        if (nodes[i] && nodes[i]->queue)
            waitq_unlink(nodes[i]->queue, nodes[i]);
    sel_unlock(&locks);
    if (watching) {
        tern__ctx_unwatch(ctx, cn);
        if (r == 0 && fired == n)
            r = tern_ctx_err(ctx);
        tern__ctx_unref(ctx);
    }
    if (r == 0) {
        /* the context's wake (case n) always leaves its error in r */
        TERN_ASSERT(fired >= 0 && fired < n && nodes[fired]);
        cases[fired].ok = nodes[fired]->ok;
        r = fired;
    }
    for (int i = 0; i < n; i++) {
        if (!nodes[i])
            continue;
        node_unbind(nodes[i], cases[i].elem, cases[i].ch->elem_size,
                    r == i && cases[i].op == TERN_CHAN_RECV);
        tern__node_put(nodes[i]);
    }
    return r;
}

int tern_chan_select(tern_chan_case *cases, int n, tern_ctx *ctx)
{
    return select_impl(cases, n, ctx, true);
}

int tern_chan_try_select(tern_chan_case *cases, int n)
{
    return select_impl(cases, n, NULL, false);
}
