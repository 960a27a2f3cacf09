/*
 * proxy.c - forwarding one request to an upstream and its answer back,
 * both bodies streamed.
 *
 * The request: its headers minus the hop-by-hop ones (RFC 9110 7.6.1:
 * Connection and the fields it names, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Transfer-Encoding, Upgrade, Proxy-Authorization; Expect too,
 * which the gateway's own server answered) and the
 * headers the JWT section forwards claims in (a client must not forge
 * X-User-Id); plus X-Forwarded-For (appended), X-Forwarded-Proto, Via,
 * the policies' forwarded headers and the trace context (the tracing
 * middleware's span continued through tern_trace_http_client_do, else the
 * incoming traceparent passed on as is).
 *
 * The body: small ones with a known length (up to GW_BUFFER_FOR_RETRY)
 * are read whole so that a retry can send them again; larger ones and
 * chunked ones stream through the HTTP client's body reader, a 64 KiB
 * piece at a time, so a 1 GiB upload costs the gateway two buffers.  Such
 * a request is retried only if it failed before its body was touched
 * (a refused connection).
 *
 * A request to switch protocols (Upgrade: websocket) on an HTTP/1.1
 * upstream goes through tunnel.c instead, on a connection of its own.
 *
 * Each try: the breaker's permission, a balancer pick (by the route's
 * hash key for ring_hash / maglev), a deadline of the route's timeout,
 * the exchange, and the outcome told to the balancer (latency, failure
 * for ejection) and the breaker.  A retry (idempotent methods only, on
 * the route's "on" list) must be allowed by the upstream's 20% retry
 * budget (refused: the last answer goes to the client as it came) and
 * waits a jittered backoff first.  The answer streams back
 * 32 KiB at a time; the server's 64 KiB buffer then chunked encoding
 * bound what the gateway holds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/internal.h"
#include "tern/runtime.h"
#include "tern/trace.h"

#define GW_PIECE (32 * 1024)
#define GW_SMALL_PIECE 2048     /* on the coroutine's stack */
#define GW_PEEK (16 * 1024)
/* A transfer whose reads and writes never park (loopback, fast peers)
 * yields its worker this often (in pieces), so other coroutines run. */
#define GW_YIELD_EVERY 8

tern_http_client *tern__gw_client(gw_upstream *up)
{
    return up->proto == GW_H2C ? up->gw->h2 : up->gw->h1;
}

/* ---- the request's body ----------------------------------------------------- */

typedef struct body_src {
    tern_http_req *r;
    const char *peek;           /* read ahead to learn whether a body exists */
    size_t peek_len;
    bool called;                /* the reader gave something out: no retry */
    int err;                    /* the client's body error */
    unsigned pieces;
} body_src;

static ssize_t read_body(void *buf, size_t n, void *arg)
{
    body_src *b = arg;
    b->called = true;
    if (b->peek_len) {
        size_t k = n < b->peek_len ? n : b->peek_len;
        memcpy(buf, b->peek, k);
        b->peek += k;
        b->peek_len -= k;
        return (ssize_t)k;
    }
    ssize_t k = tern_http_req_read(b->r, buf, n);
    if (k < 0)
        b->err = (int)k;
    if (++b->pieces % GW_YIELD_EVERY == 0)
        tern_yield();           /* a body that never waits must not hold the worker */
    return k;
}

/* How the body goes: set req's body fields.  0, or the client's error. */
static int plan_body(tern_http_req *r, tern_http_client_request *req, body_src *src,
                     bool *replayable)
{
    int64_t cl = tern_http_req_content_length(r);
    *replayable = true;
    if (cl == 0)
        return 0;
    bool h1 = strcmp(tern_http_req_proto(r), "HTTP/2") != 0;
    if (cl < 0 && h1 && !tern_http_req_header(r, "Transfer-Encoding"))
        return 0;               /* HTTP/1.x without framing: no body */
    if (cl > 0 && cl <= GW_BUFFER_FOR_RETRY) {
        const char *data;
        size_t len;
        int rc = tern_http_req_body(r, &data, &len);
        if (rc < 0)
            return rc;
        if (len || cl >= 0) {
            req->body = data;
            req->body_len = len;
        }
        return 0;
    }
    if (cl < 0) {
        /* unknown length: a body at all? (an HTTP/2 GET ends its stream at once) */
        char *peek = tern_http_req_alloc(r, GW_PEEK);
        if (!peek)
            return -ENOMEM;
        ssize_t n = tern_http_req_read(r, peek, GW_PEEK);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        src->peek = peek;
        src->peek_len = (size_t)n;
    }
    src->r = r;
    req->body_read = read_body;
    req->body_arg = src;
    req->body_read_len = cl;
    *replayable = false;
    return 0;
}

