/*
 * test_data_pg_conn.c - one PostgreSQL connection against a real server
 * (tests/pg_fixture.h): connecting (TCP, Unix socket, a host name, refused,
 * bounded by a ctx), parameterized queries and the typed accessors, server
 * errors with their SQLSTATE, the prepared-statement cache, and a query
 * cancelled by its deadline that leaves the connection usable.
 */
#include "check.h"
#include "pg_fixture.h"

#include <errno.h>
#include <math.h>
#include <tern/pg.h>

#define MS 1000000LL

static int64_t elapsed_ms(int64_t t0)
{
    return (tern_now() - t0) / MS;
}

static tern_pg_conn *connect_tcp(void)
{
    tern_pg_conn *c;
    tern_pg_error err;
    int rc = tern_pg_conn_new(pg_fixture_start()->tcp, NULL, &c, &err, NULL);
    if (rc != 0)
        fprintf(stderr, "connect: %s: %s\n", tern_strerror(rc), err.message);
    CHECK_EQ(rc, 0);
    CHECK(tern_pg_conn_ok(c));
    return c;
}

static tern_ctx *timeout_ctx(int64_t ns)
{
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(tern_ctx_background(), ns, &ctx), 0);
    return ctx;
}

static int params_and_types_co(void *arg)
{
    (void)arg;
    tern_pg_conn *c = connect_tcp();
    const char *vals[] = {"42", "héllo", NULL, "t", "2.5"};
    tern_pg_params p = {.n = 5, .values = vals};
    tern_pg_result *r;
    CHECK_EQ(tern_pg_query(c, "SELECT $1::int8 + 1 AS n, $2::text AS s, $3::text AS z, $4::bool AS b,"
                              " $5::float8 * 2 AS d, '\\x00ff10'::bytea AS y, 'NaN'::float8 AS nan",
                           &p, &r, NULL), 0);
    CHECK_EQ(tern_pg_result_rows(r), 1);
    CHECK_EQ(tern_pg_result_cols(r), 7);
    CHECK(strcmp(tern_pg_result_col_name(r, 1), "s") == 0);
    CHECK_EQ(tern_pg_result_col_index(r, "d"), 4);
    CHECK_EQ(tern_pg_result_col_index(r, "nope"), -ENOENT);
    int64_t n = 0;
    CHECK_EQ(tern_pg_result_int64(r, 0, 0, &n), 0);
    CHECK_EQ(n, 43);
    CHECK(strcmp(tern_pg_result_text(r, 0, 1), "héllo") == 0);
    CHECK(tern_pg_result_is_null(r, 0, 2));
    CHECK(!tern_pg_result_is_null(r, 0, 1));
    CHECK_EQ(tern_pg_result_int64(r, 0, 2, &n), -ENODATA);
    CHECK_EQ(tern_pg_result_int64(r, 0, 1, &n), -EINVAL);
    CHECK_EQ(tern_pg_result_int64(r, 1, 0, &n), -ERANGE);
    bool b = false;
    CHECK_EQ(tern_pg_result_bool(r, 0, 3, &b), 0);
    CHECK(b);
    double d = 0;
    CHECK_EQ(tern_pg_result_double(r, 0, 4, &d), 0);
    CHECK(d == 5.0);
    CHECK_EQ(tern_pg_result_double(r, 0, 6, &d), 0);
    CHECK(isnan(d));
    const uint8_t *y;
    size_t ny;
    CHECK_EQ(tern_pg_result_bytea(r, 0, 5, &y, &ny), 0);
    CHECK_EQ(ny, 3);
    CHECK(y[0] == 0x00 && y[1] == 0xff && y[2] == 0x10);
    CHECK(strcmp(tern_pg_result_cmd_tag(r), "SELECT 1") == 0);
    tern_pg_result_free(r);

    /* A binary parameter: bytea with a NUL inside goes through intact. */
    const char raw[] = {'a', 0, 'b'};
    const char *bv[] = {raw};
    int len[] = {3}, fmt[] = {1};
    uint32_t types[] = {17};    /* bytea */
    tern_pg_params bp = {.n = 1, .values = bv, .lengths = len, .formats = fmt, .types = types};
    CHECK_EQ(tern_pg_query(c, "SELECT length($1), $1", &bp, &r, NULL), 0);
    CHECK_EQ(tern_pg_result_int64(r, 0, 0, &n), 0);
    CHECK_EQ(n, 3);
    CHECK(strcmp(tern_pg_result_text(r, 0, 1), "\\x610062") == 0);
    tern_pg_result_free(r);

    /* Commands: rows affected. */
    CHECK_EQ(tern_pg_exec(c, "CREATE TEMP TABLE t (id int PRIMARY KEY, v text)", NULL, NULL, NULL), 0);
    int64_t aff = -1;
    CHECK_EQ(tern_pg_exec(c, "INSERT INTO t VALUES (1,'a'),(2,'b'),(3,NULL)", NULL, &aff, NULL), 0);
    CHECK_EQ(aff, 3);
    const char *id[] = {"2"};
    tern_pg_params ip = {.n = 1, .values = id};
    CHECK_EQ(tern_pg_exec(c, "UPDATE t SET v = 'x' WHERE id >= $1", &ip, &aff, NULL), 0);
    CHECK_EQ(aff, 2);
    CHECK_EQ(tern_pg_query(c, "SELECT id, v FROM t ORDER BY id", NULL, &r, NULL), 0);
    CHECK_EQ(tern_pg_result_rows(r), 3);
    CHECK(strcmp(tern_pg_result_text(r, 2, 1), "x") == 0);
    tern_pg_result_free(r);
    tern_pg_conn_free(c);
    return 0;
}

