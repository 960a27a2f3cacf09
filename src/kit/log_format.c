/*
 * log_format.c - one log record as one JSON line.
 *
 * Runs on the logging coroutine's stack for every line, so it avoids
 * snprintf where it can (integers, the time): the time's date-and-seconds
 * part is cached per thread and rebuilt only when the second changes.
 *
 * The output never exceeds TERN_LOG_LINE_MAX: every append checks against
 * `lim`, which leaves RESERVE bytes for the closing `,"truncated":true}\n`.
 * A field that does not fit is rolled back whole, except a string value
 * of which more than CUT_KEEP bytes fit: that is cut (at a character
 * boundary, never inside an escape) and closed.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kit/log_internal.h"

#define RESERVE 32
#define CUT_KEEP 64

typedef struct out {
    char *p;
    size_t len, lim;
    bool cut;                   /* something did not fit */
} out;

static inline bool put(out *o, const char *s, size_t n)
{
    if (o->len + n > o->lim) {
        o->cut = true;
        return false;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    return true;
}

#define PUT_LIT(o, s) put((o), (s), sizeof(s) - 1)

/* The length of the valid UTF-8 sequence at s (at most n bytes), or the
 * negated length of the maximal invalid subpart to replace by one U+FFFD
 * (Unicode's "substitution of maximal subparts"). */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;          /* overlong */
        else if (c == 0xED)
            hi = 0x9F;          /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;          /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;          /* above U+10FFFF */
    } else
        return -1;
    size_t i = 1;
    if (i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        while (i <= (size_t)need && i < n && s[i] >= 0x80 && s[i] <= 0xBF)
            i++;
    }
    return i == (size_t)need + 1 ? (int)i : -(int)i;
}

/* Bytes copied as they are, one bit each: printable ASCII but the quote
 * and the backslash (0x20-0x7F without 0x22 and 0x5C). */
static const uint64_t plain_bits[4] = {0xFFFFFFFB00000000u, 0xFFFFFFFFEFFFFFFFu, 0, 0};
#define PLAIN(c) ((plain_bits[(c) >> 6] >> ((c) & 63)) & 1)

/* Whether the 8 bytes in w are all plain, a word at a time: a byte below
 * 0x20, with the high bit, or equal to '"' or '\\' sets a high bit in the
 * result (the borrows can only add false alarms, which take the byte path). */
static inline bool word_plain(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t ctl = (w - ones * 0x20) & ~w;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    q = (q - ones) & ~q;
    b = (b - ones) & ~b;
    return ((ctl | q | b | w) & high) == 0;
}

/* If the r < 8 bytes at s are plain, copy them to d and return true.  Two
 * overlapping loads cover any length from 2 to 7 (as memcpy does for small
 * sizes), padded to a word with a plain byte; constant-size copies, so no
 * library call for the short keys a line is made of. */
static inline bool tail_plain_copy(char *d, const unsigned char *s, size_t r)
{
    const uint64_t pad = 0x6161616161616161u;       /* 'a' */
    if (r >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + r - 4, 4);
        if (!word_plain(a | (uint64_t)b << 32))
            return false;
        memcpy(d, &a, 4);
        memcpy(d + r - 4, &b, 4);
    } else if (r >= 2) {
        uint16_t a, b;
        memcpy(&a, s, 2);
        memcpy(&b, s + r - 2, 2);
        if (!word_plain(a | (uint64_t)b << 16 | (pad << 32)))
            return false;
        memcpy(d, &a, 2);
        memcpy(d + r - 2, &b, 2);
    } else if (r == 1) {
        if (!PLAIN(s[0]))
            return false;
        d[0] = (char)s[0];
    }
    return true;
}

/* s as a JSON string, quotes included.  Returns false if it was cut (the
 * closing quote is still written: RESERVE keeps room for it).  Inlined
 * into its few callers: a line has about eight strings, keys included,
 * and the calls cost 13% of a line's instructions (callgrind on
 * bench/kit_log_bench). */
