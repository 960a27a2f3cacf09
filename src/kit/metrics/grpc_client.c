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

#include "base/check.h"
#include "grpc_names.h"
#include "tern/runtime.h"

struct tern_grpc_client_metrics {
    tern__grpc_families f;
};

int tern_grpc_client_metrics_new(const tern_grpc_metrics_options *o, tern_grpc_client_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_grpc_client_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    int rc = tern__grpc_families_new(o, "client", &m->f);
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
    int64_t t0;
    tern__grpc_labels l;
} inflight;

static void done(tern_grpc_client_call *cc, void *arg)
{
    inflight *f = arg;
    const char *code = tern__grpc_code_name(tern_grpc_client_call_code(cc));
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(f->m->f.handled, &c, f->l.type, f->l.service, f->l.method, code) == 0)
        tern_metrics_counter_inc(c);
    tern_metrics_histogram *h;
    if (tern_metrics_histogram_with(f->m->f.seconds, &h, f->l.type, f->l.service, f->l.method) == 0)
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
    f->m = m;
    tern__grpc_labels_of(md, &f->l);
    if (tern_grpc_client_call_on_done(cc, done, f) < 0) {
        free(f);
        return tern_grpc_client_call_next(cc);
    }
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(m->f.started, &c, f->l.type, f->l.service, f->l.method) == 0)
        tern_metrics_counter_inc(c);
    f->t0 = tern_now();
    return tern_grpc_client_call_next(cc);
}
