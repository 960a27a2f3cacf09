/*
 * test_kit_health.c - health probes and the service lifecycle, against a
 * real server on 127.0.0.1:0: check timeouts, the exact verbose lines,
 * readiness before start-up and during the pre-stop delay, hook order and
 * timeouts, and a SIGTERM to a child process with a request in flight.
 */
#include "check.h"
#include "http_raw.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#include <tern/health.h>
#include <tern/service.h>

/* ---- checks ------------------------------------------------------------------ */

static int check_ok(char *msg, size_t len, tern_ctx *ctx, void *arg)
{
    (void)ctx, (void)arg, (void)msg, (void)len;
    return 0;
}

/* Ignores its context: sleeps for *(int64_t *)arg. */
static int check_sleepy(char *msg, size_t len, tern_ctx *ctx, void *arg)
{
    (void)ctx, (void)msg, (void)len;
    tern_sleep(*(int64_t *)arg);
    return 0;
}

static int check_refused_msg(char *msg, size_t len, tern_ctx *ctx, void *arg)
{
    (void)ctx, (void)arg;
    snprintf(msg, len, "connection refused by 10.0.0.7:6379");
    return -ECONNREFUSED;
}

static int check_errno_only(char *msg, size_t len, tern_ctx *ctx, void *arg)
{
    (void)ctx, (void)arg, (void)msg, (void)len;
    return -EIO;
}

/* Serve h's routes on sv; the router returned is the caller's to free. */
static tern_http_router *health_serve(server *sv, tern_health *h)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_health_mount(rt, h), 0);
    server_start(sv, &(tern_http_link){tern_http_router_serve, rt}, 1);
    return rt;
}

static int64_t sleepy_for = 2 * TERN_SEC;

static int check_timeout_body(void *arg)
{
    (void)arg;
    tern_health *h;
    CHECK_EQ(tern_health_new(NULL, &h), 0);
    CHECK_EQ(tern_health_add(h, "db", TERN_HEALTH_BOTH, 0, check_ok, NULL), 0);
    CHECK_EQ(tern_health_add(h, "slow", TERN_HEALTH_READINESS, 200 * TERN_MS, check_sleepy,
                             &sleepy_for),
             0);
    tern_health_set_ready(h, true);
    server sv = {0};
    tern_http_router *rt = health_serve(&sv, h);
    resp rp;

    int64_t t0 = tern_now();
    get(sv.addr, "/readyz?verbose", NULL, &rp);
    int64_t took = tern_now() - t0;
    CHECK_EQ(rp.status, 503);
    CHECK(!strcmp(rp.body, "[+]ready ok\n[+]db ok\n[-]slow failed: timeout\nreadyz check failed\n"));
    CHECK(took >= 190 * TERN_MS);
    CHECK(took < 1000 * TERN_MS);
    resp_free(&rp);

    /* "slow" is not a liveness check: /livez does not wait for it. */
    t0 = tern_now();
    get(sv.addr, "/livez", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strcmp(rp.body, "ok"));
    CHECK(tern_now() - t0 < 150 * TERN_MS);
    resp_free(&rp);
    get(sv.addr, "/livez?verbose", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strcmp(rp.body, "[+]db ok\nlivez check passed\n"));
    resp_free(&rp);

    /* The failing answer lists the checks even without ?verbose. */
    get(sv.addr, "/healthz", NULL, &rp);
    CHECK_EQ(rp.status, 503);
    CHECK(!strcmp(rp.body, "[+]ready ok\n[+]db ok\n[-]slow failed: timeout\nhealthz check failed\n"));
    resp_free(&rp);

    server_stop(&sv);
    tern_http_router_free(rt);
    tern_health_free(h);
    /* The abandoned checks are still asleep: they own their state and free
     * it when they return, after the health object is gone. */
    tern_sleep(sleepy_for + 100 * TERN_MS);
    return 0;
}

static void health_check_past_timeout_reports_timeout_in_time(void)
{
    run_test(check_timeout_body, NULL);
}

static int verbose_body(void *arg)
{
    (void)arg;
    tern_health *h;
    CHECK_EQ(tern_health_new(NULL, &h), 0);
    CHECK_EQ(tern_health_add(h, "db", TERN_HEALTH_READINESS, 0, check_ok, NULL), 0);
    CHECK_EQ(tern_health_add(h, "cache", TERN_HEALTH_READINESS, 0, check_refused_msg, NULL), 0);
    CHECK_EQ(tern_health_add(h, "disk", TERN_HEALTH_LIVENESS, 0, check_errno_only, NULL), 0);
    CHECK_EQ(tern_health_add(h, "ping", TERN_HEALTH_BOTH, 0, check_ok, NULL), 0);
    server sv = {0};
    tern_http_router *rt = health_serve(&sv, h);
    resp rp;

    CHECK(!tern_health_ready(h));
    get(sv.addr, "/readyz?verbose", NULL, &rp);
    CHECK_EQ(rp.status, 503);
    CHECK(!strcmp(rp.body, "[-]ready failed: not ready\n"
                           "[+]db ok\n"
                           "[-]cache failed: connection refused by 10.0.0.7:6379\n"
                           "[+]ping ok\n"
                           "readyz check failed\n"));
    resp_free(&rp);
    char want[512];
    snprintf(want, sizeof want, "[-]disk failed: %s\n[+]ping ok\nlivez check failed\n",
             tern_strerror(-EIO));
    get(sv.addr, "/livez?verbose=1", NULL, &rp);
    CHECK_EQ(rp.status, 503);
    CHECK(!strcmp(rp.body, want));
    resp_free(&rp);
    tern_health_set_ready(h, true);
    snprintf(want, sizeof want,
             "[+]ready ok\n[+]db ok\n[-]cache failed: connection refused by 10.0.0.7:6379\n"
             "[-]disk failed: %s\n[+]ping ok\nhealthz check failed\n",
             tern_strerror(-EIO));
    get(sv.addr, "/healthz?verbose", NULL, &rp);
    CHECK_EQ(rp.status, 503);
    CHECK(!strcmp(rp.body, want));
    resp_free(&rp);

    server_stop(&sv);
    tern_http_router_free(rt);
    tern_health_free(h);
    return 0;
}

