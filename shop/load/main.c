/*
 * shop-load - an open-loop load generator for the shop, through its
 * gateway's REST routes (shop/config/gateway.yaml).
 *
 *   shop-load [-gateway http://127.0.0.1:8080[,URL...]] [-rate 50] [-duration 10s]
 *             [-users 10] [-timeout 5s] [-settle 30s] [-json FILE] [-seed N]
 *             [-procs N] [-quiet]
 *
 * Open loop: request i is due at start + i/rate whatever happened to the
 * ones before it, runs in a coroutine of its own, and its latency counts
 * from that due time, not from when it could be sent: a stalled shop shows
 * up as latency instead of silently slowing the load down (no coordinated
 * omission).  The mix is the issue's: browse 60% (a category page or a
 * search), product page 25%, checkout 10% (one unit of a random product,
 * with an Idempotency-Key), login 5%; users are signed up and logged in
 * before the clock starts.  Latencies go into log-bucket histograms
 * (hist.h); the report gives p50/p90/p99/max, count and errors per route,
 * as text on stdout and as JSON into -json FILE, with a timeline (per second:
 * sent, errors, checkouts answered 2xx) where a fault's window shows.  Then
 * the books (books.c).  Several gateways: shop-load balances over the ready
 * ones (gateways.c).
 *
 * Exit status: 0 when the books balance, 1 when they do not, 2 when the
 * run could not start (bad arguments, the shop not answering).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

static const char *const route_names[NROUTES] = {"browse", "product", "checkout", "login"};
/* cumulative percentages of the mix, in route order */
static const int mix[NROUTES] = {60, 85, 95, 100};
static const char *const search_words[] = {"beans", "mug", "filter", "steel", "roast", "cups"};

#define PASSWORD "load test password"
#define SECOND 1000000000LL

/* ---- arguments ----------------------------------------------------------- */

/* "10s", "250ms", "2m", "1.5s", "500us" as ns; -1 if not a duration. */
static int64_t parse_duration(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    double unit = !strcmp(end, "s") || !*end ? 1e9 : !strcmp(end, "ms") ? 1e6 : !strcmp(end, "us") ? 1e3
                  : !strcmp(end, "m")                ? 60e9
                                                     : -1;
    return unit < 0 ? -1 : (int64_t)(v * unit);
}

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "shop-load: %s\n", why);
    fprintf(stderr, "usage: shop-load [-gateway URL[,URL...]] [-rate REQ_PER_S] [-duration D] [-users N] [-timeout D]\n"
                    "                 [-settle D] [-json FILE] [-seed N] [-procs N] [-quiet]\n");
    return 2;
}

typedef struct args {
    load_run run;
    const char *json_path;
    int procs;
} args;

static int parse_args(int argc, char **argv, args *a)
{
    load_run *run = &a->run;
    run->gateway = "http://127.0.0.1:8080";
    run->rate = 50;
    run->duration = 10 * SECOND;
    run->timeout = 5 * SECOND;
    run->settle = 30 * SECOND;
    run->nusers = 10;
    run->seed = (uint64_t)getpid();
    a->procs = 1;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i];
        if (!strcmp(k, "-quiet")) {
            run->quiet = true;
            continue;
        }
        if (!strcmp(k, "-h") || !strcmp(k, "-help") || !strcmp(k, "--help"))
            return usage(NULL);
        if (i + 1 >= argc)
            return usage("a flag without its value, or an unknown flag");
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(k, "-gateway")) {
            run->gateway = v;
        } else if (!strcmp(k, "-rate")) {
            run->rate = strtod(v, &end);
            if (*end || !(run->rate > 0 && run->rate <= 1e6))
                return usage("-rate: a number of requests per second, above 0 and at most 1000000");
        } else if (!strcmp(k, "-duration") || !strcmp(k, "-timeout") || !strcmp(k, "-settle")) {
            int64_t d = parse_duration(v);
            if (d < 0 || (d == 0 && strcmp(k, "-settle")))
                return usage("-duration, -timeout, -settle: a duration such as 10s, 250ms or 2m");
            *(!strcmp(k, "-duration") ? &run->duration : !strcmp(k, "-timeout") ? &run->timeout : &run->settle) = d;
        } else if (!strcmp(k, "-users")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 10000)
                return usage("-users: 1 to 10000");
            run->nusers = (int)n;
        } else if (!strcmp(k, "-seed")) {
            run->seed = strtoull(v, &end, 10);
            if (*end)
                return usage("-seed: a number");
        } else if (!strcmp(k, "-procs")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 0 || n > 256)
                return usage("-procs: 0 (every CPU) to 256");
            a->procs = (int)n;
        } else if (!strcmp(k, "-json")) {
            a->json_path = v;
        } else {
            return usage("unknown flag");
        }
    }
    int rc = load_gateways_parse(run, run->gateway);
    if (rc == -E2BIG)
        return usage("-gateway: at most 8 URLs");
    if (rc < 0)
        return usage("-gateway: http:// URLs, separated by commas");
    return 0;
}

