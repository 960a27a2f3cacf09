/*
 * log_internal.h - what the parts of the logger share: the line formatter
 * (log_format.c) and the ring with its writer thread (log_ring.c).
 */
#ifndef TERN_KIT_LOG_INTERNAL_H
#define TERN_KIT_LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/log.h"

/* Format one line, newline included, into buf[TERN_LOG_LINE_MAX]; returns
 * its length.  ids may be NULL. */
size_t tern_log_format(char *buf, int64_t unix_ns, tern_log_level level, const char *msg,
                       const tern_log_ids *ids, const tern_log_field *fields, size_t n);

/* The calling coroutine's trace ids from the context hook, if one is set
 * and has them (tern_log_set_context_hook). */
bool tern__log_hook_ids(tern_log_ids *out);

/* Wall-clock time in ns since the epoch. */
int64_t tern_log_unix_ns(void);

/* The ring: start/stop the writer, copy a line in (false: dropped).
 * Start and stop (and abandon) under log.c's start lock. */
int tern_log_ring_start(int fd, size_t bytes);
void tern_log_ring_stop(void);
/* In a forked child, from the atfork handler: forget the ring inherited
 * from the parent without touching its lock or lines (freed at the next
 * start or stop).  false if none ran. */
bool tern_log_ring_abandon(void);
bool tern_log_ring_running(void);
bool tern_log_ring_put(const char *line, size_t len);
int tern_log_ring_flush(int64_t timeout_ns);
void tern_log_ring_stats(tern_log_stats *st);

#endif
