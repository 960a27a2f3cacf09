/*
 * client_response.c - reading a response: its head (1xx interim heads
 * skipped), then its body as a stream, delimited by Content-Length, by
 * chunked framing (decoded in place in the read buffer) or by the end of
 * the connection.
 *
 * The buffer holds what was read past the head: buf[pos..end) are raw
 * bytes still to interpret; for chunked bodies buf[dpos..dend) are bytes
 * already decoded and not yet handed out.  Large reads of a
 * Content-Length or until-close body go straight into the caller's buffer
 * once the buffered bytes are used up.
 *
 * The connection may be reused only when the body was read exactly to its
 * end: a byte more (a server answering HEAD with a body, garbage after the
 * last chunk) would be taken for the start of the next response.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h2_client_internal.h"
#include "tern/runtime.h"

#define HC_BUF_INITIAL (16 * 1024)
/* Reads this large skip the buffer (one copy fewer, one syscall each). */
#define HC_DIRECT_READ 4096

/* ---- spare responses ---------------------------------------------------------
 * A response is 6.4 KB and its read buffer 16 KiB: both above glibc's
 * per-thread cache (1 KiB), so each request took two malloc and two free
 * under an arena's lock, and when the response was freed on another
 * worker than the one that made it (a coroutine moves between Ps) the
 * free took the other thread's arena lock against that thread's own
 * mallocs.  The client keeps spares in a tern_pool: per-P stacks without a
 * lock, released after 5 s unused.  A response whose buffer grew past the
 * first size (a large head) is not kept. */
#define HC_SPARES_SHARED 64

static void *spare_make(void *arg)
{
    (void)arg;
    tern_http_client_response *r = malloc(sizeof *r);
    if (r) {
        r->buf = NULL;
        r->cap = 0;
    }
    return r;
}

static void spare_release(void *obj, void *arg)
{
    (void)arg;
    tern_http_client_response *r = obj;
    free(r->buf);
    free(r);
}

int tern__hc_responses_new(tern_http_client *c)
{
    tern_pool_options o = {.new_fn = spare_make, .free_fn = spare_release,
                           .max_shared = HC_SPARES_SHARED};
    int rc = tern_pool_new(&o, &c->responses);
    return rc == -ENOSPC ? 0 : rc;      /* no monitor slot left: no cache */
}

void tern__hc_responses_free(tern_http_client *c)
{
    tern_pool_free(c->responses);
    c->responses = NULL;
}

uint64_t tern__hc_responses_made(const tern_http_client *c)
{
    struct tern_pool_stats st = {0};
    if (c->responses)
        tern_pool_stats(c->responses, &st);
    return st.news + atomic_load_explicit(&c->responses_uncached, memory_order_relaxed);
}

tern_http_client_response *tern__hc_response_new(tern_http_client *c)
{
    void *obj = NULL;
    if (c->responses) {
        if (tern_pool_get(c->responses, &obj) < 0)
            return NULL;
    } else if ((obj = spare_make(NULL))) {
        atomic_fetch_add_explicit(&c->responses_uncached, 1, memory_order_relaxed);
    } else {
        return NULL;
    }
    tern_http_client_response *r = obj;
    char *buf = r->buf;
    size_t cap = r->cap;
    /* Zero all but the field tables (names, values and the parser's
     * scratch, about 6 KiB, written before they are read): clearing them
     * was 40% of the instructions of a request. */
    size_t skip = offsetof(tern_http_client_response, names);
    size_t rest = offsetof(tern_http_client_response, buf);
    _Static_assert(offsetof(tern_http_client_response, values) >
                           offsetof(tern_http_client_response, names) &&
                       offsetof(tern_http_client_response, parsed) <
                           offsetof(tern_http_client_response, buf),
                   "the field tables sit together between nfields and buf");
    memset(r, 0, skip);
    memset((char *)r + rest, 0, sizeof *r - rest);
    r->buf = buf;
    r->cap = cap;
    r->client = c;
    return r;
}

