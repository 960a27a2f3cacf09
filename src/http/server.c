/*
 * server.c - the HTTP server's life: listeners, accept loops, connection
 * bookkeeping, and graceful shutdown.
 *
 * Shutdown follows Go's http.Server.Shutdown: stop accepting, close the
 * connections that are idle between requests, and let those inside a
 * request finish (their answer says Connection: close).  When the
 * shutdown's ctx ends the rest are forced: their request contexts are
 * cancelled and their sockets shut down, so parked reads and writes
 * return.  serve's own ctx ending forces the same at once.
 *
 * A forced shutdown then waits only shutdown_grace for the connection
 * coroutines to leave: a handler that ignores its context (a CPU loop, a
 * blocking call) would otherwise hold shutdown, and the program, as long
 * as it runs.  Such connections are abandoned, still listed; they keep the
 * server alive, so tern_http_server_free on a server with connections left
 * marks it orphaned and the last connection to leave frees it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "http/server_internal.h"
#include "runtime/export.h"
#include "tern/runtime.h"

#define SEC 1000000000LL

static int64_t or_default(int64_t v, int64_t def) { return v == 0 ? def : v; }

/* The default connection limit: three quarters of the open-file limit,
 * so a flood of clients pauses accepting (clients wait in the listen
 * backlog) before the process runs out of descriptors for its files,
 * downstream connections and listeners.  Without it 50 slow clients took
 * hello to 839 MB (issue 15). */
static int default_max_conns(void)
{
    struct rlimit rl;
    rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (n == RLIM_INFINITY || n / 4 * 3 > HTTP_MAX_CONNS_CAP)
        return HTTP_MAX_CONNS_CAP;
    n = n / 4 * 3;
    return n < HTTP_MIN_CONNS ? HTTP_MIN_CONNS : (int)n;
}

int tern_http_server_new(const tern_http_server_options *o, tern_http_server **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o || !o->handler)
        return -EINVAL;
    tern_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->o = *o;
    s->o.max_request_line = s->o.max_request_line ? s->o.max_request_line : 8192;
    s->o.max_header_bytes = s->o.max_header_bytes ? s->o.max_header_bytes : 65536;
    s->o.max_headers = s->o.max_headers ? s->o.max_headers : 100;
    s->o.max_body_bytes = or_default(s->o.max_body_bytes, 8 << 20);
    s->o.read_header_timeout = or_default(s->o.read_header_timeout, 10 * SEC);
    s->o.read_body_timeout = or_default(s->o.read_body_timeout, 60 * SEC);
    s->o.write_timeout = or_default(s->o.write_timeout, 60 * SEC);
    s->o.idle_timeout = or_default(s->o.idle_timeout, 120 * SEC);
    s->o.shutdown_grace = or_default(s->o.shutdown_grace, 1 * SEC);
    s->o.max_conns = s->o.max_conns ? s->o.max_conns : default_max_conns();
    int rc = tern_ctx_with_cancel(NULL, &s->base);
    if (rc == 0)
        rc = tern_ctx_with_cancel(NULL, &s->accepting);
    if (rc == 0)
        rc = tern_chan_new(1, 0, &s->drained);
    if (rc == 0)
        rc = tern_chan_new(1, 0, &s->finished);
    if (rc < 0) {
        tern_chan_free(s->finished);
        tern_ctx_free(s->base);
        tern_ctx_free(s->accepting);
        tern_chan_free(s->drained);
        free(s);
        return rc;
    }
    s->conn_slots = (tern_sem)TERN_SEM_INIT(s->o.max_conns > 0 ? s->o.max_conns : 1);
    *out = s;
    return 0;
}

int tern_http_server_add_listener(tern_http_server *s, tern_listener *l)
{
    TERN_CHECK_ARG(s);
    if (!l)
        return -EINVAL;
    if (s->nls == HTTP_MAX_LISTENERS)
        return -ENOSPC;
    if (atomic_load(&s->serving))
        return -EBUSY;
    s->ls[s->nls++] = l;
    return 0;
}

int tern_http_server_listen(tern_http_server *s, const char *addr)
{
    TERN_CHECK_ARG(s);
    int n = s->o.reuseport ? tern_runtime_procs() : 1;
    tern_listener_options lo = { .reuseport = s->o.reuseport };
    char bound[128];
    for (int i = 0; i < n; i++) {
        tern_listener *l;
        /* later listeners join the first one's port (which may have been :0) */
        int rc = tern_listener_new(TERN_NET_TCP, i == 0 ? addr : bound, &lo, &l);
        if (rc == 0 && (rc = tern_http_server_add_listener(s, l)) < 0)
            tern_listener_free(l);
        if (rc < 0)
            return rc;
        if (i == 0)
            snprintf(bound, sizeof bound, "%s", tern_listener_addr(l));
    }
    return 0;
}

