/*
 * test_kit_resilience_http.c - the resilience module wired into HTTP,
 * against a real tern server on 127.0.0.1:0: the rate-limit and
 * concurrency middleware's answers, and the resilient client's retries,
 * breaker and hedging, counting what reached the server.
 */
#include "check.h"
#include "http_raw.h"

#include <errno.h>
#include <stdatomic.h>

#include <tern/resilience.h>

/* ---- a client ---------------------------------------------------------------- */

/* A plain GET with the plain client: status, and a header's value copied. */
static int plain_fetch(tern_http_client *c, const char *url, const char *const *headers,
                       const char *want_header, char *value, size_t size)
{
    tern_http_client_response *r;
    tern_http_client_request req = {.url = url, .headers = headers};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    int status = tern_http_client_response_status(r);
    if (want_header) {
        const char *v = tern_http_client_response_header(r, want_header);
        snprintf(value, size, "%s", v ? v : "(none)");
    }
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, 1 << 16, &body, &len), 0);
    tern_http_client_response_free(r);
    return status;
}

/* ---- handlers ---------------------------------------------------------------- */

static atomic_int calls;

static int hello(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    atomic_fetch_add(&calls, 1);
    return tern_http_resp_text(w, 200, "hello");
}

/* ---- a fake clock shared with the server's threads ------------------------- */

static _Atomic int64_t fake_t;

static int64_t fake_now(void *arg)
{
    (void)arg;
    return atomic_load(&fake_t);
}

/* ---- rate limit ------------------------------------------------------------ */

static const char *key_header(tern_http_req *r, void *arg)
{
    (void)arg;
    return tern_http_req_header(r, "X-Key");
}

static int ratelimit_entry(void *arg)
{
    (void)arg;
    atomic_store(&calls, 0);
    atomic_store(&fake_t, 1000 * TERN_SEC);
    tern_ratelimit *rl;
    /* one token every 2 s, two held */
    tern_ratelimit_options lo = {.rate = 0.5, .burst = 2, .now = fake_now};
    CHECK_EQ(tern_ratelimit_new(&lo, &rl), 0);
    tern_http_ratelimit_options mo = {.limiter = rl};
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_ratelimit, &mo}, {hello, NULL}}, 2);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char ra[32];
    CHECK_EQ(plain_fetch(c, sv.url, NULL, NULL, NULL, 0), 200);
    CHECK_EQ(plain_fetch(c, sv.url, NULL, NULL, NULL, 0), 200);
    CHECK_EQ(plain_fetch(c, sv.url, NULL, "Retry-After", ra, sizeof ra), 429);
    CHECK(strcmp(ra, "2") == 0);                /* exactly 2 s to the next token */
    atomic_fetch_add(&fake_t, 500 * TERN_MS);
    CHECK_EQ(plain_fetch(c, sv.url, NULL, "Retry-After", ra, sizeof ra), 429);
    CHECK(strcmp(ra, "2") == 0);                /* 1.5 s rounds up */
    atomic_fetch_add(&fake_t, 1400 * TERN_MS);
    CHECK_EQ(plain_fetch(c, sv.url, NULL, "Retry-After", ra, sizeof ra), 429);
    CHECK(strcmp(ra, "1") == 0);                /* 0.1 s rounds up to 1, never 0 */
    atomic_fetch_add(&fake_t, 100 * TERN_MS);
    CHECK_EQ(plain_fetch(c, sv.url, NULL, NULL, NULL, 0), 200);
    CHECK_EQ(atomic_load(&calls), 3);           /* refused requests never reached it */
    struct tern_ratelimit_stats st;
    CHECK_EQ(tern_ratelimit_stats(rl, &st), 0);
    CHECK_EQ(st.allowed, 3);
    CHECK_EQ(st.limited, 3);
    CHECK_EQ(st.keys, 1);                       /* one client IP */
    server_stop(&sv);

    /* a key function: keys are isolated, no key is not limited */
    tern_ratelimit_free(rl);
    CHECK_EQ(tern_ratelimit_new(&lo, &rl), 0);
    mo = (tern_http_ratelimit_options){.limiter = rl, .key = key_header};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_ratelimit, &mo}, {hello, NULL}}, 2);
    const char *const alice[] = {"X-Key", "alice", NULL}, *const bob[] = {"X-Key", "bob", NULL};
    CHECK_EQ(plain_fetch(c, sv.url, alice, NULL, NULL, 0), 200);
    CHECK_EQ(plain_fetch(c, sv.url, alice, NULL, NULL, 0), 200);
    CHECK_EQ(plain_fetch(c, sv.url, alice, NULL, NULL, 0), 429);
    CHECK_EQ(plain_fetch(c, sv.url, bob, NULL, NULL, 0), 200);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(plain_fetch(c, sv.url, NULL, NULL, NULL, 0), 200);
    server_stop(&sv);
    tern_http_client_free(c);
    tern_ratelimit_free(rl);
    return 0;
}

