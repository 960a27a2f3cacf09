/*
 * test_kit_jwt.c - tern/jwt.h: tokens signed and verified with each of
 * HS256, RS256 and ES256 (keys made here with OpenSSL, JWK Sets written
 * here), the refusals that matter (alg none, the HS256-with-an-RSA-key
 * confusion, tampering, non-canonical base64url, claims out of time,
 * audience, issuer, unknown kid), and tokens cross-checked against PyJWT
 * (python3-jwt), an implementation of our own choosing neither way.
 */
#include "check.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include <tern/jwt.h>

#define NS 1000000000LL
/* A fixed "now" for the claim checks: 2026-01-01T00:00:00Z. */
#define NOW_S 1767225600LL

static const char secret32[] = "0123456789abcdef0123456789abcdef";

/* ---- helpers: keys, PEM, JWK, hand-made tokens -------------------------- */

static EVP_PKEY *gen_rsa(unsigned bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    CHECK(k);
    return k;
}

static EVP_PKEY *gen_ec(const char *curve)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    CHECK(k);
    return k;
}

/* PEM text of a key, malloc'd: private (PKCS#8), public (SPKI) or the
 * RSA public key in PKCS#1. */
enum pem_form { PEM_PRIVATE, PEM_PUBLIC, PEM_RSA_PKCS1 };
static char *pem_of(EVP_PKEY *k, enum pem_form form)
{
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(b);
    int ok = 0;
    if (form == PEM_PRIVATE)
        ok = PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    else if (form == PEM_PUBLIC)
        ok = PEM_write_bio_PUBKEY(b, k);
    else {
        /* PKCS#1 "RSA PUBLIC KEY": i2d_PublicKey writes RSAPublicKey */
        unsigned char *der = NULL;
        int n = i2d_PublicKey(k, &der);
        CHECK(n > 0);
        ok = PEM_write_bio(b, "RSA PUBLIC KEY", "", der, n);
        OPENSSL_free(der);
    }
    CHECK(ok > 0);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static void b64url(const unsigned char *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = a[v >> 18];
        out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static void b64url_str(const char *s, char *out)
{
    b64url((const unsigned char *)s, strlen(s), out);
}

/* The base64url of a big-endian integer parameter of k. */
static void bn_param(EVP_PKEY *k, const char *name, char *out)
{
    BIGNUM *bn = NULL;
    CHECK(EVP_PKEY_get_bn_param(k, name, &bn) == 1);
    unsigned char buf[1024];
    int n = BN_bn2bin(bn, buf);
    b64url(buf, (size_t)n, out);
    BN_free(bn);
}

/* A JWK (JSON object text) for k's public half, or the whole key. */
static char *jwk_of(EVP_PKEY *k, const char *kid, bool priv)
{
    char *out = malloc(8192);
    if (EVP_PKEY_is_a(k, "RSA")) {
        char n[700], e[16], d[700];
        bn_param(k, OSSL_PKEY_PARAM_RSA_N, n);
        bn_param(k, OSSL_PKEY_PARAM_RSA_E, e);
        if (priv)
            bn_param(k, OSSL_PKEY_PARAM_RSA_D, d);
        snprintf(out, 8192, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"%s%s%s}", kid, n, e,
                 priv ? ",\"d\":\"" : "", priv ? d : "", priv ? "\"" : "");
    } else {
        unsigned char pt[65];
        size_t len = 0;
        CHECK(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len) == 1);
        CHECK_EQ(len, 65);
        char x[64], y[64], d[64];
        b64url(pt + 1, 32, x);
        b64url(pt + 33, 32, y);
        if (priv) {
            BIGNUM *bn = NULL;
            CHECK(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1);
            unsigned char buf[32];
            CHECK_EQ(BN_bn2binpad(bn, buf, 32), 32);
            b64url(buf, 32, d);
            BN_free(bn);
        }
        snprintf(out, 8192,
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s%s}", kid, x,
                 y, priv ? ",\"d\":\"" : "", priv ? d : "", priv ? "\"" : "");
    }
    return out;
}

/* A token made by hand: header and claims JSON, HMAC-SHA256 signed with
 * key (klen bytes) or, with key NULL, the signature part sig as given. */
static char *forge(const char *hdr, const char *claims, const void *key, size_t klen, const char *sig)
{
    char *t = malloc(16384);
    char h[2048], c[4096];
    b64url_str(hdr, h);
    b64url_str(claims, c);
    int n = snprintf(t, 16384, "%s.%s", h, c);
    if (key) {
        unsigned char md[32];
        unsigned mdlen = 0;
        CHECK(HMAC(EVP_sha256(), key, (int)klen, (unsigned char *)t, (size_t)n, md, &mdlen));
        char s[64];
        b64url(md, mdlen, s);
        snprintf(t + n, 16384 - (size_t)n, ".%s", s);
    } else
        snprintf(t + n, 16384 - (size_t)n, ".%s", sig);
    return t;
}

static const tern_jwt_verify_options at_now = {.now = NOW_S * NS};

/* verify and return the reason (NULL when accepted) */
static const char *verdict(const tern_jwt_keys *k, const char *tok, const tern_jwt_verify_options *o)
{
    const char *why = NULL;
    tern_jwt *t = NULL;
    int rc = tern_jwt_verify(k, tok, strlen(tok), o, &t, &why);
    if (rc == 0) {
        CHECK(t);
        tern_jwt_free(t);
        return NULL;
    }
    CHECK_EQ(rc, -EACCES);
    CHECK(t == NULL);
    CHECK(why);
    return why;
}

static void check_why(const tern_jwt_keys *k, const char *tok, const tern_jwt_verify_options *o,
                      const char *expected, int line)
{
    const char *w = verdict(k, tok, o);
    if (!expected != !w || (w && strcmp(w, expected) != 0)) {
        fprintf(stderr, "%s:%d: verdict \"%s\", expected \"%s\"\n", __FILE__, line,
                w ? w : "(accepted)", expected ? expected : "(accepted)");
        abort();
    }
}
#define CHECK_WHY(k, tok, o, expected) check_why((k), (tok), (o), (expected), __LINE__)

