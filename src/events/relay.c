/*
 * outbox.c - the outbox's relay: a coroutine that reads unsent rows in seq
 * order, publishes them, and marks them sent, batch by batch.
 *
 * Nothing is lost: a row is marked sent only after it was published, in
 * the same round, so a relay that stops (or a process that dies) between
 * the two leaves it unsent and the next relay publishes it again.  That is
 * the at-least-once half; consumers give the exactly-once effect by
 * recording event ids (tern_events_idempotent_*).  On SQLite one relay
 * per outbox: two would publish the same rows.  On PostgreSQL relays of
 * several processes may share a table: each round claims its rows for a
 * lease (outbox_pg.c), and a round publishes for at most ROUND_BUDGET_NS,
 * well inside the lease, marks what it published and leaves the rest to
 * the next round, so that no other relay takes a row this one is still
 * publishing.  Across relays rows go out in no common order.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events/internal.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define DEFAULT_BATCH 100
#define DEFAULT_POLL_NS (20 * TERN_MS)
/* A round's publishing time (a bus that stalls or reconnects): under
 * outbox_pg.c's 30 s claim lease. */
#define ROUND_BUDGET_NS (20 * TERN_SEC)
/* One publish's: a bus that went silent (a connection dead but not yet
 * found so by its keepalive, a JetStream that does not answer) costs this
 * much before the row is tried again, not the round's 20 s; as nats.go's
 * JetStream API timeout. */
#define DEFAULT_PUBLISH_NS (5 * TERN_SEC)

struct tern_outbox_relay {
    tern_outbox *ob;
    tern_events_bus *bus;
    int batch;
    int64_t poll_ns;
    int64_t publish_ns;
    tern_ctx *ctx;
    tern_waitgroup wg;
    tern_metrics_counter *m_published;
    tern_metrics_histogram *m_lag;
    atomic_ullong published, batches, errors;
    atomic_llong last_lag;
};

int tern__ob_init(tern_outbox *ob, const tern_outbox_options *o)
{
    const char *t = o && o->table ? o->table : "outbox";
    size_t n = strlen(t);
    if (n == 0 || n >= sizeof ob->table || isdigit((unsigned char)t[0]))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && t[i] != '_')
            return -EINVAL;
    memcpy(ob->table, t, n + 1);
    return 0;
}

char *tern__ob_seq_list(const int64_t *seqs, int n, char open, char close)
{
    size_t cap = (size_t)n * 21 + 3, len = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    s[len++] = open;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, i ? ",%lld" : "%lld", (long long)seqs[i]);
    s[len++] = close;
    s[len] = '\0';
    return s;
}

void tern__ob_free_sql(tern_outbox *ob)
{
    free(ob->sql_insert);
    free(ob->sql_fetch);
    free(ob->sql_mark);
    free(ob->sql_pending);
    free(ob->sql_purge);
}

int tern_outbox_purge(tern_outbox *ob, int64_t older_than_ns, int64_t *deleted, tern_ctx *ctx)
{
    TERN_CHECK_ARG(ob);
    int64_t n = 0;
    if (deleted)
        *deleted = 0;
    if (older_than_ns < 0)
        return -EINVAL;
    int rc = ob->ops->purge(ob, tern__ob_wall_ns() - older_than_ns, &n, ctx);
    if (rc == 0 && deleted)
        *deleted = n;
    return rc;
}

int tern_outbox_pending(tern_outbox *ob, int64_t *out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(ob);
    TERN_CHECK_ARG(out);
    return ob->ops->pending(ob, out, ctx);
}

void tern_outbox_free(tern_outbox *ob)
{
    if (!ob)
        return;
    tern__ob_free_sql(ob);
    free(ob);
}

int64_t tern__ob_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * TERN_SEC + ts.tv_nsec;
}

