/*
 * grpc.c - gRPC server metrics as go-grpc-prometheus names them, so the
 * dashboards and alerts written for Go services read tern's unchanged:
 *   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
 *   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
 *   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}
 * grpc_type is unary, client_stream, server_stream or bidi_stream;
 * grpc_code is Go's spelling of the code (OK, NotFound, ...).  Counted by
 * an interceptor (tern_grpc_server_add_interceptor), outermost for the
 * whole handling time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "tern/grpc.h"
#include "tern/metrics.h"
#include "tern/runtime.h"

struct tern_grpc_metrics {
    tern_metrics_family *started, *handled, *seconds;
};

static const char *const go_code[] = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
};

static const char *const go_type[] = {"unary", "server_stream", "client_stream", "bidi_stream"};
_Static_assert(TERN_GRPC_UNARY == 0 && TERN_GRPC_SERVER_STREAMING == 1 && TERN_GRPC_CLIENT_STREAMING == 2 &&
                   TERN_GRPC_BIDI_STREAMING == 3,
               "go_type follows tern_grpc_method_type's order");

int tern_grpc_metrics_new(const tern_grpc_metrics_options *o, tern_grpc_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_grpc_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    tern_metrics_registry *r = o ? o->registry : NULL;
    static const char *const labels[] = {"grpc_type", "grpc_service", "grpc_method", NULL};
    static const char *const code_labels[] = {"grpc_type", "grpc_service", "grpc_method", "grpc_code", NULL};
    tern_metrics_family_options fo = {.type = TERN_METRICS_COUNTER, .name = "grpc_server_started_total",
                                      .help = "RPCs started on the server.", .labels = labels};
    int rc = tern_metrics_family_new(r, &fo, &m->started);
    if (rc == 0) {
        fo = (tern_metrics_family_options){.type = TERN_METRICS_COUNTER, .name = "grpc_server_handled_total",
                                           .help = "RPCs completed on the server, by status code.",
                                           .labels = code_labels};
        rc = tern_metrics_family_new(r, &fo, &m->handled);
    }
    if (rc == 0) {
        fo = (tern_metrics_family_options){
            .type = TERN_METRICS_HISTOGRAM, .name = "grpc_server_handling_seconds",
            .help = "Seconds from an RPC's start to its end on the server.", .labels = labels,
            .bounds = o ? o->buckets : NULL, .nbounds = o ? o->nbuckets : 0};
        rc = tern_metrics_family_new(r, &fo, &m->seconds);
    }
    if (rc < 0) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void tern_grpc_metrics_free(tern_grpc_metrics *m)
{
    free(m);                    /* the families are the registry's */
}

static tern_grpc_metrics *default_set;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
    if (tern_grpc_metrics_new(NULL, &default_set) < 0)
        default_set = NULL;
}

int tern_grpc_metrics_interceptor(tern_grpc_call *call, void *metrics)
{
    tern_grpc_metrics *m = metrics;
    if (!m) {
        pthread_once(&default_once, make_default);
        m = default_set;
    }
    const tern_grpc_method_desc *md = tern_grpc_call_method(call);
    if (!m || !md || !md->path)
        return tern_grpc_call_next(call);   /* nothing to count by (or no memory): serve anyway */
    /* "/pkg.Service/Method": the service is between the slashes */
    const char *svc = md->path + (md->path[0] == '/');
    const char *slash = strrchr(svc, '/');
    size_t svc_len = slash ? (size_t)(slash - svc) : strlen(svc);
    char service[256];
    if (svc_len >= sizeof service)
        svc_len = sizeof service - 1;
    memcpy(service, svc, svc_len);
    service[svc_len] = 0;
    const char *type = (unsigned)md->type < 4 ? go_type[md->type] : "unary";
    const char *method = md->name ? md->name : (slash ? slash + 1 : "");
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(m->started, &c, type, service, method) == 0)
        tern_metrics_counter_inc(c);
    int64_t t0 = tern_now();
    int rc = tern_grpc_call_next(call);
    tern_grpc_code code = tern_grpc_call_code(call);
    const char *code_name = (unsigned)code <= TERN_GRPC_UNAUTHENTICATED ? go_code[code] : "Unknown";
    if (tern_metrics_counter_with(m->handled, &c, type, service, method, code_name) == 0)
        tern_metrics_counter_inc(c);
    tern_metrics_histogram *h;
    if (tern_metrics_histogram_with(m->seconds, &h, type, service, method) == 0)
        tern_metrics_histogram_observe(h, (double)(tern_now() - t0) / 1e9);
    return rc;
}
