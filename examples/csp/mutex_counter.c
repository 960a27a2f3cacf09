/*
 * mutex_counter.c - Go's mutex-protected counter:
 *
 *     var mu sync.Mutex; var n int
 *     for i := 0; i < workers; i++ { go func() { for j := 0; j < 100000; j++ { mu.Lock(); n++; mu.Unlock() } }() }
 *
 * Two coroutines per P (so they really run in parallel on every worker
 * thread) each increment a plain counter 100,000 times under a tern_mutex.
 * Not one increment may be lost: the total must be exact.
 */
#include <stdio.h>

#include <tern/tern.h>

#define INCREMENTS 100000L

static tern_mutex mu = TERN_MUTEX_INIT;
static long counter;                    /* plain long: the mutex is all that guards it */
static tern_waitgroup wg = TERN_WAITGROUP_INIT;

static int incrementer(void *arg)
{
    (void)arg;
    for (long i = 0; i < INCREMENTS; i++) {
        tern_mutex_lock(&mu);
        counter++;
        tern_mutex_unlock(&mu);
        /* Scheduling is cooperative: give the P's other coroutines a turn
         * now and then, as Go's preemption would. */
        if (i % 4096 == 4095)
            tern_yield();
    }
    tern_waitgroup_done(&wg);
    return 0;
}

static int entry(void *arg)
{
    (void)arg;
    int workers = 2 * tern_runtime_procs();
    if (workers < 4)
        workers = 4;
    printf("%d coroutines on %d Ps, %ld locked increments each\n", workers, tern_runtime_procs(), INCREMENTS);

    int64_t t0 = tern_now();
    for (int i = 0; i < workers; i++) {
        tern_waitgroup_add(&wg, 1);
        int e = tern_go(incrementer, NULL);
        if (e < 0) {
            fprintf(stderr, "tern_go: %s\n", tern_strerror(e));
            return 1;
        }
    }
    tern_waitgroup_wait(&wg, NULL);
    int64_t ns = tern_now() - t0;

    struct tern_runtime_stats st;
    tern_runtime_stats(&st, NULL, 0);
    long want = workers * INCREMENTS;
    tern_mutex_lock(&mu);
    long got = counter;
    tern_mutex_unlock(&mu);
    printf("counter = %ld (expected %ld) in %lld ms, %.0f ns per locked increment\n", got, want,
           (long long)(ns / TERN_MS), (double)ns / (double)want);
    printf("scheduler: %llu switches, %llu steals across Ps\n", (unsigned long long)st.switches,
           (unsigned long long)st.steals);
    if (got != want) {
        fprintf(stderr, "lost %ld increments\n", want - got);
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
