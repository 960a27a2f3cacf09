/*
 * test_kit_resilience.c - each resilience algorithm against its
 * specification, on a fake clock that the test moves by hand: backoff
 * bounds and spread, the retry loop's budget and deadline rules, breaker
 * transitions, the throttle's probability, token counts of the rate
 * limiter, the bulkhead's queue, and the adaptive limit's direction.
 */
#include "check.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>

#include <tern/resilience.h>

/* ---- a fake clock --------------------------------------------------------- */

typedef struct fake_clock {
    int64_t t;
    int64_t max_seen_wake;      /* latest deadline a fake sleep was asked for */
    int sleeps;
    int64_t delays[64];
} fake_clock;

static int64_t fake_now(void *arg)
{
    return ((fake_clock *)arg)->t;
}

/* The retry loop's sleep on fake time: jump to the wake-up time. */
static int fake_sleep_until(int64_t deadline, tern_ctx *ctx, void *arg)
{
    fake_clock *c = arg;
    if (c->sleeps < 64)
        c->delays[c->sleeps] = deadline - c->t;
    c->sleeps++;
    if (deadline > c->max_seen_wake)
        c->max_seen_wake = deadline;
    if (deadline > c->t)
        c->t = deadline;
    return ctx ? tern_ctx_err(ctx) : 0;
}

/* ---- backoff -------------------------------------------------------------- */

static void backoff_ceiling_doubles_up_to_the_cap(void)
{
    const int64_t base = 10 * TERN_MS, cap = TERN_SEC;
    int64_t want[] = {10, 20, 40, 80, 160, 320, 640, 1000, 1000};
    for (int n = 0; n < 9; n++)
        CHECK_EQ(tern_backoff_ceiling(base, cap, n), want[n] * TERN_MS);
    CHECK_EQ(tern_backoff_ceiling(base, cap, 200), cap);            /* no overflow */
    CHECK_EQ(tern_backoff_ceiling(base, INT64_MAX, 100), INT64_MAX);
}

static void backoff_full_jitter_stays_in_bounds_and_covers_the_range(void)
{
    const int64_t base = 10 * TERN_MS, cap = TERN_SEC;
    for (int n = 0; n < 12; n++) {
        int64_t ceil = tern_backoff_ceiling(base, cap, n);
        int deciles[10] = {0};
        for (int i = 0; i < 4000; i++) {
            int64_t d = tern_backoff_delay(base, cap, n);
            CHECK(d >= 0 && d <= ceil);
            deciles[d * 10 / (ceil + 1)]++;
        }
        /* uniform: each tenth expects 400; 250 is > 7 sigma away */
        for (int k = 0; k < 10; k++)
            CHECK(deciles[k] > 250);
    }
}

static void retry_default_predicate_knows_transient_failures(void)
{
    int yes[] = {-ECONNREFUSED, -ECONNRESET, -ETIMEDOUT, -EPIPE, 502, 503, 504};
    int no[] = {0, -EINVAL, -ENOMEM, -ECANCELED, -EBADMSG, 200, 404, 500, 429};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        CHECK(tern_retry_default_retryable(yes[i], NULL));
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        CHECK(!tern_retry_default_retryable(no[i], NULL));
}

/* ---- the retry loop ------------------------------------------------------- */

typedef struct flaky {
    int fail_first;             /* attempts that fail */
    int err;                    /* with this */
    int attempts;
} flaky;

static int flaky_op(int attempt, void *arg)
{
    flaky *f = arg;
    CHECK_EQ(attempt, f->attempts);
    return f->attempts++ < f->fail_first ? f->err : 0;
}

static void retry_retries_transient_failures_within_backoff_bounds(void)
{
    fake_clock c = {.t = 1000};
    tern_retry_stats st = {0};
    tern_retry_options o = {.max_attempts = 5, .base = 100 * TERN_MS, .cap = 250 * TERN_MS,
                            .stats = &st, .now = fake_now, .clock_arg = &c,
                            .sleep_until = fake_sleep_until};
    flaky f = {.fail_first = 3, .err = -ECONNREFUSED};
    CHECK_EQ(tern_retry_do(&o, flaky_op, &f, NULL), 0);
    CHECK_EQ(f.attempts, 4);
    CHECK_EQ(c.sleeps, 3);
    for (int n = 0; n < 3; n++)
        CHECK(c.delays[n] >= 0 && c.delays[n] <= tern_backoff_ceiling(o.base, o.cap, n));
    tern_retry_stats s;
    tern_retry_stats_read(&st, &s);
    CHECK_EQ(s.calls, 1);
    CHECK_EQ(s.retried, 3);
    CHECK_EQ(s.gave_up, 0);
}

