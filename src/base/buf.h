/*
 * buf.h - a growing byte buffer whose allocation failure is sticky:
 * writers append without checking, and the owner checks `oom` once at the
 * end.  For documents built in one go: the OTLP batch, an HTTP client
 * request head, a pprof profile.  (The server's output buffer, growbuf.h,
 * reports ENOMEM on each append and lives with its connection.)
 *
 * Zero-initialised it is empty; free(b.p) when done.
 */
#ifndef TERN_BASE_BUF_H
#define TERN_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tern__buf {
    char *p;
    size_t len, cap;
    bool oom;                   /* an allocation failed: the content is incomplete */
} tern__buf;

/* Room for n more bytes at p + len: true, or false with oom set (and kept:
 * every later call fails too). */
bool tern__buf_room(tern__buf *b, size_t n);

/* Append n bytes of data; nothing once oom.  n may be 0 (data then
 * unused). */
void tern__buf_put(tern__buf *b, const void *data, size_t n);

#endif
