/*
 * db.c - a SQLite database served by threads of its own, and the hand-over
 * between a coroutine and those threads.
 *
 * SQLite's calls block (file I/O, fsync, waiting on another process's
 * lock), and a connection may be used by one thread at a time, so each
 * connection lives on a plain thread of its own: the writer, which owns
 * the only write path of this process, and the readers, which WAL lets run
 * beside it.  A coroutine queues a request and parks; the thread runs it
 * and wakes the coroutine (tern_wake from a foreign thread).  The model and
 * its invariants are at the top of internal.h.
 *
 * Why not the blocking pool: a connection must stay with one thread at a
 * time and a transaction with one connection, so requests need routing to
 * a particular connection; and the pool is shared with DNS and file I/O,
 * which a burst of queries should not starve.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csp/export.h"
#include "base/spin.h"
#include "base/thread.h"
#include "data/sqlite/internal.h"

#define DEFAULT_READERS 2
#define DEFAULT_STMT_CACHE 64
#define DEFAULT_BUSY_TIMEOUT_NS (5 * TERN_SEC)
/* The wake that means "the thread is done with the request". */
#define WAKE_DONE 1

static void q_push(sq_queue *q, sq_req *r)
{
    TERN_ASSERT(!r->queue);
    r->next = NULL;
    r->prev = q->tail;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    r->queue = q;
    q->len++;
}

static void q_unlink(sq_queue *q, sq_req *r)
{
    TERN_ASSERT(r->queue == q && q->len > 0);
    if (r->prev)
        r->prev->next = r->next;
    else
        q->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        q->tail = r->prev;
    r->next = r->prev = NULL;
    r->queue = NULL;
    q->len--;
}

static void q_init(sq_queue *q)
{
    memset(q, 0, sizeof *q);
    pthread_cond_init(&q->cond, NULL);
}

/* The queue a connection takes from now (db->lock held). */
static sq_queue *source(sq_conn *c)
{
    return c->owner ? &c->mine : c->shared;
}

static void finish(tern_sqlite *db, sq_conn *c, sq_req *r)
{
    if (r->kind == SQ_BEGIN && r->rc == 0) {
        c->owner = r->tx;
        r->tx->conn = c;
    } else if ((r->kind == SQ_COMMIT && r->rc == 0) || r->kind == SQ_ROLLBACK) {
        /* A failed COMMIT keeps the connection: tern_sqlite_tx_commit
         * follows it with the ROLLBACK that frees it. */
        c->owner = NULL;
    }
    (void)db;
    r->done = true;
    tern_wake(r->co, r->ticket, WAKE_DONE);
}

/* db->lock taken by a coroutine.  Its other holders are the connections'
 * plain threads, which the kernel may preempt while they hold it (on a
 * loaded machine: the shop under load showed workers asleep in futex() for
 * 10 ms and more, every coroutine queued on them waiting).  So a worker
 * never sleeps on it: it spins a little, lets its other coroutines run
 * between tries, and then parks briefly, so that a worker with nothing
 * else to run leaves the CPU to the holder instead of spinning against it. */
static void lock_from_coroutine(tern_sqlite *db)     /* no ticket of the caller's may be out */
{
    for (int i = 0; pthread_mutex_trylock(&db->lock) != 0; i++) {
        if (i < 64)
            tern_cpu_relax();
        else if (i < 96)
            tern_yield();
        else
            tern_sleep(50 * TERN_US);
    }
}

