/*
 * h2_client_stream.c - one HTTP/2 request of tern_http_client: its
 * HEADERS (the hop as pseudo-header and lower-case fields), its body
 * through a data provider, the wait for the final head, the body read
 * with flow control, cancellation, and release.
 *
 * A request the peer did not process is sent again on another
 * connection (RFC 9113 8.7), whatever its method: a stream above a
 * GOAWAY's last_stream_id (nghttp2 closes it with REFUSED_STREAM), one
 * the peer refused with REFUSED_STREAM before answering, one whose
 * HEADERS never left because the connection died or went away first.
 * The stream's err is -EAGAIN then; TERN__H2C_ATTEMPTS bounds the tries.
 *
 * The caller's ctx ending while it waits (for the head, or for body
 * bytes) resets the stream with CANCEL; its connection keeps serving the
 * others.  Freeing a response whose body was not read to its end does
 * the same, and gives the unread bytes' window back to the connection.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h2_client_internal.h"
#include "http/h2_common.h"

/* The request's header block.  Names are lower-cased into names. */
typedef struct h2c_headers {
    nghttp2_nv *nva;
    size_t n;
    char *names;
    char authority[sizeof ((tern_http_url *)0)->hostport + 2];
    char length[24];
} h2c_headers;

static nghttp2_nv nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
}

#define NV_LIT(n, v, vlen) nv(n, sizeof n - 1, v, vlen)

static bool has_header(const char *const *h, const char *name)
{
    for (; h && h[0]; h += 2)
        if (strcasecmp(h[0], name) == 0)
            return true;
    return false;
}

static bool origin_bound(const char *name)
{
    return strcasecmp(name, "Authorization") == 0 || strcasecmp(name, "Proxy-Authorization") == 0 ||
           strcasecmp(name, "Cookie") == 0;
}

/* RFC 9113 8.3.1: :method, :scheme, :authority (from Host when the
 * caller gave one) and :path; then the fields, less those HTTP/2 forbids. */
static int build_headers(tern_http_client *c, const tern__hc_hop *hop, h2c_headers *hb)
{
    size_t nuser = 0, namebytes = 0;
    for (const char *const *h = hop->headers; h && h[0]; h += 2, nuser++)
        namebytes += strlen(h[0]) + 1;
    hb->nva = calloc(nuser + 6, sizeof *hb->nva);
    hb->names = malloc(namebytes + 1);
    if (!hb->nva || !hb->names)
        return -ENOMEM;
    const tern_http_url *u = &hop->u;
    tern__hc_authority(u, hb->authority, sizeof hb->authority);
    const char *authority = hb->authority;
    for (const char *const *h = hop->headers; h && h[0] && !hop->cross_origin; h += 2)
        if (strcasecmp(h[0], "Host") == 0)
            authority = h[1];   /* the first origin's name: not another's after a redirect */
    size_t n = 0;
    hb->nva[n++] = NV_LIT(":method", hop->method, strlen(hop->method));
    hb->nva[n++] = NV_LIT(":scheme", u->scheme, strlen(u->scheme));
    hb->nva[n++] = NV_LIT(":authority", authority, strlen(authority));
    hb->nva[n++] = NV_LIT(":path", u->path_len ? u->path : "/", u->path_len ? u->path_len : 1);
    if (!has_header(hop->headers, "User-Agent"))
        hb->nva[n++] = NV_LIT("user-agent", c->user_agent, strlen(c->user_agent));
    bool wants_length = strcmp(hop->method, "POST") == 0 || strcmp(hop->method, "PUT") == 0 ||
                        strcmp(hop->method, "PATCH") == 0;
    if (hop->body_read) {
        if (hop->body_read_len >= 0) {     /* unknown: the stream's end ends it */
            int len = snprintf(hb->length, sizeof hb->length, "%lld", (long long)hop->body_read_len);
            hb->nva[n++] = NV_LIT("content-length", hb->length, (size_t)len);
        }
    } else if (hop->has_body || wants_length) {
        int len = snprintf(hb->length, sizeof hb->length, "%zu", hop->has_body ? hop->body_len : 0);
        hb->nva[n++] = NV_LIT("content-length", hb->length, (size_t)len);
    }
    char *p = hb->names;
    for (const char *const *h = hop->headers; h && h[0]; h += 2) {
        if (strcasecmp(h[0], "Host") == 0 || tern__h2_forbidden_field(h[0], h[1]) ||
            (hop->cross_origin && origin_bound(h[0])))
            continue;
        size_t len = strlen(h[0]);
        for (size_t i = 0; i < len; i++)
            p[i] = (char)tolower((unsigned char)h[0][i]);
        hb->nva[n++] = nv(p, len, h[1], strlen(h[1]));
        p += len + 1;
    }
    TERN_ASSERT(n <= nuser + 6 && (size_t)(p - hb->names) <= namebytes);
    hb->n = n;
    return 0;
}

