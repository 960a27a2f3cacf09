/*
 * internal.h - what the resilience module's files share: a spinlock
 * for their short, never-parking critical sections, the clock default, a
 * per-thread random generator, relaxed counters, and the rolling window of
 * time buckets used by the breaker and the throttle.
 */
#ifndef TERN_KIT_RESIL_INTERNAL_H
#define TERN_KIT_RESIL_INTERNAL_H

#include "base/rand.h"
#include <stdatomic.h>
#include <stdint.h>

#include "base/spin.h"
#include "tern/resilience.h"
#include "tern/runtime.h"
#include "tern/sync.h"

static inline int64_t tern__resil_now(tern_clock_fn *now, void *arg)
{
    return now ? now(arg) : tern_now();
}

/* Counters: written with relaxed adds, read with relaxed loads. */
static inline void tern__count(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}
static inline uint64_t tern__load(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}


/* A rolling window of n buckets of span `width` ns each, two counters per
 * bucket.  A bucket is reused when time moves past it (its epoch, the
 * time index it counts, says whether it is current). */
#define TERN_WINDOW_MAX 64

typedef struct tern__window {
    int n;
    int64_t width;
    struct {
        int64_t epoch;
        uint64_t a, b;
    } bucket[TERN_WINDOW_MAX];
} tern__window;

void tern__window_init(tern__window *w, int64_t span, int n);
/* Add to the bucket of time `now`. */
void tern__window_add(tern__window *w, int64_t now, uint64_t a, uint64_t b);
/* Sums over the buckets still within the window at `now`. */
void tern__window_sum(const tern__window *w, int64_t now, uint64_t *a, uint64_t *b);
void tern__window_clear(tern__window *w);

/* Sleep until deadline (tern_now clock) or until ctx is done: 0 or ctx's
 * error.  ctx may be NULL. */
int tern__resil_sleep_until(int64_t deadline, tern_ctx *ctx, void *unused);

/* One attempt of a resilient call, possibly raced against a hedge.  The
 * outcome owns `ctx` (the winning request's context, NULL when the
 * request ran on the caller's): it must outlive resp. */
typedef struct tern__hedge_outcome {
    int rc;                     /* client_do's result */
    tern_http_client_response *resp;
    tern_ctx *ctx;
    bool hedged;                /* a hedge request was sent */
    bool hedge_won;
    bool cancelled;             /* a losing request was cancelled */
} tern__hedge_outcome;

/* Send req bounded by ctx; if no response head came within delay, send it once more and
 * take the first success (rc 0 and a status pred does not call
 * retryable), else the first failure once both failed.  `legs` counts
 * the request coroutines alive (a loser outlives the call briefly). */
void tern__hedged_do(tern_http_client *c, const tern_http_client_request *req, int64_t delay,
                     tern_retry_pred_fn *pred, void *pred_arg, tern_waitgroup *legs,
                     tern__hedge_outcome *out, tern_ctx *ctx);

#endif
