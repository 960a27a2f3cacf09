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
 *
 * Also here: tern__h2_buf_start, the small first block of a stream's
 * request-body and response buffers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* Two blocks nghttp2 makes while the session is made and keeps for its
 * life get pages of their own (a mapping each, whole pages, no header of
 * ours), told apart by their address (h2_free, h2_realloc: neither is
 * ever a class block):
 *   - the outbound frame buffer (one chunk of a frame's most, 16 KiB and
 *     a header), the only block of that size made then: an idle
 *     connection gives all its pages back (tern__h2_mem_idle), where a
 *     heap block kept its two end pages, shared with its neighbours;
 *   - the stream map's table (256 buckets of 16 bytes, calloc'd), the
 *     only calloc of one page made then (the session, HPACK's tables and
 *     its deflater and inflater are other sizes, or malloc'd): a fresh
 *     mapping is zeroed and untouched, so it costs no page until a stream
 *     goes in (a connection that only said SETTINGS), where calloc's
 *     zeroing made it resident at once.  (Once a stream has been in it,
 *     nghttp2 keeps the last closed streams there for RFC 7540's
 *     priorities and for telling frames on closed streams apart, so the
 *     page stays.)
 * Mapped rather than posix_memalign'd: the alignment's leftovers stayed
 * in the heap as holes (10.3 KB per idle h2c connection against 9.0 KB
 * mapped, measured with the map's page released too).  Neighbouring
 * mappings merge: 10,000 connections made 72 in all. */
#define FRAMEBUF_MIN (16 * 1024)
#define MAPTAB_BYTES 4096

_Atomic unsigned long tern__h2_framebufs_released;
_Atomic size_t tern__h2_page_bytes;

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t page_round(size_t n)
{
    size_t pg = page_size();
    return (n + pg - 1) & ~(pg - 1);
}

static void *page_alloc(size_t n)
{
    if (n > SIZE_MAX - page_size())
        return NULL;
    void *p = mmap(NULL, page_round(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    atomic_fetch_add_explicit(&tern__h2_page_bytes, page_round(n), memory_order_relaxed);
    return p;
}

static void page_free(void *p, size_t n)
{
    atomic_fetch_sub_explicit(&tern__h2_page_bytes, page_round(n), memory_order_relaxed);
    munmap(p, page_round(n));
}

/* a mapped block's new size: a new mapping and a copy */
static void *page_realloc(void *p, size_t old, size_t n)
{
    void *q = page_alloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    page_free(p, old);
    return q;
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
    if (h2c->mem_starting && n >= FRAMEBUF_MIN && !h2c->framebuf) {
        if ((h2c->framebuf = page_alloc(n)))
            h2c->framebuf_len = n;
        return h2c->framebuf;
    }
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
    if (p == h2c->framebuf) {
        h2c->framebuf = NULL;
        page_free(p, h2c->framebuf_len);
        return;
    }
    if (p == h2c->maptab) {
        h2c->maptab = NULL;
        page_free(p, MAPTAB_BYTES);
        return;
    }
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
    h2_conn *h2c = user;
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    if (h2c->mem_starting && nmemb * size == MAPTAB_BYTES && !h2c->maptab) {
        h2c->maptab = page_alloc(MAPTAB_BYTES);     /* zeroed, untouched */
        return h2c->maptab;
    }
    void *p = h2_malloc(nmemb * size, user);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

static void *h2_realloc(void *p, size_t n, void *user)
{
    h2_conn *h2c = user;
    if (!p)
        return h2_malloc(n, user);
    if (p == h2c->framebuf) {
        char *q = page_realloc(p, h2c->framebuf_len, n);
        if (q) {
            h2c->framebuf = q;
            h2c->framebuf_len = n;
        }
        return q;
    }
    if (p == h2c->maptab) {     /* nghttp2 makes a new table instead; correct anyway */
        void *q = h2_malloc(n, user);
        if (q) {
            memcpy(q, p, n < MAPTAB_BYTES ? n : MAPTAB_BYTES);
            h2c->maptab = NULL;
            page_free(p, MAPTAB_BYTES);
        }
        return q;
    }
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

int tern__h2_buf_start(tern__growbuf *b, size_t n)
{
    if (b->cap || b->fixed)
        return 0;
    TERN_ASSERT(!b->p && b->len == 0);
    if (n > SIZE_MAX - H2_FIRST_BUF)
        return -ENOMEM;
    size_t cap = n <= H2_FIRST_BUF ? H2_FIRST_BUF : (n + H2_FIRST_BUF - 1) & ~(size_t)(H2_FIRST_BUF - 1);
    if (!(b->p = malloc(cap)))
        return -ENOMEM;
    b->cap = cap;
    return 0;
}

bool tern__h2_mem_idle(h2_conn *h2c)
{
    /* Nothing to send means no frame is half out: nghttp2 writes a frame
     * into the buffer before it reads any of it, so zeroed pages lose
     * nothing.  The writer only runs mem_send under mu, which we hold. */
    if (!h2c->framebuf || nghttp2_session_want_write(h2c->sess) ||
        madvise(h2c->framebuf, page_round(h2c->framebuf_len), MADV_DONTNEED) != 0)
        return false;
    atomic_fetch_add_explicit(&tern__h2_framebufs_released, 1, memory_order_relaxed);
    return true;
}