int tern_http_server_port(const tern_http_server *s)
{
    TERN_CHECK_ARG(s);
    return s->nls > 0 ? tern_listener_port(s->ls[0]) : 0;
}

const char *tern_http_server_addr(const tern_http_server *s)
{
    TERN_CHECK_ARG(s);
    return s->nls > 0 ? tern_listener_addr(s->ls[0]) : "";
}

int tern_http_server_stats(const tern_http_server *s, struct tern_http_server_stats *st)
{
    TERN_CHECK_ARG(s);
    TERN_CHECK_ARG(st);
    st->accepted = atomic_load(&s->accepted);
    st->requests = atomic_load(&s->requests);
    st->rejected = atomic_load(&s->rejected);
    st->conns = atomic_load(&s->nconns);
    st->active = atomic_load(&s->nactive);
    st->conn_limit_hits = atomic_load(&s->conn_limit_hits);
    st->max_conns = s->o.max_conns > 0 ? (uint32_t)s->o.max_conns : 0;
    return 0;
}

/* Under s->mu: true (once) when shutdown has begun and no connection is
 * left; the caller then closes s->drained after its last touch of s,
 * because serve() may return and the server be freed at once. */
static bool take_drained(tern_http_server *s)
{
    if (atomic_load(&s->shutting_down) && !s->conns && !s->drained_closed) {
        TERN_ASSERT(atomic_load(&s->nconns) == 0);
        s->drained_closed = true;
        return true;
    }
    return false;
}

static void server_release(tern_http_server *s);

void tern__http_conn_gone(tern_http_server *s, hconn *hc)
{
    /* While this conn is listed the server cannot finish shutting down, so
     * s is alive: touch it only before unlinking.  Unlink before closing
     * the fd: kick_conns walks the list and shuts each conn's fd down. */
    tern_chan *drained = s->drained;
    TERN_ASSERT(atomic_load(&hc->state) == CONN_ACTIVE);   /* idle conns are woken, not gone */
    TERN_ASSERT(hc->cur == NULL && hc->in == NULL);           /* no request, no burst frame */
    if (s->o.max_conns > 0)
        tern_sem_release(&s->conn_slots, 1);
    tern_mutex_lock(&s->mu);
    TERN_ASSERT(!s->drained_closed);    /* this conn is still listed */
    TERN_ASSERT(hc->prev ? hc->prev->next == hc : s->conns == hc);
    TERN_ASSERT(!hc->next || hc->next->prev == hc);
    if (hc->prev)
        hc->prev->next = hc->next;
    else
        s->conns = hc->next;
    if (hc->next)
        hc->next->prev = hc->prev;
    uint32_t nconns = atomic_fetch_sub(&s->nconns, 1);
    uint32_t nactive = atomic_fetch_sub(&s->nactive, 1);
    TERN_ASSERT(nconns > 0 && nactive > 0);
    bool last = take_drained(s);
    /* the owner freed the server after abandoning us: the last one out
     * frees it, nobody else holds it any more */
    bool release = s->orphaned && !s->conns;
    tern_mutex_unlock(&s->mu);
    tern_conn_free(hc->c);     /* its buffers went with its serving frame */
    free(hc);
    if (last)
        tern_chan_close(drained);       /* s may be gone from here on */
    if (release) {
        tern__report("http server: the last abandoned connection has left; server freed");
        server_release(s);
    }
}

typedef struct accept_arg {
    tern_http_server *s;
    tern_listener *l;
} accept_arg;

/* A slot for the next connection: at max_conns, accepting pauses until a
 * connection leaves.  Each pause is counted (stats: conn_limit_hits) and
 * reported, at most once per HTTP_LIMIT_REPORT_NS, so an operator sees
 * why clients queue without a flood of lines. */
static int conn_slot(tern_http_server *s)
{
    if (tern_sem_try_acquire(&s->conn_slots, 1) == 0)
        return 0;
    atomic_fetch_add_explicit(&s->conn_limit_hits, 1, memory_order_relaxed);
    int64_t now = tern_now(), last = atomic_load(&s->limit_reported);
    if ((last == 0 || now - last >= HTTP_LIMIT_REPORT_NS) &&
        atomic_compare_exchange_strong(&s->limit_reported, &last, now))
        tern__report("http server: %d connections open, at max_conns: accepting paused "
                     "(%llu times so far)", s->o.max_conns,
                     (unsigned long long)atomic_load(&s->conn_limit_hits));
    return tern_sem_acquire(&s->conn_slots, 1, s->accepting);
}

