/*
 * test_kit_service_refused.c - requests the HTTP server refuses itself
 * (issue 15, item 8) show in the kit's access log and metrics: the
 * functions for tern_http_server_options.on_refused write an access line
 * and count http_server_requests_total{route="refused"}, and a service
 * wires both unless told otherwise.  Real servers and raw clients
 * (http_raw.h).
 */
#include "check.h"
#include "http_raw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tern/log.h>
#include <tern/metrics.h>
#include <tern/service.h>

static int ok_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_text(w, 200, "ok");
}

static char logged[2048];

static void keep_line(const char *line, size_t len, void *arg)
{
    (void)arg;
    snprintf(logged, sizeof logged, "%.*s", (int)len, line);
}

static int access_line_body(void *arg)
{
    (void)arg;
    tern_http_access_log_options lo = {.fn = keep_line};
    tern_http_refusal rf = {.status = 431, .method = "GET", .target = "/big\"head",
                            .remote_addr = "127.0.0.1:5555", .start = tern_now() - 3 * TERN_MS};
    tern_http_access_log_refused(&rf, &lo);
    CHECK(strstr(logged, "\"msg\":\"request\""));
    CHECK(strstr(logged, "\"status\":431"));
    CHECK(strstr(logged, "\"bytes\":0"));
    CHECK(strstr(logged, "\"method\":\"GET\""));
    CHECK(strstr(logged, "\"remote\":\"127.0.0.1:5555\""));
    CHECK(strstr(logged, "\"error\":\"refused by the server\""));
    CHECK(strstr(logged, "\"path\":\"/big\\\"head\""));     /* escaped as any line */
    const char *d = strstr(logged, "\"duration_us\":");
    CHECK(d && atol(d + 14) >= 3000);
    CHECK(logged[strlen(logged) - 1] == '\n');
    return 0;
}

static void access_log_writes_a_line_for_a_refused_request(void)
{
    run_test(access_line_body, NULL);
}

static tern_waitgroup done;

static int run_service_co(void *arg)
{
    CHECK_EQ(tern_service_run(arg, NULL), 0);
    tern_waitgroup_done(&done);
    return 0;
}

static int service_body(void *arg)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/", ok_handler, NULL), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt},
        .addr = "127.0.0.1:0",
        .no_signals = true,
    };
    tern_service *svc;
    CHECK_EQ(tern_service_new(&o, &svc), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tern_service_port(svc));
    tern_waitgroup_add(&done, 1);
    CHECK_EQ(tern_go(run_service_co, svc), 0);
    resp p;
    for (int i = 0; i < 3; i++) {
        fetch(addr, "GET / HTTP/2.0\r\nHost: t\r\n\r\n", &p);
        CHECK_EQ(p.status, 505);
        resp_free(&p);
    }
    fetch(addr, "BAD\r\n\r\n", &p);
    CHECK_EQ(p.status, 400);
    resp_free(&p);
    CHECK_EQ(get_status(addr, "/"), 200);
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(NULL, &text, &len), 0);
    CHECK(strstr(text, "http_server_requests_total{route=\"refused\",method=\"GET\",code=\"505\"} 3\n"));
    CHECK(strstr(text, "http_server_requests_total{route=\"refused\",method=\"OTHER\",code=\"400\"} 1\n"));
    CHECK(strstr(text, "http_server_request_duration_seconds_count{route=\"refused\",method=\"GET\"} 3\n"));
    free(text);
    tern_service_stop(svc);
    CHECK_EQ(tern_waitgroup_wait(&done, NULL), 0);
    tern_service_free(svc);
    tern_http_router_free(rt);
    return 0;
}

static void service_logs_and_counts_refused_requests(void)
{
    run_test(service_body, NULL);
}

TESTS(T(access_log_writes_a_line_for_a_refused_request),
      T(service_logs_and_counts_refused_requests))
