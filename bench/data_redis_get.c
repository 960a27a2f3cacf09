/*
 * data_redis_get.c - GET throughput of the Redis client: N coroutines
 * (256) each GET one of 1000 keys (named as redis-benchmark -r names them) in a loop for a bounded time through one
 * client (automatic pipelining over its pool), against a server already
 * running (bench/data_redis.sh starts one).  Prints on stdout
 *   redis_get_ops_per_s <ops/s>
 *   redis_client_cpu_ns_per_op <client process CPU ns per GET>
 * and the mean pipeline batch on stderr.
 *
 *   data_redis_get <addr> [coroutines=256] [seconds=5] [pool=2] [procs=0]
 */
#include "bench_common.h"

#include <sys/resource.h>
#include <tern/redis.h>

typedef struct bench {
    tern_redis_client *cl;
    tern_waitgroup wg;
    _Atomic bool stop;
    _Atomic uint64_t ops, errors;
    const char *addr;
    long n, seconds, pool;
} bench;

enum { KEYS = 1000 };

static int getter(void *arg)
{
    bench *b = arg;
    char buf[64], key[24];
    uint64_t ops = 0, errs = 0;
    for (unsigned i = (unsigned)tern_id(); !b->stop; i += 7) {
        snprintf(key, sizeof key, "key:%012u", i % KEYS);
        size_t len;
        if (tern_redis_get_buf(b->cl, key, buf, sizeof buf, &len, NULL) == 0)
            ops++;
        else
            errs++;
    }
    b->ops += ops;
    b->errors += errs;
    tern_waitgroup_done(&b->wg);
    return 0;
}

static double cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
}

static int bench_main(void *arg)
{
    bench *b = arg;
    tern_redis_client_options o = {.addr = b->addr, .pool_size = (int)b->pool};
    int err = tern_redis_client_new(&o, &b->cl);
    if (err) {
        fprintf(stderr, "client: %s\n", tern_strerror(err));
        return 1;
    }
    for (int i = 0; i < KEYS; i++) {
        char key[24];
        snprintf(key, sizeof key, "key:%012d", i);
        err = tern_redis_set(b->cl, key, "0123456789abcdef0123456789abcdef", 32, 0, NULL);
        if (err) {
            fprintf(stderr, "SET: %s\n", tern_strerror(err));
            return 1;
        }
    }
    struct tern_redis_stats s0, s1;
    tern_redis_stats(b->cl, &s0);
    double c0 = cpu_ns();
    int64_t t0 = tern_now();
    tern_waitgroup_add(&b->wg, b->n);
    for (long i = 0; i < b->n; i++)
        tern_go(getter, b);
    tern_sleep(b->seconds * TERN_SEC);
    b->stop = true;
    tern_waitgroup_wait(&b->wg, NULL);
    double secs = (double)(tern_now() - t0) / 1e9;
    double cpu = cpu_ns() - c0;
    tern_redis_stats(b->cl, &s1);
    printf("redis_get_ops_per_s %.0f\n", (double)b->ops / secs);
    printf("redis_client_cpu_ns_per_op %.0f\n", cpu / (double)(b->ops ? b->ops : 1));
    fprintf(stderr, "%llu GETs in %.2f s, %llu errors, mean batch %.1f commands\n",
            (unsigned long long)b->ops, secs, (unsigned long long)b->errors,
            (double)(s1.batched - s0.batched) / (double)(s1.batches - s0.batches + 1));
    tern_redis_client_free(b->cl);
    return b->errors ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <addr> [coroutines] [seconds] [pool] [procs]\n", argv[0]);
        return 2;
    }
    bench b = {.addr = argv[1], .n = bench_arg(argc, argv, 2, 256),
               .seconds = bench_arg(argc, argv, 3, 5), .pool = bench_arg(argc, argv, 4, 2)};
    tern_run_options o = {.procs = (int)(argc > 5 ? bench_arg(argc, argv, 5, 1) : 0)};
    return tern_run_opts(bench_main, &b, &o);
}
