/*
 * client.c - one NATS connection shared by many coroutines.
 *
 * Model.  Publishers append protocol bytes to nc->out under nc->mu and
 * return.  The writer (the manager coroutine, while connected) waits for
 * output, goes once to the back of the run queue so that the publishers
 * already runnable append theirs too, swaps nc->out with its own buffer
 * and writes it all in one call: a thousand coroutines publishing cost a
 * few writes, not a thousand (redis's pipeline writer, pipeline.c, does
 * the same).  The reader coroutine reads into a buffer, parses whole
 * operations (parse.c) and dispatches them under nc->mu: MSG to its
 * subscription's queue, PING answered with a PONG appended to the output,
 * PONG to the oldest PING.  A pinger coroutine appends a PING every
 * ping_interval and breaks the connection when max_pings_out are
 * unanswered.
 *
 * PINGs and their PONGs.  nc->pq is a ring of the PINGs not yet answered,
 * oldest first, each with its flush waiter (or NULL for a keepalive): the
 * first pings_inflight were handed to the socket, the next pings_queued
 * are still in nc->out.  A PONG answers the oldest in flight.  When the
 * connection breaks those in flight are failed (their PONG will never
 * come); those still queued go out on the next connection.
 *
 * Reconnection.  When the reader, the writer or the pinger fails, the
 * connection is marked broken and shut down, which wakes the others.  The
 * manager then tries each server in turn (nc->servers: the configured ones
 * and those INFO's connect_urls advertised), sleeping a backoff with
 * jitter after each full round; meanwhile publishes keep appending to
 * nc->out up to reconnect_buf_size.  A new connection is handed the SUB of
 * every active subscription first, then nc->out.  SUB and UNSUB are
 * appended only while connected (a reconnection resends the live set).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/check.h"
#include "base/rand.h"
#include "events/nats/internal.h"

enum {
    READ_CHUNK = 64 * 1024,
    DEFAULT_MAX_PAYLOAD = 1024 * 1024,
};

/* ---- output ------------------------------------------------------------- */

static void set_pending(tern_nats *nc)
{
    atomic_store_explicit(&nc->st.out_pending, nc->out.len, memory_order_relaxed);
}

int tern__nats_out(tern_nats *nc, const void *p, size_t n)
{
    bool was_empty = nc->out.len == 0;
    if (tern__growbuf_append(&nc->out, p, n))
        return -ENOMEM;
    set_pending(nc);
    if (was_empty)
        tern_cond_signal(&nc->wcond);
    return 0;
}

