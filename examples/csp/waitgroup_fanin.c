/*
 * waitgroup_fanin.c - Go's WaitGroup fan-in:
 *
 *     for i := range shards { wg.Add(1); go func() { defer wg.Done(); results <- work(i) }() }
 *     go func() { wg.Wait(); close(results) }()
 *     for r := range results { total += r }
 *
 * N workers each sum the squares over their own shard of 1..N*SHARD and
 * report it two ways: on a channel that a closer coroutine closes once the
 * WaitGroup reaches zero (so the receiver's loop ends by itself), and into
 * a mutex-protected running total.  Both totals must equal the closed form.
 */
#include <stdint.h>
#include <stdio.h>

#include <tern/tern.h>

#define WORKERS 8
#define SHARD 10000L

static tern_waitgroup wg = TERN_WAITGROUP_INIT, closer_done = TERN_WAITGROUP_INIT;
static tern_mutex total_mu = TERN_MUTEX_INIT;
static long long total_locked;
static tern_chan *results;

static int worker(void *arg)
{
    long shard = (long)(intptr_t)arg;
    long long sum = 0;
    for (long i = shard * SHARD + 1; i <= (shard + 1) * SHARD; i++)
        sum += (long long)i * i;

    tern_mutex_lock(&total_mu);
    total_locked += sum;
    tern_mutex_unlock(&total_mu);

    int e = tern_chan_send(results, &sum, NULL);
    if (e < 0)
        fprintf(stderr, "worker %ld: send: %s\n", shard, tern_strerror(e));
    tern_waitgroup_done(&wg);
    return 0;
}

/* Closing from the receiver's side would race the senders; the WaitGroup
 * tells a third party when the last sender has finished. */
static int closer(void *arg)
{
    (void)arg;
    tern_waitgroup_wait(&wg, NULL);
    tern_chan_close(results);
    tern_waitgroup_done(&closer_done);
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    int e = tern_chan_new(sizeof(long long), 0, &results);
    if (e < 0) {
        fprintf(stderr, "tern_chan_new: %s\n", tern_strerror(e));
        return 1;
    }
    printf("%d workers on %d Ps, each summing i*i over %ld numbers\n", WORKERS, tern_runtime_procs(), SHARD);
    for (long i = 0; i < WORKERS; i++) {
        tern_waitgroup_add(&wg, 1);
        int e = tern_go(worker, (void *)(intptr_t)i);
        if (e < 0) {
            fprintf(stderr, "tern_go: %s\n", tern_strerror(e));
            return 1;
        }
    }
    tern_waitgroup_add(&closer_done, 1);
    tern_go(closer, NULL);

    long long total = 0;
    int reports = 0;
    for (;;) {
        long long part;
        bool ok;
        tern_chan_recv(results, &part, &ok, NULL);
        if (!ok)
            break;                      /* closed: every worker reported */
        total += part;
        reports++;
    }
    long long n = WORKERS * SHARD;
    long long want = n * (n + 1) * (2 * n + 1) / 6;
    printf("channel fan-in: %d reports, total %lld\n", reports, total);
    printf("mutex fan-in:   total %lld\n", total_locked);
    printf("expected:       total %lld\n", want);
    if (reports != WORKERS || total != want || total_locked != want) {
        fprintf(stderr, "totals do not match\n");
        return 1;
    }
    tern_waitgroup_wait(&closer_done, NULL);  /* no GC: free once nobody can touch it */
    tern_chan_free(results);
    return 0;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0)
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
    return r != 0;
}