static void retry_gives_up_after_max_attempts_and_on_permanent_errors(void)
{
    fake_clock c = {0};
    tern_retry_stats st = {0};
    tern_retry_options o = {.max_attempts = 3, .stats = &st, .now = fake_now, .clock_arg = &c,
                            .sleep_until = fake_sleep_until};
    flaky f = {.fail_first = 100, .err = -ECONNRESET};
    CHECK_EQ(tern_retry_do(&o, flaky_op, &f, NULL), -ECONNRESET);
    CHECK_EQ(f.attempts, 3);
    CHECK_EQ(st.gave_up, 1);

    flaky g = {.fail_first = 100, .err = -EINVAL};
    CHECK_EQ(tern_retry_do(&o, flaky_op, &g, NULL), -EINVAL);
    CHECK_EQ(g.attempts, 1);

    flaky h = {.fail_first = 100, .err = 503};      /* a status */
    CHECK_EQ(tern_retry_do(&o, flaky_op, &h, NULL), 503);
    CHECK_EQ(h.attempts, 3);
}

static void retry_budget_counts_deposits_reserve_and_cap(void)
{
    fake_clock c = {0};
    tern_retry_budget *b;
    /* deposits only: 10 requests at 0.1 pay for exactly one retry */
    tern_retry_budget_options o = {.ratio = 0.1, .min_per_sec = -1, .max_tokens = 2,
                                   .now = fake_now, .clock_arg = &c};
    CHECK_EQ(tern_retry_budget_new(&o, &b), 0);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), -EAGAIN);
    for (int i = 0; i < 10; i++)
        tern_retry_budget_deposit(b);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), 0);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), -EAGAIN);
    for (int i = 0; i < 100; i++)   /* 10 tokens' worth, capped at 2 */
        tern_retry_budget_deposit(b);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), 0);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), 0);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), -EAGAIN);
    struct tern_retry_budget_stats st;
    CHECK_EQ(tern_retry_budget_stats(b, &st), 0);
    CHECK_EQ(st.deposits, 110);
    CHECK_EQ(st.withdrawals, 3);
    CHECK_EQ(st.exhausted, 3);
    tern_retry_budget_free(b);

    /* reserve only: 4 per second, refilled continuously, held up to 4 */
    o = (tern_retry_budget_options){.ratio = -1, .min_per_sec = 4, .now = fake_now,
                                    .clock_arg = &c};
    CHECK_EQ(tern_retry_budget_new(&o, &b), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(tern_retry_budget_try_withdraw(b), 0);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), -EAGAIN);
    c.t += 250 * TERN_MS;
    CHECK_EQ(tern_retry_budget_try_withdraw(b), 0);
    CHECK_EQ(tern_retry_budget_try_withdraw(b), -EAGAIN);
    c.t += 10 * TERN_SEC;
    CHECK(fabs(tern_retry_budget_balance(b) - 4) < 1e-9);
    tern_retry_budget_free(b);
}

static void retry_stops_when_the_budget_is_exhausted(void)
{
    fake_clock c = {0};
    tern_retry_budget *b;
    tern_retry_budget_options bo = {.ratio = 0.5, .min_per_sec = -1, .now = fake_now,
                                    .clock_arg = &c};
    CHECK_EQ(tern_retry_budget_new(&bo, &b), 0);
    tern_retry_stats st = {0};
    tern_retry_options o = {.max_attempts = 10, .budget = b, .stats = &st, .now = fake_now,
                            .clock_arg = &c, .sleep_until = fake_sleep_until};
    /* first call: 0.5 deposited, no whole token: no retry */
    flaky f = {.fail_first = 100, .err = -ECONNREFUSED};
    CHECK_EQ(tern_retry_do(&o, flaky_op, &f, NULL), -ECONNREFUSED);
    CHECK_EQ(f.attempts, 1);
    /* second: 1.0 in the pot pays for one retry, then it is empty again */
    flaky g = {.fail_first = 100, .err = -ECONNREFUSED};
    CHECK_EQ(tern_retry_do(&o, flaky_op, &g, NULL), -ECONNREFUSED);
    CHECK_EQ(g.attempts, 2);
    CHECK_EQ(st.calls, 2);
    CHECK_EQ(st.retried, 1);
    CHECK_EQ(st.budget_exhausted, 2);
    tern_retry_budget_free(b);
}

