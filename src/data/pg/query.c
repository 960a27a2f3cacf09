/*
 * query.c - one query's round trip on the netpoller, its cancellation, and
 * the per-connection cache of prepared statements.
 *
 * In non-blocking mode libpq only queues what we send: PQflush writes
 * what the socket takes and returns 1 while more is left, and then we park
 * until the socket is writable (or readable: the server may be sending, and
 * libpq must read to avoid a deadlock in which both sides' buffers are
 * full).  Reading is PQconsumeInput while PQisBusy, parking on readable,
 * then PQgetResult until it returns NULL, which ends the command.
 *
 * When the ctx ends mid-query we do not simply drop the connection: the
 * server would go on running the query.  PQcancel (a blocking connect to
 * the postmaster, so on the blocking pool) asks it to stop, and we read the
 * rest of the command's results, bounded by cancel_drain_ns, so that the
 * connection is in step again and can be reused.  PQcancel returns only
 * after the postmaster has signalled the backend, so a cancel that arrives
 * after the query ended finds the backend idle (ignored) before our next
 * query is sent.  tern_pg_pool_query does not make its caller wait for
 * that: the query is abandoned (the caller gets its ctx's error at once)
 * and the release cancels and drains it in a coroutine of the pool's
 * before anyone else gets the connection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pg/pg_internal.h"
#include "tern/runtime.h"
#include "tern/trace.h"

static int pg_broken(tern_pg_conn *c)
{
    tern__pg_set_error(c, NULL);
    c->broken = true;
    return -EPIPE;
}

int tern__pg_flush(tern_pg_conn *c, int64_t deadline, tern_ctx *ctx)
{
    for (;;) {
        int r = PQflush(c->pg);
        if (r == 0)
            return 0;
        if (r < 0)
            return pg_broken(c);
        int rc = tern__pg_wait(c, TERN_FD_READ | TERN_FD_WRITE, deadline, ctx);
        if (rc < 0)
            return rc;
        if (!PQconsumeInput(c->pg))
            return pg_broken(c);
    }
}

/* Every result of the command: *last is the last successful one (the
 * caller's), and the first error, if any, is recorded and wins. */
int tern__pg_read_results(tern_pg_conn *c, PGresult **last, bool copy, int64_t deadline, tern_ctx *ctx)
{
    PGresult *keep = NULL, *error = NULL;
    int rc = 0;
    for (;;) {
        while (PQisBusy(c->pg)) {
            rc = tern__pg_wait(c, TERN_FD_READ, deadline, ctx);
            if (rc < 0)
                goto fail;
            if (!PQconsumeInput(c->pg)) {
                rc = pg_broken(c);
                goto fail;
            }
        }
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            break;
        switch (PQresultStatus(r)) {
        case PGRES_FATAL_ERROR:
            if (!error)
                error = r;
            else
                PQclear(r);
            break;
        case PGRES_COPY_IN:
        case PGRES_COPY_OUT:
            if (copy && !error) {
                /* The caller moves the data (copy.c); the command's end
                 * comes after. */
                PQclear(keep);
                *last = r;
                return 0;
            }
            /* fall through */
        case PGRES_COPY_BOTH:
            /* COPY outside tern_pg_copy_*: the protocol would stall here. */
            PQclear(r);
            tern__pg_copy_error(&c->err, "", "tern_pg: COPY needs tern_pg_copy_in / _out");
            c->broken = true;
            rc = -ENOTSUP;
            goto fail;
        default:
            PQclear(keep);
            keep = r;
        }
    }
    if (error) {
        tern__pg_set_error(c, error);
        PQclear(error);
        PQclear(keep);
        return -EREMOTEIO;
    }
    *last = keep;
    return 0;
fail:
    PQclear(keep);
    PQclear(error);
    return rc;
}

typedef struct cancel_job {
    PGcancel *cancel;
    char msg[256];
} cancel_job;

