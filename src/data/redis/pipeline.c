/*
 * pipeline.c - one connection shared by many callers: automatic pipelining.
 *
 * Model.  A caller formats its command, appends a request to the send
 * queue (sq) and parks on the request's own condition variable.  The
 * writer (the pipe's manager coroutine, between reconnections) takes
 * everything queued, moves it to the flight queue (fq) in order and sends
 * it in one writev.  The reader coroutine parses replies as they come and
 * pops fq's head for each: Redis answers a connection's commands in order,
 * so the i-th reply belongs to the i-th request sent.
 *
 * Invariants (under p->mu):
 *  - fq holds exactly the requests whose bytes were handed to the socket
 *    (or are being written) and whose reply has not been read, oldest
 *    first; a reply read with fq empty is a protocol error.
 *  - A request is owned by its caller until it is queued, then by the
 *    pipe until `done`; a caller whose ctx ends marks it `abandoned` and
 *    leaves, and whoever takes it off a queue frees it then.  An abandoned
 *    request still in sq is never sent; one in fq keeps its reply slot
 *    (the reply is dropped), which keeps the order right.
 *  - The command bytes belong to the request until the writer takes them
 *    for a batch (r->cmd = NULL), then to the writer until written.
 *
 * Failure.  When the writer or the reader fails (or the pipe is stopped)
 * the connection is marked broken and shut down, which wakes the other
 * side; once the reader has left, every request in fq fails with the
 * error (its command may or may not have run), while sq (never sent) is
 * kept for the next connection.  The manager reconnects at once; a failed
 * attempt fails sq and sets the pipe DOWN (calls get -ENOTCONN at once)
 * for a backoff that doubles up to backoff_max.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "base/check.h"
#include "data/redis/internal.h"

enum {
    BATCH_MAX = 1024,           /* commands per writev (IOV_MAX on Linux) */
    READ_BUF = 64 * 1024,
};

enum pipe_state { CONNECTING, UP, DOWN };

typedef struct req {
    struct req *next;
    char *cmd;
    size_t len;
    int64_t sent;               /* when its batch was taken for writing */
    redisReply *reply;
    int err;
    bool done, abandoned;
    tern_cond cond;
} req;

struct tern__redis_pipe {
    const tern_redis_client_options *opts;   /* the client's copy */
    tern__redis_counters *cnt;
    tern_ctx *life;             /* the client's; cancelled when it is freed */
    tern_waitgroup *wg;         /* the client's: the manager counts in it */

    tern_mutex mu;              /* guards everything below */
    enum pipe_state state;
    bool stopped;
    bool broken;                /* the current connection failed */
    int broken_err;
    req *sq_head, *sq_tail;     /* queued, not sent */
    req *fq_head, *fq_tail;     /* sent, awaiting replies */
    _Atomic int inflight;       /* requests in sq and fq (read without mu by stats) */
    _Atomic int status;         /* TERN__REDIS_PIPE_*, for lock-free readers */
    tern_cond wcond;            /* the writer waits here for work */
    tern__redis_conn *rc;       /* while UP */

    tern_waitgroup rwg;         /* the reader coroutine */
    struct iovec *iov;          /* the writer's batch */
    char **cmds;
};

static void push(req **head, req **tail, req *r)
{
    r->next = NULL;
    if (*tail)
        (*tail)->next = r;
    else
        *head = r;
    *tail = r;
}

static req *pop(req **head, req **tail)
{
    req *r = *head;
    if (r) {
        *head = r->next;
        if (!*head)
            *tail = NULL;
    }
    return r;
}

static void req_free(req *r)
{
    if (!r)
        return;
    redisFreeCommand(r->cmd);
    freeReplyObject(r->reply);
    free(r);
}

/* Under p->mu, after state or broken changed. */
static void publish(tern__redis_pipe *p)
{
    /* A broken connection's queued calls wait for the next one: that is
     * "connecting" to a caller choosing a pipe. */
    int st = p->state == DOWN                 ? TERN__REDIS_PIPE_DOWN
             : p->state == UP && !p->broken   ? TERN__REDIS_PIPE_UP
                                              : TERN__REDIS_PIPE_CONNECTING;
    atomic_store_explicit(&p->status, st, memory_order_relaxed);
}