/* Reset s if it is still open (mu held). */
static void cancel(tern__h2c_conn *h, tern__h2c_stream *s)
{
    if (atomic_load(&h->dead) || s->closed || s->id <= 0)
        return;
    nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    tern_cond_signal(&h->wcond);
}

/* A streamed body (mu held): read a piece with the lock let go (the
 * reader may park), hand it to the data provider, wait until it is sent,
 * and so on to the reader's end, as the peer's window allows.  Stops
 * early when the stream ends or fails (the peer answered without reading
 * it all).  0, or the error the request fails with. */
static int pump_body(tern__h2c_conn *h, tern__h2c_stream *s, tern__hc_hop *hop, tern_ctx *ctx)
{
    int64_t total = 0;
    while (!s->body_eof && !s->err && !s->closed && !s->eof) {
        if (s->body_off < s->body_len) {
            int rc = tern_cond_wait(&s->cond, &h->mu, ctx);
            if (rc < 0)
                return rc;
            continue;
        }
        /* empty: the provider reads nothing while the next piece comes in */
        s->body_off = s->body_len = 0;
        tern_mutex_unlock(&h->mu);
        hop->body_started = true;
        ssize_t n = hop->body_read(s->body_own, TERN__H2C_PIECE, hop->body_arg);
        tern_mutex_lock(&h->mu);
        if (n < 0)
            return (int)n;
        total += n;
        if (hop->body_read_len >= 0 && (total > hop->body_read_len || (n == 0 && total != hop->body_read_len)))
            return -EPIPE;      /* ran over, or ended early: as HTTP/1.1 says */
        if (n == 0)
            s->body_eof = true;
        s->body_len = (size_t)n;
        if (s->deferred && !atomic_load(&h->dead) && !s->closed) {
            s->deferred = false;
            nghttp2_session_resume_data(h->session, s->id);
        }
        tern_cond_signal(&h->wcond);
    }
    return 0;
}

/* Send the request on h and wait for the final head.  s joins
 * h->streams once submitted. */