/* ---- randomness: splitmix64, one stream per request ------------------------ */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- setting up: the catalog's ids, users signed up and logged in --------- */

static void note(load_run *run, const char *fmt, const char *detail)
{
    if (!run->quiet)
        fprintf(stderr, fmt, detail);
}

static int read_catalog(load_run *run)
{
    int status;
    json_t *j;
    int rc = load_call(run, "GET", "/api/products?pageSize=100", NULL, NULL, NULL, &status, &j);
    const json_t *list = json_object_get(j, "products");
    if (rc == 0 && (status != 200 || json_array_size(list) == 0))
        rc = -EPROTO;
    size_t n = rc == 0 ? json_array_size(list) : 0;
    if (rc == 0 && !(run->products = calloc(n, sizeof *run->products)))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(list, i), "id"));
        if (id && strlen(id) < sizeof run->products[0])
            strcpy(run->products[run->nproducts++], id);
    }
    json_decref(j);
    if (rc < 0)
        return rc;
    rc = load_call(run, "GET", "/api/categories", NULL, NULL, NULL, &status, &j);
    list = json_object_get(j, "categories");
    n = rc == 0 && status == 200 ? json_array_size(list) : 0;
    if (n && (run->categories = calloc(n, sizeof *run->categories)))
        for (size_t i = 0; i < n; i++) {
            const char *c = json_string_value(json_array_get(list, i));
            if (c && strlen(c) < sizeof run->categories[0])
                strcpy(run->categories[run->ncategories++], c);
        }
    json_decref(j);
    return run->nproducts ? 0 : -EPROTO;
}

/* A call the gateway may refuse with 429 (sign-up and login are limited
 * per address): asked again after a pause, within 60 s.  The status. */
static int call_patiently(load_run *run, const char *path, const char *body, json_t **j)
{
    int64_t deadline = tern_now() + 60 * SECOND;
    for (;;) {
        int status;
        int rc = load_call(run, "POST", path, NULL, NULL, body, &status, j);
        if (rc == 0 && status != 429)
            return status;
        json_decref(*j);
        *j = NULL;
        if (tern_now() >= deadline)
            return rc < 0 ? rc : status;
        tern_sleep(200 * 1000000LL);
    }
}

static int login(load_run *run, int u, char *token, size_t size)
{
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", run->users[u].email);
    json_t *j = NULL;
    int status = call_patiently(run, "/api/login", body, &j);
    const char *t = json_string_value(json_object_get(j, "token"));
    int rc = status == 200 && t && strlen(t) < size ? 0 : -EACCES;
    if (rc == 0)
        strcpy(token, t);
    json_decref(j);
    return rc;
}

static int set_up_users(load_run *run)
{
    if (!(run->users = calloc((size_t)run->nusers, sizeof *run->users)))
        return -ENOMEM;
    for (int u = 0; u < run->nusers; u++) {
        load_user *user = &run->users[u];
        snprintf(user->email, sizeof user->email, "load-%" PRId64 "-%d-%d@example.org", run->start_wall,
                 (int)getpid(), u);
        char body[256];
        snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"" PASSWORD "\",\"name\":\"Load %d\"}",
                 user->email, u);
        json_t *j = NULL;
        int status = call_patiently(run, "/api/users", body, &j);
        json_decref(j);
        if (status != 200) {
            fprintf(stderr, "shop-load: signing up %s: %s %d\n", user->email, status < 0 ? "error" : "status",
                    status < 0 ? -status : status);
            return -EACCES;
        }
        int rc = login(run, u, user->token, sizeof user->token);
        if (rc < 0) {
            fprintf(stderr, "shop-load: logging in %s failed\n", user->email);
            return rc;
        }
    }
    return 0;
}

/* ---- the requests ----------------------------------------------------------- */

