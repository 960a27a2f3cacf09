/*
 * internal.h - what service.c takes from the service's other files:
 * conn_metrics.c, the server's connection counts as metrics.
 */
#ifndef TERN_KIT_SERVICE_INTERNAL_H
#define TERN_KIT_SERVICE_INTERNAL_H

#include <stdint.h>

#include "tern/http.h"

/* Publish s's connection counts in the default registry while it serves
 * (http_server_connections, http_server_max_connections,
 * http_server_conn_limit_pauses_total), read at scrape time: attach when
 * the service runs, detach before s is shut down and freed. */
void tern__service_conn_metrics_attach(const tern_http_server *s);
void tern__service_conn_metrics_detach(const tern_http_server *s);

#endif
