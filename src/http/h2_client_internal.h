/*
 * h2_client_internal.h - the HTTP/2 side of tern_http_client.
 *
 * An origin that speaks HTTP/2 (h2c with prior knowledge today; "h2" by
 * ALPN once TLS is in: see conn_start in h2_client_conn.c) keeps a list
 * of connections (tern__hc_host.h2).
 * Each connection multiplexes requests up to the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS; when every one is full another is
 * dialled.  The files:
 *
 *   h2_client_session.c  the nghttp2 session and its callbacks: frames in
 *                        and out, stream state, killing a connection.
 *                        No I/O, so the fuzzer drives it directly.
 *   h2_client_conn.c     dialling, the reader and writer coroutines, the
 *                        per-origin list and its slots, teardown.
 *   h2_client_stream.c   one request: HEADERS out, the head in, the body
 *                        read with flow control, cancellation, release,
 *                        and the retry of a request the peer did not
 *                        process (GOAWAY, REFUSED_STREAM).
 *
 * Who owns the session: a mutex per connection (mu), not one coroutine.
 * The reader feeds nghttp2_session_mem_recv, the writer drains
 * nghttp2_session_mem_send, and each request's coroutine submits its
 * HEADERS, consumes window as it reads and resets its stream on
 * cancellation, each under mu, which is never held across a park on the
 * network (only tern_cond_wait releases it).  A lock rather than a
 * session-owning coroutine because every caller operation is a few
 * microseconds of nghttp2 work: a lock costs one CAS uncontended, while
 * handing each operation to an owner coroutine would cost a message and
 * two context switches per read.  The reader and writer are separate so
 * that a peer slow to read our output never stops us reading its frames
 * (its WINDOW_UPDATEs, its RST_STREAMs).
 *
 * Lock order: client->mu and a connection's mu are never held together.
 * What the pool reads without mu (ready, goaway, dead, max_streams) is
 * atomic.
 */
#ifndef TERN_HTTP_H2_CLIENT_INTERNAL_H
#define TERN_HTTP_H2_CLIENT_INTERNAL_H

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "http/client_internal.h"

/* Our SETTINGS_INITIAL_WINDOW_SIZE: bytes a peer may send on one stream
 * ahead of the reader; the buffered body of a stream never exceeds it. */
#define TERN__H2C_STREAM_WINDOW (256 * 1024)
/* The connection's receive window: streams whose readers lag hold at most
 * their stream window each, so sixty-four can stall before others wait. */
#define TERN__H2C_CONN_WINDOW (16 * 1024 * 1024)
/* A request the peer did not process is tried this many times in all. */
#define TERN__H2C_ATTEMPTS 3

/* Buckets of the stream-by-id table: a connection holds about as many
 * streams as its peer allows (100 is common). */
#define TERN__H2C_BUCKETS 64
#define TERN__H2C_PIECE (64 * 1024)   /* a streamed request body, read this much at a time */

typedef struct tern__h2c_stream tern__h2c_stream;
typedef struct tern__h2c_conn tern__h2c_conn;

struct tern__h2c_stream {
    tern__h2c_stream *prev, *next;  /* in conn->streams (mu) */
    tern__h2c_stream *hnext;        /* in conn->bucket[] (mu) */
    tern__h2c_conn *conn;
    int32_t id;                 /* 0 until submitted */
    tern_cond cond;             /* broadcast on every change below (mu) */
    /* the request body: the caller's memory during tern_http_client_do,
     * a copy of the unsent rest after it returns */
    const uint8_t *body;
    size_t body_len, body_off;
    uint8_t *body_own;
    /* a streamed body (body_read): the requesting coroutine pumps it into
     * body_own piece by piece, the data provider sends from there and
     * defers while it is empty (body_own, body_len, body_off as above) */
    bool streaming;
    bool body_eof;              /* body_read said 0: the last piece is in */
    bool deferred;              /* the provider is waiting: resume it */
    /* the response head: name\0value\0 ..., then the trailers */
    int status;                 /* of the final head; 0 before */
    tern__buf head, trailers;
    size_t nhead, ntrailers;
    /* DATA received, not yet read: data[dpos..dlen) */
    uint8_t *data;
    size_t dpos, dlen, dcap;
    bool headers_sent;          /* our HEADERS went out: the peer may act on it */
    bool got_head;              /* the final (non-1xx) head is complete */
    bool eof;                   /* END_STREAM received */
    bool closed;                /* over on the wire (closed, reset, or the conn died) */
    int err;                    /* sticky; -EAGAIN: not processed, may be retried */
};

