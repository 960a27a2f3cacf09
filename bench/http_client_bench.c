/*
 * http_client_bench.c - the HTTP client's throughput and CPU per request:
 * C coroutines each GET url in a loop until N requests are done, over
 * HTTP/1.1 keep-alive (one connection per coroutine at most) or over
 * HTTP/2 with prior knowledge (one connection, C streams).
 *
 *   http_client_bench h1|h2 URL [C=64] [N=200000] [PROCS=1]
 *
 * Prints "<proto> c=C n=N: <req/s> req/s, <ns> ns CPU/request (user+sys
 * of this process), <dials> connections" on stdout.  Run it against any
 * server that speaks both on one port, e.g. h2o 2.2 (h2c by prior
 * knowledge on a cleartext listener); see the h2client note for the
 * command used.
 */
#include <sys/resource.h>

#include "bench_common.h"
#include <tern/http_client.h>

typedef struct run {
    tern_http_client *c;
    const char *url;
    long n;
    atomic_long next, failed;
    tern_waitgroup wg;
} run;

static int worker(void *arg)
{
    run *r = arg;
    char buf[16384];
    while (atomic_fetch_add(&r->next, 1) < r->n) {
        tern_http_client_response *resp;
        int rc = tern_http_client_get(r->c, r->url, &resp, NULL);
        if (rc == 0) {
            ssize_t k;
            while ((k = tern_http_client_response_read(resp, buf, sizeof buf)) > 0)
                ;
            if (k < 0 || tern_http_client_response_status(resp) != 200)
                rc = -1;
            tern_http_client_response_free(resp);
        }
        if (rc != 0)
            atomic_fetch_add(&r->failed, 1);
    }
    tern_waitgroup_done(&r->wg);
    return 0;
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           (int64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static const char *proto;
static const char *target;
static long conc, total;

static int bench_main(void *arg)
{
    (void)arg;
    tern_http_client_options o = {.h2c_prior_knowledge = strcmp(proto, "h2") == 0,
                                  .max_idle_per_host = (int)conc};
    run r = {.url = target, .n = total};
    if (tern_http_client_new(&o, &r.c) != 0)
        return 1;
    int64_t t0 = tern_now(), c0 = cpu_ns();
    for (long i = 0; i < conc; i++) {
        tern_waitgroup_add(&r.wg, 1);
        if (tern_go(worker, &r) != 0)
            return 1;
    }
    tern_waitgroup_wait(&r.wg, NULL);
    int64_t dt = tern_now() - t0, dc = cpu_ns() - c0;
    struct tern_http_client_stats st;
    tern_http_client_stats(r.c, &st);
    printf("%s c=%ld n=%ld: %.0f req/s, %.0f ns CPU/request, %llu connections, %ld failed\n",
           proto, conc, total, (double)total * 1e9 / (double)dt, (double)dc / (double)total,
           (unsigned long long)st.dials, atomic_load(&r.failed));
    tern_http_client_free(r.c);
    return atomic_load(&r.failed) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "h1") != 0 && strcmp(argv[1], "h2") != 0)) {
        fprintf(stderr, "usage: %s h1|h2 URL [C] [N] [PROCS]\n", argv[0]);
        return 2;
    }
    proto = argv[1];
    target = argv[2];
    conc = bench_arg(argc, argv, 3, 64);
    total = bench_arg(argc, argv, 4, 200000);
    tern_run_options o = {.procs = (int)bench_arg(argc, argv, 5, 1)};
    return tern_run_opts(bench_main, NULL, &o);
}
