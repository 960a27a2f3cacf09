/*
 * health_check.c - active health checks: a coroutine per balancer wakes
 * every interval, takes the current endpoints (a reference on each, so an
 * update meanwhile frees nothing under it), checks them all at once (a
 * coroutine per endpoint, each bounded by the timeout) and applies the
 * results under the lock with hysteresis: a streak of failures takes an
 * endpoint out, a streak of passes brings it back.  An endpoint removed
 * while being checked just has its result ignored.
 *
 * A check is HTTP (GET path, a 2xx passes) or gRPC's health protocol
 * (grpc/health/v1/health.proto): a unary Check over the HTTP/2 client,
 * its one message built and read by hand (a string field 1 out, an enum
 * field 1 back: five bytes of framing and a tag), so discovery needs no
 * generated code and no channel per endpoint.  It passes on grpc-status
 * 0 (a trailer, or a header in a trailers-only answer) with SERVING (1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "discovery/internal.h"
#include "tern/context.h"
#include "tern/http_client.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/sync.h"

struct lb_health {
    tern_lb_health_options o;
    char *path;
    char *service;                  /* gRPC: the service asked about */
    unsigned char msg[5 + 2 + 256]; /* gRPC: the framed HealthCheckRequest */
    size_t msg_len;
    tern_http_client *http;
    tern_ctx *stop;
    tern_waitgroup running;
};

typedef struct check {
    struct lb_health *h;
    lb_ep *e;
    char url[TERN_LB_ADDR_MAX + 256];
    bool ok;
    tern_waitgroup *done;
} check;

/* A HealthCheckResponse framed as gRPC: SERVING? */
static bool grpc_serving(const unsigned char *p, size_t len)
{
    if (len < 5 || p[0] != 0)
        return false;           /* compressed: we asked for none */
    uint32_t n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (n != len - 5)
        return false;
    p += 5;
    /* field 1 varint: SERVING is 1; other fields a newer server may add are skipped only
     * if they come after it (a status absent means UNKNOWN: not serving) */
    return n >= 2 && p[0] == 0x08 && p[1] == 0x01;
}

static bool grpc_check(check *c, tern_ctx *ctx)
{
    struct lb_health *h = c->h;
    static const char *const hdrs[] = {"content-type", "application/grpc", "te", "trailers", NULL};
    tern_http_client_request req = {.method = "POST", .url = c->url, .headers = hdrs,
                                    .body = h->msg, .body_len = h->msg_len};
    tern_http_client_response *r;
    if (tern_http_client_do(h->http, &req, &r, ctx) < 0)
        return false;
    const char *body = NULL;
    size_t len = 0;
    bool ok = tern_http_client_response_status(r) == 200 &&
              tern_http_client_response_body(r, 4096, &body, &len) == 0;
    const char *st = tern_http_client_response_trailer(r, "grpc-status");
    if (!st)
        st = tern_http_client_response_header(r, "grpc-status");
    ok = ok && st && strcmp(st, "0") == 0 && grpc_serving((const unsigned char *)body, len);
    tern_http_client_response_free(r);
    return ok;
}

static int check_co(void *arg)
{
    check *c = arg;
    tern_ctx *ctx;
    if (c->h->o.grpc && tern_ctx_with_timeout(c->h->stop, c->h->o.timeout, &ctx) == 0) {
        c->ok = grpc_check(c, ctx);
        tern_ctx_free(ctx);
    } else if (tern_ctx_with_timeout(c->h->stop, c->h->o.timeout, &ctx) == 0) {
        tern_http_client_response *r;
        if (tern_http_client_get(c->h->http, c->url, &r, ctx) == 0) {
            int status = tern_http_client_response_status(r);
            const char *body;
            size_t len;
            /* read it through, so the connection is kept for the next check */
            (void)tern_http_client_response_body(r, 64 << 10, &body, &len);
            c->ok = status >= 200 && status < 300;
            tern_http_client_response_free(r);
        }
        tern_ctx_free(ctx);
    }
    tern_waitgroup_done(c->done);
    return 0;
}

