/*
 * test_gateway_auth_e2e.c - JWT auth and rate limits through the whole
 * gateway (tern_gateway_handler behind a real server, a real upstream):
 * what a client sees (401 with WWW-Authenticate and the reason, 429 with
 * Retry-After) and what the upstream sees (the forwarded claims, and never
 * a client's own copy of those headers).
 */
#include "check.h"
#include "gateway_fixture.h"

#include <time.h>

#include <tern/jwt.h>

static const char secret[] = "an-e2e-secret-long-enough-for-hs256-use";

static char *bearer(tern_jwt_keys *k, const char *fmt, long long t)
{
    char claims[512], *tok;
    snprintf(claims, sizeof claims, fmt, t);
    CHECK_EQ(tern_jwt_sign(k, "users-1", claims, &tok), 0);
    char *h = malloc(strlen(tok) + 8);
    sprintf(h, "Bearer %s", tok);
    free(tok);
    return h;
}

static int e2e_entry(void *arg)
{
    (void)arg;
    upstream a = {0};
    upstream_start(&a, "a");
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "jwt:\n"
             "  hs256_secret_env: TERN_TEST_E2E_SECRET\n"
             "  issuer: shop-users\n"
             "  audiences: [shop]\n"
             "  leeway: 5s\n"
             "  forward_claims: {sub: X-User, role: X-Custom}\n"
             "upstreams:\n"
             "  a: {endpoints: [\"%s\"]}\n"
             "routes:\n"
             "  - match: {path: /private}\n"
             "    upstream: a\n"
             "    auth: required\n"
             "  - match: {path: /open}\n"
             "    upstream: a\n"
             "    auth: optional\n"
             "    ratelimit: {key: \"claim:sub\", rate: 2, per: 10s, burst: 2}\n",
             a.addr);
    gwsrv s;
    char err[256] = "";
    int rc = gw_start_text(&s, cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "gateway: %s\n", err);
        abort();
    }
    tern_jwt_keys *k;
    CHECK_EQ(tern_jwt_keys_new(&k), 0);
    CHECK_EQ(tern_jwt_keys_add_hmac(k, "users-1", secret, strlen(secret)), 0);
    long long now = (long long)time(NULL);
    const char *claims = "{\"sub\":\"alice\",\"role\":\"admin\",\"iss\":\"shop-users\",\"aud\":\"shop\",\"exp\":%lld}";
    char *alice = bearer(k, claims, now + 600);
    char *expired = bearer(k, claims, now - 60);
    char *bob = bearer(k, "{\"sub\":\"bob\",\"iss\":\"shop-users\",\"aud\":\"shop\",\"exp\":%lld}", now + 600);
    reply r;
    const char *keep[] = {"X-Seen-User", "X-Seen-Custom", "WWW-Authenticate", "Retry-After", NULL};

    /* required: none, a good one, an expired one */
    CHECK_EQ(gw_call(&s, "GET", "/private", NULL, NULL, keep, &r), 0);
    CHECK_EQ(r.status, 401);
    CHECK_STR(r.hdr[2], "Bearer");
    CHECK_HAS(r.body, "missing bearer token");
    CHECK_EQ(gw_call(&s, "GET", "/private", (const char *[]){"Authorization", alice, NULL}, NULL, keep, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.hdr[0], "alice");
    CHECK_STR(r.hdr[1], "admin");
    CHECK_EQ(gw_call(&s, "GET", "/private", (const char *[]){"Authorization", expired, NULL}, NULL, keep, &r), 0);
    CHECK_EQ(r.status, 401);
    CHECK_HAS(r.body, "token expired");
    /* a client's own X-User never reaches the upstream: not with no token,
     * not beside a token */
    CHECK_EQ(gw_call(&s, "GET", "/open", (const char *[]){"X-User", "root", "X-Custom", "x", NULL}, NULL, keep, &r),
             0);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.hdr[0], "");
    CHECK_STR(r.hdr[1], "");
    CHECK_EQ(gw_call(&s, "GET", "/private", (const char *[]){"Authorization", bob, "X-Custom", "admin", NULL}, NULL,
                     keep, &r),
             0);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.hdr[0], "bob");
    CHECK_STR(r.hdr[1], "");
    /* per-user limit: alice's two, then 429 with 5 s to wait; bob's own */
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(gw_call(&s, "GET", "/open", (const char *[]){"Authorization", alice, NULL}, NULL, keep, &r), 0);
        CHECK_EQ(r.status, 200);
    }
    CHECK_EQ(gw_call(&s, "GET", "/open", (const char *[]){"Authorization", alice, NULL}, NULL, keep, &r), 0);
    CHECK_EQ(r.status, 429);
    CHECK_STR(r.hdr[3], "5");
    CHECK_EQ(gw_call(&s, "GET", "/open", (const char *[]){"Authorization", bob, NULL}, NULL, keep, &r), 0);
    CHECK_EQ(r.status, 200);
    struct tern_gateway_stats st;
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.rejected_auth, 2);
    CHECK_EQ(st.rejected_limit, 1);
    free(alice);
    free(expired);
    free(bob);
    tern_jwt_keys_free(k);
    gw_stop(&s);
    upstream_stop(&a);
    return 0;
}

static void gateway_answers_401_and_429_and_forwards_only_verified_claims(void)
{
    setenv("TERN_TEST_E2E_SECRET", secret, 1);
    run_ok(e2e_entry, NULL, 2);
}

TESTS(T(gateway_answers_401_and_429_and_forwards_only_verified_claims))
