/*
 * fields.c - the field section of an HTTP/1.1 message (RFC 9112 5), shared
 * by the request and response parsers, and the character classes every
 * tern HTTP parser reads bytes with.
 *
 * A field line is a token name, a colon right after it, optional
 * whitespace, and a value of visible characters, spaces, tabs and
 * obs-text.  Refused: obs-fold (a line starting with whitespace), a space
 * before the colon, control characters, and a CR not followed by LF; a
 * bare LF ends a line as RFC 9112 2.2 allows.
 */
#include "parse_internal.h"

#include <limits.h>
#include <pthread.h>

#include "base/check.h"

unsigned char tern__http_chars[256];

static void chars_fill(void)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        unsigned char v = 0;
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c && strchr(extra, c)))
            v |= TERN_HTTP_TCHAR;
        if (c >= 0x21 && c <= 0x7e)
            v |= TERN_HTTP_VCHAR;
        if ((c >= 0x20 && c != 0x7f) || c == '\t')
            v |= TERN_HTTP_FIELD;
        /* RFC 3986's unreserved, sub-delims and pct-encoded, and the
         * brackets and colons of an IP literal and a port */
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c && strchr("-._~!$&'()*+,;=%[]:", c)))
            v |= TERN_HTTP_HOST;
        tern__http_chars[c] = v;
    }
}

void tern__http_chars_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, chars_fill);
}

bool tern__http_list_next(const char **p, const char *end, const char **s, size_t *n)
{
    while (*p < end && (**p == ',' || **p == ' ' || **p == '\t'))
        (*p)++;
    TERN_ASSERT(*p <= end);
    if (*p == end)
        return false;
    const char *b = *p;
    while (*p < end && **p != ',')
        (*p)++;
    const char *e = *p;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    TERN_ASSERT(b <= e && e <= *p && *p <= end);
    *s = b;
    *n = (size_t)(e - b);
    return true;
}

int64_t tern__http_content_length(const char *v, size_t n)
{
    /* 18 digits cannot overflow int64_t; nobody sends an exabyte */
    if (n == 0 || n > 18)
        return -1;
    int64_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        len = len * 10 + (v[i] - '0');
    }
    TERN_ASSERT(len >= 0 && len <= 999999999999999999);
    return len;
}

static int bad(int *status, int code)
{
    *status = code;
    return TERN_HTTP_BAD;
}

/* Step over the line end at *p: 0, TERN_HTTP_INCOMPLETE or TERN_HTTP_BAD. */
static int eol(const unsigned char **p, const unsigned char *end)
{
    TERN_ASSERT(*p <= end);
    if (*p == end)
        return TERN_HTTP_INCOMPLETE;
    if (**p == '\n') {
        (*p)++;
        return 0;
    }
    if (**p != '\r')
        return TERN_HTTP_BAD;
    if (*p + 1 == end)
        return TERN_HTTP_INCOMPLETE;
    if ((*p)[1] != '\n')
        return TERN_HTTP_BAD;       /* a bare CR */
    *p += 2;
    return 0;
}

int tern__http_parse_fields(const char *buf, size_t len, size_t off, size_t max_head,
                           tern_http_header *headers, size_t max_headers, size_t *nheaders,
                           int *status)
{
    const unsigned char *start = (const unsigned char *)buf, *end = start + len;
    TERN_ASSERT(off <= len);
    const unsigned char *p = start + off;
    int r;
    *nheaders = 0;
    for (;;) {
        TERN_ASSERT(p <= end && *nheaders <= max_headers);
        if (p == end)
            return TERN_HTTP_INCOMPLETE;
        if (*p == '\r' || *p == '\n') {
            if ((r = eol(&p, end)) < 0)
                return r == TERN_HTTP_BAD ? bad(status, 400) : r;
            break;
        }
        if (*p == ' ' || *p == '\t')
            return bad(status, 400);    /* obs-fold */
        const unsigned char *name = p;
        while (p < end && tern_http_is(*p, TERN_HTTP_TCHAR))
            p++;
        if (p == end)
            return TERN_HTTP_INCOMPLETE;
        if (p == name || *p != ':')
            return bad(status, 400);    /* empty name, bad char, space before ':' */
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const unsigned char *v = p;
        for (uint64_t w; end - p >= 8; p += 8) {
            memcpy(&w, p, 8);
            if (tern__http_word_has_ctl(w))
                break;
        }
        while (p < end && *p != '\r' && *p != '\n') {
            if (!tern_http_is(*p, TERN_HTTP_FIELD))
                return bad(status, 400);    /* control character */
            p++;
        }
        const unsigned char *vend = p;      /* trailing OWS is not the value's */
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        if ((r = eol(&p, end)) < 0)
            return r == TERN_HTTP_BAD ? bad(status, 400) : r;
        if ((size_t)(p - start) > max_head || *nheaders == max_headers)
            return bad(status, 431);
        TERN_ASSERT(p <= end && v <= vend && vend <= p);
        headers[(*nheaders)++] = (tern_http_header){
            (const char *)name, name_len, (const char *)v, (size_t)(vend - v)};
    }
    if ((size_t)(p - start) > max_head)
        return bad(status, 431);
    TERN_ASSERT(p > start + off && p <= end && (size_t)(p - start) <= INT_MAX);
    return (int)(p - start);
}
