/*
 * internal.h - what the parts of the logger share: the line formatter
 * (format.c) and the ring with its writer thread (ring.c).
 */
#ifndef TERN_KIT_LOG_INTERNAL_H
#define TERN_KIT_LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/log.h"

/* Format one line, newline included, into buf[TERN_LOG_LINE_MAX]; returns
 * its length.  msg_len is strlen(msg) when known (a literal), else 0;
 * ids may be NULL. */
size_t tern__log_format(char *buf, int64_t unix_ns, tern_log_level level, const char *msg,
                       size_t msg_len, const tern_log_ids *ids, const tern_log_field *fields,
                       size_t n);

/* The same line built in three calls, for a caller whose fields are
 * fixed (the access log): begin (head, msg, ids), the fields, end (the
 * closing brace and newline; returns the length).  A field that does not
 * fit is dropped, and so are all after it, as tern__log_format does. */
typedef struct tern__log_line {
    char *p;                    /* buf[TERN_LOG_LINE_MAX] */
    size_t len, lim;
    bool cut;                   /* something did not fit */
} tern__log_line;

void tern__log_line_begin(tern__log_line *l, char *buf, int64_t unix_ns, tern_log_level level,
                          const char *msg, size_t msg_len, const tern_log_ids *ids);
/* A field's key is given already in JSON, quoted and with its colon and
 * the comma before it (TERN__LOG_KEY("status")), so it is copied, not
 * scanned for escapes.  A string field logs at most max bytes of the
 * NUL-terminated s, never part of a character: the bound is on the input,
 * before escaping, so a client cannot make it longer by sending quotes. */
#define TERN__LOG_KEY(name) \
    ",\"" name "\":" TERN__LOG_KEY_PAD, sizeof(",\"" name "\":") - 1
/* A key literal is followed by this many NULs, so a key of up to that many
 * bytes is copied with one fixed-size copy rather than a call to memcpy. */
#define TERN__LOG_KEY_PAD "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
#define TERN__LOG_KEY_COPY 32
_Static_assert(sizeof TERN__LOG_KEY_PAD - 1 >= TERN__LOG_KEY_COPY,
               "a key literal is readable for TERN__LOG_KEY_COPY bytes past its end");
typedef struct tern__log_lfield {
    const char *key;            /* a TERN__LOG_KEY: readable for key_len + */
    size_t key_len;             /*   TERN__LOG_KEY_COPY bytes */
    const char *s;              /* a string, at most max bytes of it; */
    size_t max;                 /*   NULL: the integer i */
    int64_t i;
} tern__log_lfield;
#define TERN__LOG_LINT(name, v) ((tern__log_lfield){TERN__LOG_KEY(name), NULL, 0, (v)})
#define TERN__LOG_LSTRN(name, str, max) ((tern__log_lfield){TERN__LOG_KEY(name), (str), (max), 0})
/* The n fields, in one call: a call per field cost a tenth of the line. */
void tern__log_line_fields(tern__log_line *l, const tern__log_lfield *f, size_t n);
size_t tern__log_line_end(tern__log_line *l);

/* s as a quoted JSON string (escapes as in a log line; bytes that are not
 * UTF-8 become U+FFFD) written to dst, which must have room for
 * TERN__JSON_QUOTE_MAX(strlen(s)) bytes; returns the length written (no
 * NUL).  The one JSON string writer: the OTLP exporter uses it too. */
#define TERN__JSON_QUOTE_MAX(n) (6 * (n) + 2 + 8)     /* 8: copy_plain's word stores */
size_t tern__json_quote(char *dst, const char *s);

/* The calling coroutine's trace ids from the context hook, if one is set
 * and has them (tern_log_set_context_hook). */
bool tern__log_hook_ids(tern_log_ids *out);

/* The ring: start/stop the writer, copy a line in.
 * Start and stop (and abandon) under log.c's start lock. */
int tern__log_ring_start(int fd, size_t bytes);
void tern__log_ring_stop(void);
/* In a forked child, from the atfork handler: forget the ring inherited
 * from the parent without touching its lock or lines (freed at the next
 * start or stop).  false if none ran. */
bool tern__log_ring_abandon(void);
bool tern__log_ring_running(void);
/* 0, -EAGAIN (full: dropped and counted) or -ESRCH (no ring runs). */
int tern__log_ring_put(const char *line, size_t len);
/* Until the lines put before the call are written, deadline (monotonic
 * ns, TERN_FOREVER: none) passes, or ctx (may be NULL) ends: 0,
 * -ETIMEDOUT or ctx's error.  The deadline is compared with the clock
 * here, so it holds on a thread where no timer ends ctx. */
int tern__log_ring_flush(int64_t deadline, tern_ctx *ctx);
void tern__log_ring_stats(struct tern_log_stats *st);

#endif
