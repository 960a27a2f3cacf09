/*
 * outbox_sqlite.c - the outbox and the idempotent consumer on SQLite.
 *
 * The outbox's seq is AUTOINCREMENT: with one writer per database (and
 * BEGIN IMMEDIATE), rows get their seq in commit order, so the relay's
 * "unsent, by seq" is the order the state changes committed.  Marking
 * names the seqs it published (json_each over "[1,2,3]"), never a range:
 * a range would also mark a row it did not see.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events/internal.h"
#include "tern/runtime.h"

typedef struct sq_hold {
    tern_sqlite_result *res;
} sq_hold;

static int sq_fetch(tern_outbox *ob, int max, ob_row **rows, int *n, void **hold, tern_ctx *ctx)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", max);
    tern_sqlite_params p = {.n = 1, .values = (const char *const[]){lim}};
    tern_sqlite_result *res;
    int rc = tern_sqlite_query(ob->db, ob->sql_fetch, &p, &res, NULL, ctx);
    if (rc < 0)
        return rc;
    int nr = tern_sqlite_result_rows(res);
    ob_row *rs = nr ? calloc((size_t)nr, sizeof *rs) : NULL;
    if (nr && !rs) {
        tern_sqlite_result_free(res);
        return -ENOMEM;
    }
    for (int i = 0; i < nr; i++) {
        const uint8_t *data = NULL;
        size_t len = 0;
        tern_sqlite_result_int64(res, i, 0, &rs[i].seq);
        tern_sqlite_result_int64(res, i, 5, &rs[i].created_ns);
        tern_sqlite_result_blob(res, i, 4, &data, &len);
        rs[i].ev = (tern_event){.id = tern_sqlite_result_text(res, i, 1),
                                .topic = tern_sqlite_result_text(res, i, 2),
                                .type = tern_sqlite_result_text(res, i, 3),
                                .data = data,
                                .len = len};
    }
    *rows = rs;
    *n = nr;
    *hold = res;
    return 0;
}

static void sq_release(void *hold, ob_row *rows)
{
    tern_sqlite_result_free(hold);
    free(rows);
}

static int sq_mark(tern_outbox *ob, const int64_t *seqs, int n, tern_ctx *ctx)
{
    char *list = tern__ob_seq_list(seqs, n, '[', ']');
    if (!list)
        return -ENOMEM;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)tern__ob_wall_ns());
    tern_sqlite_params p = {.n = 2, .values = (const char *const[]){now, list}};
    int rc = tern_sqlite_exec(ob->db, ob->sql_mark, &p, NULL, NULL, ctx);
    free(list);
    return rc;
}

static int sq_pending(tern_outbox *ob, int64_t *out, tern_ctx *ctx)
{
    tern_sqlite_result *res;
    int rc = tern_sqlite_query(ob->db, ob->sql_pending, NULL, &res, NULL, ctx);
    if (rc < 0)
        return rc;
    rc = tern_sqlite_result_int64(res, 0, 0, out);
    tern_sqlite_result_free(res);
    return rc;
}

static int sq_purge(tern_outbox *ob, int64_t before_ns, int64_t *deleted, tern_ctx *ctx)
{
    char before[24];
    snprintf(before, sizeof before, "%lld", (long long)before_ns);
    tern_sqlite_params p = {.n = 1, .values = (const char *const[]){before}};
    return tern_sqlite_exec(ob->db, ob->sql_purge, &p, deleted, NULL, ctx);
}

static const ob_ops sqlite_ops = {sq_fetch, sq_release, sq_mark, sq_pending, sq_purge};

int tern_outbox_sqlite_new(tern_sqlite *db, const tern_outbox_options *o, tern_outbox **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(db);
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_outbox *ob = calloc(1, sizeof *ob);
    if (!ob)
        return -ENOMEM;
    int rc = tern__ob_init(ob, o);
    if (rc < 0) {
        free(ob);
        return rc;
    }
    ob->ops = &sqlite_ops;
    ob->db = db;
    const char *t = ob->table;
    char *schema = NULL;
    if (asprintf(&ob->sql_insert,
                 "INSERT INTO %s(id, topic, type, payload, created_ns) VALUES ($1, $2, $3, $4, $5)", t) < 0 ||
        asprintf(&ob->sql_fetch,
                 "SELECT seq, id, topic, type, payload, created_ns FROM %s WHERE sent_ns IS NULL "
                 "ORDER BY seq LIMIT $1", t) < 0 ||
        asprintf(&ob->sql_mark, "UPDATE %s SET sent_ns = $1 WHERE seq IN (SELECT value FROM json_each($2))",
                 t) < 0 ||
        asprintf(&ob->sql_pending, "SELECT count(*) FROM %s WHERE sent_ns IS NULL", t) < 0 ||
        asprintf(&ob->sql_purge, "DELETE FROM %s WHERE sent_ns IS NOT NULL AND sent_ns < $1", t) < 0 ||
        asprintf(&schema,
                 "CREATE TABLE IF NOT EXISTS %s(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
                 "topic TEXT NOT NULL, type TEXT NOT NULL, payload BLOB NOT NULL, created_ns INTEGER NOT NULL, "
                 "sent_ns INTEGER);"
                 "CREATE INDEX IF NOT EXISTS %s_unsent ON %s(seq) WHERE sent_ns IS NULL",
                 t, t, t) < 0) {
        tern_outbox_free(ob);
        return -ENOMEM;
    }
    rc = tern_sqlite_exec(db, schema, NULL, NULL, NULL, ctx);
    free(schema);
    if (rc < 0) {
        tern_outbox_free(ob);
        return rc;
    }
    *out = ob;
    return 0;
}

int tern_outbox_sqlite_add(tern_outbox *ob, tern_sqlite_tx *tx, const tern_event *ev, tern_ctx *ctx)
{
    TERN_CHECK_ARG(ob);
    TERN_CHECK_ARG(tx);
    TERN_CHECK_ARG(ev);
    if (ob->ops != &sqlite_ops || !ev->topic || !ev->topic[0] || (ev->len && !ev->data))
        return -EINVAL;
    char id[TERN_EVENTS_ID_MAX], now[24];
    if (!ev->id)
        tern__ev_make_id(id);
    snprintf(now, sizeof now, "%lld", (long long)tern__ob_wall_ns());
    const char *vals[] = {ev->id ? ev->id : id, ev->topic, ev->type ? ev->type : "",
                          ev->len ? (const char *)ev->data : "", now};
    int lengths[] = {0, 0, 0, (int)ev->len, 0}, formats[] = {0, 0, 0, 1, 0};
    tern_sqlite_params p = {.n = 5, .values = vals, .lengths = lengths, .formats = formats};
    return tern_sqlite_tx_exec(tx, ob->sql_insert, &p, NULL, ctx);
}

/* ---- idempotent consumers ---- */

