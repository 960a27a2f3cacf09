/*
 * outbox_pg.c - the outbox and the idempotent consumer on PostgreSQL
 * (built where libpq is).
 *
 * seq comes from a sequence, which hands out numbers at INSERT, not at
 * COMMIT: a row may become visible after rows with higher seqs were
 * published.  Marking names the published seqs (= ANY($2::bigint[])), so
 * such a row stays unsent and goes in a later round (out of seq order,
 * never lost).  The payload travels as binary bytea.
 *
 * Several processes may relay one outbox (replicas of a service on one
 * database).  A round claims its rows in one statement: the unsent rows not
 * claimed by another relay within the claim lease (FOR UPDATE SKIP LOCKED,
 * so two rounds never wait for or take the same rows), stamped with this
 * outbox object's id and the lease's end.  So each row goes out once while
 * its relays live; the rows a dead relay claimed go out after its lease,
 * at least once, as an outbox promises.  A relay re-takes its own claims at
 * once (a publish that failed is retried in the next round).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events/internal.h"
#include "tern/runtime.h"

#define BYTEA_OID 17
/* How long a claim keeps other relays off a row: longer than a round
 * (publish a batch, then mark it) takes, short enough that a dead relay's
 * rows are not held for long. */
#define CLAIM_LEASE_NS (30 * 1000000000LL)
/* Leases are stamped and compared on the server's clock: relays on hosts
 * whose clocks disagree must not cut each other's leases short. */
#define SERVER_NOW_NS "(extract(epoch from statement_timestamp()) * 1000000000)::bigint"

static int by_seq(const void *a, const void *b)
{
    const ob_row *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int pg_fetch(tern_outbox *ob, int max, ob_row **rows, int *n, void **hold, tern_ctx *ctx)
{
    char lim[16], lease[24];
    snprintf(lim, sizeof lim, "%d", max);
    snprintf(lease, sizeof lease, "%lld", (long long)CLAIM_LEASE_NS);
    tern_pg_params p = {.n = 3, .values = (const char *const[]){lim, lease, ob->claimer}};
    tern_pg_result *res;
    int rc = tern_pg_pool_query(ob->db, ob->sql_fetch, &p, &res, NULL, ctx);
    if (rc < 0)
        return rc;
    int nr = tern_pg_result_rows(res);
    ob_row *rs = nr ? calloc((size_t)nr, sizeof *rs) : NULL;
    if (nr && !rs) {
        tern_pg_result_free(res);
        return -ENOMEM;
    }
    for (int i = 0; i < nr; i++) {
        const uint8_t *data = NULL;
        size_t len = 0;
        if (tern_pg_result_bytea(res, i, 4, &data, &len) < 0 ||
            tern_pg_result_int64(res, i, 0, &rs[i].seq) < 0 ||
            tern_pg_result_int64(res, i, 5, &rs[i].created_ns) < 0) {
            free(rs);
            tern_pg_result_free(res);
            return -EPROTO;
        }
        rs[i].ev = (tern_event){.id = tern_pg_result_text(res, i, 1),
                                .topic = tern_pg_result_text(res, i, 2),
                                .type = tern_pg_result_text(res, i, 3),
                                .data = data,
                                .len = len};
    }
    /* UPDATE ... RETURNING comes in no particular order */
    if (nr > 1)
        qsort(rs, (size_t)nr, sizeof *rs, by_seq);
    *rows = rs;
    *n = nr;
    *hold = res;
    return 0;
}

static void pg_release(void *hold, ob_row *rows)
{
    tern_pg_result_free(hold);
    free(rows);
}

static int pg_mark(tern_outbox *ob, const int64_t *seqs, int n, tern_ctx *ctx)
{
    char *list = tern__ob_seq_list(seqs, n, '{', '}');
    if (!list)
        return -ENOMEM;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)tern__ob_wall_ns());
    tern_pg_params p = {.n = 2, .values = (const char *const[]){now, list}};
    tern_pg_result *res = NULL;
    int rc = tern_pg_pool_query(ob->db, ob->sql_mark, &p, &res, NULL, ctx);
    tern_pg_result_free(res);
    free(list);
    return rc;
}

