/*
 * test_gateway_auth.c - the gateway's JWT policy (src/gateway/auth.c)
 * called as the core calls it: a real tern HTTP server whose handler runs
 * tern__gw_auth_check on each request and answers with the verdict, the
 * subject and the forwarded claims; requests from tern's HTTP client with
 * tokens signed here (tern_jwt_sign) by keys the policy reads from a JWK
 * Set file and an environment variable.  Then the configuration errors,
 * each naming its key.
 */
#include "check.h"
#include "http_raw.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <time.h>

#include <tern/http_client.h>
#include <tern/jwt.h>

#include "gateway/policy.h"

static const char secret[] = "a-shared-secret-of-40-bytes-for-hs256!!!";

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

static char *pem_of(EVP_PKEY *k, bool priv)
{
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(b);
    CHECK((priv ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) : PEM_write_bio_PUBKEY(b, k)) == 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

/* A JWK Set of the public halves: the EC key as "e1", the RSA key as "r1". */
static char *jwks_of(EVP_PKEY *ec, EVP_PKEY *rsa)
{
    unsigned char pt[65];
    size_t len;
    CHECK(EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &len) == 1);
    char x[64], y[64], n[700], e[16];
    b64url(pt + 1, 32, x);
    b64url(pt + 33, 32, y);
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    CHECK(EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &bn) == 1);
    b64url(buf, (size_t)BN_bn2bin(bn, buf), n);
    BN_free(bn);
    bn = NULL;
    CHECK(EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &bn) == 1);
    b64url(buf, (size_t)BN_bn2bin(bn, buf), e);
    BN_free(bn);
    char *out = malloc(4096);
    snprintf(out, 4096,
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e1\",\"use\":\"sig\",\"x\":\"%s\",\"y\":\"%s\"},"
             "{\"kty\":\"RSA\",\"kid\":\"r1\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"}]}",
             x, y, n, e);
    return out;
}

/* ---- the server: one request, one verdict -------------------------------- */

static tern__gw_auth *policy;

/* 200 with "rc=<rc> why=<why> sub=<sub> fwd=<name>:<value>;..." */
static int verdict_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern__gw_fwd fwd = {0};
    const char *sub = NULL, *why = NULL;
    int rc = tern__gw_auth_check(policy, r, &fwd, &sub, &why);
    char body[2048];
    int n = snprintf(body, sizeof body, "rc=%d why=%s sub=%s fwd=", rc, rc == -EACCES ? why : "-",
                     sub ? sub : "-");
    for (size_t i = 0; i < fwd.n; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "%s:%s;", fwd.kv[2 * i], fwd.kv[2 * i + 1]);
    return tern_http_resp_text(w, 200, body);
}

static char *ask(tern_http_client *c, const char *url, const char *hname, const char *hvalue)
{
    const char *hdrs[] = {hname, hvalue, NULL};
    tern_http_client_request req = {.url = url, .headers = hname ? hdrs : NULL};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(c, &req, &resp, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(resp), 200);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 16, &body, &len), 0);
    char *s = strndup(body, len);
    tern_http_client_response_free(resp);
    return s;
}

#define CHECK_ASK(c, url, hname, hvalue, expected)                                       \
    do {                                                                                 \
        char *got_ = ask((c), (url), (hname), (hvalue));                                 \
        if (strcmp(got_, (expected)) != 0) {                                             \
            fprintf(stderr, "%s:%d: got \"%s\", expected \"%s\"\n", __FILE__, __LINE__,  \
                    got_, (expected));                                                   \
            abort();                                                                     \
        }                                                                                \
        free(got_);                                                                      \
    } while (0)

/* A token signed by kid's key in k, claims formatted with the time now. */
static char *token(tern_jwt_keys *k, const char *kid, const char *claims_fmt, long long t)
{
    char claims[1024];
    snprintf(claims, sizeof claims, claims_fmt, t);
    char *tok;
    CHECK_EQ(tern_jwt_sign(k, kid, claims, &tok), 0);
    return tok;
}

