/*
 * listen.c - listening sockets and accept.
 *
 * accept() must not turn a descriptor shortage into a dead server: on
 * EMFILE/ENFILE the pending connection stays in the backlog, so a tight
 * retry loop would spin.  Like Go's http.Server, back off (5 ms doubling
 * to 1 s), report once a second, and keep going.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net_internal.h"
#include "runtime/export.h"
#include "tern/runtime.h"

static int listen_fd(const struct sockaddr *sa, socklen_t len, const tern_listener_options *o,
                     bool dual_stack)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    tern__fd_adopt(fd);
    int one = 1, zero = 0;
    if (sa->sa_family != AF_UNIX) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            goto fail;
        if (dual_stack)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, sa, len) < 0 || listen(fd, o->backlog > 0 ? o->backlog : 4096) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

static void fill_name(tern_listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) == 0) {
        tern__net_format_addr((struct sockaddr *)&ss, len, l->addr, sizeof l->addr);
        if (ss.ss_family == AF_INET)
            l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
}

static int listen_tcp(const char *addr, const tern_listener_options *o)
{
    char host[256], port[32];
    int rc = tern_net_split_host_port(addr, host, sizeof host, port, sizeof port);
    if (rc < 0)
        return rc;
    if (!host[0]) {
        /* every interface: one dual-stack IPv6 socket, as Go does, or
         * IPv4 where the machine has no IPv6 */
        char *end;
        long p = strtol(port, &end, 10);
        if (*end == '\0' && p >= 0 && p <= 65535) {
            struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_addr = in6addr_any,
                                        .sin6_port = htons((uint16_t)p) };
            int fd = listen_fd((struct sockaddr *)&in6, sizeof in6, o, true);
            if (fd != -EAFNOSUPPORT)
                return fd;
            struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY),
                                      .sin_port = htons((uint16_t)p) };
            return listen_fd((struct sockaddr *)&in, sizeof in, o, false);
        }
    }
    struct addrinfo *ai;
    rc = tern__net_resolve(TERN_NET_TCP, addr, true, &ai);
    if (rc < 0)
        return rc;
    int fd = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = listen_fd(a->ai_addr, a->ai_addrlen, o, false);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(ai);
    return fd;
}

int tern_listener_new(tern_net net, const char *addr, const tern_listener_options *opts,
                      tern_listener **out)
{
    static const tern_listener_options defaults;
    const tern_listener_options *o = opts ? opts : &defaults;
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!addr)
        return -EINVAL;
    tern_listener *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    l->net = net;
    int fd;
    if (net == TERN_NET_TCP) {
        fd = listen_tcp(addr, o);
    } else if (net == TERN_NET_UNIX) {
        struct sockaddr_un sun;
        socklen_t len;
        fd = tern__net_unix_addr(addr, &sun, &len);
        if (fd == 0) {
            if (o->unlink_existing && addr[0] != '@')
                unlink(addr);
            fd = listen_fd((struct sockaddr *)&sun, len, o, false);
        }
        if (fd >= 0 && addr[0] != '@')
            snprintf(l->path, sizeof l->path, "%s", addr);
        snprintf(l->addr, sizeof l->addr, "%s", addr);
    } else {
        fd = -EINVAL;
    }
    if (fd < 0) {
        free(l);
        return fd;
    }
    TERN_ASSERT(fd >= 0);
    l->fd = fd;
    if (net == TERN_NET_TCP)
        fill_name(l);
    *out = l;
    return 0;
}

static bool is_shortage(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void report_shortage(int err)
{
    static _Atomic int64_t last;
    int64_t now = tern_now(), prev = atomic_load_explicit(&last, memory_order_relaxed);
    if (now - prev >= 1000000000 &&
        atomic_compare_exchange_strong(&last, &prev, now))
        tern__report("accept: %s; backing off and retrying (raise `ulimit -n`?)", strerror(err));
}

int tern_listener_accept(tern_listener *l, tern_conn **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(l);
    TERN_CHECK_ARG(out);
    *out = NULL;
    int64_t backoff = 5000000;
    for (;;) {
        if (atomic_load_explicit(&l->closed, memory_order_acquire))
            return -ECANCELED;
        int rc = ctx ? tern_ctx_err(ctx) : 0;
        if (rc < 0)
            return rc;
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            tern_conn *c;
            tern__fd_adopt(fd);
            if (tern__conn_wrap(fd, &c) < 0) {
                close(fd);
                return -ENOMEM;
            }
            if (l->net == TERN_NET_TCP)
                tern_conn_set_nodelay(c, true);
            *out = c;
            return 0;
        }
        int err = errno;
        if (err == EINTR || err == ECONNABORTED)
            continue;
        if (err == EAGAIN) {
            rc = tern__net_wait(l->fd, TERN_FD_READ, TERN_FOREVER, ctx);
            if (rc < 0)
                return atomic_load(&l->closed) ? -ECANCELED : rc;
            continue;
        }
        if (atomic_load(&l->closed))
            return -ECANCELED;  /* shutdown() makes accept fail with EINVAL */
        if (!is_shortage(err))
            return -err;
        report_shortage(err);
        /* the back-off sleep is bounded by ctx's deadline; a cancellation
         * is seen when it ends (at most 1 s later) */
        int64_t deadline = tern__net_deadline(TERN_FOREVER, ctx);
        int64_t until = tern_now() + backoff;
        if (deadline != TERN_FOREVER && until > deadline)
            until = deadline;
        tern_sleep_until(until);
        if (deadline != TERN_FOREVER && tern_now() >= deadline)
            return -ETIMEDOUT;
        backoff = backoff * 2 > 1000000000 ? 1000000000 : backoff * 2;
        TERN_ASSERT(backoff > 0 && backoff <= 1000000000);  /* "at most 1 s later" */
    }
}

int tern_listener_close(tern_listener *l)
{
    if (!l || atomic_exchange(&l->closed, true))
        return 0;
    /* shutdown, not close: a coroutine inside tern_listener_accept still uses the fd
     * number, which must not be reused until tern_listener_free */
    shutdown(l->fd, SHUT_RDWR);
    return 0;
}

void tern_listener_free(tern_listener *l)
{
    if (!l)
        return;
    tern_listener_close(l);
    TERN_ASSERT(atomic_load(&l->closed));
    tern_fd_close(l->fd);
    if (l->path[0])
        unlink(l->path);
    free(l);
}

const char *tern_listener_addr(const tern_listener *l)
{
    TERN_CHECK_ARG(l);
    return l->addr;
}

int tern_listener_port(const tern_listener *l)
{
    TERN_CHECK_ARG(l);
    return l->port;
}

int tern_listener_fd(const tern_listener *l)
{
    TERN_CHECK_ARG(l);
    return l->fd;
}