static int submit_and_wait(tern__h2c_conn *h, tern__h2c_stream *s, const h2c_headers *hb,
                           bool has_body, tern__hc_hop *hop, tern_ctx *ctx)
{
    tern_mutex_lock(&h->mu);
    if (atomic_load(&h->dead) || atomic_load(&h->goaway)) {
        tern_mutex_unlock(&h->mu);
        return -EAGAIN;         /* went away since checkout: another conn */
    }
    nghttp2_data_provider prd = {.source.ptr = NULL, .read_callback = tern__h2c_read_body};
    int32_t id = nghttp2_submit_request(h->session, NULL, hb->nva, hb->n,
                                        s->streaming || (has_body && s->body_len) ? &prd : NULL, NULL);
    if (id < 0) {
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
            atomic_store(&h->goaway, true);
        tern_mutex_unlock(&h->mu);
        return id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? -EAGAIN : -ENOMEM;
    }
    s->id = id;
    tern__h2c_link(h, s);
    tern_cond_signal(&h->wcond);
    int rc = 0;
    if (s->streaming && (rc = pump_body(h, s, hop, ctx)) < 0) {
        cancel(h, s);
        s->err = rc;
    }
    while (!s->got_head && !s->err && !s->closed && !s->eof)
        if ((rc = tern_cond_wait(&s->cond, &h->mu, ctx)) < 0) {
            cancel(h, s);
            s->err = rc;
        }
    if (s->got_head && !s->err) {
        rc = 0;
        if (!s->streaming && s->body_off < s->body_len && !s->closed) {
            /* the caller's body is only lent for the call: keep the rest */
            size_t rest = s->body_len - s->body_off;
            if ((s->body_own = malloc(rest))) {
                memcpy(s->body_own, s->body + s->body_off, rest);
                s->body = s->body_own;
                s->body_len = rest;
                s->body_off = 0;
            } else {
                cancel(h, s);
                rc = s->err = -ENOMEM;
            }
        }
    } else {
        rc = s->err ? s->err : -ECONNRESET;
    }
    tern_mutex_unlock(&h->mu);
    return rc;
}

/* Take s off its connection (resetting it if open), free it, give the
 * slot back. */
static void stream_end(tern__h2c_conn *h, tern__h2c_stream *s)
{
    tern_mutex_lock(&h->mu);
    if (s->conn) {
        TERN_ASSERT(tern__h2c_find(h, s->id) == s);
        cancel(h, s);
        if (!atomic_load(&h->dead)) {
            if (s->dlen > s->dpos)      /* unread: the connection's window back */
                nghttp2_session_consume(h->session, s->id, s->dlen - s->dpos);
            if (nghttp2_session_want_write(h->session))
                tern_cond_signal(&h->wcond);
            else if (tern__h2c_session_done(h))
                tern__h2c_kill(h, -ECONNRESET);
        }
        tern__h2c_unlink(h, s);
    }
    bool news = h->pool_news;
    h->pool_news = false;
    tern_mutex_unlock(&h->mu);
    if (news) {
        tern_mutex_lock(&h->client->mu);
        tern_cond_broadcast(&h->host->h2_cond);
        tern_mutex_unlock(&h->client->mu);
    }
    free(s->head.p);
    free(s->trailers.p);
    free(s->data);
    free(s->body_own);
    free(s);
    tern__h2c_checkin(h);
}

/* Copy the head into r, as the HTTP/1.1 reader leaves it. */
static int fill_response(tern_http_client_response *r, const tern__hc_hop *hop,
                         tern__h2c_stream *s)
{
    TERN_ASSERT(s->got_head && s->nhead <= TERN_HTTP_CLIENT_MAX_HEADERS);
    r->fields = malloc(s->head.len ? s->head.len : 1);
    if (!r->fields)
        return -ENOMEM;
    if (s->head.len)
        memcpy(r->fields, s->head.p, s->head.len);
    const char *p = r->fields;
    for (size_t i = 0; i < s->nhead; i++) {
        r->names[i] = p;
        p += strlen(p) + 1;
        r->values[i] = p;
        p += strlen(p) + 1;
    }
    r->nfields = s->nhead;
    r->status = s->status;
    r->head_request = strcmp(hop->method, "HEAD") == 0;
    const char *cl = tern_http_client_response_header(r, "content-length");
    r->content_length = -1;
    if (cl) {
        /* nghttp2 checked it is digits (and will check the body against it) */
        char *end;
        long long v = strtoll(cl, &end, 10);
        if (*cl && !*end && v >= 0)
            r->content_length = v;
    }
    if (!r->head_request && (r->status == 204 || r->status == 304))
        r->content_length = 0;
    return 0;
}