static inline __attribute__((always_inline)) bool put_str(out *o, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    if (!PUT_LIT(o, "\""))
        return false;
    size_t i = 0;
    if (o->len + n + 1 <= o->lim) {
        /* The usual case, a plain string that fits: a word at a time, then
         * the last bytes one by one (no memcpy calls for short keys). */
        char *d = o->p + o->len;
        uint64_t w;
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, s + i, 8);
            if (!word_plain(w))
                break;
            memcpy(d + i, &w, 8);
        }
        if (n - i < 8 && tail_plain_copy(d + i, s + i, n - i))
            i = n;
        for (; i < n && PLAIN(s[i]); i++)
            d[i] = (char)s[i];
        o->len += i;
        if (i == n) {
            o->p[o->len++] = '"';
            return true;
        }
    }
    while (i < n) {
        while (i + 8 <= n && o->lim - o->len >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!word_plain(w))
                break;
            memcpy(o->p + o->len, &w, 8);
            o->len += 8;
            i += 8;
        }
        if (i == n)
            break;
        size_t run = i, end = n - i > 8 ? i + 8 : n;
        while (run < end && PLAIN(s[run]))
            run++;
        if (run > i) {
            size_t room = o->lim - o->len;
            size_t take = run - i < room ? run - i : room;
            memcpy(o->p + o->len, s + i, take);
            o->len += take;
            i += take;
            if (i < run)
                goto cut;
            continue;
        }
        unsigned c = s[i];
        char esc[6];
        const char *w = esc;
        size_t wn = 2;
        int adv = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
        } else if (c < 0x20) {
            esc[0] = '\\';
            switch (c) {
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                wn = 6;
            }
        } else {
            int sl = utf8_seq(s + i, n - i);
            if (sl > 0) {
                w = (const char *)s + i;
                wn = (size_t)sl;
                adv = sl;
            } else {
                w = "\xEF\xBF\xBD";
                wn = 3;
                adv = -sl;
            }
        }
        if (!put(o, w, wn))
            goto cut;
        i += (size_t)adv;
    }
    return PUT_LIT(o, "\"");
cut:
    o->cut = true;
    o->p[o->len++] = '"';       /* within RESERVE */
    return false;
}

static bool put_int(out *o, int64_t v)
{
    char b[24];
    char *e = b + sizeof b, *q = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    return put(o, q, (size_t)(e - q));
}

/* d with at most 6 decimals, if that reads back as d: most logged doubles
 * (durations, ratios) are such, and snprintf("%g") plus the strtod check
 * cost more than the rest of the line.  x / scale is the double nearest
 * the decimal x/scale (both exact integers, one correctly rounded
 * division), which is what a JSON reader gets.  (No libm: the library
 * does not link it.) */
