/*
 * batch.c - many statements in one round trip, through libpq's pipeline
 * mode (PostgreSQL 14+ libpq).
 *
 * Everything is queued and flushed first, then one Sync; the results come
 * back in order, each statement's ended by a NULL from PQgetResult, and the
 * Sync's as PGRES_PIPELINE_SYNC.  After an error the server skips the rest
 * up to the Sync (PGRES_PIPELINE_ABORTED) and rolls back the implicit
 * transaction, so a batch is all or nothing.  Flushing reads as it goes
 * (see query.c), so a batch larger than the socket buffers cannot deadlock
 * against a server blocked on sending us results.
 *
 * A ctx that ends mid-batch cancels it like a query: PQcancel on the
 * blocking pool, then read up to the Sync, bounded by cancel_drain_ns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "data/pg/pg_internal.h"
#include "tern/runtime.h"

static int broken(tern_pg_conn *c)
{
    tern__pg_set_error(c, NULL);
    c->broken = true;
    return -EPIPE;
}

/* The next result, parking while libpq has none. */
static int next_result(tern_pg_conn *c, PGresult **out, int64_t deadline, tern_ctx *ctx)
{
    while (PQisBusy(c->pg)) {
        int rc = tern__pg_wait(c, TERN_FD_READ, deadline, ctx);
        if (rc < 0)
            return rc;
        if (!PQconsumeInput(c->pg))
            return broken(c);
    }
    *out = PQgetResult(c->pg);
    return 0;
}

/* Read up to and including the Sync.  The first error is recorded and
 * returned; rows affected go to affected[i] as each statement ends. */
static int read_to_sync(tern_pg_conn *c, size_t n, int64_t *affected, int64_t deadline, tern_ctx *ctx)
{
    int err = 0;
    size_t i = 0;
    for (;;) {
        PGresult *r;
        int rc = next_result(c, &r, deadline, ctx);
        if (rc < 0)
            return rc;
        if (!r) {               /* a statement's end */
            i++;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            return err;
        }
        if (st == PGRES_FATAL_ERROR && err == 0) {
            tern__pg_set_error(c, r);
            err = -EREMOTEIO;
        } else if ((st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) && affected && i < n) {
            const char *t = PQcmdTuples(r);
            affected[i] = t[0] ? strtoll(t, NULL, 10) : 0;
        }
        PQclear(r);
    }
}

static int cancel_batch(tern_pg_conn *c, size_t n, int cause)
{
    int rc = tern__pg_cancel_request(c);
    int64_t deadline = tern_now() + c->opts.cancel_drain_ns;
    if (rc == 0)
        rc = tern__pg_flush(c, deadline, NULL);
    if (rc == 0)
        rc = read_to_sync(c, n, NULL, deadline, NULL);
    if ((rc < 0 && rc != -EREMOTEIO) || PQexitPipelineMode(c->pg) != 1)
        c->broken = true;
    return cause;
}

int tern_pg_batch(tern_pg_conn *c, const tern_pg_batch_item *items, size_t n, int64_t *affected,
                  tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(items);
    c->err.sqlstate[0] = '\0';
    c->err.message[0] = '\0';
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK)
        return -EPIPE;
    int rc = ctx ? tern_ctx_err(ctx) : 0;
    if (rc < 0)
        return rc;
    if (n == 0)
        return 0;
    if (PQenterPipelineMode(c->pg) != 1) {
        tern__pg_set_error(c, NULL);
        return -EIO;
    }
    for (size_t i = 0; i < n; i++) {
        const tern_pg_params *p = &items[i].params;
        if (!PQsendQueryParams(c->pg, items[i].sql, p->n, (const Oid *)p->types, p->values, p->lengths,
                               p->formats, 0)) {
            /* Nothing has gone to the server that a Sync would not end:
             * close the pipeline by reading up to it. */
            tern__pg_set_error(c, NULL);
            n = i;
            rc = -EIO;
            break;
        }
    }
    if (!PQpipelineSync(c->pg))
        return broken(c);
    int frc = tern__pg_flush(c, TERN_FOREVER, ctx);
    if (frc == 0) {
        tern_pg_error keep = c->err;
        frc = read_to_sync(c, n, affected, TERN_FOREVER, ctx);
        if (rc < 0)
            c->err = keep;
    }
    if (frc == -ETIMEDOUT || frc == -ECANCELED)
        return cancel_batch(c, n, frc);
    if (frc == -EPIPE)
        return frc;
    if (PQexitPipelineMode(c->pg) != 1)
        return broken(c);
    return rc < 0 ? rc : frc;
}
