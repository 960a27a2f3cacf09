/*
 * response.c - building responses: headers, buffered and streamed bodies,
 * the head with Date and Content-Length, and the server's own errors.
 *
 * A response's bytes go straight into the connection's output buffer,
 * after those of earlier pipelined responses.  The body is written first
 * and the head slid in front of it when the response is finished (or
 * starts streaming), which is what lets the server compute
 * Content-Length and lets headers change until then: for the small
 * responses that dominate, moving a few hundred bytes costs less than
 * any bookkeeping would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>

#include "http/h2_internal.h"
#include "http/parse_internal.h"
#include "http/resp_file_internal.h"
#include "http/server_internal.h"
#include "tern/runtime.h"

/* The one place where a handler's error becomes a status (see http.h).
 * The same code means different things by where it came from: -EMSGSIZE
 * from the request's body is the client's (413), from a downstream's
 * response body the downstream's (502).  The request remembers what its
 * body calls returned, which is what tells them apart. */
int tern_http_error_status(const tern_http_req *r, int err)
{
    if (r && r->body_err < 0 && (err == r->body_err || err == -EIO)) {
        /* the client's body: too large, malformed, too slow, or gone */
        switch (r->body_err) {
        case -EMSGSIZE: return 413;
        case -ETIMEDOUT: return 408;
        default: return 400;
        }
    }
    if (r && err == -ECANCELED && atomic_load(&r->peer_gone))
        return 499;     /* nginx's "client closed request": nobody's fault here */
    switch (err) {
    case -ETIMEDOUT: return 504;    /* a deadline: something downstream was slow */
    case -EAGAIN: return 503;       /* refused by a breaker, throttle or limit */
    case -EMSGSIZE:                 /* not the request's body: a downstream's */
    case -EBADMSG:
    case -EPROTO:
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -ECONNABORTED:
    case -EPIPE:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ELOOP:
        return 502;
    default: return 500;
    }
}

const char *tern_http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n", formatted once a second per
 * thread (a coarse clock read is a few ns; formatting is not), in English
 * whatever the program's locale. */
const char *tern__http_date_line(void)
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    static __thread char line[48];
    static __thread time_t cached = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != cached) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(line, sizeof line, "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached = ts.tv_sec;
    }
    return line;
}

void tern__http_resp_init(tern_http_resp *w, hconn *hc, tern_http_req *r)
{
    memset(w, 0, sizeof *w);
    w->conn = hc;
    w->req = r;
    w->status = 200;
    w->start = hc->out.len;
    w->head_only = r && tern_http_req_is_head(r);
}

/* ---- headers ------------------------------------------------------------ */

/* A field the server can send as it is: a token name, a value without
 * control characters (CR, LF and friends would be header injection), and
 * not one of the framing fields the server writes itself.  Once per
 * header set on every response: the parsers' character table, no
 * strchr per byte. */
static int check_field(const char *name, const char *value)
{
    if (!name || !*name || !value)
        return -EINVAL;
    tern__http_chars_init();
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!tern_http_is(*p, TERN_HTTP_TCHAR))
            return -EINVAL;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (!tern_http_is(*p, TERN_HTTP_FIELD))
            return -EINVAL;
    if ((name[0] | 0x20) == 'c' || (name[0] | 0x20) == 't')
        if (!strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding"))
            return -EPERM;
    return 0;
}

/* add_header after check_field. */
static int add_checked(tern_http_resp *w, const char *name, const char *value);

int tern_http_resp_add_header(tern_http_resp *w, const char *name, const char *value)
{
    TERN_CHECK_ARG(w);
    int rc = check_field(name, value);
    return rc < 0 ? rc : add_checked(w, name, value);
}

/* A new slot at the end of w's fields, or NULL on ENOMEM. */
static resp_header *push_header(tern_http_resp *w)
{
    if (w->nhdrs == w->hdrs_cap) {
        size_t cap = w->hdrs_cap ? w->hdrs_cap * 2 : 8;
        resp_header *h = tern__arena_alloc(&w->conn->arena, cap * sizeof *h);
        if (!h)
            return NULL;
        if (w->nhdrs)
            memcpy(h, w->hdrs, w->nhdrs * sizeof *h);
        w->hdrs = h;
        w->hdrs_cap = cap;
    }
    return &w->hdrs[w->nhdrs++];
}

