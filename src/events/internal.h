/*
 * internal.h - what the events layer's files share: event copies, ids,
 * metric children, and the outbox's back ends (SQLite, PostgreSQL) behind
 * one table of functions the relay drives.
 */
#ifndef TERN_EVENTS_INTERNAL_H
#define TERN_EVENTS_INTERNAL_H

#include <stdatomic.h>

#include "base/check.h"
#include "tern/events.h"

/* A fresh event id: 32 hex digits of randomness. */
void tern__ev_make_id(char out[TERN_EVENTS_ID_MAX]);

/* Metric children for a (bus, topic) pair, looked up per call; NULL
 * members when there are no metrics. */
typedef struct ev_counters {
    tern_metrics_counter *published, *delivered, *redelivered, *dead;
} ev_counters;
void tern__ev_counters(tern_events_metrics *m, const char *bus, const char *topic, ev_counters *out);
void tern__ev_relay_children(tern_events_metrics *m, const char *outbox, tern_metrics_counter **published,
                             tern_metrics_histogram **lag);

/* One unsent outbox row. */
typedef struct ob_row {
    int64_t seq;
    int64_t created_ns;
    tern_event ev;              /* strings and data in the back end's result */
} ob_row;

/* An outbox back end.  fetch gives up to max unsent rows in seq order
 * (*rows valid until release); mark records seqs as sent. */
typedef struct ob_ops {
    int (*fetch)(tern_outbox *ob, int max, ob_row **rows, int *n, void **hold, tern_ctx *ctx);
    void (*release)(void *hold, ob_row *rows);
    int (*mark)(tern_outbox *ob, const int64_t *seqs, int n, tern_ctx *ctx);
    int (*pending)(tern_outbox *ob, int64_t *out, tern_ctx *ctx);
    int (*purge)(tern_outbox *ob, int64_t before_ns, int64_t *deleted, tern_ctx *ctx);
} ob_ops;

struct tern_outbox {
    const ob_ops *ops;
    void *db;                   /* tern_sqlite or tern_pg_pool */
    char table[64];
    /* SQL made once with the table's name */
    char *sql_insert, *sql_fetch, *sql_mark, *sql_pending, *sql_purge;
    char claimer[TERN_EVENTS_ID_MAX];   /* PostgreSQL: this outbox's relays' claims */
};

/* The wall clock in ns (outbox times are compared across processes). */
int64_t tern__ob_wall_ns(void);
/* Check a table name and fill ob->table. */
int tern__ob_init(tern_outbox *ob, const tern_outbox_options *o);
/* "[1,2,3]" (json) or "{1,2,3}" (a PostgreSQL array): malloc'd. */
char *tern__ob_seq_list(const int64_t *seqs, int n, char open, char close);
void tern__ob_free_sql(tern_outbox *ob);

#endif