static void health_verbose_lists_each_check_like_kubernetes(void)
{
    run_test(verbose_body, NULL);
}

static int no_checks_body(void *arg)
{
    (void)arg;
    tern_health *h;
    CHECK_EQ(tern_health_new(NULL, &h), 0);
    server sv = {0};
    tern_http_router *rt = health_serve(&sv, h);
    resp rp;
    get(sv.addr, "/livez", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strcmp(rp.body, "ok"));
    resp_free(&rp);
    get(sv.addr, "/readyz", NULL, &rp);
    CHECK_EQ(rp.status, 503);
    CHECK(!strcmp(rp.body, "[-]ready failed: not ready\nreadyz check failed\n"));
    resp_free(&rp);
    tern_health_set_ready(h, true);
    get(sv.addr, "/readyz", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strcmp(rp.body, "ok"));
    resp_free(&rp);
    get(sv.addr, "/readyz?verbose", NULL, &rp);
    CHECK(!strcmp(rp.body, "[+]ready ok\nreadyz check passed\n"));
    resp_free(&rp);
    server_stop(&sv);
    tern_http_router_free(rt);
    tern_health_free(h);
    return 0;
}

static void health_without_checks_follows_the_ready_flag(void)
{
    run_test(no_checks_body, NULL);
}

/* The three handlers called directly from a handler of our own (no
 * mount, no router): each reads only its own kind of check, and every
 * answer is plain text that no cache keeps. */
static int by_path(tern_http_req *r, tern_http_resp *w, void *h)
{
    const char *p = tern_http_req_path(r);
    if (!strcmp(p, "/l"))
        return tern_health_livez(r, w, h);
    if (!strcmp(p, "/r"))
        return tern_health_readyz(r, w, h);
    if (!strcmp(p, "/h"))
        return tern_health_healthz(r, w, h);
    return tern_http_resp_error(w, 404, NULL);
}

static void expect_probe(const char *addr, const char *path, int status, const char *body)
{
    resp rp;
    get(addr, path, NULL, &rp);
    if (rp.status != status || strcmp(rp.body, body) != 0)
        fprintf(stderr, "%s: %d \"%s\", expected %d \"%s\"\n", path, rp.status, rp.body, status,
                body);
    CHECK_EQ(rp.status, status);
    CHECK(!strcmp(rp.body, body));
    CHECK(!strcmp(must(&rp, "Content-Type"), "text/plain; charset=utf-8"));
    CHECK(!strcmp(must(&rp, "Cache-Control"), "no-store"));
    resp_free(&rp);
}

