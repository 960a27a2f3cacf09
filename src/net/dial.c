/*
 * dial.c - outgoing connections bounded by a context.
 *
 * A non-blocking connect() is waited for on the netpoller.  The context's
 * deadline bounds the wait directly; its cancellation is looked at every
 * 10 ms while a connect is in progress (the netpoller waits on one fd, not
 * on a channel), so a cancelled dial returns within about that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net_internal.h"
#include "tern/runtime.h"

#define DIAL_CANCEL_POLL_NS 10000000

static int connect_one(tern_ctx *ctx, const struct sockaddr *sa, socklen_t len, int *out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    while (connect(fd, sa, len) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        int64_t deadline;
        tern_ctx_deadline(ctx, &deadline);
        for (;;) {
            rc = ctx ? tern_ctx_err(ctx) : 0;
            if (rc < 0)
                goto fail;
            int64_t until = deadline;
            if (ctx && ctx != tern_ctx_background()) {
                int64_t poll = tern_now() + DIAL_CANCEL_POLL_NS;
                if (until == TERN_FOREVER || poll < until)
                    until = poll;
            }
            rc = tern_fd_wait(fd, TERN_FD_WRITE, until);
            if (rc == 0)
                break;
            if (rc != -ETIMEDOUT || (deadline != TERN_FOREVER && tern_now() >= deadline))
                goto fail;
        }
        int err = 0;
        socklen_t elen = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err) {
            rc = -err;
            goto fail;
        }
        break;
    }
    *out = fd;
    return 0;
fail:
    tern_fd_close(fd);
    return rc;
}

int tern_dial(tern_ctx *ctx, tern_net net, const char *addr, tern_conn **out)
{
    if (!addr || !out)
        return -EINVAL;
    *out = NULL;
    int rc = ctx ? tern_ctx_err(ctx) : 0;
    if (rc < 0)
        return rc;
    int fd = -1;
    if (net == TERN_NET_UNIX) {
        struct sockaddr_un sun;
        socklen_t len;
        rc = tern__net_unix_addr(addr, &sun, &len);
        if (rc == 0)
            rc = connect_one(ctx, (struct sockaddr *)&sun, len, &fd);
    } else if (net == TERN_NET_TCP) {
        struct addrinfo *ai;
        rc = tern__net_resolve(net, addr, false, &ai);
        if (rc < 0)
            return rc;
        rc = -EADDRNOTAVAIL;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
            rc = connect_one(ctx, a->ai_addr, a->ai_addrlen, &fd);
            if (rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED)
                break;
        }
        freeaddrinfo(ai);
    } else {
        return -EINVAL;
    }
    if (rc < 0)
        return rc;
    tern_conn *c = tern_conn_from_fd(fd);
    if (!c) {
        tern_fd_close(fd);
        return -ENOMEM;
    }
    if (net == TERN_NET_TCP)
        tern_conn_set_nodelay(c, true);
    *out = c;
    return 0;
}
