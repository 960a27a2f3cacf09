/*
 * retry_budget.c - Finagle-style retry budget: retries may add at most
 * `ratio` of the request load, plus a small per-second reserve.
 *
 * Two pots: deposits (ratio per request, capped at max_tokens) and the
 * reserve (refilled at min_per_sec per second, capped at one second's
 * worth).  A retry is paid from the reserve first, so that the deposits
 * (the load-proportional part) are what is left for bursts.
 */
#include "kit/resilience/internal.h"

#include "base/check.h"

#include <errno.h>
#include <stdlib.h>

struct tern_retry_budget {
    tern__spin lock;
    double ratio, min_per_sec, max_tokens;
    double tokens, reserve;
    int64_t refilled;           /* when reserve was last refilled */
    tern_clock_fn *now;
    void *clock_arg;
    _Atomic uint64_t deposits, withdrawals, exhausted;
};

int tern_retry_budget_new(const tern_retry_budget_options *o, tern_retry_budget **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    static const tern_retry_budget_options defaults = {0};
    if (!o)
        o = &defaults;
    if (o->max_tokens < 0)
        return -EINVAL;
    tern_retry_budget *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->ratio = o->ratio == 0 ? 0.1 : o->ratio < 0 ? 0 : o->ratio;
    b->min_per_sec = o->min_per_sec == 0 ? 10 : o->min_per_sec < 0 ? 0 : o->min_per_sec;
    b->max_tokens = o->max_tokens == 0 ? 100 : o->max_tokens;
    b->now = o->now;
    b->clock_arg = o->clock_arg;
    b->reserve = b->min_per_sec;
    b->refilled = tern__resil_now(b->now, b->clock_arg);
    *out = b;
    return 0;
}

void tern_retry_budget_free(tern_retry_budget *b)
{
    free(b);
}

/* Under the lock. */
static void refill(tern_retry_budget *b)
{
    int64_t now = tern__resil_now(b->now, b->clock_arg);
    if (now <= b->refilled)
        return;
    b->reserve += b->min_per_sec * (double)(now - b->refilled) / (double)TERN_SEC;
    if (b->reserve > b->min_per_sec)
        b->reserve = b->min_per_sec;
    b->refilled = now;
}

void tern_retry_budget_deposit(tern_retry_budget *b)
{
    TERN_CHECK_ARG(b);
    tern__count(&b->deposits);
    tern__spin_lock(&b->lock);
    b->tokens += b->ratio;
    if (b->tokens > b->max_tokens)
        b->tokens = b->max_tokens;
    tern__spin_unlock(&b->lock);
}

/* A tiny slack: ten deposits of 0.1 must make one whole token although
 * 0.1 has no exact binary form. */
#define WHOLE (1.0 - 1e-9)

int tern_retry_budget_try_withdraw(tern_retry_budget *b)
{
    TERN_CHECK_ARG(b);
    bool ok = true;
    tern__spin_lock(&b->lock);
    refill(b);
    if (b->reserve >= WHOLE)
        b->reserve -= 1;
    else if (b->tokens >= WHOLE)
        b->tokens -= 1;
    else
        ok = false;
    TERN_ASSERT(b->reserve >= -1e-9 && b->reserve <= b->min_per_sec);
    TERN_ASSERT(b->tokens >= -1e-9 && b->tokens <= b->max_tokens);
    tern__spin_unlock(&b->lock);
    tern__count(ok ? &b->withdrawals : &b->exhausted);
    return ok ? 0 : -EAGAIN;
}

double tern_retry_budget_balance(tern_retry_budget *b)
{
    TERN_CHECK_ARG(b);
    tern__spin_lock(&b->lock);
    refill(b);
    double v = b->reserve + b->tokens;
    tern__spin_unlock(&b->lock);
    return v;
}

int tern_retry_budget_stats(const tern_retry_budget *b, struct tern_retry_budget_stats *out)
{
    TERN_CHECK_ARG(b);
    TERN_CHECK_ARG(out);
    out->deposits = tern__load(&b->deposits);
    out->withdrawals = tern__load(&b->withdrawals);
    out->exhausted = tern__load(&b->exhausted);
    return 0;
}
