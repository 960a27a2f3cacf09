/*
 * arena.h - a bump allocator for strings that live exactly as long as one
 * HTTP request: allocations are never freed one by one, tern__arena_reset
 * drops them all at once between requests.  The oldest chunk may be
 * caller-provided memory (`fixed`, the connection's stack frame) and is
 * kept across resets, so a request that fits in it touches no heap.
 *
 * Owned by whoever embeds it; pointers from tern__arena_alloc are valid
 * until the next reset or free.
 */
#ifndef TERN_BASE_ARENA_H
#define TERN_BASE_ARENA_H

#include <stddef.h>

typedef struct tern__arena_chunk {
    struct tern__arena_chunk *next;
    size_t used, cap;
    _Alignas(16) char data[];
} tern__arena_chunk;

typedef struct tern__arena {
    tern__arena_chunk *head;
    tern__arena_chunk *fixed;   /* the oldest chunk, not from malloc; never freed */
} tern__arena;

/* n bytes, 16-aligned; NULL when out of memory. */
void *tern__arena_alloc(tern__arena *a, size_t n);
/* Forget every allocation; keeps the oldest chunk for reuse. */
void tern__arena_reset(tern__arena *a);
/* Free every chunk but the caller-provided one. */
void tern__arena_free(tern__arena *a);

#endif