static char *bearer(const char *tok)
{
    char *h = malloc(strlen(tok) + 8);
    sprintf(h, "Bearer %s", tok);
    return h;
}

typedef struct fixture {
    EVP_PKEY *ec, *rsa;
    char *ec_pem, *rsa_pem, *rsa_pub;
} fixture;

static int check_entry(void *arg)
{
    fixture *fx = arg;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern__gw_env env = {.config_dir = tmpdir, .metrics = reg};
    json_t *cfg = json_loads("{\"jwks_file\": \"jwks.json\", \"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\","
                             " \"issuer\": \"shop-users\", \"audiences\": [\"shop\", \"admin\"],"
                             " \"leeway\": \"1m30s\", \"cookie\": \"session\","
                             " \"forward_claims\": {\"sub\": \"X-User-Id\", \"role\": \"X-User-Role\","
                             " \"n\": \"X-N\"}}",
                             0, NULL);
    CHECK(cfg);
    char err[256] = "";
    int rc = tern__gw_auth_new(cfg, &env, &policy, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "tern__gw_auth_new: %d %s\n", rc, err);
        abort();
    }
    json_decref(cfg);

    /* the signers: the private halves, and the shared secret without an id */
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "e1", fx->ec_pem, strlen(fx->ec_pem)), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(k, "r1", fx->rsa_pem, strlen(fx->rsa_pem)), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "hs", secret, strlen(secret)), 0);

    server sv = {0};
    server_start(&sv, (tern_http_link[]){{verdict_handler, NULL}}, 1);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char url[64];
    snprintf(url, sizeof url, "%s/x", sv.url);
    long long now = (long long)time(NULL);
    const char *good = "{\"sub\":\"alice\",\"role\":\"admin\",\"n\":7,\"iss\":\"shop-users\",\"aud\":\"shop\","
                       "\"exp\":%lld}";

    /* no token; a scheme that is not Bearer */
    CHECK_ASK(c, url, NULL, NULL, "rc=-2 why=- sub=- fwd=");
    CHECK_ASK(c, url, "Authorization", "Basic YWxpY2U6cHc=", "rc=-2 why=- sub=- fwd=");
    /* each algorithm, each place a token may be */
    char *t = token(k, "e1", good, now + 600), *h = bearer(t);
    CHECK_ASK(c, url, "Authorization", h, "rc=0 why=- sub=alice fwd=X-User-Id:alice;X-User-Role:admin;X-N:7;");
    free(h);
    free(t);
    t = token(k, "r1", good, now + 600);
    h = malloc(strlen(t) + 16);
    sprintf(h, "bearer   %s", t);       /* RFC 6750: the scheme in any case */
    CHECK_ASK(c, url, "Authorization", h, "rc=0 why=- sub=alice fwd=X-User-Id:alice;X-User-Role:admin;X-N:7;");
    free(h);
    free(t);
    /* the kid "hs" is not in the policy's set: the kid-less shared secret */
    t = token(k, "hs", "{\"sub\":\"bob\",\"iss\":\"shop-users\",\"aud\":[\"x\",\"admin\"],\"exp\":%lld}", now + 600);
    h = malloc(strlen(t) + 16);
    sprintf(h, "session=%s", t);
    CHECK_ASK(c, url, "Cookie", h, "rc=0 why=- sub=bob fwd=X-User-Id:bob;");
    free(h);
    free(t);
    CHECK_ASK(c, url, "Authorization", "Bearer", "rc=-13 why=empty bearer token sub=- fwd=");

    /* refusals, each with its reason */
    struct {
        const char *kid, *claims;
        long long t;
        const char *expected;
    } cases[] = {
        {"e1", good, now - 60, "rc=0 why=- sub=alice fwd=X-User-Id:alice;X-User-Role:admin;X-N:7;"},   /* leeway */
        {"e1", good, now - 100, "rc=-13 why=token expired sub=- fwd="},
        {"e1", "{\"sub\":\"alice\",\"iss\":\"shop-users\",\"aud\":\"shop\",\"nbf\":%lld,\"exp\":9999999999}",
         now + 600, "rc=-13 why=token not yet valid sub=- fwd="},
        {"e1", "{\"sub\":\"alice\",\"iss\":\"shop-users\",\"aud\":\"other\",\"exp\":%lld}", now + 600,
         "rc=-13 why=wrong audience sub=- fwd="},
        {"e1", "{\"sub\":\"alice\",\"iss\":\"evil\",\"aud\":\"shop\",\"exp\":%lld}", now + 600,
         "rc=-13 why=wrong issuer sub=- fwd="},
        {"e1", "{\"sub\":\"alice\",\"iss\":\"shop-users\",\"aud\":\"shop\",\"iat\":%lld}", now,
         "rc=-13 why=token has no exp sub=- fwd="},
        /* a claim that would split a header is not forwarded; the rest is */
        {"e1", "{\"sub\":\"eve\",\"role\":\"a\\r\\nX-Admin: 1\",\"iss\":\"shop-users\",\"aud\":\"shop\",\"exp\":%lld}",
         now + 600, "rc=0 why=- sub=eve fwd=X-User-Id:eve;"},
        /* non-string claims are forwarded as JSON */
        {"e1", "{\"sub\":\"al\",\"role\":[\"a\",\"b\"],\"n\":true,\"iss\":\"shop-users\",\"aud\":\"shop\",\"exp\":%lld}",
         now + 600, "rc=0 why=- sub=al fwd=X-User-Id:al;X-User-Role:[\"a\",\"b\"];X-N:true;"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t = token(k, cases[i].kid, cases[i].claims, cases[i].t);
        h = bearer(t);
        CHECK_ASK(c, url, "Authorization", h, cases[i].expected);
        free(h);
        free(t);
    }

    /* forged tokens: alg none, and HS256 keyed with the RSA public key */
    char hdr[128], cl[256], tok[2048], mac64[64];
    snprintf(cl, sizeof cl, "{\"sub\":\"admin\",\"iss\":\"shop-users\",\"aud\":\"shop\",\"exp\":%lld}", now + 600);
    char h64[256], c64[512];
    b64url((const unsigned char *)"{\"alg\":\"none\"}", 14, h64);
    b64url((const unsigned char *)cl, strlen(cl), c64);
    snprintf(tok, sizeof tok, "Bearer %s.%s.", h64, c64);
    CHECK_ASK(c, url, "Authorization", tok, "rc=-13 why=alg none refused sub=- fwd=");
    snprintf(hdr, sizeof hdr, "{\"alg\":\"HS256\",\"kid\":\"r1\"}");
    b64url((const unsigned char *)hdr, strlen(hdr), h64);
    char input[1024];
    int in = snprintf(input, sizeof input, "%s.%s", h64, c64);
    unsigned char mac[32];
    unsigned maclen = 0;
    CHECK(HMAC(EVP_sha256(), fx->rsa_pub, (int)strlen(fx->rsa_pub), (unsigned char *)input, (size_t)in, mac,
               &maclen));
    b64url(mac, maclen, mac64);
    snprintf(tok, sizeof tok, "Bearer %s.%s", input, mac64);
    CHECK_ASK(c, url, "Authorization", tok, "rc=-13 why=alg does not match the key sub=- fwd=");
    /* a key the gateway does not know, under a known kid */
    EVP_PKEY *stranger = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *spem = pem_of(stranger, true);
    tern_jwt_keys *sk;
    CHECK_EQ(tern_jwt_keys_new(&sk), 0);
    CHECK_EQ(tern_jwt_keys_add_pem(sk, "e1", spem, strlen(spem)), 0);
    t = token(sk, "e1", good, now + 600);
    h = bearer(t);
    CHECK_ASK(c, url, "Authorization", h, "rc=-13 why=bad signature sub=- fwd=");
    free(h);
    free(t);
    tern_jwt_keys_free(sk);
    free(spem);
    EVP_PKEY_free(stranger);
    CHECK_ASK(c, url, "Authorization", "Bearer not.a.token", "rc=-13 why=malformed token header sub=- fwd=");

    server_stop(&sv);
    tern_http_client_free(c);
    tern_jwt_keys_free(k);
    tern__gw_auth_free(policy);
    policy = NULL;
    tern_metrics_registry_free(reg);
    return 0;
}

