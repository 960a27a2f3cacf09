/*
 * test_http_server_shutdown.c - the end of a server: graceful and forced
 * shutdown, a drain ended by its ctx, serve() ended by its own ctx, shutdown
 * under load, and freeing the server right after serve() returns (each of
 * the last found a use after free).  The fixture is http_server_fixture.h.
 */
#include "check.h"

#include <time.h>

#include "http_server_fixture.h"

SERVER_TEST(shutdown_past_its_deadline_cancels_handlers_and_closes_conns)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    atomic_store(&wait_err, 1);
    tsrv *t = app_start(NULL);
    cl *idle = cl_dial(t->addr);
    resp r;
    get(idle, "/plaintext", &r);
    resp_free(&r);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    int one;
    tern_chan_recv(entered, &one, NULL, NULL);
    /* the idle one's coroutine goes idle just after its answer was sent */
    int64_t until = tern_now() + TERN_SEC;
    while (srv_stats(t).active != 1 && tern_now() < until)
        tern_sleep(TERN_MS);
    CHECK_EQ(srv_stats(t).active, 1);
    CHECK_EQ(srv_stats(t).conns, 2);
    int64_t t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 100 * TERN_MS), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    CHECK(took >= 90 * TERN_MS && took < TERN_SEC);
    CHECK_EQ(srv_wait(t), 0);
    CHECK_EQ(atomic_load(&wait_err), -ECANCELED);
    /* the idle one was closed at once, the busy one at the deadline */
    expect_eof(idle);
    int rc = cl_response(k, &r, false);
    CHECK(rc == RS_CLOSED);
    CHECK_EQ(srv_stats(t).conns, 0);
    /* new connections are refused */
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, t->addr, &c, NULL), -ECONNREFUSED);
    /* idempotent */
    CHECK_EQ(shutdown_within(t->s, 100 * TERN_MS), 0);
    cl_close(idle);
    cl_close(k);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

typedef struct cancel_job {
    tern_ctx *ctx;
    int64_t after;
} cancel_job;

static int cancel_later(void *arg)
{
    cancel_job *j = arg;
    tern_sleep(j->after);
    tern_ctx_cancel(j->ctx);
    return 0;
}

/* A request in flight and an idle connection, as
 * shutdown_past_its_deadline_cancels_handlers_and_closes_conns sets them
 * up; returns the busy client, *idle the other. */
static cl *busy_and_idle(tsrv *t, cl **idle)
{
    *idle = cl_dial(t->addr);
    resp r;
    get(*idle, "/plaintext", &r);
    resp_free(&r);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    int one;
    tern_chan_recv(entered, &one, NULL, NULL);
    int64_t until = tern_now() + TERN_SEC;
    while (srv_stats(t).active != 1 && tern_now() < until)
        tern_sleep(TERN_MS);
    CHECK_EQ(srv_stats(t).active, 1);
    return k;
}

SERVER_TEST(shutdown_drain_ends_when_its_ctx_is_cancelled)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    atomic_store(&wait_err, 1);
    tsrv *t = app_start(NULL);
    cl *idle, *k = busy_and_idle(t, &idle);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    cancel_job j = {ctx, 50 * TERN_MS};
    CHECK_EQ(tern_go(cancel_later, &j), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_http_server_shutdown(t->s, ctx), -ECANCELED);
    int64_t took = tern_now() - t0;
    CHECK(took >= 45 * TERN_MS && took < TERN_SEC);
    CHECK_EQ(srv_wait(t), 0);           /* ended by shutdown, not by its own ctx */
    CHECK_EQ(atomic_load(&wait_err), -ECANCELED);
    expect_eof(idle);
    resp r;
    CHECK(cl_response(k, &r, false) == RS_CLOSED);
    CHECK_EQ(srv_stats(t).conns, 0);
    tern_ctx_free(ctx);
    cl_close(idle);
    cl_close(k);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