static void params_and_typed_accessors(void)
{
    CHECK_EQ(tern_run(params_and_types_co, NULL), 0);
}

static int sqlstate_co(void *arg)
{
    (void)arg;
    tern_pg_conn *c = connect_tcp();
    tern_pg_result *r = (tern_pg_result *)1;
    CHECK_EQ(tern_pg_query(c, "SELEC 1", NULL, &r, NULL), -EREMOTEIO);
    CHECK(r == NULL);
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "42601") == 0);
    CHECK(strstr(tern_pg_conn_last_error(c)->message, "syntax error") != NULL);
    /* With parameters the error comes from the prepare. */
    const char *v[] = {"1"};
    tern_pg_params p = {.n = 1, .values = v};
    CHECK_EQ(tern_pg_query(c, "SELECT $1::int / 0", &p, &r, NULL), -EREMOTEIO);
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "22012") == 0);
    CHECK_EQ(tern_pg_query(c, "SELECT * FROM no_such_table WHERE id = $1", &p, &r, NULL), -EREMOTEIO);
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "42P01") == 0);
    /* The connection is fine after, and a success clears the error. */
    CHECK_EQ(tern_pg_ping(c, NULL), 0);
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "") == 0);
    tern_pg_conn_free(c);
    return 0;
}

static void bad_query_reports_sqlstate(void)
{
    CHECK_EQ(tern_run(sqlstate_co, NULL), 0);
}

static int ways_co(void *arg)
{
    (void)arg;
    const pg_fixture *f = pg_fixture_start();
    tern_pg_conn *c;
    tern_pg_error err;
    CHECK_EQ(tern_pg_conn_new(f->unix_sock, NULL, &c, &err, NULL), 0);
    CHECK_EQ(tern_pg_ping(c, NULL), 0);
    tern_pg_conn_free(c);
    /* A host name: resolved by tern; "localhost" may give ::1 first, where
     * nothing listens, and the next address is tried. */
    char byname[200];
    snprintf(byname, sizeof byname, "host=localhost port=%d user=postgres dbname=postgres", f->port);
    CHECK_EQ(tern_pg_conn_new(byname, NULL, &c, &err, NULL), 0);
    CHECK_EQ(tern_pg_ping(c, NULL), 0);
    tern_pg_conn_free(c);
    /* A URI. */
    snprintf(byname, sizeof byname, "postgresql://postgres@127.0.0.1:%d/postgres", f->port);
    CHECK_EQ(tern_pg_conn_new(byname, NULL, &c, &err, NULL), 0);
    tern_pg_conn_free(c);
    /* The server refuses an unknown database. */
    snprintf(byname, sizeof byname, "host=127.0.0.1 port=%d user=postgres dbname=nope", f->port);
    CHECK_EQ(tern_pg_conn_new(byname, NULL, &c, &err, NULL), -EREMOTEIO);
    CHECK(c == NULL);
    CHECK(strstr(err.message, "nope") != NULL);
    CHECK_EQ(tern_pg_conn_new("host=127.0.0.1 port=x= =", NULL, &c, &err, NULL), -EINVAL);
    return 0;
}

