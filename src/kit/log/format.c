/*
 * format.c - one log record as one JSON line.
 *
 * Runs on the logging coroutine's stack for every line, so it avoids
 * snprintf where it can (integers, doubles of a few decimals, the time),
 * never measures a string before copying it, and writes the line's head
 * from a per-thread cache of the time up to the second plus a constant
 * per level.
 *
 * The output never exceeds TERN_LOG_LINE_MAX: the head (64 bytes at most)
 * always fits; every later append checks against `lim`, which leaves
 * RESERVE bytes for the closing `,"truncated":true}\n`.
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

#include "base/check.h"
#include "kit/log/internal.h"

#define RESERVE 32
#define CUT_KEEP 64

/* what RESERVE keeps back holds a cut string's closing quote (written
 * past lim) and then the closing tail */
_Static_assert(1 + sizeof ",\"truncated\":true}\n" - 1 <= RESERVE, "RESERVE holds the tail");

typedef tern__log_line out;

/* len in a local: the memcpy writes chars, which may alias *o, so o->len
 * would be read again after it. */
static inline bool put(out *o, const char *s, size_t n)
{
    size_t len = o->len;
    TERN_ASSERT(len <= o->lim + 1);     /* + a cut string's closing quote */
    if (len + n > o->lim) {
        o->cut = true;
        return false;
    }
    memcpy(o->p + len, s, n);
    o->len = len + n;
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

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#if defined(__SSE2__)
#include <emmintrin.h>
/* Bit i of the result is set where byte i of w is not plain: NUL or another
 * control character, '"', '\\', or one with the high bit (UTF-8, checked
 * the slow way).  Three byte compares (the signed "below 0x20" takes the
 * high-bit bytes too) and a movemask. */
#define X16(c) {c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c}
static const _Alignas(16) char vec_space[16] = X16(0x20);
static const _Alignas(16) char vec_quote[16] = X16('"');
static const _Alignas(16) char vec_bslash[16] = X16('\\');
#undef X16

static inline unsigned special16(__m128i v)
{
    /* the constants are loads (SSE2 has no byte broadcast to build them) */
    __m128i m = _mm_or_si128(
        _mm_cmplt_epi8(v, _mm_load_si128((const __m128i *)vec_space)),
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_load_si128((const __m128i *)vec_quote)),
                     _mm_cmpeq_epi8(v, _mm_load_si128((const __m128i *)vec_bslash))));
    return (unsigned)_mm_movemask_epi8(m);
}

static inline unsigned special_bytes(uint64_t w)
{
    return special16(_mm_cvtsi64_si128((long long)w)) & 0xFF;
}
#define HAVE_SPECIAL16 1
#define SPECIAL_FROM(off) (0xFFu >> (off))
#define SPECIAL_INDEX(m) ((size_t)__builtin_ctz(m))
#else
/* Bit 7 of byte i of the result is set where byte i of w is not plain:
 * NUL or another control character, '"', '\\', or one with the high bit
 * (UTF-8, checked the slow way).  The lowest flagged byte is exact: a
 * borrow only travels up from a flagged byte, so it can only add false
 * alarms above the first one. */
static inline uint64_t special_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t ctl = (w - ones * 0x20) & ~w;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    q = (q - ones) & ~q;
    b = (b - ones) & ~b;
    return (ctl | q | b | w) & high;
}
#define SPECIAL_FROM(off) (0x8080808080808080u >> (8 * (off)))
#define SPECIAL_INDEX(m) ((size_t)__builtin_ctzll(m) >> 3)
#endif

/* Copy the plain bytes at the start of s to d, which has room for `room`
 * bytes; returns how many.  Stops at the first byte that is not plain (the
 * terminating NUL included: no strlen first) or when room runs out.
 *
 * A word at a time with aligned loads, as glibc's strlen does: the first
 * load starts at the word holding s[0] and its bytes before s are shifted
 * out; an aligned load never crosses a page, so reading up to 7 bytes past
 * the NUL is safe, but it is out of bounds for ASan (and may share a word
 * with another thread's data, for TSan): both are told so.  With SSE2,
 * once s + n is 16-aligned the loads are 16 bytes.  Each load is stored
 * whole while room remains for it; the length returned says which bytes
 * count. */
typedef uint64_t __attribute__((may_alias)) word_alias;