SERVER_TEST(serve_ends_with_its_ctx_closing_every_connection)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    atomic_store(&wait_err, 1);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_http_server_options o = { .read_body_timeout = 3 * TERN_SEC };
    tsrv *t = srv_start_ctx(&o, app_router(), ctx);
    cl *idle, *k = busy_and_idle(t, &idle);
    int64_t t0 = tern_now();
    tern_ctx_cancel(ctx);
    CHECK_EQ(srv_wait(t), -ECANCELED);
    CHECK(tern_now() - t0 < TERN_SEC);  /* at once: no drain */
    CHECK_EQ(atomic_load(&wait_err), -ECANCELED);
    expect_eof(idle);
    resp r;
    CHECK(cl_response(k, &r, false) == RS_CLOSED);
    CHECK_EQ(srv_stats(t).conns, 0);
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, t->addr, &c, NULL), -ECONNREFUSED);
    /* a later shutdown has nothing left to do */
    CHECK_EQ(tern_http_server_shutdown(t->s, NULL), 0);
    /* and a deadline ends it the same way */
    tern_ctx_free(ctx);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 30 * TERN_MS, &ctx), 0);
    tsrv *t2 = srv_start_ctx(&o, app_router(), ctx);
    CHECK_EQ(srv_wait(t2), -ETIMEDOUT);
    srv_free(t2);
    tern_ctx_free(ctx);
    cl_close(idle);
    cl_close(k);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

typedef struct load_st {
    const char *addr;
    atomic_long ok200, closed, bad, sent;
    atomic_bool shutting;
    tern_waitgroup wg;
    int id;
} load_st;

typedef struct load_arg {
    load_st *L;
    unsigned seed;
} load_arg;

static int load_client(void *arg)
{
    load_arg *a = arg;
    load_st *L = a->L;
    for (;;) {
        tern_conn *c;
        int rc = tern_conn_dial(TERN_NET_TCP, L->addr, &c, NULL);
        if (rc < 0) {
            if (!atomic_load(&L->shutting)) {
                fprintf(stderr, "load: dial before shutdown: %s\n", tern_strerror(rc));
                atomic_fetch_add(&L->bad, 1);
            }
            break;
        }
        cl *k = cl_wrap(c);
        for (;;) {
            char req[128];
            int ms = (int)(rand_r(&a->seed) % 21);
            int n = snprintf(req, sizeof req, "GET /sleep?ms=%d HTTP/1.1\r\nHost: t\r\n\r\n", ms);
            if (tern_conn_write(k->c, req, (size_t)n, NULL) != n)
                break;          /* closed by the server before it read anything */
            atomic_fetch_add(&L->sent, 1);
            resp r;
            rc = cl_response(k, &r, false);
            if (rc == RS_CLOSED) {
                atomic_fetch_add(&L->closed, 1);
                break;
            }
            char want[32];
            snprintf(want, sizeof want, "slept %d ms\n", ms);
            if (rc != RS_OK || r.status != 200 || r.body_len != strlen(want) ||
                memcmp(r.body, want, r.body_len) != 0) {
                fprintf(stderr, "load: bad answer: %s, status %d, body %.*s\n", rname(rc),
                        r.status, (int)r.body_len, r.body ? r.body : "");
                atomic_fetch_add(&L->bad, 1);
                resp_free(&r);
                break;
            }
            atomic_fetch_add(&L->ok200, 1);
            const char *conn = hdr(&r, "Connection");
            bool close = conn && !strcmp(conn, "close");
            resp_free(&r);
            if (close) {
                if (cl_fill(k) != 0) {      /* it said close: then it must close */
                    fprintf(stderr, "load: no EOF after Connection: close\n");
                    atomic_fetch_add(&L->bad, 1);
                }
                break;
            }
        }
        cl_close(k);
    }
    free(a);
    tern_waitgroup_done(&L->wg);
    return 0;
}

SERVER_TEST(shutdown_under_load_answers_or_closes_every_request)
{
    (void)arg;
    atomic_store(&sleep_calls, 0);
    tsrv *t = app_start(NULL);
    load_st *L = calloc(1, sizeof *L);
    L->addr = t->addr;
    enum { CLIENTS = 32 };
    tern_waitgroup_add(&L->wg, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        load_arg *a = malloc(sizeof *a);
        a->L = L;
        a->seed = (unsigned)i * 7919u + 1;
        CHECK_EQ(tern_go(load_client, a), 0);
    }
    tern_sleep(200 * TERN_MS);
    long before = atomic_load(&L->ok200);
    CHECK(before > CLIENTS);
    atomic_store(&L->shutting, true);
    int64_t t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 5 * TERN_SEC), 0);
    int64_t took = tern_now() - t0;
    tern_waitgroup_wait(&L->wg, NULL);
    CHECK_EQ(srv_wait(t), 0);
    struct tern_http_server_stats st = srv_stats(t);
    fprintf(stderr, "   %ld answered (%ld before shutdown), %ld closed unanswered, %ld sent; "
            "server: %llu requests, %llu conns; shutdown took %lld ms\n",
            atomic_load(&L->ok200), before, atomic_load(&L->closed), atomic_load(&L->sent),
            (unsigned long long)st.requests, (unsigned long long)st.accepted,
            (long long)(took / TERN_MS));
    CHECK_EQ(atomic_load(&L->bad), 0);
    CHECK_EQ(st.requests, atomic_load(&L->ok200));
    CHECK_EQ(atomic_load(&sleep_calls), atomic_load(&L->ok200));
    CHECK_EQ(st.conns, 0);
    CHECK_EQ(st.active, 0);
    CHECK(took < 2 * TERN_SEC);
    srv_free(t);
    free(L);
    return 0;
}

