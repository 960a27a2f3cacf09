/*
 * h2_internal.h - the HTTP/2 server (RFC 9113) on nghttp2: the structs
 * shared by its files and the points where the HTTP/1.1 request and
 * response code divert to it.
 *
 *   h2_conn.c    a connection: the nghttp2 session, its reader (the
 *                connection's coroutine) and its writer coroutine
 *   h2_frames.c  nghttp2's callbacks: streams begin, headers, data, close
 *   h2_stream.c  a stream's handler coroutine: the request it sees, the
 *                server's answers (431, 413, 400), the end of a stream
 *   h2_body.c    request bodies and trailers, with flow control
 *   h2_resp.c    response heads, bodies (the data provider), trailers
 *   h2_mem.c     the session's allocator: freed blocks kept per connection
 *
 * Concurrency.  The session is not thread-safe and handlers run on any
 * worker thread, so everything about a connection (the session, every
 * stream's queues and flags) is under the connection's mutex `mu`, which
 * is never held across a network call:
 *   - the reader reads from the socket, then under mu feeds the bytes to
 *     nghttp2_session_mem_recv (the callbacks run there);
 *   - the writer waits on `wcond` for output, serializes frames under mu
 *     (nghttp2_session_mem_send, whose data provider copies out of the
 *     streams' queues), then writes them without the lock;
 *   - a handler takes mu to move request bytes out of its stream's input
 *     queue (giving the window back: nghttp2_session_consume) and to move
 *     response bytes into its output queue (nghttp2_session_resume_data),
 *     and waits on its stream's `cond` when it has to.
 * Whoever changes what the session has to send signals wcond.
 *
 * Memory.  A stream's input queue holds at most its receive window (the
 * window is only given back as the handler reads: NO_AUTO_WINDOW_UPDATE),
 * and the connection's window bounds the sum.  A stream's output queue is
 * refilled only while it holds less than H2_OUT_HIGH bytes: a client that
 * stops reading, by flow control or by not reading the socket, parks the
 * handler until write_timeout, not the server's memory.  The bytes queued
 * on a connection are bounded too (H2_CONN_OUT_MAX): a client with 250
 * stalled streams gets no more memory than one with a few.  Before that
 * a response buffers in its own vhc->out: up to 64 KiB until committed
 * (as over HTTP/1.1: Content-Length, and the gzip middleware), then
 * H2_FLUSH_AT at a time.
 *
 * Lifetime.  A stream is referenced by the session (from its first
 * HEADERS until on_stream_close) and by its handler coroutine (from spawn
 * to return); it is freed, under mu, by whichever lets go last.  A
 * handler whose response is all queued returns at once ("detached", see
 * can_detach in h2_stream.c) rather than wait for the writer to send it;
 * the stream keeps the response's arena (its trailers) until the session
 * lets go, and the reader resets it at write_timeout as a waiting handler
 * would have.  Detached streams are open streams to nghttp2, so
 * MAX_CONCURRENT_STREAMS bounds them.  The connection outlives its
 * streams: its coroutine waits for every handler and for the writer
 * before it frees the session.
 */
#ifndef TERN_HTTP_H2_INTERNAL_H
#define TERN_HTTP_H2_INTERNAL_H

#include <nghttp2/nghttp2.h>

#include "http/server_internal.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_DEFAULT_MAX_STREAMS 100
#define H2_DEFAULT_STREAM_WINDOW (256 * 1024)
#define H2_DEFAULT_CONN_WINDOW (1024 * 1024)
#define H2_DEFAULT_MAX_CONTINUATIONS 8
#define H2_OUT_HIGH (64 * 1024)         /* a stream's queued response bytes, at most */
#define H2_CONN_OUT_MAX (512 * 1024)    /* the connection's, all streams together */
#define H2_FLUSH_AT (16 * 1024)         /* a committed response's bytes per hand-over */
#define H2_WRITE_BATCH (64 * 1024)      /* frames serialized per socket write */
#define H2_READ_BUF (16 * 1024)
/* While streams are open the reader wakes this often to notice a
 * shutdown (to send GOAWAY) with no frame arriving. */
#define H2_POLL_NS (100 * 1000 * 1000LL)
/* Without streams this long, a connection gives its buffers back (at
 * once while it has carried fewer than H2_HOT_AFTER streams). */
#define H2_IDLE_RELEASE_NS (1000 * 1000 * 1000LL)
#define H2_HOT_AFTER 64

/* A stream's first request-body and response buffers are this small
 * (tern__h2_buf_start), not the 4 KiB a growbuf starts with: a unary
 * gRPC call or a small answer holds tens of bytes each way, and a server
 * with a thousand streams open held 8 KiB of mostly empty buffers for
 * each (bench/RESULTS.md, 2026-12-06).  They double from here. */
#define H2_FIRST_BUF 256

