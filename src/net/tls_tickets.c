/*
 * tls_tickets.c - session ticket keys, rotated on a schedule.
 *
 * A ticket is the server's session state, sealed with a key only the
 * server knows and handed to the client, which offers it on its next
 * connection to skip the full handshake (RFC 8446 4.6.1, RFC 5077).
 * Whoever steals the key can open every ticket sealed with it, and
 * through them the sessions' traffic: so the key changes every
 * `rotation` ns (OpenSSL's own key would live as long as the process).
 * The previous key still opens tickets, which are then renewed under the
 * current one; older tickets fall back to a full handshake.
 *
 * Rotation is lazy: the callback that seals or opens a ticket looks at
 * the clock, so an idle server needs no timer.  A generation shares its
 * config's keys, so a certificate reload does not cost every client its
 * resumption.  The keys are read and rotated under a spinlock: a few
 * copies of 80 bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls_internal.h"
#include "tern/runtime.h"

typedef struct tkey {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
} tkey;

struct tern__tls_tickets {
    atomic_int refs;
    tern__spin lock;
    int64_t rotation;
    int64_t rotated_at;
    tkey cur, prev;
    bool have_prev;
};

static int fresh(tkey *k)
{
    return RAND_bytes(k->name, sizeof k->name) == 1 && RAND_bytes(k->aes, sizeof k->aes) == 1 &&
                   RAND_bytes(k->hmac, sizeof k->hmac) == 1
               ? 0
               : -EIO;
}

int tern__tls_tickets_new(int64_t rotation, tern__tls_tickets **out)
{
    tern__tls_tickets *t = calloc(1, sizeof *t);
    *out = NULL;
    if (!t)
        return -ENOMEM;
    atomic_init(&t->refs, 1);
    t->rotation = rotation;
    t->rotated_at = tern_now();
    if (fresh(&t->cur) < 0) {
        free(t);
        return -EIO;
    }
    *out = t;
    return 0;
}

tern__tls_tickets *tern__tls_tickets_ref(tern__tls_tickets *t)
{
    if (t)
        atomic_fetch_add(&t->refs, 1);
    return t;
}

void tern__tls_tickets_unref(tern__tls_tickets *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        OPENSSL_cleanse(t, sizeof *t);
        free(t);
    }
}

/* Under t->lock: rotate when due.  Two periods without a rotation (an
 * idle server) retire both keys. */
static void maybe_rotate(tern__tls_tickets *t, int64_t now)
{
    int64_t age = now - t->rotated_at;
    if (age < t->rotation)
        return;
    tkey k;
    if (fresh(&k) < 0)
        return;                 /* keep the old key rather than none */
    t->prev = t->cur;
    t->have_prev = age < 2 * t->rotation;
    t->cur = k;
    t->rotated_at = now;
    OPENSSL_cleanse(&k, sizeof k);
}

static int init_ctx(const tkey *k, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx,
                    int enc)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof k->hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    return EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv, enc) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback.  enc: fill name and iv, set up the
 * cipher and MAC; 1.  Else find the key by name: 1 (current), 2 (the
 * previous: valid, but issue a new ticket), 0 (unknown: full handshake),
 * -1 on an internal error.  2 also for TLS 1.3, whose tickets are
 * single-use. */
static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    tern__tls_tickets *t = tern__tls_gen_of(ssl)->tickets;
    TERN_ASSERT(t != NULL);     /* installed only with tickets on */
    tkey k;
    int rc = 1;
    tern__spin_lock(&t->lock);
    maybe_rotate(t, tern_now());
    if (enc) {
        k = t->cur;
    } else if (memcmp(name, t->cur.name, 16) == 0) {
        k = t->cur;
        /* TLS 1.3 clients use a ticket once (RFC 8446 C.4): without a
         * new one a resumed connection would leave them none */
        rc = SSL_version(ssl) == TLS1_3_VERSION ? 2 : 1;
    } else if (t->have_prev && memcmp(name, t->prev.name, 16) == 0) {
        k = t->prev;
        rc = 2;
    } else {
        rc = 0;
    }
    tern__spin_unlock(&t->lock);
    if (rc == 0)
        return 0;
    if (enc) {
        memcpy(name, k.name, 16);
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1)
            rc = -1;
    }
    if (rc > 0 && init_ctx(&k, iv, cctx, hctx, enc) < 0)
        rc = -1;
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

void tern__tls_tickets_install(SSL_CTX *ctx)
{
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
}
