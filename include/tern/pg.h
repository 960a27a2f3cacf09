/*
 * tern/pg.h - a PostgreSQL client on the runtime: libpq's asynchronous API
 * driven from coroutines, every wait parked on the netpoller.
 *
 * A connection (tern_pg_conn) is used by one coroutine at a time.  Host
 * names are resolved by tern (getaddrinfo on the blocking pool) and handed
 * to libpq as `hostaddr`, so libpq never blocks a worker on DNS; one host
 * per conninfo.  Queries are parameterized; statements with parameters are
 * prepared once per connection and kept in a cache keyed by their SQL text.
 * Results come back in text format and are read with typed accessors.
 *
 * Bounding: every call that talks to the server takes a tern_ctx * last
 * (NULL: unbounded).  When the ctx ends during a query, the query is
 * cancelled (PQcancel on the blocking pool) and its result drained, so the
 * connection stays usable; when draining fails the connection is marked
 * broken (tern_pg_conn_ok() false) and a pool discards it.
 * tern_pg_pool_query returns the ctx's error at once instead: the cancel
 * and the drain run in a coroutine of the pool's as it releases the
 * connection (handed to nobody before; tern_pg_pool_free waits for them).
 *
 * Errors: 0 or -errno.  -EREMOTEIO means the server answered with an error;
 * its SQLSTATE and message are in tern_pg_conn_last_error() (and in the
 * tern_pg_error a pool call fills).  docs/errors.md lists the codes.
 *
 * Tracing: when the ctx of a query carries a span (tern/trace.h,
 * tern_trace_span_from_ctx) a CLIENT child span "pg <statement>" records
 * it, with db.system=postgresql, db.statement (the SQL with its string and
 * number literals replaced by '?') and, on failure, db.sqlstate and the
 * status message "SQLSTATE xxxxx" (the server's message may quote values).
 *
 * Ownership: a tern_pg_result belongs to the caller, who frees it with
 * tern_pg_result_free; strings it returns live as long as it.  A conn from
 * tern_pg_pool_acquire goes back with tern_pg_pool_release, never
 * tern_pg_conn_free.  Parameter values are only read during the call.
 */
#ifndef TERN_PG_H
#define TERN_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_pg_conn tern_pg_conn;
typedef struct tern_pg_result tern_pg_result;
typedef struct tern_pg_pool tern_pg_pool;

/** A server error: SQLSTATE (five characters, "" when none) and libpq's
 *  message (truncated to fit). */
typedef struct tern_pg_error {
    char sqlstate[6];
    char message[256];
} tern_pg_error;

/** Connection options; zero means the default. */
typedef struct tern_pg_conn_options {
    /** Prepared statements kept per connection (by SQL text); 0: 128. */
    int stmt_cache;
    /** Do not prepare: every query goes as PQsendQueryParams. */
    bool no_stmt_cache;
    /** After a cancel, how long to wait for the server to end the query
     *  before the connection is declared broken; 0: 5 s. */
    int64_t cancel_drain_ns;
} tern_pg_conn_options;

/** Query parameters, as libpq takes them.  A NULL `values[i]` is SQL NULL. */
typedef struct tern_pg_params {
    int n;                          /**< number of parameters */
    const char *const *values;      /**< n values (text or binary bytes) */
    const int *lengths;             /**< byte lengths of binary values; NULL: all text */
    const int *formats;             /**< 0 text, 1 binary, per value; NULL: all text */
    const uint32_t *types;          /**< type OIDs; NULL (or 0): inferred by the server */
} tern_pg_params;

/**
 * Connect with a libpq conninfo string ("host=db port=5432 dbname=x" or a
 * postgresql:// URI), bounded by ctx (libpq's connect_timeout is not used).
 * Every address the host name resolves to is tried in turn.  *out is set to
 * the connection (free with tern_pg_conn_free) or NULL.  err, when not
 * NULL, receives libpq's message on failure.  Returns 0, -EINVAL (bad
 * conninfo), -ECONNREFUSED, -ETIMEDOUT / -ECANCELED (ctx), -EREMOTEIO (the
 * server refused us: authentication, unknown database), -EIO, -ENOMEM.
 */
int tern_pg_conn_new(const char *conninfo, const tern_pg_conn_options *opts, tern_pg_conn **out,
                     tern_pg_error *err, tern_ctx *ctx);
/** Close the connection and free it (NULL: no-op).  Does not park. */
void tern_pg_conn_free(tern_pg_conn *c);
/** False once the connection is broken (lost, or a cancel could not be
 *  drained); every call on it then returns -EPIPE. */
