/*
 * fanout_gather.c - an API gateway's parallel call, ported from Go:
 *
 *     ctx, cancel := context.WithTimeout(ctx, budget); defer cancel()
 *     go func() { results <- users.Get(ctx) }()
 *     go func() { results <- orders.List(ctx) }()
 *     for i := 0; i < 2; i++ { select { case r := <-results: ...
 *                                       case <-ctx.Done(): return partial } }
 *
 * Both backends run at once, so the call takes about max(latencies), not
 * their sum.  A timeout context bounds the whole call: in the second run
 * the orders backend is too slow, the gateway answers with what it has, and
 * the backend notices the cancellation and stops instead of leaking.
 */
#include <errno.h>
#include <stdio.h>

#include <tern/tern.h>

typedef struct backend {
    const char *name;
    int64_t latency_ms;
    tern_ctx *ctx;
    tern_chan *results;
    tern_waitgroup *wg;
} backend;

typedef struct reply {
    const char *name;
    int err;
} reply;

static int call_backend(void *arg)
{
    backend *b = arg;
    /* Go's select { case <-time.After(d): case <-ctx.Done(): }: 0 when
     * the whole latency passed, else ctx's error */
    reply r = {.name = b->name, .err = tern_ctx_sleep(b->latency_ms * TERN_MS, b->ctx)};
    if (r.err < 0)
        printf("    %s backend: abandoned its request (%s)\n", b->name, tern_strerror(r.err));
    tern_chan_send(b->results, &r, NULL);     /* buffered for both: never blocks */
    tern_waitgroup_done(b->wg);
    return 0;
}

/* Call both backends within budget_ms; 0 if the gateway answered as
 * expected (want_n answers, ctx error want_err, in under limit_ms). */
static int gateway(int64_t users_ms, int64_t orders_ms, int64_t budget_ms, int want_n, int want_err,
                   int64_t limit_ms)
{
    printf("gateway: users %lld ms, orders %lld ms, budget %lld ms\n", (long long)users_ms,
           (long long)orders_ms, (long long)budget_ms);
    tern_ctx *ctx;
    int e = tern_ctx_with_timeout(NULL, budget_ms * TERN_MS, &ctx);
    if (e < 0) {
        fprintf(stderr, "gateway: %s\n", tern_strerror(e));
        return 1;
    }
    tern_chan *results;
    if ((e = tern_chan_new(sizeof(reply), 2, &results)) < 0) {
        fprintf(stderr, "gateway: %s\n", tern_strerror(e));
        tern_ctx_free(ctx);
        return 1;
    }
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    backend bs[2] = {{"users", users_ms, ctx, results, &wg}, {"orders", orders_ms, ctx, results, &wg}};
    int64_t t0 = tern_now();
    int n = 0, err = 0;
    for (int i = 0; i < 2; i++) {
        tern_waitgroup_add(&wg, 1);
        tern_go(call_backend, &bs[i]);
    }
    while (n < 2) {
        reply r;
        if ((err = tern_chan_recv(results, &r, NULL, ctx)) < 0)
            break;                      /* out of budget: answer with what we have */
        printf("    %s answered at %lld ms\n", r.name, (long long)((tern_now() - t0) / TERN_MS));
        n++;
    }
    int64_t took = (tern_now() - t0) / TERN_MS;
    printf("  -> %d of 2 answers in %lld ms (sequential: %lld ms)%s%s\n", n, (long long)took,
           (long long)(users_ms + orders_ms), err ? ", partial: " : "", err ? tern_strerror(err) : "");
    /* Go's `defer cancel()`; C has no GC, so free ctx and the channel only
     * once no backend can touch them: none outlives the call. */
    tern_ctx_cancel(ctx);
    tern_waitgroup_wait(&wg, NULL);
    tern_ctx_free(ctx);
    tern_chan_free(results);
    if (n != want_n || err != want_err || took >= limit_ms) {
        fprintf(stderr, "want %d answers, %s, in under %lld ms\n", want_n, tern_strerror(want_err),
                (long long)limit_ms);
        return 1;
    }
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    /* Parallel: done in about max(40, 60) ms, well under the 100 ms sum. */
    if (gateway(40, 60, 200, 2, 0, 100) != 0)
        return 1;
    /* Orders is too slow for the budget: a partial answer at 100 ms. */
    return gateway(40, 500, 100, 1, -ETIMEDOUT, 500) != 0;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0)
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
    return r != 0;
}
