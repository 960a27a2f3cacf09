/*
 * resolver_dns.c - endpoints from DNS through c-ares, on the netpoller:
 * A/AAAA records of "host:port", or SRV records (a Kubernetes headless
 * service publishes one per ready pod) whose targets are resolved in turn;
 * looked up again when the shortest TTL runs out (clamped to
 * [min_refresh, max_refresh]), and sooner after a failure, with backoff.
 *
 * c-ares is driven without threads: its sockets are put into a private
 * epoll set (its socket-state callback adds and removes them), and the
 * watcher coroutine parks on that epoll fd with tern_fd_wait, edge-
 * triggered: it parks only after a zero-timeout epoll_wait found nothing,
 * and a new ready socket makes the inner set readable again.  ares_timeout
 * bounds each park so that retransmissions and timeouts run on time.
 *
 * SRV: only the records of the lowest priority are used (RFC 2782: higher
 * ones are fallbacks); a record's weight becomes the endpoint's (0 counts
 * as 1).  c-ares 1.18's SRV parser gives no TTL, so the answers' TTLs are
 * read from the message here (the header, the questions skipped with
 * ares_expand_name, then each answer's fixed fields).
 */
#define _GNU_SOURCE
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "base/check.h"
#include "runtime/export.h"
#include "tern/context.h"
#include "tern/discovery.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define MAX_ENDPOINTS 4096

typedef struct dns_res {
    char *host;                 /* the A/AAAA name, or the SRV name */
    char port[8];               /* A/AAAA: the port given in the target */
    tern_resolver_dns_options o;
    char *servers;
    ares_channel ch;
    int epfd;
    tern_resolver_update_fn *update;
    void *arg;
    tern_ctx *stop;
    tern_waitgroup running;
    tern_endpoint *last;        /* the set last delivered, sorted by addr */
    size_t last_n;
    int last_err;
} dns_res;

/* ---- c-ares on an epoll set ---- */

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_res *d = data;
    struct epoll_event ev = {.events = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0),
                             .data.fd = fd};
    if (!readable && !writable) {
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
        return;
    }
    if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Run c-ares until *done or the deadline; -ETIMEDOUT/-ECANCELED when the
 * stop ctx ended (c-ares' own timeouts end queries with ARES_ETIMEOUT). */
static int drive(dns_res *d, const bool *done)
{
    while (!*done) {
        if (tern_ctx_err(d->stop))
            return -ECANCELED;
        struct epoll_event evs[8];
        int n = epoll_wait(d->epfd, evs, 8, 0);
        if (n > 0) {
            for (int i = 0; i < n; i++)
                ares_process_fd(d->ch, (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? evs[i].data.fd
                                                                                        : ARES_SOCKET_BAD,
                                (evs[i].events & EPOLLOUT) ? evs[i].data.fd : ARES_SOCKET_BAD);
            continue;
        }
        struct timeval max = {.tv_sec = 0, .tv_usec = 100000}, tv;   /* look at stop every 100 ms */
        struct timeval *t = ares_timeout(d->ch, &max, &tv);
        int64_t wait = (int64_t)t->tv_sec * TERN_SEC + (int64_t)t->tv_usec * 1000;
        int rc = tern_fd_wait(d->epfd, TERN_FD_READ, tern_deadline_after(wait));
        if (rc == -ETIMEDOUT)
            ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);   /* c-ares' timers */
        else if (rc < 0)
            return rc;
    }
    return 0;
}

static int ares_errno(int status)
{
    switch (status) {
    case ARES_SUCCESS: return 0;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ENONAME: return -ENOENT;  /* no such name, or no record of that type */
    case ARES_ETIMEOUT: return -ETIMEDOUT;
    case ARES_ECONNREFUSED: return -ECONNREFUSED;
    case ARES_ENOMEM: return -ENOMEM;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED: return -ECANCELED;
    case ARES_EBADRESP:
    case ARES_EFORMERR: return -EBADMSG;
    default: return -EIO;
    }
}

/* ---- a set under construction ---- */

typedef struct set {
    tern_endpoint *eps;
    size_t n, cap;
    int ttl;                    /* the shortest seen; -1: none */
} set;

static void set_free(set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free((char *)s->eps[i].addr);
    free(s->eps);
    *s = (set){.ttl = -1};
}

static int set_add(set *s, const char *addr, uint32_t weight)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->eps[i].addr, addr))
            return 0;           /* one address twice (two SRV names for one host) */
    if (s->n >= MAX_ENDPOINTS)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        tern_endpoint *e = realloc(s->eps, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        s->eps = e;
        s->cap = cap;
    }
    char *a = strdup(addr);
    if (!a)
        return -ENOMEM;
    s->eps[s->n++] = (tern_endpoint){.addr = a, .weight = weight};
    return 0;
}

