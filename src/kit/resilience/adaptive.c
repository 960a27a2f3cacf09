/*
 * adaptive.c - an adaptive concurrency limit after Netflix's
 * concurrency-limits Gradient2: Little's law says that at a fixed
 * throughput more concurrency only adds queueing, which shows up as RTT
 * above the long-term norm, so the limit is scaled by long / short RTT.
 *
 * Per sample (under the lock):
 *   long   <- long + (rtt - long) * 2 / (long_window + 1)   (first: rtt)
 *             and, when long > 2 * rtt, long *= 0.95 so that a past
 *             congestion does not keep the norm high forever;
 *   unless in_flight < limit / 2 (no evidence of need):
 *   grad   = clamp(tolerance * long / rtt, 0.5, 1)
 *   new    = limit * grad + sqrt(limit)
 *   limit <- clamp(limit * (1 - smoothing) + new * smoothing, min, max)
 * With a steady RTT grad is 1 and the limit creeps up by
 * smoothing * sqrt(limit); with RTT at tolerance * 2 the norm or more it
 * halves (smoothed).  A dropped call cuts the limit by 10% (a timeout
 * says more about overload than any RTT).
 */
#include "kit/resilience/internal.h"

#include "base/check.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct tern_adaptive {
    tern__spin lock;
    tern_adaptive_options o;
    double limit;
    double long_rtt;            /* ns; 0 before the first sample */
    int in_flight;
    _Atomic uint64_t acquired, shed, dropped;
};

int tern_adaptive_new(const tern_adaptive_options *o, tern_adaptive **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    static const tern_adaptive_options defaults = {0};
    if (!o)
        o = &defaults;
    tern_adaptive_options v = *o;
    if (!v.initial)
        v.initial = 20;
    if (!v.min)
        v.min = 1;
    if (!v.max)
        v.max = 1000;
    if (v.smoothing == 0)
        v.smoothing = 0.2;
    if (v.tolerance == 0)
        v.tolerance = 1.5;
    if (!v.long_window)
        v.long_window = 600;
    if (v.min < 1 || v.max < v.min || v.initial < v.min || v.initial > v.max ||
        v.smoothing < 0 || v.smoothing > 1 || v.tolerance < 1 || v.long_window < 1)
        return -EINVAL;
    tern_adaptive *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->o = v;
    a->limit = v.initial;
    *out = a;
    return 0;
}

void tern_adaptive_free(tern_adaptive *a)
{
    free(a);
}

int tern_adaptive_acquire(tern_adaptive *a, int64_t *start)
{
    TERN_CHECK_ARG(a);
    int64_t now = tern__resil_now(a->o.now, a->o.clock_arg);
    tern__spin_lock(&a->lock);
    TERN_ASSERT(a->in_flight >= 0 && a->limit >= a->o.min && a->limit <= a->o.max);
    bool ok = a->in_flight < (int)a->limit;
    if (ok)
        a->in_flight++;
    tern__spin_unlock(&a->lock);
    if (!ok) {
        tern__count(&a->shed);
        return -EBUSY;
    }
    tern__count(&a->acquired);
    *start = now;
    return 0;
}

static double clamp(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Under the lock. */
static void sample(tern_adaptive *a, double rtt, int in_flight)
{
    if (rtt < 1)
        rtt = 1;
    if (a->long_rtt == 0)
        a->long_rtt = rtt;
    else
        a->long_rtt += (rtt - a->long_rtt) * 2 / (a->o.long_window + 1);
    if (a->long_rtt > 2 * rtt)
        a->long_rtt *= 0.95;
    if (in_flight < a->limit / 2)
        return;
    TERN_ASSERT(a->long_rtt > 0 && rtt >= 1);
    double grad = clamp(a->o.tolerance * a->long_rtt / rtt, 0.5, 1.0);
    double next = a->limit * grad + sqrt(a->limit);
    a->limit = clamp(a->limit * (1 - a->o.smoothing) + next * a->o.smoothing, a->o.min,
                     a->o.max);
    TERN_ASSERT(a->limit >= a->o.min && a->limit <= a->o.max);
}

void tern_adaptive_release(tern_adaptive *a, int64_t start, bool dropped)
{
    TERN_CHECK_ARG(a);
    int64_t now = tern__resil_now(a->o.now, a->o.clock_arg);
    if (dropped)
        tern__count(&a->dropped);
    tern__spin_lock(&a->lock);
    int in_flight = a->in_flight--;
    TERN_ASSERT(in_flight > 0);         /* never negative: a release per acquire */
    if (dropped)
        a->limit = clamp(a->limit * 0.9, a->o.min, a->o.max);
    else
        sample(a, (double)(now - start), in_flight);
    tern__spin_unlock(&a->lock);
}

int tern_adaptive_limit(tern_adaptive *a)
{
    TERN_CHECK_ARG(a);
    tern__spin_lock(&a->lock);
    int v = (int)a->limit;
    tern__spin_unlock(&a->lock);
    return v;
}

int tern_adaptive_stats(const tern_adaptive *a, struct tern_adaptive_stats *out)
{
    TERN_CHECK_ARG(a);
    TERN_CHECK_ARG(out);
    /* The lock guards the fields read, not a value the reader changes. */
    tern_adaptive *lock_owner = (tern_adaptive *)a;
    out->acquired = tern__load(&a->acquired);
    out->shed = tern__load(&a->shed);
    out->dropped = tern__load(&a->dropped);
    tern__spin_lock(&lock_owner->lock);
    out->in_flight = (uint64_t)a->in_flight;
    out->limit = (uint64_t)a->limit;
    tern__spin_unlock(&lock_owner->lock);
    return 0;
}
