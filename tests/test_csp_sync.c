/* test_csp_sync.c - mutex, rwmutex, cond, once, waitgroup, semaphore. */
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>

static tern_mutex mu = TERN_MUTEX_INIT;
static long counter;            /* guarded by mu: plain on purpose (TSan checks) */
static tern_waitgroup wg;

static int incrementer(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        tern_mutex_lock(&mu);
        counter++;
        if (i % 64 == 0)
            tern_yield();       /* hold it across a switch now and then */
        tern_mutex_unlock(&mu);
    }
    tern_waitgroup_done(&wg);
    return 0;
}

static int mutex_main(void *arg)
{
    (void)arg;
    counter = 0;
    long per = scaled(20000);
    tern_waitgroup_add(&wg, 8);
    for (int i = 0; i < 8; i++)
        tern_go(incrementer, (void *)per);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(counter, 8 * per);
    CHECK_EQ(tern_mutex_try_lock(&mu), 0);
    CHECK_EQ(tern_mutex_try_lock(&mu), -EAGAIN);
    tern_mutex_unlock(&mu);
    CHECK_EQ(atomic_load(&mu.state), 0);
    return 0;
}

static void mutex_excludes_across_ps(void)
{
    run_ok(mutex_main, NULL, 0);
}

/* A waiter stuck behind barging lockers gets the lock via starvation mode. */
static atomic_bool stop_hogs;

static int hog(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_hogs)) {
        tern_mutex_lock(&mu);
        int64_t t = tern_now();
        while (tern_now() - t < 50 * TERN_US)
            ;
        tern_mutex_unlock(&mu);
    }
    tern_waitgroup_done(&wg);
    return 0;
}

static int starve_main(void *arg)
{
    (void)arg;
    atomic_store(&stop_hogs, false);
    tern_waitgroup_add(&wg, 2);
    tern_go(hog, NULL);
    tern_go(hog, NULL);
    tern_sleep(5 * TERN_MS);
    int64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        int64_t t0 = tern_now();
        tern_mutex_lock(&mu);
        int64_t w = tern_now() - t0;
        tern_mutex_unlock(&mu);
        if (w > worst)
            worst = w;
        tern_sleep(100 * TERN_US);
    }
    atomic_store(&stop_hogs, true);
    tern_waitgroup_wait(&wg, NULL);
    fprintf(stderr, "   worst wait behind two hogs: %lld us\n", (long long)(worst / 1000));
    CHECK(worst < 200 * TERN_MS);
    return 0;
}

static void mutex_waiter_does_not_starve(void)
{
    run_ok(starve_main, NULL, 0);
}

static void unlock_unlocked_child(void)
{
    tern_mutex m = TERN_MUTEX_INIT;
    tern_mutex_unlock(&m);
}

static void unlocking_unlocked_mutex_aborts(void)
{
    child_result r = run_child(unlock_unlocked_child);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "unlock of unlocked mutex") != NULL);
}

static tern_rwmutex rw = TERN_RWMUTEX_INIT;
static atomic_int readers_in, max_readers, writer_in;
static long shared_value;

static int reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        tern_rwmutex_rlock(&rw);
        int r = atomic_fetch_add(&readers_in, 1) + 1;
        int m = atomic_load(&max_readers);
        while (r > m && !atomic_compare_exchange_weak(&max_readers, &m, r))
            ;
        CHECK_EQ(atomic_load(&writer_in), 0);
        long v = shared_value;
        tern_yield();
        CHECK_EQ(shared_value, v);      /* no writer inside */
        atomic_fetch_sub(&readers_in, 1);
        tern_rwmutex_runlock(&rw);
    }
    tern_waitgroup_done(&wg);
    return 0;
}

static int reader_once(void *arg)
{
    (void)arg;
    tern_rwmutex_rlock(&rw);
    tern_rwmutex_runlock(&rw);
    tern_waitgroup_done(&wg);
    return 0;
}

static int writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        tern_rwmutex_lock(&rw);
        CHECK_EQ(atomic_fetch_add(&writer_in, 1), 0);
        CHECK_EQ(atomic_load(&readers_in), 0);
        shared_value++;
        tern_yield();
        atomic_fetch_sub(&writer_in, 1);
        tern_rwmutex_unlock(&rw);
    }
    tern_waitgroup_done(&wg);
    return 0;
}

