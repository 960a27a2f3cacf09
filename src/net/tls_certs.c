/*
 * tls_certs.c - a server's certificates and protocols: reading a
 * certificate and its key from PEM files, choosing among several by the
 * name the client asks for (SNI), and choosing the application protocol
 * (ALPN).
 *
 * SNI: the generation's SSL_CTX carries certs[0] as its default; when
 * there are more, a certificate callback looks at the server name and
 * installs the first certificate whose names match it on that one SSL
 * (X509_check_host: the SANs, else the CN; a wildcard covers one label,
 * RFC 6125 6.4.3).  One SSL_CTX per generation, not one per certificate,
 * so the session cache and ticket keys are shared by every name.
 *
 * ALPN: the server's list, in its order of preference, against the
 * client's (RFC 7301 3.2: the server chooses).  No protocol in common
 * is not fatal here: the handshake goes on without ALPN, and the
 * application speaks its default (HTTP/1.1), as most servers do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "net/tls_internal.h"

int tern__tls_alpn_wire(const char *const *list, unsigned char *out, size_t *len)
{
    size_t n = 0;
    for (; list && *list; list++) {
        size_t l = strlen(*list);
        if (l == 0 || l > 255 || n + 1 + l > TLS_ALPN_MAX)
            return -EINVAL;
        out[n++] = (unsigned char)l;
        memcpy(out + n, *list, l);
        n += l;
    }
    *len = n;
    return 0;
}

void tern__tls_cert_free(tls_cert *c)
{
    X509_free(c->leaf);
    EVP_PKEY_free(c->key);
    sk_X509_pop_free(c->chain, X509_free);
    memset(c, 0, sizeof *c);
}

static int open_pem(const char *path, FILE **out)
{
    *out = fopen(path, "re");
    return *out ? 0 : -errno;
}

int tern__tls_load_cert(const tern_tls_cert *c, tls_cert *out)
{
    memset(out, 0, sizeof *out);
    if (!c->cert_file || !c->key_file)
        return -EINVAL;
    FILE *f;
    int rc = open_pem(c->cert_file, &f);
    if (rc < 0)
        return rc;
    out->leaf = PEM_read_X509_AUX(f, NULL, NULL, NULL);
    out->chain = sk_X509_new_null();
    X509 *x;
    while (out->chain && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(out->chain, x)) {
            X509_free(x);
            break;
        }
    fclose(f);
    ERR_clear_error();      /* the chain loop ends on "no start line" */
    if (!out->leaf || !out->chain) {
        rc = out->chain ? -EBADMSG : -ENOMEM;   /* no PEM certificate first */
        tern__tls_cert_free(out);
        return rc;
    }
    if ((rc = open_pem(c->key_file, &f)) < 0) {
        tern__tls_cert_free(out);
        return rc;
    }
    out->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!out->key || X509_check_private_key(out->leaf, out->key) != 1) {
        ERR_clear_error();
        tern__tls_cert_free(out);
        return -EBADMSG;    /* not a key, or not this certificate's */
    }
    return 0;
}

/* SNI: put the certificate that names the server on this SSL.  certs[0]
 * is the SSL_CTX's already: nothing to do when it matches, or nothing does. */
static int choose_cert(SSL *ssl, void *arg)
{
    tern__tls_ctx *g = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return 1;
    size_t len = strlen(name);
    for (size_t i = 0; i < g->ncerts; i++) {
        if (X509_check_host(g->certs[i].leaf, name, len, 0, NULL) != 1)
            continue;
        if (i == 0)
            return 1;
        tls_cert *c = &g->certs[i];
        return SSL_use_cert_and_key(ssl, c->leaf, c->key, c->chain, 1) == 1 ? 1 : 0;
    }
    return 1;
}

static int choose_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    tern__tls_ctx *g = arg;
    unsigned char *sel;
    if (g->alpn_len == 0 ||
        SSL_select_next_proto(&sel, outlen, g->alpn, (unsigned)g->alpn_len, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

void tern__tls_server_callbacks(tern__tls_ctx *g)
{
    if (g->ncerts > 1)
        SSL_CTX_set_cert_cb(g->ssl, choose_cert, g);
    SSL_CTX_set_alpn_select_cb(g->ssl, choose_alpn, g);
}
