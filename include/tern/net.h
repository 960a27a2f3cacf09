/*
 * tern/net.h - TCP and Unix stream sockets for coroutines.
 *
 * Reads, writes, accepts and connects park the calling coroutine on the
 * netpoller instead of blocking its worker thread, so a server holds one
 * coroutine per connection and reads top to bottom, as in Go.
 *
 * Addresses are "host:port" ("127.0.0.1:8080", "[::1]:8080", ":8080" for
 * every interface, "localhost:http") for TCP, and a path ("/run/x.sock",
 * or "@name" for the abstract namespace) for Unix sockets.  Host names are
 * resolved with getaddrinfo() on the blocking-call pool
 * (tern_blocking), so resolution never stalls a worker.
 *
 * Bounding a call: every call that can park takes a tern_ctx * last (NULL:
 * unbounded) and returns -ETIMEDOUT when its deadline passes or
 * -ECANCELED when it is cancelled.  A connection also keeps a read and a
 * write deadline of its own (absolute monotonic ns, tern_now() based;
 * TERN_FOREVER for none), set beforehand as a convenience: the earlier of
 * the two bounds a call.  An operation past its deadline returns
 * -ETIMEDOUT and leaves the connection usable.  The netpoller waits on
 * one fd, not on a channel, so while a call is parked a cancellable ctx
 * is looked at every 10 ms: a cancellation ends it within about that.  A
 * NULL ctx costs nothing (the HTTP server's reads and writes pass NULL).
 *
 * Ownership: tern_listener_new and tern_listener_accept / tern_conn_dial /
 * tern_conn_from_fd hand out objects the caller frees with
 * tern_listener_free and tern_conn_free.  Strings they return (addresses)
 * live as long as the object.
 *
 * A tern_conn is used by one reader and one writer at a time (two
 * coroutines may read and write concurrently; two readers may not).
 * Passing NULL for a conn or listener is a programmer error: it aborts
 * with a message naming the function.
 */
#ifndef TERN_NET_H
#define TERN_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "tern/context.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_conn tern_conn;
typedef struct tern_listener tern_listener;

typedef enum tern_net {
    TERN_NET_TCP = 0,           /* IPv4 or IPv6, as the address says */
    TERN_NET_UNIX = 1,
} tern_net;

typedef struct tern_listener_options {
    int backlog;                /* 0: 4096 (the kernel caps it at somaxconn) */
    bool reuseport;             /* SO_REUSEPORT, so several listeners share a port */
    bool unlink_existing;       /* Unix: remove a stale socket file first */
} tern_listener_options;

/* Listen on addr.  opts may be NULL.  On success *out is the listener,
 * the caller's to tern_listener_free; on failure *out is NULL.
 * -EADDRINUSE, -EACCES, -EINVAL (a malformed address), -ENOENT (host
 * unknown) and other -errno. */
int tern_listener_new(tern_net net, const char *addr, const tern_listener_options *opts,
                      tern_listener **out);

/* Accept one connection, parking until one arrives; *out is then the
 * caller's to tern_conn_free (NULL on failure).  Survives running out of
 * descriptors: on EMFILE/ENFILE/ENOBUFS/ENOMEM it reports once a second
 * through the runtime's report hook, backs off (5 ms doubling to 1 s) and
 * tries again, so the server keeps serving the connections it has.
 * Returns 0, -ETIMEDOUT / -ECANCELED when ctx ends, -ECANCELED once the
 * listener is closed, or another -errno. */
int tern_listener_accept(tern_listener *l, tern_conn **out, tern_ctx *ctx);

/* Stop accepting: a coroutine parked in tern_listener_accept returns
 * -ECANCELED.  Idempotent; the listener stays allocated until
 * tern_listener_free. */
int tern_listener_close(tern_listener *l);
/* Close (if open) and release.  NULL is a no-op. */
void tern_listener_free(tern_listener *l);

/* The bound address, "127.0.0.1:34567" (useful after listening on port 0),
 * or the Unix path; and the port (0 for Unix). */
