/*
 * tern/sqlite.h - SQLite, the embedded default, on the runtime without
 * ever blocking a worker.
 *
 * A database (tern_sqlite) is served by threads of its own: one writer
 * connection and `readers` reader connections, each on its own thread.  A
 * call hands its request to the right thread and parks the coroutine until
 * the thread is done; the workers never wait on SQLite's I/O or locks.
 * The file is in WAL mode, so readers run beside the writer and see the
 * last committed state.  A read (a statement SQLite reports read-only) goes
 * to any reader; anything else goes to the writer.  Each connection keeps
 * its prepared statements in a cache keyed by SQL text.
 *
 * Placeholders: $1, $2, ... as in PostgreSQL (tern/pg.h), so that one SQL
 * text runs on either; SQLite's ? and ?NNN work too.  Parameters have the
 * shape of tern_pg_params: text values (a column's type affinity makes
 * "42" an integer where the column is INTEGER), binary ones as blobs.
 * Results are copied out on the database's thread and read with the same
 * accessors as PostgreSQL's (rows, cols, col_name, is_null, text, int64,
 * double, bool, blob, affected) plus last_insert_id.
 *
 * Transactions: BEGIN IMMEDIATE on the writer (a read-only one: BEGIN on a
 * reader, one snapshot for all its statements).  While a transaction is
 * open its connection serves only that transaction; other writes queue.
 * So a coroutine holding a transaction must not write through the
 * database outside it (it would wait for itself), and should not hold it
 * across slow work.  BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE are
 * refused by tern_sqlite_query / _exec (-EINVAL): they would land on
 * different connections.  Another process (or another tern_sqlite on the
 * same file) holding the write lock makes a call wait in SQLite's busy
 * handler, in steps, up to busy_timeout_ns or until the ctx ends;
 * tern_sqlite_tx_run also retries a transaction that met -EBUSY.
 *
 * Bounding: every call that runs SQL takes a tern_ctx * last (NULL:
 * unbounded).  A request still queued when the ctx ends is withdrawn; a
 * running one is interrupted (a progress handler looks at the ctx every
 * 1000 virtual machine steps, the busy handler at each step) and the
 * connection stays usable.  The call returns only once its request is out
 * of the thread's hands, so nothing it passed is used afterwards.
 *
 * Errors: 0 or -errno.  SQLite's result codes map to: SQLITE_BUSY/LOCKED
 * -EBUSY, a UNIQUE or PRIMARY KEY constraint -EEXIST, another constraint
 * -EPERM, an SQL error (syntax, unknown table or column) -EINVAL,
 * SQLITE_READONLY -EROFS, SQLITE_FULL -ENOSPC, SQLITE_CANTOPEN -ENOENT,
 * SQLITE_PERM/AUTH -EACCES, SQLITE_CORRUPT/NOTADB -EUCLEAN, SQLITE_TOOBIG
 * -E2BIG, SQLITE_RANGE -ERANGE, SQLITE_MISMATCH -EDOM, SQLITE_NOMEM
 * -ENOMEM, SQLITE_INTERRUPT the ctx's error (-ETIMEDOUT / -ECANCELED),
 * anything else -EIO.  The extended result code and SQLite's message are
 * in the tern_sqlite_error a call fills (docs/errors.md).
 *
 * Threads: a tern_sqlite is shared by any number of coroutines; the calls
 * below are made from coroutines.  A tern_sqlite_tx is used by one
 * coroutine at a time.
 *
 * Ownership: a tern_sqlite_result belongs to the caller (free it with
 * tern_sqlite_result_free); strings and blobs it returns live as long as
 * it.  Parameter values and SQL text are only read during the call.
 */
#ifndef TERN_SQLITE_H
#define TERN_SQLITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_sqlite tern_sqlite;
typedef struct tern_sqlite_result tern_sqlite_result;
typedef struct tern_sqlite_tx tern_sqlite_tx;
typedef struct tern_sqlite_metrics tern_sqlite_metrics;

/** Why a call failed: SQLite's extended result code (0: not SQLite's
 *  doing, the -errno says) and its message (truncated to fit). */
typedef struct tern_sqlite_error {
    int code;
    char message[256];
} tern_sqlite_error;

/** Parameters: the shape of tern_pg_params.  A NULL `values[i]` is SQL
 *  NULL; values[i] binds $<i+1> (or the i+1th ?). */
typedef struct tern_sqlite_params {
    int n;                          /**< number of parameters */
    const char *const *values;      /**< n values: text, or bytes when binary */
    const int *lengths;             /**< byte lengths of binary values; NULL: all text */
    const int *formats;             /**< 0 text, 1 binary (a blob), per value; NULL: all text */
} tern_sqlite_params;

