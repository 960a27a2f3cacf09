/*
 * net_internal.h - what the net files share: the conn and listener
 * structs and address helpers.
 */
#ifndef TERN_NET_INTERNAL_H
#define TERN_NET_INTERNAL_H

#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "base/check.h"
#include "tern/net.h"
#include "tern/runtime.h"

struct tern__tls;               /* tls_internal.h */

struct tern_conn {
    int fd;
    struct tern__tls *tls;      /* NULL: plain TCP; set by a TLS handshake */
    /* Atomic: a deadline may be set by one coroutine while another reads
     * or writes the conn (the gateway's tunnel gives the other direction
     * a while to finish); the wait in progress keeps the deadline it
     * started with, the next one sees the new.  Relaxed: nothing else is
     * published with them.  Through conn_read_deadline and friends. */
    _Atomic int64_t read_deadline;
    _Atomic int64_t write_deadline;
    bool drained;               /* the last read came up short: the socket was empty */
    uint32_t read_mark;         /* tern__fd_read_mark just before the last read */
    char remote[64];            /* filled on first ask */
};

static inline int64_t conn_read_deadline(tern_conn *c)
{
    return atomic_load_explicit(&c->read_deadline, memory_order_relaxed);
}

static inline int64_t conn_write_deadline(tern_conn *c)
{
    return atomic_load_explicit(&c->write_deadline, memory_order_relaxed);
}

struct tern_listener {
    int fd;
    tern_net net;
    atomic_bool closed;
    int port;
    char addr[112];
    char path[108];             /* Unix: to unlink on free */
};

/* A Unix listener keeps its path to unlink, and shows it as its address:
 * both must hold any path tern__net_unix_addr accepts.  A remote address
 * must hold the longest "[v6]:port". */
_Static_assert(sizeof ((struct tern_listener *)0)->path ==
                   sizeof ((struct sockaddr_un *)0)->sun_path,
               "listener path holds a sun_path");
_Static_assert(sizeof ((struct tern_listener *)0)->addr >=
                   sizeof ((struct sockaddr_un *)0)->sun_path + 1,
               "listener addr holds a Unix path and its '@'");
_Static_assert(sizeof ((struct tern_conn *)0)->remote >= INET6_ADDRSTRLEN + sizeof "[]:65535",
               "conn remote holds an IPv6 address and port");

/* Resolve addr for net into a getaddrinfo list (freeaddrinfo it), off the
 * worker thread.  passive: for listening (empty host = any). */
int tern__net_resolve(tern_net net, const char *addr, bool passive, struct addrinfo **out);
/* A Unix socket address from a path or "@abstract"; returns its length or -EINVAL. */
int tern__net_unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len);
/* A conn over fd, a non-blocking socket we just made (accept4, dial)
 * whose netpoller record is clean (tern__fd_adopt): tern_conn_from_fd
 * without its fcntl and adopt.  0 or -ENOMEM (*out NULL, fd untouched). */
int tern__conn_wrap(int fd, tern_conn **out);

/* "1.2.3.4:80" / "[::1]:80" / the Unix path, into buf. */
void tern__net_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* Park until fd is ready for ev (TERN_FD_READ / TERN_FD_WRITE), the
 * absolute deadline passes (-ETIMEDOUT) or ctx ends (its error).  ctx NULL
 * is a plain tern_fd_wait; a cancellable ctx is looked at every
 * TERN__NET_CANCEL_POLL_NS while parked, since the netpoller watches one
 * fd and no channel.  Touches nothing but fd, so a conn freed meanwhile
 * (-EBADF) is never read again. */
#define TERN__NET_CANCEL_POLL_NS 10000000
int tern__net_wait_ctx(int fd, int ev, int64_t deadline, tern_ctx *ctx);
static inline int tern__net_wait(int fd, int ev, int64_t deadline, tern_ctx *ctx)
{
    if (__builtin_expect(ctx == NULL, 1))
        return tern_fd_wait(fd, ev, deadline);
    return tern__net_wait_ctx(fd, ev, deadline, ctx);
}
/* The earlier of deadline and ctx's (ctx may be NULL). */
int64_t tern__net_deadline(int64_t deadline, tern_ctx *ctx);

#endif
