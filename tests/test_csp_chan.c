/* test_csp_chan.c - channel semantics: Go's rules, one by one. */
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>

static tern_chan *mk(size_t cap)
{
    tern_chan *ch;
    CHECK_EQ(tern_chan_new(sizeof(int), cap, &ch), 0);
    CHECK(ch != NULL);
    return ch;
}

static void new_rejects_bad_sizes_and_clears_out(void)
{
    tern_chan *ch = (tern_chan *)&ch;
    CHECK_EQ(tern_chan_new(0, 1, &ch), -EINVAL);
    CHECK(ch == NULL);                              /* never a stale pointer */
    CHECK_EQ(tern_chan_new(65537, 1, &ch), -EINVAL);
    CHECK(ch == NULL);
    CHECK_EQ(tern_chan_new(8, 0, &ch), 0);
    CHECK(ch != NULL);
    CHECK_EQ(tern_chan_cap(ch), 0);
    CHECK_EQ(tern_chan_len(ch), 0);
    tern_chan_free(ch);
    tern_chan_free(NULL);
}

static void buffered_is_fifo_and_counts(void)
{
    tern_chan *ch = mk(3);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(tern_chan_try_send(ch, &i), 0);
    int x = 9;
    CHECK_EQ(tern_chan_try_send(ch, &x), -EAGAIN);      /* full */
    CHECK_EQ(tern_chan_len(ch), 3);
    CHECK_EQ(tern_chan_cap(ch), 3);
    bool ok;
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ(tern_chan_try_recv(ch, &x, &ok), 0);
        CHECK(ok);
        CHECK_EQ(x, i);
    }
    CHECK_EQ(tern_chan_try_recv(ch, &x, &ok), -EAGAIN);  /* empty */
    tern_chan_free(ch);
}

static void close_drains_buffered_values_then_gives_zero_and_refuses_sends(void)
{
    tern_chan *ch = mk(2);
    int a = 1, b = 2, x = 7;
    tern_chan_try_send(ch, &a);
    tern_chan_try_send(ch, &b);
    CHECK_EQ(tern_chan_close(ch), 0);
    CHECK_EQ(tern_chan_close(ch), -EALREADY);           /* twice: an error */
    CHECK_EQ(tern_chan_try_send(ch, &x), -EPIPE);       /* send on closed */
    bool ok;
    CHECK_EQ(tern_chan_try_recv(ch, &x, &ok), 0);       /* drains first */
    CHECK(ok && x == 1);
    CHECK_EQ(tern_chan_try_recv(ch, &x, &ok), 0);
    CHECK(ok && x == 2);
    x = 5;
    CHECK_EQ(tern_chan_try_recv(ch, &x, &ok), 0);       /* then zero, !ok */
    CHECK(!ok);
    CHECK_EQ(x, 0);
    tern_chan_free(ch);
}

static void close_null_channel(void)
{
    tern_chan_close(NULL);
}

/* Go panics closing a nil channel; tern names the function and aborts. */
static void closing_a_nil_channel_aborts_naming_the_function(void)
{
    child_result r = run_child(close_null_channel);
    CHECK(!r.exited);
    CHECK_EQ(r.sig, SIGABRT);
    CHECK(strstr(r.err, "tern_chan_close: ch is NULL") != NULL);
}

static tern_chan *g_ch;

static int sender(void *arg)
{
    int v = (int)(long)arg;
    CHECK_EQ(tern_chan_send(g_ch, &v, NULL), 0);
    return 0;
}

static int unbuffered_main(void *arg)
{
    (void)arg;
    g_ch = mk(0);
    int x;
    CHECK_EQ(tern_chan_try_send(g_ch, &x), -EAGAIN);    /* nobody receiving */
    for (long i = 1; i <= 100; i++)
        tern_go(sender, (void *)i);
    int sum = 0;
    bool ok;
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(tern_chan_recv(g_ch, &x, &ok, NULL), 0);
        CHECK(ok);
        sum += x;
    }
    CHECK_EQ(sum, 5050);
    tern_chan_free(g_ch);
    return 0;
}

static void unbuffered_hands_over_directly(void)
{
    run_ok(unbuffered_main, NULL, 2);
}

static atomic_int closed_seen;

static int blocked_receiver(void *arg)
{
    (void)arg;
    int x = 3;
    bool ok = true;
    CHECK_EQ(tern_chan_recv(g_ch, &x, &ok, NULL), 0);
    CHECK(!ok);
    CHECK_EQ(x, 0);
    atomic_fetch_add(&closed_seen, 1);
    return 0;
}

static int blocked_sender(void *arg)
{
    (void)arg;
    int x = 1;
    CHECK_EQ(tern_chan_send(g_ch, &x, NULL), -EPIPE);
    atomic_fetch_add(&closed_seen, 1);
    return 0;
}

