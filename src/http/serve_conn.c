/*
 * serve_conn.c - one coroutine per connection: read a request head, run
 * the handler, answer, and repeat while the connection is kept alive.
 *
 * Pipelining costs one write per batch: responses accumulate in the
 * connection's output buffer while complete requests are already
 * buffered, and go out together just before the loop would read again.
 *
 * An idle connection holds almost nothing.  Its buffers (input, output,
 * header array, the first arena chunk: ~14 KiB) live in the frame of
 * serve_burst(), which returns after a second without a request; the
 * connection then waits in the small outer frame and gives the stack
 * pages below it back (tern_stack_trim).  Heap buffers would not do:
 * freed, they stay resident in malloc's free lists, fragmented among the
 * live connections.  So 10,000 idle keep-alive connections cost a page or
 * two of stack each and a few hundred bytes of heap.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/h2_internal.h"
#include "http/server_internal.h"
#include "runtime/export.h"
#include "tern/runtime.h"

#define IDLE_RELEASE_NS 1000000000      /* idle this long: give the buffers back */

int tern__http_flush_out(hconn *hc)
{
    if (hc->h2)
        return tern__h2_flush(hc);
    TERN_ASSERT(hc->io_error <= 0);
    if (hc->out.len == 0 || hc->io_error)
        return hc->io_error;
    ssize_t n = tern_conn_write(hc->c, hc->out.p, hc->out.len, NULL);
    hc->out.len = 0;
    if (n < 0) {
        hc->io_error = (int)n;
        return (int)n;
    }
    return 0;
}

/* Between bursts: park until the connection has something to read (no
 * buffer held), or the idle deadline.  0, or <0 to close. */
static int wait_idle(hconn *hc, bool first)
{
    tern_http_server *s = hc->srv;
    int64_t timeout = first ? s->o.read_header_timeout : s->o.idle_timeout;
    int64_t deadline = hc->idle_until ? hc->idle_until
                       : timeout < 0 ? TERN_FOREVER : tern_now() + timeout;
    /* between bursts the conn holds no buffer and no request */
    TERN_ASSERT(hc->in == NULL && hc->hdrs == NULL && hc->cur == NULL);
    TERN_ASSERT(atomic_load(&hc->state) == CONN_ACTIVE);
    tern_conn_set_read_deadline(hc->c, deadline);
    atomic_store(&hc->state, CONN_IDLE);
    atomic_fetch_sub_explicit(&s->nactive, 1, memory_order_relaxed);
    /* Only this frame and serve_conn's are live, and nothing outside the
     * coroutine points into them: parked long, its stack may go back to
     * the kernel (runtime/release.c), beyond what tern_stack_trim gave. */
    bool rel = tern__stack_release_allow(true);
    int rc = atomic_load(&s->shutting_down) ? -ECANCELED : tern_conn_wait_readable(hc->c, NULL);
    tern__stack_release_allow(rel);
    atomic_fetch_add_explicit(&s->nactive, 1, memory_order_relaxed);
    atomic_store(&hc->state, CONN_ACTIVE);
    if (rc == 0 && atomic_load(&s->shutting_down))
        hc->closing = true;     /* answer this one, then close */
    return rc;
}

/* Within a burst: read the next request's first bytes straight into the
 * buffer (one system call when a request is already there).  1 when bytes
 * were read, 0 after IDLE_RELEASE_NS with nothing (time to give the
 * buffers back), <0 to close: -errno, or -1 at end of stream. */
