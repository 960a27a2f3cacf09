/*
 * test_data_redis_helpers.c - the shop's helpers against a real
 * redis-server: sessions with a sliding TTL, the lease lock with fencing
 * tokens, the GCRA rate limit.
 */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <tern/redis.h>

#include "redis_server.h"

static redis_server srv;

static void stop_server(void)
{
    redis_server_stop(&srv);
}

static tern_redis_client *client(void)
{
    static bool once;
    if (!once) {
        once = true;
        atexit(stop_server);
    }
    redis_server_up(&srv);
    tern_redis_client_options o = {.addr = srv.sock};
    tern_redis_client *cl;
    CHECK_EQ(tern_redis_client_new(&o, &cl), 0);
    return cl;
}

/* ---- lock ---- */

typedef struct contenders {
    tern_redis_client *cl;
    tern_waitgroup wg;
    _Atomic int inside, overlaps, acquired;
    _Atomic int64_t last_fence;
    _Atomic int fence_regressions;
} contenders;

static int contender(void *arg)
{
    contenders *c = arg;
    for (int i = 0; i < 5; i++) {
        tern_redis_lock lk;
        tern_ctx *ctx;
        CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
        CHECK_EQ(tern_redis_lock_acquire(c->cl, "shop:lock", 5 * TERN_SEC, &lk, ctx), 0);
        tern_ctx_free(ctx);
        if (c->inside++ != 0)
            c->overlaps++;
        /* The fencing token only grows from one holder to the next. */
        if (lk.fence <= c->last_fence)
            c->fence_regressions++;
        c->last_fence = lk.fence;
        c->acquired++;
        tern_sleep(TERN_MS);
        c->inside--;
        CHECK_EQ(tern_redis_lock_release(c->cl, &lk, NULL), 0);
    }
    tern_waitgroup_done(&c->wg);
    return 0;
}

static int lock_main(void *arg)
{
    (void)arg;
    contenders c = {.cl = client()};
    CHECK_EQ(tern_redis_commandf(c.cl, NULL, NULL, "DEL shop:lock shop:lock:fence"), 0);
    enum { N = 20 };
    tern_waitgroup_add(&c.wg, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(tern_go(contender, &c), 0);
    CHECK_EQ(tern_waitgroup_wait(&c.wg, NULL), 0);
    CHECK_EQ(c.overlaps, 0);
    CHECK_EQ(c.fence_regressions, 0);
    CHECK_EQ(c.acquired, 5 * N);
    CHECK_EQ(c.last_fence, 5 * N);
    tern_redis_client_free(c.cl);
    return 0;
}

static void lock_excludes_other_coroutines(void)
{
    run_ok(lock_main, NULL, 2);
}

static int owner_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client();
    tern_redis_lock a, b;
    CHECK_EQ(tern_redis_lock_try_acquire(cl, "own", 2 * TERN_SEC, &a, NULL), 0);
    CHECK_EQ(tern_redis_lock_try_acquire(cl, "own", 2 * TERN_SEC, &b, NULL), -EAGAIN);
    /* Another client's handle on the same key cannot renew or release it. */
    tern_redis_lock fake = a;
    memcpy(fake.token, "00000000000000000000000000000000", 32);
    CHECK_EQ(tern_redis_lock_release(cl, &fake, NULL), -ENOLCK);
    CHECK_EQ(tern_redis_lock_renew(cl, &fake, 2 * TERN_SEC, NULL), -ENOLCK);
    char *v;
    CHECK_EQ(tern_redis_get(cl, "own", &v, NULL, NULL), 0);
    CHECK(strcmp(v, a.token) == 0);
    free(v);
    /* A bounded wait for a held lock ends with the ctx. */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_redis_lock_acquire(cl, "own", TERN_SEC, &b, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    /* The owner renews (the lease grows) and releases. */
    CHECK_EQ(tern_redis_lock_renew(cl, &a, 10 * TERN_SEC, NULL), 0);
    tern_redis_reply *r;
    CHECK_EQ(tern_redis_commandf(cl, &r, NULL, "PTTL own"), 0);
    CHECK(tern_redis_reply_int(r) > 9000);
    tern_redis_reply_free(r);
    CHECK_EQ(tern_redis_lock_release(cl, &a, NULL), 0);
    CHECK_EQ(tern_redis_lock_release(cl, &a, NULL), -ENOLCK);
    /* A lease that ran out belongs to the next holder, whom the old one
     * cannot release; its fencing token is higher. */
    CHECK_EQ(tern_redis_lock_try_acquire(cl, "own", 30 * TERN_MS, &a, NULL), 0);
    tern_sleep(80 * TERN_MS);
    CHECK_EQ(tern_redis_lock_try_acquire(cl, "own", 2 * TERN_SEC, &b, NULL), 0);
    CHECK(b.fence > a.fence);
    CHECK_EQ(tern_redis_lock_release(cl, &a, NULL), -ENOLCK);
    CHECK_EQ(tern_redis_lock_renew(cl, &a, TERN_SEC, NULL), -ENOLCK);
    CHECK_EQ(tern_redis_lock_release(cl, &b, NULL), 0);
    /* The scripts survive the server forgetting them (NOSCRIPT -> EVAL). */
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "SCRIPT FLUSH"), 0);
    CHECK_EQ(tern_redis_lock_try_acquire(cl, "own", TERN_SEC, &a, NULL), 0);
    CHECK_EQ(tern_redis_lock_release(cl, &a, NULL), 0);
    tern_redis_client_free(cl);
    return 0;
}

