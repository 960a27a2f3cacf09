/*
 * limit.c - a route's rate limit (policy.h): one token bucket per client
 * key, the key taken from the request as the route's "ratelimit.key"
 * says (the client's IP, a header, or one of the token's claims: the
 * subject policy.h passes, any other through auth_claims.h).
 *
 * Local limits are a tern_ratelimit (GCRA per key, LRU-bounded) of this
 * route and generation.  Global limits ("global": true) ask Redis
 * (tern_redis_limit_allow: GCRA in Lua on the server's clock), so every
 * gateway sharing the Redis shares the bucket, named by "bucket" (default:
 * the limit's own text, so routes with the same limit share one).  Redis
 * gets a few ms ("redis_timeout", 10 ms by default); when it does not
 * answer, the request is decided by the local bucket instead and never
 * fails for it.  The first failure starts an outage: logged once,
 * tern_gateway_ratelimit_fallback_total counts every request decided
 * locally, and for a second Redis is not asked at all (a Redis that hangs
 * would otherwise cost every request the whole timeout) before one request
 * probes it again; the first answer ends the outage (logged).  During an
 * outage each gateway allows the full rate on its own.
 *
 * No lock: the limiter's buckets have their own, the outage state is
 * two atomics, and the rest is read-only once built.
 */
#define _GNU_SOURCE /* strdup */

#include "gateway/auth_cfg.h"
#include "gateway/auth_claims.h"
#include "gateway/policy.h"

#include "base/check.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern/context.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/resilience.h"
#include "tern/runtime.h"

#define REDIS_TIMEOUT_DEFAULT 10000000LL       /* 10 ms */
#define PROBE_INTERVAL 1000000000LL            /* 1 s between probes of a Redis that is down */
#define KEY_MAX 256                            /* a longer client key is cut (header values) */

enum key_kind { KEY_IP, KEY_HEADER, KEY_SUBJECT, KEY_CLAIM };

struct tern__gw_limit {
    enum key_kind kind;
    char *header;               /* KEY_HEADER: the header; KEY_CLAIM: the claim */
    tern_ratelimit *local;
    tern_redis_client *redis;   /* global: true; the generation's */
    tern_redis_limit glim;
    char *bucket;               /* the Redis key's prefix */
    int64_t redis_timeout;
    _Atomic int64_t down_until; /* tern_now() before which Redis is not asked; 0: up */
    atomic_bool down;           /* in an outage (logged once per) */
};

static const char *const limit_keys[] = {"key", "rate", "per", "burst", "global", "bucket",
                                         "redis_timeout", "max_keys", NULL};

/* Requests decided locally because Redis did not answer, process-wide: the
 * counter is registered once per registry, and generations and routes come
 * and go under it. */
static _Atomic uint64_t fallback_total;

static double fallback_value(void *arg)
{
    (void)arg;
    return (double)atomic_load_explicit(&fallback_total, memory_order_relaxed);
}

void tern__gw_limit_free(tern__gw_limit *l)
{
    if (!l)
        return;
    tern_ratelimit_free(l->local);
    free(l->header);
    free(l->bucket);
    free(l);
}

static int read_key(tern__gw_limit *l, const json_t *cfg, char *err, size_t errlen)
{
    const json_t *v = json_object_get(cfg, "key");
    const char *k = v ? json_string_value(v) : "ip";
    if (!k)
        return tern__gw_policy_err(err, errlen, "ratelimit.key: must be ip, header:<name> or claim:<name>");
    if (strcmp(k, "ip") == 0)
        l->kind = KEY_IP;
    else if (strncmp(k, "header:", 7) == 0 && k[7]) {
        l->kind = KEY_HEADER;
        if (!(l->header = strdup(k + 7)))
            return -ENOMEM;
    } else if (strcmp(k, "claim:sub") == 0)
        l->kind = KEY_SUBJECT;
    else if (strncmp(k, "claim:", 6) == 0 && k[6]) {
        l->kind = KEY_CLAIM;
        if (!(l->header = strdup(k + 6)))
            return -ENOMEM;
        tern__gw_auth_want_claims();
    } else
        return tern__gw_policy_err(err, errlen, "ratelimit.key: must be ip, header:<name> or claim:<name>, not %s",
                                   k);
    return 0;
}

