/*
 * timer.c - timers that deliver on channels (Go's time.NewTimer,
 * time.After and time.NewTicker), so that a select can wait for "a value,
 * or 50 ms, or the context's end" with one case each.
 *
 * Each timer owns a channel of int64_t (cap 1) and a runtime callback
 * timer.  Semantics are Go 1.23's: after Stop or Reset returns, no value
 * from before can be received (the buffered value, if any, is drained
 * under the timer's lock, and a firing that raced with the call finds
 * the timer stopped or due later and sends nothing); Stop reports true
 * when the value had not been received yet.  Go 1.23 makes the channel
 * unbuffered to get the same; ours keeps one slot (cap reports 1), which
 * is what lets the firing callback, which must not park, hand the value
 * over without a receiver present.
 *
 * Lock order: the timer's lock, then its channel's (send and drain).  A
 * select holds channel locks but never takes a timer's.
 *
 * The runtime owes at most one callback per timer at a time (`queued`:
 * in a heap, or popped and about to run).  A callback delivers only if
 * the timer is active and due (now >= when): a stale callback, from an
 * arming that a Reset replaced while the callback was in flight, finds a
 * later `when` and, instead of sending, re-arms for it.  Freeing a timer
 * with a callback in flight leaves the free to that callback.
 */
#define _GNU_SOURCE
#include "base/check.h"
#include "csp/csp.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

struct tern__time {
    tern__spin lock;
    bool active;                /* a value is owed at `when` */
    bool queued;                /* the runtime owes one callback */
    bool dead;                  /* freed by its owner */
    bool after;                 /* made by tern_time_after: freed with its channel */
    int64_t when, period;       /* period 0: a one-shot timer */
    tern_chan *ch;
    tern_timer t;
};

/* Live timers, for tern_csp_stats. */
static atomic_long live_timers;

long tern__time_live(void)
{
    return atomic_load_explicit(&live_timers, memory_order_relaxed);
}

static void time_destroy(tern__time *tm)
{
    tern__chan_destroy(tm->ch);
    free(tm);
    atomic_fetch_sub_explicit(&live_timers, 1, memory_order_relaxed);
}

static void on_fire(tern_timer *t);

/* Lock held: have the runtime call on_fire at tm->when. */
static void arm(tern__time *tm)
{
    TERN_ASSERT(!tm->queued && tm->active);
    /* tern__timer_start fails only with no runtime, which the
     * constructors checked: a timer lives inside tern_run */
    if (tern__timer_start(&tm->t, tm->when, on_fire) == 0)
        tm->queued = true;
}

static void on_fire(tern_timer *t)
{
    tern__time *tm = (tern__time *)((char *)t - offsetof(tern__time, t));
    tern__spin_lock(&tm->lock);
    TERN_ASSERT(tm->queued);
    tm->queued = false;
    if (tm->active) {
        int64_t now = tern_now();
        if (now >= tm->when) {
            /* a full channel drops the value: a ticker skips ticks for a
             * slow receiver, as Go's does */
            (void)tern_chan_try_send(tm->ch, &now);
            if (tm->period) {
                int64_t missed = (now - tm->when) / tm->period;
                tm->when += (missed + 1) * tm->period;
            } else {
                tm->active = false;
            }
        }
        if (tm->active)
            arm(tm);
    }
    bool gone = tm->dead && !tm->queued;
    tern__spin_unlock(&tm->lock);
    if (gone)
        time_destroy(tm);
}

/* Lock held: cancel what is owed and drop an undelivered value.  True if
 * a value was still owed or sitting unreceived (Go 1.23's Stop result). */
static bool stop_locked(tern__time *tm)
{
    bool was = tm->active;
    tm->active = false;
    if (tm->queued && tern__timer_stop(&tm->t))
        tm->queued = false;     /* else in flight: it will find !active */
    int64_t v;
    bool drained = tern_chan_try_recv(tm->ch, &v, NULL) == 0;
    return was || drained;
}

/* Lock held: (re)start at now + ns.  A callback in flight re-arms itself
 * for the new `when`; one still queued is pulled out and queued again. */