static void mw_ratelimit_answers_429_with_retry_after_rounded_up(void)
{
    run_test(ratelimit_entry, NULL);
}

/* ---- concurrency ----------------------------------------------------------- */

static atomic_int inside;
static tern_chan *release_ch;

/* Holds its request until the test sends on release_ch. */
static int hold(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    atomic_fetch_add(&inside, 1);
    CHECK_EQ(tern_chan_recv(release_ch, NULL, NULL, NULL), 0);
    return tern_http_resp_text(w, 200, "held");
}

typedef struct bg_get {
    tern_http_client *c;
    const char *url;
    atomic_int status;
    tern_waitgroup wg;
} bg_get;

static int bg_get_co(void *arg)
{
    bg_get *g = arg;
    atomic_store(&g->status, plain_fetch(g->c, g->url, NULL, NULL, NULL, 0));
    tern_waitgroup_done(&g->wg);
    return 0;
}

static void concurrency_case(tern_http_concurrency_options *mo, const char *want_retry_after)
{
    atomic_store(&inside, 0);
    CHECK_EQ(tern_chan_new(1, 0, &release_ch), 0);
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_concurrency, mo}, {hold, NULL}}, 2);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    bg_get g = {.c = c, .url = sv.url};
    tern_waitgroup_add(&g.wg, 1);
    CHECK_EQ(tern_go(bg_get_co, &g), 0);
    for (int i = 0; i < 2000 && atomic_load(&inside) == 0; i++)
        tern_sleep(TERN_MS);
    CHECK_EQ(atomic_load(&inside), 1);
    char ra[32];
    CHECK_EQ(plain_fetch(c, sv.url, NULL, "Retry-After", ra, sizeof ra), 503);
    CHECK(strcmp(ra, want_retry_after) == 0);
    CHECK_EQ(atomic_load(&inside), 1);          /* the shed one never ran */
    char one = 1;
    CHECK_EQ(tern_chan_send(release_ch, &one, NULL), 0);
    tern_waitgroup_wait(&g.wg, NULL);
    CHECK_EQ(atomic_load(&g.status), 200);
    /* the slot is free again */
    tern_waitgroup_add(&g.wg, 1);
    CHECK_EQ(tern_go(bg_get_co, &g), 0);
    CHECK_EQ(tern_chan_send(release_ch, &one, NULL), 0);
    tern_waitgroup_wait(&g.wg, NULL);
    CHECK_EQ(atomic_load(&g.status), 200);
    tern_http_client_free(c);
    server_stop(&sv);
    tern_chan_free(release_ch);
}