static int rw_main(void *arg)
{
    (void)arg;
    shared_value = 0;
    tern_waitgroup_add(&wg, 10);
    for (int i = 0; i < 8; i++)
        tern_go(reader, NULL);
    tern_go(writer, NULL);
    tern_go(writer, NULL);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(shared_value, 200);
    /* Readers share it: a second reader gets in while this one holds it
     * (if it could not, both would wait forever: a deadlock, exit 2).
     * How much the readers above overlapped depends on scheduling (little
     * under TSan), so that is only reported. */
    fprintf(stderr, "   readers inside at once, at most: %d\n", atomic_load(&max_readers));
    tern_rwmutex_rlock(&rw);
    tern_waitgroup_add(&wg, 1);
    tern_go(reader_once, NULL);
    tern_waitgroup_wait(&wg, NULL);
    tern_rwmutex_runlock(&rw);
    return 0;
}

static void rwmutex_readers_share_writers_exclude(void)
{
    run_ok(rw_main, NULL, 0);
}

static tern_cond cond = TERN_COND_INIT;
static int ready_count, go_flag;

static int cond_waiter(void *arg)
{
    (void)arg;
    tern_mutex_lock(&mu);
    ready_count++;
    while (!go_flag)
        tern_cond_wait(&cond, &mu, NULL);
    ready_count--;
    tern_mutex_unlock(&mu);
    tern_waitgroup_done(&wg);
    return 0;
}

static int cond_main(void *arg)
{
    (void)arg;
    tern_waitgroup_add(&wg, 10);
    for (int i = 0; i < 10; i++)
        tern_go(cond_waiter, NULL);
    for (;;) {
        tern_mutex_lock(&mu);
        int n = ready_count;
        tern_mutex_unlock(&mu);
        if (n == 10)
            break;
        tern_sleep(TERN_MS);
    }
    tern_cond_signal(&cond);        /* flag still false: it goes back to sleep */
    tern_sleep(TERN_MS);
    tern_mutex_lock(&mu);
    CHECK_EQ(ready_count, 10);
    go_flag = 1;
    tern_mutex_unlock(&mu);
    tern_cond_broadcast(&cond);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(ready_count, 0);
    return 0;
}

static void cond_broadcast_wakes_all(void)
{
    run_ok(cond_main, NULL, 0);
}

static tern_once once = TERN_ONCE_INIT;
static atomic_int once_runs, once_seen_done;

static void init_fn(void *arg)
{
    atomic_fetch_add(&once_runs, 1);
    tern_sleep(2 * TERN_MS);        /* others must wait for this */
    *(int *)arg = 1;
}

static int initialized;

static int once_user(void *arg)
{
    (void)arg;
    tern_once_do(&once, init_fn, &initialized);
    if (initialized)
        atomic_fetch_add(&once_seen_done, 1);
    tern_waitgroup_done(&wg);
    return 0;
}

static int once_main(void *arg)
{
    (void)arg;
    tern_waitgroup_add(&wg, 50);
    for (int i = 0; i < 50; i++)
        tern_go(once_user, NULL);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(atomic_load(&once_runs), 1);
    CHECK_EQ(atomic_load(&once_seen_done), 50);
    return 0;
}

static void once_runs_exactly_once(void)
{
    run_ok(once_main, NULL, 0);
}

static int wg_main(void *arg)
{
    (void)arg;
    tern_waitgroup w = TERN_WAITGROUP_INIT;
    tern_waitgroup_wait(&w, NULL);            /* zero: returns at once */
    tern_waitgroup_add(&w, 0);
    return 0;
}

static void waitgroup_zero_returns_at_once(void)
{
    run_ok(wg_main, NULL, 1);
}

static void negative_child(void)
{
    tern_waitgroup w = TERN_WAITGROUP_INIT;
    tern_waitgroup_done(&w);
}

static void waitgroup_negative_aborts(void)
{
    child_result r = run_child(negative_child);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "negative counter") != NULL);
}

/* Freed right after Wait returns: the last Done must be finished with it. */
static int wg_done_one(void *arg)
{
    tern_waitgroup_done(arg);
    return 0;
}

static int wg_free_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        tern_waitgroup *w = calloc(1, sizeof *w);
        tern_waitgroup_add(w, 3);
        for (int k = 0; k < 3; k++)
            tern_go(wg_done_one, w);
        tern_waitgroup_wait(w, NULL);
        free(w);
    }
    return 0;
}

static void waitgroup_can_be_freed_after_wait(void)
{
    run_ok(wg_free_main, NULL, 0);
}

static tern_sem sem = TERN_SEM_INIT(10);
static atomic_int sem_order[3], sem_next;

static int sem_big(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_sem_acquire(&sem, 8, NULL), 0);
    sem_order[atomic_fetch_add(&sem_next, 1)] = 8;
    tern_sem_release(&sem, 8);
    return 0;
}

static int sem_small(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_sem_acquire(&sem, 3, NULL), 0);
    sem_order[atomic_fetch_add(&sem_next, 1)] = 3;
    tern_sem_release(&sem, 3);
    return 0;
}