static size_t fmt_decimal(char b[32], double d)
{
    static const double scales[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (!(d > -1e9 && d < 1e9))
        return 0;
    for (int k = 0; k < 7; k++) {
        double x = d * scales[k];
        if (x != (double)(int64_t)x || x / scales[k] != d)
            continue;
        uint64_t u = (uint64_t)(x < 0 ? -x : x);
        char *e = b + 32, *q = e;
        for (int i = 0; i < k; i++) {
            *--q = (char)('0' + u % 10);
            u /= 10;
        }
        if (k)
            *--q = '.';
        do {
            *--q = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (signbit(d))
            *--q = '-';
        size_t n = (size_t)(e - q);
        memmove(b, q, n);
        return n;
    }
    return 0;
}

/* The shortest of %.15g / %.17g that reads back as d. */
static bool put_double(out *o, double d)
{
    if (!isfinite(d))
        return PUT_LIT(o, "null");
    char b[32];
    size_t dn = fmt_decimal(b, d);
    if (dn)
        return put(o, b, dn);
    int n = snprintf(b, sizeof b, "%.15g", d);
    if (strtod(b, NULL) != d)
        n = snprintf(b, sizeof b, "%.17g", d);
    return put(o, b, (size_t)n);
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "2026-11-22T00:10:00.123Z" */
static bool put_time(out *o, int64_t unix_ns)
{
    static _Thread_local struct {
        int64_t sec;
        char text[20];          /* "YYYY-MM-DDTHH:MM:SS" */
    } cache = {.sec = -1};
    int64_t sec = unix_ns / 1000000000;
    if (sec != cache.sec) {
        struct tm tm;
        time_t t = (time_t)sec;
        gmtime_r(&t, &tm);
        int y = tm.tm_year + 1900;
        two(cache.text, y / 100);
        two(cache.text + 2, y % 100);
        cache.text[4] = '-';
        two(cache.text + 5, tm.tm_mon + 1);
        cache.text[7] = '-';
        two(cache.text + 8, tm.tm_mday);
        cache.text[10] = 'T';
        two(cache.text + 11, tm.tm_hour);
        cache.text[13] = ':';
        two(cache.text + 14, tm.tm_min);
        cache.text[16] = ':';
        two(cache.text + 17, tm.tm_sec);
        cache.sec = sec;
    }
    int ms = (int)(unix_ns / 1000000 % 1000);
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10),
                    (char)('0' + ms % 10), 'Z', '"'};
    return put(o, cache.text, 19) && put(o, frac, sizeof frac);
}

static void put_field(out *o, const tern_log_field *f)
{
    size_t start = o->len;
    bool ok = PUT_LIT(o, ",") && put_str(o, f->key ? f->key : "") && PUT_LIT(o, ":");
    if (!ok) {
        o->len = start;         /* a key alone is no use: drop the field */
        return;
    }
    switch (f->kind) {
    case TERN_LOG_KIND_STR:
        if (!f->v.s) {
            ok = PUT_LIT(o, "null");
        } else {
            /* A cut string is kept if enough of it fits to say something. */
            size_t vstart = o->len;
            ok = put_str(o, f->v.s) || o->len - vstart > CUT_KEEP;
        }
        break;
    case TERN_LOG_KIND_INT:
        ok = put_int(o, f->v.i);
        break;
    case TERN_LOG_KIND_DOUBLE:
        ok = put_double(o, f->v.d);
        break;
    case TERN_LOG_KIND_BOOL:
        ok = f->v.b ? PUT_LIT(o, "true") : PUT_LIT(o, "false");
        break;
    default:
        ok = PUT_LIT(o, "null");
    }
    if (!ok)
        o->len = start;
}

size_t tern_log_format(char *buf, int64_t unix_ns, tern_log_level level, const char *msg,
                       const tern_log_ids *ids, const tern_log_field *fields, size_t n)
{
    out o = {.p = buf, .len = 0, .lim = TERN_LOG_LINE_MAX - RESERVE};
    PUT_LIT(&o, "{\"time\":\"");
    put_time(&o, unix_ns);
    PUT_LIT(&o, ",\"level\":\"");
    const char *ln = tern_log_level_name(level);
    put(&o, ln, strlen(ln));
    PUT_LIT(&o, "\",\"msg\":");
    put_str(&o, msg ? msg : "");
    if (ids && ids->trace_id && !o.cut) {
        PUT_LIT(&o, ",\"trace_id\":");
        put_str(&o, ids->trace_id);
    }
    if (ids && ids->span_id && !o.cut) {
        PUT_LIT(&o, ",\"span_id\":");
        put_str(&o, ids->span_id);
    }
    for (size_t i = 0; i < n && !o.cut; i++)
        put_field(&o, &fields[i]);
    /* RESERVE holds the tail whatever happened above. */
    o.lim = TERN_LOG_LINE_MAX;
    if (o.cut)
        PUT_LIT(&o, ",\"truncated\":true");
    PUT_LIT(&o, "}\n");
    return o.len;
}