typedef struct request {
    load_run *run;
    int route;
    uint64_t n;                 /* its number in the run */
    int64_t due;                /* tern_now() it was scheduled for */
    uint64_t rand;
} request;

static void add_order(load_run *run, const load_order *o)
{
    pthread_mutex_lock(&run->lock);
    if (run->norders == run->orders_cap) {
        size_t cap = run->orders_cap ? 2 * run->orders_cap : 256;
        load_order *p = realloc(run->orders, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&run->lock);
            fprintf(stderr, "shop-load: out of memory keeping an order: the books will not balance\n");
            return;
        }
        run->orders = p, run->orders_cap = cap;
    }
    run->orders[run->norders++] = *o;
    pthread_mutex_unlock(&run->lock);
}

static int checkout(request *rq, int *status)
{
    load_run *run = rq->run;
    load_order o = {.quantity = 1, .user = (int)(splitmix(&rq->rand) % (uint64_t)run->nusers)};
    snprintf(o.product, sizeof o.product, "%s", run->products[splitmix(&rq->rand) % run->nproducts]);
    snprintf(o.key, sizeof o.key, "load-%" PRId64 "-%" PRIu64, run->start_wall, rq->n);
    char body[256], token[sizeof run->users[0].token];
    snprintf(body, sizeof body, "{\"items\":[{\"productId\":\"%s\",\"quantity\":1}]}", o.product);
    pthread_mutex_lock(&run->lock);
    strcpy(token, run->users[o.user].token);
    pthread_mutex_unlock(&run->lock);
    json_t *j = NULL;
    int rc = load_call(run, "POST", "/api/orders", token, o.key, body, status, &j);
    if (rc == 0 && *status == 200) {
        const char *id = json_string_value(json_object_get(j, "id"));
        snprintf(o.id, sizeof o.id, "%s", id ? id : "");
        o.status = load_order_status(json_object_get(j, "status"));
        add_order(run, &o);
    } else if (rc < 0 || *status >= 500) {
        add_order(run, &o);     /* it may exist: the books ask again by its key */
    }
    json_decref(j);
    return rc;
}

static int do_login(request *rq, int *status)
{
    load_run *run = rq->run;
    int u = (int)(splitmix(&rq->rand) % (uint64_t)run->nusers);
    char body[256];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"" PASSWORD "\"}", run->users[u].email);
    json_t *j = NULL;
    int rc = load_call(run, "POST", "/api/login", NULL, NULL, body, status, &j);
    const char *t = json_string_value(json_object_get(j, "token"));
    if (rc == 0 && *status == 200 && t && strlen(t) < sizeof run->users[u].token) {
        pthread_mutex_lock(&run->lock);
        strcpy(run->users[u].token, t);
        pthread_mutex_unlock(&run->lock);
    }
    json_decref(j);
    return rc;
}

static int run_request(void *arg)
{
    request *rq = arg;
    load_run *run = rq->run;
    char path[256];
    int status = 0, rc;
    switch (rq->route) {
    case ROUTE_BROWSE:
        if (run->ncategories && splitmix(&rq->rand) % 2)
            snprintf(path, sizeof path, "/api/products?category=%s&pageSize=10",
                     run->categories[splitmix(&rq->rand) % run->ncategories]);
        else
            snprintf(path, sizeof path, "/api/products?query=%s",
                     search_words[splitmix(&rq->rand) % (sizeof search_words / sizeof search_words[0])]);
        rc = load_call(run, "GET", path, NULL, NULL, NULL, &status, NULL);
        break;
    case ROUTE_PRODUCT:
        snprintf(path, sizeof path, "/api/products/%s", run->products[splitmix(&rq->rand) % run->nproducts]);
        rc = load_call(run, "GET", path, NULL, NULL, NULL, &status, NULL);
        break;
    case ROUTE_CHECKOUT:
        rc = checkout(rq, &status);
        break;
    default:
        rc = do_login(rq, &status);
        break;
    }
    int64_t latency = tern_now() - rq->due;
    load_stats *st = &run->stats[rq->route];
    pthread_mutex_lock(&run->lock);
    load_hist_record(&st->hist, latency);
    int cls = rc == 0 && status >= 200 && status < 600 ? status / 100 : 0;
    st->status[cls]++;
    st->errors += cls != 2;
    size_t sec = (size_t)((rq->due - run->start) / SECOND);
    if (sec < run->nseconds) {
        run->timeline[sec].sent++;
        run->timeline[sec].errors += cls != 2;
        run->timeline[sec].checkouts_ok += cls == 2 && rq->route == ROUTE_CHECKOUT;
    }
    pthread_mutex_unlock(&run->lock);
    free(rq);
    return 0;
}

