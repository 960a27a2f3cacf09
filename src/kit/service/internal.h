/*
 * internal.h - what service.c takes from the service's other files:
 * conn_metrics.c, the server's connection counts as metrics.
 */
#ifndef TERN_KIT_SERVICE_INTERNAL_H
#define TERN_KIT_SERVICE_INTERNAL_H

#include <stdint.h>

#include "tern/http.h"

/* Publish s's connection counts in the default registry:
 * http_server_connections, http_server_max_connections and
 * http_server_conn_limit_pauses_total (the pauses since *seen, which is
 * advanced).  Cheap (a few loads and stores): called at every STOP_POLL. */
void tern__service_conn_metrics(tern_http_server *s, uint64_t *seen);

#endif