static int add_checked(tern_http_resp *w, const char *name, const char *value)
{
    if (w->committed)
        return -EALREADY;
    size_t nl = strlen(name), vl = strlen(value);
    char *p = tern__arena_alloc(&w->conn->arena, nl + vl + 2);
    resp_header *h = p ? push_header(w) : NULL;
    if (!h)
        return -ENOMEM;
    memcpy(p, name, nl + 1);
    memcpy(p + nl + 1, value, vl + 1);
    *h = (resp_header){ p, p + nl + 1, nl, vl };
    return 0;
}

/* Drop w's fields named name (n bytes). */
static void del_checked(tern_http_resp *w, const char *name, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < w->nhdrs; i++)
        if (w->hdrs[i].name_len != n || strcasecmp(w->hdrs[i].name, name) != 0)
            w->hdrs[j++] = w->hdrs[i];
    w->nhdrs = j;
}

int tern_http_resp_del_header(tern_http_resp *w, const char *name)
{
    TERN_CHECK_ARG(w);
    int rc = check_field(name, "");
    if (rc < 0)
        return rc;
    if (w->committed)
        return -EALREADY;
    del_checked(w, name, strlen(name));
    return 0;
}

int tern_http_resp_set_header(tern_http_resp *w, const char *name, const char *value)
{
    TERN_CHECK_ARG(w);
    int rc = check_field(name, value);
    return rc < 0 ? rc : tern__http_resp_set_header_valid(w, name, value);
}

int tern__http_resp_set_header_valid(tern_http_resp *w, const char *name, const char *value)
{
    if (w->committed)
        return -EALREADY;
    del_checked(w, name, strlen(name));
    return add_checked(w, name, value);
}

int tern__http_resp_set_header_ref(tern_http_resp *w, const char *name, size_t name_len,
                                   const char *value, size_t value_len)
{
    if (w->committed)
        return -EALREADY;
    del_checked(w, name, name_len);
    resp_header *h = push_header(w);
    if (!h)
        return -ENOMEM;
    *h = (resp_header){ name, value, name_len, value_len };
    return 0;
}

int tern_http_resp_set_trailer(tern_http_resp *w, const char *name, const char *value)
{
    TERN_CHECK_ARG(w);
    int rc = check_field(name, value);
    if (rc < 0)
        return rc;
    if (w->done)
        return -EALREADY;
    if (w->ntrailers == w->trailers_cap) {
        size_t cap = w->trailers_cap ? w->trailers_cap * 2 : 4;
        resp_header *t = tern__arena_alloc(&w->conn->arena, cap * sizeof *t);
        if (!t)
            return -ENOMEM;
        if (w->ntrailers)
            memcpy(t, w->trailers, w->ntrailers * sizeof *t);
        w->trailers = t;
        w->trailers_cap = cap;
    }
    size_t nl = strlen(name), vl = strlen(value);
    char *p = tern__arena_alloc(&w->conn->arena, nl + vl + 2);
    if (!p)
        return -ENOMEM;
    memcpy(p, name, nl + 1);
    memcpy(p + nl + 1, value, vl + 1);
    w->trailers[w->ntrailers++] = (resp_header){ p, p + nl + 1, nl, vl };
    return 0;
}

const char *tern_http_resp_header(const tern_http_resp *w, const char *name)
{
    TERN_CHECK_ARG(w);
    /* the lengths first: the server asks for Connection on every response */
    size_t n = strlen(name);
    for (size_t i = 0; i < w->nhdrs; i++)
        if (w->hdrs[i].name_len == n && !strcasecmp(w->hdrs[i].name, name))
            return w->hdrs[i].value;
    return NULL;
}

int tern_http_resp_set_status(tern_http_resp *w, int status)
{
    TERN_CHECK_ARG(w);
    if (status < 200 || status > 999)
        return -EINVAL;
    if (w->committed)
        return -EALREADY;
    w->status = status;
    return 0;
}

int tern_http_resp_status(const tern_http_resp *w)
{
    TERN_CHECK_ARG(w);
    return w->status;
}

bool tern_http_resp_committed(const tern_http_resp *w)
{
    TERN_CHECK_ARG(w);
    return w->committed;
}

uint64_t tern_http_resp_body_bytes(const tern_http_resp *w)
{
    TERN_CHECK_ARG(w);
    return w->body_bytes;
}

/* ---- the head ----------------------------------------------------------- */