int tern__h2c_exchange(tern_http_client *c, tern_http_client_response *r, tern__hc_hop *hop,
                       tern_conn **h1conn)
{
    tern_conn *unused = NULL;
    if (!h1conn)
        h1conn = &unused;       /* http:// origins never speak HTTP/1.1 here */
    TERN_ASSERT(r->h2 == NULL && r->lease.conn == NULL);
    h2c_headers hb = {0};
    int rc = build_headers(c, hop, &hb);
    for (int attempt = 0; rc == 0 || (rc == -EAGAIN && attempt < TERN__H2C_ATTEMPTS); attempt++) {
        tern__hc_response_reset(r);
        r->is_h2 = true;
        tern__h2c_conn *h;
        if ((rc = tern__h2c_checkout(c, &hop->u, hop->dial, r->ctx, &h, h1conn)) != 0)
            break;
        tern__h2c_stream *s = calloc(1, sizeof *s);
        if (!s) {
            tern__h2c_checkin(h);
            rc = -ENOMEM;
            break;
        }
        s->body = hop->body;
        s->body_len = hop->has_body ? hop->body_len : 0;
        if (hop->body_read) {
            s->streaming = true;
            if (!(s->body_own = malloc(TERN__H2C_PIECE))) {
                free(s);
                tern__h2c_checkin(h);
                rc = -ENOMEM;
                break;
            }
            s->body = s->body_own;
            s->body_len = 0;
        }
        atomic_fetch_add(&c->requests, 1);
        rc = submit_and_wait(h, s, &hb, hop->has_body, hop, r->ctx);
        if (rc == -EAGAIN && hop->body_started)
            rc = -ECONNRESET;   /* not processed, but its body is read: no second try */
        if (rc == 0 && (rc = fill_response(r, hop, s)) == 0) {
            r->h2 = s;
            break;
        }
        stream_end(h, s);      /* -EAGAIN: not processed, try again */
    }
    free(hb.nva);
    free(hb.names);
    return rc;
}

ssize_t tern__h2c_read(tern_http_client_response *r, void *buf, size_t n)
{
    tern__h2c_stream *s = r->h2;
    tern__h2c_conn *h = s->conn;
    ssize_t rc;
    tern_mutex_lock(&h->mu);
    for (;;) {
        if (s->dlen > s->dpos) {
            size_t k = s->dlen - s->dpos < n ? s->dlen - s->dpos : n;
            memcpy(buf, s->data + s->dpos, k);
            s->dpos += k;
            if (!atomic_load(&h->dead)) {
                /* read: the peer may send that much more (WINDOW_UPDATE) */
                nghttp2_session_consume(h->session, s->id, k);
                if (nghttp2_session_want_write(h->session))
                    tern_cond_signal(&h->wcond);
            }
            rc = (ssize_t)k;
            break;
        }
        if (s->err) {
            rc = s->err;
            break;
        }
        if (s->eof) {
            rc = 0;
            break;
        }
        if (s->closed) {
            rc = -ECONNRESET;
            break;
        }
        int w = tern_cond_wait(&s->cond, &h->mu, r->ctx);
        if (w < 0) {
            cancel(h, s);
            rc = s->err = w;
            break;
        }
    }
    tern_mutex_unlock(&h->mu);
    if (rc == 0)
        r->done = true;
    return rc;
}

void tern__h2c_release(tern_http_client_response *r)
{
    tern__h2c_stream *s = r->h2;
    r->h2 = NULL;
    stream_end(s->conn, s);
}

const char *tern__h2c_trailer(const tern_http_client_response *r, const char *name)
{
    tern__h2c_stream *s = r->h2;
    if (!s || !r->done)
        return NULL;
    const char *found = NULL;
    tern_mutex_lock(&s->conn->mu);
    if (s->eof) {   /* the trailers are complete, and stay as they are */
        const char *p = s->trailers.p;
        for (size_t i = 0; i < s->ntrailers && !found; i++) {
            const char *v = p + strlen(p) + 1;
            if (strcasecmp(p, name) == 0)
                found = v;
            p = v + strlen(v) + 1;
        }
    }
    tern_mutex_unlock(&s->conn->mu);
    return found;
}
