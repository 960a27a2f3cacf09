/*
 * data_pg_bench.c - the PostgreSQL client's throughput (issue 18's
 * pg_select_pk_qps and pg_client_cpu_ns_per_query): C coroutines run
 * `SELECT v FROM bench_kv WHERE id = $1` (a prepared statement, keys
 * spread over 10,000 rows) through a pool for a fixed time.
 *
 *   data_pg_bench CONNINFO [seconds=5] [coroutines=64] [pool=16]
 *
 * The server is the caller's (bench/compare.sh data will start one).
 * Prints "pg_select_pk_qps N" and "pg_client_cpu_ns_per_query N" on stdout
 * (client process CPU, user + system, over the queries), then
 * "pg_pipeline_rows_per_s N": 16 coroutines inserting batches of 500 rows
 * (tern_pg_batch) for the same time; details on stderr.
 */
#include "bench_common.h"

#include <sys/resource.h>
#include <tern/pg.h>

#define ROWS 10000

typedef struct bench {
    tern_pg_pool *pool;
    int64_t until;
    atomic_long queries, errors;
    tern_waitgroup wg;
} bench;

static int worker(void *arg)
{
    bench *b = arg;
    uint32_t x = (uint32_t)(uintptr_t)&x ^ (uint32_t)tern_now();
    while (tern_now() < b->until) {
        for (int i = 0; i < 16; i++) {
            x = x * 1664525u + 1013904223u;
            char id[16];
            snprintf(id, sizeof id, "%u", x % ROWS + 1);
            const char *vals[] = {id};
            tern_pg_params p = {.n = 1, .values = vals};
            tern_pg_result *r;
            int rc = tern_pg_pool_query(b->pool, "SELECT v FROM bench_kv WHERE id = $1::int", &p, &r, NULL,
                                        NULL);
            if (rc == 0 && tern_pg_result_rows(r) == 1)
                atomic_fetch_add_explicit(&b->queries, 1, memory_order_relaxed);
            else
                atomic_fetch_add(&b->errors, 1);
            tern_pg_result_free(r);
        }
    }
    tern_waitgroup_done(&b->wg);
    return 0;
}

#define BATCH 500

typedef struct batcher {
    tern_pg_pool *pool;
    int64_t until;
    atomic_long rows, errors;
    atomic_int next_id;
    tern_waitgroup wg;
} batcher;

static int batch_worker(void *arg)
{
    batcher *b = arg;
    char (*ids)[12] = malloc(BATCH * sizeof *ids);
    const char *(*vals)[2] = malloc(BATCH * sizeof *vals);
    tern_pg_batch_item *items = malloc(BATCH * sizeof *items);
    while (tern_now() < b->until) {
        int base = atomic_fetch_add(&b->next_id, BATCH);
        for (int i = 0; i < BATCH; i++) {
            snprintf(ids[i], sizeof ids[i], "%d", base + i);
            vals[i][0] = ids[i];
            vals[i][1] = "0123456789abcdef0123456789abcdef";
            items[i] = (tern_pg_batch_item){"INSERT INTO bench_rows VALUES ($1::int, $2)", {.n = 2, .values = vals[i]}};
        }
        tern_pg_conn *c;
        if (tern_pg_pool_acquire(b->pool, &c, NULL) != 0) {
            atomic_fetch_add(&b->errors, 1);
            continue;
        }
        if (tern_pg_batch(c, items, BATCH, NULL, NULL) == 0)
            atomic_fetch_add(&b->rows, BATCH);
        else
            atomic_fetch_add(&b->errors, 1);
        tern_pg_pool_release(b->pool, c);
    }
    free(ids);
    free(vals);
    free(items);
    tern_waitgroup_done(&b->wg);
    return 0;
}

static long run_batches(tern_pg_pool *pool, long seconds)
{
    tern_pg_result *r;
    if (tern_pg_pool_query(pool, "DROP TABLE IF EXISTS bench_rows; CREATE UNLOGGED TABLE bench_rows (id int, v text)",
                           NULL, &r, NULL, NULL) != 0)
        return 1;
    tern_pg_result_free(r);
    batcher *b = calloc(1, sizeof *b);
    b->pool = pool;
    int64_t t0 = tern_now();
    b->until = t0 + seconds * 1000000000LL;
    tern_waitgroup_add(&b->wg, 16);
    for (int i = 0; i < 16; i++)
        tern_go(batch_worker, b);
    tern_waitgroup_wait(&b->wg, NULL);
    double secs = (double)(tern_now() - t0) / 1e9;
    long rows = atomic_load(&b->rows), errors = atomic_load(&b->errors);
    fprintf(stderr, "tern pg batch: %ld rows in %.2f s (batches of %d, 16 coroutines), %ld errors\n", rows, secs,
            BATCH, errors);
    printf("pg_pipeline_rows_per_s %.0f\n", rows / secs);
    free(b);
    return errors;
}

typedef struct args {
    const char *conninfo;
    long seconds, cos, pool;
} args;

static double cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

static int run(void *arg)
{
    args *a = arg;
    bench *b = calloc(1, sizeof *b);
    tern_pg_pool_options o = {.max_conns = (int)a->pool};
    if (tern_pg_pool_new(a->conninfo, &o, &b->pool) != 0)
        return 1;
    tern_pg_result *r;
    tern_pg_error err;
    int rc = tern_pg_pool_query(b->pool,
                                "DROP TABLE IF EXISTS bench_kv;"
                                "CREATE TABLE bench_kv (id int PRIMARY KEY, v text NOT NULL);"
                                "INSERT INTO bench_kv SELECT i, md5(i::text) FROM generate_series(1, 10000) i;"
                                "ANALYZE bench_kv",
                                NULL, &r, &err, NULL);
    if (rc != 0) {
        fprintf(stderr, "data_pg_bench: setup: %s: %s\n", tern_strerror(rc), err.message);
        return 1;
    }
    tern_pg_result_free(r);
    /* Warm the pool: every connection open and its statement prepared. */
    b->until = tern_now() + 500 * 1000000LL;
    tern_waitgroup_add(&b->wg, a->cos);
    for (long i = 0; i < a->cos; i++)
        tern_go(worker, b);
    tern_waitgroup_wait(&b->wg, NULL);
    atomic_store(&b->queries, 0);

    double c0 = cpu_ns();
    int64_t t0 = tern_now();
    b->until = t0 + a->seconds * 1000000000LL;
    tern_waitgroup_add(&b->wg, a->cos);
    for (long i = 0; i < a->cos; i++)
        tern_go(worker, b);
    tern_waitgroup_wait(&b->wg, NULL);
    double secs = (double)(tern_now() - t0) / 1e9;
    double cpu = cpu_ns() - c0;
    long q = atomic_load(&b->queries);
    fprintf(stderr, "tern pg: %ld queries in %.2f s, %ld errors, %ld coroutines, pool %ld, %d procs\n", q, secs,
            atomic_load(&b->errors), a->cos, a->pool, tern_runtime_procs());
    printf("pg_select_pk_qps %.0f\n", q / secs);
    printf("pg_client_cpu_ns_per_query %.0f\n", q ? cpu / q : 0);
    long errors = atomic_load(&b->errors);
    errors += run_batches(b->pool, a->seconds);
    tern_pg_pool_free(b->pool);
    free(b);
    return errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: data_pg_bench CONNINFO [seconds] [coroutines] [pool]\n");
        return 2;
    }
    args a = {argv[1], bench_arg(argc, argv, 2, 5), bench_arg(argc, argv, 3, 64), bench_arg(argc, argv, 4, 16)};
    return tern_run(run, &a);
}
