/*
 * conn.c - one SQLite connection, on its own thread: opening it (WAL,
 * synchronous, foreign keys; readers query_only), its prepared-statement
 * cache, binding $N placeholders, running a request, and mapping SQLite's
 * result codes to -errno.
 *
 * The handlers: SQLite calls the busy handler when another connection
 * holds a lock it needs (here: another process, or another tern_sqlite on
 * the file); ours sleeps this thread in growing steps (1 ms to 16 ms) until
 * busy_timeout_ns has passed or the request's ctx ends, which
 * sqlite3_busy_timeout cannot see.  The progress handler runs every 1000
 * virtual machine steps and interrupts the statement once the request's
 * ctx has ended: SQLITE_INTERRUPT ends that statement only (rolling back a
 * write transaction it was in) and the connection stays usable.  Only the
 * request this thread is running is looked at, so a cancel never reaches
 * another request (sqlite3_interrupt from the coroutine could).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/sqlite/internal.h"

#define PROGRESS_STEPS 1000
#define BUSY_STEP_MAX_NS (16 * TERN_MS)

int tern__sq_map(int code)
{
    switch (code & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_CONSTRAINT:
        return code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY ? -EEXIST : -EPERM;
    case SQLITE_ERROR:
        return -EINVAL;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EUCLEAN;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_RANGE:
        return -ERANGE;
    case SQLITE_MISMATCH:
        return -EDOM;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_INTERRUPT:
        return -EINTR;
    default:
        return -EIO;
    }
}

static void set_err(tern_sqlite_error *e, int code, const char *msg)
{
    e->code = code;
    snprintf(e->message, sizeof e->message, "%s", msg);
}

/* The request's error from the connection's state; the ctx's error when
 * the statement was interrupted, or gave up waiting, because it ended. */
static int fail(sq_conn *c, sq_req *r, int code)
{
    set_err(&r->err, code, c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(code));
    int cerr = r->ctx ? tern_ctx_err(r->ctx) : 0;
    int p = code & 0xff;
    if (p == SQLITE_INTERRUPT)
        atomic_fetch_add(&c->db->interrupted, 1);
    if (cerr && (p == SQLITE_INTERRUPT || p == SQLITE_BUSY))
        return r->rc = cerr;
    return r->rc = tern__sq_map(code);
}

static int on_busy(void *arg, int n)
{
    sq_conn *c = arg;
    sq_req *r = c->current;
    int64_t now = tern_now();
    if (n == 0)
        c->busy_since = now;
    if (r && r->ctx && tern_ctx_err(r->ctx))
        return 0;
    int64_t left = c->busy_since + c->db->busy_timeout_ns - now;
    if (left <= 0)
        return 0;
    int64_t step = TERN_MS << (n < 4 ? n : 4);
    if (step > BUSY_STEP_MAX_NS)
        step = BUSY_STEP_MAX_NS;
    if (step > left)
        step = left;
    struct timespec ts = {step / TERN_SEC, step % TERN_SEC};
    nanosleep(&ts, NULL);
    atomic_fetch_add(&c->db->busy_waits, 1);
    if (c->db->obs.busy)
        tern_metrics_counter_inc(c->db->obs.busy);
    return 1;
}

static int on_progress(void *arg)
{
    sq_conn *c = arg;
    sq_req *r = c->current;
    return r && r->ctx && tern_ctx_err(r->ctx) != 0;
}

static int pragma(sq_conn *c, const char *sql, tern_sqlite_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        set_err(err, rc, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return tern__sq_map(rc);
    }
    return 0;
}

/* PRAGMA journal_mode=WAL answers with the mode it is in now. */
static int wal(sq_conn *c, tern_sqlite_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->h, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, rc, sqlite3_errmsg(c->h));
        return tern__sq_map(rc);
    }
    rc = sqlite3_step(st);
    const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    bool ok = mode && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
    if (!ok)
        set_err(err, rc == SQLITE_ROW ? SQLITE_ERROR : rc,
                rc == SQLITE_ROW ? "tern_sqlite: the database would not go into WAL mode"
                                 : sqlite3_errmsg(c->h));
    sqlite3_finalize(st);
    return ok ? 0 : rc == SQLITE_ROW ? -EIO : tern__sq_map(rc);
}

