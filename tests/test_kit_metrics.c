/*
 * test_kit_metrics.c - metrics: the exact exposition text of a small
 * registry, escaping, name checks, histogram bucket placement at the
 * bounds, exact totals under concurrent increments on 2 Ps, the runtime
 * collector, and the HTTP middleware and client wrapper through a real
 * server, read back from its /metrics endpoint.
 */
#include "check.h"
#include "http_raw.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#include <tern/http.h>
#include <tern/http_client.h>
#include <tern/http_router.h>
#include <tern/metrics.h>
#include <tern/net.h>

/* The scrape of r as a string (caller frees). */
static char *scrape(tern_metrics_registry *r)
{
    char *s;
    size_t len;
    CHECK_EQ(tern_metrics_format(r, &s, &len), 0);
    CHECK_EQ(strlen(s), len);
    return s;
}

/* The value on the line "<series> <value>" of text; aborts when absent. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    fprintf(stderr, "no line for %s in:\n%s\n", series, text);
    abort();
}

static bool has_line(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return true;
    return false;
}

/* ---- the families and children the tests make ------------------------------
 *
 * Shorthands over tern_metrics_family_new and tern_metrics_*_with that read
 * as the old constructors did: out may be NULL, and a child is NULL when
 * the lookup failed (the -errno itself is checked in children_results). */
static int family_new(tern_metrics_registry *r, tern_metrics_type type, const char *name,
                      const char *help, const char *const *labels, const double *bounds,
                      size_t nbounds, tern_metrics_family **out)
{
    tern_metrics_family_options o = {.type = type, .name = name, .help = help,
                                     .labels = labels, .bounds = bounds, .nbounds = nbounds};
    tern_metrics_family *f;
    int rc = tern_metrics_family_new(r, &o, &f);
    CHECK(rc == 0 ? f != NULL : f == NULL);
    if (out)
        *out = f;
    return rc;
}

static int counter_new(tern_metrics_registry *r, const char *name, const char *help,
                       const char *const *labels, tern_metrics_family **out)
{
    return family_new(r, TERN_METRICS_COUNTER, name, help, labels, NULL, 0, out);
}

static int gauge_new(tern_metrics_registry *r, const char *name, const char *help,
                     const char *const *labels, tern_metrics_family **out)
{
    return family_new(r, TERN_METRICS_GAUGE, name, help, labels, NULL, 0, out);
}

static int histogram_new(tern_metrics_registry *r, const char *name, const char *help,
                         const char *const *labels, const double *bounds, size_t nbounds,
                         tern_metrics_family **out)
{
    return family_new(r, TERN_METRICS_HISTOGRAM, name, help, labels, bounds, nbounds, out);
}

#define CHILD_OR_NULL_(type, call, ...)                                                   \
    __extension__({                                                                      \
        type *c_ = (type *)1;                                                            \
        int rc_ = call(__VA_ARGS__);                                                     \
        CHECK(rc_ == 0 ? c_ != NULL : c_ == NULL);                                       \
        c_;                                                                              \
    })