static void connects_by_unix_socket_host_name_and_uri(void)
{
    CHECK_EQ(tern_run(ways_co, NULL), 0);
}

static int refused_co(void *arg)
{
    (void)arg;
    char ci[120];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=postgres", pg_fx_free_port());
    tern_pg_conn *c;
    tern_pg_error err;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_pg_conn_new(ci, NULL, &c, &err, NULL), -ECONNREFUSED);
    CHECK(elapsed_ms(t0) < 1000);
    CHECK(strstr(err.message, "refused") != NULL);
    return 0;
}

static void connect_refused(void)
{
    CHECK_EQ(tern_run(refused_co, NULL), 0);
}

static int connect_timeout_co(void *arg)
{
    (void)arg;
    /* A listener that never accepts: the TCP handshake completes in the
     * backlog and the startup packet is never answered. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 8) == 0);
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    char ci[120];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=postgres sslmode=disable", ntohs(a.sin_port));
    tern_ctx *ctx = timeout_ctx(200 * MS);
    tern_pg_conn *c;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_pg_conn_new(ci, NULL, &c, NULL, ctx), -ETIMEDOUT);
    int64_t ms = elapsed_ms(t0);
    CHECK(ms >= 190 && ms < 1000);
    tern_ctx_free(ctx);
    /* Cancelled rather than timed out. */
    CHECK_EQ(tern_ctx_with_cancel(tern_ctx_background(), &ctx), 0);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_pg_conn_new(ci, NULL, &c, NULL, ctx), -ECANCELED);
    tern_ctx_free(ctx);
    close(s);
    return 0;
}

static void connect_bounded_by_ctx(void)
{
    CHECK_EQ(tern_run(connect_timeout_co, NULL), 0);
}

static int64_t server_prepared(tern_pg_conn *c)
{
    tern_pg_result *r;
    CHECK_EQ(tern_pg_query(c, "SELECT count(*) FROM pg_prepared_statements", NULL, &r, NULL), 0);
    int64_t n = -1;
    CHECK_EQ(tern_pg_result_int64(r, 0, 0, &n), 0);
    tern_pg_result_free(r);
    return n;
}

