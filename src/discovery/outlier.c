/*
 * outlier.c - passive health: endpoints whose calls fail are taken out of
 * the picks for a while (Envoy's outlier detection, in its two common
 * forms).
 *   consecutive failures: the n-th failure in a row ejects at once;
 *   success rate: every interval, among endpoints with enough calls in it,
 *     one whose success rate is below mean - 1.9 x the standard deviation
 *     is ejected.
 * An ejection lasts base x (times ejected), capped; each interval an
 * endpoint spends in the picks takes one off that count.  The cap on how
 * many are out at once keeps a bad deploy of the caller (every call
 * failing) from ejecting everything: then nothing is better than anything.
 * Everything here runs under the balancer's lock: the sweep is O(n) once
 * an interval or when an ejection ends, found lazily by the next pick.
 */
#include "base/check.h"
#include "discovery/internal.h"

#define SUCCESS_RATE_FACTOR 1.9

void tern__lb_set_ejected(tern_balancer *b, lb_ep *e, bool on)
{
    if (e->ejected == on)
        return;
    bool was_out = e->ejected || e->unhealthy;
    e->ejected = on;
    b->n_ejected += on ? 1 : (size_t)-1;
    b->n_out += (size_t)((e->ejected || e->unhealthy) - was_out);
}

void tern__lb_set_unhealthy(tern_balancer *b, lb_ep *e, bool on)
{
    if (e->unhealthy == on)
        return;
    bool was_out = e->ejected || e->unhealthy;
    e->unhealthy = on;
    b->n_unhealthy += on ? 1 : (size_t)-1;
    b->n_out += (size_t)((e->ejected || e->unhealthy) - was_out);
}

static bool may_eject(const tern_balancer *b)
{
    if (b->n < 2 || b->n_out + 1 >= b->n)
        return false;                   /* never the last one in */
    size_t max_out = b->n * (size_t)b->o.outlier.max_ejection_percent / 100;
    if (max_out < 1)
        max_out = 1;
    return b->n_ejected < max_out;
}

static void eject(tern_balancer *b, lb_ep *e, int64_t now)
{
    const tern_lb_outlier_options *x = &b->o.outlier;
    e->ejections++;
    int64_t t = x->base_ejection_time * e->ejections;
    if (t > x->max_ejection_time || t / e->ejections != x->base_ejection_time)
        t = x->max_ejection_time;
    tern__lb_set_ejected(b, e, true);
    e->eject_until = now + t;
    e->consecutive = 0;
    b->ejections++;
    if (e->eject_until < b->next_sweep)
        b->next_sweep = e->eject_until;
}

void tern__lb_outlier_record(tern_balancer *b, lb_ep *e, bool ok, int64_t now)
{
    const tern_lb_outlier_options *x = &b->o.outlier;
    e->win_calls++;
    if (ok) {
        e->win_ok++;
        e->consecutive = 0;
        return;
    }
    e->consecutive++;
    if (!x->disabled && x->consecutive_failures > 0 && !e->ejected &&
        e->consecutive >= x->consecutive_failures && may_eject(b))
        eject(b, e, now);
}

/* Success-rate ejection over this interval's calls. */
static void success_rate_sweep(tern_balancer *b, int64_t now)
{
    const tern_lb_outlier_options *x = &b->o.outlier;
    double sum = 0, sum2 = 0;
    int hosts = 0;
    for (size_t i = 0; i < b->n; i++) {
        const lb_ep *e = b->eps[i];
        if (e->ejected || e->win_calls < (uint64_t)x->success_rate_min_calls)
            continue;
        double r = (double)e->win_ok / (double)e->win_calls;
        sum += r;
        sum2 += r * r;
        hosts++;
    }
    if (hosts < x->success_rate_min_hosts)
        return;
    double mean = sum / hosts;
    double var = sum2 / hosts - mean * mean;
    if (var < 0)
        var = 0;
    for (size_t i = 0; i < b->n && may_eject(b); i++) {
        lb_ep *e = b->eps[i];
        if (e->ejected || e->win_calls < (uint64_t)x->success_rate_min_calls)
            continue;
        double d = mean - (double)e->win_ok / (double)e->win_calls;
        /* below mean - 1.9 sd, compared squared: no sqrt */
        if (d > 0 && d * d > SUCCESS_RATE_FACTOR * SUCCESS_RATE_FACTOR * var)
            eject(b, e, now);
    }
}

void tern__lb_outlier_sweep(tern_balancer *b, int64_t now)
{
    const tern_lb_outlier_options *x = &b->o.outlier;
    /* an ejection ending brings us here before the interval is over */
    bool interval_over = now >= b->interval_end;
    if (interval_over)
        b->interval_end = now + x->interval;
    int64_t next = b->interval_end;
    for (size_t i = 0; i < b->n; i++) {
        lb_ep *e = b->eps[i];
        if (e->ejected && now >= e->eject_until) {
            tern__lb_set_ejected(b, e, false);
            e->consecutive = 0;
        }
        if (e->ejected && e->eject_until < next)
            next = e->eject_until;
    }
    if (interval_over && !x->disabled) {
        if (x->success_rate_min_calls > 0)
            success_rate_sweep(b, now);
        for (size_t i = 0; i < b->n; i++) {
            lb_ep *e = b->eps[i];
            if (!e->ejected && e->ejections > 0 && e->win_calls > 0 && e->win_ok == e->win_calls)
                e->ejections--;         /* a clean interval in: forgive one */
            e->win_calls = e->win_ok = 0;
        }
    }
    for (size_t i = 0; i < b->n; i++)         /* ejected by the success-rate sweep */
        if (b->eps[i]->ejected && b->eps[i]->eject_until < next)
            next = b->eps[i]->eject_until;
    b->next_sweep = next;
}
