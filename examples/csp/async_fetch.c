/*
 * async_fetch.c - Go's "future over a channel":
 *
 *     ch := make(chan result, 1)
 *     go func() { ch <- fetch(url) }()
 *     doOtherWork()
 *     r := <-ch
 *
 * A fetch coroutine simulates 50 ms of network I/O with tern_sleep and sends
 * its result on a channel; meanwhile the caller does 30 ms of its own work
 * and only then receives, so the two overlap.
 */
#include <stdio.h>
#include <string.h>

#include <tern/tern.h>

#define FETCH_MS 50
#define WORK_STEPS 3
#define STEP_MS 10

typedef struct fetch_result {
    int status;
    char body[48];
} fetch_result;

typedef struct fetch_req {
    const char *url;
    tern_chan *reply;
    tern_waitgroup done;
} fetch_req;

static int fetch(void *arg)
{
    fetch_req *req = arg;
    tern_sleep(FETCH_MS * TERN_MS);     /* the network round trip */
    fetch_result r = {.status = 200};
    snprintf(r.body, sizeof r.body, "{\"user\": \"%s\"}", req->url);
    /* Buffer of 1: the send never blocks, so the fetcher exits even if the
     * caller has given up on it (Go's usual guard against a leak). */
    int e = tern_chan_send(req->reply, &r, NULL);
    if (e < 0)
        fprintf(stderr, "fetch: send: %s\n", tern_strerror(e));
    tern_waitgroup_done(&req->done);
    return 0;
}

static long ms_since(int64_t t0)
{
    return (long)((tern_now() - t0) / TERN_MS);
}

static int entry(void *arg)
{
    (void)arg;
    tern_chan *reply;
    int err = tern_chan_new(sizeof(fetch_result), 1, &reply);
    if (err < 0) {
        fprintf(stderr, "tern_chan_new: %s\n", tern_strerror(err));
        return 1;
    }
    fetch_req req = {.url = "/users/42", .reply = reply, .done = TERN_WAITGROUP_INIT};
    int64_t t0 = tern_now();
    tern_waitgroup_add(&req.done, 1);
    int e = tern_go(fetch, &req);
    if (e < 0) {
        fprintf(stderr, "tern_go: %s\n", tern_strerror(e));
        return 1;
    }
    printf("started fetch of %s (takes %d ms)\n", req.url, FETCH_MS);

    for (int step = 1; step <= WORK_STEPS; step++) {
        tern_sleep(STEP_MS * TERN_MS);
        printf("  caller: local work step %d done at %ld ms\n", step, ms_since(t0));
    }

    fetch_result r;
    bool ok = false;
    e = tern_chan_recv(reply, &r, &ok, NULL);
    long took = ms_since(t0);
    if (e < 0 || !ok) {
        fprintf(stderr, "recv: %s (ok=%d)\n", tern_strerror(e), ok);
        return 1;
    }
    printf("got status %d body %s after %ld ms (sequential would take %d ms)\n",
           r.status, r.body, took, FETCH_MS + WORK_STEPS * STEP_MS);

    if (r.status != 200 || strcmp(r.body, "{\"user\": \"/users/42\"}") != 0) {
        fprintf(stderr, "unexpected result: %d %s\n", r.status, r.body);
        return 1;
    }
    if (took < FETCH_MS) {
        fprintf(stderr, "result arrived after %ld ms, before the fetch could finish\n", took);
        return 1;
    }
    /* No GC in C: free the channel only once the fetcher has returned. */
    tern_waitgroup_wait(&req.done, NULL);
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