/* ---- headers ------------------------------------------------------------------ */

/* The header names the proxy treats apart. */
enum hdr_kind { H_OTHER, H_HOP, H_XFF, H_VIA, H_XFP, H_TRACE, H_DATE, H_SERVER };

/* name's kind, by its length first: a name is compared only with the
 * listed names of its length, three at most (a strcasecmp per entry of
 * each list made 59 calls a request, 5% of the full gateway's
 * instructions). */
static enum hdr_kind header_kind(const char *name, size_t len)
{
    static const struct {
        const char *name;
        size_t len;
        enum hdr_kind kind;
    } known[] = {
#define K(s, k) {s, sizeof s - 1, k}
        /* RFC 9110 7.6.1's hop-by-hop fields; Content-Length (the client
         * frames the body itself) and Expect (our server answered it) */
        K("Connection", H_HOP), K("Keep-Alive", H_HOP), K("Proxy-Connection", H_HOP), K("TE", H_HOP),
        K("Trailer", H_HOP), K("Transfer-Encoding", H_HOP), K("Upgrade", H_HOP),
        K("Proxy-Authorization", H_HOP), K("Content-Length", H_HOP), K("Expect", H_HOP),
        K("X-Forwarded-For", H_XFF), K("Via", H_VIA), K("X-Forwarded-Proto", H_XFP),
        K("traceparent", H_TRACE), K("tracestate", H_TRACE), K("Date", H_DATE), K("Server", H_SERVER),
#undef K
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].len == len && strcasecmp(known[i].name, name) == 0)
            return known[i].kind;
    return H_OTHER;
}

/* Whether the Connection header names name (the fields it lists are this
 * hop's too). */
static bool connection_names(const char *connection, const char *name, size_t len)
{
    if (connection) {
        for (const char *p = connection; *p;) {
            p += strspn(p, " \t,");
            size_t t = strcspn(p, " \t,");
            if (t == len && strncasecmp(p, name, len) == 0)
                return true;
            p += t;
        }
    }
    return false;
}

static bool forged(gw_gen *g, const char *name)
{
    for (size_t i = 0; i < g->nstrip; i++)
        if (strcasecmp(g->strip[i], name) == 0)
            return true;
    return false;
}

static const char *client_ip(tern_http_req *r)
{
    const char *a = tern_http_req_remote_addr(r);
    if (!a)
        return "unknown";
    char *ip = tern_http_req_strdup(r, a[0] == '[' ? a + 1 : a);
    if (!ip)
        return "unknown";
    char *end = a[0] == '[' ? strchr(ip, ']') : strrchr(ip, ':');
    if (end)
        *end = '\0';
    return ip;
}

static char *join(tern_http_req *r, const char *a, const char *sep, const char *b)
{
    if (!a)
        return tern_http_req_strdup(r, b);
    size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
    char *s = tern_http_req_alloc(r, na + ns + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, sep, ns);
        memcpy(s + na + ns, b, nb + 1);
    }
    return s;
}

/* The upstream request's headers (name, value, ..., NULL) in request memory. */
static const char **build_headers(gw_gen *g, tern_http_req *r, const tern__gw_fwd *fwd, bool traced)
{
    size_t n = tern_http_req_header_count(r);
    const char **h = tern_http_req_alloc(r, (2 * (n + fwd->n) + 10) * sizeof *h);
    if (!h)
        return NULL;
    const char *connection = tern_http_req_header(r, "Connection");
    const char *xff = NULL, *via = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        if (tern_http_req_header_at(r, i, &name, &value) < 0 || name[0] == ':')
            continue;
        size_t len = strlen(name);
        enum hdr_kind kind = header_kind(name, len);
        if (kind == H_HOP || kind == H_XFP || (kind == H_TRACE && traced) ||
            connection_names(connection, name, len) || forged(g, name))
            continue;
        if (kind == H_XFF) {
            xff = xff ? join(r, xff, ", ", value) : value;
            continue;
        }
        if (kind == H_VIA) {
            via = via ? join(r, via, ", ", value) : value;
            continue;
        }
        h[k++] = name;
        h[k++] = value;
    }
    if (!tern_http_req_header(r, "Host") && tern_http_req_header(r, ":authority")) {
        h[k++] = "Host";
        h[k++] = tern_http_req_header(r, ":authority");
    }
    for (size_t i = 0; i < fwd->n; i++) {
        h[k++] = fwd->kv[2 * i];
        h[k++] = fwd->kv[2 * i + 1];
    }
    h[k++] = "X-Forwarded-For";
    h[k++] = join(r, xff, ", ", client_ip(r));
    h[k++] = "X-Forwarded-Proto";
    h[k++] = tern_http_req_tls(r) ? "https" : "http";
    h[k++] = "Via";
    h[k++] = join(r, via, ", ", tern_http_req_minor_version(r) == 0 ? "1.0 tern-gateway"
                                : strcmp(tern_http_req_proto(r), "HTTP/2") == 0 ? "2 tern-gateway"
                                                                                 : "1.1 tern-gateway");
    h[k] = NULL;
    for (size_t i = 0; i < k; i++)
        if (!h[i])
            return NULL;        /* a join ran out of memory */
    return h;
}

