/* test_csp_pool.c - tern_pool (Go's sync.Pool): reuse, the bound, trimming
 * of idle objects by the monitor, and a stress from every P. */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

typedef struct obj {
    atomic_int in_use;
    long magic;
} obj;

static atomic_long made, freed;

static void *obj_new(void *arg)
{
    (void)arg;
    obj *o = calloc(1, sizeof *o);
    o->magic = 0x5eed;
    atomic_fetch_add(&made, 1);
    return o;
}

static void obj_free(void *o, void *arg)
{
    CHECK_EQ((long)(intptr_t)arg, 7);
    CHECK_EQ(((obj *)o)->magic, 0x5eed);
    CHECK_EQ(atomic_load(&((obj *)o)->in_use), 0);
    atomic_fetch_add(&freed, 1);
    free(o);
}

static tern_pool_options opts(long max_shared, int64_t idle)
{
    return (tern_pool_options){.new_fn = obj_new, .free_fn = obj_free, .arg = (void *)(intptr_t)7,
                               .max_shared = max_shared, .idle_ns = idle};
}

static int basic_main(void *arg)
{
    (void)arg;
    tern_pool *p;
    void *x;
    CHECK_EQ(tern_pool_new(&(tern_pool_options){.max_shared = -1}, &p), -EINVAL);
    CHECK(p == NULL);
    /* no new_fn: empty is -EAGAIN */
    CHECK_EQ(tern_pool_new(NULL, &p), 0);
    CHECK_EQ(tern_pool_get(p, &x), -EAGAIN);
    CHECK(x == NULL);
    void *m = malloc(16);
    tern_pool_put(p, m);
    CHECK_EQ(tern_pool_get(p, &x), 0);
    CHECK(x == m);
    tern_pool_put(p, x);
    tern_pool_free(p);          /* free()s m */
    tern_pool_free(NULL);
    /* with new_fn: made once, then reused, most recent first */
    atomic_store(&made, 0);
    atomic_store(&freed, 0);
    tern_pool_options o = opts(0, 0);
    CHECK_EQ(tern_pool_new(&o, &p), 0);
    void *a, *b;
    CHECK_EQ(tern_pool_get(p, &a), 0);
    CHECK_EQ(tern_pool_get(p, &b), 0);
    CHECK(a != b);
    CHECK_EQ(atomic_load(&made), 2);
    tern_pool_put(p, a);
    tern_pool_put(p, b);
    CHECK_EQ(tern_pool_get(p, &x), 0);
    CHECK(x == b);
    CHECK_EQ(tern_pool_get(p, &x), 0);
    CHECK(x == a);
    CHECK_EQ(atomic_load(&made), 2);
    tern_pool_put(p, a);
    tern_pool_put(p, b);
    struct tern_pool_stats st;
    CHECK_EQ(tern_pool_stats(p, &st), 0);
    CHECK_EQ(st.gets, 4);
    CHECK_EQ(st.puts, 4);
    CHECK_EQ(st.news, 2);
    CHECK_EQ(st.released, 0);
    tern_pool_free(p);
    CHECK_EQ(atomic_load(&freed), 2);
    return 0;
}

static void pool_reuses_the_most_recently_put_object(void)
{
    run_ok(basic_main, NULL, 2);
}

