/*
 * context.c - cancellation trees (Go's context package).
 *
 * Each cancellable context keeps its error, a lazily made done channel,
 * the coroutines watching it (selects, semaphore acquires, I/O) and its
 * children.  Cancelling sets the error once, closes done, wakes watchers
 * and cancels the children: all of them, at once, with the same error.
 * A deadline context arms a runtime timer whose callback cancels it with
 * -ETIMEDOUT.  Value contexts are not cancellable themselves: they answer
 * err/done/deadline from their parent.
 *
 * Lifetime is reference counted: the creator's reference (dropped by
 * tern_ctx_free), one per child (a child reads its parent's values), and
 * short ones held by waiters (tern__ctx_ref) so a done channel cannot be
 * freed under a select.  Lock order: a parent's lock before a child's is
 * never needed; cancellation takes each lock alone, holding references.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

enum { K_BACKGROUND, K_CANCEL, K_VALUE };

struct tern_ctx {
    tern__spin lock;
    int kind;
    atomic_int refs;
    atomic_int err;
    tern_ctx *parent;           /* referenced */
    tern_ctx *scope;            /* nearest cancellable ancestor we are listed in */
    tern_ctx *children, *next_sib, *prev_sib;
    tern_waitq watchers;        /* its own lock unused: ctx->lock guards it */
    tern_chan *done;
    int64_t deadline;
    atomic_bool timer_armed;    /* the timer holds a reference while queued */
    tern_timer timer;
    const void *key;
    void *value;
};

static atomic_long live_ctxs;

long tern__ctx_live(void)
{
    return atomic_load_explicit(&live_ctxs, memory_order_relaxed);
}

static tern_ctx background = {.kind = K_BACKGROUND, .deadline = TERN_FOREVER};

tern_ctx *tern_ctx_background(void)
{
    return &background;
}

/* the context whose state answers for ctx */
static tern_ctx *state_of(tern_ctx *ctx)
{
    while (ctx && ctx->kind == K_VALUE)
        ctx = ctx->parent;
    return ctx && ctx->kind == K_CANCEL ? ctx : NULL;
}

void tern__ctx_ref(tern_ctx *ctx)
{
    if (ctx && ctx != &background) {
        int old = atomic_fetch_add(&ctx->refs, 1);
        TERN_ASSERT(old > 0);       /* a reference is taken from a live one */
    }
}

static void ctx_destroy(tern_ctx *ctx);

void tern__ctx_unref(tern_ctx *ctx)
{
    if (!ctx || ctx == &background)
        return;
    int old = atomic_fetch_sub(&ctx->refs, 1);
    TERN_ASSERT(old > 0);
    if (old == 1)
        ctx_destroy(ctx);
}

static void cancel(tern_ctx *ctx, int err)
{
    TERN_ASSERT(err < 0 && ctx->kind == K_CANCEL);
    tern__spin_lock(&ctx->lock);
    int none = 0;
    if (!atomic_compare_exchange_strong(&ctx->err, &none, err)) {
        tern__spin_unlock(&ctx->lock);
        return;
    }
    /* done is closed after unlocking: select holds channel locks while it
     * takes ours (to watch), so ours must never be held around a
     * channel's.  A done made meanwhile sees err and is born closed. */
    tern_chan *done = ctx->done;
    tern_waitq woken = {0};
    tern_waitq_node *w;
    while ((w = waitq_pop_claimed(&ctx->watchers)))
        waitq_push(&woken, w);      /* readied after unlocking */
    /* Detach the children with a reference each, then cancel them
     * without holding our lock (they take theirs).  A child whose last
     * reference is already gone is being destroyed and waits for our lock
     * to unlist itself: leave it listed. */
    tern_ctx *kids = NULL, *c = ctx->children;
    ctx->children = NULL;
    while (c) {
        tern_ctx *next = c->next_sib;
        int r = atomic_load(&c->refs);
        while (r > 0 && !atomic_compare_exchange_weak(&c->refs, &r, r + 1))
            ;
        if (r > 0) {
            c->scope = NULL;
            c->prev_sib = NULL;
            c->next_sib = kids;
            kids = c;
        } else {
            c->prev_sib = NULL;
            c->next_sib = ctx->children;
            if (ctx->children)
                ctx->children->prev_sib = c;
            ctx->children = c;
        }
        c = next;
    }
    tern__spin_unlock(&ctx->lock);
    waitq_wake_list(woken.head, true);
    if (done)
        tern_chan_close(done);
    /* A deadline that can no longer matter: drop it and the reference it
     * held (our caller holds another, so ctx lives on). */
    if (atomic_load(&ctx->timer_armed) && tern__timer_stop(&ctx->timer))
        tern__ctx_unref(ctx);
    while (kids) {
        tern_ctx *c = kids;
        kids = c->next_sib;
        c->next_sib = c->prev_sib = NULL;
        cancel(c, err);
        tern__ctx_unref(c);
    }
}

