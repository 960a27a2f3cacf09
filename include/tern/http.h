/*
 * tern/http.h - the HTTP/1.1 and HTTP/2 server: requests, responses,
 * handlers and middleware chains.
 *
 * One port serves both: a connection that opens with HTTP/2's preface
 * (h2c with prior knowledge, RFC 9113 3.3) is served as HTTP/2, each
 * stream's handler in a coroutine of its own.  Handlers see the same
 * requests and responses whatever the protocol (tern_http_req_proto tells
 * them apart); trailers travel both ways on HTTP/2 (and on chunked
 * HTTP/1.1 responses).
 *
 * One coroutine per connection, as Go's net/http: a handler reads the
 * request and writes the response top to bottom, parking (never blocking
 * its thread) when it waits on the network, a timer or a channel.
 *
 *     static int hello(tern_http_req *r, tern_http_resp *w, void *arg) {
 *         return tern_http_resp_text(w, 200, "Hello, World!");
 *     }
 *     ...
 *     tern_http_server_options o = { .handler = hello };
 *     tern_http_server *s;
 *     tern_http_server_new(&o, &s);
 *     int rc = tern_http_server_listen(s, "127.0.0.1:8080");
 *     if (rc < 0)
 *         fprintf(stderr, "listen 127.0.0.1:8080: %s\n", tern_strerror(rc));
 *     else
 *         tern_http_server_serve(s, NULL);   // until tern_http_server_shutdown()
 *     tern_http_server_free(s);
 *
 * Ownership: the server is the caller's (tern_http_server_free, once
 * serve has returned); it owns its listeners.  Options are copied, but
 * options.handler's arg (a router, say) must outlive the server.  A NULL
 * server, request or response aborts with a message naming the function.
 *
 * Calls on a request or response (tern_http_req_*, tern_http_resp_*) take
 * no ctx: as in Go, they are bounded by the request's own context and the
 * server's timeouts (read_body_timeout, write_timeout).
 *
 * Strings handed out by a request (method, path, header values, params,
 * query values) are NUL-terminated and live until the handler returns.
 *
 * A handler returns 0, or a negative errno: if nothing was sent yet the
 * client gets tern_http_error_status(r, err) (400 / 408 / 413 for the
 * request body's errors, 502 / 504 for a downstream's, else 500) and the
 * connection carries on (unless the body's framing was lost); if the
 * response was
 * already streaming, the connection is closed (the client sees a
 * truncated body rather than a wrong one).  Other connections are never
 * affected.
 *
 * Request targets (RFC 9112 3.2): origin-form ("/p?q"); "OPTIONS *",
 * answered by the server itself (200, Allow); absolute-form
 * ("http://host/p?q"), served as its path when its authority equals the
 * Host field (RFC 9112 3.2.2 would have the target's authority win; tern
 * is no proxy and refuses the mismatch with 400, so that one request
 * never names two hosts).  Anything else, a Host that is not
 * host[:port], and a path with a bad percent-escape, an escaped NUL or
 * bytes that are not UTF-8 are answered 400 before any handler runs.
 *
 * The response body is buffered (up to 64 KiB) until the handler returns,
 * so headers may change until then and the server adds Content-Length
 * itself; past that size, or after tern_http_resp_flush(), the head is
 * sent and the body streams (chunked for HTTP/1.1, until close for 1.0).
 * A response with a body and no Content-Type is sent with
 * "text/plain; charset=utf-8", as Go's is.
 */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tern/context.h"
#include "tern/net.h"
#include "tern/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* jansson's JSON value (jansson.h: `typedef struct json_t {...} json_t;`,
 * which this declaration agrees with in C and C++): only pointers pass
 * through this header, so a program that does not build JSON need not
 * compile against jansson.  Include <jansson.h> to make or read values. */
typedef struct json_t json_t;

typedef struct tern_http_server tern_http_server;
typedef struct tern_http_req tern_http_req;
typedef struct tern_http_resp tern_http_resp;

/* A handler, and a middleware: a middleware is a handler that calls
 * tern_http_next() to run the rest of the chain (or answers itself). */
typedef int tern_http_handler_fn(tern_http_req *r, tern_http_resp *w, void *arg);

typedef struct tern_http_link {
    tern_http_handler_fn *fn;
    void *arg;
} tern_http_link;

/* Run the next link of the request's chain; 0 when the chain is over.
 * Returns what that link returned. */
int tern_http_next(tern_http_req *r, tern_http_resp *w);