static int bound_main(void *arg)
{
    (void)arg;
    atomic_store(&made, 0);
    atomic_store(&freed, 0);
    tern_pool *p;
    tern_pool_options o = opts(10, -1);
    CHECK_EQ(tern_pool_new(&o, &p), 0);
    enum { N = 100 };
    void *v[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(tern_pool_get(p, &v[i]), 0);
    for (int i = 0; i < N; i++)
        tern_pool_put(p, v[i]);
    /* this P keeps at most 32, the shared overflow 10: the rest went */
    struct tern_pool_stats st;
    CHECK_EQ(tern_pool_stats(p, &st), 0);
    CHECK_EQ(st.shared, 10);
    CHECK(st.released >= N - 32 - 10);
    CHECK_EQ((long)st.released, atomic_load(&freed));
    tern_pool_free(p);
    CHECK_EQ(atomic_load(&freed), N);
    return 0;
}

static void pool_releases_objects_over_its_bound(void)
{
    run_ok(bound_main, NULL, 1);
}

static int trim_main(void *arg)
{
    (void)arg;
    atomic_store(&made, 0);
    atomic_store(&freed, 0);
    tern_pool *p;
    tern_pool_options o = opts(100, 20 * TERN_MS);
    CHECK_EQ(tern_pool_new(&o, &p), 0);
    enum { N = 60 };
    void *v[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(tern_pool_get(p, &v[i]), 0);
    for (int i = 0; i < N; i++)
        tern_pool_put(p, v[i]);     /* 32 on this P at most, the rest shared */
    /* the monitor releases the shared ones within two idle periods... */
    int64_t end = tern_now() + 5 * TERN_SEC;
    struct tern_pool_stats st;
    do {
        tern_sleep(5 * TERN_MS);
        CHECK_EQ(tern_pool_stats(p, &st), 0);
    } while (st.shared > 0 && tern_now() < end);
    CHECK_EQ(st.shared, 0);
    /* ...and this P its own at its calls after an epoch ends: the one
     * object cycled here stays, the rest go */
    void *x;
    do {
        tern_sleep(30 * TERN_MS);
        CHECK_EQ(tern_pool_get(p, &x), 0);
        tern_pool_put(p, x);
    } while (atomic_load(&freed) < N - 1 && tern_now() < end);
    CHECK(atomic_load(&freed) >= N - 1);
    tern_pool_free(p);
    CHECK_EQ(atomic_load(&freed), atomic_load(&made));
    return 0;
}

static void pool_monitor_releases_idle_objects(void)
{
    run_ok(trim_main, NULL, 2);
}

/* Many coroutines on every P, plus a foreign thread, hammer one pool: no
 * object is ever handed to two holders, and every one made is freed. */
typedef struct stress {
    tern_pool *p;
    tern_waitgroup wg;
    atomic_bool stop_thread;
} stress;

static void use(tern_pool *p, int hold)
{
    void *x[4];
    for (int k = 0; k < hold; k++) {
        CHECK_EQ(tern_pool_get(p, &x[k]), 0);
        int z = 0;
        CHECK(atomic_compare_exchange_strong(&((obj *)x[k])->in_use, &z, 1));
    }
    for (int k = 0; k < hold; k++) {
        atomic_store(&((obj *)x[k])->in_use, 0);
        tern_pool_put(p, x[k]);
    }
}

static int stress_worker(void *arg)
{
    stress *s = arg;
    long n = scaled(50000);
    for (long i = 0; i < n; i++) {
        use(s->p, 1 + (int)(i % 4));
        if (i % 64 == 0)
            tern_yield();
    }
    tern_waitgroup_done(&s->wg);
    return 0;
}

static void *foreign(void *arg)
{
    stress *s = arg;
    while (!atomic_load(&s->stop_thread))
        use(s->p, 2);
    return NULL;
}

static int stress_main(void *arg)
{
    (void)arg;
    atomic_store(&made, 0);
    atomic_store(&freed, 0);
    stress s = {.wg = TERN_WAITGROUP_INIT};
    tern_pool_options o = opts(64, 5 * TERN_MS);   /* trims run during the stress */
    CHECK_EQ(tern_pool_new(&o, &s.p), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign, &s), 0);
    for (int i = 0; i < 16; i++) {
        tern_waitgroup_add(&s.wg, 1);
        CHECK_EQ(tern_go(stress_worker, &s), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&s.wg, NULL), 0);
    atomic_store(&s.stop_thread, true);
    pthread_join(th, NULL);
    struct tern_pool_stats st;
    CHECK_EQ(tern_pool_stats(s.p, &st), 0);
    CHECK_EQ(st.gets, st.puts);
    CHECK_EQ((long)st.news, atomic_load(&made));
    tern_pool_free(s.p);
    CHECK_EQ(atomic_load(&freed), atomic_load(&made));
    return 0;
}

static void pool_stress_from_every_p_and_a_thread(void)
{
    run_ok(stress_main, NULL, 0);
}

TESTS(T(pool_reuses_the_most_recently_put_object), T(pool_releases_objects_over_its_bound),
      T(pool_monitor_releases_idle_objects), T(pool_stress_from_every_p_and_a_thread))
