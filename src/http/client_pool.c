/*
 * client_pool.c - the HTTP client's keep-alive connections, per host:port.
 *
 * Each host keeps a stack of idle connections, oldest first.  A request
 * takes the newest (LIFO: the one least likely to have been closed by its
 * server, and it lets the oldest age out), after dropping the ones idle
 * longer than idle_timeout; a connection whose server has closed it (or
 * has sent bytes nobody asked for) is found and dropped too: by the
 * netpoller's record when it has seen nothing on the socket since the
 * response was read (tern__conn_read_quiet: no system call), else by a
 * non-blocking peek.  What neither can see, a close racing with the next
 * request (in flight, or in epoll's queue not yet polled), is left to the
 * caller's retry (client.c).
 *
 * max_conns_per_host is a semaphore per host: a lease holds one unit from
 * checkout to checkin.  Idle connections hold none, and a connection is
 * dialled only when the idle stack is empty, so lent + idle stays within
 * the bound, and a connection going idle wakes a waiter that will take it.
 *
 * The client's mutex guards the host list and the stacks; nothing parks
 * while holding it (closing a socket does not park).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http/client_internal.h"
#include "net/export.h"
#include "tern/runtime.h"

/* Append s to the key (len bytes so far, cap with the NUL), cut as
 * snprintf would cut it: the new length.  (snprintf's format parsing
 * cost a thousand instructions a request here.) */
static size_t key_put(char *key, size_t len, size_t cap, const char *s)
{
    TERN_ASSERT(len < cap);
    size_t n = strnlen(s, cap - 1 - len);
    memcpy(key + len, s, n);
    key[len + n] = '\0';
    return len + n;
}

tern__hc_host *tern__hc_host_get(tern_http_client *c, const tern_http_url *u, const char *dial)
{
    bool tls = strcasecmp(u->scheme, "https") == 0;
    char key[sizeof c->hosts->key];
    TERN_ASSERT(!dial || strlen(dial) < sizeof c->hosts->hostport);
    size_t n = key_put(key, 0, sizeof key, tls ? "https://" : "http://");
    if (dial) {     /* the name too: one address may serve several names */
        n = key_put(key, n, sizeof key, dial);
        n = key_put(key, n, sizeof key, " ");
        key_put(key, n, sizeof key, u->host);
    } else {
        key_put(key, n, sizeof key, u->hostport);
    }
    for (tern__hc_host *h = c->hosts; h; h = h->next)
        if (strcmp(h->key, key) == 0)
            return h;
    tern__hc_host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (c->max_idle > 0 && !(h->idle = calloc((size_t)c->max_idle, sizeof *h->idle))) {
        free(h);
        return NULL;
    }
    strcpy(h->key, key);
    strcpy(h->hostport, dial ? dial : u->hostport);
    strcpy(h->name, u->host);
    h->tls = tls;
    h->sem.size = c->max_conns;
    h->next = c->hosts;
    c->hosts = h;
    return h;
}

/* Close the connections idle for idle_timeout or more (mu held). */
static void drop_expired(tern_http_client *c, tern__hc_host *h, int64_t now)
{
    TERN_ASSERT(h->nidle >= 0 && h->nidle <= (c->max_idle > 0 ? c->max_idle : 0));
    int n = 0;
    while (n < h->nidle && now - h->idle[n].since >= c->idle_timeout)
        tern_conn_free(h->idle[n++].conn);
    if (n == 0)
        return;
    memmove(h->idle, h->idle + n, (size_t)(h->nidle - n) * sizeof *h->idle);
    h->nidle -= n;
    unsigned idle = atomic_fetch_sub(&c->idle, (unsigned)n);
    TERN_ASSERT(idle >= (unsigned)n);     /* the count covers every host's stack */
}

/* An idle connection is usable when reading it would block: no EOF, no
 * error, no stray bytes.  When the netpoller has heard nothing from it
 * since the read that emptied it, that is known without a system call
 * (one of the five a proxied request made); otherwise a peek asks. */
