/*
 * buf.c - the growing byte buffer; see buf.h.
 */
#include "base/buf.h"

#include "base/check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool tern__buf_room(tern__buf *b, size_t n)
{
    TERN_ASSERT(b->len <= b->cap && (b->p || b->cap == 0));
    if (b->oom)
        return false;
    if (b->cap - b->len >= n)
        return true;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;          /* doubling would overflow before it fit */
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tern__buf_put(tern__buf *b, const void *data, size_t n)
{
    if (n && tern__buf_room(b, n)) {
        memcpy(b->p + b->len, data, n);
        b->len += n;
    }
}
