/*
 * client.c - the HTTP/1.1 client's face: options, writing a request,
 * the retry of a request that met a stale pooled connection, and
 * redirects.  With h2c_prior_knowledge an exchange goes to the HTTP/2
 * side instead (h2_client_stream.c), and the rest is the same.
 *
 * With a picker, each hop to the picked name goes through client_pick.c
 * first.
 *
 * One exchange (request out, response head in) runs on a leased
 * connection (client_pool.c); the response then owns the lease until it
 * is freed (client_response.c).  Following a redirect drains the 3xx body
 * (if small) so its connection can serve the next hop, then starts over
 * with the resolved Location, reusing the response object.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "http/h2_client_internal.h"
#include "http/parse_internal.h"
#include "tern/runtime.h"

/* A redirect body up to this size is read and dropped to keep the
 * connection; a larger one costs a new connection instead. */
#define HC_REDIRECT_DRAIN (64 * 1024)

int tern_http_client_new(const tern_http_client_options *o, tern_http_client **out)
{
    TERN_CHECK_ARG(out);
    static const tern_http_client_options defaults = {0};
    if (!o)
        o = &defaults;
    *out = NULL;
    if (o->max_conns_per_host < 0 || o->idle_timeout < 0 || o->timeout < 0 ||
        o->max_redirects < 0 || (o->picker && (!o->picker->pick || !o->picker->done)))
        return -EINVAL;
    const char *ua = o->user_agent ? o->user_agent : "tern";
    for (const char *p = ua; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return -EINVAL;
    tern_http_client *c = calloc(1, sizeof *c);
    if (!c || !(c->user_agent = strdup(ua))) {
        free(c);
        return -ENOMEM;
    }
    c->max_idle = o->max_idle_per_host ? o->max_idle_per_host : 16;
    c->max_conns = o->max_conns_per_host;
    c->idle_timeout = o->idle_timeout ? o->idle_timeout : 90 * TERN_SEC;
    c->timeout = o->timeout;
    c->max_redirects = o->max_redirects;
    c->max_header = o->max_response_header ? o->max_response_header : 64 * 1024;
    c->tls = o->tls;
    c->h2c = o->h2c_prior_knowledge;
    c->h2_tls = !o->disable_h2;
    c->picker = o->picker;
    c->picker_arg = o->picker_arg;
    if ((o->picker_host && !(c->picker_host = strdup(o->picker_host))) || tern__hc_responses_new(c) < 0) {
        tern_http_client_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void tern_http_client_free(tern_http_client *c)
{
    if (!c)
        return;
    if (atomic_load(&c->active) != 0) {
        fprintf(stderr, "tern: tern_http_client_free with %u responses not freed\n",
                atomic_load(&c->active));
        abort();
    }
    tern__h2c_pool_free(c);
    tern__hc_pool_free(c);
    tern_tls_config_free(c->own_tls);
    free(c->user_agent);
    free(c->picker_host);
    tern__hc_responses_free(c);
    free(c);
}

int tern_http_client_stats(const tern_http_client *c, struct tern_http_client_stats *st)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(st);
    st->dials = atomic_load(&c->dials);
    st->reuses = atomic_load(&c->reuses);
    st->requests = atomic_load(&c->requests);
    st->idle = atomic_load(&c->idle);
    st->active = atomic_load(&c->active);
    st->h2_conns = atomic_load(&c->h2_conns);
    st->responses_made = tern__hc_responses_made(c);
    return 0;
}

/* ---- the request head ---------------------------------------------------- */

/* s's length if it is a token (RFC 9110 5.6.2), else 0. */
static size_t token_len(const char *s)
{
    const char *p = s;
    while (tern_http_is((unsigned char)*p, TERN_HTTP_TCHAR))
        p++;
    return *p ? 0 : (size_t)(p - s);
}

/* A field value may not end the line early (CR, LF) or hold other
 * control characters; tabs are allowed.  A word at a time while no byte
 * is a control character (a bearer token is most of a proxied head). */
static bool is_field_value(const char *s)
{
    size_t n = strlen(s), i = 0;
    for (uint64_t w; n - i >= 8; i += 8) {
        memcpy(&w, s + i, 8);
        if (tern__http_word_has_ctl(w))
            break;
    }
    for (; i < n; i++)
        if (!tern_http_is((unsigned char)s[i], TERN_HTTP_FIELD))
            return false;
    return true;
}

static int check_request(const tern_http_client_request *req, bool *close)
{
    tern__http_chars_init();
    if (!req->url || (req->method && !token_len(req->method)) || (!req->body && req->body_len) ||
        (req->body_read && req->body))
        return -EINVAL;
    *close = false;
    for (const char *const *h = req->headers; h && h[0]; h += 2) {
        /* the names compared by length first: most headers are none of them */
        size_t n = token_len(h[0]);
        if (!h[1] || !n || !is_field_value(h[1]) ||
            (n == 14 && strcasecmp(h[0], "Content-Length") == 0) ||
            (n == 17 && strcasecmp(h[0], "Transfer-Encoding") == 0))
            return -EINVAL;
        if (n == 10 && strcasecmp(h[0], "Connection") == 0 && strcasestr(h[1], "close"))
            *close = true;
    }
    return 0;
}

typedef tern__buf strbuf;

static void put(strbuf *b, const char *s, size_t n) { tern__buf_put(b, s, n); }

static void puts3(strbuf *b, const char *a, const char *sep, const char *v)
{
    put(b, a, strlen(a));
    put(b, sep, strlen(sep));
    put(b, v, strlen(v));
    put(b, "\r\n", 2);
}

void tern__hc_authority(const tern_http_url *u, char *out, size_t size)
{
    bool tls = strcasecmp(u->scheme, "https") == 0;
    if (u->port == (tls ? 443 : 80))
        snprintf(out, size, strchr(u->host, ':') ? "[%s]" : "%s", u->host);
    else
        snprintf(out, size, "%s", u->hostport);
}

static bool has_header(const char *const *h, const char *name)
{
    for (; h && h[0]; h += 2)
        if (strcasecmp(h[0], name) == 0)
            return true;
    return false;
}

/* Credentials meant for one origin are not handed to another, nor is a
 * Host the caller gave (it names the first origin). */
static bool origin_bound(const char *name)
{
    return strcasecmp(name, "Authorization") == 0 || strcasecmp(name, "Proxy-Authorization") == 0 ||
           strcasecmp(name, "Cookie") == 0 || strcasecmp(name, "Host") == 0;
}

typedef tern__hc_hop hc_hop;

static int build_head(tern_http_client *c, const hc_hop *hop, strbuf *b)
{
    put(b, hop->method, strlen(hop->method));
    put(b, " ", 1);
    put(b, hop->u.path, hop->u.path_len);
    put(b, " HTTP/1.1\r\n", 11);
    if (hop->cross_origin || !has_header(hop->headers, "Host")) {   /* a caller's Host names the first origin */
        char authority[sizeof hop->u.hostport + 2];
        tern__hc_authority(&hop->u, authority, sizeof authority);
        puts3(b, "Host", ": ", authority);
    }
    if (!has_header(hop->headers, "User-Agent"))
        puts3(b, "User-Agent", ": ", c->user_agent);
    bool wants_length = strcmp(hop->method, "POST") == 0 || strcmp(hop->method, "PUT") == 0 ||
                        strcmp(hop->method, "PATCH") == 0;
    if (hop->body_read && hop->body_read_len < 0) {
        put(b, "Transfer-Encoding: chunked\r\n", 28);
    } else if (hop->body_read) {
        char n[24];
        snprintf(n, sizeof n, "%lld", (long long)hop->body_read_len);
        puts3(b, "Content-Length", ": ", n);
    } else if (hop->has_body || wants_length) {
        char n[24];
        snprintf(n, sizeof n, "%zu", hop->has_body ? hop->body_len : 0);
        puts3(b, "Content-Length", ": ", n);
    }
    if (c->max_idle < 0 && !hop->close)
        put(b, "Connection: close\r\n", 19);
    for (const char *const *h = hop->headers; h && h[0]; h += 2)
        if (!(hop->cross_origin && origin_bound(h[0])))
            puts3(b, h[0], ": ", h[1]);
    put(b, "\r\n", 2);
    return b->oom ? -ENOMEM : 0;
}

/* ---- one exchange -------------------------------------------------------- */

static bool idempotent(const char *m)
{
    static const char *const ms[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (strcmp(m, ms[i]) == 0)
            return true;
    return false;
}

/* What a server that closed an idle connection under us looks like: the
 * write fails, or the read meets EOF or a reset before any response byte. */
static bool stale_conn_error(int rc)
{
    return rc == -EPIPE || rc == -ECONNRESET || rc == -ECONNABORTED;
}

/* The streamed body: pieces as the reader gives them, each a chunk when
 * the length is not known (RFC 9112 7.1), then the last chunk. */
#define HC_STREAM_PIECE (64 * 1024)

static int send_streamed(tern_http_client_response *r, hc_hop *hop)
{
    char *buf = malloc(HC_STREAM_PIECE);
    if (!buf)
        return -ENOMEM;
    bool chunked = hop->body_read_len < 0;
    int64_t left = hop->body_read_len;
    int rc = 0;
    hop->body_started = true;
    for (;;) {
        ssize_t n = hop->body_read(buf, HC_STREAM_PIECE, hop->body_arg);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (!chunked && (n > left || (n == 0 && left > 0))) {
            rc = -EPIPE;        /* the reader disagrees with the length it announced */
            break;
        }
        if (n == 0) {
            if (chunked) {
                struct iovec end = {.iov_base = "0\r\n\r\n", .iov_len = 5};
                rc = tern__hc_writev(r->lease.conn, r->ctx, &end, 1);
            }
            break;
        }
        char size[24];
        struct iovec iov[3] = {
            {.iov_base = size, .iov_len = chunked ? (size_t)snprintf(size, sizeof size, "%zx\r\n", (size_t)n) : 0},
            {.iov_base = buf, .iov_len = (size_t)n},
            {.iov_base = "\r\n", .iov_len = chunked ? 2 : 0},
        };
        if ((rc = tern__hc_writev(r->lease.conn, r->ctx, iov, 3)) < 0)
            break;
        left -= n;
    }
    free(buf);
    if (rc < 0)
        r->keep_alive = false;  /* the server may be waiting for the rest */
    return rc;
}

static int send_request(tern_http_client_response *r, const strbuf *head, hc_hop *hop)
{
    struct iovec iov[2] = {
        {.iov_base = head->p, .iov_len = head->len},
        {.iov_base = (void *)hop->body, .iov_len = hop->has_body ? hop->body_len : 0},
    };
    atomic_fetch_add(&r->client->requests, 1);
    int rc = tern__hc_writev(r->lease.conn, r->ctx, iov, 2);
    if (rc == 0 && hop->body_read)
        rc = send_streamed(r, hop);
    return rc;
}

/* Lease a connection, send the hop, read the response head.  On failure
 * the lease is given up. */
/* The ALPN an https origin's handshakes agreed on (TERN__HC_ALPN_*). */
static int origin_alpn(tern_http_client *c, const tern_http_url *u, const char *dial)
{
    tern_mutex_lock(&c->mu);
    tern__hc_host *h = tern__hc_host_get(c, u, dial);
    int alpn = h ? h->alpn : TERN__HC_ALPN_UNKNOWN;
    tern_mutex_unlock(&c->mu);
    return alpn;
}

int tern__hc_exchange(tern_http_client *c, tern_http_client_response *r, hc_hop *hop)
{
    TERN_ASSERT(r->lease.conn == NULL && r->h2 == NULL);    /* the last hop's lease is back */
    r->is_h2 = false;
    bool tls = strcasecmp(hop->u.scheme, "https") == 0;
    if (c->h2c && !tls)         /* h2c: cleartext only */
        return tern__h2c_exchange(c, r, hop, NULL);
    /* https: an origin not known to speak HTTP/1.1 goes to the HTTP/2
     * side, whose dial learns the ALPN (and hands over the connection
     * when it is HTTP/1.1) */
    tern_conn *h1conn = NULL;
    bool tried_h2 = false;
    if (tls && c->h2_tls && !hop->body_read && origin_alpn(c, &hop->u, hop->dial) != TERN__HC_ALPN_H1) {
        int rc = tern__h2c_exchange(c, r, hop, &h1conn);
        if (rc != TERN__HC_SPEAK_H1)
            return rc;
        r->is_h2 = false;
        tried_h2 = true;
    }
    strbuf head = {0};
    int rc = build_head(c, hop, &head);
    if (rc == 0)
        rc = tern_ctx_err(r->ctx);
    if (h1conn && rc == 0)
        rc = tern__hc_adopt(c, &hop->u, hop->dial, h1conn, r->ctx, &r->lease);
    else if (h1conn)
        tern_conn_free(h1conn);
    else if (rc == 0)
        rc = tern__hc_checkout(c, &hop->u, hop->dial, r->ctx, &r->lease);
    for (int attempt = 0; rc == 0; attempt++) {
        TERN_ASSERT(attempt <= 1 && r->lease.conn != NULL);   /* one retry at most */
        tern__hc_response_reset(r);
        r->head_request = strcmp(hop->method, "HEAD") == 0;
        r->keep_alive = c->max_idle > 0 && !hop->close;
        rc = send_request(r, &head, hop);
        if (rc == 0)
            rc = tern__hc_read_head(r);
        if (rc == 0)
            break;
        if (attempt == 0 && r->lease.reused && !r->got_byte && stale_conn_error(rc) &&
            idempotent(hop->method) && !hop->body_started) {
            rc = tern__hc_redial(c, &r->lease, r->ctx);
            continue;           /* on failure the lease is gone: out */
        }
        tern__hc_checkin(c, &r->lease, false);
    }
    /* success holds the lease; failure has given it up */
    TERN_ASSERT((rc == 0) == (r->lease.conn != NULL));
    free(head.p);
    if (rc == TERN__HC_SPEAK_H2) {
        /* a handshake here agreed on h2 after all: the server changed its
         * mind; once each way, then it is the server's error */
        if (tried_h2)
            return -EPROTO;
        rc = tern__h2c_exchange(c, r, hop, &h1conn);
        if (rc == TERN__HC_SPEAK_H1) {
            tern_conn_free(h1conn);
            rc = -EPROTO;
        }
    }
    return rc;
}

/* ---- redirects ------------------------------------------------------------ */

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* "scheme:" at the start of s (RFC 3986 3.1)? */
static bool has_scheme(const char *s)
{
    const char *p = s;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
           (p > s && ((*p >= '0' && *p <= '9') || *p == '+' || *p == '-' || *p == '.')))
        p++;
    return p > s && *p == ':';
}

/* The URL that loc (a Location value) names, seen from the request's URL:
 * absolute, scheme-relative "//host/p", absolute-path "/p", query "?q",
 * or relative to the request path's directory (no dot-segment removal).
 * NULL on ENOMEM. */
static char *resolve_location(const tern_http_url *u, const char *loc)
{
    char *out = NULL;
    int n;
    if (has_scheme(loc)) {
        out = strdup(loc);
        n = out ? 0 : -1;
    } else if (loc[0] == '/' && loc[1] == '/') {
        n = asprintf(&out, "%s:%s", u->scheme, loc);
    } else if (loc[0] == '/') {
        n = asprintf(&out, "%s://%s%s", u->scheme, u->hostport, loc);
    } else {
        size_t dir = strcspn(u->path, "?");
        if (dir > u->path_len)
            dir = u->path_len;
        if (loc[0] != '?')
            while (dir > 0 && u->path[dir - 1] != '/')
                dir--;
        n = asprintf(&out, "%s://%s%.*s%s", u->scheme, u->hostport, (int)dir, u->path, loc);
    }
    return n < 0 ? NULL : out;
}

/* Turn hop into the one that follows r's redirect. */
static void redirect_hop(hc_hop *hop, int status)
{
    bool to_get = status == 303 ||
                  ((status == 301 || status == 302) && strcmp(hop->method, "POST") == 0);
    if (to_get) {
        if (strcmp(hop->method, "HEAD") != 0)
            hop->method = "GET";
        hop->body = NULL;
        hop->body_len = 0;
        hop->has_body = false;
    }
}

/* http or https: the parser takes no other scheme. */
static int parse_url(const char *url, tern_http_url *u, bool from_server)
{
    if (tern_http_url_parse(url, u) < 0)
        return from_server ? -EBADMSG : -EINVAL;
    return 0;
}

int tern_http_client_do(tern_http_client *c, const tern_http_client_request *req,
                        tern_http_client_response **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(req);
    TERN_CHECK_ARG(out);
    *out = NULL;
    hc_hop hop = {
        .method = req->method ? req->method : (req->body || req->body_read) ? "POST" : "GET",
        .headers = req->headers,
        .body = req->body,
        .body_len = req->body_len,
        .has_body = req->body != NULL,
        .body_read = req->body_read,
        .body_arg = req->body_arg,
        .body_read_len = req->body_read_len,
    };
    int rc = check_request(req, &hop.close);
    if (rc < 0)
        return rc;
    char first[sizeof hop.u.hostport];
    char *url = strdup(req->url);
    tern_http_client_response *r = url ? tern__hc_response_new(c) : NULL;
    if (!r) {
        free(url);
        return -ENOMEM;
    }
    r->ctx = ctx;
    if (c->timeout > 0) {
        if ((rc = tern_ctx_with_timeout(ctx, c->timeout, &r->own_ctx)) < 0)
            goto fail;
        r->ctx = r->own_ctx;
    }
    for (int hops = 0;; hops++) {
        TERN_ASSERT(hops <= c->max_redirects);
        if ((rc = parse_url(url, &hop.u, hops > 0)) < 0)
            goto fail;
        if (hops == 0)
            strcpy(first, hop.u.hostport);
        hop.cross_origin = strcmp(first, hop.u.hostport) != 0;
        if ((rc = tern__hc_exchange_picked(c, r, &hop, req->affinity_key, req->affinity_key_len)) < 0)
            goto fail;
        const char *loc = tern_http_client_response_header(r, "Location");
        if (c->max_redirects == 0 || !is_redirect(r->status) || !loc ||
            hop.body_read)      /* its body cannot be sent twice */
            break;
        if (hops == c->max_redirects) {
            rc = -ELOOP;
            goto fail;
        }
        char *next = resolve_location(&hop.u, loc);
        if (!next) {
            rc = -ENOMEM;
            goto fail;
        }
        redirect_hop(&hop, r->status);
        bool drained = tern__hc_discard_body(r, HC_REDIRECT_DRAIN);
        if (r->h2)
            tern__h2c_release(r);   /* drained or reset: the connection stays */
        else
            tern__hc_checkin(c, &r->lease, drained && tern__hc_reusable(r));
        free(url);
        url = next;             /* hop.u.path pointed into the old one: parsed again above */
    }
    free(url);
    *out = r;
    return 0;
fail:
    free(url);
    tern_http_client_response_free(r);
    return rc;
}

int tern_http_client_get(tern_http_client *c, const char *url, tern_http_client_response **out,
                         tern_ctx *ctx)
{
    tern_http_client_request req = {.url = url};
    return tern_http_client_do(c, &req, out, ctx);
}
