/*
 * tern/resilience.h - staying up when what you call (or what calls you)
 * misbehaves: retries with backoff and a budget, a circuit breaker, SRE
 * adaptive throttling, token-bucket rate limits, and concurrency limits,
 * each usable on its own, plus their HTTP wiring (server middleware and a
 * resilient client call).
 *
 * Every object here is shared freely by coroutines on any P; its
 * decisions take a short spinlock or atomics and never park, except the
 * waits that say so (a retry's backoff sleep, a bulkhead's queue).
 *
 * Time: every option struct has an optional clock `now(clock_arg)` in
 * monotonic ns (NULL: tern_now), so tests can drive time by hand.  The
 * clock must share tern_now's origin when a context's deadline is involved
 * (retries compare it with tern_ctx_deadline).
 *
 * Counters: each object keeps a stats struct of its decisions, read at any
 * time with its *_stats function (a racy but consistent-enough snapshot
 * of relaxed atomic counters; each returns 0).  The struct shares the
 * function's name, as POSIX's struct stat and stat() do, so it is named
 * with its tag:
 *     struct tern_breaker_stats st;
 *     tern_breaker_stats(b, &st);
 *
 * Ownership: each *_new returns an object the caller frees with its
 * *_free (NULL is a no-op there); options are copied unless a field says
 * it is borrowed.  Passing NULL for the object to any other function is a
 * programmer error: it aborts naming the function.
 *
 * Errors: 0 or -errno as everywhere in tern.  A refusal by a guard is
 * -EAGAIN (breaker open, throttled, budget spent) or -EBUSY (a concurrency
 * limit reached).
 */
#ifndef TERN_RESILIENCE_H
#define TERN_RESILIENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/http.h"
#include "tern/http_client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A clock: monotonic ns.  NULL in options means tern_now. */
typedef int64_t tern_clock_fn(void *clock_arg);

/* ---- backoff and retries -------------------------------------------------
 *
 * Exponential backoff with full jitter (AWS architecture blog, 2015): the
 * delay before retry n (n = 0 for the first retry) is uniform in
 * [0, min(cap, base * 2^n)].  Full jitter spreads a crowd of clients that
 * failed together instead of moving them in lockstep. */

/* The ceiling min(cap, base * 2^attempt), without overflow. */
int64_t tern_backoff_ceiling(int64_t base, int64_t cap, int attempt);
/* A full-jitter delay drawn from a per-thread generator seeded from
 * getrandom(2): uniform in [0, tern_backoff_ceiling(...)]. */
int64_t tern_backoff_delay(int64_t base, int64_t cap, int attempt);

/* Whether a failure is worth retrying.  rc is a -errno from the call, or
 * a positive HTTP status when the call produced a response. */
typedef bool tern_retry_pred_fn(int rc, void *arg);

/* The default: -ECONNREFUSED, -ECONNRESET, -ECONNABORTED, -EPIPE,
 * -ETIMEDOUT (an attempt's own timeout, not the caller's deadline, which
 * the retry loop checks first), -EHOSTUNREACH, -ENETUNREACH, -EAGAIN, and
 * the statuses 502, 503, 504. */
bool tern_retry_default_retryable(int rc, void *arg);

/* ---- retry budget ---------------------------------------------------------
 *
 * Finagle's RetryBudget: retries may add at most `ratio` extra load.  Each
 * request deposits `ratio` tokens (at most max_tokens are kept) and each
 * retry withdraws one; a reserve of min_per_sec retries per second
 * (refilled continuously, held up to one second's worth) lets a quiet
 * client retry at all.  When neither has a whole token the retry is
 * refused: in an outage retries stop multiplying the load. */
typedef struct tern_retry_budget_options {
    double ratio;               /* tokens per request; 0: 0.1; < 0: none */
    double min_per_sec;         /* reserve retries per second; 0: 10; < 0: none */
    double max_tokens;          /* deposit cap; 0: 100 */
    tern_clock_fn *now;
    void *clock_arg;
} tern_retry_budget_options;

typedef struct tern_retry_budget tern_retry_budget;

struct tern_retry_budget_stats {
    uint64_t deposits;          /* requests seen */
    uint64_t withdrawals;       /* retries allowed */
    uint64_t exhausted;         /* retries refused */
};

