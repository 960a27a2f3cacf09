/*
 * growbuf.c - the growable byte buffer; see growbuf.h.
 */
#include "base/growbuf.h"

#include "base/check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int tern__growbuf_reserve(tern__growbuf *b, size_t extra)
{
    TERN_ASSERT(b->len <= b->cap && (b->p || b->cap == 0));
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra)
        cap *= 2;
    char *p;
    if (b->fixed) {
        if (!(p = malloc(cap)))
            return -ENOMEM;
        memcpy(p, b->p, b->len);
        b->fixed = false;
    } else if (!(p = realloc(b->p, cap))) {
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int tern__growbuf_append(tern__growbuf *b, const void *data, size_t n)
{
    /* nothing to add: an empty buffer's p (and an empty message's data)
     * may be NULL, which memcpy must not see even for 0 bytes */
    if (n == 0)
        return 0;
    if (tern__growbuf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

void tern__growbuf_free(tern__growbuf *b)
{
    if (!b->fixed)
        free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->fixed = false;
}