static void auth_check_verifies_tokens_from_header_and_cookie(void)
{
    fixture fx = {0};
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tern-gwauth-XXXXXX");
    CHECK(mkdtemp(tmpdir));
    fx.ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    fx.rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    CHECK(fx.ec && fx.rsa);
    fx.ec_pem = pem_of(fx.ec, true);
    fx.rsa_pem = pem_of(fx.rsa, true);
    fx.rsa_pub = pem_of(fx.rsa, false);
    char *set = jwks_of(fx.ec, fx.rsa);
    write_file("jwks.json", set);
    free(set);
    setenv("TERN_TEST_JWT_SECRET", secret, 1);
    run_test(check_entry, &fx);
    free(fx.ec_pem);
    free(fx.rsa_pem);
    free(fx.rsa_pub);
    EVP_PKEY_free(fx.ec);
    EVP_PKEY_free(fx.rsa);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK_EQ(system(cmd), 0);
}

/* ---- configuration errors ------------------------------------------------- */

static int config_entry(void *arg)
{
    (void)arg;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern__gw_env env = {.config_dir = tmpdir, .metrics = reg};
    setenv("TERN_TEST_JWT_SECRET", secret, 1);
    setenv("TERN_TEST_JWT_SHORT", "too-short", 1);
    unsetenv("TERN_TEST_JWT_UNSET");
    struct {
        const char *cfg, *err;
    } cases[] = {
        {"[]", "jwt: must be an object"},
        {"{}", "jwt: needs jwks_file or hs256_secret_env"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"isuser\": \"x\"}", "jwt.isuser: unknown key"},
        {"{\"jwks_file\": \"missing.json\"}", "jwt.jwks_file: "},
        {"{\"jwks_file\": \"bad.json\"}", "jwt.jwks_file: "},
        {"{\"jwks_file\": 7}", "jwt.jwks_file: must be a file name"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_UNSET\"}", "jwt.hs256_secret_env: TERN_TEST_JWT_UNSET is not set"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SHORT\"}",
         "jwt.hs256_secret_env: TERN_TEST_JWT_SHORT holds 9 bytes, HS256 needs 32 or more"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"issuer\": 1}", "jwt.issuer: must be a string"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"audiences\": [\"a\", 2]}",
         "jwt.audiences[1]: must be a string"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"audiences\": []}", "jwt.audiences: must be a list"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"leeway\": \"30 s\"}", "jwt.leeway: must be a duration"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"leeway\": \"5d\"}", "jwt.leeway: must be a duration"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"leeway\": -1}", "jwt.leeway: must be a duration"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"cookie\": \"a b\"}", "jwt.cookie: must be a cookie name"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"require_exp\": \"no\"}",
         "jwt.require_exp: must be true or false"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"forward_claims\": {\"sub\": \"X User\"}}",
         "jwt.forward_claims.sub: must be a header name"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"forward_claims\": [\"sub\"]}",
         "jwt.forward_claims: must map claims to header names"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"token_cache\": -1}",
         "jwt.token_cache: must be a number of tokens from 0 to"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"token_cache\": \"64\"}",
         "jwt.token_cache: must be a number of tokens from 0 to"},
        {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"token_cache\": 2000000}",
         "jwt.token_cache: must be a number of tokens from 0 to"},
    };
    write_file("bad.json", "{\"keys\": 1}");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *cfg = json_loads(cases[i].cfg, JSON_DECODE_ANY, NULL);
        CHECK(cfg);
        char err[256] = "";
        tern__gw_auth *a = (tern__gw_auth *)1;
        CHECK_EQ(tern__gw_auth_new(cfg, &env, &a, err, sizeof err), -EINVAL);
        CHECK(a == NULL);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0) {
            fprintf(stderr, "case %zu: err \"%s\", expected \"%s...\"\n", i, err, cases[i].err);
            abort();
        }
        json_decref(cfg);
    }
    /* the file's own problem is in the sentence too */
    json_t *cfg = json_loads("{\"jwks_file\": \"missing.json\"}", 0, NULL);
    char err[256];
    tern__gw_auth *a;
    CHECK_EQ(tern__gw_auth_new(cfg, &env, &a, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "missing.json") && strstr(err, "No such file"));
    json_decref(cfg);
    /* durations in Go's syntax and in ns; a secret alone is enough */
    const char *ok[] = {"{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"leeway\": \"1.5s\"}",
                        "{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"leeway\": \"1h2m3s4ms5us6ns\"}",
                        "{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"leeway\": 30000000000}",
                        "{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"audiences\": \"shop\"}"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cfg = json_loads(ok[i], 0, NULL);
        CHECK_EQ(tern__gw_auth_new(cfg, &env, &a, err, sizeof err), 0);
        tern__gw_auth_free(a);
        json_decref(cfg);
    }
    tern__gw_auth_free(NULL);
    tern_metrics_registry_free(reg);
    return 0;
}

