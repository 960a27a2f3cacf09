/*
 * jwks.c - JWK Sets (RFC 7517; RFC 7518 section 6 for the members): RSA,
 * EC P-256 and "oct" keys made into the key set's entries.  RSA and EC
 * keys are assembled from their big-endian integers with
 * EVP_PKEY_fromdata; an EC point is checked to be on the curve before it
 * is accepted (a point off the curve is the invalid-curve attack's way in).
 *
 * A set may carry keys for other uses (encryption) or types (OKP); those
 * are skipped, so that one published JWKS serves several kinds of client.
 */
#define _GNU_SOURCE /* O_CLOEXEC */

#include "kit/auth/internal.h"

#include "base/check.h"
#include "base/json_depth.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JWKS_DEPTH_MAX 8

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Member name of key j decoded from base64url: 0 with *out malloc'd (*len
 * bytes), -ENOENT when absent, -EINVAL when not a base64url string. */
static int member_bytes(const json_t *jwk, const char *name, unsigned char **out, size_t *len)
{
    const json_t *v = json_object_get(jwk, name);
    if (!v)
        return -ENOENT;
    const char *s = json_string_value(v);
    if (!s)
        return -EINVAL;
    size_t n = json_string_length(v);
    unsigned char *buf = malloc(n * 3 / 4 + 1);
    if (!buf)
        return -ENOMEM;
    long got = tern__b64url_decode(s, n, buf);
    if (got <= 0) {
        free(buf);
        return -EINVAL;
    }
    *out = buf;
    *len = (size_t)got;
    return 0;
}

/* Push member name (a base64url big-endian integer) as a BIGNUM param.
 * 0, -ENOENT (absent), -EINVAL, -ENOMEM. */
static int push_bn(OSSL_PARAM_BLD *bld, BIGNUM **keep, const json_t *jwk, const char *name,
                   const char *param)
{
    unsigned char *b;
    size_t n;
    int rc = member_bytes(jwk, name, &b, &n);
    if (rc != 0)
        return rc;
    BIGNUM *bn = BN_bin2bn(b, (int)n, NULL);
    free(b);
    if (!bn)
        return -ENOMEM;
    *keep = bn;     /* the builder refers to it until the params are made */
    return OSSL_PARAM_BLD_push_BN(bld, param, bn) == 1 ? 0 : -ENOMEM;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld, bool priv)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (params && pctx && EVP_PKEY_fromdata_init(pctx) == 1)
        (void)EVP_PKEY_fromdata(pctx, &pkey, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static int rsa_key(const json_t *jwk, EVP_PKEY **out, bool *priv)
{
    static const char *const members[][2] = {
        {"n", OSSL_PKEY_PARAM_RSA_N},          {"e", OSSL_PKEY_PARAM_RSA_E},
        {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
        {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
        {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
    };
    enum { NM = sizeof members / sizeof members[0] };
    BIGNUM *bn[NM] = {0};
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    int rc = bld ? 0 : -ENOMEM;
    *priv = json_object_get(jwk, "d") != NULL;
    /* n and e always; the CRT members only together, all five */
    size_t upto = *priv ? (json_object_get(jwk, "p") ? NM : 3) : 2;
    for (size_t i = 0; i < upto && rc == 0; i++)
        rc = push_bn(bld, &bn[i], jwk, members[i][0], members[i][1]);
    if (rc == -ENOENT)
        rc = -EINVAL;
    *out = rc == 0 ? from_params("RSA", bld, *priv) : NULL;
    if (rc == 0 && !*out)
        rc = -EINVAL;
    OSSL_PARAM_BLD_free(bld);
    for (size_t i = 0; i < NM; i++)
        BN_clear_free(bn[i]);
    return rc;
}

static int ec_key(const json_t *jwk, EVP_PKEY **out, bool *priv)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (!crv || strcmp(crv, "P-256") != 0)
        return -ENOTSUP;
    unsigned char *x = NULL, *y = NULL;
    size_t xn = 0, yn = 0;
    int rc = member_bytes(jwk, "x", &x, &xn);
    if (rc == 0)
        rc = member_bytes(jwk, "y", &y, &yn);
    /* RFC 7518 6.2.1.2 wants the full 32 bytes, but some writers (PyJWT's
     * to_jwk among them) drop an integer's leading zero bytes, one key in
     * 256: a shorter coordinate is the same number, left-padded here; the
     * curve check below still refuses any point that is not on it. */
    if (rc == 0 && (xn == 0 || xn > 32 || yn == 0 || yn > 32))
        rc = -EINVAL;
    unsigned char point[65] = {0};
    if (rc == 0) {
        point[0] = 0x04;    /* uncompressed (SEC 1 2.3.3) */
        memcpy(point + 1 + 32 - xn, x, xn);
        memcpy(point + 33 + 32 - yn, y, yn);
    }
    free(x);
    free(y);
    if (rc != 0)
        return rc == -ENOENT ? -EINVAL : rc;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *d = NULL;
    *priv = json_object_get(jwk, "d") != NULL;
    rc = bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
                 OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point) == 1
             ? 0
             : -ENOMEM;
    if (rc == 0 && *priv)
        rc = push_bn(bld, &d, jwk, "d", OSSL_PKEY_PARAM_PRIV_KEY);
    *out = rc == 0 ? from_params("EC", bld, *priv) : NULL;
    if (rc == 0 && !*out)
        rc = -EINVAL;
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    if (rc == 0) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
        if (!c || EVP_PKEY_public_check(c) != 1) {
            EVP_PKEY_free(*out);
            *out = NULL;
            rc = -EINVAL;
        }
        EVP_PKEY_CTX_free(c);
    }
    return rc;
}

/* Key i of the set into k: 0 added, 1 skipped, or -errno with err. */
static int add_one(tern_jwt_keys *k, const json_t *jwk, size_t i, char *err, size_t errlen)
{
    if (!json_is_object(jwk))
        return fail(err, errlen, -EINVAL, "keys[%zu]: not an object", i);
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty)
        return fail(err, errlen, -EINVAL, "keys[%zu]: no \"kty\"", i);
    const char *use = json_string_value(json_object_get(jwk, "use"));
    if (use && strcmp(use, "sig") != 0)
        return 1;
    const json_t *kidv = json_object_get(jwk, "kid");
    if (kidv && !json_is_string(kidv))
        return fail(err, errlen, -EINVAL, "keys[%zu].kid: not a string", i);
    const char *kid = json_string_value(kidv);
    const char *alg = json_string_value(json_object_get(jwk, "alg"));

    tern__jwt_kind kind;
    EVP_PKEY *pkey = NULL;
    bool priv = false;
    int rc;
    if (strcmp(kty, "oct") == 0) {
        unsigned char *secret;
        size_t len;
        kind = TERN__JWT_HS256;
        if (alg && tern__jwt_alg_kind(alg) != (int)kind)
            return 1;
        rc = member_bytes(jwk, "k", &secret, &len);
        if (rc == 0 && len < 32) {
            OPENSSL_cleanse(secret, len);
            free(secret);
            return fail(err, errlen, -EINVAL, "keys[%zu].k: an HS256 secret needs 32 bytes or more", i);
        }
        if (rc == 0)
            rc = tern__jwt_keys_take(k, kid, kind, NULL, secret, len, true);
    } else {
        if (strcmp(kty, "RSA") == 0) {
            kind = TERN__JWT_RS256;
            if (alg && tern__jwt_alg_kind(alg) != (int)kind)
                return 1;
            rc = rsa_key(jwk, &pkey, &priv);
        } else if (strcmp(kty, "EC") == 0) {
            kind = TERN__JWT_ES256;
            if (alg && tern__jwt_alg_kind(alg) != (int)kind)
                return 1;
            rc = ec_key(jwk, &pkey, &priv);
            if (rc == -ENOTSUP)
                return 1;   /* another curve: for another client */
        } else
            return 1;
        ERR_clear_error();
        if (rc == 0) {
            tern__jwt_kind got;
            rc = tern__jwt_pkey_kind(pkey, &got);
            if (rc != 0) {
                EVP_PKEY_free(pkey);
                return fail(err, errlen, -EINVAL, "keys[%zu]: an RSA key needs 2048 bits or more", i);
            }
            rc = tern__jwt_keys_take(k, kid, kind, pkey, NULL, 0, priv);
        }
    }
    if (rc == -EEXIST)
        return fail(err, errlen, rc, "keys[%zu].kid: \"%s\" is already in the set", i, kid);
    if (rc == -ENOMEM)
        return fail(err, errlen, rc, "keys[%zu]: out of memory", i);
    if (rc != 0)
        return fail(err, errlen, -EINVAL, "keys[%zu]: not a valid %s key", i, kty);
    return 0;
}

