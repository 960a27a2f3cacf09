/*
 * tern/http_parse.h - the HTTP/1.1 parsers under tern's server and client:
 * request heads, response heads, chunked bodies, and URL, form and cookie
 * helpers.
 *
 * A request head is parsed by one call, the request line and header fields
 * from a buffer, without copying: every string in the result points into the
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
#include <sys/types.h>

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

/*
 * Response heads, for tern's HTTP client.  Same shape as requests: the
 * status line and field lines, zero-copy, incremental.  limits->
 * max_request_line bounds the status line; there is no status to answer
 * with, so every refusal is TERN_HTTP_BAD: a malformed or over-long status
 * line (status not 3 digits in 100..599, version other than HTTP/1.x),
 * obs-fold, control characters, over-limit heads or more fields than
 * max_headers, and the framing that invites response splitting: both
 * Content-Length and Transfer-Encoding, differing or malformed
 * Content-Length, Transfer-Encoding in HTTP/1.0 or other than exactly
 * "chunked" (a client that cannot undo gzip must not pass it off as the
 * body; RFC 9112 6.3 would read a non-chunked final coding until close).
 */
typedef struct tern_http_response {
    int minor_version;          /* HTTP/1.<minor>: 0 or 1 */
    int status;                 /* 100..599 */
    const char *reason;         /* may be empty */
    size_t reason_len;
    tern_http_header *headers;  /* in: array to fill; caller-owned */
    size_t max_headers;         /* in: its size */
    size_t nheaders;            /* out */
    /* framing (RFC 9112 6.3); a response to HEAD has no body whatever
     * these say: that is the caller's to know */
    int64_t content_length;     /* -1: none; 0 for 1xx, 204 and 304 */
    bool chunked;
    bool keep_alive;            /* connection reusable after the body */
    bool body_until_close;      /* no length, not chunked: body ends at EOF (then keep_alive is false) */
} tern_http_response;

/* Parse the response head at the start of buf[0..len).  Returns the head's
 * length, TERN_HTTP_INCOMPLETE or TERN_HTTP_BAD.  limits may be NULL. */
int tern_http_parse_response(const char *buf, size_t len, tern_http_response *resp,
                             const tern_http_limits *limits);

/*
 * Chunked bodies (RFC 9112 7.1), decoded incrementally and in place: feed
 * each buffer as it arrives; the body bytes in it move to its front.
 * Strict: a chunk-size is hex digits only, below 2^63; extensions must
 * follow the grammar and, with the size, fit a 4 KiB line; chunk data must
 * end with CRLF exactly; trailer fields are checked like header fields and
 * bounded by max_trailer.  A bare LF ends a size or trailer line.
 *
 * Once the last chunk and the trailer section are complete, the decoder
 * stops: the bytes after them are the next message's and are never read
 * or written.  Trailer fields are checked and dropped.
 */
typedef struct tern_http_chunked {
    /* private: a byte-level state machine */
    int state;
    uint64_t remaining;         /* chunk size being read, then data bytes left */
    size_t line_bytes;          /* of the size line so far */
    size_t trailer_bytes;       /* of the trailer section so far */
    size_t max_trailer;
    int status;                 /* with TERN_HTTP_BAD: the answer to send (400; 413 is the caller's) */
} tern_http_chunked;

/* Start decoding a body.  max_trailer bounds the trailer field lines,
 * their line ends included; 0: 8 KiB. */
void tern_http_chunked_init(tern_http_chunked *d, size_t max_trailer);

/* Decode buf[0..len) in place: body bytes are moved to the front of buf.
 * *consumed: input bytes used; *produced: body bytes now at buf[0..*produced).
 * Returns 1 when the last chunk and trailer section are complete (then *consumed
 * may be < len: the rest is the next message, which is not touched),
 * 0 when all input was consumed and more is needed, TERN_HTTP_BAD (sticky)
 * on malformed input.  After 1, further calls return 1 and consume nothing. */
int tern_http_chunked_decode(tern_http_chunked *d, char *buf, size_t len, size_t *consumed,
                             size_t *produced);

/*
 * URLs, query strings, forms and cookies.  Nothing here allocates; spans
 * point into the caller's strings.
 */

/* Percent-decode src[0..len) into dst (dst_size >= len+1 always suffices;
 * NUL-terminated; dst may be src, decoding in place).  plus_as_space for
 * application/x-www-form-urlencoded and query strings.  Returns the decoded
 * length, or -EINVAL for a malformed escape ("%4", "%zz") or a NUL byte
 * (escaped or not), -ENOSPC if dst is too small; on error dst holds junk. */
ssize_t tern_http_unescape(const char *src, size_t len, char *dst, size_t dst_size,
                           bool plus_as_space);

/* Iterate "a=1&b=2" (query string or urlencoded form): on each call, sets
 * raw (still escaped) key and value spans and advances *pos (start at 0);
 * returns 1 while a pair was found, 0 at the end.  Empty pairs ("a=1&&b")
 * are skipped; "k" without '=' gives an empty value; "=v" an empty key. */
int tern_http_form_next(const char *s, size_t len, size_t *pos, const char **key,
                        size_t *key_len, const char **val, size_t *val_len);

/* Find the cookie called name (case-sensitive) in a Cookie header value
 * ("a=1; b=2"); returns 1 with its value span (surrounding quotes
 * stripped), or 0.  The first of repeated names wins; a pair without '='
 * is a cookie with no name and never matches. */
int tern_http_cookie_find(const char *header, size_t len, const char *name, const char **val,
                          size_t *val_len);

/* Clean a URL path in place like Go's path.Clean: collapse "//", drop "."
 * elements and a trailing '/', resolve ".." never above the root.  path
 * must start with '/'; the result does too.  Returns the new length. */
size_t tern_http_path_clean(char *path, size_t len);

typedef struct tern_http_url {
    char scheme[8];             /* "http" or "https" */
    char host[256];             /* without brackets for IPv6 */
    int port;                   /* explicit or scheme default */
    char hostport[262];         /* "host:port" as tern_conn_dial wants it ("[v6]:port") */
    const char *path;           /* points into the input: "/..." incl. query, "/" if empty */
    size_t path_len;
} tern_http_url;

/* Parse an absolute http(s) URL: 0 or -EINVAL.  The rules are simple:
 * scheme http or https (any case), no userinfo ('@' in the authority),
 * a non-empty host of letters, digits, '-', '.', '_' and '~' or a
 * bracketed IPv6 literal (hex digits, ':' and '.'), port 1..65535 if
 * given, and a path and query of visible ASCII only (nothing that could
 * end a request line early).  A query needs a path ("http://h/?q", not
 * "http://h?q"); a "#fragment" is dropped. */
int tern_http_url_parse(const char *url, tern_http_url *out);

/* Copy url into buf (len bytes, NUL included) with the password of its
 * userinfo replaced by "xxxxx", as Go's url.URL.Redacted does:
 * "http://admin:s3cret@h/x" -> "http://admin:xxxxx@h/x".  For logs, trace
 * attributes and published configuration, which must never show a
 * credential.  The authority is what follows "scheme://" (or "//", or, with
 * neither, the start of url) up to the first '/', '?' or '#'; its userinfo
 * runs to the last '@' in it, and the password from the first ':' in that.
 * A user without a password, and an '@' after the authority (in the path
 * or query), are left as they are; any other text is copied unchanged.
 * 0, or -ENOSPC when buf was too small: buf then holds as much of the
 * redacted text as fits (never any of the password), NUL-terminated if
 * len > 0.  url NULL is copied as "". */
int tern_http_url_redact(const char *url, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