static int cancel_run(void *arg)
{
    cancel_job *j = arg;
    return PQcancel(j->cancel, j->msg, sizeof j->msg) ? 0 : -EIO;
}

int tern__pg_cancel_request(tern_pg_conn *c)
{
    /* Not on our stack: a shared-stack coroutine's is someone else's
     * while we wait for the pool. */
    cancel_job *j = malloc(sizeof *j);
    if (!j)
        return -ENOMEM;
    j->cancel = c->cancel;
    int rc = tern_blocking(cancel_run, j);
    free(j);
    return rc;
}

/* The ctx ended (cause) with a command in flight: cancel it and read to
 * its end so that the connection can be used again. */
int tern__pg_cancel_and_drain(tern_pg_conn *c, int cause)
{
    int rc = tern__pg_cancel_request(c);
    if (rc < 0) {
        c->broken = true;
        return cause;
    }
    int64_t deadline = tern_now() + c->opts.cancel_drain_ns;
    PGresult *res = NULL;
    rc = tern__pg_flush(c, deadline, NULL);
    if (rc == 0)
        rc = tern__pg_read_results(c, &res, false, deadline, NULL);
    PQclear(res);
    /* A server error here is the cancel's own (57014), or the query's: the
     * command has ended either way. */
    if (rc < 0 && rc != -EREMOTEIO)
        c->broken = true;
    return cause;
}

int tern__pg_abandon(tern_pg_conn *c, int cause)
{
    if (!c->defer_drain)
        return tern__pg_cancel_and_drain(c, cause);
    /* The caller's deadline has passed: it must not also wait for the
     * postmaster's round trip and the server to stop (hundreds of ms when
     * the server is busy or restarting). */
    c->abandoned = true;
    return cause;
}

void tern__pg_drain_abandoned(tern_pg_conn *c)
{
    TERN_ASSERT(c->abandoned);
    c->abandoned = false;
    /* Keep the query's error for its caller, who may still read it. */
    tern_pg_error keep = c->err;
    tern__pg_cancel_and_drain(c, -ECANCELED);
    c->err = keep;
}

/* After a PQsend* of one whole command (never in pipeline mode, whose
 * commands get no reply before their Sync). */
static int finish(tern_pg_conn *c, tern_pg_result **out, tern_ctx *ctx)
{
    PGresult *res = NULL;
    c->reply_due = true;
    int rc = tern__pg_flush(c, TERN_FOREVER, ctx);
    if (rc == 0)
        rc = tern__pg_read_results(c, &res, false, TERN_FOREVER, ctx);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return tern__pg_abandon(c, rc);
    if (rc < 0)
        return rc;
    if (!out) {
        PQclear(res);
        return 0;
    }
    if (!res) {
        tern__pg_copy_error(&c->err, "", "tern_pg: no result");
        return -EPROTO;
    }
    return tern__pg_result_wrap(res, out);
}

/* Before a call: the connection is usable and the ctx not done. */
int tern__pg_ready(tern_pg_conn *c, tern_ctx *ctx)
{
    /* Held on to after a query was abandoned: finish that one first. */
    if (c->abandoned)
        tern__pg_drain_abandoned(c);
    c->err.sqlstate[0] = '\0';
    c->err.message[0] = '\0';
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK)
        return -EPIPE;
    return ctx ? tern_ctx_err(ctx) : 0;
}

int tern__pg_sent(tern_pg_conn *c, int ok)
{
    if (ok)
        return 0;
    tern__pg_set_error(c, NULL);
    if (PQstatus(c->pg) != CONNECTION_OK)
        return pg_broken(c);
    return -EIO;
}

/* ---- statement cache ---------------------------------------------------- */

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ULL;        /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void lru_unlink(tern_pg_conn *c, pg_stmt *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->lru_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        c->lru_tail = s->prev;
    s->prev = s->next = NULL;
}

