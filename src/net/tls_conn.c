/*
 * tls_conn.c - the handshake that upgrades a tern_conn to TLS, and what
 * a handshake leaves to read (protocol, peer certificate, errors).
 *
 * The SSL reads and writes the conn's socket itself (a socket BIO, which
 * is also what kTLS needs).  The socket is non-blocking, so
 * SSL_do_handshake returns WANT_READ or WANT_WRITE whenever it would
 * wait: the coroutine then parks on the netpoller for that direction,
 * bounded by the ctx and the conn's read deadline (and a client's
 * handshake_timeout), and tries again.  The handshake's outcome is copied
 * into the per-conn state once it is over (ALPN, version, the peer's
 * subject and names), so the accessors read plain fields and never race
 * a reader or writer inside OpenSSL.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls_internal.h"
#include "tern/error.h"
#include "tern/runtime.h"

static int begin(tern_conn *c, tern_tls_config *cfg, bool server)
{
    struct tern__tls *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->server = server;
    t->gen = tern__tls_ctx_acquire(cfg);
    if (t->gen->server != server) {
        tern__tls_ctx_release(t->gen);
        free(t);
        return -EINVAL;
    }
    if (!(t->ssl = SSL_new(t->gen->ssl)) || SSL_set_fd(t->ssl, c->fd) != 1) {
        ERR_clear_error();
        SSL_free(t->ssl);
        tern__tls_ctx_release(t->gen);
        free(t);
        return -ENOMEM;
    }
    SSL_set_app_data(t->ssl, t);
    c->tls = t;
    return 0;
}

static char *x509_name(X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return NULL;
    char *out = NULL;
    if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long len = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)len);
    }
    BIO_free(b);
    return out;
}

static char *san_text(const GENERAL_NAME *g)
{
    int type;
    const ASN1_STRING *s = GENERAL_NAME_get0_value(g, &type);
    if (type == GEN_DNS || type == GEN_EMAIL || type == GEN_URI)
        return strndup((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
    if (type == GEN_IPADD) {
        char ip[INET6_ADDRSTRLEN];
        int len = ASN1_STRING_length(s);
        if ((len == 4 || len == 16) &&
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), ip, sizeof ip))
            return strdup(ip);
    }
    return NULL;
}

/* Copy out what the handshake agreed, while nobody else uses the SSL. */
static void settle(struct tern__tls *t)
{
    SSL *ssl = t->ssl;
    const unsigned char *a;
    unsigned alen;
    SSL_get0_alpn_selected(ssl, &a, &alen);
    if (alen > 0 && alen < sizeof t->alpn) {
        memcpy(t->alpn, a, alen);
        t->alpn[alen] = '\0';
    }
    t->version = SSL_get_version(ssl);
    t->cipher = SSL_get_cipher_name(ssl);
    t->resumed = SSL_session_reused(ssl) == 1;
    t->ktls_send = BIO_get_ktls_send(SSL_get_wbio(ssl)) == 1;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (t->server && sni)
        t->name = strdup(sni);
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (!x)
        return;
    t->subject = x509_name(X509_get_subject_name(x));
    GENERAL_NAMES *gs = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int n = gs ? sk_GENERAL_NAME_num(gs) : 0;
    if (n > 0 && (t->sans = calloc((size_t)n, sizeof *t->sans)))
        for (int i = 0; i < n; i++)
            if ((t->sans[t->nsans] = san_text(sk_GENERAL_NAME_value(gs, i))))
                t->nsans++;
    GENERAL_NAMES_free(gs);
    ERR_clear_error();
}

static int handshake(tern_conn *c, int64_t deadline, tern_ctx *ctx)
{
    struct tern__tls *t = c->tls;
    for (;;) {
        tern__spin_lock(&t->lock);
        tern__tls_clear_errors();
        errno = 0;
        int r = SSL_do_handshake(t->ssl);
        int saved = errno;
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
        int rc = 0;
        if (e == SSL_ERROR_NONE)
            settle(t);
        else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            rc = tern__tls_fail(t, e, saved);
        tern__spin_unlock(&t->lock);
        if (e == SSL_ERROR_NONE) {
            t->up = true;
            return 0;
        }
        if (rc < 0) {
            atomic_store_explicit(&t->dead, true, memory_order_relaxed);
            return rc;
        }
        rc = tern__net_wait(c->fd, e == SSL_ERROR_WANT_READ ? TERN_FD_READ : TERN_FD_WRITE,
                            deadline, ctx);
        if (rc < 0) {
            atomic_store_explicit(&t->dead, true, memory_order_relaxed);
            snprintf(t->err, sizeof t->err, "tls handshake: %s", tern_strerror(rc));
            return rc;
        }
    }
}

