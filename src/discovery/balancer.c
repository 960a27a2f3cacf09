/*
 * balancer.c - a balancer's set of endpoints: updates that keep the state
 * of endpoints that stay, picks that hold a reference on their endpoint,
 * and done, which feeds latency and outcome back to the policies and to
 * outlier ejection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "discovery/internal.h"
#include "tern/runtime.h"

#define MAX_WEIGHT 10000
#define DEFAULT_RING_NODES 100
#define DEFAULT_MAGLEV 65537u
#define DEFAULT_DECAY (10 * TERN_SEC)

static int fill_defaults(tern_balancer_options *o)
{
    if ((unsigned)o->policy > TERN_LB_MAGLEV || o->ring_nodes_per_weight < 0 || o->ewma_decay < 0)
        return -EINVAL;
    if (!o->ring_nodes_per_weight)
        o->ring_nodes_per_weight = DEFAULT_RING_NODES;
    if (o->ring_nodes_per_weight > 10000)
        return -EINVAL;
    if (!o->maglev_table_size)
        o->maglev_table_size = DEFAULT_MAGLEV;
    if (o->maglev_table_size < 3 || !tern__lb_is_prime(o->maglev_table_size) ||
        o->maglev_table_size > (1u << 24))
        return -EINVAL;
    if (!o->ewma_decay)
        o->ewma_decay = DEFAULT_DECAY;
    tern_lb_outlier_options *x = &o->outlier;
    if (x->interval < 0 || x->base_ejection_time < 0 || x->max_ejection_time < 0 ||
        x->max_ejection_percent < 0 || x->max_ejection_percent > 100 || x->success_rate_min_hosts < 0)
        return -EINVAL;
    if (!x->consecutive_failures)
        x->consecutive_failures = 5;
    if (!x->interval)
        x->interval = 10 * TERN_SEC;
    if (!x->success_rate_min_calls)
        x->success_rate_min_calls = 100;
    if (!x->success_rate_min_hosts)
        x->success_rate_min_hosts = 3;
    if (!x->base_ejection_time)
        x->base_ejection_time = 30 * TERN_SEC;
    if (!x->max_ejection_time)
        x->max_ejection_time = 300 * TERN_SEC;
    if (x->max_ejection_time < x->base_ejection_time)
        x->max_ejection_time = x->base_ejection_time;
    if (!x->max_ejection_percent)
        x->max_ejection_percent = 50;
    return 0;
}

int tern_balancer_new(const tern_balancer_options *o, tern_balancer **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_balancer_options opts = o ? *o : (tern_balancer_options){0};
    int rc = fill_defaults(&opts);
    if (rc < 0)
        return rc;
    tern_balancer *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->o = opts;
    b->next_sweep = b->interval_end = tern_now() + opts.outlier.interval;
    *out = b;
    return 0;
}

void tern__lb_ep_unref(lb_ep *e)
{
    TERN_ASSERT(e->refs > 0);
    if (--e->refs == 0) {
        free(e->addr);
        free(e);
    }
}

void tern_balancer_free(tern_balancer *b)
{
    if (!b)
        return;
    if (b->health)
        tern__lb_health_stop(b);
    for (size_t i = 0; i < b->n; i++) {
        if (b->eps[i]->refs != 1) {
            fprintf(stderr, "tern: tern_balancer_free: %s still has a pick not done (a programmer error)\n",
                    b->eps[i]->addr);
            abort();
        }
        tern__lb_ep_unref(b->eps[i]);
    }
    free(b->eps);
    tern__lb_ring_free(&b->ring);
    free(b->maglev);
    free(b);
}

static int addr_cmp(const void *a, const void *b)
{
    return strcmp((*(lb_ep *const *)a)->addr, (*(lb_ep *const *)b)->addr);
}

static int check_set(const tern_endpoint *eps, size_t n)
{
    if (n && !eps)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!eps[i].addr || !*eps[i].addr || eps[i].weight > MAX_WEIGHT)
            return -EINVAL;
    return 0;
}

int tern_balancer_update(tern_balancer *b, const tern_endpoint *eps, size_t n)
{
    TERN_CHECK_ARG(b);
    int rc = check_set(eps, n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(eps[j].addr, eps[i].addr))
                return -EINVAL;         /* the same addr twice */
    /* The new set in the given order, reusing the old endpoint (and its
     * state) where an addr stays.  The old set is taken under the lock
     * with a reference on each, matched outside it by binary search, and
     * the tables are built outside it too, from the addrs (immutable) and
     * the new weights; only the swap is under the lock. */
    lb_ep **next = n ? calloc(n, sizeof *next) : NULL;
    bool *fresh = n ? calloc(n, sizeof *fresh) : NULL;
    const char **addrs = n ? calloc(n, sizeof *addrs) : NULL;
    uint32_t *weights = n ? calloc(n, sizeof *weights) : NULL;
    lb_ep **sorted = NULL;
    size_t old_n = 0;
    if (n && (!next || !fresh || !addrs || !weights))
        rc = -ENOMEM;
    if (rc == 0) {
        tern__spin_lock(&b->lock);
        old_n = b->n;
        sorted = old_n ? malloc(old_n * sizeof *sorted) : NULL;
        if (old_n && sorted) {
            memcpy(sorted, b->eps, old_n * sizeof *sorted);
            for (size_t i = 0; i < old_n; i++)
                sorted[i]->refs++;
        }
        tern__spin_unlock(&b->lock);
        if (old_n && !sorted) {
            old_n = 0;
            rc = -ENOMEM;
        }
    }
    if (old_n)
        qsort(sorted, old_n, sizeof *sorted, addr_cmp);
    int64_t now = tern_now();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        lb_ep key = {.addr = (char *)eps[i].addr}, *kp = &key;
        lb_ep **found = old_n ? bsearch(&kp, sorted, old_n, sizeof *sorted, addr_cmp) : NULL;
        if (found) {
            next[i] = *found;
        } else {
            lb_ep *e = calloc(1, sizeof *e);
            if (!e || !(e->addr = strdup(eps[i].addr))) {
                free(e);
                rc = -ENOMEM;
                break;
            }
            e->success = 1.0;
            e->last_pick = now;
            e->refs = 1;                /* the new set's */
            next[i] = e;
            fresh[i] = true;
        }
        addrs[i] = next[i]->addr;
        weights[i] = eps[i].weight ? eps[i].weight : 1;
    }
    lb_ring ring = {0};
    uint32_t *maglev = NULL;
    if (rc == 0 && n && b->o.policy == TERN_LB_RING_HASH)
        rc = tern__lb_ring_build(&ring, addrs, weights, n, b->o.ring_nodes_per_weight);
    if (rc == 0 && n && b->o.policy == TERN_LB_MAGLEV)
        rc = tern__lb_maglev_build(&maglev, b->o.maglev_table_size, addrs, weights, n);

    tern__spin_lock(&b->lock);
    lb_ep **old = NULL;
    lb_ring old_ring = {0};
    uint32_t *old_maglev = NULL;
    if (rc == 0) {
        /* references: +1 for each member of the new set (fresh ones have
         * theirs), then -1 for each of the old; kept ones net nothing */
        for (size_t i = 0; i < n; i++)
            if (!fresh[i])
                next[i]->refs++;
        for (size_t i = 0; i < b->n; i++) {
            b->eps[i]->member = false;
            tern__lb_ep_unref(b->eps[i]);
        }
        size_t ejected = 0, unhealthy = 0, out = 0;
        for (size_t i = 0; i < n; i++) {
            next[i]->member = true;
            next[i]->weight = weights[i];
            next[i]->wrr_current = 0;
            ejected += next[i]->ejected;
            unhealthy += next[i]->unhealthy;
            out += next[i]->ejected || next[i]->unhealthy;
        }
        old = b->eps;
        old_ring = b->ring;
        old_maglev = b->maglev;
        b->eps = next;
        b->n = n;
        b->n_ejected = ejected;
        b->n_unhealthy = unhealthy;
        b->n_out = out;
        b->ring = ring;
        b->maglev = maglev;
        next = NULL;
    } else {
        for (size_t i = 0; next && i < n; i++)
            if (fresh[i] && next[i])
                tern__lb_ep_unref(next[i]);
        old_ring = ring;
        old_maglev = maglev;
    }
    for (size_t i = 0; i < old_n; i++)
        tern__lb_ep_unref(sorted[i]);            /* the matching's references */
    tern__spin_unlock(&b->lock);
    free(old);
    free(next);
    tern__lb_ring_free(&old_ring);
    free(old_maglev);
    free(sorted);
    free(fresh);
    free(addrs);
    free(weights);
    return rc;
}