static int cache_co(void *arg)
{
    (void)arg;
    tern_pg_conn *c;
    tern_pg_conn_options o = {.stmt_cache = 2};
    CHECK_EQ(tern_pg_conn_new(pg_fixture_start()->tcp, &o, &c, NULL, NULL), 0);
    const char *sql[] = {"SELECT $1::int + 1", "SELECT $1::int + 2", "SELECT $1::int + 3"};
    const char *v[] = {"10"};
    tern_pg_params p = {.n = 1, .values = v};
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 3; i++) {
            tern_pg_result *r;
            CHECK_EQ(tern_pg_query(c, sql[i], &p, &r, NULL), 0);
            int64_t n;
            CHECK_EQ(tern_pg_result_int64(r, 0, 0, &n), 0);
            CHECK_EQ(n, 11 + i);
            tern_pg_result_free(r);
            CHECK(tern_pg_conn_cached_statements(c) <= 2);
        }
    CHECK_EQ(tern_pg_conn_cached_statements(c), 2);
    /* The evicted ones were deallocated on the server too. */
    CHECK_EQ(server_prepared(c), 2);
    /* Behind the cache's back: the next use prepares again. */
    CHECK_EQ(tern_pg_exec(c, "DEALLOCATE ALL", NULL, NULL, NULL), 0);
    tern_pg_result *r;
    CHECK_EQ(tern_pg_query(c, sql[2], &p, &r, NULL), 0);
    tern_pg_result_free(r);
    CHECK_EQ(server_prepared(c), 1);
    tern_pg_conn_free(c);

    /* Off: nothing is prepared. */
    o.no_stmt_cache = true;
    CHECK_EQ(tern_pg_conn_new(pg_fixture_start()->tcp, &o, &c, NULL, NULL), 0);
    CHECK_EQ(tern_pg_query(c, sql[0], &p, &r, NULL), 0);
    tern_pg_result_free(r);
    CHECK_EQ(tern_pg_conn_cached_statements(c), 0);
    CHECK_EQ(server_prepared(c), 0);
    /* Named statements. */
    CHECK_EQ(tern_pg_prepare(c, "add", "SELECT $1::int + $2::int", 0, NULL, NULL), 0);
    const char *two[] = {"20", "22"};
    tern_pg_params p2 = {.n = 2, .values = two};
    CHECK_EQ(tern_pg_query_prepared(c, "add", &p2, &r, NULL), 0);
    CHECK(strcmp(tern_pg_result_text(r, 0, 0), "42") == 0);
    tern_pg_result_free(r);
    CHECK_EQ(tern_pg_query_prepared(c, "nope", &p2, &r, NULL), -EREMOTEIO);
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "26000") == 0);
    tern_pg_conn_free(c);
    return 0;
}

static void prepared_statement_cache(void)
{
    CHECK_EQ(tern_run(cache_co, NULL), 0);
}

static int cancel_later(void *ctx)
{
    tern_sleep(100 * MS);
    tern_ctx_cancel(ctx);
    return 0;
}

static int cancel_co(void *arg)
{
    (void)arg;
    tern_pg_conn *c = connect_tcp();
    tern_ctx *ctx = timeout_ctx(200 * MS);
    int64_t t0 = tern_now();
    tern_pg_result *r;
    CHECK_EQ(tern_pg_query(c, "SELECT pg_sleep(10)", NULL, &r, ctx), -ETIMEDOUT);
    int64_t ms = elapsed_ms(t0);
    CHECK(ms >= 190 && ms < 2000);
    tern_ctx_free(ctx);
    /* The server ended the query because we asked it to. */
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "57014") == 0);
    CHECK(tern_pg_conn_ok(c));
    CHECK_EQ(tern_pg_query(c, "SELECT 7", NULL, &r, NULL), 0);
    CHECK(strcmp(tern_pg_result_text(r, 0, 0), "7") == 0);
    tern_pg_result_free(r);
    /* With parameters (a prepared statement), by cancellation. */
    CHECK_EQ(tern_ctx_with_cancel(tern_ctx_background(), &ctx), 0);
    const char *v[] = {"10"};
    tern_pg_params p = {.n = 1, .values = v};
    CHECK_EQ(tern_go(cancel_later, ctx), 0);
    t0 = tern_now();
    CHECK_EQ(tern_pg_query(c, "SELECT pg_sleep($1::float8)", &p, &r, ctx), -ECANCELED);
    CHECK(elapsed_ms(t0) < 2000);
    tern_ctx_free(ctx);
    CHECK(tern_pg_conn_ok(c));
    CHECK_EQ(tern_pg_ping(c, NULL), 0);
    tern_pg_conn_free(c);
    return 0;
}

static void cancel_by_deadline_leaves_conn_usable(void)
{
    CHECK_EQ(tern_run(cancel_co, NULL), 0);
}

typedef struct notify_arg {
    tern_pg_conn *listener;
    tern_pg_notification *got;
    int rc;
    tern_waitgroup wg;
} notify_arg;

static int notify_waiter(void *arg)
{
    notify_arg *a = arg;
    tern_ctx *ctx = timeout_ctx(3000 * MS);
    a->rc = tern_pg_notify_wait(a->listener, &a->got, ctx);
    tern_ctx_free(ctx);
    tern_waitgroup_done(&a->wg);
    return 0;
}

