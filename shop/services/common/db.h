/*
 * db.h - a role's database, SQLite or PostgreSQL, behind one small face,
 * so that users, orders and payments keep one repository each with the
 * same SQL on both (both take $1 placeholders and text parameters).
 *
 * The dialects differ in three places only, each explicit where it is
 * made: the schema's types (BIGINT, which both accept, rather than
 * SQLite's INTEGER, which is 32 bits on PostgreSQL), the outbox's table
 * (one database holds every PostgreSQL role, so each role's outbox has a
 * table of its own: "<role>_outbox"; SQLite keeps "outbox" in the role's
 * file), and the errors (PostgreSQL's SQLSTATE 23505, a unique
 * violation, is -EEXIST as SQLite's UNIQUE constraint is; 23xxx others
 * -EPERM).
 *
 * Ownership: rows belong to the caller (shop_rows_free); the strings they
 * give live as long as they do.
 */
#ifndef SHOP_DB_H
#define SHOP_DB_H

#include <stdbool.h>
#include <stdint.h>

#include <tern/tern.h>
#include <tern/events.h>
#include <tern/pg.h>
#include <tern/sqlite.h>

typedef struct shop_db shop_db;
typedef struct shop_rows shop_rows;
typedef struct shop_tx shop_tx;

/* Over an open SQLite database (borrowed: it must outlive the shop_db). */
int shop_db_sqlite(tern_sqlite *db, shop_db **out);
/* A pool to PostgreSQL (conninfo or postgres:// URL); name labels its
 * metrics (borrowed: may be NULL).  Connects lazily: the first query
 * says whether the server answers. */
int shop_db_pg(const char *url, const char *name, tern_pg_metrics *metrics, shop_db **out);
/* NULL: no-op.  Every call on db must have returned. */
void shop_db_free(shop_db *db);
bool shop_db_is_pg(const shop_db *db);

/* Statements separated by ';' with no parameters (a schema). */
int shop_db_schema(shop_db *db, const char *sql, tern_ctx *ctx);
/* One statement; *out: its rows (NULL on failure).  -EEXIST for a unique
 * violation, -EPERM another constraint, the driver's codes otherwise
 * (the server's message logged at debug level). */
int shop_db_query(shop_db *db, const char *sql, const tern_sqlite_params *p, shop_rows **out, tern_ctx *ctx);
/* One statement without rows; affected (NULL: not wanted). */
int shop_db_exec(shop_db *db, const char *sql, const tern_sqlite_params *p, int64_t *affected, tern_ctx *ctx);

/* A transaction's body: 0 commits, anything else rolls back.  Run again
 * when the database asks (SQLite's busy lock, PostgreSQL's serialization
 * failure): it must be safe to repeat. */
typedef int shop_tx_fn(shop_tx *tx, tern_ctx *ctx, void *arg);
int shop_db_tx(shop_db *db, shop_tx_fn *fn, void *arg, tern_ctx *ctx);
int shop_tx_query(shop_tx *tx, const char *sql, const tern_sqlite_params *p, shop_rows **out, tern_ctx *ctx);
int shop_tx_exec(shop_tx *tx, const char *sql, const tern_sqlite_params *p, int64_t *affected, tern_ctx *ctx);

/* The role's outbox in its database ("outbox" on SQLite, "<role>_outbox"
 * on PostgreSQL), and an event added inside a transaction. */
int shop_db_outbox(shop_db *db, const char *role, tern_outbox **out, tern_ctx *ctx);
int shop_tx_outbox_add(shop_tx *tx, tern_outbox *ob, const tern_event *ev, tern_ctx *ctx);

/* Readiness: the database answers. */
int shop_db_ping(shop_db *db, char *msg, size_t len, tern_ctx *ctx);

int shop_rows_count(const shop_rows *rows);
/* The column named col of row as text ("" when absent or NULL) / int64 (0). */
const char *shop_rows_str(const shop_rows *rows, int row, const char *col);
int64_t shop_rows_i64(const shop_rows *rows, int row, const char *col);
/* NULL: no-op. */
void shop_rows_free(shop_rows *rows);

#endif
