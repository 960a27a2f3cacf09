/*
 * tx.c - transactions, and running one again when the server says that
 * trying again may succeed.
 *
 * Under SERIALIZABLE (and REPEATABLE READ) PostgreSQL aborts a transaction
 * whose outcome could not be explained by some serial order, with SQLSTATE
 * 40001; a deadlock aborts one of its victims with 40P01.  Both are meant
 * to be retried from the start, so tern_pg_tx_run rolls back and runs the
 * whole body again after an exponential backoff with full jitter (the
 * contenders that collided should not collide again in lockstep).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/rand.h"
#include "data/pg/pg_internal.h"
#include "tern/runtime.h"

#define DEFAULT_ATTEMPTS 10
#define DEFAULT_BACKOFF_NS 1000000LL
#define BACKOFF_CAP_FACTOR 64

int tern_pg_tx_begin(tern_pg_conn *c, const tern_pg_tx_options *o, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    static const char *const iso[] = {"READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"};
    tern_pg_isolation i = o ? o->isolation : TERN_PG_READ_COMMITTED;
    if ((unsigned)i > TERN_PG_SERIALIZABLE)
        return -EINVAL;
    char sql[80];
    snprintf(sql, sizeof sql, "BEGIN ISOLATION LEVEL %s%s", iso[i],
             o && o->read_only ? " READ ONLY" : "");
    return tern_pg_exec(c, sql, NULL, NULL, ctx);
}

int tern_pg_tx_commit(tern_pg_conn *c, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    tern_pg_result *r;
    int rc = tern_pg_query(c, "COMMIT", NULL, &r, ctx);
    if (rc < 0)
        return rc;
    /* COMMIT of a failed transaction "succeeds" with the tag ROLLBACK. */
    bool rolled_back = strcmp(tern_pg_result_cmd_tag(r), "ROLLBACK") == 0;
    tern_pg_result_free(r);
    if (rolled_back) {
        tern__pg_copy_error(&c->err, "25P02", "tern_pg: the transaction had failed and was rolled back");
        return -EREMOTEIO;
    }
    return 0;
}

int tern_pg_tx_rollback(tern_pg_conn *c, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    return tern_pg_exec(c, "ROLLBACK", NULL, NULL, ctx);
}

static bool retryable(const tern_pg_error *e)
{
    return strcmp(e->sqlstate, "40001") == 0 || strcmp(e->sqlstate, "40P01") == 0;
}

/* One attempt: begin, body, commit; *server holds the server's error. */
static int attempt(tern_pg_conn *c, const tern_pg_tx_options *o, tern_pg_tx_fn *fn, void *arg,
                   tern_pg_error *server, tern_ctx *ctx)
{
    server->sqlstate[0] = '\0';
    server->message[0] = '\0';
    int rc = tern_pg_tx_begin(c, o, ctx);
    if (rc == 0) {
        rc = fn(c, ctx, arg);
        if (rc == 0)
            rc = tern_pg_tx_commit(c, ctx);
    }
    if (c->err.sqlstate[0])
        *server = c->err;
    if (rc != 0 && tern_pg_conn_ok(c) && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* The rollback's own success clears c->err: keep the cause. */
        tern_pg_error cause = c->err;
        if (tern_pg_tx_rollback(c, ctx) < 0)
            c->broken = true;
        c->err = cause;
    }
    return rc;
}

int tern_pg_tx_run(tern_pg_pool *p, const tern_pg_tx_options *o, tern_pg_tx_fn *fn, void *arg,
                   tern_pg_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(p);
    TERN_CHECK_ARG(fn);
    int attempts = o && o->max_attempts > 0 ? o->max_attempts : DEFAULT_ATTEMPTS;
    int64_t backoff = o && o->backoff_ns > 0 ? o->backoff_ns : DEFAULT_BACKOFF_NS;
    int64_t cap = backoff * BACKOFF_CAP_FACTOR;
    tern_pg_error server = {{0}, {0}};
    int rc = 0;
    for (int i = 0; i < attempts; i++) {
        if (i > 0) {
            rc = tern_ctx_sleep((int64_t)(tern__rand01() * (double)backoff), ctx);
            if (rc < 0)
                break;
            backoff = backoff * 2 > cap ? cap : backoff * 2;
        }
        tern_pg_conn *c;
        rc = tern__pg_pool_acquire(p, &c, err, ctx);
        if (rc < 0)
            return rc;
        rc = attempt(c, o, fn, arg, &server, ctx);
        tern_pg_pool_release(p, c);
        if (!(rc == -EREMOTEIO && retryable(&server)))
            break;
    }
    if (err && server.sqlstate[0])
        *err = server;
    return rc;
}