static int ctx_err(tern_ctx *ctx)
{
    return ctx ? tern_ctx_err(ctx) : 0;
}

int tern_tls_accept(tern_conn *c, tern_tls_config *cfg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(cfg);
    if (c->tls)
        return -EALREADY;
    int rc = ctx_err(ctx);
    if (rc < 0 || (rc = begin(c, cfg, true)) < 0)
        return rc;
    SSL_set_accept_state(c->tls->ssl);
    return handshake(c, conn_read_deadline(c), ctx);
}

static bool is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* SNI, the name to verify, a remembered session. */
static int prepare_client(struct tern__tls *t, const char *server_name)
{
    SSL *ssl = t->ssl;
    if (!server_name) {
        if (!t->gen->verify)
            return 0;
        snprintf(t->err, sizeof t->err, "tls: no server name to verify the certificate against");
        return -EINVAL;
    }
    if (!(t->name = strdup(server_name)))
        return -ENOMEM;
    bool ip = is_ip(server_name);
    /* RFC 6066 3: SNI carries host names only, never an address */
    if (!ip && SSL_set_tlsext_host_name(ssl, server_name) != 1)
        return -EINVAL;
    if (t->gen->verify) {
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_name)
                    : SSL_set1_host(ssl, server_name);
        if (ok != 1)
            return -EINVAL;
    }
    tern__tls_sessions_offer(t->gen->sessions, ssl, server_name);
    return 0;
}

int tern_tls_connect(tern_conn *c, tern_tls_config *cfg, const char *server_name, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(cfg);
    if (c->tls)
        return -EALREADY;
    int rc = ctx_err(ctx);
    if (rc < 0 || (rc = begin(c, cfg, false)) < 0)
        return rc;
    struct tern__tls *t = c->tls;
    SSL_set_connect_state(t->ssl);
    if ((rc = prepare_client(t, server_name)) < 0) {
        atomic_store_explicit(&t->dead, true, memory_order_relaxed);
        return rc;
    }
    int64_t deadline = conn_read_deadline(c);
    if (t->gen->handshake_timeout > 0) {
        int64_t d = tern_now() + t->gen->handshake_timeout;
        if (deadline == TERN_FOREVER || d < deadline)
            deadline = d;
    }
    return handshake(c, deadline, ctx);
}

/* ---- what the handshake left ---------------------------------------------- */

bool tern_tls_active(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls != NULL;
}

const char *tern_tls_alpn(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls && c->tls->up && c->tls->alpn[0] ? c->tls->alpn : NULL;
}

const char *tern_tls_version(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls && c->tls->up ? c->tls->version : NULL;
}

const char *tern_tls_cipher(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls && c->tls->up ? c->tls->cipher : NULL;
}

bool tern_tls_resumed(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls && c->tls->up && c->tls->resumed;
}

const char *tern_tls_server_name(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls ? c->tls->name : NULL;
}

const char *tern_tls_peer_subject(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls && c->tls->up ? c->tls->subject : NULL;
}

const char *tern_tls_peer_san(const tern_conn *c, size_t i)
{
    TERN_CHECK_ARG(c);
    return c->tls && c->tls->up && i < c->tls->nsans ? c->tls->sans[i] : NULL;
}

const char *tern_tls_last_error(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls ? c->tls->err : "";
}

bool tern_tls_ktls_send(const tern_conn *c)
{
    TERN_CHECK_ARG(c);
    return c->tls && c->tls->up && c->tls->ktls_send;
}

void tern__tls_free(struct tern__tls *t)
{
    SSL_free(t->ssl);
    tern__tls_ctx_release(t->gen);
    free(t->name);
    free(t->subject);
    for (size_t i = 0; i < t->nsans; i++)
        free(t->sans[i]);
    free(t->sans);
    free(t);
}