static int wait_hot(hconn *hc, int64_t *idle_deadline)
{
    tern_http_server *s = hc->srv;
    int64_t now = tern_now();
    if (*idle_deadline == 0)
        *idle_deadline = s->o.idle_timeout < 0 ? TERN_FOREVER : now + s->o.idle_timeout;
    int64_t release_at = now + IDLE_RELEASE_NS;
    bool may_release = *idle_deadline == TERN_FOREVER || release_at < *idle_deadline;
    /* the buffer is empty and every answer went out before waiting */
    TERN_ASSERT(hc->in_len == 0 && hc->in_pos == 0 && hc->out.len == 0 && hc->cur == NULL);
    TERN_ASSERT(atomic_load(&hc->state) == CONN_ACTIVE);
    tern_conn_set_read_deadline(hc->c, may_release ? release_at : *idle_deadline);
    atomic_store(&hc->state, CONN_IDLE);
    atomic_fetch_sub_explicit(&s->nactive, 1, memory_order_relaxed);
    int rc;
    if (atomic_load(&s->shutting_down)) {
        rc = -ECANCELED;
    } else {
        ssize_t n = tern_conn_read(hc->c, hc->in, hc->in_cap, NULL);
        if (n > 0) {
            TERN_ASSERT((size_t)n <= hc->in_cap);
            hc->in_len = (size_t)n;
            rc = 1;
        } else if (n == -ETIMEDOUT && may_release) {
            rc = 0;
        } else {
            rc = n == 0 ? -1 : (int)n;
        }
    }
    atomic_fetch_add_explicit(&s->nactive, 1, memory_order_relaxed);
    atomic_store(&hc->state, CONN_ACTIVE);
    if (rc > 0 && atomic_load(&s->shutting_down))
        hc->closing = true;
    return rc;
}

/* Read more bytes of a head into hc->in (after in_len).  0, or -errno / -1 at EOF. */
static int read_more(hconn *hc, size_t max_head)
{
    TERN_ASSERT(hc->in_pos <= hc->in_len && hc->in_len <= hc->in_cap);
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
        char *p = hc->in_fixed ? malloc(cap) : realloc(hc->in, cap);
        if (!p)
            return -ENOMEM;
        if (hc->in_fixed)
            memcpy(p, hc->in, hc->in_len);
        hc->in_fixed = false;
        hc->in = p;
        hc->in_cap = cap;
    }
    TERN_ASSERT(hc->in_pos == 0 && hc->in_len < hc->in_cap);
    ssize_t n = tern_conn_read(hc->c, hc->in + hc->in_len, hc->in_cap - hc->in_len, NULL);
    if (n <= 0)
        return n == 0 ? -1 : (int)n;
    hc->in_len += (size_t)n;
    TERN_ASSERT(hc->in_len <= hc->in_cap);
    return 0;
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

/* Whether what the handler left unread of the body is small enough to
 * read and throw away so the connection can serve the next request (as Go,
 * up to 256 KiB); otherwise the answer says Connection: close. */
static bool can_drain(const tern_http_req *r)
{
    if (!r->has_body || r->body_done)
        return true;
    if (r->body_failed || r->chunked || (r->head.expect_continue && !r->continue_sent))
        return false;   /* chunked: unknown size; no 100 sent: the client never sends it */
    return r->body_left <= HTTP_DRAIN_MAX;
}

static bool drain_body(tern_http_req *r)
{
    char tmp[4096];
    r->max_body = -1;
    for (;;) {
        ssize_t n = tern_http_req_read(r, tmp, sizeof tmp);
        if (n == 0)
            return true;
        if (n < 0)
            return false;
    }
}

/* A chunked body is decoded in place, reusing the input buffer from its
 * start, where the head's strings live: copy the head into the request's
 * arena first and point the request at the copy (rare enough to pay a
 * copy; Content-Length bodies are read past the head and need none). */
static int relocate_head(hconn *hc, tern_http_request *h, size_t head_len)
{
    TERN_ASSERT(head_len <= hc->in_len - hc->in_pos);
    const char *from = hc->in + hc->in_pos;
    char *to = tern__arena_alloc(&hc->arena, head_len);
    if (!to)
        return -ENOMEM;
    memcpy(to, from, head_len);
#define MOVE(p) ((p) = to + ((const char *)(p) - from))
    MOVE(h->method);
    MOVE(h->target);
    for (size_t i = 0; i < h->nheaders; i++) {
        MOVE(h->headers[i].name);
        MOVE(h->headers[i].value);
    }
#undef MOVE
    return 0;
}