static int retry_deadline_entry(void *arg)
{
    (void)arg;
    fake_clock c = {.t = tern_now()};
    int64_t deadline = c.t + 100 * TERN_MS;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_deadline(NULL, deadline, &ctx), 0);
    CHECK(ctx);
    tern_retry_stats st = {0};
    tern_retry_options o = {.max_attempts = 1000, .base = 20 * TERN_MS, .cap = 40 * TERN_MS,
                            .stats = &st, .now = fake_now, .clock_arg = &c,
                            .sleep_until = fake_sleep_until};
    flaky f = {.fail_first = 1000, .err = -ECONNRESET};
    CHECK_EQ(tern_retry_do(&o, flaky_op, &f, ctx), -ECONNRESET);
    /* never slept to or past the deadline, and stopped because of it */
    CHECK(c.max_seen_wake < deadline);
    CHECK(c.t < deadline);
    CHECK_EQ(st.deadline_stops, 1);
    CHECK_EQ(st.gave_up, 0);
    CHECK(f.attempts >= 3);     /* 100 ms of 0..40 ms backoffs: several */
    tern_ctx_free(ctx);

    /* a context already done: no attempt at all */
    tern_ctx *dead;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &dead), 0);
    tern_ctx_cancel(dead);
    flaky g = {.fail_first = 1, .err = -ECONNRESET};
    CHECK_EQ(tern_retry_do(&o, flaky_op, &g, dead), -ECANCELED);
    CHECK_EQ(g.attempts, 0);
    tern_ctx_free(dead);

    /* the real timer: 1 ms backoffs, no context */
    tern_retry_options r = {.max_attempts = 3, .base = TERN_MS, .cap = TERN_MS};
    flaky h = {.fail_first = 2, .err = -ETIMEDOUT};
    int64_t t0 = tern_now();
    CHECK_EQ(tern_retry_do(&r, flaky_op, &h, NULL), 0);
    CHECK_EQ(h.attempts, 3);
    CHECK(tern_now() - t0 < TERN_SEC);

    /* the real timer cut short by the context's cancellation */
    tern_ctx *soon;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 30 * TERN_MS, &soon), 0);
    tern_retry_options l = {.max_attempts = 3, .base = 10 * TERN_SEC, .cap = 10 * TERN_SEC};
    flaky k = {.fail_first = 5, .err = -ECONNRESET};
    t0 = tern_now();
    int rc = tern_retry_do(&l, flaky_op, &k, soon);
    /* either the backoff drew past the deadline (no sleep) or the sleep
     * ended with the context: never a 10 s nap */
    CHECK(rc == -ECONNRESET || rc == -ETIMEDOUT);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    tern_ctx_free(soon);
    return 0;
}

static void retry_never_sleeps_past_the_context_deadline(void)
{
    run_ok(retry_deadline_entry, NULL, 1);
}

/* ---- circuit breaker ------------------------------------------------------ */

typedef struct changes {
    int n;
    tern_breaker_state from[16], to[16];
} changes;

static void on_change(tern_breaker_state from, tern_breaker_state to, void *arg)
{
    changes *c = arg;
    CHECK(c->n < 16);
    c->from[c->n] = from;
    c->to[c->n] = to;
    c->n++;
}

static void call(tern_breaker *b, bool ok)
{
    tern_breaker_ticket t;
    CHECK_EQ(tern_breaker_allow(b, &t), 0);
    tern_breaker_record(b, t, ok);
}

static tern_breaker *breaker(fake_clock *c, changes *ch, uint32_t half_open_max)
{
    tern_breaker_options o = {.window = 10 * TERN_SEC, .buckets = 10, .min_requests = 10,
                              .failure_ratio = 0.5, .open_duration = 5 * TERN_SEC,
                              .half_open_max = half_open_max, .on_change = on_change,
                              .change_arg = ch, .now = fake_now, .clock_arg = c};
    tern_breaker *b;
    CHECK_EQ(tern_breaker_new(&o, &b), 0);
    return b;
}

static void breaker_opens_at_the_threshold_only_after_min_requests(void)
{
    fake_clock c = {0};
    changes ch = {0};
    tern_breaker *b = breaker(&c, &ch, 1);
    for (int i = 0; i < 9; i++)     /* 100% failures, but only 9 calls */
        call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_OPEN);
    CHECK_EQ(ch.n, 1);
    CHECK_EQ(ch.from[0], TERN_BREAKER_CLOSED);
    CHECK_EQ(ch.to[0], TERN_BREAKER_OPEN);
    tern_breaker_free(b);

    /* 4 of 10 failed: under 0.5, stays closed; the 11th (5 of 11) too; the
     * 12th makes 6 of 12 = 0.5: open */
    b = breaker(&c, &ch, 1);
    for (int i = 0; i < 6; i++)
        call(b, true);
    for (int i = 0; i < 4; i++)
        call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_OPEN);
    tern_breaker_free(b);
}

static void breaker_window_forgets_outcomes_older_than_it(void)
{
    fake_clock c = {0};
    changes ch = {0};
    tern_breaker *b = breaker(&c, &ch, 1);
    for (int i = 0; i < 9; i++)
        call(b, false);
    c.t += 10 * TERN_SEC;   /* all 9 fall out of the 10 s window */
    call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    c.t += 5 * TERN_SEC;    /* 1 failure in the window; 9 more make 10 */
    for (int i = 0; i < 8; i++)
        call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_OPEN);
    tern_breaker_free(b);
}

static void breaker_half_opens_after_the_duration_and_closes_on_success(void)
{
    fake_clock c = {0};
    changes ch = {0};
    tern_breaker *b = breaker(&c, &ch, 1);
    for (int i = 0; i < 10; i++)
        call(b, false);
    tern_breaker_ticket t, t2;
    CHECK_EQ(tern_breaker_allow(b, &t), -EAGAIN);
    c.t += 5 * TERN_SEC - 1;
    CHECK_EQ(tern_breaker_allow(b, &t), -EAGAIN);
    c.t += 1;
    CHECK_EQ(tern_breaker_allow(b, &t), 0);         /* the one trial */
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_HALF_OPEN);
    CHECK_EQ(tern_breaker_allow(b, &t2), -EAGAIN);  /* no second trial */
    tern_breaker_record(b, t, true);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    /* closing starts an empty window: 9 failures do not reopen it */
    for (int i = 0; i < 9; i++)
        call(b, false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    CHECK_EQ(ch.n, 3);
    CHECK_EQ(ch.to[0], TERN_BREAKER_OPEN);
    CHECK_EQ(ch.to[1], TERN_BREAKER_HALF_OPEN);
    CHECK_EQ(ch.to[2], TERN_BREAKER_CLOSED);
    struct tern_breaker_stats st;
    CHECK_EQ(tern_breaker_stats(b, &st), 0);
    CHECK_EQ(st.opened, 1);
    CHECK_EQ(st.half_opened, 1);
    CHECK_EQ(st.closed, 1);
    CHECK_EQ(st.rejected, 3);
    CHECK_EQ(st.allowed, 20);
    tern_breaker_free(b);
}

