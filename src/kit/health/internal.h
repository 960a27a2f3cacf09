/*
 * internal.h - what the health object offers the kit's other faces of it
 * (grpc_health.c: grpc.health.v1.Health).
 */
#ifndef TERN_KIT_HEALTH_INTERNAL_H
#define TERN_KIT_HEALTH_INTERNAL_H

#include <stdbool.h>

#include "tern/health.h"

/* Run checks as a probe does and say whether they pass: the checks whose
 * kind meets mask (TERN_HEALTH_LIVENESS, _READINESS or _BOTH), or, when
 * only is set, the one check of that name whatever its kind; with_ready
 * adds the readiness flag.  1 pass, 0 fail, -ENOENT when only names no
 * check, -ENOMEM, or ctx's error. */
int tern__health_eval(tern_health *h, unsigned mask, bool with_ready, const char *only, tern_ctx *ctx);

#endif
