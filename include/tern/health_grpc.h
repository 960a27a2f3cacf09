/*
 * tern/health_grpc.h - the health checks of tern/health.h as gRPC's
 * standard health service, grpc.health.v1.Health (Check and Watch), for
 * Kubernetes' grpc probes, grpc_health_probe, and gRPC clients' own health
 * checking.
 *
 *     tern_health_grpc_register(server, health);
 *
 *     livenessProbe:  { grpc: { port: 50051, service: liveness } }
 *     readinessProbe: { grpc: { port: 50051 } }
 *
 * The service name a request carries picks what is checked:
 *     ""  or "readiness"       the readiness flag and the readiness checks (as /readyz)
 *     "liveness"               the liveness checks (as /livez)
 *     a registered service     as "": the server serves it when it is ready
 *     ("helloworld.Greeter")
 *     a check's name ("db")    that check alone
 * and anything else is unknown: Check answers NOT_FOUND, Watch
 * SERVICE_UNKNOWN (and goes on watching, as the protocol asks).  The
 * answer is SERVING when all of it passes, else NOT_SERVING.  Check runs
 * the checks as a probe does (concurrently, each within its timeout; the
 * call's deadline bounds them too).  Watch sends the status at once, then
 * looks again every TERN_HEALTH_GRPC_WATCH_INTERVAL and sends each change,
 * until the client goes away or the server shuts down (a shutdown clears
 * the readiness flag first, so watchers see NOT_SERVING).
 *
 * h and s are borrowed: the health object must outlive the server.
 */
#ifndef TERN_HEALTH_GRPC_H
#define TERN_HEALTH_GRPC_H

#include "tern/grpc.h"
#include "tern/health.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How often Watch runs the checks again (ns). */
#define TERN_HEALTH_GRPC_WATCH_INTERVAL (1000 * 1000 * 1000LL)

/* Register grpc.health.v1.Health on s, answering from h (before serving,
 * as any service).  0, -EINVAL (s or h NULL), or as
 * tern_grpc_server_add_service (-EEXIST when already registered). */
int tern_health_grpc_register(tern_grpc_server *s, tern_health *h);

#ifdef __cplusplus
}
#endif
#endif
