/*
 * pg_internal.h - what the PostgreSQL client's files share: the
 * connection's layout, waiting on its socket bounded by a ctx, and the
 * statement cache.
 */
#ifndef TERN_DATA_PG_INTERNAL_H
#define TERN_DATA_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/check.h"
#include "tern/pg.h"

/* A pool's metric children (observe.c); m NULL: none. */
typedef struct pg_obs {
    tern_pg_metrics *m;
    const char *pool;
    tern_metrics_gauge *in_use, *idle;
    tern_metrics_counter *waits;
    tern_metrics_histogram *wait_s;
} pg_obs;

/* One prepared statement, named "tern_s<seq>", keyed by its SQL text. */
typedef struct pg_stmt {
    struct pg_stmt *prev, *next;    /* LRU list: head most recent */
    uint64_t hash;
    char *sql;
    char name[24];
    tern_metrics_histogram *hist;   /* its query duration, when observed */
} pg_stmt;

struct tern_pg_conn {
    PGconn *pg;
    PGcancel *cancel;               /* made once connected: PQcancel needs it */
    int fd;                         /* the socket we waited on, or -1 */
    ino_t ino;                      /* its inode: a new socket may reuse fd's number */
    bool broken;
    /* A pool's connection whose query was abandoned when its ctx ended: the
     * cancel and the drain are still to do (tern__pg_abandon). */
    bool defer_drain;               /* set by tern_pg_pool_query around its one
                                       query: abandon, do not drain */
    bool abandoned;
    /* A command was sent (query.c's finish) and no wait has returned since:
     * its reply, still to come or come unread, brings an edge that no wait
     * has taken, so the next read wait may park without looking first. */
    bool reply_due;
    tern_pg_conn_options opts;
    tern_pg_error err;
    const pg_obs *obs;              /* the pool's, or NULL */
    /* statement cache */
    pg_stmt *lru_head, *lru_tail;
    int nstmts;
    uint64_t stmt_seq;
    /* pool bookkeeping (pool.c) */
    struct tern_pg_conn *next_idle;
    int64_t created;                /* monotonic ns */
    int64_t expires;                /* created + lifetime - jitter */
    int64_t idle_since;
};

struct tern_pg_result {
    PGresult *res;
    struct bytea_buf *decoded;      /* tern_pg_result_bytea's copies */
};

/* Park until c's socket is ready for ev (TERN_FD_READ/WRITE), ctx ends or
 * the absolute deadline (TERN_FOREVER: none) passes.  Re-registers the
 * socket when libpq has replaced it. */
int tern__pg_wait(tern_pg_conn *c, int ev, int64_t deadline, tern_ctx *ctx);
/* Forget c's socket in the netpoller before libpq closes it. */
void tern__pg_forget_socket(tern_pg_conn *c);
/* Record res's error (or PQerrorMessage when res is NULL) in c->err. */
void tern__pg_set_error(tern_pg_conn *c, const PGresult *res);
void tern__pg_copy_error(tern_pg_error *dst, const char *sqlstate, const char *msg);
/* Free the statement cache's memory (the server side goes with the conn). */
void tern__pg_stmt_cache_free(tern_pg_conn *c);
/* Wrap res in a tern_pg_result (takes res). */
int tern__pg_result_wrap(PGresult *res, tern_pg_result **out);

/* The round trip's steps (query.c), for batch.c and copy.c.  ready: c is
 * usable and ctx not done (clears c->err); sent: PQsend*'s result as
 * 0/-errno; flush: until libpq's output is on the wire; read_results:
 * to the command's end (copy: or to its COPY IN/OUT result, in *last);
 * cancel_request: PQcancel on the blocking pool; cancel_and_drain: that,
 * then read to the command's end, or mark c broken; returns cause. */
int tern__pg_ready(tern_pg_conn *c, tern_ctx *ctx);
int tern__pg_sent(tern_pg_conn *c, int ok);
int tern__pg_flush(tern_pg_conn *c, int64_t deadline, tern_ctx *ctx);
int tern__pg_read_results(tern_pg_conn *c, PGresult **last, bool copy, int64_t deadline, tern_ctx *ctx);
int tern__pg_cancel_request(tern_pg_conn *c);
int tern__pg_cancel_and_drain(tern_pg_conn *c, int cause);
/* The ctx ended (cause) mid-query: inside tern_pg_pool_query (defer_drain),
 * leave the cancel and the drain to the release, which runs them in the
 * background, and return at once; otherwise tern__pg_cancel_and_drain now. */
int tern__pg_abandon(tern_pg_conn *c, int cause);
/* Cancel and drain an abandoned connection's command now (bounded by
 * cancel_drain_ns after the cancel), clearing c->abandoned. */
void tern__pg_drain_abandoned(tern_pg_conn *c);

/* Metrics and spans (observe.c). */
struct tern_trace_span;
int tern__pg_obs_init(pg_obs *o, tern_pg_metrics *m, const char *pool);
tern_metrics_histogram *tern__pg_obs_query_hist(const pg_obs *o, const char *name, const char *sql);
struct tern_trace_span *tern__pg_span_start(const char *name, const char *sql, tern_ctx *ctx);
void tern__pg_span_end(struct tern_trace_span *s, const tern_pg_conn *c, int rc);

/* tern_pg_pool_acquire, with the connect error for callers that want it. */
int tern__pg_pool_acquire(tern_pg_pool *p, tern_pg_conn **out, tern_pg_error *err, tern_ctx *ctx);

#endif