/* Run chain[0..n) for this request (what a router does once it has found
 * the route).  The previous chain resumes afterwards. */
int tern_http_run_chain(tern_http_req *r, tern_http_resp *w, const tern_http_link *chain, size_t n);

/* ---- the request -------------------------------------------------------- */

/* The method as sent ("GET", "POST", any token; case-sensitive). */
const char *tern_http_req_method(const tern_http_req *r);
/* The request target as sent: "/users/42?x=1". */
const char *tern_http_req_target(const tern_http_req *r);
/* The path, percent-decoded and without the query: "/users/42".  NULL is
 * never returned; a target that does not decode gives its raw path. */
const char *tern_http_req_path(tern_http_req *r);
/* After '?', still escaped; "" when none. */
const char *tern_http_req_raw_query(const tern_http_req *r);
/* 0 for HTTP/1.0, 1 for HTTP/1.1 and HTTP/2. */
int tern_http_req_minor_version(const tern_http_req *r);
/* "HTTP/1.0", "HTTP/1.1" or "HTTP/2" (static strings). */
const char *tern_http_req_proto(const tern_http_req *r);
/* Whether the method is HEAD (the body written is counted, not sent). */
bool tern_http_req_is_head(const tern_http_req *r);

/* The first header field with this name (case-insensitive), or NULL. */
const char *tern_http_req_header(const tern_http_req *r, const char *name);
/* How many header fields the request has (repeated names counted). */
size_t tern_http_req_header_count(const tern_http_req *r);
/* The i-th field as received; -ERANGE past the end. */
int tern_http_req_header_at(const tern_http_req *r, size_t i, const char **name, const char **value);

/* A query parameter, decoded ('+' is a space), or NULL. */
const char *tern_http_req_query(tern_http_req *r, const char *name);
/* A route parameter (":id" or "*path" in the pattern), or NULL. */
const char *tern_http_req_param(const tern_http_req *r, const char *name);
/* A cookie's value from the Cookie header, or NULL. */
const char *tern_http_req_cookie(tern_http_req *r, const char *name);
/* A field of an application/x-www-form-urlencoded body (read on first
 * call), decoded, or NULL (also when the body is not a form). */
const char *tern_http_req_form(tern_http_req *r, const char *name);

/* A trailer field of the request (case-insensitive), or NULL: HTTP/2
 * only (HTTP/1.1 chunked trailers are read and dropped), and known only
 * once the body has been read to its end (tern_http_req_read returned 0,
 * or tern_http_req_body succeeded).  The string lives until the handler
 * returns. */
const char *tern_http_req_trailer(tern_http_req *r, const char *name);

/* The declared body length, or -1 (chunked or none known). */
int64_t tern_http_req_content_length(const tern_http_req *r);
/* Stream the body: returns a count, 0 at its end (or when n is 0), or
 * -errno: -EMSGSIZE past the body limit (answer 413), -EBADMSG on bad
 * chunked framing, -ETIMEDOUT, -ECONNRESET; after an error every later
 * read returns -EIO.  The first read answers "Expect: 100-continue". */
ssize_t tern_http_req_read(tern_http_req *r, void *buf, size_t n);
/* Read the whole body into memory owned by the request (NUL-terminated
 * for convenience); same errors as tern_http_req_read, -ENOMEM, and
 * -EALREADY if tern_http_req_read already consumed part of it. */
int tern_http_req_body(tern_http_req *r, const char **data, size_t *len);
/* How deep a request body's JSON may nest ([ and { levels).  jansson
 * recurses per level, about 80 bytes of stack each on x86-64 (measured
 * with jansson 2.14: 755 levels fit a 64 KiB stack, 345 a 32 KiB one);
 * 128 levels take ~10 KiB of a connection's 64 KiB stack, leaving the
 * rest to the server and the handler.  Real payloads nest a few levels. */
#define TERN_HTTP_JSON_MAX_DEPTH 128

/* Parse the body as JSON.  -EBADMSG when it is not JSON or nests deeper
 * than TERN_HTTP_JSON_MAX_DEPTH (refused before parsing, whatever the
 * body's size; nothing is sent: answer 400 yourself, or return the error
 * for a 500). *out is yours to json_decref. */
int tern_http_req_json(tern_http_req *r, json_t **out);
/* Lower the body limit for this request (a route's own limit); a value
 * above the current limit, or negative, is ignored. */
void tern_http_req_set_max_body(tern_http_req *r, int64_t max);

