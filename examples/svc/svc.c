/*
 * svc - a small service with the whole kit on: config, structured logs,
 * metrics, tracing, health probes, graceful shutdown, a resilient
 * downstream call and debug endpoints.
 *
 *     svc --listen 127.0.0.1:8081 [--config svc.json] [--downstream http://127.0.0.1:8080/plaintext]
 *         [--admin.listen 127.0.0.1:8082]
 *
 * The debug endpoints (/debug/vars, /debug/coroutines, the CPU profile)
 * are served only on the admin listener, 127.0.0.1:8082 by default:
 * loopback, so reachable from the host or a `kubectl port-forward`, never
 * from outside; "" turns it off.  The public port keeps the probes and
 * /metrics, where Kubernetes and Prometheus look.  A URL's password never
 * reaches the logs or /debug/vars (tern_http_url_redact).
 *
 * Every key can also come from the JSON file or the environment (SVC_...):
 * `svc --help` lists them.  The --config file is reloaded when it changes
 * (a Kubernetes ConfigMap update included) and on SIGHUP.  See the README's
 * "A service" section for the curl commands and what each endpoint answers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

/* The levels tern_log_level_parse knows (lower case): any other value was
 * once taken silently ("shouting" logged at info); the config refuses it,
 * naming these. */
static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};

static const tern_config_key keys[] = {
    TERN_CONFIG_KEY("listen", TERN_CONFIG_STRING, .def = "127.0.0.1:8081",
                    .help = "address to serve on"),
    TERN_CONFIG_KEY("admin.listen", TERN_CONFIG_STRING, .def = "127.0.0.1:8082",
                    .help = "address of the admin listener serving /debug (keep it loopback or "
                            "internal; empty: none)"),
    TERN_CONFIG_KEY("downstream", TERN_CONFIG_STRING, .def = "",
                    .help = "URL that GET /call calls (empty: /call answers 503)"),
    TERN_CONFIG_KEY("call.timeout", TERN_CONFIG_DURATION, .def = "2s", .min = "1ms",
                    .help = "budget of a /call, retries and hedges included"),
    TERN_CONFIG_KEY("call.hedge_delay", TERN_CONFIG_DURATION, .def = "100ms",
                    .help = "send a backup request after this long (0: never)"),
    TERN_CONFIG_KEY("log.level", TERN_CONFIG_STRING, .def = "info", .one_of = log_levels,
                    .help = "debug, info, warn, error or off; reloaded on SIGHUP or a --config change"),
    TERN_CONFIG_KEY("shutdown.pre_stop", TERN_CONFIG_DURATION, .def = "0s",
                    .help = "not-ready time before accepting stops (load balancers)"),
    TERN_CONFIG_KEY("kit", TERN_CONFIG_BOOL, .def = "true",
                    .help = "request id, tracing, metrics and access log on every route "
                            "(false: bench/compare.sh kit's all-off anchor)"),
};

typedef struct svc {
    tern_config *cfg;
    tern_http_client *client;
    tern_resilient_client *rc;
} svc;

static int hello(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_log_ctx(tern_http_req_ctx(r), TERN_LOG_DEBUG, "hello",
                 TERN_LOG_STR("remote", tern_http_req_remote_addr(r)));
    return tern_http_resp_send(w, 200, "text/plain", "Hello, World!", 13);
}

/* The downstream call: the request's remaining budget bounds every
 * attempt; retries (with a budget), a breaker and hedging come from the
 * resilient client; the trace continues downstream. */
