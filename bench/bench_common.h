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

#endif
