/*
 * client.c - tern_resilient_client_do: one HTTP call made to
 * survive a flaky network and a struggling server.
 *
 * Order of the guards on each attempt: the context (done: stop), the
 * host's breaker or throttle (refused: -EAGAIN, no network), the request
 * (hedged when allowed), the outcome fed back to the guard, and then the
 * retry decision: idempotent method, retryable result, attempts left, a
 * backoff that ends before the deadline, and a token from the budget.
 *
 * Responses are handed out with the context their body reads depend on
 * (a hedge leg's or a per-attempt timeout's); `owned` maps each such
 * response to those contexts until tern_resilient_client_response_free.
 */
#include "kit/resilience/internal.h"

#include "base/check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct host {
    struct host *next;
    tern_breaker *breaker;
    tern_throttle *throttle;
    char name[];
} host;

typedef struct owned {
    struct owned *next;
    tern_http_client_response *resp;
    tern_ctx *ctx[2];
} owned;

struct tern_resilient_client {
    tern_resilient_client_options o;
    tern_breaker_options bo;
    tern_throttle_options to;
    tern_retry_budget *budget;
    tern_waitgroup legs;        /* hedge request coroutines alive */
    tern__spin lock;             /* hosts and owned */
    host *hosts;
    owned *owned;
    _Atomic uint64_t calls, attempts, retried, budget_exhausted, rejected, hedged, hedge_wins,
        cancelled;
};

int tern_resilient_client_new(const tern_resilient_client_options *o,
                              tern_resilient_client **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o || !o->client || (o->breaker && o->throttle) || o->max_attempts < 0 ||
        o->backoff_base < 0 || o->backoff_cap < 0 || o->attempt_timeout < 0 ||
        o->hedge_delay < 0)
        return -EINVAL;
    tern_resilient_client *rc = calloc(1, sizeof *rc);
    if (!rc)
        return -ENOMEM;
    rc->o = *o;
    if (!rc->o.max_attempts)
        rc->o.max_attempts = 3;
    if (!rc->o.backoff_base)
        rc->o.backoff_base = 10 * TERN_MS;
    if (!rc->o.backoff_cap)
        rc->o.backoff_cap = TERN_SEC;
    if (!rc->o.retryable)
        rc->o.retryable = tern_retry_default_retryable;
    if (o->breaker)
        rc->bo = *o->breaker;
    if (o->throttle)
        rc->to = *o->throttle;
    if (!rc->bo.now) {
        rc->bo.now = o->now;
        rc->bo.clock_arg = o->clock_arg;
    }
    if (!rc->to.now) {
        rc->to.now = o->now;
        rc->to.clock_arg = o->clock_arg;
    }
    rc->o.breaker = o->breaker ? &rc->bo : NULL;
    rc->o.throttle = o->throttle ? &rc->to : NULL;
    /* validate the guards' options once, here, rather than per host */
    int e = 0;
    if (o->breaker) {
        tern_breaker *b;
        if ((e = tern_breaker_new(&rc->bo, &b)) == 0)
            tern_breaker_free(b);
    } else if (o->throttle) {
        tern_throttle *t;
        if ((e = tern_throttle_new(&rc->to, &t)) == 0)
            tern_throttle_free(t);
    }
    if (e == 0 && o->budget) {
        tern_retry_budget_options bo = *o->budget;
        if (!bo.now) {
            bo.now = o->now;
            bo.clock_arg = o->clock_arg;
        }
        e = tern_retry_budget_new(&bo, &rc->budget);
    }
    if (e < 0) {
        free(rc);
        return e;
    }
    rc->o.budget = NULL;        /* the caller's struct need not outlive rc */
    *out = rc;
    return 0;
}

void tern_resilient_client_free(tern_resilient_client *rc)
{
    if (!rc)
        return;
    if (rc->owned) {
        fprintf(stderr, "tern: tern_resilient_client_free with responses not released\n");
        abort();
    }
    /* a losing hedge request ends soon after its cancellation; its
     * response belongs to the borrowed client, which may be freed next */
    tern_waitgroup_wait(&rc->legs, NULL);
    for (host *h = rc->hosts, *n; h; h = n) {
        n = h->next;
        tern_breaker_free(h->breaker);
        tern_throttle_free(h->throttle);
        free(h);
    }
    tern_retry_budget_free(rc->budget);
    free(rc);
}