static void breaker_half_open_admits_n_trials_and_reopens_on_a_failure(void)
{
    fake_clock c = {0};
    changes ch = {0};
    tern_breaker *b = breaker(&c, &ch, 3);
    for (int i = 0; i < 10; i++)
        call(b, false);
    c.t += 5 * TERN_SEC;
    tern_breaker_ticket t[4];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tern_breaker_allow(b, &t[i]), 0);
    CHECK_EQ(tern_breaker_allow(b, &t[3]), -EAGAIN);
    tern_breaker_record(b, t[0], true);
    tern_breaker_record(b, t[1], true);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_HALF_OPEN);  /* 2 of 3 */
    tern_breaker_record(b, t[2], false);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_OPEN);
    /* a fresh open period from the failure */
    c.t += 5 * TERN_SEC - 1;
    CHECK_EQ(tern_breaker_allow(b, &t[0]), -EAGAIN);
    c.t += 1;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tern_breaker_allow(b, &t[i]), 0);
    for (int i = 0; i < 3; i++)
        tern_breaker_record(b, t[i], true);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    tern_breaker_free(b);
}

static void breaker_ignores_outcomes_admitted_in_an_earlier_state(void)
{
    fake_clock c = {0};
    changes ch = {0};
    tern_breaker *b = breaker(&c, &ch, 1);
    tern_breaker_ticket slow;
    CHECK_EQ(tern_breaker_allow(b, &slow), 0);      /* admitted while closed */
    for (int i = 0; i < 10; i++)
        call(b, false);
    c.t += 5 * TERN_SEC;
    tern_breaker_ticket trial;
    CHECK_EQ(tern_breaker_allow(b, &trial), 0);
    tern_breaker_record(b, slow, true);             /* must not close it */
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_HALF_OPEN);
    tern_breaker_record(b, trial, true);
    CHECK_EQ(tern_breaker_get_state(b), TERN_BREAKER_CLOSED);
    tern_breaker_free(b);
}

/* ---- adaptive throttling --------------------------------------------------- */

static double fixed_random(void *arg)
{
    return *(double *)arg;
}

static void throttle_probability_follows_requests_and_accepts(void)
{
    fake_clock c = {0};
    double rnd = 0.999999;
    tern_throttle_options o = {.k = 2, .window = 10 * TERN_SEC, .buckets = 10, .now = fake_now,
                               .clock_arg = &c, .random = fixed_random, .random_arg = &rnd};
    tern_throttle *t;
    CHECK_EQ(tern_throttle_new(&o, &t), 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(tern_throttle_allow(t), 0);
        tern_throttle_record(t, true);
    }
    CHECK(tern_throttle_probability(t) == 0);
    for (int i = 0; i < 10; i++)            /* 20 requests, 10 accepts: 2*10 >= 20 */
        CHECK_EQ(tern_throttle_allow(t), 0);
    CHECK(tern_throttle_probability(t) == 0);
    for (int i = 0; i < 10; i++)            /* 30 requests, 10 accepts */
        CHECK_EQ(tern_throttle_allow(t), 0);
    CHECK(fabs(tern_throttle_probability(t) - 10.0 / 31) < 1e-12);
    rnd = 0.32;                             /* below 10/31 = 0.3226: refused */
    CHECK_EQ(tern_throttle_allow(t), -EAGAIN);
    /* the refused request counts: 31 requests now */
    CHECK(fabs(tern_throttle_probability(t) - 11.0 / 32) < 1e-12);
    rnd = 0.35;
    CHECK_EQ(tern_throttle_allow(t), 0);
    struct tern_throttle_stats st;
    CHECK_EQ(tern_throttle_stats(t, &st), 0);
    CHECK_EQ(st.requests, 32);
    CHECK_EQ(st.accepts, 10);
    CHECK_EQ(st.throttled, 1);
    c.t += 10 * TERN_SEC;                   /* the window forgets */
    CHECK(tern_throttle_probability(t) == 0);
    tern_throttle_free(t);
}

static void throttle_rejects_at_about_its_probability(void)
{
    fake_clock c = {0};
    tern_throttle_options o = {.window = 10 * TERN_SEC, .now = fake_now, .clock_arg = &c};
    tern_throttle *t;
    CHECK_EQ(tern_throttle_new(&o, &t), 0);
    /* a backend refusing everything: p = r / (r + 1) climbs toward 1 */
    int refused = 0;
    for (int i = 0; i < 2000; i++)
        refused += tern_throttle_allow(t) == -EAGAIN;
    CHECK(refused > 1900);      /* mean ~1993 */
    tern_throttle_free(t);
}

