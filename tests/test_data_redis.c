/*
 * test_data_redis.c - the Redis client against a real redis-server:
 * commands and reply types, error replies, pipelining under 1000
 * coroutines, ctx deadlines while the server is paused, and a server
 * killed and restarted under load.
 */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <tern/redis.h>

#include "redis_server.h"

#if defined(__SANITIZE_THREAD__)
#define TEST_REDIS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_REDIS_TSAN 1
#endif
#endif
#ifndef TEST_REDIS_TSAN
#define TEST_REDIS_TSAN 0
#endif

static redis_server srv;

static void stop_server(void)
{
    redis_server_stop(&srv);
}

static tern_redis_client *client(int pool)
{
    static bool once;
    if (!once) {
        once = true;
        atexit(stop_server);
    }
    redis_server_up(&srv);
    tern_redis_client_options o = {.addr = srv.sock, .pool_size = pool,
                                   .backoff_min = 5 * TERN_MS, .backoff_max = 50 * TERN_MS};
    tern_redis_client *cl;
    CHECK_EQ(tern_redis_client_new(&o, &cl), 0);
    return cl;
}

static const char *str(const tern_redis_reply *r)
{
    return tern_redis_reply_str(r, NULL);
}

/* ---- commands and replies ---- */

static int basics_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client(2);
    tern_redis_reply *r;

    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "SET %s %b", "k1", "a\0b", (size_t)3), 0);
    CHECK_EQ(tern_redis_reply_type(r), TERN_REDIS_STATUS);
    CHECK(strcmp(str(r), "OK") == 0);
    tern_redis_reply_free(r);

    const char *get[] = {"GET", "k1"};
    CHECK_EQ(tern_redis_command(cl, 2, get, NULL, &r, NULL), 0);
    size_t n;
    const char *s = tern_redis_reply_str(r, &n);
    CHECK_EQ(tern_redis_reply_type(r), TERN_REDIS_STRING);
    CHECK_EQ(n, 3);
    CHECK(memcmp(s, "a\0b", 3) == 0);
    tern_redis_reply_free(r);

    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "INCRBY counter %d", 41), 0);
    CHECK_EQ(tern_redis_reply_type(r), TERN_REDIS_INTEGER);
    CHECK_EQ(tern_redis_reply_int(r), 41);
    tern_redis_reply_free(r);

    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "GET nosuchkey"), 0);
    CHECK_EQ(tern_redis_reply_type(r), TERN_REDIS_NIL);
    CHECK(tern_redis_reply_str(r, NULL) == NULL);
    tern_redis_reply_free(r);

    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "RPUSH list x yy zzz"), 0);
    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "LRANGE list 0 -1"), 0);
    CHECK_EQ(tern_redis_reply_type(r), TERN_REDIS_ARRAY);
    CHECK_EQ(tern_redis_reply_len(r), 3);
    CHECK(strcmp(str(tern_redis_reply_at(r, 0)), "x") == 0);
    CHECK(strcmp(str(tern_redis_reply_at(r, 2)), "zzz") == 0);
    tern_redis_reply_free(r);

    /* Conveniences: allocated and caller-buffer GET, SET with TTL, DEL. */
    CHECK_EQ(tern_redis_set(cl, "k2", "hello", 5, 0, NULL), 0);
    char *v;
    CHECK_EQ(tern_redis_get(cl, "k2", &v, &n, NULL), 0);
    CHECK(n == 5 && strcmp(v, "hello") == 0);
    free(v);
    char buf[8];
    CHECK_EQ(tern_redis_get_buf(cl, "k2", buf, sizeof buf, &n, NULL), 0);
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(tern_redis_get_buf(cl, "k2", buf, 3, &n, NULL), -ENOSPC);
    CHECK_EQ(n, 5);
    CHECK_EQ(tern_redis_get(cl, "nosuchkey", &v, NULL, NULL), -ENOENT);
    CHECK(v == NULL);
    CHECK_EQ(tern_redis_set(cl, "k3", "t", 1, 1500 * TERN_MS, NULL), 0);
    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "PTTL k3"), 0);
    CHECK(tern_redis_reply_int(r) > 1000 && tern_redis_reply_int(r) <= 1500);
    tern_redis_reply_free(r);
    CHECK_EQ(tern_redis_set(cl, "k4", "t", 1, 20 * TERN_MS, NULL), 0);
    tern_sleep(60 * TERN_MS);
    CHECK_EQ(tern_redis_get(cl, "k4", &v, NULL, NULL), -ENOENT);
    CHECK_EQ(tern_redis_del(cl, "k2", NULL), 0);
    CHECK_EQ(tern_redis_del(cl, "k2", NULL), -ENOENT);
    CHECK_EQ(tern_redis_command(cl, 0, get, NULL, &r, NULL), -EINVAL);
    CHECK(r == NULL);

    struct tern_redis_stats st;
    CHECK_EQ(tern_redis_stats(cl, &st), 0);
    CHECK(st.commands >= 15);
    CHECK_EQ(st.connected, 2);
    CHECK_EQ(st.inflight, 0);
    tern_redis_client_free(cl);
    return 0;
}