int tern_events_idempotent_sqlite_init(tern_sqlite *db, tern_ctx *ctx)
{
    TERN_CHECK_ARG(db);
    return tern_sqlite_exec(db,
                            "CREATE TABLE IF NOT EXISTS processed_events(consumer TEXT NOT NULL, event_id TEXT NOT "
                            "NULL, processed_ns INTEGER NOT NULL, PRIMARY KEY (consumer, event_id))",
                            NULL, NULL, NULL, ctx);
}

typedef struct idem {
    const char *consumer;
    const tern_event *ev;
    tern_sqlite_tx_fn *fn;
    void *arg;
    bool already;               /* the id was there: rolled back, not an error */
} idem;

static int idem_body(tern_sqlite_tx *tx, tern_ctx *ctx, void *arg)
{
    idem *x = arg;
    x->already = false;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)tern__ob_wall_ns());
    tern_sqlite_params p = {.n = 3, .values = (const char *const[]){x->consumer, x->ev->id, now}};
    int64_t added = 0;
    int rc = tern_sqlite_tx_exec(tx,
                                 "INSERT INTO processed_events(consumer, event_id, processed_ns) VALUES ($1, $2, $3) "
                                 "ON CONFLICT DO NOTHING",
                                 &p, &added, ctx);
    if (rc < 0)
        return rc;
    if (added == 0) {
        x->already = true;
        return 1;
    }
    return x->fn(tx, ctx, x->arg);
}

int tern_events_idempotent_sqlite(tern_sqlite *db, const char *consumer, const tern_event *ev,
                                  tern_sqlite_tx_fn *fn, void *arg, bool *applied, tern_sqlite_error *err,
                                  tern_ctx *ctx)
{
    TERN_CHECK_ARG(db);
    TERN_CHECK_ARG(consumer);
    TERN_CHECK_ARG(ev);
    TERN_CHECK_ARG(fn);
    if (applied)
        *applied = false;
    if (!ev->id)
        return -EINVAL;
    idem x = {consumer, ev, fn, arg, false};
    int rc = tern_sqlite_tx_run(db, NULL, idem_body, &x, err, ctx);
    if (x.already)
        return 0;
    if (rc == 0 && applied)
        *applied = true;
    return rc;
}
