/*
 * grpc_names.c - the families and labels the gRPC server's and client's
 * metrics share (grpc_names.h).
 */
#define _GNU_SOURCE
#include "grpc_names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const go_code[] = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
};
_Static_assert(sizeof go_code / sizeof *go_code == TERN_GRPC_UNAUTHENTICATED + 1,
               "a Go name for every code");

static const char *const go_type[] = {"unary", "server_stream", "client_stream", "bidi_stream"};
_Static_assert(TERN_GRPC_UNARY == 0 && TERN_GRPC_SERVER_STREAMING == 1 && TERN_GRPC_CLIENT_STREAMING == 2 &&
                   TERN_GRPC_BIDI_STREAMING == 3,
               "go_type follows tern_grpc_method_type's order");

const char *tern__grpc_code_name(tern_grpc_code code)
{
    return (unsigned)code <= TERN_GRPC_UNAUTHENTICATED ? go_code[code] : "Unknown";
}

void tern__grpc_labels_of(const tern_grpc_method_desc *md, tern__grpc_labels *out)
{
    /* "/pkg.Service/Method": the service is between the slashes */
    const char *svc = md->path + (md->path[0] == '/');
    const char *slash = strrchr(svc, '/');
    size_t len = slash ? (size_t)(slash - svc) : strlen(svc);
    if (len >= sizeof out->service)
        len = sizeof out->service - 1;
    memcpy(out->service, svc, len);
    out->service[len] = 0;
    out->type = (unsigned)md->type < 4 ? go_type[md->type] : "unary";
    out->method = md->name ? md->name : (slash ? slash + 1 : "");
}

int tern__grpc_families_new(const tern_grpc_metrics_options *o, const char *side,
                            tern__grpc_families *out)
{
    static const char *const labels[] = {"grpc_type", "grpc_service", "grpc_method", NULL};
    static const char *const code_labels[] = {"grpc_type", "grpc_service", "grpc_method", "grpc_code", NULL};
    bool server = strcmp(side, "server") == 0;
    tern_metrics_registry *r = o ? o->registry : NULL;
    char name[3][48];
    snprintf(name[0], sizeof name[0], "grpc_%s_started_total", side);
    snprintf(name[1], sizeof name[1], "grpc_%s_handled_total", side);
    snprintf(name[2], sizeof name[2], "grpc_%s_handling_seconds", side);
    tern_metrics_family_options fo = {
        .type = TERN_METRICS_COUNTER, .name = name[0], .labels = labels,
        .help = server ? "RPCs started on the server." : "RPCs started by the client."};
    int rc = tern_metrics_family_new(r, &fo, &out->started);
    if (rc < 0)
        return rc;
    fo = (tern_metrics_family_options){
        .type = TERN_METRICS_COUNTER, .name = name[1], .labels = code_labels,
        .help = server ? "RPCs completed on the server, by status code."
                       : "RPCs completed by the client, by status code."};
    if ((rc = tern_metrics_family_new(r, &fo, &out->handled)) < 0)
        return rc;
    fo = (tern_metrics_family_options){
        .type = TERN_METRICS_HISTOGRAM, .name = name[2], .labels = labels,
        .help = server ? "Seconds from an RPC's start to its end on the server."
                       : "Seconds from an RPC's start to its end on the client.",
        .bounds = o ? o->buckets : NULL, .nbounds = o ? o->nbuckets : 0};
    return tern_metrics_family_new(r, &fo, &out->seconds);
}
