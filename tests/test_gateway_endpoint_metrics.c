/*
 * test_gateway_endpoint_metrics.c - the metrics per upstream endpoint:
 * requests and failures counted per replica, the time to the head per
 * replica, the balancer's state (ejected, in flight, ejections) at each
 * scrape, and a replica removed by a reload shown as no longer ejected.
 */
#include "check.h"
#include "gateway_fixture.h"

static upstream A, B;

static char *scrape(gwsrv *s)
{
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(s->reg, &text, &len), 0);
    return text;
}

static void has(const char *text, const char *fmt, const char *addr)
{
    char line[256];
    snprintf(line, sizeof line, fmt, addr);
    CHECK_HAS(text, line);
}

static int body(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    const char *fmt = "upstreams:\n"
                      "  u:\n"
                      "    endpoints: [%s]\n"
                      "    policy: round_robin\n"
                      "    outlier: {consecutive_failures: 2, base_ejection_time: 30s}\n"
                      "routes: [{match: {prefix: /}, upstream: u}]\n";
    char eps[160], cfg[512];
    snprintf(eps, sizeof eps, "\"%s\", \"%s\"", A.addr, B.addr);
    snprintf(cfg, sizeof cfg, fmt, eps);
    gwsrv s;
    char err[256];
    CHECK_EQ(gw_start_text(&s, cfg, err, sizeof err), 0);
    /* B fails twice (its two turns of four): ejected; A serves the rest */
    atomic_store(&B.fail_next, 2);
    for (int i = 0; i < 10; i++) {
        reply r;
        CHECK_EQ(gw_get(&s, "/m", &r), 0);
    }
    CHECK_EQ(atomic_load(&B.hits), 2);
    char *text = scrape(&s);
    has(text, "tern_gateway_endpoint_requests_total{upstream=\"u\",endpoint=\"%s\"} 8", A.addr);
    has(text, "tern_gateway_endpoint_requests_total{upstream=\"u\",endpoint=\"%s\"} 2", B.addr);
    has(text, "tern_gateway_endpoint_failures_total{upstream=\"u\",endpoint=\"%s\"} 2", B.addr);
    has(text, "tern_gateway_endpoint_duration_seconds_count{upstream=\"u\",endpoint=\"%s\"} 8", A.addr);
    has(text, "tern_gateway_endpoint_ejected{upstream=\"u\",endpoint=\"%s\"} 1", B.addr);
    has(text, "tern_gateway_endpoint_ejected{upstream=\"u\",endpoint=\"%s\"} 0", A.addr);
    has(text, "tern_gateway_endpoint_ejections{upstream=\"u\",endpoint=\"%s\"} 1", B.addr);
    has(text, "tern_gateway_endpoint_in_flight{upstream=\"u\",endpoint=\"%s\"} 0", A.addr);
    has(text, "tern_gateway_endpoint_unhealthy{upstream=\"u\",endpoint=\"%s\"} 0", A.addr);
    has(text, "tern_gateway_endpoint_latency_ewma_seconds{upstream=\"u\",endpoint=\"%s\"} ", A.addr);
    free(text);
    /* a reload without B: B's state is no longer shown as ejected */
    snprintf(eps, sizeof eps, "\"%s\"", A.addr);
    snprintf(cfg, sizeof cfg, fmt, eps);
    CHECK_EQ(tern_gateway_reload(s.gw, cfg, strlen(cfg), err, sizeof err), 0);
    text = scrape(&s);
    has(text, "tern_gateway_endpoint_ejected{upstream=\"u\",endpoint=\"%s\"} 0", B.addr);
    has(text, "tern_gateway_endpoint_ejections{upstream=\"u\",endpoint=\"%s\"} 0", B.addr);
    free(text);
    gw_stop(&s);
    /* the registry outlives the gateway: a scrape after the free is harmless
     * (gw_stop freed this one: check on a registry of our own) */
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern_gateway_options o = {.config_text = cfg, .config_len = strlen(cfg), .metrics = reg};
    tern_gateway *gw;
    CHECK_EQ(tern_gateway_new(&o, &gw, err, sizeof err), 0);
    tern_gateway_free(gw);
    text = NULL;
    size_t len;
    CHECK_EQ(tern_metrics_format(reg, &text, &len), 0);
    CHECK(text != NULL);        /* the hook ran and looked at no freed gateway */
    free(text);
    tern_metrics_registry_free(reg);
    upstream_stop(&A);
    upstream_stop(&B);
    return 0;
}

static void endpoint_metrics_follow_each_replica(void) { run_ok(body, NULL, 2); }

TESTS(T(endpoint_metrics_follow_each_replica))