/* The request's context: cancelled when the server is forced down, a
 * middleware's deadline passes, or the client goes away (its FIN or a
 * reset, seen once the body has been read, as Go; not during a graceful
 * shutdown, nor with pipelined requests buffered).  Created on first use;
 * never NULL.  Watching the client costs no system call, and nothing for
 * a handler that never asks for its context. */
tern_ctx *tern_http_req_ctx(tern_http_req *r);
/* Replace it with a child of it (a timeout middleware does this); the
 * request frees ctx when it ends.  The previous context stays valid.
 * -ENOSPC after 7 replacements on one request (ctx is then yours),
 * -EINVAL for NULL. */
int tern_http_req_set_ctx(tern_http_req *r, tern_ctx *ctx);

/* The client's address, as tern_conn_remote_addr ("127.0.0.1:51234"). */
const char *tern_http_req_remote_addr(tern_http_req *r);
/* Whether the request came over TLS (a tern_http_server_listen_tls port). */
bool tern_http_req_tls(const tern_http_req *r);
/* The client certificate's subject ("CN=client-1,O=tern"; mTLS, the
 * server's config has a client_ca_file), as tern_tls_peer_subject; NULL
 * without TLS or certificate.  Lives as long as the connection. */
const char *tern_http_req_tls_peer_subject(const tern_http_req *r);
/* The client certificate's i-th subject alternative name, as
 * tern_tls_peer_san; NULL past the last. */
const char *tern_http_req_tls_peer_san(const tern_http_req *r, size_t i);
/* Memory freed with the request (8-byte aligned); NULL on ENOMEM. */
void *tern_http_req_alloc(tern_http_req *r, size_t n);
char *tern_http_req_strdup(tern_http_req *r, const char *s);
/* Give the request's context (tern_http_req_ctx) key -> value, as
 * tern_ctx_with_value on it would, but without making the context before
 * someone asks for it: a middleware that tags every request (tracing)
 * costs no context on requests whose handlers never take one.  0,
 * -ENOSPC past 4 values added before the context exists (or as
 * tern_http_req_set_ctx after), -ENOMEM. */
int tern_http_req_add_ctx_value(tern_http_req *r, const void *key, void *value);
/* A value for later links of the chain (a request id, a user), by key
 * address; -ENOMEM. */
int tern_http_req_set_value(tern_http_req *r, const void *key, void *value);
/* The value set under key by tern_http_req_set_value, or NULL. */
void *tern_http_req_value(const tern_http_req *r, const void *key);
/* When the request's head had been fully read (tern_now() clock). */
int64_t tern_http_req_start_time(const tern_http_req *r);

/* ---- the response ------------------------------------------------------- */

/* Header fields.  -EINVAL for a name that is not a token or a value with
 * CR, LF or another control character (header injection); -EALREADY
 * once the head was sent.  Content-Length and Transfer-Encoding are the
 * server's: -EPERM. */
int tern_http_resp_set_header(tern_http_resp *w, const char *name, const char *value);
int tern_http_resp_add_header(tern_http_resp *w, const char *name, const char *value);
int tern_http_resp_del_header(tern_http_resp *w, const char *name);
const char *tern_http_resp_header(const tern_http_resp *w, const char *name);
/* A trailer field, sent after the body: on HTTP/2 as a trailing HEADERS
 * frame; on HTTP/1.1 in the chunked encoding's trailer section (a
 * response with trailers is sent chunked, whatever its size).  Dropped
 * for HTTP/1.0, HEAD and bodyless statuses, where no trailer section
 * exists.  Checked as tern_http_resp_set_header (-EINVAL, -EPERM), and
 * -EALREADY once the response is complete; -ENOMEM. */
int tern_http_resp_set_trailer(tern_http_resp *w, const char *name, const char *value);

/* The status to send (100-999 except 1xx: -EINVAL; -EALREADY once the
 * head was sent).  Default 200. */
int tern_http_resp_set_status(tern_http_resp *w, int status);
int tern_http_resp_status(const tern_http_resp *w);