static void on_deadline(tern_timer *t)
{
    tern_ctx *ctx = (tern_ctx *)((char *)t - offsetof(tern_ctx, timer));
    cancel(ctx, -ETIMEDOUT);
    tern__ctx_unref(ctx);       /* the timer's; may be the last */
}

static void unlist(tern_ctx *ctx)
{
    for (;;) {
        tern_ctx *s = ctx->scope;
        if (!s)
            return;
        tern__spin_lock(&s->lock);
        if (ctx->scope != s) {      /* the scope's cancel detached us */
            tern__spin_unlock(&s->lock);
            continue;
        }
        TERN_ASSERT(ctx->prev_sib ? ctx->prev_sib->next_sib == ctx : s->children == ctx);
        TERN_ASSERT(!ctx->next_sib || ctx->next_sib->prev_sib == ctx);
        if (ctx->prev_sib)
            ctx->prev_sib->next_sib = ctx->next_sib;
        else
            s->children = ctx->next_sib;
        if (ctx->next_sib)
            ctx->next_sib->prev_sib = ctx->prev_sib;
        ctx->scope = NULL;
        tern__spin_unlock(&s->lock);
        return;
    }
}

static void ctx_destroy(tern_ctx *ctx)
{
    /* no timer can be queued: it would hold a reference; nor a watcher
     * or a child, which hold one too */
    TERN_ASSERT(atomic_load_explicit(&ctx->timer.p, memory_order_relaxed) == NULL);
    TERN_ASSERT(!ctx->watchers.head && !ctx->children);
    unlist(ctx);
    tern__ctx_unref(ctx->parent);
    tern_chan_free(ctx->done);
    free(ctx);
    atomic_fetch_sub_explicit(&live_ctxs, 1, memory_order_relaxed);
}

static tern_ctx *derive(tern_ctx *parent, int kind)
{
    if (!parent)
        parent = &background;
    tern_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    tern__csp_leak_watch();
    atomic_fetch_add_explicit(&live_ctxs, 1, memory_order_relaxed);
    ctx->kind = kind;
    atomic_store(&ctx->refs, 1);
    ctx->parent = parent;
    tern__ctx_ref(parent);
    ctx->deadline = parent->deadline;
    return ctx;
}

/* List a new cancellable ctx under its nearest cancellable ancestor, or
 * cancel it at once if that one is already done. */
static void attach(tern_ctx *ctx)
{
    tern_ctx *s = state_of(ctx->parent);
    if (!s)
        return;
    tern__spin_lock(&s->lock);
    int err = atomic_load(&s->err);
    if (!err) {
        ctx->scope = s;
        ctx->next_sib = s->children;
        if (s->children)
            s->children->prev_sib = ctx;
        s->children = ctx;
    }
    tern__spin_unlock(&s->lock);
    if (err)
        cancel(ctx, err);
}

int tern_ctx_with_cancel(tern_ctx *parent, tern_ctx **out)
{
    TERN_CHECK_ARG(out);
    tern_ctx *ctx = *out = derive(parent, K_CANCEL);
    if (!ctx)
        return -ENOMEM;
    attach(ctx);
    return 0;
}

