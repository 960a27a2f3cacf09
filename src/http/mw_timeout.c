/*
 * mw_timeout.c - a deadline for the rest of the chain, and Go's
 * TimeoutHandler answer (503) when the handler gives up because of it.
 *
 * The deadline lives in the request's context, so it reaches every call
 * the handler makes with that context: dials, client requests, selects.
 * Whether the handler failed "because of this deadline" is decided from
 * the contexts, not from the error alone: -ETIMEDOUT from the handler's
 * own, shorter timeout on some call is its business (a 500), and a
 * deadline or cancellation of the parent context (an outer timeout, a
 * forced shutdown) belongs to whoever set it.
 */
#include "tern/http_mw.h"

#include <errno.h>
#include <string.h>

int tern_http_mw_timeout(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_timeout_options *o = opts;
    if (!o || o->timeout <= 0)
        return -EINVAL;
    tern_ctx *parent = tern_http_req_ctx(r);
    tern_ctx *ctx;
    int err = tern_ctx_with_timeout(parent, o->timeout, &ctx);
    if (err < 0)
        return err;
    /* the request owns ctx from here and frees it when it ends */
    int rc = tern_http_req_set_ctx(r, ctx);
    if (rc < 0) {
        tern_ctx_free(ctx);
        return rc;
    }

    rc = tern_http_next(r, w);
    if ((rc != -ETIMEDOUT && rc != -ECANCELED) || tern_ctx_err(ctx) != -ETIMEDOUT ||
        tern_ctx_err(parent) != 0 || tern_http_resp_committed(w))
        return rc;
    /* drop what the handler buffered: a half-written answer is worse
     * than a plain 503 */
    const char *msg = o->message ? o->message : "503 Service Unavailable\n";
    int e = tern_http_resp_replace_body(w, "", 0);
    if (e == 0)
        e = tern_http_resp_send(w, 503, "text/plain; charset=utf-8", msg, strlen(msg));
    return e;
}
