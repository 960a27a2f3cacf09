/*
 * parse.c - HTTP/1.1 request heads (RFC 9112), zero-copy.
 *
 * One forward pass over the buffer: request line, then field lines up to
 * the empty line (fields.c, shared with the response parser).  Running out of bytes anywhere gives "incomplete", unless
 * the part seen already breaks a limit.  Then the framing fields
 * (Content-Length, Transfer-Encoding, Connection, Host, Expect) are read
 * from the collected headers; that is where the smuggling defences live.
 */
#include "parse_internal.h"

#include <string.h>
#include <strings.h>


#include "base/check.h"

static int bad(tern_http_request *req, int status)
{
    TERN_ASSERT(status >= 400 && status <= 505);
    req->status = status;
    return TERN_HTTP_BAD;
}

/* Whether v[0..n) is a Host value: uri-host [":" port] (RFC 9110 7.2),
 * or empty.  The characters of a reg-name, an IP literal in brackets and
 * percent-escapes; no spaces, no "@" (userinfo), no "/" (a path). */
static bool host_ok(const char *v, size_t n)
{
    size_t colon = n;       /* the last ':' outside brackets: the port's */
    bool bracket = n > 0 && v[0] == '[';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        /* one table load a byte: this runs on every request */
        if (!tern_http_is(c, TERN_HTTP_HOST))
            return false;
        if (c == ':' && (!bracket || (i > 0 && v[i - 1] == ']')))
            colon = i;
        else if (c == ']') {
            if (!bracket)
                return false;   /* a "]" that opened nothing */
            bracket = false;
        }
    }
    if (bracket)
        return false;       /* "[" never closed */
    for (size_t i = colon + 1; i < n; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

/* The request target's form (RFC 9112 3.2): origin-form ("/p?q"),
 * asterisk-form ("*", OPTIONS only) or absolute-form ("http://a/p?q").
 * An absolute-form target is served as its path; its authority must be
 * the Host field's (checked in framing).  0 or TERN_HTTP_BAD. */
static int target_form(tern_http_request *req, const char **authority, size_t *authority_len)
{
    const char *t = req->target;
    size_t n = req->target_len;
    *authority = NULL;
    if (t[0] == '/')
        return 0;
    if (n == 1 && t[0] == '*')
        return req->method_len == 7 && !memcmp(req->method, "OPTIONS", 7) ? 0 : bad(req, 400);
    size_t skip = n > 7 && tern_http_ieq(t, 7, "http://") ? 7 : n > 8 && tern_http_ieq(t, 8, "https://") ? 8 : 0;
    if (!skip)
        return bad(req, 400);   /* authority-form (CONNECT) or nonsense: no proxy here */
    const char *a = t + skip, *end = t + n;
    const char *slash = memchr(a, '/', (size_t)(end - a));
    if (!slash)
        return bad(req, 400);   /* no path to serve ("http://a" or "http://a?q") */
    if (memchr(a, '?', (size_t)(slash - a)))
        return bad(req, 400);
    *authority = a;
    *authority_len = (size_t)(slash - a);
    req->target = slash;
    req->target_len = (size_t)(end - slash);
    return 0;
}

/* Read the framing fields; 0 or TERN_HTTP_BAD. */
static int framing(tern_http_request *req, const char *authority, size_t authority_len)
{
    int hosts = 0, te_seen = 0;
    bool cl_seen = false;
    req->content_length = -1;
    req->chunked = false;
    req->expect_continue = false;
    req->keep_alive = req->minor_version >= 1;
    for (size_t i = 0; i < req->nheaders; i++) {
        const tern_http_header *h = &req->headers[i];
        const char *v = h->value, *end = h->value + h->value_len;
        if (tern_http_ieq(h->name, h->name_len, "content-length")) {
            /* 1*DIGIT only; repeats must agree (RFC 9112 6.3, item 5) */
            int64_t n = tern__http_content_length(v, h->value_len);
            if (n < 0 || (cl_seen && n != req->content_length))
                return bad(req, 400);
            cl_seen = true;
            req->content_length = n;
        } else if (tern_http_ieq(h->name, h->name_len, "transfer-encoding")) {
            const char *s;
            size_t n;
            for (const char *q = v; tern__http_list_next(&q, end, &s, &n);) {
                te_seen++;
                if (req->chunked)       /* anything after chunked */
                    return bad(req, 400);
                if (tern_http_ieq(s, n, "chunked"))
                    req->chunked = true;
                else
                    return bad(req, 501);   /* a coding we do not know */
            }
        } else if (tern_http_ieq(h->name, h->name_len, "host")) {
            hosts++;
            if (!host_ok(v, h->value_len))
                return bad(req, 400);
            /* RFC 9112 3.2.2 would take the target's authority over Host;
             * tern is no proxy and refuses the ambiguity instead: one
             * request never names two hosts */
            if (authority && (h->value_len != authority_len || strncasecmp(v, authority, authority_len)))
                return bad(req, 400);
        } else if (tern_http_ieq(h->name, h->name_len, "connection")) {
            const char *s;
            size_t n;
            for (const char *q = v; tern__http_list_next(&q, end, &s, &n);) {
                if (tern_http_ieq(s, n, "close"))
                    req->keep_alive = false;
                else if (tern_http_ieq(s, n, "keep-alive") && req->minor_version == 0)
                    req->keep_alive = true;
            }
        } else if (tern_http_ieq(h->name, h->name_len, "expect")) {
            if (!tern_http_ieq(v, h->value_len, "100-continue"))
                return bad(req, 417);
            req->expect_continue = req->minor_version >= 1;
        }
    }
    if (te_seen && (cl_seen || req->minor_version == 0))
        return bad(req, 400);       /* both framings, or TE in HTTP/1.0 */
    if (te_seen && !req->chunked)
        return bad(req, 400);
    /* one framing at most: smuggling needs two */
    TERN_ASSERT(!req->chunked || req->content_length == -1);
    TERN_ASSERT(!req->expect_continue || req->minor_version >= 1);
    if (req->minor_version >= 1 && hosts != 1)
        return bad(req, 400);
    if (req->minor_version == 0 && hosts > 1)
        return bad(req, 400);
    if (authority && hosts == 0)
        return bad(req, 400);   /* HTTP/1.0 absolute-form: the same rule */
    return 0;
}

int tern_http_parse_request(const char *buf, size_t len, tern_http_request *req,
                            const tern_http_limits *limits)
{
    tern__http_chars_init();
    size_t max_line = limits && limits->max_request_line ? limits->max_request_line : 8192;
    size_t max_head = limits && limits->max_head ? limits->max_head : 65536;
    const unsigned char *p = (const unsigned char *)buf, *end = p + len, *line = p;
    bool in_line = true;
    req->nheaders = 0;
    req->status = 0;

#define NEED(cond)                                                                \
    do {                                                                          \
        if (!(cond))                                                              \
            goto incomplete;                                                      \
    } while (0)
#define EOL()                                                                     \
    do {                                                                          \
        NEED(p < end);                                                            \
        if (*p == '\r') {                                                         \
            NEED(p + 1 < end);                                                    \
            if (p[1] != '\n')                                                     \
                return bad(req, 400);   /* a bare CR */                           \
            p += 2;                                                               \
        } else if (*p == '\n') {                                                  \
            p++;                                                                  \
        } else {                                                                  \
            return bad(req, 400);                                                 \
        }                                                                         \
    } while (0)

    /* Empty lines before the request line are ignored (RFC 9112 2.2). */
    for (int i = 0; i < 4 && p < end && (*p == '\r' || *p == '\n'); i++)
        EOL();
    line = p;

    const unsigned char *s = p;
    while (p < end && tern_http_is(*p, TERN_HTTP_TCHAR))
        p++;
    NEED(p < end);
    if (p == s || *p != ' ')
        return bad(req, 400);
    req->method = (const char *)s;
    req->method_len = (size_t)(p - s);
    s = ++p;
    while (p < end && tern_http_is(*p, TERN_HTTP_VCHAR))
        p++;
    NEED(p < end);
    if (p == s || *p != ' ')
        return bad(req, 400);
    req->target = (const char *)s;
    req->target_len = (size_t)(p - s);
    p++;
    static const char proto[] = "HTTP/";
    for (int i = 0; i < 5; i++, p++) {
        NEED(p < end);
        if (*p != (unsigned char)proto[i])
            return bad(req, 400);
    }
    NEED(p + 2 < end);
    if (p[0] < '0' || p[0] > '9' || p[1] != '.' || p[2] < '0' || p[2] > '9')
        return bad(req, 400);
    if (p[0] != '1')
        return bad(req, 505);
    req->minor_version = p[2] == '0' ? 0 : 1;   /* 1.x, x > 1: served as 1.1 */
    p += 3;
    EOL();
    TERN_ASSERT(p <= end && req->method_len > 0 && req->target_len > 0);
    if ((size_t)(p - line) > max_line)
        return bad(req, 414);
    in_line = false;

    int n = tern__http_parse_fields(buf, len, (size_t)(p - (const unsigned char *)buf), max_head,
                                   req->headers, req->max_headers, &req->nheaders, &req->status);
    if (n == TERN_HTTP_INCOMPLETE)
        goto incomplete;
    if (n < 0)
        return n;
    TERN_ASSERT(n > 0 && (size_t)n <= len && req->nheaders <= req->max_headers);
    const char *authority;
    size_t authority_len = 0;
    if (target_form(req, &authority, &authority_len) < 0 || framing(req, authority, authority_len) < 0)
        return TERN_HTTP_BAD;
    return n;

incomplete:
    TERN_ASSERT(p <= end);
    /* What we have already breaks a limit: no point waiting for more. */
    if (in_line && (size_t)(end - line) > max_line)
        return bad(req, 414);
    if (len > max_head)
        return bad(req, 431);
    return TERN_HTTP_INCOMPLETE;
#undef NEED
#undef EOL
}