static int direct_body(void *arg)
{
    (void)arg;
    tern_health *h;
    CHECK_EQ(tern_health_new(NULL, &h), 0);
    CHECK_EQ(tern_health_add(h, "disk", TERN_HEALTH_LIVENESS, 0, check_errno_only, NULL), 0);
    CHECK_EQ(tern_health_add(h, "db", TERN_HEALTH_READINESS, 0, check_ok, NULL), 0);
    server sv = {0};
    server_start(&sv, &(tern_http_link){by_path, h}, 1);
    char disk[256], want[512];
    snprintf(disk, sizeof disk, "[-]disk failed: %s\n", tern_strerror(-EIO));

    /* not ready: readiness fails on the flag; liveness on disk alone */
    snprintf(want, sizeof want, "%slivez check failed\n", disk);
    expect_probe(sv.addr, "/l", 503, want);
    expect_probe(sv.addr, "/r", 503, "[-]ready failed: not ready\n[+]db ok\nreadyz check failed\n");
    snprintf(want, sizeof want, "[-]ready failed: not ready\n%s[+]db ok\nhealthz check failed\n",
             disk);
    expect_probe(sv.addr, "/h", 503, want);

    /* ready: /readyz passes (the failing liveness check is not its
     * business), /livez and /healthz still fail on disk */
    tern_health_set_ready(h, true);
    expect_probe(sv.addr, "/r", 200, "ok");
    expect_probe(sv.addr, "/r?verbose", 200, "[+]ready ok\n[+]db ok\nreadyz check passed\n");
    snprintf(want, sizeof want, "%slivez check failed\n", disk);
    expect_probe(sv.addr, "/l", 503, want);
    snprintf(want, sizeof want, "[+]ready ok\n%s[+]db ok\nhealthz check failed\n", disk);
    expect_probe(sv.addr, "/h", 503, want);

    /* HEAD: the status and length, no body */
    resp rp;
    fetch(sv.addr, "HEAD /r HTTP/1.1\r\nHost: t\r\n\r\n", &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strcmp(must(&rp, "Content-Length"), "2"));
    CHECK_EQ(rp.body_len, 0);
    resp_free(&rp);
    server_stop(&sv);
    tern_health_free(h);

    /* a health object with passing checks of both kinds: all three pass */
    CHECK_EQ(tern_health_new(NULL, &h), 0);
    CHECK_EQ(tern_health_add(h, "ping", TERN_HEALTH_BOTH, 0, check_ok, NULL), 0);
    tern_health_set_ready(h, true);
    server sv2 = {0};
    server_start(&sv2, &(tern_http_link){by_path, h}, 1);
    expect_probe(sv2.addr, "/l", 200, "ok");
    expect_probe(sv2.addr, "/r", 200, "ok");
    expect_probe(sv2.addr, "/h", 200, "ok");
    expect_probe(sv2.addr, "/l?verbose", 200, "[+]ping ok\nlivez check passed\n");
    expect_probe(sv2.addr, "/h?verbose", 200, "[+]ready ok\n[+]ping ok\nhealthz check passed\n");
    /* not ready: liveness still passes, readiness and health do not */
    tern_health_set_ready(h, false);
    expect_probe(sv2.addr, "/l", 200, "ok");
    expect_probe(sv2.addr, "/r", 503, "[-]ready failed: not ready\n[+]ping ok\nreadyz check failed\n");
    expect_probe(sv2.addr, "/h", 503, "[-]ready failed: not ready\n[+]ping ok\nhealthz check failed\n");
    server_stop(&sv2);
    tern_health_free(h);
    return 0;
}

static void health_handlers_called_directly_read_their_own_kind(void)
{
    run_test(direct_body, NULL);
}

static void health_add_rejects_bad_and_duplicate_checks(void)
{
    tern_health *h;
    CHECK_EQ(tern_health_new(NULL, &h), 0);
    CHECK_EQ(tern_health_add(h, "db", TERN_HEALTH_BOTH, 0, check_ok, NULL), 0);
    CHECK_EQ(tern_health_add(h, "db", TERN_HEALTH_LIVENESS, 0, check_ok, NULL), -EEXIST);
    CHECK_EQ(tern_health_add(h, "", TERN_HEALTH_BOTH, 0, check_ok, NULL), -EINVAL);
    CHECK_EQ(tern_health_add(h, "a\nb", TERN_HEALTH_BOTH, 0, check_ok, NULL), -EINVAL);
    CHECK_EQ(tern_health_add(h, "x", (tern_health_kind)0, 0, check_ok, NULL), -EINVAL);
    CHECK_EQ(tern_health_add(h, "x", (tern_health_kind)4, 0, check_ok, NULL), -EINVAL);
    CHECK_EQ(tern_health_add(h, "x", TERN_HEALTH_BOTH, 0, NULL, NULL), -EINVAL);
    tern_health_free(h);
}

/* ---- the service lifecycle ----------------------------------------------------- */

static int ok_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_text(w, 200, "hello");
}

typedef struct life {
    tern_service *svc;
    char addr[32];
    atomic_int started;         /* the start function has begun */
    char order[16];             /* hook names as they ran */
    atomic_int nran;
    int run_rc;
    tern_waitgroup ran;
} life;

static int slow_start(void *arg)
{
    life *l = arg;
    atomic_store(&l->started, 1);
    tern_sleep(300 * TERN_MS);
    return 0;
}

static int hook_a(tern_ctx *ctx, void *arg)
{
    (void)ctx;
    life *l = arg;
    l->order[atomic_fetch_add(&l->nran, 1)] = 'A';
    return 0;
}

static int hook_b(tern_ctx *ctx, void *arg)
{
    (void)ctx;
    life *l = arg;
    l->order[atomic_fetch_add(&l->nran, 1)] = 'B';
    return -EIO;    /* a failing hook does not stop the others */
}

/* Overstays its timeout: the next hook runs anyway, in time. */
static int hook_stuck(tern_ctx *ctx, void *arg)
{
    (void)ctx;
    life *l = arg;
    l->order[atomic_fetch_add(&l->nran, 1)] = 'S';
    tern_sleep(1 * TERN_SEC);
    return 0;
}

static int hook_c(tern_ctx *ctx, void *arg)
{
    (void)ctx;
    life *l = arg;
    l->order[atomic_fetch_add(&l->nran, 1)] = 'C';
    return 0;
}

static int service_co(void *arg)
{
    life *l = arg;
    l->run_rc = tern_service_run(l->svc, NULL);
    tern_waitgroup_done(&l->ran);
    return 0;
}

