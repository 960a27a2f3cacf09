/*
 * growbuf.h - a growable byte buffer that may start in caller-provided
 * memory (a connection's stack frame, so an idle connection holds no heap)
 * and moves to the heap when it must grow.  Unlike buf.h, each call
 * reports ENOMEM itself: the HTTP server's output buffer checks every
 * append, because a half-written response must not be sent.
 *
 * Owned by whoever embeds it; tern__growbuf_free releases the heap copy
 * (never the caller's memory).
 */
#ifndef TERN_BASE_GROWBUF_H
#define TERN_BASE_GROWBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tern__growbuf {
    char *p;
    size_t len, cap;
    bool fixed;                 /* p is not from malloc */
} tern__growbuf;

/* Room for `extra` more bytes at p + len: 0 or -ENOMEM. */
int tern__growbuf_reserve(tern__growbuf *b, size_t extra);
/* Append n bytes: 0 or -ENOMEM (then b is unchanged). */
int tern__growbuf_append(tern__growbuf *b, const void *data, size_t n);
/* Free the heap copy, if any; b is empty and heap-backed afterwards. */
void tern__growbuf_free(tern__growbuf *b);

#endif