static void note_ttl(set *s, int ttl)
{
    if (ttl >= 0 && (s->ttl < 0 || ttl < s->ttl))
        s->ttl = ttl;
}

/* ---- A/AAAA ---- */

typedef struct addr_q {
    bool done;
    int status;
    struct ares_addrinfo *ai;
} addr_q;

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    addr_q *q = arg;
    q->status = status;
    q->ai = ai;
    q->done = true;
}

/* Resolve host; add "ip:port" for each address, with weight. */
static int lookup_addrs(dns_res *d, const char *host, const char *port, uint32_t weight, set *s)
{
    struct ares_addrinfo_hints h = {.ai_family = d->o.family, .ai_socktype = SOCK_STREAM,
                                    .ai_flags = ARES_AI_NUMERICSERV | ARES_AI_NOSORT};
    addr_q q = {0};
    ares_getaddrinfo(d->ch, host, port, &h, on_addrinfo, &q);
    int rc = drive(d, &q.done);
    if (rc == 0)
        rc = ares_errno(q.status);
    for (struct ares_addrinfo_node *n = q.ai ? q.ai->nodes : NULL; rc == 0 && n; n = n->ai_next) {
        char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 16];
        if (n->ai_family == AF_INET) {
            const struct sockaddr_in *sa = (const void *)n->ai_addr;
            inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof ip);
            snprintf(addr, sizeof addr, "%s:%u", ip, ntohs(sa->sin_port));
        } else if (n->ai_family == AF_INET6) {
            const struct sockaddr_in6 *sa = (const void *)n->ai_addr;
            inet_ntop(AF_INET6, &sa->sin6_addr, ip, sizeof ip);
            snprintf(addr, sizeof addr, "[%s]:%u", ip, ntohs(sa->sin6_port));
        } else {
            continue;
        }
        note_ttl(s, n->ai_ttl);
        rc = set_add(s, addr, weight);
    }
    if (q.ai)
        ares_freeaddrinfo(q.ai);
    return rc;
}

/* ---- SRV ---- */

typedef struct srv_q {
    bool done;
    int status;
    unsigned char *buf;
    int len;
} srv_q;

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    srv_q *q = arg;
    q->status = status;
    if (status == ARES_SUCCESS && abuf && alen > 0 && (q->buf = malloc((size_t)alen))) {
        memcpy(q->buf, abuf, (size_t)alen);
        q->len = alen;
    }
    q->done = true;
}

static unsigned be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* The shortest TTL of the answer section (-1: none or malformed).  RFC
 * 1035 4.1: a 12-byte header (QDCOUNT at 4, ANCOUNT at 6), the questions
 * (a name, type and class), then records: a name, type, class, a 32-bit
 * TTL at 4 and the data length at 8 of the fixed part. */
static int answers_ttl(const unsigned char *m, int len)
{
    if (len < HFIXEDSZ)
        return -1;
    int qd = (int)be16(m + 4), an = (int)be16(m + 6);
    const unsigned char *p = m + HFIXEDSZ;
    for (int i = 0; i < qd; i++) {
        char *name;
        long nlen;
        if (ares_expand_name(p, m, len, &name, &nlen) != ARES_SUCCESS)
            return -1;
        ares_free_string(name);
        p += nlen + QFIXEDSZ;
        if (p > m + len)
            return -1;
    }
    int ttl = -1;
    for (int i = 0; i < an; i++) {
        char *name;
        long nlen;
        if (ares_expand_name(p, m, len, &name, &nlen) != ARES_SUCCESS)
            return ttl;
        ares_free_string(name);
        p += nlen;
        if (p + RRFIXEDSZ > m + len)
            return ttl;
        uint32_t raw = (uint32_t)be16(p + 4) << 16 | be16(p + 6);
        int t = (int)(raw & 0x7fffffff);
        if (ttl < 0 || t < ttl)
            ttl = t;
        p += RRFIXEDSZ + be16(p + 8);
    }
    return ttl;
}

