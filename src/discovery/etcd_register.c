/*
 * etcd_register.c - a service instance announcing itself in etcd: its key
 * bound to a lease, the lease kept alive at a third of its TTL by a
 * coroutine, revoked when the registration is freed (so it disappears at
 * once on a graceful stop, and within its TTL after a crash).
 *
 * When a keepalive finds the lease gone (etcd answers TTL 0, or "lease not
 * found" after an outage longer than the TTL), the key is put again under
 * a new lease: an instance that survived a partition comes back by itself.
 * Failures are retried every second and logged once per kind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "discovery/etcd.h"
#include "tern/discovery.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define RETRY (1 * TERN_SEC)
#define REVOKE_TIMEOUT (2 * TERN_SEC)

struct tern_etcd_registration {
    etcd e;
    char *key, *value;
    int64_t ttl_s;
    TERN__ATOMIC(int64_t) lease;
    TERN__ATOMIC(uint64_t) registered;  /* times the key was put (1 + re-registrations) */
    tern_ctx *stop;
    tern_waitgroup running;
    int last_err;
};

static int grant_and_put(tern_etcd_registration *r, tern_ctx *ctx)
{
    json_t *req = json_pack("{s:I}", "TTL", (json_int_t)r->ttl_s), *resp;
    if (!req)
        return -ENOMEM;
    int rc = tern__etcd_call(&r->e, "/v3/lease/grant", req, &resp, ctx);
    json_decref(req);
    if (rc < 0)
        return rc;
    int64_t id = tern__etcd_int(json_object_get(resp, "ID"), 0);
    json_decref(resp);
    if (id == 0)
        return -EBADMSG;
    char lease[24];
    snprintf(lease, sizeof lease, "%" PRId64, id);
    req = json_pack("{s:o,s:o,s:s}", "key", tern__etcd_b64(r->key, strlen(r->key)), "value",
                    tern__etcd_b64(r->value, strlen(r->value)), "lease", lease);
    if (!req)
        return -ENOMEM;
    rc = tern__etcd_call(&r->e, "/v3/kv/put", req, &resp, ctx);
    json_decref(req);
    json_decref(resp);
    if (rc == 0) {
        atomic_store(&r->lease, id);
        atomic_fetch_add(&r->registered, 1);
    }
    return rc;
}

/* One keepalive: 0 if the lease lives, -ENOENT if it is gone. */
static int keepalive(tern_etcd_registration *r, tern_ctx *ctx)
{
    char lease[24];
    snprintf(lease, sizeof lease, "%" PRId64, atomic_load(&r->lease));
    json_t *req = json_pack("{s:s}", "ID", lease), *resp;
    if (!req)
        return -ENOMEM;
    int rc = tern__etcd_call(&r->e, "/v3/lease/keepalive", req, &resp, ctx);
    json_decref(req);
    if (rc < 0)
        return rc;
    json_t *result = json_object_get(resp, "result");
    /* an expired lease answers without a TTL (zero is left out) */
    if (tern__etcd_int(json_object_get(result, "TTL"), 0) <= 0)
        rc = -ENOENT;
    json_decref(resp);
    return rc;
}

static void note(tern_etcd_registration *r, int rc, const char *what)
{
    if (rc < 0 && rc != r->last_err)
        tern_log_warn("etcd registration", TERN_LOG_STR("key", r->key), TERN_LOG_STR("step", what),
                      TERN_LOG_STR("error", tern_strerror(rc)));
    if (rc == 0 && r->last_err)
        tern_log_info("etcd registration restored", TERN_LOG_STR("key", r->key));
    r->last_err = rc;
}

static int keepalive_co(void *arg)
{
    tern_etcd_registration *r = arg;
    int64_t period = r->ttl_s * TERN_SEC / 3;
    int64_t wait = period;
    while (tern_ctx_sleep(wait, r->stop) == 0) {
        int rc = keepalive(r, r->stop);
        if (rc == -ENOENT) {
            rc = grant_and_put(r, r->stop);
            note(r, rc, "register again");
        } else {
            note(r, rc, "keepalive");
        }
        wait = rc == 0 ? period : (RETRY < period ? RETRY : period);
    }
    tern_waitgroup_done(&r->running);
    return 0;
}

static void reg_free(tern_etcd_registration *r)
{
    tern__etcd_close(&r->e);
    tern_ctx_free(r->stop);
    free(r->key);
    free(r->value);
    free(r);
}

int tern_etcd_registration_new(const tern_etcd_registration_options *o, tern_etcd_registration **out,
                               tern_ctx *ctx)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o || !o->key || !*o->key || !o->value || o->ttl < 0)
        return -EINVAL;
    tern_etcd_registration *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int64_t ttl = o->ttl ? o->ttl : 10 * TERN_SEC;
    r->ttl_s = (ttl + TERN_SEC - 1) / TERN_SEC;
    if (r->ttl_s < 2)
        r->ttl_s = 2;                   /* etcd's floor is about that */
    int rc = tern__etcd_open(&r->e, o->endpoint, o->tls);
    if (rc == 0 && (!(r->key = strdup(o->key)) || !(r->value = strdup(o->value))))
        rc = -ENOMEM;
    if (rc == 0 && tern_ctx_with_cancel(NULL, &r->stop) < 0)
        rc = -ENOMEM;
    if (rc == 0)
        rc = grant_and_put(r, ctx);
    if (rc == 0) {
        tern_waitgroup_add(&r->running, 1);
        rc = tern_go(keepalive_co, r);
        if (rc < 0)
            tern_waitgroup_done(&r->running);
    }
    if (rc < 0) {
        reg_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int64_t tern_etcd_registration_lease(const tern_etcd_registration *r)
{
    TERN_CHECK_ARG(r);
    return atomic_load(&((tern_etcd_registration *)r)->lease);
}

uint64_t tern_etcd_registration_count(const tern_etcd_registration *r)
{
    TERN_CHECK_ARG(r);
    return atomic_load(&((tern_etcd_registration *)r)->registered);
}

void tern_etcd_registration_free(tern_etcd_registration *r)
{
    if (!r)
        return;
    tern_ctx_cancel(r->stop);
    (void)tern_waitgroup_wait(&r->running, NULL);
    /* revoke: the key goes now, not at the TTL (best effort, bounded) */
    char lease[24];
    snprintf(lease, sizeof lease, "%" PRId64, atomic_load(&r->lease));
    json_t *req = json_pack("{s:s}", "ID", lease), *resp = NULL;
    tern_ctx *ctx;
    if (req && tern_ctx_with_timeout(NULL, REVOKE_TIMEOUT, &ctx) == 0) {
        int rc = tern__etcd_call(&r->e, "/v3/lease/revoke", req, &resp, ctx);
        if (rc < 0 && rc != -ENOENT)
            tern_log_warn("etcd registration not revoked (it ends with its lease)",
                          TERN_LOG_STR("key", r->key), TERN_LOG_STR("error", tern_strerror(rc)));
        tern_ctx_free(ctx);
    }
    json_decref(req);
    json_decref(resp);
    reg_free(r);
}
