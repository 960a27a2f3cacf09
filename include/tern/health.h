/*
 * tern/health.h - health endpoints and a service lifecycle, as Kubernetes
 * probes expect them.
 *
 * A tern_health holds named checks, each marked as a liveness check (is the
 * process wedged? failing restarts it), a readiness check (can it serve
 * now? failing takes it out of the load balancer) or both.  Three handlers
 * answer from them:
 *     /livez    the liveness checks
 *     /readyz   the readiness flag and the readiness checks
 *     /healthz  the readiness flag and every check
 * with 200 "ok", or 503 listing each check; "?verbose" lists them on
 * success too, one line each, as Kubernetes does:
 *     [+]ready ok
 *     [+]db ok
 *     [-]cache failed: connection refused
 *     readyz check failed
 * A probe runs its checks concurrently, one coroutine each, and a check
 * that outlives its timeout is reported "failed: timeout" without being
 * waited for: the answer comes within the longest timeout.
 *
 * A tern_service runs an HTTP server with a health object through its
 * life: start-up, then readiness, then on SIGTERM/SIGINT (or
 * tern_service_stop) a graceful stop in the order that loses no request:
 *   1. readiness goes false (/readyz answers 503, /livez still 200);
 *   2. the pre-stop delay passes, so load balancers notice and stop
 *      sending new requests while the server still accepts them;
 *   3. the server stops accepting and in-flight requests finish, up to
 *      the drain deadline (tern_http_server_shutdown);
 *   4. shutdown hooks run, last registered first, each bounded;
 *   5. the log is flushed, tern_service_run returns 0 and the program
 *      exits 0.
 *
 * Errors are negative errno.  Objects are set up from one coroutine before
 * serving; the handlers and tern_health_set_ready are safe from any
 * coroutine.
 */
#ifndef TERN_HEALTH_H
#define TERN_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/http.h"
#include "tern/http_router.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- checks and probes ---------------------------------------------------- */

typedef enum tern_health_kind {
    TERN_HEALTH_LIVENESS = 1,
    TERN_HEALTH_READINESS = 2,
    TERN_HEALTH_BOTH = 3,
} tern_health_kind;

/* The longest message a check may leave (bytes, NUL included). */
#define TERN_HEALTH_MSG_MAX 128

/* A check: 0 when healthy, or -errno, optionally with a reason written to
 * msg (msg_len bytes, NUL-terminated; empty: tern_strerror of the code).
 * ctx carries the check's timeout; a check should give up when it is done,
 * but one that does not is only abandoned, never waited for, so fn and arg
 * must stay valid until it returns (until the health object is freed and
 * one timeout more, in practice: keep them static or long-lived). */
typedef int tern_health_check_fn(tern_ctx *ctx, void *arg, char *msg, size_t msg_len);

typedef struct tern_health tern_health;

/* A health object, not ready (see tern_health_set_ready).  0 or -ENOMEM. */
int tern_health_new(tern_health **out);
/* After the last probe has been answered.  A check still running past its
 * timeout keeps its own state alive and frees it when it returns. */
void tern_health_free(tern_health *h);

/* Register a check.  timeout <= 0: 1 s.  -EINVAL for an empty name or one
 * with a control character, a bad kind or NULL fn; -EEXIST for a name in
 * use; -ENOMEM.  Before serving. */
int tern_health_add(tern_health *h, const char *name, tern_health_kind kind, int64_t timeout,
                    tern_health_check_fn *fn, void *arg);

/* The readiness flag: false until start-up completes and from the moment
 * shutdown begins.  Any coroutine or thread. */
void tern_health_set_ready(tern_health *h, bool ready);
bool tern_health_ready(const tern_health *h);

/* Handlers (tern_http_handler_fn) with arg = the tern_health. */
int tern_health_livez(tern_http_req *r, tern_http_resp *w, void *health);
int tern_health_readyz(tern_http_req *r, tern_http_resp *w, void *health);
int tern_health_healthz(tern_http_req *r, tern_http_resp *w, void *health);

/* Route GET /livez, /readyz and /healthz on rt to h.  Errors as
 * tern_http_router_handle. */
int tern_health_mount(tern_http_router *rt, tern_health *h);

/* ---- the service lifecycle ------------------------------------------------ */

typedef struct tern_service tern_service;

/* Work done in tern_service_run before the service is ready (warming a
 * cache, connecting a database), while the server already answers probes:
 * 0, or -errno to abort the run (it then stops as on a signal and returns
 * the error). */
typedef int tern_service_start_fn(void *arg);

/* A shutdown hook: close a pool, flush logs.  ctx carries the hook's
 * timeout; a hook past it is abandoned (it keeps running, nobody waits). */
typedef int tern_service_hook_fn(tern_ctx *ctx, void *arg);

typedef struct tern_service_options {
    tern_http_server_options http;  /* the server's; http.handler required */
    const char *addr;               /* listen here; required ("127.0.0.1:0") */
    tern_service_start_fn *start;   /* NULL: ready as soon as serving */
    void *start_arg;
    int64_t pre_stop_delay;         /* ns between not-ready and not-accepting; 0:
                                       none; skipped if never ready */
    int64_t drain_timeout;          /* ns in-flight requests get; 0: 10 s */
    int64_t hook_timeout;           /* ns per shutdown hook; 0: 5 s */
    bool no_signals;                /* stop only through tern_service_stop */
} tern_service_options;

/* Create the server, its health object and listen on o->addr (so the port
 * is known before running).  0, -EINVAL (no handler or addr), -ENOMEM, or
 * tern_http_server_listen's error.  From a coroutine. */
int tern_service_new(const tern_service_options *o, tern_service **out);
/* After tern_service_run has returned (or instead of running it). */
void tern_service_free(tern_service *svc);

/* The service's health object (owned by the service) and server. */
tern_health *tern_service_health(tern_service *svc);
tern_http_server *tern_service_server(tern_service *svc);
int tern_service_port(const tern_service *svc);

/* Add a shutdown hook; hooks run in reverse order of registration.  name
 * is copied (for the log line of a failed hook).  -EINVAL, -ENOMEM. */
int tern_service_on_shutdown(tern_service *svc, const char *name, tern_service_hook_fn *fn,
                             void *arg);

/* Serve, run start-up, become ready, wait for SIGTERM or SIGINT (unless
 * no_signals) or tern_service_stop, then stop gracefully as above.
 * Returns 0 (also when the drain deadline forced connections closed or a
 * hook failed: both are logged), the start function's error, or -errno if
 * the server could not serve.  From a coroutine; once per service. */
int tern_service_run(tern_service *svc);

/* Ask a running (or about to run) service to stop, as a signal would.
 * Any coroutine or thread; idempotent. */
void tern_service_stop(tern_service *svc);

#ifdef __cplusplus
}
#endif
#endif
