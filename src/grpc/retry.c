/*
 * retry.c - a unary call under its service config (gRFC A6): the method's
 * timeout, then retries or hedging.
 *
 * Retries: an attempt that fails with a retryableStatusCode before it was
 * committed (response headers, not a Trailers-Only answer) is made again,
 * up to maxAttempts, after a random wait in
 * [0, min(initialBackoff * multiplier^(n-1), maxBackoff)) unless the
 * server pushed back (grpc-retry-pushback-ms: that wait; an
 * invalid or negative value: no retry).  Each later attempt carries
 * grpc-previous-rpc-attempts.
 *
 * Hedging: the first attempt goes at once, another every hedgingDelay
 * (at once after a non-fatal failure) until maxAttempts are out; the
 * first OK or fatal answer wins and the others are cancelled.  Each
 * attempt is a coroutine with a context of its own under the call's.
 *
 * Both stop when the call's ctx ends, and ask retryThrottling first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/rand.h"
#include "grpc/grpc_internal.h"
#include "tern/error.h"
#include "tern/runtime.h"

#define MAX_ATTEMPTS 5

static bool has(uint32_t bits, tern_grpc_code code)
{
    return (unsigned)code <= 16 && (bits & (1u << code));
}

static int retrying(tern_grpc_channel *ch, const tern__grpc_method_config *mc, const tern_grpc_method_desc *m,
                    const ProtobufCMessage *req, ProtobufCMessage **resp, const tern_grpc_call_options *opts,
                    tern_grpc_status *status, int *attempts, tern_ctx *ctx)
{
    double backoff = (double)mc->initial_backoff;
    int rc;
    for (int n = 0;; n++) {
        tern_grpc_status_clear(status);
        tern__grpc_attempt_info ai;
        rc = tern__grpc_unary_attempt(ch, m, req, resp, opts, n, status, &ai, ctx);
        *attempts = n + 1;
        if (rc == 0) {
            tern__grpc_throttle_record(ch->svc, false);
            return 0;
        }
        bool retryable = has(mc->retryable, status->code);
        if (retryable || ai.pushback_ms >= 0)
            tern__grpc_throttle_record(ch->svc, true);
        if (!retryable || ai.committed || n + 1 >= mc->retry_max || ai.pushback_ms == -2 ||
            tern_ctx_err(ctx) || !tern__grpc_throttle_allow(ch->svc))
            return rc;
        int64_t wait;
        if (ai.pushback_ms >= 0) {
            wait = ai.pushback_ms * 1000000;
        } else {
            wait = (int64_t)(tern__rand01() * backoff);
            backoff *= mc->multiplier;
            if (backoff > (double)mc->max_backoff)
                backoff = (double)mc->max_backoff;
        }
        int w = tern_ctx_sleep(wait, ctx);
        if (w < 0)
            return rc;     /* the call's time is up: the last attempt's answer stands */
    }
}

/* ---- hedging ---------------------------------------------------------------- */

typedef struct hedge hedge;
typedef struct hedge_attempt {
    hedge *h;
    int idx;
    tern_ctx *ctx;
} hedge_attempt;

struct hedge {
    tern_grpc_channel *ch;
    const tern__grpc_method_config *mc;
    const tern_grpc_method_desc *m;
    const ProtobufCMessage *req;
    const tern_grpc_call_options *opts;
    tern_mutex mu;
    tern_cond cond;
    tern_waitgroup wg;
    hedge_attempt a[MAX_ATTEMPTS];
    int started, finished;
    bool committed;
    int rc;                             /* the winner's, or the last failure's */
    ProtobufCMessage *resp;
    tern_grpc_status status;
};

static int attempt_co(void *arg)
{
    hedge_attempt *a = arg;
    hedge *h = a->h;
    ProtobufCMessage *resp = NULL;
    tern_grpc_status st = { 0 };
    tern__grpc_attempt_info ai;
    int rc = tern__grpc_unary_attempt(h->ch, h->m, h->req, &resp, h->opts, a->idx, &st, &ai, a->ctx);
    bool non_fatal = rc < 0 && has(h->mc->non_fatal, st.code) && ai.pushback_ms != -2;
    if (rc == 0)
        tern__grpc_throttle_record(h->ch->svc, false);
    else if (non_fatal)
        tern__grpc_throttle_record(h->ch->svc, true);
    tern_mutex_lock(&h->mu);
    h->finished++;
    if (!h->committed && (!non_fatal || rc == 0 || h->finished == h->started)) {
        /* the answer (or the last word so far): keep it */
        if (h->resp)
            protobuf_c_message_free_unpacked(h->resp, NULL);
        tern_grpc_status_clear(&h->status);
        h->resp = resp;
        h->status = st;
        h->rc = rc;
        resp = NULL;
        st = (tern_grpc_status){ 0 };
        if (!non_fatal) {
            h->committed = true;
            for (int i = 0; i < h->started; i++)
                if (i != a->idx)
                    tern_ctx_cancel(h->a[i].ctx);
        }
    }
    tern_cond_broadcast(&h->cond);
    tern_mutex_unlock(&h->mu);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    tern_grpc_status_clear(&st);
    tern_waitgroup_done(&h->wg);
    return 0;
}

