/*
 * tern/http_mw.h - the built-in middleware and the static-file handler.
 *
 * Each middleware is a tern_http_handler_fn whose arg is its options
 * struct (NULL: the defaults, for those that have defaults; body limit,
 * timeout and static files need theirs, and answer 500 through -EINVAL
 * without them); put it in a chain before the handler:
 *
 *     static const tern_http_gzip_options gz = {.min_size = 512};
 *     static const tern_http_link chain[] = {
 *         {tern_http_mw_access_log, NULL},     // tern/log.h; outermost: sees the final status
 *         {tern_http_mw_request_id, NULL},
 *         {tern_http_mw_gzip, (void *)&gz},
 *         {handler, NULL},
 *     };
 *
 * Options are read, never written, by the middleware: one struct may
 * serve every request on every thread, and must outlive the server.
 *
 * The access log middleware (tern_http_mw_access_log) is the logger's, in
 * tern/log.h: it writes tern_log lines.
 *
 * Order matters as it does in Go: once tern_http_next returns, a link sees
 * what the links after it did, and nothing of those before.  The access
 * log goes first, so that it times the whole chain, logs the request id
 * set after it and the status a later CORS or timeout link chose (or
 * right after tern_http_mw_trace, for its lines to carry the trace ids,
 * as examples/svc does); the timeout goes right before the handlers it
 * bounds.
 *
 * There is no recover-style error middleware: the server already turns a
 * handler's -errno into a 500 (or a closed connection once streaming)
 * without touching other connections, and the access log records the
 * error (its "error" field) where a recover middleware would have.
 */
#ifndef TERN_HTTP_MW_H
#define TERN_HTTP_MW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- request id --------------------------------------------------------
 *
 * Reuses the client's X-Request-Id when it is 1..128 characters of
 * [A-Za-z0-9._:+/=-] (anything else could forge log lines or headers), or
 * makes one: 32 hex digits (128 bits) from a per-thread xoshiro256**
 * seeded with getrandom(2).  Unique, not secret: never use it as a token.
 * The id goes on the response (same header) and becomes a request value
 * under &tern_http_request_id_key. */
typedef struct tern_http_request_id_options {
    const char *header;         /* NULL: "X-Request-Id" */
    bool ignore_incoming;       /* always generate (at a trust boundary) */
} tern_http_request_id_options;

extern const char tern_http_request_id_key;

/* The middleware; opts is a tern_http_request_id_options or NULL.  Returns
 * what the rest of the chain returns, or -ENOMEM (no id could be made) or
 * a header error without running it. */
int tern_http_mw_request_id(tern_http_req *r, tern_http_resp *w, void *opts);
/* The id set by tern_http_mw_request_id earlier in the chain, or NULL. */
const char *tern_http_request_id(const tern_http_req *r);

/* ---- CORS (the Fetch standard's CORS protocol) --------------------------
 *
 * For a request whose Origin is allowed, adds Access-Control-Allow-Origin
 * (and -Allow-Credentials, -Expose-Headers) and runs the chain.  A
 * preflight (OPTIONS with Access-Control-Request-Method) is answered here
 * with 204 and never reaches the chain: Allow-Methods, Allow-Headers (the
 * configured list, or the requested ones echoed), Max-Age.  A disallowed
 * origin gets no CORS headers (its preflight still gets a bare 204), so
 * the browser refuses; requests without Origin (same-origin, or not from
 * a browser) run the chain with no CORS fields, except "*" without
 * credentials, which is sent on every response so that one cached copy
 * suits every origin.  Otherwise "Vary: Origin" is added, as the answer
 * depends on it. */
typedef struct tern_http_cors_options {
    const char *const *origins; /* NULL-terminated; an entry "*" allows any; NULL: any */
    const char *methods;        /* NULL: "GET, HEAD, POST, PUT, PATCH, DELETE" */
    const char *headers;        /* NULL: echo Access-Control-Request-Headers */
    const char *expose_headers; /* NULL: none */
    bool credentials;           /* cookies allowed: the origin is echoed, never "*" */
    int64_t max_age;            /* preflight cache, ns (sent rounded down to
                                   whole seconds); 0: not sent */
} tern_http_cors_options;

/* The middleware; opts is a tern_http_cors_options or NULL (any origin,
 * no credentials).  Returns what the rest of the chain returns, 0 after
 * answering a preflight, or a header error (-EINVAL for a configured list
 * that is not a valid field value). */
int tern_http_mw_cors(tern_http_req *r, tern_http_resp *w, void *opts);