/* A request in flight when shutdown begins is answered, with Connection:
 * close (tern/http.h: "their responses carry Connection: close").  Found:
 * only requests read after shutdown began were marked closing. */
SERVER_TEST(shutdown_inflight_gets_connection_close)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    int one;
    tern_chan_recv(entered, &one, NULL, NULL);
    int64_t t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 2 * TERN_SEC), 0);
    int64_t took = tern_now() - t0;
    CHECK(took >= 50 * TERN_MS && took < TERN_SEC);     /* it waited for the handler */
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "slow done\n");
    const char *c = hdr(&r, "Connection");
    if (!c || strcmp(c, "close") != 0) {
        fprintf(stderr, "the in-flight response at shutdown has Connection: %s, expected close\n",
                c ? c : "(none)");
        abort();
    }
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_wait(t), 0);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

/* tern_http_server_free() right after serve() returns, as hello.c does
 * ("After serve has returned"): no coroutine of the server may touch it
 * any more.  Found: serve() returned when `drained` closed, while
 * shutdown() was still inside tern_chan_recv (with a ctx) on it (a use after free
 * of the channel; in a plain build a worker spun on the freed lock).
 * Repeated to hit the window. */
typedef struct race {
    tern_http_server *s;
    char addr[64];
} race;

static int race_driver(void *arg)
{
    race *x = arg;
    cl *k = cl_dial(x->addr);
    resp r;
    get(k, "/plaintext", &r);
    resp_free(&r);
    cl_close(k);        /* its conn coroutine ends while shutdown runs */
    shutdown_within(x->s, 2 * TERN_SEC);
    return 0;
}

static int free_right_after_serve_main(void *arg);

/* In a child with an alarm: a late access to a freed (and reused) server
 * can also hang a worker on a spin lock. */
static void free_right_after_serve_child(void)
{
    alarm(8);
    run_ok(free_right_after_serve_main, NULL, 2);
}

static void server_can_be_freed_right_after_serve_returns(void)
{
    child_result cr = run_child(free_right_after_serve_child);
    if (!cr.exited || cr.code != 0) {
        fprintf(stderr, "freeing the server right after serve() returned: the child %s %d "
                "(a use after free: see its stderr above)\n",
                cr.exited ? "exited with" : "was killed by signal", cr.exited ? cr.code : cr.sig);
        abort();
    }
}

static int free_right_after_serve_main(void *arg)
{
    (void)arg;
    int rounds = (int)scaled(200);
    for (int i = 0; i < rounds; i++) {
        race *x = calloc(1, sizeof *x);
        tern_http_router *rt = app_router();
        tern_http_server_options o = { .handler = tern_http_router_serve, .arg = rt,
                                       .max_conns = 4 };
        CHECK_EQ(tern_http_server_new(&o, &x->s), 0);
        CHECK_EQ(tern_http_server_listen(x->s, "127.0.0.1:0"), 0);
        snprintf(x->addr, sizeof x->addr, "%s", tern_http_server_addr(x->s));
        CHECK_EQ(tern_go(race_driver, x), 0);
        CHECK_EQ(tern_http_server_serve(x->s, NULL), 0);
        tern_http_server_free(x->s);
        /* poison what a late access would read (a plain build has no ASan) */
        tern_http_router_free(rt);
        tern_sleep(1 * TERN_MS);    /* the driver is done with x by now */
        free(x);
    }
    return 0;
}

/* The same with shutdown() returned and serve() returned (srv_stop(), the
 * safest order there is).  Found: a connection closed by its client just
 * before shutdown was still inside tern__http_conn_gone() after `drained`
 * was closed, unlocking s->mu of a freed (or already reused) server. */