/* A retry budget; o may be NULL (the defaults) and is copied.  0, -EINVAL,
 * -ENOMEM.  The caller's, freed with tern_retry_budget_free (NULL: a
 * no-op).  Any thread. */
int tern_retry_budget_new(const tern_retry_budget_options *o, tern_retry_budget **out);
void tern_retry_budget_free(tern_retry_budget *b);
/* A request is being made (first attempts only). */
void tern_retry_budget_deposit(tern_retry_budget *b);
/* Take one retry: 0 if allowed, -EAGAIN if the budget is spent. */
int tern_retry_budget_try_withdraw(tern_retry_budget *b);
/* Whole retries available now (reserve plus deposits), for tests and
 * dashboards. */
double tern_retry_budget_balance(tern_retry_budget *b);
/* Its counters into *out (see "Counters" above); 0.  Any thread. */
int tern_retry_budget_stats(const tern_retry_budget *b, struct tern_retry_budget_stats *out);

/* ---- the retry loop ------------------------------------------------------ */

/* One attempt (attempt = 0 first).  Returns 0 for success, a -errno, or a
 * positive value (an HTTP status) that the predicate judges. */
typedef int tern_retry_op_fn(int attempt, void *arg);

typedef struct tern_retry_stats {
    uint64_t calls;             /* tern_retry_do calls */
    uint64_t retried;           /* retries made */
    uint64_t budget_exhausted;  /* retries refused by the budget */
    uint64_t deadline_stops;    /* retries not made: the backoff would end past the deadline */
    uint64_t gave_up;           /* calls that failed after max_attempts */
} tern_retry_stats;

typedef struct tern_retry_options {
    int max_attempts;           /* attempts in all, the first included; 0: 3 */
    int64_t base;               /* backoff base, ns; 0: 10 ms */
    int64_t cap;                /* backoff cap, ns; 0: 1 s */
    tern_retry_pred_fn *retryable;  /* NULL: tern_retry_default_retryable */
    void *retryable_arg;
    tern_retry_budget *budget;  /* NULL: no budget */
    tern_retry_stats *stats;    /* NULL: none; counters updated atomically */
    tern_clock_fn *now;
    void *clock_arg;
    /* Wait until `deadline` (monotonic ns) or ctx is done; returns 0 or
     * ctx's error.  NULL: a real timer.  Tests pass one that advances
     * their fake clock. */
    int (*sleep_until)(int64_t deadline, tern_ctx *ctx, void *clock_arg);
} tern_retry_options;

/* Run op until it succeeds, fails for good, or retrying must stop: the
 * failure is not retryable, max_attempts were made, the budget refuses,
 * ctx is done, or the backoff would end at or past ctx's deadline (the
 * remaining time is spent on nothing, never overslept).  Returns op's last
 * result (0, -errno or a status), or ctx's error when ctx ended a wait.
 * o may be NULL (the defaults); ctx may be NULL (unbounded).  From a
 * coroutine. */
int tern_retry_do(const tern_retry_options *o, tern_retry_op_fn *op, void *arg, tern_ctx *ctx);
/* A snapshot of the counters that tern_retry_do updates in options.stats. */
void tern_retry_stats_read(const tern_retry_stats *src, tern_retry_stats *dst);

/* ---- circuit breaker ------------------------------------------------------
 *
 * CLOSED: calls pass; outcomes go into a rolling window of `buckets` time
 * buckets covering `window`.  Once the window holds at least min_requests
 * outcomes and failures / total >= failure_ratio, the breaker OPENs: calls
 * are refused (-EAGAIN) for open_duration.  Then it is HALF_OPEN: up to
 * half_open_max trial calls pass; one failure re-opens it, and once all
 * half_open_max trials succeeded it CLOSEs with an empty window.
 *
 * Outcomes are matched to the state that admitted them with a ticket, so
 * a slow call admitted while closed cannot decide a half-open trial. */
typedef enum tern_breaker_state {
    TERN_BREAKER_CLOSED = 0,
    TERN_BREAKER_OPEN = 1,
    TERN_BREAKER_HALF_OPEN = 2,
} tern_breaker_state;

typedef void tern_breaker_change_fn(tern_breaker_state from, tern_breaker_state to, void *arg);