/* ---- rate limiter ---------------------------------------------------------- */

static tern_ratelimit *limiter(fake_clock *c, double rate, double burst, size_t max_keys)
{
    tern_ratelimit_options o = {.rate = rate, .burst = burst, .max_keys = max_keys,
                                .now = fake_now, .clock_arg = c};
    tern_ratelimit *rl;
    CHECK_EQ(tern_ratelimit_new(&o, &rl), 0);
    return rl;
}

/* tern_ratelimit_take as one number: 0 when taken, the retry_after it set
 * (always > 0) with -EAGAIN, else its -errno (retry_after then 0). */
static int64_t take(tern_ratelimit *rl, const char *key, int n)
{
    int64_t wait = -1;
    int rc = tern_ratelimit_take(rl, key, n, &wait);
    if (rc == -EAGAIN) {
        CHECK(wait > 0);
        return wait;
    }
    CHECK_EQ(wait, 0);
    return rc;
}

static void ratelimit_bucket_holds_burst_and_refills_at_rate(void)
{
    fake_clock c = {.t = 5 * TERN_SEC};
    tern_ratelimit *rl = limiter(&c, 10, 5, 0);
    CHECK_EQ(tern_ratelimit_tokens(rl, NULL), 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(take(rl, NULL, 1), 0);
    CHECK_EQ(tern_ratelimit_tokens(rl, NULL), 0);
    CHECK_EQ(take(rl, NULL, 1), 100 * TERN_MS);  /* the next token */
    int64_t wait = 0;
    CHECK_EQ(tern_ratelimit_take(rl, NULL, 1, &wait), -EAGAIN);
    CHECK_EQ(wait, 100 * TERN_MS);
    CHECK_EQ(tern_ratelimit_take(rl, NULL, 1, NULL), -EAGAIN);   /* the wait not wanted */
    CHECK_EQ(tern_ratelimit_take(rl, NULL, 0, &wait), -EINVAL);
    c.t += 40 * TERN_MS;
    CHECK_EQ(take(rl, NULL, 1), 60 * TERN_MS);
    CHECK_EQ(take(rl, NULL, 2), 160 * TERN_MS);
    c.t += 60 * TERN_MS;
    CHECK_EQ(take(rl, NULL, 1), 0);
    c.t += 10 * TERN_SEC;       /* refills to the burst, no further */
    CHECK_EQ(tern_ratelimit_tokens(rl, NULL), 5);
    CHECK_EQ(take(rl, NULL, 6), -EINVAL);
    CHECK_EQ(take(rl, NULL, 5), 0);
    CHECK(take(rl, NULL, 1) > 0);
    tern_ratelimit_free(rl);
}

static void ratelimit_allows_exactly_burst_plus_rate_times_time(void)
{
    fake_clock c = {0};
    tern_ratelimit *rl = limiter(&c, 100, 20, 0);
    int allowed = 0;
    /* 10 s of fake time, asking every 1 ms as fast as allowed */
    for (int ms = 0; ms <= 10000; ms++, c.t += TERN_MS)
        while (take(rl, "k", 1) == 0)
            allowed++;
    CHECK_EQ(allowed, 20 + 100 * 10);
    struct tern_ratelimit_stats st;
    CHECK_EQ(tern_ratelimit_stats(rl, &st), 0);
    CHECK_EQ(st.allowed, (uint64_t)allowed);
    CHECK_EQ(st.limited, 10001);
    tern_ratelimit_free(rl);
}

static void ratelimit_keys_are_isolated(void)
{
    fake_clock c = {0};
    tern_ratelimit *rl = limiter(&c, 1, 3, 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(take(rl, "10.0.0.1", 1), 0);
    CHECK_EQ(take(rl, "10.0.0.1", 1), TERN_SEC);
    CHECK_EQ(tern_ratelimit_tokens(rl, "10.0.0.2"), 3);
    CHECK_EQ(take(rl, "10.0.0.2", 1), 0);
    CHECK_EQ(tern_ratelimit_tokens(rl, NULL), 3);   /* the global bucket is its own */
    tern_ratelimit_free(rl);
}

static void ratelimit_evicts_the_least_recently_used_key_at_the_bound(void)
{
    fake_clock c = {0};
    tern_ratelimit *rl = limiter(&c, 1, 2, 2);
    CHECK_EQ(take(rl, "a", 2), 0);
    CHECK_EQ(take(rl, "b", 2), 0);
    CHECK(take(rl, "a", 1) > 0);     /* a is now the most recent */
    CHECK_EQ(take(rl, "c", 1), 0);   /* evicts b */
    struct tern_ratelimit_stats st;
    CHECK_EQ(tern_ratelimit_stats(rl, &st), 0);
    CHECK_EQ(st.evicted, 1);
    CHECK_EQ(st.keys, 2);
    CHECK_EQ(tern_ratelimit_tokens(rl, "a"), 0);    /* kept, still empty */
    CHECK_EQ(tern_ratelimit_tokens(rl, "b"), 2);    /* gone: a new one is full */
    /* many keys never grow the map past its bound */
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK_EQ(take(rl, key, 1), 0);
    }
    CHECK_EQ(tern_ratelimit_stats(rl, &st), 0);
    CHECK_EQ(st.keys, 2);
    CHECK_EQ(st.evicted, 1001);
    tern_ratelimit_free(rl);
}

/* ---- bulkhead -------------------------------------------------------------- */

typedef struct waiter {
    tern_bulkhead *b;
    tern_ctx *ctx;
    atomic_int rc;
    atomic_int done;
} waiter;

static int waiter_co(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->rc, tern_bulkhead_acquire(w->b, w->ctx));
    atomic_store(&w->done, 1);
    return 0;
}

