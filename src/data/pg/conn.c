/*
 * conn.c - connecting to PostgreSQL without blocking a worker.
 *
 * libpq's asynchronous connect (PQconnectStartParams, then PQconnectPoll
 * each time the socket is ready in the direction it asked for) runs on the
 * netpoller.  Two things in libpq would still block a thread, and both are
 * kept out of it: DNS (we resolve the host on the blocking pool and pass
 * each address as `hostaddr`, keeping `host` for TLS and messages), and
 * connect_timeout (the ctx bounds the connect instead).
 *
 * libpq owns its socket and closes it itself: on PQfinish, during a
 * connect when it falls back (say, from TLS to plain), and when the server
 * goes away.  The netpoller keys registrations by fd number, so before
 * PQfinish we drop ours (tern__fd_forget) if libpq still holds the socket,
 * and while connecting we compare the socket's inode on each wait to
 * notice a replacement that reused the same number.  A socket libpq
 * dropped unasked leaves a stale record; whoever gets the number next
 * resets it (tern__fd_adopt).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "data/pg/pg_internal.h"
#include "runtime/export.h"
#include "tern/error.h"
#include "tern/runtime.h"

/* How often a parked call looks at a cancellable ctx (as the net layer). */
#define CANCEL_POLL_NS (10 * 1000 * 1000)
#define MAX_ADDRS 8

void tern__pg_copy_error(tern_pg_error *dst, const char *sqlstate, const char *msg)
{
    if (!dst)
        return;
    snprintf(dst->sqlstate, sizeof dst->sqlstate, "%s", sqlstate ? sqlstate : "");
    snprintf(dst->message, sizeof dst->message, "%s", msg ? msg : "");
    /* libpq's messages end in a newline; a log line should not. */
    size_t n = strlen(dst->message);
    while (n > 0 && (dst->message[n - 1] == '\n' || dst->message[n - 1] == ' '))
        dst->message[--n] = '\0';
}

void tern__pg_set_error(tern_pg_conn *c, const PGresult *res)
{
    if (res)
        tern__pg_copy_error(&c->err, PQresultErrorField(res, PG_DIAG_SQLSTATE),
                            PQresultErrorMessage(res));
    else
        tern__pg_copy_error(&c->err, "", PQerrorMessage(c->pg));
}

void tern__pg_forget_socket(tern_pg_conn *c)
{
    /* Only while libpq still holds it: a socket libpq closed itself (the
     * server went away) may have its number taken by now by another
     * coroutine's socket, whose registration and waiters this would
     * drop.  The record a closed one leaves behind is reset by the
     * number's next user (tern__fd_adopt, track_socket). */
    if (c->fd >= 0 && c->pg && PQsocket(c->pg) == c->fd)
        tern__fd_forget(c->fd);
    c->fd = -1;
}

/* Track libpq's socket: a new one (new number, or the old number on a new
 * inode) must be registered afresh, and the old registration dropped. */
static int track_socket(tern_pg_conn *c, bool check_inode)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -EPIPE;
    if (fd == c->fd && !check_inode)
        return 0;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (fd == c->fd && st.st_ino == c->ino)
        return 0;
    /* libpq closed the old socket already, and its registration left
     * epoll with it.  Its number is not ours to touch any more (another
     * coroutine's socket may hold it); the new socket's number may carry
     * such a stale record, which would keep it out of epoll. */
    tern__fd_adopt(fd);
    c->fd = fd;
    c->ino = st.st_ino;
    return 0;
}

