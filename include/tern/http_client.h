/*
 * tern/http_client.h - an HTTP/1.1 and HTTP/2 client for coroutines, with
 * a pool of keep-alive connections per host.
 *
 *     tern_http_client *c;
 *     tern_http_client_new(NULL, &c);
 *     tern_http_client_response *r;
 *     int rc = tern_http_client_get(c, "http://127.0.0.1:8080/x", &r, ctx);
 *     if (rc == 0) {
 *         const char *body; size_t len;
 *         if (tern_http_client_response_status(r) == 200 &&
 *             tern_http_client_response_body(r, 1 << 20, &body, &len) == 0)
 *             use(body, len);
 *         tern_http_client_response_free(r);   // the connection goes back to the pool
 *     }
 *     tern_http_client_free(c);
 *
 * A request waits on the network by parking its coroutine.  The context
 * given to tern_http_client_do / _get (tern/context.h; NULL: unbounded)
 * bounds all of it, including reading the body later with
 * tern_http_client_response_read / _body (the documented exception to
 * "ctx last": those calls are bounded by the ctx of the call that made
 * the response).  So that ctx must outlive the response.  Its deadline
 * bounds every parked read and write, and a cancellation is noticed
 * within 10 ms even while one is parked (see tern/net.h).
 *
 * Ownership: the client is the caller's (tern_http_client_free, after
 * every response); a response is the caller's (tern_http_client_response_
 * free), and strings it hands out live until then.  The request struct and
 * what it points to are only read during the call.  A NULL client or
 * response aborts with a message naming the function.
 *
 * The pool: connections are kept per "host:port" (with a picker, per
 * picked address: see tern_http_picker) and reused newest first.
 * A response gives its connection back when it is freed, and only if its
 * body was read to the end and both sides allow keep-alive; a response
 * freed early closes its connection (the unread rest could be anything).
 * An idle connection is dropped when it has been idle longer than
 * idle_timeout, when its server closed it or sent unasked-for bytes (both
 * looked at when it is taken from the pool), and by tern_http_client_free.
 *
 * The classic keep-alive race: a server may close an idle connection just
 * as a request is written to it.  A request that fails on a reused
 * connection before any byte of the response arrived is sent once more on
 * a new connection, if its method is idempotent (GET, HEAD, PUT, DELETE,
 * OPTIONS, TRACE); other methods get the error.
 *
 * Errors (negative errno; tern_strerror explains them), for each way a
 * request can go wrong:
 *   -EINVAL          the caller's: a bad URL, method (not a token), header
 *                    name (not a token) or value (CR, LF or another
 *                    control character but tab), a name without a value,
 *                    a Content-Length or Transfer-Encoding header (the
 *                    framing is the client's), body NULL with body_len > 0
 *   -EKEYREJECTED, -EKEYEXPIRED, -EPROTO, ...   an https:// server failed
 *                    the TLS handshake or its verification (tern/tls.h
 *                    lists the codes); tern_http_client_last_tls_error
 *                    says what failed ("name mismatch", "unknown issuer")
 *   -ECONNREFUSED, -ENOENT, -ENETUNREACH, ...   from tern_conn_dial
 *   -EPIPE or -ECONNRESET  the server went away while the request was
 *                    being written (whichever the kernel reports)
 *   -ECONNRESET      the server closed the connection before the response
 *                    ended: before its head was complete, or inside its
 *                    body (shorter than its Content-Length, or a chunked
 *                    body cut before its last chunk); also a reset
 *   -EBADMSG         a malformed status line, header field or framing
 *                    (what tern_http_parse_response refuses: see
 *                    http_parse.h), more than TERN_HTTP_CLIENT_MAX_HEADERS
 *                    fields, bad chunked framing, or a redirect's Location
 *                    that is not a URL
 *   -EPROTO          a 101 Switching Protocols nobody asked for
 *   -EMSGSIZE        a response head (1xx heads included) longer than
 *                    max_response_header; a body longer than the max given
 *                    to tern_http_client_response_body
 *   -ELOOP           more redirects than max_redirects
 *   -ETIMEDOUT       the ctx's deadline (or options.timeout) passed
 *   -ECANCELED       the context was cancelled
 *   -ENOMEM
 * Bytes where no more may be (a body after a HEAD answer, anything after
 * the end of a body) are not an error for the response at hand; its
 * connection is just not reused.
 * A status of 4xx or 5xx is not an error: it is a response.
 *
 * HTTP/2 (RFC 9113, through nghttp2): with options.h2c_prior_knowledge
 * every http:// request speaks HTTP/2 in clear text without asking first
 * (RFC 9113 3.3; a peer that only speaks HTTP/1.1 fails the request with
 * -EPROTO or -ECONNRESET).  Over https:// HTTP/2 is chosen by ALPN
 * (RFC 7301): the default TLS config offers {"h2", "http/1.1"}, a
 * caller's config offers its own alpn list, and an origin whose handshake
 * agrees on "h2" gets every later request on its HTTP/2 connections;
 * otherwise it stays HTTP/1.1 as above (options.disable_h2 turns this
 * off).  An origin's first requests wait for its first handshake, so a
 * burst opens one connection.  The same calls and the same response work;
 * tern_http_client_response_proto tells which was spoken.  Per host:port,
 * one connection carries concurrent requests from any number of
 * coroutines as streams, up to the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS; a request beyond that opens another
 * connection (within max_conns_per_host, beyond which it waits for a
 * stream).  A request's ctx ending resets only its stream (RST_STREAM
 * CANCEL), as does freeing a response before its body ended; the
 * connection keeps serving the others.  The body is flow-controlled by
 * reading: the server may send 256 KiB per stream ahead of the reader.
 * A request the server did not process (above a GOAWAY's last stream,
 * or refused with REFUSED_STREAM) is sent again on a new connection,
 * whatever its method, up to three times in all.  An HTTP/2 connection
 * without streams for idle_timeout is closed by the next request to its
 * host (max_idle_per_host does not apply).  Errors particular
 * to HTTP/2: -EPROTO for a protocol error (the peer's frames or a GOAWAY
 * or RST_STREAM with PROTOCOL_ERROR and the like), -ECONNRESET when the
 * connection ended or the stream was reset (INTERNAL_ERROR, or cut short
 * without one), -EBUSY for ENHANCE_YOUR_CALM, -EAGAIN when every attempt
 * was refused unprocessed.  Response trailers (HTTP/2 only) come from
 * tern_http_client_response_trailer.
 *
 * Threads: a client is shared freely by any number of coroutines; a
 * response belongs to one coroutine at a time.  Functions that may do I/O
 * or wait (do, get, response_read/body/free, client_free) must be called
 * from a coroutine (inside tern_run); the others from anywhere.
 */
