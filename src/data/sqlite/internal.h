/*
 * internal.h - what the SQLite client's files share: the database, its
 * connections (one thread each), the requests coroutines hand them, and the
 * result's layout.
 *
 * The hand-over: a coroutine fills a request (sq_req, on the heap: its
 * stack may be copied out while it waits), queues it under db->lock and
 * parks on a ticket.  The connection's thread takes it, runs it, and under
 * db->lock sets `done` and wakes (co, ticket).  If the ctx ends first, the
 * coroutine takes db->lock: a request still queued is unlinked and never
 * runs; a running one is left to finish (its progress handler sees the ctx
 * and interrupts it) while the coroutine waits again on a fresh ticket
 * that the thread reads under the same lock.  So a request always leaves
 * the thread's hands before its call returns.
 *
 * Invariants (db->lock held): a request is in at most one queue, and
 * `queued` says so; a connection owned by a transaction takes requests
 * only from its own queue (`mine`); `done` is set once, by the thread,
 * after which the thread no longer touches the request.
 */
#ifndef TERN_DATA_SQLITE_INTERNAL_H
#define TERN_DATA_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/check.h"
#include "runtime/export.h"
#include "tern/sqlite.h"

enum sq_kind {
    SQ_QUERY,                   /* one statement, rows wanted */
    SQ_EXEC,                    /* statements, rows dropped */
    SQ_BEGIN,                   /* takes the connection for a tx */
    SQ_COMMIT,
    SQ_ROLLBACK,
};

typedef struct sq_queue {
    struct sq_req *head, *tail;
    pthread_cond_t cond;        /* consumers wait here */
    int len;
} sq_queue;

typedef struct sq_req {
    struct sq_req *next, *prev;
    sq_queue *queue;            /* the queue it is in, or NULL */
    enum sq_kind kind;
    bool done;
    bool read;                  /* for a reader (may be rerouted) */
    const char *sql;
    const tern_sqlite_params *params;
    tern_sqlite_tx *tx;         /* the transaction it belongs to, or NULL */
    tern_ctx *ctx;
    int64_t queued_at;
    /* out */
    int rc;
    tern_sqlite_error err;
    tern_sqlite_result *res;
    int64_t affected;
    /* the waiter */
    tern_co *co;
    tern_ticket ticket;
    /* a copy of sql and params when the caller's stack is shared */
    void *copy;
} sq_req;

typedef struct sq_stmt {
    struct sq_stmt *prev, *next;    /* LRU: head most recent */
    uint64_t hash;
    char *sql;
    sqlite3_stmt *st;
    tern_metrics_histogram *hist;
} sq_stmt;

typedef struct sq_conn {
    struct tern_sqlite *db;
    sqlite3 *h;
    bool writer;
    pthread_t th;
    bool started;
    sq_queue *shared;           /* the writer's or the readers' queue */
    sq_queue mine;              /* its transaction's requests */
    tern_sqlite_tx *owner;      /* the transaction it serves, or NULL */
    sq_req *current;            /* running now (its thread only) */
    int64_t busy_since;
    sq_stmt *lru_head, *lru_tail;
    int nstmts;
    tern_metrics_histogram *queue_hist;
} sq_conn;

struct tern_sqlite_tx {
    tern_sqlite *db;
    sq_conn *conn;              /* set by BEGIN */
    tern_sqlite_error err;
    sq_req rollback;            /* tern_sqlite_tx_rollback's request */
};

typedef struct sq_obs {
    tern_metrics_counter *busy, *commits, *rollbacks;
    tern_metrics_histogram *wait_writer, *wait_reader;
} sq_obs;

struct tern_sqlite {
    pthread_mutex_t lock;
    sq_queue wq, rq;            /* the writer's, the readers' */
    sq_conn *conns;             /* [0] the writer, then the readers */
    int nconns;
    bool stopping;
    char *path;
    char *name;
    int stmt_cache;
    int64_t busy_timeout_ns;
    bool sync_normal;
    tern_sqlite_metrics *metrics;
    sq_obs obs;
    /* stats */
    atomic_ullong queries, rerouted, busy_waits, interrupted, commits, rollbacks, hits, misses;
};

struct tern_sqlite_result {
    int rows, cols;
    char **names;
    struct sq_cell *cells;      /* rows * cols */
    struct sq_block *blocks;    /* where text and blobs live */
    int64_t affected, last_id;
};

typedef struct sq_cell {
    int type;                   /* SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB, _NULL */
    int len;                    /* bytes of text or blob */
    union {
        int64_t i;
        double d;
    } v;
    const char *text;           /* NUL-terminated; NULL for SQL NULL */
} sq_cell;

/* db.c: hand req to the writer (tx NULL), a reader (req->read) or tx's
 * connection and wait for it; returns req->rc. */
int tern__sq_submit(tern_sqlite *db, sq_req *req, tern_ctx *ctx);
/* A fresh request on the heap (copies sql and params when the calling
 * coroutine's stack is shared); NULL when out of memory. */
sq_req *tern__sq_req_new(enum sq_kind kind, const char *sql, const tern_sqlite_params *params);
void tern__sq_req_free(sq_req *r);
void tern__sq_copy_error(tern_sqlite_error *dst, const tern_sqlite_error *src);

/* conn.c: on a connection's thread. */
int tern__sq_conn_open(sq_conn *c, tern_sqlite_error *err);
void tern__sq_conn_close(sq_conn *c);
/* Run req on c; 1 when a reader found the statement is a write (req goes
 * to the writer), else 0 with req->rc set. */
int tern__sq_conn_run(sq_conn *c, sq_req *req);
int tern__sq_map(int code);
/* A transaction statement (BEGIN, COMMIT, ...), by its first keyword. */
bool tern__sq_is_tx_sql(const char *sql);

/* metrics.c */
void tern__sq_obs_init(tern_sqlite *db);
tern_metrics_histogram *tern__sq_query_hist(tern_sqlite *db, const char *sql);

/* result.c */
tern_sqlite_result *tern__sq_result_new(int cols);
int tern__sq_result_add_row(tern_sqlite_result *r, sqlite3_stmt *st);
int tern__sq_result_set_names(tern_sqlite_result *r, sqlite3_stmt *st);

#endif
