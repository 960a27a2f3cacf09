/*
 * chan.c - channels and select.
 *
 * An unbuffered channel is two queues of parked coroutines, sendq and
 * recvq, under one spinlock, with Go's invariants: at least one of them is
 * empty (a waiting sender and a waiting receiver would have met), except
 * when one select waits to both send on and receive from the same
 * channel (Go has the same exception).  A sender that finds a waiting
 * receiver copies its value straight into the receiver's destination,
 * and vice versa.  A coroutine in TERN_STACK_SHARED mode may have its
 * stack copied out while it waits, so its waits point the waker at a
 * bounce buffer in its wait node instead of at its stack.
 *
 * A buffered channel is a bounded multi-producer multi-consumer ring
 * (Vyukov's, as crossbeam's array channel lays it out): each slot has a
 * stamp saying whose turn it is, and a sender or receiver claims a
 * position by one compare-and-swap on `tail` or `head`, each on its own
 * cache line, then copies and publishes the slot with a release store of
 * its stamp.  No lock is taken while nobody waits.  A coroutine that finds
 * the ring full (empty) parks on sendq (recvq) under the lock, counted in
 * nsendw (nrecvw); a waker only readies it, and it retries its operation
 * (so blocked senders are not served in arrival order; values stay FIFO).
 * The lost-wake-up race is Dekker's: the parker increments its counter
 * and then reads head and tail, the other side moves head or tail and
 * then reads the counter, all four seq_cst, so at least one of them sees
 * the other (the parker does not park, or the mover wakes it).
 *
 * Wakers must not touch a channel once the other side may free it: a
 * receiver that got the last value may free the channel at once (the
 * usual end of a producer/consumer pair).  So the ring's publication (the
 * stamp store) is the last access an operation makes: a waiter to wake is
 * taken from its queue before it, and readied after it, from the node
 * alone.  Close sets the closed mark in `tail` under the lock; whoever
 * then sees the mark without the lock takes the lock once before
 * reporting it, so close() has let go of the channel by then.
 *
 * select over buffered channels only first tries each case's ring
 * operation lock-free, in random order.  Otherwise, or when none was
 * ready, it locks every channel involved in address order (so two selects
 * cannot deadlock), looks for a ready case in random order, and else
 * queues one node per case, all with the same ticket: the first waker to
 * claim the ticket fires its case; the others find the claim taken and
 * drop their node.  A buffered case's wake means "retry": the select runs
 * again, and if it then fires another case it passes the wake on to the
 * next waiter of the channel that woke it.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tern_chan {
    tern__spin lock;
    bool closed;                /* under lock */
    size_t elem_size, cap;
    size_t stride;              /* buffered: bytes per slot (stamp, value) */
    uint64_t mark_bit, one_lap; /* buffered: position layout (see ring_push) */
    tern_waitq sendq, recvq;    /* their own locks are unused */
    _Atomic long nsendw, nrecvw; /* buffered: nodes in sendq / recvq */
    tern__time *timer;          /* a timer's channel (timer.c), or NULL */
    /* buffered: positions, lap | index (| the closed mark in tail), each
     * on its own line: a producer and a consumer do not share one */
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) char buf[];
};

#define SLOT_HDR 8              /* the stamp before each value */

static atomic_long live_chans;       /* for tern_csp_stats */

static inline char *slot_at(tern_chan *ch, uint64_t index)
{
    return ch->buf + index * ch->stride;
}

static inline _Atomic uint64_t *stamp_of(char *slot)
{
    return (_Atomic uint64_t *)(void *)slot;
}

