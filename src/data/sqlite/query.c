/*
 * query.c - statements and transactions: what a coroutine calls.  Each call
 * builds a request and hands it to the database's threads (db.c); the
 * transaction's calls go to the connection its BEGIN took.
 *
 * tern_sqlite_tx_run retries on -EBUSY: with one writer connection per
 * process, BEGIN IMMEDIATE waits only for other processes (or another
 * tern_sqlite on the file), and when that wait outlasts busy_timeout_ns the
 * whole transaction is tried again after a backoff with full jitter, as
 * tern_pg_tx_run does for serialization failures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rand.h"
#include "data/sqlite/internal.h"
#include "tern/error.h"

#define DEFAULT_ATTEMPTS 10
#define DEFAULT_BACKOFF_NS TERN_MS
#define BACKOFF_CAP_FACTOR 64

/* The error of a failed call: SQLite's, else the errno's words. */
static void out_err(tern_sqlite_error *dst, const sq_req *r, int rc)
{
    if (!dst)
        return;
    if (rc == 0) {
        dst->code = 0;
        dst->message[0] = '\0';
    } else if (r && r->err.code) {
        *dst = r->err;
    } else {
        dst->code = 0;
        snprintf(dst->message, sizeof dst->message, "%s", tern_strerror(rc));
    }
}

/* Build, submit and free a request; rows go to *res when wanted. */
static int call(tern_sqlite *db, tern_sqlite_tx *tx, enum sq_kind kind, const char *sql,
                const tern_sqlite_params *params, tern_sqlite_result **res, int64_t *affected,
                tern_sqlite_error *err, tern_ctx *ctx)
{
    if (res)
        *res = NULL;
    if (affected)
        *affected = 0;
    if (params && params->n < 0) {
        out_err(err, NULL, -EINVAL);
        return -EINVAL;
    }
    sq_req *r = tern__sq_req_new(kind, sql, params);
    if (!r) {
        out_err(err, NULL, -ENOMEM);
        return -ENOMEM;
    }
    r->tx = tx;
    r->read = kind == SQ_QUERY;
    int rc = tern__sq_submit(db, r, ctx);
    out_err(err, r, rc);
    if (rc == 0) {
        if (res) {
            *res = r->res;
            r->res = NULL;
        }
        if (affected)
            *affected = r->affected;
    }
    tern_sqlite_result_free(r->res);
    tern__sq_req_free(r);
    return rc;
}

int tern_sqlite_query(tern_sqlite *db, const char *sql, const tern_sqlite_params *params,
                      tern_sqlite_result **out, tern_sqlite_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(db);
    TERN_CHECK_ARG(sql);
    TERN_CHECK_ARG(out);
    return call(db, NULL, SQ_QUERY, sql, params, out, NULL, err, ctx);
}

int tern_sqlite_exec(tern_sqlite *db, const char *sql, const tern_sqlite_params *params, int64_t *affected,
                     tern_sqlite_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(db);
    TERN_CHECK_ARG(sql);
    return call(db, NULL, SQ_EXEC, sql, params, NULL, affected, err, ctx);
}

int tern_sqlite_tx_begin(tern_sqlite *db, const tern_sqlite_tx_options *o, tern_sqlite_tx **out,
                         tern_sqlite_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(db);
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_sqlite_tx *tx = calloc(1, sizeof *tx);
    sq_req *r = tern__sq_req_new(SQ_BEGIN, NULL, NULL);
    if (!tx || !r) {
        free(tx);
        tern__sq_req_free(r);
        out_err(err, NULL, -ENOMEM);
        return -ENOMEM;
    }
    tx->db = db;
    r->tx = tx;
    r->read = o && o->read_only;
    int rc = tern__sq_submit(db, r, ctx);
    out_err(err, r, rc);
    tern__sq_req_free(r);
    if (rc < 0) {
        free(tx);
        return rc;
    }
    TERN_ASSERT(tx->conn);      /* a BEGIN that succeeded took a connection */
    *out = tx;
    return 0;
}

int tern_sqlite_tx_query(tern_sqlite_tx *tx, const char *sql, const tern_sqlite_params *params,
                         tern_sqlite_result **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(tx);
    TERN_CHECK_ARG(sql);
    TERN_CHECK_ARG(out);
    return call(tx->db, tx, SQ_QUERY, sql, params, out, NULL, &tx->err, ctx);
}

int tern_sqlite_tx_exec(tern_sqlite_tx *tx, const char *sql, const tern_sqlite_params *params,
                        int64_t *affected, tern_ctx *ctx)
{
    TERN_CHECK_ARG(tx);
    TERN_CHECK_ARG(sql);
    return call(tx->db, tx, SQ_EXEC, sql, params, NULL, affected, &tx->err, ctx);
}

const tern_sqlite_error *tern_sqlite_tx_last_error(const tern_sqlite_tx *tx)
{
    TERN_CHECK_ARG(tx);
    return &tx->err;
}

void tern_sqlite_tx_rollback(tern_sqlite_tx *tx)
{
    if (!tx)
        return;
    /* Its request lives in tx, so that a rollback never fails for want of
     * memory (the connection would stay the transaction's for good). */
    sq_req *r = &tx->rollback;
    memset(r, 0, sizeof *r);
    r->kind = SQ_ROLLBACK;
    r->tx = tx;
    tern__sq_submit(tx->db, r, NULL);
    free(tx);
}

int tern_sqlite_tx_commit(tern_sqlite_tx *tx, tern_sqlite_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(tx);
    int rc = call(tx->db, tx, SQ_COMMIT, NULL, NULL, NULL, NULL, err, ctx);
    if (rc < 0) {
        tern_sqlite_tx_rollback(tx);
        return rc;
    }
    free(tx);
    return 0;
}

int tern_sqlite_tx_run(tern_sqlite *db, const tern_sqlite_tx_options *o, tern_sqlite_tx_fn *fn, void *arg,
                       tern_sqlite_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(db);
    TERN_CHECK_ARG(fn);
    int attempts = o && o->max_attempts > 0 ? o->max_attempts : DEFAULT_ATTEMPTS;
    int64_t backoff = o && o->backoff_ns > 0 ? o->backoff_ns : DEFAULT_BACKOFF_NS;
    int64_t cap = backoff * BACKOFF_CAP_FACTOR;
    int rc = 0;
    for (int i = 0; i < attempts; i++) {
        if (i > 0) {
            int s = tern_ctx_sleep((int64_t)(tern__rand01() * (double)backoff), ctx);
            if (s < 0)
                return s;
            backoff = backoff * 2 > cap ? cap : backoff * 2;
        }
        tern_sqlite_tx *tx;
        rc = tern_sqlite_tx_begin(db, o, &tx, err, ctx);
        if (rc == -EBUSY)
            continue;
        if (rc < 0)
            return rc;
        rc = fn(tx, ctx, arg);
        if (rc == 0) {
            rc = tern_sqlite_tx_commit(tx, err, ctx);
        } else {
            if (err)
                *err = tx->err;
            tern_sqlite_tx_rollback(tx);
        }
        if (rc != -EBUSY)
            break;
    }
    return rc;
}
