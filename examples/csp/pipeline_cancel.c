/*
 * pipeline_cancel.c - Go's pipeline with explicit cancellation ("Go
 * Concurrency Patterns: Pipelines and cancellation"):
 *
 *     gen(ctx) -> sq(ctx, in) -> sink
 *     select { case out <- v: case <-ctx.Done(): return }
 *
 * The generator is endless and the sink wants only K squares, then cancels
 * the context.  Stages blocked in a send would leak forever in a naive
 * pipeline; here each stage sends with the context in the select, so
 * cancelling unblocks and ends them all.  struct tern_runtime_stats proves nothing leaked:
 * afterwards only the main coroutine is alive.
 */
#include <stdio.h>

#include <tern/tern.h>

#define K 5

typedef struct stage {
    tern_ctx *ctx;
    tern_chan *in, *out;
    tern_waitgroup *wg;         /* done when the stage has returned */
} stage;

static int gen(void *arg)
{
    stage *s = arg;
    long n = 0;
    for (long v = 1;; v++) {
        /* Spelled out as Go would; square() passes the ctx to tern_chan_send,
         * the shorthand for the same select. */
        tern_chan_case c[] = {
            {.ch = s->out, .op = TERN_CHAN_SEND, .elem = &v},
            {.ch = tern_ctx_done(s->ctx), .op = TERN_CHAN_RECV},
        };
        if (tern_chan_select(c, 2, NULL) != 0)
            break;
        n++;
    }
    printf("  gen:    stopped after sending %ld values\n", n);
    tern_chan_close(s->out);            /* defer close(out) */
    tern_waitgroup_done(s->wg);
    return 0;
}

static int square(void *arg)
{
    stage *s = arg;
    long v;
    bool ok;
    int e = 0;
    while ((e = tern_chan_recv(s->in, &v, &ok, s->ctx)) == 0 && ok) {
        long sq = v * v;
        if ((e = tern_chan_send(s->out, &sq, s->ctx)) != 0)
            break;
    }
    /* Either exit is clean: the cancel itself, or gen closing its output
     * because it saw the cancel first. */
    printf("  square: stopped: %s\n", e ? tern_strerror(e) : "input closed by gen");
    tern_chan_close(s->out);
    tern_waitgroup_done(s->wg);
    return 0;
}

static uint64_t alive(void)
{
    struct tern_runtime_stats st;
    tern_runtime_stats(&st, NULL, 0);
    return st.alive;
}

static int entry(void *arg)
{
    (void)arg;
    tern_ctx *ctx = NULL;
    tern_chan *nums = NULL, *squares = NULL;
    int e = tern_ctx_with_cancel(NULL, &ctx);
    if (e == 0)
        e = tern_chan_new(sizeof(long), 0, &nums);
    if (e == 0)
        e = tern_chan_new(sizeof(long), 0, &squares);
    if (e < 0) {
        fprintf(stderr, "setting up: %s\n", tern_strerror(e));
        return 1;
    }
    tern_waitgroup wg = {0};
    tern_waitgroup_add(&wg, 2);
    stage g = {ctx, NULL, nums, &wg}, sq = {ctx, nums, squares, &wg};
    tern_go(gen, &g);
    tern_go(square, &sq);

    long sum = 0;
    printf("sink: taking %d squares from an endless generator:", K);
    for (int i = 0; i < K; i++) {
        long v = 0;
        bool ok = false;
        tern_chan_recv(squares, &v, &ok, NULL);
        printf(" %ld", ok ? v : -1L);
        sum += v;
    }
    printf("\nsink: done, cancelling (coroutines alive: %llu)\n", (unsigned long long)alive());
    tern_ctx_cancel(ctx);

    int64_t deadline = tern_deadline_after(TERN_SEC);
    while (alive() > 1 && tern_now() < deadline)
        tern_sleep(TERN_MS);
    uint64_t left = alive();
    printf("after cancel: %llu coroutine(s) alive, sum of squares %ld\n", (unsigned long long)left, sum);
    if (left != 1 || sum != 55) {
        fprintf(stderr, "want 1 coroutine alive and sum 55\n");
        tern_runtime_dump(stderr);
        return 1;
    }
    /* Freeing is C's part: only once both stages are past their last use
     * of the channels (a stage may still be inside tern_chan_close when
     * the sink sees the close), which the wait group says; the stats
     * above are a census, not a synchronisation. */
    tern_waitgroup_wait(&wg, NULL);
    tern_ctx_free(ctx);
    tern_chan_free(nums);
    tern_chan_free(squares);
    return 0;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0)
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
    return r != 0;
}