/* Start request n at its due time: the dispatcher never waits for an
 * answer, only for the clock. */
static int dispatch(load_run *run, tern_group *g, int64_t start, uint64_t *sent)
{
    double interval = 1e9 / run->rate;
    uint64_t rnd = run->seed;
    for (uint64_t n = 0;; n++) {
        int64_t due = start + (int64_t)((double)n * interval);
        if (due >= start + run->duration)
            break;
        tern_sleep_until(due);
        if (tern_now() - due > 1000000)
            run->late++;
        request *rq = malloc(sizeof *rq);
        if (!rq)
            return -ENOMEM;
        uint64_t pick = splitmix(&rnd) % 100;
        int route = 0;
        while (pick >= (uint64_t)mix[route])
            route++;
        *rq = (request){.run = run, .route = route, .n = n, .due = due, .rand = splitmix(&rnd)};
        int rc = tern_group_go(g, run_request, rq, NULL);
        if (rc < 0) {
            free(rq);
            return rc;
        }
        (*sent)++;
    }
    return 0;
}

/* ---- the report ----------------------------------------------------------- */

static double ms(int64_t ns)
{
    return (double)ns / 1e6;
}

static json_t *stats_json(const load_stats *st, double seconds)
{
    const load_hist *h = &st->hist;
    json_t *o = json_object();
    json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    json_object_set_new(o, "errors", json_integer((json_int_t)st->errors));
    json_object_set_new(o, "ok_per_s", json_real((double)st->status[2] / seconds));
    json_object_set_new(o, "p50_ms", json_real(ms(load_hist_quantile(h, 0.50))));
    json_object_set_new(o, "p90_ms", json_real(ms(load_hist_quantile(h, 0.90))));
    json_object_set_new(o, "p99_ms", json_real(ms(load_hist_quantile(h, 0.99))));
    json_object_set_new(o, "max_ms", json_real(ms(h->max)));
    json_t *s = json_object();
    static const char *const cls[6] = {"no_answer", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 6; i++)
        if (st->status[i])
            json_object_set_new(s, cls[i], json_integer((json_int_t)st->status[i]));
    json_object_set_new(o, "status", s);
    return o;
}

static void print_row(FILE *out, const char *name, const load_stats *st)
{
    const load_hist *h = &st->hist;
    fprintf(out, "%-9s %8" PRIu64 " %7" PRIu64 " %9.2f %9.2f %9.2f %9.2f\n", name, h->count, st->errors,
            ms(load_hist_quantile(h, 0.50)), ms(load_hist_quantile(h, 0.90)), ms(load_hist_quantile(h, 0.99)),
            ms(h->max));
}

