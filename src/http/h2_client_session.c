/*
 * h2_client_session.c - the HTTP/2 client's nghttp2 session: its
 * settings, the callbacks that turn frames into stream state, and the
 * recv / send entry points the connection's coroutines call.  Everything
 * here runs with the connection's mu held and does no I/O (bar the
 * shutdown(2) in tern__h2c_kill), so fuzz/fuzz_h2_client.c feeds it
 * frame sequences directly.
 *
 * The stream state a request's coroutine waits on (h2_client_stream.c):
 * got_head once the final head is complete (1xx heads are dropped), data
 * as DATA arrives, eof at END_STREAM, closed when the stream is over on
 * the wire, err when it ended badly.  A stream the response no longer
 * holds is not in h->streams: frames for it are dropped, and its DATA
 * still gives its connection window back.
 *
 * Flow control (NGHTTP2_OPT_NO_AUTO_WINDOW_UPDATE): received DATA is
 * consumed (nghttp2_session_consume) only when the caller reads it, so a
 * reader that stops stops its peer after one stream window.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/h2_client_internal.h"
#include "http/h2_common.h"

static tern__h2c_stream **bucket_of(tern__h2c_conn *h, int32_t id)
{
    /* our stream ids are odd: the bit above the lowest spreads them */
    return &h->bucket[((uint32_t)id >> 1) % TERN__H2C_BUCKETS];
}

void tern__h2c_link(tern__h2c_conn *h, tern__h2c_stream *s)
{
    TERN_ASSERT(s->id > 0 && tern__h2c_find(h, s->id) == NULL);
    s->conn = h;
    s->prev = NULL;
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    tern__h2c_stream **b = bucket_of(h, s->id);
    s->hnext = *b;
    *b = s;
}

void tern__h2c_unlink(tern__h2c_conn *h, tern__h2c_stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    tern__h2c_stream **pp = bucket_of(h, s->id);
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
}