int tern_ctx_with_deadline(tern_ctx *parent, int64_t deadline, tern_ctx **out)
{
    TERN_CHECK_ARG(out);
    tern_ctx *ctx = *out = derive(parent, K_CANCEL);
    if (!ctx)
        return -ENOMEM;
    /* A deadline no earlier than the parent's needs no timer of its own:
     * the parent's expiry reaches us, and a done child must always mean
     * a done parent (Go's rule) - two timers for one instant could fire
     * child first. */
    bool own = deadline != TERN_FOREVER && (ctx->deadline == TERN_FOREVER || deadline < ctx->deadline);
    if (own)
        ctx->deadline = deadline;
    attach(ctx);
    if (own && !atomic_load(&ctx->err)) {
        if (ctx->deadline <= tern_now()) {
            cancel(ctx, -ETIMEDOUT);
        } else {
            atomic_fetch_add(&ctx->refs, 1);
            atomic_store(&ctx->timer_armed, true);
            if (tern__timer_start(&ctx->timer, ctx->deadline, on_deadline) == 0) {
                /* A parent cancelled us between the check and the arming:
                 * its cancel() found no timer to stop, so stop it here
                 * rather than keep the context alive until the deadline. */
                if (atomic_load(&ctx->err) && tern__timer_stop(&ctx->timer))
                    tern__ctx_unref(ctx);
                return 0;
            }
            atomic_store(&ctx->timer_armed, false);
            atomic_fetch_sub(&ctx->refs, 1);
            tern_ctx_free(ctx);
            *out = NULL;
            return -ESRCH;      /* no runtime to keep time */
        }
    }
    return 0;
}

int tern_ctx_with_timeout(tern_ctx *parent, int64_t ns, tern_ctx **out)
{
    return tern_ctx_with_deadline(parent, tern_deadline_after(ns < 0 ? 0 : ns), out);
}

int tern_ctx_with_value(tern_ctx *parent, const void *key, void *value, tern_ctx **out)
{
    TERN_CHECK_ARG(out);
    tern_ctx *ctx = *out = derive(parent, K_VALUE);
    if (!ctx)
        return -ENOMEM;
    ctx->key = key;
    ctx->value = value;
    return 0;
}

void tern_ctx_cancel(tern_ctx *ctx)
{
    if (ctx && ctx->kind == K_CANCEL) {
        /* Hold a reference while cancelling: the first thing cancel does
         * is wake the waiters, and one of them may free the context (its
         * owner, done waiting) while we still close the done channel and
         * walk the children.  Go's GC gives this for free. */
        tern__ctx_ref(ctx);
        cancel(ctx, -ECANCELED);
        tern__ctx_unref(ctx);
    }
}

void tern_ctx_free(tern_ctx *ctx)
{
    if (!ctx || ctx == &background)
        return;
    tern_ctx_cancel(ctx);
    tern__ctx_unref(ctx);
}

int tern_ctx_err(tern_ctx *ctx)
{
    tern_ctx *s = state_of(ctx);
    return s ? atomic_load(&s->err) : 0;
}

tern_chan *tern_ctx_done(tern_ctx *ctx)
{
    tern_ctx *s = state_of(ctx);
    if (!s)
        return NULL;
    tern__spin_lock(&s->lock);
    bool made = !s->done && tern_chan_new(1, 0, &s->done) == 0;
    tern_chan *d = s->done;
    tern__spin_unlock(&s->lock);
    /* NULL would be a channel that never fires: a silent hang for the
     * caller's select, so out of memory here is fatal, as it is in Go. */
    if (!d)
        tern__fatal("tern_ctx_done: out of memory for the done channel");
    if (made && atomic_load(&s->err))
        tern_chan_close(d);     /* born after cancel: closed (twice is harmless) */
    return d;
}

bool tern_ctx_deadline(tern_ctx *ctx, int64_t *deadline)
{
    int64_t d = ctx ? ctx->deadline : TERN_FOREVER;
    if (deadline)
        *deadline = d;
    return d != TERN_FOREVER;
}

int64_t tern_ctx_remaining(tern_ctx *ctx)
{
    if (tern_ctx_err(ctx))
        return 0;
    int64_t d = ctx ? ctx->deadline : TERN_FOREVER;
    if (d == TERN_FOREVER)
        return INT64_MAX;
    int64_t left = d - tern_now();
    return left > 0 ? left : 0;
}