/* Whether a 12-byte field name is Content-Type, in any case: two loads
 * folded to lower case.  Or-ing 0x20 folds letters and leaves '-' alone;
 * no other token character (names were checked to be tokens) folds onto
 * one of these bytes.  Per response, so not a strcasecmp call. */
static bool is_content_type(const char *name)
{
    uint64_t a;
    uint32_t b;
    memcpy(&a, name, 8);
    memcpy(&b, name + 8, 4);
    uint64_t want_a;
    uint32_t want_b;
    memcpy(&want_a, "content-", 8);
    memcpy(&want_b, "type", 4);
    return (a | 0x2020202020202020ull) == want_a && (b | 0x20202020u) == want_b;
}

static bool bodyless_status(int status)
{
    return status == 204 || status == 304 || (status >= 100 && status < 200);
}

static int put(tern__growbuf *b, const char *s, size_t n) { return tern__growbuf_append(b, s, n); }
static int puts_(tern__growbuf *b, const char *s) { return tern__growbuf_append(b, s, strlen(s)); }

/* v in decimal at p (at most 20 bytes); returns the length. */
static size_t put_decimal(char *p, uint64_t v)
{
    char t[20];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    TERN_ASSERT(n <= sizeof t);
    for (size_t i = 0; i < n; i++)
        p[i] = t[n - 1 - i];
    return n;
}

