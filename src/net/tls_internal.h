/*
 * tls_internal.h - what the TLS files share.
 *
 * A config (tern_tls_config, the caller's handle) points at its current
 * generation, a tern__tls_ctx: one SSL_CTX with the certificates, keys and
 * trust read from the files at one moment.  Every handshake takes a
 * reference on the generation current when it starts and the conn keeps
 * it until it is freed, so a reload swaps the pointer (under the config's
 * mutex) and the old generation is freed by whoever drops its last
 * reference: a reload never touches a live connection.
 *
 *   tls_config.c   options, generations, new / reload / free
 *   tls_certs.c    loading certificates; choosing one by SNI; ALPN
 *   tls_tickets.c  session ticket keys and their rotation
 *   tls_session.c  the client's remembered sessions
 *   tls_watch.c    reloading when the files change
 *   tls_conn.c     handshakes and the per-connection accessors
 *   tls_error.c    turning OpenSSL's failures into -errno and a sentence
 *   tls_io.c       read / write / writev / sendfile over SSL
 */
#ifndef TERN_NET_TLS_INTERNAL_H
#define TERN_NET_TLS_INTERNAL_H

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "base/check.h"
#include "base/spin.h"
#include "net/net_internal.h"
#include "tern/tls.h"

#define TLS_DEFAULT_HANDSHAKE_NS (10 * 1000000000LL)
#define TLS_DEFAULT_TICKET_ROTATION_NS (3600 * 1000000000LL)
#define TLS_DEFAULT_SESSION_CACHE 20480
#define TLS_ALPN_MAX 256            /* wire-format ALPN list */
#define TLS_CLIENT_SESSIONS 64      /* server names a client config remembers */
#define TLS_ERR_MAX 256

/* One server certificate: its leaf, key and chain. */
typedef struct tls_cert {
    X509 *leaf;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;
} tls_cert;

/* Session ticket keys: the current one seals new tickets; it and the
 * previous one open them.  Shared by every generation of a config, so a
 * certificate reload does not invalidate the tickets clients hold. */
typedef struct tern__tls_tickets tern__tls_tickets;

/* A client's remembered sessions, by server name. */
typedef struct tern__tls_sessions tern__tls_sessions;

/* One generation of a config. */
typedef struct tern__tls_ctx {
    atomic_int refs;
    bool server;
    SSL_CTX *ssl;
    tls_cert *certs;            /* server: by SNI */
    size_t ncerts;
    unsigned char alpn[TLS_ALPN_MAX];   /* wire format: len, bytes, len, bytes ... */
    size_t alpn_len;
    tern__tls_tickets *tickets;         /* server, NULL without tickets (a reference) */
    tern__tls_sessions *sessions;       /* client (a reference) */
    bool verify;                        /* client: verify the server */
    int64_t handshake_timeout;          /* client: ns, < 0 none */
} tern__tls_ctx;

/* The per-connection state, c->tls. */
struct tern__tls {
    SSL *ssl;
    tern__tls_ctx *gen;         /* a reference */
    tern__spin lock;            /* around each SSL_* call on ssl */
    bool server;
    bool up;                    /* the handshake succeeded */
    atomic_bool dead;           /* a fatal error: no close_notify, no more I/O (read
                                   by the reader and the writer without the lock) */
    bool resumed, ktls_send;    /* settled after the handshake, as are: */
    const char *version, *cipher;   /* OpenSSL's static strings */
    char alpn[64];
    char *name;                 /* client: the server name connected to (SSL app data is t) */
    char *subject;              /* the peer's, or NULL */
    char **sans;
    size_t nsans;
    char err[TLS_ERR_MAX];
    char failed_subject[96];    /* the certificate that failed verification */
};

/* OpenSSL wants the thread's error queue empty before an SSL I/O call
 * (SSL_get_error reads it).  ERR_clear_error wipes all 16 slots every
 * time (~700 instructions, 2000 per HTTPS request, callgrind); looking
 * first costs a thread-local load when the queue is empty, as it is
 * almost always (every failure path here drains it). */
static inline void tern__tls_clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* tls_config.c */
tern__tls_ctx *tern__tls_ctx_acquire(tern_tls_config *cfg);
void tern__tls_ctx_release(tern__tls_ctx *g);
/* SSL_CTX app data is its generation. */
static inline tern__tls_ctx *tern__tls_gen_of(SSL *ssl)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

/* tls_certs.c */
int tern__tls_load_cert(const tern_tls_cert *c, tls_cert *out);
void tern__tls_cert_free(tls_cert *c);
/* Install the SNI choice (when more than one certificate) and the ALPN
 * choice on a server generation. */
void tern__tls_server_callbacks(tern__tls_ctx *g);
/* A NULL-terminated list into ALPN wire format: 0 or -EINVAL. */
int tern__tls_alpn_wire(const char *const *list, unsigned char *out, size_t *len);

/* tls_tickets.c */
int tern__tls_tickets_new(int64_t rotation, tern__tls_tickets **out);
tern__tls_tickets *tern__tls_tickets_ref(tern__tls_tickets *t);
void tern__tls_tickets_unref(tern__tls_tickets *t);
void tern__tls_tickets_install(SSL_CTX *ctx);

/* tls_session.c */
int tern__tls_sessions_new(tern__tls_sessions **out);
tern__tls_sessions *tern__tls_sessions_ref(tern__tls_sessions *s);
void tern__tls_sessions_unref(tern__tls_sessions *s);
void tern__tls_sessions_install(SSL_CTX *ctx);
/* Offer the remembered session for name on ssl, if any. */
void tern__tls_sessions_offer(tern__tls_sessions *s, SSL *ssl, const char *name);

/* tls_watch.c: a coroutine that reloads cfg when its files change;
 * stop cancels it and waits for it to leave (from a coroutine). */
typedef struct tern__tls_watch tern__tls_watch;
int tern__tls_watch_start(tern_tls_config *cfg, int64_t interval, tern__tls_watch **out);
void tern__tls_watch_stop(tern__tls_watch *w);
/* The files a config reads (for the watch): up to max paths. */
size_t tern__tls_config_files(const tern_tls_config *cfg, const char **out, size_t max);

/* tls_error.c: the result of a failed handshake step (SSL_get_error's
 * code e, the errno saved right after the call) as -errno, with a sentence in
 * t->err.  Call with t->lock held, right after the failing call. */
int tern__tls_fail(struct tern__tls *t, int e, int saved_errno);
/* The verify callback: notes the subject of a certificate that fails. */
int tern__tls_verify_cb(int ok, X509_STORE_CTX *xs);
/* Clear and format OpenSSL's error queue into buf. */
void tern__tls_err_string(char *buf, size_t size);

/* tls_io.c: the conn's operations when c->tls is set (conn.c diverts). */
ssize_t tern__tls_read(tern_conn *c, void *buf, size_t n, tern_ctx *ctx);
ssize_t tern__tls_write(tern_conn *c, const void *buf, size_t n, tern_ctx *ctx);
ssize_t tern__tls_writev(tern_conn *c, struct iovec *iov, int iovcnt, tern_ctx *ctx);
ssize_t tern__tls_sendfile(tern_conn *c, int fd, off_t *offset, size_t len, tern_ctx *ctx);
/* Decrypted or buffered bytes wait in SSL: a read will not park. */
bool tern__tls_pending(tern_conn *c);
/* Send close_notify (once, without waiting). */
void tern__tls_close_notify(tern_conn *c);
void tern__tls_free(struct tern__tls *t);

#endif