static int pg_pending(tern_outbox *ob, int64_t *out, tern_ctx *ctx)
{
    tern_pg_result *res;
    int rc = tern_pg_pool_query(ob->db, ob->sql_pending, NULL, &res, NULL, ctx);
    if (rc < 0)
        return rc;
    rc = tern_pg_result_int64(res, 0, 0, out);
    tern_pg_result_free(res);
    return rc;
}

static int pg_purge(tern_outbox *ob, int64_t before_ns, int64_t *deleted, tern_ctx *ctx)
{
    char before[24];
    snprintf(before, sizeof before, "%lld", (long long)before_ns);
    tern_pg_params p = {.n = 1, .values = (const char *const[]){before}};
    tern_pg_result *res = NULL;
    int rc = tern_pg_pool_query(ob->db, ob->sql_purge, &p, &res, NULL, ctx);
    if (rc == 0)
        *deleted = tern_pg_result_affected(res);
    tern_pg_result_free(res);
    return rc;
}

static const ob_ops pg_ops = {pg_fetch, pg_release, pg_mark, pg_pending, pg_purge};

/* A table made before claims existed gets their columns.  Asked first:
 * ALTER TABLE takes its exclusive lock before it looks at IF NOT EXISTS,
 * and every replica's start would queue one on a busy outbox. */
static int add_claim_columns(tern_outbox *ob, tern_ctx *ctx)
{
    tern_pg_params p = {.n = 1, .values = (const char *const[]){ob->table}};
    tern_pg_result *res = NULL;
    int rc = tern_pg_pool_query(ob->db,
                                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) "
                                "AND attname IN ('claim_until', 'claimed_by') AND NOT attisdropped",
                                &p, &res, NULL, ctx);
    int64_t have = 0;
    if (rc == 0)
        rc = tern_pg_result_int64(res, 0, 0, &have);
    tern_pg_result_free(res);
    if (rc < 0 || have == 2)
        return rc;
    char *sql;
    if (asprintf(&sql, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS claim_until BIGINT, "
                       "ADD COLUMN IF NOT EXISTS claimed_by TEXT", ob->table) < 0)
        return -ENOMEM;
    res = NULL;
    rc = tern_pg_pool_query(ob->db, sql, NULL, &res, NULL, ctx);
    tern_pg_result_free(res);
    free(sql);
    return rc;
}

int tern_outbox_pg_new(tern_pg_pool *pool, const tern_outbox_options *o, tern_outbox **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(pool);
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
    tern__ev_make_id(ob->claimer);
    ob->ops = &pg_ops;
    ob->db = pool;
    const char *t = ob->table;
    char *schema = NULL;
    if (asprintf(&ob->sql_insert,
                 "INSERT INTO %s(id, topic, type, payload, created_ns) VALUES ($1, $2, $3, $4, $5)", t) < 0 ||
        asprintf(&ob->sql_fetch,
                 "UPDATE %s SET claim_until = " SERVER_NOW_NS " + $2, claimed_by = $3 WHERE seq IN ("
                 "SELECT seq FROM %s WHERE sent_ns IS NULL AND "
                 "(claim_until IS NULL OR claim_until < " SERVER_NOW_NS " OR claimed_by = $3) "
                 "ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) "
                 "RETURNING seq, id, topic, type, payload, created_ns", t, t) < 0 ||
        asprintf(&ob->sql_mark, "UPDATE %s SET sent_ns = $1 WHERE seq = ANY($2::bigint[])", t) < 0 ||
        asprintf(&ob->sql_pending, "SELECT count(*) FROM %s WHERE sent_ns IS NULL", t) < 0 ||
        asprintf(&ob->sql_purge, "DELETE FROM %s WHERE sent_ns IS NOT NULL AND sent_ns < $1", t) < 0 ||
        asprintf(&schema,
                 "CREATE TABLE IF NOT EXISTS %s(seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                 "topic TEXT NOT NULL, type TEXT NOT NULL, payload BYTEA NOT NULL, created_ns BIGINT NOT NULL, "
                 "sent_ns BIGINT, claim_until BIGINT, claimed_by TEXT);"
                 "CREATE INDEX IF NOT EXISTS %s_unsent ON %s(seq) WHERE sent_ns IS NULL",
                 t, t, t) < 0) {
        tern_outbox_free(ob);
        return -ENOMEM;
    }
    tern_pg_result *res = NULL;
    rc = tern_pg_pool_query(pool, schema, NULL, &res, NULL, ctx);
    tern_pg_result_free(res);
    free(schema);
    if (rc == 0)
        rc = add_claim_columns(ob, ctx);
    if (rc < 0) {
        tern_outbox_free(ob);
        return rc;
    }
    *out = ob;
    return 0;
}

