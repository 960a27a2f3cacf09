/*
 * h2_mem.c - the allocator a server connection's nghttp2 session uses:
 * freed blocks of a few size classes kept on the connection for its next
 * allocations.
 *
 * Why.  nghttp2 allocates per stream and per frame (the stream, each
 * outbound frame, the response fields' copy, buffers), and a connection
 * under load opens and ends its streams in bursts (a read starts a few
 * dozen, one write ends them): glibc's per-thread cache keeps seven
 * blocks of a size, so most of a burst's frees went down its slow paths,
 * on whichever worker the writer ran.  nghttp2 runs only under the
 * connection's mutex (h2_internal.h), so these lists need no lock of
 * their own.
 *
 * Bounds.  A kept block was in use before, so a class never keeps more
 * than the connection had allocated at once, and at most H2_MEM_KEEP
 * blocks; the reader gives them all back once the connection is idle
 * (tern__h2_mem_drain, with its streams).  Sizes over the largest class
 * go to malloc, as does everything under ASan (its quarantine and
 * use-after-free checks see nghttp2's blocks one by one).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define H2_MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H2_MEM_ASAN 1
#endif
#endif

#define HDR 16u                 /* the class, before the block; keeps 16-byte alignment */
#define BIG 0xffu               /* malloc'd: over the largest class */
#define H2_MEM_KEEP 64

static const size_t class_size[H2_MEM_CLASSES] = { 64, 128, 256, 512, 1024, 2048 };

__attribute__((unused)) static unsigned class_of(size_t n)     /* unused under ASan */
{
    for (unsigned c = 0; c < H2_MEM_CLASSES; c++)
        if (n <= class_size[c])
            return c;
    return BIG;
}

static void *h2_malloc(size_t n, void *user)
{
    h2_conn *h2c = user;
#ifdef H2_MEM_ASAN
    (void)h2c;
    unsigned c = BIG;
#else
    unsigned c = class_of(n);
#endif
    unsigned char *b;
    if (c != BIG && h2c->mem_free[c]) {
        b = h2c->mem_free[c];
        memcpy(&h2c->mem_free[c], b + HDR, sizeof(void *));
        h2c->mem_nfree[c]--;
    } else if (!(b = malloc(HDR + (c == BIG ? n : class_size[c])))) {
        return NULL;
    }
    b[0] = (unsigned char)c;
    return b + HDR;
}

static void h2_free(void *p, void *user)
{
    h2_conn *h2c = user;
    if (!p)
        return;
    unsigned char *b = (unsigned char *)p - HDR;
    unsigned c = b[0];
    if (c == BIG || h2c->mem_nfree[c] >= H2_MEM_KEEP) {
        free(b);
        return;
    }
    memcpy(b + HDR, &h2c->mem_free[c], sizeof(void *));
    h2c->mem_free[c] = b;
    h2c->mem_nfree[c]++;
}

static void *h2_calloc(size_t nmemb, size_t size, void *user)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    void *p = h2_malloc(nmemb * size, user);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

static void *h2_realloc(void *p, size_t n, void *user)
{
    if (!p)
        return h2_malloc(n, user);
    unsigned char *b = (unsigned char *)p - HDR;
    unsigned c = b[0];
    if (c == BIG) {
        unsigned char *nb = realloc(b, HDR + n);
        return nb ? nb + HDR : NULL;
    }
    if (n <= class_size[c])
        return p;
    void *q = h2_malloc(n, user);
    if (!q)
        return NULL;
    memcpy(q, p, class_size[c]);
    h2_free(p, user);
    return q;
}

nghttp2_mem tern__h2_mem(h2_conn *h2c)
{
    return (nghttp2_mem){ .mem_user_data = h2c, .malloc = h2_malloc, .free = h2_free,
                          .calloc = h2_calloc, .realloc = h2_realloc };
}

void tern__h2_mem_drain(h2_conn *h2c)
{
    for (unsigned c = 0; c < H2_MEM_CLASSES; c++) {
        while (h2c->mem_free[c]) {
            unsigned char *b = h2c->mem_free[c];
            memcpy(&h2c->mem_free[c], b + HDR, sizeof(void *));
            free(b);
        }
        h2c->mem_nfree[c] = 0;
    }
}
