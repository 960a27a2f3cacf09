/* test_csp_timer.c - timers on channels (time.After, NewTimer, NewTicker)
 * with Go 1.23's Stop/Reset semantics, in selects beside channels and
 * contexts. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>

static int after_main(void *arg)
{
    (void)arg;
    tern_chan *ch;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_time_after(20 * TERN_MS, &ch), 0);
    CHECK_EQ(tern_chan_cap(ch), 1);
    int64_t v = 0;
    bool ok = false;
    CHECK_EQ(tern_chan_try_recv(ch, &v, &ok), -EAGAIN);
    CHECK_EQ(tern_chan_recv(ch, &v, &ok, NULL), 0);
    CHECK(ok);
    CHECK(v >= t0 + 20 * TERN_MS);
    CHECK(tern_now() - t0 >= 20 * TERN_MS);
    CHECK_EQ(tern_chan_try_recv(ch, &v, &ok), -EAGAIN);     /* one value only */
    tern_chan_free(ch);
    /* freed before it fires: the timer goes with it */
    CHECK_EQ(tern_time_after(TERN_SEC, &ch), 0);
    tern_chan_free(ch);
    CHECK_EQ(tern_time_after(0, &ch), 0);                    /* at once */
    CHECK_EQ(tern_chan_recv(ch, &v, &ok, NULL), 0);
    tern_chan_free(ch);
    return 0;
}

static void time_after_delivers_once_after_the_duration(void)
{
    run_ok(after_main, NULL, 2);
}

static int stop_main(void *arg)
{
    (void)arg;
    tern_time_timer *t;
    int64_t v;
    /* stopped while pending: true, and nothing ever arrives */
    CHECK_EQ(tern_time_timer_new(10 * TERN_MS, &t), 0);
    CHECK(tern_time_timer_stop(t));
    CHECK(!tern_time_timer_stop(t));            /* already stopped */
    tern_sleep(30 * TERN_MS);
    CHECK_EQ(tern_chan_try_recv(tern_time_timer_chan(t), &v, NULL), -EAGAIN);
    /* fired but not received: Stop still returns true (Go 1.23) and the
     * stale value is gone */
    CHECK(!tern_time_timer_reset(t, 1 * TERN_MS));
    tern_sleep(20 * TERN_MS);
    CHECK_EQ(tern_chan_len(tern_time_timer_chan(t)), 1);
    CHECK(tern_time_timer_stop(t));
    CHECK_EQ(tern_chan_try_recv(tern_time_timer_chan(t), &v, NULL), -EAGAIN);
    /* received: Stop returns false */
    CHECK(!tern_time_timer_reset(t, 1 * TERN_MS));
    CHECK_EQ(tern_chan_recv(tern_time_timer_chan(t), &v, NULL, NULL), 0);
    CHECK(!tern_time_timer_stop(t));
    tern_time_timer_free(t);
    tern_time_timer_free(NULL);
    return 0;
}

static void timer_stop_drops_the_unreceived_value_as_go_1_23(void)
{
    run_ok(stop_main, NULL, 2);
}

static int reset_main(void *arg)
{
    (void)arg;
    tern_time_timer *t;
    int64_t v;
    /* fired, unreceived, then reset further out: the old value is gone
     * and the new one comes at the new time, not before */
    CHECK_EQ(tern_time_timer_new(1 * TERN_MS, &t), 0);
    tern_sleep(20 * TERN_MS);
    int64_t t0 = tern_now();
    CHECK(tern_time_timer_reset(t, 40 * TERN_MS));
    CHECK_EQ(tern_chan_recv(tern_time_timer_chan(t), &v, NULL, NULL), 0);
    CHECK(v >= t0 + 40 * TERN_MS);
    /* reset while pending moves it */
    CHECK(!tern_time_timer_reset(t, TERN_SEC));
    t0 = tern_now();
    CHECK(tern_time_timer_reset(t, 10 * TERN_MS));
    CHECK_EQ(tern_chan_recv(tern_time_timer_chan(t), &v, NULL, NULL), 0);
    CHECK(v >= t0 + 10 * TERN_MS && v < t0 + 900 * TERN_MS);
    tern_time_timer_free(t);
    return 0;
}