static int concurrency_entry(void *arg)
{
    (void)arg;
    tern_bulkhead *b;
    CHECK_EQ(tern_bulkhead_new(&(tern_bulkhead_options){.max = 1}, &b), 0);
    /* ns, sent in whole seconds rounded up */
    tern_http_concurrency_options mo = {.bulkhead = b, .retry_after = 2500 * TERN_MS};
    concurrency_case(&mo, "3");
    struct tern_bulkhead_stats bs;
    CHECK_EQ(tern_bulkhead_stats(b, &bs), 0);
    CHECK_EQ(bs.shed, 1);
    CHECK_EQ(bs.acquired, 2);
    CHECK_EQ(bs.in_flight, 0);
    tern_bulkhead_free(b);

    tern_adaptive *a;
    CHECK_EQ(tern_adaptive_new(&(tern_adaptive_options){.initial = 1, .max = 1}, &a), 0);
    mo = (tern_http_concurrency_options){.adaptive = a};
    concurrency_case(&mo, "1");
    struct tern_adaptive_stats as;
    CHECK_EQ(tern_adaptive_stats(a, &as), 0);
    CHECK_EQ(as.shed, 1);
    CHECK_EQ(as.acquired, 2);
    CHECK_EQ(as.in_flight, 0);
    tern_adaptive_free(a);
    return 0;
}

static void mw_concurrency_sheds_with_503_and_retry_after(void)
{
    run_test(concurrency_entry, NULL);
}

/* ---- resilient client: retries --------------------------------------------- */

static atomic_int fail_next;        /* requests still to fail */
static atomic_int fail_status;

static int flaky(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    atomic_fetch_add(&calls, 1);
    if (atomic_fetch_sub(&fail_next, 1) > 0)
        return tern_http_resp_error(w, atomic_load(&fail_status), NULL);
    return tern_http_resp_text(w, 200, "ok");
}

static void reset_flaky(int n, int status)
{
    atomic_store(&calls, 0);
    atomic_store(&fail_next, n);
    atomic_store(&fail_status, status);
}

/* A call's status (or -errno), its response released. */
static int rcall(tern_resilient_client *rc, const char *method, const char *url, tern_ctx *ctx)
{
    tern_http_client_request req = {.method = method, .url = url};
    tern_http_client_response *r = NULL;
    int e = tern_resilient_client_do(rc, &req, &r, ctx);
    if (e < 0)
        return e;
    int status = tern_http_client_response_status(r);
    tern_resilient_client_response_free(rc, r);
    return status;
}

static int retries_entry(void *arg)
{
    (void)arg;
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{flaky, NULL}}, 1);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    tern_resilient_client *rc;
    tern_resilient_client_options o = {.client = c, .max_attempts = 4,
                                       .backoff_base = TERN_MS, .backoff_cap = 2 * TERN_MS};
    CHECK_EQ(tern_resilient_client_new(&o, &rc), 0);

    reset_flaky(2, 503);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 200);
    CHECK_EQ(atomic_load(&calls), 3);
    struct tern_resilient_client_stats st;
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.calls, 1);
    CHECK_EQ(st.attempts, 3);
    CHECK_EQ(st.retried, 2);

    reset_flaky(100, 502);          /* gives up after max_attempts with the status */
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 502);
    CHECK_EQ(atomic_load(&calls), 4);

    reset_flaky(1, 500);            /* 500 is not retryable by default */
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 500);
    CHECK_EQ(atomic_load(&calls), 1);

    reset_flaky(1, 503);            /* POST is not idempotent: never retried */
    CHECK_EQ(rcall(rc, "POST", sv.url, NULL), 503);
    CHECK_EQ(atomic_load(&calls), 1);

    /* a deadline shorter than any backoff: one attempt, no sleep past it */
    tern_resilient_client *slow;
    tern_resilient_client_options so = {.client = c, .max_attempts = 4,
                                        .backoff_base = 10 * TERN_SEC,
                                        .backoff_cap = 10 * TERN_SEC};
    CHECK_EQ(tern_resilient_client_new(&so, &slow), 0);
    reset_flaky(100, 503);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 200 * TERN_MS, &ctx), 0);
    int64_t t0 = tern_now();
    int got = rcall(slow, "GET", sv.url, ctx);
    /* either the drawn backoff passed the deadline (503 at once) or it fit
     * and the deadline cut the sleep */
    CHECK(got == 503 || got == -ETIMEDOUT);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    tern_ctx_free(ctx);
    tern_resilient_client_free(slow);
    tern_resilient_client_free(rc);

    /* a budget with nothing in it: no retries */
    tern_retry_budget_options bo = {.ratio = -1, .min_per_sec = -1};
    o.budget = &bo;
    CHECK_EQ(tern_resilient_client_new(&o, &rc), 0);
    reset_flaky(100, 503);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 503);
    CHECK_EQ(atomic_load(&calls), 1);
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.budget_exhausted, 1);
    CHECK_EQ(st.retried, 0);
    tern_resilient_client_free(rc);

    /* connection refused is retried: a port nobody listens on */
    o.budget = NULL;
    CHECK_EQ(tern_resilient_client_new(&o, &rc), 0);
    server_stop(&sv);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), -ECONNREFUSED);
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.attempts, 4);
    CHECK_EQ(st.retried, 3);
    tern_resilient_client_free(rc);
    tern_http_client_free(c);
    return 0;
}

