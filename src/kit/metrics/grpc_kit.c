/*
 * grpc_kit.c - the kit's interceptors on by default: what a tern service
 * puts on its gRPC servers and channels (metrics outermost, so they time
 * the tracing too, then tracing, then on servers the access log).
 */
#include <errno.h>

#include "base/check.h"
#include "tern/grpc.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/trace.h"

int tern_grpc_server_use_kit(tern_grpc_server *s)
{
    TERN_CHECK_ARG(s);
    int rc = tern_grpc_server_add_interceptor(s, tern_grpc_metrics_interceptor, NULL);
    if (rc == 0)
        rc = tern_grpc_server_add_interceptor(s, tern_grpc_trace_server_interceptor, NULL);
    if (rc == 0)     /* inside the span: its line names the trace */
        rc = tern_grpc_server_add_interceptor(s, tern_grpc_access_log_interceptor, NULL);
    return rc;
}

static const tern_grpc_client_interceptor kit_client[] = {
    { tern_grpc_client_metrics_interceptor, NULL },
    { tern_grpc_trace_client_interceptor, NULL },
};

const tern_grpc_client_interceptor *tern_grpc_kit_client_interceptors(size_t *n)
{
    TERN_CHECK_ARG(n);
    *n = sizeof kit_client / sizeof kit_client[0];
    return kit_client;
}
