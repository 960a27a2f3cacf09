/*
 * test_base_buf.c - the growing byte buffer (src/base/buf.c): appends keep
 * every byte across growth, an empty append needs no memory, and an
 * allocation that cannot be made sets oom and keeps it set.
 */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>

#include "base/buf.h"

static void buf_keeps_every_byte_across_growth(void)
{
    tern__buf b = {0};
    size_t want = 0;
    /* pieces of 0 to 299 bytes, 20,000+ bytes in all: many doublings */
    for (size_t k = 0; k < 150; k++) {
        char piece[300];
        size_t n = k * 37 % 300;
        for (size_t i = 0; i < n; i++)
            piece[i] = (char)(want + i);
        tern__buf_put(&b, piece, n);
        want += n;
        CHECK_EQ(b.len, want);
        CHECK(b.cap >= b.len);
    }
    CHECK(!b.oom);
    for (size_t i = 0; i < want; i++)
        CHECK_EQ((unsigned char)b.p[i], (unsigned char)i);
    free(b.p);
}

static void buf_room_grows_only_when_needed(void)
{
    tern__buf b = {0};
    tern__buf_put(&b, "", 0);
    CHECK(b.p == NULL && b.len == 0 && !b.oom);    /* an empty append allocates nothing */
    CHECK(tern__buf_room(&b, 10));
    char *first = b.p;
    size_t cap = b.cap;
    CHECK(first != NULL && cap >= 10);
    CHECK(tern__buf_room(&b, cap));                 /* fits as it is */
    CHECK(b.p == first && b.cap == cap);
    b.len = cap;
    CHECK(tern__buf_room(&b, 1));
    CHECK(b.cap >= cap + 1);
    free(b.p);
}

static void buf_oom_is_sticky(void)
{
    tern__buf b = {0};
    tern__buf_put(&b, "abc", 3);
    /* more than can ever be allocated: refused without overflowing */
    CHECK(!tern__buf_room(&b, SIZE_MAX - 1));
    CHECK(b.oom);
    CHECK(!tern__buf_room(&b, 1));
    tern__buf_put(&b, "d", 1);
    CHECK_EQ(b.len, 3);                             /* nothing appended once oom */
    CHECK(memcmp(b.p, "abc", 3) == 0);
    free(b.p);
}

TESTS(T(buf_keeps_every_byte_across_growth), T(buf_room_grows_only_when_needed),
      T(buf_oom_is_sticky))