/** Database options; zero means the default. */
typedef struct tern_sqlite_options {
    /** Reader connections, one thread each; 0: 2; negative: none (reads
     *  go to the writer).  ":memory:" always has none. */
    int readers;
    /** Prepared statements kept per connection (by SQL text); 0: 64. */
    int stmt_cache;
    /** How long a call waits for another process's lock; 0: 5 s. */
    int64_t busy_timeout_ns;
    /** PRAGMA synchronous=NORMAL instead of FULL: a commit survives a
     *  crash of the process but maybe not of the machine. */
    bool synchronous_normal;
    /** Where to report (borrowed); NULL: nowhere. */
    tern_sqlite_metrics *metrics;
    /** The `db` label of the metrics (copied); NULL: the file's base name. */
    const char *name;
} tern_sqlite_options;

/**
 * Open (creating it if need be) the database file at path, in WAL mode,
 * and start its threads.  From a coroutine: the files are opened on the
 * blocking pool (tern_blocking).  *out is the database (free with tern_sqlite_free) or NULL; err (NULL:
 * not wanted) says why on failure.  Setting up, not bounded by a ctx (as a
 * listener).  Returns 0, -ENOENT (SQLITE_CANTOPEN: no such directory, or
 * no permission), -EUCLEAN (not a database), -ENOMEM, or another mapped
 * code.
 */
int tern_sqlite_new(const char *path, const tern_sqlite_options *opts, tern_sqlite **out,
                    tern_sqlite_error *err);
/** Stop the threads and close the connections (a transaction still open
 *  is rolled back; the last close checkpoints the WAL).  Every call on db
 *  must have returned.  NULL: no-op.  From a coroutine it parks while that
 *  runs on the blocking pool; from a plain thread it blocks. */
void tern_sqlite_free(tern_sqlite *db);

/**
 * Run one statement with params (NULL: none) and return its rows in *out
 * (the caller frees it; NULL on failure).  A read-only statement runs on a
 * reader, anything else (INSERT ... RETURNING, say) on the writer, in a
 * transaction of its own.  err (NULL: not wanted) says why on failure.
 * Returns 0 or a mapped code (see the top of this file); -EINVAL also for
 * SQL that holds more than one statement, a transaction statement, or a
 * placeholder with no value.
 */
int tern_sqlite_query(tern_sqlite *db, const char *sql, const tern_sqlite_params *params,
                      tern_sqlite_result **out, tern_sqlite_error *err, tern_ctx *ctx);
/**
 * Run sql on the writer without returning rows; affected (NULL: not
 * wanted) receives the rows changed.  Without params, sql may hold several
 * statements (a schema), run in order until one fails (those before it
 * stay done unless they were in a transaction of their own).
 */
int tern_sqlite_exec(tern_sqlite *db, const char *sql, const tern_sqlite_params *params,
                     int64_t *affected, tern_sqlite_error *err, tern_ctx *ctx);

/** Transaction options; zero means the default. */
typedef struct tern_sqlite_tx_options {
    /** BEGIN (deferred) on a reader: one snapshot, no writes. */
    bool read_only;
    /** tern_sqlite_tx_run: tries in all; 0: 10. */
    int max_attempts;
    /** First retry's wait, doubled each time with jitter, capped at 64x;
     *  0: 1 ms. */
    int64_t backoff_ns;
} tern_sqlite_tx_options;

/**
 * BEGIN IMMEDIATE on the writer (BEGIN on a reader when read_only): the
 * write lock is taken now, so the transaction cannot fail later for
 * another writer (-EBUSY now instead, after the busy wait).  *out is the
 * transaction, ended by tern_sqlite_tx_commit or tern_sqlite_tx_rollback
 * (which free it).  Returns 0, -EBUSY, ctx's error, or a mapped code.
 */
int tern_sqlite_tx_begin(tern_sqlite *db, const tern_sqlite_tx_options *o, tern_sqlite_tx **out,
                         tern_sqlite_error *err, tern_ctx *ctx);
/** tern_sqlite_query inside tx (any statement but a transaction's own). */
int tern_sqlite_tx_query(tern_sqlite_tx *tx, const char *sql, const tern_sqlite_params *params,
                         tern_sqlite_result **out, tern_ctx *ctx);
/** tern_sqlite_exec inside tx. */
int tern_sqlite_tx_exec(tern_sqlite_tx *tx, const char *sql, const tern_sqlite_params *params,
                        int64_t *affected, tern_ctx *ctx);
/** The error of tx's last failed call (code 0 after a success).  Valid
 *  until the next call on tx. */
const tern_sqlite_error *tern_sqlite_tx_last_error(const tern_sqlite_tx *tx);
/** COMMIT and free tx.  On failure the transaction is rolled back and tx
 *  freed all the same; err (NULL: not wanted) says why.  A ctx that ends
 *  before COMMIT starts rolls back (its error is returned). */
int tern_sqlite_tx_commit(tern_sqlite_tx *tx, tern_sqlite_error *err, tern_ctx *ctx);
/** ROLLBACK and free tx (NULL: no-op).  Not bounded: it always runs. */
void tern_sqlite_tx_rollback(tern_sqlite_tx *tx);

