/*
 * test_kit_service_conn_limit.c - a service shows its server's connection
 * limit as metrics (issue 15, item 5): http_server_connections,
 * http_server_max_connections and http_server_conn_limit_pauses_total in
 * the default registry, counted while clients queue at max_conns.  Real
 * service, raw clients (http_raw.h).
 */
#include "check.h"
#include "http_raw.h"

#include <stdlib.h>
#include <string.h>

#include <tern/metrics.h>
#include <tern/service.h>

static int ok_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_text(w, 200, "ok");
}

static tern_waitgroup done;

static int run_service_co(void *arg)
{
    CHECK_EQ(tern_service_run(arg, NULL), 0);
    tern_waitgroup_done(&done);
    return 0;
}

/* The scrape's line for name, e.g. "http_server_connections 2". */
static bool scraped(const char *line)
{
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(NULL, &text, &len), 0);
    char want[128];
    snprintf(want, sizeof want, "\n%s\n", line);
    bool found = strstr(text, want) != NULL;
    if (!found)
        fprintf(stderr, "no \"%s\" in the scrape\n", line);
    free(text);
    return found;
}

static int body(void *arg)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/", ok_handler, NULL), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt, .max_conns = 2},
        .addr = "127.0.0.1:0",
        .no_signals = true,
    };
    tern_service *svc;
    CHECK_EQ(tern_service_new(&o, &svc), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tern_service_port(svc));
    tern_waitgroup_add(&done, 1);
    CHECK_EQ(tern_go(run_service_co, svc), 0);
    client *a = client_dial(addr), *b = client_dial(addr), *c = client_dial(addr);
    tern_sleep(200 * TERN_MS);      /* c waits in the backlog; the runner has looked */
    CHECK(scraped("http_server_connections 2"));
    CHECK(scraped("http_server_max_connections 2"));
    CHECK(scraped("http_server_conn_limit_pauses_total 1"));
    client_close(a);
    client_close(b);
    client_close(c);
    tern_service_stop(svc);
    CHECK_EQ(tern_waitgroup_wait(&done, NULL), 0);
    tern_service_free(svc);
    tern_http_router_free(rt);
    return 0;
}

static void service_shows_the_connection_limit_as_metrics(void)
{
    run_test(body, NULL);
}

TESTS(T(service_shows_the_connection_limit_as_metrics))