tern__h2c_stream *tern__h2c_find(tern__h2c_conn *h, int32_t id)
{
    for (tern__h2c_stream *s = *bucket_of(h, id); s; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

static tern__h2c_stream *stream_of(nghttp2_session *session, int32_t id, void *ud)
{
    (void)session;
    return id > 0 ? tern__h2c_find(ud, id) : NULL;
}

/* A field of the head or of the trailers, as name\0value\0. */
static int keep_field(tern__h2c_conn *h, tern__h2c_stream *s, const uint8_t *name, size_t nlen,
                      const uint8_t *value, size_t vlen)
{
    tern__buf *b = s->got_head ? &s->trailers : &s->head;
    size_t *count = s->got_head ? &s->ntrailers : &s->nhead;
    if (*count == TERN_HTTP_CLIENT_MAX_HEADERS) {
        s->err = -EBADMSG;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* resets the stream */
    }
    if (b->len + nlen + vlen + 2 > h->client->max_header) {
        s->err = -EMSGSIZE;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    tern__buf_put(b, name, nlen);
    tern__buf_put(b, "", 1);
    tern__buf_put(b, value, vlen);
    tern__buf_put(b, "", 1);
    if (b->oom) {
        s->err = -ENOMEM;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    ++*count;
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    (void)flags;
    tern__h2c_stream *s = stream_of(session, frame->hd.stream_id, ud);
    if (!s || frame->hd.type != NGHTTP2_HEADERS || s->err)
        return 0;
    if (!s->got_head && nlen == 7 && memcmp(name, ":status", 7) == 0) {
        /* three digits, 100 to 599 (RFC 9110 15); nghttp2's own check
         * lets other forms reach us */
        if (vlen != 3 || value[0] < '1' || value[0] > '5' || value[1] < '0' || value[1] > '9' ||
            value[2] < '0' || value[2] > '9') {
            s->err = -EBADMSG;
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        s->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        return 0;
    }
    return keep_field(ud, s, name, nlen, value, vlen);
}

static void end_head_block(tern__h2c_stream *s, const nghttp2_frame *frame)
{
    if (!s->got_head) {
        if (s->status >= 100 && s->status < 200) {
            /* an interim head: the final one follows (RFC 9113 8.1) */
            s->head.len = 0;
            s->nhead = 0;
            s->status = 0;
        } else {
            s->got_head = true;
        }
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        s->eof = true;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    tern__h2c_conn *h = ud;
    tern__h2c_stream *s;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            break;
        atomic_store(&h->max_streams, nghttp2_session_get_remote_settings(
                                          session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
        if (!atomic_exchange(&h->ready, true))
            h->pool_news = true;
        break;
    case NGHTTP2_GOAWAY:
        /* streams above last_stream_id are closed by nghttp2 with
         * REFUSED_STREAM (retried), the others run to their end */
        atomic_store(&h->goaway, true);
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
            h->err = tern__h2_errno(frame->goaway.error_code);
        h->pool_news = true;
        break;
    case NGHTTP2_HEADERS:
        if ((s = stream_of(session, frame->hd.stream_id, ud))) {
            end_head_block(s, frame);
            tern_cond_broadcast(&s->cond);
        }
        break;
    case NGHTTP2_DATA:
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            (s = stream_of(session, frame->hd.stream_id, ud))) {
            s->eof = true;
            tern_cond_broadcast(&s->cond);
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Room for n more bytes at s->data + s->dlen. */
static bool data_room(tern__h2c_stream *s, size_t n)
{
    if (s->dpos == s->dlen)
        s->dpos = s->dlen = 0;
    if (s->dcap - s->dlen >= n)
        return true;
    if (s->dpos > 0) {
        memmove(s->data, s->data + s->dpos, s->dlen - s->dpos);
        s->dlen -= s->dpos;
        s->dpos = 0;
        if (s->dcap - s->dlen >= n)
            return true;
    }
    size_t cap = s->dcap ? s->dcap : 16 * 1024;
    while (cap - s->dlen < n)
        cap *= 2;
    uint8_t *d = realloc(s->data, cap);
    if (!d)
        return false;
    s->data = d;
    s->dcap = cap;
    return true;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    tern__h2c_stream *s = stream_of(session, id, ud);
    if (!s || s->err) {
        /* nobody will read it: give the window back now */
        nghttp2_session_consume(session, id, len);
        return 0;
    }
    if (!data_room(s, len)) {
        nghttp2_session_consume(session, id, len);
        s->err = -ENOMEM;
        tern_cond_broadcast(&s->cond);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    /* the peer keeps within our stream window, or nghttp2 refuses it */
    TERN_ASSERT(s->dlen - s->dpos + len <= TERN__H2C_CONN_WINDOW);
    memcpy(s->data + s->dlen, data, len);
    s->dlen += len;
    tern_cond_broadcast(&s->cond);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *ud)
{
    tern__h2c_stream *s = stream_of(session, id, ud);
    if (!s)
        return 0;
    s->closed = true;
    if (!s->err && !s->eof) {
        if (code == NGHTTP2_REFUSED_STREAM && !s->got_head)
            s->err = -EAGAIN;   /* RFC 9113 8.7: not processed, safe to retry */
        else if (code == NGHTTP2_NO_ERROR || code == NGHTTP2_REFUSED_STREAM)
            s->err = -ECONNRESET;       /* ended before its response did */
        else
            s->err = tern__h2_errno(code);
    }
    tern_cond_broadcast(&s->cond);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    tern__h2c_conn *h = ud;
    tern__h2c_stream *s;
    if (frame->hd.type == NGHTTP2_HEADERS && (s = stream_of(session, frame->hd.stream_id, ud)))
        s->headers_sent = true;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* nghttp2 tells the peer it broke the protocol: that is our error */
        atomic_store(&h->goaway, true);
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
            h->err = tern__h2_errno(frame->goaway.error_code);
        h->pool_news = true;
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int lib_error,
                             void *ud)
{
    tern__h2c_conn *h = ud;
    tern__h2c_stream *s;
    if (frame->hd.type != NGHTTP2_HEADERS || !(s = stream_of(session, frame->hd.stream_id, ud)))
        return 0;
    if (lib_error == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
        atomic_store(&h->goaway, true);     /* 2^31 streams used: a new conn */
        h->pool_news = true;
    }
    s->closed = true;
    if (!s->err)
        s->err = lib_error == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED ||
                         lib_error == NGHTTP2_ERR_SESSION_CLOSING ||
                         lib_error == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE
                     ? -EAGAIN
                     : -EPROTO;
    tern_cond_broadcast(&s->cond);
    return 0;
}

ssize_t tern__h2c_read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *ud)
{
    (void)source;
    tern__h2c_stream *s = stream_of(session, id, ud);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* released: reset */
    TERN_ASSERT(s->body_off <= s->body_len);
    size_t n = s->body_len - s->body_off;
    if (n == 0 && s->streaming && !s->body_eof) {
        s->deferred = true;     /* the pump resumes us with the next piece */
        tern_cond_broadcast(&s->cond);
        return NGHTTP2_ERR_DEFERRED;
    }
    if (n > length)
        n = length;
    if (n)
        memcpy(buf, s->body + s->body_off, n);
    s->body_off += n;
    if (s->body_off == s->body_len && (!s->streaming || s->body_eof))
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (s->streaming && s->body_off == s->body_len)
        tern_cond_broadcast(&s->cond);     /* room for the pump's next piece */
    return (ssize_t)n;
}

int tern__h2c_session_init(tern__h2c_conn *h, size_t max_header)
{
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -ENOMEM;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, on_frame_not_send);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, 8);
    nghttp2_option_set_max_settings(opt, 32);
    int rc = nghttp2_session_client_new2(&h->session, cb, h, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc != 0)
        return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, TERN__H2C_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)(max_header > UINT32_MAX ? UINT32_MAX
                                                                                  : max_header)},
    };
    if (nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0 ||
        nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0,
                                              TERN__H2C_CONN_WINDOW) != 0) {
        nghttp2_session_del(h->session);
        h->session = NULL;
        return -ENOMEM;
    }
    return 0;
}

void tern__h2c_session_fini(tern__h2c_conn *h)
{
    nghttp2_session_del(h->session);
    h->session = NULL;
}

int tern__h2c_session_recv(tern__h2c_conn *h, const uint8_t *p, size_t n)
{
    TERN_ASSERT(!atomic_load(&h->dead));
    ssize_t rv = nghttp2_session_mem_recv(h->session, p, n);
    if (rv < 0) {
        tern__h2c_kill(h, -EPROTO);
        return -EPROTO;
    }
    TERN_ASSERT((size_t)rv == n);   /* mem_recv takes all or fails */
    if (nghttp2_session_want_write(h->session))
        tern_cond_signal(&h->wcond);
    return 0;
}

int tern__h2c_session_send(tern__h2c_conn *h, tern__buf *out, size_t max)
{
    TERN_ASSERT(!atomic_load(&h->dead));
    while (out->len < max) {
        const uint8_t *p;
        ssize_t k = nghttp2_session_mem_send(h->session, &p);
        if (k < 0) {
            tern__h2c_kill(h, k == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO);
            return h->err;
        }
        if (k == 0)
            break;
        tern__buf_put(out, p, (size_t)k);
    }
    if (out->oom) {
        tern__h2c_kill(h, -ENOMEM);
        return -ENOMEM;
    }
    return 0;
}

bool tern__h2c_session_done(tern__h2c_conn *h)
{
    return !nghttp2_session_want_read(h->session) && !nghttp2_session_want_write(h->session);
}

void tern__h2c_kill(tern__h2c_conn *h, int err)
{
    if (atomic_exchange(&h->dead, true))
        return;
    /* the reason the peer gave (GOAWAY) or we gave it beats "reset" */
    if (!h->err)
        h->err = err < 0 ? err : -ECONNRESET;
    for (tern__h2c_stream *s = h->streams; s; s = s->next) {
        if (s->closed)
            continue;
        s->closed = true;
        if (!s->err && !s->eof)
            s->err = s->headers_sent ? h->err : -EAGAIN;
        tern_cond_broadcast(&s->cond);
    }
    h->pool_news = true;
    tern_cond_broadcast(&h->wcond);
    if (h->conn)
        shutdown(tern_conn_fd(h->conn), SHUT_RDWR);
}
