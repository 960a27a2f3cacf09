/*
 * dec.h - an unsigned integer as decimal digits, for numbers written on
 * every request (a status code as a metric label, a port): snprintf's
 * format parsing cost a thousand instructions for three digits.
 */
#ifndef TERN_BASE_DEC_H
#define TERN_BASE_DEC_H

#include <stddef.h>
#include <stdint.h>

#define TERN__DEC_MAX 21        /* UINT64_MAX's 20 digits and the NUL */

/* v's digits at out (TERN__DEC_MAX bytes are always enough), then a NUL;
 * returns the number of digits. */
static inline size_t tern__dec_u64(char *out, uint64_t v)
{
    char tmp[TERN__DEC_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

#endif