__attribute__((no_sanitize("address", "thread"))) static inline size_t
copy_plain(char *d, const char *s, size_t room)
{
    uintptr_t at = (uintptr_t)s;
    size_t off = at & 7;
    /* plain loads, not memcpy: a sanitizer would check a memcpy */
    uint64_t w = *(const word_alias *)(at - off);
    w >>= 8 * off;
    /* the shifted-in zeros would read as NUL: only 8 - off bytes count */
    __typeof__(special_bytes(0)) m = special_bytes(w) & SPECIAL_FROM(off);
    size_t n = 8 - off;
    if (room < 8)
        goto bytewise;
    memcpy(d, &w, 8);
    if (m)
        return SPECIAL_INDEX(m);
#ifdef HAVE_SPECIAL16
    /* 16 bytes a step from the first 16-aligned byte: ids, paths and
     * addresses are 15 to 40 bytes long */
    if (((uintptr_t)(s + n) & 8) && n + 8 <= room) {
        w = *(const word_alias *)(s + n);
        m = special_bytes(w);
        memcpy(d + n, &w, 8);
        if (m)
            return n + SPECIAL_INDEX(m);
        n += 8;
    }
    while (n + 16 <= room) {
        __m128i v = _mm_load_si128((const __m128i *)(s + n));     /* aligned */
        unsigned m16 = special16(v);
        _mm_storeu_si128((__m128i *)(d + n), v);
        if (m16)
            return n + (size_t)__builtin_ctz(m16);
        n += 16;
    }
#endif
    while (n + 8 <= room) {
        w = *(const word_alias *)(s + n);       /* aligned */
        m = special_bytes(w);
        memcpy(d + n, &w, 8);
        if (m)
            return n + SPECIAL_INDEX(m);
        n += 8;
    }
bytewise:
    if (room < 8)
        n = 0;
    while (n < room && PLAIN((unsigned char)s[n])) {
        d[n] = s[n];
        n++;
    }
    return n;
}
#else
static inline size_t copy_plain(char *d, const char *s, size_t room)
{
    size_t n = 0;
    while (n < room && PLAIN((unsigned char)s[n])) {
        d[n] = s[n];
        n++;
    }
    return n;
}
#endif

/* s, or its first max bytes (never part of a character), as a JSON string
 * between open (which holds its opening quote) and close (its closing
 * one).  Returns false if the output was cut (a closing quote is still
 * written: RESERVE keeps room for it).  Inlined
 * into its few callers: a line has about eight strings, keys included.
 * Plain runs go through copy_plain; what stops it (the end, an escape, a
 * UTF-8 sequence, the limit) is looked at here, one character at a time. */
static inline __attribute__((always_inline)) bool put_qstr(out *o, const char *open, size_t on,
                                                            const char *str, size_t max,
                                                            const char *close, size_t cn)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    /* In locals, written back once: each byte stored through p may alias
     * *o, which would send o->len back to memory after every store.  A
     * max of SIZE_MAX (no input bound) is a constant in most callers, and
     * the bound's tests fold away there. */
    char *p = o->p;
    size_t len = o->len, lim = o->lim;
    if (len + on > lim) {
        o->cut = true;
        return false;
    }
    memcpy(p + len, open, on);
    len += on;
    size_t i = 0;
    for (;;) {
        size_t room = lim - len;
        if (max != SIZE_MAX && max - i < room)
            room = max - i;
        size_t k = copy_plain(p + len, (const char *)s + i, room);
        len += k;
        i += k;
        if (max != SIZE_MAX && i >= max)
            break;              /* the input bound: an end, not a cut */
        unsigned c = s[i];
        if (c == 0)
            break;
        char esc[6];
        const char *w = esc;
        size_t wn = 2;
        size_t adv = 1;
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
        } else if (c >= 0x80) {
            /* utf8_seq stops at the NUL: it is not a continuation byte */
            int sl = utf8_seq(s + i, 4);
            if (sl > 0 && (size_t)sl > max - i)
                break;          /* a character across the input bound: end before it */
            if (sl > 0) {
                w = (const char *)s + i;
                wn = (size_t)sl;
                adv = (size_t)sl;
            } else {
                w = "\xEF\xBF\xBD";
                wn = 3;
                adv = (size_t)-sl < max - i ? (size_t)-sl : max - i;   /* stay inside max */
            }
        } else {
            goto cut;           /* a plain byte copy_plain left: out of room */
        }
        if (len + wn > lim)
            goto cut;
        memcpy(p + len, w, wn);
        len += wn;
        i += adv;
    }
    if (len + cn <= lim) {
        memcpy(p + len, close, cn);
        o->len = len + cn;
        return true;
    }