static void lru_push(tern_pg_conn *c, pg_stmt *s)
{
    s->prev = NULL;
    s->next = c->lru_head;
    if (c->lru_head)
        c->lru_head->prev = s;
    c->lru_head = s;
    if (!c->lru_tail)
        c->lru_tail = s;
}

static pg_stmt *lookup(tern_pg_conn *c, const char *sql, uint64_t h)
{
    for (pg_stmt *s = c->lru_head; s; s = s->next)
        if (s->hash == h && strcmp(s->sql, sql) == 0) {
            if (s != c->lru_head) {
                lru_unlink(c, s);
                lru_push(c, s);
            }
            return s;
        }
    return NULL;
}

static void stmt_drop(tern_pg_conn *c, pg_stmt *s)
{
    lru_unlink(c, s);
    c->nstmts--;
    free(s->sql);
    free(s);
}

void tern__pg_stmt_cache_free(tern_pg_conn *c)
{
    while (c->lru_head)
        stmt_drop(c, c->lru_head);
}

/* Make room for one more: deallocate the least recently used. */
static int evict(tern_pg_conn *c, tern_ctx *ctx)
{
    pg_stmt *s = c->lru_tail;
    TERN_ASSERT(s != NULL);
    char sql[48];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", s->name);
    stmt_drop(c, s);
    int rc = tern__pg_sent(c, PQsendQuery(c->pg, sql));
    return rc < 0 ? rc : finish(c, NULL, ctx);
}

static int prepare_cached(tern_pg_conn *c, const char *sql, const tern_pg_params *p,
                          pg_stmt **out, tern_ctx *ctx)
{
    /* The statement just run is the likeliest: its SQL compared outright
     * costs less than hashing the text. */
    if (c->lru_head && strcmp(c->lru_head->sql, sql) == 0) {
        *out = c->lru_head;
        return 0;
    }
    uint64_t h = hash_sql(sql);
    pg_stmt *s = lookup(c, sql, h);
    if (s) {
        *out = s;
        return 0;
    }
    if (c->nstmts >= c->opts.stmt_cache) {
        int rc = evict(c, ctx);
        if (rc < 0)
            return rc;
    }
    s = calloc(1, sizeof *s);
    if (!s || !(s->sql = strdup(sql))) {
        free(s);
        return -ENOMEM;
    }
    s->hash = h;
    snprintf(s->name, sizeof s->name, "tern_s%llu", (unsigned long long)++c->stmt_seq);
    int rc = tern__pg_sent(c, PQsendPrepare(c->pg, s->name, sql, p->n, (const Oid *)p->types));
    if (rc == 0)
        rc = finish(c, NULL, ctx);
    if (rc < 0) {
        free(s->sql);
        free(s);
        return rc;
    }
    lru_push(c, s);
    c->nstmts++;
    *out = s;
    return 0;
}

/* ---- queries ------------------------------------------------------------ */

static int query_prepared(tern_pg_conn *c, const char *name, const tern_pg_params *p,
                          tern_pg_result **out, tern_ctx *ctx);

/* tern_pg_query unobserved; *stmt is the cached statement it ran, if any. */
static int query(tern_pg_conn *c, const char *sql, const tern_pg_params *p, tern_pg_result **out,
                 pg_stmt **stmt, tern_ctx *ctx)
{
    *stmt = NULL;
    int rc = tern__pg_ready(c, ctx);
    if (rc < 0)
        return rc;
    if (!p || p->n == 0) {
        rc = tern__pg_sent(c, PQsendQuery(c->pg, sql));
        return rc < 0 ? rc : finish(c, out, ctx);
    }
    if (c->opts.no_stmt_cache) {
        rc = tern__pg_sent(c, PQsendQueryParams(c->pg, sql, p->n, (const Oid *)p->types, p->values,
                                       p->lengths, p->formats, 0));
        return rc < 0 ? rc : finish(c, out, ctx);
    }
    for (int tries = 0;; tries++) {
        pg_stmt *s;
        rc = prepare_cached(c, sql, p, &s, ctx);
        if (rc < 0)
            return rc;
        rc = query_prepared(c, s->name, p, out, ctx);
        /* Someone ran DEALLOCATE ALL or DISCARD ALL behind the cache's
         * back: forget the statement and prepare it again, once.  (Inside
         * a transaction the error has aborted it; the caller sees it.) */
        if (rc == -EREMOTEIO && strcmp(c->err.sqlstate, "26000") == 0) {
            stmt_drop(c, s);
            if (tries == 0 && PQtransactionStatus(c->pg) == PQTRANS_IDLE)
                continue;
            return rc;
        }
        *stmt = s;
        return rc;
    }
}

