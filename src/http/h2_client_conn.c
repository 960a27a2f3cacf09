/*
 * h2_client_conn.c - the HTTP/2 client's connections: per origin a list
 * of them, each multiplexing up to the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS requests; and the two coroutines that
 * drive each one.
 *
 * A request takes a slot (nreq) on a ready connection with room.  None
 * with room: if one is still connecting (dialled, its peer's SETTINGS not
 * yet in, so its limit unknown) the request waits for it, else it dials
 * another itself, and the waiters wake when it is ready.  So a burst of
 * requests makes one connection, not one each, and a peer that allows
 * two streams gets a second connection at the third concurrent request.
 * max_conns_per_host, when set, bounds the connections per origin; beyond
 * it requests wait for a slot.  A connection without streams for
 * idle_timeout is shut down by the next request that looks at the list.
 * Slots, the list and the counts are under the client's mu.
 *
 * The reader coroutine parks in tern_conn_read and feeds what comes to
 * the session; the writer parks on wcond until nghttp2 has output, takes
 * up to 64 KiB of it under mu, and writes it without mu.  When the
 * connection dies (read or write error, EOF, protocol error, or GOAWAY
 * with its last stream done) tern__h2c_kill ends every stream and shuts
 * the socket down, which gets the reader out of its read; the reader
 * takes the connection off its origin's list.
 *
 * A connection is freed at its last reference: the list's, each driver's,
 * and each request's slot.  The client's waitgroup counts connections not
 * yet freed, so tern_http_client_free can wait for them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/h2_client_internal.h"
#include "tern/runtime.h"

#define H2C_READ_BUF (16 * 1024)
#define H2C_WRITE_BATCH (64 * 1024)

void tern__h2c_unref(tern__h2c_conn *h)
{
    if (atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    tern_http_client *c = h->client;
    TERN_ASSERT(h->streams == NULL && !h->in_pool);   /* every holder is gone */
    if (h->session)
        tern__h2c_session_fini(h);
    tern_conn_free(h->conn);
    free(h);
    tern_waitgroup_done(&c->h2_wg);
}

static void pool_wake(tern__h2c_conn *h)
{
    tern_mutex_lock(&h->client->mu);
    tern_cond_broadcast(&h->host->h2_cond);
    tern_mutex_unlock(&h->client->mu);
}

/* Off the origin's list (client->mu held); drops nothing. */
static bool unlist(tern__h2c_conn *h)
{
    if (!h->in_pool)
        return false;
    tern__h2c_conn **pp = &h->host->h2;
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    h->in_pool = false;
    h->host->nh2--;
    atomic_fetch_sub(&h->client->h2_conns, 1);
    tern_cond_broadcast(&h->host->h2_cond);
    return true;
}

static void leave_pool(tern__h2c_conn *h)
{
    tern_mutex_lock(&h->client->mu);
    bool listed = unlist(h);
    tern_mutex_unlock(&h->client->mu);
    if (listed)
        tern__h2c_unref(h);     /* the list's reference */
}

/* Take the pool news flag (mu held). */
static bool take_news(tern__h2c_conn *h)
{
    bool news = h->pool_news;
    h->pool_news = false;
    return news;
}

static int reader(void *arg)
{
    tern__h2c_conn *h = arg;
    uint8_t *buf = malloc(H2C_READ_BUF);
    for (bool dead = false; !dead;) {
        ssize_t n = buf ? tern_conn_read(h->conn, buf, H2C_READ_BUF, NULL) : -ENOMEM;
        tern_mutex_lock(&h->mu);
        if (atomic_load(&h->dead))
            ;
        else if (n <= 0)
            tern__h2c_kill(h, n == 0 ? -ECONNRESET : (int)n);
        else if (tern__h2c_session_recv(h, buf, (size_t)n) == 0 && tern__h2c_session_done(h))
            tern__h2c_kill(h, -ECONNRESET);
        dead = atomic_load(&h->dead);
        bool news = take_news(h);
        tern_mutex_unlock(&h->mu);
        if (news)
            pool_wake(h);
    }
    free(buf);
    leave_pool(h);
    tern__h2c_unref(h);
    return 0;
}