static void auth_new_names_the_key_in_each_error(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tern-gwauth-XXXXXX");
    CHECK(mkdtemp(tmpdir));
    run_test(config_entry, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK_EQ(system(cmd), 0);
}

/* ---- the verified-token cache ---------------------------------------------- */

#define SEC 1000000000LL

static void set_policy(const char *cfg_text, tern__gw_env *env)
{
    json_t *cfg = json_loads(cfg_text, 0, NULL);
    CHECK(cfg);
    char err[256] = "";
    int rc = tern__gw_auth_new(cfg, env, &policy, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "tern__gw_auth_new: %d %s\n", rc, err);
        abort();
    }
    json_decref(cfg);
}

static void check_stats(size_t entries, uint64_t hits)
{
    size_t e;
    uint64_t h;
    tern__gw_auth_cache_stats(policy, &e, &h);
    if (e != entries || h != hits) {
        fprintf(stderr, "cache: %zu entries, %llu hits; expected %zu, %llu\n", e, (unsigned long long)h, entries,
                (unsigned long long)hits);
        abort();
    }
}

static int cache_entry(void *arg)
{
    (void)arg;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern__gw_env env = {.metrics = reg};
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, secret, strlen(secret)), 0);
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{verdict_handler, NULL}}, 1);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char url[64];
    snprintf(url, sizeof url, "%s/x", sv.url);
    const long long t0 = 2000000000;        /* the policy's clock, s */
    const char *ok = "rc=0 why=- sub=alice fwd=X-User-Id:alice;X-Role:admin;";

    /* a token is verified once and answered from the cache until exp
     * plus the leeway, then refused as verification refuses it */
    set_policy("{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"leeway\": \"10s\","
               " \"forward_claims\": {\"sub\": \"X-User-Id\", \"role\": \"X-Role\"}}",
               &env);
    tern__gw_auth_set_clock(policy, t0 * SEC);
    char *t = token(k, NULL, "{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":%lld}", t0 + 100);
    char *h = bearer(t);
    CHECK_ASK(c, url, "Authorization", h, ok);
    check_stats(1, 0);
    CHECK_ASK(c, url, "Authorization", h, ok);
    CHECK_ASK(c, url, "Authorization", h, ok);
    check_stats(1, 2);
    tern__gw_auth_set_clock(policy, (t0 + 110) * SEC - 1);     /* the last ns of the leeway */
    CHECK_ASK(c, url, "Authorization", h, ok);
    check_stats(1, 3);
    tern__gw_auth_set_clock(policy, (t0 + 110) * SEC);
    CHECK_ASK(c, url, "Authorization", h, "rc=-13 why=token expired sub=- fwd=");
    check_stats(0, 3);          /* the expired entry is dropped */
    free(h);
    free(t);
    /* the same bytes with a changed signature are another token, checked
     * afresh (and refused) */
    tern__gw_auth_set_clock(policy, t0 * SEC);
    t = token(k, NULL, "{\"sub\":\"alice\",\"role\":\"admin\",\"exp\":%lld}", t0 + 100);
    h = bearer(t);
    CHECK_ASK(c, url, "Authorization", h, ok);
    check_stats(1, 3);
    char *last = h + strlen(h) - 2;         /* a signature character, not the last (its spare bits) */
    *last = *last == 'A' ? 'B' : 'A';
    CHECK_ASK(c, url, "Authorization", h, "rc=-13 why=bad signature sub=- fwd=");
    check_stats(1, 3);
    free(h);
    free(t);
    /* nbf: not cached while refused; once valid, the cache still refuses
     * it for a clock set back before nbf minus the leeway */
    t = token(k, NULL, "{\"sub\":\"alice\",\"role\":\"admin\",\"nbf\":%lld,\"exp\":9999999999}", t0 + 50);
    h = bearer(t);
    CHECK_ASK(c, url, "Authorization", h, "rc=-13 why=token not yet valid sub=- fwd=");
    check_stats(1, 3);
    tern__gw_auth_set_clock(policy, (t0 + 40) * SEC);
    CHECK_ASK(c, url, "Authorization", h, ok);
    CHECK_ASK(c, url, "Authorization", h, ok);
    check_stats(2, 4);
    tern__gw_auth_set_clock(policy, (t0 + 40) * SEC - 1);
    CHECK_ASK(c, url, "Authorization", h, "rc=-13 why=token not yet valid sub=- fwd=");
    check_stats(2, 4);
    free(h);
    free(t);
    tern__gw_auth_free(policy);

    /* bounded: 8 entries whatever the number of tokens, each token still
     * answered with its own claims */
    set_policy("{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"token_cache\": 8,"
               " \"forward_claims\": {\"sub\": \"X-User-Id\"}}",
               &env);
    tern__gw_auth_set_clock(policy, t0 * SEC);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 40; i++) {
            char claims[128], expected[128];
            snprintf(claims, sizeof claims, "{\"sub\":\"u%d\",\"exp\":%%lld}", i);
            snprintf(expected, sizeof expected, "rc=0 why=- sub=u%d fwd=X-User-Id:u%d;", i, i);
            t = token(k, NULL, claims, t0 + 100);
            h = bearer(t);
            CHECK_ASK(c, url, "Authorization", h, expected);
            CHECK_ASK(c, url, "Authorization", h, expected);   /* just entered: a hit */
            free(h);
            free(t);
        }
    size_t entries;
    uint64_t hits;
    tern__gw_auth_cache_stats(policy, &entries, &hits);
    CHECK(entries > 0 && entries <= 8);
    CHECK(hits >= 80);
    tern__gw_auth_free(policy);

    /* token_cache: 0 verifies every time */
    set_policy("{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\", \"token_cache\": 0}", &env);
    t = token(k, NULL, "{\"sub\":\"bob\",\"exp\":%lld}", (long long)time(NULL) + 100);
    h = bearer(t);
    CHECK_ASK(c, url, "Authorization", h, "rc=0 why=- sub=bob fwd=");
    CHECK_ASK(c, url, "Authorization", h, "rc=0 why=- sub=bob fwd=");
    check_stats(0, 0);
    free(h);
    free(t);
    tern__gw_auth_free(policy);
    policy = NULL;

    server_stop(&sv);
    tern_http_client_free(c);
    tern_jwt_keys_free(k);
    tern_metrics_registry_free(reg);
    return 0;
}

