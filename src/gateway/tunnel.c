/*
 * tunnel.c - Upgrade pass-through (WebSocket and any other protocol an
 * HTTP/1.1 request asks to switch to, RFC 9110 7.8).
 *
 * The HTTP client pools connections that carry HTTP, so an upgrade goes
 * over a connection of its own: dialled to the balancer's pick, the
 * request head written by hand (the proxied headers, then Connection:
 * Upgrade and the client's Upgrade), the upstream's head read and parsed.
 * A 101 is passed to the client through tern_http_resp_upgrade with the
 * upstream's fields (Sec-WebSocket-Accept and the like), then the bytes
 * are piped both ways by two coroutines of a group until both directions
 * have ended: an end of stream on one side becomes a half-close of the
 * other, an error on either stops both (the group's context).  Any other
 * answer is an ordinary response, passed on when its body has a length
 * or ends at close (a chunked refusal of an upgrade: 502).
 *
 * The route's timeout bounds the dial and the handshake only; a tunnel
 * lasts while both sides keep it (the client going, a forced shutdown or
 * a reload's old generation ending does not cut it: the request's context
 * does, at a forced shutdown).  The balancer hears the handshake's
 * latency and outcome; no retries (the exchange is not replayable).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/internal.h"
#include "tern/group.h"
#include "tern/http_parse.h"
#include "tern/runtime.h"

#define TUN_HEAD_MAX (32 * 1024)
#define TUN_PIECE (16 * 1024)
#define TUN_MAX_HEADERS 64
#define TUN_LINGER_NS (5 * 1000 * 1000 * 1000LL)  /* after one side's end, for the other's */

/* Whether r asks to switch protocols: HTTP/1.1, an Upgrade field and a
 * Connection field naming "upgrade". */
bool tern__gw_wants_upgrade(tern_http_req *r)
{
    const char *up = tern_http_req_header(r, "Upgrade");
    const char *conn = tern_http_req_header(r, "Connection");
    if (!up || !conn || strcmp(tern_http_req_proto(r), "HTTP/1.1") != 0)
        return false;
    for (const char *p = conn; *p;) {
        p += strspn(p, " \t,");
        size_t t = strcspn(p, " \t,");
        if (t == 7 && strncasecmp(p, "upgrade", 7) == 0)
            return true;
        p += t;
    }
    return false;
}