static void observe(tern_metrics_histogram *h, int64_t t0)
{
    if (h)
        tern_metrics_histogram_observe(h, (double)(tern_now() - t0) / 1e9);
}

int tern_pg_query(tern_pg_conn *c, const char *sql, const tern_pg_params *p,
                  tern_pg_result **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(sql);
    if (out)
        *out = NULL;
    struct tern_trace_span *span = ctx ? tern__pg_span_start(NULL, sql, ctx) : NULL;
    int64_t t0 = c->obs ? tern_now() : 0;
    pg_stmt *s;
    int rc = query(c, sql, p, out, &s, ctx);
    if (c->obs) {
        if (s && !s->hist)
            s->hist = tern__pg_obs_query_hist(c->obs, NULL, sql);
        observe(s ? s->hist : tern__pg_obs_query_hist(c->obs, NULL, sql), t0);
    }
    tern__pg_span_end(span, c, rc);
    return rc;
}

int tern_pg_exec(tern_pg_conn *c, const char *sql, const tern_pg_params *params,
                 int64_t *affected, tern_ctx *ctx)
{
    tern_pg_result *r;
    int rc = tern_pg_query(c, sql, params, &r, ctx);
    if (rc < 0)
        return rc;
    if (affected)
        *affected = tern_pg_result_affected(r);
    tern_pg_result_free(r);
    return 0;
}

int tern_pg_prepare(tern_pg_conn *c, const char *name, const char *sql, int ntypes,
                    const uint32_t *types, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(name);
    TERN_CHECK_ARG(sql);
    int rc = tern__pg_ready(c, ctx);
    if (rc < 0)
        return rc;
    rc = tern__pg_sent(c, PQsendPrepare(c->pg, name, sql, ntypes, (const Oid *)types));
    return rc < 0 ? rc : finish(c, NULL, ctx);
}

static int query_prepared(tern_pg_conn *c, const char *name, const tern_pg_params *p,
                          tern_pg_result **out, tern_ctx *ctx)
{
    int rc = tern__pg_ready(c, ctx);
    if (rc < 0)
        return rc;
    static const tern_pg_params none = {0};
    if (!p)
        p = &none;
    rc = tern__pg_sent(c, PQsendQueryPrepared(c->pg, name, p->n, p->values, p->lengths, p->formats, 0));
    return rc < 0 ? rc : finish(c, out, ctx);
}

int tern_pg_query_prepared(tern_pg_conn *c, const char *name, const tern_pg_params *p,
                           tern_pg_result **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(name);
    if (out)
        *out = NULL;
    struct tern_trace_span *span = ctx ? tern__pg_span_start(name, NULL, ctx) : NULL;
    int64_t t0 = c->obs ? tern_now() : 0;
    int rc = query_prepared(c, name, p, out, ctx);
    if (c->obs)
        observe(tern__pg_obs_query_hist(c->obs, name, NULL), t0);
    tern__pg_span_end(span, c, rc);
    return rc;
}

int tern_pg_ping(tern_pg_conn *c, tern_ctx *ctx)
{
    return tern_pg_query(c, "", NULL, NULL, ctx);
}