int tern_balancer_pick(tern_balancer *b, const void *key, size_t key_len, tern_lb_pick *out)
{
    TERN_CHECK_ARG(b);
    TERN_CHECK_ARG(out);
    int64_t now = tern_now();
    tern__spin_lock(&b->lock);
    if (b->n == 0) {
        tern__spin_unlock(&b->lock);
        out->addr = NULL;
        out->ep_ = NULL;
        return -ENOENT;
    }
    if (now >= b->next_sweep)
        tern__lb_outlier_sweep(b, now);
    size_t i;
    switch (b->o.policy) {
    case TERN_LB_ROUND_ROBIN: i = tern__lb_pick_rr(b); break;
    case TERN_LB_WEIGHTED_ROUND_ROBIN: i = tern__lb_pick_wrr(b); break;
    case TERN_LB_RING_HASH:
        i = key ? tern__lb_ring_pick(b, tern__lb_hash(key, key_len, 0)) : tern__lb_pick_random(b);
        break;
    case TERN_LB_MAGLEV:
        i = key ? tern__lb_maglev_pick(b, tern__lb_hash(key, key_len, 0)) : tern__lb_pick_random(b);
        break;
    default: i = tern__lb_pick_p2c(b, now); break;
    }
    TERN_ASSERT(i < b->n);
    lb_ep *e = b->eps[i];
    e->refs++;
    e->in_flight++;
    e->picks++;
    e->last_pick = now;
    b->picks++;
    tern__spin_unlock(&b->lock);
    out->addr = e->addr;
    out->ep_ = e;
    out->start_ = now;
    return 0;
}