bool tern__nats_valid_subject(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static size_t hdrs_len(const tern_nats_header *hdrs, int nhdr)
{
    size_t n = 10;      /* NATS/1.0\r\n */
    for (int i = 0; i < nhdr; i++)
        n += strlen(hdrs[i].key) + strlen(hdrs[i].value) + 4;
    return n + 2;
}

/* n in decimal at p: the digits written. */
static size_t put_u(char *p, size_t n)
{
    char t[24];
    size_t k = 0;
    do {
        t[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < k; i++)
        p[i] = t[k - 1 - i];
    return k;
}

static void put(char **p, const void *s, size_t n)
{
    memcpy(*p, s, n);
    *p += n;
}

/* A counter written only under nc->mu, read by tern_nats_stats without
 * it: a relaxed load and store, not a locked read-modify-write. */
#define BUMP(f, n) \
    atomic_store_explicit(&(f), atomic_load_explicit(&(f), memory_order_relaxed) + (n), \
                          memory_order_relaxed)

int tern__nats_out_pub(tern_nats *nc, const char *subject, const char *reply,
                       const tern_nats_header *hdrs, int nhdr, const void *data, size_t len)
{
    size_t sl = strlen(subject), rl = reply ? strlen(reply) : 0;
    size_t hl = nhdr > 0 ? hdrs_len(hdrs, nhdr) : 0;
    bool was_empty = nc->out.len == 0;
    if (tern__growbuf_reserve(&nc->out, sl + rl + hl + len + 64))
        return -ENOMEM;
    char *p = nc->out.p + nc->out.len;
    if (nhdr > 0)
        put(&p, "HPUB ", 5);
    else
        put(&p, "PUB ", 4);
    put(&p, subject, sl);
    *p++ = ' ';
    if (rl) {
        put(&p, reply, rl);
        *p++ = ' ';
    }
    if (nhdr > 0) {
        p += put_u(p, hl);
        *p++ = ' ';
        p += put_u(p, hl + len);
        put(&p, "\r\nNATS/1.0\r\n", 12);
        for (int i = 0; i < nhdr; i++) {
            put(&p, hdrs[i].key, strlen(hdrs[i].key));
            put(&p, ": ", 2);
            put(&p, hdrs[i].value, strlen(hdrs[i].value));
            put(&p, "\r\n", 2);
        }
        put(&p, "\r\n", 2);
    } else {
        p += put_u(p, len);
        put(&p, "\r\n", 2);
    }
    if (len)
        put(&p, data, len);
    put(&p, "\r\n", 2);
    nc->out.len = (size_t)(p - nc->out.p);
    TERN_ASSERT(nc->out.len <= nc->out.cap);
    set_pending(nc);
    BUMP(nc->st.out_msgs, 1);
    BUMP(nc->st.out_bytes, len);
    if (was_empty)
        tern_cond_signal(&nc->wcond);
    return 0;
}

int tern__nats_pub_check(tern_nats *nc, size_t n, tern_ctx *ctx)
{
    for (;;) {
        if (nc->state == NATS_CLOSED || nc->drained)
            return -ENOTCONN;
        if (n > nc->max_payload)
            return -EMSGSIZE;
        if (nc->state != NATS_CONNECTED)
            return nc->out.len + n > nc->o.reconnect_buf_size ? -EAGAIN : 0;
        if (nc->out.len < nc->o.max_out_bytes)
            return 0;
        int err = tern_cond_wait(&nc->space_cond, &nc->mu, ctx);
        if (err)
            return err;
    }
}

void tern__nats_event(tern_nats *nc, tern_nats_sub *sub, int err)
{
    if (nc->o.on_event)
        nc->o.on_event(nc, sub, err, nc->o.on_event_arg);
}

/* ---- PINGs ---------------------------------------------------------------- */

static int pq_push(tern_nats *nc, tern__nats_pong *w)
{
    if (nc->pq_len == nc->pq_cap) {
        size_t ncap = nc->pq_cap ? nc->pq_cap * 2 : 16;
        tern__nats_pong **q = malloc(ncap * sizeof *q);
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < nc->pq_len; i++)
            q[i] = nc->pq[(nc->pq_head + i) % nc->pq_cap];
        free(nc->pq);
        nc->pq = q;
        nc->pq_cap = ncap;
        nc->pq_head = 0;
    }
    nc->pq[(nc->pq_head + nc->pq_len++) % nc->pq_cap] = w;
    return 0;
}

static void pong_finish(tern__nats_pong *w, int err)
{
    if (!w)
        return;
    if (w->abandoned) {
        free(w);
        return;
    }
    w->err = err;
    w->done = true;
    tern_cond_signal(&w->cond);
}

static void pq_pop(tern_nats *nc, int err)
{
    TERN_ASSERT(nc->pq_len > 0);
    tern__nats_pong *w = nc->pq[nc->pq_head];
    nc->pq_head = (nc->pq_head + 1) % nc->pq_cap;
    nc->pq_len--;
    pong_finish(w, err);
}

/* Append a PING with its waiter (NULL: keepalive): under nc->mu, connected. */
static int ping(tern_nats *nc, tern__nats_pong *w)
{
    int err = pq_push(nc, w);
    if (err)
        return err;
    err = tern__nats_out(nc, "PING\r\n", 6);
    if (err) {
        nc->pq_len--;
        return err;
    }
    nc->pings_queued++;
    atomic_fetch_add_explicit(&nc->st.pings, 1, memory_order_relaxed);
    return 0;
}

/* ---- the connection's coroutines ---------------------------------------- */

/* Under nc->mu.  The first failure wins; shutting the socket down wakes the
 * reader and the writer, cancelling cctx wakes the pinger. */
static void mark_broken(tern_nats *nc, int err)
{
    if (nc->broken)
        return;
    nc->broken = true;
    nc->broken_err = err;
    if (nc->c)
        shutdown(tern_conn_fd(nc->c), SHUT_RDWR);
    if (nc->cctx)
        tern_ctx_cancel(nc->cctx);
    tern_cond_broadcast(&nc->wcond);
}

static void add_server(tern_nats *nc, const char *addr);

static void on_info(tern_nats *nc, const tern__nats_op *op)
{
    tern__nats_info in;
    if (tern__nats_info_parse(op->text, op->text_len, &in))
        return;
    nc->max_payload = in.max_payload;
    for (int i = 0; i < in.n_urls; i++)
        add_server(nc, in.connect_urls[i]);
    tern__nats_info_clear(&in);
}

enum { MAX_REPORTS = 8 };

/* One operation, under nc->mu.  Subscriptions whose slow-consumer episode
 * began are put in rep (with a reference) to be told outside the lock. */
static int dispatch(tern_nats *nc, const tern__nats_op *op, tern_nats_sub **rep, int *nrep,
                    bool *err_seen)
{
    switch (op->kind) {
    case TERN__NATS_MSG:
    case TERN__NATS_HMSG: {
        BUMP(nc->st.in_msgs, 1);
        BUMP(nc->st.in_bytes, op->data_len);
        tern_nats_sub *sub = tern__nats_map_get(&nc->subs, op->sid);
        if (!sub)
            return 0;   /* unsubscribed meanwhile */
        tern__nats_msg *m = tern__nats_msg_from_op(op);
        if (!m)
            return -ENOMEM;
        if (sub->internal) {
            tern__nats_resp_deliver(nc, m);
            return 0;
        }
        sub->received++;
        bool last = sub->max && sub->received >= sub->max;
        if (tern__nats_sub_deliver(sub, m)) {
            atomic_fetch_add_explicit(&sub->refs, 1, memory_order_relaxed);
            if (*nrep < MAX_REPORTS)
                rep[(*nrep)++] = sub;
            else
                tern__nats_sub_unref(sub);
        }
        if (last)
            tern__nats_sub_remove(sub);
        return 0;
    }
    case TERN__NATS_PING:
        return tern__nats_out(nc, "PONG\r\n", 6);
    case TERN__NATS_PONG:
        atomic_fetch_add_explicit(&nc->st.pongs, 1, memory_order_relaxed);
        nc->pings_out = 0;
        if (nc->pings_inflight > 0) {
            nc->pings_inflight--;
            pq_pop(nc, 0);
        }
        return 0;
    case TERN__NATS_INFO:
        on_info(nc, op);
        return 0;
    case TERN__NATS_ERR:
        atomic_fetch_add_explicit(&nc->st.errs, 1, memory_order_relaxed);
        *err_seen = true;
        return 0;
    case TERN__NATS_OK:
        return 0;
    }
    return -EPROTO;
}

typedef struct reader_arg {
    tern_nats *nc;
    tern__growbuf rbuf;         /* bytes read past the handshake's PONG */
} reader_arg;

static int reader_main(void *arg)
{
    reader_arg *ra = arg;
    tern_nats *nc = ra->nc;
    tern__growbuf *b = &ra->rbuf;
    tern_conn *c = nc->c;
    size_t off = 0;             /* parsed bytes at the buffer's start */
    int err = 0;
    while (!err) {
        tern_nats_sub *rep[MAX_REPORTS];
        int nrep = 0;
        bool err_seen = false;
        size_t need = 0;
        if (b->len > off) {
            tern_mutex_lock(&nc->mu);
            size_t maxp = nc->max_payload;
            while (!err && b->len > off) {
                tern__nats_op op;
                ssize_t n = tern__nats_parse(b->p + off, b->len - off, maxp, &op, &need);
                if (n < 0)
                    err = (int)n;
                else if (n == 0)
                    break;
                else {
                    err = dispatch(nc, &op, rep, &nrep, &err_seen);
                    off += (size_t)n;
                }
            }
            tern_mutex_unlock(&nc->mu);
        }
        for (int i = 0; i < nrep; i++) {
            tern__nats_event(nc, rep[i], -ENOBUFS);
            tern__nats_sub_unref(rep[i]);
        }
        if (err_seen)
            tern__nats_event(nc, NULL, -EPROTO);
        if (err)
            break;
        /* Keep the unparsed tail at the start, with room for the whole
         * operation when its size is known. */
        if (off) {
            memmove(b->p, b->p + off, b->len - off);
            b->len -= off;
            need = need > off ? need - off : 0;
            off = 0;
        }
        size_t room = need > b->len ? need - b->len : 0;
        if (tern__growbuf_reserve(b, room > READ_CHUNK ? room : READ_CHUNK)) {
            err = -ENOMEM;
            break;
        }
        ssize_t n = tern_conn_read(c, b->p + b->len, b->cap - b->len, NULL);
        if (n <= 0)
            err = n == 0 ? -ECONNRESET : (int)n;
        else
            b->len += (size_t)n;
    }
    tern_mutex_lock(&nc->mu);
    mark_broken(nc, err);
    tern_mutex_unlock(&nc->mu);
    tern__growbuf_free(b);
    free(ra);
    tern_waitgroup_done(&nc->rwg);
    return 0;
}

static int pinger_main(void *arg)
{
    tern_nats *nc = arg;
    tern_mutex_lock(&nc->mu);
    tern_ctx *cctx = nc->cctx;
    tern_mutex_unlock(&nc->mu);
    while (tern_ctx_sleep(nc->o.ping_interval, cctx) == 0) {
        tern_mutex_lock(&nc->mu);
        if (nc->pings_out >= nc->o.max_pings_out)
            mark_broken(nc, -ETIMEDOUT);    /* a stale connection */
        else if (ping(nc, NULL) == 0)
            nc->pings_out++;
        tern_mutex_unlock(&nc->mu);
    }
    tern_waitgroup_done(&nc->rwg);
    return 0;
}

/* Send nc->out until the connection breaks or the client closes. */
static void writer_loop(tern_nats *nc)
{
    tern_conn *c = nc->c;
    tern_mutex_lock(&nc->mu);
    for (;;) {
        while (!nc->out.len && !nc->broken)
            tern_cond_wait(&nc->wcond, &nc->mu, NULL);
        if (nc->broken)
            break;
        tern_mutex_unlock(&nc->mu);
        tern_yield();
        tern_mutex_lock(&nc->mu);
        if (nc->broken)
            break;
        tern__growbuf t = nc->wbuf;
        nc->wbuf = nc->out;
        nc->out = t;
        nc->out.len = 0;
        nc->out_takes++;
        set_pending(nc);
        nc->pings_inflight += nc->pings_queued;
        nc->pings_queued = 0;
        tern_cond_broadcast(&nc->space_cond);
        tern_mutex_unlock(&nc->mu);
        atomic_fetch_add_explicit(&nc->st.writes, 1, memory_order_relaxed);
        ssize_t w = tern_conn_write(c, nc->wbuf.p, nc->wbuf.len, NULL);
        nc->wbuf.len = 0;
        tern_mutex_lock(&nc->mu);
        if (w < 0)
            mark_broken(nc, (int)w);
    }
    tern_mutex_unlock(&nc->mu);
}

/* Serve one connection until it breaks. */
static void serve(tern_nats *nc, tern_conn *c, tern__growbuf *rbuf, const char *addr)
{
    tern_ctx *cctx = NULL;
    reader_arg *ra = calloc(1, sizeof *ra);
    int err = ra ? tern_ctx_with_cancel(nc->life, &cctx) : -ENOMEM;
    tern_mutex_lock(&nc->mu);
    nc->c = c;
    nc->cctx = cctx;
    nc->broken = false;
    nc->pings_out = 0;
    if (nc->state == NATS_CLOSED)
        err = -ENOTCONN;
    else
        nc->state = NATS_CONNECTED;
    snprintf(nc->url, sizeof nc->url, "%s", addr);
    /* The subscriptions first, then what waited for the connection. */
    tern__growbuf pending = nc->out;
    nc->out = (tern__growbuf){0};
    if (!err)
        err = tern__nats_resubscribe(nc);
    if (!err && pending.len && tern__growbuf_append(&nc->out, pending.p, pending.len))
        err = -ENOMEM;
    if (err) {      /* keep what was pending for the next connection */
        tern__growbuf_free(&nc->out);
        nc->out = pending;
    } else
        tern__growbuf_free(&pending);
    set_pending(nc);
    atomic_store_explicit(&nc->st.connected, !err, memory_order_relaxed);
    tern_cond_broadcast(&nc->state_cond);
    if (err)
        mark_broken(nc, err);
    tern_mutex_unlock(&nc->mu);
    int started = 0;
    if (!err) {
        ra->nc = nc;
        ra->rbuf = *rbuf;
        *rbuf = (tern__growbuf){0};
        tern_waitgroup_add(&nc->rwg, 2);
        if (tern_go(reader_main, ra) == 0)
            started++;
        else {
            tern__growbuf_free(&ra->rbuf);
            free(ra);
            tern_waitgroup_done(&nc->rwg);
        }
        if (tern_go(pinger_main, nc) == 0)
            started++;
        else
            tern_waitgroup_done(&nc->rwg);
        if (started < 2) {
            tern_mutex_lock(&nc->mu);
            mark_broken(nc, -ENOMEM);
            tern_mutex_unlock(&nc->mu);
        }
        writer_loop(nc);
        tern_waitgroup_wait(&nc->rwg, NULL);
    } else
        free(ra);
    tern_mutex_lock(&nc->mu);
    TERN_ASSERT(nc->broken);
    while (nc->pings_inflight > 0) {
        nc->pings_inflight--;
        pq_pop(nc, -ECONNRESET);
    }
    tern__nats_reqs_fail_sent(nc, -ECONNRESET);
    nc->c = NULL;
    nc->cctx = NULL;
    if (nc->state == NATS_CONNECTED)
        nc->state = NATS_RECONNECTING;
    atomic_store_explicit(&nc->st.connected, false, memory_order_relaxed);
    tern_cond_broadcast(&nc->state_cond);
    tern_cond_broadcast(&nc->space_cond);
    tern_mutex_unlock(&nc->mu);
    tern_ctx_free(cctx);
    tern_conn_free(c);
}

/* ---- servers and reconnection ------------------------------------------- */

/* "nats://host:port" or "host[:port]" to "host:port" in out. */
static int norm_addr(const char *s, size_t n, char *out, size_t size)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= 7 && strncasecmp(s, "nats://", 7) == 0) {
        s += 7;
        n -= 7;
    }
    const char *at = memchr(s, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    if (n == 0)
        return -EINVAL;
    bool has_port = false;
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':')
            colon = s + i;
    if (colon && (s[0] != '[' || colon[-1] == ']'))
        has_port = true;
    int w = snprintf(out, size, "%.*s%s", (int)n, s, has_port ? "" : ":4222");
    return w > 0 && (size_t)w < size ? 0 : -EINVAL;
}

