/*
 * request.c - what a handler asks of a request: its line, fields, query,
 * route parameters, cookies, form, body (streamed, whole or as JSON), its
 * context and per-request values; and the middleware chain.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <jansson.h>

#include "http/h2_internal.h"
#include "http/json_body.h"
#include "http/server_internal.h"
#include "tern/runtime.h"

/* the owned context slots always have room for the values added before
 * the context was made, plus the context itself (tern_http_req_ctx) */
_Static_assert(HTTP_MAX_CTX_VALUES < HTTP_MAX_CTXS, "owned ctx slots hold the early values");

/* ---- the chain ---------------------------------------------------------- */

int tern_http_next(tern_http_req *r, tern_http_resp *w)
{
    TERN_ASSERT(r->chain_pos <= r->chain_len);
    if (r->chain_pos >= r->chain_len)
        return 0;
    const tern_http_link *l = &r->chain[r->chain_pos++];
    return l->fn(r, w, l->arg);
}

int tern_http_run_chain(tern_http_req *r, tern_http_resp *w, const tern_http_link *chain, size_t n)
{
    const tern_http_link *saved = r->chain;
    size_t saved_len = r->chain_len, saved_pos = r->chain_pos;
    r->chain = chain;
    r->chain_len = n;
    r->chain_pos = 0;
    int rc = tern_http_next(r, w);
    r->chain = saved;
    r->chain_len = saved_len;
    r->chain_pos = saved_pos;
    return rc;
}

/* ---- line and fields ---------------------------------------------------- */

const char *tern_http_req_method(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return r->head.method;
}

const char *tern_http_req_target(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return r->head.target;
}

int tern_http_req_minor_version(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return r->head.minor_version;
}

const char *tern_http_req_proto(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    if (r->conn->h2)
        return "HTTP/2";
    return r->head.minor_version == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

const char *tern_http_req_trailer(tern_http_req *r, const char *name)
{
    TERN_CHECK_ARG(r);
    return r->conn->h2 ? tern__h2_req_trailer(r, name) : NULL;
}

int64_t tern_http_req_start_time(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return r->start;
}

bool tern_http_req_is_head(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return r->head.method_len == 4 && !memcmp(r->head.method, "HEAD", 4);
}

const char *tern_http_req_raw_query(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    const char *q = memchr(r->head.target, '?', r->head.target_len);
    return q ? q + 1 : "";
}

static bool utf8_valid(const unsigned char *s, size_t n);

const char *tern_http_req_path(tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    if (r->path)
        return r->path;
    const char *t = r->head.target;
    const char *q = memchr(t, '?', r->head.target_len);
    size_t n = q ? (size_t)(q - t) : r->head.target_len;
    char *p = tern__arena_alloc(&r->conn->arena, n + 1);
    if (!p) {
        r->path_valid = true;   /* nothing to check with: the handler will tell */
        return t;
    }
    ssize_t k;
    if (!memchr(t, '%', n)) {
        /* the parser lets only visible ASCII into a target */
        memcpy(p, t, n);
        p[n] = '\0';
        r->path_valid = true;
    } else if ((k = tern_http_unescape(t, n, p, n + 1, false)) < 0) {
        memcpy(p, t, n);        /* undecodable: keep it raw (the server refuses it first) */
        p[n] = '\0';
        r->path_valid = false;
    } else {
        r->path_valid = utf8_valid((const unsigned char *)p, (size_t)k);
    }
    r->path = p;
    return p;
}

/* Whether s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min, cp;
        if ((c & 0xE0) == 0xC0)
            len = 2, min = 0x80, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            len = 3, min = 0x800, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            len = 4, min = 0x10000, cp = c & 0x07;
        else
            return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

bool tern__http_req_path_ok(tern_http_req *r)
{
    /* decoded once, here, for the router and the handlers after it */
    tern_http_req_path(r);
    return r->path_valid;
}

const char *tern_http_req_header(const tern_http_req *r, const char *name)
{
    TERN_CHECK_ARG(r);
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->head.nheaders; i++) {
        const tern_http_header *h = &r->head.headers[i];
        if (h->name_len == nl && !strncasecmp(h->name, name, nl))
            return h->value;
    }
    return NULL;
}