const char *tern_listener_addr(const tern_listener *l);
int tern_listener_port(const tern_listener *l);
/* The listening socket, still owned by l (tern_listener_free closes it). */
int tern_listener_fd(const tern_listener *l);

/* Connect to addr, trying each resolved address in turn, bounded by ctx
 * (its deadline, and its cancellation, checked between steps and every
 * 10 ms while a connect is in progress).  On success *out is the
 * connection, the caller's to tern_conn_free; on failure NULL.
 * -ECONNREFUSED, -ETIMEDOUT, -ECANCELED, -ENOENT (name not found),
 * -ENETUNREACH, ... */
int tern_conn_dial(tern_net net, const char *addr, tern_conn **out, tern_ctx *ctx);

/* Wrap a connected, stream socket fd (made non-blocking here).  0: the
 * conn owns fd from now on (tern_conn_free closes it).  -ENOMEM: *out is
 * NULL and fd is still yours. */
int tern_conn_from_fd(int fd, tern_conn **out);

/* Read up to n bytes.  Returns the count (>0), 0 at end of stream, or
 * -ETIMEDOUT (read deadline or ctx's), -ECANCELED, -ECONNRESET, -EBADF
 * (freed meanwhile), ...  With a ctx that is already done, its error,
 * even when bytes are waiting. */
ssize_t tern_conn_read(tern_conn *c, void *buf, size_t n, tern_ctx *ctx);

/* Write all n bytes (parking as the socket buffer fills).  Returns n, or
 * -errno: -ETIMEDOUT at the write deadline or ctx's, -ECANCELED (some
 * bytes may have gone in either case), -EPIPE / -ECONNRESET when the peer
 * has gone.  Never raises SIGPIPE. */
ssize_t tern_conn_write(tern_conn *c, const void *buf, size_t n, tern_ctx *ctx);
/* Write every byte of iov[0..iovcnt) (iov is modified).  Returns the total
 * or -errno as tern_conn_write. */
ssize_t tern_conn_writev(tern_conn *c, struct iovec *iov, int iovcnt, tern_ctx *ctx);

/* Send len bytes of file fd from *offset with sendfile(2), advancing
 * *offset.  Returns len or -errno as tern_conn_write; -EIO if the file
 * ends before len bytes were sent. */
ssize_t tern_conn_sendfile(tern_conn *c, int fd, off_t *offset, size_t len, tern_ctx *ctx);

/* Park until the connection has bytes (or EOF/error) to read, without
 * reading them, or the read deadline or ctx ends it: 0, -ETIMEDOUT,
 * -ECANCELED (-EBADF if the connection is freed meanwhile).  Lets an idle
 * connection hold no buffer. */
int tern_conn_wait_readable(tern_conn *c, tern_ctx *ctx);

/* Absolute deadlines for later reads / writes; TERN_FOREVER clears.  A
 * call's ctx deadline, when earlier, wins.  May be called from another
 * coroutine while one reads or writes: a wait already parked keeps the
 * deadline it started with. */
void tern_conn_set_read_deadline(tern_conn *c, int64_t deadline);
void tern_conn_set_write_deadline(tern_conn *c, int64_t deadline);

/* Half-close: send FIN, keep reading. */
int tern_conn_close_write(tern_conn *c);

/* Close and release: a reader or writer parked on c (in another
 * coroutine) gets -EBADF.  NULL is a no-op. */
void tern_conn_free(tern_conn *c);

/* The socket, still owned by c: for setsockopt and the like, never for
 * close (tern_conn_free closes it). */
int tern_conn_fd(const tern_conn *c);
/* The peer's address as text ("127.0.0.1:51234", "[::1]:80", "@" for an
 * unnamed Unix peer); stable for the conn's life. */
const char *tern_conn_remote_addr(tern_conn *c);
/* TCP_NODELAY (on by default for TCP, as in Go). */
int tern_conn_set_nodelay(tern_conn *c, bool on);

/* Split "host:port" / "[v6]:port" into its parts (host may be empty).
 * -EINVAL when malformed or a part does not fit. */
int tern_net_split_host_port(const char *addr, char *host, size_t host_size,
                             char *port, size_t port_size);

#ifdef __cplusplus
}
#endif
#endif
