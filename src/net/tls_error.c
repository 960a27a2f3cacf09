/*
 * tls_error.c - what went wrong in a handshake, for people and programs.
 *
 * OpenSSL reports a failure in three places: SSL_get_error's class (the
 * socket, the protocol, a clean close), the thread's error queue (the
 * reason: "unsupported protocol", "tlsv1 alert unknown ca"), and for
 * certificates the verify result (expired, unknown issuer, host name
 * mismatch).  A caller wants one code to branch on and one sentence to
 * log; the certificate failures a client most often meets get codes of
 * their own (tls.h lists them).  Called right after the failing SSL call,
 * on the same thread, with the conn's lock held: the error queue is per
 * thread and the coroutine has not parked since.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "net/tls_internal.h"

void tern__tls_err_string(char *buf, size_t size)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;       /* the last one queued is the closest to the cause */
    if (last) {
        char tmp[TLS_ERR_MAX];
        ERR_error_string_n(last, tmp, sizeof tmp);
        /* "error:0A000086:SSL routines::certificate verify failed": the
         * reason after the last ':' is what a reader needs */
        const char *r = strrchr(tmp, ':');
        snprintf(buf, size, "%.*s", (int)(size - 1), r && r[1] ? r + 1 : tmp);
    } else {
        snprintf(buf, size, "handshake failed");
    }
}

static void name_text(X509 *x, char *buf, size_t size)
{
    buf[0] = '\0';
    BIO *b = x ? BIO_new(BIO_s_mem()) : NULL;
    if (!b)
        return;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
    int n = BIO_read(b, buf, (int)size - 1);
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

/* OpenSSL keeps no peer certificate after a failed verification, so the
 * subject of the certificate that failed is noted as it fails. */
int tern__tls_verify_cb(int ok, X509_STORE_CTX *xs)
{
    if (ok)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tern__tls *t = ssl ? SSL_get_app_data(ssl) : NULL;
    if (t && !t->failed_subject[0])
        name_text(X509_STORE_CTX_get_current_cert(xs), t->failed_subject,
                  sizeof t->failed_subject);
    return 0;
}

/* The subject of the peer certificate, or of the one that failed. */
static void peer_subject(struct tern__tls *t, char *buf, size_t size)
{
    if (t->failed_subject[0])
        snprintf(buf, size, "%s", t->failed_subject);
    else
        name_text(SSL_get0_peer_certificate(t->ssl), buf, size);
}

/* A certificate that failed verification: expired, untrusted or naming
 * another host. */
static int verify_failure(struct tern__tls *t, long v)
{
    char subj[128];
    peer_subject(t, subj, sizeof subj);
    const char *what = X509_verify_cert_error_string(v);
    const char *side = t->server ? "client" : "server";
    int rc;
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
        rc = -EKEYEXPIRED;
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: {
        const char *want = t->name;     /* the name tern_tls_connect was given */
        snprintf(t->err, sizeof t->err,
                 "%s certificate verify failed: name mismatch: it is not valid for \"%s\"%s%s%s",
                 side, want ? want : "?", subj[0] ? " (subject " : "", subj, subj[0] ? ")" : "");
        return -EKEYREJECTED;
    }
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        snprintf(t->err, sizeof t->err,
                 "%s certificate verify failed: unknown issuer (%s)%s%s%s", side, what,
                 subj[0] ? " (subject " : "", subj, subj[0] ? ")" : "");
        return -EKEYREJECTED;
    default:
        rc = -EKEYREJECTED;
        break;
    }
    snprintf(t->err, sizeof t->err, "%s certificate verify failed: %s%s%s%s", side, what,
             subj[0] ? " (subject " : "", subj, subj[0] ? ")" : "");
    return rc;
}

int tern__tls_fail(struct tern__tls *t, int e, int saved_errno)
{
    if (e == SSL_ERROR_SSL) {
        long v = SSL_get_verify_result(t->ssl);
        if (v != X509_V_OK) {
            ERR_clear_error();
            return verify_failure(t, v);
        }
        bool nocert = false;
        unsigned long q, last = 0;
        while ((q = ERR_get_error()) != 0) {
            if (ERR_GET_LIB(q) == ERR_LIB_SSL &&
                ERR_GET_REASON(q) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
                nocert = true;
            last = q;
        }
        if (nocert) {
            snprintf(t->err, sizeof t->err, "the client sent no certificate (one is required)");
            return -ENOKEY;
        }
        char why[TLS_ERR_MAX - 8] = "handshake failed";
        if (last) {
            ERR_error_string_n(last, why, sizeof why);
            const char *r = strrchr(why, ':');
            if (r && r[1])
                memmove(why, r + 1, strlen(r + 1) + 1);
        }
        snprintf(t->err, sizeof t->err, "tls: %s", why);
        return -EPROTO;
    }
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && saved_errno == 0)) {
        snprintf(t->err, sizeof t->err, "the peer closed the connection during the handshake");
        return -ECONNRESET;
    }
    if (e == SSL_ERROR_SYSCALL) {
        snprintf(t->err, sizeof t->err, "tls: %s", strerror(saved_errno));
        return -saved_errno;
    }
    snprintf(t->err, sizeof t->err, "tls: unexpected SSL error %d", e);
    return -EPROTO;
}