static bool idle_conn_alive(tern_conn *conn)
{
    if (tern__conn_read_quiet(conn))
        return true;
    char b;
    ssize_t r = recv(tern_conn_fd(conn), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static tern_conn *take_idle(tern_http_client *c, tern__hc_host *h)
{
    tern_mutex_lock(&c->mu);
    drop_expired(c, h, tern_now());
    tern_conn *conn = NULL;
    if (h->nidle > 0) {
        conn = h->idle[--h->nidle].conn;
        unsigned idle = atomic_fetch_sub(&c->idle, 1);
        TERN_ASSERT(idle > 0 && conn != NULL);
    }
    tern_mutex_unlock(&c->mu);
    return conn;
}

static void release_slot(tern_http_client *c, tern__hc_host *h)
{
    if (c->max_conns > 0)
        tern_sem_release(&h->sem, 1);
}

int tern__hc_checkout(tern_http_client *c, const tern_http_url *u, const char *dial, tern_ctx *ctx,
                      tern__hc_lease *l)
{
    tern_mutex_lock(&c->mu);
    tern__hc_host *h = tern__hc_host_get(c, u, dial);
    tern_mutex_unlock(&c->mu);
    if (!h)
        return -ENOMEM;
    if (c->max_conns > 0) {
        int rc = tern_sem_acquire(&h->sem, 1, ctx);
        if (rc < 0)
            return rc;
    }
    *l = (tern__hc_lease){.host = h};
    tern_conn *conn;
    while ((conn = take_idle(c, h))) {
        if (idle_conn_alive(conn)) {
            l->conn = conn;
            l->reused = true;
            atomic_fetch_add(&c->reuses, 1);
            atomic_fetch_add(&c->active, 1);
            return 0;
        }
        tern_conn_free(conn);
    }
    int rc = tern__hc_dial(c, h, true, &l->conn, ctx);
    if (rc != 0) {              /* TERN__HC_SPEAK_H2 too: nothing held */
        release_slot(c, h);
        return rc;
    }
    TERN_ASSERT(l->conn != NULL && !l->reused);
    atomic_fetch_add(&c->dials, 1);
    atomic_fetch_add(&c->active, 1);
    return 0;
}

int tern__hc_adopt(tern_http_client *c, const tern_http_url *u, const char *dial, tern_conn *conn,
                   tern_ctx *ctx, tern__hc_lease *l)
{
    tern_mutex_lock(&c->mu);
    tern__hc_host *h = tern__hc_host_get(c, u, dial);
    tern_mutex_unlock(&c->mu);
    int rc = h ? 0 : -ENOMEM;
    if (rc == 0 && c->max_conns > 0)
        rc = tern_sem_acquire(&h->sem, 1, ctx);
    if (rc < 0) {
        tern_conn_free(conn);
        return rc;
    }
    *l = (tern__hc_lease){.host = h, .conn = conn};    /* dials counted it */
    atomic_fetch_add(&c->active, 1);
    return 0;
}

int tern__hc_redial(tern_http_client *c, tern__hc_lease *l, tern_ctx *ctx)
{
    TERN_ASSERT(l->conn != NULL);   /* a lease in force */
    tern_conn_free(l->conn);
    l->reused = false;
    int rc = tern__hc_dial(c, l->host, true, &l->conn, ctx);
    if (rc != 0) {
        l->conn = NULL;
        unsigned active = atomic_fetch_sub(&c->active, 1);
        TERN_ASSERT(active > 0);
        release_slot(c, l->host);
        return rc;
    }
    atomic_fetch_add(&c->dials, 1);
    return 0;
}

void tern__hc_checkin(tern_http_client *c, tern__hc_lease *l, bool reusable)
{
    tern__hc_host *h = l->host;
    tern_conn *conn = l->conn;
    l->conn = NULL;
    if (!conn)
        return;
    if (reusable && c->max_idle > 0) {
        tern_mutex_lock(&c->mu);
        drop_expired(c, h, tern_now());
        if (h->nidle == c->max_idle) {
            /* full: the oldest goes, the one just used is likelier alive */
            tern_conn_free(h->idle[0].conn);
            memmove(h->idle, h->idle + 1, (size_t)(h->nidle - 1) * sizeof *h->idle);
            h->nidle--;
            unsigned idle = atomic_fetch_sub(&c->idle, 1);
            TERN_ASSERT(idle > 0);
        }
        TERN_ASSERT(h->nidle >= 0 && h->nidle < c->max_idle);
        tern_conn_set_read_deadline(conn, TERN_FOREVER);
        tern_conn_set_write_deadline(conn, TERN_FOREVER);
        h->idle[h->nidle++] = (tern__hc_idle){.conn = conn, .since = tern_now()};
        atomic_fetch_add(&c->idle, 1);
        tern_mutex_unlock(&c->mu);
    } else {
        tern_conn_free(conn);
    }
    unsigned active = atomic_fetch_sub(&c->active, 1);
    TERN_ASSERT(active > 0);    /* every lease counted once, on checkout */
    release_slot(c, h);
}

void tern__hc_pool_free(tern_http_client *c)
{
    tern__hc_host *h = c->hosts;
    while (h) {
        tern__hc_host *next = h->next;
        TERN_ASSERT(h->sem.cur == 0);   /* no lease outlives the client */
        TERN_ASSERT(h->nidle >= 0);
        for (int i = 0; i < h->nidle; i++)
            tern_conn_free(h->idle[i].conn);
        free(h->idle);
        free(h);
        h = next;
    }
    c->hosts = NULL;
    TERN_ASSERT(atomic_load(&c->active) == 0);
    atomic_store(&c->idle, 0);
}