int tern_chan_new(size_t elem_size, size_t cap, tern_chan **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (elem_size == 0 || elem_size > 65536 || cap > ((size_t)1 << 40) / elem_size)
        return -EINVAL;
    size_t stride = cap ? (SLOT_HDR + elem_size + 7) & ~(size_t)7 : 0;
    size_t size = (sizeof(tern_chan) + stride * cap + 63) & ~(size_t)63;
    tern_chan *ch = aligned_alloc(64, size);
    if (!ch)
        return -ENOMEM;
    memset(ch, 0, size);
    ch->elem_size = elem_size;
    ch->cap = cap;
    if (cap) {
        ch->stride = stride;
        uint64_t m = 1;
        while (m < (uint64_t)cap + 1)
            m <<= 1;
        ch->mark_bit = m;       /* above every index */
        ch->one_lap = m << 1;   /* above the mark: laps count from here */
        for (size_t i = 0; i < cap; i++)
            atomic_init(stamp_of(slot_at(ch, i)), (uint64_t)i);    /* lap 0: free */
    }
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
    if (!ch || !ch->cap)
        return 0;
    for (;;) {
        uint64_t tail = atomic_load(&ch->tail), head = atomic_load(&ch->head);
        if (atomic_load(&ch->tail) != tail)
            continue;           /* a consistent pair */
        uint64_t hix = head & (ch->mark_bit - 1), tix = tail & (ch->mark_bit - 1);
        if (hix < tix)
            return (size_t)(tix - hix);
        if (hix > tix)
            return (size_t)(ch->cap - hix + tix);
        return (tail & ~ch->mark_bit) == head ? 0 : ch->cap;
    }
}

size_t tern_chan_cap(tern_chan *ch)
{
    return ch ? ch->cap : 0;
}

/* An element's copy: the common sizes (a pointer or a long, an int, two
 * words) as plain moves, since memcpy with a size known only at run time
 * is a call through the PLT (12 of the ~510 instructions a 1-P ping-pong
 * message costs, plus the call) */
static inline void elem_copy(void *dst, const void *src, size_t size)
{
    /* dst opaque to gcc's object-size tracking: inlined into a caller
     * whose destination is a long, the 16-byte case (never taken there,
     * size being the channel's) read as an overflow warning */
    __asm__("" : "+r"(dst));
    switch (size) {
    case 8: memcpy(dst, src, 8); break;
    case 4: memcpy(dst, src, 4); break;
    case 16: memcpy(dst, src, 16); break;
    default: memcpy(dst, src, size); break;
    }
}

static void copy_out(tern_chan *ch, void *dst, const void *src)
{
    if (dst)
        elem_copy(dst, src, ch->elem_size);
}

/* Ready a waiter claimed under the lock, after the lock is released. */
static void wake(tern_waitq_node *w)
{
    if (w)
        tern__wake_finish(w->co, w->case_idx);
}

/* ---- the buffered ring ---------------------------------------------------- */


/* A buffered channel's waiters (lock held).  The counts are seq_cst RMWs:
 * they are one side of the Dekker pair described at the top. */
static void bq_push(tern_waitq *q, _Atomic long *cnt, tern_waitq_node *n)
{
    waitq_push(q, n);
    atomic_fetch_add(cnt, 1);
}

static void bq_unlink(tern_waitq *q, _Atomic long *cnt, tern_waitq_node *n)
{
    waitq_unlink(q, n);
    atomic_fetch_sub(cnt, 1);
}

static tern_waitq_node *bq_pop_claimed(tern_waitq *q, _Atomic long *cnt)
{
    tern_waitq_node *n;
    while ((n = waitq_pop(q))) {
        atomic_fetch_sub(cnt, 1);
        if (waitq_claim(n))
            return n;
    }
    return NULL;
}

/* Called after moving head or tail (a seq_cst CAS), before publishing the
 * slot: take one waiter of q to ready once the slot is published.
 * `locked`: the caller holds ch->lock (select). */
static tern_waitq_node *take_waiter(tern_chan *ch, tern_waitq *q, _Atomic long *cnt, bool locked)
{
    if (atomic_load(cnt) == 0)
        return NULL;
    if (!locked)
        tern__spin_lock(&ch->lock);
    tern_waitq_node *w = bq_pop_claimed(q, cnt);
    if (!locked)
        tern__spin_unlock(&ch->lock);
    return w;
}