static void add_server(tern_nats *nc, const char *addr)
{
    char a[256];
    if (norm_addr(addr, strlen(addr), a, sizeof a))
        return;
    for (int i = 0; i < nc->nservers; i++)
        if (strcmp(nc->servers[i], a) == 0)
            return;
    char **s = realloc(nc->servers, (size_t)(nc->nservers + 1) * sizeof *s);
    if (!s)
        return;
    nc->servers = s;
    if ((s[nc->nservers] = strdup(a)))
        nc->nservers++;
}

static int parse_servers(tern_nats *nc, const char *list)
{
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char a[256];
        if (norm_addr(p, n, a, sizeof a))
            return -EINVAL;
        add_server(nc, a);
        p += n + (e ? 1 : 0);
    }
    if (!nc->nservers)
        return -EINVAL;
    if (!nc->o.no_randomize)
        for (int i = nc->nservers - 1; i > 0; i--) {
            int j = (int)(tern__rand64() % (uint64_t)(i + 1));
            char *t = nc->servers[i];
            nc->servers[i] = nc->servers[j];
            nc->servers[j] = t;
        }
    return 0;
}

/* Try the server after the current one, in turn; one full round.  0 with
 * the connection, or the last error. */
static int try_round(tern_nats *nc, tern_conn **c, tern__growbuf *rbuf, char *addr,
                     size_t addr_size, tern_ctx *ctx)
{
    int err = -ENOTCONN;
    tern_mutex_lock(&nc->mu);
    int n = nc->nservers;
    tern_mutex_unlock(&nc->mu);
    for (int k = 0; k < n; k++) {
        tern_mutex_lock(&nc->mu);
        if (nc->state == NATS_CLOSED) {
            tern_mutex_unlock(&nc->mu);
            return -ENOTCONN;
        }
        nc->cur = (nc->cur + 1) % nc->nservers;
        snprintf(addr, addr_size, "%s", nc->servers[nc->cur]);
        tern_mutex_unlock(&nc->mu);
        tern_ctx *actx;
        err = tern_ctx_with_timeout(ctx, nc->o.connect_timeout, &actx);
        if (err)
            return err;
        tern__nats_info info;
        err = tern__nats_handshake(&nc->o, addr, c, &info, rbuf, actx);
        tern_ctx_free(actx);
        if (!err) {
            tern_mutex_lock(&nc->mu);
            nc->max_payload = info.max_payload;
            for (int i = 0; i < info.n_urls; i++)
                add_server(nc, info.connect_urls[i]);
            tern_mutex_unlock(&nc->mu);
            tern__nats_info_clear(&info);
            return 0;
        }
        if (tern_ctx_err(ctx))
            return tern_ctx_err(ctx);
    }
    return err;
}