struct tern__h2c_conn {
    tern__h2c_conn *next;       /* in host->h2 (client->mu) */
    tern_http_client *client;
    tern__hc_host *host;
    tern_conn *conn;            /* set under client->mu; NULL while dialling
                                   and in the fuzz harness */
    tern_mutex mu;              /* guards everything below up to the atomics */
    nghttp2_session *session;
    tern_cond wcond;            /* the writer waits for output here */
    tern__h2c_stream *streams;  /* every stream a response still holds */
    /* the same streams by id: every frame looks its stream up */
    tern__h2c_stream *bucket[TERN__H2C_BUCKETS];
    int err;                    /* why it died */
    bool pool_news;             /* ready / goaway changed: wake the origin's waiters */
    /* read by the pool under client->mu, written under mu */
    atomic_bool ready;          /* the peer's first SETTINGS arrived */
    atomic_bool goaway;         /* no new streams (GOAWAY either way, ids used up) */
    atomic_bool dead;
    atomic_uint max_streams;    /* the peer's SETTINGS_MAX_CONCURRENT_STREAMS */
    atomic_int refs;            /* the pool's, each driver's, each stream's */
    int nreq;                   /* slots reserved by requests (client->mu) */
    int64_t idle_since;         /* when nreq last fell to 0 (client->mu) */
    bool in_pool;               /* on host->h2 (client->mu) */
};

/* ---- h2_client_session.c (mu held for all but _init / _fini) ---------- */

/* Make h's nghttp2 session and queue our SETTINGS and window.  0 or
 * -ENOMEM. */
int tern__h2c_session_init(tern__h2c_conn *h, size_t max_header);
void tern__h2c_session_fini(tern__h2c_conn *h);
/* Feed bytes read from the peer.  0, or the conn is killed (-EPROTO for
 * a protocol error) and that is returned. */
int tern__h2c_session_recv(tern__h2c_conn *h, const uint8_t *p, size_t n);
/* Append the frames nghttp2 wants sent to out, up to about max bytes.  0,
 * or -errno when the session failed (the conn is killed). */
int tern__h2c_session_send(tern__h2c_conn *h, tern__buf *out, size_t max);
/* Nothing more to read or write (GOAWAY and every stream done). */
bool tern__h2c_session_done(tern__h2c_conn *h);
/* Mark h dead with err, end every open stream (-EAGAIN for those whose
 * HEADERS never went out) and wake everyone; shuts the socket down so the
 * reader returns.  Idempotent. */
void tern__h2c_kill(tern__h2c_conn *h, int err);
/* The data provider's read_callback: the request body of stream id, as
 * the peer's window allows (looked up by id, so a released stream is
 * reset rather than read). */
ssize_t tern__h2c_read_body(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *source, void *ud);
/* Add s (its id set) to h->streams and the table; take it off. */
void tern__h2c_link(tern__h2c_conn *h, tern__h2c_stream *s);
void tern__h2c_unlink(tern__h2c_conn *h, tern__h2c_stream *s);
/* The stream with this id among h->streams, or NULL. */
tern__h2c_stream *tern__h2c_find(tern__h2c_conn *h, int32_t id);

/* ---- h2_client_conn.c -------------------------------------------------- */

/* A slot on a ready connection to the lease's origin: an existing one
 * with room, or a new one dialled (and, over TLS, handshaken) here.  0
 * (*out holds a reference and a slot) or -errno.  TERN__HC_SPEAK_H1: an
 * https origin whose server chose HTTP/1.1 by ALPN; *h1conn is then the
 * connection just handshaken for it (the caller's), or NULL. */
int tern__h2c_checkout(tern_http_client *c, const tern_http_url *u, const char *dial, tern_ctx *ctx,
                       tern__h2c_conn **out, tern_conn **h1conn);
/* Give back the slot and the reference checkout handed out. */
void tern__h2c_checkin(tern__h2c_conn *h);
void tern__h2c_unref(tern__h2c_conn *h);
/* tern_http_client_free: close every HTTP/2 connection and wait for their
 * coroutines to end. */
void tern__h2c_pool_free(tern_http_client *c);

/* ---- h2_client_stream.c ------------------------------------------------ */

/* Send hop on an HTTP/2 connection to its origin and wait for the final
 * response head, which is copied into r (status, fields, content
 * length); r->h2 then holds the stream for the body.  Requests the peer
 * did not process are retried on another connection.  0 or -errno; on
 * failure nothing is held.  TERN__HC_SPEAK_H1 as checkout, with
 * *h1conn (h1conn may be NULL for http:// origins). */
int tern__h2c_exchange(tern_http_client *c, tern_http_client_response *r,
                       tern__hc_hop *hop, tern_conn **h1conn);
/* The body, as tern_http_client_response_read. */
ssize_t tern__h2c_read(tern_http_client_response *r, void *buf, size_t n);
/* End r's stream (RST_STREAM CANCEL if it is still open) and free it. */
void tern__h2c_release(tern_http_client_response *r);
/* The trailer field called name once the body has ended, else NULL. */
const char *tern__h2c_trailer(const tern_http_client_response *r, const char *name);

#endif
