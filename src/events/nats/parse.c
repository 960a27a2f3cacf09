/*
 * parse.c - the NATS server-to-client operations (parse.h).
 *
 * A line is found with memchr for '\n' (the CR before it is required); the
 * operation's name is matched case-insensitively, then its arguments are
 * split on spaces and tabs.  MSG and HMSG then take their payload, whose
 * size the line gave, and the CRLF after it.  Sizes are parsed digit by
 * digit with an overflow check; a size above max_payload is refused before
 * any wait for it, so a hostile peer cannot make the reader buffer
 * gigabytes.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "events/nats/parse.h"

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Does [s, s+n) start with the op name w (lower case), followed by the
 * end or a space? */
static bool op_is(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    if (n < wl)
        return false;
    for (size_t i = 0; i < wl; i++)
        if (lower((unsigned char)s[i]) != w[i])
            return false;
    return n == wl || is_space(s[wl]);
}

static bool parse_size(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

typedef struct arg {
    const char *p;
    size_t n;
} arg;

/* Split [s, s+n) into at most max fields: their count, or -1 for more. */
static int split(const char *s, size_t n, arg *a, int max)
{
    int k = 0;
    size_t i = 0;
    for (;;) {
        while (i < n && is_space(s[i]))
            i++;
        if (i == n)
            return k;
        if (k == max)
            return -1;
        size_t b = i;
        while (i < n && !is_space(s[i]))
            i++;
        a[k++] = (arg){s + b, i - b};
    }
}

static ssize_t parse_msg(const char *buf, size_t len, size_t linelen, size_t eol,
                         size_t max_payload, bool hdrs, tern__nats_op *op, size_t *need)
{
    size_t skip = hdrs ? 4 : 3;
    arg a[TERN__NATS_MAX_ARGS];
    int k = split(buf + skip, linelen - skip, a, TERN__NATS_MAX_ARGS);
    int want = hdrs ? 4 : 3;
    if (k != want && k != want + 1)
        return -EPROTO;
    bool has_reply = k == want + 1;
    uint64_t sid, hlen = 0, total;
    if (!parse_size(a[1].p, a[1].n, &sid))
        return -EPROTO;
    int sz = has_reply ? 3 : 2;
    if (hdrs) {
        if (!parse_size(a[sz].p, a[sz].n, &hlen))
            return -EPROTO;
        sz++;
    }
    if (!parse_size(a[sz].p, a[sz].n, &total) || total > max_payload || hlen > total)
        return -EPROTO;
    if (hdrs && hlen == 0)
        return -EPROTO;
    size_t whole = eol + (size_t)total + 2;
    if (len < whole) {
        *need = whole;
        return 0;
    }
    if (buf[whole - 2] != '\r' || buf[whole - 1] != '\n')
        return -EPROTO;
    op->kind = hdrs ? TERN__NATS_HMSG : TERN__NATS_MSG;
    op->subject = a[0].p;
    op->subject_len = a[0].n;
    op->sid = sid;
    op->reply = has_reply ? a[2].p : NULL;
    op->reply_len = has_reply ? a[2].n : 0;
    op->hdr = hdrs ? buf + eol : NULL;
    op->hdr_len = (size_t)hlen;
    op->data = buf + eol + hlen;
    op->data_len = (size_t)(total - hlen);
    return (ssize_t)whole;
}

ssize_t tern__nats_parse(const char *buf, size_t len, size_t max_payload, tern__nats_op *op,
                         size_t *need)
{
    *need = 0;
    memset(op, 0, sizeof *op);
    if (len == 0)
        return 0;
    size_t scan = len < TERN__NATS_MAX_LINE ? len : TERN__NATS_MAX_LINE;
    const char *nl = memchr(buf, '\n', scan);
    if (!nl)
        return len >= TERN__NATS_MAX_LINE ? -EPROTO : 0;
    size_t eol = (size_t)(nl - buf) + 1;
    if (eol < 2 || buf[eol - 2] != '\r')
        return -EPROTO;
    size_t ll = eol - 2;            /* the line without CRLF */
    if (op_is(buf, ll, "msg"))
        return parse_msg(buf, len, ll, eol, max_payload, false, op, need);
    if (op_is(buf, ll, "hmsg"))
        return parse_msg(buf, len, ll, eol, max_payload, true, op, need);
    if (op_is(buf, ll, "ping") && ll == 4)
        op->kind = TERN__NATS_PING;
    else if (op_is(buf, ll, "pong") && ll == 4)
        op->kind = TERN__NATS_PONG;
    else if (op_is(buf, ll, "+ok") && ll == 3)
        op->kind = TERN__NATS_OK;
    else if (op_is(buf, ll, "info") || op_is(buf, ll, "-err")) {
        op->kind = lower((unsigned char)buf[0]) == 'i' ? TERN__NATS_INFO : TERN__NATS_ERR;
        size_t i = 4;
        while (i < ll && is_space(buf[i]))
            i++;
        size_t e = ll;
        while (e > i && is_space(buf[e - 1]))
            e--;
        if (op->kind == TERN__NATS_ERR && e - i >= 2 && buf[i] == '\'' && buf[e - 1] == '\'') {
            i++;
            e--;
        }
        op->text = buf + i;
        op->text_len = e - i;
    } else
        return -EPROTO;
    return (ssize_t)eol;
}

int tern__nats_hdr_status(const char *hdr, size_t len)
{
    static const char v[] = "NATS/1.0";
    if (!hdr || len < sizeof v - 1 || memcmp(hdr, v, sizeof v - 1) != 0)
        return 0;
    size_t i = sizeof v - 1;
    while (i < len && is_space(hdr[i]))
        i++;
    int code = 0, digits = 0;
    while (i < len && digits < 3 && hdr[i] >= '0' && hdr[i] <= '9') {
        code = code * 10 + (hdr[i++] - '0');
        digits++;
    }
    return digits == 3 ? code : 0;
}

const char *tern__nats_hdr_get(const char *hdr, size_t len, const char *key, size_t *vlen)
{
    if (!hdr)
        return NULL;
    size_t kl = strlen(key);
    const char *end = hdr + len;
    const char *p = memchr(hdr, '\n', len);   /* skip the NATS/1.0 line */
    while (p && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        size_t n = (size_t)(le - p);
        if (n > kl && p[kl] == ':') {
            size_t i = 0;
            while (i < kl && lower((unsigned char)p[i]) == lower((unsigned char)key[i]))
                i++;
            if (i == kl) {
                const char *v = p + kl + 1, *ve = le;
                if (ve > v && ve[-1] == '\r')
                    ve--;
                while (v < ve && is_space(*v))
                    v++;
                while (ve > v && is_space(ve[-1]))
                    ve--;
                if (vlen)
                    *vlen = (size_t)(ve - v);
                return v;
            }
        }
        p = eol;
    }
    return NULL;
}
