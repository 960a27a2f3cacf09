/*
 * endpoint_metrics.c - metrics per upstream endpoint, so an operator can
 * see which replica is slow, failing or ejected, not only which upstream.
 *
 * Two kinds.  What happens per request is counted as it happens, by the
 * proxy (and the tunnel) after each try: requests, failures (what the
 * balancer was told was a failure: a refused or reset connection, a
 * timeout, a 5xx) and the time to the response head.  What is a state of
 * the balancer (in flight, ejected, failing health checks, ejections so
 * far, EWMA latency) is read from tern_balancer_endpoint_stats at each
 * scrape, for the upstreams of the generation serving then.  An endpoint
 * that has gone since the last scrape has its state gauges set to 0 (a
 * family cannot drop a child), so a removed replica never shows as still
 * busy or ejected.
 *
 * The scrape hook is registered in the registry, which may outlive the
 * gateway (the default registry does): it holds a small object of its
 * own, which tern_gateway_free detaches under its lock, and which the
 * registry frees.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/internal.h"

enum { G_IN_FLIGHT, G_EJECTED, G_UNHEALTHY, G_EJECTIONS, G_EWMA, NGAUGES };

typedef struct known {
    tern_metrics_gauge *g[NGAUGES];
    bool seen;
} known;

struct gw_epm {
    tern__spin lock;                /* guards gw (detach) and the scrape's work */
    tern_gateway *gw;               /* NULL once the gateway is gone */
    tern_metrics_family *requests, *failures, *latency;
    tern_metrics_family *gauges[NGAUGES];
    known *known;                   /* every gauge set so far, to zero the gone */
    size_t nknown, capknown;
};

static void remember(gw_epm *m, tern_metrics_gauge *const *g)
{
    for (size_t i = 0; i < m->nknown; i++)
        if (m->known[i].g[0] == g[0]) {     /* the same values give the same handle */
            m->known[i].seen = true;
            return;
        }
    if (m->nknown == m->capknown) {
        size_t cap = m->capknown ? 2 * m->capknown : 16;
        known *k = realloc(m->known, cap * sizeof *k);
        if (!k)
            return;             /* not zeroed if it goes: a stale gauge, no harm beyond */
        m->known = k;
        m->capknown = cap;
    }
    known *k = &m->known[m->nknown++];
    memcpy(k->g, g, sizeof k->g);
    k->seen = true;
}

static void scrape_upstream(gw_epm *m, gw_upstream *up)
{
    tern_lb_endpoint_stats es[64];
    size_t n = tern_balancer_endpoint_stats(up->lb, es, 64);
    if (n > 64)
        n = 64;                 /* a huge set: the first 64 */
    for (size_t i = 0; i < n; i++) {
        const char *values[] = {up->name, es[i].addr};
        tern_metrics_gauge *g[NGAUGES];
        bool ok = true;
        for (int k = 0; k < NGAUGES; k++)
            ok = ok && tern_metrics_gauge_with_values(m->gauges[k], values, &g[k]) == 0;
        if (!ok)
            continue;
        tern_metrics_gauge_set(g[G_IN_FLIGHT], (double)es[i].in_flight);
        tern_metrics_gauge_set(g[G_EJECTED], es[i].ejected);
        tern_metrics_gauge_set(g[G_UNHEALTHY], es[i].unhealthy);
        tern_metrics_gauge_set(g[G_EJECTIONS], es[i].ejections);
        tern_metrics_gauge_set(g[G_EWMA], (double)es[i].ewma_latency / 1e9);
        remember(m, g);
    }
}

static void on_scrape(void *arg)
{
    gw_epm *m = arg;
    tern__spin_lock(&m->lock);
    if (m->gw) {
        for (size_t i = 0; i < m->nknown; i++)
            m->known[i].seen = false;
        gw_gen *g = tern__gw_acquire(m->gw);
        for (size_t i = 0; i < g->nups; i++)
            if (g->ups[i]->lb)
                scrape_upstream(m, g->ups[i]);
        tern__gw_release(g);
        for (size_t i = 0; i < m->nknown; i++)
            if (!m->known[i].seen)
                for (int k = 0; k < NGAUGES; k++)
                    tern_metrics_gauge_set(m->known[i].g[k], 0);
    }
    tern__spin_unlock(&m->lock);
}

