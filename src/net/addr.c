/*
 * addr.c - parsing, resolving and formatting socket addresses.
 *
 * getaddrinfo() may block for seconds on DNS, so it runs on the blocking
 * pool: the calling coroutine parks, its worker keeps running others.
 * Numeric addresses skip the pool (AI_NUMERICHOST first).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "net/net_internal.h"
#include "tern/runtime.h"

int tern_net_split_host_port(const char *addr, char *host, size_t host_size,
                             char *port, size_t port_size)
{
    if (!addr || !host || !port)
        return -EINVAL;
    const char *h, *he, *p;
    if (addr[0] == '[') {
        h = addr + 1;
        he = strchr(h, ']');
        if (!he || he[1] != ':')
            return -EINVAL;
        p = he + 2;
    } else {
        he = strrchr(addr, ':');
        if (!he)
            return -EINVAL;
        h = addr;
        if (memchr(h, ':', (size_t)(he - h)))  /* bare IPv6 needs brackets */
            return -EINVAL;
        p = he + 1;
    }
    TERN_ASSERT(he >= h && p > he);
    size_t hl = (size_t)(he - h), pl = strlen(p);
    if (pl == 0 || hl >= host_size || pl >= port_size)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl + 1);
    return 0;
}

/* gai error -> -errno */
static int gai_errno(int rc)
{
    switch (rc) {
    case 0: return 0;
    case EAI_NONAME: case EAI_NODATA: case EAI_ADDRFAMILY: return -ENOENT;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_SERVICE: case EAI_BADFLAGS: case EAI_SOCKTYPE: case EAI_FAMILY: return -EINVAL;
    case EAI_SYSTEM: return errno ? -errno : -EIO;
    default: return -EIO;
    }
}

struct gai_call {
    const char *host, *port;
    struct addrinfo hints;
    struct addrinfo *res;
    int err;
};

static int gai_run(void *arg)
{
    struct gai_call *g = arg;
    errno = 0;
    int rc = getaddrinfo(g->host, g->port, &g->hints, &g->res);
    g->err = gai_errno(rc);
    return 0;
}

int tern__net_resolve(tern_net net, const char *addr, bool passive, struct addrinfo **out)
{
    if (net != TERN_NET_TCP)
        return -EINVAL;
    char host[256], port[32];
    int rc = tern_net_split_host_port(addr, host, sizeof host, port, sizeof port);
    if (rc < 0)
        return rc;
    struct gai_call g = { .host = host[0] ? host : NULL, .port = port };
    g.hints.ai_socktype = SOCK_STREAM;
    g.hints.ai_family = AF_UNSPEC;
    g.hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (!g.host && !passive)
        g.host = "localhost";   /* ":80" dials the local host, as Go does */
    gai_run(&g);
    if (g.err == 0) {
        *out = g.res;
        return 0;
    }
    /* not numeric: a name or a service name, which may need DNS */
    g.res = NULL;
    g.hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
    rc = tern_self() ? tern_blocking(gai_run, &g) : gai_run(&g);
    if (rc < 0)
        return rc;
    if (g.err < 0)
        return g.err;
    *out = g.res;
    return 0;
}

int tern__net_unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof sun->sun_path)
        return -EINVAL;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@')
        sun->sun_path[0] = '\0';        /* abstract namespace */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '@' ? 0 : 1));
    TERN_ASSERT(*len <= sizeof *sun);
    return 0;
}

void tern__net_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
        return;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
        return;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const void *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path) : 0;
        if (n == 0)
            snprintf(buf, size, "@");
        else if (un->sun_path[0] == '\0')
            snprintf(buf, size, "@%.*s", (int)(n - 1), un->sun_path + 1);
        else
            snprintf(buf, size, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
        return;
    }
    default:
        snprintf(buf, size, "?");
    }
}
