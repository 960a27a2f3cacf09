/*
 * script.c - Lua scripts by hash: EVALSHA, loading the script once with
 * SCRIPT LOAD (which also tells us its SHA-1, so we need no hash code of
 * our own), and EVAL when the server answers NOSCRIPT (restarted, or
 * SCRIPT FLUSH), which caches it again there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "data/redis/internal.h"

enum { ARGS_MAX = 16 };

static int load(tern_redis_client *cl, tern__redis_script *s, tern_ctx *ctx)
{
    if (atomic_load_explicit(&s->loaded, memory_order_acquire))
        return 0;
    tern_mutex_lock(&s->mu);
    int err = 0;
    if (!atomic_load_explicit(&s->loaded, memory_order_relaxed)) {
        const char *argv[] = {"SCRIPT", "LOAD", s->src};
        tern_redis_reply *r;
        err = tern_redis_command(cl, 3, argv, NULL, &r, ctx);
        size_t n = 0;
        const char *sha = err ? NULL : tern_redis_reply_str(r, &n);
        if (!err && (!sha || n != 40))
            err = -EPROTO;
        if (!err) {
            memcpy(s->sha, sha, 40);
            s->sha[40] = '\0';
            atomic_store_explicit(&s->loaded, 1, memory_order_release);
        }
        tern_redis_reply_free(r);
    }
    tern_mutex_unlock(&s->mu);
    return err;
}

static bool noscript(const tern_redis_reply *r)
{
    const char *msg = r ? tern_redis_reply_str(r, NULL) : NULL;
    return msg && strncmp(msg, "NOSCRIPT", 8) == 0;
}

int tern__redis_script_run(tern_redis_client *cl, tern__redis_script *s, int argc,
                           const char *const *argv, int nkeys, tern_redis_reply **out,
                           tern_ctx *ctx)
{
    TERN_ASSERT(argc >= 0 && argc + 3 <= ARGS_MAX && nkeys <= argc);
    *out = NULL;
    int err = load(cl, s, ctx);
    if (err)
        return err;
    char nk[12];
    snprintf(nk, sizeof nk, "%d", nkeys);
    const char *a[ARGS_MAX] = {"EVALSHA", s->sha, nk};
    memcpy(a + 3, argv, (size_t)argc * sizeof *argv);
    err = tern_redis_command(cl, argc + 3, a, NULL, out, ctx);
    if (err == -EREMOTEIO && noscript(*out)) {
        tern_redis_reply_free(*out);
        a[0] = "EVAL";
        a[1] = s->src;
        err = tern_redis_command(cl, argc + 3, a, NULL, out, ctx);
    }
    return err;
}
