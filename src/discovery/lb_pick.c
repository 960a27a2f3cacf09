/*
 * lb_pick.c - the policies that pick without a key, under the balancer's
 * lock with at least one endpoint:
 *   p2c: two endpoints drawn at random, the lower load wins, load being
 *        EWMA latency x (in-flight + 1) / EWMA success (an endpoint that
 *        fails looks slower in proportion), an unmeasured endpoint taking
 *        the latency of the other.  An endpoint's latency fades toward 0
 *        while no sample comes (read as ewma x exp(-age / decay), as Finagle's
 *        peak EWMA reads its cost), so that one slow first
 *        sample, a dial's say, does not starve an endpoint for good: the
 *        longer it goes unpicked the cheaper it looks, until a pick
 *        measures it again.  Besides, the loser is taken if it has not been
 *        picked for a second (go-zero's balancer does the same), which
 *        bounds the wait when the decay is long
 *   round robin, skipping endpoints that are out (ejected, unhealthy)
 *   smooth weighted round robin (nginx's): each pick adds every
 *        endpoint's weight to its running total, takes the largest total
 *        and subtracts the sum of weights from it, so weights 5:1:1 give
 *        a a b a c a a, not a a a a a b c
 */
#include <math.h>

#include "base/rand.h"
#include "discovery/internal.h"
#include "tern/runtime.h"

#define FORCE_PICK (1 * TERN_SEC)

size_t tern__lb_pick_random(tern_balancer *b)
{
    /* usually most are in: a few draws find one */
    for (int k = 0; k < 8; k++) {
        size_t i = tern__rand64() % b->n;
        if (!lb_out(b, b->eps[i]))
            return i;
    }
    size_t start = tern__rand64() % b->n;
    for (size_t k = 0; k < b->n; k++) {
        size_t i = (start + k) % b->n;
        if (!lb_out(b, b->eps[i]))
            return i;
    }
    return start;
}

/* e's latency now: its EWMA faded by the time since its last sample.  An
 * exponential, not ewma_add's rational weight, whose long tail would keep
 * an endpoint that once looked 100x slower away for 100 decays, not 5 */
static double latency_now(const tern_balancer *b, const lb_ep *e, int64_t now)
{
    int64_t age = now - e->ewma_at;
    if (age <= 0 || e->ewma == 0)
        return e->ewma;
    return e->ewma * exp(-(double)age / (double)b->o.ewma_decay);
}

/* unmeasured: the latency of the endpoint it is compared with, so that a
 * new endpoint competes on in-flight calls alone (not flooded for looking
 * free, not starved for looking slow) */
static double load(const lb_ep *e, double lat, double other_lat)
{
    if (e->ewma == 0)
        lat = other_lat;
    double success = e->success < 0.05 ? 0.05 : e->success;
    return (lat + 1.0) * (double)(e->in_flight + 1) / success;
}

size_t tern__lb_pick_p2c(tern_balancer *b, int64_t now)
{
    if (b->n == 1)
        return 0;
    size_t a = tern__lb_pick_random(b);
    size_t c = tern__lb_pick_random(b);
    if (c == a && (b->n_out >= b->n ? b->n : b->n - b->n_out) >= 2) {
        /* a distinct second: the next one in */
        for (size_t k = 1; k < b->n; k++) {
            size_t i = (a + k) % b->n;
            if (!lb_out(b, b->eps[i])) {
                c = i;
                break;
            }
        }
    }
    const lb_ep *ea = b->eps[a], *ec = b->eps[c];
    double la = latency_now(b, ea, now), lc = latency_now(b, ec, now);
    size_t win = load(ea, la, lc) <= load(ec, lc, la) ? a : c;
    size_t lose = win == a ? c : a;
    if (lose != win && now - b->eps[lose]->last_pick > FORCE_PICK)
        return lose;
    return win;
}

size_t tern__lb_pick_rr(tern_balancer *b)
{
    for (size_t k = 0; k < b->n; k++) {
        size_t i = b->rr_next++ % b->n;
        if (!lb_out(b, b->eps[i]))
            return i;
    }
    return b->rr_next++ % b->n;
}

size_t tern__lb_pick_wrr(tern_balancer *b)
{
    int64_t total = 0;
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < b->n; i++) {
        lb_ep *e = b->eps[i];
        if (lb_out(b, e))
            continue;
        e->wrr_current += e->weight;
        total += e->weight;
        if (best == SIZE_MAX || e->wrr_current > b->eps[best]->wrr_current)
            best = i;
    }
    if (best == SIZE_MAX)
        return tern__lb_pick_rr(b);
    b->eps[best]->wrr_current -= total;
    return best;
}