static void timer_reset_discards_the_stale_value_and_moves_the_deadline(void)
{
    run_ok(reset_main, NULL, 2);
}

/* Reset and Stop racing with the firing, from many coroutines on all Ps:
 * after each Stop, nothing may arrive. */
typedef struct race {
    tern_waitgroup wg;
    atomic_long stale;
} race;

static int race_worker(void *arg)
{
    race *r = arg;
    tern_time_timer *t;
    CHECK_EQ(tern_time_timer_new(0, &t), 0);
    long n = scaled(2000);
    for (long i = 0; i < n; i++) {
        tern_time_timer_reset(t, (int64_t)(i % 3) * 1000);   /* 0..2 us: fires around now */
        if (i % 5 == 0)
            tern_yield();
        tern_time_timer_stop(t);
        int64_t v;
        if (tern_chan_try_recv(tern_time_timer_chan(t), &v, NULL) == 0)
            atomic_fetch_add(&r->stale, 1);
    }
    tern_time_timer_free(t);
    tern_waitgroup_done(&r->wg);
    return 0;
}

static int race_main(void *arg)
{
    (void)arg;
    race r = {.wg = TERN_WAITGROUP_INIT};
    for (int i = 0; i < 8; i++) {
        tern_waitgroup_add(&r.wg, 1);
        CHECK_EQ(tern_go(race_worker, &r), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&r.wg, NULL), 0);
    CHECK_EQ(atomic_load(&r.stale), 0);
    return 0;
}

static void timer_stop_racing_the_firing_leaves_no_value(void)
{
    run_ok(race_main, NULL, 0);
}

static int ticker_main(void *arg)
{
    (void)arg;
    tern_time_ticker *tk;
    CHECK_EQ(tern_time_ticker_new(0, &tk), -EINVAL);
    CHECK(tk == NULL);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_time_ticker_new(5 * TERN_MS, &tk), 0);
    int64_t v, prev = t0;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(tern_chan_recv(tern_time_ticker_chan(tk), &v, NULL, NULL), 0);
        CHECK(v >= prev);
        prev = v;
    }
    CHECK(tern_now() - t0 >= 25 * TERN_MS);
    /* a slow receiver misses ticks rather than queueing them */
    tern_sleep(30 * TERN_MS);
    CHECK_EQ(tern_chan_len(tern_time_ticker_chan(tk)), 1);
    /* stop drops the unreceived tick and ends the ticks */
    tern_time_ticker_stop(tk);
    CHECK_EQ(tern_chan_len(tern_time_ticker_chan(tk)), 0);
    tern_sleep(20 * TERN_MS);
    CHECK_EQ(tern_chan_try_recv(tern_time_ticker_chan(tk), &v, NULL), -EAGAIN);
    /* reset restarts it with a new period */
    CHECK_EQ(tern_time_ticker_reset(tk, -1), -EINVAL);
    t0 = tern_now();
    CHECK_EQ(tern_time_ticker_reset(tk, 15 * TERN_MS), 0);
    CHECK_EQ(tern_chan_recv(tern_time_ticker_chan(tk), &v, NULL, NULL), 0);
    CHECK(v >= t0 + 15 * TERN_MS);
    CHECK_EQ(tern_chan_recv(tern_time_ticker_chan(tk), &v, NULL, NULL), 0);
    CHECK(v >= t0 + 30 * TERN_MS);
    tern_time_ticker_free(tk);
    tern_time_ticker_free(NULL);
    return 0;
}

static void ticker_ticks_skips_for_a_slow_receiver_stops_and_resets(void)
{
    run_ok(ticker_main, NULL, 2);
}

/* "a pooled object, or give up after 50 ms, or stop when the context
 * ends", with two timers in the same select. */
static int sender(void *arg)
{
    tern_chan *ch = arg;
    tern_sleep(20 * TERN_MS);
    int v = 7;
    return tern_chan_send(ch, &v, NULL);
}

static int cancel_later(void *arg)
{
    tern_sleep(20 * TERN_MS);
    tern_ctx_cancel(arg);
    return 0;
}