/* ---- tests ---------------------------------------------------------------- */

static void jwt_signs_and_verifies_with_each_alg(void)
{
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    char *rsa_pem = pem_of(rsa, PEM_PRIVATE), *ec_pem = pem_of(ec, PEM_PRIVATE);
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "h", secret32, 32), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "r", rsa_pem, strlen(rsa_pem)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "e", ec_pem, strlen(ec_pem)), 0);
    CHECK_EQ(tern_jwt_keys_count(k), 3);
    const char *kids[] = {"h", "r", "e"}, *algs[] = {"HS256", "RS256", "ES256"};
    for (int i = 0; i < 3; i++) {
        char *tok;
        CHECK_EQ(tern_jwt_sign(k, kids[i], "{\"sub\":\"alice\",\"n\":42,\"roles\":[\"a\",\"b\"],\"exp\":1767229200}",
                               &tok),
                 0);
        tern_jwt *t;
        const char *why = NULL;
        CHECK_EQ(tern_jwt_verify(k, tok, strlen(tok), &at_now, &t, &why), 0);
        CHECK(strcmp(tern_jwt_alg(t), algs[i]) == 0);
        CHECK(strcmp(tern_jwt_kid(t), kids[i]) == 0);
        CHECK(strcmp(tern_jwt_claim_string(t, "sub"), "alice") == 0);
        CHECK(tern_jwt_claim_string(t, "n") == NULL);
        int64_t n = 0;
        CHECK_EQ(tern_jwt_claim_int(t, "n", &n), 0);
        CHECK_EQ(n, 42);
        CHECK_EQ(tern_jwt_claim_int(t, "sub", &n), -EINVAL);
        CHECK_EQ(tern_jwt_claim_int(t, "missing", &n), -ENOENT);
        char *text;
        CHECK_EQ(tern_jwt_claim_text(t, "roles", &text), 0);
        CHECK(strcmp(text, "[\"a\",\"b\"]") == 0);
        free(text);
        CHECK_EQ(tern_jwt_claim_text(t, "n", &text), 0);
        CHECK(strcmp(text, "42") == 0);
        free(text);
        CHECK_EQ(tern_jwt_claim_text(t, "nope", &text), -ENOENT);
        CHECK_EQ(tern_jwt_claims_json(t, &text), 0);
        CHECK(strstr(text, "\"sub\":\"alice\""));
        free(text);
        tern_jwt_free(t);
        /* ES256 signatures are the raw r || s: 64 bytes, 86 characters */
        if (i == 2)
            CHECK_EQ(strlen(strrchr(tok, '.') + 1), 86);
        /* out may be NULL: the verdict alone */
        CHECK_EQ(tern_jwt_verify(k, tok, strlen(tok), &at_now, NULL, NULL), 0);
        /* every byte of the token matters: flip one in the claims, one
         * in the signature */
        char *bad = strdup(tok);
        char *claims = strchr(bad, '.') + 1;
        claims[3] = claims[3] == 'A' ? 'B' : 'A';
        CHECK_WHY(k, bad, &at_now, "bad signature");
        strcpy(bad, tok);
        char *sig = strrchr(bad, '.') + 1;
        sig[5] = sig[5] == 'A' ? 'B' : 'A';
        CHECK_WHY(k, bad, &at_now, "bad signature");
        free(bad);
        free(tok);
    }
    tern_jwt_keys_free(k);
    free(rsa_pem);
    free(ec_pem);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

static void jwt_refuses_alg_none_and_unknown_algs(void)
{
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, secret32, 32), 0);
    const char *claims = "{\"sub\":\"mallory\"}";
    char *t = forge("{\"alg\":\"none\"}", claims, NULL, 0, "");
    CHECK_WHY(k, t, &at_now, "alg none refused");
    free(t);
    t = forge("{\"alg\":\"none\"}", claims, NULL, 0, "AAAA");
    CHECK_WHY(k, t, &at_now, "alg none refused");
    free(t);
    t = forge("{\"alg\":\"NONE\"}", claims, secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "unsupported alg");
    free(t);
    t = forge("{\"alg\":\"HS512\"}", claims, secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "unsupported alg");
    free(t);
    /* the same token with HS256 passes: the refusals above are the alg's */
    t = forge("{\"alg\":\"HS256\"}", claims, secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, NULL);
    free(t);
    /* a critical extension we do not know */
    t = forge("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", claims, secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "unsupported critical header");
    free(t);
    tern_jwt_keys_free(k);
}

/* The classic confusion: a verifier that takes the algorithm from the
 * token and the key bytes from its store would check an HS256 MAC keyed
 * with the RSA public key's PEM text, which anyone can compute. */
static void jwt_refuses_hs256_keyed_with_an_rsa_public_key(void)
{
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    char *pub = pem_of(rsa, PEM_PUBLIC), *ecpub = pem_of(ec, PEM_PUBLIC);
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "r", pub, strlen(pub)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "e", ecpub, strlen(ecpub)), 0);
    const char *claims = "{\"sub\":\"admin\"}";
    char *t = forge("{\"alg\":\"HS256\",\"kid\":\"r\"}", claims, pub, strlen(pub), NULL);
    CHECK_WHY(k, t, &at_now, "alg does not match the key");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", claims, pub, strlen(pub), NULL);
    CHECK_WHY(k, t, &at_now, "alg does not match the key");
    free(t);
    /* an RS256 header on the EC key, ES256 on the RSA key */
    t = forge("{\"alg\":\"RS256\",\"kid\":\"e\"}", claims, pub, strlen(pub), NULL);
    CHECK_WHY(k, t, &at_now, "alg does not match the key");
    free(t);
    t = forge("{\"alg\":\"ES256\",\"kid\":\"r\"}", claims, pub, strlen(pub), NULL);
    CHECK_WHY(k, t, &at_now, "alg does not match the key");
    free(t);
    /* public keys cannot sign */
    char *tok = (char *)1;
    CHECK_EQ(tern_jwt_sign(k, "r", claims, &tok), -EINVAL);
    CHECK(tok == NULL);
    CHECK_EQ(tern_jwt_sign(k, "nope", claims, &tok), -ENOENT);
    tern_jwt_keys_free(k);
    free(pub);
    free(ecpub);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

