/*
 * test_base_rand.c - the per-thread PRNG (src/base/rand.c): tern__rand_fill
 * writes exactly the bytes asked for, and its output varies in every byte.
 */
#include "check.h"

#include <stdint.h>

#include "base/rand.h"

static void rand_fill_writes_exactly_n_bytes(void)
{
    for (size_t n = 0; n <= 40; n++) {
        unsigned char buf[64];
        memset(buf, 0xA5, sizeof buf);
        tern__rand_fill(buf + 8, n);
        for (size_t i = 0; i < 8; i++)
            CHECK_EQ(buf[i], 0xA5);
        for (size_t i = 8 + n; i < sizeof buf; i++)
            CHECK_EQ(buf[i], 0xA5);
    }
}

/* Over 2000 draws of 24 bytes every byte position takes many values, and
 * no two draws are equal: a fill that repeated a word, left a byte fixed
 * or reused the state would fail. */
static void rand_fill_varies_in_every_byte(void)
{
    enum { DRAWS = 2000, N = 24 };
    static unsigned char d[DRAWS][N];
    for (int k = 0; k < DRAWS; k++)
        tern__rand_fill(d[k], N);
    for (int i = 0; i < N; i++) {
        int seen[256] = {0}, distinct = 0;
        for (int k = 0; k < DRAWS; k++)
            distinct += !seen[d[k][i]]++;
        CHECK(distinct > 200);
    }
    for (int k = 1; k < DRAWS; k++)
        CHECK(memcmp(d[k], d[k - 1], N) != 0);
    CHECK(memcmp(d[0], d[0] + 8, 8) != 0 && memcmp(d[0] + 8, d[0] + 16, 8) != 0);
}

TESTS(T(rand_fill_writes_exactly_n_bytes), T(rand_fill_varies_in_every_byte))