typedef struct manager_arg {
    tern_nats *nc;
    tern_conn *c;
    tern__growbuf rbuf;
    char addr[256];
} manager_arg;

static void close_locked(tern_nats *nc)
{
    nc->state = NATS_CLOSED;
    atomic_store_explicit(&nc->st.connected, false, memory_order_relaxed);
    while (nc->pq_len)
        pq_pop(nc, -ENOTCONN);
    nc->pings_inflight = nc->pings_queued = 0;
    tern__nats_reqs_fail(nc, -ENOTCONN);
    TERN__NATS_MAP_EACH(&nc->subs, i) {
        tern_nats_sub *s = nc->subs.vals[i];
        tern_mutex_lock(&s->mu);
        s->qclosed = true;
        tern_cond_broadcast(&s->cond);
        tern_mutex_unlock(&s->mu);
    }
    tern_cond_broadcast(&nc->state_cond);
    tern_cond_broadcast(&nc->space_cond);
}

static int manager_main(void *arg)
{
    manager_arg *ma = arg;
    tern_nats *nc = ma->nc;
    tern_conn *c = ma->c;
    for (;;) {
        serve(nc, c, &ma->rbuf, ma->addr);
        tern_mutex_lock(&nc->mu);
        bool closed = nc->state == NATS_CLOSED;
        tern_mutex_unlock(&nc->mu);
        if (closed)
            break;
        atomic_fetch_add_explicit(&nc->st.disconnects, 1, memory_order_relaxed);
        tern__nats_event(nc, NULL, -ECONNRESET);
        int64_t backoff = nc->o.reconnect_wait_min;
        int failed = 0;
        int err;
        while ((err = try_round(nc, &c, &ma->rbuf, ma->addr, sizeof ma->addr, nc->life))) {
            failed++;
            if (tern_ctx_err(nc->life) || (nc->o.max_reconnects && failed >= nc->o.max_reconnects))
                break;
            int64_t j = nc->o.reconnect_jitter > 0
                            ? (int64_t)(tern__rand64() % (uint64_t)nc->o.reconnect_jitter)
                            : 0;
            if (tern_ctx_sleep(backoff + j, nc->life))
                break;
            backoff = backoff < nc->o.reconnect_wait_max / 2 ? backoff * 2
                                                             : nc->o.reconnect_wait_max;
        }
        if (err) {
            tern_mutex_lock(&nc->mu);
            close_locked(nc);
            tern_mutex_unlock(&nc->mu);
            break;
        }
        atomic_fetch_add_explicit(&nc->st.reconnects, 1, memory_order_relaxed);
        tern__nats_event(nc, NULL, 0);
    }
    tern__growbuf_free(&ma->rbuf);
    free(ma);
    tern_waitgroup_done(&nc->wg);
    return 0;
}