#define H2_MAX_GAPS 8
#define H2_MEM_CLASSES 6

typedef struct h2_conn h2_conn;

struct h2_conn {
    hconn *hc;                      /* the server's connection */
    tern_http_server *srv;
    nghttp2_session *sess;
    tern_mutex mu;                  /* everything below, and every stream */
    tern_cond wcond;                /* the writer: output to send, or the end */
    tern_cond flushed;              /* the reader: the writer has sent all there was */
    tern_cond room;                 /* handlers: the connection's output queue shrank */
    size_t queued;                  /* bytes in the streams' output queues */
    h2_stream *streams;             /* the session's and handlers' streams */
    h2_stream *free_streams;        /* done with, their memory kept (h2_stream.c) */
    uint32_t nfree_streams;
    void *mem_free[H2_MEM_CLASSES]; /* nghttp2's freed blocks, kept (h2_mem.c) */
    uint32_t mem_nfree[H2_MEM_CLASSES];
    bool mem_starting;              /* inside nghttp2_session_server_new3 */
    char *framebuf;                 /* nghttp2's outbound frame buffer (h2_mem.c) */
    size_t framebuf_len;
    char *maptab;                   /* nghttp2's stream map's first table (h2_mem.c) */
    uint32_t nstreams;              /* listed streams */
    uint32_t nhandlers;             /* handler coroutines running */
    uint64_t nstarted;              /* handlers ever started */
    uint32_t ndetached;             /* streams whose handler left before the
                                       response was out (h2_stream.c) */
    int64_t next_sweep;             /* when the reader next looks for detached
                                       streams past their write deadline */
    tern_waitgroup handlers;
    tern_waitgroup writer;
    bool dead;                      /* no more I/O: handlers give up, the writer leaves */
    bool goaway_sent;
    bool writer_blocked;            /* the writer is inside a socket write */
    bool writer_idle;               /* the writer waits with nothing it can send, or
                                       has left; cleared by every wake */
    bool writer_running;            /* a writer coroutine exists */
    bool reader_reading;            /* the reader is (about to be) parked in a read */
    bool reader_cold;               /* ... in its cold wait (memory given back) */
    bool writer_final;              /* dead, and the last writer has left */
    int io_error;                   /* the first read/write error */
    int64_t last_active;            /* when the last stream ended (idle timeout) */
    /* Stream ids a client skipped (RFC 9113 5.1.1: they can never be
     * opened): HEADERS on one is a connection error, which nghttp2 cannot
     * tell from HEADERS on a closed stream, which it ignores. */
    int32_t max_opened;
    int32_t gap_lo[H2_MAX_GAPS], gap_hi[H2_MAX_GAPS];
    unsigned ngaps;
};

struct h2_stream {
    h2_conn *h2c;
    int32_t id;
    h2_stream *prev, *next;         /* h2c->streams */
    hconn vhc;                      /* the request's own hconn: arena, out, scratch */
    /* the request head, built from the HEADERS frames in vhc.arena */
    tern_http_request head;
    tern_http_header *hdrs;
    size_t hdrs_cap;
    size_t hdr_bytes;               /* decoded size, as RFC 9113 6.5.2 counts it */
    const char *authority;
    bool too_large;                 /* over max_headers / max_header_bytes: 431 */
    bool bad;                       /* malformed beyond what nghttp2 checks: 400 */
    bool has_host;
    /* request body: filled by the reader, read by the handler */
    tern__growbuf in;
    size_t in_off;
    bool in_eof;                    /* END_STREAM received */
    bool has_body;                  /* no END_STREAM on the request's HEADERS */
    tern_http_header *trailers;     /* malloc'd, strings after the array */
    size_t ntrailers;
    size_t trailer_bytes;
    /* response: filled by the handler, sent by the writer */
    tern__growbuf out;
    size_t out_off;
    bool out_done;                  /* the handler wrote its last byte */
    bool submitted;                 /* HEADERS submitted (nghttp2_submit_response) */
    bool deferred;                  /* the data provider returned DEFERRED */
    nghttp2_nv *tnva;               /* response trailers, in vhc.arena */
    size_t ntnva;
    bool has_provider;              /* submitted with a data provider (a body follows) */
    bool abandoned;                 /* the handler has gone: the provider resets */
    bool eof_sent;                  /* END_STREAM sent */
    uint32_t rst_code;              /* the handler failed mid-response: reset with this */
    int64_t body_deadline;          /* read_body_timeout, from the first read */
    int64_t write_deadline;         /* write_timeout, from the request's start */
    /* life */
    bool running;                   /* a handler coroutine holds it */
    bool detached;                  /* the handler left with its response all
                                       queued, not yet sent */
    bool closed;                    /* the session has let it go */
    uint32_t close_error;           /* its RST_STREAM / GOAWAY code, when closed */
    tern_cond cond;                 /* the handler: input, output space, or the end */
    tern_ctx *ctx;                  /* the request's context: cancelled by a reset;
                                       made on first use (tern__h2_stream_ctx) */
};

