/*
 * http.c - HTTP server and client metrics: a middleware that
 * counts and times requests by route, method and status, and a wrapper
 * around tern_http_client_do that does the same by host.
 *
 * Every label value here comes from a bounded set (route patterns, the
 * nine standard methods or "OTHER", three-digit codes, hosts the program
 * chose to call), never from what a client may send freely, so a scan of
 * random paths or methods cannot grow the registry without bound.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kit/metrics/internal.h"
#include "tern/http_router.h"
#include "tern/runtime.h"

/* Requests in flight: +1 when one starts and -1 when it ends, in the
 * calling thread's shard (a plain add, as counters do), summed at scrape.
 * A shared gauge would be a compare-and-swap on one cache line that both
 * workers pull back and forth twice a request.  A request may end on
 * another thread than it began, so one shard can go below zero; the sum
 * cannot, except for an instant while a scrape reads the shards one by
 * one, which the clamp hides.  The registry owns it (its gauge function
 * reads it): a scrape hook's release frees it with the registry. */
typedef struct in_flight {
    tern_metrics_slot shards[TERN_METRICS_SHARDS];
} in_flight;

static double in_flight_value(void *arg)
{
    in_flight *f = arg;
    int64_t sum = 0;
    for (int i = 0; i < TERN_METRICS_SHARDS; i++)
        sum += (int64_t)atomic_load_explicit(&f->shards[i].v, memory_order_relaxed);
    return sum > 0 ? (double)sum : 0;
}

static void scrape_nothing(void *arg) { (void)arg; }

static void in_flight_add(in_flight *f, int64_t d)
{
    int sh = tern__metrics_shard();
    tern__metrics_slot_add(&f->shards[sh].v, (uint64_t)d, sh);
}

struct tern_http_metrics {
    tern_metrics_family *srv_total, *srv_duration, *cli_total, *cli_duration;
    in_flight *in_flight;
};

int tern_http_metrics_new(const tern_http_metrics_options *o, tern_http_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    static const tern_http_metrics_options defaults = {0};
    static const char *const srv_code[] = {"route", "method", "code", NULL};
    static const char *const srv_time[] = {"route", "method", NULL};
    static const char *const cli_code[] = {"host", "method", "code", NULL};
    static const char *const cli_time[] = {"host", "method", NULL};
    if (!o)
        o = &defaults;
    tern_http_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    tern_metrics_registry *r = o->registry;
    m->in_flight = aligned_alloc(TERN_METRICS_LINE, sizeof *m->in_flight);
    if (!m->in_flight) {
        free(m);
        return -ENOMEM;
    }
    memset(m->in_flight, 0, sizeof *m->in_flight);
    if (tern_metrics_on_scrape(r, scrape_nothing, free, m->in_flight) != 0) {
        free(m->in_flight);
        free(m);
        return -ENOMEM;
    }
    int rc = tern_metrics_family_new(
        r,
        &(tern_metrics_family_options){
            .type = TERN_METRICS_COUNTER, .name = "http_server_requests_total",
            .help = "HTTP requests answered, by route, method and status.", .labels = srv_code},
        &m->srv_total);
    if (rc == 0)
        rc = tern_metrics_family_new(
            r,
            &(tern_metrics_family_options){
                .type = TERN_METRICS_HISTOGRAM, .name = "http_server_request_duration_seconds",
                .help = "Time from a request's head being read to its handler chain returning.",
                .labels = srv_time, .bounds = o->buckets, .nbounds = o->nbuckets},
            &m->srv_duration);
    if (rc == 0)
        rc = tern_metrics_gauge_func(r, "http_server_requests_in_flight",
                                     "HTTP requests being handled now.", in_flight_value,
                                     m->in_flight);
    if (rc == 0)
        rc = tern_metrics_family_new(
            r,
            &(tern_metrics_family_options){
                .type = TERN_METRICS_COUNTER, .name = "http_client_requests_total",
                .help = "HTTP client requests, by host, method and status "
                        "(\"error\" when no response came).",
                .labels = cli_code},
            &m->cli_total);
    if (rc == 0)
        rc = tern_metrics_family_new(
            r,
            &(tern_metrics_family_options){
                .type = TERN_METRICS_HISTOGRAM, .name = "http_client_request_duration_seconds",
                .help = "Time from sending an HTTP client request to its response head.",
                .labels = cli_time, .bounds = o->buckets, .nbounds = o->nbuckets},
            &m->cli_duration);
    if (rc) {
        free(m);                /* in_flight goes with the registry */
        return rc;
    }
    *out = m;
    return 0;
}

void tern_http_metrics_free(tern_http_metrics *m)
{
    free(m);
}

static tern_http_metrics *default_set;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_make(void)
{
    if (tern_http_metrics_new(NULL, &default_set) != 0)
        default_set = NULL;     /* -EEXIST: the caller registered its own */
}

static tern_http_metrics *metrics_or_default(tern_http_metrics *m)
{
    if (m)
        return m;
    pthread_once(&default_once, default_make);
    return default_set;
}

/* The method as a label: one of the standard nine, or "OTHER". */
static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET",     "HEAD",    "POST",  "PUT",    "PATCH",
                                        "DELETE", "OPTIONS", "TRACE", "CONNECT"};
    for (size_t i = 0; m && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return known[i];
    return "OTHER";
}

/* The status code as a label: three digits without snprintf's cost on
 * every request; anything else (never sent by the server) in full. */