#ifndef TERN_HTTP_CLIENT_H
#define TERN_HTTP_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include "tern/context.h"
#include "tern/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Header fields a response may have; more is -EBADMSG. */
#define TERN_HTTP_CLIENT_MAX_HEADERS 128

typedef struct tern_http_client tern_http_client;
typedef struct tern_http_client_response tern_http_client_response;

/* A picker: balancing by another layer (discovery's tern_balancer plugs
 * in through tern_balancer_http_picker).  A client with a picker sends a
 * request for its picker_host (any port; every request when that is
 * NULL) to the address pick names ("host:port", "[v6]:port"): the
 * connection goes there, from that address's own pool, while Host (or
 * :authority) and TLS's server name stay the URL's, so one logical name
 * spreads over its replicas.  done follows each pick once, when the
 * response head arrived or the exchange failed, with the time since the
 * pick and how it went:
 *   TERN_HTTP_PICK_OK      a response other than 5xx (a 4xx is an answer)
 *   TERN_HTTP_PICK_FAILED  a 5xx, or the address's fault: refused, reset,
 *                          a TLS or protocol failure, a response cut short
 *   TERN_HTTP_PICK_LOCAL   the caller's: its ctx ended, a bad request
 * (the body is read later, and its time is not counted).  A request whose
 * connection could not be made (-ECONNREFUSED, -EHOSTUNREACH,
 * -ENETUNREACH: nothing was sent) is picked again, three picks in all.
 * Each hop of a redirect to picker_host is picked anew.  pick runs in the
 * caller's coroutine and must not block; it returns 0 with out->addr set
 * (valid until done), or -errno, which the request fails with (-ENOENT:
 * no endpoints).  out->state is the picker's. */
typedef enum tern_http_pick_outcome {
    TERN_HTTP_PICK_OK = 0,
    TERN_HTTP_PICK_FAILED,
    TERN_HTTP_PICK_LOCAL,
} tern_http_pick_outcome;

typedef struct tern_http_pick {
    const char *addr;
    uint64_t state[4];
} tern_http_pick;

