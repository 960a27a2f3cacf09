/*
 * report.c - how the runtime speaks: tern__report for what a program
 * should hear about (a deadlock, an ignored setting), tern__fatal for a
 * misuse or a broken invariant it cannot continue from.  Both go through
 * the hook a program sets with tern_runtime_set_report_hook (a logger),
 * or to stderr.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static tern_runtime_report_fn *_Atomic report_fn;
static void *_Atomic report_arg;

void tern_runtime_set_report_hook(tern_runtime_report_fn *fn, void *arg)
{
    atomic_store(&report_arg, arg);
    atomic_store(&report_fn, fn);
}

static void vreport(const char *fmt, va_list ap)
{
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    tern_runtime_report_fn *fn = atomic_load(&report_fn);
    if (fn)
        fn(buf, atomic_load(&report_arg));
    else
        fprintf(stderr, "tern: %s\n", buf);
}

void tern__report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

void tern__fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    abort();
}
