/*
 * pool.c - a pool of PostgreSQL connections shared by coroutines.
 *
 * The pool's state sits under a spinlock held only for list and counter
 * updates, never across I/O, so that releasing a connection never parks.
 * Idle connections are a stack: the most recently used is reused first
 * (its caches are warm) and the ones at the bottom age out by idle_timeout.
 *
 * Waiters queue in arrival order.  A release hands its connection straight
 * to the head waiter instead of making it idle, so a newcomer cannot barge
 * ahead of a queued coroutine; a connection closed on release (broken, in
 * a transaction, past its lifetime) hands its *slot* instead (a NULL
 * connection: the waiter opens a new one).  Each waiter has a one-slot
 * channel, freed by whichever of the two parties lets go of it last: the
 * sender may still be inside the channel when the receiver wakes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/rand.h"
#include "base/spin.h"
#include "data/pg/pg_internal.h"
#include "tern/chan.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define DEFAULT_MAX_CONNS 16
#define DEFAULT_LIFETIME_NS (3600 * 1000000000LL)
#define DEFAULT_IDLE_TIMEOUT_NS (600 * 1000000000LL)
#define DEFAULT_HEALTH_IDLE_NS 1000000000LL
#define SWEEP_EVERY_NS 1000000000LL
#define MAINTAIN_EVERY_NS 1000000000LL
#define MAINTAIN_CONNECT_NS (5 * 1000000000LL)
/* Waiters kept for reuse: under load most acquisitions wait, and a waiter
 * is a calloc, an aligned channel and two frees otherwise. */
#define MAX_SPARE_WAITERS 64

typedef struct waiter {
    struct waiter *next;            /* in the queue, or among the spares */
    struct tern_pg_pool *pool;
    tern_chan *ch;                  /* one tern_pg_conn * (NULL: a slot) */
    atomic_int refs;                /* the waiter and its releaser */
    bool queued;                    /* under the pool lock */
} waiter;

struct tern_pg_pool {
    tern__spin lock;
    char *conninfo;
    tern_pg_pool_options o;
    tern_pg_conn *idle;             /* stack through next_idle */
    waiter *whead, *wtail;
    waiter *spare;                  /* done with, channel empty: for reuse */
    int nspare;
    int64_t next_sweep;
    struct tern_pg_pool_stats s;    /* open, in_use, idle, waiting: now */
    char *name;                     /* the metrics' pool label */
    pg_obs obs;
    /* The maintainer (min_idle): started by the first acquire. */
    atomic_bool maint_started;
    tern_ctx *maint_ctx;
    tern_waitgroup maint_done;
    /* Connections released with an abandoned query, being drained: they
     * stay in use (their slot is taken) until the drain releases them. */
    tern_waitgroup drains;
};

/* Under the lock, after in_use or idle changed. */
static void gauges(tern_pg_pool *p)
{
    if (p->obs.m) {
        tern_metrics_gauge_set(p->obs.in_use, p->s.in_use);
        tern_metrics_gauge_set(p->obs.idle, p->s.idle);
    }
}

int tern_pg_pool_new(const char *conninfo, const tern_pg_pool_options *opts, tern_pg_pool **out)
{
    TERN_CHECK_ARG(conninfo);
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_pg_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->conninfo = strdup(conninfo))) {
        free(p);
        return -ENOMEM;
    }
    if (opts)
        p->o = *opts;
    if (p->o.max_conns <= 0)
        p->o.max_conns = DEFAULT_MAX_CONNS;
    if (p->o.max_lifetime_ns <= 0)
        p->o.max_lifetime_ns = DEFAULT_LIFETIME_NS;
    if (p->o.idle_timeout_ns <= 0)
        p->o.idle_timeout_ns = DEFAULT_IDLE_TIMEOUT_NS;
    if (p->o.health_check_idle_ns <= 0)
        p->o.health_check_idle_ns = DEFAULT_HEALTH_IDLE_NS;
    p->name = strdup(p->o.name ? p->o.name : "default");
    int rc = p->name ? tern__pg_obs_init(&p->obs, p->o.metrics, p->name) : -ENOMEM;
    if (rc < 0) {
        free(p->name);
        free(p->conninfo);
        free(p);
        return rc;
    }
    p->o.name = NULL;               /* the caller's string: ours is p->name */
    *out = p;
    return 0;
}