typedef struct tern_http_picker {
    int (*pick)(void *arg, const void *key, size_t key_len, tern_http_pick *out);
    void (*done)(void *arg, tern_http_pick *p, int64_t latency, tern_http_pick_outcome outcome);
} tern_http_picker;

typedef struct tern_http_client_options {
    int max_idle_per_host;      /* idle connections kept per host; 0: 16;
                                   < 0: none (every request sends
                                   "Connection: close") */
    int max_conns_per_host;     /* connections per host, idle or in use;
                                   0: no limit.  Beyond it a request waits
                                   for one, bounded by its context */
    int64_t idle_timeout;       /* ns an idle connection is kept; 0: 90 s */
    int64_t timeout;            /* ns for each request, body reading
                                   included; 0: none.  With a context
                                   deadline too, the earlier one wins */
    int max_redirects;          /* 0: 3xx responses are returned, not
                                   followed (redirects are opt-in) */
    size_t max_response_header; /* bytes of response head; 0: 64 KiB */
    const char *user_agent;     /* copied; NULL: "tern" */
    tern_tls_config *tls;       /* https:// URLs: a client config (trust,
                                   client certificate, ALPN), borrowed: keep
                                   it until the client is freed.  NULL: one
                                   that verifies against the system's store,
                                   made on the first https:// request.  SNI
                                   and verification use the URL's host.
                                   Connections are pooled by scheme, host
                                   and port. */
    bool h2c_prior_knowledge;   /* http:// requests speak HTTP/2 (h2c),
                                   without Upgrade or fallback */
    bool disable_h2;            /* https:// speaks HTTP/1.1 only: the
                                   default TLS config offers no ALPN, and a
                                   caller's config that gets "h2" fails the
                                   request with -EPROTO */
    const tern_http_picker *picker; /* NULL: URLs are dialled as they are;
                                   else see tern_http_picker (borrowed, as
                                   picker_arg: both outlive the client) */
    void *picker_arg;
    const char *picker_host;    /* the logical name whose requests are
                                   picked ("orders"), copied; NULL: all */
} tern_http_client_options;

/* A client; o may be NULL for the defaults.  0, -EINVAL (a negative
 * timeout or limit, a picker without pick or done), -ENOMEM.  Callable
 * from any thread. */
int tern_http_client_new(const tern_http_client_options *o, tern_http_client **out);

/* Close the idle connections and release the client.  Every response must
 * have been freed before (a programmer error otherwise: aborts). */
void tern_http_client_free(tern_http_client *c);

typedef struct tern_http_client_request {
    const char *method;         /* NULL: GET, or POST when there is a body */
    const char *url;            /* "http://host[:port]/path?query" */
    const char *const *headers; /* NULL or NULL-terminated: name, value,
                                   name, value, ...  "Host" and
                                   "User-Agent" replace tern's own
                                   (over HTTP/2 Host becomes
                                   :authority), so a proxy can pass
                                   its client's Host on; a redirect to
                                   another origin drops Host,
                                   Authorization, Proxy-Authorization
                                   and Cookie */
    const void *body;           /* sent with Content-Length (also when
                                   body_len is 0 and body is not NULL;
                                   POST, PUT and PATCH without a body send
                                   "Content-Length: 0") */
    size_t body_len;
    /* A body streamed instead of body (which must then be NULL): read
     * with body_read(buf, n, body_arg) as it is written, until it returns
     * 0 (the end) or -errno (the request fails with that error, its
     * connection closed).  Sent with Content-Length: body_read_len when
     * >= 0 (a reader that ends early or runs over fails the request with
     * -EPIPE), chunked when < 0.  A proxy's: the body is never held whole.
     * Such a request is not sent again once the reader was called (the
     * stale-connection retry; a redirect is not followed: the 3xx is
     * returned).  Over HTTP/1.1 and h2c (h2c_prior_knowledge: DATA frames
     * as the peer's window allows, a 64 KiB piece read at a time, no
     * content-length when < 0); an https origin gets HTTP/1.1. */
    ssize_t (*body_read)(void *buf, size_t n, void *body_arg);
    void *body_arg;
    int64_t body_read_len;
    /* The affinity key for the client's picker (a user id, a session: a
     * hash policy sends one key to one endpoint).  NULL: none. */
    const void *affinity_key;
    size_t affinity_key_len;
} tern_http_client_request;

