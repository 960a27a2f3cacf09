/*
 * conn.c - reading and writing a connected stream socket from a coroutine.
 *
 * Each operation tries the system call first and parks on the netpoller
 * only after EAGAIN: on a busy connection the data is usually there, and
 * the fast path is one system call, as in Go's internal/poll.
 *
 * A ctx bounds a call on top of the conn's stored deadline (the earlier
 * wins).  With ctx NULL, the common case and the HTTP server's, a call
 * costs one predicted branch more than a bare deadline; a ctx that is
 * already done fails the call before any system call, and one that can
 * be cancelled is looked at every 10 ms while the call is parked
 * (tern__net_wait_ctx).
 *
 * A conn that a TLS handshake upgraded (c->tls set, tls_conn.c) diverts
 * each operation to tls_io.c: one branch, predicted not taken, is all a
 * plain TCP conn pays for TLS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "net/export.h"
#include "net/net_internal.h"
#include "net/tls_internal.h"
#include "runtime/export.h"
#include "tern/runtime.h"

/* sendfile(2) has no MSG_NOSIGNAL; like Go, a program using tern's
 * sockets ignores SIGPIPE unless it installed its own handler. */
static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int64_t tern__net_deadline(int64_t deadline, tern_ctx *ctx)
{
    int64_t d = TERN_FOREVER;
    if (ctx)
        tern_ctx_deadline(ctx, &d);
    if (d == TERN_FOREVER || (deadline != TERN_FOREVER && deadline < d))
        return deadline;
    TERN_ASSERT(deadline == TERN_FOREVER || d <= deadline);
    return d;
}

int tern__net_wait_ctx(int fd, int ev, int64_t deadline, tern_ctx *ctx)
{
    deadline = tern__net_deadline(deadline, ctx);
    /* A ctx that can never be done (background, or values over it) has
     * no done channel and needs no looking at. */
    bool poll = tern_ctx_done(ctx) != NULL;
    for (;;) {
        int rc = tern_ctx_err(ctx);
        if (rc < 0)
            return rc;
        int64_t until = deadline;
        if (poll) {
            int64_t p = tern_now() + TERN__NET_CANCEL_POLL_NS;
            if (until == TERN_FOREVER || p < until)
                until = p;
        }
        rc = tern_fd_wait(fd, ev, until);
        if (rc != -ETIMEDOUT)
            return rc;
        if (deadline != TERN_FOREVER && tern_now() >= deadline)
            return -ETIMEDOUT;
    }
}

/* A ctx already done fails the call even when it would not have to wait
 * (a cancelled request should not go on sending); a NULL ctx pays one
 * predicted branch. */
static int ctx_err(tern_ctx *ctx)
{
    return __builtin_expect(ctx == NULL, 1) ? 0 : tern_ctx_err(ctx);
}

int tern__conn_wrap(int fd, tern_conn **out)
{
    pthread_once(&sigpipe_once, ignore_sigpipe);
    tern_conn *c = malloc(sizeof *c);
    *out = c;
    if (!c)
        return -ENOMEM;
    c->fd = fd;
    c->tls = NULL;
    c->drained = false;
    atomic_store_explicit(&c->read_deadline, TERN_FOREVER, memory_order_relaxed);
    atomic_store_explicit(&c->write_deadline, TERN_FOREVER, memory_order_relaxed);
    c->remote[0] = '\0';
    return 0;
}

int tern_conn_from_fd(int fd, tern_conn **out)
{
    TERN_CHECK_ARG(out);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    tern__fd_adopt(fd);         /* the number may carry a closed file's record */
    return tern__conn_wrap(fd, out);
}

ssize_t tern_conn_read(tern_conn *c, void *buf, size_t n, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    if (__builtin_expect(c->tls != NULL, 0))
        return tern__tls_read(c, buf, n, ctx);
    int err = ctx_err(ctx);
    if (err < 0)
        return err;
    if (c->drained && n > 0) {
        /* The last read emptied the socket, so a read now would most
         * likely say EAGAIN: wait first (as nginx does).  The netpoller
         * keeps an edge that came meanwhile, so nothing is missed; a stale
         * edge costs the read we would have made anyway. */
        c->drained = false;
        int rc = tern__net_wait(c->fd, TERN_FD_READ, conn_read_deadline(c), ctx);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        c->read_mark = tern__fd_read_mark(c->fd);
        ssize_t r = read(c->fd, buf, n);
        if (r >= 0) {
            TERN_ASSERT((size_t)r <= n);
            c->drained = r > 0 && (size_t)r < n;
            return r;
        }
        if (errno == EINTR || (errno == EFAULT && tern__stack_fault_in(buf, n)))
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = tern__net_wait(c->fd, TERN_FD_READ, conn_read_deadline(c), ctx);
        if (rc < 0)
            return rc;
    }
}

bool tern__conn_read_quiet(tern_conn *c)
{
    /* TLS: the socket's quiet says nothing of records already decrypted
     * (nor does a peek), so a TLS conn always gets the peek */
    return c->tls == NULL && c->drained && tern__fd_read_quiet(c->fd, c->read_mark);
}