static int lookup_srv(dns_res *d, set *s)
{
    srv_q q = {0};
    ares_query(d->ch, d->host, ns_c_in, ns_t_srv, on_srv, &q);
    int rc = drive(d, &q.done);
    if (rc == 0)
        rc = ares_errno(q.status);
    struct ares_srv_reply *srv = NULL;
    if (rc == 0 && (!q.buf || ares_parse_srv_reply(q.buf, q.len, &srv) != ARES_SUCCESS))
        rc = -EBADMSG;
    if (rc == 0)
        note_ttl(s, answers_ttl(q.buf, q.len));
    free(q.buf);
    int best = 65536;
    for (struct ares_srv_reply *r = srv; r; r = r->next)
        if (r->priority < best)
            best = r->priority;
    for (struct ares_srv_reply *r = srv; rc == 0 && r; r = r->next) {
        if (r->priority != best)
            continue;
        char port[8];
        snprintf(port, sizeof port, "%u", r->port);
        int one = lookup_addrs(d, r->host, port, r->weight ? r->weight : 1, s);
        if (one == -ENOMEM || one == -ECANCELED)
            rc = one;           /* a target that does not resolve is skipped */
    }
    if (srv)
        ares_free_data(srv);
    if (rc == 0 && s->n == 0 && srv)
        rc = -ENOENT;           /* records, but no target resolved */
    return rc;
}

/* ---- the watcher ---- */

static int ep_cmp(const void *a, const void *b)
{
    return strcmp(((const tern_endpoint *)a)->addr, ((const tern_endpoint *)b)->addr);
}

static bool same_set(const dns_res *d, const set *s)
{
    if (d->last_n != s->n || d->last_err)
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(d->last[i].addr, s->eps[i].addr) || d->last[i].weight != s->eps[i].weight)
            return false;
    return true;
}

/* One lookup; delivers on change.  The ns to wait before the next. */
static int64_t refresh(dns_res *d, int64_t *backoff)
{
    set s = {.ttl = -1};
    int rc = d->o.srv ? lookup_srv(d, &s) : lookup_addrs(d, d->host, d->port, 1, &s);
    if (rc == -ECANCELED && tern_ctx_err(d->stop)) {
        set_free(&s);
        return 0;
    }
    if (rc < 0) {
        set_free(&s);
        if (rc != d->last_err)
            tern_log_warn("dns resolver lookup failed, keeping the last set", TERN_LOG_STR("name", d->host),
                          TERN_LOG_STR("error", tern_strerror(rc)));
        d->last_err = rc;
        d->update(NULL, 0, rc, d->arg);
        int64_t wait = *backoff;
        *backoff = *backoff * 2 > d->o.max_refresh ? d->o.max_refresh : *backoff * 2;
        return wait;
    }
    *backoff = d->o.min_refresh;
    if (s.n)
        qsort(s.eps, s.n, sizeof *s.eps, ep_cmp);
    if (!same_set(d, &s)) {
        d->update(s.eps, s.n, 0, d->arg);
        for (size_t i = 0; i < d->last_n; i++)
            free((char *)d->last[i].addr);
        free(d->last);
        d->last = s.eps;
        d->last_n = s.n;
        s.eps = NULL;
        s.n = 0;
    }
    d->last_err = 0;
    int64_t wait = s.ttl >= 0 ? (int64_t)s.ttl * TERN_SEC : d->o.max_refresh;
    set_free(&s);
    if (wait < d->o.min_refresh)
        wait = d->o.min_refresh;
    if (wait > d->o.max_refresh)
        wait = d->o.max_refresh;
    return wait;
}

static int watch_co(void *arg)
{
    dns_res *d = arg;
    int64_t backoff = d->o.min_refresh;
    int64_t wait = refresh(d, &backoff);
    while (tern_ctx_sleep(wait, d->stop) == 0)
        wait = refresh(d, &backoff);
    tern_waitgroup_done(&d->running);
    return 0;
}

