/*
 * grpc_names.h - what the gRPC server's and client's metrics share: their
 * three families, named as go-grpc-prometheus names them for each side,
 * and the labels of a call (Go's spellings of types and codes, the
 * service and method from the method's path).
 */
#ifndef TERN_KIT_METRICS_GRPC_NAMES_H
#define TERN_KIT_METRICS_GRPC_NAMES_H

#include <stddef.h>

#include "tern/grpc.h"
#include "tern/metrics.h"

typedef struct tern__grpc_families {
    tern_metrics_family *started, *handled, *seconds;
} tern__grpc_families;

/* grpc_<side>_started_total, grpc_<side>_handled_total and
 * grpc_<side>_handling_seconds in o's registry (the default one if o or
 * its registry is NULL); side is "server" or "client".  0 or -errno (the
 * registry's: -EEXIST for a name taken with other labels, -ENOMEM). */
int tern__grpc_families_new(const tern_grpc_metrics_options *o, const char *side,
                            tern__grpc_families *out);

/* A call's labels from md (its path set): Go's name of its type
 * ("unary"), its service ("pkg.Service", cut to 255 bytes) and its method
 * (pointing into md).  tern__grpc_code_name: Go's name of a code
 * ("NotFound"; "Unknown" for a value out of range). */
typedef struct tern__grpc_labels {
    const char *type, *method;
    char service[256];
} tern__grpc_labels;

void tern__grpc_labels_of(const tern_grpc_method_desc *md, tern__grpc_labels *out);
const char *tern__grpc_code_name(tern_grpc_code code);

#endif