int tern__sq_conn_open(sq_conn *c, tern_sqlite_error *err)
{
    tern_sqlite *db = c->db;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (c->writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(db->path, &c->h, flags, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, rc, c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        sqlite3_close_v2(c->h);
        c->h = NULL;
        return tern__sq_map(rc);
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_busy_handler(c->h, on_busy, c);
    sqlite3_progress_handler(c->h, PROGRESS_STEPS, on_progress, c);
    if (c->writer) {
        rc = wal(c, err);
        if (rc == 0)
            rc = pragma(c, db->sync_normal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", err);
    } else {
        rc = pragma(c, "PRAGMA query_only=1", err);
    }
    if (rc == 0)
        rc = pragma(c, "PRAGMA foreign_keys=ON", err);
    if (rc < 0) {
        sqlite3_close_v2(c->h);
        c->h = NULL;
    }
    return rc;
}

static void stmt_unlink(sq_conn *c, sq_stmt *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->lru_head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        c->lru_tail = s->prev;
    s->prev = s->next = NULL;
}

static void stmt_push(sq_conn *c, sq_stmt *s)
{
    s->prev = NULL;
    s->next = c->lru_head;
    if (c->lru_head)
        c->lru_head->prev = s;
    c->lru_head = s;
    if (!c->lru_tail)
        c->lru_tail = s;
}

static void stmt_free(sq_stmt *s)
{
    sqlite3_finalize(s->st);
    free(s->sql);
    free(s);
}

void tern__sq_conn_close(sq_conn *c)
{
    while (c->lru_head) {
        sq_stmt *s = c->lru_head;
        stmt_unlink(c, s);
        stmt_free(s);
    }
    c->nstmts = 0;
    if (c->h) {
        if (!sqlite3_get_autocommit(c->h))
            sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close_v2(c->h);
        c->h = NULL;
    }
}

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s) && *s != ';')
            return false;
    return true;
}

bool tern__sq_is_tx_sql(const char *sql)
{
    static const char *const kw[] = {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"};
    while (isspace((unsigned char)*sql))
        sql++;
    size_t n = 0;
    while (isalpha((unsigned char)sql[n]))
        n++;
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strlen(kw[i]) == n && strncasecmp(sql, kw[i], n) == 0)
            return true;
    return false;
}

/* The cached statement for sql, prepared now if need be (one statement:
 * anything but blanks after it is refused). */
static int stmt_get(sq_conn *c, sq_req *r, const char *sql, sq_stmt **out)
{
    uint64_t h = fnv(sql);
    for (sq_stmt *s = c->lru_head; s; s = s->next) {
        if (s->hash == h && strcmp(s->sql, sql) == 0) {
            if (s != c->lru_head) {
                stmt_unlink(c, s);
                stmt_push(c, s);
            }
            atomic_fetch_add(&c->db->hits, 1);
            *out = s;
            return 0;
        }
    }
    atomic_fetch_add(&c->db->misses, 1);
    sqlite3_stmt *st;
    const char *tail;
    int rc = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK)
        return fail(c, r, rc);
    if (!st) {
        set_err(&r->err, SQLITE_MISUSE, "tern_sqlite: no statement in the SQL");
        return r->rc = -EINVAL;
    }
    if (tail && !blank(tail)) {
        sqlite3_stmt *more = NULL;
        sqlite3_prepare_v2(c->h, tail, -1, &more, NULL);
        if (more) {
            sqlite3_finalize(more);
            sqlite3_finalize(st);
            set_err(&r->err, SQLITE_MISUSE, "tern_sqlite: one statement per call (exec without parameters runs several)");
            return r->rc = -EINVAL;
        }
    }
    sq_stmt *s = calloc(1, sizeof *s);
    if (!s || !(s->sql = strdup(sql))) {
        free(s);
        sqlite3_finalize(st);
        set_err(&r->err, SQLITE_NOMEM, "out of memory");
        return r->rc = -ENOMEM;
    }
    s->hash = h;
    s->st = st;
    s->hist = tern__sq_query_hist(c->db, sql);
    stmt_push(c, s);
    if (++c->nstmts > c->db->stmt_cache) {
        sq_stmt *old = c->lru_tail;
        stmt_unlink(c, old);
        stmt_free(old);
        c->nstmts--;
    }
    *out = s;
    return 0;
}

/* Bind params to st: a placeholder $N or ?N takes value N-1, an anonymous
 * ? the value of its position; a named one (:x, @x) has no value. */
