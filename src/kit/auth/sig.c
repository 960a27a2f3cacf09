/*
 * sig.c - the three signatures (RFC 7518 section 3) through OpenSSL 3's
 * EVP interface: HS256 (HMAC SHA-256, compared in constant time), RS256
 * (RSASSA-PKCS1-v1_5 SHA-256) and ES256 (ECDSA P-256 SHA-256).
 *
 * ES256's JWS form is the raw pair r || s, 32 bytes each, big-endian
 * (RFC 7518 3.4), where OpenSSL speaks DER (an ECDSA-Sig-Value SEQUENCE),
 * so the two are converted here both ways.
 */
#include "kit/auth/internal.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ES256_HALF 32

static EVP_MD *sha256;
static EVP_MAC *hmac_alg;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

const EVP_MD *tern__jwt_sha256(void)
{
    pthread_once(&fetch_once, fetch);
    return sha256 ? sha256 : EVP_sha256();
}

EVP_MAC_CTX *tern__jwt_mac_new(const unsigned char *secret, size_t len)
{
    pthread_once(&fetch_once, fetch);
    EVP_MAC_CTX *c = hmac_alg ? EVP_MAC_CTX_new(hmac_alg) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (c && EVP_MAC_init(c, secret, len, params) == 1)
        return c;
    EVP_MAC_CTX_free(c);
    ERR_clear_error();
    return NULL;
}

EVP_MAC_CTX *tern__jwt_key_mac(const tern__jwt_key *key)
{
    /* the set's keys are not const objects: only the pointer is */
    _Atomic(EVP_MAC_CTX *) *slot = &((tern__jwt_key *)key)->mac;
    EVP_MAC_CTX *c = atomic_load_explicit(slot, memory_order_acquire);
    if (c)
        return c;
    EVP_MAC_CTX *mine = tern__jwt_mac_new(key->secret, key->secret_len);
    if (!mine)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(slot, &c, mine, memory_order_acq_rel, memory_order_acquire))
        return mine;
    EVP_MAC_CTX_free(mine);             /* another thread's came first */
    return c;
}

/* HMAC-SHA256 of in under the key: a copy of the keyed context (the
 * key's own is never written, so any number of threads use it at once)
 * saves keying it per token, a third of a short token's cost. */
static bool hmac(const tern__jwt_key *key, const void *in, size_t n, unsigned char md[32])
{
    EVP_MAC_CTX *keyed = tern__jwt_key_mac(key);
    EVP_MAC_CTX *c = keyed ? EVP_MAC_CTX_dup(keyed) : NULL;
    size_t mdlen = 0;
    bool ok = c && EVP_MAC_update(c, in, n) == 1 && EVP_MAC_final(c, md, &mdlen, 32) == 1 && mdlen == 32;
    EVP_MAC_CTX_free(c);
    return ok;
}

/* The raw r || s from a DER ECDSA signature: 0 or -EINVAL. */
static int der_to_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES256_HALF])
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!es)
        return -EINVAL;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    int ok = BN_bn2binpad(r, raw, ES256_HALF) == ES256_HALF &&
             BN_bn2binpad(s, raw + ES256_HALF, ES256_HALF) == ES256_HALF;
    ECDSA_SIG_free(es);
    return ok ? 0 : -EINVAL;
}

/* The DER form of a raw r || s, malloc'd: its length, or -1. */
static long raw_to_der(const unsigned char raw[2 * ES256_HALF], unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, ES256_HALF, NULL);
    BIGNUM *s = BN_bin2bn(raw + ES256_HALF, ES256_HALF, NULL);
    long n = -1;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL;   /* the signature's now */
        *der = NULL;
        int len = i2d_ECDSA_SIG(es, der);
        n = len > 0 ? len : -1;
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n;
}

int tern__jwt_sig_make(const tern__jwt_key *key, const void *in, size_t n, unsigned char **sig,
                       size_t *siglen)
{
    if (!key->can_sign)
        return -EINVAL;
    if (key->kind == TERN__JWT_HS256) {
        unsigned char *md = malloc(32);
        if (!md)
            return -ENOMEM;
        if (!hmac(key, in, n, md)) {
            free(md);
            return -ENOMEM;
        }
        *sig = md;
        *siglen = 32;
        return 0;
    }
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = -ENOMEM;
    if (mctx && EVP_DigestSignInit(mctx, NULL, tern__jwt_sha256(), NULL, key->pkey) == 1 &&
        EVP_DigestSign(mctx, NULL, &len, in, n) == 1 && (buf = malloc(len)) &&
        EVP_DigestSign(mctx, buf, &len, in, n) == 1)
        rc = 0;
    EVP_MD_CTX_free(mctx);
    if (rc == 0 && key->kind == TERN__JWT_ES256) {
        unsigned char *raw = malloc(2 * ES256_HALF);
        rc = raw ? der_to_raw(buf, len, raw) : -ENOMEM;
        free(buf);
        buf = raw;
        len = 2 * ES256_HALF;
    }
    if (rc != 0) {
        ERR_clear_error();
        free(buf);
        return rc;
    }
    *sig = buf;
    *siglen = len;
    return 0;
}

bool tern__jwt_sig_check(const tern__jwt_key *key, const void *in, size_t n,
                         const unsigned char *sig, size_t siglen)
{
    if (key->kind == TERN__JWT_HS256) {
        unsigned char md[32];
        /* the length is public (every HS256 MAC is 32 bytes); the bytes
         * are compared in constant time */
        bool ok = siglen == sizeof md && hmac(key, in, n, md) && CRYPTO_memcmp(md, sig, sizeof md) == 0;
        OPENSSL_cleanse(md, sizeof md);
        return ok;
    }
    unsigned char *der = NULL;
    if (key->kind == TERN__JWT_ES256) {
        if (siglen != 2 * ES256_HALF)
            return false;
        long len = raw_to_der(sig, &der);
        if (len < 0)
            return false;
        sig = der;
        siglen = (size_t)len;
    }
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    bool ok = mctx && EVP_DigestVerifyInit(mctx, NULL, tern__jwt_sha256(), NULL, key->pkey) == 1 &&
              EVP_DigestVerify(mctx, sig, siglen, in, n) == 1;
    EVP_MD_CTX_free(mctx);
    OPENSSL_free(der);
    if (!ok)
        ERR_clear_error();
    return ok;
}