void tern_pg_pool_free(tern_pg_pool *p)
{
    if (!p)
        return;
    if (atomic_load(&p->maint_started) && p->maint_ctx) {
        tern_ctx_cancel(p->maint_ctx);
        tern_waitgroup_wait(&p->maint_done, NULL);
        tern_ctx_free(p->maint_ctx);
    }
    tern_waitgroup_wait(&p->drains, NULL);
    /* Freeing a pool with connections out is a use-after-free to come. */
    TERN_ASSERT(p->s.in_use == 0 && p->whead == NULL);
    while (p->idle) {
        tern_pg_conn *c = p->idle;
        p->idle = c->next_idle;
        tern_pg_conn_free(c);
    }
    while (p->spare) {
        waiter *w = p->spare;
        p->spare = w->next;
        tern_chan_free(w->ch);
        free(w);
    }
    free(p->conninfo);
    free(p->name);
    free(p);
}

/* Under the lock: a spare waiter or a new one, queued and holding both
 * references; NULL when out of memory. */
static waiter *waiter_get(tern_pg_pool *p)
{
    waiter *w = p->spare;
    if (w) {
        p->spare = w->next;
        p->nspare--;
    } else {
        w = calloc(1, sizeof *w);
        if (!w)
            return NULL;
        if (tern_chan_new(sizeof(tern_pg_conn *), 1, &w->ch) < 0) {
            free(w);
            return NULL;
        }
        w->pool = p;
    }
    w->next = NULL;
    atomic_init(&w->refs, 2);
    w->queued = true;
    return w;
}

static void waiter_put(waiter *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    /* Both parties are out of the channel and it is empty again: the one
     * value sent was received, or none was sent. */
    tern_pg_pool *p = w->pool;
    tern__spin_lock(&p->lock);
    bool keep = p->nspare < MAX_SPARE_WAITERS;
    if (keep) {
        w->next = p->spare;
        p->spare = w;
        p->nspare++;
    }
    tern__spin_unlock(&p->lock);
    if (!keep) {
        tern_chan_free(w->ch);
        free(w);
    }
}

/* Under the lock: the head waiter, unlinked, or NULL. */
static waiter *pop_waiter(tern_pg_pool *p)
{
    waiter *w = p->whead;
    if (w) {
        p->whead = w->next;
        if (!p->whead)
            p->wtail = NULL;
        w->queued = false;
        p->s.waiting--;
    }
    return w;
}

static void hand(waiter *w, tern_pg_conn *c)
{
    int rc = tern_chan_try_send(w->ch, &c);
    (void)rc;
    TERN_ASSERT(rc == 0);       /* one slot, one sender */
    waiter_put(w);
}

/* Under the lock: close the idle connections past their time, returned
 * for closing outside the lock. */
static tern_pg_conn *sweep(tern_pg_pool *p, int64_t now)
{
    tern_pg_conn *dead = NULL;
    if (now < p->next_sweep)
        return NULL;
    p->next_sweep = now + SWEEP_EVERY_NS;
    for (tern_pg_conn **pp = &p->idle; *pp;) {
        tern_pg_conn *c = *pp;
        if (now >= c->expires || now - c->idle_since >= p->o.idle_timeout_ns) {
            *pp = c->next_idle;
            c->next_idle = dead;
            dead = c;
            p->s.idle--;
            p->s.open--;
            p->s.closed++;
        } else {
            pp = &c->next_idle;
        }
    }
    return dead;
}

static void free_list(tern_pg_conn *c)
{
    while (c) {
        tern_pg_conn *n = c->next_idle;
        tern_pg_conn_free(c);
        c = n;
    }
}

/* A slot (counted in open and in_use) that did not become a connection:
 * the next waiter may try. */
static void slot_lost(tern_pg_pool *p)
{
    tern__spin_lock(&p->lock);
    waiter *w = pop_waiter(p);
    if (!w) {
        p->s.open--;
        p->s.in_use--;
    }
    gauges(p);
    tern__spin_unlock(&p->lock);
    if (w)
        hand(w, NULL);
}

static int open_conn(tern_pg_pool *p, tern_pg_conn **out, tern_pg_error *err, tern_ctx *ctx)
{
    int rc = tern_pg_conn_new(p->conninfo, &p->o.conn, out, err, ctx);
    if (rc < 0) {
        slot_lost(p);
        return rc;
    }
    tern_pg_conn *c = *out;
    if (p->obs.m)
        c->obs = &p->obs;
    int64_t life = p->o.max_lifetime_ns;
    /* Up to 10% earlier, so that connections opened together (at start,
     * after a failover) are not all closed together. */
    c->expires = c->created + life - (int64_t)(tern__rand01() * (double)(life / 10));
    tern__spin_lock(&p->lock);
    p->s.opened++;
    tern__spin_unlock(&p->lock);
    return 0;
}