static void serve_one(hconn *hc, const tern_http_request *head, size_t head_len)
{
    tern_http_server *s = hc->srv;
    tern_http_req r;
    tern_http_resp w;
    TERN_ASSERT(hc->cur == NULL);       /* one request at a time per conn */
    TERN_ASSERT(head_len > 0 && head_len <= hc->in_len - hc->in_pos);
    /* everything but the parameter and value arrays, which their counts guard */
    memset(&r, 0, offsetof(tern_http_req, param_names));
    r.nparams = r.nvalues = r.nowned = r.nctx_values = 0;
    r.ctx = NULL;
    r.conn = hc;
    r.head = *head;
    terminate_strings(&r.head);
    if (r.head.chunked && relocate_head(hc, &r.head, head_len) < 0) {
        hc->in_pos += head_len;
        tern__http_send_error(hc, 500, false);
        return;
    }
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
    hc->cur = &w;
    tern_conn_set_write_deadline(hc->c, s->o.write_timeout < 0 ? TERN_FOREVER : r.start + s->o.write_timeout);

    if (r.head.target_len == 1 && r.head.target[0] == '*') {
        /* OPTIONS * (the parser lets no other method through): about the
         * server, not a resource; as Go, 200 with no handler involved */
        tern_http_resp_set_header(&w, "Allow", "OPTIONS, GET, HEAD, POST, PUT, PATCH, DELETE");
        tern_http_resp_set_status(&w, 200);
    } else if (!tern__http_req_path_ok(&r)) {
        /* a bad escape, a NUL or bytes that are not UTF-8: no handler
         * could use it (nor should fail on it with a 500) */
        tern__http_refused(hc, 400, &r.head);
        tern_http_resp_error(&w, 400, NULL);     /* an unread body is drained below */
        atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
    } else if (r.max_body >= 0 && r.head.content_length > r.max_body) {
        /* refuse before reading a byte of it */
        hc->closing = true;
        hc->linger = true;
        w.close_after = true;
        tern__http_refused(hc, 413, &r.head);
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
                tern_http_resp_error(&w, tern_http_error_status(&r, rc), NULL);
            } else {
                hc->closing = true;     /* mid-stream: a truncated body, never a wrong one */
                w.done = true;
            }
        }
    }
    if (!can_drain(&r))
        hc->closing = true;
    if (hc->closing)
        w.close_after = true;
    if (!w.done)
        tern__http_resp_finish(&w);
    if (!hc->closing && !r.body_done) {
        /* the answer goes first: a client may wait for it before sending more */
        if (tern__http_flush_out(hc) < 0 || !drain_body(&r))
            hc->closing = true;
    }
    TERN_ASSERT(hc->cur == &w);
    hc->cur = NULL;
    tern__http_req_end(&r);
    tern__arena_reset(&hc->arena);
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    if (hc->out.len >= HTTP_STREAM_THRESHOLD)
        tern__http_flush_out(hc);
}

#define BURST_OUT 4096
#define BURST_SCRATCH 512
#define BURST_HDRS 128
#define BURST_ARENA 2048

/* Serve requests while they keep coming, with every buffer in this frame.
 * Returns 0 when the connection has been quiet for IDLE_RELEASE_NS (all
 * answers sent), <0 when it is to be closed.  Never inlined: its ~20 KB of
 * buffers must go with its frame, below the idle wait's stack pointer,
 * where tern_stack_trim and stack release can give them back (clang
 * inlined it into tern__http_serve_conn, whose frame then held them while
 * idle: 21.7 KB of stack kept per idle connection instead of ~600 B). */
#define BURST_H2 1      /* serve_burst: the client spoke HTTP/2 (*h2pre) */