#define COUNTER_WITH(f, ...)                                                             \
    CHILD_OR_NULL_(tern_metrics_counter, tern_metrics_counter_with, (f), &c_, ##__VA_ARGS__)
#define GAUGE_WITH(f, ...)                                                               \
    CHILD_OR_NULL_(tern_metrics_gauge, tern_metrics_gauge_with, (f), &c_, ##__VA_ARGS__)
#define HISTOGRAM_WITH(f, ...)                                                           \
    CHILD_OR_NULL_(tern_metrics_histogram, tern_metrics_histogram_with, (f), &c_, ##__VA_ARGS__)
#define COUNTER_WITH_VALUES(f, ...)                                                        \
    CHILD_OR_NULL_(tern_metrics_counter, tern_metrics_counter_with_values, (f), (__VA_ARGS__), &c_)
#define GAUGE_WITH_VALUES(f, ...)                                                          \
    CHILD_OR_NULL_(tern_metrics_gauge, tern_metrics_gauge_with_values, (f), (__VA_ARGS__), &c_)
#define HISTOGRAM_WITH_VALUES(f, ...)                                                      \
    CHILD_OR_NULL_(tern_metrics_histogram, tern_metrics_histogram_with_values, (f), (__VA_ARGS__), &c_)

/* ---- exposition ----------------------------------------------------------- */

static double forty_two(void *arg)
{
    (void)arg;
    return 42.5;
}

static void exposition_is_exact_and_ordered(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    const char *mc[] = {"method", "code", NULL};
    const char *route[] = {"route", NULL};
    tern_metrics_family *reqs, *temp, *lat, *idle;
    /* Registered out of order: output is by name. */
    CHECK_EQ(histogram_new(r, "b_latency_seconds", "Latency.", route,
                                        (const double[]){0.1, 1}, 2, &lat),
             0);
    CHECK_EQ(counter_new(r, "a_requests_total", "Requests.", mc, &reqs), 0);
    CHECK_EQ(gauge_new(r, "c_temperature", "Temperature.", NULL, &temp), 0);
    CHECK_EQ(counter_new(r, "d_idle_total", "Never touched.", mc, &idle), 0);
    CHECK_EQ(tern_metrics_gauge_func(r, "e_answer", "From a function.", forty_two, NULL), 0);

    tern_metrics_counter_add(COUNTER_WITH(reqs, "POST", "500"), 3);
    tern_metrics_counter_inc(COUNTER_WITH(reqs, "GET", "200"));
    tern_metrics_counter_inc(COUNTER_WITH(reqs, "GET", "200"));
    tern_metrics_counter_inc(COUNTER_WITH(reqs, "GET", "404"));
    tern_metrics_gauge_set(GAUGE_WITH(temp), 21.5);
    tern_metrics_gauge_add(GAUGE_WITH(temp), -1);
    tern_metrics_histogram *h = HISTOGRAM_WITH(lat, "/x");
    tern_metrics_histogram_observe(h, 0.05);
    tern_metrics_histogram_observe(h, 0.5);
    tern_metrics_histogram_observe(h, 3);
    tern_metrics_histogram_observe(HISTOGRAM_WITH(lat, "/a"), 0.1);

    char *s = scrape(r);
    const char *want =
        "# HELP a_requests_total Requests.\n"
        "# TYPE a_requests_total counter\n"
        "a_requests_total{method=\"GET\",code=\"200\"} 2\n"
        "a_requests_total{method=\"GET\",code=\"404\"} 1\n"
        "a_requests_total{method=\"POST\",code=\"500\"} 3\n"
        "# HELP b_latency_seconds Latency.\n"
        "# TYPE b_latency_seconds histogram\n"
        "b_latency_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\n"
        "b_latency_seconds_bucket{route=\"/a\",le=\"1\"} 1\n"
        "b_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 1\n"
        "b_latency_seconds_sum{route=\"/a\"} 0.1\n"
        "b_latency_seconds_count{route=\"/a\"} 1\n"
        "b_latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"
        "b_latency_seconds_bucket{route=\"/x\",le=\"1\"} 2\n"
        "b_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"
        "b_latency_seconds_sum{route=\"/x\"} 3.55\n"
        "b_latency_seconds_count{route=\"/x\"} 3\n"
        "# HELP c_temperature Temperature.\n"
        "# TYPE c_temperature gauge\n"
        "c_temperature 20.5\n"
        "# HELP e_answer From a function.\n"
        "# TYPE e_answer gauge\n"
        "e_answer 42.5\n";
    if (strcmp(s, want) != 0)
        fprintf(stderr, "got:\n%s\nwant:\n%s", s, want);
    CHECK(strcmp(s, want) == 0);
    /* A second scrape of the same state is the same bytes. */
    char *again = scrape(r);
    CHECK(strcmp(s, again) == 0);
    free(again);
    free(s);
    tern_metrics_registry_free(r);
}

static void unlabelled_metrics_show_zero_from_the_start(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    CHECK_EQ(counter_new(r, "jobs_total", "Jobs.", NULL, NULL), 0);
    CHECK_EQ(histogram_new(r, "wait_seconds", "Wait.", NULL,
                                        (const double[]){1}, 1, NULL),
             0);
    char *s = scrape(r);
    CHECK(strcmp(s, "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total 0\n"
                    "# HELP wait_seconds Wait.\n# TYPE wait_seconds histogram\n"
                    "wait_seconds_bucket{le=\"1\"} 0\nwait_seconds_bucket{le=\"+Inf\"} 0\n"
                    "wait_seconds_sum 0\nwait_seconds_count 0\n") == 0);
    free(s);
    tern_metrics_registry_free(r);
}

static void label_values_and_help_are_escaped(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    const char *l[] = {"path", NULL};
    tern_metrics_family *f;
    CHECK_EQ(counter_new(r, "x_total", "A \\ back\nslash \"quoted\".", l, &f), 0);
    tern_metrics_counter_inc(COUNTER_WITH(f, "a\\b\"c\nd"));
    char *s = scrape(r);
    /* HELP escapes \ and newline only; label values also the quote. */
    const char *want = "# HELP x_total A \\\\ back\\nslash \"quoted\".\n"
                       "# TYPE x_total counter\n"
                       "x_total{path=\"a\\\\b\\\"c\\nd\"} 1\n";
    if (strcmp(s, want) != 0)
        fprintf(stderr, "got:\n%s\nwant:\n%s", s, want);
    CHECK(strcmp(s, want) == 0);
    free(s);
    tern_metrics_registry_free(r);
}

static void special_values_use_the_format_spellings(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    const char *l[] = {"k", NULL};
    tern_metrics_family *g;
    CHECK_EQ(gauge_new(r, "g", "G.", l, &g), 0);
    tern_metrics_gauge_set(GAUGE_WITH(g, "inf"), INFINITY);
    tern_metrics_gauge_set(GAUGE_WITH(g, "minf"), -INFINITY);
    tern_metrics_gauge_set(GAUGE_WITH(g, "nan"), NAN);
    tern_metrics_gauge_set(GAUGE_WITH(g, "big"), 1e21);
    tern_metrics_gauge_set(GAUGE_WITH(g, "tiny"), 0.1 + 0.2);
    char *s = scrape(r);
    CHECK(strstr(s, "g{k=\"inf\"} +Inf\n"));
    CHECK(strstr(s, "g{k=\"minf\"} -Inf\n"));
    CHECK(strstr(s, "g{k=\"nan\"} NaN\n"));
    CHECK(strstr(s, "g{k=\"big\"} 1e+21\n"));
    CHECK(strstr(s, "g{k=\"tiny\"} 0.30000000000000004\n"));    /* round-trips */
    free(s);
    tern_metrics_registry_free(r);
}

/* ---- names and handles ---------------------------------------------------- */

static void invalid_names_are_refused(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "é", "a.b"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        CHECK_EQ(counter_new(r, bad_names[i], "h", NULL, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, NULL, "h", NULL, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "ok_name", NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "ns:sub_name_2", "colons are fine", NULL, NULL), 0);

    const char *reserved[] = {"__name", NULL}, *colon[] = {"a:b", NULL}, *digit[] = {"1x", NULL};
    const char *dup[] = {"a", "a", NULL}, *empty[] = {"", NULL}, *le[] = {"le", NULL};
    const char *nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL};
    CHECK_EQ(counter_new(r, "l1", "h", reserved, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "l2", "h", colon, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "l3", "h", digit, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "l4", "h", dup, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "l5", "h", empty, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "l6", "h", nine, NULL), -EINVAL);
    CHECK_EQ(histogram_new(r, "l7", "h", le, NULL, 0, NULL), -EINVAL);
    CHECK_EQ(counter_new(r, "l7", "h", le, NULL), 0);   /* only histograms */

    CHECK_EQ(histogram_new(r, "h1", "h", NULL, (const double[]){1, 1}, 2, NULL),
             -EINVAL);
    CHECK_EQ(histogram_new(r, "h2", "h", NULL, (const double[]){2, 1}, 2, NULL),
             -EINVAL);
    CHECK_EQ(histogram_new(r, "h3", "h", NULL, (const double[]){1, NAN}, 2, NULL),
             -EINVAL);
    CHECK_EQ(histogram_new(r, "h4", "h", NULL, (const double[]){INFINITY}, 1, NULL),
             -EINVAL);
    CHECK_EQ(histogram_new(r, "h5", "h", NULL, NULL, 3, NULL), -EINVAL);
    CHECK_EQ(tern_metrics_gauge_func(r, "f1", "h", NULL, NULL), -EINVAL);

    CHECK_EQ(gauge_new(r, "ok_name", "h", NULL, NULL), 0);
    CHECK_EQ(counter_new(r, "ok_name", "h", NULL, NULL), -EEXIST);
    CHECK_EQ(tern_metrics_gauge_func(r, "ok_name", "h", forty_two, NULL), -EEXIST);
    tern_metrics_registry_free(r);
}

static void children_are_found_again_and_typed(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    const char *l[] = {"a", "b", NULL};
    tern_metrics_family *f;
    CHECK_EQ(counter_new(r, "c_total", "C.", l, &f), 0);
    tern_metrics_counter *x = COUNTER_WITH(f, "a", "b");
    CHECK(x != NULL);
    CHECK(COUNTER_WITH(f, "a", "b") == x);
    CHECK(COUNTER_WITH_VALUES(f, (const char *const[]){"a", "b"}) == x);
    /* The hash separates values: ("ab", "") is another child. */
    tern_metrics_counter *y = COUNTER_WITH(f, "ab", "");
    CHECK(y != NULL && y != x);
    CHECK(COUNTER_WITH(f, "a", NULL) == NULL);
    CHECK(GAUGE_WITH(f, "a", "b") == NULL);
    CHECK(HISTOGRAM_WITH(f, "a", "b") == NULL);
    /* Why: -EINVAL for a NULL value or the wrong type, and *out NULL. */
    tern_metrics_counter *cc = x;
    CHECK_EQ(tern_metrics_counter_with(f, &cc, "a", NULL), -EINVAL);
    CHECK(cc == NULL);
    tern_metrics_gauge *gg = (tern_metrics_gauge *)x;
    CHECK_EQ(tern_metrics_gauge_with(f, &gg, "a", "b"), -EINVAL);
    CHECK(gg == NULL);
    CHECK_EQ(tern_metrics_counter_with(f, &cc, "a", "b"), 0);
    CHECK(cc == x);
    /* Many children: past the table size, every one is found again. */
    tern_metrics_counter *kids[300];
    char v[16];
    for (int i = 0; i < 300; i++) {
        snprintf(v, sizeof v, "%d", i);
        kids[i] = COUNTER_WITH(f, v, "k");
        tern_metrics_counter_add(kids[i], (uint64_t)i);
    }
    for (int i = 0; i < 300; i++) {
        snprintf(v, sizeof v, "%d", i);
        CHECK(COUNTER_WITH(f, v, "k") == kids[i]);
        CHECK_EQ(tern_metrics_counter_value(kids[i]), i);
    }
    tern_metrics_registry_free(r);
}


static void gauge_value_reads_back_sets_and_adds(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    tern_metrics_family *f;
    CHECK_EQ(gauge_new(r, "g", "G.", NULL, &f), 0);
    tern_metrics_gauge *g = GAUGE_WITH(f);
    CHECK(g);
    CHECK(tern_metrics_gauge_value(g) == 0);
    tern_metrics_gauge_set(g, 21.5);
    CHECK(tern_metrics_gauge_value(g) == 21.5);
    tern_metrics_gauge_add(g, -1);
    CHECK(tern_metrics_gauge_value(g) == 20.5);
    tern_metrics_gauge_set(g, -0.25);
    CHECK(tern_metrics_gauge_value(g) == -0.25);
    tern_metrics_gauge_set(g, 1e300);
    tern_metrics_gauge_add(g, 1e300);
    CHECK(tern_metrics_gauge_value(g) == 2e300);
    tern_metrics_gauge_set(g, INFINITY);
    CHECK(isinf(tern_metrics_gauge_value(g)) && tern_metrics_gauge_value(g) > 0);
    tern_metrics_gauge_set(g, NAN);
    CHECK(isnan(tern_metrics_gauge_value(g)));
    /* what a scrape shows is what the value says */
    tern_metrics_gauge_set(g, 0.1 + 0.2);
    CHECK(tern_metrics_gauge_value(g) == 0.1 + 0.2);
    char *text = scrape(r);
    CHECK_EQ(value_of(text, "g"), tern_metrics_gauge_value(g));
    free(text);
    tern_metrics_registry_free(r);
}

static void children_with_values_arrays(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    const char *l[] = {"a", "b", NULL};
    tern_metrics_family *g, *h, *c, *g0, *h0;
    CHECK_EQ(gauge_new(r, "g", "G.", l, &g), 0);
    CHECK_EQ(histogram_new(r, "h", "H.", l, (const double[]){1}, 1, &h), 0);
    CHECK_EQ(counter_new(r, "c_total", "C.", l, &c), 0);
    CHECK_EQ(gauge_new(r, "g0", "G0.", NULL, &g0), 0);
    CHECK_EQ(histogram_new(r, "h0", "H0.", NULL, NULL, 0, &h0), 0);

    /* the same child as the variadic lookup, and distinct per tuple */
    const char *xy[] = {"x", "y"}, *yx[] = {"y", "x"};
    tern_metrics_gauge *gx = GAUGE_WITH_VALUES(g, xy);
    CHECK(gx && gx == GAUGE_WITH(g, "x", "y"));
    CHECK(GAUGE_WITH_VALUES(g, xy) == gx);
    tern_metrics_gauge *gy = GAUGE_WITH_VALUES(g, yx);
    CHECK(gy && gy != gx);
    tern_metrics_histogram *hx = HISTOGRAM_WITH_VALUES(h, xy);
    CHECK(hx && hx == HISTOGRAM_WITH(h, "x", "y"));
    CHECK(HISTOGRAM_WITH_VALUES(h, yx) != hx);
    /* the values are copied: the caller's array may change after */
    char v[2] = "x";
    const char *mutable[] = {v, "y"};
    CHECK(GAUGE_WITH_VALUES(g, mutable) == gx);
    v[0] = 'z';
    CHECK(GAUGE_WITH_VALUES(g, xy) == gx);

    /* NULL for the wrong type, a NULL value, a NULL array or family */
    CHECK(GAUGE_WITH_VALUES(h, xy) == NULL);
    CHECK(GAUGE_WITH_VALUES(c, xy) == NULL);
    CHECK(HISTOGRAM_WITH_VALUES(g, xy) == NULL);
    CHECK(HISTOGRAM_WITH_VALUES(c, xy) == NULL);
    CHECK(GAUGE_WITH_VALUES(g, (const char *const[]){"x", NULL}) == NULL);
    CHECK(HISTOGRAM_WITH_VALUES(h, (const char *const[]){NULL, "y"}) == NULL);
    CHECK(GAUGE_WITH_VALUES(g, NULL) == NULL);
    CHECK(HISTOGRAM_WITH_VALUES(h, NULL) == NULL);

    /* an unlabelled family: no values, its one child */
    CHECK(GAUGE_WITH_VALUES(g0, NULL) == GAUGE_WITH(g0));
    CHECK(HISTOGRAM_WITH_VALUES(h0, NULL) == HISTOGRAM_WITH(h0));

    /* and they are the series a scrape shows */
    tern_metrics_gauge_set(gx, 3);
    tern_metrics_histogram_observe(hx, 0.5);
    tern_metrics_histogram_observe(HISTOGRAM_WITH_VALUES(h0, NULL), 7);
    char *text = scrape(r);
    CHECK_EQ(value_of(text, "g{a=\"x\",b=\"y\"}"), 3);
    CHECK_EQ(value_of(text, "g{a=\"y\",b=\"x\"}"), 0);
    CHECK(!has_line(text, "g{a=\"z\",b=\"y\"}"));
    CHECK_EQ(value_of(text, "h_bucket{a=\"x\",b=\"y\",le=\"1\"}"), 1);
    CHECK_EQ(value_of(text, "h0_count"), 1);
    CHECK_EQ(value_of(text, "h0_sum"), 7);
    free(text);
    tern_metrics_registry_free(r);
}

static double counted;

static double read_counted(void *arg)
{
    (void)arg;
    return counted;
}

static void counter_func_is_read_at_each_scrape(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    counted = 5;
    CHECK_EQ(tern_metrics_counter_func(r, "jobs_done_total", "Done.", read_counted, NULL), 0);
    char *text = scrape(r);
    CHECK(strcmp(text, "# HELP jobs_done_total Done.\n# TYPE jobs_done_total counter\n"
                       "jobs_done_total 5\n") == 0);
    free(text);
    counted = 1e6 + 0.5;
    text = scrape(r);
    CHECK_EQ(value_of(text, "jobs_done_total"), 1e6 + 0.5);
    free(text);
    CHECK_EQ(tern_metrics_counter_func(r, "f_total", "h", NULL, NULL), -EINVAL);
    CHECK_EQ(tern_metrics_counter_func(r, "bad-name", "h", read_counted, NULL), -EINVAL);
    CHECK_EQ(tern_metrics_counter_func(r, "f_total", NULL, read_counted, NULL), -EINVAL);
    CHECK_EQ(tern_metrics_counter_func(r, "jobs_done_total", "h", read_counted, NULL), -EEXIST);
    CHECK_EQ(gauge_new(r, "jobs_done_total", "h", NULL, NULL), -EEXIST);
    tern_metrics_registry_free(r);
}

typedef struct hook_state {
    int runs, releases;
    double snapshot;
} hook_state;

static void take_snapshot(void *arg)
{
    hook_state *st = arg;
    st->runs++;
    st->snapshot = st->runs * 10;
}

static void release_state(void *arg)
{
    ((hook_state *)arg)->releases++;
}

static double read_snapshot(void *arg)
{
    return ((hook_state *)arg)->snapshot;
}

static void on_scrape_runs_before_values_and_releases_at_free(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    hook_state st = {0}, other = {0};
    CHECK_EQ(tern_metrics_gauge_func(r, "snap", "From the hook.", read_snapshot, &st), 0);
    CHECK_EQ(tern_metrics_on_scrape(r, take_snapshot, release_state, &st), 0);
    CHECK_EQ(tern_metrics_on_scrape(r, take_snapshot, NULL, &other), 0);   /* no release */
    CHECK_EQ(tern_metrics_on_scrape(r, NULL, release_state, &st), -EINVAL);
    CHECK_EQ(st.runs, 0);
    /* once per scrape, before the values are read */
    char *text = scrape(r);
    CHECK_EQ(st.runs, 1);
    CHECK_EQ(other.runs, 1);
    CHECK_EQ(value_of(text, "snap"), 10);
    free(text);
    text = scrape(r);
    CHECK_EQ(st.runs, 2);
    CHECK_EQ(value_of(text, "snap"), 20);
    free(text);
    CHECK_EQ(st.releases, 0);
    tern_metrics_registry_free(r);
    CHECK_EQ(st.releases, 1);
    CHECK_EQ(other.releases, 0);
    CHECK_EQ(st.runs, 2);
}

static void write_to_a_file_and_to_a_failing_one(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    hook_state st = {0};
    CHECK_EQ(tern_metrics_gauge_func(r, "snap", "From the hook.", read_snapshot, &st), 0);
    CHECK_EQ(tern_metrics_on_scrape(r, take_snapshot, NULL, &st), 0);
    tern_metrics_family *f;
    CHECK_EQ(counter_new(r, "a_total", "A.", NULL, &f), 0);
    tern_metrics_counter_add(COUNTER_WITH(f), 3);

    /* the same bytes tern_metrics_format gives (each scrape runs the hook) */
    FILE *tmp = tmpfile();
    CHECK(tmp);
    CHECK_EQ(tern_metrics_write(r, tmp), 0);
    CHECK_EQ(st.runs, 1);
    long n = ftell(tmp);
    CHECK(n > 0);
    char *got = calloc(1, (size_t)n + 1);
    CHECK(got);
    rewind(tmp);
    CHECK_EQ(fread(got, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    const char *want = "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n"
                       "# HELP snap From the hook.\n# TYPE snap gauge\nsnap 10\n";
    CHECK(strcmp(got, want) == 0);
    free(got);
    st.runs = 0;
    char *text = scrape(r);
    CHECK(strcmp(text, want) == 0);
    free(text);

    /* a stream that fails: -EIO (every write into /dev/full does) */
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        CHECK_EQ(tern_metrics_write(r, full), -EIO);
        fclose(full);
    }
    FILE *ro = fopen("/dev/null", "r");
    CHECK(ro);
    CHECK_EQ(tern_metrics_write(r, ro), -EIO);
    fclose(ro);
    /* and the registry still scrapes after */
    text = scrape(r);
    CHECK_EQ(value_of(text, "a_total"), 3);
    free(text);
    tern_metrics_registry_free(r);
}

/* ---- histograms ------------------------------------------------------------ */

static void family_options_are_checked(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    tern_metrics_family *f = (tern_metrics_family *)1;
    /* No options, no type, an unknown type: -EINVAL with *out NULL. */
    CHECK_EQ(tern_metrics_family_new(r, NULL, &f), -EINVAL);
    CHECK(f == NULL);
    tern_metrics_family_options o = {.name = "t_total", .help = "T."};
    f = (tern_metrics_family *)1;
    CHECK_EQ(tern_metrics_family_new(r, &o, &f), -EINVAL);
    CHECK(f == NULL);
    o.type = (tern_metrics_type)42;
    CHECK_EQ(tern_metrics_family_new(r, &o, &f), -EINVAL);
    /* Bounds belong to histograms only. */
    o.type = TERN_METRICS_COUNTER;
    o.bounds = (const double[]){1};
    o.nbounds = 1;
    CHECK_EQ(tern_metrics_family_new(r, &o, &f), -EINVAL);
    o.type = TERN_METRICS_GAUGE;
    CHECK_EQ(tern_metrics_family_new(r, &o, &f), -EINVAL);
    o.type = TERN_METRICS_HISTOGRAM;
    CHECK_EQ(tern_metrics_family_new(r, &o, &f), 0);
    tern_metrics_histogram *h;
    CHECK_EQ(tern_metrics_histogram_with(f, &h), 0);
    tern_metrics_histogram_observe(h, 1);
    char *s = scrape(r);
    CHECK(strstr(s, "t_total_bucket{le=\"1\"} 1\n"));
    free(s);
    tern_metrics_registry_free(r);
}

static void null_family_child(void)
{
    tern_metrics_counter *c;
    tern_metrics_counter_with(NULL, &c, "x");
}

static void null_family_values_child(void)
{
    tern_metrics_gauge *g;
    tern_metrics_gauge_with_values(NULL, NULL, &g);
}

static void a_null_family_aborts_naming_the_function(void)
{
    child_result r = run_child(null_family_child);
    CHECK(!r.exited);
    CHECK(strstr(r.err, "tern_metrics_counter_with: f is NULL"));
    r = run_child(null_family_values_child);
    CHECK(!r.exited);
    CHECK(strstr(r.err, "tern_metrics_gauge_with_values: f is NULL"));
}

static void histogram_bounds_are_inclusive(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    tern_metrics_family *f;
    CHECK_EQ(histogram_new(r, "h", "H.", NULL, (const double[]){1, 2, 5}, 3, &f), 0);
    tern_metrics_histogram *h = HISTOGRAM_WITH(f);
    const double obs[] = {-3, 0, 1, nextafter(1, 2), 2, 5, nextafter(5, 6), 1e300};
    for (size_t i = 0; i < sizeof obs / sizeof *obs; i++)
        tern_metrics_histogram_observe(h, obs[i]);
    char *s = scrape(r);
    CHECK_EQ(value_of(s, "h_bucket{le=\"1\"}"), 3);         /* -3, 0, 1 */
    CHECK_EQ(value_of(s, "h_bucket{le=\"2\"}"), 5);         /* + 1.0000000000000002, 2 */
    CHECK_EQ(value_of(s, "h_bucket{le=\"5\"}"), 6);         /* + 5 */
    CHECK_EQ(value_of(s, "h_bucket{le=\"+Inf\"}"), 8);
    CHECK_EQ(value_of(s, "h_count"), 8);
    free(s);
    uint64_t n;
    double sum;
    tern_metrics_histogram_totals(h, &n, &sum);
    CHECK_EQ(n, 8);
    CHECK(sum > 9.9e299);
    tern_metrics_registry_free(r);
}

static void histogram_default_buckets(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    tern_metrics_family *f;
    CHECK_EQ(histogram_new(r, "d_seconds", "D.", NULL, NULL, 0, &f), 0);
    tern_metrics_histogram_observe(HISTOGRAM_WITH(f), 0.005);
    char *s = scrape(r);
    const char *les[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                         "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
    char series[64];
    for (size_t i = 0; i < sizeof les / sizeof *les; i++) {
        snprintf(series, sizeof series, "d_seconds_bucket{le=\"%s\"}", les[i]);
        CHECK_EQ(value_of(s, series), 1);
    }
    free(s);
    tern_metrics_registry_free(r);
}

/* ---- concurrency ------------------------------------------------------------- */

#define INC_COROS 64

typedef struct inc_run {
    tern_metrics_family *fam, *hist;
    long per_co;
    tern_waitgroup wg;
    atomic_int started;
} inc_run;

static int inc_co(void *arg)
{
    inc_run *ir = arg;
    /* Each looks its handles up itself: concurrent first lookups too. */
    tern_metrics_counter *c = COUNTER_WITH(ir->fam, "GET", "200");
    tern_metrics_histogram *h = HISTOGRAM_WITH(ir->hist, "GET");
    CHECK(c && h);
    for (long i = 0; i < ir->per_co; i++) {
        tern_metrics_counter_inc(c);
        if (i % 16 == 0)
            tern_metrics_histogram_observe(h, (double)(i % 3));
        if (i % 1000 == 0)
            tern_yield();           /* move between Ps mid-count */
    }
    tern_waitgroup_done(&ir->wg);
    return 0;
}

static int inc_entry(void *arg)
{
    inc_run *ir = arg;
    tern_waitgroup_add(&ir->wg, INC_COROS);
    for (int i = 0; i < INC_COROS; i++)
        CHECK_EQ(tern_go(inc_co, ir), 0);
    tern_waitgroup_wait(&ir->wg, NULL);
    return 0;
}

static void concurrent_increments_are_exact(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    const char *l[] = {"method", "code", NULL}, *m[] = {"method", NULL};
    inc_run ir = {.per_co = scaled(20000)};
    CHECK_EQ(counter_new(r, "n_total", "N.", l, &ir.fam), 0);
    CHECK_EQ(histogram_new(r, "v", "V.", m, (const double[]){0, 1}, 2, &ir.hist), 0);
    run_ok(inc_entry, &ir, 2);
    long total = INC_COROS * ir.per_co;
    long obs = INC_COROS * ((ir.per_co + 15) / 16);
    CHECK_EQ(tern_metrics_counter_value(COUNTER_WITH(ir.fam, "GET", "200")), total);
    char *s = scrape(r);
    CHECK_EQ(value_of(s, "n_total{method=\"GET\",code=\"200\"}"), total);
    CHECK_EQ(value_of(s, "v_count{method=\"GET\"}"), obs);
    CHECK_EQ(value_of(s, "v_bucket{method=\"GET\",le=\"+Inf\"}"), obs);
    /* Sum of i % 3 over i = 0, 16, 32, ...: small integers, exact in a double. */
    long sum = 0;
    for (long i = 0; i < ir.per_co; i += 16)
        sum += i % 3;
    CHECK_EQ(value_of(s, "v_sum{method=\"GET\"}"), (double)(sum * INC_COROS));
    free(s);
    tern_metrics_registry_free(r);
}

/* More threads than shards: the first ones own a shard each, the rest
 * share the last one; threads that exit hand their shards on with the
 * counts in them. */
#define WAVE_THREADS 24

typedef struct wave {
    tern_metrics_counter *c;
    tern_metrics_histogram *h;
    pthread_barrier_t all_alive;
    long n;
} wave;

static void *wave_thread(void *arg)
{
    wave *w = arg;
    pthread_barrier_wait(&w->all_alive);    /* every thread holds its shard at once */
    for (long i = 0; i < w->n; i++) {
        tern_metrics_counter_inc(w->c);
        tern_metrics_histogram_observe(w->h, 1);
    }
    return NULL;
}

static void threads_beyond_the_shards_count_exactly(void)
{
    tern_metrics_registry *r;
    CHECK_EQ(tern_metrics_registry_new(&r), 0);
    tern_metrics_family *f, *hf;
    CHECK_EQ(counter_new(r, "t_total", "T.", NULL, &f), 0);
    CHECK_EQ(histogram_new(r, "t_hist", "T.", NULL, (const double[]){1}, 1, &hf), 0);
    wave w = {.c = COUNTER_WITH(f), .h = HISTOGRAM_WITH(hf),
              .n = scaled(20000)};
    for (int round = 0; round < 3; round++) {
        pthread_t t[WAVE_THREADS];
        CHECK_EQ(pthread_barrier_init(&w.all_alive, NULL, WAVE_THREADS), 0);
        for (int i = 0; i < WAVE_THREADS; i++)
            CHECK_EQ(pthread_create(&t[i], NULL, wave_thread, &w), 0);
        for (int i = 0; i < WAVE_THREADS; i++)
            CHECK_EQ(pthread_join(t[i], NULL), 0);
        pthread_barrier_destroy(&w.all_alive);
        long want = (round + 1) * WAVE_THREADS * w.n;
        CHECK_EQ(tern_metrics_counter_value(w.c), want);
        uint64_t n;
        double sum;
        tern_metrics_histogram_totals(w.h, &n, &sum);
        CHECK_EQ(n, want);
        CHECK_EQ(sum, want);
    }
    tern_metrics_registry_free(r);
}

static void default_registry_is_one_and_serves_null(void)
{
    tern_metrics_registry *d = tern_metrics_default();
    CHECK(d != NULL && tern_metrics_default() == d);
    tern_metrics_family *f;
    CHECK_EQ(counter_new(NULL, "default_test_total", "In the default.", NULL, &f), 0);
    CHECK_EQ(counter_new(d, "default_test_total", "Again.", NULL, NULL), -EEXIST);
    tern_metrics_counter_add(COUNTER_WITH(f), 7);
    char *s = scrape(NULL);
    CHECK_EQ(value_of(s, "default_test_total"), 7);
    free(s);
}

/* ---- runtime collector -------------------------------------------------------- */

typedef struct rt_run {
    tern_metrics_registry *r;
    tern_chan *park;
    tern_waitgroup wg;
} rt_run;

static int parked_co(void *arg)
{
    rt_run *rr = arg;
    long v;
    tern_chan_recv(rr->park, &v, NULL, NULL);
    tern_waitgroup_done(&rr->wg);
    return 0;
}

static int rt_entry(void *arg)
{
    rt_run *rr = arg;
    CHECK_EQ(tern_chan_new(sizeof(long), 0, &rr->park), 0);
    tern_waitgroup_add(&rr->wg, 10);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(tern_go(parked_co, rr), 0);
    tern_sleep(10 * TERN_MS);
    char *s = scrape(rr->r);
    CHECK(value_of(s, "tern_coroutines") >= 11);
    CHECK_EQ(value_of(s, "tern_sched_procs"), 2);
    CHECK(has_line(s, "tern_sched_runqueue_length{p=\"0\"}"));
    CHECK(has_line(s, "tern_sched_runqueue_length{p=\"1\"}"));
    CHECK(value_of(s, "tern_sched_switches_total") > 0);
    CHECK(value_of(s, "tern_sched_steals_total") >= 0);
    CHECK(value_of(s, "tern_blocking_queued") >= 0);
    CHECK(value_of(s, "process_resident_memory_bytes") > 1 << 20);
    CHECK(value_of(s, "process_virtual_memory_bytes") >=
          value_of(s, "process_resident_memory_bytes"));
    CHECK(value_of(s, "process_max_fds") >= 64);
    CHECK(value_of(s, "process_cpu_seconds_total") > 0);
    double start = value_of(s, "process_start_time_seconds");
    double now = (double)time(NULL);
    CHECK(start > now - 3600 && start <= now + 1);
    double fds = value_of(s, "process_open_fds");
    free(s);
    /* Two more fds show as two more. */
    int p[2];
    CHECK(pipe(p) == 0);
    s = scrape(rr->r);
    CHECK_EQ(value_of(s, "process_open_fds"), fds + 2);
    free(s);
    close(p[0]);
    close(p[1]);
    tern_chan_close(rr->park);
    tern_waitgroup_wait(&rr->wg, NULL);
    tern_chan_free(rr->park);
    return 0;
}

static void runtime_metrics_are_present_and_plausible(void)
{
    rt_run rr = {0};
    CHECK_EQ(tern_metrics_registry_new(&rr.r), 0);
    CHECK_EQ(tern_metrics_runtime_register(rr.r), 0);
    CHECK_EQ(tern_metrics_runtime_register(rr.r), -EEXIST);
    run_ok(rt_entry, &rr, 2);
    /* No runtime now: the runtime figures read 0, the process ones not. */
    char *s = scrape(rr.r);
    CHECK_EQ(value_of(s, "tern_coroutines"), 0);
    CHECK(value_of(s, "process_resident_memory_bytes") > 0);
    free(s);
    tern_metrics_registry_free(rr.r);
}

/* ---- HTTP: the middleware and the client wrapper, through a real server ---- */

typedef struct http_fx {
    tern_metrics_registry *r;
    tern_http_metrics *m;
    tern_http_router *rt;
    server sv;
    tern_http_client *c;
} http_fx;

static int user_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    return tern_http_resp_printf(w, "user %s\n", tern_http_req_param(r, "id")) < 0 ? -EIO : 0;
}

static int fail_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)w, (void)arg;
    return -EIO;            /* the server answers 500 */
}

/* GET or another method through the metrics wrapper; returns the status
 * (the body, if wanted, is malloc'd into *body), or the -errno. */
static int request(http_fx *fx, const char *method, const char *path, char **body)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", fx->sv.url, path);
    tern_http_client_request req = {.method = method, .url = url};
    tern_http_client_response *resp;
    int rc = tern_http_metrics_client_do(fx->m, fx->c, &req, &resp, NULL);
    if (rc < 0)
        return rc;
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 20, &data, &len), 0);
    if (body)
        *body = strdup(data);
    int status = tern_http_client_response_status(resp);
    if (strcmp(path, "/metrics") == 0)
        CHECK(strcmp(tern_http_client_response_header(resp, "Content-Type"),
                     "text/plain; version=0.0.4; charset=utf-8") == 0);
    tern_http_client_response_free(resp);
    return status;
}

