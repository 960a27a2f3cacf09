/*
 * h2_body.c - a stream's request body: DATA frames land in the stream's
 * input queue (reader side), the handler takes them out with
 * tern_http_req_read (its side), and only then is the window given back
 * (nghttp2_session_consume; the session runs with NO_AUTO_WINDOW_UPDATE).
 * So a client can have at most a stream window of body in the server per
 * stream, and a connection window per connection, however slowly the
 * handler reads; a handler that never reads holds up its own stream and,
 * past the connection window, its connection, never the server.
 *
 * Also the request's trailers (a HEADERS frame after the DATA).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/h2_internal.h"
#include "tern/runtime.h"

/* Under mu: the handler will not read `n` more bytes, or has read them:
 * either way the window opens again. */
static void give_back(h2_stream *st, size_t n)
{
    h2_conn *h2c = st->h2c;
    if (n == 0 || h2c->dead)
        return;
    if (st->closed || nghttp2_session_consume(h2c->sess, st->id, n) != 0)
        nghttp2_session_consume_connection(h2c->sess, n);
    tern__h2_wake_writer(h2c);          /* a WINDOW_UPDATE may be due */
}

void tern__h2_body_recv(h2_stream *st, const uint8_t *data, size_t len)
{
    if (!st->running) {
        give_back(st, len);     /* its handler has returned: nobody will read it */
        return;
    }
    if (st->in_off == st->in.len) {
        st->in_off = st->in.len = 0;
    } else if (st->in_off > st->in.cap / 2) {
        memmove(st->in.p, st->in.p + st->in_off, st->in.len - st->in_off);
        st->in.len -= st->in_off;
        st->in_off = 0;
    }
    if (tern__h2_buf_start(&st->in, len) < 0 || tern__growbuf_append(&st->in, data, len) < 0) {
        give_back(st, len);
        nghttp2_submit_rst_stream(st->h2c->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    tern_cond_signal(&st->cond);
}

void tern__h2_body_discard(h2_stream *st)
{
    TERN_ASSERT(st->in_off <= st->in.len);
    give_back(st, st->in.len - st->in_off);
    tern__growbuf_free(&st->in);
    st->in_off = 0;
}

ssize_t tern__h2_body_read(tern_http_req *r, void *buf, size_t n)
{
    h2_stream *st = r->conn->h2;
    h2_conn *h2c = st->h2c;
    tern_http_server *s = h2c->srv;
    TERN_ASSERT(n > 0);
    if (st->body_deadline == 0)
        st->body_deadline = s->o.read_body_timeout < 0 ? TERN_FOREVER
                            : tern_now() + s->o.read_body_timeout;
    ssize_t rc;
    tern_mutex_lock(&h2c->mu);
    for (;;) {
        TERN_ASSERT(st->in_off <= st->in.len);
        size_t avail = st->in.len - st->in_off;
        if (avail > 0) {
            size_t k = n < avail ? n : avail;
            memcpy(buf, st->in.p + st->in_off, k);
            st->in_off += k;
            give_back(st, k);
            rc = (ssize_t)k;
            break;
        }
        if (st->in_eof) {
            r->body_done = true;
            rc = 0;
            break;
        }
        if (st->closed || h2c->dead) {
            rc = -ECONNRESET;   /* reset before the body's end */
            break;
        }
        int w = tern__h2_handler_wait_on(st, &st->cond, st->body_deadline);
        if (w < 0) {
            rc = w;
            break;
        }
    }
    tern_mutex_unlock(&h2c->mu);
    return rc;
}

const char *tern__h2_req_trailer(tern_http_req *r, const char *name)
{
    h2_stream *st = r->conn->h2;
    const char *v = NULL;
    size_t nl = strlen(name);
    tern_mutex_lock(&st->h2c->mu);
    if (st->in_eof)
        for (size_t i = 0; i < st->ntrailers && !v; i++)
            if (st->trailers[i].name_len == nl && !strcasecmp(st->trailers[i].name, name))
                v = st->trailers[i].value;
    tern_mutex_unlock(&st->h2c->mu);
    return v;
}