typedef struct tern_breaker_options {
    int64_t window;             /* ns; 0: 10 s */
    int buckets;                /* 0: 10; at most 64 */
    uint32_t min_requests;      /* 0: 20 */
    double failure_ratio;       /* (0, 1]; 0: 0.5 */
    int64_t open_duration;      /* ns; 0: 5 s */
    uint32_t half_open_max;     /* trial calls; 0: 1 */
    /* Called on every change, outside the breaker's lock, in order of
     * the changes for one breaker only while calls do not race. */
    tern_breaker_change_fn *on_change;
    void *change_arg;
    tern_clock_fn *now;
    void *clock_arg;
} tern_breaker_options;

typedef struct tern_breaker tern_breaker;
typedef uint64_t tern_breaker_ticket;

struct tern_breaker_stats {
    uint64_t allowed;
    uint64_t rejected;          /* refused while open or half-open full */
    uint64_t successes, failures;
    uint64_t opened;            /* transitions to OPEN */
    uint64_t half_opened;
    uint64_t closed;            /* transitions back to CLOSED */
};

/* A closed breaker; o may be NULL (the defaults) and is copied.  0, or
 * -EINVAL (a negative duration, a ratio outside [0, 1], more than 64
 * buckets or a window shorter than its bucket count in ns), -ENOMEM.  The
 * breaker is the caller's, freed with tern_breaker_free (NULL: a no-op)
 * once no call uses it.  Any thread. */
int tern_breaker_new(const tern_breaker_options *o, tern_breaker **out);
void tern_breaker_free(tern_breaker *b);
/* May a call go?  0 with *ticket set (hand it to record), or -EAGAIN. */
int tern_breaker_allow(tern_breaker *b, tern_breaker_ticket *ticket);
/* The outcome of a call that allow let through. */
void tern_breaker_record(tern_breaker *b, tern_breaker_ticket ticket, bool success);
/* The state now (an OPEN breaker whose open_duration has passed reads
 * HALF_OPEN). */
tern_breaker_state tern_breaker_get_state(tern_breaker *b);
/* Its counters into *out (see "Counters" above); 0.  Any thread. */
int tern_breaker_stats(const tern_breaker *b, struct tern_breaker_stats *out);

/* ---- adaptive throttling (Google SRE book, "Handling Overload") ----------
 *
 * The client counts, over a rolling window, the requests it wanted to
 * make and the ones the backend accepted, and refuses locally with
 * probability max(0, (requests - k * accepts) / (requests + 1)).  Unlike
 * a breaker it never shuts off completely and needs no trial phase. */
typedef struct tern_throttle_options {
    double k;                   /* 0: 2.0 */
    int64_t window;             /* ns; 0: 60 s */
    int buckets;                /* 0: 20; at most 64 */
    tern_clock_fn *now;
    void *clock_arg;
    /* Uniform in [0, 1); NULL: the per-thread generator. */
    double (*random)(void *arg);
    void *random_arg;
} tern_throttle_options;

typedef struct tern_throttle tern_throttle;

struct tern_throttle_stats {
    uint64_t requests;
    uint64_t accepts;
    uint64_t throttled;         /* refused locally */
};

/* A throttle; o may be NULL (the defaults) and is copied.  0, or -EINVAL
 * (a negative k or window, more than 64 buckets, a window shorter than
 * its bucket count in ns), -ENOMEM.  The caller's, freed with
 * tern_throttle_free (NULL: a no-op).  Any thread. */
int tern_throttle_new(const tern_throttle_options *o, tern_throttle **out);
void tern_throttle_free(tern_throttle *t);
/* Count a request; 0 to send it, -EAGAIN if throttled. */
int tern_throttle_allow(tern_throttle *t);
/* The backend accepted (true) or refused / overloaded (false). */
void tern_throttle_record(tern_throttle *t, bool accepted);
/* The rejection probability now. */
double tern_throttle_probability(tern_throttle *t);
/* Its counters into *out (see "Counters" above); 0.  Any thread. */
int tern_throttle_stats(const tern_throttle *t, struct tern_throttle_stats *out);

