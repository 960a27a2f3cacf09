/*
 * h2_stream.c - a stream's life: made at its first HEADERS, its handler
 * coroutine started once the head is complete, freed when both the
 * session and the handler have let go (see h2_internal.h).
 *
 * The handler coroutine mirrors serve_one() in serve_conn.c: the same
 * refusals before any handler runs (431 for an oversized head, 400 for a
 * bad target or path, 413 for a declared body over the limit), the same
 * error statuses when a handler fails before answering; where HTTP/1.1
 * would close the connection (a failure mid-response), HTTP/2 resets only
 * the stream.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_internal.h"
#include "tern/runtime.h"

/* A stream's memory, kept for the next stream while the connection is
 * busy: its buffers and first arena chunk, up to these sizes.  A cached
 * stream stands for one that was open at the same time as the others, so
 * the cache holds no more than the connection held at its peak; the
 * reader empties it once the connection has been idle for
 * H2_IDLE_RELEASE_NS (idle connections keep none). */
#define H2_STREAM_CACHE 32
#define H2_KEEP_BUF (8 * 1024)

static void stream_free(h2_stream *st)
{
    tern__growbuf_free(&st->out);
    tern__growbuf_free(&st->vhc.out);
    tern__arena_free(&st->vhc.arena);
    free(st);
}

void tern__h2_stream_cache_drain(h2_conn *h2c)
{
    while (h2c->free_streams) {
        h2_stream *st = h2c->free_streams;
        h2c->free_streams = st->next;
        stream_free(st);
    }
    h2c->nfree_streams = 0;
}

/* Under mu: st is done with; keep its memory for the next stream, or free
 * it. */
static void stream_recycle(h2_conn *h2c, h2_stream *st)
{
    if (h2c->nfree_streams >= H2_STREAM_CACHE || h2c->dead) {
        stream_free(st);
        return;
    }
    tern__growbuf out = st->out, vout = st->vhc.out;
    tern__arena arena = st->vhc.arena;
    if (out.cap > H2_KEEP_BUF)
        tern__growbuf_free(&out);
    if (vout.cap > H2_KEEP_BUF)
        tern__growbuf_free(&vout);
    tern__arena_reset(&arena);
    if (arena.head && arena.head->cap > H2_KEEP_BUF)
        tern__arena_free(&arena);
    out.len = vout.len = 0;
    memset(st, 0, sizeof *st);
    st->out = out;
    st->vhc.out = vout;
    st->vhc.arena = arena;
    st->next = h2c->free_streams;
    h2c->free_streams = st;
    h2c->nfree_streams++;
}

h2_stream *tern__h2_stream_new(h2_conn *h2c, int32_t id)
{
    h2_stream *st = h2c->free_streams;
    if (st) {
        h2c->free_streams = st->next;
        h2c->nfree_streams--;
        st->next = NULL;
    } else if (!(st = calloc(1, sizeof *st))) {
        return NULL;
    }
    st->h2c = h2c;
    st->id = id;
    st->vhc.srv = h2c->srv;
    st->vhc.c = h2c->hc->c;
    st->vhc.h2 = st;
    atomic_init(&st->vhc.state, CONN_ACTIVE);
    st->head.content_length = -1;
    st->head.minor_version = 1;
    st->head.keep_alive = true;
    st->head.method = st->head.target = "";
    st->next = h2c->streams;
    if (h2c->streams)
        h2c->streams->prev = st;
    h2c->streams = st;
    h2c->nstreams++;
    return st;
}