static int http_body(void *arg)
{
    http_fx *fx = arg;
    server_start(&fx->sv, &(tern_http_link){tern_http_router_serve, fx->rt}, 1);
    CHECK_EQ(tern_http_client_new(NULL, &fx->c), 0);

    CHECK_EQ(request(fx, "GET", "/users/1", NULL), 200);
    CHECK_EQ(request(fx, "GET", "/users/2?x=1", NULL), 200);
    CHECK_EQ(request(fx, "POST", "/users/3", NULL), 200);
    CHECK_EQ(request(fx, "GET", "/no/such/path", NULL), 404);
    CHECK_EQ(request(fx, "GET", "/another/missing", NULL), 404);
    CHECK_EQ(request(fx, "GET", "/fail", NULL), 500);
    CHECK_EQ(request(fx, "BREW", "/fail", NULL), 405);
    char *s = NULL;
    CHECK_EQ(request(fx, "GET", "/metrics", &s), 200);

    CHECK_EQ(value_of(s, "http_server_requests_total{route=\"/users/:id\",method=\"GET\",code=\"200\"}"), 2);
    CHECK_EQ(value_of(s, "http_server_requests_total{route=\"/users/:id\",method=\"POST\",code=\"200\"}"), 1);
    CHECK_EQ(value_of(s, "http_server_requests_total{route=\"unmatched\",method=\"GET\",code=\"404\"}"), 2);
    CHECK_EQ(value_of(s, "http_server_requests_total{route=\"/fail\",method=\"GET\",code=\"500\"}"), 1);
    /* An unknown method is "OTHER", never the raw token. */
    CHECK(strstr(s, "BREW") == NULL);
    CHECK(strstr(s, "method=\"OTHER\",code=\"405\"} 1\n"));
    /* No raw path ever becomes a label. */
    CHECK(strstr(s, "/no/such/path") == NULL && strstr(s, "/users/1") == NULL);
    CHECK_EQ(value_of(s, "http_server_request_duration_seconds_count{route=\"/users/:id\",method=\"GET\"}"), 2);
    CHECK(has_line(s, "http_server_request_duration_seconds_bucket{route=\"/users/:id\",method=\"GET\",le=\"0.005\"}"));
    CHECK(value_of(s, "http_server_request_duration_seconds_sum{route=\"/users/:id\",method=\"GET\"}") >= 0);
    /* The scrape itself is the one request in flight. */
    CHECK_EQ(value_of(s, "http_server_requests_in_flight"), 1);
    /* The client side, by host; the /metrics request is not counted yet. */
    char series[256], url[128];
    snprintf(series, sizeof series,
             "http_client_requests_total{host=\"%s\",method=\"GET\",code=\"200\"}", fx->sv.addr);
    CHECK_EQ(value_of(s, series), 2);
    snprintf(series, sizeof series,
             "http_client_request_duration_seconds_count{host=\"%s\",method=\"GET\"}", fx->sv.addr);
    CHECK_EQ(value_of(s, series), 5);
    free(s);

    /* NULL: the default set, in the default registry. */
    snprintf(url, sizeof url, "%s/users/9", fx->sv.url);
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_metrics_client_do(NULL, fx->c, &(tern_http_client_request){.url = url},
                                         &resp, NULL),
             0);
    tern_http_client_response_free(resp);
    s = scrape(NULL);
    snprintf(series, sizeof series,
             "http_client_requests_total{host=\"%s\",method=\"GET\",code=\"200\"}", fx->sv.addr);
    CHECK_EQ(value_of(s, series), 1);
    free(s);

    /* A request that gets no response is counted as "error". */
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    char closed[64];
    snprintf(closed, sizeof closed, "%s", tern_listener_addr(l));
    tern_listener_free(l);
    snprintf(url, sizeof url, "http://%s/x", closed);
    CHECK(tern_http_metrics_client_do(fx->m, fx->c, &(tern_http_client_request){.url = url},
                                      &resp, NULL) < 0);
    /* The ctx bounds the call: an ended one fails it without a response. */
    tern_ctx *done;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &done), 0);
    tern_ctx_cancel(done);
    snprintf(url, sizeof url, "%s/users/4", fx->sv.url);
    CHECK_EQ(tern_http_metrics_client_do(fx->m, fx->c, &(tern_http_client_request){.url = url},
                                         &resp, done),
             -ECANCELED);
    tern_ctx_free(done);
    s = scrape(fx->r);
    snprintf(series, sizeof series,
             "http_client_requests_total{host=\"%s\",method=\"GET\",code=\"error\"}", closed);
    CHECK_EQ(value_of(s, series), 1);
    snprintf(series, sizeof series,
             "http_client_requests_total{host=\"%s\",method=\"GET\",code=\"error\"}", fx->sv.addr);
    CHECK_EQ(value_of(s, series), 1);
    CHECK_EQ(value_of(s, "http_server_requests_in_flight"), 0);
    /* tests/kit_metrics_promtool.sh lints this scrape with promtool. */
    const char *keep = getenv("TERN_METRICS_SCRAPE");
    if (keep) {
        FILE *f = fopen(keep, "w");
        CHECK(f && fputs(s, f) >= 0 && fclose(f) == 0);
    }
    free(s);

    tern_http_client_free(fx->c);
    server_stop(&fx->sv);
    return 0;
}