/* ---- token-bucket rate limiter --------------------------------------------
 *
 * `rate` tokens per second, up to `burst` held.  Implemented as GCRA (one
 * "theoretical arrival time" per bucket), which is exactly a token bucket
 * in integer ns: with rate dividing 10^9 the counts are exact.  Per key
 * (a string), buckets live in a hash map of at most max_keys; the least
 * recently used is evicted to make room (a full, idle bucket loses
 * nothing by it: a new one starts full). */
typedef struct tern_ratelimit_options {
    double rate;                /* tokens per second, > 0 */
    double burst;               /* >= 1; 0: max(1, rate) */
    size_t max_keys;            /* 0: 10000 */
    tern_clock_fn *now;
    void *clock_arg;
} tern_ratelimit_options;

typedef struct tern_ratelimit tern_ratelimit;

struct tern_ratelimit_stats {
    uint64_t allowed;
    uint64_t limited;
    uint64_t evicted;           /* keys dropped for room */
    uint64_t keys;              /* keys held now */
};

/* A rate limiter; o is required (rate has no default) and copied.  0, or
 * -EINVAL (NULL o, rate not in (0, 1e9], burst negative or in (0, 1)),
 * -ENOMEM.  The caller's, freed with tern_ratelimit_free (NULL: a no-op)
 * with its buckets.  Any thread. */
int tern_ratelimit_new(const tern_ratelimit_options *o, tern_ratelimit **out);
void tern_ratelimit_free(tern_ratelimit *rl);
/* Take n (>= 1) tokens from key's bucket (NULL: the global one); never
 * waits.  0 if taken; -EAGAIN if not yet (nothing is taken), with
 * *retry_after set to the ns until they could be (retry_after may be
 * NULL); -EINVAL for n < 1 or above the burst, -ENOMEM. */
int tern_ratelimit_take(tern_ratelimit *rl, const char *key, int n, int64_t *retry_after);
/* Whole tokens in key's bucket now. */
int64_t tern_ratelimit_tokens(tern_ratelimit *rl, const char *key);
/* Its counters into *out (see "Counters" above); 0.  Any thread. */
int tern_ratelimit_stats(const tern_ratelimit *rl, struct tern_ratelimit_stats *out);

/* ---- bulkhead: a fixed concurrency limit ----------------------------------
 *
 * At most max calls inside at once; up to `queue` more wait (FIFO) for a
 * slot, each bounded by its context and by max_wait; beyond that, -EBUSY
 * at once. */
typedef struct tern_bulkhead_options {
    int max;                    /* > 0 */
    int queue;                  /* waiters allowed; 0: none */
    int64_t max_wait;           /* ns a waiter waits at most; 0: ctx only */
} tern_bulkhead_options;

typedef struct tern_bulkhead tern_bulkhead;

struct tern_bulkhead_stats {
    uint64_t acquired;
    uint64_t queued;            /* acquisitions that had to wait */
    uint64_t shed;              /* refused: full and the queue full */
    uint64_t timeouts;          /* waiters whose ctx or max_wait ended first */
    uint64_t in_flight;         /* now */
};

/* A bulkhead; o is required (max has no default) and copied.  0, or
 * -EINVAL (NULL o, max <= 0, a negative queue or max_wait), -ENOMEM.  The
 * caller's, freed with tern_bulkhead_free (NULL: a no-op) once nobody is
 * inside or waiting. */
int tern_bulkhead_new(const tern_bulkhead_options *o, tern_bulkhead **out);
void tern_bulkhead_free(tern_bulkhead *b);
/* 0, -EBUSY (shed), or ctx's -ECANCELED / -ETIMEDOUT (also -ETIMEDOUT
 * for max_wait); -ENOMEM when a waiter's max_wait context cannot be
 * made.  From a coroutine when it may wait. */
int tern_bulkhead_acquire(tern_bulkhead *b, tern_ctx *ctx);
/* Give back the slot an acquire returned 0 for (to the first waiter, if
 * any).  Any coroutine. */
void tern_bulkhead_release(tern_bulkhead *b);
/* Its counters into *out (see "Counters" above); 0.  Any thread. */
int tern_bulkhead_stats(const tern_bulkhead *b, struct tern_bulkhead_stats *out);