int tern_ctx_sleep(int64_t ns, tern_ctx *ctx)
{
    int err = tern_ctx_err(ctx);
    if (err)
        return err;
    if (ns <= 0 || !state_of(ctx))
        return tern_sleep(ns);      /* nothing can end it early */
    /* As tern_sem_acquire waits: the context's watch and the runtime's
     * deadline race for one ticket, and the wake result says who won. */
    tern_co *self = tern__self_checked("tern_ctx_sleep");
    tern_ticket t = tern_wait_prepare();
    tern_waitq_node *cn = tern__co_ctx_node(self);
    cn->co = self;
    cn->ticket = t;
    cn->case_idx = 1;           /* the wake result that means "context" */
    tern__ctx_ref(ctx);         /* another coroutine may free it meanwhile */
    if ((err = tern__ctx_watch(ctx, cn)) != 0)
        tern_wait_cancel(t);    /* nothing else holds the ticket */
    else if (tern__wait_r(t, "ctx sleep", tern_deadline_after(ns)) == 1)
        err = tern_ctx_err(ctx);
    tern__ctx_unwatch(ctx, cn);
    tern__ctx_unref(ctx);
    return err;
}

void *tern_ctx_value(tern_ctx *ctx, const void *key)
{
    for (; ctx; ctx = ctx->parent)
        if (ctx->kind == K_VALUE && ctx->key == key)
            return ctx->value;
    return NULL;
}

int tern__ctx_park(tern_ticket t, const char *reason, tern_ctx *ctx, tern_ctx *ctx2)
{
    if (!state_of(ctx) || state_of(ctx) == state_of(ctx2)) {
        ctx = ctx2;             /* one of them can never end the wait */
        ctx2 = NULL;
    }
    if (!state_of(ctx2))
        ctx2 = NULL;
    if (!state_of(ctx))
        return tern__wait_r(t, reason, TERN_FOREVER);
    tern_co *self = tern_self();
    tern_waitq_node *cn = tern__co_ctx_node(self), *cn2 = NULL;
    if (ctx2 && !(cn2 = tern__node_get()))
        return tern_wait_cancel(t) ? -ENOMEM : tern__wait_r(t, reason, TERN_FOREVER);
    /* the wake results that mean "context" */
    *cn = (tern_waitq_node){.co = self, .ticket = t, .case_idx = INT32_MIN};
    tern__ctx_ref(ctx);         /* another coroutine may free it meanwhile */
    int r = tern__ctx_watch(ctx, cn);
    if (cn2) {
        *cn2 = (tern_waitq_node){.co = self, .ticket = t, .case_idx = INT32_MIN + 1};
        tern__ctx_ref(ctx2);
        if (r == 0)
            r = tern__ctx_watch(ctx2, cn2);
    }
    if (r != 0 && !tern_wait_cancel(t))
        r = 0;                  /* woken meanwhile: collect it */
    if (r == 0) {
        r = tern__wait_r(t, reason, TERN_FOREVER);
        if (r == INT32_MIN)
            r = tern_ctx_err(ctx);      /* read before the unrefs below */
        else if (r == INT32_MIN + 1)
            r = tern_ctx_err(ctx2);
    }
    tern__ctx_unwatch(ctx, cn);
    tern__ctx_unref(ctx);
    if (cn2) {
        tern__ctx_unwatch(ctx2, cn2);
        tern__ctx_unref(ctx2);
        tern__node_put(cn2);
    }
    return r;
}

int tern__ctx_watch(tern_ctx *ctx, tern_waitq_node *n)
{
    tern_ctx *s = state_of(ctx);
    if (!s)
        return 0;
    tern__spin_lock(&s->lock);
    int err = atomic_load(&s->err);
    if (!err)
        waitq_push(&s->watchers, n);
    tern__spin_unlock(&s->lock);
    return err;
}

void tern__ctx_unwatch(tern_ctx *ctx, tern_waitq_node *n)
{
    tern_ctx *s = state_of(ctx);
    if (!s)
        return;
    tern__spin_lock(&s->lock);
    if (n->queue == &s->watchers)
        waitq_unlink(&s->watchers, n);
    tern__spin_unlock(&s->lock);
}
