/*
 * mw_concurrency.c - a concurrency limit in front of the rest of the
 * chain: a bulkhead (waiters bounded by the request's context) or an
 * adaptive limit.  A shed request is answered 503 with Retry-After, the
 * standard "come back later" that load balancers and clients honour.
 */
#include "kit/resilience/internal.h"

#include <errno.h>
#include <stdio.h>

#include "tern/http_mw.h"

/* Retry-After carries whole seconds (RFC 9110 allows no fraction): ns
 * rounded up, at least 1. */
static int shed(tern_http_resp *w, int64_t retry_after)
{
    int64_t sec = retry_after > 0 ? (retry_after - 1) / TERN_SEC + 1 : 1;
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)sec);
    int rc = tern_http_resp_set_header(w, "Retry-After", v);
    return rc < 0 ? rc : tern_http_resp_error(w, 503, NULL);
}

int tern_http_mw_concurrency(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_concurrency_options *o = opts;
    if (!o || !o->bulkhead == !o->adaptive)
        return -EINVAL;
    if (o->bulkhead) {
        int rc = tern_bulkhead_acquire(o->bulkhead, tern_http_req_ctx(r));
        if (rc == -EBUSY || rc == -ETIMEDOUT)
            return shed(w, o->retry_after);
        if (rc < 0)
            return rc;
        rc = tern_http_next(r, w);
        tern_bulkhead_release(o->bulkhead);
        return rc;
    }
    int64_t start;
    if (tern_adaptive_acquire(o->adaptive, &start) < 0)
        return shed(w, o->retry_after);
    int rc = tern_http_next(r, w);
    int status = tern_http_resp_status(w);
    tern_adaptive_release(o->adaptive, start, rc < 0 || status == 503 || status == 504);
    return rc;
}