int tern__pg_wait(tern_pg_conn *c, int ev, int64_t deadline, tern_ctx *ctx)
{
    int rc = track_socket(c, PQstatus(c->pg) != CONNECTION_OK);
    if (rc < 0)
        return rc;
    int64_t d = TERN_FOREVER;
    if (ctx && tern_ctx_deadline(ctx, &d) && (deadline == TERN_FOREVER || d < deadline))
        deadline = d;
    /* The netpoller is edge-triggered and expects a wait only after an
     * EAGAIN, but libpq does not say whether it saw one: PQconnectPoll
     * asks for "writable" right after a connect whose edge we consumed,
     * and a read may leave data in the socket.  So look first, except on
     * a query's first read wait (reply_due): the reply cannot arrive before
     * the command that asks for it, and each arrival raises an edge (epoll
     * queues one per wake-up of the socket, unread data or not) that no
     * wait has taken yet, so the park returns as soon as any of it is
     * there.  That look was a poll() per query, mostly answering "not
     * yet".  Any wait ends the exemption: after it a read may leave data
     * behind whose edge is spent. */
    struct pollfd pfd = {.fd = c->fd,
                         .events = (short)(((ev & TERN_FD_READ) ? POLLIN : 0) |
                                           ((ev & TERN_FD_WRITE) ? POLLOUT : 0))};
    bool look = !(c->reply_due && ev == TERN_FD_READ);
    c->reply_due = false;
    if (look && poll(&pfd, 1, 0) > 0)
        return 0;
    /* The netpoller wakes a parked coroutine for its fd or its deadline
     * only, so a ctx that can be cancelled is looked at periodically. */
    bool poll_ctx = tern_ctx_done(ctx) != NULL;
    for (;;) {
        rc = ctx ? tern_ctx_err(ctx) : 0;
        if (rc < 0)
            return rc;
        int64_t until = deadline;
        if (poll_ctx) {
            int64_t p = tern_now() + CANCEL_POLL_NS;
            if (until == TERN_FOREVER || p < until)
                until = p;
        }
        rc = tern_fd_wait(c->fd, ev, until);
        if (rc != -ETIMEDOUT)
            return rc;
        if (deadline != TERN_FOREVER && tern_now() >= deadline)
            return -ETIMEDOUT;
        /* Woken to look at the ctx: look at the socket too, so that an
         * edge we did not see (see above) costs 10 ms, not the call. */
        if (poll(&pfd, 1, 0) > 0)
            return 0;
    }
}

/* Server notices (NOTICE, WARNING) would go to stderr by default. */
static void drop_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* ---- resolving ---------------------------------------------------------- */

typedef struct resolve_job {
    const char *host;
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    int n;
    int rc;
} resolve_job;

static int resolve_run(void *arg)
{
    resolve_job *j = arg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(j->host, NULL, &hints, &res);
    if (rc != 0) {
        j->rc = rc == EAI_MEMORY ? -ENOMEM : rc == EAI_SYSTEM ? -errno : -ENOENT;
        return 0;
    }
    for (struct addrinfo *a = res; a && j->n < MAX_ADDRS; a = a->ai_next) {
        const void *src = a->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (inet_ntop(a->ai_family, src, j->addrs[j->n], sizeof j->addrs[0]))
            j->n++;
    }
    freeaddrinfo(res);
    j->rc = j->n > 0 ? 0 : -ENOENT;
    return 0;
}

static bool is_ip(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* ---- connecting --------------------------------------------------------- */

/* One attempt: libpq's connect state machine, each wait on the netpoller. */
static int connect_once(tern_pg_conn *c, const char *const *keys, const char *const *vals,
                        tern_ctx *ctx)
{
    c->pg = PQconnectStartParams(keys, vals, 0);
    if (!c->pg)
        return -ENOMEM;
    c->fd = -1;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        tern__pg_set_error(c, NULL);
        return -EINVAL;
    }
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK) {
        if (st == PGRES_POLLING_FAILED) {
            tern__pg_set_error(c, NULL);
            const char *m = PQerrorMessage(c->pg);
            if (strstr(m, "Connection refused"))
                return -ECONNREFUSED;
            /* The server answered (authentication, unknown database). */
            if (strstr(m, "FATAL"))
                return -EREMOTEIO;
            return -EIO;
        }
        int rc = tern__pg_wait(c, st == PGRES_POLLING_READING ? TERN_FD_READ : TERN_FD_WRITE,
                               TERN_FOREVER, ctx);
        if (rc < 0) {
            tern__pg_copy_error(&c->err, "", tern_strerror(rc));
            return rc;
        }
        st = PQconnectPoll(c->pg);
    }
    /* Our own waits bound every call, so libpq must never block. */
    if (PQsetnonblocking(c->pg, 1) != 0) {
        tern__pg_set_error(c, NULL);
        return -EIO;
    }
    PQsetNoticeProcessor(c->pg, drop_notice, NULL);
    c->cancel = PQgetCancel(c->pg);
    return c->cancel ? 0 : -ENOMEM;
}

static void close_pg(tern_pg_conn *c)
{
    if (c->pg) {
        tern__pg_forget_socket(c);
        PQfinish(c->pg);
        c->pg = NULL;
    }
}

/* keys/vals from the parsed conninfo, with room for hostaddr. */
typedef struct kv {
    const char **keys, **vals;
    int n, hostaddr_at;
} kv;

