/*
 * hedge.c - hedged requests ("The Tail at Scale", Dean and
 * Barroso): when a request has no answer after a delay, a copy goes out
 * and whichever answers well first wins.
 *
 * Each copy ("leg") runs in its own coroutine with its own cancellable
 * child context, on a private deep copy of the request, because a losing
 * leg may outlive the call.  Ownership, all decided under race->lock:
 *  - a leg that finishes before the race is decided stores its result
 *    (DONE) and reports its index on the channel; from then on the caller
 *    owns that result;
 *  - once the caller decides (`decided`), it takes the winner, frees every
 *    other DONE result and cancels every RUNNING leg; a leg that finishes
 *    after that frees its own response and context.
 * The race itself is reference counted (the caller and each leg) and
 * freed by the last one out.
 */
#include "kit/resilience/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "tern/chan.h"
#include "tern/sync.h"

enum { LEG_IDLE, LEG_RUNNING, LEG_DONE, LEG_TAKEN };

typedef struct race race;

typedef struct leg {
    race *race;
    int index, state, rc;
    tern_ctx *ctx;
    tern_http_client_response *resp;
} leg;

struct race {
    atomic_int refs;
    tern_mutex lock;
    bool decided;
    tern_http_client *client;
    tern_waitgroup *legs_alive;
    tern_http_client_request req;   /* the deep copy the legs send */
    tern_chan *done;                /* leg indices, capacity 2: never blocks */
    leg legs[2];
    char *mem;                      /* the copy's strings and body */
};

