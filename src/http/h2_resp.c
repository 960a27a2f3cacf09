/*
 * h2_resp.c - a stream's response: the head becomes a HEADERS frame
 * (nghttp2_submit_response), the body goes through the stream's output
 * queue to the data provider the writer calls, trailers become a last
 * HEADERS frame (nghttp2_submit_trailer, from the provider at the end).
 *
 * response.c builds the response exactly as for HTTP/1.1, into the
 * stream's own hconn (vhc): fields in its arena, body bytes in vhc->out
 * (buffered until 64 KiB or a flush, so Content-Length is known for the
 * common small answer).  Where HTTP/1.1 would frame and write, these
 * functions take over: commit (the head, streaming from here), flush
 * (queued bytes to the provider; the handler waits while the queue is
 * over H2_OUT_HIGH), finish (the end of the body, and trailers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/h2_common.h"
#include "base/dec.h"
#include "http/h2_internal.h"
#include "tern/runtime.h"

static bool bodyless_status(int status)
{
    return status == 204 || status == 304 || (status >= 100 && status < 200);
}

/* name lower-cased (HTTP/2 field names are), in the arena. */
static char *lower(tern__arena *a, const char *name, size_t n)
{
    char *p = tern__arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    p[n] = '\0';
    return p;
}

static nghttp2_nv nv(const char *name, size_t nl, const char *value, size_t vl)
{
    return (nghttp2_nv){ (uint8_t *)name, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE };
}

/* The response head as nghttp2 fields, in the stream's arena (nghttp2
 * copies them when submitted).  content_length < 0: not known. */
static int build_nva(tern_http_resp *w, int64_t content_length, nghttp2_nv **out, size_t *n)
{
    hconn *vhc = w->conn;
    tern__arena *a = &vhc->arena;
    const tern_http_server_options *o = &vhc->srv->o;
    nghttp2_nv *v = tern__arena_alloc(a, (w->nhdrs + 5) * sizeof *v);
    char *status = tern__arena_alloc(a, 4);
    char *clen = tern__arena_alloc(a, 24);
    if (!v || !status || !clen)
        return -ENOMEM;
    TERN_ASSERT(w->status >= 200 && w->status <= 999);
    status[0] = (char)('0' + w->status / 100);
    status[1] = (char)('0' + w->status / 10 % 10);
    status[2] = (char)('0' + w->status % 10);
    status[3] = '\0';
    size_t k = 0;
    v[k++] = nv(":status", 7, status, 3);
    if (o->server_header)
        v[k++] = nv("server", 6, o->server_header, strlen(o->server_header));
    /* "Date: <value>\r\n", as HTTP/1.1 sends it */
    const char *date = tern__http_date_line() + 6;
    v[k++] = nv("date", 4, date, strlen(date) - 2);
    bool has_type = false;
    for (size_t i = 0; i < w->nhdrs; i++) {
        const resp_header *h = &w->hdrs[i];
        if (tern__h2_forbidden_field(h->name, h->value))
            continue;   /* RFC 9113 8.2.2: HTTP/1.1's connection fields */
        char *name = lower(a, h->name, h->name_len);
        if (!name)
            return -ENOMEM;
        has_type |= h->name_len == 12 && !strcmp(name, "content-type");
        v[k++] = nv(name, h->name_len, h->value, h->value_len);
    }
    if (!has_type && w->body_bytes > 0 && !bodyless_status(w->status))
        v[k++] = nv("content-type", 12, "text/plain; charset=utf-8", 25);
    if (content_length >= 0 && !bodyless_status(w->status)) {
        size_t cl = tern__dec_u64(clen, (uint64_t)content_length);     /* 24 >= TERN__DEC_MAX */
        v[k++] = nv("content-length", 14, clen, cl);
    }
    TERN_ASSERT(k <= w->nhdrs + 5);
    *out = v;
    *n = k;
    return 0;
}

/* Response trailers as nghttp2 fields, in the arena; NULL when none. */
static int build_trailers(tern_http_resp *w, h2_stream *st)
{
    if (w->ntrailers == 0 || w->head_only || bodyless_status(w->status))
        return 0;
    tern__arena *a = &w->conn->arena;
    nghttp2_nv *v = tern__arena_alloc(a, w->ntrailers * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < w->ntrailers; i++) {
        const resp_header *t = &w->trailers[i];
        char *name = lower(a, t->name, t->name_len);
        if (!name)
            return -ENOMEM;
        v[i] = nv(name, t->name_len, t->value, t->value_len);
    }
    st->tnva = v;       /* read by the provider under mu, after finish */
    st->ntnva = w->ntrailers;
    return 0;
}

/* The data provider, called by the writer under mu: the queue's bytes;
 * DEFERRED while empty and the handler has more to say; at the end
 * END_STREAM, or the trailers' HEADERS frame that ends the stream. */
