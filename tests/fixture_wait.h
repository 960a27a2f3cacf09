/*
 * fixture_wait.h - pauses and child reaping for the server fixtures
 * (redis_server.h, nats_server.h), which run both before tern_run and
 * inside a test's coroutine.  Inside one, a plain nanosleep or a blocking
 * waitpid holds the worker, which the runtime's monitor rightly reports as
 * a blocking call: there they park instead.
 */
#ifndef TERN_TEST_FIXTURE_WAIT_H
#define TERN_TEST_FIXTURE_WAIT_H

#include <errno.h>
#include <sys/wait.h>
#include <time.h>

#include <tern/runtime.h>

static inline void fixture_pause_ms(int ms)
{
    if (tern_id() != 0)
        tern_sleep((int64_t)ms * TERN_MS);
    else
        nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
}

/* Reap pid (one the caller has just killed). */
static inline void fixture_reap(pid_t pid)
{
    for (;;) {
        pid_t r = waitpid(pid, NULL, tern_id() != 0 ? WNOHANG : 0);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        if (r == 0)
            tern_sleep(TERN_MS);
    }
}

#endif
