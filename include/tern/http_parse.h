/*
 * tern/http_parse.h - the HTTP/1.1 request-head parser under tern's server.
 *
 * One call parses the request line and header fields of a request from a
 * buffer, without copying: every string in the result points into the
 * buffer.  It returns the head's length once it is complete, or
 * TERN_HTTP_INCOMPLETE when more bytes are needed (call again with the
 * longer buffer), or TERN_HTTP_BAD with `status` saying which answer the
 * request deserves (400, 414, 431, 501 or 505).
 *
 * Strict where RFC 9112 strictness protects users from request smuggling
 * and from confusing one request's bytes with another's: a request with
 * both Content-Length and Transfer-Encoding, differing or malformed
 * Content-Length, a Transfer-Encoding other than a final "chunked",
 * obs-fold, whitespace before a field's colon, control characters in
 * names, values or the target, a CR not followed by LF, and a missing or
 * repeated Host in HTTP/1.1 are all refused.  A bare LF is accepted as a
 * line end (RFC 9112 2.2 allows it; curl and Go's client never send one).
 *
 * Thread-safe and allocation-free; usable without a runtime.
 */
#ifndef TERN_HTTP_PARSE_H
#define TERN_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_HTTP_INCOMPLETE (-1)
#define TERN_HTTP_BAD (-2)

typedef struct tern_http_header {
    const char *name;
    size_t name_len;
    const char *value;          /* without surrounding whitespace */
    size_t value_len;
} tern_http_header;

typedef struct tern_http_limits {
    size_t max_request_line;    /* 0: 8 KiB; longer: 414 */
    size_t max_head;            /* whole head; 0: 64 KiB; longer: 431 */
} tern_http_limits;

typedef struct tern_http_request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor_version;          /* HTTP/1.<minor>: 0 or 1 */
    tern_http_header *headers;  /* in: array to fill; caller-owned */
    size_t max_headers;         /* in: its size; more fields: 431 */
    size_t nheaders;            /* out */
    /* framing, from the fields above */
    int64_t content_length;     /* -1: none */
    bool chunked;
    bool keep_alive;            /* after this request */
    bool expect_continue;
    int status;                 /* with TERN_HTTP_BAD: the answer to send */
} tern_http_request;

/* Parse the request head at the start of buf[0..len).  Returns the head's
 * length in bytes (the body, if any, starts there), TERN_HTTP_INCOMPLETE,
 * or TERN_HTTP_BAD with req->status set.  limits may be NULL. */
int tern_http_parse_request(const char *buf, size_t len, tern_http_request *req,
                            const tern_http_limits *limits);

#ifdef __cplusplus
}
#endif
#endif
