/*
 * net_internal.h - what the net files share: the conn and listener
 * structs and address helpers.
 */
#ifndef TERN_NET_INTERNAL_H
#define TERN_NET_INTERNAL_H

#include <netdb.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "tern/net.h"

struct tern_conn {
    int fd;
    int64_t read_deadline;
    int64_t write_deadline;
    bool drained;               /* the last read came up short: the socket was empty */
    char remote[64];            /* filled on first ask */
};

struct tern_listener {
    int fd;
    tern_net net;
    atomic_bool closed;
    int port;
    char addr[112];
    char path[108];             /* Unix: to unlink on free */
};

/* Resolve addr for net into a getaddrinfo list (freeaddrinfo it), off the
 * worker thread.  passive: for listening (empty host = any). */
int tern__net_resolve(tern_net net, const char *addr, bool passive, struct addrinfo **out);
/* A Unix socket address from a path or "@abstract"; returns its length or -EINVAL. */
int tern__net_unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len);
/* "1.2.3.4:80" / "[::1]:80" / the Unix path, into buf. */
void tern__net_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

#endif
