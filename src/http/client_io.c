/*
 * client_io.c - the HTTP client's reads and writes, bounded by a context.
 *
 * The netpoller parks a coroutine on one fd with one deadline; it does not
 * watch a context's done channel.  So the context's deadline becomes the
 * connection's deadline, and a context that can be cancelled is looked at
 * every 10 ms while an operation is parked (tern_dial does the same).  A
 * read or write with data ready never parks and costs no timer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

#include "http/client_internal.h"
#include "tern/runtime.h"

#define HC_CANCEL_POLL_NS (10 * TERN_MS)

/* The deadline for the next park: the context's, or sooner if the context
 * can be cancelled and must be looked at again. */
static int64_t slice_deadline(tern_ctx *ctx, int64_t deadline)
{
    if (!ctx || ctx == tern_ctx_background())
        return deadline;
    int64_t poll = tern_now() + HC_CANCEL_POLL_NS;
    return deadline == TERN_FOREVER || poll < deadline ? poll : deadline;
}

/* After an operation timed out at `until`: -ETIMEDOUT if the real deadline
 * passed, the context's error if it is done, 0 to carry on. */
static int slice_over(tern_ctx *ctx, int64_t deadline)
{
    int rc = ctx ? tern_ctx_err(ctx) : 0;
    if (rc < 0)
        return rc;
    if (deadline != TERN_FOREVER && tern_now() >= deadline)
        return -ETIMEDOUT;
    return 0;
}

ssize_t tern__hc_read(tern_conn *conn, tern_ctx *ctx, void *buf, size_t n)
{
    int64_t deadline;
    tern_ctx_deadline(ctx, &deadline);
    for (;;) {
        int rc = slice_over(ctx, deadline);
        if (rc < 0)
            return rc;
        tern_conn_set_read_deadline(conn, slice_deadline(ctx, deadline));
        ssize_t r = tern_conn_read(conn, buf, n);
        if (r != -ETIMEDOUT)
            return r;
    }
}

/* Not tern_conn_writev: after a timed-out slice it cannot say which iov
 * entries went, and the write must carry on exactly where it stopped. */
int tern__hc_writev(tern_conn *conn, tern_ctx *ctx, struct iovec *iov, int iovcnt)
{
    int64_t deadline;
    tern_ctx_deadline(ctx, &deadline);
    int fd = tern_conn_fd(conn);
    int rc = slice_over(ctx, deadline);
    if (rc < 0)
        return rc;
    for (;;) {
        while (iovcnt > 0 && iov->iov_len == 0) {
            iov++;
            iovcnt--;
        }
        if (iovcnt == 0)
            return 0;
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt)};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (w >= 0) {
            size_t done = (size_t)w;
            for (; done > 0; iov++, iovcnt--) {
                size_t k = done < iov->iov_len ? done : iov->iov_len;
                iov->iov_base = (char *)iov->iov_base + k;
                iov->iov_len -= k;
                done -= k;
                if (iov->iov_len > 0)
                    break;
            }
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        while ((rc = tern_fd_wait(fd, TERN_FD_WRITE, slice_deadline(ctx, deadline))) == -ETIMEDOUT) {
            if ((rc = slice_over(ctx, deadline)) < 0)
                return rc;
        }
        if (rc < 0)
            return rc;
    }
}