static void http_middleware_and_client_through_a_real_server(void)
{
    http_fx fx = {0};
    CHECK_EQ(tern_metrics_registry_new(&fx.r), 0);
    tern_http_metrics_options mo = {.registry = fx.r};
    CHECK_EQ(tern_http_metrics_new(&mo, &fx.m), 0);
    tern_http_metrics *again;
    CHECK_EQ(tern_http_metrics_new(&mo, &again), -EEXIST);
    CHECK_EQ(tern_metrics_runtime_register(fx.r), 0);
    CHECK_EQ(tern_http_router_new(NULL, &fx.rt), 0);
    /* As the router's root middleware: it sees 404s and 405s too. */
    CHECK_EQ(tern_http_router_use(fx.rt, tern_http_mw_metrics, fx.m), 0);
    CHECK_EQ(tern_http_router_handle(fx.rt, NULL, "/users/:id", user_handler, NULL), 0);
    CHECK_EQ(tern_http_router_handle(fx.rt, "GET", "/fail", fail_handler, NULL), 0);
    CHECK_EQ(tern_http_router_handle(fx.rt, "GET", "/metrics", tern_metrics_handler, fx.r), 0);
    run_test(http_body, &fx);
    tern_http_router_free(fx.rt);
    tern_http_metrics_free(fx.m);
    tern_metrics_registry_free(fx.r);
}