static int lifecycle_body(void *arg)
{
    (void)arg;
    life *l = calloc(1, sizeof *l);
    CHECK(l);
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/", ok_handler, NULL), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt},
        .addr = "127.0.0.1:0",
        .start = slow_start,
        .start_arg = l,
        .pre_stop_delay = 400 * TERN_MS,
        .drain_timeout = 2 * TERN_SEC,
        .hook_timeout = 150 * TERN_MS,
        .no_signals = true,
    };
    CHECK_EQ(tern_service_new(&o, &l->svc), 0);
    CHECK_EQ(tern_health_mount(rt, tern_service_health(l->svc)), 0);
    CHECK_EQ(tern_service_on_shutdown(l->svc, "a", hook_a, l), 0);
    CHECK_EQ(tern_service_on_shutdown(l->svc, "b", hook_b, l), 0);
    CHECK_EQ(tern_service_on_shutdown(l->svc, "stuck", hook_stuck, l), 0);
    CHECK_EQ(tern_service_on_shutdown(l->svc, "c", hook_c, l), 0);
    int port = tern_service_port(l->svc);
    CHECK(port > 0);
    snprintf(l->addr, sizeof l->addr, "127.0.0.1:%d", port);
    tern_waitgroup_add(&l->ran, 1);
    CHECK_EQ(tern_go(service_co, l), 0);

    /* During start-up: serving, alive, not ready. */
    while (!atomic_load(&l->started))
        tern_sleep(TERN_MS);
    CHECK_EQ(get_status(l->addr, "/readyz"), 503);
    CHECK_EQ(get_status(l->addr, "/livez"), 200);
    CHECK_EQ(get_status(l->addr, "/"), 200);

    /* Start-up done: ready. */
    resp rp = {0};
    int64_t until = tern_now() + 5 * TERN_SEC;
    do {
        resp_free(&rp);
        get(l->addr, "/readyz", NULL, &rp);
        CHECK(tern_now() < until);
        if (rp.status != 200)
            tern_sleep(20 * TERN_MS);
    } while (rp.status != 200);
    CHECK(!strcmp(rp.body, "ok"));
    resp_free(&rp);

    /* Stop: within the pre-stop delay the server still answers, not ready
     * but alive, and the hooks have not run. */
    int64_t stop_at = tern_now();
    tern_service_stop(l->svc);
    tern_sleep(120 * TERN_MS);      /* the runner polls for a stop every 50 ms */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(get_status(l->addr, "/readyz"), 503);
        CHECK_EQ(get_status(l->addr, "/livez"), 200);
        CHECK_EQ(get_status(l->addr, "/"), 200);
        CHECK_EQ(atomic_load(&l->nran), 0);
        tern_sleep(30 * TERN_MS);
    }
    CHECK(tern_now() - stop_at < 400 * TERN_MS);

    tern_waitgroup_wait(&l->ran, NULL);
    int64_t took = tern_now() - stop_at;
    CHECK_EQ(l->run_rc, 0);
    CHECK_EQ(atomic_load(&l->nran), 4);
    CHECK(!memcmp(l->order, "CSBA", 4));
    /* delay 400 ms + the stuck hook's 150 ms, not its full second */
    CHECK(took >= 550 * TERN_MS);
    CHECK(took < 950 * TERN_MS);
    /* After shutdown nothing accepts. */
    tern_conn *refused;
    CHECK(tern_conn_dial(TERN_NET_TCP, l->addr, &refused, NULL) < 0);

    tern_service_free(l->svc);
    tern_http_router_free(rt);
    tern_sleep(1 * TERN_SEC);       /* let the stuck hook return before l goes */
    free(l);
    return 0;
}

static void service_stops_in_order_ready_delay_drain_hooks(void)
{
    run_test(lifecycle_body, NULL);
}

static int failing_start(void *arg)
{
    (void)arg;
    return -ECONNREFUSED;
}

static int start_fail_body(void *arg)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt},
        .addr = "127.0.0.1:0",
        .start = failing_start,
        .pre_stop_delay = 5 * TERN_SEC,     /* skipped: never was ready */
        .no_signals = true,
    };
    tern_service *svc;
    CHECK_EQ(tern_service_new(&o, &svc), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_service_run(svc, NULL), -ECONNREFUSED);
    CHECK(tern_now() - t0 < 1 * TERN_SEC);
    CHECK(!tern_health_ready(tern_service_health(svc)));
    CHECK_EQ(tern_service_run(svc, NULL), -EALREADY);
    tern_service_free(svc);
    tern_http_router_free(rt);

    CHECK_EQ(tern_service_new(&(tern_service_options){.addr = "127.0.0.1:0"}, &svc), -EINVAL);
    return 0;
}

static void service_failed_start_up_returns_its_error(void)
{
    run_test(start_fail_body, NULL);
}

/* ---- SIGTERM in a child ----------------------------------------------------------- */

static atomic_int slow_entered;

static int slow_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    atomic_store(&slow_entered, 1);
    tern_sleep(500 * TERN_MS);
    return tern_http_resp_text(w, 200, "finished");
}

typedef struct sig_run {
    tern_service *svc;
    char addr[32];
    int status;
    char body[1024];
    tern_waitgroup wg;
} sig_run;

static int slow_client_co(void *arg)
{
    sig_run *sr = arg;
    resp rp;
    get(sr->addr, "/slow", NULL, &rp);
    sr->status = rp.status;
    snprintf(sr->body, sizeof sr->body, "%s", rp.body);
    resp_free(&rp);
    tern_waitgroup_done(&sr->wg);
    return 0;
}