__attribute__((noinline)) static int serve_burst(hconn *hc, bool have_bytes, tern__growbuf *h2pre)
{
    tern_http_server *s = hc->srv;
    char in[HTTP_IN_INITIAL];
    char out[BURST_OUT];
    char scratch[BURST_SCRATCH];
    tern_http_header hdrs[BURST_HDRS];
    _Alignas(16) char arena_mem[sizeof(tern__arena_chunk) + BURST_ARENA];
    hc->in = in;
    hc->in_cap = sizeof in;
    hc->in_len = hc->in_pos = 0;
    hc->in_fixed = true;
    hc->out = (tern__growbuf){ out, 0, sizeof out, true };
    hc->scratch = (tern__growbuf){ scratch, 0, sizeof scratch, true };
    hc->hdrs_fixed = s->o.max_headers <= BURST_HDRS;
    hc->hdrs = hc->hdrs_fixed ? hdrs : malloc(s->o.max_headers * sizeof *hc->hdrs);
    tern__arena_chunk *ac = (tern__arena_chunk *)(void *)arena_mem;
    *ac = (tern__arena_chunk){ .next = NULL, .used = 0, .cap = BURST_ARENA };
    hc->arena = (tern__arena){ ac, ac };
    tern_http_limits lim = { .max_request_line = s->o.max_request_line,
                             .max_head = s->o.max_header_bytes };
    int64_t idle_deadline = 0;
    int rc = hc->hdrs ? 0 : -ENOMEM;
    while (rc == 0) {
        if (hc->io_error) {
            rc = hc->io_error;
            break;
        }
        if (hc->in_pos == hc->in_len) {
            hc->in_pos = hc->in_len = 0;
            if (tern__http_flush_out(hc) < 0 || hc->closing) {
                rc = -1;
                break;
            }
            if (have_bytes) {
                have_bytes = false;
                if ((rc = read_more(hc, s->o.max_header_bytes)) < 0)
                    break;
            } else {
                int got = wait_hot(hc, &idle_deadline);
                if (got <= 0) {
                    rc = got;   /* 0: quiet, go idle; <0: close */
                    hc->idle_until = idle_deadline;
                    break;
                }
            }
            idle_deadline = 0;
            /* the rest of the head must come within read_header_timeout */
            hc->head_start = tern_now();
            tern_conn_set_read_deadline(hc->c, s->o.read_header_timeout < 0
                                        ? TERN_FOREVER : hc->head_start + s->o.read_header_timeout);
        }
        if (hc->nreq == 0 && !s->o.h2.disable_h2c) {
            /* h2c with prior knowledge (RFC 9113 3.3): the preface, on
             * the same port; the bytes read so far go with it */
            int h2 = tern__h2_sniff(hc->in + hc->in_pos, hc->in_len - hc->in_pos);
            if (h2 == 1) {
                rc = tern__growbuf_append(h2pre, hc->in + hc->in_pos, hc->in_len - hc->in_pos) < 0
                     ? -ENOMEM : BURST_H2;
                break;
            }
            if (h2 == 0 && (rc = read_more(hc, s->o.max_header_bytes)) == 0)
                continue;
            if (rc < 0)
                break;
        }
        tern_http_request head, *h = &head;
        h->headers = hc->hdrs;
        h->max_headers = s->o.max_headers;
        h->method_len = h->target_len = 0;  /* what a refusal reports when unparsed */
        TERN_ASSERT(hc->in_pos < hc->in_len && hc->in_len <= hc->in_cap);
        int n = tern_http_parse_request(hc->in + hc->in_pos, hc->in_len - hc->in_pos, h, &lim);
        TERN_ASSERT(n == TERN_HTTP_INCOMPLETE || n == TERN_HTTP_BAD ||
                    (n > 0 && (size_t)n <= hc->in_len - hc->in_pos));
        if (n == TERN_HTTP_INCOMPLETE) {
            if ((rc = tern__http_flush_out(hc)) < 0)
                break;
            rc = read_more(hc, s->o.max_header_bytes);
            /* (read_more may have moved the buffer: h points into the old one) */
            if (rc == -EMSGSIZE) {
                tern__http_refused(hc, 431, NULL);
                tern__http_send_error(hc, 431, false);
            } else if (rc == -ETIMEDOUT && hc->in_len > hc->in_pos) {
                tern__http_refused(hc, 408, NULL);
                tern__http_send_error(hc, 408, false);
            }
            continue;
        }
        if (n == TERN_HTTP_BAD) {
            atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
            tern__http_refused(hc, h->status ? h->status : 400, h);
            tern__http_send_error(hc, h->status ? h->status : 400, false);
            rc = -1;
            break;
        }
        serve_one(hc, h, (size_t)n);
        TERN_ASSERT(hc->in_pos <= hc->in_len && hc->cur == NULL);
        if (hc->closing)
            rc = -1;    /* nothing after a closing answer, even if pipelined */
        else if (hc->in_pos < hc->in_len) { /* a pipelined head: its own timeout */
            hc->head_start = tern_now();
            tern_conn_set_read_deadline(hc->c, s->o.read_header_timeout < 0
                                        ? TERN_FOREVER : hc->head_start + s->o.read_header_timeout);
        }
    }
    tern__http_flush_out(hc);
    if (!hc->in_fixed)
        free(hc->in);
    hc->in = NULL;
    hc->in_cap = hc->in_len = hc->in_pos = 0;
    tern__growbuf_free(&hc->out);
    tern__growbuf_free(&hc->scratch);
    if (!hc->hdrs_fixed)
        free(hc->hdrs);
    hc->hdrs = NULL;
    tern__arena_free(&hc->arena);
    return rc;
}