static void jwt_checks_exp_nbf_iat_with_leeway(void)
{
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, secret32, 32), 0);
    struct {
        const char *claims;
        int64_t leeway_s;
        bool require_exp;
        const char *why;
    } cases[] = {
        {"{\"exp\":1767225601}", 0, false, NULL},
        {"{\"exp\":1767225600}", 0, false, "token expired"},     /* valid only before exp */
        {"{\"exp\":1767225599}", 0, false, "token expired"},
        {"{\"exp\":1767225570}", 30, false, "token expired"},
        {"{\"exp\":1767225571}", 30, false, NULL},
        {"{\"exp\":1767225600.5}", 0, false, NULL},              /* NumericDate may have a fraction */
        {"{\"exp\":\"1767229200\"}", 0, false, "malformed exp"},
        {"{\"exp\":1e300}", 0, false, NULL},                     /* saturates, never overflows */
        {"{\"exp\":-1e300}", 0, false, "token expired"},
        {"{\"nbf\":1767225601}", 0, false, "token not yet valid"},
        {"{\"nbf\":1767225630}", 30, false, NULL},
        {"{\"nbf\":1767225631}", 30, false, "token not yet valid"},
        {"{\"nbf\":1767225600}", 0, false, NULL},
        {"{\"iat\":1767225660}", 0, false, "token issued in the future"},
        {"{\"iat\":1767225660}", 60, false, NULL},
        {"{\"iat\":1767225000}", 0, false, NULL},
        {"{\"iat\":null}", 0, false, "malformed iat"},
        {"{\"sub\":\"x\"}", 0, false, NULL},
        {"{\"sub\":\"x\"}", 0, true, "token has no exp"},
        {"{\"exp\":1767225700}", 0, true, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", cases[i].claims, secret32, 32, NULL);
        tern_jwt_verify_options o = {.now = NOW_S * NS, .leeway = cases[i].leeway_s * NS,
                                     .require_exp = cases[i].require_exp};
        CHECK_WHY(k, t, &o, cases[i].why);
        free(t);
    }
    /* now = 0: the wall clock (an exp an hour past, an hour ahead) */
    char claims[64];
    snprintf(claims, sizeof claims, "{\"exp\":%lld}", (long long)time(NULL) - 3600);
    char *t = forge("{\"alg\":\"HS256\"}", claims, secret32, 32, NULL);
    CHECK_WHY(k, t, NULL, "token expired");
    free(t);
    snprintf(claims, sizeof claims, "{\"exp\":%lld}", (long long)time(NULL) + 3600);
    t = forge("{\"alg\":\"HS256\"}", claims, secret32, 32, NULL);
    CHECK_WHY(k, t, NULL, NULL);
    free(t);
    tern_jwt_keys_free(k);
}

/* tern_jwt_validity's interval is exactly where verify accepts: at its
 * ends and one ns outside them. */
static void jwt_validity_is_the_interval_verify_accepts(void)
{
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, secret32, 32), 0);
    struct {
        const char *claims;
        int64_t leeway_s;
        int64_t from, until;    /* s past NOW_S; INT64_MIN, INT64_MAX: none */
    } cases[] = {
        {"{\"exp\":%lld}", 0, INT64_MIN, 100},
        {"{\"exp\":%lld}", 30, INT64_MIN, 130},
        {"{\"nbf\":%lld,\"exp\":4000000000}", 30, 70, 4000000000 - NOW_S + 30},
        {"{\"iat\":%lld,\"nbf\":1767225000,\"exp\":4000000000}", 0, 100, 4000000000 - NOW_S},
        {"{\"sub\":\"x\",\"n\":%lld}", 0, INT64_MIN, INT64_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char claims[128];
        snprintf(claims, sizeof claims, cases[i].claims, (long long)NOW_S + 100);
        char *t = forge("{\"alg\":\"HS256\"}", claims, secret32, 32, NULL);
        tern_jwt_verify_options o = {.now = (NOW_S + 100) * NS, .leeway = cases[i].leeway_s * NS};
        tern_jwt *j;
        const char *why = NULL;
        if (tern_jwt_verify(k, t, strlen(t), &o, &j, &why) != 0) {
            /* not valid now: try where the interval says it is (its
             * last valid ns when it has no start) */
            o.now = cases[i].from == INT64_MIN ? (NOW_S + cases[i].until) * NS - 1 : (NOW_S + cases[i].from) * NS;
            CHECK_EQ(tern_jwt_verify(k, t, strlen(t), &o, &j, &why), 0);
        }
        int64_t from, until;
        tern_jwt_validity(j, &o, &from, &until);
        tern_jwt_free(j);
        int64_t want_from = cases[i].from == INT64_MIN ? INT64_MIN : (NOW_S + cases[i].from) * NS;
        int64_t want_until = cases[i].until == INT64_MAX ? INT64_MAX : (NOW_S + cases[i].until) * NS;
        CHECK_EQ(from, want_from);
        CHECK_EQ(until, want_until);
        /* from - 1 only when there is a start (INT64_MIN - 1 would overflow) */
        const int64_t probes[][2] = {{from, 1}, {from == INT64_MIN ? from : from - 1, 0}, {until - 1, 1}, {until, 0}};
        for (size_t p = 0; p < 4; p++) {
            if ((p < 2 && from == INT64_MIN) || (p >= 2 && until == INT64_MAX))
                continue;       /* no bound there */
            o.now = probes[p][0];
            int rc = tern_jwt_verify(k, t, strlen(t), &o, NULL, &why);
            if ((rc == 0) != (probes[p][1] == 1)) {
                fprintf(stderr, "case %zu probe %zu: verify %d (%s) at %lld\n", i, p, rc, rc ? why : "-",
                        (long long)o.now);
                abort();
            }
        }
        free(t);
    }
    tern_jwt_keys_free(k);
}