bool tern_pg_conn_ok(const tern_pg_conn *c);
/** The last server error on c (SQLSTATE "" if the last call succeeded or
 *  failed for another reason).  Valid until the next call on c. */
const tern_pg_error *tern_pg_conn_last_error(const tern_pg_conn *c);
/** Statements prepared and cached on c now. */
int tern_pg_conn_cached_statements(const tern_pg_conn *c);

/**
 * Run sql with params (NULL: none) and return its result in *out (the
 * caller frees it), or NULL on failure.  With parameters (and the cache on)
 * the statement is prepared on first use and run by name after.  Several
 * statements in one sql are allowed only without parameters, and *out is
 * then the last one's result.  Returns 0, -EREMOTEIO (server error: see
 * tern_pg_conn_last_error), -ETIMEDOUT / -ECANCELED (ctx ended: the query
 * was cancelled), -EPIPE (connection broken), -ENOMEM.
 */
int tern_pg_query(tern_pg_conn *c, const char *sql, const tern_pg_params *params,
                  tern_pg_result **out, tern_ctx *ctx);
/** tern_pg_query without a result, for commands (out of rows affected:
 *  NULL or where to store it). */
int tern_pg_exec(tern_pg_conn *c, const char *sql, const tern_pg_params *params,
                 int64_t *affected, tern_ctx *ctx);
/** Prepare sql under name (nparams types may be NULL: inferred). */
int tern_pg_prepare(tern_pg_conn *c, const char *name, const char *sql, int ntypes,
                    const uint32_t *types, tern_ctx *ctx);
/** Run the statement prepared as name; as tern_pg_query otherwise. */
int tern_pg_query_prepared(tern_pg_conn *c, const char *name, const tern_pg_params *params,
                           tern_pg_result **out, tern_ctx *ctx);
/** One statement of a batch (tern_pg_batch). */
typedef struct tern_pg_batch_item {
    const char *sql;                /**< one statement */
    tern_pg_params params;          /**< n 0: none */
} tern_pg_batch_item;

/**
 * Run n statements in one round trip (libpq's pipeline mode): all are
 * sent, then one Sync, then every result is read.  Outside an explicit
 * transaction they form one implicit transaction: the first failure rolls
 * all of them back, and -EREMOTEIO reports it (tern_pg_conn_last_error).
 * affected (NULL: not wanted) receives each statement's row count.  When
 * the ctx ends the batch is cancelled and drained as a query is.
 */
int tern_pg_batch(tern_pg_conn *c, const tern_pg_batch_item *items, size_t n, int64_t *affected,
                  tern_ctx *ctx);

/** tern_pg_copy_in's source: set *data and *len to the next piece of the
 *  COPY data (any split; the memory needs to last until the next call) and
 *  return 1, or return 0 at the end, or a negative errno to abort the COPY. */
typedef int tern_pg_copy_in_fn(const void **data, size_t *len, void *arg);
/** tern_pg_copy_out's sink: one row of COPY data (with its newline in the
 *  text format); non-zero stops the COPY (cancelled) and is returned. */
typedef int tern_pg_copy_out_fn(const char *row, size_t len, void *arg);

/**
 * Run sql, a `COPY ... FROM STDIN`, with the data fn gives (in the COPY
 * format the statement names).  rows (NULL: not wanted) receives the rows
 * copied.  0; fn's error (the COPY is aborted and nothing is copied);
 * -EREMOTEIO (bad data: SQLSTATE in the error); ctx's error (aborted).
 */
int tern_pg_copy_in(tern_pg_conn *c, const char *sql, tern_pg_copy_in_fn *fn, void *arg, int64_t *rows,
                    tern_ctx *ctx);
/**
 * Run sql, a `COPY ... TO STDOUT`, handing each row to fn.  rows (NULL:
 * not wanted) receives the count.  0, fn's non-zero result (the COPY was
 * cancelled), -EREMOTEIO, ctx's error (cancelled).
 */
int tern_pg_copy_out(tern_pg_conn *c, const char *sql, tern_pg_copy_out_fn *fn, void *arg, int64_t *rows,
                     tern_ctx *ctx);

/** An empty query: 0 when the server answers, else as tern_pg_query. */
int tern_pg_ping(tern_pg_conn *c, tern_ctx *ctx);

/** A notification from NOTIFY or pg_notify (tern_pg_notify_wait); one
 *  allocation, freed with tern_pg_notification_free. */
typedef struct tern_pg_notification {
    const char *channel;            /**< the channel it was sent on */
    const char *payload;            /**< "" when none */
    int sender_pid;                 /**< the sending backend's process id */
} tern_pg_notification;