/* Protocol switching (RFC 9110 7.8: WebSocket, a proxy's tunnel).  Sends
 * "101 Switching Protocols" with the headers set so far plus
 * "Connection: Upgrade" and "Upgrade: protocol", and hands the
 * connection to the handler: *out's conn is borrowed until the handler
 * returns, when the server closes it (an upgraded connection serves no
 * more requests).  pending/pending_len are bytes the client sent after
 * the request's head and the server had already read (valid until the
 * handler returns): they come before anything read from conn.  The
 * connection's deadlines are cleared; bound the handler's reads and
 * writes with tern_http_req_ctx, which a forced shutdown cancels (a
 * client's FIN no longer cancels it: it is a read of 0 on conn).
 * HTTP/1.1 only: -ENOTSUP on HTTP/2 and HTTP/1.0; -EINVAL for a protocol
 * that is not a token[/token] or a request without an Upgrade header, or
 * whose body is not read to its end; -EALREADY once the head was sent;
 * -ENOMEM; the write's error (the client has gone). */
typedef struct tern_http_upgraded {
    tern_conn *conn;
    const char *pending;
    size_t pending_len;
} tern_http_upgraded;
int tern_http_resp_upgrade(tern_http_resp *w, const char *protocol, tern_http_upgraded *out);

/* Append body bytes.  Returns len or -errno (the client has gone:
 * -EPIPE/-ECONNRESET/-ETIMEDOUT; -ENOMEM; -EALREADY once the response
 * is complete, as after tern_http_resp_file).  For HEAD the bytes are
 * counted, not sent. */