int tern_jwt_keys_load_jwks(tern_jwt_keys *k, const char *json, size_t len, char *err,
                            size_t errlen)
{
    TERN_CHECK_ARG(k);
    TERN_CHECK_ARG(json);
    if (err && errlen)
        err[0] = '\0';
    if (len > TERN__JWKS_MAX)
        return fail(err, errlen, -EINVAL, "a JWK Set larger than %d bytes", TERN__JWKS_MAX);
    if (!tern__json_depth_ok(json, len, JWKS_DEPTH_MAX))
        return fail(err, errlen, -EINVAL, "not a JWK Set: nested too deep");
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fail(err, errlen, -EINVAL, "not JSON: %s (line %d)", je.text, je.line);
    const json_t *keys = json_object_get(root, "keys");
    int rc = 0;
    size_t added = 0;
    if (!json_is_array(keys))
        rc = fail(err, errlen, -EINVAL, "not a JWK Set: no \"keys\" array");
    for (size_t i = 0; rc == 0 && i < json_array_size(keys); i++) {
        rc = add_one(k, json_array_get(keys, i), i, err, errlen);
        if (rc == 0)
            added++;
        else if (rc == 1)
            rc = 0;
    }
    json_decref(root);
    if (rc == 0 && added == 0)
        rc = fail(err, errlen, -EINVAL, "no key for HS256, RS256 or ES256 in the JWK Set");
    return rc;
}

int tern_jwt_keys_load_jwks_file(tern_jwt_keys *k, const char *path, char *err, size_t errlen)
{
    TERN_CHECK_ARG(k);
    TERN_CHECK_ARG(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return fail(err, errlen, -e, "%s: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > TERN__JWKS_MAX) {
        close(fd);
        return fail(err, errlen, -EINVAL, "%s: larger than %d bytes", path, TERN__JWKS_MAX);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    int rc = tern_jwt_keys_load_jwks(k, buf, got, err, errlen);
    free(buf);
    if (rc != 0 && err && errlen) {
        /* name the file in front of the reason */
        char reason[256];
        snprintf(reason, sizeof reason, "%s", err);
        snprintf(err, errlen, "%s: %s", path, reason);
    }
    return rc;
}
