/*
 * svcconfig.c - gRPC's service config (its JSON form, gRFC A2 and A6):
 * the methodConfig entries a channel needs for timeouts, retries and
 * hedging, and retryThrottling's token bucket.
 *
 * Validation follows A6 (a config that breaks it is refused whole, with a
 * sentence naming the key): maxAttempts at least 2 (more than 5 is taken
 * as 5), backoffs and the multiplier positive, retryableStatusCodes not
 * empty, retryPolicy and hedgingPolicy not both; maxTokens in (0, 1000],
 * tokenRatio positive (kept to 3 decimals, as A6 says).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grpc/grpc_internal.h"

typedef struct mc_entry {
    char *service;                  /* NULL or "": every service */
    char *method;                   /* NULL: every method of service */
    size_t cfg;                     /* index into cfgs */
} mc_entry;

struct tern__grpc_svc_config {
    tern__grpc_method_config *cfgs;
    size_t ncfgs;
    mc_entry *names;
    size_t nnames;
    bool throttled;
    int64_t max_milli;              /* maxTokens, in thousandths */
    int64_t ratio_milli;            /* tokenRatio, in thousandths */
    _Atomic int64_t tokens_milli;
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* A protobuf Duration in JSON: decimal seconds then 's' ("0.1s", "2s"). */
static int duration(json_t *v, int64_t *ns)
{
    const char *s = json_string_value(v);
    if (!s)
        return -EINVAL;
    size_t n = strlen(s);
    if (n < 2 || s[n - 1] != 's' || s[0] == '-' || s[0] == '+')
        return -EINVAL;
    char *end;
    double sec = strtod(s, &end);
    if (end != s + n - 1 || !isfinite(sec) || sec < 0 || sec > 315576000000.0)
        return -EINVAL;
    *ns = (int64_t)llround(sec * 1e9);
    return 0;
}

static int code_of(json_t *v, uint32_t *bits)
{
    int code = -1;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        code = i >= 0 && i <= 16 ? (int)i : -1;
    } else if (json_is_string(v)) {
        for (int c = 0; c <= 16; c++)
            if (!strcasecmp(json_string_value(v), tern_grpc_code_name((tern_grpc_code)c)))
                code = c;
    }
    if (code < 0)
        return -EINVAL;
    *bits |= 1u << code;
    return 0;
}

static int codes(json_t *arr, uint32_t *bits)
{
    if (!json_is_array(arr))
        return -EINVAL;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (code_of(v, bits) < 0) return -EINVAL;
    return 0;
}

static int attempts(json_t *v, int *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 2)
        return -EINVAL;
    json_int_t n = json_integer_value(v);
    *out = n > 5 ? 5 : (int)n;
    return 0;
}

static int parse_retry(json_t *rp, tern__grpc_method_config *c, char *err, size_t errlen)
{
    if (!json_is_object(rp))
        return fail(err, errlen, "retryPolicy: not an object");
    if (attempts(json_object_get(rp, "maxAttempts"), &c->retry_max) < 0)
        return fail(err, errlen, "retryPolicy.maxAttempts: an integer of at least 2 is required");
    if (duration(json_object_get(rp, "initialBackoff"), &c->initial_backoff) < 0 || c->initial_backoff <= 0)
        return fail(err, errlen, "retryPolicy.initialBackoff: a positive duration (\"0.1s\") is required");
    if (duration(json_object_get(rp, "maxBackoff"), &c->max_backoff) < 0 || c->max_backoff <= 0)
        return fail(err, errlen, "retryPolicy.maxBackoff: a positive duration (\"1s\") is required");
    json_t *m = json_object_get(rp, "backoffMultiplier");
    if (!json_is_number(m) || json_number_value(m) <= 0)
        return fail(err, errlen, "retryPolicy.backoffMultiplier: a positive number is required");
    c->multiplier = json_number_value(m);
    if (codes(json_object_get(rp, "retryableStatusCodes"), &c->retryable) < 0 || !c->retryable)
        return fail(err, errlen, "retryPolicy.retryableStatusCodes: a non-empty list of status codes is required");
    return 0;
}

static int parse_hedge(json_t *hp, tern__grpc_method_config *c, char *err, size_t errlen)
{
    if (!json_is_object(hp))
        return fail(err, errlen, "hedgingPolicy: not an object");
    if (attempts(json_object_get(hp, "maxAttempts"), &c->hedge_max) < 0)
        return fail(err, errlen, "hedgingPolicy.maxAttempts: an integer of at least 2 is required");
    json_t *d = json_object_get(hp, "hedgingDelay");
    if (d && duration(d, &c->hedge_delay) < 0)
        return fail(err, errlen, "hedgingPolicy.hedgingDelay: not a duration (\"0.05s\")");
    json_t *nf = json_object_get(hp, "nonFatalStatusCodes");
    if (nf && codes(nf, &c->non_fatal) < 0)
        return fail(err, errlen, "hedgingPolicy.nonFatalStatusCodes: not a list of status codes");
    return 0;
}

