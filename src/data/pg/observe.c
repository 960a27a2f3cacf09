/*
 * observe.c - the PostgreSQL client's metrics and tracing spans.
 *
 * Metrics: one set of families per registry (tern_pg_metrics), shared by
 * pools that tell themselves apart by the `pool` label.  Each pool looks up
 * its own children once (pg_obs); query durations are labelled by
 * statement, looked up per call for ad-hoc SQL and kept with the cached
 * statement otherwise.  The label is a prepared statement's name or the
 * SQL's first keyword: SQL text would make a series per query.
 *
 * Spans: only when the query's ctx carries one, so that an untraced query
 * pays one look-up.  db.statement is sanitized: string and number literals
 * become '?', so that values (passwords, personal data) written into SQL
 * do not reach the trace backend.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pg/pg_internal.h"
#include "tern/runtime.h"
#include "tern/error.h"
#include "tern/trace.h"

struct tern_pg_metrics {
    tern_metrics_family *conns, *waits, *wait_s, *query_s;
};

/* Query latencies: 100 us to 10 s. */
static const double query_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 10};

int tern_pg_metrics_new(tern_metrics_registry *r, tern_pg_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_pg_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    static const char *const pool[] = {"pool", NULL};
    static const char *const pool_state[] = {"pool", "state", NULL};
    static const char *const pool_stmt[] = {"pool", "statement", NULL};
    const tern_metrics_family_options fams[] = {
        {TERN_METRICS_GAUGE, "tern_pg_pool_connections", "PostgreSQL pool connections by state.",
         pool_state, NULL, 0},
        {TERN_METRICS_COUNTER, "tern_pg_pool_waits_total", "Acquisitions that waited for a connection.",
         pool, NULL, 0},
        {TERN_METRICS_HISTOGRAM, "tern_pg_pool_wait_seconds", "Time spent waiting for a connection.", pool,
         NULL, 0},
        {TERN_METRICS_HISTOGRAM, "tern_pg_query_duration_seconds", "PostgreSQL query duration.", pool_stmt,
         query_bounds, sizeof query_bounds / sizeof query_bounds[0]},
    };
    tern_metrics_family **dst[] = {&m->conns, &m->waits, &m->wait_s, &m->query_s};
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

void tern_pg_metrics_free(tern_pg_metrics *m)
{
    free(m);
}

int tern__pg_obs_init(pg_obs *o, tern_pg_metrics *m, const char *pool)
{
    memset(o, 0, sizeof *o);
    o->m = m;
    o->pool = pool;
    if (!m)
        return 0;
    int rc = tern_metrics_gauge_with(m->conns, &o->in_use, pool, "in_use");
    if (rc == 0)
        rc = tern_metrics_gauge_with(m->conns, &o->idle, pool, "idle");
    if (rc == 0)
        rc = tern_metrics_counter_with(m->waits, &o->waits, pool);
    if (rc == 0)
        rc = tern_metrics_histogram_with(m->wait_s, &o->wait_s, pool);
    return rc;
}

/* The statement label: the first keyword of sql, lower case. */
static void keyword(const char *sql, char *out, size_t n)
{
    while (*sql && (isspace((unsigned char)*sql) || *sql == '('))
        sql++;
    size_t i = 0;
    for (; i + 1 < n && isalpha((unsigned char)sql[i]); i++)
        out[i] = (char)tolower((unsigned char)sql[i]);
    out[i] = '\0';
    if (i == 0)
        snprintf(out, n, "other");
}

tern_metrics_histogram *tern__pg_obs_query_hist(const pg_obs *o, const char *name, const char *sql)
{
    if (!o || !o->m)
        return NULL;
    char kw[16];
    if (!name) {
        keyword(sql, kw, sizeof kw);
        name = kw;
    }
    tern_metrics_histogram *h = NULL;
    tern_metrics_histogram_with(o->m->query_s, &h, o->pool, name);
    return h;
}

/* sql with its literals replaced by '?' (truncated to the span limit). */
static char *sanitize(const char *sql)
{
    size_t n = strlen(sql);
    if (n > TERN_TRACE_STR_MAX)
        n = TERN_TRACE_STR_MAX;
    char *out = malloc(n + 1), *w = out;
    if (!out)
        return NULL;
    const char *s = sql, *end = sql + n;
    bool word = false;              /* inside an identifier: digits are its own */
    while (s < end) {
        char ch = *s;
        if (ch == '\'') {
            /* A string literal; '' inside it is a quote. */
            for (s++; s < end; s++)
                if (*s == '\'' && !(s + 1 < end && s[1] == '\'' && s++))
                    break;
            s++;
            *w++ = '?';
            word = false;
        } else if (!word && isdigit((unsigned char)ch)) {
            while (s < end && (isalnum((unsigned char)*s) || *s == '.'))
                s++;
            *w++ = '?';
        } else {
            word = isalnum((unsigned char)ch) || ch == '_' || ch == '$';
            *w++ = ch;
            s++;
        }
    }
    *w = '\0';
    return out;
}

tern_trace_span *tern__pg_span_start(const char *name, const char *sql, tern_ctx *ctx)
{
    tern_trace_span *parent = ctx ? tern_trace_span_from_ctx(ctx) : NULL;
    if (!tern_trace_span_recording(parent))
        return NULL;
    char kw[16], title[80];
    if (!name) {
        keyword(sql ? sql : "", kw, sizeof kw);
        name = kw;
    }
    snprintf(title, sizeof title, "pg %s", name);
    tern_trace_span *s;
    if (tern_trace_span_start(title, TERN_TRACE_KIND_CLIENT, tern_trace_span_context_of(parent), &s) < 0)
        return NULL;
    tern_trace_span_set(s, &TERN_TRACE_STR("db.system", "postgresql"));
    tern_trace_span_set(s, &TERN_TRACE_STR("db.operation", name));
    char *clean = sql ? sanitize(sql) : NULL;
    if (clean)
        tern_trace_span_set(s, &TERN_TRACE_STR("db.statement", clean));
    free(clean);
    return s;
}

void tern__pg_span_end(tern_trace_span *s, const tern_pg_conn *c, int rc)
{
    if (!s)
        return;
    if (rc < 0) {
        /* Not the server's message: it quotes values ("LINE 1: ... 'x'",
         * "invalid input syntax ...: \"x\""), which db.statement hides. */
        char msg[48];
        if (c->err.sqlstate[0]) {
            tern_trace_span_set(s, &TERN_TRACE_STR("db.sqlstate", c->err.sqlstate));
            snprintf(msg, sizeof msg, "SQLSTATE %s", c->err.sqlstate);
        } else {
            snprintf(msg, sizeof msg, "%s", tern_strerror(rc));
        }
        tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, msg);
    }
    tern_trace_span_end(s);
    tern_trace_span_free(s);
}