void tern__h2_stream_release(h2_stream *st)
{
    h2_conn *h2c = st->h2c;
    if (st->running || !st->closed)
        return;
    TERN_ASSERT(h2c->nstreams > 0);
    TERN_ASSERT(st->prev ? st->prev->next == st : h2c->streams == st);
    if (st->prev)
        st->prev->next = st->next;
    else
        h2c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    if (--h2c->nstreams == 0)
        h2c->last_active = tern_now();
    if (st->detached) {
        TERN_ASSERT(h2c->ndetached > 0);
        h2c->ndetached--;
    }
    for (size_t i = 0; i < st->ntrailers; i++)
        free((char *)st->trailers[i].name);     /* name and value share one block */
    free(st->trailers);
    tern__growbuf_free(&st->in);
    tern__growbuf_free(&st->vhc.scratch);
    tern_ctx_free(st->ctx);
    stream_recycle(h2c, st);
}

void tern__h2_sweep_detached(h2_conn *h2c, int64_t now)
{
    if (h2c->ndetached == 0 || now < h2c->next_sweep)
        return;
    h2c->next_sweep = now + H2_POLL_NS;
    bool reset = false;
    for (h2_stream *st = h2c->streams; st; st = st->next) {
        if (!st->detached || st->closed || st->eof_sent || st->rst_code ||
            st->write_deadline == TERN_FOREVER || now < st->write_deadline)
            continue;
        /* a client that does not read: as settle would, give up on it */
        st->rst_code = NGHTTP2_CANCEL;
        nghttp2_submit_rst_stream(h2c->sess, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        reset = true;
    }
    if (reset)
        tern__h2_wake_writer(h2c);
}

void tern__h2_stream_closed(h2_stream *st, uint32_t error_code)
{
    TERN_ASSERT(!st->closed);
    st->closed = true;
    st->close_error = error_code;
    /* what it had queued will never be sent */
    size_t left = st->out.len - st->out_off;
    TERN_ASSERT(st->h2c->queued >= left);
    st->h2c->queued -= left;
    st->out.len = st->out_off = 0;
    if (left)
        tern_cond_broadcast(&st->h2c->room);
    /* reset (or the connection ended) before the response was complete:
     * the request is over, as Go cancels its context */
    if (st->running && !st->eof_sent && st->ctx)
        tern_ctx_cancel(st->ctx);
    tern_cond_broadcast(&st->cond);
    tern__h2_stream_release(st);
}

tern_ctx *tern__h2_stream_ctx(h2_stream *st)
{
    TERN_ASSERT(st->running);
    if (!st->ctx) {
        if (tern_ctx_with_cancel(st->h2c->srv->base, &st->ctx) < 0) {
            st->ctx = NULL;
            return NULL;
        }
        /* what stream_closed and conn_die would have done to it */
        if ((st->closed && !st->eof_sent) || st->h2c->dead)
            tern_ctx_cancel(st->ctx);
    }
    return st->ctx;
}

tern_ctx *tern__h2_req_ctx(tern_http_req *r)
{
    h2_stream *st = r->conn->h2;
    tern_mutex_lock(&st->h2c->mu);
    tern_ctx *c = tern__h2_stream_ctx(st);
    tern_mutex_unlock(&st->h2c->mu);
    return c;
}

static int wait_ctx(h2_stream *st, tern_ctx *ctx, tern_cond *cond, int64_t deadline)
{
    h2_conn *h2c = st->h2c;
    TERN_ASSERT(st->running);
    if (!ctx && !(ctx = tern__h2_stream_ctx(st)))
        return -ENOMEM;
    if (deadline == TERN_FOREVER)
        return tern_cond_wait(cond, &h2c->mu, ctx);
    tern_ctx *c;
    if (tern_ctx_with_deadline(ctx, deadline, &c) < 0)
        return -ENOMEM;
    int rc = tern_cond_wait(cond, &h2c->mu, c);
    tern_ctx_free(c);
    return rc;
}

int tern__h2_stream_wait_on(h2_stream *st, tern_cond *cond, int64_t deadline)
{
    return wait_ctx(st, st->ctx, cond, deadline);
}

int tern__h2_handler_wait_on(h2_stream *st, tern_cond *cond, int64_t deadline)
{
    /* the request's current context descends from st->ctx (set_ctx only
     * derives), so a reset still ends the wait */
    tern_http_resp *w = st->vhc.cur;
    tern_ctx *ctx = w && w->req && w->req->ctx ? w->req->ctx : st->ctx;
    return wait_ctx(st, ctx, cond, deadline);
}

int tern__h2_stream_wait(h2_stream *st, int64_t deadline)
{
    return tern__h2_stream_wait_on(st, &st->cond, deadline);
}

/* What HTTP/1.1's parser would have refused in a target: bytes outside
 * visible ASCII.  nghttp2 checks the rest of :path (not empty, '/' or
 * "*" first). */
static bool target_ok(const tern_http_request *h)
{
    if (h->target_len == 0)
        return false;
    for (size_t i = 0; i < h->target_len; i++) {
        unsigned char c = (unsigned char)h->target[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* The request runs its handler, or the server answers for it. */
static void serve_stream(h2_stream *st, tern_http_req *r, tern_http_resp *w)
{
    tern_http_server *s = st->h2c->srv;
    bool is_options_star = r->head.target_len == 1 && r->head.target[0] == '*';
    if (st->too_large) {
        tern_http_resp_error(w, 431, NULL);
        atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    } else if (st->bad || !target_ok(&r->head) ||
               (is_options_star && strcmp(r->head.method, "OPTIONS") != 0) ||
               (!is_options_star && !tern__http_req_path_ok(r))) {
        tern_http_resp_error(w, 400, NULL);
        atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    } else if (is_options_star) {
        tern_http_resp_set_header(w, "Allow", "OPTIONS, GET, HEAD, POST, PUT, PATCH, DELETE");
        tern_http_resp_set_status(w, 200);
    } else if (r->max_body >= 0 && r->head.content_length > r->max_body) {
        tern_http_resp_error(w, 413, NULL);     /* refused before a byte is read */
        atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    } else {
        int rc = tern_http_run_chain(r, w, &(tern_http_link){ s->o.handler, s->o.arg }, 1);
        if (rc < 0 && !w->committed) {
            st->vhc.out.len = 0;        /* a clean error: none of what it buffered */
            w->nhdrs = 0;
            w->ntrailers = 0;
            w->body_bytes = 0;
            tern_http_resp_error(w, tern_http_error_status(r, rc), NULL);
        } else if (rc < 0) {
            st->rst_code = NGHTTP2_INTERNAL_ERROR;  /* mid-response: never a wrong body */
            w->done = true;
        }
    }
}

/* Under mu, the handler done: whether it can leave before its response
 * is out rather than wait in settle.  Only when settle would have nothing
 * to decide but the write deadline: the whole response submitted and
 * queued (HEADERS alone, or a provider with out_done), the request read
 * to its END_STREAM (else an RST_STREAM NO_ERROR must follow our
 * END_STREAM), no reset pending, the stream and connection alive.  Most
 * responses qualify, and each saves a park, a wake and a timed context. */
static bool can_detach(const h2_stream *st)
{
    return !st->rst_code && !st->closed && !st->eof_sent && !st->h2c->dead && st->in_eof &&
           st->submitted && (!st->has_provider || st->out_done);
}

static int stream_main(void *arg)
{
    h2_stream *st = arg;
    h2_conn *h2c = st->h2c;
    tern_http_server *s = h2c->srv;
    tern_http_req r;
    tern_http_resp w;
    memset(&r, 0, offsetof(tern_http_req, param_names));
    r.nparams = r.nvalues = r.nowned = r.nctx_values = 0;
    r.conn = &st->vhc;
    r.head = st->head;
    r.start = tern_now();
    r.max_body = s->o.max_body_bytes;
    r.ctx = NULL;               /* the stream's, made when asked for (tern_http_req_ctx) */
    r.has_body = st->has_body;          /* set before this coroutine started */
    r.body_left = -1;
    r.body_done = !r.has_body;
    st->write_deadline = s->o.write_timeout < 0 ? TERN_FOREVER : r.start + s->o.write_timeout;
    tern__http_resp_init(&w, &st->vhc, &r);
    st->vhc.cur = &w;
    /* a small first block for the response body, rather than the 4 KiB
     * response.c's first write would get (h2_internal.h: H2_FIRST_BUF);
     * on ENOMEM that write reports it */
    (void)tern__h2_buf_start(&st->vhc.out, 0);

    serve_stream(st, &r, &w);
    if (!w.done)
        tern__http_resp_finish(&w);

    /* the handler's own memory (its contexts, buffers): neither the
     * writer nor nghttp2 reads it */
    st->vhc.cur = NULL;
    tern__http_req_end(&r);
    st->vhc.out.len = 0;        /* its memory goes with the stream's (kept) */
    tern__growbuf_free(&st->vhc.scratch);
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);

    tern_mutex_lock(&h2c->mu);
    bool detach = can_detach(st);
    if (!detach) {
        tern__h2_resp_settle(st, st->write_deadline);
        tern__h2_body_discard(st);
        tern_mutex_unlock(&h2c->mu);
        /* the arena is reset only now: the response trailers live in it
         * until settle has made sure nghttp2 no longer reads them (its first
         * chunk stays, for the next stream) */
        tern__arena_reset(&st->vhc.arena);
        tern_mutex_lock(&h2c->mu);
    } else {
        /* the response is all queued: the writer sends it without us (the
         * arena, with the trailers, goes with the stream), and the reader
         * resets it if the client has not taken it by write_deadline */
        tern__h2_body_discard(st);
        st->detached = true;
        h2c->ndetached++;
    }
    TERN_ASSERT(st->running && h2c->nhandlers > 0);
    st->running = false;
    h2c->nhandlers--;
    tern__h2_stream_release(st);        /* st may be freed from here on */
    if (!detach)
        tern__h2_wake_writer(h2c);      /* the RST_STREAM settle may have queued */
    tern_mutex_unlock(&h2c->mu);
    tern_waitgroup_done(&h2c->handlers);        /* h2c may be freed from here on */
    return 0;
}

int tern__h2_stream_start(h2_stream *st)
{
    h2_conn *h2c = st->h2c;
    tern_http_server *s = h2c->srv;
    TERN_ASSERT(!st->running && !st->closed);
    if (!st->head.target[0])
        st->bad = true;         /* CONNECT (no :path): tern is no proxy */
    /* HTTP/1.1 handlers look for Host: RFC 9113 8.3.1 has :authority
     * stand for it */
    if (!st->has_host && st->authority && !st->too_large) {
        size_t al = strlen(st->authority);
        if (tern_http_req_header(&(tern_http_req){ .head = st->head }, "host") == NULL &&
            st->head.nheaders < s->o.max_headers) {
            if (st->head.nheaders == st->hdrs_cap) {
                size_t cap = st->hdrs_cap ? st->hdrs_cap * 2 : 4;
                tern_http_header *h = tern__arena_alloc(&st->vhc.arena, cap * sizeof *h);
                if (!h)
                    return -ENOMEM;
                if (st->head.nheaders)
                    memcpy(h, st->hdrs, st->head.nheaders * sizeof *h);
                st->hdrs = h;
                st->hdrs_cap = cap;
            }
            st->hdrs[st->head.nheaders++] = (tern_http_header){ "host", 4, st->authority, al };
            st->head.headers = st->hdrs;
        }
    }
    st->has_body = !st->in_eof;         /* END_STREAM on the HEADERS: no body */
    st->running = true;
    h2c->nhandlers++;
    h2c->nstarted++;
    tern_waitgroup_add(&h2c->handlers, 1);
    if (tern_go_opts(stream_main, st, &(tern_go_options){ .name = "http2-stream" }, NULL) < 0) {
        st->running = false;
        h2c->nhandlers--;
        tern_waitgroup_done(&h2c->handlers);
        return -ENOMEM;
    }
    return 0;
}