/* One round: check every endpoint, then apply. */
static void round_of_checks(tern_balancer *b, struct lb_health *h)
{
    tern__spin_lock(&b->lock);
    size_t n = b->n;
    check *cs = n ? calloc(n, sizeof *cs) : NULL;
    if (cs)
        for (size_t i = 0; i < n; i++) {
            cs[i].e = b->eps[i];
            cs[i].e->refs++;
        }
    tern__spin_unlock(&b->lock);
    if (!cs)
        return;
    tern_waitgroup done = TERN_WAITGROUP_INIT;
    const char *scheme = h->o.tls ? "https" : "http";
    for (size_t i = 0; i < n; i++) {
        cs[i].h = h;
        cs[i].done = &done;
        snprintf(cs[i].url, sizeof cs[i].url, "%s://%s%s", scheme, cs[i].e->addr,
                 h->o.grpc ? "/grpc.health.v1.Health/Check" : h->path);
        tern_waitgroup_add(&done, 1);
        if (tern_go(check_co, &cs[i]) < 0)
            tern_waitgroup_done(&done);     /* counts as a failed check */
    }
    (void)tern_waitgroup_wait(&done, NULL);
    bool stopping = tern_ctx_err(h->stop) != 0;
    tern__spin_lock(&b->lock);
    for (size_t i = 0; i < n; i++) {
        lb_ep *e = cs[i].e;
        if (e->member && !stopping) {
            if (cs[i].ok)
                e->hc_streak = e->hc_streak > 0 ? e->hc_streak + 1 : 1;
            else
                e->hc_streak = e->hc_streak < 0 ? e->hc_streak - 1 : -1;
            if (!e->unhealthy && -e->hc_streak >= h->o.unhealthy_threshold)
                tern__lb_set_unhealthy(b, e, true);
            else if (e->unhealthy && e->hc_streak >= h->o.healthy_threshold)
                tern__lb_set_unhealthy(b, e, false);
        }
        tern__lb_ep_unref(e);           /* the last one if it was removed meanwhile */
    }
    tern__spin_unlock(&b->lock);
    free(cs);
}

static int health_co(void *arg)
{
    tern_balancer *b = arg;
    struct lb_health *h = b->health;
    while (!tern_ctx_err(h->stop)) {
        round_of_checks(b, h);
        if (tern_ctx_sleep(h->o.interval, h->stop) != 0)
            break;
    }
    tern_waitgroup_done(&h->running);
    return 0;
}

static void health_free(struct lb_health *h)
{
    if (h->http)
        tern_http_client_free(h->http);
    tern_ctx_free(h->stop);
    free(h->path);
    free(h->service);
    free(h);
}

int tern_balancer_health_start(tern_balancer *b, const tern_lb_health_options *o)
{
    TERN_CHECK_ARG(b);
    if (!o || o->interval < 0 || o->timeout < 0 || o->unhealthy_threshold < 0 || o->healthy_threshold < 0)
        return -EINVAL;
    if (o->grpc ? o->grpc_service && strlen(o->grpc_service) > 200
                : !o->path || o->path[0] != '/' || strlen(o->path) > 255)
        return -EINVAL;
    if (b->health)
        return -EBUSY;
    struct lb_health *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->o = *o;
    if (!h->o.interval)
        h->o.interval = 5 * TERN_SEC;
    if (!h->o.timeout)
        h->o.timeout = TERN_SEC;
    if (!h->o.unhealthy_threshold)
        h->o.unhealthy_threshold = 3;
    if (!h->o.healthy_threshold)
        h->o.healthy_threshold = 2;
    tern_http_client_options ho = {.tls = o->tls, .max_idle_per_host = 1, .h2c_prior_knowledge = o->grpc};
    int rc = (h->path = strdup(o->grpc ? "" : o->path)) &&
             (h->service = strdup(o->grpc && o->grpc_service ? o->grpc_service : "")) ? 0 : -ENOMEM;
    h->o.path = h->path;
    h->o.grpc_service = h->service;
    if (rc == 0 && o->grpc) {
        /* HealthCheckRequest{service = 1}: absent when empty, as proto3 writes it */
        size_t sl = strlen(h->service), n = sl ? 2 + sl : 0;
        TERN_ASSERT(sl <= 200 && 5 + n <= sizeof h->msg);
        h->msg[0] = 0;
        h->msg[1] = h->msg[2] = h->msg[3] = 0;
        h->msg[4] = (unsigned char)n;
        if (sl) {
            h->msg[5] = 0x0a;
            h->msg[6] = (unsigned char)sl;
            memcpy(h->msg + 7, h->service, sl);
        }
        h->msg_len = 5 + n;
    }
    if (rc == 0)
        rc = tern_http_client_new(&ho, &h->http);
    if (rc == 0 && tern_ctx_with_cancel(NULL, &h->stop) < 0)
        rc = -ENOMEM;
    if (rc < 0) {
        health_free(h);
        return rc;
    }
    b->health = h;
    tern_waitgroup_add(&h->running, 1);
    rc = tern_go(health_co, b);
    if (rc < 0) {
        tern_waitgroup_done(&h->running);
        b->health = NULL;
        health_free(h);
    }
    return rc;
}

void tern__lb_health_stop(tern_balancer *b)
{
    struct lb_health *h = b->health;
    tern_ctx_cancel(h->stop);
    (void)tern_waitgroup_wait(&h->running, NULL);
    b->health = NULL;
    health_free(h);
}
