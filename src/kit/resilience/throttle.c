/*
 * throttle.c - client-side adaptive throttling from Google's SRE book
 * ("Handling Overload"): over a rolling window the client counts what it
 * asked for (requests) and what the backend took (accepts), and refuses
 * locally with probability max(0, (requests - k*accepts) / (requests + 1)).
 *
 * With k = 2 the backend sees at most about twice what it accepts, so a
 * struggling backend still gets enough traffic to show it has recovered;
 * locally refused requests count as requests, which is what makes the
 * probability rise while the backend keeps refusing.
 */
#include "kit/resilience/internal.h"

#include "base/check.h"

#include <errno.h>
#include <stdlib.h>

struct tern_throttle {
    tern__spin lock;
    tern_throttle_options o;
    tern__window win;           /* a: requests, b: accepts */
    _Atomic uint64_t requests, accepts, throttled;
};

int tern_throttle_new(const tern_throttle_options *o, tern_throttle **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    static const tern_throttle_options defaults = {0};
    if (!o)
        o = &defaults;
    if (o->k < 0 || o->window < 0 || o->buckets < 0 || o->buckets > TERN_WINDOW_MAX)
        return -EINVAL;
    tern_throttle *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->o = *o;
    if (t->o.k == 0)
        t->o.k = 2.0;
    if (!t->o.window)
        t->o.window = 60 * TERN_SEC;
    if (!t->o.buckets)
        t->o.buckets = 20;
    if (t->o.window < t->o.buckets) {
        free(t);
        return -EINVAL;
    }
    tern__window_init(&t->win, t->o.window, t->o.buckets);
    *out = t;
    return 0;
}

void tern_throttle_free(tern_throttle *t)
{
    free(t);
}

/* Under the lock. */
static double probability(tern_throttle *t, int64_t now)
{
    uint64_t req, acc;
    tern__window_sum(&t->win, now, &req, &acc);
    double p = ((double)req - t->o.k * (double)acc) / ((double)req + 1);
    TERN_ASSERT(p < 1);                 /* some traffic always gets through */
    return p > 0 ? p : 0;
}

int tern_throttle_allow(tern_throttle *t)
{
    TERN_CHECK_ARG(t);
    int64_t now = tern__resil_now(t->o.now, t->o.clock_arg);
    double r = t->o.random ? t->o.random(t->o.random_arg) : tern__rand01();
    tern__spin_lock(&t->lock);
    bool refuse = r < probability(t, now);
    tern__window_add(&t->win, now, 1, 0);
    tern__spin_unlock(&t->lock);
    tern__count(&t->requests);
    if (refuse) {
        tern__count(&t->throttled);
        return -EAGAIN;
    }
    return 0;
}

void tern_throttle_record(tern_throttle *t, bool accepted)
{
    TERN_CHECK_ARG(t);
    if (!accepted)
        return;
    int64_t now = tern__resil_now(t->o.now, t->o.clock_arg);
    tern__spin_lock(&t->lock);
    tern__window_add(&t->win, now, 0, 1);
    tern__spin_unlock(&t->lock);
    tern__count(&t->accepts);
}

double tern_throttle_probability(tern_throttle *t)
{
    TERN_CHECK_ARG(t);
    int64_t now = tern__resil_now(t->o.now, t->o.clock_arg);
    tern__spin_lock(&t->lock);
    double p = probability(t, now);
    tern__spin_unlock(&t->lock);
    return p;
}

int tern_throttle_stats(const tern_throttle *t, struct tern_throttle_stats *out)
{
    TERN_CHECK_ARG(t);
    TERN_CHECK_ARG(out);
    out->requests = tern__load(&t->requests);
    out->accepts = tern__load(&t->accepts);
    out->throttled = tern__load(&t->throttled);
    return 0;
}
