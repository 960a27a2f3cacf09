/*
 * keys.c - the key set: HS256 secrets and RSA / P-256 keys (OpenSSL 3
 * EVP_PKEYs), each of one kind that fixes the one algorithm it is used
 * with.  Binding the algorithm to the key, never to the token's header,
 * is what makes the "alg" confusions (none; HS256 keyed with an RSA public
 * key) impossible rather than merely checked for.
 *
 * The set is a plain array: a handful of keys, searched linearly by kid.
 */
#define _GNU_SOURCE /* strdup */

#include "kit/auth/internal.h"

#include "base/check.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* RFC 7518 3.2: an HS256 key at least as long as the hash. */
#define HMAC_MIN_BYTES 32
/* RFC 7518 3.3: RSA keys of 2048 bits or larger. */
#define RSA_MIN_BITS 2048

const char *tern__jwt_alg_name(tern__jwt_kind kind)
{
    switch (kind) {
    case TERN__JWT_HS256: return "HS256";
    case TERN__JWT_RS256: return "RS256";
    case TERN__JWT_ES256: return "ES256";
    }
    return "?";
}

int tern__jwt_alg_kind(const char *alg)
{
    if (strcmp(alg, "HS256") == 0)
        return TERN__JWT_HS256;
    if (strcmp(alg, "RS256") == 0)
        return TERN__JWT_RS256;
    if (strcmp(alg, "ES256") == 0)
        return TERN__JWT_ES256;
    return -1;
}

int tern_jwt_keys_new(tern_jwt_keys **out)
{
    TERN_CHECK_ARG(out);
    *out = calloc(1, sizeof **out);
    return *out ? 0 : -ENOMEM;
}

static void key_clear(tern__jwt_key *key)
{
    free(key->kid);
    if (key->secret) {
        OPENSSL_cleanse(key->secret, key->secret_len);
        free(key->secret);
    }
    EVP_PKEY_free(key->pkey);
    EVP_MAC_CTX_free(atomic_load_explicit(&key->mac, memory_order_acquire));
}

void tern_jwt_keys_free(tern_jwt_keys *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++)
        key_clear(&k->v[i]);
    free(k->v);
    free(k);
}

size_t tern_jwt_keys_count(const tern_jwt_keys *k)
{
    TERN_CHECK_ARG(k);
    return k->n;
}

int tern__jwt_keys_take(tern_jwt_keys *k, const char *kid, tern__jwt_kind kind, EVP_PKEY *pkey,
                        unsigned char *secret, size_t secret_len, bool can_sign)
{
    tern__jwt_key key = {.kind = kind, .pkey = pkey, .secret = secret, .secret_len = secret_len,
                         .can_sign = can_sign};
    /* exactly one of the two, as the kind says */
    TERN_ASSERT((kind == TERN__JWT_HS256) == (secret != NULL) && (pkey == NULL) == (secret != NULL));
    int rc = 0;
    if (kid) {
        for (size_t i = 0; i < k->n; i++)
            if (k->v[i].kid && strcmp(k->v[i].kid, kid) == 0)
                rc = -EEXIST;
        if (rc == 0 && !(key.kid = strdup(kid)))
            rc = -ENOMEM;
    }
    if (rc == 0 && k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 4;
        tern__jwt_key *v = realloc(k->v, cap * sizeof *v);
        if (!v)
            rc = -ENOMEM;
        else {
            k->v = v;
            k->cap = cap;
        }
    }
    if (rc != 0) {
        key_clear(&key);
        return rc;
    }
    k->v[k->n++] = key;
    return 0;
}

int tern_jwt_keys_add_hmac(tern_jwt_keys *k, const char *kid, const void *secret, size_t len)
{
    TERN_CHECK_ARG(k);
    if (len < HMAC_MIN_BYTES || !secret)
        return -EINVAL;
    unsigned char *copy = malloc(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, secret, len);
    return tern__jwt_keys_take(k, kid, TERN__JWT_HS256, NULL, copy, len, true);
}

int tern__jwt_pkey_kind(EVP_PKEY *pkey, tern__jwt_kind *kind)
{
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
            return -ENOTSUP;
        *kind = TERN__JWT_RS256;
        return 0;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64];
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &glen) != 1)
            return -ENOTSUP;
        if (OBJ_txt2nid(group) != NID_X9_62_prime256v1)
            return -ENOTSUP;
        *kind = TERN__JWT_ES256;
        return 0;
    }
    return -ENOTSUP;
}

/* The first key the PEM text holds, private first (a private key also
 * verifies), then a public key in either wrapping, then a certificate's. */
static EVP_PKEY *read_pem(const char *pem, size_t len, bool *priv)
{
    static const char *const kinds[] = {"PRIVATE", "PUBLIC", "CERT"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        BIO *bio = BIO_new_mem_buf(pem, (int)len);
        if (!bio)
            return NULL;
        EVP_PKEY *pkey = NULL;
        if (i == 0)
            pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        else if (i == 1) {
            /* "PUBLIC KEY" (SPKI) or "RSA PUBLIC KEY" (PKCS#1): the
             * decoders know both */
            OSSL_DECODER_CTX *dc = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
                                                                 EVP_PKEY_PUBLIC_KEY, NULL, NULL);
            if (!dc || OSSL_DECODER_from_bio(dc, bio) != 1) {
                EVP_PKEY_free(pkey);
                pkey = NULL;
            }
            OSSL_DECODER_CTX_free(dc);
        } else {
            X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
            if (x) {
                pkey = X509_get_pubkey(x);
                X509_free(x);
            }
        }
        BIO_free(bio);
        if (pkey) {
            *priv = i == 0;
            return pkey;
        }
    }
    return NULL;
}

int tern_jwt_keys_add_pem(tern_jwt_keys *k, const char *kid, const char *pem, size_t len)
{
    TERN_CHECK_ARG(k);
    TERN_CHECK_ARG(pem);
    if (len == 0 || len > TERN__JWKS_MAX)
        return -EINVAL;
    bool priv = false;
    EVP_PKEY *pkey = read_pem(pem, len, &priv);
    /* OpenSSL queues an error for each reader that found nothing */
    ERR_clear_error();
    if (!pkey)
        return -EINVAL;
    tern__jwt_kind kind;
    int rc = tern__jwt_pkey_kind(pkey, &kind);
    if (rc != 0) {
        EVP_PKEY_free(pkey);
        return rc;
    }
    return tern__jwt_keys_take(k, kid, kind, pkey, NULL, 0, priv);
}