SERVER_TEST(server_can_be_freed_after_shutdown_and_serve_return)
{
    (void)arg;
    int rounds = (int)scaled(300);
    for (int i = 0; i < rounds; i++) {
        tern_http_server_options o = { .max_conns = 4 };
        tsrv *t = app_start(&o);
        cl *k = cl_dial(t->addr);
        resp r;
        get(k, "/plaintext", &r);
        resp_free(&r);
        cl_close(k);
        srv_stop(t);
    }
    return 0;
}

/* ---- handlers that ignore their context ------------------------------------------ */

static atomic_bool spin_release;    /* the spinning handler may return */
static atomic_int spin_returned;    /* it has */

/* Ignores its request's ctx: a CPU loop that yields but never looks at
 * it (or a blocking C call), as /debug/pprof/profile?seconds=3600 did. */
static int h_spin(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    announce();
    while (!atomic_load(&spin_release))
        tern_yield();
    atomic_store(&spin_returned, 1);
    return tern_http_resp_text(w, 200, "late");
}

static int sleep_blocking(void *arg)
{
    (void)arg;
    struct timespec ts = { 1, 500000000 };
    nanosleep(&ts, NULL);
    return 0;
}

/* Blocks its thread for 1.5 s through tern_blocking: no ctx can end it. */
static int h_block(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    announce();
    tern_blocking(sleep_blocking, NULL);
    atomic_store(&spin_returned, 1);
    return tern_http_resp_text(w, 200, "late");
}

/* Shutdown with a 100 ms drain while a handler never returns: it forces
 * the connection, waits the grace (300 ms here), gives up on the handler
 * and returns -ETIMEDOUT; serve returns too.  The server, freed while the
 * handler still runs, is freed for real by its connection once the handler
 * returns (ASan would see a use after free, LSan a leak).  Before: shutdown
 * waited for the handler without bound. */
static void shutdown_abandons_a_handler_that_ignores_its_ctx(const char *path)
{
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    atomic_store(&spin_release, false);
    atomic_store(&spin_returned, 0);
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/spin", h_spin, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/block", h_block, NULL), 0);
    tern_http_server_options o = { .shutdown_grace = 300 * TERN_MS };
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);
    char req[128];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    cl_send(k, req);
    int one;
    tern_chan_recv(entered, &one, NULL, NULL);
    int64_t t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 100 * TERN_MS), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    fprintf(stderr, "   %s: shutdown took %lld ms\n", path, (long long)(took / TERN_MS));
    CHECK(took >= 390 * TERN_MS && took < 900 * TERN_MS);
    CHECK_EQ(srv_wait(t), 0);
    CHECK(tern_now() - t0 < 900 * TERN_MS);
    CHECK_EQ(atomic_load(&spin_returned), 0);
    CHECK_EQ(srv_stats(t).conns, 1);        /* abandoned, still counted */
    resp r;
    CHECK(cl_response(k, &r, false) == RS_CLOSED);  /* its socket was shut down */
    /* a later shutdown does not wait for it either */
    t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 10 * TERN_MS), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 900 * TERN_MS);
    /* freed with the handler still running: the connection frees it */
    tern_http_server_free(t->s);
    t->s = NULL;
    atomic_store(&spin_release, true);
    int64_t until = tern_now() + 5 * TERN_SEC;
    while (!atomic_load(&spin_returned) && tern_now() < until)
        tern_sleep(TERN_MS);
    CHECK_EQ(atomic_load(&spin_returned), 1);
    tern_sleep(100 * TERN_MS);              /* its connection leaves, freeing the server */
    cl_close(k);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
}

SERVER_TEST(shutdown_abandons_a_spinning_handler_after_the_grace)
{
    (void)arg;
    shutdown_abandons_a_handler_that_ignores_its_ctx("/spin");
    return 0;
}

SERVER_TEST(shutdown_abandons_a_blocked_handler_after_the_grace)
{
    (void)arg;
    shutdown_abandons_a_handler_that_ignores_its_ctx("/block");
    return 0;
}

TESTS(T(shutdown_past_its_deadline_cancels_handlers_and_closes_conns),
      T(shutdown_drain_ends_when_its_ctx_is_cancelled),
      T(serve_ends_with_its_ctx_closing_every_connection),
      T(shutdown_under_load_answers_or_closes_every_request),
      T(shutdown_inflight_gets_connection_close), T(server_can_be_freed_right_after_serve_returns),
      T(server_can_be_freed_after_shutdown_and_serve_return),
      T(shutdown_abandons_a_spinning_handler_after_the_grace),
      T(shutdown_abandons_a_blocked_handler_after_the_grace))
