/*
 * resolver.c - the resolver interface (a struct of operations over an
 * implementation), the static resolver, waiting for the first update, and
 * a balancer following a resolver.
 *
 * Updates are whole sets, not deltas: a resolver that learns of changes
 * one by one (an etcd watch) keeps its set and hands over the whole of it;
 * consumers diff as they need (tern_balancer_update keeps the state of
 * endpoints that stay).  Sets are small (tens to hundreds), changes rare.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "tern/discovery.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/sync.h"

struct tern_resolver {
    const tern_resolver_ops *ops;
    void *impl;
    tern_resolver_update_fn *fn;
    void *arg;
    bool started;
    tern_mutex mu;              /* guards the fields below */
    tern_cond cv;
    bool have_first;
    int first_err;
};

int tern_resolver_new(const tern_resolver_ops *ops, void *impl, tern_resolver **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!ops || !ops->start || !ops->stop || !ops->free) {
        if (ops && ops->free)
            ops->free(impl);
        return -EINVAL;
    }
    tern_resolver *r = calloc(1, sizeof *r);
    if (!r) {
        ops->free(impl);
        return -ENOMEM;
    }
    r->ops = ops;
    r->impl = impl;
    *out = r;
    return 0;
}

/* Updates run under mu, so that unwatch can wait out a running one. */
static void deliver(const tern_endpoint *eps, size_t n, int err, void *arg)
{
    tern_resolver *r = arg;
    tern_mutex_lock(&r->mu);
    if (!r->have_first) {
        r->have_first = true;
        r->first_err = err;
        tern_cond_broadcast(&r->cv);
    }
    if (r->fn)
        r->fn(eps, n, err, r->arg);
    tern_mutex_unlock(&r->mu);
}

void tern_resolver_unwatch(tern_resolver *r)
{
    TERN_CHECK_ARG(r);
    tern_mutex_lock(&r->mu);
    r->fn = NULL;
    tern_mutex_unlock(&r->mu);
}

int tern_resolver_watch(tern_resolver *r, tern_resolver_update_fn *fn, void *arg)
{
    TERN_CHECK_ARG(r);
    TERN_CHECK_ARG(fn);
    if (r->started)
        return -EBUSY;
    tern_mutex_lock(&r->mu);
    r->fn = fn;
    r->arg = arg;
    tern_mutex_unlock(&r->mu);
    r->started = true;
    int rc = r->ops->start(r->impl, deliver, r);
    if (rc < 0)
        r->started = false;
    return rc;
}

int tern_resolver_wait(tern_resolver *r, tern_ctx *ctx)
{
    TERN_CHECK_ARG(r);
    tern_mutex_lock(&r->mu);
    int rc = 0;
    while (!r->have_first && rc == 0)
        rc = tern_cond_wait(&r->cv, &r->mu, ctx);
    if (rc == 0)
        rc = r->first_err;
    tern_mutex_unlock(&r->mu);
    return rc;
}

void tern_resolver_free(tern_resolver *r)
{
    if (!r)
        return;
    if (r->started)
        r->ops->stop(r->impl);
    r->ops->free(r->impl);
    free(r);
}

/* ---- static ---- */

typedef struct static_set {
    tern_endpoint *eps;
    size_t n;
} static_set;

static void static_free(void *impl)
{
    static_set *s = impl;
    for (size_t i = 0; i < s->n; i++)
        free((char *)s->eps[i].addr);
    free(s->eps);
    free(s);
}

static int static_start(void *impl, tern_resolver_update_fn *update, void *arg)
{
    static_set *s = impl;
    update(s->eps, s->n, 0, arg);
    return 0;
}

static void static_stop(void *impl)
{
    (void)impl;
}

static const tern_resolver_ops static_ops = {static_start, static_stop, static_free};

int tern_resolver_static_new(const tern_endpoint *eps, size_t n, tern_resolver **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (n && !eps)
        return -EINVAL;
    static_set *s = calloc(1, sizeof *s);
    if (!s || (n && !(s->eps = calloc(n, sizeof *s->eps)))) {
        free(s);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (!eps[i].addr || !*eps[i].addr) {
            static_free(s);
            return -EINVAL;
        }
        if (!(s->eps[i].addr = strdup(eps[i].addr))) {
            static_free(s);
            return -ENOMEM;
        }
        s->eps[i].weight = eps[i].weight;
        s->n = i + 1;
    }
    return tern_resolver_new(&static_ops, s, out);
}

/* ---- a balancer following a resolver ---- */

static void to_balancer(const tern_endpoint *eps, size_t n, int err, void *arg)
{
    if (err < 0)
        return;                         /* keep the set we have */
    int rc = tern_balancer_update(arg, eps, n);
    if (rc < 0)     /* a bad set (an addr twice) is dropped whole; the old one stays */
        tern_log_warn("balancer refused a resolver's set, keeping its own",
                      TERN_LOG_INT("endpoints", (int64_t)n), TERN_LOG_STR("error", tern_strerror(rc)));
}

int tern_balancer_follow(tern_balancer *b, tern_resolver *r)
{
    TERN_CHECK_ARG(b);
    return tern_resolver_watch(r, to_balancer, b);
}
