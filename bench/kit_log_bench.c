/*
 * kit_log_bench - the cost of one structured log line to the buffer.
 *
 *   kit_log_bench [n=500000]
 *
 * One coroutine (procs=1) logs n lines of five typed fields (two strings,
 * two integers, one double: an access-log line) with tern_log_info; the
 * writer thread drains to /dev/null meanwhile.  Prints ns per line in CPU
 * time of the logging worker (filter, format, copy into the ring), as the
 * kit suite's other figures do; the wall figure, stretched by whatever
 * else runs on the shared cores, goes to stderr.  A warm-up of n/10
 * lines comes first.  Lines dropped (ring full) are reported on stderr: a
 * dropped line costs less, so a run with drops says so.  Metric log_line_ns,
 * goal 200 ns (kit suite).
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <tern/log.h>

static long g_n;

/* CPU time of the calling thread: on a shared machine, the part of the
 * wall time this thread really ran (the coroutine never parks in the loop,
 * so its worker thread's time is its own). */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void log_lines(long n)
{
    for (long i = 0; i < n; i++)
        tern_log_info("request done", TERN_LOG_STR("method", "GET"),
                      TERN_LOG_STR("path", "/api/v1/users/42"), TERN_LOG_INT("status", 200),
                      TERN_LOG_INT("bytes", 1234 + (i & 1023)),
                      TERN_LOG_DOUBLE("ms", 0.25 * (double)(i & 63)));
}

static int entry(void *arg)
{
    (void)arg;
    bench_count_reports();
    log_lines(g_n / 10);
    int r = tern_log_flush(NULL);
    if (r < 0)
        bench_fail("tern_log_flush", r);
    struct tern_log_stats before;
    tern_log_stats(&before);
    int64_t c0 = thread_cpu_ns(), t0 = tern_now();
    log_lines(g_n);
    int64_t t1 = tern_now(), c1 = thread_cpu_ns();
    struct tern_log_stats after;
    tern_log_stats(&after);
    r = tern_log_flush(NULL);
    if (r < 0)
        bench_fail("tern_log_flush", r);
    uint64_t dropped = after.dropped - before.dropped;
    fprintf(stderr, "tern log: %ld lines of 5 fields, %.1f ms wall (%.1f ns/line), %llu dropped%s\n",
            g_n, (double)(t1 - t0) / 1e6, (double)(t1 - t0) / (double)g_n,
            (unsigned long long)dropped,
            dropped ? " (figure too low: raise the ring or lower n)" : "");
    printf("%.1f\n", (double)(c1 - c0) / (double)g_n);
    fflush(stdout);
    bench_report_summary("tern log");
    return 0;
}

int main(int argc, char **argv)
{
    g_n = bench_arg(argc, argv, 1, 500000);
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        bench_fail("open /dev/null", -errno);
    tern_log_options lo = {.fd = fd, .ring_bytes = (size_t)4 << 20, .level = TERN_LOG_INFO};
    int r = tern_log_init(&lo);
    if (r < 0)
        bench_fail("tern_log_init", r);
    tern_run_options o = {.procs = 1};
    r = tern_run_opts(entry, NULL, &o);
    tern_log_shutdown();
    close(fd);
    return r == 0 ? 0 : 1;
}
