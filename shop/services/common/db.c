/*
 * db.c - a role's database on SQLite or PostgreSQL (db.h): the calls
 * pass through to tern_sqlite or tern_pg_pool; what differs between the
 * two (errors, the outbox's table) is decided here and nowhere else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/db.h"

struct shop_db {
    tern_sqlite *lite;                  /* borrowed */
    tern_pg_pool *pg;                   /* owned */
};

struct shop_rows {
    tern_sqlite_result *lite;
    tern_pg_result *pg;
};

struct shop_tx {
    tern_sqlite_tx *lite;
    tern_pg_conn *pg;
    shop_tx_fn *fn;
    void *arg;
};

int shop_db_sqlite(tern_sqlite *lite, shop_db **out)
{
    if (!(*out = calloc(1, sizeof **out)))
        return -ENOMEM;
    (*out)->lite = lite;
    return 0;
}

int shop_db_pg(const char *url, const char *name, tern_pg_metrics *metrics, shop_db **out)
{
    shop_db *db = calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    tern_pg_pool_options o = {.max_conns = 8, .metrics = metrics, .name = name};
    int rc = tern_pg_pool_new(url, &o, &db->pg);
    if (rc < 0) {
        free(db);
        return rc;
    }
    *out = db;
    return 0;
}

void shop_db_free(shop_db *db)
{
    if (!db)
        return;
    tern_pg_pool_free(db->pg);
    free(db);
}

bool shop_db_is_pg(const shop_db *db)
{
    return db->pg != NULL;
}

/* PostgreSQL's errors as SQLite's map (sqlite.h): a unique violation is
 * -EEXIST, another integrity constraint -EPERM (SQLSTATE class 23). */
static int pg_error(int rc, const tern_pg_error *e, const char *sql)
{
    if (rc != -EREMOTEIO)
        return rc;
    if (!strcmp(e->sqlstate, "23505"))
        return -EEXIST;
    if (!strncmp(e->sqlstate, "23", 2))
        return -EPERM;
    if (!strcmp(e->sqlstate, "40001") || !strcmp(e->sqlstate, "40P01"))
        return rc;                      /* tern_pg_tx_run retries these */
    tern_log_warn("shop: postgresql", TERN_LOG_STR("sqlstate", e->sqlstate), TERN_LOG_STR("error", e->message),
                  TERN_LOG_STR("sql", sql));
    return -EIO;
}

static tern_pg_params pg_params(const tern_sqlite_params *p)
{
    return p ? (tern_pg_params){.n = p->n, .values = p->values} : (tern_pg_params){0};
}

int shop_db_schema(shop_db *db, const char *sql, tern_ctx *ctx)
{
    if (db->lite)
        return tern_sqlite_exec(db->lite, sql, NULL, NULL, NULL, ctx);
    int rc = 0;
    /* Two processes making one table at once: the loser's CREATE ... IF
     * NOT EXISTS can meet the winner's row in the system catalog (23505);
     * the second try finds the table. */
    for (int attempt = 0; attempt < 2; attempt++) {
        tern_pg_error e = {0};
        tern_pg_result *res = NULL;
        /* without parameters the simple protocol takes several statements */
        rc = tern_pg_pool_query(db->pg, sql, NULL, &res, &e, ctx);
        tern_pg_result_free(res);
        if (!(rc == -EREMOTEIO && !strcmp(e.sqlstate, "23505")))
            return pg_error(rc, &e, "(schema)");
    }
    return -EEXIST;
}

static int rows_new(shop_rows **out, tern_sqlite_result *lite, tern_pg_result *pg)
{
    if (!(*out = malloc(sizeof **out))) {
        tern_sqlite_result_free(lite);
        tern_pg_result_free(pg);
        return -ENOMEM;
    }
    **out = (shop_rows){lite, pg};
    return 0;
}

int shop_db_query(shop_db *db, const char *sql, const tern_sqlite_params *p, shop_rows **out, tern_ctx *ctx)
{
    *out = NULL;
    if (db->lite) {
        tern_sqlite_result *res;
        int rc = tern_sqlite_query(db->lite, sql, p, &res, NULL, ctx);
        return rc < 0 ? rc : rows_new(out, res, NULL);
    }
    tern_pg_params pp = pg_params(p);
    tern_pg_error e = {0};
    tern_pg_result *res;
    int rc = tern_pg_pool_query(db->pg, sql, p ? &pp : NULL, &res, &e, ctx);
    return rc < 0 ? pg_error(rc, &e, sql) : rows_new(out, NULL, res);
}

int shop_db_exec(shop_db *db, const char *sql, const tern_sqlite_params *p, int64_t *affected, tern_ctx *ctx)
{
    if (db->lite)
        return tern_sqlite_exec(db->lite, sql, p, affected, NULL, ctx);
    shop_rows *rows;
    int rc = shop_db_query(db, sql, p, &rows, ctx);
    if (rc == 0 && affected)
        *affected = tern_pg_result_affected(rows->pg);
    shop_rows_free(rows);
    return rc;
}