static ssize_t provide(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                       uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void)user;
    h2_stream *st = src->ptr;
    TERN_ASSERT(st->id == id && st->out_off <= st->out.len);
    if (st->abandoned && !st->out_done)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  /* the handler gave up: reset */
    size_t avail = st->out.len - st->out_off;
    if (avail == 0 && !st->out_done) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t k = avail < len ? avail : len;
    if (k)      /* an empty body ending with trailers has no buffer at all */
        memcpy(buf, st->out.p + st->out_off, k);
    st->out_off += k;
    TERN_ASSERT(st->h2c->queued >= k);
    st->h2c->queued -= k;
    if (k)
        tern_cond_broadcast(&st->h2c->room);
    if (st->out_off == st->out.len && st->out_done) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->ntnva && nghttp2_submit_trailer(sess, id, st->tnva, st->ntnva) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        st->ntnva = 0;
    }
    tern_cond_broadcast(&st->cond);     /* room in the queue */
    return (ssize_t)k;
}

static size_t pending(const h2_stream *st)
{
    TERN_ASSERT(st->out_off <= st->out.len);
    return st->out.len - st->out_off;
}

/* Under mu: wait until n more bytes fit in the stream's queue and the
 * connection's (something queued on either always leaves: the provider
 * drains it as the client's windows allow; until write_deadline). */
static int wait_room(h2_stream *st, size_t n)
{
    h2_conn *h2c = st->h2c;
    for (;;) {
        if (h2c->dead || st->closed)
            return -ECONNRESET;
        bool stream_full = pending(st) > 0 && pending(st) + n > H2_OUT_HIGH;
        bool conn_full = h2c->queued > 0 && h2c->queued + n > H2_CONN_OUT_MAX;
        if (!stream_full && !conn_full)
            return 0;
        int rc = tern__h2_handler_wait_on(st, stream_full ? &st->cond : &h2c->room,
                                          st->write_deadline);
        if (rc < 0)
            return rc;
    }
}

/* Under mu: append to the output queue (once it has room), the body's
 * last bytes when `last`, and wake the provider.  out_done is set only
 * after the append: waiting for room lets the provider run, and it ends
 * the stream when it finds the queue empty and out_done.  When the bytes
 * are a buffer of the handler's (`src`, holding p[0..n)) and the queue is
 * empty, the two buffers trade places instead of copying: the common
 * response is queued whole, once, so this saves a copy and a buffer. */
static int queue_out(h2_stream *st, tern__growbuf *src, const char *p, size_t n, bool last)
{
    h2_conn *h2c = st->h2c;
    int rc = wait_room(st, n);
    if (rc < 0)
        return rc;
    if (n > 0 && src && pending(st) == 0 && !src->fixed && !st->out.fixed) {
        TERN_ASSERT(src->p == p && src->len == n);
        tern__growbuf t = st->out;
        st->out = *src;
        st->out_off = 0;
        *src = t;
        src->len = 0;
        h2c->queued += n;
    } else if (n > 0) {
        if (st->out_off > 0) {
            memmove(st->out.p, st->out.p + st->out_off, pending(st));
            st->out.len -= st->out_off;
            st->out_off = 0;
        }
        if (tern__growbuf_append(&st->out, p, n) < 0)
            return -ENOMEM;
        h2c->queued += n;
    }
    st->out_done = last;
    if (st->deferred && st->has_provider) {
        st->deferred = false;
        nghttp2_session_resume_data(h2c->sess, st->id);
    }
    tern__h2_wake_writer(h2c);
    return 0;
}

/* Under mu: submit the head (with a provider when a body follows). */
static int submit_head(tern_http_resp *w, int64_t content_length, bool body)
{
    h2_stream *st = w->conn->h2;
    h2_conn *h2c = st->h2c;
    nghttp2_nv *nva;
    size_t n;
    int rc = build_nva(w, content_length, &nva, &n);
    if (rc < 0)
        return rc;
    if (h2c->dead || st->closed)
        return -ECONNRESET;
    nghttp2_data_provider prd = { .source.ptr = st, .read_callback = provide };
    if (nghttp2_submit_response(h2c->sess, st->id, nva, n, body ? &prd : NULL) != 0)
        return -ECONNRESET;
    st->submitted = true;
    st->has_provider = body;
    tern__h2_wake_writer(h2c);
    return 0;
}

static int fail(tern_http_resp *w, int rc)
{
    if (!w->conn->io_error)
        w->conn->io_error = rc;
    return rc;
}

