/*
 * tern/service.h - a service's life, as Kubernetes expects it.
 *
 * A tern_service runs an HTTP server with a health object (tern/health.h)
 * through its life: start-up, then readiness, then on SIGTERM/SIGINT,
 * tern_service_stop or the end of the ctx given to tern_service_run, a
 * graceful stop in the order that loses no request:
 *   1. readiness goes false (/readyz answers 503, /livez still 200);
 *   2. the pre-stop delay passes, so load balancers notice and stop
 *      sending new requests while the server still accepts them;
 *   3. the server stops accepting and in-flight requests finish, up to
 *      the drain deadline (tern_http_server_shutdown); then those left are
 *      forced closed and their handlers get http.shutdown_grace (1 s) to
 *      return; a handler that ignores its request's ctx (a CPU loop, a
 *      blocking call) is abandoned, still running, and logged;
 *   4. shutdown hooks run, last registered first, each bounded;
 *   5. the log is flushed (up to 1 s), tern_service_run returns 0 and the
 *      program exits 0.
 * So a stop takes at most pre_stop_delay + drain_timeout + shutdown_grace
 * + hook_timeout per hook + 1 s (+ 2 s with an admin listener), whatever
 * handlers do.
 *
 * The admin listener (admin_addr): a second HTTP server, for operators
 * only, serving GET /debug/coroutines, /debug/vars and
 * /debug/pprof/profile (tern/debug.h) and the probes; add routes to it
 * with tern_service_admin_router (/metrics, say, if the scraper reaches
 * it).  The debug endpoints reveal the program's internals and the
 * profiler costs CPU: give admin_addr a loopback or cluster-internal
 * address and never mount them on the public router.  It serves from the
 * start, stays up through the drain (to look at a stuck one), then gets
 * 1 s to finish and its own shutdown grace (1 s) after the main server's
 * drain, before the hooks run.  Failing to serve stops the service as the
 * main server's failure does.
 *
 * A second SIGTERM or SIGINT (or tern_service_stop call) while stopping
 * means "now": it is logged, the rest of the pre-stop delay and of the
 * drain is skipped (connections are forced closed at once, handlers still
 * get the grace), a running hook's ctx is cancelled and it is abandoned,
 * and the hooks not yet run are skipped (logged): whoever asks twice
 * wants the process gone, and a hook must not be able to hold it.
 *
 *     tern_service *svc;
 *     tern_service_options o = {.http = {.handler = ...}, .addr = ":8080"};
 *     int rc = tern_service_new(&o, &svc);
 *     if (rc == 0)
 *         rc = tern_service_run(svc, NULL);   // until SIGTERM
 *     tern_service_free(svc);
 *
 * Errors are negative errno.  A service is set up from one coroutine
 * before running; tern_service_stop is safe from any coroutine or thread.
 * A NULL service passed to any function but tern_service_free aborts
 * naming the function.
 */
#ifndef TERN_SERVICE_H
#define TERN_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/health.h"
#include "tern/http.h"
#include "tern/http_router.h"
#include "tern/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_service tern_service;

/* Work done in tern_service_run before the service is ready (warming a
 * cache, connecting a database), while the server already answers probes:
 * 0, or -errno to abort the run (it then stops as on a signal and returns
 * the error). */
typedef int tern_service_start_fn(void *arg);

/* A shutdown hook: close a pool, flush logs.  ctx carries the hook's
 * timeout and ends early on a second stop request; a hook past it is
 * abandoned (it keeps running, nobody waits). */
typedef int tern_service_hook_fn(tern_ctx *ctx, void *arg);

typedef struct tern_service_options {
    tern_http_server_options http;  /* the server's; http.handler required;
                                       http.on_refused NULL: requests the server
                                       refuses are logged and counted as the
                                       access log and metrics middleware do
                                       (tern_http_access_log_refused,
                                       tern_http_metrics_refused) */
    const char *addr;               /* listen here; required ("127.0.0.1:0") */
    const char *admin_addr;         /* the admin listener's address (above); NULL
                                       or "": none */
    tern_tls_config *tls;           /* a server config (tern/tls.h): addr serves
                                       HTTPS (and HTTP/2 where its ALPN list offers
                                       "h2"); borrowed: keep it until
                                       tern_service_free.  Reloading its files
                                       (its watch_interval, or
                                       tern_tls_config_reload from a config
                                       change or SIGHUP hook) changes what new
                                       handshakes present, with no restart.  The
                                       admin listener stays plain HTTP.  NULL:
                                       plain HTTP (and h2c) */
    tern_service_start_fn *start;   /* NULL: ready as soon as serving */
    void *start_arg;
    int64_t pre_stop_delay;         /* ns between not-ready and not-accepting; 0:
                                       none; skipped if never ready */
    int64_t drain_timeout;          /* ns in-flight requests get; 0: 10 s; then
                                       http.shutdown_grace for stragglers */
    int64_t hook_timeout;           /* ns per shutdown hook; 0: 5 s */
    bool no_signals;                /* stop only through tern_service_stop */
} tern_service_options;

/* Create the server, its health object and listen on o->addr (so the port
 * is known before running), and on o->admin_addr if given.  0, -EINVAL (no
 * handler or addr), -ENOMEM, or tern_http_server_listen's error (either
 * address); on failure *out is NULL.  The service
 * is the caller's, freed with tern_service_free.  From a coroutine. */
int tern_service_new(const tern_service_options *o, tern_service **out);
/* After tern_service_run has returned (or instead of running it).  NULL:
 * a no-op. */
void tern_service_free(tern_service *svc);

/* The service's health object (owned by the service) and server. */
tern_health *tern_service_health(tern_service *svc);
tern_http_server *tern_service_server(tern_service *svc);
/* The port the service listens on (known once tern_service_new returned). */
int tern_service_port(const tern_service *svc);
/* The admin listener's server (its port: tern_http_server_port) and
 * router, owned by the service; NULL without an admin_addr.  Routes are
 * added before tern_service_run. */
tern_http_server *tern_service_admin_server(tern_service *svc);
tern_http_router *tern_service_admin_router(tern_service *svc);

/* Add a shutdown hook; hooks run in reverse order of registration.  name
 * is copied (for the log line of a failed hook).  -EINVAL, -ENOMEM. */
int tern_service_on_shutdown(tern_service *svc, const char *name, tern_service_hook_fn *fn,
                             void *arg);

/* Serve, run start-up, become ready, wait for SIGTERM or SIGINT (unless
 * no_signals), tern_service_stop or ctx's end (NULL: no ctx), then stop
 * gracefully as above: an ended ctx stops the service as SIGTERM does (it
 * is seen within 50 ms); it does not cut the stop itself short, which
 * drain_timeout and hook_timeout bound.  Returns 0 (also when the drain
 * deadline forced connections closed or a hook failed: both are logged,
 * and when ctx ended it, and when handlers were abandoned or the stop was
 * hurried by a second request), the start function's error, or -errno if
 * the server could not serve.  From a coroutine; once per service
 * (-EALREADY).  After handlers were abandoned, tern_service_free is still
 * safe (see tern_http_server_free), but they keep running with what they
 * use (the router, http.arg): free that only if they cannot touch it,
 * typically not at all, as the process is about to exit. */
int tern_service_run(tern_service *svc, tern_ctx *ctx);

/* Ask a running (or about to run) service to stop, as a signal would.  A
 * second call, as a second signal, makes a stop under way immediate (see
 * above).  Any coroutine or thread. */
void tern_service_stop(tern_service *svc);

#ifdef __cplusplus
}
#endif
#endif