static void jwt_checks_issuer_and_audience(void)
{
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, secret32, 32), 0);
    const char *auds[] = {"shop", "admin"};
    tern_jwt_verify_options o = {.now = NOW_S * NS, .issuer = "shop-users", .audiences = auds,
                                 .n_audiences = 2};
    struct {
        const char *claims, *why;
    } cases[] = {
        {"{\"iss\":\"shop-users\",\"aud\":\"shop\"}", NULL},
        {"{\"iss\":\"shop-users\",\"aud\":\"admin\"}", NULL},
        {"{\"iss\":\"shop-users\",\"aud\":[\"x\",\"admin\"]}", NULL},
        {"{\"iss\":\"shop-users\",\"aud\":[\"x\",\"y\"]}", "wrong audience"},
        {"{\"iss\":\"shop-users\",\"aud\":\"shopx\"}", "wrong audience"},
        {"{\"iss\":\"shop-users\",\"aud\":[]}", "wrong audience"},
        {"{\"iss\":\"shop-users\",\"aud\":7}", "wrong audience"},
        {"{\"iss\":\"shop-users\"}", "wrong audience"},
        {"{\"iss\":\"other\",\"aud\":\"shop\"}", "wrong issuer"},
        {"{\"aud\":\"shop\"}", "wrong issuer"},
        {"{\"iss\":1,\"aud\":\"shop\"}", "wrong issuer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = forge("{\"alg\":\"HS256\"}", cases[i].claims, secret32, 32, NULL);
        CHECK_WHY(k, t, &o, cases[i].why);
        /* without the options, the same tokens pass */
        CHECK_WHY(k, t, &at_now, NULL);
        free(t);
    }
    tern_jwt_keys_free(k);
}

static void jwt_selects_keys_by_kid(void)
{
    static const char other[] = "ffffffffffffffffffffffffffffffff";
    static const char third[] = "99999999999999999999999999999999";
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "a", secret32, 32), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "a", other, 32), -EEXIST);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "b", other, 32), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "short", other, 31), -EINVAL);
    CHECK_EQ(tern_jwt_keys_count(k), 2);
    const char *c = "{\"sub\":\"x\"}";
    char *t = forge("{\"alg\":\"HS256\",\"kid\":\"a\"}", c, secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, NULL);
    free(t);
    /* signed with b's secret but naming a: only a is tried */
    t = forge("{\"alg\":\"HS256\",\"kid\":\"a\"}", c, other, 32, NULL);
    CHECK_WHY(k, t, &at_now, "bad signature");
    free(t);
    t = forge("{\"alg\":\"HS256\",\"kid\":\"zz\"}", c, other, 32, NULL);
    CHECK_WHY(k, t, &at_now, "unknown key id");
    free(t);
    t = forge("{\"alg\":\"HS256\",\"kid\":7}", c, other, 32, NULL);
    CHECK_WHY(k, t, &at_now, "malformed token header");
    free(t);
    /* no kid: every key of the type */
    t = forge("{\"alg\":\"HS256\"}", c, other, 32, NULL);
    CHECK_WHY(k, t, &at_now, NULL);
    free(t);
    /* a key without an id takes tokens whose kid the set lacks */
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, third, 32), 0);
    t = forge("{\"alg\":\"HS256\",\"kid\":\"zz\"}", c, third, 32, NULL);
    CHECK_WHY(k, t, &at_now, NULL);
    free(t);
    /* signing: by kid, or (kid NULL) the key without an id */
    char *tok;
    CHECK_EQ(tern_jwt_sign(k, NULL, c, &tok), 0);
    tern_jwt *jt;
    CHECK_EQ(tern_jwt_verify(k, tok, strlen(tok), &at_now, &jt, NULL), 0);
    CHECK(tern_jwt_kid(jt) == NULL);
    tern_jwt_free(jt);
    free(tok);
    CHECK_EQ(tern_jwt_sign(k, "b", "[1,2]", &tok), -EINVAL);
    CHECK_EQ(tern_jwt_sign(k, "b", "{\"a\":1,\"a\":2}", &tok), -EINVAL);
    CHECK_EQ(tern_jwt_sign(k, "b", "{nope", &tok), -EINVAL);
    tern_jwt_keys_free(k);
}

static void jwt_refuses_malformed_tokens(void)
{
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, secret32, 32), 0);
    char *good = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"x\"}", secret32, 32, NULL);
    CHECK_WHY(k, good, &at_now, NULL);
    const char *bad[] = {"", ".", "..", "...", "a", "a.b", "a.b.c", "a.b.c.d", "e30.e30.", "e30.e30.AAAA",
                         "=.=.=", "\x01\x02.\x03.\x04"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(verdict(k, bad[i], &at_now) != NULL);
    char buf[20000];
    /* a fourth part */
    snprintf(buf, sizeof buf, "%s.AAAA", good);
    CHECK_WHY(k, buf, &at_now, "malformed token");
    /* padding on the signature: another spelling of the same bytes */
    snprintf(buf, sizeof buf, "%s=", good);
    CHECK_WHY(k, buf, &at_now, "malformed signature");
    /* stray low bits in the signature's last character (43 characters,
     * 2 bits unused) */
    snprintf(buf, sizeof buf, "%s", good);
    char *last = buf + strlen(buf) - 1;
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alpha, *last) - alpha);
    *last = alpha[v ^ 1];
    CHECK_WHY(k, buf, &at_now, "malformed signature");
    /* standard base64's alphabet is not base64url's */
    snprintf(buf, sizeof buf, "%s", good);
    buf[2] = '+';
    CHECK_WHY(k, buf, &at_now, "malformed token header");
    /* headers and claims that are not objects, nest too deep, repeat keys */
    char *t = forge("[\"HS256\"]", "{}", secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "malformed token header");
    free(t);
    t = forge("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "malformed token header");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "[1]", secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "malformed claims");
    free(t);
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"sub\":\"b\"}", secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "malformed claims");
    free(t);
    char deep[600] = "{\"a\":";
    for (int i = 0; i < 200; i++)
        strcat(deep, "[");
    t = forge("{\"alg\":\"HS256\"}", deep, secret32, 32, NULL);
    CHECK_WHY(k, t, &at_now, "malformed claims");
    free(t);
    /* too long */
    char *huge = malloc(40000);
    memset(huge, 'A', 39999);
    huge[39999] = '\0';
    huge[100] = '.';
    huge[200] = '.';
    CHECK_WHY(k, huge, &at_now, "token too long");
    free(huge);
    free(good);
    tern_jwt_keys_free(k);
}

