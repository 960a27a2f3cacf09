/*
 * h2_frames.c - nghttp2's callbacks, run under the connection's mutex by
 * the reader (nghttp2_session_mem_recv) and the writer (_mem_send): a
 * stream begins, its header fields arrive (request head, then maybe
 * trailers), its DATA arrives, it ends.
 *
 * nghttp2 enforces most of RFC 9113's rules on requests itself (its HTTP
 * messaging checks: pseudo-header fields present, once and first;
 * lower-case names; no connection-specific fields; content-length equal
 * to the DATA received).  What it leaves to us: the header list's
 * decoded size and count (the advertised SETTINGS_MAX_HEADER_LIST_SIZE is
 * advisory to nghttp2), and a target HTTP/1.1 would have refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_internal.h"

/* RFC 9113 6.5.2: a field's size is its name and value plus 32. */
#define FIELD_OVERHEAD 32

static h2_stream *stream_of(nghttp2_session *sess, int32_t id)
{
    return id > 0 ? nghttp2_session_get_stream_user_data(sess, id) : NULL;
}

/* A new stream id: remember the ids it skipped. */
static void note_opened(h2_conn *h2c, int32_t id)
{
    if (id > h2c->max_opened + 2) {
        if (h2c->ngaps == H2_MAX_GAPS) {
            /* full: forget the oldest gap */
            memmove(h2c->gap_lo, h2c->gap_lo + 1, (H2_MAX_GAPS - 1) * sizeof h2c->gap_lo[0]);
            memmove(h2c->gap_hi, h2c->gap_hi + 1, (H2_MAX_GAPS - 1) * sizeof h2c->gap_hi[0]);
            h2c->ngaps--;
        }
        h2c->gap_lo[h2c->ngaps] = h2c->max_opened + 2;
        h2c->gap_hi[h2c->ngaps++] = id - 2;
    }
    if (id > h2c->max_opened)
        h2c->max_opened = id;
}

/* Before nghttp2 handles a frame: HEADERS on a stream id the client
 * skipped over is a connection error (RFC 9113 5.1.1). */
static int on_begin_frame(nghttp2_session *sess, const nghttp2_frame_hd *hd, void *user)
{
    h2_conn *h2c = user;
    if (hd->type != NGHTTP2_HEADERS || !(hd->stream_id & 1) || hd->stream_id >= h2c->max_opened)
        return 0;
    for (unsigned i = 0; i < h2c->ngaps; i++)
        if (hd->stream_id >= h2c->gap_lo[i] && hd->stream_id <= h2c->gap_hi[i]) {
            nghttp2_session_terminate_session(sess, NGHTTP2_PROTOCOL_ERROR);
            break;
        }
    return 0;
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *user)
{
    h2_conn *h2c = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    note_opened(h2c, frame->hd.stream_id);
    h2_stream *st = tern__h2_stream_new(h2c, frame->hd.stream_id);
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* RST_STREAM; the conn goes on */
    nghttp2_session_set_stream_user_data(sess, frame->hd.stream_id, st);
    return 0;
}

/* A copy of s[0..n) with a NUL, in the stream's arena (before its handler
 * starts, only the reader touches it). */