static void race_put(race *r)
{
    if (atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    tern_chan_free(r->done);
    free(r->mem);
    free(r);
}

/* Copy url, headers and body into one block the race owns. */
static int copy_request(race *r, const tern_http_client_request *req)
{
    size_t nh = 0, size = strlen(req->url) + 1 + req->body_len;
    if (req->method)
        size += strlen(req->method) + 1;
    for (; req->headers && req->headers[nh]; nh++)
        size += strlen(req->headers[nh]) + 1;
    size_t vec = (nh + 1) * sizeof(char *);
    if (!(r->mem = malloc(vec + size)))
        return -ENOMEM;
    const char **hv = (const char **)(void *)r->mem;
    char *p = r->mem + vec;
#define DUP(dst, src)                     \
    do {                                  \
        size_t n_ = strlen(src) + 1;      \
        memcpy(p, src, n_);               \
        dst = p;                          \
        p += n_;                          \
    } while (0)
    r->req = *req;
    DUP(r->req.url, req->url);
    if (req->method)
        DUP(r->req.method, req->method);
    for (size_t i = 0; i < nh; i++)
        DUP(hv[i], req->headers[i]);
#undef DUP
    hv[nh] = NULL;
    r->req.headers = req->headers ? hv : NULL;
    if (req->body) {
        if (req->body_len)
            memcpy(p, req->body, req->body_len);
        r->req.body = p;
    }
    return 0;
}

static int leg_co(void *arg)
{
    leg *l = arg;
    race *r = l->race;
    tern_http_client_response *resp = NULL;
    int rc = tern_http_client_do(r->client, &r->req, &resp, l->ctx);
    tern_mutex_lock(&r->lock);
    bool orphan = r->decided;
    if (!orphan) {
        l->state = LEG_DONE;
        l->rc = rc;
        l->resp = resp;
        int i = l->index;
        int sent = tern_chan_try_send(r->done, &i);
        TERN_ASSERT(sent == 0);         /* capacity 2, one per leg: never full */
        (void)sent;
    }
    tern_mutex_unlock(&r->lock);
    if (orphan) {
        tern_http_client_response_free(resp);
        tern_ctx_free(l->ctx);
    }
    tern_waitgroup *alive = r->legs_alive;
    race_put(r);
    tern_waitgroup_done(alive);
    return 0;
}

static int leg_start(race *r, int i, tern_ctx *parent)
{
    leg *l = &r->legs[i];
    int err = tern_ctx_with_cancel(parent, &l->ctx);
    if (err < 0)
        return err;
    l->race = r;
    l->index = i;
    l->state = LEG_RUNNING;
    atomic_fetch_add(&r->refs, 1);
    tern_waitgroup_add(r->legs_alive, 1);
    int rc = tern_go_opts(leg_co, l, &(tern_go_options){.name = "hedge"}, NULL);
    if (rc < 0) {
        tern_waitgroup_done(r->legs_alive);
        atomic_fetch_sub(&r->refs, 1);
        l->state = LEG_IDLE;
        tern_ctx_free(l->ctx);
        l->ctx = NULL;
    }
    return rc;
}

/* Settle the race with `winner` (-1: none) taken by the caller. */
static void decide(race *r, int winner, tern__hedge_outcome *out)
{
    tern_http_client_response *drop[2] = {NULL, NULL};
    tern_ctx *drop_ctx[2] = {NULL, NULL};
    tern_mutex_lock(&r->lock);
    r->decided = true;
    for (int i = 0; i < 2; i++) {
        leg *l = &r->legs[i];
        if (i == winner) {
            l->state = LEG_TAKEN;
            out->rc = l->rc;
            out->resp = l->resp;
            out->ctx = l->ctx;
        } else if (l->state == LEG_DONE) {
            drop[i] = l->resp;
            drop_ctx[i] = l->ctx;
        } else if (l->state == LEG_RUNNING) {
            tern_ctx_cancel(l->ctx);        /* the leg frees it when it ends */
            out->cancelled = true;
        }
    }
    tern_mutex_unlock(&r->lock);
    for (int i = 0; i < 2; i++) {
        tern_http_client_response_free(drop[i]);
        tern_ctx_free(drop_ctx[i]);
    }
}

static bool good(const leg *l, tern_retry_pred_fn *pred, void *pred_arg)
{
    return l->rc == 0 && !pred(tern_http_client_response_status(l->resp), pred_arg);
}

void tern__hedged_do(tern_http_client *c, const tern_http_client_request *req, int64_t delay,
                     tern_retry_pred_fn *pred, void *pred_arg, tern_waitgroup *legs,
                     tern__hedge_outcome *out, tern_ctx *ctx)
{
    memset(out, 0, sizeof *out);
    race *r = calloc(1, sizeof *r);
    if (!r || tern_chan_new(sizeof(int), 2, &r->done) < 0 || copy_request(r, req) < 0) {
        if (r)
            tern_chan_free(r->done);
        free(r);
        out->rc = -ENOMEM;
        return;
    }
    atomic_init(&r->refs, 1);
    r->client = c;
    r->legs_alive = legs;
    if ((out->rc = leg_start(r, 0, ctx)) < 0) {
        race_put(r);
        return;
    }
    /* wait for the first leg, at most `delay` */
    int i = -1, failed = -1, running = 1;
    bool ok;
    tern_ctx *timer;
    int rc = tern_ctx_with_timeout(ctx, delay, &timer);
    if (rc < 0)
        goto abandon;           /* no timer: an error, never an unbounded wait */
    rc = tern_chan_recv(r->done, &i, &ok, timer);
    tern_ctx_free(timer);
    if (rc == 0) {
        decide(r, i, out);      /* answered in time: no hedge, good or bad */
        race_put(r);
        return;
    }
    if (ctx && (rc = tern_ctx_err(ctx)) < 0)
        goto abandon;
    if (leg_start(r, 1, ctx) == 0) {
        out->hedged = true;
        running++;
    }
    while (running > 0) {
        if ((rc = tern_chan_recv(r->done, &i, &ok, ctx)) < 0)
            goto abandon;
        running--;
        if (good(&r->legs[i], pred, pred_arg)) {
            out->hedge_won = i == 1;
            decide(r, i, out);
            race_put(r);
            return;
        }
        if (failed < 0)
            failed = i;
    }
    decide(r, failed, out);     /* both failed: report the first failure */
    race_put(r);
    return;
abandon:
    decide(r, -1, out);
    out->rc = rc;
    race_put(r);
}