static int lite_body(tern_sqlite_tx *t, tern_ctx *ctx, void *arg)
{
    shop_tx *tx = arg;
    tx->lite = t;
    return tx->fn(tx, ctx, tx->arg);
}

static int pg_body(tern_pg_conn *c, tern_ctx *ctx, void *arg)
{
    shop_tx *tx = arg;
    tx->pg = c;
    return tx->fn(tx, ctx, tx->arg);
}

int shop_db_tx(shop_db *db, shop_tx_fn *fn, void *arg, tern_ctx *ctx)
{
    shop_tx tx = {.fn = fn, .arg = arg};
    if (db->lite)
        return tern_sqlite_tx_run(db->lite, NULL, lite_body, &tx, NULL, ctx);
    tern_pg_error e = {0};
    int rc = tern_pg_tx_run(db->pg, NULL, pg_body, &tx, &e, ctx);
    return rc < 0 ? pg_error(rc, &e, "(transaction)") : rc;
}

int shop_tx_query(shop_tx *tx, const char *sql, const tern_sqlite_params *p, shop_rows **out, tern_ctx *ctx)
{
    *out = NULL;
    if (tx->lite) {
        tern_sqlite_result *res;
        int rc = tern_sqlite_tx_query(tx->lite, sql, p, &res, ctx);
        return rc < 0 ? rc : rows_new(out, res, NULL);
    }
    tern_pg_params pp = pg_params(p);
    tern_pg_result *res;
    int rc = tern_pg_query(tx->pg, sql, p ? &pp : NULL, &res, ctx);
    /* 40001/40P01 stay -EREMOTEIO, so that tern_pg_tx_run tries again */
    return rc < 0 ? pg_error(rc, tern_pg_conn_last_error(tx->pg), sql) : rows_new(out, NULL, res);
}

int shop_tx_exec(shop_tx *tx, const char *sql, const tern_sqlite_params *p, int64_t *affected, tern_ctx *ctx)
{
    if (tx->lite)
        return tern_sqlite_tx_exec(tx->lite, sql, p, affected, ctx);
    shop_rows *rows;
    int rc = shop_tx_query(tx, sql, p, &rows, ctx);
    if (rc == 0 && affected)
        *affected = tern_pg_result_affected(rows->pg);
    shop_rows_free(rows);
    return rc;
}

int shop_db_outbox(shop_db *db, const char *role, tern_outbox **out, tern_ctx *ctx)
{
    if (db->lite)
        return tern_outbox_sqlite_new(db->lite, NULL, out, ctx);
    char table[64];
    snprintf(table, sizeof table, "%s_outbox", role);
    return tern_outbox_pg_new(db->pg, &(tern_outbox_options){.table = table}, out, ctx);
}

int shop_tx_outbox_add(shop_tx *tx, tern_outbox *ob, const tern_event *ev, tern_ctx *ctx)
{
    return tx->lite ? tern_outbox_sqlite_add(ob, tx->lite, ev, ctx) : tern_outbox_pg_add(ob, tx->pg, ev, ctx);
}

int shop_db_ping(shop_db *db, char *msg, size_t len, tern_ctx *ctx)
{
    shop_rows *rows;
    int rc = shop_db_query(db, "SELECT 1", NULL, &rows, ctx);
    if (rc < 0)
        snprintf(msg, len, "%s: %s", db->pg ? "postgresql" : "sqlite", tern_strerror(rc));
    shop_rows_free(rows);
    return rc;
}

int shop_rows_count(const shop_rows *rows)
{
    return rows->lite ? tern_sqlite_result_rows(rows->lite) : tern_pg_result_rows(rows->pg);
}

const char *shop_rows_str(const shop_rows *rows, int row, const char *col)
{
    const char *s = NULL;
    if (rows->lite) {
        int c = tern_sqlite_result_col_index(rows->lite, col);
        s = c < 0 ? NULL : tern_sqlite_result_text(rows->lite, row, c);
    } else {
        int c = tern_pg_result_col_index(rows->pg, col);
        s = c < 0 || tern_pg_result_is_null(rows->pg, row, c) ? NULL : tern_pg_result_text(rows->pg, row, c);
    }
    return s ? s : "";
}

int64_t shop_rows_i64(const shop_rows *rows, int row, const char *col)
{
    int64_t v = 0;
    if (rows->lite) {
        int c = tern_sqlite_result_col_index(rows->lite, col);
        if (c >= 0 && tern_sqlite_result_int64(rows->lite, row, c, &v) < 0)
            v = 0;
    } else {
        int c = tern_pg_result_col_index(rows->pg, col);
        if (c >= 0 && !tern_pg_result_is_null(rows->pg, row, c) && tern_pg_result_int64(rows->pg, row, c, &v) < 0)
            v = 0;
    }
    return v;
}

void shop_rows_free(shop_rows *rows)
{
    if (!rows)
        return;
    tern_sqlite_result_free(rows->lite);
    tern_pg_result_free(rows->pg);
    free(rows);
}