static char *arena_str(h2_stream *st, const uint8_t *s, size_t n)
{
    char *p = tern__arena_alloc(&st->vhc.arena, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int add_request_field(h2_stream *st, const uint8_t *name, size_t nl,
                             const uint8_t *value, size_t vl)
{
    const tern_http_server_options *o = &st->h2c->srv->o;
    if (st->head.nheaders == o->max_headers) {
        st->too_large = true;
        return 0;
    }
    if (st->head.nheaders == st->hdrs_cap) {
        size_t cap = st->hdrs_cap ? st->hdrs_cap * 2 : 16;
        tern_http_header *h = tern__arena_alloc(&st->vhc.arena, cap * sizeof *h);
        if (!h)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (st->head.nheaders)
            memcpy(h, st->hdrs, st->head.nheaders * sizeof *h);
        st->hdrs = h;
        st->hdrs_cap = cap;
    }
    char *n = arena_str(st, name, nl), *v = arena_str(st, value, vl);
    if (!n || !v)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->hdrs[st->head.nheaders++] = (tern_http_header){ n, nl, v, vl };
    st->head.headers = st->hdrs;
    if (nl == 4 && !memcmp(n, "host", 4))
        st->has_host = true;
    else if (nl == 14 && !memcmp(n, "content-length", 14))
        /* digits only: nghttp2 has checked it */
        st->head.content_length = strtoll(v, NULL, 10);
    return 0;
}

static int on_request_field(h2_stream *st, const uint8_t *name, size_t nl,
                            const uint8_t *value, size_t vl)
{
    if (st->too_large)
        return 0;       /* counted, not kept: the answer is 431 */
    if (nl > 0 && name[0] == ':') {
        char *v = arena_str(st, value, vl);
        if (!v)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        if (nl == 7 && !memcmp(name, ":method", 7)) {
            st->head.method = v;
            st->head.method_len = vl;
        } else if (nl == 5 && !memcmp(name, ":path", 5)) {
            st->head.target = v;
            st->head.target_len = vl;
        } else if (nl == 10 && !memcmp(name, ":authority", 10)) {
            st->authority = v;
        }
        return 0;       /* :scheme, :protocol: nothing for a handler */
    }
    return add_request_field(st, name, nl, value, vl);
}

/* A trailer field: kept in its own allocation (the handler is running
 * and owns the arena), bounded as the head was. */
static int on_trailer_field(h2_stream *st, const uint8_t *name, size_t nl,
                            const uint8_t *value, size_t vl)
{
    const tern_http_server_options *o = &st->h2c->srv->o;
    st->trailer_bytes += nl + vl + FIELD_OVERHEAD;
    if (st->trailer_bytes > o->max_header_bytes || st->ntrailers == o->max_headers)
        return 0;       /* dropped past the limits */
    tern_http_header *t = realloc(st->trailers, (st->ntrailers + 1) * sizeof *t);
    if (!t)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->trailers = t;
    char *p = malloc(nl + vl + 2);
    if (!p)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    memcpy(p, name, nl);
    p[nl] = '\0';
    memcpy(p + nl + 1, value, vl);
    p[nl + 1 + vl] = '\0';
    t[st->ntrailers++] = (tern_http_header){ p, nl, p + nl + 1, vl };
    return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
    (void)flags, (void)user;
    h2_stream *st = stream_of(sess, frame->hd.stream_id);
    if (!st || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return on_trailer_field(st, name, nl, value, vl);
    const tern_http_server_options *o = &st->h2c->srv->o;
    st->hdr_bytes += nl + vl + FIELD_OVERHEAD;
    if (st->hdr_bytes > o->max_header_bytes)
        st->too_large = true;   /* an HPACK bomb ends here: nothing more is kept */
    return on_request_field(st, name, nl, value, vl);
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *user)
{
    (void)user;
    h2_stream *st = stream_of(sess, frame->hd.stream_id);
    if (!st)
        return 0;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (end)
            st->in_eof = true;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && tern__h2_stream_start(st) < 0)
            nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        break;
    case NGHTTP2_DATA:
        if (end)
            st->in_eof = true;
        break;
    default:
        return 0;
    }
    if (end)
        tern_cond_broadcast(&st->cond);
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *sess, uint8_t flags, int32_t id,
                              const uint8_t *data, size_t len, void *user)
{
    (void)flags, (void)user;
    h2_stream *st = stream_of(sess, id);
    if (st)
        tern__h2_body_recv(st, data, len);
    else if (nghttp2_session_consume(sess, id, len) != 0)
        nghttp2_session_consume_connection(sess, len);  /* the window is the conn's too */
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t error_code, void *user)
{
    (void)user;
    h2_stream *st = stream_of(sess, id);
    if (st)
        tern__h2_stream_closed(st, error_code);
    return 0;
}

static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2_stream *st = stream_of(sess, frame->hd.stream_id);
    if (st) {
        st->eof_sent = true;
        tern_cond_broadcast(&st->cond);
    }
    return 0;
}

void tern__h2_callbacks(nghttp2_session_callbacks *cb)
{
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
}