/** A transaction's body: 0 to commit, anything else to roll back. */
typedef int tern_sqlite_tx_fn(tern_sqlite_tx *tx, tern_ctx *ctx, void *arg);
/**
 * Run fn in a transaction and commit it.  When BEGIN or a statement meets
 * -EBUSY (another process holds the lock past busy_timeout_ns), roll back
 * and run fn again after a backoff, up to o->max_attempts times, while ctx
 * lasts; fn must therefore be safe to repeat.  Returns 0, fn's non-zero
 * result (rolled back), a mapped code (err: SQLite's error), or ctx's.
 */
int tern_sqlite_tx_run(tern_sqlite *db, const tern_sqlite_tx_options *o, tern_sqlite_tx_fn *fn, void *arg,
                       tern_sqlite_error *err, tern_ctx *ctx);

/** Rows in r. */
int tern_sqlite_result_rows(const tern_sqlite_result *r);
/** Columns in r. */
int tern_sqlite_result_cols(const tern_sqlite_result *r);
/** Name of column col, or "" if out of range. */
const char *tern_sqlite_result_col_name(const tern_sqlite_result *r, int col);
/** Index of the column named name, or -ENOENT. */
int tern_sqlite_result_col_index(const tern_sqlite_result *r, const char *name);
/** True if the value is SQL NULL (or row/col is out of range). */
bool tern_sqlite_result_is_null(const tern_sqlite_result *r, int row, int col);
/** The value as text ("" for NULL or out of range; numbers as SQLite
 *  writes them; a blob's bytes, NUL-terminated); lives as long as r. */
const char *tern_sqlite_result_text(const tern_sqlite_result *r, int row, int col);
/** The value as a 64-bit integer: an INTEGER, or TEXT that is one.  0,
 *  -ENODATA (NULL), -ERANGE (out of row/col range, or too large), -EINVAL
 *  (not an integer: a REAL, a blob, other text). */
int tern_sqlite_result_int64(const tern_sqlite_result *r, int row, int col, int64_t *out);
/** The value as a double (INTEGER, REAL, or text that parses); errors as
 *  int64. */
int tern_sqlite_result_double(const tern_sqlite_result *r, int row, int col, double *out);
/** The value as a bool: INTEGER 0 or 1, or text 't'/'f' (PostgreSQL's);
 *  errors as int64. */
int tern_sqlite_result_bool(const tern_sqlite_result *r, int row, int col, bool *out);
/** A BLOB's (or TEXT's) bytes, owned by r: 0, -ENODATA, -ERANGE, -EINVAL
 *  (a number). */
int tern_sqlite_result_blob(const tern_sqlite_result *r, int row, int col, const uint8_t **data,
                            size_t *len);
/** Rows changed by the statement (0 for a read). */
int64_t tern_sqlite_result_affected(const tern_sqlite_result *r);
/** The rowid of the last row the connection inserted, as of the
 *  statement's end (sqlite3_last_insert_rowid). */
int64_t tern_sqlite_result_last_insert_id(const tern_sqlite_result *r);
/** Free r (NULL: no-op). */
void tern_sqlite_result_free(tern_sqlite_result *r);

/**
 * Metrics for databases (tern_sqlite_options.metrics), as families in a
 * registry:
 *   tern_sqlite_query_duration_seconds{db,statement}  histogram (on its thread)
 *   tern_sqlite_queue_wait_seconds{db,conn="writer"|"reader"}  histogram
 *   tern_sqlite_busy_waits_total{db}                 counter
 *   tern_sqlite_tx_total{db,outcome="commit"|"rollback"}  counter
 * `statement` is the SQL's first keyword in lower case, never the text.
 * The handle must outlive the databases that report into it.
 */
/** Register the families in r (NULL: the default registry).  -EEXIST: a
 *  second set in one registry (share the first); -ENOMEM. */
int tern_sqlite_metrics_new(tern_metrics_registry *r, tern_sqlite_metrics **out);
/** Free the handle (the families stay with their registry).  NULL: no-op. */
void tern_sqlite_metrics_free(tern_sqlite_metrics *m);

/** Counters (tern_sqlite_stats); a struct tag, as struct tern_pg_pool_stats. */
struct tern_sqlite_stats {
    int readers;                    /**< reader connections */
    int queued;                     /**< requests waiting for a thread now */
    uint64_t queries;               /**< statements run (each of an exec's too) */
    uint64_t rerouted;              /**< requests a reader handed to the writer */
    uint64_t busy_waits;            /**< steps of the busy handler */
    uint64_t interrupted;           /**< statements ended by their ctx */
    uint64_t commits;               /**< transactions committed */
    uint64_t rollbacks;             /**< transactions rolled back */
    uint64_t stmt_cache_hits;       /**< statements found prepared */
    uint64_t stmt_cache_misses;     /**< statements prepared */
};
/** A snapshot of db's counters. */
int tern_sqlite_stats(const tern_sqlite *db, struct tern_sqlite_stats *out);

#ifdef __cplusplus
}
#endif
#endif