ssize_t tern_http_resp_write(tern_http_resp *w, const void *data, size_t len);
int tern_http_resp_printf(tern_http_resp *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Send the head and what is buffered now; the body streams from here. */
int tern_http_resp_flush(tern_http_resp *w);
/* Whether the head has been sent (after a flush, or once the body
 * outgrew the buffer): status and headers can no longer change. */
bool tern_http_resp_committed(const tern_http_resp *w);
/* Body bytes written so far (before any encoding). */
uint64_t tern_http_resp_body_bytes(const tern_http_resp *w);

/* Whole responses: status, Content-Type, body.  Return 0 or -errno (as
 * set_status, set_header and write; -EINVAL for a NULL JSON value). */
int tern_http_resp_send(tern_http_resp *w, int status, const char *content_type,
                        const void *body, size_t len);
int tern_http_resp_text(tern_http_resp *w, int status, const char *text);
int tern_http_resp_json(tern_http_resp *w, int status, const json_t *value);
/* "<status> <reason>\n" or msg as text/plain. */
int tern_http_resp_error(tern_http_resp *w, int status, const char *msg);

/* The buffered, uncommitted body, for middleware that transforms it
 * (gzip): -EALREADY once streaming. */
int tern_http_resp_buffered(tern_http_resp *w, char **data, size_t *len);
/* Replace the buffered body (copied); -EALREADY once streaming. */
int tern_http_resp_replace_body(tern_http_resp *w, const void *data, size_t len);

/* Serve a file: Content-Type by extension, Last-Modified and ETag with
 * If-None-Match / If-Modified-Since (304), a single Range (206, or 416),
 * HEAD, and sendfile(2) for the body.  404 when absent, 403 for a
 * directory or unreadable file. */
int tern_http_resp_file(tern_http_resp *w, tern_http_req *r, const char *path);

/* The status the server answers when a handler on r fails with err before
 * sending anything: the one mapping from tern's errors to statuses (the
 * access log, metrics and tracing middleware use it too).  A code means
 * the client's fault only when r's own body calls (tern_http_req_read,
 * _body, _json) returned it; the same code from anywhere else, say the
 * body of a downstream's response read with the HTTP client, is the
 * downstream's:
 *   from r's body:  -EMSGSIZE 413, -ETIMEDOUT (read_body_timeout) 408,
 *                   -EBADMSG and the rest (-ECONNRESET ...) 400; a later
 *                   -EIO from the failed body counts as the first error;
 *   otherwise:      -ETIMEDOUT 504 (a deadline passed: a slow downstream),
 *                   -EAGAIN 503 (a breaker, throttle or limit refused),
 *                   -EMSGSIZE, -EBADMSG, -EPROTO, -ECONNRESET,
 *                   -ECONNREFUSED, -ECONNABORTED, -EPIPE, -EHOSTUNREACH,
 *                   -ENETUNREACH, -ELOOP 502 (a downstream failed, sent
 *                   too much, truncated or malformed), anything else 500;
 *   -ECANCELED after the client went away (tern_http_req_ctx): 499, nginx's
 *                   "client closed request", so it is nobody's 5xx.
 * r may be NULL (no request: the second list).  Answer a status yourself
 * (tern_http_resp_error) when you want another one. */
int tern_http_error_status(const tern_http_req *r, int err);

/* The standard reason phrase ("Not Found"), or "Unknown". */
const char *tern_http_status_text(int status);

/* ---- the server --------------------------------------------------------- */

/* A request the server answered itself, without running the handler: a
 * malformed head or an invalid path (400), a head too slow (408), a body
 * over max_body_bytes (413), a request line or head too large (414, 431),
 * a transfer coding it does not know (501), an HTTP version it does not
 * speak (505).  What the server knew of it when it refused; the strings
 * are valid during the call only. */
typedef struct tern_http_refusal {
    int status;                 /* the status the server answered with */
    const char *method;         /* "" when the request line was not read */
    const char *target;         /* as sent (cut to 256 bytes); "" likewise */
    const char *remote_addr;
    int64_t start;              /* tern_now() when its head began to arrive */
} tern_http_refusal;

/* Told of each refusal, in the connection's coroutine, before the answer
 * is sent: for access logs and metrics (tern_http_access_log_refused,
 * tern_http_metrics_refused), which a handler's middleware never sees. */
typedef void tern_http_refused_fn(const tern_http_refusal *rf, void *arg);
/* HTTP/2's limits (zero fields: the defaults).  The connection that
 * breaks one is closed (GOAWAY) or the stream refused; the others go on. */
typedef struct tern_http_h2_options {
    uint32_t max_concurrent_streams;    /* advertised; 0: 100 (a stalled stream holds up to
                                           128 KiB); more: refused (REFUSED_STREAM) while
                                           unacknowledged, a PROTOCOL_ERROR after */
    uint32_t stream_window;             /* bytes of a request body a stream may have in
                                           flight before its handler reads; 0: 256 KiB */
    uint32_t conn_window;               /* the same for the whole connection; 0: 1 MiB */
    size_t max_continuations;           /* CONTINUATION frames per header block; 0: 8 */
    uint64_t reset_burst;               /* RST_STREAMs from a client (rapid reset): a burst */
    uint64_t reset_rate;                /* and a refill per second; 0: 1000 and 33 */
    size_t max_settings;                /* entries per SETTINGS frame; 0: 32 */
    size_t max_outbound_ack;            /* queued SETTINGS/PING acknowledgements before the
                                           connection is dropped (floods); 0: 1000 */
    bool disable_h2c;                   /* true: no HTTP/2 with prior knowledge on cleartext */
} tern_http_h2_options;

typedef struct tern_http_server_options {
    tern_http_handler_fn *handler;      /* required: a router, a chain, a function */
    void *arg;
    size_t max_request_line;            /* 0: 8 KiB; longer: 414 */
    size_t max_header_bytes;            /* whole head; 0: 64 KiB; more: 431 */
    size_t max_headers;                 /* fields; 0: 100; more: 431 */
    int64_t max_body_bytes;             /* 0: 8 MiB; larger: 413 before reading; <0: none */
    int max_conns;                      /* open at once; at the limit accepting pauses
                                           (counted, reported); 0: three quarters of
                                           RLIMIT_NOFILE (64 .. 1M); <0: none */
    int max_requests_per_conn;          /* 0: none; then Connection: close */
    int64_t read_header_timeout;        /* ns; 0: 10 s; <0: none */
    int64_t read_body_timeout;          /* ns per body, from its first read; 0: 60 s */
    int64_t write_timeout;              /* ns per response; 0: 60 s */
    int64_t idle_timeout;               /* ns between requests; 0: 120 s */
    bool reuseport;                     /* one SO_REUSEPORT listener and accept loop per P */
    const char *server_header;          /* Server: value; NULL: none */
    int64_t shutdown_grace;             /* ns a forced shutdown waits for handlers
                                           to return; 0: 1 s; <0: no bound */
    tern_http_refused_fn *on_refused;   /* NULL: refusals are only counted (rejected) */
    void *on_refused_arg;
    /* HTTP/2.  Also: max_header_bytes bounds a stream's decoded header
     * list (431), max_headers its fields, max_body_bytes each stream's
     * body, idle_timeout a connection without streams, write_timeout each
     * stream's response (a client that stops reading one, by flow control
     * or not at all, has it reset then), read_body_timeout its body. */
    tern_http_h2_options h2;
} tern_http_server_options;

/* A struct tag with no typedef: the name is also the function that fills
 * it, as with POSIX's struct stat and stat(). */
struct tern_http_server_stats {
    uint64_t accepted;                  /* connections, ever */
    uint64_t requests;                  /* requests answered, ever */
    uint64_t rejected;                  /* malformed or over a limit (4xx from the server itself) */
    uint32_t conns;                     /* open now */
    uint32_t active;                    /* open and inside a request now */
    uint64_t conn_limit_hits;           /* times accepting paused at max_conns */
    uint32_t max_conns;                 /* the limit in force; 0: none */
};

/* A server with options o (copied; handler required: -EINVAL).  *out is
 * the caller's to tern_http_server_free; NULL on failure (-ENOMEM). */
int tern_http_server_new(const tern_http_server_options *o, tern_http_server **out);
/* Listen on a TCP address ("127.0.0.1:8080", ":0"); may be called more than
 * once.  Errors as tern_listener_new: print them with tern_strerror and
 * the address, as the example above does. */
int tern_http_server_listen(tern_http_server *s, const char *addr);
/* Serve on an existing listener (Unix sockets, inherited fds); once this
 * returns 0 the server frees it.  -EINVAL for a NULL listener, -ENOSPC
 * past 64 listeners, -EBUSY once serving: on an error the caller keeps
 * (and frees) l. */
int tern_http_server_add_listener(tern_http_server *s, tern_listener *l);
/* HTTPS: as tern_http_server_listen, and every connection accepted there
 * first completes a TLS handshake with cfg (a server config), bounded by
 * read_header_timeout; a failed handshake closes the connection (the
 * server goes on).  cfg is borrowed: keep it until the server is freed
 * (reloading it meanwhile is fine).  -EINVAL for a NULL cfg; errors as
 * tern_http_server_listen. */
int tern_http_server_listen_tls(tern_http_server *s, const char *addr, tern_tls_config *cfg);
/* HTTPS on an existing listener: as tern_http_server_add_listener, with
 * connections upgraded by cfg as tern_http_server_listen_tls says. */
int tern_http_server_add_listener_tls(tern_http_server *s, tern_listener *l, tern_tls_config *cfg);
/* The first listener's port (after listening on port 0) and address
 * ("127.0.0.1:34567"); 0 and "" before listening. */
int tern_http_server_port(const tern_http_server *s);
const char *tern_http_server_addr(const tern_http_server *s);
/* Accept and serve until shutdown, or until ctx ends (NULL: until
 * shutdown); from a coroutine.  When ctx ends, accepting stops and every
 * connection is closed at once (request contexts cancelled), as a
 * shutdown whose ctx has already ended.  Returns 0 once the first
 * tern_http_server_shutdown call has returned, ctx's error (-ECANCELED,
 * -ETIMEDOUT) when ctx ended it, or -errno if it could not start
 * (-EDESTADDRREQ: nothing to listen on; -EBUSY: already serving).  Once it
 * returns the server may be freed (when no other shutdown call is
 * running). */
int tern_http_server_serve(tern_http_server *s, tern_ctx *ctx);
/* Graceful shutdown, from any coroutine: stop accepting, close idle
 * connections, let in-flight requests finish (their responses carry
 * Connection: close) until ctx ends (NULL: wait for every request), then
 * force the rest: cancel their requests' contexts and shut their sockets
 * down, and wait at most shutdown_grace (1 s by default) for their
 * handlers to return.  A handler that ignores its context (a CPU loop, a
 * blocking call) is then abandoned, still running: shutdown returns
 * anyway, so the drain deadline bounds it whatever handlers do.  Returns
 * 0; ctx's error (-ETIMEDOUT, -ECANCELED) when it forced connections
 * closed and every handler returned in the grace; -ETIMEDOUT when some
 * were abandoned (tern_http_server_stats' conns counts them).  Idempotent;
 * several may run at once. */
int tern_http_server_shutdown(tern_http_server *s, tern_ctx *ctx);
/* Counters; a racy snapshot while serving.  Any thread.  Returns 0. */
int tern_http_server_stats(const tern_http_server *s, struct tern_http_server_stats *st);
/* After serve has returned (or if it never ran).  NULL is a no-op.  After
 * a shutdown that abandoned handlers (-ETIMEDOUT, conns > 0) this is still
 * safe: it reports the connections left, and the server is freed by the
 * last of them when its handler returns (never, a leak, if it never
 * does), instead of under their feet.  Until then those handlers still
 * run with options.handler's arg: the caller must not free what they use
 * (the router, its handlers' state) unless the process is exiting. */
void tern_http_server_free(tern_http_server *s);

#ifdef __cplusplus
}
#endif
#endif
