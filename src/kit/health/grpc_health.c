/*
 * grpc_health.c - grpc.health.v1.Health (Check, Watch) answered from a
 * tern_health (tern/health_grpc.h says what each service name means).
 *
 * The service lives in the kit, above the grpc layer, because it answers
 * from the kit's health object; its messages are protoc-c's, compiled from
 * Debian's grpc-proto at build time into this layer with their globals
 * renamed tern__grpc__* (cmake/grpc_gen.cmake), and its method table is
 * written here by hand: the library cannot run the plugin in a cross
 * build.  The descriptor of health.proto rides along for reflection.
 *
 * Watch polls: each watcher runs its checks again every
 * TERN_HEALTH_GRPC_WATCH_INTERVAL and sends only changes.  A check costs
 * what the probe endpoints cost, and watchers are few (one per client
 * channel that health-checks, one per kubelet probe).
 */
#include "tern/health_grpc.h"

#include <errno.h>
#include <string.h>

#include "grpc/health/v1/health.desc.h"
#include "grpc/health/v1/health.pb-c.h"
#include "kit/health/internal.h"
#include "tern/runtime.h"

typedef Grpc__Health__V1__HealthCheckRequest check_req;
typedef Grpc__Health__V1__HealthCheckResponse check_resp;
typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus serving;

/* The status of service: SERVING or NOT_SERVING, -ENOENT for a name that
 * means nothing here, or -errno (the call's ctx ended). */
static int status_of(const tern_grpc_server *s, tern_health *h, const char *service, tern_ctx *ctx)
{
    int rc;
    if (!service || !*service || !strcmp(service, "readiness")) {
        rc = tern__health_eval(h, TERN_HEALTH_READINESS, true, NULL, ctx);
    } else if (!strcmp(service, "liveness")) {
        rc = tern__health_eval(h, TERN_HEALTH_LIVENESS, false, NULL, ctx);
    } else {
        size_t n = 0;
        const tern_grpc_service_desc *const *svcs = tern_grpc_server_services(s, &n);
        bool registered = false;
        for (size_t i = 0; i < n && !registered; i++)
            registered = !strcmp(svcs[i]->name, service);
        if (registered)
            rc = tern__health_eval(h, TERN_HEALTH_READINESS, true, NULL, ctx);
        else
            rc = tern__health_eval(h, TERN_HEALTH_BOTH, false, service, ctx);
    }
    if (rc < 0)
        return rc;
    return rc ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
              : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static int recv_request(tern_grpc_call *call, const check_req **req)
{
    ProtobufCMessage *m = NULL;
    int rc = tern_grpc_call_recv(call, &m, NULL);
    if (rc == 0)
        return tern_grpc_call_fail(call, TERN_GRPC_INTERNAL, "the client sent no request message");
    if (rc < 0)
        return rc;
    *req = (const check_req *)m;
    return 0;
}

static int send_status(tern_grpc_call *call, int status)
{
    check_resp resp;
    tern__grpc__health__v1__health_check_response__init(&resp);
    resp.status = (serving)status;
    return tern_grpc_call_send(call, &resp.base, NULL);
}

/* impl: the server (for its services' names); arg: the health object. */
static int check_invoke(tern_grpc_call *call, const void *impl, void *arg)
{
    const check_req *req = NULL;
    int rc = recv_request(call, &req);
    if (rc < 0)
        return rc;
    int st = status_of(impl, arg, req->service, tern_grpc_call_ctx(call));
    if (st == -ENOENT)
        return tern_grpc_call_fail(call, TERN_GRPC_NOT_FOUND, "unknown service %s", req->service);
    if (st < 0)
        return st;
    return send_status(call, st);
}

static int watch_invoke(tern_grpc_call *call, const void *impl, void *arg)
{
    const check_req *req = NULL;
    int rc = recv_request(call, &req);
    if (rc < 0)
        return rc;
    /* the request lives until the next recv, which never comes */
    const char *service = req->service;
    tern_ctx *ctx = tern_grpc_call_ctx(call);
    int last = -1;
    for (;;) {
        int st = status_of(impl, arg, service, ctx);
        if (st == -ENOENT)
            st = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
        if (st < 0)
            return st;
        if (st != last && (rc = send_status(call, st)) < 0)
            return rc;
        last = st;
        if ((rc = tern_ctx_sleep(TERN_HEALTH_GRPC_WATCH_INTERVAL, ctx)) < 0)
            return rc;          /* the client went away, or the server is stopping */
    }
}

static const tern_grpc_file_desc health_file = {
    .name = "grpc/health/v1/health.proto",
    .data = grpc_health_v1_health_proto,
    .len = sizeof grpc_health_v1_health_proto,
};

static const tern_grpc_method_desc health_methods[] = {
    {
        .name = "Check",
        .path = "/grpc.health.v1.Health/Check",
        .type = TERN_GRPC_UNARY,
        .input = &tern__grpc__health__v1__health_check_request__descriptor,
        .output = &tern__grpc__health__v1__health_check_response__descriptor,
        .invoke = check_invoke,
    },
    {
        .name = "Watch",
        .path = "/grpc.health.v1.Health/Watch",
        .type = TERN_GRPC_SERVER_STREAMING,
        .input = &tern__grpc__health__v1__health_check_request__descriptor,
        .output = &tern__grpc__health__v1__health_check_response__descriptor,
        .invoke = watch_invoke,
    },
};

static const tern_grpc_service_desc health_service = {
    .name = "grpc.health.v1.Health",
    .methods = health_methods,
    .n_methods = 2,
    .file = &health_file,
};

int tern_health_grpc_register(tern_grpc_server *s, tern_health *h)
{
    if (!s || !h)
        return -EINVAL;
    return tern_grpc_server_add_service(s, &health_service, s, h);
}