static int sem_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_sem_acquire(&sem, 5, NULL), 0);
    CHECK_EQ(tern_sem_try_acquire(&sem, 6), -EAGAIN);
    CHECK_EQ(tern_sem_acquire(&sem, 11, NULL), -EINVAL);
    tern_go(sem_big, NULL);             /* wants 8: must wait */
    tern_sleep(2 * TERN_MS);
    tern_go(sem_small, NULL);           /* 3 would fit now, but queues behind (FIFO) */
    tern_sleep(2 * TERN_MS);
    CHECK_EQ(atomic_load(&sem_next), 0);
    CHECK_EQ(tern_sem_try_acquire(&sem, 1), -EAGAIN);   /* no overtaking */
    tern_sem_release(&sem, 5);
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(atomic_load(&sem_next), 2);
    CHECK_EQ(sem_order[0], 8);
    CHECK_EQ(sem_order[1], 3);          /* after the 8 left: 8 + 3 > 10 */
    /* a bounded acquire gives up */
    CHECK_EQ(tern_sem_acquire(&sem, 10, NULL), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 3 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_sem_acquire(&sem, 1, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    tern_sem_release(&sem, 10);
    CHECK_EQ(tern_sem_try_acquire(&sem, 10), 0);
    tern_sem_release(&sem, 10);
    return 0;
}

static void semaphore_is_fifo_and_bounded(void)
{
    run_ok(sem_main, NULL, 2);
}

/* A cancelled head waiter lets the smaller ones behind it through. */
static atomic_int small_got;

static int sem_small_counted(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_sem_acquire(&sem, 1, NULL), 0);
    atomic_fetch_add(&small_got, 1);
    return 0;
}

static int sem_big_cancel(void *arg)
{
    tern_ctx *ctx = arg;
    CHECK_EQ(tern_sem_acquire(&sem, 10, ctx), -ECANCELED);
    return 0;
}

static int sem_cancel_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_sem_acquire(&sem, 5, NULL), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_go(sem_big_cancel, ctx);
    tern_sleep(2 * TERN_MS);
    for (int i = 0; i < 3; i++)
        tern_go(sem_small_counted, NULL);
    tern_sleep(2 * TERN_MS);
    CHECK_EQ(atomic_load(&small_got), 0);
    tern_ctx_cancel(ctx);
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(atomic_load(&small_got), 3);
    tern_sem_release(&sem, 8);
    tern_ctx_free(ctx);
    return 0;
}

static void semaphore_cancelled_head_unblocks_queue(void)
{
    run_ok(sem_cancel_main, NULL, 2);
}

static void rwmutex_try_forms_return_eagain(void)
{
    tern_rwmutex r = TERN_RWMUTEX_INIT;
    CHECK_EQ(tern_rwmutex_try_rlock(&r), 0);
    CHECK_EQ(tern_rwmutex_try_rlock(&r), 0);        /* readers share */
    CHECK_EQ(tern_rwmutex_try_lock(&r), -EAGAIN);   /* a writer does not */
    tern_rwmutex_runlock(&r);
    tern_rwmutex_runlock(&r);
    CHECK_EQ(tern_rwmutex_try_lock(&r), 0);
    CHECK_EQ(tern_rwmutex_try_rlock(&r), -EAGAIN);
    CHECK_EQ(tern_rwmutex_try_lock(&r), -EAGAIN);
    tern_rwmutex_unlock(&r);
    CHECK_EQ(r.readers, 0);
}

/* ---- waits bounded by a context ------------------------------------------ */

static tern_cond cctx = TERN_COND_INIT;
static tern_mutex cmu = TERN_MUTEX_INIT;
static atomic_int cond_plain_woke;

static int cond_plain_waiter(void *arg)
{
    (void)arg;
    tern_mutex_lock(&cmu);
    CHECK_EQ(tern_cond_wait(&cctx, &cmu, NULL), 0);
    atomic_store(&cond_plain_woke, 1);
    tern_mutex_unlock(&cmu);
    tern_waitgroup_done(&wg);
    return 0;
}