/* Fold a latency sample into the endpoint's EWMA, weighting the old value
 * by how recent it is: w = decay / (decay + dt), a rational stand-in for
 * exp(-dt/decay) (equal to first order, and no libm call under the lock). */
static void ewma_add(const tern_balancer *b, lb_ep *e, double sample, bool ok, int64_t now)
{
    int64_t dt = now - e->ewma_at;
    if (dt < 0)
        dt = 0;
    double w = (double)b->o.ewma_decay / (double)(b->o.ewma_decay + dt);
    e->ewma = e->ewma == 0 ? sample : e->ewma * w + sample * (1 - w);
    e->success = e->success * w + (ok ? 1.0 : 0.0) * (1 - w);
    e->ewma_at = now;
}

void tern_balancer_done(tern_balancer *b, tern_lb_pick *p, int64_t latency, tern_lb_outcome outcome)
{
    TERN_CHECK_ARG(b);
    TERN_CHECK_ARG(p);
    lb_ep *e = p->ep_;
    if (!e) {
        fprintf(stderr, "tern: tern_balancer_done: a pick that is not outstanding (a programmer error)\n");
        abort();
    }
    int64_t now = tern_now();
    if (latency < 0)
        latency = now - p->start_;
    tern__spin_lock(&b->lock);
    TERN_ASSERT(e->in_flight > 0);
    e->in_flight--;
    if (outcome != TERN_LB_LOCAL) {
        bool ok = outcome == TERN_LB_OK;
        ewma_add(b, e, (double)latency, ok, now);
        if (!ok)
            e->failures++;
        if (e->member)
            tern__lb_outlier_record(b, e, ok, now);
    }
    tern__lb_ep_unref(e);
    tern__spin_unlock(&b->lock);
    p->ep_ = NULL;
    p->addr = NULL;
}

int tern_balancer_stats(const tern_balancer *b, struct tern_balancer_stats *out)
{
    TERN_CHECK_ARG(b);
    TERN_CHECK_ARG(out);
    tern_balancer *m = (tern_balancer *)b;      /* the lock is not part of its value */
    tern__spin_lock(&m->lock);
    *out = (struct tern_balancer_stats){
        .endpoints = b->n, .ejected = b->n_ejected, .unhealthy = b->n_unhealthy, .picks = b->picks, .ejections = b->ejections,
    };
    tern__spin_unlock(&m->lock);
    return 0;
}

size_t tern_balancer_endpoint_stats(const tern_balancer *b, tern_lb_endpoint_stats *out, size_t n)
{
    TERN_CHECK_ARG(b);
    tern_balancer *m = (tern_balancer *)b;
    tern__spin_lock(&m->lock);
    for (size_t i = 0; i < b->n && i < n; i++) {
        const lb_ep *e = b->eps[i];
        out[i] = (tern_lb_endpoint_stats){
            .weight = e->weight, .in_flight = e->in_flight, .picks = e->picks,
            .failures = e->failures, .ewma_latency = (int64_t)e->ewma, .ejected = e->ejected,
            .unhealthy = e->unhealthy,
            .ejections = e->ejections,
        };
        snprintf(out[i].addr, sizeof out[i].addr, "%s", e->addr);
    }
    size_t total = b->n;
    tern__spin_unlock(&m->lock);
    return total;
}