static int bulkhead_entry(void *arg)
{
    (void)arg;
    tern_bulkhead *b;
    CHECK_EQ(tern_bulkhead_new(&(tern_bulkhead_options){.max = 2, .queue = 1}, &b), 0);
    CHECK_EQ(tern_bulkhead_acquire(b, NULL), 0);
    CHECK_EQ(tern_bulkhead_acquire(b, NULL), 0);
    waiter w = {.b = b, .rc = 1};
    CHECK_EQ(tern_go(waiter_co, &w), 0);
    for (int i = 0; i < 100; i++) {
        struct tern_bulkhead_stats st;
        CHECK_EQ(tern_bulkhead_stats(b, &st), 0);
        if (st.queued == 1)
            break;
        tern_sleep(TERN_MS);
    }
    CHECK(!atomic_load(&w.done));                   /* queued, parked */
    CHECK_EQ(tern_bulkhead_acquire(b, NULL), -EBUSY);   /* queue full: shed */
    tern_bulkhead_release(b);
    for (int i = 0; i < 1000 && !atomic_load(&w.done); i++)
        tern_sleep(TERN_MS);
    CHECK_EQ(atomic_load(&w.rc), 0);
    struct tern_bulkhead_stats st;
    CHECK_EQ(tern_bulkhead_stats(b, &st), 0);
    CHECK_EQ(st.acquired, 3);
    CHECK_EQ(st.queued, 1);
    CHECK_EQ(st.shed, 1);
    CHECK_EQ(st.in_flight, 2);

    /* a waiter's context ends its wait */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_bulkhead_acquire(b, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    tern_bulkhead_release(b);
    tern_bulkhead_release(b);
    tern_bulkhead_free(b);

    /* and so does max_wait */
    CHECK_EQ(tern_bulkhead_new(&(tern_bulkhead_options){.max = 1, .queue = 4,
                                                        .max_wait = 20 * TERN_MS},
                               &b),
             0);
    CHECK_EQ(tern_bulkhead_acquire(b, NULL), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_bulkhead_acquire(b, NULL), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 20 * TERN_MS);
    CHECK_EQ(tern_bulkhead_stats(b, &st), 0);
    CHECK_EQ(st.timeouts, 1);
    tern_bulkhead_release(b);
    tern_bulkhead_free(b);
    CHECK_EQ(tern_bulkhead_new(&(tern_bulkhead_options){.max = 0}, &b), -EINVAL);
    return 0;
}

static void bulkhead_limits_in_flight_queues_and_sheds(void)
{
    run_ok(bulkhead_entry, NULL, 2);
}

/* ---- adaptive limit -------------------------------------------------------- */

/* One round: fill up to the limit, let rtt pass, release them all. */
static void round_at(tern_adaptive *a, fake_clock *c, int64_t rtt)
{
    int64_t starts[1000];
    int n = 0;
    while (n < 1000 && tern_adaptive_acquire(a, &starts[n]) == 0)
        n++;
    c->t += rtt;
    for (int i = 0; i < n; i++)
        tern_adaptive_release(a, starts[i], false);
}

static void adaptive_limit_grows_under_low_latency_and_shrinks_under_high(void)
{
    fake_clock c = {0};
    tern_adaptive_options o = {.initial = 10, .min = 2, .max = 200, .now = fake_now,
                               .clock_arg = &c};
    tern_adaptive *a;
    CHECK_EQ(tern_adaptive_new(&o, &a), 0);
    int prev = tern_adaptive_limit(a);
    for (int r = 0; r < 10; r++) {
        round_at(a, &c, 10 * TERN_MS);
        int now = tern_adaptive_limit(a);
        CHECK(now >= prev);
        prev = now;
    }
    CHECK(prev >= 40);          /* steady RTT: grows by ~0.2 sqrt(limit) per sample */
    int high = prev;
    for (int r = 0; r < 5; r++)
        round_at(a, &c, 100 * TERN_MS);     /* 10x the norm: queueing */
    CHECK(tern_adaptive_limit(a) < high / 4);
    CHECK(tern_adaptive_limit(a) >= 2);

    /* at the limit, the next call is shed */
    int64_t s[1000];
    int n = 0;
    while (n < 1000 && tern_adaptive_acquire(a, &s[n]) == 0)
        n++;
    CHECK_EQ(n, tern_adaptive_limit(a));
    struct tern_adaptive_stats st;
    CHECK_EQ(tern_adaptive_stats(a, &st), 0);
    CHECK(st.shed >= 1);
    CHECK_EQ(st.in_flight, (uint64_t)n);
    /* a drop cuts it by 10% */
    int before = tern_adaptive_limit(a);
    for (int i = 0; i < n; i++)
        tern_adaptive_release(a, s[i], i == 0);
    (void)before;
    CHECK_EQ(tern_adaptive_stats(a, &st), 0);
    CHECK_EQ(st.dropped, 1);
    CHECK_EQ(st.in_flight, 0);
    tern_adaptive_free(a);
}

static void adaptive_drop_cuts_the_limit_by_a_tenth(void)
{
    fake_clock c = {0};
    tern_adaptive *a;
    CHECK_EQ(tern_adaptive_new(&(tern_adaptive_options){.initial = 50, .now = fake_now,
                                                        .clock_arg = &c},
                               &a),
             0);
    int64_t s;
    CHECK_EQ(tern_adaptive_acquire(a, &s), 0);
    tern_adaptive_release(a, s, true);
    CHECK_EQ(tern_adaptive_limit(a), 45);
    /* an idle service (1 in flight of 45) learns nothing from its RTT */
    CHECK_EQ(tern_adaptive_acquire(a, &s), 0);
    c.t += TERN_MS;
    tern_adaptive_release(a, s, false);
    CHECK_EQ(tern_adaptive_limit(a), 45);
    tern_adaptive_free(a);
}

/* ---- many coroutines on two Ps at once -------------------------------------- */

typedef struct hammer {
    tern_ratelimit *rl;
    tern_breaker *br;
    tern_adaptive *ad;
    tern_bulkhead *bh;
    atomic_int allowed, adaptive_ok, bulk_ok;
    tern_waitgroup wg;
} hammer;

#define HAMMER_COS 8
#define HAMMER_OPS 2000

static int hammer_co(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < HAMMER_OPS; i++) {
        if (i % 128 == 0)
            tern_yield();       /* keep the monitor quiet under TSan */
        if (tern_ratelimit_take(h->rl, (i & 1) ? "shared" : NULL, 1, NULL) == 0)
            atomic_fetch_add(&h->allowed, 1);
        tern_breaker_ticket t;
        if (tern_breaker_allow(h->br, &t) == 0)
            tern_breaker_record(h->br, t, i % 3 != 0);
        int64_t s;
        if (tern_adaptive_acquire(h->ad, &s) == 0) {
            atomic_fetch_add(&h->adaptive_ok, 1);
            if (i % 64 == 0)
                tern_yield();
            tern_adaptive_release(h->ad, s, i % 50 == 0);
        }
        if (tern_bulkhead_acquire(h->bh, NULL) == 0) {
            atomic_fetch_add(&h->bulk_ok, 1);
            if (i % 16 == 0)
                tern_yield();
            tern_bulkhead_release(h->bh);
        }
    }
    tern_waitgroup_done(&h->wg);
    return 0;
}