static int copy_response_head(tern_http_client_response *resp, tern_http_resp *w)
{
    const char *connection = tern_http_client_response_header(resp, "Connection");
    const char *name, *value;
    for (size_t i = 0; tern_http_client_response_header_at(resp, i, &name, &value) == 0; i++) {
        size_t len = strlen(name);
        enum hdr_kind kind = header_kind(name, len);
        if (kind == H_HOP || kind == H_DATE || kind == H_SERVER || connection_names(connection, name, len))
            continue;
        int rc = tern_http_resp_add_header(w, name, value);
        if (rc == -ENOMEM)
            return rc;
    }
    tern_http_resp_add_header(w, "Via", "1.1 tern-gateway");
    return tern_http_resp_set_status(w, tern_http_client_response_status(resp));
}

static int stream_body(tern_http_client_response *resp, tern_http_resp *w)
{
    /* A small answer (most API responses) goes through a buffer on the
     * stack; one that fills it is streamed in GW_PIECE pieces from the
     * heap (a 32 KiB malloc and free for every request was a tenth of
     * the bare proxy's allocator time). */
    char small[GW_SMALL_PIECE], *buf = small;
    size_t cap = sizeof small;
    int rc = 0;
    unsigned pieces = 0;
    for (;;) {
        ssize_t n = tern_http_client_response_read(resp, buf, cap);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        ssize_t wn = tern_http_resp_write(w, buf, (size_t)n);
        if (wn < 0) {
            rc = (int)wn;
            break;
        }
        if (++pieces % GW_YIELD_EVERY == 0)
            tern_yield();
        if (buf == small && (size_t)n == cap) {
            char *big = malloc(GW_PIECE);
            if (!big) {
                rc = -ENOMEM;
                break;
            }
            buf = big;
            cap = GW_PIECE;
        }
    }
    if (buf != small)
        free(buf);
    return rc;
}

/* ---- tries ------------------------------------------------------------------------ */

static bool idempotent(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0;
}

static bool connect_error(int rc)
{
    return rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -ENETUNREACH || rc == -ENOENT ||
           rc == -EADDRNOTAVAIL;
}

static bool reset_error(int rc)
{
    return rc == -ECONNRESET || rc == -EPIPE || rc == -ECONNABORTED;
}

static bool retry_status(const gw_route *rt, int st)
{
    return (st == 502 && rt->retry_502) || (st == 503 && rt->retry_503) || (st == 504 && rt->retry_504);
}

static int fail_answer(gw_route *rt, gw_upstream *up, tern_http_resp *w, int rc, tern_http_req *r)
{
    tern_gateway *gw = rt->gen->gw;
    if (rc != -ECANCELED)       /* the client left: nobody's error */
        atomic_fetch_add(&gw->upstream_errors, 1);
    int status;
    const char *msg;
    if (rc == -EAGAIN) {
        status = 503;
        msg = "upstream circuit open";
    } else if (rc == -ENOENT && !tern_ctx_err(tern_http_req_ctx(r))) {
        status = 503;
        msg = "no upstream endpoint available";
    } else if (rc == -ETIMEDOUT) {
        status = 504;
        msg = "upstream timed out";
    } else if (rc == -ECANCELED) {
        status = 499;
        msg = "client closed request";
    } else {
        status = 502;
        msg = "upstream failed";
    }
    tern__gw_count(gw, rt, up->name, status);
    char text[160];
    snprintf(text, sizeof text, "%s: %s", msg, tern_strerror(rc));
    return tern__gw_error(w, status, text);
}

