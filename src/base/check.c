/*
 * check.c - the failure paths of TERN_ASSERT and TERN_CHECK_ARG.  They
 * write with one write(2) to stderr (no stdio: the failure may come from
 * inside a signal handler, a coroutine on a small stack or the logger)
 * and abort, so a core dump or the sanitizer's report shows the frame.
 */
#include "base/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void say(const char *msg, int len)
{
    if (len < 0)
        return;
    if ((size_t)len >= 512)
        len = 511;
    ssize_t r = write(STDERR_FILENO, msg, (size_t)len);
    (void)r;
}

void tern__assert_fail(const char *cond, const char *file, int line, const char *func)
{
    char msg[512];
    say(msg, snprintf(msg, sizeof msg, "tern: assertion failed: %s (%s:%d, in %s)\n", cond,
                      file, line, func));
    abort();
}

void tern__null_arg(const char *func, const char *arg)
{
    char msg[512];
    say(msg, snprintf(msg, sizeof msg, "tern: %s: %s is NULL (a programmer error)\n", func,
                      arg));
    abort();
}
