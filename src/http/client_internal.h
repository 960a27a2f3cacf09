/*
 * client_internal.h - what the HTTP client's files share: the client and
 * its per-host pools (client_pool.c), context-bounded I/O (client_io.c),
 * and the response with its body reader (client_response.c).  client.c
 * writes requests and follows redirects on top of them.  HTTP/2 origins
 * go through h2_client*.c (h2_client_internal.h).
 */
#ifndef TERN_HTTP_CLIENT_INTERNAL_H
#define TERN_HTTP_CLIENT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "base/check.h"
#include "tern/http_client.h"
#include "tern/http_parse.h"
#include "tern/http_parse.h"
#include "tern/net.h"
#include "tern/sync.h"
#include "tern/tls.h"

/* What an https origin's handshakes agreed on: nothing yet, "h2", or
 * anything else (HTTP/1.1). */
enum { TERN__HC_ALPN_UNKNOWN, TERN__HC_ALPN_H2, TERN__HC_ALPN_H1 };
/* Positive returns of the internal dial and exchange calls: the origin's
 * handshake chose the other protocol; the request goes that way. */
#define TERN__HC_SPEAK_H1 1
#define TERN__HC_SPEAK_H2 2

/* One pooled connection resting in a host's idle stack. */
typedef struct tern__hc_idle {
    tern_conn *conn;
    int64_t since;              /* when it went idle */
} tern__hc_idle;

/* The pool of one "scheme://host:port" (an https and an http connection
 * to the same port are not interchangeable).  Created on first use, kept
 * until the client is freed (so leases may point at it without a
 * reference). */
typedef struct tern__hc_host {
    struct tern__hc_host *next;
    char key[530];              /* "https://" + hostport, or for a picked
                                 * address "https://" + address + " " + name */
    char hostport[262];         /* what tern_conn_dial wants */
    char name[256];             /* https: the host for SNI and verification */
    bool tls;
    int alpn;                   /* https: TERN__HC_ALPN_* of the latest
                                   handshake (under the client's mu) */
    tern__hc_idle *idle;        /* oldest first; taken from the end (LIFO) */
    int nidle;
    /* Bounds dialling + lent connections when max_conns_per_host > 0.  A
     * lease holds one unit; an idle connection holds none, and a new one
     * is dialled only when the idle stack is empty, so lent + idle never
     * exceeds the bound. */
    tern_sem sem;
    /* HTTP/2 connections (h2_client_conn.c), under the client's mu */
    struct tern__h2c_conn *h2;
    int nh2;
    tern_cond h2_cond;          /* a slot freed, a connection became ready or went */
} tern__hc_host;

struct tern_http_client {
    int max_idle;               /* < 0: none */
    int max_conns;              /* 0: no bound */
    int64_t idle_timeout;
    int64_t timeout;
    int max_redirects;
    size_t max_header;
    char *user_agent;
    tern_tls_config *tls;       /* https: the caller's, or own_tls once made */
    tern_tls_config *own_tls;   /* the default one, made on first use */
    char tls_error[600];        /* the latest handshake failure (under mu) */
    bool h2c;                   /* options.h2c_prior_knowledge */
    bool h2_tls;                /* !options.disable_h2: ALPN "h2" is spoken */
    tern_mutex mu;              /* guards hosts and their idle stacks, own_tls, tls_error */
    tern__hc_host *hosts;
    atomic_uint_least64_t dials, reuses, requests;
    atomic_uint idle, active;   /* written under mu, read anywhere */
    atomic_uint h2_conns;       /* HTTP/2 connections open */
    tern_waitgroup h2_wg;       /* one per HTTP/2 connection not yet freed */
    const tern_http_picker *picker;     /* NULL: none */
    void *picker_arg;
    char *picker_host;          /* NULL: every request is picked */
    tern_pool *responses;       /* spare responses with their read buffers
                                   (client_response.c); NULL: none */
    atomic_uint_least64_t responses_uncached;   /* made without that cache */
};

/* A connection lent to one request. */
typedef struct tern__hc_lease {
    tern__hc_host *host;
    tern_conn *conn;
    bool reused;                /* came from the idle stack */
} tern__hc_lease;

/* The pool of u's origin (scheme, host, port), made on first use (mu
 * held); NULL on ENOMEM.  dial (NULL: u's host:port) is a picked address
 * to dial instead: its pool is its own, still verifying u's host. */
tern__hc_host *tern__hc_host_get(tern_http_client *c, const tern_http_url *u, const char *dial);
/* Lend a connection to u's origin (at dial, if not NULL): a pooled one if a live one is idle,
 * else a new one (dialled, and for https handshaken), waiting for a free
 * slot under max_conns_per_host.  0 or the -errno of the wait, the dial
 * or the handshake; nothing is held on failure. */
int tern__hc_checkout(tern_http_client *c, const tern_http_url *u, const char *dial, tern_ctx *ctx,
                      tern__hc_lease *l);
/* Replace the lease's connection with a new one (the stale-connection
 * retry), keeping its slot.  On failure the lease is given up. */
int tern__hc_redial(tern_http_client *c, tern__hc_lease *l, tern_ctx *ctx);
/* End the lease: back to the idle stack if reusable, else closed. */
void tern__hc_checkin(tern_http_client *c, tern__hc_lease *l, bool reusable);
/* Close every idle connection and free the hosts. */
void tern__hc_pool_free(tern_http_client *c);

/* Lend conn (dialled and handshaken by the HTTP/2 side, whose ALPN said
 * HTTP/1.1) to a request for u's origin, as checkout would.  conn is the
 * lease's, or freed on failure (-ENOMEM, the wait's error). */
int tern__hc_adopt(tern_http_client *c, const tern_http_url *u, const char *dial, tern_conn *conn,
                   tern_ctx *ctx, tern__hc_lease *l);

