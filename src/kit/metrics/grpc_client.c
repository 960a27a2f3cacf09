/*
 * grpc_client.c - gRPC client metrics as go-grpc-prometheus names them
 * (grpc_client_started_total, grpc_client_handled_total,
 * grpc_client_handling_seconds), counted by a client interceptor that is
 * told of each call's end (tern_grpc_client_call_on_done), so streams are
 * timed to their last message, not to their opening.
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

struct tern_grpc_client_metrics {
    tern_metrics_family *started, *handled, *seconds;
};

/* Go's spellings (grpc-go's codes.Code String()), shared with the server's. */
static const char *const go_code[] = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
};
static const char *const go_type[] = {"unary", "server_stream", "client_stream", "bidi_stream"};

int tern_grpc_client_metrics_new(const tern_grpc_metrics_options *o, tern_grpc_client_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_grpc_client_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    tern_metrics_registry *r = o ? o->registry : NULL;
    static const char *const labels[] = {"grpc_type", "grpc_service", "grpc_method", NULL};
    static const char *const code_labels[] = {"grpc_type", "grpc_service", "grpc_method", "grpc_code", NULL};
    tern_metrics_family_options fo = {.type = TERN_METRICS_COUNTER, .name = "grpc_client_started_total",
                                      .help = "RPCs started by the client.", .labels = labels};
    int rc = tern_metrics_family_new(r, &fo, &m->started);
    if (rc == 0) {
        fo = (tern_metrics_family_options){.type = TERN_METRICS_COUNTER, .name = "grpc_client_handled_total",
                                           .help = "RPCs completed by the client, by status code.",
                                           .labels = code_labels};
        rc = tern_metrics_family_new(r, &fo, &m->handled);
    }
    if (rc == 0) {
        fo = (tern_metrics_family_options){
            .type = TERN_METRICS_HISTOGRAM, .name = "grpc_client_handling_seconds",
            .help = "Seconds from an RPC's start to its end on the client.", .labels = labels,
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

void tern_grpc_client_metrics_free(tern_grpc_client_metrics *m)
{
    free(m);                    /* the families are the registry's */
}

static tern_grpc_client_metrics *default_set;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
    if (tern_grpc_client_metrics_new(NULL, &default_set) < 0)
        default_set = NULL;
}

/* One call in flight: its labels and start, until it is done. */
typedef struct inflight {
    tern_grpc_client_metrics *m;
    const char *type, *method;
    int64_t t0;
    char service[256];
} inflight;

static void done(tern_grpc_client_call *cc, void *arg)
{
    inflight *f = arg;
    tern_grpc_code code = tern_grpc_client_call_code(cc);
    const char *code_name = (unsigned)code <= TERN_GRPC_UNAUTHENTICATED ? go_code[code] : "Unknown";
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(f->m->handled, &c, f->type, f->service, f->method, code_name) == 0)
        tern_metrics_counter_inc(c);
    tern_metrics_histogram *h;
    if (tern_metrics_histogram_with(f->m->seconds, &h, f->type, f->service, f->method) == 0)
        tern_metrics_histogram_observe(h, (double)(tern_now() - f->t0) / 1e9);
    free(f);
}

int tern_grpc_client_metrics_interceptor(tern_grpc_client_call *cc, void *metrics)
{
    tern_grpc_client_metrics *m = metrics;
    if (!m) {
        pthread_once(&default_once, make_default);
        m = default_set;
    }
    const tern_grpc_method_desc *md = tern_grpc_client_call_method(cc);
    inflight *f = m && md && md->path ? malloc(sizeof *f) : NULL;
    if (!f)
        return tern_grpc_client_call_next(cc);  /* nothing to count by (or no memory): call anyway */
    const char *svc = md->path + (md->path[0] == '/');
    const char *slash = strrchr(svc, '/');
    size_t svc_len = slash ? (size_t)(slash - svc) : strlen(svc);
    if (svc_len >= sizeof f->service)
        svc_len = sizeof f->service - 1;
    memcpy(f->service, svc, svc_len);
    f->service[svc_len] = 0;
    f->m = m;
    f->type = (unsigned)md->type < 4 ? go_type[md->type] : "unary";
    f->method = md->name ? md->name : (slash ? slash + 1 : "");
    if (tern_grpc_client_call_on_done(cc, done, f) < 0) {
        free(f);
        return tern_grpc_client_call_next(cc);
    }
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(m->started, &c, f->type, f->service, f->method) == 0)
        tern_metrics_counter_inc(c);
    f->t0 = tern_now();
    return tern_grpc_client_call_next(cc);
}