static int writer(void *arg)
{
    tern__h2c_conn *h = arg;
    tern__buf out = {0};
    tern_mutex_lock(&h->mu);
    while (!atomic_load(&h->dead)) {
        out.len = 0;
        if (tern__h2c_session_send(h, &out, H2C_WRITE_BATCH) < 0)
            break;
        if (out.len == 0) {
            /* every signaller holds mu: no wake-up is lost */
            tern_cond_wait(&h->wcond, &h->mu, NULL);
            continue;
        }
        bool done = tern__h2c_session_done(h);
        bool news = take_news(h);
        tern_mutex_unlock(&h->mu);
        if (news)
            pool_wake(h);
        ssize_t w = tern_conn_write(h->conn, out.p, out.len, NULL);
        tern_mutex_lock(&h->mu);
        if (w < 0)
            tern__h2c_kill(h, (int)w);
        else if (done)
            tern__h2c_kill(h, -ECONNRESET);  /* GOAWAY and nothing left: close */
    }
    bool news = take_news(h);
    tern_mutex_unlock(&h->mu);
    if (news)
        pool_wake(h);
    free(out.p);
    tern__h2c_unref(h);
    return 0;
}

/* A listed connection-to-be of host (client->mu held): its slot in the
 * list shows later requests that one is on its way. */
static tern__h2c_conn *conn_new(tern_http_client *c, tern__hc_host *host)
{
    tern__h2c_conn *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->client = c;
    h->host = host;
    atomic_init(&h->refs, 1);   /* the list's */
    h->in_pool = true;
    h->idle_since = tern_now();
    h->next = host->h2;
    host->h2 = h;
    host->nh2++;
    atomic_fetch_add(&c->h2_conns, 1);
    tern_waitgroup_add(&c->h2_wg, 1);
    return h;
}

/* Start the coroutines of h, its socket connected (and for https
 * handshaken, ALPN "h2"); on failure h is killed and taken off the list. */
static int conn_start(tern__h2c_conn *h)
{
    int rc = tern__h2c_session_init(h, h->client->max_header);
    if (rc == 0) {
        atomic_fetch_add(&h->refs, 2);  /* the drivers' */
        if ((rc = tern_go(reader, h)) < 0)
            atomic_fetch_sub(&h->refs, 2);
        else if ((rc = tern_go(writer, h)) < 0)
            atomic_fetch_sub(&h->refs, 1);  /* the reader ends on the kill below */
    }
    if (rc < 0) {
        tern_mutex_lock(&h->mu);
        tern__h2c_kill(h, rc);
        tern_mutex_unlock(&h->mu);
        leave_pool(h);
    }
    return rc;
}

/* A ready connection of host with a free slot (client->mu held); takes
 * the slot and a reference.  *connecting: one is on its way. */
static tern__h2c_conn *take_slot(tern_http_client *c, tern__hc_host *host, bool *connecting)
{
    *connecting = false;
    int64_t now = tern_now();
    for (tern__h2c_conn *h = host->h2; h; h = h->next) {
        if (atomic_load(&h->dead) || atomic_load(&h->goaway))
            continue;
        if (h->nreq == 0 && h->conn && now - h->idle_since >= c->idle_timeout) {
            /* idle too long: its reader sees EOF and takes it off the list */
            atomic_store(&h->goaway, true);
            shutdown(tern_conn_fd(h->conn), SHUT_RDWR);
            continue;
        }
        if (!atomic_load(&h->ready) || atomic_load(&h->max_streams) == 0) {
            *connecting = true;     /* its limit is not known (or is 0 for now) */
            continue;
        }
        if ((unsigned)h->nreq < atomic_load(&h->max_streams)) {
            h->nreq++;
            atomic_fetch_add(&h->refs, 1);
            return h;
        }
    }
    return NULL;
}

