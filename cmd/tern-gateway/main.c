/*
 * tern-gateway - the API gateway as a program: tern_gateway (tern/gateway.h)
 * behind a tern_service, so it has what every tern service has: probes
 * (/livez, /readyz), a graceful drain on SIGTERM, an access log, request
 * metrics and a tracing span per request; /metrics on the admin listener.
 *
 *     tern-gateway -config gateway.yaml [-listen :8080] [-admin 127.0.0.1:9901]
 *                  [-watch=false] [-kit=false]
 *
 * -kit=false serves without the access log, request metrics and tracing
 * (bench/compare.sh gateway measures bare proxying with it).
 * The configuration is reloaded on SIGHUP and when the file changes (a
 * ConfigMap update sends no signal); a configuration that does not load is
 * logged and the running one stays.  Exit status 2 for bad flags or a
 * configuration that does not load at start, 1 for a listener that fails.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/gateway.h>
#include <tern/tern.h>

typedef struct app {
    const char *config, *listen, *admin;
    bool watch;
    bool kit;                   /* access log, metrics and tracing per request */
    tern_gateway *gw;
    tern_http_metrics *metrics;
    tern_http_link chain[4];
    size_t n_chain;
    atomic_bool stopping;
    atomic_bool hup_done;
} app;

static int serve(tern_http_req *r, tern_http_resp *w, void *arg)
{
    app *a = arg;
    return tern_http_run_chain(r, w, a->chain, a->n_chain);
}

/* SIGHUP: reload.  Waits with no deadline (an idle gateway wakes for
 * nothing); the stop hook wakes it with a SIGHUP of its own. */
static int hup_co(void *arg)
{
    app *a = arg;
    int sig = SIGHUP;
    while (!atomic_load(&a->stopping)) {
        int got = tern_signal_wait(&sig, 1, TERN_FOREVER);
        if (got < 0) {
            tern_log_error("gateway no longer reloads on SIGHUP", TERN_LOG_STR("error", tern_strerror(got)));
            break;
        }
        if (atomic_load(&a->stopping))
            break;
        char err[1024];
        if (tern_gateway_reload(a->gw, NULL, 0, err, sizeof err) < 0)
            tern_log_error("gateway reload failed (SIGHUP); the running configuration stays",
                           TERN_LOG_STR("error", err));
        else
            tern_log_info("gateway configuration reloaded (SIGHUP)", TERN_LOG_STR("file", a->config));
    }
    atomic_store(&a->hup_done, true);
    return 0;
}

static int stop_hup(tern_ctx *ctx, void *arg)
{
    (void)ctx;
    app *a = arg;
    atomic_store(&a->stopping, true);
    raise(SIGHUP);              /* tern's handler: hup_co wakes and sees stopping */
    while (!atomic_load(&a->hup_done))
        tern_sleep(10 * TERN_MS);
    return 0;
}

static int run(void *arg)
{
    app *a = arg;
    tern_log_init(NULL);
    tern_gateway_options go = {.config_path = a->config, .watch = a->watch};
    char err[1024];
    int rc = tern_gateway_new(&go, &a->gw, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "tern-gateway: %s\n", err);
        tern_log_shutdown();
        return 2;
    }
    if ((rc = tern_http_metrics_new(NULL, &a->metrics)) < 0) {
        fprintf(stderr, "tern-gateway: metrics: %s\n", tern_strerror(rc));
        tern_gateway_free(a->gw);
        tern_log_shutdown();
        return 1;
    }
    tern_metrics_runtime_register(NULL);
    tern_trace_init(NULL);                      /* OTEL_* from the environment */
    if (a->kit) {
        a->chain[a->n_chain++] = (tern_http_link){tern_http_mw_trace, NULL};
        a->chain[a->n_chain++] = (tern_http_link){tern_http_mw_access_log, NULL};
        a->chain[a->n_chain++] = (tern_http_link){tern_http_mw_metrics, a->metrics};
    }
    a->chain[a->n_chain++] = (tern_http_link){tern_gateway_handler, a->gw};
    int sig = SIGHUP;
    tern_signal_notify(&sig, 1);
    tern_service_options so = {
        .http = {.handler = serve, .arg = a, .max_body_bytes = -1 /* streamed through */},
        .addr = a->listen,
        .admin_addr = a->admin,
    };
    tern_service *svc;
    if ((rc = tern_service_new(&so, &svc)) < 0) {
        fprintf(stderr, "tern-gateway: listen on %s (admin %s): %s\n", a->listen, a->admin ? a->admin : "none",
                tern_strerror(rc));
        tern_gateway_free(a->gw);
        tern_http_metrics_free(a->metrics);
        tern_trace_shutdown(NULL);
        tern_log_shutdown();
        return 1;
    }
    tern_http_router *admin = tern_service_admin_router(svc);
    if (admin)
        tern_http_router_handle(admin, "GET", "/metrics", tern_metrics_handler, NULL);
    tern_go(hup_co, a);
    tern_service_on_shutdown(svc, "sighup", stop_hup, a);
    tern_log_info("tern-gateway serving", TERN_LOG_STR("addr", tern_http_server_addr(tern_service_server(svc))),
                  TERN_LOG_STR("config", a->config));
    rc = tern_service_run(svc, NULL);
    tern_service_free(svc);
    tern_gateway_free(a->gw);
    tern_http_metrics_free(a->metrics);
    tern_trace_shutdown(NULL);
    tern_log_shutdown();
    return rc < 0 ? 1 : 0;
}

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "tern-gateway: %s\n", why);
    fprintf(stderr, "usage: tern-gateway -config gateway.yaml [-listen :8080] [-admin 127.0.0.1:9901] "
                    "[-watch=false] [-kit=false]\n");
    return 2;
}

int main(int argc, char **argv)
{
    app a = {.listen = ":8080", .watch = true, .kit = true};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (f[0] != '-')
            return usage("arguments are flags");
        f += f[1] == '-' ? 2 : 1;           /* -config and --config */
        const char *eq = strchr(f, '=');
        size_t n = eq ? (size_t)(eq - f) : strlen(f);
        const char **dst = NULL;
        if (n == 6 && strncmp(f, "config", n) == 0)
            dst = &a.config;
        else if (n == 6 && strncmp(f, "listen", n) == 0)
            dst = &a.listen;
        else if (n == 5 && strncmp(f, "admin", n) == 0)
            dst = &a.admin;
        else if (n == 5 && strncmp(f, "watch", n) == 0) {
            a.watch = !eq || strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "1") == 0;
            continue;
        } else if (n == 3 && strncmp(f, "kit", n) == 0) {
            a.kit = !eq || strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "1") == 0;
            continue;
        } else if (strcmp(f, "h") == 0 || strcmp(f, "help") == 0) {
            usage(NULL);
            return 0;
        } else {
            char why[128];
            snprintf(why, sizeof why, "unknown flag %s", argv[i]);
            return usage(why);
        }
        if (eq)
            *dst = eq + 1;
        else if (i + 1 < argc)
            *dst = argv[++i];
        else
            return usage("a flag without its value");
    }
    if (!a.config)
        return usage("-config is required");
    return tern_run(run, &a);
}
