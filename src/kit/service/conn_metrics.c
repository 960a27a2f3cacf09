/*
 * conn_metrics.c - the HTTP server's connection limit as metrics: how many
 * connections are open, the limit, and how often accepting paused at it
 * (issue 15: a server without a limit took 839 MB for 50 slow clients; with
 * one, an operator must see when it bites).  The server lives below the
 * kit and cannot count into a registry, so the service copies its stats
 * here while it waits for a stop.
 *
 * The values sit in static storage that the metrics' functions read: a
 * registry entry outlives any one service (the default registry is never
 * freed, and tests run many services in one process), so it must not
 * point at a service or server that is freed.  Several services in one
 * process add their pauses to the one counter; the gauges show the latest.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "kit/service/internal.h"
#include "tern/metrics.h"

static _Atomic uint64_t pauses;
static _Atomic uint32_t open_conns, limit;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static double read_pauses(void *arg) { (void)arg; return (double)atomic_load(&pauses); }
static double read_open(void *arg) { (void)arg; return atomic_load(&open_conns); }
static double read_limit(void *arg) { (void)arg; return atomic_load(&limit); }

/* -EEXIST (a program registered these names itself) leaves them its own. */
static void register_once(void)
{
    (void)tern_metrics_gauge_func(NULL, "http_server_connections",
                                  "HTTP connections open now.", read_open, NULL);
    (void)tern_metrics_gauge_func(NULL, "http_server_max_connections",
                                  "The HTTP server's connection limit (max_conns); 0: none.",
                                  read_limit, NULL);
    (void)tern_metrics_counter_func(NULL, "http_server_conn_limit_pauses_total",
                                    "Times the HTTP server stopped accepting at max_conns.",
                                    read_pauses, NULL);
}

void tern__service_conn_metrics(tern_http_server *s, uint64_t *seen)
{
    pthread_once(&once, register_once);
    struct tern_http_server_stats st;
    if (tern_http_server_stats(s, &st) < 0)
        return;
    if (st.conn_limit_hits > *seen) {
        atomic_fetch_add_explicit(&pauses, st.conn_limit_hits - *seen, memory_order_relaxed);
        *seen = st.conn_limit_hits;
    }
    atomic_store_explicit(&open_conns, st.conns, memory_order_relaxed);
    atomic_store_explicit(&limit, st.max_conns, memory_order_relaxed);
}
