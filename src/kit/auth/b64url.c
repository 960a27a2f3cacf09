/*
 * b64url.c - base64url without padding (RFC 4648 section 5), as JWS
 * (RFC 7515 section 2) writes every part of a token.  Decoding is strict:
 * a token has exactly one spelling, so a signature cannot be altered in
 * its unused low bits and still pass, and two spellings of one token never
 * look different to a cache or a deny list.
 */
#include "kit/auth/internal.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t tern__b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t tern__b64url_encode(const void *src, size_t n, char *dst)
{
    const unsigned char *s = src;
    char *d = dst;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = alphabet[v >> 6 & 63];
        *d++ = alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)s[i] << 16;
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[v >> 12 & 63];
        *d++ = alphabet[v >> 6 & 63];
    }
    return (size_t)(d - dst);
}

static int value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long tern__b64url_decode(const char *src, size_t n, unsigned char *dst)
{
    if (n % 4 == 1)
        return -1;
    unsigned char *d = dst;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value(src[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *d++ = (unsigned char)(acc >> bits);
        }
    }
    /* The 2 or 4 bits left over belong to no byte: canonical text has
     * them zero. */
    if (bits && (acc & ((1u << bits) - 1)))
        return -1;
    return (long)(d - dst);
}