static int call(tern_http_req *r, tern_http_resp *w, void *arg)
{
    svc *s = arg;
    const char *url = tern_config_str(s->cfg, "downstream");
    if (!*url)
        return tern_http_resp_error(w, 503, "no downstream configured (--downstream URL)\n");
    tern_ctx *ctx;
    int err = tern_ctx_with_timeout(tern_http_req_ctx(r), tern_config_duration(s->cfg, "call.timeout"),
                                    &ctx);
    if (err < 0)
        return err;
    char traceparent[64] = "";
    const tern_trace_span_context *sc =
        tern_trace_span_context_of(tern_trace_span_from_ctx(tern_http_req_ctx(r)));
    if (sc)
        tern_trace_format_traceparent(sc, traceparent, sizeof traceparent);
    const char *headers[] = { "traceparent", traceparent, NULL };
    tern_http_client_request req = { .url = url, .headers = sc ? headers : NULL };
    tern_http_client_response *resp;
    int rc = tern_resilient_client_do(s->rc, &req, &resp, ctx);
    if (rc < 0) {
        char shown[512];
        tern_http_url_redact(url, shown, sizeof shown);     /* no password in the log */
        tern_log_ctx(tern_http_req_ctx(r), TERN_LOG_WARN, "downstream failed",
                     TERN_LOG_STR("url", shown), TERN_LOG_STR("error", tern_strerror(rc)));
        tern_ctx_free(ctx);
        return tern_http_resp_printf(w, "downstream: %s\n", tern_strerror(rc)) < 0 ? -EIO
               : tern_http_resp_set_status(w, rc == -EAGAIN ? 503 : 502);
    }
    const char *body;
    size_t len;
    int status = tern_http_client_response_status(resp);
    rc = tern_http_client_response_body(resp, 1 << 20, &body, &len);
    if (rc == 0) {
        tern_http_resp_set_status(w, status < 500 ? 200 : 502);
        tern_http_resp_printf(w, "downstream answered %d: %.*s\n", status, (int)len, body);
    }
    tern_resilient_client_response_free(s->rc, resp);
    tern_ctx_free(ctx);
    return rc;
}

static void on_config_change(tern_config *cfg, const tern_config_change *changes, size_t n, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) {
        /* Any value may be a URL with credentials (downstream is): shown
         * redacted; a value without one is unchanged. */
        char old[512], new[512];
        tern_http_url_redact(changes[i].old_value, old, sizeof old);
        tern_http_url_redact(changes[i].new_value, new, sizeof new);
        tern_log_info("config changed", TERN_LOG_STR("key", changes[i].key),
                      TERN_LOG_STR("old", old), TERN_LOG_STR("new", new));
        if (!strcmp(changes[i].key, "log.level"))
            tern_log_set_level(tern_log_level_parse(tern_config_str(cfg, "log.level")));
    }
}

/* /debug/vars "config": every string key, each through the redactor (a
 * URL's password becomes xxxxx), so a key added later cannot leak one. */
static json_t *published_config(void *arg)
{
    tern_config *cfg = arg;
    json_t *o = json_object();
    for (size_t i = 0; o && i < sizeof keys / sizeof keys[0]; i++) {
        if (keys[i].type != TERN_CONFIG_STRING)
            continue;
        char shown[512];
        tern_http_url_redact(tern_config_str(cfg, keys[i].name), shown, sizeof shown);
        json_object_set_new(o, keys[i].name, json_string(shown));
    }
    return o;
}

static int stop_tracing(tern_ctx *ctx, void *arg)
{
    (void)arg;
    return tern_trace_shutdown(ctx);
}

/* Before run returns early: the config watchers must stop inside the
 * runtime (tern_config_free outside it cannot wait for them). */
static int give_up(svc *s)
{
    tern_config_watch_stop(s->cfg);
    tern_log_shutdown();
    return 1;
}