void tern__hc_response_reset(tern_http_client_response *r)
{
    free(r->fields);
    free(r->body);
    r->fields = NULL;
    r->body = NULL;
    r->nfields = 0;
    r->status = 0;
    r->content_length = -1;
    r->pos = r->end = r->dpos = r->dend = 0;
    r->framing = HC_BODY_NONE;
    r->remaining = 0;
    r->last_chunk = false;
    r->got_byte = false;
    r->done = false;
    r->err = 0;
}

/* Read more of the head into the buffer, growing it up to the head limit. */
static int read_more_head(tern_http_client_response *r, size_t limit)
{
    if (r->pos > 0) {
        memmove(r->buf, r->buf + r->pos, r->end - r->pos);
        r->end -= r->pos;
        r->pos = 0;
    }
    if (r->end == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : HC_BUF_INITIAL;
        if (r->cap && cap > limit + 1)
            cap = limit + 1;
        char *b = realloc(r->buf, cap);
        if (!b)
            return -ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    /* read_head asks for more only below the limit, so the capped growth
     * still leaves room */
    TERN_ASSERT(r->pos == 0 && r->end < r->cap);
    ssize_t got = tern__hc_read(r->lease.conn, r->ctx, r->buf + r->end, r->cap - r->end);
    if (got == 0)
        return -ECONNRESET;     /* closed before the head was complete */
    if (got < 0)
        return (int)got;
    r->got_byte = true;
    r->end += (size_t)got;
    TERN_ASSERT(r->end <= r->cap);
    return 0;
}

/* Copy the fields out of the buffer, NUL-terminated, so the buffer can be
 * reused for the body. */
static int keep_fields(tern_http_client_response *r, const tern_http_response *h)
{
    TERN_ASSERT(h->nheaders <= TERN_HTTP_CLIENT_MAX_HEADERS);
    size_t size = 0;
    for (size_t i = 0; i < h->nheaders; i++)
        size += h->headers[i].name_len + h->headers[i].value_len + 2;
    char *p = r->fields = malloc(size ? size : 1);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < h->nheaders; i++) {
        const tern_http_header *f = &h->headers[i];
        r->names[i] = p;
        memcpy(p, f->name, f->name_len);
        p += f->name_len;
        *p++ = '\0';
        r->values[i] = p;
        memcpy(p, f->value, f->value_len);
        p += f->value_len;
        *p++ = '\0';
    }
    TERN_ASSERT((size_t)(p - r->fields) == size);
    r->nfields = h->nheaders;
    return 0;
}

static void set_framing(tern_http_client_response *r, const tern_http_response *h)
{
    r->content_length = h->content_length;
    r->keep_alive = r->keep_alive && h->keep_alive;
    if (r->head_request || h->status == 204 || h->status == 304) {
        r->framing = HC_BODY_NONE;
        if (!r->head_request)
            r->content_length = 0;
    } else if (h->chunked) {
        r->framing = HC_BODY_CHUNKED;
        tern_http_chunked_init(&r->chunked, 0);
    } else if (h->content_length >= 0) {
        r->framing = HC_BODY_LENGTH;
        r->remaining = (uint64_t)h->content_length;
    } else {
        r->framing = HC_BODY_CLOSE;
        r->keep_alive = false;
    }
    r->done = r->framing == HC_BODY_NONE || (r->framing == HC_BODY_LENGTH && r->remaining == 0);
    /* a body read to close can never leave the conn reusable */
    TERN_ASSERT(r->framing != HC_BODY_CLOSE || !r->keep_alive);
}