static int killer_co(void *arg)
{
    (void)arg;
    while (!atomic_load(&slow_entered))
        tern_sleep(TERN_MS);
    CHECK_EQ(kill(getpid(), SIGTERM), 0);
    return 0;
}

static int sigterm_entry(void *arg)
{
    (void)arg;
    sig_run *sr = calloc(1, sizeof *sr);
    CHECK(sr);
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/slow", slow_handler, NULL), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt},
        .addr = "127.0.0.1:0",
        .pre_stop_delay = 100 * TERN_MS,
        .drain_timeout = 5 * TERN_SEC,
    };
    CHECK_EQ(tern_service_new(&o, &sr->svc), 0);
    CHECK_EQ(tern_health_mount(rt, tern_service_health(sr->svc)), 0);
    snprintf(sr->addr, sizeof sr->addr, "127.0.0.1:%d", tern_service_port(sr->svc));
    tern_waitgroup_add(&sr->wg, 1);
    CHECK_EQ(tern_go_opts(slow_client_co, sr, &(tern_go_options){.stack_size = 1 << 20}, NULL), 0);
    CHECK_EQ(tern_go(killer_co, NULL), 0);
    int rc = tern_service_run(sr->svc, NULL);
    tern_waitgroup_wait(&sr->wg, NULL);
    fprintf(stderr, "run %d, in-flight request %d %s\n", rc, sr->status, sr->body);
    if (rc != 0 || sr->status != 200 || strcmp(sr->body, "finished") != 0)
        return 1;
    tern_service_free(sr->svc);
    tern_http_router_free(rt);
    free(sr);
    return 0;
}

static void sigterm_child(void)
{
    tern_run_options o = {.procs = 2};
    exit(tern_run_opts(sigterm_entry, NULL, &o));
}

static void service_sigterm_finishes_in_flight_request_and_exits_0(void)
{
    /* A logger's writer thread does not survive fork: stop the parent's so
     * that the child's first line starts a logger of its own. */
    tern_log_shutdown();
    child_result r = run_child(sigterm_child);
    CHECK(r.exited);
    CHECK_EQ(r.code, 0);
    CHECK(strstr(r.err, "run 0, in-flight request 200 finished"));
    CHECK(strstr(r.err, "\"msg\":\"service stopping\",\"signal\":\"TERM\""));
}

/* ---- options, the run's ctx, NULL objects --------------------------------------- */

static int64_t sleepy_short = 300 * TERN_MS;

static int default_timeout_body(void *arg)
{
    (void)arg;
    tern_health *h = (tern_health *)1;
    CHECK_EQ(tern_health_new(&(tern_health_options){.default_timeout = -1}, &h), -EINVAL);
    CHECK(h == NULL);
    CHECK_EQ(tern_health_new(&(tern_health_options){.default_timeout = 50 * TERN_MS}, &h), 0);
    CHECK_EQ(tern_health_add(h, "slow", TERN_HEALTH_LIVENESS, 0, check_sleepy, &sleepy_short),
             0);
    server sv = {0};
    tern_http_router *rt = health_serve(&sv, h);
    resp rp;
    int64_t t0 = tern_now();
    get(sv.addr, "/livez", NULL, &rp);
    CHECK_EQ(rp.status, 503);
    CHECK(tern_now() - t0 < 250 * TERN_MS);     /* the options' 50 ms, not 1 s */
    resp_free(&rp);
    server_stop(&sv);
    tern_http_router_free(rt);
    tern_health_free(h);
    tern_sleep(sleepy_short + 100 * TERN_MS);
    return 0;
}

static void health_options_default_timeout_bounds_checks_added_without_one(void)
{
    run_test(default_timeout_body, NULL);
}

static int service_hook_mark(tern_ctx *ctx, void *arg)
{
    (void)ctx;
    atomic_store((atomic_int *)arg, 1);
    return 0;
}

static int ctx_run_body(void *arg)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt},
        .addr = "127.0.0.1:0",
        .no_signals = true,
    };
    tern_service *svc;
    CHECK_EQ(tern_service_new(&o, &svc), 0);
    static atomic_int hooked;
    CHECK_EQ(tern_service_on_shutdown(svc, "mark", service_hook_mark, &hooked), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 200 * TERN_MS, &ctx), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_service_run(svc, ctx), 0);
    int64_t took = tern_now() - t0;
    /* Stopped as SIGTERM stops it: gracefully, hooks run, not ready. */
    CHECK(took >= 190 * TERN_MS);
    CHECK(took < 1000 * TERN_MS);
    CHECK_EQ(atomic_load(&hooked), 1);
    CHECK(!tern_health_ready(tern_service_health(svc)));
    tern_ctx_free(ctx);
    tern_service_free(svc);
    tern_http_router_free(rt);
    return 0;
}

static void service_run_stops_gracefully_when_its_ctx_ends(void)
{
    run_test(ctx_run_body, NULL);
}

/* ---- an idle service sleeps -------------------------------------------------------- */

/* Counted over a second of an idle running service, from a thread of its
 * own (a coroutine asking would wake a worker). */
typedef struct idle_probe {
    tern_service *svc;
    uint64_t ticks, wakeups;
    tern_waitgroup ran;
} idle_probe;