/* ---- gzip ---------------------------------------------------------------
 *
 * After the chain returns, compresses a response still buffered (bodies
 * under the server's 64 KiB streaming threshold) when all hold: the
 * client accepts gzip (Accept-Encoding, q-values honoured: "gzip;q=0"
 * refuses, "*" allows), the body is at least min_size, the Content-Type
 * is text (any subtype), JSON, JavaScript, XML or SVG, the status is
 * 200-299 except 204 and 206, the request is not HEAD, there is no
 * Content-Encoding yet and no "Cache-Control: no-transform".  Sets Content-Encoding: gzip and
 * turns a strong ETag weak (the bytes differ now).  A compressible
 * response gets "Vary: Accept-Encoding" whether or not it was
 * compressed; a body that would not shrink is sent as it was. */
typedef struct tern_http_gzip_options {
    size_t min_size;            /* 0: 1024 */
    int level;                  /* 1..9; 0: 6 */
} tern_http_gzip_options;

/* The middleware; opts is a tern_http_gzip_options or NULL.  Returns what
 * the rest of the chain returns (an error there leaves the response
 * alone), or -ENOMEM / a header error from compressing. */
int tern_http_mw_gzip(tern_http_req *r, tern_http_resp *w, void *opts);

/* ---- body size limit ----------------------------------------------------
 *
 * A route's own limit: a declared Content-Length above max is answered
 * 413 without running the chain or reading the body (a client waiting
 * on "Expect: 100-continue" never sends it); otherwise the limit is set
 * with tern_http_req_set_max_body, so a chunked body past it makes reads
 * return -EMSGSIZE (answer 413 then, or return the error). */
typedef struct tern_http_body_limit_options {
    int64_t max;                /* bytes, >= 0 */
} tern_http_body_limit_options;

/* The middleware; opts is a tern_http_body_limit_options, required (NULL
 * or a negative max: -EINVAL, a 500).  Returns what the rest of the chain
 * returns, or 0 after answering 413. */
int tern_http_mw_body_limit(tern_http_req *r, tern_http_resp *w, void *opts);

/* ---- timeout --------------------------------------------------------------
 *
 * Gives the rest of the chain a request context with this deadline (a
 * child of the current one).  As with Go's TimeoutHandler the client then
 * gets 503 with `message` when the handler returns -ETIMEDOUT or
 * -ECANCELED because that deadline passed, and nothing had been sent yet:
 * the handler's buffered body is dropped (headers it set stay).
 *
 * Cooperative: tern cannot stop a running handler, so the deadline acts
 * only through calls that take the context (tern_conn_dial, tern_chan_select on
 * tern_ctx_done, a client request, ...).  A handler that ignores it and
 * succeeds late still sends its own response.  When the deadline of an
 * outer context (an outer timeout, or the server being forced down) is
 * what ended the handler, the error passes through for that owner. */
typedef struct tern_http_timeout_options {
    int64_t timeout;            /* ns, > 0 */
    const char *message;        /* 503 body; NULL: "503 Service Unavailable\n" */
} tern_http_timeout_options;

/* The middleware; opts is a tern_http_timeout_options, required (NULL or
 * a timeout <= 0: -EINVAL, a 500).  Returns what the rest of the chain
 * returns, 0 after answering 503, or -ENOMEM / -ENOSPC (from
 * tern_http_req_set_ctx) without running it. */
int tern_http_mw_timeout(tern_http_req *r, tern_http_resp *w, void *opts);

/* ---- static files ---------------------------------------------------------
 *
 * Serves files under root with tern_http_resp_file (ranges, validators,
 * sendfile).  The file is named by the route parameter `param` (a route
 * whose pattern ends in "*path", with param "path"), or, without that
 * parameter, by the request's whole path; either is already decoded by
 * the server, and is not decoded again ("%252e" stays "%2e").
 *
 * Never serves anything outside root: a name with a ".." element is
 * refused with 400 (browsers resolve dot segments before sending, so one
 * that arrives is an attempt); the rest is cleaned ("//" and "." dropped)
 * and opened with openat2(2) RESOLVE_BENEATH, so no symlink can lead out
 * of root either (symlinks within it work).  On kernels without openat2
 * (ENOSYS) a realpath(3) prefix check stands in, which a symlink swapped
 * between check and open could race.  Absent and out of bounds both
 * answer 404, never saying which; unreadable (EACCES), a FIFO or a device
 * 403.
 *
 * A directory is served as its index file (a request without the
 * trailing '/' is first redirected, 301 to the relative "name/", so that
 * relative links work and no Location can point off-site), never listed.
 * Methods other than GET and HEAD get 405. */
typedef struct tern_http_static_options {
    const char *root;           /* the directory served */
    const char *param;          /* NULL: "path" */
    const char *index;          /* NULL: "index.html"; "": directories are 404 */
} tern_http_static_options;

/* The handler; opts is a tern_http_static_options with root set, required
 * (NULL or no root: -EINVAL, a 500).  0 once it answered (files and the
 * 301/400/403/404/405 above alike), or -errno: -ENOMEM, or the client
 * gone while sending. */
int tern_http_static_dir(tern_http_req *r, tern_http_resp *w, void *opts);

#ifdef __cplusplus
}
#endif
#endif