static int hammer_entry(void *arg)
{
    (void)arg;
    fake_clock c = {0};     /* frozen: the buckets never refill */
    hammer h = {0};
    h.rl = limiter(&c, 10, 100, 0);
    CHECK_EQ(tern_breaker_new(&(tern_breaker_options){.min_requests = 100000}, &h.br), 0);
    CHECK_EQ(tern_adaptive_new(&(tern_adaptive_options){.initial = 4, .max = 8}, &h.ad), 0);
    CHECK_EQ(tern_bulkhead_new(&(tern_bulkhead_options){.max = 3, .queue = 2}, &h.bh), 0);
    tern_waitgroup_add(&h.wg, HAMMER_COS);
    for (int i = 0; i < HAMMER_COS; i++)
        CHECK_EQ(tern_go(hammer_co, &h), 0);
    tern_waitgroup_wait(&h.wg, NULL);
    /* exactly the two bursts, whatever the interleaving */
    CHECK_EQ(atomic_load(&h.allowed), 200);
    struct tern_ratelimit_stats rs;
    CHECK_EQ(tern_ratelimit_stats(h.rl, &rs), 0);
    CHECK_EQ(rs.allowed + rs.limited, HAMMER_COS * HAMMER_OPS);
    struct tern_breaker_stats bs;
    CHECK_EQ(tern_breaker_stats(h.br, &bs), 0);
    CHECK_EQ(bs.allowed, HAMMER_COS * HAMMER_OPS);
    CHECK_EQ(bs.successes + bs.failures, HAMMER_COS * HAMMER_OPS);
    struct tern_adaptive_stats as;
    CHECK_EQ(tern_adaptive_stats(h.ad, &as), 0);
    CHECK_EQ(as.acquired, (uint64_t)atomic_load(&h.adaptive_ok));
    CHECK_EQ(as.acquired + as.shed, HAMMER_COS * HAMMER_OPS);
    CHECK_EQ(as.in_flight, 0);
    struct tern_bulkhead_stats ks;
    CHECK_EQ(tern_bulkhead_stats(h.bh, &ks), 0);
    CHECK_EQ(ks.acquired, (uint64_t)atomic_load(&h.bulk_ok));
    CHECK_EQ(ks.acquired + ks.shed, HAMMER_COS * HAMMER_OPS);
    CHECK_EQ(ks.in_flight, 0);
    tern_ratelimit_free(h.rl);
    tern_breaker_free(h.br);
    tern_adaptive_free(h.ad);
    tern_bulkhead_free(h.bh);
    return 0;
}