int tern__h2c_checkout(tern_http_client *c, const tern_http_url *u, const char *dial, tern_ctx *ctx,
                       tern__h2c_conn **out, tern_conn **h1conn)
{
    tern_mutex_lock(&c->mu);
    tern__hc_host *host = tern__hc_host_get(c, u, dial);
    int rc = host ? 0 : -ENOMEM;
    bool dialled = false;
    while (rc == 0) {
        if (host->tls && host->alpn == TERN__HC_ALPN_H1) {
            rc = TERN__HC_SPEAK_H1;    /* *h1conn stays NULL: the pool dials */
            break;
        }
        bool connecting;
        tern__h2c_conn *h = take_slot(c, host, &connecting);
        if (h) {
            tern_mutex_unlock(&c->mu);
            if (!dialled)
                atomic_fetch_add(&c->reuses, 1);
            atomic_fetch_add(&c->active, 1);
            *out = h;
            return 0;
        }
        if (connecting || (c->max_conns > 0 && host->nh2 >= c->max_conns)) {
            rc = tern_cond_wait(&host->h2_cond, &c->mu, ctx);
            continue;
        }
        if (!(h = conn_new(c, host))) {
            rc = -ENOMEM;
            break;
        }
        tern_mutex_unlock(&c->mu);
        tern_conn *conn;
        rc = tern__hc_dial(c, host, false, &conn, ctx);
        const char *alpn = rc == 0 && host->tls ? tern_tls_alpn(conn) : "h2";
        if (rc == 0 && !(alpn && strcmp(alpn, "h2") == 0)) {
            /* https, and the server chose HTTP/1.1: so does the origin,
             * and this connection serves the request there; the waiters
             * wake to find the origin HTTP/1.1 */
            atomic_fetch_add(&c->dials, 1);
            tern_mutex_lock(&c->mu);
            host->alpn = TERN__HC_ALPN_H1;
            tern_mutex_unlock(&c->mu);
            leave_pool(h);
            *h1conn = conn;
            rc = TERN__HC_SPEAK_H1;
        } else if (rc == 0) {
            atomic_fetch_add(&c->dials, 1);
            dialled = true;
            tern_mutex_lock(&c->mu);
            h->conn = conn;     /* the list's readers look at it under mu */
            if (host->tls)
                host->alpn = TERN__HC_ALPN_H2;
            tern_mutex_unlock(&c->mu);
            rc = conn_start(h);
        } else {
            leave_pool(h);
        }
        tern_mutex_lock(&c->mu);
    }
    tern_mutex_unlock(&c->mu);
    return rc;
}

void tern__h2c_checkin(tern__h2c_conn *h)
{
    tern_http_client *c = h->client;
    tern_mutex_lock(&c->mu);
    TERN_ASSERT(h->nreq > 0);   /* the slot checkout took */
    if (--h->nreq == 0)
        h->idle_since = tern_now();
    tern_cond_broadcast(&h->host->h2_cond);
    tern_mutex_unlock(&c->mu);
    unsigned active = atomic_fetch_sub(&c->active, 1);
    TERN_ASSERT(active > 0);
    tern__h2c_unref(h);
}

void tern__h2c_pool_free(tern_http_client *c)
{
    tern_mutex_lock(&c->mu);
    for (tern__hc_host *host = c->hosts; host; host = host->next)
        for (tern__h2c_conn *h = host->h2; h; h = h->next)
            if (h->conn)        /* its reader sees EOF, kills it and unlists it */
                shutdown(tern_conn_fd(h->conn), SHUT_RDWR);
    tern_mutex_unlock(&c->mu);
    tern_waitgroup_wait(&c->h2_wg, NULL);
}