/** LISTEN on channel (quoted: the name is taken as written).  Listen on a
 *  connection of your own (tern_pg_conn_new), not a pooled one: a pool
 *  would hand it to others with the subscription still on. */
int tern_pg_listen(tern_pg_conn *c, const char *channel, tern_ctx *ctx);
/** UNLISTEN channel (NULL: all). */
int tern_pg_unlisten(tern_pg_conn *c, const char *channel, tern_ctx *ctx);
/** pg_notify(channel, payload) (payload NULL: ""). */
int tern_pg_notify(tern_pg_conn *c, const char *channel, const char *payload, tern_ctx *ctx);
/**
 * The next notification for c's LISTENs: one already received (during a
 * query, say) at once, else park until one arrives or ctx ends.  *out is
 * the caller's (tern_pg_notification_free).  0, -ETIMEDOUT / -ECANCELED
 * (nothing is lost: a later call gets what arrives meanwhile), -EPIPE.
 * To feed a tern channel, loop on it in a coroutine and send *out on.
 */
int tern_pg_notify_wait(tern_pg_conn *c, tern_pg_notification **out, tern_ctx *ctx);
/** Free n (NULL: no-op). */
void tern_pg_notification_free(tern_pg_notification *n);

/** Rows in r. */
int tern_pg_result_rows(const tern_pg_result *r);
/** Columns in r. */
int tern_pg_result_cols(const tern_pg_result *r);
/** Name of column col, or "" if out of range. */
const char *tern_pg_result_col_name(const tern_pg_result *r, int col);
/** Index of the column named name, or -ENOENT. */
int tern_pg_result_col_index(const tern_pg_result *r, const char *name);
/** True if the value is SQL NULL (or row/col is out of range). */
bool tern_pg_result_is_null(const tern_pg_result *r, int row, int col);
/** The value as text ("" for NULL or out of range); lives as long as r. */
const char *tern_pg_result_text(const tern_pg_result *r, int row, int col);
/** The value as a 64-bit integer: 0, -ENODATA (NULL), -ERANGE (out of
 *  row/col range, or too large), -EINVAL (not an integer). */
int tern_pg_result_int64(const tern_pg_result *r, int row, int col, int64_t *out);
/** The value as a double (NaN, Infinity accepted); errors as int64. */
int tern_pg_result_double(const tern_pg_result *r, int row, int col, double *out);
/** The value as a bool ('t' or 'f'); errors as int64. */
int tern_pg_result_bool(const tern_pg_result *r, int row, int col, bool *out);
/** A bytea value decoded into memory owned by r: 0, -ENODATA, -ERANGE,
 *  -EINVAL, -ENOMEM. */
int tern_pg_result_bytea(tern_pg_result *r, int row, int col, const uint8_t **data, size_t *len);
/** The command tag ("SELECT 3", "INSERT 0 1"); lives as long as r. */
const char *tern_pg_result_cmd_tag(const tern_pg_result *r);
/** Rows affected by the command (0 when the tag has no count). */
int64_t tern_pg_result_affected(const tern_pg_result *r);
/** Free r (NULL: no-op). */
void tern_pg_result_free(tern_pg_result *r);

/**
 * Metrics for pools (tern_pg_pool_options.metrics), as families in a
 * registry:
 *   tern_pg_pool_connections{pool,state="in_use"|"idle"}   gauge
 *   tern_pg_pool_waits_total{pool}                         counter
 *   tern_pg_pool_wait_seconds{pool}                        histogram
 *   tern_pg_query_duration_seconds{pool,statement}         histogram
 * `statement` is the name given to tern_pg_query_prepared, else the SQL's
 * first keyword in lower case ("select", "insert", ...): bounded, never
 * the text.  The families live as long as the registry; the handle must
 * outlive the pools that report into it.
 */
typedef struct tern_pg_metrics tern_pg_metrics;
/** Register the families in r (NULL: the default registry).  -EEXIST: a
 *  second set in one registry (share the first); -ENOMEM. */
int tern_pg_metrics_new(tern_metrics_registry *r, tern_pg_metrics **out);
/** Free the handle (the families stay with their registry).  NULL: no-op. */
void tern_pg_metrics_free(tern_pg_metrics *m);

/** Pool options; zero means the default. */
typedef struct tern_pg_pool_options {
    int max_conns;                  /**< open connections at most; 0: 16 */
    int min_idle;                   /**< idle connections kept open by a maintainer coroutine (started by the first acquire); 0: none */
    int64_t max_lifetime_ns;        /**< a connection older is closed when idle; 0: 1 h (minus up to 10% jitter) */
    int64_t idle_timeout_ns;        /**< an idle connection unused this long is closed; 0: 10 min */
    int64_t health_check_idle_ns;   /**< reused after idling this long: pinged first; 0: 1 s */
    tern_pg_conn_options conn;      /**< for each connection */
    tern_pg_metrics *metrics;       /**< where to report (borrowed); NULL: nowhere */
    const char *name;               /**< the `pool` label (copied); NULL: "default" */
} tern_pg_pool_options;