static int notify_co(void *arg)
{
    (void)arg;
    notify_arg a = {.listener = connect_tcp()};
    tern_pg_conn *sender = connect_tcp();
    CHECK_EQ(tern_pg_listen(a.listener, "Jobs", NULL), 0);
    /* Nothing yet: the wait ends with its ctx, and the connection is fine. */
    tern_ctx *ctx = timeout_ctx(50 * MS);
    tern_pg_notification *n;
    CHECK_EQ(tern_pg_notify_wait(a.listener, &n, ctx), -ETIMEDOUT);
    CHECK(n == NULL);
    tern_ctx_free(ctx);
    /* Parked when it arrives. */
    tern_waitgroup_add(&a.wg, 1);
    CHECK_EQ(tern_go(notify_waiter, &a), 0);
    tern_sleep(50 * MS);
    CHECK_EQ(tern_pg_notify(sender, "Jobs", "hello", NULL), 0);
    CHECK_EQ(tern_waitgroup_wait(&a.wg, NULL), 0);
    CHECK_EQ(a.rc, 0);
    CHECK(strcmp(a.got->channel, "Jobs") == 0);
    CHECK(strcmp(a.got->payload, "hello") == 0);
    CHECK(a.got->sender_pid > 0);
    tern_pg_notification_free(a.got);
    /* The channel name is case-sensitive (quoted): "jobs" is another. */
    CHECK_EQ(tern_pg_notify(sender, "jobs", "other", NULL), 0);
    CHECK_EQ(tern_pg_notify(sender, "Jobs", "second", NULL), 0);
    ctx = timeout_ctx(3000 * MS);
    CHECK_EQ(tern_pg_notify_wait(a.listener, &n, ctx), 0);
    CHECK(strcmp(n->payload, "second") == 0);
    tern_pg_notification_free(n);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_pg_unlisten(a.listener, NULL, NULL), 0);
    tern_pg_conn_free(sender);
    tern_pg_conn_free(a.listener);
    return 0;
}

static void listen_notify(void)
{
    CHECK_EQ(tern_run(notify_co, NULL), 0);
}

static int batch_co(void *arg)
{
    (void)arg;
    tern_pg_conn *c = connect_tcp();
    CHECK_EQ(tern_pg_exec(c, "CREATE TEMP TABLE b (id int PRIMARY KEY, v text)", NULL, NULL, NULL), 0);
    enum { N = 2000 };
    static char ids[N][12];
    static const char *vals[N][2];
    static tern_pg_batch_item items[N];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "%d", i);
        vals[i][0] = ids[i];
        vals[i][1] = "some payload text to make the batch larger than a socket buffer ..........";
        items[i] = (tern_pg_batch_item){"INSERT INTO b VALUES ($1::int, $2)", {.n = 2, .values = vals[i]}};
    }
    static int64_t affected[N];
    CHECK_EQ(tern_pg_batch(c, items, N, affected, NULL), 0);
    for (int i = 0; i < N; i++)
        CHECK_EQ(affected[i], 1);
    tern_pg_result *r;
    CHECK_EQ(tern_pg_query(c, "SELECT count(*) FROM b", NULL, &r, NULL), 0);
    CHECK(strcmp(tern_pg_result_text(r, 0, 0), "2000") == 0);
    tern_pg_result_free(r);
    /* All or nothing: a duplicate key in the middle rolls back the rest. */
    const char *dup[] = {"5000", "x"}, *again[] = {"7", "x"}, *after[] = {"5001", "x"};
    tern_pg_batch_item bad[] = {
        {"INSERT INTO b VALUES ($1::int, $2)", {.n = 2, .values = dup}},
        {"INSERT INTO b VALUES ($1::int, $2)", {.n = 2, .values = again}},
        {"INSERT INTO b VALUES ($1::int, $2)", {.n = 2, .values = after}},
    };
    CHECK_EQ(tern_pg_batch(c, bad, 3, NULL, NULL), -EREMOTEIO);
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "23505") == 0);
    CHECK_EQ(tern_pg_query(c, "SELECT count(*) FROM b WHERE id >= 5000", NULL, &r, NULL), 0);
    CHECK(strcmp(tern_pg_result_text(r, 0, 0), "0") == 0);
    tern_pg_result_free(r);
    /* Cancelled by its deadline; the connection is usable after. */
    tern_pg_batch_item slow[] = {{"SELECT 1", {0}}, {"SELECT pg_sleep(10)", {0}}, {"SELECT 2", {0}}};
    tern_ctx *ctx = timeout_ctx(150 * MS);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_pg_batch(c, slow, 3, NULL, ctx), -ETIMEDOUT);
    CHECK(elapsed_ms(t0) < 2000);
    tern_ctx_free(ctx);
    CHECK(tern_pg_conn_ok(c));
    CHECK_EQ(tern_pg_ping(c, NULL), 0);
    tern_pg_conn_free(c);
    return 0;
}