/* Send a request and read the response head; the body is left to read.
 * 1xx interim responses are skipped.  With max_redirects > 0, 301, 302,
 * 303, 307 and 308 with a Location are followed: 303, and 301/302 after a
 * POST, become a GET without body (HEAD stays HEAD); 307/308 repeat the
 * method and body.  Location may be an absolute URL, "//host/..", an
 * absolute path or a relative one.  Authorization, Proxy-Authorization
 * and Cookie headers are not sent to another host:port.
 * Bounded by ctx (NULL: none), which must outlive the response: reading
 * its body stays bounded by it.  On success *out is the final response,
 * the caller's to free; on failure NULL. */
int tern_http_client_do(tern_http_client *c, const tern_http_client_request *req,
                        tern_http_client_response **out, tern_ctx *ctx);

/* The sentence that explains the client's latest TLS handshake failure
 * (any request's: "server certificate verify failed: certificate has
 * expired (subject CN=localhost)"), copied into buf (size bytes, NUL
 * included; cut if longer).  0, or -ENOENT when no handshake failed yet. */
int tern_http_client_last_tls_error(tern_http_client *c, char *buf, size_t size);

/* A GET of url, as tern_http_client_do. */
int tern_http_client_get(tern_http_client *c, const char *url, tern_http_client_response **out,
                         tern_ctx *ctx);

/* The status code of the final response: never 1xx (interim responses
 * are skipped); after redirects, the last hop's. */
int tern_http_client_response_status(const tern_http_client_response *r);

/* The first field called name (any case), NUL-terminated, or NULL.  Valid
 * until the response is freed. */
const char *tern_http_client_response_header(const tern_http_client_response *r,
                                             const char *name);

/* The i-th field (in the order sent): 0, or -ENOENT past the last. */
int tern_http_client_response_header_at(const tern_http_client_response *r, size_t i,
                                        const char **name, const char **value);

/* Content-Length, or -1 when the body is chunked or ends at close; 0 for
 * 204 and 304.  For HEAD, what the header says (the body a GET would
 * have had; none follows). */
int64_t tern_http_client_response_content_length(const tern_http_client_response *r);

/* Read up to n body bytes (chunked framing undone), bounded by the ctx
 * given to tern_http_client_do.  Returns the count, 0 at the end of the
 * body, or -errno (see above).  An error is sticky: later reads return it
 * again. */
ssize_t tern_http_client_response_read(tern_http_client_response *r, void *buf, size_t n);

/* Read the rest of the body into memory owned by r (valid until it is
 * freed; NUL-terminated for convenience).  -EMSGSIZE if it is longer
 * than max; other errors as tern_http_client_response_read. */
int tern_http_client_response_body(tern_http_client_response *r, size_t max, const char **data,
                                   size_t *len);

/* "HTTP/2" or "HTTP/1.1": what the final response came over.  A static
 * string. */
const char *tern_http_client_response_proto(const tern_http_client_response *r);

/* The trailer field called name (any case), once the body has been read
 * to its end; NULL before that, when there is none, and for HTTP/1.1
 * (whose chunked trailers are read and dropped).  Valid until the
 * response is freed. */
const char *tern_http_client_response_trailer(const tern_http_client_response *r,
                                              const char *name);

/* Release r: its connection goes back to the pool if the body was read to
 * the end and keep-alive holds; otherwise it is closed.  NULL is a no-op. */
void tern_http_client_response_free(tern_http_client_response *r);

/* A struct tag with no typedef: the name is also the function that fills
 * it, as with POSIX's struct stat and stat(). */
struct tern_http_client_stats {
    uint64_t dials;             /* connections made */
    uint64_t reuses;            /* requests sent on a pooled connection */
    uint64_t requests;          /* requests written (redirects and the
                                   retry of a stale connection count) */
    uint32_t idle;              /* connections in the pool now */
    uint32_t active;            /* connections lent to requests now;
                                   HTTP/2: streams held by requests */
    uint32_t h2_conns;          /* HTTP/2 connections open now (dials
                                   counts them too; reuses counts requests
                                   that took a stream on one already open) */
    uint64_t responses_made;    /* response objects allocated; the other
                                   calls reused one the client kept from a
                                   freed response (up to 32 a worker and 64
                                   more, released after 5 s unused) */
};

/* Counters so far; a racy snapshot while requests run.  Any thread.
 * Returns 0. */
int tern_http_client_stats(const tern_http_client *c, struct tern_http_client_stats *st);

#ifdef __cplusplus
}
#endif
#endif