/** Pool counters (tern_pg_pool_stats).  A struct tag without a typedef,
 *  as struct tern_runtime_stats: the function owns the ordinary name. */
struct tern_pg_pool_stats {
    int open;                       /**< connections open or being opened */
    int in_use;                     /**< acquired now */
    int idle;                       /**< idle now */
    int waiting;                    /**< acquirers queued now */
    uint64_t acquired;              /**< acquisitions so far */
    uint64_t waits;                 /**< acquisitions that had to queue */
    int64_t wait_ns;                /**< total time queued */
    uint64_t opened;                /**< connections opened so far */
    uint64_t closed;                /**< connections closed (expired, idle, broken) */
    uint64_t health_failures;       /**< pings that failed on reuse */
};

/** A pool for conninfo (copied).  Opens nothing yet. */
int tern_pg_pool_new(const char *conninfo, const tern_pg_pool_options *opts, tern_pg_pool **out);
/** Close the idle connections and free p.  Every acquired connection must
 *  have been released.  Parks while the maintainer (min_idle) stops and
 *  while a cancelled query of tern_pg_pool_query drains: call it from a
 *  coroutine of the runtime that used the pool. */
void tern_pg_pool_free(tern_pg_pool *p);
/**
 * A connection from p: an idle one (pinged first when idle longer than
 * health_check_idle_ns), a new one while fewer than max_conns are open, or
 * else the next one released, handed to waiters in arrival order.  Bounded
 * by ctx: -ETIMEDOUT / -ECANCELED; connect errors as tern_pg_conn_new.
 */
int tern_pg_pool_acquire(tern_pg_pool *p, tern_pg_conn **out, tern_ctx *ctx);
/** Give c back to p: reused when healthy and idle (no transaction open),
 *  closed otherwise.  Does not park. */
void tern_pg_pool_release(tern_pg_pool *p, tern_pg_conn *c);
/** Acquire, tern_pg_query, release.  err (NULL: not wanted) receives the
 *  server's error on -EREMOTEIO. */
int tern_pg_pool_query(tern_pg_pool *p, const char *sql, const tern_pg_params *params,
                       tern_pg_result **out, tern_pg_error *err, tern_ctx *ctx);
/** A snapshot of p's counters. */
int tern_pg_pool_stats(const tern_pg_pool *p, struct tern_pg_pool_stats *out);

/** Transaction isolation levels. */
typedef enum tern_pg_isolation {
    TERN_PG_READ_COMMITTED = 0,
    TERN_PG_REPEATABLE_READ,
    TERN_PG_SERIALIZABLE,
} tern_pg_isolation;

/** Transaction options; zero means the default. */
typedef struct tern_pg_tx_options {
    tern_pg_isolation isolation;    /**< default READ COMMITTED */
    bool read_only;
    int max_attempts;               /**< tern_pg_tx_run: tries in all; 0: 10 */
    int64_t backoff_ns;             /**< first retry's wait, doubled each time with jitter, capped at 64x; 0: 1 ms */
} tern_pg_tx_options;

/** BEGIN with o's isolation and access mode. */
int tern_pg_tx_begin(tern_pg_conn *c, const tern_pg_tx_options *o, tern_ctx *ctx);
/** COMMIT; -EREMOTEIO with SQLSTATE 40001 when serialization failed. */
int tern_pg_tx_commit(tern_pg_conn *c, tern_ctx *ctx);
/** ROLLBACK. */
int tern_pg_tx_rollback(tern_pg_conn *c, tern_ctx *ctx);

/** A transaction's body: 0 to commit, anything else to roll back. */
typedef int tern_pg_tx_fn(tern_pg_conn *c, tern_ctx *ctx, void *arg);
/**
 * Run fn in a transaction on a connection from p and commit it.  A
 * serialization failure (40001) or deadlock (40P01), from fn's queries or
 * from COMMIT, rolls back and runs fn again after a backoff, up to
 * o->max_attempts times; fn must therefore be safe to repeat.  Returns 0,
 * fn's non-zero result (rolled back), -EREMOTEIO (err: the last error),
 * or ctx's error.
 */
int tern_pg_tx_run(tern_pg_pool *p, const tern_pg_tx_options *o, tern_pg_tx_fn *fn, void *arg,
                   tern_pg_error *err, tern_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