static void batch_in_one_round_trip(void)
{
    CHECK_EQ(tern_run(batch_co, NULL), 0);
}

typedef struct chunks {
    const char *const *parts;
    int i, fail_at;
} chunks;

static int next_chunk(const void **data, size_t *len, void *arg)
{
    chunks *k = arg;
    if (k->fail_at && k->i == k->fail_at)
        return -EINTR;
    const char *p = k->parts[k->i];
    if (!p)
        return 0;
    k->i++;
    *data = p;
    *len = strlen(p);
    return 1;
}

typedef struct sink {
    long rows, bytes, stop_after;
} sink;

static int take_row(const char *row, size_t len, void *arg)
{
    sink *k = arg;
    CHECK(len > 0 && row[len - 1] == '\n');
    k->rows++;
    k->bytes += (long)len;
    return k->stop_after && k->rows >= k->stop_after ? -ECANCELED : 0;
}

static int copy_co(void *arg)
{
    (void)arg;
    tern_pg_conn *c = connect_tcp();
    CHECK_EQ(tern_pg_exec(c, "CREATE TEMP TABLE cp (id int, v text)", NULL, NULL, NULL), 0);
    /* Pieces split anywhere, even inside a row. */
    const char *parts[] = {"1\ta\n2\t", "b\n3\t\\N\n", "4\td\n", NULL};
    chunks k = {parts, 0, 0};
    int64_t rows = -1;
    CHECK_EQ(tern_pg_copy_in(c, "COPY cp FROM STDIN", next_chunk, &k, &rows, NULL), 0);
    CHECK_EQ(rows, 4);
    tern_pg_result *r;
    CHECK_EQ(tern_pg_query(c, "SELECT count(*), count(v) FROM cp", NULL, &r, NULL), 0);
    CHECK(strcmp(tern_pg_result_text(r, 0, 0), "4") == 0);
    CHECK(strcmp(tern_pg_result_text(r, 0, 1), "3") == 0);
    tern_pg_result_free(r);
    /* Bad data: the server's error, nothing copied, the connection fine. */
    const char *bad[] = {"5\te\nnot a number\tf\n", NULL};
    k = (chunks){bad, 0, 0};
    CHECK_EQ(tern_pg_copy_in(c, "COPY cp FROM STDIN", next_chunk, &k, NULL, NULL), -EREMOTEIO);
    CHECK(strcmp(tern_pg_conn_last_error(c)->sqlstate, "22P02") == 0);
    /* The source gives up: aborted, nothing copied. */
    k = (chunks){parts, 0, 2};
    CHECK_EQ(tern_pg_copy_in(c, "COPY cp FROM STDIN", next_chunk, &k, NULL, NULL), -EINTR);
    CHECK(tern_pg_conn_ok(c));
    CHECK_EQ(tern_pg_query(c, "SELECT count(*) FROM cp", NULL, &r, NULL), 0);
    CHECK(strcmp(tern_pg_result_text(r, 0, 0), "4") == 0);
    tern_pg_result_free(r);
    /* Out. */
    sink s = {0};
    CHECK_EQ(tern_pg_copy_out(c, "COPY (SELECT g FROM generate_series(1, 20000) g) TO STDOUT", take_row, &s,
                              &rows, NULL), 0);
    CHECK_EQ(rows, 20000);
    CHECK_EQ(s.rows, 20000);
    CHECK_EQ(s.bytes, 9 * 2 + 90 * 3 + 900 * 4 + 9000 * 5 + 10001 * 6);
    /* The sink stops early: the COPY is cancelled, the connection fine. */
    s = (sink){.stop_after = 10};
    int64_t t0 = tern_now();
    CHECK_EQ(tern_pg_copy_out(c, "COPY (SELECT g FROM generate_series(1, 2000000) g) TO STDOUT", take_row,
                              &s, NULL, NULL), -ECANCELED);
    CHECK(elapsed_ms(t0) < 3000);
    CHECK_EQ(s.rows, 10);               /* not called once it said stop */
    CHECK(tern_pg_conn_ok(c));
    CHECK_EQ(tern_pg_ping(c, NULL), 0);
    /* The wrong direction, or no COPY at all. */
    CHECK_EQ(tern_pg_copy_out(c, "SELECT 1", take_row, &s, NULL, NULL), -EINVAL);
    CHECK(tern_pg_conn_ok(c));
    tern_pg_conn_free(c);
    return 0;
}