int tern__hc_read_head(tern_http_client_response *r)
{
    size_t limit = r->client->max_header;
    /* the parser's own limits are set out of reach: over-long heads are
     * told apart from malformed ones here, by counting */
    tern_http_limits lim = {.max_request_line = SIZE_MAX / 2, .max_head = SIZE_MAX / 2};
    size_t seen = 0;            /* bytes of 1xx heads already skipped */
    for (;;) {
        TERN_ASSERT(r->pos <= r->end && r->end <= r->cap);
        if (r->end > r->pos) {
            tern_http_response h = {.headers = r->parsed, .max_headers = TERN_HTTP_CLIENT_MAX_HEADERS};
            int n = tern_http_parse_response(r->buf + r->pos, r->end - r->pos, &h, &lim);
            if (n == TERN_HTTP_BAD)
                return -EBADMSG;
            if (n >= 0) {
                if ((seen += (size_t)n) > limit)
                    return -EMSGSIZE;
                r->pos += (size_t)n;
                if (h.status == 101)
                    return -EPROTO;     /* no Upgrade was asked for */
                if (h.status < 200)
                    continue;           /* interim: the real answer follows */
                r->status = h.status;
                set_framing(r, &h);
                return keep_fields(r, &h);
            }
            if (seen + (r->end - r->pos) >= limit)
                return -EMSGSIZE;       /* incomplete at the limit: too long */
        }
        int rc = read_more_head(r, limit - seen);
        if (rc < 0)
            return rc;
    }
}

/* Refill the empty buffer from the connection: the count, or 0 at EOF, or
 * -errno. */
static ssize_t fill(tern_http_client_response *r)
{
    r->pos = r->end = r->dpos = r->dend = 0;
    ssize_t got = tern__hc_read(r->lease.conn, r->ctx, r->buf, r->cap);
    if (got > 0)
        r->end = (size_t)got;
    return got;
}

/* Bytes of a Content-Length or until-close body: from the buffer first,
 * then from the connection. */
static ssize_t read_plain(tern_http_client_response *r, char *out, size_t n)
{
    TERN_ASSERT(r->framing == HC_BODY_LENGTH || r->framing == HC_BODY_CLOSE);
    TERN_ASSERT(r->framing != HC_BODY_LENGTH || r->remaining > 0);   /* else done */
    TERN_ASSERT(r->pos <= r->end);
    if (r->framing == HC_BODY_LENGTH && n > r->remaining)
        n = (size_t)r->remaining;
    ssize_t k;
    if (r->pos == r->end && n >= HC_DIRECT_READ) {
        k = tern__hc_read(r->lease.conn, r->ctx, out, n);
    } else {
        if (r->pos == r->end && (k = fill(r)) <= 0)
            goto eof_or_err;
        k = (ssize_t)(r->end - r->pos < n ? r->end - r->pos : n);
        memcpy(out, r->buf + r->pos, (size_t)k);
        r->pos += (size_t)k;
    }
eof_or_err:
    if (k == 0 && r->framing == HC_BODY_CLOSE)
        r->done = true;
    else if (k == 0)
        return -ECONNRESET;     /* shorter than its Content-Length */
    TERN_ASSERT(k < 0 || (size_t)k <= n);
    if (k > 0 && r->framing == HC_BODY_LENGTH && (r->remaining -= (uint64_t)k) == 0)
        r->done = true;
    return k;
}

static ssize_t read_chunked(tern_http_client_response *r, char *out, size_t n)
{
    while (r->dpos == r->dend) {
        if (r->last_chunk) {
            r->done = true;
            return 0;
        }
        if (r->pos == r->end) {
            ssize_t got = fill(r);
            if (got == 0)
                return -ECONNRESET;     /* cut before the last chunk */
            if (got < 0)
                return got;
        }
        size_t consumed, produced;
        int rc = tern_http_chunked_decode(&r->chunked, r->buf + r->pos, r->end - r->pos,
                                          &consumed, &produced);
        if (rc == TERN_HTTP_BAD)
            return -EBADMSG;
        TERN_ASSERT(consumed <= r->end - r->pos && produced <= consumed);
        r->dpos = r->pos;
        r->dend = r->pos + produced;
        r->pos += consumed;
        r->last_chunk = rc == 1;
    }
    /* decoded bytes sit in front of the raw ones they came from */
    TERN_ASSERT(r->dpos < r->dend && r->dend <= r->pos && r->pos <= r->end);
    size_t k = r->dend - r->dpos < n ? r->dend - r->dpos : n;
    memcpy(out, r->buf + r->dpos, k);
    r->dpos += k;
    return (ssize_t)k;
}

