/*
 * bench_common.h - small helpers shared by the C benchmark programs in
 * bench/.  Benchmarks use only tern's public API.  Each program prints its
 * one measured figure on stdout and everything else on stderr.
 */
#ifndef TERN_BENCH_COMMON_H
#define TERN_BENCH_COMMON_H

#if defined(__has_include)
#if __has_include(<tern/tern.h>)
#include <tern/tern.h>
#else
#include <tern/runtime.h>
#endif
#else
#include <tern/tern.h>
#endif

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse argv[i] as a positive integer, or return def when absent. */
static inline long bench_arg(int argc, char **argv, int i, long def)
{
    if (argc <= i)
        return def;
    char *end = NULL;
    errno = 0;
    long v = strtol(argv[i], &end, 10);
    if (errno || end == argv[i] || *end || v <= 0) {
        fprintf(stderr, "bad number '%s'\n", argv[i]);
        exit(2);
    }
    return v;
}

/* A "Key:   123 kB" figure from /proc/self/status, in kB; -1 if missing. */
static inline long bench_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    size_t klen = strlen(key);
    long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static inline void bench_fail(const char *what, int err)
{
    fprintf(stderr, "%s failed: %d (%s)\n", what, err, strerror(err < 0 ? -err : err));
    exit(1);
}

static inline int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The runtime's monitor reports a coroutine that holds a worker for more
 * than 10 ms (a spawning loop does).  A benchmark counts those reports
 * instead of printing each: call bench_count_reports() first thing in the
 * entry coroutine and bench_report_summary() before it returns. */
static atomic_long bench_reports;
static char bench_first_report[200];

static inline void bench_report_hook(const char *msg, void *ctx)
{
    (void)ctx;
    if (atomic_fetch_add(&bench_reports, 1) == 0)
        snprintf(bench_first_report, sizeof bench_first_report, "%s", msg);
}

static inline void bench_count_reports(void)
{
    tern_runtime_set_report_hook(bench_report_hook, NULL);
}

static inline void bench_report_summary(const char *who)
{
    tern_runtime_set_report_hook(NULL, NULL);
    long n = atomic_load(&bench_reports);
    if (n) {
        size_t len = strlen(bench_first_report);
        while (len && bench_first_report[len - 1] == '\n')
            bench_first_report[--len] = 0;
        fprintf(stderr, "%s: %ld runtime report(s), the first: %s\n", who, n,
                bench_first_report);
    }
}

#endif
