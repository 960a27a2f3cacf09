/*
 * parse.c - HTTP/1.1 request heads (RFC 9112), zero-copy.
 *
 * One forward pass over the buffer: request line, then field lines up to
 * the empty line.  Running out of bytes anywhere gives "incomplete", unless
 * the part seen already breaks a limit.  Then the framing fields
 * (Content-Length, Transfer-Encoding, Connection, Host, Expect) are read
 * from the collected headers; that is where the smuggling defences live.
 */
#include "tern/http_parse.h"

#include <pthread.h>
#include <string.h>

enum { C_TCHAR = 1, C_VCHAR = 2, C_FIELD = 4 };

/* token chars, visible ASCII, and field-value chars (VCHAR, SP, HTAB,
 * obs-text) */
static unsigned char cls[256];

static void cls_init(void)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c && strchr(extra, c)))
            v |= C_TCHAR;
        if (c >= 0x21 && c <= 0x7e)
            v |= C_VCHAR;
        if ((c >= 0x20 && c != 0x7f) || c == '\t')
            v |= C_FIELD;
        cls[c] = v;
    }
}

static inline bool is(unsigned char c, int k)
{
    return cls[c] & k;
}

static bool ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return false;
    }
    return true;
}

/* Next comma-separated element of a list value, trimmed; false at the end. */
static bool list_next(const char **p, const char *end, const char **s, size_t *n)
{
    while (*p < end && (**p == ',' || **p == ' ' || **p == '\t'))
        (*p)++;
    if (*p == end)
        return false;
    const char *b = *p;
    while (*p < end && **p != ',')
        (*p)++;
    const char *e = *p;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *s = b;
    *n = (size_t)(e - b);
    return true;
}

static int bad(tern_http_request *req, int status)
{
    req->status = status;
    return TERN_HTTP_BAD;
}

/* Read the framing fields; 0 or TERN_HTTP_BAD. */
static int framing(tern_http_request *req)
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
        if (ieq(h->name, h->name_len, "content-length")) {
            /* 1*DIGIT only; repeats must agree (RFC 9112 6.3, item 5) */
            if (h->value_len == 0 || h->value_len > 18)
                return bad(req, 400);
            int64_t n = 0;
            for (const char *q = v; q < end; q++) {
                if (*q < '0' || *q > '9')
                    return bad(req, 400);
                n = n * 10 + (*q - '0');
            }
            if (cl_seen && n != req->content_length)
                return bad(req, 400);
            cl_seen = true;
            req->content_length = n;
        } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
            const char *s;
            size_t n;
            for (const char *q = v; list_next(&q, end, &s, &n);) {
                te_seen++;
                if (req->chunked)       /* anything after chunked */
                    return bad(req, 400);
                if (ieq(s, n, "chunked"))
                    req->chunked = true;
                else
                    return bad(req, 501);   /* a coding we do not know */
            }
        } else if (ieq(h->name, h->name_len, "host")) {
            hosts++;
        } else if (ieq(h->name, h->name_len, "connection")) {
            const char *s;
            size_t n;
            for (const char *q = v; list_next(&q, end, &s, &n);) {
                if (ieq(s, n, "close"))
                    req->keep_alive = false;
                else if (ieq(s, n, "keep-alive") && req->minor_version == 0)
                    req->keep_alive = true;
            }
        } else if (ieq(h->name, h->name_len, "expect")) {
            if (!ieq(v, h->value_len, "100-continue"))
                return bad(req, 417);
            req->expect_continue = req->minor_version >= 1;
        }
    }
    if (te_seen && (cl_seen || req->minor_version == 0))
        return bad(req, 400);       /* both framings, or TE in HTTP/1.0 */
    if (te_seen && !req->chunked)
        return bad(req, 400);
    if (req->minor_version >= 1 && hosts != 1)
        return bad(req, 400);
    if (req->minor_version == 0 && hosts > 1)
        return bad(req, 400);
    return 0;
}

int tern_http_parse_request(const char *buf, size_t len, tern_http_request *req,
                            const tern_http_limits *limits)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, cls_init);
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
    while (p < end && is(*p, C_TCHAR))
        p++;
    NEED(p < end);
    if (p == s || *p != ' ')
        return bad(req, 400);
    req->method = (const char *)s;
    req->method_len = (size_t)(p - s);
    s = ++p;
    while (p < end && is(*p, C_VCHAR))
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
    if ((size_t)(p - line) > max_line)
        return bad(req, 414);
    in_line = false;

    for (;;) {
        NEED(p < end);
        if (*p == '\r' || *p == '\n') {
            EOL();
            break;
        }
        if (*p == ' ' || *p == '\t')
            return bad(req, 400);       /* obs-fold */
        s = p;
        while (p < end && is(*p, C_TCHAR))
            p++;
        NEED(p < end);
        if (p == s || *p != ':')
            return bad(req, 400);       /* empty name, bad char, space before ':' */
        const unsigned char *name = s;
        size_t name_len = (size_t)(p - s);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const unsigned char *v = p, *vend = p;
        while (p < end && *p != '\r' && *p != '\n') {
            if (!is(*p, C_FIELD))
                return bad(req, 400);   /* control character */
            if (*p != ' ' && *p != '\t')
                vend = p + 1;
            p++;
        }
        EOL();
        if ((size_t)(p - (const unsigned char *)buf) > max_head)
            return bad(req, 431);
        if (req->nheaders == req->max_headers)
            return bad(req, 431);
        req->headers[req->nheaders++] = (tern_http_header){
            (const char *)name, name_len, (const char *)v, (size_t)(vend - v)};
    }
    if ((size_t)(p - (const unsigned char *)buf) > max_head)
        return bad(req, 431);
    if (framing(req) < 0)
        return TERN_HTTP_BAD;
    return (int)(p - (const unsigned char *)buf);

incomplete:
    /* What we have already breaks a limit: no point waiting for more. */
    if (in_line && (size_t)(end - line) > max_line)
        return bad(req, 414);
    if (len > max_head)
        return bad(req, 431);
    return TERN_HTTP_INCOMPLETE;
#undef NEED
#undef EOL
}