cut:
    o->cut = true;
    TERN_ASSERT(len <= lim);
    p[len++] = '"';             /* within RESERVE */
    o->len = len;
    return false;
}

/* A string value: "s" */
#define put_str(o, s) put_qstr((o), "\"", 1, (s), SIZE_MAX, "\"", 1)
/* A field's key, after the field before it: ,"key": */
#define put_key(o, s) put_qstr((o), ",\"", 2, (s), SIZE_MAX, "\":", 2)

/* The number of decimal digits of u. */
static inline size_t digits(uint64_t u)
{
    size_t n = 1;
    for (; u >= 10000; u /= 10000)
        n += 4;
    return n + (u >= 10) + (u >= 100) + (u >= 1000);
}

/* "00" to "99": two digits per division. */
static const char digit_pairs[201] =
    "0001020304050607080910111213141516171819"
    "2021222324252627282930313233343536373839"
    "4041424344454647484950515253545556575859"
    "6061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Writes v's digits (digits(v) of them) to end just before q; returns
 * where they start. */
static inline char *put_digits(char *q, uint64_t v)
{
    while (v >= 100) {
        q -= 2;
        memcpy(q, digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        q -= 2;
        memcpy(q, digit_pairs + 2 * v, 2);
    } else {
        *--q = (char)('0' + v);
    }
    return q;
}

/* Written in place, right to left, once the length is known: no copy. */
static inline __attribute__((always_inline)) bool put_int(out *o, int64_t v)
{
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    size_t n = digits(u) + (v < 0), len = o->len;
    if (len + n > o->lim) {
        o->cut = true;
        return false;
    }
    char *q = put_digits(o->p + len + n, u);
    if (v < 0)
        *--q = '-';
    o->len = len + n;
    return true;
}

/* d with at most 6 decimals, if that reads back as d: most logged doubles
 * (durations, ratios) are such, and snprintf("%g") plus the strtod check
 * cost more than the rest of the line.  x / scale is the double nearest
 * the decimal x/scale (both exact integers, one correctly rounded
 * division), which is what a JSON reader gets.  (No libm: the library
 * does not link it.)  Written in place, right to left once the length is
 * known, as put_int does: built in a buffer and copied, the copy's wide
 * load waited for the byte stores before it to drain.  -1: d is not
 * such a number; else whether it fit. */
static int put_decimal(out *o, double d)
{
    static const double scales[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (!(d > -1e9 && d < 1e9))
        return -1;
    for (int k = 0; k < 7; k++) {
        double x = d * scales[k];
        if (x != (double)(int64_t)x || x / scales[k] != d)
            continue;
        uint64_t u = (uint64_t)(x < 0 ? -x : x);
        size_t ki = (size_t)k;
        /* d * 100 may miss an integer by a rounding that d * 1000 does
         * not (10.05): the same value, written without the zeros */
        while (ki && u % 10 == 0) {
            u /= 10;
            ki--;
        }
        /* u's digits, the last ki after the point, at least one before it
         * (no division by scales[k]: a variable divisor is a real div) */
        size_t nd = digits(u);
        bool neg = signbit(d);
        size_t n = (nd > ki ? nd - ki : 1) + (ki ? ki + 1 : 0) + neg, len = o->len;
        if (len + n > o->lim) {
            o->cut = true;
            return 0;
        }
        char *q = o->p + len + n;
        for (size_t i = 0; i < ki; i++) {
            *--q = (char)('0' + u % 10);
            u /= 10;
        }
        if (ki)
            *--q = '.';
        q = put_digits(q, u);
        if (neg)
            *--q = '-';
        o->len = len + n;
        return 1;
    }
    return -1;
}

/* The shortest of %.15g / %.17g that reads back as d. */
static bool put_double(out *o, double d)
{
    if (!isfinite(d))
        return PUT_LIT(o, "null");
    int r = put_decimal(o, d);
    if (r >= 0)
        return r;
    char b[64];
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

/* The line's head, up to the message's opening: always fits, so written
 * with fixed-size copies and no checks.
 *   {"time":"2026-11-22T00:10:00.123Z","level":"info","msg":
 * The part up to the seconds is cached per thread and rebuilt only when
 * the second changes; each level's tail is a constant. */
#define HEAD_PREFIX 28          /* {"time":"YYYY-MM-DDTHH:MM:SS */
#define HEAD_TAIL 32
/* "the head (64 bytes at most) always fits", with room for the rest */
_Static_assert(HEAD_PREFIX + 4 + HEAD_TAIL <= 64, "a line's head is at most 64 bytes");
_Static_assert(64 + RESERVE < TERN_LOG_LINE_MAX, "the head and the tail fit a line");

static size_t put_head(char *p, int64_t unix_ns, tern_log_level level)
{
    static _Thread_local struct {
        int64_t sec;
        char text[32];
    } cache = {.sec = -1};
    static const struct {
        char s[HEAD_TAIL];
        size_t n;
    } tails[] = {
#define TAIL(name) {"Z\",\"level\":\"" name "\",\"msg\":", sizeof("Z\",\"level\":\"" name "\",\"msg\":") - 1}
        TAIL("debug"), TAIL("info"), TAIL("warn"), TAIL("error"), TAIL("off"), TAIL("?"),
#undef TAIL
    };
    int64_t sec = unix_ns / 1000000000;
    if (sec != cache.sec) {
        struct tm tm;
        time_t t = (time_t)sec;
        gmtime_r(&t, &tm);
        char *c = cache.text;
        memcpy(c, "{\"time\":\"", 9);
        int y = tm.tm_year + 1900;
        two(c + 9, y / 100);
        two(c + 11, y % 100);
        c[13] = '-';
        two(c + 14, tm.tm_mon + 1);
        c[16] = '-';
        two(c + 17, tm.tm_mday);
        c[19] = 'T';
        two(c + 20, tm.tm_hour);
        c[22] = ':';
        two(c + 23, tm.tm_min);
        c[25] = ':';
        two(c + 26, tm.tm_sec);
        cache.sec = sec;
    }
    _Static_assert(sizeof cache.text == HEAD_PREFIX + 4, "the cached text covers the ms");
    memcpy(p, cache.text, sizeof cache.text);   /* the 4 bytes past it are overwritten */
    int ms = (int)(unix_ns / 1000000 % 1000);
    p[HEAD_PREFIX] = '.';
    p[HEAD_PREFIX + 1] = (char)('0' + ms / 100);
    p[HEAD_PREFIX + 2] = (char)('0' + ms / 10 % 10);
    p[HEAD_PREFIX + 3] = (char)('0' + ms % 10);
    size_t i = level == TERN_LOG_DEBUG ? 0 : level == TERN_LOG_INFO ? 1 : level == TERN_LOG_WARN ? 2
             : level == TERN_LOG_ERROR ? 3 : level == TERN_LOG_OFF ? 4 : 5;
    memcpy(p + HEAD_PREFIX + 4, tails[i].s, HEAD_TAIL);
    TERN_ASSERT(tails[i].n < HEAD_TAIL);
    return HEAD_PREFIX + 4 + tails[i].n;
}

/* A string whose length the caller knows (a literal: TERN_LOG_KEY_LEN_)
 * and that needs no escapes, between open and close (2 bytes each, for
 * a key ,"key": and for a value "s" only their first counts): one 16-byte
 * load and store.  false (nothing written) for any other, which then goes
 * the long way.  The load may read past the string's NUL, but never into
 * another page: a literal's neighbours in .rodata (or, for a key_len set
 * by hand, whatever follows the key in its page), out of bounds only for
 * ASan and TSan, which are told. */
#ifdef HAVE_SPECIAL16
__attribute__((no_sanitize("address", "thread"))) static inline bool
put_known(out *o, const char *s, size_t n, const char open[2], size_t on, const char close[2],
          size_t cn)
{
    size_t len = o->len;
    if (n - 1 >= 16 || !s || o->lim - len < 20 || ((uintptr_t)s & 4095) > 4096 - 16)
        return false;
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    if (special16(v) & ((1u << n) - 1))
        return false;
    char *p = o->p + len;
    memcpy(p, open, 2);
    _mm_storeu_si128((__m128i *)(p + on), v);
    memcpy(p + on + n, close, 2);
    o->len = len + on + n + cn;
    return true;
}
#else
static inline bool put_known(out *o, const char *s, size_t n, const char open[2], size_t on,
                             const char close[2], size_t cn)
{
    (void)o, (void)s, (void)n, (void)open, (void)on, (void)close, (void)cn;
    return false;
}
#endif

static inline __attribute__((always_inline)) void put_field(out *o, const tern_log_field *f)
{
    if (o->cut)
        return;
    size_t start = o->len;
    bool ok = put_known(o, f->key, f->key_len, ",\"", 2, "\":", 2) ||
              put_key(o, f->key ? f->key : "");
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

/* begin and end, inlined into tern__log_format (a call each is a tenth
 * of a short line) and wrapped below for the access log */
static inline __attribute__((always_inline)) void line_begin(out *o, char *buf, int64_t unix_ns,
                                                             tern_log_level level, const char *msg,
                                                             size_t msg_len,
                                                             const tern_log_ids *ids)
{
    *o = (out){.p = buf, .lim = TERN_LOG_LINE_MAX - RESERVE};
    o->len = put_head(buf, unix_ns, level);
    TERN_ASSERT(o->len <= 64 && o->len < o->lim);
    if (!put_known(o, msg, msg_len, "\"\"", 1, "\"\"", 1))
        put_str(o, msg ? msg : "");
    if (ids && ids->trace_id && !o->cut) {
        PUT_LIT(o, ",\"trace_id\":");
        put_str(o, ids->trace_id);
    }
    if (ids && ids->span_id && !o->cut) {
        PUT_LIT(o, ",\"span_id\":");
        put_str(o, ids->span_id);
    }
}

/* A TERN__LOG_KEY: one fixed-size copy when it is short and there is room
 * for the whole copy (the literal's padding makes reading that far safe;
 * the bytes past key_len are overwritten or past the line's end). */
static inline bool put_key_literal(out *o, const char *key, size_t key_len)
{
    size_t len = o->len;
    if (key_len <= TERN__LOG_KEY_COPY && o->lim - len >= TERN__LOG_KEY_COPY) {
        memcpy(o->p + len, key, TERN__LOG_KEY_COPY);
        o->len = len + key_len;
        return true;
    }
    return put(o, key, key_len);
}

void tern__log_line_fields(out *o, const tern__log_lfield *f, size_t n)
{
    for (size_t i = 0; i < n && !o->cut; i++, f++) {
        size_t start = o->len;
        if (!put_key_literal(o, f->key, f->key_len))
            goto drop;
        if (!f->s) {
            if (put_int(o, f->i))
                continue;
        } else {
            /* a cut string is kept if enough of it fits to say something */
            size_t vstart = o->len;
            if (put_qstr(o, "\"", 1, f->s, f->max, "\"", 1) || o->len - vstart > CUT_KEEP)
                continue;
        }
drop:
        o->len = start;
    }
}

static inline __attribute__((always_inline)) size_t line_end(out *o)
{
    /* RESERVE holds the tail whatever happened before. */
    TERN_ASSERT(o->len <= TERN_LOG_LINE_MAX - RESERVE + 1);  /* + a cut string's '"' */
    o->lim = TERN_LOG_LINE_MAX;
    if (o->cut)
        PUT_LIT(o, ",\"truncated\":true");
    PUT_LIT(o, "}\n");
    TERN_ASSERT(o->len <= TERN_LOG_LINE_MAX && o->p[o->len - 1] == '\n');
    return o->len;
}

void tern__log_line_begin(out *o, char *buf, int64_t unix_ns, tern_log_level level,
                          const char *msg, size_t msg_len, const tern_log_ids *ids)
{
    line_begin(o, buf, unix_ns, level, msg, msg_len, ids);
}

size_t tern__log_line_end(out *o)
{
    return line_end(o);
}

size_t tern__json_quote(char *dst, const char *s)
{
    out o = {.p = dst, .lim = SIZE_MAX / 2};
    put_str(&o, s);
    return o.len;
}

size_t tern__log_format(char *buf, int64_t unix_ns, tern_log_level level, const char *msg,
                       size_t msg_len, const tern_log_ids *ids, const tern_log_field *fields,
                       size_t n)
{
    out o;
    line_begin(&o, buf, unix_ns, level, msg, msg_len, ids);
    for (size_t i = 0; i < n && !o.cut; i++)
        put_field(&o, &fields[i]);  /* inlined: one call per line, not per field */
    return line_end(&o);
}