static void release_epm(void *arg)
{
    gw_epm *m = arg;
    free(m->known);
    free(m);
}

int tern__gw_epm_new(tern_gateway *gw)
{
    static const char *const labels[] = {"upstream", "endpoint", NULL};
    static const struct {
        const char *name, *help;
    } gauges[NGAUGES] = {
        [G_IN_FLIGHT] = {"tern_gateway_endpoint_in_flight", "Requests in flight to an upstream endpoint."},
        [G_EJECTED] = {"tern_gateway_endpoint_ejected", "1 while outlier detection has the endpoint ejected."},
        [G_UNHEALTHY] = {"tern_gateway_endpoint_unhealthy", "1 while the endpoint fails its active health checks."},
        [G_EJECTIONS] = {"tern_gateway_endpoint_ejections", "Times the endpoint was ejected since it joined."},
        [G_EWMA] = {"tern_gateway_endpoint_latency_ewma_seconds", "The balancer's EWMA of the endpoint's latency."},
    };
    gw_epm *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->gw = gw;
    tern_metrics_family_options o = {.type = TERN_METRICS_COUNTER, .name = "tern_gateway_endpoint_requests_total",
                                     .help = "Tries sent to an upstream endpoint.", .labels = labels};
    int rc = tern_metrics_family_new(gw->metrics, &o, &m->requests);
    o.name = "tern_gateway_endpoint_failures_total";
    o.help = "Tries to an upstream endpoint that failed (connect, reset, timeout, 5xx).";
    if (rc == 0)
        rc = tern_metrics_family_new(gw->metrics, &o, &m->failures);
    o = (tern_metrics_family_options){.type = TERN_METRICS_HISTOGRAM,
                                      .name = "tern_gateway_endpoint_duration_seconds",
                                      .help = "Time to an upstream endpoint's response head.", .labels = labels};
    if (rc == 0)
        rc = tern_metrics_family_new(gw->metrics, &o, &m->latency);
    for (int k = 0; rc == 0 && k < NGAUGES; k++) {
        o = (tern_metrics_family_options){.type = TERN_METRICS_GAUGE, .name = gauges[k].name,
                                          .help = gauges[k].help, .labels = labels};
        rc = tern_metrics_family_new(gw->metrics, &o, &m->gauges[k]);
    }
    /* a second gateway on the registry (-EEXIST): the first one reports */
    if (rc == 0)
        rc = tern_metrics_on_scrape(gw->metrics, on_scrape, release_epm, m);
    if (rc < 0) {
        free(m);
        return rc;
    }
    gw->epm = m;
    return 0;
}

void tern__gw_epm_detach(tern_gateway *gw)
{
    gw_epm *m = gw->epm;
    if (!m)
        return;
    tern__spin_lock(&m->lock);
    m->gw = NULL;
    tern__spin_unlock(&m->lock);
    gw->epm = NULL;
}

void tern__gw_epm_observe(tern_gateway *gw, const gw_upstream *up, const char *addr, int64_t head_ns, bool failed)
{
    gw_epm *m = gw->epm;
    if (!m)
        return;
    const char *values[] = {up->name, addr};
    tern_metrics_counter *c;
    if (tern_metrics_counter_with_values(m->requests, values, &c) == 0)
        tern_metrics_counter_inc(c);
    if (failed && tern_metrics_counter_with_values(m->failures, values, &c) == 0)
        tern_metrics_counter_inc(c);
    tern_metrics_histogram *h;
    if (tern_metrics_histogram_with_values(m->latency, values, &h) == 0)
        tern_metrics_histogram_observe(h, (double)head_ns / 1e9);
}