/* The middleware memoises children per thread, keyed by the route's and
 * the metrics set's addresses: a registry freed and a new one made in its
 * place (malloc hands the same addresses back) behind the same router
 * must count afresh, never into the freed registry's children. */
static tern_http_metrics *current_set;

static int metrics_of_the_round(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    return tern_http_mw_metrics(r, w, current_set);
}

static int registries_body(void *arg)
{
    http_fx *fx = arg;
    server_start(&fx->sv, &(tern_http_link){tern_http_router_serve, fx->rt}, 1);
    CHECK_EQ(tern_http_client_new(NULL, &fx->c), 0);
    for (int round = 1; round <= 8; round++) {
        CHECK_EQ(tern_metrics_registry_new(&fx->r), 0);
        CHECK_EQ(tern_http_metrics_new(&(tern_http_metrics_options){.registry = fx->r}, &fx->m), 0);
        current_set = fx->m;
        for (int i = 0; i < round; i++)
            CHECK_EQ(request(fx, "GET", "/users/1", NULL), 200);
        char *s = scrape(fx->r);
        CHECK_EQ(value_of(s, "http_server_requests_total{route=\"/users/:id\",method=\"GET\",code=\"200\"}"), round);
        free(s);
        current_set = NULL;
        tern_http_metrics_free(fx->m);
        tern_metrics_registry_free(fx->r);
    }
    tern_http_client_free(fx->c);
    server_stop(&fx->sv);
    return 0;
}