size_t tern_http_req_header_count(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return r->head.nheaders;
}

int tern_http_req_header_at(const tern_http_req *r, size_t i, const char **name, const char **value)
{
    TERN_CHECK_ARG(r);
    if (i >= r->head.nheaders)
        return -ERANGE;
    *name = r->head.headers[i].name;
    *value = r->head.headers[i].value;
    return 0;
}

/* Decode the value of `name` in a query string or form into the arena. */
static const char *form_lookup(tern_http_req *r, const char *s, size_t len, const char *name)
{
    size_t pos = 0, nl = strlen(name);
    const char *k, *v;
    size_t kl, vl;
    char keybuf[256];
    while (tern_http_form_next(s, len, &pos, &k, &kl, &v, &vl) == 1) {
        ssize_t dk = tern_http_unescape(k, kl, keybuf, sizeof keybuf, true);
        if (dk < 0 || (size_t)dk != nl || memcmp(keybuf, name, nl))
            continue;
        char *out = tern__arena_alloc(&r->conn->arena, vl + 1);
        if (!out || tern_http_unescape(v, vl, out, vl + 1, true) < 0)
            return NULL;
        return out;
    }
    return NULL;
}

const char *tern_http_req_query(tern_http_req *r, const char *name)
{
    TERN_CHECK_ARG(r);
    const char *q = tern_http_req_raw_query(r);
    return form_lookup(r, q, strlen(q), name);
}

const char *tern_http_req_param(const tern_http_req *r, const char *name)
{
    TERN_CHECK_ARG(r);
    for (size_t i = r->nparams; i-- > 0;)
        if (!strcmp(r->param_names[i], name))
            return r->param_values[i];
    return NULL;
}

int tern__http_req_add_param(tern_http_req *r, const char *name, const char *value)
{
    TERN_ASSERT(r->nparams <= HTTP_MAX_PARAMS);
    if (r->nparams == HTTP_MAX_PARAMS)
        return -ENOSPC;
    r->param_names[r->nparams] = name;
    r->param_values[r->nparams++] = value;
    return 0;
}

const char *tern_http_req_cookie(tern_http_req *r, const char *name)
{
    TERN_CHECK_ARG(r);
    for (size_t i = 0; i < r->head.nheaders; i++) {
        const tern_http_header *h = &r->head.headers[i];
        const char *v;
        size_t vl;
        if (h->name_len == 6 && !strncasecmp(h->name, "Cookie", 6) &&
            tern_http_cookie_find(h->value, h->value_len, name, &v, &vl) == 1) {
            char *out = tern__arena_alloc(&r->conn->arena, vl + 1);
            if (!out)
                return NULL;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return out;
        }
    }
    return NULL;
}