/* The head into scratch.  content_length < 0: none (streaming). */
static int build_head(tern_http_resp *w, int64_t content_length, bool chunked)
{
    hconn *hc = w->conn;
    tern__growbuf *b = &hc->scratch;
    TERN_ASSERT(!w->committed);         /* one head per response */
    TERN_ASSERT(w->status >= 200 && w->status <= 999);
    TERN_ASSERT(w->nhdrs <= w->hdrs_cap);
    b->len = 0;
    const tern_http_server_options *o = &hc->srv->o;
    int minor = w->req ? w->req->head.minor_version : 1;
    const char *conn_hdr = tern_http_resp_header(w, "Connection");
    if ((conn_hdr && !strcasecmp(conn_hdr, "close")) || atomic_load(&hc->srv->shutting_down))
        w->close_after = hc->closing = true;    /* asked, or the server is going down */
    if (tern__growbuf_reserve(b, 256) < 0)
        return -ENOMEM;
    /* By hand, not snprintf: this runs once per response (the status is
     * 200..999, checked when it was set). */
    memcpy(b->p, minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    b->len = 9 + put_decimal(b->p + 9, (uint64_t)w->status);
    b->p[b->len++] = ' ';
    int rc = puts_(b, tern_http_status_text(w->status));
    rc |= put(b, "\r\n", 2);
    if (o->server_header) {
        rc |= put(b, "Server: ", 8);
        rc |= puts_(b, o->server_header);
        rc |= put(b, "\r\n", 2);
    }
    rc |= puts_(b, tern__http_date_line());
    /* The handler's fields: measured when they were set, so one reserve
     * for all of them and plain copies (four appends and two strlen each
     * cost more than the rest of the head). */
    size_t fields = 0;
    for (size_t i = 0; i < w->nhdrs; i++)
        fields += w->hdrs[i].name_len + w->hdrs[i].value_len + 4;
    if (tern__growbuf_reserve(b, fields) < 0)
        return -ENOMEM;
    bool has_type = false;
    for (size_t i = 0; i < w->nhdrs; i++) {
        const resp_header *h = &w->hdrs[i];
        if (conn_hdr && h->value == conn_hdr)
            continue;           /* written below, once */
        if (h->name_len == 12 && is_content_type(h->name))
            has_type = true;
        char *d = b->p + b->len;
        memcpy(d, h->name, h->name_len);
        d += h->name_len;
        memcpy(d, ": ", 2);
        memcpy(d + 2, h->value, h->value_len);
        d += 2 + h->value_len;
        memcpy(d, "\r\n", 2);
        b->len = (size_t)(d + 2 - b->p);
        TERN_ASSERT(b->len <= b->cap);  /* within the one reserve above */
    }
    /* A body nobody typed is sent as text, as Go's net/http does (it
     * sniffs; the common untyped body is text a handler printed), so a
     * browser does not guess.  HEAD counts the body a GET would send. */
    if (!has_type && w->body_bytes > 0 && !bodyless_status(w->status))
        rc |= puts_(b, "Content-Type: text/plain; charset=utf-8\r\n");
    if (content_length >= 0 && !bodyless_status(w->status)) {
        char num[48];
        memcpy(num, "Content-Length: ", 16);
        size_t n = 16 + put_decimal(num + 16, (uint64_t)content_length);
        memcpy(num + n, "\r\n", 2);
        rc |= put(b, num, n + 2);
    }
    if (chunked)
        rc |= puts_(b, "Transfer-Encoding: chunked\r\n");
    if (w->close_after)
        rc |= puts_(b, "Connection: close\r\n");
    else if (minor == 0)
        rc |= puts_(b, "Connection: keep-alive\r\n");
    rc |= put(b, "\r\n", 2);
    return rc ? -ENOMEM : 0;
}

/* Slide the head (in scratch) plus `extra` bytes in front of this
 * response's buffered body. */
static int insert_head(tern_http_resp *w, const char *extra, size_t extra_len)
{
    hconn *hc = w->conn;
    TERN_ASSERT(!w->committed && w->start <= hc->out.len);
    size_t hl = hc->scratch.len + extra_len;
    if (tern__growbuf_reserve(&hc->out, hl) < 0)
        return -ENOMEM;
    char *body = hc->out.p + w->start;
    size_t blen = hc->out.len - w->start;
    memmove(body + hl, body, blen);
    memcpy(body, hc->scratch.p, hc->scratch.len);
    memcpy(body + hc->scratch.len, extra, extra_len);
    hc->out.len += hl;
    TERN_ASSERT(hc->out.len <= hc->out.cap);
    return 0;
}

int tern__http_resp_commit(tern_http_resp *w)
{
    if (w->committed)
        return 0;
    hconn *hc = w->conn;
    if (hc->h2)
        return tern__h2_resp_commit(w);
    TERN_ASSERT(!w->done);              /* a finished response is committed or failed */
    TERN_ASSERT(w->start <= hc->out.len);
    bool no_body = w->head_only || bodyless_status(w->status);
    int minor = w->req ? w->req->head.minor_version : 1;
    if (!no_body) {
        if (minor >= 1)
            w->chunked = true;
        else
            w->close_after = hc->closing = true;    /* HTTP/1.0: the body ends at close */
    }
    int rc = build_head(w, -1, w->chunked);
    if (rc < 0)
        return rc;
    if (no_body)
        hc->out.len = w->start;     /* written before the status said "no body" */
    size_t blen = hc->out.len - w->start;
    if (w->chunked && blen > 0) {
        char sz[24];
        int n = snprintf(sz, sizeof sz, "%zx\r\n", blen);
        if (insert_head(w, sz, (size_t)n) < 0 || tern__growbuf_append(&hc->out, "\r\n", 2) < 0)
            return -ENOMEM;
    } else if (insert_head(w, "", 0) < 0) {
        return -ENOMEM;
    }
    w->committed = true;
    /* chunked framing only for HTTP/1.1; a 1.0 body ends at close */
    TERN_ASSERT(!w->chunked || minor >= 1);
    TERN_ASSERT(no_body || w->chunked || w->close_after);
    return 0;
}

/* The chunked body's end: the last chunk, the trailer section. */
static int end_chunked(tern_http_resp *w)
{
    tern__growbuf *out = &w->conn->out;
    int rc = put(out, "0\r\n", 3);
    for (size_t i = 0; i < w->ntrailers; i++) {
        rc |= put(out, w->trailers[i].name, w->trailers[i].name_len);
        rc |= put(out, ": ", 2);
        rc |= put(out, w->trailers[i].value, w->trailers[i].value_len);
        rc |= put(out, "\r\n", 2);
    }
    rc |= put(out, "\r\n", 2);
    return rc ? -ENOMEM : 0;
}

int tern__http_resp_finish(tern_http_resp *w)
{
    hconn *hc = w->conn;
    if (hc->h2)
        return tern__h2_resp_finish(w);
    TERN_ASSERT(!w->done);              /* finished once */
    /* trailers need the chunked encoding, whatever the body's size */
    if (!w->committed && w->ntrailers && !w->head_only && !bodyless_status(w->status) &&
        (!w->req || w->req->head.minor_version >= 1) && tern__http_resp_commit(w) < 0) {
        hc->io_error = -ENOMEM;
        return -ENOMEM;
    }
    w->done = true;
    if (w->committed)
        return w->chunked ? end_chunked(w) : 0;
    /* not committed, so the body is all still buffered, after start */
    TERN_ASSERT(w->start <= hc->out.len);
    /* what Content-Length will say is what is buffered */
    TERN_ASSERT(w->head_only || bodyless_status(w->status) ||
                hc->out.len - w->start == w->body_bytes);
    int64_t len = (int64_t)w->body_bytes;
    if (bodyless_status(w->status) || w->head_only)
        hc->out.len = w->start;     /* a 204/304 (or HEAD) carries no body bytes */
    if (build_head(w, len, false) < 0 || insert_head(w, "", 0) < 0) {
        hc->io_error = -ENOMEM;
        return -ENOMEM;
    }
    w->committed = true;
    return 0;
}

/* ---- the body ----------------------------------------------------------- */

/* A large piece goes to the socket from the caller's memory, right behind
 * what is buffered, instead of through the output buffer: copied, it was
 * held twice while a slow client read (an 8 MiB /echo pinned 16 MiB per
 * client, issue 15), and the buffer kept its size until the burst ended.
 * So a connection buffers at most about HTTP_STREAM_THRESHOLD. */
static ssize_t write_through(tern_http_resp *w, const void *data, size_t len)
{
    hconn *hc = w->conn;
    int rc = tern__http_resp_commit(w);
    if (rc < 0)
        return rc;
    if (bodyless_status(w->status))
        return (ssize_t)len;    /* the head said no body: commit dropped it */
    char sz[24];
    int n = w->chunked ? snprintf(sz, sizeof sz, "%zx\r\n", len) : 0;
    struct iovec iov[4] = { { hc->out.p, hc->out.len }, { sz, (size_t)n },
                            { (void *)data, len }, { (void *)"\r\n", w->chunked ? 2 : 0 } };
    ssize_t wr = tern_conn_writev(hc->c, iov, 4, NULL);
    hc->out.len = 0;
    if (wr < 0) {
        hc->io_error = (int)wr;
        return wr;
    }
    return (ssize_t)len;
}

ssize_t tern_http_resp_write(tern_http_resp *w, const void *data, size_t len)
{
    TERN_CHECK_ARG(w);
    hconn *hc = w->conn;
    if (hc->io_error)
        return hc->io_error;
    if (w->done)
        return -EALREADY;
    w->body_bytes += len;
    /* Under a bodyless status the bytes are still kept until the head is
     * out: the status may yet change, and Content-Length must count what
     * is sent (commit and finish drop them if it stays bodyless). */
    if (w->head_only || (w->committed && bodyless_status(w->status)) || len == 0)
        return (ssize_t)len;
    /* HTTP/2's socket is the connection's, shared by every stream: a
     * stream's bytes always go through its queue (flushed below) */
    if (len >= HTTP_STREAM_THRESHOLD && !hc->h2)
        return write_through(w, data, len);
    if (w->committed && w->chunked) {
        char sz[24];
        int n = snprintf(sz, sizeof sz, "%zx\r\n", len);
        if (tern__growbuf_append(&hc->out, sz, (size_t)n) < 0 ||
            tern__growbuf_append(&hc->out, data, len) < 0 ||
            tern__growbuf_append(&hc->out, "\r\n", 2) < 0)
            return -ENOMEM;
    } else if (tern__growbuf_append(&hc->out, data, len) < 0) {
        return -ENOMEM;
    }
    TERN_ASSERT(w->committed || w->start <= hc->out.len);
    /* HTTP/2 hands a streaming body over in smaller pieces: a stream's
     * buffer is per request, and many may be stalled at once */
    size_t flush_at = w->committed && hc->h2 ? H2_FLUSH_AT : HTTP_STREAM_THRESHOLD;
    if (hc->out.len - (w->committed ? 0 : w->start) >= flush_at) {
        int rc = tern_http_resp_flush(w);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)len;
}

int tern_http_resp_printf(tern_http_resp *w, const char *fmt, ...)
{
    TERN_CHECK_ARG(w);
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n < sizeof small)
        return tern_http_resp_write(w, small, (size_t)n) < 0 ? -EIO : n;
    char *big = tern__arena_alloc(&w->conn->arena, (size_t)n + 1);
    if (!big)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ssize_t rc = tern_http_resp_write(w, big, (size_t)n);
    return rc < 0 ? (int)rc : n;
}