/* Hand r its outcome, or free it if its caller has gone.  Under p->mu. */
static void finish(tern__redis_pipe *p, req *r, redisReply *reply, int err)
{
    p->inflight--;
    TERN_ASSERT(p->inflight >= 0);
    if (r->abandoned) {
        if (reply)
            atomic_fetch_add_explicit(&p->cnt->dropped, 1, memory_order_relaxed);
        freeReplyObject(reply);
        req_free(r);
        return;
    }
    r->reply = reply;
    r->err = err;
    r->done = true;
    tern_cond_signal(&r->cond);
}

static void fail_queue(tern__redis_pipe *p, req **head, req **tail, int err)
{
    req *r;
    while ((r = pop(head, tail)))
        finish(p, r, NULL, err);
}

/* Under p->mu.  The first failure wins; shutting the socket down wakes a
 * reader parked in read and a writer parked in writev. */
static void mark_broken(tern__redis_pipe *p, int err)
{
    if (p->broken)
        return;
    p->broken = true;
    p->broken_err = err;
    publish(p);
    if (p->rc)
        shutdown(tern_conn_fd(p->rc->c), SHUT_RDWR);
    tern_cond_broadcast(&p->wcond);
}

/* The oldest sent command has waited past read_timeout: the server (or
 * the path to it) is gone quiet. */
static bool overdue(tern__redis_pipe *p)
{
    tern_mutex_lock(&p->mu);
    bool late = p->fq_head && tern_now() - p->fq_head->sent >= p->opts->read_timeout;
    tern_mutex_unlock(&p->mu);
    return late;
}

static int reader_main(void *arg)
{
    tern__redis_pipe *p = arg;
    tern__redis_conn *rc = p->rc;
    int64_t rt = p->opts->read_timeout;
    char *buf = malloc(READ_BUF);
    int err = buf ? 0 : -ENOMEM;
    while (!err) {
        /* A parked read does not see deadlines set later, so the reader
         * wakes at least every read_timeout and looks at the oldest
         * command in flight; an idle connection just reads again. */
        if (rt > 0)
            tern_conn_set_read_deadline(rc->c, tern_deadline_after(rt));
        ssize_t n = tern_conn_read(rc->c, buf, READ_BUF, NULL);
        if (n == -ETIMEDOUT && !overdue(p))
            continue;
        if (n <= 0) {
            err = n == 0 ? -ECONNRESET : (int)n;
            break;
        }
        if (redisReaderFeed(rc->rd, buf, (size_t)n) != REDIS_OK) {
            err = -ENOMEM;
            break;
        }
        tern_mutex_lock(&p->mu);
        for (;;) {
            redisReply *reply = NULL;
            err = tern__redis_reader_next(rc->rd, &reply);
            if (err || !reply)
                break;
            req *r = pop(&p->fq_head, &p->fq_tail);
            if (!r) {           /* a reply nobody asked for */
                freeReplyObject(reply);
                err = -EPROTO;
                break;
            }
            atomic_fetch_add_explicit(&p->cnt->commands, 1, memory_order_relaxed);
            if (reply->type == REDIS_REPLY_ERROR)
                atomic_fetch_add_explicit(&p->cnt->error_replies, 1, memory_order_relaxed);
            finish(p, r, reply, 0);
        }
        tern_mutex_unlock(&p->mu);
    }
    free(buf);
    tern_mutex_lock(&p->mu);
    mark_broken(p, err);
    tern_mutex_unlock(&p->mu);
    tern_waitgroup_done(&p->rwg);
    return 0;
}