ssize_t tern_http_client_response_read(tern_http_client_response *r, void *buf, size_t n)
{
    TERN_CHECK_ARG(r);
    if (r->err)
        return r->err;
    if (r->done || n == 0)
        return 0;
    int rc = tern_ctx_err(r->ctx);
    if (rc < 0)
        return r->err = rc;
    ssize_t k = r->h2                          ? tern__h2c_read(r, buf, n)
                : r->framing == HC_BODY_CHUNKED ? read_chunked(r, buf, n)
                                                : read_plain(r, buf, n);
    if (k < 0)
        r->err = (int)k;
    return k;
}

int tern_http_client_response_body(tern_http_client_response *r, size_t max, const char **data,
                                   size_t *len)
{
    TERN_CHECK_ARG(r);
    size_t have = 0, cap = 0;
    if (max > SIZE_MAX - 2)
        max = SIZE_MAX - 2;
    if (!r->h2 && r->framing == HC_BODY_LENGTH && r->remaining > max)
        return r->err = -EMSGSIZE;
    free(r->body);
    r->body = NULL;
    for (;;) {
        if (cap - have < 2) {
            /* one byte over max tells a body of exactly max from a longer one */
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > max + 2)
                ncap = max + 2;
            char *b = realloc(r->body, ncap);
            if (!b)
                return -ENOMEM;
            r->body = b;
            cap = ncap;
        }
        ssize_t k = tern_http_client_response_read(r, r->body + have, cap - 1 - have);
        if (k < 0)
            return (int)k;
        if (k == 0)
            break;
        if ((have += (size_t)k) > max)
            return r->err = -EMSGSIZE;
    }
    r->body[have] = '\0';
    *data = r->body;
    *len = have;
    return 0;
}

bool tern__hc_discard_body(tern_http_client_response *r, size_t max)
{
    char scratch[1024];
    size_t total = 0;
    ssize_t k;
    if (!r->h2 && r->framing == HC_BODY_LENGTH && r->remaining > max)
        return false;
    while ((k = tern_http_client_response_read(r, scratch, sizeof scratch)) > 0)
        if ((total += (size_t)k) > max)
            return false;
    return k == 0;
}

bool tern__hc_reusable(const tern_http_client_response *r)
{
    return r->done && r->keep_alive && !r->err && r->pos == r->end && r->dpos == r->dend;
}

int tern_http_client_response_status(const tern_http_client_response *r)
{
    TERN_CHECK_ARG(r);
    return r->status;
}

int64_t tern_http_client_response_content_length(const tern_http_client_response *r)
{
    TERN_CHECK_ARG(r);
    return r->content_length;
}

const char *tern_http_client_response_header(const tern_http_client_response *r,
                                             const char *name)
{
    TERN_CHECK_ARG(r);
    for (size_t i = 0; i < r->nfields; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

int tern_http_client_response_header_at(const tern_http_client_response *r, size_t i,
                                        const char **name, const char **value)
{
    TERN_CHECK_ARG(r);
    if (i >= r->nfields)
        return -ENOENT;
    *name = r->names[i];
    *value = r->values[i];
    return 0;
}

const char *tern_http_client_response_proto(const tern_http_client_response *r)
{
    TERN_CHECK_ARG(r);
    return r->is_h2 ? "HTTP/2" : "HTTP/1.1";
}

const char *tern_http_client_response_trailer(const tern_http_client_response *r,
                                              const char *name)
{
    TERN_CHECK_ARG(r);
    return tern__h2c_trailer(r, name);
}

void tern_http_client_response_free(tern_http_client_response *r)
{
    if (!r)
        return;
    if (r->h2)
        tern__h2c_release(r);
    if (r->lease.conn)
        tern__hc_checkin(r->client, &r->lease, tern__hc_reusable(r));
    tern_ctx_free(r->own_ctx);
    free(r->fields);
    free(r->body);
    tern_http_client *c = r->client;
    if (c->responses && r->cap <= HC_BUF_INITIAL) {
        tern_pool_put(c->responses, r);
        return;
    }
    free(r->buf);
    free(r);
}
