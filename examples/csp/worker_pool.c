/*
 * worker_pool.c - Go's bounded worker pool with errgroup:
 *
 *     g, ctx := errgroup.WithContext(ctx); g.SetLimit(4)
 *     for _, j := range jobs { g.Go(func() error { return process(ctx, j) }) }
 *     err := g.Wait()
 *
 * 20 jobs of 20 ms go through a tern_group with limit 4: tern_group_go parks
 * while 4 run, so never more than 4 run at once.  Job 9 fails half-way; the
 * failure cancels the group's context, the jobs running beside it notice
 * through tern_ctx_err(tern_group_ctx(g)) and stop, no further job starts,
 * and tern_group_wait reports job 9's error.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include <tern/tern.h>

#define JOBS 20
#define LIMIT 4
#define FAILING_JOB 9

static tern_group *g;
static atomic_int running, max_running, started, completed, cancelled;

/* Work in 1 ms slices, checking for cancellation between them, as a Go job
 * would check ctx.Err() in its loop. */
static int job(void *arg)
{
    int id = (int)(intptr_t)arg;
    int now = atomic_fetch_add(&running, 1) + 1;
    int max = atomic_load(&max_running);
    while (now > max && !atomic_compare_exchange_weak(&max_running, &max, now))
        ;
    atomic_fetch_add(&started, 1);
    int r = 0;
    for (int ms = 0; ms < 20; ms++) {
        if (id == FAILING_JOB && ms == 10) {
            printf("  job %2d: failing with %s\n", id, tern_strerror(-EIO));
            r = -EIO;
            break;
        }
        if ((r = tern_ctx_err(tern_group_ctx(g))) != 0) {
            printf("  job %2d: stopping after %d ms: %s\n", id, ms, tern_strerror(r));
            atomic_fetch_add(&cancelled, 1);
            break;
        }
        tern_sleep(TERN_MS);
    }
    if (r == 0)
        atomic_fetch_add(&completed, 1);
    atomic_fetch_sub(&running, 1);
    return r;
}

static int entry(void *arg)
{
    (void)arg;
    int ne = tern_group_new(NULL, &(tern_group_options){.limit = LIMIT}, &g);
    if (ne < 0) {
        fprintf(stderr, "tern_group_new: %s\n", tern_strerror(ne));
        return 1;
    }
    printf("%d jobs, at most %d at a time; job %d will fail\n", JOBS, LIMIT, FAILING_JOB);
    int submitted = 0;
    for (int i = 0; i < JOBS; i++) {
        int e = tern_group_go(g, job, (void *)(intptr_t)i, NULL);
        if (e < 0) {
            printf("  job %2d and later: not started: %s\n", i, tern_strerror(e));
            break;
        }
        submitted++;
    }
    int err = tern_group_wait(g, NULL);
    int e = tern_group_free(g);
    printf("group: first error: %s\n", tern_strerror(err));
    printf("submitted %d, started %d, completed %d, cancelled %d, never started %d\n", submitted,
           atomic_load(&started), atomic_load(&completed), atomic_load(&cancelled), JOBS - submitted);
    printf("max running at once: %d (limit %d)\n", atomic_load(&max_running), LIMIT);

    int ok = err == -EIO && e == 0 && atomic_load(&max_running) == LIMIT && submitted < JOBS &&
             atomic_load(&started) == submitted && atomic_load(&cancelled) >= 1 &&
             atomic_load(&completed) + atomic_load(&cancelled) + 1 == submitted;
    if (!ok) {
        fprintf(stderr, "unexpected pool behaviour (group_free: %s)\n", tern_strerror(e));
        return 1;
    }
    return 0;
}

int main(void)
{
    int r = tern_run(entry, NULL);
    if (r < 0)
        fprintf(stderr, "tern_run: %s\n", tern_strerror(r));
    return r != 0;
}