int tern_http_resp_flush(tern_http_resp *w)
{
    TERN_CHECK_ARG(w);
    hconn *hc = w->conn;
    if (hc->io_error)
        return hc->io_error;
    if (!w->committed) {
        int rc = tern__http_resp_commit(w);
        if (rc < 0)
            return rc;
    }
    return tern__http_flush_out(hc);
}

int tern_http_resp_send(tern_http_resp *w, int status, const char *content_type,
                        const void *body, size_t len)
{
    TERN_CHECK_ARG(w);
    int rc = tern_http_resp_set_status(w, status);
    if (rc < 0)
        return rc;
    if (content_type && (rc = tern_http_resp_set_header(w, "Content-Type", content_type)) < 0)
        return rc;
    ssize_t n = tern_http_resp_write(w, body, len);
    return n < 0 ? (int)n : 0;
}

int tern_http_resp_text(tern_http_resp *w, int status, const char *text)
{
    TERN_CHECK_ARG(w);
    return tern_http_resp_send(w, status, "text/plain; charset=utf-8", text, strlen(text));
}

static int json_sink(const char *buffer, size_t size, void *data)
{
    return tern_http_resp_write(data, buffer, size) < 0 ? -1 : 0;
}

int tern_http_resp_json(tern_http_resp *w, int status, const json_t *value)
{
    TERN_CHECK_ARG(w);
    if (!value)
        return -EINVAL;
    int rc = tern_http_resp_set_status(w, status);
    if (rc < 0)
        return rc;
    if ((rc = tern_http_resp_set_header(w, "Content-Type", "application/json")) < 0)
        return rc;
    if (json_dump_callback(value, json_sink, w, JSON_COMPACT | JSON_ENCODE_ANY) < 0)
        return w->conn->io_error ? w->conn->io_error : -ENOMEM;
    return 0;
}

