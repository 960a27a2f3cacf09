/*
 * hex.c - bytes to lower-case hex.
 *
 * With SSE2, eight bytes at a time: split each byte into its two nibbles,
 * interleave them high first, and turn each nibble into its digit with one
 * compare (nibbles above 9 get 'a' - 10 added instead of '0').  About a
 * tenth of the instructions of the table loop, which stays for the tail
 * and for other targets.
 */
#include "base/hex.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void tern__hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i low4 = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9);
    const __m128i zero = _mm_set1_epi8('0'), alpha = _mm_set1_epi8('a' - 10 - '0');
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, in + i, 8);
        __m128i b = _mm_cvtsi64_si128((long long)w);
        __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), low4);
        __m128i lo = _mm_and_si128(b, low4);
        __m128i nib = _mm_unpacklo_epi8(hi, lo);        /* hi0 lo0 hi1 lo1 ... */
        __m128i big = _mm_cmpgt_epi8(nib, nine);
        __m128i ch = _mm_add_epi8(_mm_add_epi8(nib, zero), _mm_and_si128(big, alpha));
        _mm_storeu_si128((__m128i *)(out + 2 * i), ch);
    }
#endif
    for (; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}