static int metrics_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client(1);
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    CHECK_EQ(tern_redis_metrics_register(cl, reg), 0);
    CHECK_EQ(tern_redis_metrics_register(cl, reg), -EEXIST);
    for (int i = 0; i < 7; i++)
        CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "PING"), 0);
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "NOSUCHCOMMAND"), -EREMOTEIO);
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(reg, &text, &len), 0);
    CHECK(strstr(text, "\ntern_redis_commands_total 8\n") != NULL);
    CHECK(strstr(text, "\ntern_redis_error_replies_total 1\n") != NULL);
    CHECK(strstr(text, "\ntern_redis_connections 1\n") != NULL);
    CHECK(strstr(text, "\ntern_redis_inflight 0\n") != NULL);
    CHECK(strstr(text, "\ntern_redis_batched_commands_total 8\n") != NULL);
    free(text);
    tern_metrics_registry_free(reg);
    tern_redis_client_free(cl);
    return 0;
}

static void metrics_count_commands_and_batches(void)
{
    run_ok(metrics_main, NULL, 2);
}

static void commands_and_reply_types(void)
{
    run_ok(basics_main, NULL, 2);
}

static int errors_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client(1);
    tern_redis_reply *r;
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "SET s notanumber"), 0);
    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "INCR s"), -EREMOTEIO);
    CHECK(r != NULL);
    CHECK_EQ(tern_redis_reply_type(r), TERN_REDIS_ERROR);
    CHECK(strncmp(str(r), "ERR value is not an integer", 27) == 0);
    tern_redis_reply_free(r);
    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "LPUSH s x"), -EREMOTEIO);
    CHECK(strncmp(str(r), "WRONGTYPE", 9) == 0);
    tern_redis_reply_free(r);
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "NOSUCHCOMMAND"), -EREMOTEIO);
    char *v;
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "RPUSH l x"), 0);
    CHECK_EQ(tern_redis_get(cl, "l", &v, NULL, NULL), -EREMOTEIO);
    /* An error reply leaves the connection in step. */
    CHECK_EQ(tern_redis_get(cl, "s", &v, NULL, NULL), 0);
    CHECK(strcmp(v, "notanumber") == 0);
    free(v);
    struct tern_redis_stats st;
    tern_redis_stats(cl, &st);
    CHECK_EQ(st.error_replies, 4);
    CHECK_EQ(st.reconnects, 0);
    tern_redis_client_free(cl);
    return 0;
}

static void error_replies_are_eremoteio_with_the_message(void)
{
    run_ok(errors_main, NULL, 1);
}

/* ---- AUTH and SELECT on connect ---- */