int tern_http_resp_error(tern_http_resp *w, int status, const char *msg)
{
    TERN_CHECK_ARG(w);
    char line[128];
    if (!msg) {
        snprintf(line, sizeof line, "%d %s\n", status, tern_http_status_text(status));
        msg = line;
    }
    return tern_http_resp_text(w, status, msg);
}

int tern_http_resp_buffered(tern_http_resp *w, char **data, size_t *len)
{
    TERN_CHECK_ARG(w);
    if (w->committed)
        return -EALREADY;
    TERN_ASSERT(w->start <= w->conn->out.len);
    *data = w->conn->out.p + w->start;
    *len = w->conn->out.len - w->start;
    return 0;
}

int tern_http_resp_replace_body(tern_http_resp *w, const void *data, size_t len)
{
    TERN_CHECK_ARG(w);
    if (w->committed)
        return -EALREADY;
    hconn *hc = w->conn;
    hc->out.len = w->start;
    w->body_bytes = len;
    if (w->head_only || len == 0)
        return 0;
    /* data may be a part of the buffered body itself (from
     * tern_http_resp_buffered): then it fits without growing the buffer,
     * and may overlap where it goes. */
    if (tern__growbuf_reserve(&hc->out, len) < 0)
        return -ENOMEM;
    TERN_ASSERT(len <= hc->out.cap - hc->out.len);
    memmove(hc->out.p + hc->out.len, data, len);
    hc->out.len += len;
    return 0;
}

int tern__http_resp_send_file(tern_http_resp *w, int fd, off_t offset, size_t len)
{
    hconn *hc = w->conn;
    if (hc->h2)
        return tern__h2_resp_send_file(w, fd, offset, len);
    if (w->committed)
        return -EALREADY;
    hc->out.len = w->start;     /* nothing buffered goes with a file */
    w->body_bytes = len;
    int rc = build_head(w, (int64_t)len, false);
    if (rc < 0 || (rc = insert_head(w, "", 0)) < 0)
        return rc;
    w->committed = w->done = true;
    if ((rc = tern__http_flush_out(hc)) < 0)
        return rc;
    if (w->head_only || bodyless_status(w->status) || len == 0)
        return 0;
    ssize_t n = tern_conn_sendfile(hc->c, fd, &offset, len, NULL);
    if (n < 0) {
        hc->io_error = (int)n;
        return (int)n;
    }
    return 0;
}

int tern__http_send_error(hconn *hc, int status, bool head_only)
{
    tern_http_resp w;
    tern__http_resp_init(&w, hc, NULL);
    w.head_only = head_only;
    w.close_after = true;
    hc->closing = true;
    /* an oversized head: the client is likely still sending it */
    hc->linger |= status == 413 || status == 414 || status == 431;
    tern_http_resp_error(&w, status, NULL);
    tern__http_resp_finish(&w);
    return tern__http_flush_out(hc);
}
