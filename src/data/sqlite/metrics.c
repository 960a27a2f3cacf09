/*
 * metrics.c - the SQLite client's metrics: one set of families per
 * registry, shared by databases told apart by the `db` label.  Each
 * database looks up its children once (sq_obs); query durations are
 * labelled by the SQL's first keyword and kept with the cached statement,
 * so the hot path pays one histogram observation.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "data/sqlite/internal.h"

struct tern_sqlite_metrics {
    tern_metrics_family *query_s, *wait_s, *busy, *tx;
};

/* Query latencies: 10 us to 10 s (an embedded database answers faster
 * than a server). */
static const double query_bounds[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                      0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,    0.25,
                                      0.5,     1,        2.5,     10};

int tern_sqlite_metrics_new(tern_metrics_registry *r, tern_sqlite_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_sqlite_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    static const char *const db[] = {"db", NULL};
    static const char *const db_stmt[] = {"db", "statement", NULL};
    static const char *const db_conn[] = {"db", "conn", NULL};
    static const char *const db_outcome[] = {"db", "outcome", NULL};
    size_t nb = sizeof query_bounds / sizeof query_bounds[0];
    const tern_metrics_family_options fams[] = {
        {TERN_METRICS_HISTOGRAM, "tern_sqlite_query_duration_seconds", "SQLite statement duration.", db_stmt,
         query_bounds, nb},
        {TERN_METRICS_HISTOGRAM, "tern_sqlite_queue_wait_seconds",
         "Time a request waited for its connection's thread.", db_conn, query_bounds, nb},
        {TERN_METRICS_COUNTER, "tern_sqlite_busy_waits_total", "Steps of the busy handler (another lock holder).",
         db, NULL, 0},
        {TERN_METRICS_COUNTER, "tern_sqlite_tx_total", "Transactions ended, by outcome.", db_outcome, NULL, 0},
    };
    tern_metrics_family **dst[] = {&m->query_s, &m->wait_s, &m->busy, &m->tx};
    for (size_t i = 0; i < 4; i++) {
        int rc = tern_metrics_family_new(r, &fams[i], dst[i]);
        if (rc < 0) {
            free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void tern_sqlite_metrics_free(tern_sqlite_metrics *m)
{
    free(m);
}

void tern__sq_obs_init(tern_sqlite *db)
{
    tern_sqlite_metrics *m = db->metrics;
    if (!m)
        return;
    /* A child that cannot be made (out of memory) is reported nowhere. */
    tern_metrics_histogram_with(m->wait_s, &db->obs.wait_writer, db->name, "writer");
    tern_metrics_histogram_with(m->wait_s, &db->obs.wait_reader, db->name, "reader");
    tern_metrics_counter_with(m->busy, &db->obs.busy, db->name);
    tern_metrics_counter_with(m->tx, &db->obs.commits, db->name, "commit");
    tern_metrics_counter_with(m->tx, &db->obs.rollbacks, db->name, "rollback");
}

tern_metrics_histogram *tern__sq_query_hist(tern_sqlite *db, const char *sql)
{
    if (!db->metrics)
        return NULL;
    char kw[16];
    while (*sql && (isspace((unsigned char)*sql) || *sql == '('))
        sql++;
    size_t i = 0;
    for (; i + 1 < sizeof kw && isalpha((unsigned char)sql[i]); i++)
        kw[i] = (char)tolower((unsigned char)sql[i]);
    kw[i] = '\0';
    if (i == 0)
        snprintf(kw, sizeof kw, "other");
    tern_metrics_histogram *h = NULL;
    tern_metrics_histogram_with(db->metrics->query_s, &h, db->name, kw);
    return h;
}