static void guards_stay_consistent_under_concurrent_use(void)
{
    run_ok(hammer_entry, NULL, 2);
}

/* ---- a NULL object names the function ------------------------------------- */

static void null_breaker(void) { tern_breaker_allow(NULL, NULL); }
static void null_throttle(void) { tern_throttle_record(NULL, true); }
static void null_ratelimit(void) { tern_ratelimit_take(NULL, "k", 1, NULL); }
static void null_bulkhead(void) { tern_bulkhead_release(NULL); }
static void null_adaptive(void) { tern_adaptive_limit(NULL); }
static void null_budget(void) { tern_retry_budget_try_withdraw(NULL); }
static void null_client(void) { tern_resilient_client_do(NULL, NULL, NULL, NULL); }
static void null_stats(void)
{
    struct tern_breaker_stats st;
    tern_breaker_stats(NULL, &st);
}

static void a_null_object_aborts_naming_the_function(void)
{
    static const struct {
        void (*fn)(void);
        const char *says;
    } cases[] = {
        {null_breaker, "tern: tern_breaker_allow: b is NULL"},
        {null_throttle, "tern: tern_throttle_record: t is NULL"},
        {null_ratelimit, "tern: tern_ratelimit_take: rl is NULL"},
        {null_bulkhead, "tern: tern_bulkhead_release: b is NULL"},
        {null_adaptive, "tern: tern_adaptive_limit: a is NULL"},
        {null_budget, "tern: tern_retry_budget_try_withdraw: b is NULL"},
        {null_client, "tern: tern_resilient_client_do: rc is NULL"},
        {null_stats, "tern: tern_breaker_stats: b is NULL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        child_result r = run_child(cases[i].fn);
        CHECK(!r.exited && r.sig == SIGABRT);
        CHECK(strstr(r.err, cases[i].says) != NULL);
    }
}

/* Rule 3 of the grammar: a constructor that fails leaves *out NULL, so a
 * caller that frees on every path frees nothing twice. */
static void constructors_that_fail_leave_out_null(void)
{
    void *junk = (void *)&junk;
    tern_breaker *b = junk;
    CHECK_EQ(tern_breaker_new(&(tern_breaker_options){.window = -1}, &b), -EINVAL);
    CHECK(b == NULL);
    tern_throttle *t = junk;
    CHECK_EQ(tern_throttle_new(&(tern_throttle_options){.k = -1}, &t), -EINVAL);
    CHECK(t == NULL);
    tern_ratelimit *rl = junk;
    CHECK_EQ(tern_ratelimit_new(&(tern_ratelimit_options){.rate = 0}, &rl), -EINVAL);
    CHECK(rl == NULL);
    tern_bulkhead *bh = junk;
    CHECK_EQ(tern_bulkhead_new(&(tern_bulkhead_options){.max = 0}, &bh), -EINVAL);
    CHECK(bh == NULL);
    tern_retry_budget *rb = junk;
    CHECK_EQ(tern_retry_budget_new(&(tern_retry_budget_options){.max_tokens = -1}, &rb), -EINVAL);
    CHECK(rb == NULL);
    tern_resilient_client *rc = junk;
    CHECK_EQ(tern_resilient_client_new(&(tern_resilient_client_options){0}, &rc), -EINVAL);
    CHECK(rc == NULL);
}

TESTS(T(backoff_ceiling_doubles_up_to_the_cap),
      T(backoff_full_jitter_stays_in_bounds_and_covers_the_range),
      T(retry_default_predicate_knows_transient_failures),
      T(retry_retries_transient_failures_within_backoff_bounds),
      T(retry_gives_up_after_max_attempts_and_on_permanent_errors),
      T(retry_budget_counts_deposits_reserve_and_cap), T(retry_stops_when_the_budget_is_exhausted),
      T(retry_never_sleeps_past_the_context_deadline),
      T(breaker_opens_at_the_threshold_only_after_min_requests),
      T(breaker_window_forgets_outcomes_older_than_it),
      T(breaker_half_opens_after_the_duration_and_closes_on_success),
      T(breaker_half_open_admits_n_trials_and_reopens_on_a_failure),
      T(breaker_ignores_outcomes_admitted_in_an_earlier_state),
      T(throttle_probability_follows_requests_and_accepts),
      T(throttle_rejects_at_about_its_probability),
      T(ratelimit_bucket_holds_burst_and_refills_at_rate),
      T(ratelimit_allows_exactly_burst_plus_rate_times_time), T(ratelimit_keys_are_isolated),
      T(ratelimit_evicts_the_least_recently_used_key_at_the_bound),
      T(bulkhead_limits_in_flight_queues_and_sheds),
      T(adaptive_limit_grows_under_low_latency_and_shrinks_under_high),
      T(adaptive_drop_cuts_the_limit_by_a_tenth), T(guards_stay_consistent_under_concurrent_use),
      T(constructors_that_fail_leave_out_null), T(a_null_object_aborts_naming_the_function))