/* "http://user@Host:8080/x" -> "Host:8080"; the default port added. */
static void url_hostport(const char *url, char *buf, size_t size)
{
    bool https = strncasecmp(url, "https://", 8) == 0;
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t len = strcspn(p, "/?#");
    const char *at = memchr(p, '@', len);
    if (at) {
        len -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *bracket = memchr(p, ']', len);
    const char *from = bracket ? bracket : p;
    bool has_port = memchr(from, ':', len - (size_t)(from - p)) != NULL;
    snprintf(buf, size, "%.*s%s", (int)len, p, has_port ? "" : https ? ":443" : ":80");
}

/* The guard of a host, made on first use; NULL without guards or on ENOMEM
 * (the call then goes unguarded rather than failing). */
static host *host_get(tern_resilient_client *rc, const char *name, bool create)
{
    if (!rc->o.breaker && !rc->o.throttle)
        return NULL;
    tern__spin_lock(&rc->lock);
    host *h = rc->hosts;
    while (h && strcmp(h->name, name) != 0)
        h = h->next;
    tern__spin_unlock(&rc->lock);
    if (h || !create)
        return h;
    size_t len = strlen(name);
    if (!(h = calloc(1, sizeof *h + len + 1)))
        return NULL;
    memcpy(h->name, name, len + 1);
    if ((rc->o.breaker ? tern_breaker_new(&rc->bo, &h->breaker)
                       : tern_throttle_new(&rc->to, &h->throttle)) < 0) {
        free(h);
        return NULL;
    }
    tern__spin_lock(&rc->lock);
    host *other = rc->hosts;
    while (other && strcmp(other->name, name) != 0)
        other = other->next;
    if (!other) {
        h->next = rc->hosts;
        rc->hosts = h;
    }
    tern__spin_unlock(&rc->lock);
    if (other) {                /* another call made it meanwhile */
        tern_breaker_free(h->breaker);
        tern_throttle_free(h->throttle);
        free(h);
        h = other;
    }
    return h;
}

static bool idempotent(const tern_http_client_request *req)
{
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    if (!req->method)
        return !req->body;      /* GET, or POST with a body */
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(req->method, ok[i]) == 0)
            return true;
    return false;
}

/* An attempt's result and the contexts it owns. */
typedef struct attempt {
    int rc;
    tern_http_client_response *resp;
    tern_ctx *ctx[2];
} attempt;

static void attempt_release(attempt *a)
{
    /* the response first: freeing it may still read through its context */
    tern_http_client_response_free(a->resp);
    tern_ctx_free(a->ctx[0]);
    tern_ctx_free(a->ctx[1]);
    memset(a, 0, sizeof *a);
}

/* A retried response: read what is left of a small body so that its
 * connection goes back to the pool, then release it. */
static void attempt_drain(attempt *a)
{
    const char *data;
    size_t len;
    if (a->resp)
        tern_http_client_response_body(a->resp, 64 * 1024, &data, &len);
    attempt_release(a);
}

static void attempt_run(tern_resilient_client *rc, const tern_http_client_request *req,
                        bool hedge, tern_ctx *ctx, attempt *a)
{
    memset(a, 0, sizeof *a);
    tern_ctx *actx = ctx;
    if (rc->o.attempt_timeout > 0) {
        if ((a->rc = tern_ctx_with_timeout(ctx, rc->o.attempt_timeout, &a->ctx[1])) < 0)
            return;
        actx = a->ctx[1];
    }
    tern__count(&rc->attempts);
    if (!hedge) {
        a->rc = tern_http_client_do(rc->o.client, req, &a->resp, actx);
    } else {
        tern__hedge_outcome h;
        tern__hedged_do(rc->o.client, req, rc->o.hedge_delay, rc->o.retryable,
                        rc->o.retryable_arg, &rc->legs, &h, actx);
        a->rc = h.rc;
        a->resp = h.resp;
        a->ctx[0] = h.ctx;
        if (h.hedged) {
            tern__count(&rc->hedged);
            tern__count(&rc->attempts);
        }
        if (h.hedge_won)
            tern__count(&rc->hedge_wins);
        if (h.cancelled)
            tern__count(&rc->cancelled);
    }
    if (a->rc < 0) {
        tern_ctx_free(a->ctx[0]);
        tern_ctx_free(a->ctx[1]);
        a->ctx[0] = a->ctx[1] = NULL;
    }
}

/* Tell the host's guard how the attempt went. */
static void guard_record(host *h, tern_breaker_ticket ticket, const attempt *a)
{
    if (!h)
        return;
    int status = a->rc == 0 ? tern_http_client_response_status(a->resp) : 0;
    if (h->breaker)
        tern_breaker_record(h->breaker, ticket, a->rc == 0 && status < 500);
    else
        tern_throttle_record(h->throttle, a->rc == 0 && status != 429 && status != 503);
}