/* Under mu: start the next attempt.  0 or -errno. */
static int hedge_start(hedge *h, tern_ctx *ctx)
{
    hedge_attempt *a = &h->a[h->started];
    *a = (hedge_attempt){ .h = h, .idx = h->started };
    int rc = tern_ctx_with_cancel(ctx, &a->ctx);
    if (rc < 0)
        return rc;
    tern_waitgroup_add(&h->wg, 1);
    rc = tern_go(attempt_co, a);
    if (rc < 0) {
        tern_waitgroup_done(&h->wg);
        tern_ctx_free(a->ctx);
        a->ctx = NULL;
        return rc;
    }
    h->started++;
    return 0;
}

static int hedging(tern_grpc_channel *ch, const tern__grpc_method_config *mc, const tern_grpc_method_desc *m,
                   const ProtobufCMessage *req, ProtobufCMessage **resp, const tern_grpc_call_options *opts,
                   tern_grpc_status *status, int *attempts, tern_ctx *ctx)
{
    hedge *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    *h = (hedge){ .ch = ch, .mc = mc, .m = m, .req = req, .opts = opts, .rc = -EAGAIN };
    int max = mc->hedge_max < MAX_ATTEMPTS ? mc->hedge_max : MAX_ATTEMPTS;
    tern_mutex_lock(&h->mu);
    int rc = hedge_start(h, ctx);
    while (rc == 0 && !h->committed && h->finished < max) {
        int seen = h->finished;
        if (h->started < max && tern__grpc_throttle_allow(ch->svc)) {
            /* the delay, or a non-fatal failure, whichever first */
            tern_ctx *delay;
            rc = tern_ctx_with_timeout(ctx, mc->hedge_delay > 0 ? mc->hedge_delay : 1, &delay);
            if (rc < 0)
                break;
            while (!h->committed && h->finished == seen && tern_cond_wait(&h->cond, &h->mu, delay) == 0) {
            }
            tern_ctx_free(delay);
            if (h->committed)
                break;
            if ((rc = tern_ctx_err(ctx)) < 0)
                break;
            rc = hedge_start(h, ctx);
        } else if (h->finished == h->started) {
            break;      /* every attempt failed non-fatally and no more may go */
        } else if ((rc = tern_cond_wait(&h->cond, &h->mu, ctx)) < 0) {
            break;
        }
    }
    /* whatever happened, no attempt outlives the call */
    for (int i = 0; i < h->started; i++)
        tern_ctx_cancel(h->a[i].ctx);
    tern_mutex_unlock(&h->mu);
    tern_waitgroup_wait(&h->wg, NULL);
    for (int i = 0; i < h->started; i++)
        tern_ctx_free(h->a[i].ctx);
    *attempts = h->started;
    if (h->finished > 0 && (h->committed || rc == 0)) {
        rc = h->rc;
        *resp = h->resp;
        *status = h->status;
    } else {
        /* the call's ctx ended (or an attempt could not start) first */
        if (h->resp)
            protobuf_c_message_free_unpacked(h->resp, NULL);
        tern_grpc_status_clear(&h->status);
        if (rc == 0)
            rc = tern_ctx_err(ctx) ? tern_ctx_err(ctx) : -EAGAIN;
        status->code = tern_grpc_errno_to_code(rc);
        status->message = strdup(tern_strerror(rc));
    }
    free(h);
    return rc;
}

int tern__grpc_unary_policy(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, const tern_grpc_call_options *opts,
                            tern_grpc_status *status, int *attempts, tern_ctx *ctx)
{
    const tern__grpc_method_config *mc = ch->svc ? tern__grpc_svc_config_find(ch->svc, m->path) : NULL;
    *attempts = 1;
    tern_ctx *tctx = NULL;
    if (mc && mc->timeout > 0) {
        /* the config's timeout bounds the whole call, retries included */
        int rc = tern_ctx_with_timeout(ctx, mc->timeout, &tctx);
        if (rc < 0) {
            status->code = tern_grpc_errno_to_code(rc);
            return rc;
        }
        ctx = tctx;
    }
    int rc;
    if (mc && mc->retry_max >= 2)
        rc = retrying(ch, mc, m, req, resp, opts, status, attempts, ctx);
    else if (mc && mc->hedge_max >= 2)
        rc = hedging(ch, mc, m, req, resp, opts, status, attempts, ctx);
    else
        rc = tern__grpc_unary_attempt(ch, m, req, resp, opts, 0, status, NULL, ctx);
    tern_ctx_free(tctx);
    return rc;
}
