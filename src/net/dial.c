/*
 * dial.c - outgoing connections bounded by a context.
 *
 * A non-blocking connect() is waited for on the netpoller with
 * tern__net_wait: the context's deadline bounds the wait directly; its
 * cancellation is looked at every 10 ms while a connect is in progress
 * (the netpoller waits on one fd, not on a channel), so a cancelled dial
 * returns within about that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net_internal.h"
#include "runtime/export.h"
#include "tern/runtime.h"

static int connect_one(tern_ctx *ctx, const struct sockaddr *sa, socklen_t len, int *out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    tern__fd_adopt(fd);
    int rc = 0;
    while (connect(fd, sa, len) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        rc = tern__net_wait(fd, TERN_FD_WRITE, TERN_FOREVER, ctx);
        if (rc < 0)
            goto fail;
        int err = 0;
        socklen_t elen = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err) {
            rc = -err;
            goto fail;
        }
        break;
    }
    TERN_ASSERT(fd >= 0);
    *out = fd;
    return 0;
fail:
    tern_fd_close(fd);
    return rc;
}

int tern_conn_dial(tern_net net, const char *addr, tern_conn **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!addr)
        return -EINVAL;
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
    TERN_ASSERT(fd >= 0);       /* rc 0 came from a connect_one that set it */
    tern_conn *c;
    if (tern__conn_wrap(fd, &c) < 0) {
        tern_fd_close(fd);
        return -ENOMEM;
    }
    if (net == TERN_NET_TCP)
        tern_conn_set_nodelay(c, true);
    *out = c;
    return 0;
}