static void *count_idle(void *arg)
{
    idle_probe *ip = arg;
    usleep(400 * 1000);                 /* ready, then idle past the monitor's 100 ms */
    struct tern_runtime_stats a, b;
    CHECK(tern_runtime_stats(&a, NULL, 0) > 0);
    usleep(1000 * 1000);
    CHECK(tern_runtime_stats(&b, NULL, 0) > 0);
    ip->ticks = b.monitor_ticks - a.monitor_ticks;
    ip->wakeups = b.wakeups - a.wakeups;
    tern_service_stop(ip->svc);         /* from a plain thread */
    return NULL;
}

static int idle_run_co(void *arg)
{
    idle_probe *ip = arg;
    CHECK_EQ(tern_service_run(ip->svc, NULL), 0);
    tern_waitgroup_done(&ip->ran);
    return 0;
}

static int join_pthread(void *arg)
{
    return pthread_join(*(pthread_t *)arg, NULL);
}

static int idle_body(void *arg)
{
    (void)arg;
    tern_service_options o = {.http = {.handler = ok_handler}, .addr = "127.0.0.1:0",
                              .admin_addr = "127.0.0.1:0"};
    idle_probe ip = {.ran = TERN_WAITGROUP_INIT};
    CHECK_EQ(tern_service_new(&o, &ip.svc), 0);
    tern_waitgroup_add(&ip.ran, 1);
    CHECK_EQ(tern_go(idle_run_co, &ip), 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, count_idle, &ip), 0);
    CHECK_EQ(tern_waitgroup_wait(&ip.ran, NULL), 0);   /* stopped by the thread */
    CHECK_EQ(tern_blocking(join_pthread, &th), 0);
    fprintf(stderr, "idle service, 1 s: %llu monitor ticks, %llu worker wake-ups\n",
            (unsigned long long)ip.ticks, (unsigned long long)ip.wakeups);
    /* it waited in 50 ms slices for a stop (and the monitor ticked every 10 ms) */
#ifndef CHECK_TSAN   /* there idle workers wake every 50 ms, and wake the monitor */
    CHECK(ip.ticks <= 3);
#endif
    CHECK(ip.wakeups <= idle_wakeups_allowed(2, TERN_SEC, 2));
    tern_service_free(ip.svc);
    return 0;
}

static void service_idle_wakes_nothing_and_stops_from_a_plain_thread(void)
{
    run_test(idle_body, NULL);
}

/* ---- a stop bounded whatever handlers do; a second stop request ---------------- */

typedef struct stuck {
    tern_service *svc;
    char addr[32];
    atomic_int entered;         /* the handler has begun */
    atomic_bool release;        /* the spinning handler may return */
    atomic_int returned;        /* it has */
    atomic_int hooked;
    int64_t took;               /* tern_service_run, from the stop */
    tern_waitgroup client;
} stuck;

/* Ignores its request's ctx (a CPU loop that yields, as a 1-hour CPU
 * profile did): only release ends it. */
static int spin_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    stuck *st = arg;
    atomic_store(&st->entered, 1);
    while (!atomic_load(&st->release))
        tern_yield();
    atomic_store(&st->returned, 1);
    return tern_http_resp_text(w, 200, "late");
}

/* Honours its ctx, but wants 20 s: only a forced drain ends it early. */
static int long_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    stuck *st = arg;
    atomic_store(&st->entered, 1);
    tern_ctx_sleep(20 * TERN_SEC, tern_http_req_ctx(r));
    atomic_store(&st->returned, 1);
    return tern_http_resp_text(w, 200, "late");
}

static int stuck_client_co(void *arg)
{
    stuck *st = arg;
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, st->addr, &c, NULL), 0);
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK_EQ(tern_conn_write(c, req, sizeof req - 1, NULL), (ssize_t)(sizeof req - 1));
    char buf[512];
    while (tern_conn_read(c, buf, sizeof buf, NULL) > 0)
        ;       /* until the server closes it (EOF, or an error: either will do) */
    tern_conn_free(c);
    tern_waitgroup_done(&st->client);
    return 0;
}

static int stuck_hook(tern_ctx *ctx, void *arg)
{
    (void)ctx;
    atomic_store(&((stuck *)arg)->hooked, 1);
    return 0;
}

static void stuck_start(stuck *st, tern_http_handler_fn *handler, int64_t drain, bool signals)
{
    tern_service_options o = {
        .http = {.handler = handler, .arg = st},
        .addr = "127.0.0.1:0",
        .drain_timeout = drain,
        .no_signals = !signals,
    };
    CHECK_EQ(tern_service_new(&o, &st->svc), 0);
    CHECK_EQ(tern_service_on_shutdown(st->svc, "mark", stuck_hook, st), 0);
    snprintf(st->addr, sizeof st->addr, "127.0.0.1:%d", tern_service_port(st->svc));
    tern_waitgroup_add(&st->client, 1);
    CHECK_EQ(tern_go_opts(stuck_client_co, st, &(tern_go_options){.stack_size = 1 << 20}, NULL), 0);
}

static int stopper_co(void *arg)
{
    stuck *st = arg;
    while (!atomic_load(&st->entered))
        tern_sleep(TERN_MS);
    st->took = tern_now();
    tern_service_stop(st->svc);
    return 0;
}