static void jwt_reads_pem_forms_and_refuses_other_keys(void)
{
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    EVP_PKEY *rsa1k = gen_rsa(1024), *p384 = gen_ec("P-384");
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    char *priv = pem_of(rsa, PEM_PRIVATE), *pub = pem_of(rsa, PEM_PUBLIC), *pkcs1 = pem_of(rsa, PEM_RSA_PKCS1);
    CHECK(strstr(pkcs1, "BEGIN RSA PUBLIC KEY"));
    CHECK_EQ(tern_jwt_keys_add_pem(k, "priv", priv, strlen(priv)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "pub", pub, strlen(pub)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "pkcs1", pkcs1, strlen(pkcs1)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "pub", pub, strlen(pub)), -EEXIST);
    /* a certificate's key (self-signed here) */
    X509 *x = X509_new();
    CHECK(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, ec);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    CHECK(X509_sign(x, ec, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(PEM_write_bio_X509(b, x) == 1);
    char *certp;
    long certn = BIO_get_mem_data(b, &certp);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "cert", certp, (size_t)certn), 0);
    BIO_free(b);
    X509_free(x);
    /* a token signed by the private key verifies under each public form */
    char *tok;
    CHECK_EQ(tern_jwt_sign(k, "priv", "{\"sub\":\"x\"}", &tok), 0);
    tern_jwt_keys *only;
    const char *forms[] = {pub, pkcs1};
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(tern_jwt_keys_new(&only), 0);
        CHECK_EQ(tern_jwt_keys_add_pem(only, NULL, forms[i], strlen(forms[i])), 0);
        CHECK_WHY(only, tok, &at_now, NULL);
        tern_jwt_keys_free(only);
    }
    free(tok);
    /* and an ES256 token by the EC key under its certificate */
    char *ecpriv = pem_of(ec, PEM_PRIVATE);
    CHECK_EQ(tern_jwt_keys_new(&only), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(only, "cert", ecpriv, strlen(ecpriv)), 0);
    CHECK_EQ(tern_jwt_sign(only, "cert", "{\"sub\":\"x\"}", &tok), 0);
    tern_jwt_keys_free(only);
    CHECK_WHY(k, tok, &at_now, NULL);
    free(tok);
    free(ecpriv);
    /* what is refused */
    char *weak = pem_of(rsa1k, PEM_PUBLIC), *other = pem_of(p384, PEM_PUBLIC);
    CHECK_EQ(tern_jwt_keys_add_pem(k, NULL, weak, strlen(weak)), -ENOTSUP);
    CHECK_EQ(tern_jwt_keys_add_pem(k, NULL, other, strlen(other)), -ENOTSUP);
    CHECK_EQ(tern_jwt_keys_add_pem(k, NULL, "garbage", 7), -EINVAL);
    CHECK_EQ(tern_jwt_keys_add_pem(k, NULL, pub, 40), -EINVAL);    /* cut short */
    CHECK_EQ(tern_jwt_keys_count(k), 4);
    tern_jwt_keys_free(k);
    free(priv);
    free(pub);
    free(pkcs1);
    free(weak);
    free(other);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa1k);
    EVP_PKEY_free(p384);
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

static void make_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/tern-jwt-XXXXXX");
        CHECK(mkdtemp(tmpdir));
    }
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK_EQ(system(cmd), 0);
    tmpdir[0] = '\0';
}