int tern_conn_wait_readable(tern_conn *c, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    int err = ctx_err(ctx);
    if (err < 0)
        return err;
    /* TLS: a record already decrypted is readable with a quiet socket */
    if (__builtin_expect(c->tls != NULL, 0) && tern__tls_pending(c))
        return 0;
    for (;;) {
        char b;
        ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r >= 0 || (errno != EAGAIN && errno != EINTR)) {
            /* The next read must try the socket first: after a short read
             * it would wait for an edge, and the one that brought these
             * bytes may have been consumed by this wait. */
            c->drained = false;
            return 0;           /* data, EOF or an error: the read says which */
        }
        if (errno == EINTR)
            continue;
        int rc = tern__net_wait(c->fd, TERN_FD_READ, conn_read_deadline(c), ctx);
        if (rc < 0)
            return rc;
    }
}

ssize_t tern_conn_write(tern_conn *c, const void *buf, size_t n, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    if (__builtin_expect(c->tls != NULL, 0))
        return tern__tls_write(c, buf, n, ctx);
    int err = ctx_err(ctx);
    if (err < 0)
        return err;
    const char *p = buf;
    size_t left = n;
    while (left > 0) {
        ssize_t w = send(c->fd, p, left, MSG_NOSIGNAL);
        if (w >= 0) {
            TERN_ASSERT((size_t)w <= left);
            p += w;
            left -= (size_t)w;
            continue;
        }
        if (errno == EINTR || (errno == EFAULT && tern__stack_fault_in(p, left)))
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = tern__net_wait(c->fd, TERN_FD_WRITE, conn_write_deadline(c), ctx);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)n;
}

/* EFAULT from sendmsg: a buffer on a released stack? (tern__stack_fault_in) */
static bool iov_fault_in(const struct iovec *iov, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any |= tern__stack_fault_in(iov[i].iov_base, iov[i].iov_len);
    return any;
}

ssize_t tern_conn_writev(tern_conn *c, struct iovec *iov, int iovcnt, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    if (__builtin_expect(c->tls != NULL, 0))
        return tern__tls_writev(c, iov, iovcnt, ctx);
    int err = ctx_err(ctx);
    if (err < 0)
        return err;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    while (iovcnt > 0 && iov->iov_len == 0) {
        iov++;
        iovcnt--;
    }
    while (iovcnt > 0) {
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt) };
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR || (errno == EFAULT && iov_fault_in(iov, mh.msg_iovlen)))
                continue;
            if (errno != EAGAIN)
                return -errno;
            int rc = tern__net_wait(c->fd, TERN_FD_WRITE, conn_write_deadline(c), ctx);
            if (rc < 0)
                return rc;
            continue;
        }
        size_t done = (size_t)w;
        TERN_ASSERT(done <= total);
        while (iovcnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        /* sendmsg never sends more than it was given: what is left of
         * done lies inside the first unsent iov. */
        TERN_ASSERT(iovcnt > 0 ? done < iov->iov_len : done == 0);
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return (ssize_t)total;
}

ssize_t tern_conn_sendfile(tern_conn *c, int fd, off_t *offset, size_t len, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    if (__builtin_expect(c->tls != NULL, 0))
        return tern__tls_sendfile(c, fd, offset, len, ctx);
    int err = ctx_err(ctx);
    if (err < 0)
        return err;
    size_t left = len;
    while (left > 0) {
        ssize_t w = sendfile(c->fd, fd, offset, left > (1u << 30) ? (1u << 30) : left);
        if (w > 0) {
            TERN_ASSERT((size_t)w <= left);
            left -= (size_t)w;
            continue;
        }
        if (w == 0)
            return -EIO;        /* the file is shorter than promised */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = tern__net_wait(c->fd, TERN_FD_WRITE, conn_write_deadline(c), ctx);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)len;
}

void tern_conn_set_read_deadline(tern_conn *c, int64_t deadline)
{
    TERN_CHECK_ARG(c);
    atomic_store_explicit(&c->read_deadline, deadline, memory_order_relaxed);
}

void tern_conn_set_write_deadline(tern_conn *c, int64_t deadline)
{
    TERN_CHECK_ARG(c);
    atomic_store_explicit(&c->write_deadline, deadline, memory_order_relaxed);
}

int tern_conn_close_write(tern_conn *c)
{
    TERN_CHECK_ARG(c);
    if (c->tls)
        tern__tls_close_notify(c);
    return shutdown(c->fd, SHUT_WR) == 0 ? 0 : -errno;
}

void tern_conn_free(tern_conn *c)
{
    if (!c)
        return;
    if (c->tls) {
        tern__tls_close_notify(c);  /* the peer can tell our end from a cut */
        tern__tls_free(c->tls);
    }
    tern_fd_close(c->fd);
    free(c);
}

int tern_conn_fd(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->fd;
}

const char *tern_conn_remote_addr(tern_conn *c)
{
    TERN_CHECK_ARG(c);
    if (!c->remote[0]) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
            tern__net_format_addr((struct sockaddr *)&ss, len, c->remote, sizeof c->remote);
        else
            strcpy(c->remote, "?");
    }
    return c->remote;
}

int tern_conn_set_nodelay(tern_conn *c, bool on)
{
    TERN_CHECK_ARG(c);
    int v = on;
    return setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) == 0 ? 0 : -errno;
}
