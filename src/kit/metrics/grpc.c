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

#include "base/check.h"
#include "grpc_names.h"
#include "tern/runtime.h"

struct tern_grpc_metrics {
    tern__grpc_families f;
};

int tern_grpc_metrics_new(const tern_grpc_metrics_options *o, tern_grpc_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_grpc_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    int rc = tern__grpc_families_new(o, "server", &m->f);
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
    tern__grpc_labels l;
    tern__grpc_labels_of(md, &l);
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(m->f.started, &c, l.type, l.service, l.method) == 0)
        tern_metrics_counter_inc(c);
    int64_t t0 = tern_now();
    int rc = tern_grpc_call_next(call);
    const char *code = tern__grpc_code_name(tern_grpc_call_code(call));
    if (tern_metrics_counter_with(m->f.handled, &c, l.type, l.service, l.method, code) == 0)
        tern_metrics_counter_inc(c);
    tern_metrics_histogram *h;
    if (tern_metrics_histogram_with(m->f.seconds, &h, l.type, l.service, l.method) == 0)
        tern_metrics_histogram_observe(h, (double)(tern_now() - t0) / 1e9);
    return rc;
}