/* ---- public ------------------------------------------------------------- */

static char *dup_opt(const char *s, bool *bad)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *bad = true;
    return d;
}

static void free_opts(tern_nats_options *o)
{
    free((char *)o->servers);
    free((char *)o->name);
    free((char *)o->user);
    free((char *)o->pass);
    free((char *)o->token);
}

static void nc_release(tern_nats *nc)
{
    free_opts(&nc->o);
    for (int i = 0; i < nc->nservers; i++)
        free(nc->servers[i]);
    free(nc->servers);
    free(nc->pq);
    tern__growbuf_free(&nc->out);
    tern__growbuf_free(&nc->wbuf);
    tern__nats_map_free(&nc->subs);
    tern__nats_map_free(&nc->reqs);
    tern_ctx_free(nc->life);
    free(nc);
}

int tern_nats_new(const tern_nats_options *opts, tern_nats **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_nats_options o = opts ? *opts : (tern_nats_options){0};
    tern_nats *nc = calloc(1, sizeof *nc);
    if (!nc)
        return -ENOMEM;
    bool bad = false;
    o.servers = dup_opt(o.servers ? o.servers : "127.0.0.1:4222", &bad);
    o.name = dup_opt(o.name ? o.name : "tern", &bad);
    o.user = dup_opt(o.user, &bad);
    o.pass = dup_opt(o.pass, &bad);
    o.token = dup_opt(o.token, &bad);
    if (!o.connect_timeout)
        o.connect_timeout = 2 * TERN_SEC;
    if (!o.ping_interval)
        o.ping_interval = 120 * TERN_SEC;
    if (!o.max_pings_out)
        o.max_pings_out = 2;
    if (!o.reconnect_wait_min)
        o.reconnect_wait_min = 10 * TERN_MS;
    if (!o.reconnect_wait_max)
        o.reconnect_wait_max = 2 * TERN_SEC;
    if (!o.reconnect_jitter)
        o.reconnect_jitter = 100 * TERN_MS;
    if (!o.reconnect_buf_size)
        o.reconnect_buf_size = 8u << 20;
    if (!o.max_out_bytes)
        o.max_out_bytes = 256u << 10;
    nc->o = o;
    nc->max_payload = DEFAULT_MAX_PAYLOAD;
    nc->cur = -1;
    nc->state = NATS_RECONNECTING;
    char nuid[23];
    tern_nats_nuid(nuid);
    snprintf(nc->inbox, sizeof nc->inbox, "_INBOX.%s.", nuid);
    int err = bad ? -ENOMEM : parse_servers(nc, o.servers);
    if (!err)
        err = tern_ctx_with_cancel(NULL, &nc->life);
    manager_arg *ma = err ? NULL : calloc(1, sizeof *ma);
    if (!err && !ma)
        err = -ENOMEM;
    if (!err) {
        ma->nc = nc;
        err = try_round(nc, &ma->c, &ma->rbuf, ma->addr, sizeof ma->addr, ctx);
    }
    if (!err) {
        tern_waitgroup_add(&nc->wg, 1);
        err = tern_go(manager_main, ma);
        if (err) {
            tern_waitgroup_done(&nc->wg);
            tern_conn_free(ma->c);
        }
    }
    if (err) {
        if (ma)
            tern__growbuf_free(&ma->rbuf);
        free(ma);
        nc_release(nc);
        return err;
    }
    /* Return connected, as the caller expects. */
    tern_mutex_lock(&nc->mu);
    while (nc->state == NATS_RECONNECTING)
        tern_cond_wait(&nc->state_cond, &nc->mu, NULL);
    tern_mutex_unlock(&nc->mu);
    *out = nc;
    return 0;
}