static void auth_cache_answers_a_token_while_it_would_verify(void)
{
    setenv("TERN_TEST_JWT_SECRET", secret, 1);
    run_test(cache_entry, NULL);
}

/* ---- a rate limit keyed by a claim other than sub --------------------------- */

static tern__gw_limit *limiter;

/* as the core: the token first, then the limit; 200, 401 or 429 */
static int auth_then_limit(tern_http_req *r, tern_http_resp *w, void *arg)
{
    if (!limiter)       /* none yet: the verdict alone */
        return verdict_handler(r, w, arg);
    tern__gw_fwd fwd = {0};
    const char *sub = NULL, *why = NULL;
    int rc = tern__gw_auth_check(policy, r, &fwd, &sub, &why);
    if (rc == -EACCES)
        return tern_http_resp_text(w, 401, why);
    int64_t ra;
    rc = tern__gw_limit_take(limiter, r, sub, &ra, tern_http_req_ctx(r));
    return tern_http_resp_text(w, rc == 0 ? 200 : 429, rc == 0 ? "ok" : "limited");
}

static int status_of(tern_http_client *c, const char *url, const char *auth)
{
    const char *hdrs[] = {"Authorization", auth, NULL};
    tern_http_client_request req = {.url = url, .headers = auth ? hdrs : NULL};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(c, &req, &resp, NULL), 0);
    int status = tern_http_client_response_status(resp);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 16, &body, &len), 0);
    tern_http_client_response_free(resp);
    return status;
}