/* Positions are lap | index: index < cap in the bits below mark_bit, the
 * lap counted in units of one_lap above it.  A slot's stamp is the
 * position that may use it next: the sender's position while free, that
 * position + 1 once it holds a value, which is the receiver's position +
 * 1; a receiver frees it for the next lap with position + one_lap.
 * Returns 1 (sent; *woken a receiver to wake()), 0 (full) or -EPIPE
 * (closed); with `locked`, -EAGAIN where it would wait for a receiver
 * between claiming the slot and freeing it: that receiver may be waiting
 * for our lock (take_waiter), so select drops its locks and tries again. */
static int ring_push(tern_chan *ch, const void *elem, bool locked, tern_waitq_node **woken)
{
    unsigned n = 0;
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    for (;;) {
        if (tail & ch->mark_bit)
            return -EPIPE;
        uint64_t index = tail & (ch->mark_bit - 1), lap = tail & ~(ch->one_lap - 1);
        char *s = slot_at(ch, index);
        /* acquire: pairs with the receiver's release of this slot, so its
         * copy out of the old value is done before ours goes in */
        uint64_t stamp = atomic_load_explicit(stamp_of(s), memory_order_acquire);
        if (stamp == tail) {
            uint64_t next = index + 1 < ch->cap ? tail + 1 : lap + ch->one_lap;
            /* seq_cst: the mover's half of the Dekker pair (then nrecvw) */
            if (atomic_compare_exchange_weak_explicit(&ch->tail, &tail, next, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                *woken = take_waiter(ch, &ch->recvq, &ch->nrecvw, locked);
                elem_copy(s + SLOT_HDR, elem, ch->elem_size);
                /* release: the value before the stamp that shows it; the
                 * last access to ch (see the top) */
                atomic_store_explicit(stamp_of(s), tail + 1, memory_order_release);
                return 1;
            }
        } else if (stamp + ch->one_lap == tail + 1) {
            /* the slot holds last lap's value: full, unless a receiver
             * has claimed it and not yet freed it */
            atomic_thread_fence(memory_order_seq_cst);
            uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
            if (head + ch->one_lap == tail)
                return 0;
            if (locked)
                return -EAGAIN;
            tern__spin_pause(&n);   /* a peer between claim and publish */
            tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
        } else {
            /* another sender moved tail past us (reload), or the slot
             * waits for a receiver of the last lap to free it */
            uint64_t t2 = atomic_load_explicit(&ch->tail, memory_order_relaxed);
            if (locked && t2 == tail)
                return -EAGAIN;
            if (t2 == tail)
                tern__spin_pause(&n);   /* a peer between claim and publish */
            tail = t2;
        }
    }
}

/* 1 (a value in *elem, which may be NULL; *woken a sender to wake()),
 * 0 (empty) or -EPIPE (closed and drained); -EAGAIN as for ring_push. */
static int ring_pop(tern_chan *ch, void *elem, bool locked, tern_waitq_node **woken)
{
    unsigned n = 0;
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    for (;;) {
        uint64_t index = head & (ch->mark_bit - 1), lap = head & ~(ch->one_lap - 1);
        char *s = slot_at(ch, index);
        /* acquire: pairs with the sender's release, so its value is here */
        uint64_t stamp = atomic_load_explicit(stamp_of(s), memory_order_acquire);
        if (stamp == head + 1) {
            uint64_t next = index + 1 < ch->cap ? head + 1 : lap + ch->one_lap;
            if (atomic_compare_exchange_weak_explicit(&ch->head, &head, next, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                *woken = take_waiter(ch, &ch->sendq, &ch->nsendw, locked);
                if (elem)
                    elem_copy(elem, s + SLOT_HDR, ch->elem_size);
                /* release: our copy is done before a sender reuses it */
                atomic_store_explicit(stamp_of(s), head + ch->one_lap, memory_order_release);
                return 1;
            }
        } else if (stamp == head) {
            /* free slot: empty, unless a sender has claimed it and not
             * yet published */
            atomic_thread_fence(memory_order_seq_cst);
            uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
            if ((tail & ~ch->mark_bit) == head)
                return tail & ch->mark_bit ? -EPIPE : 0;
            if (locked)
                return -EAGAIN;
            tern__spin_pause(&n);   /* a peer between claim and publish */
            head = atomic_load_explicit(&ch->head, memory_order_relaxed);
        } else {
            /* another receiver moved head past us (reload), or the slot
             * waits for a receiver of the last lap to free it */
            uint64_t h2 = atomic_load_explicit(&ch->head, memory_order_relaxed);
            if (locked && h2 == head)
                return -EAGAIN;
            if (h2 == head)
                tern__spin_pause(&n);   /* a peer between claim and publish */
            head = h2;
        }
    }
}

/* Readiness without acting, for a parker that has just counted itself in:
 * the reader's half of the Dekker pair (seq_cst loads after the seq_cst
 * increment). */
static bool ring_can_push(tern_chan *ch)
{
    uint64_t tail = atomic_load(&ch->tail), head = atomic_load(&ch->head);
    return (tail & ch->mark_bit) || head + ch->one_lap != tail;
}

static bool ring_can_pop(tern_chan *ch)
{
    uint64_t head = atomic_load(&ch->head), tail = atomic_load(&ch->tail);
    return (tail & ch->mark_bit) || tail != head;
}

/* A closed mark seen without the lock: let close() finish with ch. */
static void closed_seen(tern_chan *ch)
{
    tern__spin_lock(&ch->lock);
    tern__spin_unlock(&ch->lock);
}

/* Park on q until a waker readies us or the ring is ready after all.
 * The caller retries its operation either way. */
static void bq_park(tern_chan *ch, tern_co *self, bool sending)
{
    tern_waitq *q = sending ? &ch->sendq : &ch->recvq;
    _Atomic long *cnt = sending ? &ch->nsendw : &ch->nrecvw;
    tern_waitq_node *n = waitq_self_node(self);
    n->elem = NULL;
    n->sole = true;             /* no deadline, no context: see waitq_claim */
    tern__spin_lock(&ch->lock);
    bq_push(q, cnt, n);
    bool ready = sending ? ring_can_push(ch) : ring_can_pop(ch);
    if (ready)
        bq_unlink(q, cnt, n);
    tern__spin_unlock(&ch->lock);
    /* unlinked under the lock before any waker could pop it: unclaimed */
    if (!ready || !tern_wait_cancel(n->ticket))
        tern__wait_r(n->ticket, sending ? "chan send" : "chan receive", TERN_FOREVER);
}

static int bsend(tern_chan *ch, const void *elem, tern_co *self)
{
    for (;;) {
        tern_waitq_node *woken = NULL;
        int r = ring_push(ch, elem, false, &woken);
        if (r > 0) {
            wake(woken);
            return 0;
        }
        if (r < 0) {
            closed_seen(ch);
            return -EPIPE;
        }
        bq_park(ch, self, true);
    }
}

static void brecv(tern_chan *ch, void *elem, bool *ok, tern_co *self)
{
    for (;;) {
        tern_waitq_node *woken = NULL;
        int r = ring_pop(ch, elem, false, &woken);
        if (r > 0) {
            wake(woken);
            *ok = true;
            return;
        }
        if (r < 0) {
            closed_seen(ch);
            if (elem)
                memset(elem, 0, ch->elem_size);
            *ok = false;
            return;
        }
        bq_park(ch, self, false);
    }
}

/* ---- unbuffered ------------------------------------------------------------- */

/* Complete a send now if possible (lock held): 1 done, 0 would block,
 * -EPIPE closed.  *woken: a waiter to wake() after unlocking.  A buffered
 * channel's goes through the ring. */
__attribute__((noinline)) static int send_locked(tern_chan *ch, const void *elem,
                                                 tern_waitq_node **woken)
{
    if (ch->cap) {
        int r = ring_push(ch, elem, true, woken);
        return r == -EAGAIN ? 0 : r;    /* busy: the recheck will retry */
    }
    if (ch->closed)
        return -EPIPE;
    tern_waitq_node *w = waitq_pop_claimed(&ch->recvq);
    if (w) {
        copy_out(ch, w->elem, elem);
        w->ok = true;
        *woken = w;
        return 1;
    }
    return 0;
}

/* Complete a receive now if possible (lock held): 1 done (*ok says if a
 * value came), 0 would block.  *woken as for send_locked. */
static int recv_locked(tern_chan *ch, void *elem, bool *ok, tern_waitq_node **woken)
{
    if (ch->cap) {
        int r = ring_pop(ch, elem, true, woken);
        if (r == 0 || r == -EAGAIN)
            return 0;                   /* busy: the recheck will retry */
        if (r < 0 && elem)
            memset(elem, 0, ch->elem_size);
        *ok = r > 0;
        return 1;
    }
    tern_waitq_node *w = waitq_pop_claimed(&ch->sendq);
    if (w) {
        TERN_ASSERT(!ch->closed);   /* close wakes every sender */
        copy_out(ch, elem, w->elem);
        w->ok = true;
        *woken = w;
        *ok = true;
        return 1;
    }
    if (ch->closed) {
        if (elem)
            memset(elem, 0, ch->elem_size);
        *ok = false;
        return 1;
    }
    TERN_ASSERT(!ch->sendq.head);
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
    if (ch->cap)
        return bsend(ch, elem, self);
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
    n->ok = false;
    n->sole = true;
    TERN_ASSERT(!ch->closed && !ch->recvq.head);
    waitq_push(&ch->sendq, n);
    tern__spin_unlock(&ch->lock);
    tern__wait_r(n->ticket, "chan send", TERN_FOREVER);
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
    if (ch->cap) {
        brecv(ch, elem, &got, self);
        if (ok)
            *ok = got;
        return 0;
    }
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
    n->ok = false;
    n->sole = true;
    TERN_ASSERT(!ch->closed && !ch->sendq.head);
    waitq_push(&ch->recvq, n);
    tern__spin_unlock(&ch->lock);
    tern__wait_r(n->ticket, "chan receive", TERN_FOREVER);
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
    int r;
    if (ch->cap) {
        if ((r = ring_push(ch, elem, false, &woken)) < 0)
            closed_seen(ch);
    } else {
        tern__spin_lock(&ch->lock);
        r = send_locked(ch, elem, &woken);
        tern__spin_unlock(&ch->lock);
    }
    wake(woken);
    return r < 0 ? r : r ? 0 : -EAGAIN;
}

int tern_chan_try_recv(tern_chan *ch, void *elem, bool *ok)
{
    if (!ch)
        return -EAGAIN;
    bool got;
    tern_waitq_node *woken = NULL;
    int r;
    if (ch->cap) {
        if ((r = ring_pop(ch, elem, false, &woken)) < 0) {
            closed_seen(ch);
            if (elem)
                memset(elem, 0, ch->elem_size);
        }
        got = r > 0;
    } else {
        tern__spin_lock(&ch->lock);
        r = recv_locked(ch, elem, &got, &woken);
        tern__spin_unlock(&ch->lock);
    }
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
    _Atomic long *cnts[2] = {&ch->nrecvw, &ch->nsendw};
    tern_waitq_node *w;
    if (ch->cap) {
        /* seq_cst: a parker counted in after this sees the mark in its
         * readiness check; one counted in before is woken below.  Woken
         * buffered waiters retry and meet the mark. */
        atomic_fetch_or(&ch->tail, ch->mark_bit);
        for (int i = 0; i < 2; i++)
            while ((w = bq_pop_claimed(qs[i], cnts[i])))
                waitq_push(&all, w);
    }
    for (int i = 0; i < 2 && !ch->cap; i++)
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

/* A uniformly random order of the n cases (Go's select fairness). */
static void sel_order(uint16_t *order, int n)
{
    for (int i = 0; i < n; i++)
        order[i] = (uint16_t)i;
    uint32_t x = tern__rand() | 1;      /* one draw, then a local xorshift */
    for (int i = n - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        /* x scaled to [0, i]: a multiply, where x % (i + 1) was a
         * division per case (a third of a four-case select's time) */
        int j = (int)(((uint64_t)x * (uint32_t)(i + 1)) >> 32);
        uint16_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* The first look of a select whose channels are all buffered (or nil):
 * each case's ring operation on its own, lock-free, in random order, as
 * bsend and brecv do.  A select that finds a case ready (the usual case
 * on busy channels) then takes no lock at all; one that finds none goes
 * on to the locked pass, which looks again under every lock and parks
 * with the Dekker re-check.  Each attempt is atomic on its own channel,
 * so the select still fires a case that was ready, chosen at random.
 * The fired case's index, or -1. */
static int sel_try_rings(tern_chan_case *cases, int n)
{
    for (int i = 0; i < n; i++)
        if (cases[i].ch && !cases[i].ch->cap)
            return -1;
    uint16_t order[TERN_CHAN_SELECT_MAX];
    sel_order(order, n);
    for (int k = 0; k < n; k++) {
        tern_chan_case *c = &cases[order[k]];
        if (!c->ch)
            continue;
        bool recv = c->op == TERN_CHAN_RECV;
        /* two loads first: ring_pop's "empty" answer costs a fence */
        if (!(recv ? ring_can_pop(c->ch) : ring_can_push(c->ch)))
            continue;
        tern_waitq_node *woken = NULL;
        int r = recv ? ring_pop(c->ch, c->elem, false, &woken)
                     : ring_push(c->ch, c->elem, false, &woken);
        if (r == 0)
            continue;
        if (r < 0) {
            closed_seen(c->ch);
            if (recv && c->elem)
                memset(c->elem, 0, c->ch->elem_size);
        }
        wake(woken);
        c->ok = r > 0;
        return order[k];
    }
    return -1;
}

/* A ready case in random order: its index, or -1.  Locks held. */
static int sel_ready(tern_chan_case *cases, int n, tern_waitq_node **woken)
{
    uint16_t order[TERN_CHAN_SELECT_MAX];
    sel_order(order, n);
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

/* Unlink a select's node from whichever queue still holds it (locks held). */
static void sel_unlink(tern_chan_case *c, tern_waitq_node *nd)
{
    if (!nd->queue)
        return;
    if (c->ch->cap)
        bq_unlink(nd->queue, c->op == TERN_CHAN_SEND ? &c->ch->nsendw : &c->ch->nrecvw, nd);
    else
        waitq_unlink(nd->queue, nd);
}

/* A buffered case's wake that its select did not use: hand it on to the
 * channel's next waiter, who may want the value or the room. */
static void pass_wake(tern_chan_case *c)
{
    bool send = c->op == TERN_CHAN_SEND;
    wake(take_waiter(c->ch, send ? &c->ch->sendq : &c->ch->recvq,
                     send ? &c->ch->nsendw : &c->ch->nrecvw, false));
}

#define SEL_RETRY INT32_MIN

/* One round of select: a fired case's index, an error, or SEL_RETRY with
 * *woke the buffered case whose wake ended the wait (-1: none; a
 * buffered case turned ready while the nodes were being queued). */
static int select_once(tern_chan_case *cases, int n, tern_ctx *ctx, bool block, int *woke)
{
    *woke = -1;
    int fired = sel_try_rings(cases, n);
    if (fired >= 0)
        return fired;
    sel_locks locks;
    sel_lock(&locks, cases, n);
    tern_waitq_node *woken = NULL;
    fired = sel_ready(cases, n, &woken);
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
    bool ready = false;
    for (int i = 0; i < n; i++) {
        nodes[i] = NULL;
        tern_chan_case *c = &cases[i];
        if (!c->ch || r < 0)
            continue;
        tern_waitq_node *nd = tern__node_get();
        /* a buffered case's waker moves no data: no binding */
        if (!nd || (c->ch->cap ? (nd->bounced = false, nd->elem = NULL, 0)
                               : node_bind(nd, self, c->elem, c->ch->elem_size,
                                           c->op == TERN_CHAN_SEND)) < 0) {
            if (nd)
                tern__node_put(nd);
            r = -ENOMEM;
            continue;
        }
        nd->co = self;
        nd->ticket = t;
        nd->case_idx = i;
        nd->ok = false;
        bool send = c->op == TERN_CHAN_SEND;
        if (c->ch->cap)
            bq_push(send ? &c->ch->sendq : &c->ch->recvq, send ? &c->ch->nsendw : &c->ch->nrecvw,
                    nd);
        else
            waitq_push(send ? &c->ch->sendq : &c->ch->recvq, nd);
        nodes[i] = nd;
    }
    /* Counted in on every buffered channel: now look again (the parker's
     * half of the Dekker pair), or a value that came meanwhile would wake
     * no one. */
    for (int i = 0; i < n && r == 0 && !ready; i++)
        if (nodes[i] && cases[i].ch->cap)
            ready = cases[i].op == TERN_CHAN_SEND ? ring_can_push(cases[i].ch)
                                                  : ring_can_pop(cases[i].ch);
    tern_waitq_node *cn = tern__co_ctx_node(self);
    bool watching = r == 0 && !ready && ctx;
    if (watching) {
        tern__ctx_ref(ctx);
        cn->co = self;
        cn->ticket = t;
        cn->case_idx = n;
        r = tern__ctx_watch(ctx, cn);
    }
    if (ready) {
        /* every lock is held and no context watches: nobody has claimed */
        for (int i = 0; i < n; i++)
            if (nodes[i])
                sel_unlink(&cases[i], nodes[i]);
        r = 1;
    }
    sel_unlock(&locks);
    if (r != 0 && !tern_wait_cancel(t))
        r = 0;          /* a case fired meanwhile: collect it */
    if (r == 0)
        fired = tern__wait_r(t, "select", TERN_FOREVER);    /* heap nodes */
    if (!ready) {
        sel_lock(&locks, cases, n);
        for (int i = 0; i < n; i++)
            if (nodes[i])
                sel_unlink(&cases[i], nodes[i]);
        sel_unlock(&locks);
    }
    if (watching) {
        tern__ctx_unwatch(ctx, cn);
        if (r == 0 && fired == n)
            r = tern_ctx_err(ctx);
        tern__ctx_unref(ctx);
    }
    if (r == 1) {
        r = SEL_RETRY;
    } else if (r == 0 && cases[fired].ch->cap) {
        *woke = fired;  /* a buffered case: the waker only readied us */
        r = SEL_RETRY;
    } else if (r == 0) {
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

static int select_impl(tern_chan_case *cases, int n, tern_ctx *ctx, bool block)
{
    if (n < 0 || n > TERN_CHAN_SELECT_MAX || (n > 0 && !cases))
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (cases[i].op != TERN_CHAN_RECV && cases[i].op != TERN_CHAN_SEND)
            return -EINVAL;
    int r, woke, unused = -1;
    while ((r = select_once(cases, n, ctx, block, &woke)) == SEL_RETRY)
        if (woke >= 0)
            unused = woke;      /* a wake in hand, until a round fires or parks */
    if (unused >= 0 && r != unused)
        pass_wake(&cases[unused]);
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