int tern_outbox_pg_add(tern_outbox *ob, tern_pg_conn *c, const tern_event *ev, tern_ctx *ctx)
{
    TERN_CHECK_ARG(ob);
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(ev);
    if (ob->ops != &pg_ops || !ev->topic || !ev->topic[0] || (ev->len && !ev->data))
        return -EINVAL;
    char id[TERN_EVENTS_ID_MAX], now[24];
    if (!ev->id)
        tern__ev_make_id(id);
    snprintf(now, sizeof now, "%lld", (long long)tern__ob_wall_ns());
    const char *vals[] = {ev->id ? ev->id : id, ev->topic, ev->type ? ev->type : "",
                          ev->len ? (const char *)ev->data : "", now};
    int lengths[] = {0, 0, 0, (int)ev->len, 0}, formats[] = {0, 0, 0, 1, 0};
    uint32_t types[] = {0, 0, 0, BYTEA_OID, 0};
    tern_pg_params p = {.n = 5, .values = vals, .lengths = lengths, .formats = formats, .types = types};
    return tern_pg_exec(c, ob->sql_insert, &p, NULL, ctx);
}

/* ---- idempotent consumers ---- */

int tern_events_idempotent_pg_init(tern_pg_pool *pool, tern_ctx *ctx)
{
    TERN_CHECK_ARG(pool);
    tern_pg_result *res = NULL;
    int rc = tern_pg_pool_query(pool,
                                "CREATE TABLE IF NOT EXISTS processed_events(consumer TEXT NOT NULL, event_id TEXT "
                                "NOT NULL, processed_ns BIGINT NOT NULL, PRIMARY KEY (consumer, event_id))",
                                NULL, &res, NULL, ctx);
    tern_pg_result_free(res);
    return rc;
}

typedef struct idem {
    const char *consumer;
    const tern_event *ev;
    tern_pg_tx_fn *fn;
    void *arg;
    bool already;
} idem;

static int idem_body(tern_pg_conn *c, tern_ctx *ctx, void *arg)
{
    idem *x = arg;
    x->already = false;
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)tern__ob_wall_ns());
    tern_pg_params p = {.n = 3, .values = (const char *const[]){x->consumer, x->ev->id, now}};
    int64_t added = 0;
    int rc = tern_pg_exec(c,
                          "INSERT INTO processed_events(consumer, event_id, processed_ns) VALUES ($1, $2, $3) "
                          "ON CONFLICT DO NOTHING",
                          &p, &added, ctx);
    if (rc < 0)
        return rc;
    if (added == 0) {
        x->already = true;
        return 1;
    }
    return x->fn(c, ctx, x->arg);
}

int tern_events_idempotent_pg(tern_pg_pool *pool, const char *consumer, const tern_event *ev, tern_pg_tx_fn *fn,
                              void *arg, bool *applied, tern_pg_error *err, tern_ctx *ctx)
{
    TERN_CHECK_ARG(pool);
    TERN_CHECK_ARG(consumer);
    TERN_CHECK_ARG(ev);
    TERN_CHECK_ARG(fn);
    if (applied)
        *applied = false;
    if (!ev->id)
        return -EINVAL;
    idem x = {consumer, ev, fn, arg, false};
    int rc = tern_pg_tx_run(pool, NULL, idem_body, &x, err, ctx);
    if (x.already)
        return 0;
    if (rc == 0 && applied)
        *applied = true;
    return rc;
}