/* Send batches until the connection breaks or the pipe stops. */
static void writer_loop(tern__redis_pipe *p)
{
    tern__redis_conn *rc = p->rc;
    tern_mutex_lock(&p->mu);
    for (;;) {
        while (!p->sq_head && !p->broken && !p->stopped)
            tern_cond_wait(&p->wcond, &p->mu, NULL);
        if (p->broken || p->stopped)
            break;
        /* Woken by the first caller of a burst, the writer would run next
         * on that P and send one command per writev.  Going once to the
         * back of the run queue lets the callers already runnable (those
         * the reader just woke) queue theirs first: one write for all. */
        tern_mutex_unlock(&p->mu);
        tern_yield();
        tern_mutex_lock(&p->mu);
        if (p->broken || p->stopped)
            break;
        int n = 0;
        req *r;
        int64_t now = tern_now();
        while (n < BATCH_MAX && (r = pop(&p->sq_head, &p->sq_tail))) {
            if (r->abandoned) { /* its caller left before it was sent */
                p->inflight--;
                req_free(r);
                continue;
            }
            p->iov[n] = (struct iovec){.iov_base = r->cmd, .iov_len = r->len};
            p->cmds[n++] = r->cmd;
            r->cmd = NULL;
            r->sent = now;
            push(&p->fq_head, &p->fq_tail, r);
        }
        /* Counted before the write: a reply may reach its caller (who may
         * read the stats) before writev returns. */
        if (n) {
            atomic_fetch_add_explicit(&p->cnt->batches, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&p->cnt->batched, (uint64_t)n, memory_order_relaxed);
        }
        tern_mutex_unlock(&p->mu);
        ssize_t w = n ? tern_conn_writev(rc->c, p->iov, n, NULL) : 0;
        for (int i = 0; i < n; i++)
            redisFreeCommand(p->cmds[i]);
        tern_mutex_lock(&p->mu);
        if (w < 0)
            mark_broken(p, (int)w);
    }
    tern_mutex_unlock(&p->mu);
}

/* Serve one connection: start its reader, write until it breaks, then
 * fail what was sent on it.  Returns how long it lived. */
static int64_t serve(tern__redis_pipe *p, tern__redis_conn *rc)
{
    int64_t t0 = tern_now();
    tern_mutex_lock(&p->mu);
    p->rc = rc;
    p->broken = false;
    p->state = UP;
    publish(p);
    bool stopped = p->stopped;
    if (stopped)
        mark_broken(p, -ECANCELED);
    tern_mutex_unlock(&p->mu);
    tern_waitgroup_add(&p->rwg, 1);
    if (tern_go(reader_main, p) != 0) {
        tern_waitgroup_done(&p->rwg);
        tern_mutex_lock(&p->mu);
        mark_broken(p, -ENOMEM);
        tern_mutex_unlock(&p->mu);
    }
    writer_loop(p);
    tern_waitgroup_wait(&p->rwg, NULL);
    tern_mutex_lock(&p->mu);
    TERN_ASSERT(p->broken);
    fail_queue(p, &p->fq_head, &p->fq_tail, p->broken_err);
    p->rc = NULL;
    p->state = CONNECTING;
    publish(p);
    if (p->stopped)
        fail_queue(p, &p->sq_head, &p->sq_tail, -ECANCELED);
    tern_mutex_unlock(&p->mu);
    tern__redis_conn_free(rc);
    return tern_now() - t0;
}

