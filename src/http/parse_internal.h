/*
 * parse_internal.h - what tern's HTTP/1.1 parsers share: the character
 * classes of RFC 9110 5.6, the field-section parser, and the small readers
 * of list values and Content-Length.  Internal to src/http/.
 */
#ifndef TERN_HTTP_PARSE_INTERNAL_H
#define TERN_HTTP_PARSE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tern/http_parse.h"

enum {
    TERN_HTTP_TCHAR = 1,        /* token character */
    TERN_HTTP_VCHAR = 2,        /* visible ASCII */
    TERN_HTTP_FIELD = 4,        /* field-value: VCHAR, SP, HTAB, obs-text */
    TERN_HTTP_HOST = 8,         /* in a Host value: reg-name, IP literal, escapes, ':' */
};

extern unsigned char tern__http_chars[256];

/* Fill tern__http_chars once; every parser entry point calls it first. */
void tern__http_chars_init(void);

static inline bool tern_http_is(unsigned char c, int k)
{
    return tern__http_chars[c] & k;
}

/* Whether any of the eight bytes of w is below 0x20 (a control
 * character: CR, LF, HTAB and the ones no field may hold) or DEL: a word
 * without one is eight bytes of a field value, none ending it, so long
 * values (a bearer token) are scanned a word at a time and only a word
 * with one is looked at byte by byte.  (The classic test: a byte b < n
 * borrows in b - n and has its top bit clear; exact as a yes/no.) */
static inline bool tern__http_word_has_ctl(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t del = w ^ (0x7f * ones);
    return (((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & high;
}

/* a[0..alen) equals the lower-case literal lit, ignoring ASCII case. */
static inline bool tern_http_ieq(const char *a, size_t alen, const char *lit)
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

/* The value of a hex digit, or -1. */
static inline int tern_http_hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Next comma-separated element of a list value, trimmed; false at the end. */
bool tern__http_list_next(const char **p, const char *end, const char **s, size_t *n);

/* A Content-Length value: 1*DIGIT, at most 18 of them; -1 if malformed. */
int64_t tern__http_content_length(const char *v, size_t n);

/* Parse field lines from buf[off..len) through the empty line that ends
 * them, into headers[0..max_headers).  Returns the offset just past that
 * line, TERN_HTTP_INCOMPLETE, or TERN_HTTP_BAD with *status 400 (syntax)
 * or 431 (past max_head bytes from buf, or more than max_headers). */
int tern__http_parse_fields(const char *buf, size_t len, size_t off, size_t max_head,
                           tern_http_header *headers, size_t max_headers, size_t *nheaders,
                           int *status);

#endif