static int parse_names(tern__grpc_svc_config *sc, json_t *names, size_t cfg, char *err, size_t errlen)
{
    if (!json_is_array(names) || json_array_size(names) == 0)
        return fail(err, errlen, "methodConfig[%zu].name: a non-empty list is required", cfg);
    mc_entry *v = realloc(sc->names, (sc->nnames + json_array_size(names)) * sizeof *v);
    if (!v)
        return -ENOMEM;
    sc->names = v;
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) {
        json_t *svc = json_object_get(n, "service"), *meth = json_object_get(n, "method");
        if (!json_is_object(n) || (svc && !json_is_string(svc)) || (meth && !json_is_string(meth)))
            return fail(err, errlen, "methodConfig[%zu].name[%zu]: {\"service\": ..., \"method\": ...} expected",
                        cfg, i);
        const char *s = svc ? json_string_value(svc) : "";
        const char *m = meth ? json_string_value(meth) : "";
        if (!*s && *m)
            return fail(err, errlen, "methodConfig[%zu].name[%zu]: a method needs its service", cfg, i);
        mc_entry e = { strdup(s), *m ? strdup(m) : NULL, cfg };
        if (!e.service || (*m && !e.method)) {
            free(e.service);
            free(e.method);
            return -ENOMEM;
        }
        sc->names[sc->nnames++] = e;
    }
    return 0;
}

static int parse(tern__grpc_svc_config *sc, json_t *root, char *err, size_t errlen)
{
    if (!json_is_object(root))
        return fail(err, errlen, "service config: a JSON object is required");
    json_t *mcs = json_object_get(root, "methodConfig");
    if (mcs && !json_is_array(mcs))
        return fail(err, errlen, "methodConfig: a list is required");
    size_t n = mcs ? json_array_size(mcs) : 0;
    if (n) {
        sc->cfgs = calloc(n, sizeof *sc->cfgs);
        if (!sc->cfgs)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(mcs, i);
        tern__grpc_method_config *c = &sc->cfgs[i];
        sc->ncfgs = i + 1;
        if (!json_is_object(e))
            return fail(err, errlen, "methodConfig[%zu]: not an object", i);
        int rc = parse_names(sc, json_object_get(e, "name"), i, err, errlen);
        if (rc < 0)
            return rc;
        json_t *t = json_object_get(e, "timeout");
        if (t && (duration(t, &c->timeout) < 0))
            return fail(err, errlen, "methodConfig[%zu].timeout: not a duration (\"1.5s\")", i);
        json_t *rp = json_object_get(e, "retryPolicy"), *hp = json_object_get(e, "hedgingPolicy");
        if (rp && hp)
            return fail(err, errlen, "methodConfig[%zu]: retryPolicy and hedgingPolicy exclude each other", i);
        if (rp && (rc = parse_retry(rp, c, err, errlen)) < 0)
            return rc;
        if (hp && (rc = parse_hedge(hp, c, err, errlen)) < 0)
            return rc;
    }
    json_t *th = json_object_get(root, "retryThrottling");
    if (th) {
        json_t *mt = json_object_get(th, "maxTokens"), *tr = json_object_get(th, "tokenRatio");
        if (!json_is_integer(mt) || json_integer_value(mt) <= 0 || json_integer_value(mt) > 1000)
            return fail(err, errlen, "retryThrottling.maxTokens: an integer in 1..1000 is required");
        if (!json_is_number(tr) || json_number_value(tr) <= 0)
            return fail(err, errlen, "retryThrottling.tokenRatio: a positive number is required");
        sc->throttled = true;
        sc->max_milli = (int64_t)json_integer_value(mt) * 1000;
        sc->ratio_milli = (int64_t)(json_number_value(tr) * 1000);
        if (sc->ratio_milli == 0)
            return fail(err, errlen, "retryThrottling.tokenRatio: below 0.001");
        atomic_init(&sc->tokens_milli, sc->max_milli);
    }
    return 0;
}

int tern__grpc_svc_config_parse(const char *text, tern__grpc_svc_config **out, char *err, size_t errlen)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, errlen, "service config: not JSON (line %d: %s)", je.line, je.text);
    tern__grpc_svc_config *sc = calloc(1, sizeof *sc);
    int rc = sc ? parse(sc, root, err, errlen) : -ENOMEM;
    json_decref(root);
    if (rc < 0) {
        tern__grpc_svc_config_free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

void tern__grpc_svc_config_free(tern__grpc_svc_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nnames; i++) {
        free(c->names[i].service);
        free(c->names[i].method);
    }
    free(c->names);
    free(c->cfgs);
    free(c);
}

const tern__grpc_method_config *tern__grpc_svc_config_find(const tern__grpc_svc_config *c, const char *path)
{
    if (!c || !path)
        return NULL;
    const char *p = path + (path[0] == '/');
    const char *slash = strrchr(p, '/');
    size_t sl = slash ? (size_t)(slash - p) : strlen(p);
    const char *meth = slash ? slash + 1 : "";
    const mc_entry *by_svc = NULL, *by_default = NULL;
    for (size_t i = 0; i < c->nnames; i++) {
        const mc_entry *e = &c->names[i];
        if (!e->service[0]) {
            by_default = by_default ? by_default : e;
        } else if (strlen(e->service) == sl && !strncmp(e->service, p, sl)) {
            if (!e->method)
                by_svc = by_svc ? by_svc : e;
            else if (!strcmp(e->method, meth))
                return &c->cfgs[e->cfg];
        }
    }
    const mc_entry *e = by_svc ? by_svc : by_default;
    return e ? &c->cfgs[e->cfg] : NULL;
}

bool tern__grpc_throttle_allow(tern__grpc_svc_config *c)
{
    return !c || !c->throttled || atomic_load(&c->tokens_milli) * 2 > c->max_milli;
}

void tern__grpc_throttle_record(tern__grpc_svc_config *c, bool failure)
{
    if (!c || !c->throttled)
        return;
    int64_t t = atomic_load(&c->tokens_milli), n;
    do {
        n = failure ? t - 1000 : t + c->ratio_milli;
        if (n < 0)
            n = 0;
        if (n > c->max_milli)
            n = c->max_milli;
    } while (!atomic_compare_exchange_weak(&c->tokens_milli, &t, n));
}