static void jwt_loads_jwks(void)
{
    make_tmpdir();
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    char *jr = jwk_of(rsa, "r1", false), *je = jwk_of(ec, "e1", false);
    char oct[64];
    b64url((const unsigned char *)secret32, 32, oct);
    char *set = malloc(32768);
    snprintf(set, 32768,
             "{\"keys\":[%s,%s,{\"kty\":\"oct\",\"kid\":\"h1\",\"k\":\"%s\",\"alg\":\"HS256\"},"
             "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
             "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\",\"x\":\"AAAA\"},"
             "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p384\",\"x\":\"AAAA\",\"y\":\"AAAA\"},"
             "{\"kty\":\"oct\",\"kid\":\"hs512\",\"alg\":\"HS512\",\"k\":\"AAAA\"}]}",
             jr, je, oct);
    write_file("jwks.json", set);
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/jwks.json", tmpdir);
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_load_jwks_file(k, path, err, sizeof err), 0);
    CHECK_EQ(tern_jwt_keys_count(k), 3);
    /* tokens from the private halves verify under the JWKS's public keys */
    char *rpem = pem_of(rsa, PEM_PRIVATE), *epem = pem_of(ec, PEM_PRIVATE);
    tern_jwt_keys *signer;
    CHECK_EQ(tern_jwt_keys_new(&signer), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(signer, "r1", rpem, strlen(rpem)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(signer, "e1", epem, strlen(epem)), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(signer, "h1", secret32, 32), 0);
    const char *kids[] = {"r1", "e1", "h1"};
    for (int i = 0; i < 3; i++) {
        char *tok;
        CHECK_EQ(tern_jwt_sign(signer, kids[i], "{\"sub\":\"x\"}", &tok), 0);
        CHECK_WHY(k, tok, &at_now, NULL);
        free(tok);
    }
    tern_jwt_keys_free(signer);
    /* a private JWK signs, and its token verifies under the public one */
    char *jrp = jwk_of(rsa, "r1", true), *jep = jwk_of(ec, "e1", true);
    snprintf(set, 32768, "{\"keys\":[%s,%s]}", jrp, jep);
    CHECK_EQ(tern_jwt_keys_new(&signer), 0);
    CHECK_EQ(tern_jwt_keys_load_jwks(signer, set, strlen(set), err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        char *tok;
        CHECK_EQ(tern_jwt_sign(signer, kids[i], "{\"sub\":\"y\"}", &tok), 0);
        CHECK_WHY(k, tok, &at_now, NULL);
        free(tok);
    }
    tern_jwt_keys_free(signer);
    tern_jwt_keys_free(k);

    /* what a JWK Set may not be; each error names the key */
    struct {
        const char *text, *err;
        int rc;
    } bad[] = {
        {"not json", "not JSON", -EINVAL},
        {"{\"nokeys\":[]}", "no \"keys\" array", -EINVAL},
        {"{\"keys\":[]}", "no key for", -EINVAL},
        {"{\"keys\":[1]}", "keys[0]: not an object", -EINVAL},
        {"{\"keys\":[{\"k\":\"x\"}]}", "keys[0]: no \"kty\"", -EINVAL},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}", "keys[0].k: an HS256 secret needs 32 bytes", -EINVAL},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"a+b/\"}]}", "keys[0]: not a valid oct key", -EINVAL},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", "keys[0]: not a valid RSA key", -EINVAL},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", "keys[0]: an RSA key needs 2048", -EINVAL},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", "keys[0]: not a valid EC key",
         -EINVAL},
        {"{\"keys\":[{\"kty\":\"oct\",\"kid\":3,\"k\":\"AAAA\"}]}", "keys[0].kid: not a string", -EINVAL},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
         "nested too deep", -EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(tern_jwt_keys_new(&k), 0);
        err[0] = '\0';
        CHECK_EQ(tern_jwt_keys_load_jwks(k, bad[i].text, strlen(bad[i].text), err, sizeof err), bad[i].rc);
        if (!strstr(err, bad[i].err)) {
            fprintf(stderr, "case %zu: err \"%s\", expected \"%s\"\n", i, err, bad[i].err);
            abort();
        }
        tern_jwt_keys_free(k);
    }
    /* an EC point off the curve: y nudged */
    unsigned char pt[65];
    size_t len;
    CHECK(EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len) == 1);
    pt[64] ^= 1;
    char x[64], y[64];
    b64url(pt + 1, 32, x);
    b64url(pt + 33, 32, y);
    snprintf(set, 32768, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", x, y);
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_load_jwks(k, set, strlen(set), err, sizeof err), -EINVAL);
    CHECK(strstr(err, "not a valid EC key"));
    /* a repeated kid */
    snprintf(set, 32768, "{\"keys\":[%s,%s]}", jr, jr);
    CHECK_EQ(tern_jwt_keys_load_jwks(k, set, strlen(set), err, sizeof err), -EEXIST);
    CHECK(strstr(err, "keys[1].kid: \"r1\" is already in the set"));
    tern_jwt_keys_free(k);
    /* a file that is not there */
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    snprintf(path, sizeof path, "%s/missing.json", tmpdir);
    CHECK_EQ(tern_jwt_keys_load_jwks_file(k, path, err, sizeof err), -ENOENT);
    CHECK(strstr(err, "missing.json"));
    /* a bad file's reason is prefixed with its name */
    write_file("bad.json", "{\"keys\":7}");
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    CHECK_EQ(tern_jwt_keys_load_jwks_file(k, path, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "bad.json: not a JWK Set"));
    tern_jwt_keys_free(k);
    free(jr);
    free(je);
    free(jrp);
    free(jep);
    free(rpem);
    free(epem);
    free(set);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    remove_tmpdir();
}

/* A JWK whose EC coordinate has its leading zero byte dropped (PyJWT's
 * to_jwk writes one key in 256 so; CI's cross-check met one) loads, and
 * verifies the key's tokens: keys are drawn until one has such a byte. */
static void jwt_loads_ec_coordinates_without_leading_zeros(void)
{
    EVP_PKEY *ec = NULL;
    unsigned char pt[65];
    size_t len = 0;
    for (int tries = 0; tries < 100000; tries++) {
        ec = gen_ec("P-256");
        CHECK(EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len) == 1);
        if (pt[1] == 0 || pt[33] == 0)
            break;
        EVP_PKEY_free(ec);
        ec = NULL;
    }
    CHECK(ec);
    size_t skip_x = pt[1] == 0 ? 1 : 0, skip_y = pt[1] == 0 ? 0 : 1;
    char x[64], y[64], set[512], err[256];
    b64url(pt + 1 + skip_x, 32 - skip_x, x);
    b64url(pt + 33 + skip_y, 32 - skip_y, y);
    snprintf(set, sizeof set, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"z\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             x, y);
    tern_jwt_keys *k, *signer;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    err[0] = '\0';
    if (tern_jwt_keys_load_jwks(k, set, strlen(set), err, sizeof err) != 0) {
        fprintf(stderr, "refused: %s\n%s\n", err, set);
        abort();
    }
    char *pem = pem_of(ec, PEM_PRIVATE), *tok;
    CHECK_EQ(tern_jwt_keys_new(&signer), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(signer, "z", pem, strlen(pem)), 0);
    CHECK_EQ(tern_jwt_sign(signer, "z", "{\"sub\":\"x\"}", &tok), 0);
    CHECK_WHY(k, tok, &at_now, NULL);
    free(tok);
    /* a coordinate longer than the curve's 32 bytes is refused */
    char big[80];
    unsigned char wide[33] = {1};
    memcpy(wide + 1, pt + 1, 32);
    b64url(wide, 33, big);
    snprintf(set, sizeof set, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}", big, y);
    tern_jwt_keys_free(k);
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_load_jwks(k, set, strlen(set), err, sizeof err), -EINVAL);
    CHECK(strstr(err, "not a valid EC key"));
    tern_jwt_keys_free(k);
    tern_jwt_keys_free(signer);
    free(pem);
    EVP_PKEY_free(ec);
}