int tern__h2_resp_commit(tern_http_resp *w)
{
    hconn *vhc = w->conn;
    h2_stream *st = vhc->h2;
    TERN_ASSERT(!w->committed && !w->done);
    bool no_body = w->head_only || bodyless_status(w->status);
    if (no_body)
        vhc->out.len = 0;
    tern_mutex_lock(&st->h2c->mu);
    int rc = submit_head(w, -1, !no_body);
    tern_mutex_unlock(&st->h2c->mu);
    if (rc < 0)
        return fail(w, rc);
    w->committed = true;        /* what is buffered goes with the next flush */
    return 0;
}

int tern__h2_flush(hconn *vhc)
{
    h2_stream *st = vhc->h2;
    if (vhc->io_error)
        return vhc->io_error;
    TERN_ASSERT(vhc->cur && vhc->cur->committed);
    if (!st->has_provider) {
        vhc->out.len = 0;       /* no body goes with this status */
        return 0;
    }
    tern_mutex_lock(&st->h2c->mu);
    int rc = queue_out(st, &vhc->out, vhc->out.p, vhc->out.len, false);
    tern_mutex_unlock(&st->h2c->mu);
    vhc->out.len = 0;
    if (vhc->out.cap > 2 * H2_FLUSH_AT)
        tern__growbuf_free(&vhc->out);  /* the 64 KiB of before the commit */
    return rc < 0 ? fail(vhc->cur, rc) : 0;
}

int tern__h2_resp_finish(tern_http_resp *w)
{
    hconn *vhc = w->conn;
    h2_stream *st = vhc->h2;
    TERN_ASSERT(!w->done);
    w->done = true;
    bool no_body = w->head_only || bodyless_status(w->status);
    if (build_trailers(w, st) < 0)
        return fail(w, -ENOMEM);
    tern_mutex_lock(&st->h2c->mu);
    int rc = 0;
    if (!w->committed) {
        /* the whole body is buffered: its length is known */
        if (no_body)
            vhc->out.len = 0;
        TERN_ASSERT(no_body || vhc->out.len == w->body_bytes);
        bool body = vhc->out.len > 0 || st->ntnva > 0;
        rc = submit_head(w, (int64_t)w->body_bytes, body);
        w->committed = rc == 0;
    }
    if (rc == 0 && st->has_provider)
        rc = queue_out(st, &vhc->out, vhc->out.p, vhc->out.len, true);
    tern_mutex_unlock(&st->h2c->mu);
    vhc->out.len = 0;
    return rc < 0 ? fail(w, rc) : 0;
}

int tern__h2_resp_send_file(tern_http_resp *w, int fd, off_t offset, size_t len)
{
    hconn *vhc = w->conn;
    h2_stream *st = vhc->h2;
    if (w->committed)
        return -EALREADY;
    vhc->out.len = 0;           /* nothing buffered goes with a file */
    w->body_bytes = len;
    bool body = !(w->head_only || bodyless_status(w->status) || len == 0);
    tern_mutex_lock(&st->h2c->mu);
    int rc = submit_head(w, (int64_t)len, body);
    tern_mutex_unlock(&st->h2c->mu);
    w->committed = w->done = true;
    if (rc < 0 || !body)
        return rc < 0 ? fail(w, rc) : 0;
    /* pread into the queue, a window at a time: no sendfile under
     * HTTP/2's framing */
    char chunk[16384];
    while (len > 0 && rc == 0) {
        ssize_t n = pread(fd, chunk, len < sizeof chunk ? len : sizeof chunk, offset);
        if (n <= 0) {
            rc = -EIO;          /* the file shrank under us: reset, never short */
            break;
        }
        offset += n;
        len -= (size_t)n;
        tern_mutex_lock(&st->h2c->mu);
        rc = queue_out(st, NULL, chunk, (size_t)n, len == 0);
        tern_mutex_unlock(&st->h2c->mu);
    }
    if (rc < 0) {
        st->rst_code = NGHTTP2_INTERNAL_ERROR;
        return fail(w, rc);
    }
    return 0;
}

void tern__h2_resp_settle(h2_stream *st, int64_t deadline)
{
    h2_conn *h2c = st->h2c;
    while (!st->rst_code && !st->closed && !st->eof_sent && !h2c->dead)
        if (tern__h2_stream_wait(st, deadline) < 0)
            break;      /* a client that does not read, or a reset ctx */
    if (!st->closed && !h2c->dead) {
        uint32_t code = st->rst_code ? st->rst_code
                        : !st->eof_sent ? NGHTTP2_CANCEL
                        /* RFC 9113 8.1: answered before the request's
                         * end; NO_ERROR tells the client to stop sending */
                        : !st->in_eof ? NGHTTP2_NO_ERROR : 0;
        if (code || !st->eof_sent)
            nghttp2_submit_rst_stream(h2c->sess, NGHTTP2_FLAG_NONE, st->id, code);
    }
    /* from here the provider resets rather than read the handler's memory */
    st->abandoned = true;
    st->tnva = NULL;
    st->ntnva = 0;
}