static int bind(sq_conn *c, sq_req *r, sqlite3_stmt *st)
{
    const tern_sqlite_params *p = r->params;
    int n = p ? p->n : 0;
    int count = sqlite3_bind_parameter_count(st);
    for (int j = 1; j <= count; j++) {
        const char *name = sqlite3_bind_parameter_name(st, j);
        long idx = j - 1;
        if (name) {
            char *end = NULL;
            idx = (name[0] == '$' || name[0] == '?') && isdigit((unsigned char)name[1])
                      ? strtol(name + 1, &end, 10) - 1
                      : -1;
            if (idx < 0 || *end) {
                char msg[96];
                snprintf(msg, sizeof msg, "tern_sqlite: placeholder %s: use $1, $2, ...", name);
                set_err(&r->err, SQLITE_RANGE, msg);
                return r->rc = -EINVAL;
            }
        }
        if (idx >= n) {
            char msg[96];
            snprintf(msg, sizeof msg, "tern_sqlite: placeholder %s has no value (%d given)", name ? name : "?",
                     n);
            set_err(&r->err, SQLITE_RANGE, msg);
            return r->rc = -EINVAL;
        }
        const char *v = p->values[idx];
        int rc;
        if (!v)
            rc = sqlite3_bind_null(st, j);
        else if (p->formats && p->formats[idx] == 1)
            rc = sqlite3_bind_blob(st, j, v, p->lengths ? p->lengths[idx] : (int)strlen(v), SQLITE_STATIC);
        else
            rc = sqlite3_bind_text(st, j, v, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
            return fail(c, r, rc);
    }
    return 0;
}

/* Step st to its end, keeping rows in r->res when want_rows. */
static int step_all(sq_conn *c, sq_req *r, sqlite3_stmt *st, bool want_rows, tern_metrics_histogram *hist)
{
    int64_t t0 = hist ? tern_now() : 0;
    atomic_fetch_add(&c->db->queries, 1);
    int rc;
    if (want_rows && !r->res) {
        r->res = tern__sq_result_new(sqlite3_column_count(st));
        if (!r->res || tern__sq_result_set_names(r->res, st) < 0)
            goto nomem;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (want_rows && tern__sq_result_add_row(r->res, st) < 0)
            goto nomem;
    if (rc != SQLITE_DONE) {
        fail(c, r, rc);
        sqlite3_reset(st);
        return r->rc;
    }
    int64_t changed = sqlite3_stmt_readonly(st) ? 0 : sqlite3_changes64(c->h);
    r->affected += changed;
    if (r->res) {
        r->res->affected = changed;
        r->res->last_id = sqlite3_last_insert_rowid(c->h);
    }
    sqlite3_reset(st);
    if (hist)
        tern_metrics_histogram_observe(hist, (double)(tern_now() - t0) / 1e9);
    return 0;
nomem:
    sqlite3_reset(st);
    set_err(&r->err, SQLITE_NOMEM, "out of memory");
    return r->rc = -ENOMEM;
}

static int refuse_tx_sql(sq_req *r, sqlite3_stmt *st)
{
    if (!tern__sq_is_tx_sql(sqlite3_sql(st)))
        return 0;
    set_err(&r->err, SQLITE_MISUSE, "tern_sqlite: transactions go through tern_sqlite_tx_*");
    return r->rc = -EINVAL;
}

/* One statement through the cache; 1 when a reader met a write. */
static int run_cached(sq_conn *c, sq_req *r, bool want_rows)
{
    sq_stmt *s;
    if (stmt_get(c, r, r->sql, &s) < 0)
        return 0;
    if (refuse_tx_sql(r, s->st) < 0)
        return 0;
    if (!c->writer && !r->tx && !sqlite3_stmt_readonly(s->st))
        return 1;
    if (bind(c, r, s->st) == 0)
        step_all(c, r, s->st, want_rows, s->hist);
    sqlite3_clear_bindings(s->st);
    return 0;
}

/* Several statements without parameters, prepared each time (a schema). */
static void run_script(sq_conn *c, sq_req *r)
{
    const char *sql = r->sql;
    while (sql && *sql) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(c->h, sql, -1, &st, &sql);
        if (rc != SQLITE_OK) {
            fail(c, r, rc);
            return;
        }
        if (!st)
            return;             /* only blanks or comments left */
        if (refuse_tx_sql(r, st) == 0 && bind(c, r, st) == 0)
            step_all(c, r, st, false, NULL);
        sqlite3_finalize(st);
        if (r->rc < 0)
            return;
    }
}

static void simple(sq_conn *c, sq_req *r, const char *sql)
{
    sq_stmt *s;
    if (stmt_get(c, r, sql, &s) == 0)
        step_all(c, r, s->st, false, NULL);
}

static void tally(tern_sqlite *db, bool commit)
{
    atomic_fetch_add(commit ? &db->commits : &db->rollbacks, 1);
    tern_metrics_counter *m = commit ? db->obs.commits : db->obs.rollbacks;
    if (m)
        tern_metrics_counter_inc(m);
}

int tern__sq_conn_run(sq_conn *c, sq_req *r)
{
    r->rc = 0;
    memset(&r->err, 0, sizeof r->err);
    /* SQLite rolls a transaction back by itself on some errors (an
     * interrupted write, a full disk): its later statements must not run
     * in autocommit mode as if they were still part of it. */
    if (r->tx && r->kind != SQ_BEGIN && sqlite3_get_autocommit(c->h)) {
        if (r->kind == SQ_ROLLBACK) {
            tally(c->db, false);
            return 0;
        }
        set_err(&r->err, SQLITE_ABORT, "tern_sqlite: SQLite rolled the transaction back after an earlier error");
        r->rc = -EIO;
        return 0;
    }
    switch (r->kind) {
    case SQ_QUERY:
        return run_cached(c, r, true);
    case SQ_EXEC:
        if (r->params && r->params->n > 0)
            return run_cached(c, r, false);
        run_script(c, r);
        return 0;
    case SQ_BEGIN:
        simple(c, r, c->writer ? "BEGIN IMMEDIATE" : "BEGIN");
        return 0;
    case SQ_COMMIT:
        simple(c, r, "COMMIT");
        if (r->rc == 0)
            tally(c->db, true);
        return 0;
    case SQ_ROLLBACK:
        simple(c, r, "ROLLBACK");
        tally(c->db, false);
        return 0;
    }
    return 0;
}