static int close_wakes_main(void *arg)
{
    (void)arg;
    atomic_store(&closed_seen, 0);
    g_ch = mk(0);
    for (int i = 0; i < 5; i++)
        tern_go(blocked_receiver, NULL);
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(tern_chan_close(g_ch), 0);
    while (atomic_load(&closed_seen) < 5)
        tern_sleep(TERN_MS);
    tern_chan_free(g_ch);
    /* and blocked senders get -EPIPE */
    g_ch = mk(0);
    atomic_store(&closed_seen, 0);
    for (int i = 0; i < 5; i++)
        tern_go(blocked_sender, NULL);
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(tern_chan_close(g_ch), 0);
    while (atomic_load(&closed_seen) < 5)
        tern_sleep(TERN_MS);
    tern_chan_free(g_ch);
    return 0;
}

static void chan_close_wakes_all_receivers_and_senders(void)
{
    run_ok(close_wakes_main, NULL, 2);
}

static int nil_main(void *arg)
{
    (void)arg;
    int x = 0;
    CHECK_EQ(tern_chan_try_send(NULL, &x), -EAGAIN);
    CHECK_EQ(tern_chan_try_recv(NULL, &x, NULL), -EAGAIN);
    CHECK_EQ(tern_chan_len(NULL), 0);
    tern_chan_recv(NULL, &x, NULL, NULL);     /* blocks forever: deadlock */
    return 0;
}

static void nil_child(void)
{
    tern_run(nil_main, NULL);
}

/* With a ctx, a nil channel blocks until the ctx ends, as Go's
 * select { case <-nil: case <-ctx.Done(): } does. */
static int nil_ctx_main(void *arg)
{
    (void)arg;
    /* t0 before the ctx: its deadline counts from its making, and under
     * qemu the steps between can take a millisecond */
    int64_t t0 = tern_now();
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_MS, &ctx), 0);
    int x = 1;
    bool ok = true;
    CHECK_EQ(tern_chan_recv(NULL, &x, &ok, ctx), -ETIMEDOUT);
    CHECK_EQ(tern_chan_send(NULL, &x, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 5 * TERN_MS);
    CHECK_EQ(x, 1);                 /* nothing received */
    tern_ctx_free(ctx);
    return 0;
}

static void nil_channel_blocks_until_its_ctx_ends(void)
{
    run_ok(nil_ctx_main, NULL, 1);
}

/* ctx last on send and recv: a value that is there is taken even with a
 * done ctx (Go's select prefers no case over another); one that is not
 * gives the ctx's error and moves nothing. */
static int ctx_sendrecv_main(void *arg)
{
    (void)arg;
    tern_chan *ch = mk(1);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    int x = 7, y = 0;
    bool ok = false;
    CHECK_EQ(tern_chan_send(ch, &x, ctx), 0);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_chan_send(ch, &x, ctx), -ECANCELED);  /* full: would block */
    CHECK_EQ(tern_chan_len(ch), 1);
    CHECK_EQ(tern_chan_recv(ch, &y, &ok, ctx), 0);      /* ready: taken */
    CHECK(ok && y == 7);
    CHECK_EQ(tern_chan_recv(ch, &y, &ok, ctx), -ECANCELED);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_chan_close(ch), 0);
    CHECK_EQ(tern_chan_send(ch, &x, tern_ctx_background()), -EPIPE);
    CHECK_EQ(tern_chan_recv(ch, &y, &ok, tern_ctx_background()), 0);
    CHECK(!ok);
    tern_chan_free(ch);
    return 0;
}

static void send_and_recv_end_with_their_ctx(void)
{
    run_ok(ctx_sendrecv_main, NULL, 1);
}

static void nil_channel_blocks_forever(void)
{
    child_result r = run_child(nil_child);
    CHECK(r.exited && r.code == 2);
    CHECK(strstr(r.err, "all coroutines are asleep - deadlock!") != NULL);
    CHECK(strstr(r.err, "chan receive (nil chan)") != NULL);
}

static int deadlock_main(void *arg)
{
    (void)arg;
    tern_chan *ch = mk(0);
    int x = 1;
    tern_chan_send(ch, &x, NULL);             /* nobody will ever receive */
    return 0;
}

static void deadlock_child(void)
{
    tern_run(deadlock_main, NULL);
}

static void channel_deadlock_is_detected(void)
{
    child_result r = run_child(deadlock_child);
    CHECK(r.exited && r.code == 2);
    CHECK(strstr(r.err, "all coroutines are asleep - deadlock!") != NULL);
    CHECK(strstr(r.err, "chan send") != NULL);
}

/* Big elements go by value too. */
typedef struct big {
    char data[1000];
    int n;
} big;

static int big_sender(void *arg)
{
    tern_chan *ch = arg;
    big b;
    for (int i = 0; i < 50; i++) {
        memset(b.data, 'a' + i % 26, sizeof b.data);
        b.n = i;
        CHECK_EQ(tern_chan_send(ch, &b, NULL), 0);
    }
    tern_chan_close(ch);
    return 0;
}