static void resilient_client_retries_a_flaky_handler(void)
{
    run_test(retries_entry, NULL);
}

/* ---- resilient client: breaker ---------------------------------------------- */

static int breaker_entry(void *arg)
{
    (void)arg;
    atomic_store(&fake_t, 0);
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{flaky, NULL}}, 1);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    tern_breaker_options bo = {.min_requests = 4, .failure_ratio = 0.5,
                               .open_duration = 5 * TERN_SEC};
    tern_resilient_client *rc;
    tern_resilient_client_options o = {.client = c, .max_attempts = 1, .breaker = &bo,
                                       .now = fake_now};
    CHECK_EQ(tern_resilient_client_new(&o, &rc), 0);
    reset_flaky(100, 500);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 500);
    CHECK_EQ(tern_resilient_client_breaker_state(rc, sv.addr), TERN_BREAKER_CLOSED);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 500);
    CHECK_EQ(tern_resilient_client_breaker_state(rc, sv.addr), TERN_BREAKER_OPEN);
    /* open: refused without reaching the server */
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), -EAGAIN);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), -EAGAIN);
    CHECK_EQ(atomic_load(&calls), 4);
    /* the server recovers; after the open duration one trial closes it */
    reset_flaky(0, 500);
    atomic_fetch_add(&fake_t, 5 * TERN_SEC);
    CHECK_EQ(tern_resilient_client_breaker_state(rc, sv.addr), TERN_BREAKER_HALF_OPEN);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 200);
    CHECK_EQ(tern_resilient_client_breaker_state(rc, sv.addr), TERN_BREAKER_CLOSED);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 200);
    CHECK_EQ(atomic_load(&calls), 2);
    struct tern_resilient_client_stats st;
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.rejected, 2);
    /* other hosts have their own breaker */
    CHECK_EQ(tern_resilient_client_breaker_state(rc, "127.0.0.1:1"), TERN_BREAKER_CLOSED);
    tern_resilient_client_free(rc);
    tern_http_client_free(c);
    server_stop(&sv);
    return 0;
}

static void resilient_client_breaker_opens_on_a_failing_server_and_recovers(void)
{
    run_test(breaker_entry, NULL);
}

static int throttle_entry(void *arg)
{
    (void)arg;
    atomic_store(&fake_t, 0);
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{flaky, NULL}}, 1);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    tern_throttle_options to = {.k = 2, .window = 10 * TERN_SEC};
    tern_resilient_client *rc;
    tern_resilient_client_options o = {.client = c, .max_attempts = 1, .throttle = &to,
                                       .now = fake_now};
    CHECK_EQ(tern_resilient_client_new(&o, &rc), 0);
    /* accepted: nothing is throttled */
    reset_flaky(0, 503);
    for (int i = 0; i < 20; i++)
        CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 200);
    /* overloaded: once requests pass 2x the 20 accepts, more and more
     * are refused locally and never reach the server */
    reset_flaky(1000, 503);
    int refused = 0;
    for (int i = 0; i < 200; i++) {
        int got = rcall(rc, "GET", sv.url, NULL);
        CHECK(got == 503 || got == -EAGAIN);
        refused += got == -EAGAIN;
    }
    CHECK_EQ(atomic_load(&calls), 200 - refused);
    /* p = (r - 40) / (r + 1) for r requests in the window: the expected
     * count refused is ~111 (sd ~6); 60 is far out of chance's reach */
    CHECK(refused > 60);
    struct tern_resilient_client_stats st;
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.rejected, (uint64_t)refused);
    /* the window forgets the overload */
    atomic_fetch_add(&fake_t, 10 * TERN_SEC);
    reset_flaky(0, 503);
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 200);
    tern_resilient_client_free(rc);
    tern_http_client_free(c);
    server_stop(&sv);
    return 0;
}