static int guard_allow(host *h, tern_breaker_ticket *ticket)
{
    if (!h)
        return 0;
    return h->breaker ? tern_breaker_allow(h->breaker, ticket) : tern_throttle_allow(h->throttle);
}

/* Hand the response out, remembering the contexts it needs. */
static int deliver(tern_resilient_client *rc, attempt *a, tern_http_client_response **out)
{
    if (a->rc < 0)
        return a->rc;
    if (a->ctx[0] || a->ctx[1]) {
        owned *w = malloc(sizeof *w);
        if (!w) {
            attempt_release(a);
            return -ENOMEM;
        }
        w->resp = a->resp;
        w->ctx[0] = a->ctx[0];
        w->ctx[1] = a->ctx[1];
        tern__spin_lock(&rc->lock);
        w->next = rc->owned;
        rc->owned = w;
        tern__spin_unlock(&rc->lock);
    }
    *out = a->resp;
    return 0;
}

int tern_resilient_client_do(tern_resilient_client *rc, const tern_http_client_request *req,
                             tern_http_client_response **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(rc);
    if (!req || !req->url)
        return -EINVAL;
    tern__count(&rc->calls);
    char name[256];
    url_hostport(req->url, name, sizeof name);
    host *h = host_get(rc, name, true);
    bool retry_ok = idempotent(req);
    bool hedge = retry_ok && rc->o.hedge_delay > 0;
    if (rc->budget)
        tern_retry_budget_deposit(rc->budget);
    for (int n = 0;; n++) {
        int e = ctx ? tern_ctx_err(ctx) : 0;
        if (e < 0)
            return e;
        tern_breaker_ticket ticket = 0;
        if (guard_allow(h, &ticket) < 0) {
            tern__count(&rc->rejected);
            return -EAGAIN;
        }
        attempt a;
        attempt_run(rc, req, hedge, ctx, &a);
        guard_record(h, ticket, &a);
        int result = a.rc < 0 ? a.rc : tern_http_client_response_status(a.resp);
        if (!retry_ok || n + 1 >= rc->o.max_attempts ||
            !rc->o.retryable(result, rc->o.retryable_arg))
            return deliver(rc, &a, out);
        /* an attempt ended by the caller's own deadline is not retried */
        if (ctx && tern_ctx_err(ctx) < 0)
            return deliver(rc, &a, out);
        /* backoff sleeps for real, so it is measured against the budget
         * left (INT64_MAX with no deadline) */
        int64_t delay = tern_backoff_delay(rc->o.backoff_base, rc->o.backoff_cap, n);
        if (delay >= tern_ctx_remaining(ctx))
            return deliver(rc, &a, out);
        int64_t wake = tern_now() + delay;
        if (rc->budget && tern_retry_budget_try_withdraw(rc->budget) < 0) {
            tern__count(&rc->budget_exhausted);
            return deliver(rc, &a, out);
        }
        attempt_drain(&a);
        if ((e = tern__resil_sleep_until(wake, ctx, NULL)) < 0)
            return e;
        tern__count(&rc->retried);
    }
}

void tern_resilient_client_response_free(tern_resilient_client *rc,
                                         tern_http_client_response *r)
{
    if (!r)
        return;
    TERN_CHECK_ARG(rc);
    tern__spin_lock(&rc->lock);
    owned **p = &rc->owned, *w = NULL;
    while (*p && (*p)->resp != r)
        p = &(*p)->next;
    if (*p) {
        w = *p;
        *p = w->next;
    }
    tern__spin_unlock(&rc->lock);
    attempt a = {.resp = r};
    if (w) {
        a.ctx[0] = w->ctx[0];
        a.ctx[1] = w->ctx[1];
        free(w);
    }
    attempt_release(&a);
}

int tern_resilient_client_stats(const tern_resilient_client *rc, struct tern_resilient_client_stats *out)
{
    TERN_CHECK_ARG(rc);
    TERN_CHECK_ARG(out);
    out->calls = tern__load(&rc->calls);
    out->attempts = tern__load(&rc->attempts);
    out->retried = tern__load(&rc->retried);
    out->budget_exhausted = tern__load(&rc->budget_exhausted);
    out->rejected = tern__load(&rc->rejected);
    out->hedged = tern__load(&rc->hedged);
    out->hedge_wins = tern__load(&rc->hedge_wins);
    out->cancelled = tern__load(&rc->cancelled);
    return 0;
}

tern_breaker_state tern_resilient_client_breaker_state(tern_resilient_client *rc,
                                                       const char *hostport)
{
    TERN_CHECK_ARG(rc);
    host *h = host_get(rc, hostport, false);
    return h && h->breaker ? tern_breaker_get_state(h->breaker) : TERN_BREAKER_CLOSED;
}
