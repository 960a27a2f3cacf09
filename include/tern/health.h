/*
 * tern/health.h - health endpoints, as Kubernetes probes expect them (the
 * service lifecycle that drives readiness is tern/service.h).
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
 * Errors are negative errno.  A health object is the caller's (freed with
 * tern_health_free); it is set up from one coroutine before serving; the
 * handlers and tern_health_set_ready are safe from any coroutine.  A NULL
 * health object passed to any function but tern_health_free aborts naming
 * the function.
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
typedef int tern_health_check_fn(char *msg, size_t msg_len, tern_ctx *ctx, void *arg);

typedef struct tern_health tern_health;

typedef struct tern_health_options {
    int64_t default_timeout;    /* ns for checks added with timeout <= 0; 0: 1 s */
} tern_health_options;

/* A health object, not ready (see tern_health_set_ready).  opts may be
 * NULL (the defaults).  0, -EINVAL (a negative timeout) or -ENOMEM; on
 * failure *out is NULL. */
int tern_health_new(const tern_health_options *opts, tern_health **out);
/* After the last probe has been answered.  A check still running past its
 * timeout keeps its own state alive and frees it when it returns. */
void tern_health_free(tern_health *h);

/* Register a check.  timeout <= 0: the options' default_timeout.  -EINVAL for an empty name or one
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

#ifdef __cplusplus
}
#endif
#endif