static int auth_main(void *arg)
{
    (void)arg;
    tern_redis_client *admin = client(1);
    tern_redis_client_options o = {.addr = srv.sock, .pool_size = 1, .db = 3};
    tern_redis_client *db3;
    CHECK_EQ(tern_redis_client_new(&o, &db3), 0);
    CHECK_EQ(tern_redis_set(db3, "where", "db3", 3, 0, NULL), 0);
    char *v;
    CHECK_EQ(tern_redis_get(admin, "where", &v, NULL, NULL), -ENOENT);   /* db 0 */
    CHECK_EQ(tern_redis_get(db3, "where", &v, NULL, NULL), 0);
    CHECK(strcmp(v, "db3") == 0);
    free(v);
    tern_redis_client_free(db3);

    CHECK_EQ(tern_redis_commandf(admin, NULL, NULL, "CONFIG SET requirepass s3cret"), 0);
    o = (tern_redis_client_options){.addr = srv.sock, .pool_size = 1, .password = "s3cret"};
    tern_redis_client *good, *bad, *none;
    CHECK_EQ(tern_redis_client_new(&o, &good), 0);
    CHECK_EQ(tern_redis_commandf(good, NULL, NULL, "PING"), 0);
    /* A refused AUTH fails the connection attempt: a call waiting for it
     * gets the error reply's code (or -ENOTCONN, if the attempt failed
     * before the call came), the next ones -ENOTCONN while down. */
    o.password = "wrong";
    o.backoff_min = 5 * TERN_SEC;   /* stays down for the rest of the test */
    CHECK_EQ(tern_redis_client_new(&o, &bad), 0);
    int first = tern_redis_commandf(bad, NULL, NULL, "PING");
    CHECK(first == -EREMOTEIO || first == -ENOTCONN);
    CHECK_EQ(tern_redis_commandf(bad, NULL, NULL, "PING"), -ENOTCONN);
    struct tern_redis_stats st;
    CHECK_EQ(tern_redis_stats(bad, &st), 0);
    CHECK_EQ(st.connected, 0);
    o.password = NULL;
    o.backoff_min = 0;
    CHECK_EQ(tern_redis_client_new(&o, &none), 0);
    tern_redis_reply *r;
    CHECK_EQ(tern_redis_commandf(none, &r, NULL, "PING"), -EREMOTEIO);
    CHECK(strncmp(tern_redis_reply_str(r, NULL), "NOAUTH", 6) == 0);
    tern_redis_reply_free(r);
    CHECK_EQ(tern_redis_commandf(good, NULL, NULL, "CONFIG SET requirepass %s", ""), 0);
    tern_redis_client_free(none);
    tern_redis_client_free(bad);
    tern_redis_client_free(good);
    tern_redis_client_free(admin);
    return 0;
}

static void auth_and_select_on_connect(void)
{
    run_ok(auth_main, NULL, 2);
}

/* ---- TCP ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &n) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int tcp_main(void *arg)
{
    (void)arg;
    tern_redis_client *admin = client(1);
    int port = free_port();
    /* Redis 7 opens a TCP listener at run time. */
    CHECK_EQ(tern_redis_commandf(admin, NULL, NULL, "CONFIG SET bind 127.0.0.1"), 0);
    CHECK_EQ(tern_redis_commandf(admin, NULL, NULL, "CONFIG SET port %d", port), 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    tern_redis_client_options o = {.addr = addr};
    tern_redis_client *cl;
    CHECK_EQ(tern_redis_client_new(&o, &cl), 0);
    CHECK_EQ(tern_redis_set(cl, "tcp", "yes", 3, 0, NULL), 0);
    char *v;
    CHECK_EQ(tern_redis_get(admin, "tcp", &v, NULL, NULL), 0);   /* same server */
    CHECK(strcmp(v, "yes") == 0);
    free(v);
    tern_redis_client_free(cl);
    CHECK_EQ(tern_redis_commandf(admin, NULL, NULL, "CONFIG SET port 0"), 0);
    tern_redis_client_free(admin);
    return 0;
}

static void tcp_address_reaches_the_server(void)
{
    run_ok(tcp_main, NULL, 2);
}

/* ---- pipelining ---- */

typedef struct many {
    tern_redis_client *cl;
    tern_waitgroup wg;
    _Atomic int bad;
    int next;
} many;

static int one_caller(void *arg)
{
    many *m = arg;
    int i = __atomic_fetch_add(&m->next, 1, __ATOMIC_RELAXED);
    char key[32], val[32];
    snprintf(key, sizeof key, "many:%d", i);
    snprintf(val, sizeof val, "value-%d-%d", i, i * 7);
    for (int round = 0; round < 3; round++) {
        if (tern_redis_set(m->cl, key, val, strlen(val), 0, NULL) != 0)
            m->bad++;
        char *v = NULL;
        if (tern_redis_get(m->cl, key, &v, NULL, NULL) != 0 || strcmp(v, val) != 0)
            m->bad++;
        free(v);
        tern_redis_reply *r;
        if (tern_redis_commandf(m->cl, &r, NULL, "INCRBY sum %d", i) != 0)
            m->bad++;
        tern_redis_reply_free(r);
    }
    tern_waitgroup_done(&m->wg);
    return 0;
}