static void *conn_thread(void *arg)
{
    sq_conn *c = arg;
    tern_sqlite *db = c->db;
    pthread_mutex_lock(&db->lock);
    for (;;) {
        sq_queue *q = source(c);
        sq_req *r = q->head;
        if (!r) {
            if (db->stopping)
                break;
            pthread_cond_wait(&q->cond, &db->lock);
            continue;
        }
        q_unlink(q, r);
        c->current = r;
        pthread_mutex_unlock(&db->lock);
        tern_metrics_histogram *h = c->writer ? db->obs.wait_writer : db->obs.wait_reader;
        if (h)
            tern_metrics_histogram_observe(h, (double)(tern_now() - r->queued_at) / 1e9);
        int moved = tern__sq_conn_run(c, r);
        pthread_mutex_lock(&db->lock);
        c->current = NULL;
        if (moved) {
            /* A write that came as a query: the writer's. */
            atomic_fetch_add(&db->rerouted, 1);
            q_push(&db->wq, r);
            pthread_cond_signal(&db->wq.cond);
            continue;
        }
        finish(db, c, r);
    }
    pthread_mutex_unlock(&db->lock);
    /* the connection is closed by db_destroy, in its order */
    return NULL;
}

/* Park until the thread is done with r, or ctx ends: then withdraw r if it
 * is still queued, else wait for the thread (which sees the ctx itself). */
static void await(tern_sqlite *db, sq_req *r, tern_ctx *ctx)
{
    int w;
    if (ctx) {
        tern_waitq_node *cn = tern__co_ctx_node(r->co);
        *cn = (tern_waitq_node){.co = r->co, .ticket = r->ticket, .case_idx = INT32_MIN};
        tern__ctx_ref(ctx);
        w = tern__ctx_watch(ctx, cn);
        if (w != 0 && !tern_wait_cancel(r->ticket))
            w = 0;              /* the thread woke us already: collect it */
        if (w == 0)
            w = tern_wait(r->ticket, "sqlite", TERN_FOREVER);
        tern__ctx_unwatch(ctx, cn);
        tern__ctx_unref(ctx);
    } else {
        w = tern_wait(r->ticket, "sqlite", TERN_FOREVER);
    }
    if (w == WAKE_DONE)
        return;
    lock_from_coroutine(db);
    if (r->done) {
        pthread_mutex_unlock(&db->lock);
        return;
    }
    if (r->queue) {
        q_unlink(r->queue, r);
        pthread_mutex_unlock(&db->lock);
        r->rc = tern_ctx_err(ctx);
        return;
    }
    r->ticket = tern_wait_prepare();
    pthread_mutex_unlock(&db->lock);
    w = tern_wait(r->ticket, "sqlite (ending)", TERN_FOREVER);
    TERN_ASSERT(w == WAKE_DONE);
}

int tern__sq_submit(tern_sqlite *db, sq_req *r, tern_ctx *ctx)
{
    int rc = ctx ? tern_ctx_err(ctx) : 0;
    if (rc < 0)
        return r->rc = rc;
    r->co = tern__self_checked("tern_sqlite");
    r->ctx = ctx;
    r->queued_at = tern_now();
    /* The thread's wake is one the scheduler cannot see coming. */
    tern_runtime_external_wakers(1);
    lock_from_coroutine(db);
    /* after the lock: taking it may sleep, which takes a ticket of its own */
    r->ticket = tern_wait_prepare();
    sq_queue *q;
    if (r->tx && r->tx->conn)
        q = &r->tx->conn->mine;
    else if (r->read && db->nconns > 1)
        q = &db->rq;
    else
        q = &db->wq;
    q_push(q, r);
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&db->lock);
    await(db, r, ctx);
    tern_runtime_external_wakers(-1);
    return r->rc;
}