/* ---- adaptive concurrency limit (Netflix concurrency-limits, Gradient2) ---
 *
 * The limit follows the ratio of a long-term RTT (an exponential average
 * over ~long_window samples) to the latest RTT: gradient =
 * clamp(tolerance * long / short, 0.5, 1); new = limit * gradient +
 * sqrt(limit) (the queue allowance that lets it grow while latency holds);
 * then limit = limit * (1 - smoothing) + new * smoothing, within
 * [min, max].  It only grows while at least half of it is in use (an idle
 * service proves nothing).  A call that ended in a drop (timeout,
 * overload) cuts the limit by 10%.  Calls beyond the limit are shed. */
typedef struct tern_adaptive_options {
    int initial;                /* 0: 20 */
    int min;                    /* 0: 1 */
    int max;                    /* 0: 1000 */
    double smoothing;           /* (0, 1]; 0: 0.2 */
    double tolerance;           /* >= 1; 0: 1.5 */
    int long_window;            /* samples; 0: 600 */
    tern_clock_fn *now;
    void *clock_arg;
} tern_adaptive_options;

typedef struct tern_adaptive tern_adaptive;

struct tern_adaptive_stats {
    uint64_t acquired;
    uint64_t shed;
    uint64_t dropped;           /* releases that reported a drop */
    uint64_t in_flight;         /* now */
    uint64_t limit;             /* now */
};

/* An adaptive limit; o may be NULL (the defaults) and is copied.  0, or
 * -EINVAL (min < 1, max < min, initial outside [min, max], smoothing
 * outside [0, 1], tolerance < 1, long_window < 1, after the defaults are
 * applied), -ENOMEM.  The caller's, freed with tern_adaptive_free (NULL:
 * a no-op).  Any thread. */
int tern_adaptive_new(const tern_adaptive_options *o, tern_adaptive **out);
void tern_adaptive_free(tern_adaptive *a);
/* 0 with *start set (hand it to release), or -EBUSY (shed). */
int tern_adaptive_acquire(tern_adaptive *a, int64_t *start);
/* The call that acquire admitted at *start is over; dropped: it timed out
 * or was refused downstream (its RTT says nothing). */
void tern_adaptive_release(tern_adaptive *a, int64_t start, bool dropped);
/* The limit now. */
int tern_adaptive_limit(tern_adaptive *a);
/* Its counters into *out (see "Counters" above); 0.  Any thread. */
int tern_adaptive_stats(const tern_adaptive *a, struct tern_adaptive_stats *out);

/* ---- server middleware ---------------------------------------------------- */

/* Per-key rate limit: over the limit the client gets 429 with Retry-After
 * in whole seconds, rounded up (at least 1).  The key is the client's IP
 * (the remote address without its port) unless `key` gives one (NULL
 * from it: not limited).  Options must outlive the server. */
typedef struct tern_http_ratelimit_options {
    tern_ratelimit *limiter;    /* required */
    const char *(*key)(tern_http_req *r, void *arg);
    void *key_arg;
} tern_http_ratelimit_options;

/* The middleware; opts is a tern_http_ratelimit_options, required (NULL
 * or no limiter: -EINVAL, a 500).  Returns what the rest of the chain
 * returns, 0 after answering 429, or -ENOMEM from the limiter. */
int tern_http_mw_ratelimit(tern_http_req *r, tern_http_resp *w, void *opts);

/* A concurrency limit for the rest of the chain, a bulkhead (queued
 * waiters bounded by the request's context) or an adaptive limit (a
 * handler error, 503 or 504 counts as a drop).  Shed requests get 503
 * with Retry-After: retry_after in whole seconds, rounded up (at least
 * 1).  Options must outlive the server. */
typedef struct tern_http_concurrency_options {
    tern_bulkhead *bulkhead;    /* exactly one of the two */
    tern_adaptive *adaptive;
    int64_t retry_after;        /* ns; 0: 1 s */
} tern_http_concurrency_options;

/* The middleware; opts is a tern_http_concurrency_options, required (NULL,
 * or both or neither limit set: -EINVAL, a 500).  Returns what the rest
 * of the chain returns, 0 after answering 503 (shed, or a bulkhead wait
 * that timed out), or the request context's -ECANCELED. */
int tern_http_mw_concurrency(tern_http_req *r, tern_http_resp *w, void *opts);