static int many_main(void *arg)
{
    (void)arg;
    many m = {.cl = client(1)};
    enum { N = 1000 };
    CHECK_EQ(tern_redis_commandf(m.cl, NULL, NULL, "DEL sum"), 0);
    tern_waitgroup_add(&m.wg, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(tern_go(one_caller, &m), 0);
    CHECK_EQ(tern_waitgroup_wait(&m.wg, NULL), 0);
    CHECK_EQ(m.bad, 0);
    char *v;
    CHECK_EQ(tern_redis_get(m.cl, "sum", &v, NULL, NULL), 0);
    CHECK_EQ(atoll(v), 3LL * N * (N - 1) / 2);
    free(v);
    struct tern_redis_stats st;
    tern_redis_stats(m.cl, &st);
    fprintf(stderr, "   %llu commands in %llu batches\n", (unsigned long long)st.batched,
            (unsigned long long)st.batches);
    CHECK_EQ(st.connected, 1);
    /* Pipelining happened: batches carried several commands on average
     * (about 100 in a release build, 40 in Debug).  TSan slows the callers
     * more than the writer, so much that in one CI run no two commands met
     * in a batch (9002 in 9002): batching is a speed property, checked in
     * the other builds; under TSan this test is for races. */
#if !TEST_REDIS_TSAN
    CHECK(st.batched >= 2 * st.batches);
#endif
    tern_redis_client_free(m.cl);
    return 0;
}

static void thousand_coroutines_share_one_connection(void)
{
    run_ok(many_main, NULL, 2);
}

/* ---- deadlines while the server is paused ---- */

static int paused_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client(1);
    CHECK_EQ(tern_redis_set(cl, "p", "before", 6, 0, NULL), 0);
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "CLIENT PAUSE 600 ALL"), 0);
    int64_t t0 = tern_now();
    for (int i = 0; i < 5; i++) {
        tern_ctx *ctx;
        CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        CHECK_EQ(tern_redis_set(cl, key, "late", 4, 0, ctx), -ETIMEDOUT);
        tern_ctx_free(ctx);
    }
    int64_t took = tern_now() - t0;
    CHECK(took < 450 * TERN_MS);     /* five 50 ms deadlines, not the pause */
    /* After the pause, the dropped replies are consumed in order: the
     * next callers get their own replies. */
    char *v;
    CHECK_EQ(tern_redis_get(cl, "p", &v, NULL, NULL), 0);
    CHECK(strcmp(v, "before") == 0);
    free(v);
    CHECK(tern_now() - t0 >= 500 * TERN_MS);
    for (int i = 0; i < 5; i++) {
        char key[16];
        snprintf(key, sizeof key, "p%d", i);
        CHECK_EQ(tern_redis_get(cl, key, &v, NULL, NULL), 0);    /* sent before the ctx ended */
        CHECK(strcmp(v, "late") == 0);
        free(v);
    }
    CHECK_EQ(tern_redis_set(cl, "p", "after", 5, 0, NULL), 0);
    CHECK_EQ(tern_redis_get(cl, "p", &v, NULL, NULL), 0);
    CHECK(strcmp(v, "after") == 0);
    free(v);
    struct tern_redis_stats st;
    tern_redis_stats(cl, &st);
    CHECK_EQ(st.dropped, 5);
    CHECK_EQ(st.inflight, 0);
    tern_redis_client_free(cl);
    return 0;
}

static void ctx_deadline_while_server_paused_keeps_replies_matched(void)
{
    run_ok(paused_main, NULL, 2);
}

/* A server that stops answering without closing (SIGSTOP: as a network
 * gone quiet) is detected by read_timeout: calls without a ctx fail
 * instead of hanging, and the pool recovers once the server answers. */
static int stopped_main(void *arg)
{
    (void)arg;
    redis_server_up(&srv);
    tern_redis_client_options o = {.addr = srv.sock, .pool_size = 1,
                                   .read_timeout = 100 * TERN_MS,
                                   .backoff_min = 5 * TERN_MS, .backoff_max = 20 * TERN_MS};
    tern_redis_client *cl;
    CHECK_EQ(tern_redis_client_new(&o, &cl), 0);
    CHECK_EQ(tern_redis_set(cl, "q", "1", 1, 0, NULL), 0);
    kill(srv.pid, SIGSTOP);
    int64_t t0 = tern_now();
    int err = tern_redis_set(cl, "q", "2", 1, 0, NULL);
    int64_t took = tern_now() - t0;
    CHECK_EQ(err, -ETIMEDOUT);
    CHECK(took >= 100 * TERN_MS && took < 600 * TERN_MS);
    kill(srv.pid, SIGCONT);
    /* Back: calls succeed again on a new connection. */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    for (;;) {
        err = tern_redis_set(cl, "q3", "3", 1, 0, ctx);   /* the old connection's "2" may land late */
        if (err == 0 || tern_ctx_err(ctx))
            break;
        tern_sleep(10 * TERN_MS);
    }
    tern_ctx_free(ctx);
    CHECK_EQ(err, 0);
    char *v;
    CHECK_EQ(tern_redis_get(cl, "q3", &v, NULL, NULL), 0);
    CHECK(strcmp(v, "3") == 0);
    free(v);
    struct tern_redis_stats st;
    tern_redis_stats(cl, &st);
    CHECK(st.reconnects >= 1);
    tern_redis_client_free(cl);
    return 0;
}