static int big_main(void *arg)
{
    (void)arg;
    for (int mode = 0; mode < 2; mode++) {
        tern_chan *ch;
        CHECK_EQ(tern_chan_new(sizeof(big), (size_t)mode * 4, &ch), 0);
        tern_go_opts(big_sender, ch, &(tern_go_options){.stack_mode = mode ? TERN_STACK_SHARED : 0},
                     NULL);
        big b;
        bool ok;
        int n = 0;
        while (tern_chan_recv(ch, &b, &ok, NULL) == 0 && ok) {
            CHECK_EQ(b.n, n);
            CHECK(b.data[0] == 'a' + n % 26 && b.data[999] == 'a' + n % 26);
            n++;
        }
        CHECK_EQ(n, 50);
        tern_chan_free(ch);
    }
    return 0;
}

static void large_elements_copy_by_value(void)
{
    run_ok(big_main, NULL, 2);
}

/* Shared-stack coroutines on both ends: values go through bounce buffers. */
static int shared_peer(void *arg)
{
    tern_chan **chs = arg;
    for (int i = 0; i < 1000; i++) {
        int v;
        bool ok;
        CHECK_EQ(tern_chan_recv(chs[0], &v, &ok, NULL), 0);
        CHECK(ok);
        v++;
        CHECK_EQ(tern_chan_send(chs[1], &v, NULL), 0);
    }
    return 0;
}

static int shared_main(void *arg)
{
    (void)arg;
    tern_chan *chs[2] = {mk(0), mk(0)};
    tern_go_options o = {.stack_mode = TERN_STACK_SHARED};
    tern_go_opts(shared_peer, chs, &o, NULL);
    for (int i = 0; i < 1000; i++) {
        int v = i * 2, back;
        CHECK_EQ(tern_chan_send(chs[0], &v, NULL), 0);
        CHECK_EQ(tern_chan_recv(chs[1], &back, NULL, NULL), 0);
        CHECK_EQ(back, i * 2 + 1);
    }
    tern_chan_free(chs[0]);
    tern_chan_free(chs[1]);
    return 0;
}

static void shared_stack_coroutines_exchange_values(void)
{
    run_ok(shared_main, NULL, 2);
}

/* Many producers and consumers across Ps: nothing lost, nothing doubled. */
#define PRODUCERS 8
#define PER 5000
static atomic_long consumed_sum, consumed_n;
static tern_waitgroup prod_wg;

static int producer(void *arg)
{
    long base = (long)arg * PER;
    for (long i = 0; i < PER; i++) {
        long v = base + i;
        CHECK_EQ(tern_chan_send(g_ch, &v, NULL), 0);
    }
    tern_waitgroup_done(&prod_wg);
    return 0;
}

static tern_waitgroup cons_wg;

static int consumer(void *arg)
{
    (void)arg;
    long v;
    bool ok;
    while (tern_chan_recv(g_ch, &v, &ok, NULL) == 0 && ok) {
        atomic_fetch_add(&consumed_sum, v);
        atomic_fetch_add(&consumed_n, 1);
    }
    tern_waitgroup_done(&cons_wg);
    return 0;
}

static int mpmc_main(void *arg)
{
    size_t cap = (size_t)(long)arg;
    CHECK_EQ(tern_chan_new(sizeof(long), cap, &g_ch), 0);
    atomic_store(&consumed_sum, 0);
    atomic_store(&consumed_n, 0);
    tern_waitgroup_add(&prod_wg, PRODUCERS);
    tern_waitgroup_add(&cons_wg, 4);
    for (long i = 0; i < 4; i++)
        tern_go(consumer, NULL);
    for (long i = 0; i < PRODUCERS; i++)
        tern_go(producer, (void *)i);
    tern_waitgroup_wait(&prod_wg, NULL);
    tern_chan_close(g_ch);
    tern_waitgroup_wait(&cons_wg, NULL);
    long n = PRODUCERS * PER;
    CHECK_EQ(atomic_load(&consumed_n), n);
    CHECK_EQ(atomic_load(&consumed_sum), n * (n - 1) / 2);
    tern_chan_free(g_ch);
    return 0;
}

static void many_producers_consumers_lose_nothing(void)
{
    run_ok(mpmc_main, (void *)0L, 0);
    run_ok(mpmc_main, (void *)16L, 0);
}

TESTS(T(new_rejects_bad_sizes_and_clears_out), T(buffered_is_fifo_and_counts),
      T(close_drains_buffered_values_then_gives_zero_and_refuses_sends),
      T(unbuffered_hands_over_directly), T(chan_close_wakes_all_receivers_and_senders),
      T(nil_channel_blocks_forever), T(channel_deadlock_is_detected),
      T(large_elements_copy_by_value), T(shared_stack_coroutines_exchange_values),
      T(many_producers_consumers_lose_nothing), T(closing_a_nil_channel_aborts_naming_the_function),
      T(nil_channel_blocks_until_its_ctx_ends), T(send_and_recv_end_with_their_ctx))