static void copy_in_and_out(void)
{
    CHECK_EQ(tern_run(copy_co, NULL), 0);
}

/* A query's first read wait parks without looking at the socket (its reply
 * raises an edge no wait has taken); later waits of the same query must
 * look, since a read may leave data behind.  Small replies, replies of
 * megabytes (many reads each) and replies already in the socket before the
 * wait (the server is quick) in turn, each bounded by a ctx so that a
 * missed wake fails rather than hangs. */
static int small_and_large_replies_co(void *arg)
{
    (void)arg;
    tern_pg_conn *c = connect_tcp();
    for (int i = 0; i < 40; i++) {
        tern_ctx *ctx = timeout_ctx(10000 * MS);
        char n[16];
        snprintf(n, sizeof n, "%d", i);
        const char *vals[] = {n};
        tern_pg_params p = {.n = 1, .values = vals};
        tern_pg_result *r;
        CHECK_EQ(tern_pg_query(c, "SELECT $1::int + 1", &p, &r, ctx), 0);
        int64_t v = 0;
        CHECK_EQ(tern_pg_result_int64(r, 0, 0, &v), 0);
        CHECK_EQ(v, i + 1);
        tern_pg_result_free(r);
        if (i % 4 == 0) {
            CHECK_EQ(tern_pg_query(c, "SELECT repeat('x', 1000000 + $1::int) FROM generate_series(1, 3)", &p,
                                   &r, ctx), 0);
            CHECK_EQ(tern_pg_result_rows(r), 3);
            CHECK_EQ((int64_t)strlen(tern_pg_result_text(r, 2, 0)), 1000000 + i);
            tern_pg_result_free(r);
        }
        tern_ctx_free(ctx);
    }
    tern_pg_conn_free(c);
    return 0;
}

static void small_and_large_replies(void)
{
    CHECK_EQ(tern_run(small_and_large_replies_co, NULL), 0);
}

TESTS({"params_and_typed_accessors", params_and_typed_accessors},
      {"bad_query_reports_sqlstate", bad_query_reports_sqlstate},
      {"connects_by_unix_socket_host_name_and_uri", connects_by_unix_socket_host_name_and_uri},
      {"connect_refused", connect_refused},
      {"connect_bounded_by_ctx", connect_bounded_by_ctx},
      {"prepared_statement_cache", prepared_statement_cache},
      {"cancel_by_deadline_leaves_conn_usable", cancel_by_deadline_leaves_conn_usable},
      {"listen_notify", listen_notify},
      {"batch_in_one_round_trip", batch_in_one_round_trip},
      {"copy_in_and_out", copy_in_and_out},
      {"small_and_large_replies", small_and_large_replies})