/* Copy sql and params into one allocation owned by r. */
static int copy_in(sq_req *r)
{
    const tern_sqlite_params *p = r->params;
    int n = p ? p->n : 0;
    size_t sz = sizeof(tern_sqlite_params) + (size_t)n * (sizeof(char *) + 2 * sizeof(int));
    size_t sqln = strlen(r->sql) + 1;
    sz += sqln;
    size_t *lens = n ? calloc((size_t)n, sizeof *lens) : NULL;
    if (n && !lens)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        if (!p->values[i])
            continue;
        bool bin = p->formats && p->formats[i] == 1;
        lens[i] = bin && p->lengths ? (size_t)p->lengths[i] : strlen(p->values[i]) + 1;
        sz += lens[i];
    }
    char *m = malloc(sz);
    if (!m) {
        free(lens);
        return -ENOMEM;
    }
    tern_sqlite_params *cp = (tern_sqlite_params *)m;
    char **vals = (char **)(cp + 1);
    int *lengths = (int *)(vals + n), *formats = lengths + n;
    char *w = (char *)(formats + n);
    memcpy(w, r->sql, sqln);
    r->sql = w;
    w += sqln;
    for (int i = 0; i < n; i++) {
        lengths[i] = p->lengths ? p->lengths[i] : 0;
        formats[i] = p->formats ? p->formats[i] : 0;
        vals[i] = NULL;
        if (p->values[i]) {
            memcpy(w, p->values[i], lens[i]);
            vals[i] = w;
            w += lens[i];
        }
    }
    *cp = (tern_sqlite_params){.n = n, .values = (const char *const *)vals, .lengths = lengths,
                               .formats = formats};
    r->params = p ? cp : NULL;
    r->copy = m;
    free(lens);
    return 0;
}

sq_req *tern__sq_req_new(enum sq_kind kind, const char *sql, const tern_sqlite_params *params)
{
    sq_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = kind;
    r->sql = sql;
    r->params = params;
    /* A shared-stack coroutine's stack is another's while it waits. */
    if (sql && tern__co_shared(tern__self_checked("tern_sqlite")) && copy_in(r) < 0) {
        free(r);
        return NULL;
    }
    return r;
}

void tern__sq_req_free(sq_req *r)
{
    if (!r)
        return;
    free(r->copy);
    free(r);
}

void tern__sq_copy_error(tern_sqlite_error *dst, const tern_sqlite_error *src)
{
    if (dst)
        *dst = *src;
}

static void set_err(tern_sqlite_error *err, int code, const char *msg)
{
    if (!err)
        return;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", msg);
}

typedef struct open_job {
    tern_sqlite *db;
    tern_sqlite_error err;
    int rc;
} open_job;

/* On the blocking pool: the writer first (it makes the file and turns WAL
 * on), then the readers. */
static int open_all(void *arg)
{
    open_job *j = arg;
    for (int i = 0; i < j->db->nconns; i++) {
        j->rc = tern__sq_conn_open(&j->db->conns[i], &j->err);
        if (j->rc < 0)
            return j->rc;
    }
    return 0;
}

static void db_destroy(tern_sqlite *db)
{
    /* One at a time, once every thread is joined, readers first and the
     * writer ([0]) last: the last connection to close checkpoints the WAL
     * and deletes the -wal and -shm files, but only if it can lock the
     * database alone, so connections closing at once on their own threads
     * could each see another still open and all leave them behind. */
    for (int i = db->conns ? db->nconns : 0; i-- > 0;) {
        tern__sq_conn_close(&db->conns[i]);
        pthread_cond_destroy(&db->conns[i].mine.cond);
    }
    pthread_cond_destroy(&db->wq.cond);
    pthread_cond_destroy(&db->rq.cond);
    pthread_mutex_destroy(&db->lock);
    free(db->conns);
    free(db->path);
    free(db->name);
    free(db);
}

static void stop_threads(tern_sqlite *db)
{
    pthread_mutex_lock(&db->lock);
    db->stopping = true;
    pthread_cond_broadcast(&db->wq.cond);
    pthread_cond_broadcast(&db->rq.cond);
    for (int i = 0; i < db->nconns; i++)
        pthread_cond_broadcast(&db->conns[i].mine.cond);
    pthread_mutex_unlock(&db->lock);
    for (int i = 0; i < db->nconns; i++)
        if (db->conns[i].started)
            pthread_join(db->conns[i].th, NULL);
}

