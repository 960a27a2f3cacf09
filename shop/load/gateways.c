/*
 * gateways.c - shop-load as the load balancer in front of several
 * gateways (-gateway URL,URL,...): each request goes to the next gateway
 * whose readiness probe (/readyz) last answered 200, round robin, the way
 * a Kubernetes Service or a cloud balancer follows its endpoints' readiness.
 * That is what a gateway's graceful stop is built for (readiness false,
 * a pre-stop delay while balancers notice, then the drain), so a rolling
 * restart of the gateways can be measured without a balancer of our own.
 *
 * A watcher coroutine probes every gateway every 100 ms while the run
 * lasts.  With one gateway nothing is probed: it is always used, as
 * before.  When none is ready the next one is used anyway (its error is
 * the run's to count).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "load.h"

#define PROBE_EVERY (100 * 1000000LL)
#define PROBE_TIMEOUT (1000 * 1000000LL)

int load_gateways_parse(load_run *run, const char *list)
{
    run->ngateways = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (run->ngateways == LOAD_MAX_GATEWAYS)
            return -E2BIG;
        load_gateway *g = &run->gateways[run->ngateways];
        while (n > 0 && p[n - 1] == '/')
            n--;                            /* "http://h:1/" is "http://h:1" */
        if (n < 8 || n >= sizeof g->url || strncmp(p, "http://", 7) != 0)
            return -EINVAL;
        memcpy(g->url, p, n);
        g->url[n] = 0;
        atomic_store(&g->ready, true);
        run->ngateways++;
        p += strcspn(p, ",");
        p += *p == ',';
    }
    return run->ngateways ? 0 : -EINVAL;
}

const char *load_gateway_pick(load_run *run)
{
    unsigned n = (unsigned)run->ngateways;
    unsigned first = (unsigned)atomic_fetch_add(&run->next_gateway, 1);
    for (unsigned i = 0; i < n; i++) {
        load_gateway *g = &run->gateways[(first + i) % n];
        if (atomic_load(&g->ready))
            return g->url;
    }
    return run->gateways[first % n].url;
}

/* One probe: GET <url>/readyz answered 200 within PROBE_TIMEOUT. */
static bool probe(load_run *run, const load_gateway *g)
{
    char url[sizeof g->url + 8];
    snprintf(url, sizeof url, "%s/readyz", g->url);
    tern_http_client_request req = {.method = "GET", .url = url};
    tern_ctx *ctx;
    if (tern_ctx_with_timeout(tern_ctx_background(), PROBE_TIMEOUT, &ctx) < 0)
        return false;
    tern_http_client_response *r;
    bool ok = false;
    if (tern_http_client_do(run->client, &req, &r, ctx) == 0) {
        const char *data;
        size_t len;
        ok = tern_http_client_response_body(r, 4096, &data, &len) == 0 && tern_http_client_response_status(r) == 200;
        tern_http_client_response_free(r);
    }
    tern_ctx_free(ctx);
    return ok;
}

static void probe_all(load_run *run)
{
    for (int i = 0; i < run->ngateways; i++) {
        load_gateway *g = &run->gateways[i];
        bool ready = probe(run, g);
        if (ready != atomic_load(&g->ready) && !run->quiet)
            fprintf(stderr, "shop-load: %s %s\n", g->url, ready ? "ready again" : "not ready: left out");
        atomic_store(&g->ready, ready);
    }
}

static int watch(void *arg)
{
    load_run *run = arg;
    while (!atomic_load(&run->watch_stop)) {
        tern_sleep(PROBE_EVERY);
        probe_all(run);
    }
    return 0;
}

int load_gateways_watch(load_run *run, tern_group *g)
{
    if (run->ngateways < 2)
        return 0;
    probe_all(run);                     /* the first call already knows */
    return tern_group_go(g, watch, run, NULL);
}

void load_gateways_unwatch(load_run *run)
{
    atomic_store(&run->watch_stop, true);
}
