/*
 * conn_metrics.c - the HTTP server's connection limit as metrics: how many
 * connections are open, the limit, and how often accepting paused at it
 * (issue 15: a server without a limit took 839 MB for 50 slow clients; with
 * one, an operator must see when it bites).  The server lives below the
 * kit and cannot count into a registry, so the metrics' functions read
 * the running services' servers when scraped: a running service attaches
 * its server, and detaches it before it stops (the servers are freed only
 * after).  Nothing is copied between scrapes, so an idle service does not
 * wake for it.
 *
 * The registry entries outlive any one service (the default registry is
 * never freed, and tests run many services in one process), so they point
 * at this file's table, never at a service.  Several services in one
 * process add their pauses to the one counter (a detached server's count
 * is kept); the gauges show the latest attached, or the last values seen
 * once none is.
 */
#include <pthread.h>
#include <string.h>

#include "kit/service/internal.h"
#include "tern/metrics.h"

#define MAX_SERVERS 16

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const tern_http_server *live[MAX_SERVERS];     /* under mu, oldest first */
static int nlive;
static uint64_t pauses_gone;            /* the detached servers' pauses */
static uint32_t last_open, last_limit;  /* the latest's, when none is attached */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Under mu: the latest server's stats into last_*, and the pauses of all. */
static uint64_t refresh_locked(void)
{
    uint64_t pauses = pauses_gone;
    for (int i = 0; i < nlive; i++) {
        struct tern_http_server_stats st;
        if (tern_http_server_stats(live[i], &st) < 0)
            continue;
        pauses += st.conn_limit_hits;
        if (i == nlive - 1) {
            last_open = st.conns;
            last_limit = st.max_conns;
        }
    }
    return pauses;
}

static double read_pauses(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    uint64_t v = refresh_locked();
    pthread_mutex_unlock(&mu);
    return (double)v;
}

/* arg: &last_open or &last_limit, read fresh */
static double read_latest(void *arg)
{
    const uint32_t *field = arg;
    pthread_mutex_lock(&mu);
    refresh_locked();
    uint32_t v = *field;
    pthread_mutex_unlock(&mu);
    return v;
}

/* -EEXIST (a program registered these names itself) leaves them its own. */
static void register_once(void)
{
    (void)tern_metrics_gauge_func(NULL, "http_server_connections",
                                  "HTTP connections open now.", read_latest, &last_open);
    (void)tern_metrics_gauge_func(NULL, "http_server_max_connections",
                                  "The HTTP server's connection limit (max_conns); 0: none.",
                                  read_latest, &last_limit);
    (void)tern_metrics_counter_func(NULL, "http_server_conn_limit_pauses_total",
                                    "Times the HTTP server stopped accepting at max_conns.",
                                    read_pauses, NULL);
}

void tern__service_conn_metrics_attach(const tern_http_server *s)
{
    pthread_once(&once, register_once);
    pthread_mutex_lock(&mu);
    if (nlive == MAX_SERVERS) {
        /* more services at once than anyone runs: the oldest stops showing,
         * its pauses so far kept */
        struct tern_http_server_stats st;
        if (tern_http_server_stats(live[0], &st) == 0)
            pauses_gone += st.conn_limit_hits;
        memmove(live, live + 1, (size_t)(nlive - 1) * sizeof *live);
        nlive--;
    }
    live[nlive++] = s;
    pthread_mutex_unlock(&mu);
}

void tern__service_conn_metrics_detach(const tern_http_server *s)
{
    pthread_mutex_lock(&mu);
    refresh_locked();
    for (int i = 0; i < nlive; i++) {
        if (live[i] != s)
            continue;
        struct tern_http_server_stats st;
        if (tern_http_server_stats(s, &st) == 0)
            pauses_gone += st.conn_limit_hits;
        memmove(live + i, live + i + 1, (size_t)(nlive - i - 1) * sizeof *live);
        nlive--;
        break;
    }
    pthread_mutex_unlock(&mu);
}