/* client_tls.c: dial h, and for https run the handshake (the client's
 * config, made on first use when the caller gave none).  On a handshake
 * failure the conn is freed and its sentence kept for
 * tern_http_client_last_tls_error.  With for_h1, a handshake that agreed
 * on "h2" cannot serve: the conn is freed, and the origin's ALPN is
 * forgotten and TERN__HC_SPEAK_H2 returned (-EPROTO with disable_h2). */
int tern__hc_dial(tern_http_client *c, tern__hc_host *h, bool for_h1, tern_conn **out,
                  tern_ctx *ctx);

/* Read / write on conn bounded by ctx (NULL: none), as tern_conn_read and
 * tern_conn_writev bound them.
 * Reads return the count, 0 at EOF, or -errno; writev writes everything
 * (iov is consumed) and returns 0 or -errno. */
ssize_t tern__hc_read(tern_conn *conn, tern_ctx *ctx, void *buf, size_t n);
int tern__hc_writev(tern_conn *conn, tern_ctx *ctx, struct iovec *iov, int iovcnt);

/* One hop of a request: what to send, where (client.c builds it). */
typedef struct tern__hc_hop {
    const char *method;
    const char *const *headers;
    const void *body;
    size_t body_len;
    bool has_body;
    ssize_t (*body_read)(void *buf, size_t n, void *arg);   /* a streamed body, or NULL */
    void *body_arg;
    int64_t body_read_len;      /* < 0: chunked */
    bool body_started;          /* body_read was called: no second try */
    bool close;                 /* ask the server to close after it */
    bool cross_origin;          /* a redirect left the first host:port */
    /* Where it goes: u says everything the server sees (Host or
     * :authority, the path) and the name TLS verifies; u.hostport is
     * dialled (and keys the pool) unless dial, a picked address, is set. */
    tern_http_url u;
    const char *dial;
} tern__hc_hop;

/* What Host and :authority say for u: host:port, or the host alone
 * (an IPv6 one in brackets) when the port is the scheme's default
 * (RFC 9110 7.2).  size: at least sizeof u->hostport + 2. */
void tern__hc_authority(const tern_http_url *u, char *out, size_t size);

/* client.c: one exchange of hop on r (request out, response head in):
 * on success r holds the lease (or the HTTP/2 stream).  -errno. */
int tern__hc_exchange(tern_http_client *c, struct tern_http_client_response *r, tern__hc_hop *hop);
/* client_pick.c: tern__hc_exchange, to the address the client's picker
 * names when hop is for its picker_host (key: the request's affinity
 * key), the outcome told back; else as it is.  hop is as it was after. */
int tern__hc_exchange_picked(tern_http_client *c, struct tern_http_client_response *r, tern__hc_hop *hop,
                             const void *key, size_t key_len);

/* How a body is delimited. */
enum { HC_BODY_NONE, HC_BODY_LENGTH, HC_BODY_CHUNKED, HC_BODY_CLOSE };

struct tern_http_client_response {
    tern_http_client *client;
    tern__hc_lease lease;       /* conn NULL once given back */
    tern_ctx *ctx;              /* the request's (not owned) */
    tern_ctx *own_ctx;          /* options.timeout's child of it, or NULL */
    int status;
    int64_t content_length;
    /* the head: fields copied out, NUL-terminated */
    char *fields;               /* name\0value\0 ... */
    size_t nfields;
    const char *names[TERN_HTTP_CLIENT_MAX_HEADERS];
    const char *values[TERN_HTTP_CLIENT_MAX_HEADERS];
    tern_http_header parsed[TERN_HTTP_CLIENT_MAX_HEADERS]; /* the parser's scratch */
    /* what was read past the head: buf[pos..end) raw bytes; for chunked
     * bodies, buf[dpos..dend) bytes already decoded */
    char *buf;
    size_t cap, pos, end, dpos, dend;
    int framing;                /* HC_BODY_* */
    uint64_t remaining;         /* HC_BODY_LENGTH: bytes still to come */
    tern_http_chunked chunked;
    bool last_chunk;            /* the decoder has seen the end */
    bool keep_alive;            /* both sides allow reuse */
    bool head_request;
    bool got_byte;              /* a response byte arrived on this conn */
    bool done;                  /* the body was read to its end */
    int err;                    /* sticky read error */
    char *body;                 /* tern_http_client_response_body's copy */
    struct tern__h2c_stream *h2;  /* an HTTP/2 response's stream, or NULL */
    bool is_h2;                 /* the last hop spoke HTTP/2 */
};

/* Read the response head from r->lease.conn into r, skipping 1xx heads.
 * r->head_request says no body follows; r->keep_alive is false when the
 * request asked to close. */
int tern__hc_read_head(tern_http_client_response *r);
/* Read and drop the rest of the body if it is at most max bytes; true if
 * it was read to its end (so the connection may be reused). */
bool tern__hc_discard_body(tern_http_client_response *r, size_t max);
/* May the connection go back to the pool now? */
bool tern__hc_reusable(const tern_http_client_response *r);
/* Forget the current head and body state (keeps the buffer), before the
 * next attempt or redirect hop. */
void tern__hc_response_reset(tern_http_client_response *r);
/* The client's cache of spare responses (c->responses): made with the
 * client (0, or -ENOMEM), freed with it. */
int tern__hc_responses_new(tern_http_client *c);
void tern__hc_responses_free(tern_http_client *c);
uint64_t tern__hc_responses_made(const tern_http_client *c);
/* A response for c, zeroed but for its field tables (written before they
 * are read) and, when it comes from the cache, its read buffer; NULL when
 * out of memory. */
tern_http_client_response *tern__hc_response_new(tern_http_client *c);

#endif