int tern__gw_proxy(gw_route *rt, gw_upstream *up, tern_http_req *r, tern_http_resp *w, const tern__gw_fwd *fwd)
{
    gw_gen *g = rt->gen;
    tern_ctx *rctx = tern_http_req_ctx(r);
    bool traced = tern_trace_span_from_ctx(rctx) != NULL;
    tern_http_client_request req = {.method = tern_http_req_method(r)};
    body_src src = {0};
    bool replayable;
    int rc = plan_body(r, &req, &src, &replayable);
    if (rc < 0)
        return rc;              /* the client's body: 400 / 408 / 413 */
    if (!(req.headers = build_headers(g, r, fwd, traced)))
        return -ENOMEM;
    char *target = tern__gw_upstream_target(rt, r);
    if (!target)
        return -ENOMEM;
    if (up->proto == GW_HTTP1 && tern__gw_wants_upgrade(r))
        return tern__gw_tunnel(rt, up, r, w, req.headers, target);
    int64_t timeout = rt->timeout ? rt->timeout : up->timeout ? up->timeout : GW_DEFAULT_TIMEOUT;
    int attempts = idempotent(req.method) ? rt->attempts : 1;
    size_t keylen = 0;
    const char *key = up->hash ? tern__gw_upstream_key(up, r, &keylen) : NULL;
    tern_retry_budget_deposit(up->budget);
    for (int attempt = 0;; attempt++) {
        if (attempt > 0)
            tern_sleep(tern_backoff_delay(5 * GW_MS, 100 * GW_MS, attempt - 1));
        tern_breaker_ticket ticket = 0;
        if (up->breaker && tern_breaker_allow(up->breaker, &ticket) < 0)
            return fail_answer(rt, up, w, -EAGAIN, r);
        tern_lb_pick pick;
        if ((rc = tern_balancer_pick(up->lb, key, keylen, &pick)) < 0) {
            if (up->breaker)
                tern_breaker_record(up->breaker, ticket, true);    /* not its fault */
            return fail_answer(rt, up, w, rc, r);
        }
        char *full = join(r, "http://", pick.addr, target);
        req.url = full;
        tern_ctx *actx = NULL;
        tern_http_client_response *resp = NULL;
        int64_t t0 = tern_now();
        rc = full ? tern_ctx_with_timeout(rctx, timeout, &actx) : -ENOMEM;
        if (rc == 0)
            rc = traced ? tern_trace_http_client_do(tern__gw_client(up), NULL, &req, &resp, actx)
                        : tern_http_client_do(tern__gw_client(up), &req, &resp, actx);
        int64_t head_ns = tern_now() - t0;
        if (up->latency)
            tern_metrics_histogram_observe(up->latency, (double)head_ns / 1e9);
        if (rc < 0) {
            bool local = tern_ctx_err(rctx) != 0 || src.err != 0 || rc == -ENOMEM;
            tern__gw_epm_observe(g->gw, up, pick.addr, head_ns, !local);
            tern_balancer_done(up->lb, &pick, head_ns, local ? TERN_LB_LOCAL : TERN_LB_FAILED);
            if (up->breaker)
                tern_breaker_record(up->breaker, ticket, local);
            tern_ctx_free(actx);
            if (src.err)
                return src.err; /* the client's body failed: its status */
            bool again = !local && attempt + 1 < attempts && (replayable || !src.called) &&
                         ((connect_error(rc) && rt->retry_connect) || (reset_error(rc) && rt->retry_reset)) &&
                         tern_retry_budget_try_withdraw(up->budget) == 0;
            if (again)
                continue;
            return fail_answer(rt, up, w, rc, r);
        }
        int status = tern_http_client_response_status(resp);
        bool failed = status >= 500;
        tern__gw_epm_observe(g->gw, up, pick.addr, head_ns, failed);
        if (failed && retry_status(rt, status) && attempt + 1 < attempts && replayable &&
            tern_retry_budget_try_withdraw(up->budget) == 0) {
            tern_http_client_response_free(resp);
            tern_ctx_free(actx);
            tern_balancer_done(up->lb, &pick, head_ns, TERN_LB_FAILED);
            if (up->breaker)
                tern_breaker_record(up->breaker, ticket, false);
            continue;
        }
        rc = copy_response_head(resp, w);
        if (rc == 0)
            rc = stream_body(resp, w);
        tern_http_client_response_free(resp);
        tern_ctx_free(actx);
        tern_balancer_done(up->lb, &pick, head_ns, failed ? TERN_LB_FAILED : TERN_LB_OK);
        if (up->breaker)
            tern_breaker_record(up->breaker, ticket, !failed);
        if (failed)
            atomic_fetch_add(&g->gw->upstream_errors, 1);
        tern__gw_count(g->gw, rt, up->name, status);
        return rc;
    }
}