/* Wait in line for a released connection or slot. */
static int wait_turn(tern_pg_pool *p, waiter *w, tern_pg_conn **got, tern_ctx *ctx)
{
    int64_t t0 = tern_now();
    int rc = tern_chan_recv(w->ch, got, NULL, ctx);
    if (rc < 0) {
        tern__spin_lock(&p->lock);
        bool mine = w->queued;
        if (mine) {
            for (waiter **pp = &p->whead, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next)
                if (*pp == w) {
                    *pp = w->next;
                    if (p->wtail == w)
                        p->wtail = prev;
                    break;
                }
            w->queued = false;
            p->s.waiting--;
        }
        tern__spin_unlock(&p->lock);
        if (!mine) {
            /* A releaser picked us already: take what it sends and pass it
             * on, so that it is not lost. */
            tern_pg_conn *c = NULL;
            tern_chan_recv(w->ch, &c, NULL, NULL);
            if (c)
                tern_pg_pool_release(p, c);
            else
                slot_lost(p);
        }
        if (mine)
            waiter_put(w);      /* the releaser's share: none will come */
        waiter_put(w);
        return rc;
    }
    tern__spin_lock(&p->lock);
    int64_t waited = tern_now() - t0;
    p->s.wait_ns += waited;
    p->s.acquired++;
    if (p->obs.m)
        tern_metrics_histogram_observe(p->obs.wait_s, (double)waited / 1e9);
    tern__spin_unlock(&p->lock);
    waiter_put(w);
    return 0;
}

/* Keep min_idle connections open (opened ahead of demand, so that a burst
 * does not pay for connects) and close the idle ones past their time even
 * when nobody acquires.  One pass at start, then every second. */
static int maintain(void *arg)
{
    tern_pg_pool *p = arg;
    do {
        for (;;) {
            int64_t now = tern_now();
            tern__spin_lock(&p->lock);
            p->next_sweep = 0;
            tern_pg_conn *dead = sweep(p, now);
            bool grow = p->s.idle < p->o.min_idle && p->s.open < p->o.max_conns && !p->whead;
            if (grow) {
                p->s.open++;            /* a slot, as an acquirer takes */
                p->s.in_use++;
            }
            gauges(p);
            tern__spin_unlock(&p->lock);
            free_list(dead);
            if (!grow)
                break;
            /* Bounded, so that a server that does not answer cannot hold
             * the slot: the next round tries again. */
            tern_ctx *ctx;
            if (tern_ctx_with_timeout(p->maint_ctx, MAINTAIN_CONNECT_NS, &ctx) < 0) {
                slot_lost(p);
                break;
            }
            tern_pg_conn *c;
            int rc = open_conn(p, &c, NULL, ctx);
            tern_ctx_free(ctx);
            if (rc < 0)
                break;              /* the server is away: try next round */
            tern_pg_pool_release(p, c);
        }
    } while (tern_ctx_sleep(MAINTAIN_EVERY_NS, p->maint_ctx) == 0);
    tern_waitgroup_done(&p->maint_done);
    return 0;
}

static void start_maintainer(tern_pg_pool *p)
{
    if (atomic_exchange(&p->maint_started, true))
        return;
    if (tern_ctx_with_cancel(tern_ctx_background(), &p->maint_ctx) < 0)
        return;                     /* no memory: the pool works, only lazily */
    tern_waitgroup_add(&p->maint_done, 1);
    if (tern_go(maintain, p) < 0)
        tern_waitgroup_done(&p->maint_done);
}

int tern__pg_pool_acquire(tern_pg_pool *p, tern_pg_conn **out, tern_pg_error *err, tern_ctx *ctx)
{
    if (p->o.min_idle > 0 && !atomic_load_explicit(&p->maint_started, memory_order_relaxed))
        start_maintainer(p);
    for (;;) {
        int rc = ctx ? tern_ctx_err(ctx) : 0;
        if (rc < 0)
            return rc;
        int64_t now = tern_now();
        tern__spin_lock(&p->lock);
        tern_pg_conn *dead = sweep(p, now);
        tern_pg_conn *c = p->idle;
        waiter *w = NULL;
        if (c) {
            p->idle = c->next_idle;
            p->s.idle--;
            p->s.in_use++;
            p->s.acquired++;
        } else if (p->s.open < p->o.max_conns) {
            p->s.open++;
            p->s.in_use++;
            p->s.acquired++;
        } else if ((w = waiter_get(p))) {
            if (p->wtail)
                p->wtail->next = w;
            else
                p->whead = w;
            p->wtail = w;
            p->s.waiting++;
            p->s.waits++;
            if (p->obs.m)
                tern_metrics_counter_inc(p->obs.waits);
        } else {
            tern__spin_unlock(&p->lock);
            free_list(dead);
            return -ENOMEM;
        }
        gauges(p);
        tern__spin_unlock(&p->lock);
        free_list(dead);
        if (w) {
            rc = wait_turn(p, w, &c, ctx);
            if (rc < 0)
                return rc;
            if (!c)
                return open_conn(p, out, err, ctx);
            *out = c;
            return 0;
        }
        if (!c)
            return open_conn(p, out, err, ctx);
        if (now - c->idle_since >= p->o.health_check_idle_ns && now < c->expires) {
            rc = tern_pg_ping(c, ctx);
            if (rc == -ETIMEDOUT || rc == -ECANCELED) {
                tern_pg_pool_release(p, c);
                return rc;
            }
            if (rc < 0) {
                tern__spin_lock(&p->lock);
                p->s.health_failures++;
                tern__spin_unlock(&p->lock);
                c->broken = true;
            }
        }
        if (now < c->expires && tern_pg_conn_ok(c)) {
            *out = c;
            return 0;
        }
        /* Expired or failed its check: close it and look again. */
        tern_pg_pool_release(p, c);
    }
}