/* PyJWT signs tokens that we verify, and verifies tokens that we sign,
 * with the same keys (PEM files) and each algorithm pinned on its side. */
static const char py_script[] =
    "import sys, jwt\n"
    "d = sys.argv[1]\n"
    "rd = lambda n: open(d + '/' + n).read()\n"
    "keys = {'HS256': (rd('hmac.txt'), rd('hmac.txt')), 'RS256': (rd('rsa.pem'), rd('rsa.pub')),\n"
    "        'ES256': (rd('ec.pem'), rd('ec.pub'))}\n"
    "claims = {'sub': 'py', 'iss': 'shop-users', 'aud': 'shop', 'exp': 4102444800, 'n': 7}\n"
    "if sys.argv[2] == 'jwks':\n"
    "    import json\n"
    "    from jwt.algorithms import RSAAlgorithm, ECAlgorithm, HMACAlgorithm\n"
    "    ks = []\n"
    "    for alg, cls in (('HS256', HMACAlgorithm), ('RS256', RSAAlgorithm), ('ES256', ECAlgorithm)):\n"
    "        a = cls(cls.SHA256)\n"
    "        j = json.loads(cls.to_jwk(a.prepare_key(keys[alg][1])))\n"
    "        j['kid'] = alg.lower()\n"
    "        ks.append(j)\n"
    "    print(json.dumps({'keys': ks}))\n"
    "elif sys.argv[2] == 'sign':\n"
    "    for alg, (priv, pub) in keys.items():\n"
    "        print(jwt.encode(claims, priv, algorithm=alg, headers={'kid': alg.lower()}))\n"
    "else:\n"
    "    for line in open(d + '/ours.txt'):\n"
    "        alg, tok = line.split()\n"
    "        c = jwt.decode(tok, keys[alg][1], algorithms=[alg], audience='shop', issuer='shop-users')\n"
    "        h = jwt.get_unverified_header(tok)\n"
    "        assert c['sub'] == 'tern' and c['n'] == 9 and h['alg'] == alg and h['kid'] == alg.lower(), (c, h)\n"
    "        print('ok', alg)\n";

static void jwt_cross_checks_with_pyjwt(void)
{
    if (system("/usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null") != 0) {
        fprintf(stderr, "skipped: python3-jwt (PyJWT with cryptography) is not installed\n");
        return;
    }
    make_tmpdir();
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    char *rp = pem_of(rsa, PEM_PRIVATE), *ru = pem_of(rsa, PEM_PUBLIC);
    char *ep = pem_of(ec, PEM_PRIVATE), *eu = pem_of(ec, PEM_PUBLIC);
    write_file("rsa.pem", rp);
    write_file("rsa.pub", ru);
    write_file("ec.pem", ep);
    write_file("ec.pub", eu);
    write_file("hmac.txt", secret32);
    write_file("x.py", py_script);
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "hs256", secret32, 32), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "rs256", rp, strlen(rp)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "es256", ep, strlen(ep)), 0);

    /* theirs, verified by us */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/x.py %s sign", tmpdir, tmpdir);
    FILE *p = popen(cmd, "r");
    CHECK(p);
    char line[4096];
    const char *auds[] = {"shop"};
    tern_jwt_verify_options o = {.issuer = "shop-users", .audiences = auds, .n_audiences = 1,
                                 .require_exp = true};
    int seen = 0;
    const char *algs[] = {"HS256", "RS256", "ES256"};
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        tern_jwt *t;
        const char *why = NULL;
        int rc = tern_jwt_verify(k, line, strlen(line), &o, &t, &why);
        if (rc != 0) {
            fprintf(stderr, "PyJWT's %s token refused: %s\n", algs[seen], why);
            abort();
        }
        CHECK(strcmp(tern_jwt_alg(t), algs[seen]) == 0);
        CHECK(strcmp(tern_jwt_claim_string(t, "sub"), "py") == 0);
        int64_t n;
        CHECK_EQ(tern_jwt_claim_int(t, "n", &n), 0);
        CHECK_EQ(n, 7);
        tern_jwt_free(t);
        seen++;
    }
    CHECK_EQ(pclose(p), 0);
    CHECK_EQ(seen, 3);

    /* their JWK Set of the same keys (PyJWT's to_jwk) verifies their
     * tokens too */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/x.py %s jwks", tmpdir, tmpdir);
    p = popen(cmd, "r");
    CHECK(p);
    static char jwks[16384];
    size_t jn = fread(jwks, 1, sizeof jwks - 1, p);
    CHECK_EQ(pclose(p), 0);
    tern_jwt_keys *theirs;
    CHECK_EQ(tern_jwt_keys_new(&theirs), 0);
    char err[256] = "";
    if (tern_jwt_keys_load_jwks(theirs, jwks, jn, err, sizeof err) != 0) {
        fprintf(stderr, "PyJWT's JWK Set refused: %s\n%.*s\n", err, (int)jn, jwks);
        abort();
    }
    CHECK_EQ(tern_jwt_keys_count(theirs), 3);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/x.py %s sign", tmpdir, tmpdir);
    p = popen(cmd, "r");
    CHECK(p);
    seen = 0;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        CHECK_EQ(tern_jwt_verify(theirs, line, strlen(line), &o, NULL, NULL), 0);
        seen++;
    }
    CHECK_EQ(pclose(p), 0);
    CHECK_EQ(seen, 3);
    tern_jwt_keys_free(theirs);

    /* ours, verified by them */
    char path[256];
    snprintf(path, sizeof path, "%s/ours.txt", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f);
    const char *kids[] = {"hs256", "rs256", "es256"};
    for (int i = 0; i < 3; i++) {
        char *tok;
        CHECK_EQ(tern_jwt_sign(k, kids[i],
                               "{\"sub\":\"tern\",\"iss\":\"shop-users\",\"aud\":[\"shop\"],"
                               "\"exp\":4102444800,\"n\":9}",
                               &tok),
                 0);
        fprintf(f, "%s %s\n", algs[i], tok);
        free(tok);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/x.py %s verify", tmpdir, tmpdir);
    p = popen(cmd, "r");
    CHECK(p);
    seen = 0;
    while (fgets(line, sizeof line, p)) {
        char expect[32];
        snprintf(expect, sizeof expect, "ok %s\n", algs[seen]);
        CHECK(strcmp(line, expect) == 0);
        seen++;
    }
    CHECK_EQ(pclose(p), 0);
    CHECK_EQ(seen, 3);
    tern_jwt_keys_free(k);
    free(rp);
    free(ru);
    free(ep);
    free(eu);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    remove_tmpdir();
}