static int write_all(tern_conn *c, const char *p, size_t n, tern_ctx *ctx)
{
    while (n) {
        ssize_t k = tern_conn_write(c, p, n, ctx);
        if (k < 0)
            return (int)k;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* "GET /x HTTP/1.1\r\n" + headers + the upgrade's own two fields. */
static char *request_head(tern_http_req *r, const char *target, const char *const *h, size_t *len)
{
    size_t n = strlen(tern_http_req_method(r)) + strlen(target) + 64;
    const char *upg = tern_http_req_header(r, "Upgrade");
    n += strlen(upg);
    for (size_t i = 0; h[i]; i += 2)
        n += strlen(h[i]) + strlen(h[i + 1]) + 4;
    char *s = tern_http_req_alloc(r, n);
    if (!s)
        return NULL;
    size_t k = (size_t)snprintf(s, n, "%s %s HTTP/1.1\r\n", tern_http_req_method(r), target);
    for (size_t i = 0; h[i]; i += 2)
        k += (size_t)snprintf(s + k, n - k, "%s: %s\r\n", h[i], h[i + 1]);
    k += (size_t)snprintf(s + k, n - k, "Connection: Upgrade\r\nUpgrade: %s\r\n\r\n", upg);
    TERN_ASSERT(k < n);
    *len = k;
    return s;
}

typedef struct pipe_dir {
    tern_conn *from, *to;
    const char *first;          /* read already: goes before the rest */
    size_t first_len;
    tern_ctx *ctx;              /* the group's: the other direction's error ends it */
} pipe_dir;

static int pump(void *arg)
{
    pipe_dir *d = arg;
    tern_ctx *ctx = d->ctx;
    int rc = d->first_len ? write_all(d->to, d->first, d->first_len, ctx) : 0;
    char *buf = rc == 0 ? malloc(TUN_PIECE) : NULL;
    if (rc == 0 && !buf)
        rc = -ENOMEM;
    while (rc == 0) {
        ssize_t n = tern_conn_read(d->from, buf, TUN_PIECE, ctx);
        if (n == 0) {
            /* the end of one direction, not yet of the tunnel: the other
             * side hears it as a half-close, and has a while to finish */
            tern_conn_close_write(d->to);
            tern_conn_set_read_deadline(d->to, tern_now() + TUN_LINGER_NS);
            break;
        }
        rc = n < 0 ? (int)n : write_all(d->to, buf, (size_t)n, ctx);
    }
    free(buf);
    return rc;
}

/* The two directions until both end; the first error stops both. */
static int pipe_both(tern_http_upgraded *down, tern_conn *up, const char *up_first, size_t up_first_len,
                     tern_ctx *ctx)
{
    pipe_dir to_up = {down->conn, up, down->pending, down->pending_len, NULL};
    pipe_dir to_down = {up, down->conn, up_first, up_first_len, NULL};
    tern_group *g;
    int rc = tern_group_new(ctx, NULL, &g);
    if (rc < 0)
        return rc;
    to_up.ctx = to_down.ctx = tern_group_ctx(g);
    rc = tern_group_go(g, pump, &to_up, NULL);
    if (rc == 0)
        rc = tern_group_go(g, pump, &to_down, NULL);
    int first = tern_group_wait(g, NULL);
    tern_group_free(g);
    return rc ? rc : first;
}

/* A refusal of the switch: an ordinary answer, its body as framed. */
static int pass_answer(tern_conn *uc, const tern_http_response *h, const char *rest, size_t rest_len,
                       tern_http_resp *w, tern_ctx *ctx)
{
    if (h->chunked)
        return -EPROTO;
    for (size_t i = 0; i < h->nheaders; i++) {
        char name[128];
        const tern_http_header *f = &h->headers[i];
        if (f->name_len >= sizeof name)
            continue;
        memcpy(name, f->name, f->name_len);
        name[f->name_len] = '\0';
        if (!strcasecmp(name, "Connection") || !strcasecmp(name, "Upgrade") || !strcasecmp(name, "Keep-Alive") ||
            !strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding") ||
            !strcasecmp(name, "Date") || !strcasecmp(name, "Server"))
            continue;
        char *value = strndup(f->value, f->value_len);
        if (!value)
            return -ENOMEM;
        tern_http_resp_add_header(w, name, value);
        free(value);
    }
    tern_http_resp_set_status(w, h->status);
    int64_t left = h->content_length;   /* -1: until close */
    size_t k = left >= 0 && (int64_t)rest_len > left ? (size_t)left : rest_len;
    if (k && tern_http_resp_write(w, rest, k) < 0)
        return -EPIPE;
    if (left > 0)
        left -= (int64_t)k;
    char buf[4096];
    while (left != 0) {
        ssize_t n = tern_conn_read(uc, buf, left > 0 && left < (int64_t)sizeof buf ? (size_t)left : sizeof buf, ctx);
        if (n <= 0)
            return n == 0 && left < 0 ? 0 : n == 0 ? -ECONNRESET : (int)n;
        if (tern_http_resp_write(w, buf, (size_t)n) < 0)
            return -EPIPE;
        if (left > 0)
            left -= n;
    }
    return 0;
}

/* Dial, send the head, read the answer's head into buf.  The head's length, or -errno. */
static int handshake(const char *addr, const char *head, size_t head_len, char *buf, size_t *got,
                     tern_http_response *h, tern_conn **out, tern_ctx *ctx)
{
    int rc = tern_conn_dial(TERN_NET_TCP, addr, out, ctx);
    if (rc < 0)
        return rc;
    if ((rc = write_all(*out, head, head_len, ctx)) < 0)
        return rc;
    *got = 0;
    for (;;) {
        ssize_t n = tern_conn_read(*out, buf + *got, TUN_HEAD_MAX - *got, ctx);
        if (n <= 0)
            return n == 0 ? -ECONNRESET : (int)n;
        *got += (size_t)n;
        h->max_headers = TUN_MAX_HEADERS;
        int hl = tern_http_parse_response(buf, *got, h, NULL);
        if (hl > 0 && h->status >= 100 && h->status < 200 && h->status != 101) {
            memmove(buf, buf + hl, *got - (size_t)hl);     /* 100 Continue and the like: skip */
            *got -= (size_t)hl;
            continue;
        }
        if (hl > 0)
            return hl;
        if (hl == TERN_HTTP_BAD || *got == TUN_HEAD_MAX)
            return -EPROTO;
    }
}

int tern__gw_tunnel(gw_route *rt, gw_upstream *up, tern_http_req *r, tern_http_resp *w, const char *const *headers,
                    const char *target)
{
    tern_gateway *gw = rt->gen->gw;
    size_t head_len = 0;        /* set when head is (gcc -O2 cannot tell) */
    char *head = request_head(r, target, headers, &head_len);
    char *buf = malloc(TUN_HEAD_MAX);
    tern_http_header *fields = malloc(TUN_MAX_HEADERS * sizeof *fields);
    if (!head || !buf || !fields) {
        free(buf);
        free(fields);
        return -ENOMEM;
    }
    tern_breaker_ticket ticket = 0;
    tern_lb_pick pick;
    tern_conn *uc = NULL;
    tern_ctx *rctx = tern_http_req_ctx(r), *hctx = NULL;
    int64_t timeout = rt->timeout ? rt->timeout : up->timeout ? up->timeout : GW_DEFAULT_TIMEOUT;
    int rc = up->breaker && tern_breaker_allow(up->breaker, &ticket) < 0 ? -EAGAIN : 0;
    bool picked = false;
    if (rc == 0 && (rc = tern_balancer_pick(up->lb, NULL, 0, &pick)) == 0)
        picked = true;
    tern_http_response h = {.headers = fields, .max_headers = TUN_MAX_HEADERS};
    size_t got = 0;
    int hl = 0;
    int64_t t0 = tern_now();
    if (rc == 0 && (rc = tern_ctx_with_timeout(rctx, timeout, &hctx)) == 0)
        rc = hl = handshake(pick.addr, head, head_len, buf, &got, &h, &uc, hctx);
    int64_t head_ns = tern_now() - t0;
    tern_ctx_free(hctx);
    bool failed = rc < 0 || h.status >= 500;
    if (picked) {
        bool local = rc < 0 && tern_ctx_err(rctx) != 0;
        tern__gw_epm_observe(gw, up, pick.addr, head_ns, failed && !local);
        tern_balancer_done(up->lb, &pick, head_ns, local ? TERN_LB_LOCAL : failed ? TERN_LB_FAILED : TERN_LB_OK);
        if (up->latency)
            tern_metrics_histogram_observe(up->latency, (double)head_ns / 1e9);
    }
    if (up->breaker && rc != -EAGAIN)
        tern_breaker_record(up->breaker, ticket, !failed);
    if (rc < 0) {
        tern_conn_free(uc);
        free(buf);
        free(fields);
        if (rc != -ECANCELED)
            atomic_fetch_add(&gw->upstream_errors, 1);
        int status = rc == -EAGAIN || rc == -ENOENT ? 503 : rc == -ETIMEDOUT ? 504 : rc == -ECANCELED ? 499 : 502;
        tern__gw_count(gw, rt, up->name, status);
        char text[160];
        snprintf(text, sizeof text, "upgrade to the upstream failed: %s", tern_strerror(rc));
        return tern__gw_error(w, status, text);
    }
    tern__gw_count(gw, rt, up->name, h.status);
    rc = 0;
    if (h.status != 101) {
        rc = pass_answer(uc, &h, buf + hl, got - (size_t)hl, w, rctx);
        tern_conn_free(uc);
        free(buf);
        free(fields);
        return rc == -EPROTO ? tern__gw_error(w, 502, "upstream refused the upgrade with a chunked body") : rc;
    }
    char proto[128] = "";
    for (size_t i = 0; i < h.nheaders; i++) {
        const tern_http_header *f = &h.headers[i];
        char name[128];
        if (f->name_len >= sizeof name)
            continue;
        memcpy(name, f->name, f->name_len);
        name[f->name_len] = '\0';
        if (!strcasecmp(name, "Upgrade")) {
            snprintf(proto, sizeof proto, "%.*s", (int)f->value_len, f->value);
            continue;
        }
        if (!strcasecmp(name, "Connection") || !strcasecmp(name, "Date") || !strcasecmp(name, "Server") ||
            !strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding"))
            continue;
        char *value = strndup(f->value, f->value_len);
        if (!value || tern_http_resp_add_header(w, name, value) == -ENOMEM) {
            free(value);
            rc = -ENOMEM;
            break;
        }
        free(value);
    }
    tern_http_upgraded down;
    if (rc == 0)
        rc = proto[0] ? tern_http_resp_upgrade(w, proto, &down) : -EPROTO;
    if (rc == 0)
        rc = pipe_both(&down, uc, buf + hl, got - (size_t)hl, rctx);
    else if (rc == -EPROTO)
        rc = tern__gw_error(w, 502, "upstream switched protocols without naming one");
    tern_conn_free(uc);
    free(buf);
    free(fields);
    /* a tunnel's end, however it came, is no error of the exchange: its
     * answer (the 101) went out */
    return w && tern_http_resp_status(w) == 101 ? 0 : rc;
}