static int cond_ctx_main(void *arg)
{
    (void)arg;
    /* a timeout ends the wait, and m is locked again */
    int64_t t0 = tern_now();        /* before the ctx, whose deadline counts from its making */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_MS, &ctx), 0);
    tern_mutex_lock(&cmu);
    CHECK_EQ(tern_cond_wait(&cctx, &cmu, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 10 * TERN_MS);
    CHECK_EQ(tern_mutex_try_lock(&cmu), -EAGAIN);   /* we hold it again */
    /* an already-done context returns at once, m locked again too */
    CHECK_EQ(tern_cond_wait(&cctx, &cmu, ctx), -ETIMEDOUT);
    CHECK_EQ(tern_mutex_try_lock(&cmu), -EAGAIN);
    tern_mutex_unlock(&cmu);
    tern_ctx_free(ctx);
    /* a waiter that left through its context no longer takes a signal:
     * the next one gets it */
    tern_waitgroup_add(&wg, 1);
    tern_go(cond_plain_waiter, NULL);
    tern_sleep(2 * TERN_MS);
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_mutex_lock(&cmu);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_cond_wait(&cctx, &cmu, ctx), -ECANCELED);
    tern_mutex_unlock(&cmu);
    tern_ctx_free(ctx);
    tern_cond_signal(&cctx);
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    CHECK_EQ(atomic_load(&cond_plain_woke), 1);
    /* signalled before its context ends: 0 */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
    atomic_store(&cond_plain_woke, 0);
    tern_waitgroup_add(&wg, 1);
    tern_go(cond_plain_waiter, NULL);
    tern_sleep(2 * TERN_MS);
    tern_cond_broadcast(&cctx);
    CHECK_EQ(tern_waitgroup_wait(&wg, ctx), 0);
    CHECK_EQ(atomic_load(&cond_plain_woke), 1);
    tern_ctx_free(ctx);
    return 0;
}

static void cond_wait_ends_with_its_ctx_and_relocks(void)
{
    run_ok(cond_ctx_main, NULL, 2);
}

static tern_waitgroup wg_slow;

static int wg_finisher(void *arg)
{
    tern_sleep((int64_t)(intptr_t)arg * TERN_MS);
    tern_waitgroup_done(&wg_slow);
    return 0;
}

static int cancel_soon(void *arg)
{
    tern_sleep(2 * TERN_MS);
    tern_ctx_cancel(arg);
    return 0;
}

static int wg_ctx_main(void *arg)
{
    (void)arg;
    tern_waitgroup_add(&wg_slow, 1);
    tern_go(wg_finisher, (void *)(intptr_t)50);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_MS, &ctx), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_waitgroup_wait(&wg_slow, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 45 * TERN_MS);          /* did not wait for the done */
    CHECK_EQ(atomic_load(&wg_slow.count), 1);       /* untouched */
    tern_ctx_free(ctx);
    /* a cancelled one, from another coroutine's cancel, while parked */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_go(cancel_soon, ctx);
    CHECK_EQ(tern_waitgroup_wait(&wg_slow, ctx), -ECANCELED);
    tern_ctx_free(ctx);
    /* and the plain wait still sees the count reach zero */
    CHECK_EQ(tern_waitgroup_wait(&wg_slow, NULL), 0);
    /* zero at once, even with a done context */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_waitgroup_wait(&wg_slow, ctx), 0);
    tern_ctx_free(ctx);
    return 0;
}

static void waitgroup_wait_ends_with_its_ctx(void)
{
    run_ok(wg_ctx_main, NULL, 2);
}

/* ---- a NULL object names the function ------------------------------------ */

static void lock_null_mutex(void)
{
    tern_mutex_lock(NULL);
}

static void wait_null_waitgroup(void)
{
    tern_waitgroup_wait(NULL, NULL);
}

static void signal_null_cond(void)
{
    tern_cond_signal(NULL);
}

static void expect_null_abort(void (*fn)(void), const char *msg)
{
    child_result r = run_child(fn);
    CHECK(!r.exited);
    CHECK_EQ(r.sig, SIGABRT);
    CHECK(strstr(r.err, msg) != NULL);
}

static void null_sync_object_aborts_naming_the_function(void)
{
    expect_null_abort(lock_null_mutex, "tern_mutex_lock: m is NULL");
    expect_null_abort(wait_null_waitgroup, "tern_waitgroup_wait: wg is NULL");
    expect_null_abort(signal_null_cond, "tern_cond_signal: c is NULL");
}

TESTS(T(mutex_excludes_across_ps), T(mutex_waiter_does_not_starve),
      T(unlocking_unlocked_mutex_aborts), T(rwmutex_readers_share_writers_exclude),
      T(cond_broadcast_wakes_all), T(once_runs_exactly_once), T(waitgroup_zero_returns_at_once),
      T(waitgroup_negative_aborts), T(waitgroup_can_be_freed_after_wait),
      T(semaphore_is_fifo_and_bounded), T(semaphore_cancelled_head_unblocks_queue),
      T(rwmutex_try_forms_return_eagain), T(cond_wait_ends_with_its_ctx_and_relocks),
      T(waitgroup_wait_ends_with_its_ctx), T(null_sync_object_aborts_naming_the_function))
