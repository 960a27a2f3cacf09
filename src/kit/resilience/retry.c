/*
 * retry.c - exponential backoff with full jitter, the default "is this
 * worth retrying" predicate, and the retry loop that ties them to a
 * budget and a context deadline.
 *
 * The loop's rule for deadlines: a retry is only worth making if there is
 * time left to make it, so a backoff that would end at or after the
 * deadline is not slept at all; the call returns the last failure at
 * once, leaving the caller the remaining time instead of a sure timeout.
 */
#include "kit/resilience/internal.h"

#include <errno.h>

#include "base/check.h"
#include "tern/chan.h"

int64_t tern_backoff_ceiling(int64_t base, int64_t cap, int attempt)
{
    if (base <= 0 || cap <= 0)
        return 0;
    if (attempt < 0)
        attempt = 0;
    int64_t c = base;
    for (int i = 0; i < attempt && c < cap; i++)
        c = c > INT64_MAX / 2 ? INT64_MAX : c * 2;
    return c < cap ? c : cap;
}

int64_t tern_backoff_delay(int64_t base, int64_t cap, int attempt)
{
    int64_t ceil = tern_backoff_ceiling(base, cap, attempt);
    /* modulo bias is below 2^-40 for any ceiling under an hour */
    return (int64_t)(tern__rand64() % ((uint64_t)ceil + 1));
}

bool tern_retry_default_retryable(int rc, void *arg)
{
    (void)arg;
    switch (rc) {
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EPIPE:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EAGAIN:
    case 502:
    case 503:
    case 504:
        return true;
    default:
        return false;
    }
}

int tern__resil_sleep_until(int64_t deadline, tern_ctx *ctx, void *unused)
{
    (void)unused;
    if (!ctx)
        return tern_sleep_until(deadline);
    int64_t now = tern_now();
    return tern_ctx_sleep(deadline > now ? deadline - now : 0, ctx);
}

/* Count into the caller's stats, if any. */
#define BUMP(st, field)                                                \
    do {                                                               \
        if (st)                                                        \
            __atomic_fetch_add(&(st)->field, 1, __ATOMIC_RELAXED);     \
    } while (0)

int tern_retry_do(const tern_retry_options *o, tern_retry_op_fn *op, void *arg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(op);
    static const tern_retry_options defaults = {0};
    if (!o)
        o = &defaults;
    int max = o->max_attempts > 0 ? o->max_attempts : 3;
    int64_t base = o->base > 0 ? o->base : 10 * TERN_MS;
    int64_t cap = o->cap > 0 ? o->cap : TERN_SEC;
    tern_retry_pred_fn *pred = o->retryable ? o->retryable : tern_retry_default_retryable;
    int (*sleep_until)(int64_t, tern_ctx *, void *) =
        o->sleep_until ? o->sleep_until : tern__resil_sleep_until;
    tern_retry_stats *st = o->stats;

    BUMP(st, calls);
    if (o->budget)
        tern_retry_budget_deposit(o->budget);
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        if (ctx && (rc = tern_ctx_err(ctx)) < 0)
            return rc;
        rc = op(attempt, arg);
        if (rc == 0 || !pred(rc, o->retryable_arg))
            return rc;
        if (attempt + 1 >= max) {
            BUMP(st, gave_up);
            return rc;
        }
        int64_t wake = tern__resil_now(o->now, o->clock_arg) +
                       tern_backoff_delay(base, cap, attempt);
        int64_t deadline;
        tern_ctx_deadline(ctx, &deadline);
        if (deadline != TERN_FOREVER && wake >= deadline) {
            BUMP(st, deadline_stops);
            return rc;
        }
        if (o->budget && tern_retry_budget_try_withdraw(o->budget) < 0) {
            BUMP(st, budget_exhausted);
            return rc;
        }
        int e = sleep_until(wake, ctx, o->clock_arg);
        if (e < 0)
            return e;
        BUMP(st, retried);
    }
}

void tern_retry_stats_read(const tern_retry_stats *src, tern_retry_stats *dst)
{
    dst->calls = __atomic_load_n(&src->calls, __ATOMIC_RELAXED);
    dst->retried = __atomic_load_n(&src->retried, __ATOMIC_RELAXED);
    dst->budget_exhausted = __atomic_load_n(&src->budget_exhausted, __ATOMIC_RELAXED);
    dst->deadline_stops = __atomic_load_n(&src->deadline_stops, __ATOMIC_RELAXED);
    dst->gave_up = __atomic_load_n(&src->gave_up, __ATOMIC_RELAXED);
}