static void server_gone_quiet_is_detected_by_read_timeout(void)
{
    run_ok(stopped_main, NULL, 2);
}

/* A command queued while the connection is still being made waits for it. */
static int queued_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client(2);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_redis_commandf(cl, NULL, ctx, "PING"), 0);
    tern_ctx_free(ctx);
    tern_redis_client_free(cl);
    return 0;
}

static void first_call_waits_for_the_connection(void)
{
    run_ok(queued_main, NULL, 2);
}

/* ---- a server killed and restarted under load ---- */

typedef struct load {
    tern_redis_client *cl;
    tern_waitgroup wg;
    _Atomic bool stop;
    _Atomic int ok, failed, wrong, late, odd_err;
    int next;
} load;

static int loader(void *arg)
{
    load *l = arg;
    int id = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    char key[32], val[32];
    snprintf(key, sizeof key, "load:%d", id);
    for (int i = 0; !l->stop; i++) {
        snprintf(val, sizeof val, "%d", i);
        tern_ctx *ctx;
        CHECK_EQ(tern_ctx_with_timeout(NULL, 200 * TERN_MS, &ctx), 0);
        int64_t t0 = tern_now();
        int err = tern_redis_set(l->cl, key, val, strlen(val), 0, ctx);
        char *v = NULL;
        if (!err)
            err = tern_redis_get(l->cl, key, &v, NULL, ctx);
        if (tern_now() - t0 > 300 * TERN_MS)
            l->late++;          /* a call outlived its ctx */
        tern_ctx_free(ctx);
        if (!err) {
            if (strcmp(v, val) != 0)
                l->wrong++;
            l->ok++;
        } else {
            l->failed++;
            if (err != -ECONNRESET && err != -EPIPE && err != -ENOTCONN && err != -ETIMEDOUT &&
                err != -ECONNREFUSED && err != -ENOENT)
                l->odd_err++;
            tern_sleep(2 * TERN_MS);
        }
        free(v);
    }
    tern_waitgroup_done(&l->wg);
    return 0;
}

/* Off the worker: starting waits for the socket with sleeps. */
static int start_server(void *arg)
{
    redis_server_start(arg);
    return 0;
}

static int restart_main(void *arg)
{
    (void)arg;
    load l = {.cl = client(2)};
    enum { N = 64 };
    tern_waitgroup_add(&l.wg, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(tern_go(loader, &l), 0);
    tern_sleep(300 * TERN_MS);
    int ok_before = l.ok;
    CHECK(ok_before > 0);
    redis_server_kill(&srv);
    tern_sleep(200 * TERN_MS);
    int failed_down = l.failed;
    CHECK(failed_down > 0);
    CHECK_EQ(tern_blocking(start_server, &srv), 0);
    tern_sleep(500 * TERN_MS);
    int ok_mid = l.ok;
    tern_sleep(300 * TERN_MS);
    CHECK(l.ok > ok_mid);        /* serving again */
    l.stop = true;
    CHECK_EQ(tern_waitgroup_wait(&l.wg, NULL), 0);
    fprintf(stderr, "   ok %d, failed %d, wrong %d, late %d, odd errors %d\n", (int)l.ok,
            (int)l.failed, (int)l.wrong, (int)l.late, (int)l.odd_err);
    CHECK_EQ(l.wrong, 0);
    CHECK_EQ(l.late, 0);
    CHECK_EQ(l.odd_err, 0);
    struct tern_redis_stats st;
    tern_redis_stats(l.cl, &st);
    CHECK(st.reconnects >= 2);
    CHECK_EQ(st.connected, 2);
    /* Every call succeeds again. */
    for (int i = 0; i < 100; i++)
        CHECK_EQ(tern_redis_commandf(l.cl, NULL, NULL, "PING"), 0);
    tern_redis_client_free(l.cl);
    return 0;
}

static void server_restarted_under_load_recovers(void)
{
    run_ok(restart_main, NULL, 2);
}

TESTS(T(commands_and_reply_types), T(metrics_count_commands_and_batches), T(error_replies_are_eremoteio_with_the_message),
      T(first_call_waits_for_the_connection), T(auth_and_select_on_connect), T(tcp_address_reaches_the_server), T(thousand_coroutines_share_one_connection),
      T(ctx_deadline_while_server_paused_keeps_replies_matched),
      T(server_gone_quiet_is_detected_by_read_timeout), T(server_restarted_under_load_recovers))
