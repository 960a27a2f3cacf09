/*
 * parse_response.c - HTTP/1.1 response heads (RFC 9112 4 and 6.3) for
 * tern's client, zero-copy.
 *
 * The status line is found first (a response has no leading empty lines to
 * skip), then the field lines go through fields.c as a request's do, and
 * the framing is read from them.  A client reading responses off a reused
 * connection is where response splitting bites, so every framing the RFC
 * calls faulty is refused rather than guessed at: the connection will be
 * closed and nothing after the refused head is read as a response.
 */
#include "parse_internal.h"

#include "base/check.h"

/* "HTTP/1.x ddd[ reason]" without its line end; 0 or TERN_HTTP_BAD. */
static int status_line(const char *s, size_t n, tern_http_response *resp)
{
    if (n < 12 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9' || s[8] != ' ')
        return TERN_HTTP_BAD;
    resp->minor_version = s[7] == '0' ? 0 : 1;  /* 1.x, x > 1: read as 1.1 */
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TERN_HTTP_BAD;
        status = status * 10 + (s[i] - '0');
    }
    if (status < 100 || status > 599)
        return TERN_HTTP_BAD;       /* RFC 9110 15: nothing else is a status */
    resp->status = status;
    /* The SP before an empty reason is often left out; that is harmless. */
    resp->reason = s + n;
    resp->reason_len = 0;
    if (n == 12)
        return 0;
    if (s[12] != ' ')
        return TERN_HTTP_BAD;       /* a fourth digit, or junk */
    for (size_t i = 13; i < n; i++)
        if (!tern_http_is((unsigned char)s[i], TERN_HTTP_FIELD))
            return TERN_HTTP_BAD;
    resp->reason = s + 13;
    resp->reason_len = n - 13;
    return 0;
}

/* Read the framing fields; 0 or TERN_HTTP_BAD. */
static int framing(tern_http_response *resp)
{
    bool cl_seen = false, te_seen = false, close = false, keep_alive = false;
    int64_t length = -1;
    resp->chunked = false;
    for (size_t i = 0; i < resp->nheaders; i++) {
        const tern_http_header *h = &resp->headers[i];
        const char *v = h->value, *end = h->value + h->value_len, *s;
        size_t n;
        if (tern_http_ieq(h->name, h->name_len, "content-length")) {
            int64_t l = tern__http_content_length(v, h->value_len);
            if (l < 0 || (cl_seen && l != length))
                return TERN_HTTP_BAD;
            cl_seen = true;
            length = l;
        } else if (tern_http_ieq(h->name, h->name_len, "transfer-encoding")) {
            /* exactly one coding, chunked: we cannot undo any other */
            te_seen = true;
            for (const char *q = v; tern__http_list_next(&q, end, &s, &n);) {
                if (resp->chunked || !tern_http_ieq(s, n, "chunked"))
                    return TERN_HTTP_BAD;
                resp->chunked = true;
            }
        } else if (tern_http_ieq(h->name, h->name_len, "connection")) {
            for (const char *q = v; tern__http_list_next(&q, end, &s, &n);) {
                close |= tern_http_ieq(s, n, "close");
                keep_alive |= tern_http_ieq(s, n, "keep-alive");
            }
        }
    }
    /* both framings, TE in HTTP/1.0, or TE without a coding (RFC 9112 6.1, 6.3) */
    if (te_seen && (cl_seen || resp->minor_version == 0 || !resp->chunked))
        return TERN_HTTP_BAD;
    TERN_ASSERT(!resp->chunked || !cl_seen);
    resp->keep_alive = !close && (resp->minor_version >= 1 || keep_alive);
    resp->body_until_close = false;
    if (resp->status < 200 || resp->status == 204 || resp->status == 304) {
        resp->content_length = 0;   /* never a body, whatever the fields say */
        resp->chunked = false;
    } else if (resp->chunked) {
        resp->content_length = -1;
    } else if (cl_seen) {
        resp->content_length = length;
    } else {
        resp->content_length = -1;
        resp->body_until_close = true;
        resp->keep_alive = false;
    }
    /* one way to find the body's end, and a body read to close ends the conn */
    TERN_ASSERT(!resp->chunked || resp->content_length == -1);
    TERN_ASSERT(!resp->body_until_close || (!resp->keep_alive && !resp->chunked));
    return 0;
}

int tern_http_parse_response(const char *buf, size_t len, tern_http_response *resp,
                             const tern_http_limits *limits)
{
    tern__http_chars_init();
    size_t max_line = limits && limits->max_request_line ? limits->max_request_line : 8192;
    size_t max_head = limits && limits->max_head ? limits->max_head : 65536;
    resp->nheaders = 0;

    const char *nl = memchr(buf, '\n', len);
    if (!nl)
        return len > max_line || len > max_head ? TERN_HTTP_BAD : TERN_HTTP_INCOMPLETE;
    size_t line_len = (size_t)(nl - buf) + 1, n = line_len - 1;
    if (line_len > max_line)
        return TERN_HTTP_BAD;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    if (status_line(buf, n, resp) < 0)
        return TERN_HTTP_BAD;

    int status;
    int head = tern__http_parse_fields(buf, len, line_len, max_head, resp->headers,
                                      resp->max_headers, &resp->nheaders, &status);
    if (head == TERN_HTTP_INCOMPLETE)
        return len > max_head ? TERN_HTTP_BAD : TERN_HTTP_INCOMPLETE;
    if (head < 0 || framing(resp) < 0)
        return TERN_HTTP_BAD;
    TERN_ASSERT((size_t)head > line_len - 1 && (size_t)head <= len);
    TERN_ASSERT(resp->status >= 100 && resp->status <= 599);
    return head;
}