/* A handler spinning without looking at its ctx and a 200 ms drain: the
 * run ends about 200 ms + the server's 1 s grace after the stop, hooks
 * run, and the service can be freed while the handler still spins (the
 * server goes with its last connection).  Before: the run waited for the
 * handler forever. */
static int spin_stop_body(void *arg)
{
    (void)arg;
    stuck *st = calloc(1, sizeof *st);
    CHECK(st);
    stuck_start(st, spin_handler, 200 * TERN_MS, false);
    CHECK_EQ(tern_go(stopper_co, st), 0);
    CHECK_EQ(tern_service_run(st->svc, NULL), 0);
    int64_t took = tern_now() - st->took;
    fprintf(stderr, "   run returned %lld ms after the stop (200 ms drain + 1 s grace)\n",
            (long long)(took / TERN_MS));
    CHECK(took >= 1150 * TERN_MS && took < 2 * TERN_SEC);
    tern_waitgroup_wait(&st->client, NULL);     /* its connection was closed */
    CHECK_EQ(atomic_load(&st->hooked), 1);
    CHECK_EQ(atomic_load(&st->returned), 0);    /* still spinning */
    tern_service_free(st->svc);
    atomic_store(&st->release, true);
    while (!atomic_load(&st->returned))
        tern_sleep(TERN_MS);
    tern_sleep(100 * TERN_MS);                  /* its connection leaves and frees the server */
    free(st);
    return 0;
}

static void service_stop_is_bounded_when_a_handler_ignores_its_ctx(void)
{
    run_test(spin_stop_body, NULL);
}

/* The first stop request when the handler has begun, the second (a stop
 * request, or SIGTERM again in signal mode) 300 ms later, while the drain
 * waits; st->took starts then. */
static atomic_bool by_signal;

static int stop_twice_co(void *arg)
{
    stuck *st = arg;
    while (!atomic_load(&st->entered))
        tern_sleep(TERN_MS);
    if (atomic_load(&by_signal))
        CHECK_EQ(kill(getpid(), SIGTERM), 0);
    else
        tern_service_stop(st->svc);
    tern_sleep(300 * TERN_MS);      /* stopping (seen within 50 ms), draining */
    st->took = tern_now();
    if (atomic_load(&by_signal))
        CHECK_EQ(kill(getpid(), SIGTERM), 0);
    else
        tern_service_stop(st->svc);
    return 0;
}

/* A second stop while the drain waits (10 s) for a handler that wants
 * 20 s: the drain is forced at once, the handler's ctx ends, the hooks are
 * skipped, and the run returns promptly.  Before: after the 10 s drain. */
static int second_stop_body(void *arg)
{
    (void)arg;
    stuck *st = calloc(1, sizeof *st);
    CHECK(st);
    bool signals = atomic_load(&by_signal);
    stuck_start(st, long_handler, 10 * TERN_SEC, signals);
    CHECK_EQ(tern_go(stop_twice_co, st), 0);
    int rc = tern_service_run(st->svc, NULL);
    int64_t took = tern_now() - st->took;
    tern_waitgroup_wait(&st->client, NULL);
    fprintf(stderr, "run %d, %lld ms after the second stop, handler returned %d, hook ran %d\n", rc,
            (long long)(took / TERN_MS), atomic_load(&st->returned), atomic_load(&st->hooked));
    CHECK_EQ(rc, 0);
    CHECK(took < 500 * TERN_MS);
    CHECK_EQ(atomic_load(&st->returned), 1);    /* its ctx ended: it returned in the grace */
    CHECK_EQ(atomic_load(&st->hooked), 0);      /* skipped */
    tern_service_free(st->svc);
    free(st);
    return 0;
}

static void service_second_stop_request_ends_the_drain_at_once(void)
{
    atomic_store(&by_signal, false);
    run_test(second_stop_body, NULL);
}

static void second_sigterm_child(void)
{
    atomic_store(&by_signal, true);
    tern_run_options o = {.procs = 2};
    exit(tern_run_opts(second_stop_body, NULL, &o));
}

static void service_second_sigterm_ends_the_drain_at_once(void)
{
    tern_log_shutdown();    /* as service_sigterm_finishes_in_flight_request_and_exits_0 */
    child_result r = run_child(second_sigterm_child);
    CHECK(r.exited);
    CHECK_EQ(r.code, 0);
    CHECK(strstr(r.err, "\"msg\":\"service stopping\",\"signal\":\"TERM\""));
    CHECK(strstr(r.err, "\"msg\":\"service stopping at once\",\"signal\":\"TERM\""));
    CHECK(strstr(r.err, "\"msg\":\"shutdown hooks skipped\""));
}

static void null_health_add(void)
{
    tern_health_add(NULL, "x", TERN_HEALTH_BOTH, 0, check_ok, NULL);
}

static void null_service_stop(void)
{
    tern_service_stop(NULL);
}

static void null_service_run(void)
{
    tern_service_run(NULL, NULL);
}

