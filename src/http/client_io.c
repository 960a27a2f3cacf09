/*
 * client_io.c - the HTTP client's reads and writes, bounded by a context.
 *
 * tern_conn_read / tern_conn_writev take the context themselves: its
 * deadline bounds a parked call, and a cancellable one is looked at every
 * 10 ms while parked (see net.h).  A read or write with data ready never
 * parks and costs no timer.  These wrappers only give the client the
 * result shape it wants.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "http/client_internal.h"

ssize_t tern__hc_read(tern_conn *conn, tern_ctx *ctx, void *buf, size_t n)
{
    return tern_conn_read(conn, buf, n, ctx);
}

int tern__hc_writev(tern_conn *conn, tern_ctx *ctx, struct iovec *iov, int iovcnt)
{
    ssize_t w = tern_conn_writev(conn, iov, iovcnt, ctx);
    return w < 0 ? (int)w : 0;
}
