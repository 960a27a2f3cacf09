/*
 * lock.c - a lease lock with a fencing token.
 *
 * Acquire is SET key token NX PX ttl: atomic, and the lease ends by
 * itself if the holder dies.  The token (128 random bits) is the holder's
 * proof: renew and release are Lua scripts that act only while the key
 * still holds that token, so a holder whose lease ran out cannot extend or
 * delete its successor's lock (a plain DEL could).  A lease cannot stop a
 * paused holder from writing after it expired; the fencing token, INCR of
 * "<key>:fence" taken after the lock, is what lets the protected resource
 * refuse such a write (it keeps the highest token seen).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/check.h"
#include "base/hex.h"
#include "base/rand.h"
#include "data/redis/internal.h"

static tern__redis_script release_script = {
    .src = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
           "return redis.call('DEL', KEYS[1]) else return 0 end",
};
static tern__redis_script renew_script = {
    .src = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
           "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
};

static int ttl_ms(int64_t ttl, char *buf, size_t cap)
{
    if (ttl < TERN_MS)
        return -EINVAL;
    snprintf(buf, cap, "%lld", (long long)((ttl + TERN_MS - 1) / TERN_MS));
    return 0;
}

int tern_redis_lock_try_acquire(tern_redis_client *cl, const char *key, int64_t ttl,
                                tern_redis_lock *lk, tern_ctx *ctx)
{
    TERN_CHECK_ARG(key);
    TERN_CHECK_ARG(lk);
    if (strlen(key) > 190)
        return -ENAMETOOLONG;
    char ms[24];
    int err = ttl_ms(ttl, ms, sizeof ms);
    if (err)
        return err;
    tern_redis_lock l = {0};
    snprintf(l.key, sizeof l.key, "%s", key);
    uint8_t raw[16];
    tern__rand_fill(raw, sizeof raw);
    tern__hex(raw, sizeof raw, l.token);
    l.token[32] = '\0';

    const char *set[] = {"SET", l.key, l.token, "NX", "PX", ms};
    tern_redis_reply *r;
    err = tern_redis_command(cl, 6, set, NULL, &r, ctx);
    bool got = !err && tern_redis_reply_type(r) == TERN_REDIS_STATUS;
    tern_redis_reply_free(r);
    if (err)
        return err;
    if (!got)
        return -EAGAIN;     /* NX refused: nil */

    char fkey[sizeof l.key + 8];
    snprintf(fkey, sizeof fkey, "%s:fence", l.key);
    const char *incr[] = {"INCR", fkey};
    err = tern_redis_command(cl, 2, incr, NULL, &r, ctx);
    if (!err)
        l.fence = tern_redis_reply_int(r);
    tern_redis_reply_free(r);
    if (err) {
        /* Holding a lock we cannot fence would let the caller write
         * unfenced: give it back.  (If this fails too, the lease ends.) */
        tern_redis_lock_release(cl, &l, NULL);
        return err;
    }
    *lk = l;
    return 0;
}

int tern_redis_lock_acquire(tern_redis_client *cl, const char *key, int64_t ttl,
                            tern_redis_lock *lk, tern_ctx *ctx)
{
    int64_t wait = 2 * TERN_MS;
    for (;;) {
        int err = tern_redis_lock_try_acquire(cl, key, ttl, lk, ctx);
        if (err != -EAGAIN)
            return err;
        /* Jitter keeps waiters from retrying in lockstep. */
        int64_t d = wait / 2 + (int64_t)(tern__rand64() % (uint64_t)(wait / 2 + 1));
        err = tern_ctx_sleep(d, ctx);
        if (err)
            return err;
        if (wait < 100 * TERN_MS)
            wait *= 2;
    }
}

int tern_redis_lock_renew(tern_redis_client *cl, const tern_redis_lock *lk, int64_t ttl,
                          tern_ctx *ctx)
{
    TERN_CHECK_ARG(lk);
    char ms[24];
    int err = ttl_ms(ttl, ms, sizeof ms);
    if (err)
        return err;
    const char *argv[] = {lk->key, lk->token, ms};
    tern_redis_reply *r;
    err = tern__redis_script_run(cl, &renew_script, 3, argv, 1, &r, ctx);
    if (!err && tern_redis_reply_int(r) != 1)
        err = -ENOLCK;
    tern_redis_reply_free(r);
    return err;
}

int tern_redis_lock_release(tern_redis_client *cl, const tern_redis_lock *lk, tern_ctx *ctx)
{
    TERN_CHECK_ARG(lk);
    const char *argv[] = {lk->key, lk->token};
    tern_redis_reply *r;
    int err = tern__redis_script_run(cl, &release_script, 2, argv, 1, &r, ctx);
    if (!err && tern_redis_reply_int(r) != 1)
        err = -ENOLCK;
    tern_redis_reply_free(r);
    return err;
}
