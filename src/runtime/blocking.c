/*
 * blocking.c - tern_blocking(): run a blocking call on a bounded pool of
 * plain threads while the calling coroutine parks.
 *
 * Threads are started on demand up to the bound and exit after 10 s idle.
 * They are joinable, never detached: a thread that leaves puts its handle
 * on `exited`, and the next start or tern__blocking_fini joins it.  Counting
 * a thread gone is not enough, because its thread-specific destructors
 * (OpenSSL's per-thread error state, say) still run after it returns; a
 * process that exits meanwhile has already torn those libraries down, and
 * what the thread held is lost.
 * The job lives in the caller's control block (never on its stack, which
 * may be copied out in shared-stack mode).  `inflight` counts queued and
 * running jobs and drops only after the wake, so deadlock detection never
 * sees zero while a wake is still on its way.
 */
#define _GNU_SOURCE
#include "internal.h"

#include "base/thread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;                /* jobs queued or stopping */
    pthread_cond_t gone;                /* a thread exited */
    tern_co *head, *tail;
    int max, threads, idle;
    pthread_t *exited;                  /* left, not yet joined (<= max) */
    int nexited;
    long queued, running;
    atomic_long inflight;
    bool stopping;
} pool;

int tern__blocking_init(int max_threads)
{
    memset(&pool, 0, sizeof pool);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&pool.gone, NULL);
    pool.max = max_threads;
    pool.exited = calloc((size_t)max_threads, sizeof *pool.exited);
    return pool.exited ? 0 : -ENOMEM;
}

/* Join the threads that have left.  Called with the lock held: what is
 * left of a thread on the list is its exit path, which never takes it. */
static void join_exited(void)
{
    for (int i = 0; i < pool.nexited; i++)
        pthread_join(pool.exited[i], NULL);
    pool.nexited = 0;
}

void tern__blocking_fini(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.work);
    while (pool.threads > 0)
        pthread_cond_wait(&pool.gone, &pool.lock);
    join_exited();
    pthread_mutex_unlock(&pool.lock);
    free(pool.exited);
    pool.exited = NULL;
    pthread_cond_destroy(&pool.work);
    pthread_cond_destroy(&pool.gone);
    pthread_mutex_destroy(&pool.lock);
}

long tern__blocking_inflight(void)
{
    return atomic_load(&pool.inflight);
}

void tern__blocking_stats(struct tern_runtime_stats *st)
{
    pthread_mutex_lock(&pool.lock);
    st->blocking_threads = (uint64_t)pool.threads;
    st->blocking_queued = (uint64_t)pool.queued;
    st->blocking_running = (uint64_t)pool.running;
    pthread_mutex_unlock(&pool.lock);
}

static void *pool_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head && !pool.stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 10;
            pool.idle++;
            int r = pthread_cond_timedwait(&pool.work, &pool.lock, &ts);
            pool.idle--;
            if (r == ETIMEDOUT && !pool.head)
                goto out;
        }
        /* Queued jobs still run when stopping: their coroutines are freed
         * only after the pool is gone. */
        tern_co *co = pool.head;
        if (!co)
            goto out;
        TERN_ASSERT(pool.queued > 0 && pool.tail);
        pool.head = co->next;
        if (!pool.head)
            pool.tail = NULL;
        pool.queued--;
        pool.running++;
        pthread_mutex_unlock(&pool.lock);
        int r = co->off_fn(co->off_arg);
        tern_wake(co, co->off_ticket, r);
        pthread_mutex_lock(&pool.lock);
        pool.running--;
        atomic_fetch_sub(&pool.inflight, 1);
        /* queued and running jobs are in flight; nothing else is (lock held) */
        TERN_ASSERT(pool.running >= 0 &&
                    atomic_load(&pool.inflight) == pool.queued + pool.running);
    }
out:
    TERN_ASSERT(pool.nexited < pool.max);
    pool.exited[pool.nexited++] = pthread_self();
    pool.threads--;
    pthread_cond_broadcast(&pool.gone);
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

int tern_blocking(tern_fn *fn, void *arg)
{
    tern_co *co = tern__self_checked("tern_blocking");
    if (!fn)
        return -EINVAL;
    /* A shared-stack coroutine's stack is another's while it waits, so a
     * pool thread must not be handed a pointer into it. */
    if (co->pinned) {
        const char *a = arg, *lo = co->pinned->shared.lo;
        if (a >= lo && a < lo + co->pinned->shared.size)
            return -EFAULT;
    }
    co->off_fn = fn;
    co->off_arg = arg;
    co->off_ticket = tern_wait_prepare();
    co->next = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.idle == 0 && pool.threads < pool.max) {
        join_exited();
        pthread_t th;
        if (tern__thread_start_quiet(&th, pool_thread, NULL) == 0)
            pool.threads++;
        if (pool.threads == 0) {
            pthread_mutex_unlock(&pool.lock);
            tern_wait_cancel(co->off_ticket);
            return -EAGAIN;
        }
    }
    TERN_ASSERT(!pool.head == !pool.tail);
    if (pool.tail)
        pool.tail->next = co;
    else
        pool.head = co;
    pool.tail = co;
    pool.queued++;
    atomic_fetch_add(&pool.inflight, 1);
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    return tern_wait(co->off_ticket, "blocking call", TERN_FOREVER);
}