/* One round: publish up to a batch, then mark what was published. */
static int round_once(tern_outbox_relay *r, int *count)
{
    ob_row *rows;
    int n = 0;
    void *hold = NULL;
    *count = 0;
    int rc = r->ob->ops->fetch(r->ob, r->batch, &rows, &n, &hold, r->ctx);
    if (rc < 0)
        return rc;
    if (n == 0) {
        r->ob->ops->release(hold, rows);
        return 0;
    }
    int64_t *seqs = malloc((size_t)n * sizeof *seqs);
    int done = 0;
    tern_ctx *round = NULL;
    if (!seqs || tern_ctx_with_timeout(r->ctx, ROUND_BUDGET_NS, &round) < 0)
        rc = -ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        tern_ctx *one;
        rc = tern_ctx_with_timeout(round, r->publish_ns, &one);
        if (rc < 0)
            break;
        rc = tern_events_publish(r->bus, &rows[i].ev, one);
        tern_ctx_free(one);
        if (rc < 0) {
            /* out of the round's time, not stopped: mark what went out,
             * the rest goes in the next round (a publish out of its own
             * time is an error: counted, retried after poll_ns) */
            if (rc == -ETIMEDOUT && tern_ctx_err(round) && !tern_ctx_err(r->ctx))
                rc = 0;
            break;
        }
        seqs[done++] = rows[i].seq;
        int64_t lag = tern__ob_wall_ns() - rows[i].created_ns;
        atomic_store(&r->last_lag, lag);
        atomic_fetch_add(&r->published, 1);
        if (r->m_published)
            tern_metrics_counter_inc(r->m_published);
        if (r->m_lag)
            tern_metrics_histogram_observe(r->m_lag, (double)lag / 1e9);
    }
    tern_ctx_free(round);
    r->ob->ops->release(hold, rows);
    if (done > 0) {
        int mrc = r->ob->ops->mark(r->ob, seqs, done, r->ctx);
        if (mrc == 0)
            atomic_fetch_add(&r->batches, 1);
        else if (rc == 0)
            rc = mrc;
    }
    free(seqs);
    *count = done;
    return rc;
}

static int relay_main(void *arg)
{
    tern_outbox_relay *r = arg;
    while (!tern_ctx_err(r->ctx)) {
        int n;
        int rc = round_once(r, &n);
        if (rc < 0 && !tern_ctx_err(r->ctx))
            atomic_fetch_add(&r->errors, 1);
        if (rc < 0 || n < r->batch)
            tern_ctx_sleep(r->poll_ns, r->ctx);
    }
    tern_waitgroup_done(&r->wg);
    return 0;
}

int tern_outbox_relay_start(tern_outbox *ob, tern_events_bus *bus, const tern_outbox_relay_options *o,
                            tern_outbox_relay **out)
{
    TERN_CHECK_ARG(ob);
    TERN_CHECK_ARG(bus);
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_outbox_relay *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->ob = ob;
    r->bus = bus;
    r->batch = o && o->batch > 0 ? o->batch : DEFAULT_BATCH;
    r->poll_ns = o && o->poll_ns > 0 ? o->poll_ns : DEFAULT_POLL_NS;
    r->publish_ns = o && o->publish_timeout_ns > 0 ? o->publish_timeout_ns : DEFAULT_PUBLISH_NS;
    tern__ev_relay_children(o ? o->metrics : NULL, o && o->name ? o->name : ob->table, &r->m_published,
                            &r->m_lag);
    int rc = tern_ctx_with_cancel(NULL, &r->ctx);
    if (rc < 0) {
        free(r);
        return rc;
    }
    tern_waitgroup_add(&r->wg, 1);
    if (tern_go(relay_main, r) < 0) {
        tern_ctx_free(r->ctx);
        free(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

void tern_outbox_relay_stop(tern_outbox_relay *r)
{
    if (!r)
        return;
    tern_ctx_cancel(r->ctx);
    tern_waitgroup_wait(&r->wg, NULL);
    tern_ctx_free(r->ctx);
    free(r);
}

int tern_outbox_relay_stats(const tern_outbox_relay *r, struct tern_outbox_relay_stats *out)
{
    TERN_CHECK_ARG(r);
    TERN_CHECK_ARG(out);
    tern_outbox_relay *m = (tern_outbox_relay *)r;
    *out = (struct tern_outbox_relay_stats){
        .published = atomic_load(&m->published),
        .batches = atomic_load(&m->batches),
        .errors = atomic_load(&m->errors),
        .last_lag_ns = atomic_load(&m->last_lag),
    };
    return 0;
}