int tern__gw_limit_new(const json_t *cfg, const tern__gw_env *env, tern__gw_limit **out, char *err,
                       size_t errlen)
{
    TERN_CHECK_ARG(env);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    int rc = tern__gw_policy_keys(cfg, "ratelimit", limit_keys, err, errlen);
    if (rc != 0)
        return rc;
    const json_t *v;
    double rate = json_number_value(v = json_object_get(cfg, "rate"));
    if (!json_is_number(v) || !(rate > 0) || !isfinite(rate))
        return tern__gw_policy_err(err, errlen, "ratelimit.rate: must be a positive number");
    int64_t per = 1000000000LL;
    if ((v = json_object_get(cfg, "per")) && (tern__gw_policy_duration(v, &per) != 0 || per <= 0))
        return tern__gw_policy_err(err, errlen, "ratelimit.per: must be a positive duration (\"1s\")");
    double per_s = (double)per / 1e9;
    /* what tern_ratelimit and Redis's script can count: at least one
     * token per 1000 s, at most one per microsecond */
    if (rate / per_s > 1e6 || rate / per_s < 1e-3)
        return tern__gw_policy_err(err, errlen,
                                   "ratelimit.rate: %g per %g s is outside 0.001 to 1000000 a second", rate,
                                   per_s);
    double burst = rate < 1 ? 1 : floor(rate);
    if ((v = json_object_get(cfg, "burst"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000000)
            return tern__gw_policy_err(err, errlen, "ratelimit.burst: must be a whole number >= 1");
        burst = (double)json_integer_value(v);
    }
    size_t max_keys = 0;
    if ((v = json_object_get(cfg, "max_keys"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return tern__gw_policy_err(err, errlen, "ratelimit.max_keys: must be a whole number >= 1");
        max_keys = (size_t)json_integer_value(v);
    }
    const json_t *global = json_object_get(cfg, "global");
    if (global && !json_is_boolean(global))
        return tern__gw_policy_err(err, errlen, "ratelimit.global: must be true or false");
    if (json_is_true(global) && !env->redis)
        return tern__gw_policy_err(err, errlen, "ratelimit.global: needs the top-level redis address");

    tern__gw_limit *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->redis_timeout = REDIS_TIMEOUT_DEFAULT;
    rc = read_key(l, cfg, err, errlen);
    if (rc == 0 && (v = json_object_get(cfg, "redis_timeout")) &&
        (tern__gw_policy_duration(v, &l->redis_timeout) != 0 || l->redis_timeout <= 0))
        rc = tern__gw_policy_err(err, errlen, "ratelimit.redis_timeout: must be a positive duration (\"10ms\")");
    if (rc == 0) {
        tern_ratelimit_options ro = {.rate = rate / per_s, .burst = burst, .max_keys = max_keys};
        rc = tern_ratelimit_new(&ro, &l->local);
        if (rc == -EINVAL)
            rc = tern__gw_policy_err(err, errlen, "ratelimit: rate %g per %g s with burst %g is not a limit",
                                     rate, per_s, burst);
    }
    if (rc == 0 && json_is_true(global)) {
        l->redis = env->redis;
        /* Redis counts whole requests per period: a fractional rate is
         * scaled up with its period (0.5 per 1s: 500 per 1000s) */
        double scale = rate == floor(rate) ? 1 : 1000;
        l->glim = (tern_redis_limit){.rate = (int64_t)llround(rate * scale), .period = per * (int64_t)scale,
                                     .burst = (int64_t)burst};
        const char *b = json_string_value(json_object_get(cfg, "bucket"));
        char name[256];
        if (!b) {
            const char *key = json_string_value(json_object_get(cfg, "key"));
            snprintf(name, sizeof name, "%s/%g/%lld/%lld", key ? key : "ip", rate, (long long)per,
                     (long long)burst);
            b = name;
        }
        if (!(l->bucket = malloc(strlen(b) + 16)))
            rc = -ENOMEM;
        else
            sprintf(l->bucket, "tern:gw:rl:%s:", b);
    }
    if (rc == 0 && (v = json_object_get(cfg, "bucket")) && !json_is_string(v))
        rc = tern__gw_policy_err(err, errlen, "ratelimit.bucket: must be a string");
    if (rc == 0 && l->redis) {
        rc = tern_metrics_counter_func(env->metrics, "tern_gateway_ratelimit_fallback_total",
                                       "Requests whose global rate limit was decided by the local bucket "
                                       "because Redis did not answer.",
                                       fallback_value, NULL);
        if (rc == -EEXIST)      /* an earlier generation or route registered it */
            rc = 0;
    }
    if (rc != 0) {
        tern__gw_limit_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

/* The client's address without its port ("[::1]:80" -> "::1"), written
 * into buf. */
static const char *client_ip(tern_http_req *r, char *buf, size_t len)
{
    const char *a = tern_http_req_remote_addr(r);
    if (!a)
        return "-";
    const char *end;
    if (a[0] == '[' && (end = strchr(a, ']')))
        a++;
    else if (!(end = strrchr(a, ':')))
        end = a + strlen(a);
    snprintf(buf, len, "%.*s", (int)(end - a), a);
    return buf;
}

/* The client's key in buf: "ip:...", "h:...", "sub:..." or "c:..." (a
 * prefix each, so that a header's value cannot pose as an address).  A
 * request without a subject or the claim (no token on an optional route)
 * is keyed by its IP, one without the header shares the "h:" bucket. */
static const char *client_key(const tern__gw_limit *l, tern_http_req *r, const char *subject, char *buf,
                              size_t len)
{
    char ip[64];
    switch (l->kind) {
    case KEY_HEADER: {
        const char *h = tern_http_req_header(r, l->header);
        snprintf(buf, len, "h:%.*s", KEY_MAX, h ? h : "");
        return buf;
    }
    case KEY_SUBJECT:
        if (subject) {
            snprintf(buf, len, "sub:%.*s", KEY_MAX, subject);
            return buf;
        }
        break;
    case KEY_CLAIM: {
        char v[KEY_MAX + 1];
        if (tern__gw_auth_claim(r, l->header, v, sizeof v) == 0) {
            snprintf(buf, len, "c:%s", v);
            return buf;
        }
        break;
    }
    case KEY_IP:
        break;
    }
    snprintf(buf, len, "ip:%s", client_ip(r, ip, sizeof ip));
    return buf;
}

static int take_local(tern__gw_limit *l, const char *key, int64_t *retry_after)
{
    int rc = tern_ratelimit_take(l->local, key, 1, retry_after);
    TERN_ASSERT(rc == 0 || rc == -EAGAIN || rc == -ENOMEM);
    return rc == -ENOMEM ? 0 : rc;      /* no room to remember a key: let it pass */
}

/* Ask Redis: 0 or -EAGAIN as decided, or -errno when it did not answer. */
static int take_global(tern__gw_limit *l, const char *key, int64_t *retry_after, tern_ctx *ctx)
{
    char rkey[KEY_MAX + 64 + 320];
    snprintf(rkey, sizeof rkey, "%s%s", l->bucket, key);
    tern_ctx *c;
    int rc = tern_ctx_with_timeout(ctx, l->redis_timeout, &c);
    if (rc != 0)
        return rc;
    bool allowed = false;
    int64_t ra = 0;
    rc = tern_redis_limit_allow(l->redis, rkey, &l->glim, &allowed, &ra, c);
    tern_ctx_free(c);
    if (rc != 0)
        return rc;
    if (!allowed) {
        *retry_after = ra;
        return -EAGAIN;
    }
    return 0;
}

int tern__gw_limit_take(tern__gw_limit *l, tern_http_req *r, const char *subject, int64_t *retry_after,
                        tern_ctx *ctx)
{
    TERN_CHECK_ARG(l);
    TERN_CHECK_ARG(r);
    char buf[KEY_MAX + 64];
    int64_t ra_dummy;
    if (!retry_after)
        retry_after = &ra_dummy;
    *retry_after = 0;
    const char *key = client_key(l, r, subject, buf, sizeof buf);
    if (!l->redis)
        return take_local(l, key, retry_after);
    int64_t now = tern_now();
    int64_t until = atomic_load_explicit(&l->down_until, memory_order_relaxed);
    /* during an outage one request a second probes (the one that moves
     * down_until on); the others go straight to the local bucket */
    if (until && (now < until || !atomic_compare_exchange_strong(&l->down_until, &until, now + PROBE_INTERVAL))) {
        atomic_fetch_add_explicit(&fallback_total, 1, memory_order_relaxed);
        return take_local(l, key, retry_after);
    }
    int rc = take_global(l, key, retry_after, ctx);
    if (rc == 0 || rc == -EAGAIN) {
        if (atomic_exchange(&l->down, false)) {
            atomic_store(&l->down_until, 0);
            tern_log_info("gateway: rate limits back on redis", TERN_LOG_STR("bucket", l->bucket));
        }
        return rc;
    }
    /* the caller's own context ended: not Redis's fault */
    if (ctx && tern_ctx_err(ctx) != 0)
        return take_local(l, key, retry_after);
    atomic_store(&l->down_until, now + PROBE_INTERVAL);
    if (!atomic_exchange(&l->down, true))
        tern_log_warn("gateway: redis does not answer, rate limits fall back to local buckets",
                      TERN_LOG_STR("bucket", l->bucket), TERN_LOG_STR("error", tern_strerror(rc)));
    atomic_fetch_add_explicit(&fallback_total, 1, memory_order_relaxed);
    return take_local(l, key, retry_after);
}
