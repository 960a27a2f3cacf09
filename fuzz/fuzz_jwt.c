/*
 * fuzz_jwt.c - libFuzzer target for tern/jwt.h's readers of outside text
 * (src/kit/auth/): tokens, JWK Sets and PEM keys.
 *
 * The first byte picks what the rest is: a token verified against a set
 * holding one key of each kind (made once), a JWK Set, or PEM text.
 * Beyond "no crash, no sanitizer report, no leak" it checks what callers
 * rely on: a refusal is -EACCES with a reason and no token; an accepted
 * token's accessors answer; and a claim set that signs verifies again
 * under the same keys, for each of the three algorithms (so base64url,
 * the ES256 DER <-> r||s conversion and the claim checks agree with the
 * signer on whatever JSON the fuzzer finds).
 */
#define _GNU_SOURCE /* strndup */

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tern/jwt.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

static tern_jwt_keys *keys;

static void add_generated(const char *kid, EVP_PKEY *k)
{
    check(k != NULL);
    BIO *b = BIO_new(BIO_s_mem());
    check(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    check(tern_jwt_keys_add_pem(keys, kid, p, (size_t)n) == 0);
    BIO_free(b);
    EVP_PKEY_free(k);
}

static void make_keys(void)
{
    if (keys)
        return;
    check(tern_jwt_keys_new(&keys) == 0);
    check(tern_jwt_keys_add_hmac(keys, "h", "0123456789abcdef0123456789abcdef", 32) == 0);
    add_generated("r", EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048));
    add_generated("e", EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"));
}

/* 2026-01-01: exp and nbf of found tokens are judged against this. */
static const tern_jwt_verify_options opts = {.now = 1767225600LL * 1000000000LL};

static void verify(const char *tok, size_t len)
{
    tern_jwt *t = (tern_jwt *)1;
    const char *why = NULL;
    int rc = tern_jwt_verify(keys, tok, len, &opts, &t, &why);
    if (rc != 0) {
        check(rc == -EACCES || rc == -ENOMEM);
        check(t == NULL);
        check(rc != -EACCES || (why && *why));
        return;
    }
    check(t != NULL);
    check(tern_jwt_alg(t) != NULL);
    char *text;
    check(tern_jwt_claims_json(t, &text) == 0);
    free(text);
    int64_t v;
    (void)tern_jwt_claim_int(t, "exp", &v);
    (void)tern_jwt_claim_string(t, "sub");
    tern_jwt_free(t);
}

static void sign_and_verify(const char *claims)
{
    static const char *const kids[] = {"h", "r", "e"};
    for (int i = 0; i < 3; i++) {
        char *tok;
        int rc = tern_jwt_sign(keys, kids[i], claims, &tok);
        if (rc != 0) {
            check(rc == -EINVAL || rc == -ENOMEM);
            return;
        }
        /* a token we made verifies, unless its own claims say it is out of
         * time (exp, nbf, iat are the fuzzer's) */
        tern_jwt *t;
        const char *why = NULL;
        rc = tern_jwt_verify(keys, tok, strlen(tok), &opts, &t, &why);
        check(rc == 0 || (rc == -EACCES && why &&
                          (strstr(why, "exp") || strstr(why, "nbf") || strstr(why, "iat") ||
                           strstr(why, "valid") || strstr(why, "future") || strstr(why, "long"))));
        if (rc == 0)
            tern_jwt_free(t);
        free(tok);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    make_keys();
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char err[256];
    tern_jwt_keys *k;
    switch (data[0] % 4) {
    case 0:
        verify(p, n);
        break;
    case 1: {
        char *s = strndup(p, n);
        check(s != NULL);
        sign_and_verify(s);
        free(s);
        break;
    }
    case 2:
        check(tern_jwt_keys_new(&k) == 0);
        err[0] = '\0';
        if (tern_jwt_keys_load_jwks(k, p, n, err, sizeof err) == 0)
            check(tern_jwt_keys_count(k) > 0);
        else
            check(err[0] != '\0' || tern_jwt_keys_count(k) == 0);
        tern_jwt_keys_free(k);
        break;
    default:
        check(tern_jwt_keys_new(&k) == 0);
        (void)tern_jwt_keys_add_pem(k, NULL, p, n);
        tern_jwt_keys_free(k);
        break;
    }
    return 0;
}