static void resilient_client_throttle_refuses_locally_while_the_server_refuses(void)
{
    run_test(throttle_entry, NULL);
}

/* ---- resilient client: hedging ---------------------------------------------- */

/* The first request is slow (300 ms), any later one answers at once. */
static int slow_first(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    if (atomic_fetch_add(&calls, 1) == 0) {
        tern_sleep(300 * TERN_MS);
        return tern_http_resp_text(w, 200, "slow");
    }
    return tern_http_resp_text(w, 200, "fast");
}

static int hedge_entry(void *arg)
{
    (void)arg;
    atomic_store(&calls, 0);
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{slow_first, NULL}}, 1);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    tern_resilient_client *rc;
    tern_resilient_client_options o = {.client = c, .hedge_delay = 50 * TERN_MS};
    CHECK_EQ(tern_resilient_client_new(&o, &rc), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    tern_http_client_request req = {.url = sv.url};
    tern_http_client_response *r;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_resilient_client_do(rc, &req, &r, ctx), 0);
    int64_t took = tern_now() - t0;
    CHECK_EQ(tern_http_client_response_status(r), 200);
    const char *body;
    size_t len;
    /* the body is read through the winner's context, alive until freed */
    CHECK_EQ(tern_http_client_response_body(r, 1024, &body, &len), 0);
    CHECK(strcmp(body, "fast") == 0);
    CHECK(took >= 50 * TERN_MS && took < 200 * TERN_MS);
    struct tern_resilient_client_stats st;
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.hedged, 1);
    CHECK_EQ(st.hedge_wins, 1);
    CHECK_EQ(st.cancelled, 1);
    CHECK_EQ(st.attempts, 2);
    tern_resilient_client_response_free(rc, r);
    /* the slow request was cancelled: its connection is given up well
     * before the server's 300 ms are over */
    struct tern_http_client_stats cs;
    for (int i = 0; i < 100; i++) {
        tern_http_client_stats(c, &cs);
        if (cs.active == 0)
            break;
        tern_sleep(TERN_MS);
    }
    CHECK_EQ(cs.active, 0);
    CHECK(tern_now() - t0 < 250 * TERN_MS);

    /* an answer within the delay: no hedge */
    CHECK_EQ(rcall(rc, "GET", sv.url, NULL), 200);
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.hedged, 1);
    CHECK_EQ(st.attempts, 3);
    /* a POST is never hedged */
    atomic_store(&calls, 0);
    t0 = tern_now();
    CHECK_EQ(rcall(rc, "POST", sv.url, NULL), 200);
    CHECK(tern_now() - t0 >= 300 * TERN_MS);
    CHECK_EQ(tern_resilient_client_stats(rc, &st), 0);
    CHECK_EQ(st.hedged, 1);
    tern_ctx_free(ctx);
    tern_resilient_client_free(rc);
    tern_http_client_free(c);
    server_stop(&sv);
    return 0;
}

static void resilient_client_hedge_answers_first_and_the_slow_one_is_cancelled(void)
{
    run_test(hedge_entry, NULL);
}

TESTS(T(mw_ratelimit_answers_429_with_retry_after_rounded_up),
      T(mw_concurrency_sheds_with_503_and_retry_after),
      T(resilient_client_retries_a_flaky_handler),
      T(resilient_client_breaker_opens_on_a_failing_server_and_recovers),
      T(resilient_client_throttle_refuses_locally_while_the_server_refuses),
      T(resilient_client_hedge_answers_first_and_the_slow_one_is_cancelled))