int tern_sqlite_new(const char *path, const tern_sqlite_options *opts, tern_sqlite **out,
                    tern_sqlite_error *err)
{
    TERN_CHECK_ARG(path);
    TERN_CHECK_ARG(out);
    *out = NULL;
    set_err(err, 0, "");
    tern_sqlite_options o = opts ? *opts : (tern_sqlite_options){0};
    bool memory = strcmp(path, ":memory:") == 0 || path[0] == '\0';
    int readers = o.readers == 0 ? DEFAULT_READERS : o.readers < 0 ? 0 : o.readers;
    if (memory)
        readers = 0;
    tern_sqlite *db = calloc(1, sizeof *db);
    if (!db)
        return -ENOMEM;
    pthread_mutex_init(&db->lock, NULL);
    q_init(&db->wq);
    q_init(&db->rq);
    db->nconns = 1 + readers;
    db->conns = calloc((size_t)db->nconns, sizeof *db->conns);
    const char *base = strrchr(path, '/');
    db->path = strdup(path);
    db->name = strdup(o.name ? o.name : base ? base + 1 : path);
    if (!db->conns || !db->path || !db->name) {
        if (db->conns)
            for (int i = 0; i < db->nconns; i++)
                q_init(&db->conns[i].mine);
        db_destroy(db);
        return -ENOMEM;
    }
    db->stmt_cache = o.stmt_cache > 0 ? o.stmt_cache : DEFAULT_STMT_CACHE;
    db->busy_timeout_ns = o.busy_timeout_ns > 0 ? o.busy_timeout_ns : DEFAULT_BUSY_TIMEOUT_NS;
    db->sync_normal = o.synchronous_normal;
    db->metrics = o.metrics;
    for (int i = 0; i < db->nconns; i++) {
        sq_conn *c = &db->conns[i];
        c->db = db;
        c->writer = i == 0;
        c->shared = i == 0 ? &db->wq : &db->rq;
        q_init(&c->mine);
    }
    tern__sq_obs_init(db);
    open_job j = {.db = db};
    int rc = tern_blocking(open_all, &j);
    if (rc == 0)
        rc = j.rc;
    if (rc < 0) {
        if (err)
            *err = j.err;
        db_destroy(db);
        return rc;
    }
    for (int i = 0; i < db->nconns; i++) {
        if (tern__thread_start_quiet(&db->conns[i].th, conn_thread, &db->conns[i]) != 0) {
            stop_threads(db);
            db_destroy(db);
            set_err(err, 0, "tern_sqlite: cannot start a thread");
            return -EAGAIN;
        }
        db->conns[i].started = true;
    }
    *out = db;
    return 0;
}

static int free_blocking(void *arg)
{
    stop_threads(arg);
    db_destroy(arg);
    return 0;
}

void tern_sqlite_free(tern_sqlite *db)
{
    if (!db)
        return;
    /* The last connection to close checkpoints the WAL into the file: from
     * a coroutine, wait for that on the blocking pool, not on a worker. */
    if (tern_self() && tern_blocking(free_blocking, db) == 0)
        return;
    free_blocking(db);
}

int tern_sqlite_stats(const tern_sqlite *db, struct tern_sqlite_stats *out)
{
    TERN_CHECK_ARG(db);
    TERN_CHECK_ARG(out);
    tern_sqlite *m = (tern_sqlite *)db;
    pthread_mutex_lock(&m->lock);
    int queued = m->wq.len + m->rq.len;
    for (int i = 0; i < m->nconns; i++)
        queued += m->conns[i].mine.len;
    pthread_mutex_unlock(&m->lock);
    *out = (struct tern_sqlite_stats){
        .readers = db->nconns - 1,
        .queued = queued,
        .queries = atomic_load(&m->queries),
        .rerouted = atomic_load(&m->rerouted),
        .busy_waits = atomic_load(&m->busy_waits),
        .interrupted = atomic_load(&m->interrupted),
        .commits = atomic_load(&m->commits),
        .rollbacks = atomic_load(&m->rollbacks),
        .stmt_cache_hits = atomic_load(&m->hits),
        .stmt_cache_misses = atomic_load(&m->misses),
    };
    return 0;
}