static int select_main(void *arg)
{
    (void)arg;
    tern_chan *jobs;
    CHECK_EQ(tern_chan_new(sizeof(int), 0, &jobs), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_time_timer *give_up, *later;
    tern_time_ticker *tick;
    int job = 0;
    /* 1: the job wins */
    CHECK_EQ(tern_time_timer_new(2 * TERN_SEC, &give_up), 0);
    CHECK_EQ(tern_time_timer_new(3 * TERN_SEC, &later), 0);
    CHECK_EQ(tern_go(sender, jobs), 0);
    tern_chan_case cs[] = {
        {.ch = jobs, .op = TERN_CHAN_RECV, .elem = &job},
        {.ch = tern_time_timer_chan(give_up), .op = TERN_CHAN_RECV},
        {.ch = tern_time_timer_chan(later), .op = TERN_CHAN_RECV},
        {.ch = tern_ctx_done(ctx), .op = TERN_CHAN_RECV},
    };
    CHECK_EQ(tern_chan_select(cs, 4, NULL), 0);
    CHECK_EQ(job, 7);
    /* 2: the earlier of two timers wins */
    CHECK(tern_time_timer_reset(give_up, 30 * TERN_MS));
    CHECK(tern_time_timer_reset(later, 10 * TERN_MS));
    CHECK_EQ(tern_chan_select(cs, 4, NULL), 2);
    CHECK(cs[2].ok);
    /* 3: a ticker beside them */
    CHECK_EQ(tern_time_ticker_new(5 * TERN_MS, &tick), 0);
    tern_chan_case ct[] = {cs[0], cs[1], {.ch = tern_time_ticker_chan(tick), .op = TERN_CHAN_RECV}};
    CHECK_EQ(tern_chan_select(ct, 3, NULL), 2);
    tern_time_ticker_free(tick);
    /* 4: the context ends first */
    tern_time_timer_reset(give_up, 2 * TERN_SEC);
    tern_time_timer_reset(later, 2 * TERN_SEC);
    CHECK_EQ(tern_go(cancel_later, ctx), 0);
    CHECK_EQ(tern_chan_select(cs, 4, NULL), 3);
    CHECK(!cs[3].ok);
    /* 5: the select's own ctx bound beside the timers */
    tern_ctx *short_ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_MS, &short_ctx), 0);
    CHECK_EQ(tern_chan_select(cs, 3, short_ctx), -ETIMEDOUT);
    tern_ctx_free(short_ctx);
    tern_time_timer_free(give_up);
    tern_time_timer_free(later);
    tern_ctx_free(ctx);
    tern_chan_free(jobs);
    return 0;
}

static void select_waits_on_timers_channels_and_contexts_at_once(void)
{
    run_ok(select_main, NULL, 2);
}

static int no_runtime(void)
{
    tern_chan *ch = (tern_chan *)1;
    CHECK_EQ(tern_time_after(TERN_MS, &ch), -ESRCH);
    CHECK(ch == NULL);
    return 0;
}

static void timers_need_a_runtime(void)
{
    no_runtime();
}

/* Freeing a NewTimer's channel with tern_chan_free is a programmer error. */
static int wrong_free_main(void *arg)
{
    (void)arg;
    tern_time_timer *t;
    CHECK_EQ(tern_time_timer_new(TERN_SEC, &t), 0);
    tern_chan_free(tern_time_timer_chan(t));
    return 0;
}

static void wrong_free(void)
{
    run_ok(wrong_free_main, NULL, 1);
}

static void freeing_a_timers_channel_aborts(void)
{
    child_result r = run_child(wrong_free);
    CHECK(!r.exited || r.code != 0);
    CHECK(strstr(r.err, "tern_time_timer_free") != NULL);
}

TESTS(T(time_after_delivers_once_after_the_duration),
      T(timer_stop_drops_the_unreceived_value_as_go_1_23),
      T(timer_reset_discards_the_stale_value_and_moves_the_deadline),
      T(timer_stop_racing_the_firing_leaves_no_value),
      T(ticker_ticks_skips_for_a_slow_receiver_stops_and_resets),
      T(select_waits_on_timers_channels_and_contexts_at_once),
      T(timers_need_a_runtime),
      T(freeing_a_timers_channel_aborts))