void tern_nats_free(tern_nats *nc)
{
    if (!nc)
        return;
    tern_mutex_lock(&nc->mu);
    close_locked(nc);
    mark_broken(nc, -ENOTCONN);
    tern_mutex_unlock(&nc->mu);
    tern_ctx_cancel(nc->life);
    tern_waitgroup_wait(&nc->wg, NULL);
    if (nc->resp_sub) {
        tern_nats_sub *rs = nc->resp_sub;
        nc->resp_sub = NULL;
        tern_nats_sub_free(rs);
    }
    nc_release(nc);
}

int tern_nats_publish(tern_nats *nc, const char *subject, const void *data, size_t len,
                      tern_ctx *ctx)
{
    return tern_nats_publish_msg(nc, subject, NULL, NULL, 0, data, len, ctx);
}

int tern_nats_publish_msg(tern_nats *nc, const char *subject, const char *reply,
                          const tern_nats_header *hdrs, int nhdr, const void *data, size_t len,
                          tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    if (!tern__nats_valid_subject(subject) || (reply && !tern__nats_valid_subject(reply)) ||
        nhdr < 0 || (nhdr > 0 && !hdrs) || (len && !data))
        return -EINVAL;
    tern_mutex_lock(&nc->mu);
    int err = tern__nats_pub_check(nc, len + (nhdr > 0 ? hdrs_len(hdrs, nhdr) : 0), ctx);
    if (!err)
        err = tern__nats_out_pub(nc, subject, reply, hdrs, nhdr, data, len);
    tern_mutex_unlock(&nc->mu);
    return err;
}