static int manager_main(void *arg)
{
    tern__redis_pipe *p = arg;
    const tern_redis_client_options *o = p->opts;
    int64_t backoff = o->backoff_min;
    bool first = true;
    for (;;) {
        tern_mutex_lock(&p->mu);
        bool stopped = p->stopped;
        if (!stopped) {
            p->state = CONNECTING;
            publish(p);
        }
        tern_mutex_unlock(&p->mu);
        if (stopped)
            break;
        tern_ctx *cctx;
        tern__redis_conn *rc = NULL;
        int err = tern_ctx_with_timeout(p->life, o->connect_timeout, &cctx);
        if (!err) {
            err = tern__redis_conn_open(o, &rc, cctx);
            tern_ctx_free(cctx);
        }
        if (!err) {
            if (!first)
                atomic_fetch_add_explicit(&p->cnt->reconnects, 1, memory_order_relaxed);
            first = false;
            /* A connection that broke at once (a server refusing us after
             * accepting) must not make a tight loop: back off unless it
             * lived a while. */
            if (serve(p, rc) > o->backoff_max)
                backoff = o->backoff_min;
            else if (tern_ctx_sleep(backoff, p->life) == 0 && backoff < o->backoff_max / 2)
                backoff *= 2;
            continue;
        }
        tern_mutex_lock(&p->mu);
        p->state = DOWN;
        publish(p);
        fail_queue(p, &p->sq_head, &p->sq_tail, p->stopped ? -ECANCELED : err);
        tern_mutex_unlock(&p->mu);
        if (tern_ctx_sleep(backoff, p->life) != 0)
            continue;   /* the client is being freed: the loop sees stopped */
        backoff = backoff < o->backoff_max / 2 ? backoff * 2 : o->backoff_max;
    }
    tern_waitgroup_done(p->wg);
    return 0;
}

int tern__redis_pipe_new(const tern_redis_client_options *opts, tern__redis_counters *cnt,
                         tern_ctx *life, tern_waitgroup *wg, tern__redis_pipe **out)
{
    *out = NULL;
    tern__redis_pipe *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->iov = calloc(BATCH_MAX, sizeof *p->iov);
    p->cmds = calloc(BATCH_MAX, sizeof *p->cmds);
    if (!p->iov || !p->cmds) {
        tern__redis_pipe_free(p);
        return -ENOMEM;
    }
    p->opts = opts;
    p->cnt = cnt;
    p->life = life;
    p->wg = wg;
    p->state = CONNECTING;
    publish(p);
    tern_waitgroup_add(wg, 1);
    int err = tern_go(manager_main, p);
    if (err) {
        tern_waitgroup_done(wg);
        tern__redis_pipe_free(p);
        return err;
    }
    *out = p;
    return 0;
}

int tern__redis_pipe_call(tern__redis_pipe *p, char *cmd, size_t len, redisReply **out,
                          tern_ctx *ctx)
{
    *out = NULL;
    req *r = calloc(1, sizeof *r);
    if (!r) {
        redisFreeCommand(cmd);
        return -ENOMEM;
    }
    r->cmd = cmd;
    r->len = len;
    tern_mutex_lock(&p->mu);
    if (p->stopped || p->state == DOWN) {
        int err = p->stopped ? -ECANCELED : -ENOTCONN;
        tern_mutex_unlock(&p->mu);
        req_free(r);
        return err;
    }
    bool was_empty = !p->sq_head;
    push(&p->sq_head, &p->sq_tail, r);
    p->inflight++;
    if (was_empty)
        tern_cond_signal(&p->wcond);
    while (!r->done) {
        int err = tern_cond_wait(&r->cond, &p->mu, ctx);
        if (err && !r->done) {
            r->abandoned = true;    /* the pipe frees it */
            tern_mutex_unlock(&p->mu);
            return err;
        }
    }
    tern_mutex_unlock(&p->mu);
    int err = r->err;
    *out = r->reply;
    r->reply = NULL;
    req_free(r);
    return err;
}

int tern__redis_pipe_status(const tern__redis_pipe *p)
{
    return atomic_load_explicit(&p->status, memory_order_relaxed);
}

int tern__redis_pipe_inflight(const tern__redis_pipe *p)
{
    return atomic_load_explicit(&p->inflight, memory_order_relaxed);
}

void tern__redis_pipe_stop(tern__redis_pipe *p)
{
    tern_mutex_lock(&p->mu);
    p->stopped = true;
    mark_broken(p, -ECANCELED);
    fail_queue(p, &p->sq_head, &p->sq_tail, -ECANCELED);
    tern_cond_broadcast(&p->wcond);
    tern_mutex_unlock(&p->mu);
}

void tern__redis_pipe_free(tern__redis_pipe *p)
{
    if (!p)
        return;
    TERN_ASSERT(!p->sq_head && !p->fq_head);
    free(p->iov);
    free(p->cmds);
    free(p);
}