static json_t *report(load_run *run, double seconds, uint64_t sent)
{
    load_stats total = {0};
    json_t *j = json_object(), *routes = json_object();
    printf("shop-load: %s, %.1f req/s for %.1f s: %" PRIu64 " requests, %" PRIu64 " started over 1 ms late\n",
           run->gateway, run->rate, (double)run->duration / 1e9, sent, run->late);
    printf("%-9s %8s %7s %9s %9s %9s %9s\n", "route", "count", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms");
    for (int r = 0; r < NROUTES; r++) {
        print_row(stdout, route_names[r], &run->stats[r]);
        json_object_set_new(routes, route_names[r], stats_json(&run->stats[r], seconds));
        load_hist_merge(&total.hist, &run->stats[r].hist);
        total.errors += run->stats[r].errors;
        for (int i = 0; i < 6; i++)
            total.status[i] += run->stats[r].status[i];
    }
    print_row(stdout, "all", &total);
    printf("checkouts answered 2xx: %.1f per second\n", (double)run->stats[ROUTE_CHECKOUT].status[2] / seconds);
    json_object_set_new(j, "gateway", json_string(run->gateway));
    json_object_set_new(j, "rate", json_real(run->rate));
    json_object_set_new(j, "duration_s", json_real((double)run->duration / 1e9));
    json_object_set_new(j, "users", json_integer(run->nusers));
    json_object_set_new(j, "requests", json_integer((json_int_t)sent));
    json_object_set_new(j, "late", json_integer((json_int_t)run->late));
    json_object_set_new(j, "routes", routes);
    json_object_set_new(j, "all", stats_json(&total, seconds));
    json_object_set_new(j, "checkout_per_s", json_real((double)run->stats[ROUTE_CHECKOUT].status[2] / seconds));
    json_t *tl = json_array();
    for (size_t i = 0; i < run->nseconds; i++) {
        const load_second *t = &run->timeline[i];
        json_array_append_new(tl, json_pack("{s:I, s:I, s:I}", "sent", (json_int_t)t->sent, "errors",
                                            (json_int_t)t->errors, "checkouts_ok", (json_int_t)t->checkouts_ok));
    }
    json_object_set_new(j, "timeline", tl);
    if (total.errors) {
        printf("errors by second:");
        for (size_t i = 0; i < run->nseconds; i++)
            if (run->timeline[i].errors)
                printf(" %zu:%" PRIu64, i, run->timeline[i].errors);
        printf("\n");
    }
    return j;
}

/* ---- the run ---------------------------------------------------------------- */

static int load_main(void *arg)
{
    args *a = arg;
    load_run *run = &a->run;
    int rc = tern_http_client_new(&(tern_http_client_options){.max_idle_per_host = 512}, &run->client);
    if (rc < 0)
        return fprintf(stderr, "shop-load: %s\n", tern_strerror(rc)), 2;
    int exit_status = 2;
    int64_t (*before)[3] = NULL;
    tern_group *g = NULL, *watcher = NULL;
    json_t *j = NULL;
    /* the gateways' readiness is followed from the first call to the
     * books' last (a gateway may restart while the orders settle) */
    if ((rc = tern_group_new(NULL, NULL, &watcher)) < 0 || (rc = load_gateways_watch(run, watcher)) < 0) {
        fprintf(stderr, "shop-load: watching the gateways: %s\n", tern_strerror(rc));
        goto out;
    }
    note(run, "shop-load: reading the catalog at %s\n", run->gateway);
    if ((rc = read_catalog(run)) < 0) {
        fprintf(stderr, "shop-load: the catalog at %s: %s\n", run->gateway, tern_strerror(rc));
        goto out;
    }
    note(run, "shop-load: signing up and logging in %s users\n", "the");
    if (set_up_users(run) < 0)
        goto out;
    if (!(before = calloc(run->nproducts, sizeof *before)) || (rc = load_stock(run, before)) < 0) {
        fprintf(stderr, "shop-load: reading the stock: %s\n", tern_strerror(rc ? rc : -ENOMEM));
        goto out;
    }
    run->nseconds = (size_t)((run->duration + SECOND - 1) / SECOND);
    if (!(run->timeline = calloc(run->nseconds, sizeof *run->timeline))) {
        fprintf(stderr, "shop-load: out of memory\n");
        goto out;
    }
    if ((rc = tern_group_new(NULL, NULL, &g)) < 0)
        goto out;
    note(run, "shop-load: %s\n", "the run starts");
    uint64_t sent = 0;
    run->start = tern_now();
    rc = dispatch(run, g, run->start, &sent);
    tern_group_wait(g, NULL);
    if (rc < 0) {
        fprintf(stderr, "shop-load: starting requests: %s\n", tern_strerror(rc));
        goto out;
    }
    double seconds = (double)run->duration / 1e9;
    j = report(run, seconds, sent);
    note(run, "shop-load: %s\n", "settling the books");
    json_t *books = json_object();
    bool ok = load_books(run, (const int64_t(*)[3])before, stdout, books);
    json_object_set_new(j, "books", books);
    exit_status = ok ? 0 : 1;
    if (a->json_path && json_dump_file(j, a->json_path, JSON_INDENT(2)) < 0) {
        fprintf(stderr, "shop-load: cannot write %s\n", a->json_path);
        exit_status = 2;
    }
out:
    json_decref(j);
    if (g)
        tern_group_free(g);
    load_gateways_unwatch(run);
    if (watcher) {
        tern_group_wait(watcher, NULL);
        tern_group_free(watcher);
    }
    free(before);
    tern_http_client_free(run->client);
    return exit_status;
}

int main(int argc, char **argv)
{
    static args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;
    a.run.start_wall = (int64_t)time(NULL);
    pthread_mutex_init(&a.run.lock, NULL);
    rc = tern_run_opts(load_main, &a, &(tern_run_options){.procs = a.procs});
    free(a.run.users);
    free(a.run.products);
    free(a.run.categories);
    free(a.run.orders);
    free(a.run.timeline);
    return rc < 0 ? 2 : rc;
}