static int dns_start(void *impl, tern_resolver_update_fn *update, void *arg)
{
    dns_res *d = impl;
    d->update = update;
    d->arg = arg;
    tern_waitgroup_add(&d->running, 1);
    int rc = tern_go(watch_co, d);
    if (rc < 0)
        tern_waitgroup_done(&d->running);
    return rc;
}

static void dns_stop(void *impl)
{
    dns_res *d = impl;
    tern_ctx_cancel(d->stop);
    (void)tern_waitgroup_wait(&d->running, NULL);
}

static void dns_free(void *impl)
{
    dns_res *d = impl;
    if (d->ch)
        ares_destroy(d->ch);
    if (d->epfd >= 0)
        tern_fd_close(d->epfd);
    for (size_t i = 0; i < d->last_n; i++)
        free((char *)d->last[i].addr);
    free(d->last);
    tern_ctx_free(d->stop);
    free(d->servers);
    free(d->host);
    free(d);
}

static const tern_resolver_ops dns_ops = {dns_start, dns_stop, dns_free};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_global_init(void)
{
    ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* "host:port" or "[v6]:port" into host and port. */
static int split_target(const char *target, char **host, char port[8])
{
    const char *colon = strrchr(target, ':');
    if (!colon || colon == target || !colon[1] || strlen(colon + 1) > 5)
        return -EINVAL;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535)
        return -EINVAL;
    const char *h = target;
    size_t hlen = (size_t)(colon - target);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']')
            return -EINVAL;
        h++;
        hlen -= 2;
    }
    if (!(*host = strndup(h, hlen)))
        return -ENOMEM;
    snprintf(port, 8, "%ld", p);
    return 0;
}

int tern_resolver_dns_new(const char *target, const tern_resolver_dns_options *o, tern_resolver **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_resolver_dns_options opts = o ? *o : (tern_resolver_dns_options){0};
    if (!target || !*target || opts.min_refresh < 0 || opts.max_refresh < 0 || opts.timeout < 0 ||
        (opts.family != AF_UNSPEC && opts.family != AF_INET && opts.family != AF_INET6))
        return -EINVAL;
    if (!opts.min_refresh)
        opts.min_refresh = TERN_SEC;
    if (!opts.max_refresh)
        opts.max_refresh = 30 * TERN_SEC;
    if (opts.max_refresh < opts.min_refresh)
        opts.max_refresh = opts.min_refresh;
    if (!opts.timeout)
        opts.timeout = 5 * TERN_SEC;
    pthread_once(&ares_once, ares_global_init);
    if (ares_init_status != ARES_SUCCESS)
        return -ENOMEM;
    dns_res *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    d->epfd = -1;
    d->o = opts;
    int rc = opts.srv ? ((d->host = strdup(target)) ? 0 : -ENOMEM) : split_target(target, &d->host, d->port);
    if (rc == 0 && opts.servers && !(d->servers = strdup(opts.servers)))
        rc = -ENOMEM;
    d->o.servers = d->servers;
    if (rc == 0 && tern_ctx_with_cancel(NULL, &d->stop) < 0)
        rc = -ENOMEM;
    if (rc == 0 && (d->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        rc = -errno;
    if (rc == 0)
        tern__fd_adopt(d->epfd);
    if (rc == 0) {
        struct ares_options ao = {
            .sock_state_cb = sock_state,
            .sock_state_cb_data = d,
            .timeout = (int)(opts.timeout / TERN_MS / 2 > 0 ? opts.timeout / TERN_MS / 2 : 1),
            .tries = 2,
            .lookups = (char *)(opts.servers ? "b" : "fb"),
        };
        int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
        int st = ares_init_options(&d->ch, &ao, mask);
        if (st != ARES_SUCCESS) {
            d->ch = NULL;
            rc = st == ARES_ENOMEM ? -ENOMEM : -EIO;
        }
    }
    if (rc == 0 && opts.servers && ares_set_servers_ports_csv(d->ch, opts.servers) != ARES_SUCCESS)
        rc = -EINVAL;
    if (rc < 0) {
        dns_free(d);
        return rc;
    }
    return tern_resolver_new(&dns_ops, d, out);
}