/* ---- resilient HTTP client call -------------------------------------------
 *
 * tern_http_client_do with, per call:
 *  - the call's ctx bounding every attempt and backoff
 *    (plus attempt_timeout per attempt, within what remains);
 *  - retries (full-jitter backoff, the budget) for idempotent methods
 *    (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) when the predicate says the
 *    error or status is retryable; a retried response's body is drained
 *    (up to 64 KiB) so its connection is reused;
 *  - per host:port a breaker or a throttle (a -errno, 5xx counted as a
 *    failure; with a throttle, a 429/503 as a refusal); refused calls
 *    return -EAGAIN without touching the network;
 *  - hedging (idempotent methods, hedge_delay > 0): if the attempt has no
 *    response head after hedge_delay, a second copy is sent; the first
 *    success (a status the predicate does not call retryable) wins, the
 *    other's context is cancelled and its response freed.
 *
 * A response from tern_resilient_client_do must be released with
 * tern_resilient_client_response_free (it may own the context that its
 * body reads use), never tern_http_client_response_free. */
typedef struct tern_resilient_client_options {
    tern_http_client *client;   /* required; borrowed, must outlive rc */
    int max_attempts;           /* 0: 3; 1: no retries */
    int64_t backoff_base;       /* 0: 10 ms */
    int64_t backoff_cap;        /* 0: 1 s */
    int64_t attempt_timeout;    /* ns per attempt; 0: the deadline only */
    tern_retry_pred_fn *retryable;  /* NULL: tern_retry_default_retryable */
    void *retryable_arg;
    const tern_retry_budget_options *budget;    /* NULL: no budget */
    const tern_breaker_options *breaker;        /* per host; NULL: none */
    const tern_throttle_options *throttle;      /* per host, instead of a breaker */
    int64_t hedge_delay;        /* ns; 0: no hedging */
    tern_clock_fn *now;         /* for the breakers, throttles and budget
                                   (backoff sleeps on tern_now) */
    void *clock_arg;
} tern_resilient_client_options;

typedef struct tern_resilient_client tern_resilient_client;

struct tern_resilient_client_stats {
    uint64_t calls;
    uint64_t attempts;          /* requests sent, hedges included */
    uint64_t retried;
    uint64_t budget_exhausted;
    uint64_t rejected;          /* refused by a breaker or throttle */
    uint64_t hedged;            /* hedge requests sent */
    uint64_t hedge_wins;        /* calls the hedge answered first */
    uint64_t cancelled;         /* losing requests cancelled */
};

/* A resilient client over o->client; o is required and copied (the
 * breaker, throttle and budget options it points to too).  0, -EINVAL (NULL
 * o, no client, a breaker and a throttle both, a negative count or
 * duration), -ENOMEM.  The caller's, freed
 * with tern_resilient_client_free. */
int tern_resilient_client_new(const tern_resilient_client_options *o,
                              tern_resilient_client **out);
/* Every response must have been released first.  Waits for losing hedge
 * requests still winding down (they end within ~10 ms of their
 * cancellation), so that the borrowed client may be freed right after;
 * from a coroutine when hedging was used. */
void tern_resilient_client_free(tern_resilient_client *rc);
/* As tern_http_client_do, the whole call (every attempt and backoff)
 * bounded by ctx (NULL: unbounded; attempt_timeout still bounds each
 * attempt); also -EAGAIN when a breaker or throttle refused the call.  A
 * retryable status on the last attempt is returned as the response it
 * is.  Reads of the response's body are bounded by ctx too.  From a
 * coroutine. */
int tern_resilient_client_do(tern_resilient_client *rc, const tern_http_client_request *req,
                             tern_http_client_response **out, tern_ctx *ctx);
/* Release a response of tern_resilient_client_do (NULL: a no-op). */
void tern_resilient_client_response_free(tern_resilient_client *rc,
                                         tern_http_client_response *r);
/* Its counters into *out (see "Counters" above); 0.  Any thread. */
int tern_resilient_client_stats(const tern_resilient_client *rc,
                                struct tern_resilient_client_stats *out);
/* The state of host's breaker ("127.0.0.1:8080"); CLOSED when none. */
tern_breaker_state tern_resilient_client_breaker_state(tern_resilient_client *rc,
                                                       const char *hostport);

#ifdef __cplusplus
}
#endif
#endif