static void start_locked(tern__time *tm, int64_t ns)
{
    tm->active = true;
    tm->when = tern_deadline_after(ns < 0 ? 0 : ns);
    if (tm->queued && tern__timer_stop(&tm->t))
        tm->queued = false;
    if (!tm->queued)
        arm(tm);
}

static int time_new(int64_t ns, int64_t period, tern__time **out)
{
    *out = NULL;
    if (!tern_runtime_procs())
        return -ESRCH;
    tern__time *tm = calloc(1, sizeof *tm);
    if (!tm)
        return -ENOMEM;
    int err = tern_chan_new(sizeof(int64_t), 1, &tm->ch);
    if (err) {
        free(tm);
        return err;
    }
    tern__chan_set_timer(tm->ch, tm);
    tm->period = period;
    atomic_fetch_add_explicit(&live_timers, 1, memory_order_relaxed);
    tern__spin_lock(&tm->lock);
    start_locked(tm, ns);
    bool ok = tm->queued;
    tern__spin_unlock(&tm->lock);
    if (!ok) {                  /* the runtime ended meanwhile */
        time_destroy(tm);
        return -ESRCH;
    }
    *out = tm;
    return 0;
}

void tern__time_free(tern__time *tm)
{
    tern__spin_lock(&tm->lock);
    TERN_ASSERT(!tm->dead);
    tm->dead = true;
    stop_locked(tm);
    bool gone = !tm->queued;
    tern__spin_unlock(&tm->lock);
    if (gone)
        time_destroy(tm);
}

bool tern__time_after(const tern__time *tm)
{
    return tm->after;
}

/* ---- public ---------------------------------------------------------------- */

int tern_time_after(int64_t ns, tern_chan **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern__time *tm;
    int err = time_new(ns, 0, &tm);
    if (err)
        return err;
    tm->after = true;           /* before anyone but us can see it */
    *out = tm->ch;
    return 0;
}

int tern_time_timer_new(int64_t ns, tern_time_timer **out)
{
    TERN_CHECK_ARG(out);
    return time_new(ns, 0, (tern__time **)out);
}

tern_chan *tern_time_timer_chan(tern_time_timer *t)
{
    TERN_CHECK_ARG(t);
    return ((tern__time *)t)->ch;
}

bool tern_time_timer_stop(tern_time_timer *t)
{
    TERN_CHECK_ARG(t);
    tern__time *tm = (tern__time *)t;
    tern__spin_lock(&tm->lock);
    bool r = stop_locked(tm);
    tern__spin_unlock(&tm->lock);
    return r;
}

bool tern_time_timer_reset(tern_time_timer *t, int64_t ns)
{
    TERN_CHECK_ARG(t);
    tern__time *tm = (tern__time *)t;
    tern__spin_lock(&tm->lock);
    bool r = stop_locked(tm);
    start_locked(tm, ns);
    tern__spin_unlock(&tm->lock);
    return r;
}

void tern_time_timer_free(tern_time_timer *t)
{
    if (t)
        tern__time_free((tern__time *)t);
}

int tern_time_ticker_new(int64_t period, tern_time_ticker **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (period <= 0)
        return -EINVAL;
    return time_new(period, period, (tern__time **)out);
}

tern_chan *tern_time_ticker_chan(tern_time_ticker *t)
{
    TERN_CHECK_ARG(t);
    return ((tern__time *)t)->ch;
}

void tern_time_ticker_stop(tern_time_ticker *t)
{
    TERN_CHECK_ARG(t);
    tern__time *tm = (tern__time *)t;
    tern__spin_lock(&tm->lock);
    stop_locked(tm);
    tern__spin_unlock(&tm->lock);
}

int tern_time_ticker_reset(tern_time_ticker *t, int64_t period)
{
    TERN_CHECK_ARG(t);
    if (period <= 0)
        return -EINVAL;
    tern__time *tm = (tern__time *)t;
    tern__spin_lock(&tm->lock);
    stop_locked(tm);
    tm->period = period;
    start_locked(tm, period);
    tern__spin_unlock(&tm->lock);
    return 0;
}

void tern_time_ticker_free(tern_time_ticker *t)
{
    if (t)
        tern__time_free((tern__time *)t);
}
