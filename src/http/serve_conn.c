/*
 * serve_conn.c - one coroutine per connection: read a request head, run
 * the handler, answer, and repeat while the connection is kept alive.
 *
 * Pipelining costs one write per batch: responses accumulate in the
 * connection's output buffer while complete requests are already
 * buffered, and go out together just before the loop would read again.
 *
 * An idle connection holds almost nothing: after a second without a
 * request it returns its buffers (the next request allocates them again),
 * so 10,000 idle keep-alive connections cost their coroutines and little
 * more.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/server_internal.h"
#include "tern/runtime.h"

#define IDLE_RELEASE_NS 1000000000      /* idle this long: give the buffers back */

int hbuf_reserve(hbuf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int hbuf_append(hbuf *b, const void *data, size_t n)
{
    if (hbuf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

void hbuf_free(hbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void *arena_alloc(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 2048 ? n : 2048;
        arena_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        nc->next = c;
        a->head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void arena_reset(arena *a)
{
    arena_chunk *c = a->head;
    if (!c)
        return;
    while (c->next) {           /* keep the oldest (first) chunk only */
        arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    c->used = 0;
    a->head = c;
}

void arena_free(arena *a)
{
    for (arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    a->head = NULL;
}

int tern__http_flush_out(hconn *hc)
{
    if (hc->out.len == 0 || hc->io_error)
        return hc->io_error;
    ssize_t n = tern_conn_write(hc->c, hc->out.p, hc->out.len);
    hc->out.len = 0;
    if (n < 0) {
        hc->io_error = (int)n;
        return (int)n;
    }
    return 0;
}

static void release_buffers(hconn *hc)
{
    free(hc->in);
    hc->in = NULL;
    hc->in_cap = hc->in_len = hc->in_pos = 0;
    hbuf_free(&hc->out);
    hbuf_free(&hc->scratch);
    free(hc->hdrs);
    hc->hdrs = NULL;
    arena_free(&hc->arena);
}

static int ensure_buffers(hconn *hc)
{
    if (!hc->in) {
        hc->in = malloc(HTTP_IN_INITIAL);
        if (!hc->in)
            return -ENOMEM;
        hc->in_cap = HTTP_IN_INITIAL;
    }
    if (!hc->hdrs) {
        hc->hdrs = malloc(hc->srv->o.max_headers * sizeof *hc->hdrs);
        if (!hc->hdrs)
            return -ENOMEM;
    }
    return 0;
}

/* Wait for the next request's first bytes, or give up at the idle
 * deadline.  A connection that is busy keeps its buffer and reads straight
 * into it (one system call when a request is already there); one idle
 * for a second gives its buffers back and waits without any.  Returns 1
 * when bytes were read into hc->in, 0 when the socket is readable (and
 * nothing read yet), or <0 to close: -errno, or -1 at end of stream. */
static int wait_next_request(hconn *hc, bool first)
{
    tern_http_server *s = hc->srv;
    int64_t timeout = first ? s->o.read_header_timeout : s->o.idle_timeout;
    int64_t now = tern_now();
    int64_t deadline = timeout < 0 ? TERN_FOREVER : now + timeout;
    atomic_store(&hc->state, CONN_IDLE);
    atomic_fetch_sub_explicit(&s->nactive, 1, memory_order_relaxed);
    int rc;
    if (atomic_load(&s->shutting_down)) {
        rc = -ECANCELED;
        goto out;
    }
    int64_t release_at = now + IDLE_RELEASE_NS;
    if (hc->in) {
        bool may_release = deadline == TERN_FOREVER || release_at < deadline;
        tern_conn_set_read_deadline(hc->c, may_release ? release_at : deadline);
        ssize_t n = tern_conn_read(hc->c, hc->in, hc->in_cap);
        if (n > 0) {
            hc->in_len = (size_t)n;
            rc = 1;
            goto out;
        }
        if (n == 0 || n != -ETIMEDOUT || !may_release) {
            rc = n == 0 ? -1 : (int)n;
            goto out;
        }
        release_buffers(hc);
        tern_stack_trim();      /* and the stack pages the handler touched */
    }
    tern_conn_set_read_deadline(hc->c, deadline);
    rc = tern_conn_wait_readable(hc->c);
out:
    atomic_fetch_add_explicit(&s->nactive, 1, memory_order_relaxed);
    atomic_store(&hc->state, CONN_ACTIVE);
    if (rc >= 0 && atomic_load(&s->shutting_down))
        hc->closing = true;     /* answer this one, then close */
    return rc;
}

/* Read more bytes of a head into hc->in (after in_len).  0, or -errno / -1 at EOF. */
static int read_more(hconn *hc, size_t max_head)
{
    if (hc->in_pos > 0) {
        memmove(hc->in, hc->in + hc->in_pos, hc->in_len - hc->in_pos);
        hc->in_len -= hc->in_pos;
        hc->in_pos = 0;
    }
    if (hc->in_len == hc->in_cap) {
        size_t cap = hc->in_cap * 2;
        if (cap > max_head + 1024)
            cap = max_head + 1024;
        if (cap <= hc->in_cap)
            return -EMSGSIZE;
        char *p = realloc(hc->in, cap);
        if (!p)
            return -ENOMEM;
        hc->in = p;
        hc->in_cap = cap;
    }
    ssize_t n = tern_conn_read(hc->c, hc->in + hc->in_len, hc->in_cap - hc->in_len);
    if (n <= 0)
        return n == 0 ? -1 : (int)n;
    hc->in_len += (size_t)n;
    return 0;
}

static int status_for_error(int err)
{
    switch (err) {
    case -EMSGSIZE: return 413;
    case -EBADMSG: return 400;
    case -ETIMEDOUT: return 408;
    default: return 500;
    }
}

/* NUL-terminate the head's strings in place: each is followed by a
 * delimiter (SP, ':', CR or LF) the parser has already consumed. */
static void terminate_strings(tern_http_request *h)
{
    ((char *)h->method)[h->method_len] = '\0';
    ((char *)h->target)[h->target_len] = '\0';
    for (size_t i = 0; i < h->nheaders; i++) {
        ((char *)h->headers[i].name)[h->headers[i].name_len] = '\0';
        ((char *)h->headers[i].value)[h->headers[i].value_len] = '\0';
    }
}

/* Throw away what the handler did not read of the body, so the next
 * request starts at the right byte; false if it is too much to be worth it. */
static bool drain_body(tern_http_req *r)
{
    if (!r->has_body || r->body_done)
        return true;
    if (r->body_failed)
        return false;
    char tmp[4096];
    size_t drained = 0;
    r->max_body = -1;           /* the limit is the drain budget now */
    if (!r->continue_sent && r->head.expect_continue)
        return false;           /* the client waits for 100: never sent, so close */
    while (drained < HTTP_DRAIN_MAX) {
        ssize_t n = tern_http_req_read(r, tmp, sizeof tmp);
        if (n == 0)
            return true;
        if (n < 0)
            return false;
        drained += (size_t)n;
    }
    return false;
}

static void serve_one(hconn *hc, const tern_http_request *head, size_t head_len)
{
    tern_http_server *s = hc->srv;
    tern_http_req r;
    tern_http_resp w;
    memset(&r, 0, offsetof(tern_http_req, param_names));
    r.nparams = r.nvalues = r.nowned = 0;
    r.conn = hc;
    r.head = *head;
    terminate_strings(&r.head);
    r.start = tern_now();
    r.max_body = s->o.max_body_bytes;
    r.has_body = r.head.chunked || r.head.content_length > 0;
    r.chunked = r.head.chunked;
    r.body_left = r.head.chunked ? -1 : (r.head.content_length > 0 ? r.head.content_length : 0);
    r.body_done = !r.has_body;
    if (r.chunked)
        tern_http_chunked_init(&r.dec, 0);
    hc->in_pos += head_len;
    hc->nreq++;
    if (!r.head.keep_alive || (s->o.max_requests_per_conn > 0 && hc->nreq >= (unsigned)s->o.max_requests_per_conn))
        hc->closing = true;

    tern__http_resp_init(&w, hc, &r);
    tern_conn_set_write_deadline(hc->c, s->o.write_timeout < 0 ? TERN_FOREVER : r.start + s->o.write_timeout);

    if (r.max_body >= 0 && r.head.content_length > r.max_body) {
        /* refuse before reading a byte of it */
        hc->closing = true;
        w.close_after = true;
        tern_http_resp_error(&w, 413, NULL);
        atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    } else {
        int rc = tern_http_run_chain(&r, &w, &(tern_http_link){ s->o.handler, s->o.arg }, 1);
        if (rc < 0) {
            if (!w.committed) {
                /* discard what it buffered and its headers: a clean error */
                hc->out.len = w.start;
                w.nhdrs = 0;
                w.body_bytes = 0;
                tern_http_resp_error(&w, status_for_error(rc), NULL);
            } else {
                hc->closing = true;     /* mid-stream: a truncated body, never a wrong one */
                w.done = true;
            }
        }
    }
    if (!drain_body(&r))
        hc->closing = true;
    if (hc->closing)
        w.close_after = true;
    if (!w.done)
        tern__http_resp_finish(&w);
    tern__http_req_end(&r);
    arena_reset(&hc->arena);
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    if (hc->out.len >= HTTP_STREAM_THRESHOLD)
        tern__http_flush_out(hc);
}

int tern__http_serve_conn(void *arg)
{
    hconn *hc = arg;
    tern_http_server *s = hc->srv;
    tern_http_limits lim = { .max_request_line = s->o.max_request_line,
                             .max_head = s->o.max_header_bytes };
    bool first = true;
    for (;;) {
        if (hc->io_error)
            break;
        if (hc->in_pos == hc->in_len) {
            hc->in_pos = hc->in_len = 0;
            if (tern__http_flush_out(hc) < 0 || hc->closing)
                break;
            int got = wait_next_request(hc, first);
            if (got < 0)
                break;
            first = false;
            if (ensure_buffers(hc) < 0)
                break;
            /* the rest of the head must come within read_header_timeout */
            tern_conn_set_read_deadline(hc->c, s->o.read_header_timeout < 0
                                        ? TERN_FOREVER : tern_now() + s->o.read_header_timeout);
            if (got == 0 && read_more(hc, s->o.max_header_bytes) < 0)
                break;
        }
        tern_http_request head, *h = &head;
        h->headers = hc->hdrs;
        h->max_headers = s->o.max_headers;
        int n = tern_http_parse_request(hc->in + hc->in_pos, hc->in_len - hc->in_pos, h, &lim);
        if (n == TERN_HTTP_INCOMPLETE) {
            if (tern__http_flush_out(hc) < 0)
                break;
            int rc = read_more(hc, s->o.max_header_bytes);
            if (rc == -EMSGSIZE) {
                tern__http_send_error(hc, 431, false);
                break;
            }
            if (rc < 0) {
                if (rc == -ETIMEDOUT && hc->in_len > hc->in_pos)
                    tern__http_send_error(hc, 408, false);
                break;
            }
            continue;
        }
        if (n == TERN_HTTP_BAD) {
            atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
            tern__http_send_error(hc, h->status ? h->status : 400, false);
            break;
        }
        serve_one(hc, h, (size_t)n);
    }
    tern__http_flush_out(hc);
    tern__http_conn_gone(s, hc);
    return 0;
}