static int accept_loop(void *arg)
{
    accept_arg *a = arg;
    tern_http_server *s = a->s;
    tern_listener *l = a->l;
    free(a);
    tern_go_options go = { .name = "http-conn" };
    for (;;) {
        if (s->o.max_conns > 0 && conn_slot(s) < 0)
            break;
        tern_conn *c;
        int rc = tern_listener_accept(l, &c, NULL);
        if (rc < 0) {
            if (s->o.max_conns > 0)
                tern_sem_release(&s->conn_slots, 1);
            if (rc == -ECANCELED || atomic_load(&s->shutting_down))
                break;
            continue;           /* a failed handshake; accept goes on */
        }
        hconn *hc = calloc(1, sizeof *hc);
        if (!hc) {
            tern_conn_free(c);
            if (s->o.max_conns > 0)
                tern_sem_release(&s->conn_slots, 1);
            continue;
        }
        hc->srv = s;
        hc->c = c;
        atomic_store(&hc->state, CONN_ACTIVE);
        tern_mutex_lock(&s->mu);
        if (atomic_load(&s->shutting_down)) {
            /* shutdown may already have found the list empty and be
             * returning: this conn must never touch the server */
            tern_mutex_unlock(&s->mu);
            tern_conn_free(c);
            free(hc);
            if (s->o.max_conns > 0)
                tern_sem_release(&s->conn_slots, 1);
            break;
        }
        TERN_ASSERT(!s->drained_closed);
        hc->next = s->conns;
        TERN_ASSERT(!s->conns || s->conns->prev == NULL);
        if (s->conns)
            s->conns->prev = hc;
        s->conns = hc;
        atomic_fetch_add(&s->nconns, 1);
        atomic_fetch_add(&s->nactive, 1);
        tern_mutex_unlock(&s->mu);
        atomic_fetch_add_explicit(&s->accepted, 1, memory_order_relaxed);
        if (tern_go_opts(tern__http_serve_conn, hc, &go, NULL) < 0)
            tern__http_conn_gone(s, hc);
    }
    tern_waitgroup_done(&s->accepters);
    return 0;
}

static int stop(tern_http_server *s, tern_ctx *ctx, bool force);

int tern_http_server_serve(tern_http_server *s, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    if (s->nls == 0)
        return -EDESTADDRREQ;
    if (atomic_exchange(&s->serving, true))
        return -EBUSY;
    tern_waitgroup_add(&s->accepters, s->nls);
    for (int i = 0; i < s->nls; i++) {
        accept_arg *a = malloc(sizeof *a);
        if (a) {
            a->s = s;
            a->l = s->ls[i];
        }
        if (!a || tern_go_opts(accept_loop, a, &(tern_go_options){ .name = "http-accept" }, NULL) < 0) {
            free(a);
            tern_waitgroup_add(&s->accepters, -(s->nls - i));
            stop(s, NULL, true);
            return -ENOMEM;
        }
    }
    /* until the first shutdown call is over (it closes finished), or ctx
     * ends: then everything stops at once */
    bool ok;
    char c;
    int rc = tern_chan_recv(s->finished, &c, &ok, ctx);
    if (rc < 0)
        stop(s, ctx, true);
    tern_waitgroup_wait(&s->accepters, NULL);
    /* accepting has stopped; wait until the first shutdown call is over,
     * so that our caller may free the server as soon as we return */
    tern_chan_recv(s->finished, &c, &ok, NULL);
    return rc;
}

/* Kick connections parked between requests; with force, every one. */
static void kick_conns(tern_http_server *s, bool force)
{
    tern_mutex_lock(&s->mu);
    for (hconn *hc = s->conns; hc; hc = hc->next)
        if (force || atomic_load(&hc->state) == CONN_IDLE)
            shutdown(tern_conn_fd(hc->c), force ? SHUT_RDWR : SHUT_RD);
    bool last = take_drained(s);
    tern_mutex_unlock(&s->mu);
    if (last)
        tern_chan_close(s->drained);    /* our caller holds the server */
}

/* After forcing: wait up to shutdown_grace for the connection coroutines
 * to leave (a handler must return before its coroutine can).  0 when all
 * have, -ETIMEDOUT when some are abandoned. */