/* A key set is read-only once built: threads verify and sign with it at
 * once (each HS256 use copies the key's MAC context; each RS256/ES256 use
 * makes its own digest context).  Run under TSan to see it. */
typedef struct shared {
    tern_jwt_keys *k;
    char *toks[3];
    int failures;
} shared;

static void *hammer(void *arg)
{
    shared *sh = arg;
    const char *kids[] = {"h", "r", "e"};
    for (int i = 0; i < 300; i++) {
        const char *tok = sh->toks[i % 3];
        tern_jwt *t;
        if (tern_jwt_verify(sh->k, tok, strlen(tok), &at_now, &t, NULL) != 0 ||
            strcmp(tern_jwt_claim_string(t, "sub"), "alice") != 0)
            __atomic_add_fetch(&sh->failures, 1, __ATOMIC_RELAXED);
        else
            tern_jwt_free(t);
        if (i % 30 == 0) {
            char *mine;
            if (tern_jwt_sign(sh->k, kids[i % 3], "{\"sub\":\"alice\"}", &mine) != 0 ||
                tern_jwt_verify(sh->k, mine, strlen(mine), &at_now, NULL, NULL) != 0)
                __atomic_add_fetch(&sh->failures, 1, __ATOMIC_RELAXED);
            free(mine);
        }
    }
    return NULL;
}

static void jwt_verifies_from_many_threads_at_once(void)
{
    EVP_PKEY *rsa = gen_rsa(2048), *ec = gen_ec("P-256");
    char *rp = pem_of(rsa, PEM_PRIVATE), *ep = pem_of(ec, PEM_PRIVATE);
    shared sh = {0};
    CHECK_EQ(tern_jwt_keys_new(&sh.k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(sh.k, "h", secret32, 32), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(sh.k, "r", rp, strlen(rp)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(sh.k, "e", ep, strlen(ep)), 0);
    const char *kids[] = {"h", "r", "e"};
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tern_jwt_sign(sh.k, kids[i], "{\"sub\":\"alice\"}", &sh.toks[i]), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, hammer, &sh), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_join(th[i], NULL), 0);
    CHECK_EQ(sh.failures, 0);
    for (int i = 0; i < 3; i++)
        free(sh.toks[i]);
    tern_jwt_keys_free(sh.k);
    free(rp);
    free(ep);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

/* An HS256 key is keyed at its first use, not when added: threads that
 * all use a fresh key for the first time at once each key it, one context
 * is kept (the others freed: ASan sees a leak), and every one signs and
 * verifies with it.  Run under TSan to see the race. */
typedef struct first_use {
    tern_jwt_keys *fresh, *other;
    const char *tok;
    pthread_barrier_t start;
    int failures;
} first_use;

static void *first_user(void *arg)
{
    first_use *fu = arg;
    pthread_barrier_wait(&fu->start);
    char *mine = NULL;
    if (tern_jwt_verify(fu->fresh, fu->tok, strlen(fu->tok), &at_now, NULL, NULL) != 0 ||
        tern_jwt_sign(fu->fresh, "h", "{\"sub\":\"bob\"}", &mine) != 0 ||
        tern_jwt_verify(fu->other, mine, strlen(mine), &at_now, NULL, NULL) != 0)
        __atomic_add_fetch(&fu->failures, 1, __ATOMIC_RELAXED);
    free(mine);
    return NULL;
}

static void jwt_hmac_key_is_keyed_once_at_first_use_from_many_threads(void)
{
    enum { N = 8 };
    for (int round = 0; round < 300; round++) {
        first_use fu = {0};
        CHECK_EQ(tern_jwt_keys_new(&fu.fresh), 0);
        CHECK_EQ(tern_jwt_keys_new(&fu.other), 0);
        CHECK_EQ(tern_jwt_keys_add_hmac(fu.fresh, "h", secret32, 32), 0);
        CHECK_EQ(tern_jwt_keys_add_hmac(fu.other, "h", secret32, 32), 0);
        char *tok;
        CHECK_EQ(tern_jwt_sign(fu.other, "h", "{\"sub\":\"alice\"}", &tok), 0);
        fu.tok = tok;
        CHECK_EQ(pthread_barrier_init(&fu.start, NULL, N), 0);
        pthread_t th[N];
        for (int i = 0; i < N; i++)
            CHECK_EQ(pthread_create(&th[i], NULL, first_user, &fu), 0);
        for (int i = 0; i < N; i++)
            CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(fu.failures, 0);
        pthread_barrier_destroy(&fu.start);
        free(tok);
        tern_jwt_keys_free(fu.fresh);
        tern_jwt_keys_free(fu.other);
    }
}

TESTS(T(jwt_signs_and_verifies_with_each_alg), T(jwt_refuses_alg_none_and_unknown_algs),
      T(jwt_refuses_hs256_keyed_with_an_rsa_public_key), T(jwt_checks_exp_nbf_iat_with_leeway),
      T(jwt_validity_is_the_interval_verify_accepts),
      T(jwt_checks_issuer_and_audience), T(jwt_selects_keys_by_kid), T(jwt_refuses_malformed_tokens),
      T(jwt_reads_pem_forms_and_refuses_other_keys), T(jwt_loads_jwks),
      T(jwt_loads_ec_coordinates_without_leading_zeros), T(jwt_cross_checks_with_pyjwt),
      T(jwt_hmac_key_is_keyed_once_at_first_use_from_many_threads),
      T(jwt_verifies_from_many_threads_at_once))