/* After a refusal the client may still be sending (a body over the limit,
 * an endless head): closing with its bytes unread makes the kernel send a
 * reset, which can destroy our answer in the client's receive buffer
 * before it is read.  So, as nginx does, end our side, then read and drop
 * what comes, bounded in bytes and time, before closing. */
/* Never inlined, for serve_burst's reason: its 4 KiB buffer in the
 * caller's frame would sit above every idle wait's stack pointer. */
__attribute__((noinline)) static void linger_close(hconn *hc)
{
    if (hc->io_error || tern_conn_close_write(hc->c) < 0)
        return;
    tern_conn_set_read_deadline(hc->c, tern_now() + HTTP_LINGER_NS);
    char buf[4096];
    size_t total = 0;
    while (total < HTTP_LINGER_MAX) {
        ssize_t n = tern_conn_read(hc->c, buf, sizeof buf, NULL);
        if (n <= 0)
            break;      /* the client's end, a reset, the deadline, or shutdown */
        total += (size_t)n;
    }
}

/* HTTPS: the handshake comes first, within read_header_timeout.  It
 * counts as idle, as the wait for a first request does: a graceful
 * shutdown closes a connection still shaking hands. */
static int tls_handshake(hconn *hc)
{
    tern_http_server *s = hc->srv;
    int64_t t = s->o.read_header_timeout;
    tern_conn_set_read_deadline(hc->c, t < 0 ? TERN_FOREVER : tern_now() + t);
    atomic_store(&hc->state, CONN_IDLE);
    atomic_fetch_sub_explicit(&s->nactive, 1, memory_order_relaxed);
    int rc = atomic_load(&s->shutting_down) ? -ECANCELED : tern_tls_accept(hc->c, hc->tls, NULL);
    atomic_fetch_add_explicit(&s->nactive, 1, memory_order_relaxed);
    atomic_store(&hc->state, CONN_ACTIVE);
    return rc;
}

int tern__http_serve_conn(void *arg)
{
    hconn *hc = arg;
    bool first = true;
    if (hc->tls && tls_handshake(hc) < 0) {
        tern__http_conn_gone(hc->srv, hc);
        return 0;
    }
    tern__growbuf h2pre = { 0 };
    const char *alpn = hc->tls ? tern_tls_alpn(hc->c) : NULL;
    if (alpn && strcmp(alpn, "h2") == 0) {
        /* HTTP/2 by ALPN: the client's preface is the session's first bytes */
        tern__h2_serve_conn(hc, NULL);
    } else {
        for (;;) {
            if (wait_idle(hc, first) < 0)
                break;
            first = false;
            int rc = serve_burst(hc, true, &h2pre);
            if (rc == BURST_H2) {
                /* the burst's buffers go before the session starts */
                tern_stack_trim();
                tern__h2_serve_conn(hc, &h2pre);
                break;
            }
            if (rc < 0)
                break;
            tern_stack_trim();      /* the burst's buffers and the handlers' frames */
        }
    }
    tern__growbuf_free(&h2pre);
    if (hc->linger)
        linger_close(hc);
    tern__http_conn_gone(hc->srv, hc);
    return 0;
}