static int run(void *arg)
{
    svc *s = arg;
    int level = tern_log_level_parse(tern_config_str(s->cfg, "log.level"));
    tern_log_init(&(tern_log_options){ .level = level > 0 ? level : TERN_LOG_INFO });
    tern_trace_init(NULL);                      /* OTEL_* from the environment */
    tern_metrics_runtime_register(NULL);
    tern_config_on_change(s->cfg, on_config_change, NULL);
    tern_config_watch_sighup(s->cfg);
    /* A ConfigMap update sends no SIGHUP: watch the file as well. */
    const char *file = tern_config_file(s->cfg);
    int wr = file ? tern_config_watch_file(s->cfg) : 0;
    if (wr < 0)
        tern_log_warn("config file not watched (SIGHUP still reloads)",
                      TERN_LOG_STR("file", file), TERN_LOG_STR("error", tern_strerror(wr)));
    tern_debug_publish("config", published_config, s->cfg);

    tern_http_client_options co = { .max_idle_per_host = 16 };
    if (tern_http_client_new(&co, &s->client) < 0)
        return give_up(s);
    tern_breaker_options bo = { .min_requests = 10, .open_duration = 5 * TERN_SEC };
    tern_retry_budget_options budget = { .ratio = 0.2 };
    tern_resilient_client_options ro = { .client = s->client, .max_attempts = 3, .breaker = &bo,
                                         .budget = &budget,
                                         .hedge_delay = tern_config_duration(s->cfg, "call.hedge_delay") };
    if (tern_resilient_client_new(&ro, &s->rc) < 0)
        return give_up(s);

    tern_http_router *rt;
    if (tern_http_router_new(NULL, &rt) < 0)
        return 1;
    if (tern_config_bool(s->cfg, "kit")) {
        tern_http_router_use(rt, tern_http_mw_request_id, NULL);
        tern_http_router_use(rt, tern_http_mw_trace, NULL);
        tern_http_router_use(rt, tern_http_mw_metrics, NULL);
        tern_http_router_use(rt, tern_http_mw_access_log, NULL);
    }
    tern_http_router_handle(rt, "GET", "/hello", hello, s);
    tern_http_router_handle(rt, "GET", "/call", call, s);
    tern_http_router_handle(rt, "GET", "/metrics", tern_metrics_handler, NULL);
    /* no /debug here: the service mounts it on the admin listener only */

    tern_service_options so = {
        .http = { .handler = tern_http_router_serve, .arg = rt },
        .addr = tern_config_str(s->cfg, "listen"),
        .admin_addr = tern_config_str(s->cfg, "admin.listen"),
        .pre_stop_delay = tern_config_duration(s->cfg, "shutdown.pre_stop"),
    };
    tern_service *service;
    int rc = tern_service_new(&so, &service);
    if (rc < 0) {
        fprintf(stderr, "svc: listen on %s: %s (or on admin.listen %s)\n", so.addr,
                tern_strerror(rc), so.admin_addr);
        return give_up(s);
    }
    tern_health_mount(rt, tern_service_health(service));
    tern_service_on_shutdown(service, "tracing", stop_tracing, NULL);
    printf("svc: listening on http://%s/ (try /hello /call /metrics /healthz?verbose)\n",
           tern_http_server_addr(tern_service_server(service)));
    tern_http_server *admin = tern_service_admin_server(service);
    if (admin)
        printf("svc: admin on http://%s/ (/debug/vars /debug/coroutines /debug/pprof/profile)\n",
               tern_http_server_addr(admin));
    fflush(stdout);
    rc = tern_service_run(service, NULL);       /* until SIGTERM or SIGINT */
    tern_service_free(service);
    tern_config_watch_stop(s->cfg);
    tern_resilient_client_free(s->rc);
    tern_http_client_free(s->client);
    tern_http_router_free(rt);
    tern_log_shutdown();
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    /* tern_config takes --config FILE itself: the file layer */
    tern_config_options o = { .keys = keys, .nkeys = sizeof keys / sizeof keys[0],
                              .env_prefix = "SVC" };
    tern_config_error err = {0};
    svc s = {0};
    int rc = tern_config_new(argc, argv, &err, &o, &s.cfg);
    if (rc == 1) {
        char help[4096];
        tern_config_help(s.cfg, help, sizeof help);
        printf("usage: svc [--config FILE] [--key value ...]\n%s", help);
        tern_config_free(s.cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "svc: %s\n", err.msg);
        return 2;
    }
    rc = tern_run(run, &s);
    tern_config_free(s.cfg);
    return rc;
}
