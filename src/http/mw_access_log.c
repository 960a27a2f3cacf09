/*
 * mw_access_log.c - one JSON line per request, written after the chain has
 * answered.
 *
 * The line is built in a fixed buffer on the stack with bounded appends:
 * no allocation, and a client cannot make a line long enough to matter
 * (every client-chosen string is cut at a fixed size, never inside an
 * escape or a UTF-8 sequence).  Whatever a client sends, the line stays
 * one valid JSON object: quotes, backslashes and control characters are
 * escaped and bytes that are not UTF-8 become U+FFFD.
 */
#define _GNU_SOURCE
#include "tern/http_mw.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "tern/error.h"
#include "tern/log.h"
#include "tern/runtime.h"

#define LINE_MAX_BYTES 4096
#define PATH_MAX_BYTES 1024
#define UA_MAX_BYTES 256
#define SHORT_MAX_BYTES 128     /* method, remote address, request id, error */

typedef struct line {
    char b[LINE_MAX_BYTES];
    size_t n;
} line;

/* Room is always left for the closing "}\n", so appends never check it. */
#define LINE_ROOM(l) (sizeof(l)->b - 2 - (l)->n)

static void put(line *l, const char *s, size_t n)
{
    if (n > LINE_ROOM(l))
        n = LINE_ROOM(l);
    memcpy(l->b + l->n, s, n);
    l->n += n;
}

static void putf(line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->b + l->n, LINE_ROOM(l) + 1, fmt, ap);
    va_end(ap);
    if (k > 0)
        l->n += (size_t)k > LINE_ROOM(l) ? LINE_ROOM(l) : (size_t)k;
}

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    uint32_t min, cp;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, min = 0x80, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, min = 0x800, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (k > n)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* overlong forms, UTF-16 surrogates and past U+10FFFF are not UTF-8 */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return k;
}

/* "key":"escaped s", at most max bytes of the escaped value. */
static void put_str(line *l, const char *key, const char *s, size_t max)
{
    putf(l, ",\"%s\":\"", key);
    char esc[8];
    size_t used = 0, len = strlen(s);
    for (size_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)s + i;
        const char *out = (const char *)p;
        size_t on = 1, adv = 1;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p, out = esc, on = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            on = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p), out = esc;
        } else if (*p >= 0x80) {
            if ((adv = on = utf8_len(p, len - i)) == 0)
                out = "\\ufffd", on = 6, adv = 1;
        }
        if (used + on > max || on + 1 > LINE_ROOM(l))
            break;              /* cut whole: never half an escape or character */
        put(l, out, on);
        used += on;
        i += adv;
    }
    put(l, "\"", 1);
}

/* RFC 3339 UTC with milliseconds, for a wall-clock time in ns. */
static void put_time(line *l, int64_t wall_ns)
{
    time_t sec = (time_t)(wall_ns / TERN_SEC);
    struct tm tm;
    gmtime_r(&sec, &tm);
    putf(l, "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall_ns % TERN_SEC / TERN_MS));
}

static int64_t wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec;
}

int tern_http_mw_access_log(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_access_log_options *o = opts;
    int rc = tern_http_next(r, w);

    int64_t took = tern_now() - tern_http_req_start_time(r);
    if (took < 0)
        took = 0;
    /* the server answers an error with 500 only if nothing was sent yet */
    int status = rc < 0 && !tern_http_resp_committed(w) ? tern_http_error_status(rc)
                                                        : tern_http_resp_status(w);

    line l;
    l.n = 0;
    put_time(&l, wall_now() - took);
    put_str(&l, "method", tern_http_req_method(r), SHORT_MAX_BYTES);
    put_str(&l, "path", tern_http_req_path(r), PATH_MAX_BYTES);
    putf(&l, ",\"status\":%d,\"bytes\":%llu,\"duration_us\":%lld", status,
         (unsigned long long)tern_http_resp_body_bytes(w), (long long)(took / TERN_US));
    const char *s = tern_http_req_remote_addr(r);
    put_str(&l, "remote", s ? s : "", SHORT_MAX_BYTES);
    if ((s = tern_http_request_id(r)))
        put_str(&l, "request_id", s, SHORT_MAX_BYTES);
    if ((s = tern_http_req_header(r, "User-Agent")))
        put_str(&l, "user_agent", s, UA_MAX_BYTES);
    if (rc < 0)
        put_str(&l, "error", tern_strerror(rc), SHORT_MAX_BYTES);
    memcpy(l.b + l.n, "}\n", 2);
    l.n += 2;

    if (o && o->fn)
        o->fn(l.b, l.n, o->fn_arg);
    else if (o && o->out)
        fwrite(l.b, 1, l.n, o->out);
    else if (tern_log_write_line(l.b, l.n) == -ESRCH)
        fwrite(l.b, 1, l.n, stderr);    /* no logger: straight to stderr */
    return rc;
}
