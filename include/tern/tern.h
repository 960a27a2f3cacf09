/*
 * tern/tern.h - everything tern offers, one include, with jansson's
 * <jansson.h> for the JSON values the HTTP and debug APIs pass (the
 * module headers only declare json_t, so that a program using, say, the
 * counters alone does not compile against jansson).
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <jansson.h>

#include "tern/chan.h"
#include "tern/config.h"
#include "tern/context.h"
#include "tern/debug.h"
#include "tern/error.h"
#include "tern/group.h"
#include "tern/grpc.h"
#include "tern/grpc_json.h"
#include "tern/grpc_reflection.h"
#include "tern/health.h"
#include "tern/health_grpc.h"
#include "tern/jwt.h"
#include "tern/http.h"
#include "tern/http_client.h"
#include "tern/http_mw.h"
#include "tern/http_parse.h"
#include "tern/http_router.h"
#include "tern/log.h"
#include "tern/metrics.h"
#include "tern/net.h"
#include "tern/resilience.h"
#include "tern/runtime.h"
#include "tern/service.h"
#include "tern/signal.h"
#include "tern/sync.h"
#include "tern/tls.h"
#include "tern/trace.h"

#endif
