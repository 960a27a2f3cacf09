/*
 * export.h - what the net layer offers the layers above it (http, grpc,
 * gateway) beyond tern/net.h: not public, no stability promise.
 */
#ifndef TERN_NET_EXPORT_H
#define TERN_NET_EXPORT_H

#include <stdbool.h>

#include "tern/net.h"

/* True when c's socket is known empty and open without a system call: its
 * last read came up short (the socket was empty then) and the netpoller
 * has taken no read-side event for it since just before that read (no
 * data, no FIN, no reset; tern__fd_read_quiet).  False means "ask the
 * socket" (a peek), not "dead": an edge the poller has not harvested yet,
 * a read that filled its buffer, a TLS conn.  For a pool deciding whether
 * an idle connection may be reused; c must not be read meanwhile. */
bool tern__conn_read_quiet(tern_conn *c);

#endif