static void a_new_registry_counts_afresh(void)
{
    http_fx fx = {0};
    CHECK_EQ(tern_http_router_new(NULL, &fx.rt), 0);
    CHECK_EQ(tern_http_router_use(fx.rt, metrics_of_the_round, NULL), 0);
    CHECK_EQ(tern_http_router_handle(fx.rt, NULL, "/users/:id", user_handler, NULL), 0);
    /* one P: every request is memoised on the same thread */
    run_test_opts(registries_body, &fx, &(tern_run_options){.procs = 1});
    tern_http_router_free(fx.rt);
}

TESTS(T(exposition_is_exact_and_ordered), T(unlabelled_metrics_show_zero_from_the_start),
      T(label_values_and_help_are_escaped), T(special_values_use_the_format_spellings),
      T(invalid_names_are_refused), T(children_are_found_again_and_typed),
      T(histogram_bounds_are_inclusive), T(histogram_default_buckets),
      T(concurrent_increments_are_exact), T(threads_beyond_the_shards_count_exactly),
      T(default_registry_is_one_and_serves_null), T(runtime_metrics_are_present_and_plausible),
      T(http_middleware_and_client_through_a_real_server), T(a_new_registry_counts_afresh),
      T(gauge_value_reads_back_sets_and_adds), T(children_with_values_arrays),
      T(counter_func_is_read_at_each_scrape), T(on_scrape_runs_before_values_and_releases_at_free),
      T(write_to_a_file_and_to_a_failing_one), T(family_options_are_checked),
      T(a_null_family_aborts_naming_the_function))
