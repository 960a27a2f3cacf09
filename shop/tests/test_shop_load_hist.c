/*
 * test_shop_load_hist.c - shop-load's latency histogram (shop/load/hist.c):
 * percentiles read back within the bucket width (1/64) of the exact ones,
 * small values exact, the extremes and an empty histogram, merging.
 */
#include "check.h"

#include "hist.h"

/* |got - want| <= want / 64 (the bucket width), and never below want. */
static void check_close(int64_t got, int64_t want)
{
    if (got < want || got - want > want / LOAD_HIST_SUB + 1) {
        fprintf(stderr, "percentile %lld, expected %lld (+1/%d)\n", (long long)got, (long long)want,
                LOAD_HIST_SUB);
        abort();
    }
}

static void hist_percentiles_of_a_uniform_run_are_within_a_bucket(void)
{
    static load_hist h;
    load_hist_init(&h);
    /* 1..100000 us in ns: the exact q-quantile is q * 100000 us */
    for (int64_t v = 1; v <= 100000; v++)
        load_hist_record(&h, v * 1000);
    CHECK_EQ(h.count, 100000);
    CHECK_EQ(h.min, 1000);
    CHECK_EQ(h.max, 100000000);
    check_close(load_hist_quantile(&h, 0.50), 50000000);
    check_close(load_hist_quantile(&h, 0.90), 90000000);
    check_close(load_hist_quantile(&h, 0.99), 99000000);
    CHECK_EQ(load_hist_quantile(&h, 1.0), 100000000);   /* capped at the exact max */
    check_close(load_hist_quantile(&h, 0.0), 1000);
}

static void hist_small_values_are_exact(void)
{
    static load_hist h;
    load_hist_init(&h);
    for (int64_t v = 0; v < LOAD_HIST_SUB; v++)
        load_hist_record(&h, v);
    CHECK_EQ(load_hist_quantile(&h, 0.5), LOAD_HIST_SUB / 2 - 1);
    CHECK_EQ(load_hist_quantile(&h, 1.0), LOAD_HIST_SUB - 1);
}

static void hist_extremes_and_empty(void)
{
    static load_hist h;
    load_hist_init(&h);
    CHECK_EQ(load_hist_quantile(&h, 0.99), 0);
    load_hist_record(&h, -5);                  /* a clock step backwards: 0 */
    CHECK_EQ(h.min, 0);
    load_hist_record(&h, INT64_MAX);           /* past the last bucket: counted, max exact */
    CHECK_EQ(h.count, 2);
    CHECK_EQ(h.max, INT64_MAX);
    CHECK_EQ(load_hist_quantile(&h, 0.5), 0);
    CHECK(load_hist_quantile(&h, 1.0) > ((int64_t)1 << 40));
}

static void hist_one_slow_request_in_a_hundred_is_the_p99(void)
{
    static load_hist h;
    load_hist_init(&h);
    for (int i = 0; i < 98; i++)
        load_hist_record(&h, 2000000);         /* 2 ms */
    load_hist_record(&h, 3000000);
    load_hist_record(&h, 500000000);           /* one at 500 ms */
    check_close(load_hist_quantile(&h, 0.50), 2000000);
    check_close(load_hist_quantile(&h, 0.99), 3000000);
    CHECK_EQ(load_hist_quantile(&h, 0.999), 500000000);
}

static void hist_merge_adds_counts_and_extremes(void)
{
    static load_hist a, b;
    load_hist_init(&a);
    load_hist_init(&b);
    for (int i = 0; i < 50; i++)
        load_hist_record(&a, 1000000);
    for (int i = 0; i < 50; i++)
        load_hist_record(&b, 9000000);
    load_hist_merge(&a, &b);
    CHECK_EQ(a.count, 100);
    CHECK_EQ(a.min, 1000000);
    CHECK_EQ(a.max, 9000000);
    check_close(load_hist_quantile(&a, 0.50), 1000000);
    check_close(load_hist_quantile(&a, 0.51), 9000000);
    load_hist_init(&b);
    load_hist_merge(&a, &b);                   /* an empty one changes nothing */
    CHECK_EQ(a.count, 100);
    CHECK_EQ(a.min, 1000000);
}

TESTS(T(hist_percentiles_of_a_uniform_run_are_within_a_bucket), T(hist_small_values_are_exact),
      T(hist_extremes_and_empty), T(hist_one_slow_request_in_a_hundred_is_the_p99),
      T(hist_merge_adds_counts_and_extremes))