static int wait_grace(tern_http_server *s)
{
    bool ok;
    char c;
    if (s->o.shutdown_grace < 0)
        return tern_chan_recv(s->drained, &c, &ok, NULL) < 0 ? -ETIMEDOUT : 0;
    int64_t until = tern_now() + s->o.shutdown_grace;
    tern_ctx *grace;
    int r;
    if (tern_ctx_with_timeout(NULL, s->o.shutdown_grace, &grace) == 0) {
        r = tern_chan_recv(s->drained, &c, &ok, grace);
        tern_ctx_free(grace);
    } else {
        /* ENOMEM: poll, still bounded */
        while ((r = tern_chan_try_recv(s->drained, &c, &ok)) < 0 && tern_now() < until)
            tern_sleep(5 * TERN_MS);
    }
    if (r == 0)
        return 0;
    tern__report("http server: %u connection(s) still in handlers that ignore their context "
                 "%lld ms after being forced closed; abandoned",
                 (unsigned)atomic_load(&s->nconns), (long long)(s->o.shutdown_grace / TERN_MS));
    return -ETIMEDOUT;
}

/* Wait (bounded by ctx) for the connections to drain, kicking those that
 * turn idle; force, or ctx ending first, cancels the requests left and
 * closes every connection.  0, or ctx's error when it forced them. */
static int drain(tern_http_server *s, tern_ctx *ctx, bool force)
{
    bool ok;
    char c;
    kick_conns(s, false);
    for (;;) {
        int err = ctx ? tern_ctx_err(ctx) : 0;
        if (force || err < 0) {
            tern_ctx_cancel(s->base);
            kick_conns(s, true);
            return wait_grace(s) < 0 ? -ETIMEDOUT : err;
        }
        /* connections idle now may have been active a moment ago: look
         * again every few ms until they are all gone or ctx ends */
        tern_ctx *tick;
        int r;
        if (tern_ctx_with_timeout(ctx, 5 * TERN_MS, &tick) == 0) {
            r = tern_chan_recv(s->drained, &c, &ok, tick);
            tern_ctx_free(tick);
        } else {
            tern_ctx_sleep(5 * TERN_MS, ctx);   /* ENOMEM: poll the same */
            r = tern_chan_try_recv(s->drained, &c, &ok);
        }
        if (r == 0)
            return 0;
        kick_conns(s, false);
    }
}

static int stop(tern_http_server *s, tern_ctx *ctx, bool force)
{
    bool first = !atomic_exchange(&s->shutting_down, true);
    tern_chan *finished = s->finished;
    if (first) {
        for (int i = 0; i < s->nls; i++)
            tern_listener_close(s->ls[i]);
        tern_ctx_cancel(s->accepting);  /* an accept loop waiting for a slot */
    }
    int rc = drain(s, ctx, force);
    /* drain returns 0 or ctx's error only once the drained channel is
     * closed; -ETIMEDOUT may also mean connections were abandoned */
    TERN_ASSERT(rc == -ETIMEDOUT || s->drained_closed);
    if (first)
        tern_chan_close(finished);      /* serve() returns; s may be freed now */
    return rc;
}

int tern_http_server_shutdown(tern_http_server *s, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    return stop(s, ctx, false);
}

/* Free everything: nobody holds the server any more. */
static void server_release(tern_http_server *s)
{
    TERN_ASSERT(s->conns == NULL && atomic_load(&s->nconns) == 0);
    TERN_ASSERT(s->nls >= 0 && s->nls <= HTTP_MAX_LISTENERS);
    for (int i = 0; i < s->nls; i++)
        tern_listener_free(s->ls[i]);
    tern_ctx_free(s->base);
    tern_ctx_free(s->accepting);
    tern_chan_free(s->drained);
    tern_chan_free(s->finished);
    free(s);
}

void tern_http_server_free(tern_http_server *s)
{
    if (!s)
        return;
    /* Freed with no serve running: a server that ever served was shut
     * down, and serve has returned, which it does only after its accept
     * loops are done.  Connections may be left, abandoned by a forced
     * shutdown whose grace ran out. */
    TERN_ASSERT(!atomic_load(&s->serving) ||
                (atomic_load(&s->shutting_down) && atomic_load(&s->accepters.count) == 0));
    tern_mutex_lock(&s->mu);
    TERN_ASSERT(!s->orphaned);          /* freed once */
    uint32_t left = atomic_load(&s->nconns);
    s->orphaned = s->conns != NULL;
    bool orphaned = s->orphaned;
    tern_mutex_unlock(&s->mu);
    if (orphaned) {
        /* from here on s belongs to its last connection */
        tern__report("http server freed with %u connection(s) whose handlers have not returned; "
                     "the last to return frees it", (unsigned)left);
        return;
    }
    if (atomic_load(&s->shutting_down)) {
        /* the last connection to leave may still be closing drained: its
         * close is over once a receive sees it closed */
        bool ok;
        char c;
        tern_chan_recv(s->drained, &c, &ok, NULL);
    }
    server_release(s);
}