static int build_kv(PQconninfoOption *opts, kv *out, const char **host, bool *has_hostaddr)
{
    int n = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    out->keys = calloc((size_t)n + 2, sizeof *out->keys);
    out->vals = calloc((size_t)n + 2, sizeof *out->vals);
    if (!out->keys || !out->vals)
        return -ENOMEM;
    out->n = 0;
    *host = NULL;
    *has_hostaddr = false;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0])
            continue;
        if (strcmp(o->keyword, "host") == 0)
            *host = o->val;
        if (strcmp(o->keyword, "hostaddr") == 0)
            *has_hostaddr = true;
        out->keys[out->n] = o->keyword;
        out->vals[out->n] = o->val;
        out->n++;
    }
    out->hostaddr_at = out->n;
    return 0;
}

static int connect_addrs(tern_pg_conn *c, const char *conninfo, tern_ctx *ctx)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        tern__pg_copy_error(&c->err, "", perr ? perr : "out of memory");
        int rc = perr ? -EINVAL : -ENOMEM;
        PQfreemem(perr);
        return rc;
    }
    kv kv = {0};
    const char *host;
    bool has_hostaddr;
    int rc = build_kv(opts, &kv, &host, &has_hostaddr);
    if (rc < 0)
        goto out;
    if (!host && !has_hostaddr)
        host = getenv("PGHOST");
    resolve_job job = {.host = host};
    if (has_hostaddr || !host || host[0] == '/' || host[0] == '@') {
        job.n = 1;              /* Unix socket, or addresses given: libpq does no DNS */
        job.addrs[0][0] = '\0';
    } else if (strchr(host, ',')) {
        tern__pg_copy_error(&c->err, "", "tern_pg: one host per conninfo");
        rc = -EINVAL;
        goto out;
    } else if (is_ip(host)) {
        job.n = 1;
        snprintf(job.addrs[0], sizeof job.addrs[0], "%s", host);
    } else {
        rc = tern_self() ? tern_blocking(resolve_run, &job) : resolve_run(&job);
        if (rc == 0)
            rc = job.rc;
        if (rc < 0) {
            tern__pg_copy_error(&c->err, "", "tern_pg: cannot resolve host");
            goto out;
        }
    }
    for (int i = 0; i < job.n; i++) {
        int at = kv.hostaddr_at;
        if (job.addrs[i][0]) {
            kv.keys[at] = "hostaddr";
            kv.vals[at] = job.addrs[i];
            at++;
        }
        kv.keys[at] = NULL;
        kv.vals[at] = NULL;
        rc = connect_once(c, kv.keys, kv.vals, ctx);
        if (rc == 0)
            break;
        close_pg(c);
        /* Another address helps only when this one could not be reached. */
        if (rc != -ECONNREFUSED && rc != -EIO)
            break;
    }
out:
    free(kv.keys);
    free(kv.vals);
    PQconninfoFree(opts);
    return rc;
}

int tern_pg_conn_new(const char *conninfo, const tern_pg_conn_options *opts, tern_pg_conn **out,
                     tern_pg_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(conninfo);
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_pg_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fd = -1;
    if (opts)
        c->opts = *opts;
    if (c->opts.stmt_cache <= 0)
        c->opts.stmt_cache = 128;
    if (c->opts.cancel_drain_ns <= 0)
        c->opts.cancel_drain_ns = 5 * 1000000000LL;
    int rc = ctx ? tern_ctx_err(ctx) : 0;
    if (rc == 0)
        rc = connect_addrs(c, conninfo, ctx);
    if (rc < 0) {
        tern__pg_copy_error(err, c->err.sqlstate, c->err.message);
        tern_pg_conn_free(c);
        return rc;
    }
    c->created = tern_now();
    *out = c;
    return 0;
}

void tern_pg_conn_free(tern_pg_conn *c)
{
    if (!c)
        return;
    close_pg(c);
    if (c->cancel)
        PQfreeCancel(c->cancel);
    tern__pg_stmt_cache_free(c);
    free(c);
}

bool tern_pg_conn_ok(const tern_pg_conn *c)
{
    TERN_CHECK_ARG(c);
    return !c->broken && c->pg && PQstatus(c->pg) == CONNECTION_OK;
}

const tern_pg_error *tern_pg_conn_last_error(const tern_pg_conn *c)
{
    TERN_CHECK_ARG(c);
    return &c->err;
}

int tern_pg_conn_cached_statements(const tern_pg_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->nstmts;
}
