/*
 * copy.c - COPY FROM STDIN and COPY TO STDOUT.
 *
 * The statement is sent as a query; its first result says COPY IN or
 * COPY OUT, and the data then flows outside the query protocol.  In:
 * PQputCopyData only queues in non-blocking mode (returning 0 when libpq's
 * buffer is full: flush, then try again), PQputCopyEnd ends it, or aborts
 * it with a message, and the command's result follows.  Out:
 * PQgetCopyData in async mode returns a row, 0 for "park on readable", or
 * -1 at the end, after which the command's result follows.
 *
 * A ctx that ends mid-COPY: an inbound COPY is aborted with
 * PQputCopyEnd(errormsg) (nothing is copied); an outbound one is cancelled
 * and the rest of its rows are read and dropped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "data/pg/pg_internal.h"
#include "tern/runtime.h"

/* Send sql and read up to its COPY result (of status want). */
static int start(tern_pg_conn *c, const char *sql, ExecStatusType want, tern_ctx *ctx)
{
    int rc = tern__pg_ready(c, ctx);
    if (rc == 0)
        rc = tern__pg_sent(c, PQsendQuery(c->pg, sql));
    if (rc == 0)
        rc = tern__pg_flush(c, TERN_FOREVER, ctx);
    PGresult *r = NULL;
    if (rc == 0)
        rc = tern__pg_read_results(c, &r, true, TERN_FOREVER, ctx);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return tern__pg_cancel_and_drain(c, rc);
    if (rc < 0)
        return rc;
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_EMPTY_QUERY;
    PQclear(r);
    if (st != want) {
        /* Not a COPY (it has run to its end), or a COPY the other way,
         * now waiting for data we will not move. */
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT)
            c->broken = true;
        tern__pg_copy_error(&c->err, "", "tern_pg: the statement is not the expected COPY");
        return -EINVAL;
    }
    return 0;
}

/* After the data: the command's own result. */
static int finish(tern_pg_conn *c, int64_t *rows, int64_t deadline, tern_ctx *ctx)
{
    PGresult *r = NULL;
    int rc = tern__pg_read_results(c, &r, false, deadline, ctx);
    if (rc == 0 && rows) {
        const char *t = r ? PQcmdTuples(r) : "";
        *rows = t[0] ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(r);
    return rc;
}

/* PQputCopyData / PQputCopyEnd until libpq takes it. */
static int put(tern_pg_conn *c, const void *data, size_t len, const char *end_msg, bool end,
               int64_t deadline, tern_ctx *ctx)
{
    for (;;) {
        int r = end ? PQputCopyEnd(c->pg, end_msg) : PQputCopyData(c->pg, data, (int)len);
        if (r == 1)
            return 0;
        if (r < 0) {
            tern__pg_set_error(c, NULL);
            c->broken = true;
            return -EPIPE;
        }
        int rc = tern__pg_flush(c, deadline, ctx);
        if (rc < 0)
            return rc;
    }
}

int tern_pg_copy_in(tern_pg_conn *c, const char *sql, tern_pg_copy_in_fn *fn, void *arg, int64_t *rows,
                    tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(sql);
    TERN_CHECK_ARG(fn);
    int rc = start(c, sql, PGRES_COPY_IN, ctx);
    if (rc < 0)
        return rc;
    int cause = 0;
    for (;;) {
        const void *data;
        size_t len;
        int more = fn(&data, &len, arg);
        if (more <= 0) {
            cause = more;
            break;
        }
        while (len > 0) {
            size_t piece = len > (1u << 30) ? (1u << 30) : len;
            rc = put(c, data, piece, NULL, false, TERN_FOREVER, ctx);
            if (rc < 0)
                break;
            data = (const char *)data + piece;
            len -= piece;
        }
        if (rc == 0 && PQflush(c->pg) < 0)
            rc = -EPIPE;
        if (rc < 0) {
            cause = rc;
            break;
        }
    }
    if (cause == -EPIPE)
        return cause;
    /* End it (aborting when fn or the ctx said so); the ending itself is
     * bounded by the drain time, not by a ctx that may be over. */
    int64_t deadline = tern_now() + c->opts.cancel_drain_ns;
    rc = put(c, NULL, 0, cause < 0 ? "aborted by the client" : NULL, true, deadline, NULL);
    if (rc == 0)
        rc = tern__pg_flush(c, deadline, NULL);
    if (rc == 0)
        rc = finish(c, rows, cause < 0 ? deadline : TERN_FOREVER, cause < 0 ? NULL : ctx);
    if (cause < 0) {
        if (rc < 0 && rc != -EREMOTEIO)
            c->broken = true;
        return cause;
    }
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return tern__pg_cancel_and_drain(c, rc);
    return rc;
}

int tern_pg_copy_out(tern_pg_conn *c, const char *sql, tern_pg_copy_out_fn *fn, void *arg, int64_t *rows,
                     tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(sql);
    TERN_CHECK_ARG(fn);
    int rc = start(c, sql, PGRES_COPY_OUT, ctx);
    if (rc < 0)
        return rc;
    int stop = 0;
    int64_t drain = TERN_FOREVER;   /* once stopping: how long we wait for the end */
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(c->pg, &buf, 1);
        if (n > 0) {
            if (!stop)
                stop = fn(buf, (size_t)n, arg);
            PQfreemem(buf);
            if (stop) {
                /* Ask the server to stop, and drop what still comes. */
                if (drain == TERN_FOREVER) {
                    drain = tern_now() + c->opts.cancel_drain_ns;
                    if (tern__pg_cancel_request(c) < 0) {
                        c->broken = true;
                        return stop;
                    }
                }
                ctx = NULL;
            }
            continue;
        }
        if (n == -1)
            break;
        if (n == -2) {
            tern__pg_set_error(c, NULL);
            c->broken = true;
            return -EPIPE;
        }
        rc = tern__pg_wait(c, TERN_FD_READ, drain, ctx);
        if (rc == -ETIMEDOUT && stop) {
            c->broken = true;
            return stop;
        }
        if (rc == -ETIMEDOUT || rc == -ECANCELED) {
            stop = rc;
            drain = tern_now() + c->opts.cancel_drain_ns;
            if (tern__pg_cancel_request(c) < 0) {
                c->broken = true;
                return stop;
            }
            ctx = NULL;
            continue;
        }
        if (rc < 0)
            return rc;
        if (!PQconsumeInput(c->pg)) {
            tern__pg_set_error(c, NULL);
            c->broken = true;
            return -EPIPE;
        }
    }
    rc = finish(c, rows, drain, ctx);
    if (stop) {
        if (rc < 0 && rc != -EREMOTEIO)
            c->broken = true;
        return stop;
    }
    return rc;
}
