/*
 * arena.c - the per-request bump allocator; see arena.h.
 */
#include "base/arena.h"

#include "base/check.h"

#include <stdlib.h>

void *tern__arena_alloc(tern__arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    tern__arena_chunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 2048 ? n : 2048;
        tern__arena_chunk *nc = malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        nc->next = c;
        a->head = c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    TERN_ASSERT(c->used <= c->cap && (c->used & 15) == 0);   /* 16-aligned bumps */
    return p;
}

void tern__arena_reset(tern__arena *a)
{
    tern__arena_chunk *c = a->head;
    if (!c)
        return;
    while (c->next) {           /* keep the oldest (first) chunk only */
        tern__arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    TERN_ASSERT(!a->fixed || c == a->fixed);   /* the fixed chunk is the oldest */
    c->used = 0;
    a->head = c;
}

void tern__arena_free(tern__arena *a)
{
    for (tern__arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        if (c != a->fixed)
            free(c);
    }
    a->head = a->fixed = NULL;
}
