/*
 * w3c.c - the W3C Trace Context headers: traceparent parsed and
 * formatted strictly, tracestate checked and kept opaque.
 *
 * traceparent is "version-traceid-parentid-flags" in lowercase hex.
 * Uppercase is refused (the spec says a receiver must not accept it), as
 * are version ff and all-zero ids.  A later version may append fields, so
 * a version above 00 is read through its 00 prefix when that prefix is
 * followed by the end or a '-'; only the sampled flag is understood.
 *
 * tracestate is a list of key=value members we never interpret, only
 * bound (512 bytes, 32 members) and check for shape, so that a malformed
 * or oversized one is dropped rather than forwarded downstream.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "tern/trace.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* n bytes from 2n lowercase hex digits; false on any other character. */
static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

int tern_trace_parse_traceparent(const char *v, tern_trace_span_context *sc)
{
    if (!v || !sc)
        return -EINVAL;
    size_t len = strnlen(v, TERN_TRACE_PARENT_LEN + 1);
    uint8_t version, flags;
    if (len < TERN_TRACE_PARENT_LEN || !unhex(v, &version, 1) || version == 0xff)
        return -EINVAL;
    if (version == 0 ? len != TERN_TRACE_PARENT_LEN
                     : (len > TERN_TRACE_PARENT_LEN && v[TERN_TRACE_PARENT_LEN] != '-'))
        return -EINVAL;
    if (v[2] != '-' || v[35] != '-' || v[52] != '-')
        return -EINVAL;
    tern_trace_span_context t = {.remote = true};
    if (!unhex(v + 3, t.trace_id, 16) || !unhex(v + 36, t.span_id, 8) || !unhex(v + 53, &flags, 1))
        return -EINVAL;
    if (all_zero(t.trace_id, 16) || all_zero(t.span_id, 8))
        return -EINVAL;
    t.flags = version == 0 ? flags : (uint8_t)(flags & TERN_TRACE_FLAG_SAMPLED);
    *sc = t;
    return 0;
}

int tern_trace_format_traceparent(const tern_trace_span_context *sc, char *buf, size_t len)
{
    if (!sc || !buf || len < TERN_TRACE_PARENT_LEN + 1 || all_zero(sc->trace_id, 16) ||
        all_zero(sc->span_id, 8))
        return -EINVAL;
    memcpy(buf, "00-", 3);
    tern_trace_hex(sc->trace_id, 16, buf + 3);
    buf[35] = '-';
    tern_trace_hex(sc->span_id, 8, buf + 36);
    buf[52] = '-';
    tern_trace_hex(&sc->flags, 1, buf + 53);
    return 0;
}

/* ---- tracestate --------------------------------------------------------------- */

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
           c == '/';
}

/* A simple key starts with a lowercase letter, a tenant id may start with
 * a digit: [a-z0-9][a-z0-9_*-/]* (the first character checked by the
 * caller). */
static bool key_part(const char *k, size_t n, size_t max)
{
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!key_char(k[i]))
            return false;
    return true;
}

/* key = simple-key (<= 256) / tenant-id (<= 241) "@" system-id (<= 14). */
static bool valid_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (!at)
        return n > 0 && k[0] >= 'a' && k[0] <= 'z' && key_part(k, n, 256);
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    return tn > 0 && ((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')) &&
           key_part(k, tn, 241) && sn > 0 && at[1] >= 'a' && at[1] <= 'z' &&
           key_part(at + 1, sn, 14);
}

/* value: 1..256 printable ASCII characters but ',' and '=', not ending in
 * a space. */
static bool valid_value(const char *v, size_t n)
{
    if (n == 0 || n > 256 || v[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=')
            return false;
    return true;
}

typedef struct member {
    const char *key;
    size_t key_len;
} member;

int tern_trace_parse_tracestate(const char *v, tern_trace_span_context *sc)
{
    sc->tracestate[0] = 0;
    if (!v)
        return 0;
    size_t len = strlen(v);
    if (len > TERN_TRACE_STATE_MAX)
        return -E2BIG;
    member seen[TERN_TRACE_STATE_MAX_ENTRIES];
    size_t nseen = 0;
    for (const char *p = v; p < v + len;) {
        const char *end = memchr(p, ',', (size_t)(v + len - p));
        if (!end)
            end = v + len;
        /* optional whitespace around each member; empty members are allowed */
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        p = end + 1;
        if (a == b)
            continue;
        const char *eq = memchr(a, '=', (size_t)(b - a));
        if (!eq || !valid_key(a, (size_t)(eq - a)) || !valid_value(eq + 1, (size_t)(b - eq - 1)))
            return -EINVAL;
        if (nseen == TERN_TRACE_STATE_MAX_ENTRIES)
            return -EINVAL;
        for (size_t i = 0; i < nseen; i++)
            if (seen[i].key_len == (size_t)(eq - a) && memcmp(seen[i].key, a, seen[i].key_len) == 0)
                return -EINVAL;
        seen[nseen++] = (member){a, (size_t)(eq - a)};
    }
    memcpy(sc->tracestate, v, len + 1);
    return 0;
}
