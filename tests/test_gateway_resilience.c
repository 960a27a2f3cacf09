/*
 * test_gateway_resilience.c - retries, circuit breakers and outlier
 * ejection with failures injected into real upstreams: a 503 retried
 * once succeeds, a POST is never retried, a refused connection is retried
 * on another endpoint, a dead endpoint is ejected after its first failure,
 * and a breaker opens after enough failures and stops the calls.
 */
#include "check.h"
#include "gateway_fixture.h"

static upstream A;

static void start(gwsrv *s, const char *fmt, const char *a1, const char *a2)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg, fmt, a1, a2);
    char err[512];
    int rc = gw_start_text(s, cfg, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "gateway: %s\n", err);
    CHECK_EQ(rc, 0);
}

static void dead_addr(char *out, size_t n)
{
    upstream d = {0};
    upstream_start(&d, "dead");
    snprintf(out, n, "%s", d.addr);
    upstream_stop(&d);
}

static int retry_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    gwsrv s;
    start(&s,
          "upstreams: {a: {endpoints: [\"%s\"]}}\n"
          "routes:\n"
          "  - match: {prefix: /}\n"
          "    upstream: a\n"
          "    retries: {attempts: 2, on: [503]}\n%s",
          A.addr, "");
    reply r;
    atomic_store(&A.fail_next, 1);
    CHECK_EQ(gw_get(&s, "/x", &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(atomic_load(&A.hits), 2);
    /* two failures: the second answer goes back as it is */
    atomic_store(&A.fail_next, 2);
    CHECK_EQ(gw_get(&s, "/x", &r), 0);
    CHECK_EQ(r.status, 503);
    CHECK_EQ(atomic_load(&A.hits), 4);
    /* POST is not idempotent: no retry */
    atomic_store(&A.fail_next, 1);
    CHECK_EQ(gw_call(&s, "POST", "/x", NULL, "{}", NULL, &r), 0);
    CHECK_EQ(r.status, 503);
    CHECK_EQ(atomic_load(&A.hits), 5);
    atomic_store(&A.fail_next, 0);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void retries_503_for_idempotent_methods_only(void) { run_ok(retry_main, NULL, 2); }

static int budget_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    gwsrv s;
    start(&s,
          "upstreams: {a: {endpoints: [\"%s\"], outlier: {disabled: true}}}\n"
          "routes:\n"
          "  - match: {prefix: /}\n"
          "    upstream: a\n"
          "    retries: {attempts: 5, on: [503]}\n%s",
          A.addr, "");
    /* an outage: every answer 503.  Unbounded, 200 requests would make
     * 1000 calls; the budget allows 20% more plus a reserve of 10 a second */
    atomic_store(&A.fail_next, 1 << 30);
    int64_t t0 = tern_now();
    for (int i = 0; i < 200; i++) {
        reply r;
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        CHECK_EQ(r.status, 503);
    }
    double secs = (double)(tern_now() - t0) / 1e9;
    int hits = atomic_load(&A.hits);
    fprintf(stderr, "   200 requests in %.2f s made %d calls\n", secs, hits);
    CHECK(hits >= 200 + 40);
    CHECK(hits <= 200 + 40 + 10 + (int)(10 * secs) + 5);
    atomic_store(&A.fail_next, 0);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void retries_stay_within_the_budget(void) { run_ok(budget_main, NULL, 2); }

static int connect_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    char dead[64];
    dead_addr(dead, sizeof dead);
    gwsrv s;
    start(&s,
          "upstreams:\n"
          "  a:\n"
          "    endpoints: [\"%s\", \"%s\"]\n"
          "    policy: round_robin\n"
          "    outlier: {disabled: true}\n"
          "routes:\n"
          "  - match: {prefix: /}\n"
          "    upstream: a\n"
          "    retries: {attempts: 2, on: [connect]}\n",
          dead, A.addr);
    for (int i = 0; i < 10; i++) {
        reply r;
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        CHECK_EQ(r.status, 200);
    }
    CHECK_EQ(atomic_load(&A.hits), 10);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void refused_connection_retried_on_another_endpoint(void) { run_ok(connect_main, NULL, 2); }

static int eject_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    char dead[64];
    dead_addr(dead, sizeof dead);
    gwsrv s;
    start(&s,
          "upstreams:\n"
          "  a:\n"
          "    endpoints: [\"%s\", \"%s\"]\n"
          "    policy: round_robin\n"
          "    outlier: {consecutive_failures: 1, base_ejection_time: 30s}\n"
          "routes: [{match: {prefix: /}, upstream: a}]\n",
          dead, A.addr);
    int bad = 0;
    for (int i = 0; i < 20; i++) {
        reply r;
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        bad += r.status == 502;
    }
    CHECK_EQ(bad, 1);           /* the dead one's first failure ejects it */
    CHECK_EQ(atomic_load(&A.hits), 19);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void dead_endpoint_ejected_after_first_failure(void) { run_ok(eject_main, NULL, 2); }

static int breaker_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    gwsrv s;
    start(&s,
          "upstreams:\n"
          "  a:\n"
          "    endpoints: [\"%s\"]\n"
          "    breaker: {failure_ratio: 0.5, min_calls: 5, open_for: 300ms}\n"
          "routes: [{match: {prefix: /}, upstream: a}]\n%s",
          A.addr, "");
    atomic_store(&A.fail_next, 5);
    reply r;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        CHECK_EQ(r.status, 503);
    }
    /* open: refused at the gateway, the upstream is not called */
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        CHECK_EQ(r.status, 503);
        CHECK_HAS(r.body, "circuit open");
    }
    CHECK_EQ(atomic_load(&A.hits), 5);
    /* after open_for a trial passes and closes it */
    tern_sleep(350 * MS);
    CHECK_EQ(gw_get(&s, "/x", &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(gw_get(&s, "/x", &r), 0);
    CHECK_EQ(r.status, 200);
    struct tern_gateway_stats st;
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.upstream_errors, 10);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void breaker_opens_and_recovers(void) { run_ok(breaker_main, NULL, 2); }

TESTS(T(retries_503_for_idempotent_methods_only), T(retries_stay_within_the_budget), T(refused_connection_retried_on_another_endpoint),
      T(dead_endpoint_ejected_after_first_failure), T(breaker_opens_and_recovers))
