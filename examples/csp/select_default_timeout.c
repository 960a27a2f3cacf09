/*
 * select_default_timeout.c - Go's two ways of not waiting forever:
 *
 *     select { case q <- ev: default: dropped++ }           // never block
 *     select { case r := <-reply: case <-ctx.Done(): }      // block, bounded
 *
 * tern_chan_try_select() is select with `default`: it returns -EAGAIN when no case
 * is ready.  tern_chan_select() with a ctx from tern_ctx_with_timeout() returns
 * -ETIMEDOUT when the deadline passes first.
 */
#include <errno.h>
#include <stdio.h>

#include <tern/tern.h>

#define SLOW_MS 80

static tern_waitgroup service_wg = TERN_WAITGROUP_INIT;

static int fail(const char *what, int got)
{
    fprintf(stderr, "%s: got %d (%s)\n", what, got, tern_strerror(got));
    return 1;
}

static int slow_service(void *arg)
{
    tern_chan *reply = arg;
    tern_sleep(SLOW_MS * TERN_MS);
    int answer = 42;
    tern_chan_send(reply, &answer, NULL);
    tern_waitgroup_done(&service_wg);
    return 0;
}

/* Wait for one value on ch for at most ms; return the select's result. */
static int recv_within(tern_chan *ch, int *v, int64_t ms)
{
    tern_ctx *ctx;
    int e = tern_ctx_with_timeout(NULL, ms * TERN_MS, &ctx);
    if (e < 0)
        return e;
    tern_chan_case c[] = {{.ch = ch, .op = TERN_CHAN_RECV, .elem = v}};
    int r = tern_chan_select(c, 1, ctx);
    tern_ctx_free(ctx);
    return r;
}

static int entry(void *arg)
{
    (void)arg;
    /* A metrics queue that must never slow the request path down: when it
     * is full, drop the event rather than wait. */
    tern_chan *q, *reply;
    int e = tern_chan_new(sizeof(int), 3, &q);
    if (e < 0 || (e = tern_chan_new(sizeof(int), 0, &reply)) < 0)
        return fail("tern_chan_new", e);
    int sent = 0, dropped = 0, got = 0;
    for (int ev = 1; ev <= 5; ev++) {
        tern_chan_case c[] = {{.ch = q, .op = TERN_CHAN_SEND, .elem = &ev}};
        int r = tern_chan_try_select(c, 1);
        if (r == 0)
            sent++;
        else if (r == -EAGAIN)
            dropped++;
        else
            return fail("try send", r);
    }
    printf("non-blocking send of 5 events to a queue of 3: %d queued, %d dropped\n", sent, dropped);
    if (sent != 3 || dropped != 2) {
        fprintf(stderr, "want 3 queued and 2 dropped\n");
        return 1;
    }

    int v, r;
    tern_chan_case c[] = {{.ch = q, .op = TERN_CHAN_RECV, .elem = &v}};
    while ((r = tern_chan_try_select(c, 1)) == 0)
        got++;
    printf("non-blocking receive drained %d events, then: %s\n", got, tern_strerror(r));
    if (got != 3 || r != -EAGAIN)
        return fail("drain", r);
    tern_chan_free(q);

    /* A slow dependency: give it 20 ms, log, then allow it more time. */
    tern_waitgroup_add(&service_wg, 1);
    tern_go(slow_service, reply);
    int64_t t0 = tern_now();
    r = recv_within(reply, &v, 20);
    long long ms = (tern_now() - t0) / TERN_MS;
    printf("waited %lld ms for a reply that takes %d ms: %s\n", ms, SLOW_MS, tern_strerror(r));
    if (r != -ETIMEDOUT || ms < 20)
        return fail("first wait should time out after >= 20 ms", r);

    r = recv_within(reply, &v, 1000);
    ms = (tern_now() - t0) / TERN_MS;
    printf("second wait (1000 ms budget): case %d fired, value %d at %lld ms\n", r, v, ms);
    if (r != 0 || v != 42 || ms < SLOW_MS)
        return fail("second wait should get 42", r);
    tern_waitgroup_wait(&service_wg, NULL);   /* the service is done with reply */
    tern_chan_free(reply);
    return 0;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0)
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
    return r != 0;
}