const char *tern_http_req_form(tern_http_req *r, const char *name)
{
    TERN_CHECK_ARG(r);
    const char *ct = tern_http_req_header(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
        return NULL;
    const char *data;
    size_t len;
    if (tern_http_req_body(r, &data, &len) < 0)
        return NULL;
    return form_lookup(r, data, len, name);
}

/* ---- the body ----------------------------------------------------------- */

int64_t tern_http_req_content_length(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return r->head.chunked ? -1 : r->head.content_length;
}

void tern_http_req_set_max_body(tern_http_req *r, int64_t max)
{
    TERN_CHECK_ARG(r);
    if (max >= 0 && (r->max_body < 0 || max < r->max_body))
        r->max_body = max;
}

static int body_start(tern_http_req *r)
{
    hconn *hc = r->conn;
    r->body_started = true;
    if (hc->h2)
        return 0;       /* its own deadline, and no 100-continue: h2_body.c */
    tern_http_server *s = hc->srv;
    tern_conn_set_read_deadline(hc->c, s->o.read_body_timeout < 0 ? TERN_FOREVER
                                       : tern_now() + s->o.read_body_timeout);
    tern_http_resp *w = hc->cur;
    if (r->head.expect_continue && !r->continue_sent && w && !w->committed) {
        /* Earlier pipelined answers, then the go-ahead; what this
         * response has buffered so far stays buffered (it belongs after
         * its head, which is not written yet).  Once the head is out, no
         * 100 is sent at all (as Go): the client stops waiting for it. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov[2] = { { hc->out.p, w->start }, { (void *)cont, sizeof cont - 1 } };
        r->continue_sent = true;
        if (hc->io_error)
            return hc->io_error;
        ssize_t n = tern_conn_writev(hc->c, iov, 2, NULL);
        if (n < 0) {
            hc->io_error = (int)n;
            return (int)n;
        }
        TERN_ASSERT(w->start <= hc->out.len);
        size_t body = hc->out.len - w->start;
        memmove(hc->out.p, hc->out.p + w->start, body);
        hc->out.len = body;
        w->start = 0;
    }
    return 0;
}

/* More raw bytes into conn->in for the chunked decoder (which consumes
 * everything it is given until the body ends).  The buffer is reused from
 * its start: serve_one has moved this request's head out of it. */
static int fill_raw(hconn *hc)
{
    if (hc->in_pos == hc->in_len)
        hc->in_pos = hc->in_len = 0;
    if (hc->in_len == hc->in_cap) {
        memmove(hc->in, hc->in + hc->in_pos, hc->in_len - hc->in_pos);
        hc->in_len -= hc->in_pos;
        hc->in_pos = 0;
    }
    /* a read of 0 bytes would look like the end of the stream */
    TERN_ASSERT(hc->in_pos <= hc->in_len && hc->in_len < hc->in_cap);
    ssize_t n = tern_conn_read(hc->c, hc->in + hc->in_len, hc->in_cap - hc->in_len, NULL);
    if (n == 0)
        return -ECONNRESET;     /* the body was cut short */
    if (n < 0)
        return (int)n;
    hc->in_len += (size_t)n;
    return 0;
}

static ssize_t read_chunked(tern_http_req *r, char *buf, size_t n)
{
    hconn *hc = r->conn;
    while (r->pend_len == 0) {
        if (r->body_done)
            return 0;
        if (hc->in_pos == hc->in_len) {
            int rc = fill_raw(hc);
            if (rc < 0)
                return rc;
        }
        size_t consumed, produced;
        int rc = tern_http_chunked_decode(&r->dec, hc->in + hc->in_pos, hc->in_len - hc->in_pos,
                                          &consumed, &produced);
        if (rc == TERN_HTTP_BAD)
            return -EBADMSG;
        /* decoded in place: the data never outgrows what it came from */
        TERN_ASSERT(consumed <= hc->in_len - hc->in_pos && produced <= consumed);
        r->pend_off = hc->in_pos;
        r->pend_len = produced;
        hc->in_pos += consumed;
        if (rc == 1)
            r->body_done = true;
    }
    TERN_ASSERT(r->pend_off + r->pend_len <= hc->in_len);
    size_t k = n < r->pend_len ? n : r->pend_len;
    memcpy(buf, hc->in + r->pend_off, k);
    r->pend_off += k;
    r->pend_len -= k;
    return (ssize_t)k;
}

static ssize_t read_length(tern_http_req *r, char *buf, size_t n)
{
    hconn *hc = r->conn;
    if (r->body_left == 0) {
        r->body_done = true;
        return 0;
    }
    TERN_ASSERT(r->body_left > 0 && hc->in_pos <= hc->in_len);
    if ((int64_t)n > r->body_left)
        n = (size_t)r->body_left;
    size_t have = hc->in_len - hc->in_pos;
    ssize_t k;
    if (have > 0) {
        k = (ssize_t)(n < have ? n : have);
        memcpy(buf, hc->in + hc->in_pos, (size_t)k);
        hc->in_pos += (size_t)k;
    } else {
        k = tern_conn_read(hc->c, buf, n, NULL);
        if (k == 0)
            return -ECONNRESET;
        if (k < 0)
            return k;
    }
    TERN_ASSERT((size_t)k <= n);
    r->body_left -= k;
    if (r->body_left == 0)
        r->body_done = true;
    return k;
}

/* Remember the first error the request's body gave its handler, so that
 * a handler returning it gets the client's status (413, 400, 408), and an
 * equal code from elsewhere (a downstream's body) does not. */
static int body_error(tern_http_req *r, int err)
{
    if (err < 0 && r->body_err == 0)
        r->body_err = err;
    return err;
}

ssize_t tern_http_req_read(tern_http_req *r, void *buf, size_t n)
{
    TERN_CHECK_ARG(r);
    if (r->body_failed)
        return -EIO;
    if (r->body_done && r->pend_len == 0)
        return 0;
    if (n == 0)
        return 0;
    if (!r->body_started) {
        int rc = body_start(r);
        if (rc < 0) {
            r->body_failed = true;
            return body_error(r, rc);
        }
    }
    TERN_ASSERT(r->chunked || r->pend_len == 0);   /* pending bytes are chunked's */
    ssize_t k = r->conn->h2 ? tern__h2_body_read(r, buf, n)
                : r->chunked ? read_chunked(r, buf, n) : read_length(r, buf, n);
    if (k < 0) {
        r->body_failed = true;
        r->conn->closing = true;    /* the framing is lost: never reuse */
        return body_error(r, (int)k);
    }
    r->body_read += k;
    if (r->max_body >= 0 && r->body_read > r->max_body) {
        r->body_failed = true;
        r->conn->closing = true;
        return body_error(r, -EMSGSIZE);
    }
    if (r->body_done && r->cancel_ctx)
        tern__http_req_watch_peer(r);   /* the body is in: from now on a FIN means gone */
    return k;
}

int tern_http_req_body(tern_http_req *r, const char **data, size_t *len)
{
    TERN_CHECK_ARG(r);
    if (r->body_loaded) {
        *data = r->body_data;
        *len = r->body_len;
        return 0;
    }
    if (r->body_started && !r->body_done)
        return -EALREADY;       /* partly streamed already */
    if (r->max_body >= 0 && r->head.content_length > r->max_body)
        return body_error(r, -EMSGSIZE);
    /* Reserve as the bytes arrive, never the whole Content-Length up
     * front: a client announcing 8 MiB and sending nothing would pin it
     * (issue 15).  Doubling, capped at the announced size, stays linear. */
    size_t want = r->head.content_length > 0 ? (size_t)r->head.content_length + 1 : 0;
    size_t cap = want && want < HTTP_BODY_INITIAL ? want : HTTP_BODY_INITIAL;
    char *buf = malloc(cap);
    size_t used = 0;
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (r->body_done && r->pend_len == 0 && !r->body_failed)
            break;      /* all in: no growing for a read that would say so */
        if (cap - used < 2) {
            size_t ncap = cap * 2;
            if (want > cap && ncap > want)
                ncap = want;    /* exactly the rest, and its NUL */
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        TERN_ASSERT(cap - used >= 2);   /* room for a byte and the NUL */
        ssize_t n = tern_http_req_read(r, buf + used, cap - used - 1);
        if (n == 0)
            break;
        if (n < 0) {
            free(buf);
            return (int)n;
        }
        used += (size_t)n;
    }
    /* kept as it is and freed with the request: a copy into the arena
     * held a large body twice for a moment, and glibc kept the freed
     * block resident (2.9 MiB more per 8 MiB echo, issue 15) */
    TERN_ASSERT(used < cap);
    buf[used] = '\0';
    r->body_heap = buf;
    r->body_data = buf;
    r->body_len = used;
    r->body_loaded = true;
    *data = buf;
    *len = used;
    return 0;
}

int tern_http_req_json(tern_http_req *r, json_t **out)
{
    TERN_CHECK_ARG(r);
    const char *data;
    size_t len;
    *out = NULL;
    int rc = tern_http_req_body(r, &data, &len);
    if (rc < 0)
        return rc;
    return body_error(r, tern__http_json_parse(data, len, out));
}

/* ---- context, values, memory -------------------------------------------- */

tern_ctx *tern_http_req_ctx(tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    if (!r->ctx) {
        TERN_ASSERT(r->nowned == 0);    /* tern_http_req_set_ctx sets r->ctx too */
        tern_ctx *c;
        if (r->conn->h2) {
            /* the stream's, which a reset cancels (not owned here) */
            if (!(c = tern__h2_req_ctx(r)))
                return r->conn->srv->base;
            r->ctx = c;
        } else {
            if (tern_ctx_with_cancel(r->conn->srv->base, &c) < 0)
                return r->conn->srv->base;  /* ENOMEM: still a valid context */
            r->ctx = c;
            r->cancel_ctx = c;
            r->owned_ctx[r->nowned++] = c;
            tern__http_req_watch_peer(r);
        }
        /* the values added before: the owned slots always have room for
         * them (HTTP_MAX_CTX_VALUES < HTTP_MAX_CTXS) */
        for (size_t i = 0; i < r->nctx_values; i++) {
            tern_ctx *v;
            if (tern_ctx_with_value(r->ctx, r->ctx_keys[i], r->ctx_vals[i], &v) < 0)
                break;          /* ENOMEM: the values are lost, the context is fine */
            r->ctx = v;
            r->owned_ctx[r->nowned++] = v;
        }
        TERN_ASSERT(r->nowned <= HTTP_MAX_CTXS);
    }
    return r->ctx;
}

int tern_http_req_add_ctx_value(tern_http_req *r, const void *key, void *value)
{
    TERN_CHECK_ARG(r);
    if (!r->ctx) {
        if (r->nctx_values == HTTP_MAX_CTX_VALUES)
            return -ENOSPC;
        r->ctx_keys[r->nctx_values] = key;
        r->ctx_vals[r->nctx_values++] = value;
        return 0;
    }
    tern_ctx *v;
    int rc = tern_ctx_with_value(r->ctx, key, value, &v);
    if (rc < 0)
        return rc;
    rc = tern_http_req_set_ctx(r, v);
    if (rc < 0)
        tern_ctx_free(v);
    return rc;
}

int tern_http_req_set_ctx(tern_http_req *r, tern_ctx *ctx)
{
    TERN_CHECK_ARG(r);
    if (!ctx)
        return -EINVAL;
    TERN_ASSERT(r->nowned <= HTTP_MAX_CTXS);
    if (r->nowned == HTTP_MAX_CTXS)
        return -ENOSPC;
    r->owned_ctx[r->nowned++] = ctx;
    r->ctx = ctx;
    return 0;
}

const char *tern_http_req_remote_addr(tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return tern_conn_remote_addr(r->conn->c);
}

void *tern_http_req_alloc(tern_http_req *r, size_t n)
{
    TERN_CHECK_ARG(r);
    return tern__arena_alloc(&r->conn->arena, n);
}

char *tern_http_req_strdup(tern_http_req *r, const char *s)
{
    TERN_CHECK_ARG(r);
    size_t n = strlen(s);
    char *p = tern__arena_alloc(&r->conn->arena, n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

int tern_http_req_set_value(tern_http_req *r, const void *key, void *value)
{
    TERN_CHECK_ARG(r);
    for (size_t i = 0; i < r->nvalues; i++)
        if (r->value_keys[i] == key) {
            r->value_vals[i] = value;
            return 0;
        }
    if (r->nvalues == HTTP_MAX_VALUES)
        return -ENOMEM;
    r->value_keys[r->nvalues] = key;
    r->value_vals[r->nvalues++] = value;
    return 0;
}

void *tern_http_req_value(const tern_http_req *r, const void *key)
{
    TERN_CHECK_ARG(r);
    for (size_t i = 0; i < r->nvalues; i++)
        if (r->value_keys[i] == key)
            return r->value_vals[i];
    return NULL;
}

void tern__http_req_end(tern_http_req *r)
{
    TERN_ASSERT(r->nowned <= HTTP_MAX_CTXS);
    tern__http_req_unwatch_peer(r);     /* before its context goes */
    free(r->body_heap);
    r->body_heap = NULL;
    /* children before parents */
    for (size_t i = r->nowned; i-- > 0;)
        tern_ctx_free(r->owned_ctx[i]);
    r->nowned = 0;
    r->ctx = NULL;
    r->cancel_ctx = NULL;
}
