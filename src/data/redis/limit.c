/*
 * limit.c - a global rate limit: GCRA in a Lua script.
 *
 * GCRA keeps one number per key, the theoretical arrival time (TAT) of the
 * next request if requests came exactly at the rate.  With T = period /
 * rate (the emission interval) a request at `now` is allowed when
 * TAT + T - burst * T <= now, and then TAT becomes max(TAT, now) + T.  It
 * is a token bucket of `burst` tokens refilled one per T, stored as a
 * timestamp: one key, one script run, no background refill.
 *
 * The script reads the server's clock (TIME, in microseconds), so clients
 * on different machines agree; Redis 7 replicates a script's effects, not
 * the script, so a clock read before a write is allowed.  The key expires
 * when the bucket would be full again, leaving nothing behind.
 */
#include <errno.h>
#include <stdio.h>

#include "base/check.h"
#include "data/redis/internal.h"

static tern__redis_script gcra_script = {
    .src = "local t = redis.call('TIME')\n"
           "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
           "local T = tonumber(ARGV[1])\n"
           "local burst = tonumber(ARGV[2])\n"
           "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
           "if tat < now then tat = now end\n"
           "local new_tat = tat + T\n"
           "local allow_at = new_tat - burst * T\n"
           "if allow_at > now then return {0, allow_at - now} end\n"
           "redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)\n"
           "return {1, 0}\n",
};

int tern_redis_limit_allow(tern_redis_client *cl, const char *key,
                           const tern_redis_limit *lim, bool *allowed, int64_t *retry_after,
                           tern_ctx *ctx)
{
    TERN_CHECK_ARG(key);
    TERN_CHECK_ARG(lim);
    TERN_CHECK_ARG(allowed);
    *allowed = false;
    if (retry_after)
        *retry_after = 0;
    if (lim->rate < 1 || lim->period < 1 || lim->burst < 1 || lim->period / lim->rate < TERN_US)
        return -EINVAL;
    char t_us[24], burst[24];
    snprintf(t_us, sizeof t_us, "%lld", (long long)(lim->period / lim->rate / TERN_US));
    snprintf(burst, sizeof burst, "%lld", (long long)lim->burst);
    const char *argv[] = {key, t_us, burst};
    tern_redis_reply *r;
    int err = tern__redis_script_run(cl, &gcra_script, 3, argv, 1, &r, ctx);
    if (!err && (tern_redis_reply_type(r) != TERN_REDIS_ARRAY || tern_redis_reply_len(r) != 2))
        err = -EPROTO;
    if (!err) {
        *allowed = tern_redis_reply_int(tern_redis_reply_at(r, 0)) == 1;
        if (retry_after)
            *retry_after = tern_redis_reply_int(tern_redis_reply_at(r, 1)) * TERN_US;
    }
    tern_redis_reply_free(r);
    return err;
}