int tern_nats_flush(tern_nats *nc, tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    tern__nats_pong *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    tern_mutex_lock(&nc->mu);
    int err = 0;
    while (!err && nc->state == NATS_RECONNECTING)
        err = tern_cond_wait(&nc->state_cond, &nc->mu, ctx);
    if (!err && nc->state == NATS_CLOSED)
        err = -ENOTCONN;
    if (!err)
        err = ping(nc, w);
    if (err) {
        tern_mutex_unlock(&nc->mu);
        free(w);
        return err;
    }
    while (!w->done) {
        err = tern_cond_wait(&w->cond, &nc->mu, ctx);
        if (err && !w->done) {
            w->abandoned = true;    /* freed when its PONG comes or fails */
            tern_mutex_unlock(&nc->mu);
            return err;
        }
    }
    tern_mutex_unlock(&nc->mu);
    err = w->err;
    free(w);
    return err;
}

int tern_nats_drain(tern_nats *nc, tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    /* UNSUB everything, but keep dispatching until the server has seen it. */
    tern_mutex_lock(&nc->mu);
    int nsubs = 0;
    TERN__NATS_MAP_EACH(&nc->subs, i) {
        tern_nats_sub *s = nc->subs.vals[i];
        if (s->internal)
            continue;
        char line[48];
        int n = snprintf(line, sizeof line, "UNSUB %llu\r\n", (unsigned long long)s->sid);
        if (nc->state == NATS_CONNECTED)
            tern__nats_out(nc, line, (size_t)n);
        nsubs++;
    }
    tern_mutex_unlock(&nc->mu);
    int err = tern_nats_flush(nc, ctx);
    if (err && err != -ENOTCONN)
        return err;
    tern_nats_sub **subs = calloc((size_t)nsubs + 1, sizeof *subs);
    if (!subs)
        return -ENOMEM;
    int n = 0;
    tern_mutex_lock(&nc->mu);
    TERN__NATS_MAP_EACH(&nc->subs, i) {
        tern_nats_sub *s = nc->subs.vals[i];
        if (!s->internal && n < nsubs) {
            atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
            subs[n++] = s;
        }
    }
    for (int i = 0; i < n; i++)
        if (subs[i]->active)
            tern__nats_sub_remove(subs[i]);
    tern_mutex_unlock(&nc->mu);
    err = 0;
    for (int i = 0; i < n; i++) {
        if (!err)
            err = tern__nats_sub_wait_idle(subs[i], ctx);
        tern__nats_sub_unref(subs[i]);
    }
    free(subs);
    if (err)
        return err;
    /* What the handlers published is flushed too; then no more. */
    err = tern_nats_flush(nc, ctx);
    tern_mutex_lock(&nc->mu);
    nc->drained = true;
    tern_mutex_unlock(&nc->mu);
    return err == -ENOTCONN ? 0 : err;
}

int tern_nats_stats(const tern_nats *nc, struct tern_nats_stats *out)
{
    TERN_CHECK_ARG(nc);
    tern_nats *m = (tern_nats *)nc;
#define LD(f) atomic_load_explicit(&m->st.f, memory_order_relaxed)
    *out = (struct tern_nats_stats){
        .in_msgs = LD(in_msgs), .in_bytes = LD(in_bytes), .out_msgs = LD(out_msgs),
        .out_bytes = LD(out_bytes), .writes = LD(writes), .reconnects = LD(reconnects),
        .disconnects = LD(disconnects), .slow_consumer_drops = LD(slow), .pings_sent = LD(pings),
        .pongs_received = LD(pongs), .server_errors = LD(errs), .out_pending = LD(out_pending),
        .connected = LD(connected),
    };
#undef LD
    return 0;
}

int tern_nats_connected_url(tern_nats *nc, char *buf, size_t size)
{
    TERN_CHECK_ARG(nc);
    tern_mutex_lock(&nc->mu);
    int err = nc->state == NATS_CONNECTED && !nc->broken ? 0 : -ENOTCONN;
    if (!err && size)
        snprintf(buf, size, "%s", nc->url);
    tern_mutex_unlock(&nc->mu);
    return err;
}