int tern_pg_pool_acquire(tern_pg_pool *p, tern_pg_conn **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(p);
    TERN_CHECK_ARG(out);
    *out = NULL;
    return tern__pg_pool_acquire(p, out, NULL, ctx);
}

typedef struct drain_job {
    tern_pg_pool *p;
    tern_pg_conn *c;
} drain_job;

static int drain_run(void *arg)
{
    drain_job *j = arg;
    tern_pg_pool *p = j->p;
    tern_pg_conn *c = j->c;
    free(j);
    tern__pg_drain_abandoned(c);
    tern_pg_pool_release(p, c);
    tern_waitgroup_done(&p->drains);
    return 0;
}

/* Cancel and drain c's abandoned query in a coroutine, then release it
 * again; false if that cannot start (c is then closed instead). */
static bool drain_later(tern_pg_pool *p, tern_pg_conn *c)
{
    drain_job *j = malloc(sizeof *j);
    if (!j)
        return false;
    j->p = p;
    j->c = c;
    tern_waitgroup_add(&p->drains, 1);
    if (tern_go(drain_run, j) < 0) {
        tern_waitgroup_done(&p->drains);
        free(j);
        return false;
    }
    return true;
}

void tern_pg_pool_release(tern_pg_pool *p, tern_pg_conn *c)
{
    TERN_CHECK_ARG(p);
    TERN_CHECK_ARG(c);
    if (c->abandoned && tern_pg_conn_ok(c)) {
        if (drain_later(p, c))
            return;
        c->broken = true;
    }
    c->abandoned = false;
    int64_t now = tern_now();
    /* Reuse only a connection in step with the server and outside any
     * transaction: the next user must not inherit one. */
    bool keep = tern_pg_conn_ok(c) && PQtransactionStatus(c->pg) == PQTRANS_IDLE &&
                now < c->expires;
    tern__spin_lock(&p->lock);
    waiter *w = pop_waiter(p);
    if (keep && !w) {
        c->idle_since = now;
        c->next_idle = p->idle;
        p->idle = c;
        p->s.idle++;
        p->s.in_use--;
    } else if (!keep) {
        p->s.closed++;
        if (!w) {
            p->s.open--;
            p->s.in_use--;
        }
    }
    gauges(p);
    tern__spin_unlock(&p->lock);
    if (w)
        hand(w, keep ? c : NULL);
    if (!keep)
        tern_pg_conn_free(c);
}

int tern_pg_pool_query(tern_pg_pool *p, const char *sql, const tern_pg_params *params,
                       tern_pg_result **out, tern_pg_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(p);
    if (out)
        *out = NULL;
    tern_pg_conn *c;
    int rc = tern__pg_pool_acquire(p, &c, err, ctx);
    if (rc < 0)
        return rc;
    /* Released right after: a query its ctx abandons is cancelled and
     * drained by the release, not by this caller, whose time is up.  (A
     * connection the caller holds is drained at once, as a connection of
     * one's own is: its next use, or the locks the query holds, must not
     * wait for the release.) */
    c->defer_drain = true;
    rc = tern_pg_query(c, sql, params, out, ctx);
    c->defer_drain = false;
    if (rc < 0 && err)
        *err = c->err;
    tern_pg_pool_release(p, c);
    return rc;
}

int tern_pg_pool_stats(const tern_pg_pool *p, struct tern_pg_pool_stats *out)
{
    TERN_CHECK_ARG(p);
    TERN_CHECK_ARG(out);
    tern_pg_pool *m = (tern_pg_pool *)p;    /* the lock is not part of the value */
    tern__spin_lock(&m->lock);
    *out = p->s;
    tern__spin_unlock(&m->lock);
    return 0;
}