static void lock_renewed_and_released_only_by_its_owner(void)
{
    run_ok(owner_main, NULL, 2);
}

/* ---- rate limit ---- */

static int limit_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client();
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "DEL rl"), 0);
    /* 10 per second, bursts of 5. */
    tern_redis_limit lim = {.rate = 10, .period = TERN_SEC, .burst = 5};
    bool ok;
    int64_t retry;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(tern_redis_limit_allow(cl, "rl", &lim, &ok, &retry, NULL), 0);
        CHECK(ok);
        CHECK_EQ(retry, 0);
    }
    CHECK_EQ(tern_redis_limit_allow(cl, "rl", &lim, &ok, &retry, NULL), 0);
    CHECK(!ok);
    CHECK(retry > 50 * TERN_MS && retry <= 100 * TERN_MS);
    CHECK_EQ(tern_redis_limit_allow(cl, "rl", &lim, &ok, NULL, NULL), 0);
    CHECK(!ok);
    /* One emission interval later, one more (and only one). */
    tern_sleep(retry + 10 * TERN_MS);
    CHECK_EQ(tern_redis_limit_allow(cl, "rl", &lim, &ok, &retry, NULL), 0);
    CHECK(ok);
    CHECK_EQ(tern_redis_limit_allow(cl, "rl", &lim, &ok, &retry, NULL), 0);
    CHECK(!ok);
    /* The server forgot the script: EVALSHA's NOSCRIPT falls back to EVAL. */
    CHECK_EQ(tern_redis_commandf(cl, NULL, NULL, "SCRIPT FLUSH"), 0);
    CHECK_EQ(tern_redis_limit_allow(cl, "rl", &lim, &ok, &retry, NULL), 0);
    CHECK(!ok);
    /* Left alone, the bucket fills up to the burst again, not beyond. */
    tern_sleep(600 * TERN_MS);
    int allowed = 0;
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(tern_redis_limit_allow(cl, "rl", &lim, &ok, NULL, NULL), 0);
        allowed += ok;
    }
    CHECK_EQ(allowed, 5);
    tern_redis_limit bad = {.rate = 0, .period = TERN_SEC, .burst = 1};
    CHECK_EQ(tern_redis_limit_allow(cl, "rl", &bad, &ok, NULL, NULL), -EINVAL);
    tern_redis_client_free(cl);
    return 0;
}

static void gcra_limit_allows_the_burst_then_refuses_then_refills(void)
{
    run_ok(limit_main, NULL, 2);
}

/* ---- sessions ---- */

static int session_main(void *arg)
{
    (void)arg;
    tern_redis_client *cl = client();
    CHECK_EQ(tern_redis_session_put(cl, "sess:1", "{\"user\":7}", 10, 150 * TERN_MS, NULL), 0);
    /* Read every 100 ms for 500 ms: each read slides the 150 ms expiry. */
    for (int i = 0; i < 5; i++) {
        tern_sleep(100 * TERN_MS);
        char *v;
        size_t n;
        CHECK_EQ(tern_redis_session_get(cl, "sess:1", 150 * TERN_MS, &v, &n, NULL), 0);
        CHECK(n == 10 && strcmp(v, "{\"user\":7}") == 0);
        free(v);
    }
    /* Left alone, it ends. */
    tern_sleep(250 * TERN_MS);
    char *v;
    CHECK_EQ(tern_redis_session_get(cl, "sess:1", 150 * TERN_MS, &v, NULL, NULL), -ENOENT);
    CHECK(v == NULL);
    CHECK_EQ(tern_redis_session_put(cl, "sess:2", "x", 1, 0, NULL), -EINVAL);
    tern_redis_client_free(cl);
    return 0;
}

static void session_expiry_slides_with_each_read(void)
{
    run_ok(session_main, NULL, 2);
}

TESTS(T(session_expiry_slides_with_each_read), T(lock_excludes_other_coroutines), T(lock_renewed_and_released_only_by_its_owner),
      T(gcra_limit_allows_the_burst_then_refuses_then_refills))