/* h2_conn.c */
/* Whether p[0..n) opens with the client preface: 1 yes, 0 so far (read
 * more), -1 no. */
int tern__h2_sniff(const char *p, size_t n);
/* `pre` (or NULL): bytes already read, the session's first; freed once
 * the session has taken them. */
int tern__h2_serve_conn(hconn *hc, tern__growbuf *pre);
/* Run a session over hc->c until it ends; the connection stays open (the
 * caller closes it).  Used by tern__h2_serve_conn and the fuzz target. */
int tern__h2_session_run(hconn *hc, tern__growbuf *pre);
/* Under mu: the session may have something to send. */
void tern__h2_wake_writer(h2_conn *h2c);

/* An empty heap buffer's first block: room for n bytes, at least
 * H2_FIRST_BUF, in 256-byte steps (a no-op when b has a block).  0 or
 * -ENOMEM. */
int tern__h2_buf_start(tern__growbuf *b, size_t n);

/* h2_mem.c: the allocator for h2c's session (nghttp2 copies the struct),
 * and giving back what it keeps (under mu, or once the session is gone). */
nghttp2_mem tern__h2_mem(h2_conn *h2c);
void tern__h2_mem_drain(h2_conn *h2c);
/* Under mu, the connection idle: give the pages of nghttp2's outbound
 * frame buffer back to the kernel when nothing in it is still to be sent
 * (h2_mem.c).  Whether it did. */
bool tern__h2_mem_idle(h2_conn *h2c);
/* Frame buffers given back so, and the bytes of h2_mem.c's mapped blocks
 * now (for tests: tern_layer_view). */
extern _Atomic unsigned long tern__h2_framebufs_released;
extern _Atomic size_t tern__h2_page_bytes;

/* h2_frames.c: the session's callbacks */
void tern__h2_callbacks(nghttp2_session_callbacks *cb);

/* h2_stream.c */
h2_stream *tern__h2_stream_new(h2_conn *h2c, int32_t id);
/* Under mu: the session let go of st (on_stream_close). */
void tern__h2_stream_closed(h2_stream *st, uint32_t error_code);
/* Under mu: the request head is complete; start its handler. */
int tern__h2_stream_start(h2_stream *st);
/* Under mu, in the reader: reset detached streams whose response is not
 * out by their write deadline (what settle does for a waiting handler). */
void tern__h2_sweep_detached(h2_conn *h2c, int64_t now);
/* Under mu: free the streams kept for reuse. */
void tern__h2_stream_cache_drain(h2_conn *h2c);
/* Under mu: free st once nobody holds it (neither session nor handler). */
void tern__h2_stream_release(h2_stream *st);
/* Under mu: wait on st->cond until woken or `deadline`; 0, -ETIMEDOUT,
 * -ECANCELED (the request's context). */
int tern__h2_stream_wait(h2_stream *st, int64_t deadline);
/* The stream's context, made on first use (most requests never need one:
 * a handler that neither waits nor asks for it); cancelled at once if the
 * stream was reset or the connection died before.  NULL on ENOMEM.  Under
 * mu; tern__h2_req_ctx takes it. */
tern_ctx *tern__h2_stream_ctx(h2_stream *st);
tern_ctx *tern__h2_req_ctx(tern_http_req *r);
/* The same on another of the connection's conds (room). */
int tern__h2_stream_wait_on(h2_stream *st, tern_cond *cond, int64_t deadline);
/* The same, for the handler's own reads and writes: bounded by the
 * request's current context (tern_http_req_set_ctx: a gRPC call's
 * deadline, a timeout middleware's) rather than the stream's. */
int tern__h2_handler_wait_on(h2_stream *st, tern_cond *cond, int64_t deadline);

/* h2_body.c: the request side (divert points in request.c) */
ssize_t tern__h2_body_read(tern_http_req *r, void *buf, size_t n);
const char *tern__h2_req_trailer(tern_http_req *r, const char *name);
/* Under mu: DATA for st arrived (on_data_chunk_recv). */
void tern__h2_body_recv(h2_stream *st, const uint8_t *data, size_t len);
/* Under mu: give back the window of what the handler will never read. */
void tern__h2_body_discard(h2_stream *st);

/* h2_resp.c: the response side (divert points in response.c) */
int tern__h2_resp_commit(tern_http_resp *w);
int tern__h2_resp_finish(tern_http_resp *w);
int tern__h2_flush(hconn *vhc);
int tern__h2_resp_send_file(tern_http_resp *w, int fd, off_t offset, size_t len);
/* Under mu: wait until the response has gone out, the stream closed, or
 * the deadline; then end the stream (RST_STREAM when it must). */
void tern__h2_resp_settle(h2_stream *st, int64_t deadline);

#endif