static void status_text(int status, char code[16])
{
    if (status >= 100 && status <= 999) {
        code[0] = (char)('0' + status / 100);
        code[1] = (char)('0' + status / 10 % 10);
        code[2] = (char)('0' + status % 10);
        code[3] = '\0';
    } else {
        snprintf(code, 16, "%d", status);
    }
}

static void count(tern_metrics_family *total, tern_metrics_family *duration, const char *who,
                  const char *method, const char *code, double seconds)
{
    tern_metrics_counter *c;
    if (tern_metrics_counter_with(total, &c, who, method, code) == 0)
        tern_metrics_counter_inc(c);
    tern_metrics_histogram *h;
    if (tern_metrics_histogram_with(duration, &h, who, method) == 0)
        tern_metrics_histogram_observe(h, seconds);
}

/* The children a server request counts into, memoised per thread.  The
 * label strings come back as the same pointers request after request (the
 * router's route patterns, method_label's table) so they key the memo
 * with the status; a hit is confirmed by comparing the route's text with
 * the child's own label (a router freed and another allocated in its
 * place could reuse the address) and by the registry epoch (the children
 * die with their registry).  A miss does the full lookup: hashing three
 * strings and comparing them, twice. */
#define MEMO_SLOTS 16

typedef struct memo {
    const tern_http_metrics *m;
    const char *route, *method;
    int status;
    uint64_t epoch;
    tern_metrics_counter *total;
    tern_metrics_histogram *duration;
} memo;

static _Thread_local memo memos[MEMO_SLOTS];

static void count_server(const tern_http_metrics *m, const char *route, const char *method,
                         int status, double seconds)
{
    uintptr_t k = (uintptr_t)route ^ (uintptr_t)method * 31 ^ (uintptr_t)m * 7 ^
                  (uintptr_t)status * 0x9E3779B1u;
    memo *e = &memos[(k ^ k >> 7 ^ k >> 13) % MEMO_SLOTS];
    uint64_t epoch = atomic_load_explicit(&tern__metrics_epoch, memory_order_relaxed);
    if (!(e->m == m && e->route == route && e->method == method && e->status == status &&
          e->epoch == epoch && e->total && e->duration &&
          ((tern__metrics_child *)e->total)->family == m->srv_total &&
          ((tern__metrics_child *)e->duration)->family == m->srv_duration &&
          strcmp(((tern__metrics_child *)e->total)->values[0], route) == 0)) {
        char code[16];
        status_text(status, code);
        *e = (memo){.m = m, .route = route, .method = method, .status = status, .epoch = epoch};
        /* On failure each leaves its handle NULL: not counted, and a miss
         * next time. */
        (void)tern_metrics_counter_with(m->srv_total, &e->total, route, method, code);
        (void)tern_metrics_histogram_with(m->srv_duration, &e->duration, route, method);
    }
    if (e->total)
        tern_metrics_counter_inc(e->total);
    if (e->duration)
        tern_metrics_histogram_observe(e->duration, seconds);
}

int tern_http_mw_metrics(tern_http_req *r, tern_http_resp *w, void *metrics)
{
    tern_http_metrics *m = metrics_or_default(metrics);
    if (!m)
        return tern_http_next(r, w);
    in_flight_add(m->in_flight, 1);
    int rc = tern_http_next(r, w);
    double took = (double)(tern_now() - tern_http_req_start_time(r)) / 1e9;
    in_flight_add(m->in_flight, -1);
    /* As the access log: a failed handler that sent nothing is answered
     * by the server with the error's status once we return. */
    int status = rc < 0 && !tern_http_resp_committed(w) ? tern_http_error_status(r, rc)
                                                        : tern_http_resp_status(w);
    const char *route = tern_http_req_route(r);
    count_server(m, route ? route : "unmatched", method_label(tern_http_req_method(r)), status,
                 took);
    return rc;
}

void tern_http_metrics_refused(const tern_http_refusal *rf, void *metrics)
{
    tern_http_metrics *m = metrics_or_default(metrics);
    if (!m || !rf)
        return;
    int64_t took = tern_now() - rf->start;
    count_server(m, "refused", method_label(rf->method), rf->status,
                 took > 0 ? (double)took / 1e9 : 0);
}

/* "host[:port]" of an http:// URL, into buf; "" when there is none. */
static void url_host(const char *url, char *buf, size_t n)
{
    const char *p = url ? strstr(url, "://") : NULL;
    p = p ? p + 3 : "";
    size_t len = strcspn(p, "/?#");
    const char *at = memchr(p, '@', len);   /* userinfo is not part of the host */
    if (at) {
        len -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (len >= n)
        len = n - 1;
    memcpy(buf, p, len);
    buf[len] = 0;
}

int tern_http_metrics_client_do(tern_http_metrics *m, tern_http_client *c,
                                const tern_http_client_request *req,
                                tern_http_client_response **out, tern_ctx *ctx)
{
    m = metrics_or_default(m);
    int64_t t0 = tern_now();
    int rc = tern_http_client_do(c, req, out, ctx);
    if (!m || !req)
        return rc;
    double took = (double)(tern_now() - t0) / 1e9;
    /* The method the client sends when none is given. */
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    char host[256], code[16];
    url_host(req->url, host, sizeof host);
    if (rc == 0)
        status_text(tern_http_client_response_status(*out), code);
    else
        snprintf(code, sizeof code, "error");
    count(m->cli_total, m->cli_duration, host, method_label(method), code, took);
    return rc;
}