static int claim_key_entry(void *arg)
{
    (void)arg;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern__gw_env env = {.metrics = reg};
    json_t *cfg = json_loads("{\"hs256_secret_env\": \"TERN_TEST_JWT_SECRET\"}", 0, NULL);
    char err[256] = "";
    CHECK_EQ(tern__gw_auth_new(cfg, &env, &policy, err, sizeof err), 0);
    json_decref(cfg);
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, NULL, secret, strlen(secret)), 0);
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{auth_then_limit, NULL}}, 1);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char url[64];
    snprintf(url, sizeof url, "%s/x", sv.url);
    long long exp = (long long)time(NULL) + 600;
    char *a1 = token(k, NULL, "{\"sub\":\"a\",\"tenant\":\"t1\",\"exp\":%lld}", exp);
    char *b1 = token(k, NULL, "{\"sub\":\"b\",\"tenant\":\"t1\",\"exp\":%lld}", exp);
    char *c2 = token(k, NULL, "{\"sub\":\"c\",\"tenant\":2,\"exp\":%lld}", exp);
    char *none = token(k, NULL, "{\"sub\":\"d\",\"exp\":%lld}", exp);
    char *ha1 = bearer(a1), *hb1 = bearer(b1), *hc2 = bearer(c2), *hnone = bearer(none);
    /* a1 verified and cached before any limiter wanted claims (when this
     * test runs first in its process): the cache must not answer it
     * without them once they are wanted */
    CHECK_ASK(c, url, "Authorization", ha1, "rc=0 why=- sub=a fwd=");
    cfg = json_loads("{\"key\": \"claim:tenant\", \"rate\": 1, \"per\": \"1m\", \"burst\": 1}", 0, NULL);
    CHECK_EQ(tern__gw_limit_new(cfg, &env, &limiter, err, sizeof err), 0);
    json_decref(cfg);
    /* one bucket per tenant, whoever the user */
    CHECK_EQ(status_of(c, url, ha1), 200);
    CHECK_EQ(status_of(c, url, hb1), 429);
    CHECK_EQ(status_of(c, url, hc2), 200);      /* a number is a tenant too */
    CHECK_EQ(status_of(c, url, hc2), 429);
    /* without the claim, or without a token: the client's IP */
    CHECK_EQ(status_of(c, url, hnone), 200);
    CHECK_EQ(status_of(c, url, NULL), 429);
    server_stop(&sv);
    tern_http_client_free(c);
    free(a1), free(b1), free(c2), free(none), free(ha1), free(hb1), free(hc2), free(hnone);
    tern_jwt_keys_free(k);
    tern__gw_limit_free(limiter);
    limiter = NULL;
    tern__gw_auth_free(policy);
    policy = NULL;
    tern_metrics_registry_free(reg);
    return 0;
}

static void limit_keys_by_a_claim_the_auth_policy_verified(void)
{
    setenv("TERN_TEST_JWT_SECRET", secret, 1);
    run_test(claim_key_entry, NULL);
}

TESTS(T(limit_keys_by_a_claim_the_auth_policy_verified), T(auth_check_verifies_tokens_from_header_and_cookie),
      T(auth_new_names_the_key_in_each_error), T(auth_cache_answers_a_token_while_it_would_verify))