static void health_and_service_null_objects_abort_naming_the_function(void)
{
    tern_log_shutdown();        /* no writer thread across fork */
    child_result r = run_child(null_health_add);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern: tern_health_add: h is NULL"));
    r = run_child(null_service_stop);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern: tern_service_stop: svc is NULL"));
    r = run_child(null_service_run);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern: tern_service_run: svc is NULL"));
    /* Free functions take NULL. */
    tern_health_free(NULL);
    tern_service_free(NULL);
}

/* ---- the admin listener ---------------------------------------------------------- */

typedef struct admin_run {
    tern_service *svc;
    int rc;
    tern_waitgroup ran;
} admin_run;

static int admin_service_co(void *arg)
{
    admin_run *ar = arg;
    ar->rc = tern_service_run(ar->svc, NULL);
    tern_waitgroup_done(&ar->ran);
    return 0;
}

/* Issue 15: /debug (coroutine dump, vars, CPU profile) was reachable only
 * by mounting it on the public router.  With admin_addr it is served on
 * the admin port, never on the main one, and stops with the service. */
static int admin_body(void *arg)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/", ok_handler, NULL), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt},
        .addr = "127.0.0.1:0",
        .admin_addr = "127.0.0.1:0",
        .no_signals = true,
    };
    admin_run ar = {0};
    CHECK_EQ(tern_service_new(&o, &ar.svc), 0);
    CHECK_EQ(tern_health_mount(rt, tern_service_health(ar.svc)), 0);
    tern_http_server *admin = tern_service_admin_server(ar.svc);
    CHECK(admin && tern_service_admin_router(ar.svc));
    CHECK(tern_http_server_port(admin) > 0);
    CHECK(tern_http_server_port(admin) != tern_service_port(ar.svc));
    CHECK_EQ(tern_http_router_handle(tern_service_admin_router(ar.svc), "GET", "/extra", ok_handler,
                                     NULL), 0);
    char main_addr[32], admin_addr[32];
    snprintf(main_addr, sizeof main_addr, "127.0.0.1:%d", tern_service_port(ar.svc));
    snprintf(admin_addr, sizeof admin_addr, "127.0.0.1:%d", tern_http_server_port(admin));

    /* the admin port is taken: the next service fails to start */
    tern_service *taken;
    o.admin_addr = admin_addr;
    CHECK_EQ(tern_service_new(&o, &taken), -EADDRINUSE);
    CHECK(taken == NULL);
    /* and "" means none */
    o.admin_addr = "";
    CHECK_EQ(tern_service_new(&o, &taken), 0);
    CHECK(tern_service_admin_server(taken) == NULL && tern_service_admin_router(taken) == NULL);
    tern_service_free(taken);

    tern_waitgroup_add(&ar.ran, 1);
    CHECK_EQ(tern_go(admin_service_co, &ar), 0);
    int64_t until = tern_now() + 5 * TERN_SEC;
    while (get_status(main_addr, "/readyz") != 200) {
        CHECK(tern_now() < until);
        tern_sleep(10 * TERN_MS);
    }
    CHECK_EQ(get_status(main_addr, "/debug/vars"), 404);
    CHECK_EQ(get_status(main_addr, "/debug/coroutines"), 404);
    CHECK_EQ(get_status(main_addr, "/"), 200);
    resp rp;
    get(admin_addr, "/debug/vars", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(strstr(rp.body, "\"runtime\""));
    resp_free(&rp);
    get(admin_addr, "/debug/coroutines", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(strstr(rp.body, "service-admin-serve"));
    resp_free(&rp);
    CHECK_EQ(get_status(admin_addr, "/readyz"), 200);
    CHECK_EQ(get_status(admin_addr, "/extra"), 200);
    CHECK_EQ(get_status(admin_addr, "/"), 404);    /* the application's routes are not there */

    tern_service_stop(ar.svc);
    tern_waitgroup_wait(&ar.ran, NULL);
    CHECK_EQ(ar.rc, 0);
    tern_conn *refused;
    CHECK(tern_conn_dial(TERN_NET_TCP, admin_addr, &refused, NULL) < 0);
    CHECK(tern_conn_dial(TERN_NET_TCP, main_addr, &refused, NULL) < 0);
    tern_service_free(ar.svc);
    tern_http_router_free(rt);
    return 0;
}

static void service_admin_listener_serves_debug_off_the_public_port(void)
{
    run_test(admin_body, NULL);
}

TESTS(T(health_check_past_timeout_reports_timeout_in_time),
      T(service_admin_listener_serves_debug_off_the_public_port),
      T(health_verbose_lists_each_check_like_kubernetes),
      T(health_without_checks_follows_the_ready_flag),
      T(health_handlers_called_directly_read_their_own_kind),
      T(health_add_rejects_bad_and_duplicate_checks),
      T(service_stops_in_order_ready_delay_drain_hooks),
      T(service_failed_start_up_returns_its_error),
      T(service_sigterm_finishes_in_flight_request_and_exits_0),
      T(health_options_default_timeout_bounds_checks_added_without_one),
      T(service_run_stops_gracefully_when_its_ctx_ends),
      T(service_idle_wakes_nothing_and_stops_from_a_plain_thread),
      T(service_stop_is_bounded_when_a_handler_ignores_its_ctx),
      T(service_second_stop_request_ends_the_drain_at_once),
      T(service_second_sigterm_ends_the_drain_at_once),
      T(health_and_service_null_objects_abort_naming_the_function))
