/*
 * test_gateway_reload.c - hot reloads: 20 reloads while client loops keep
 * requests in flight lose none of them; a configuration that fails to
 * load is refused with its reason and the running one stays; the file
 * watcher picks up a rewritten file (and an editor's rename), and sleeps
 * between its checks (an idle gateway's runtime stays asleep) yet stops
 * at once; a program's config_edit runs at every load.
 */
#include "check.h"
#include "gateway_fixture.h"

#include <unistd.h>

static upstream A, B;

static void config_for(char *cfg, size_t n, const upstream *u)
{
    snprintf(cfg, n,
             "upstreams: {u: {endpoints: [\"%s\"]}}\n"
             "routes: [{match: {prefix: /}, upstream: u}]\n", u->addr);
}

typedef struct loop_arg {
    gwsrv *s;
    atomic_bool *stop;
    long ok, errors, on_a, on_b;
    tern_waitgroup *wg;
} loop_arg;

static int loop_co(void *arg)
{
    loop_arg *a = arg;
    while (!atomic_load(a->stop)) {
        reply r;
        int rc = gw_get(a->s, "/slow", &r);
        if (rc < 0 || r.status != 200) {
            fprintf(stderr, "   error: rc %d status %d %s\n", rc, r.status, r.body);
            a->errors++;
            continue;
        }
        a->ok++;
        if (r.body[0] == 'A')
            a->on_a++;
        else
            a->on_b++;
    }
    tern_waitgroup_done(a->wg);
    return 0;
}

static int under_load_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    A.delay = B.delay = 2 * MS;     /* requests in flight across each swap */
    char ca[512], cb[512];
    config_for(ca, sizeof ca, &A);
    config_for(cb, sizeof cb, &B);
    gwsrv s;
    char err[512];
    CHECK_EQ(gw_start_text(&s, ca, err, sizeof err), 0);
    enum { LOOPS = 8 };
    atomic_bool stop = false;
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&wg, LOOPS);
    loop_arg la[LOOPS];
    for (int i = 0; i < LOOPS; i++) {
        la[i] = (loop_arg){.s = &s, .stop = &stop, .wg = &wg};
        CHECK_EQ(tern_go(loop_co, &la[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        tern_sleep(10 * MS);
        const char *c = i % 2 ? ca : cb;
        CHECK_EQ(tern_gateway_reload(s.gw, c, strlen(c), err, sizeof err), 0);
    }
    tern_sleep(10 * MS);
    atomic_store(&stop, true);
    tern_waitgroup_wait(&wg, NULL);
    long ok = 0, errors = 0, on_a = 0, on_b = 0;
    for (int i = 0; i < LOOPS; i++) {
        ok += la[i].ok;
        errors += la[i].errors;
        on_a += la[i].on_a;
        on_b += la[i].on_b;
    }
    fprintf(stderr, "   %ld requests across 20 reloads (A %ld, B %ld), %ld errors\n", ok, on_a, on_b, errors);
    CHECK_EQ(errors, 0);
    CHECK(on_a > 0 && on_b > 0);
    struct tern_gateway_stats st;
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.reloads, 20);
    CHECK_EQ(st.generation, 21);
    CHECK_EQ(st.reload_failures, 0);
    gw_stop(&s);
    upstream_stop(&A);
    upstream_stop(&B);
    return 0;
}

static void twenty_reloads_under_load_lose_nothing(void) { run_ok(under_load_main, NULL, 2); }

static int refused_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    char ca[512];
    config_for(ca, sizeof ca, &A);
    gwsrv s;
    char err[512];
    CHECK_EQ(gw_start_text(&s, ca, err, sizeof err), 0);
    const char *bad = "upstreams: {u: {endpoints: [\"127.0.0.1:1\"]}}\n"
                      "routes: [{match: {prefix: /}, upstream: nope}]\n";
    CHECK_EQ(tern_gateway_reload(s.gw, bad, strlen(bad), err, sizeof err), -EINVAL);
    CHECK_STR(err, "config: routes[0]: upstream: no upstream called \"nope\"");
    reply r;
    CHECK_EQ(gw_get(&s, "/still", &r), 0);
    CHECK_STR(r.body, "A GET /still");
    struct tern_gateway_stats st;
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.reload_failures, 1);
    CHECK_EQ(st.generation, 1);
    /* reload with no text and no file: the text given at creation again */
    CHECK_EQ(tern_gateway_reload(s.gw, NULL, 0, err, sizeof err), 0);
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.generation, 2);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void failed_reload_keeps_the_running_config(void) { run_ok(refused_main, NULL, 2); }

static int kept_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "dead");
    char dead[64];
    snprintf(dead, sizeof dead, "%s", B.addr);
    upstream_stop(&B);
    const char *fmt = "upstreams:\n"
                      "  u:\n"
                      "    endpoints: [\"%s\", \"%s\"]\n"
                      "    policy: %s\n"
                      "    outlier: {consecutive_failures: 1, base_ejection_time: 30s}\n"
                      "routes: [{name: %s, match: {prefix: /}, upstream: u}]\n";
    char c1[512], c2[512], c3[512];
    snprintf(c1, sizeof c1, fmt, dead, A.addr, "round_robin", "one");
    snprintf(c2, sizeof c2, fmt, dead, A.addr, "round_robin", "two");
    snprintf(c3, sizeof c3, fmt, dead, A.addr, "weighted_round_robin", "two");
    gwsrv s;
    char err[512];
    CHECK_EQ(gw_start_text(&s, c1, err, sizeof err), 0);
    reply r;
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        bad += r.status == 502;
    }
    CHECK_EQ(bad, 1);                   /* the dead endpoint, ejected */
    /* routes change, the upstream's section does not: its ejection stays */
    CHECK_EQ(tern_gateway_reload(s.gw, c2, strlen(c2), err, sizeof err), 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        CHECK_EQ(r.status, 200);
    }
    /* a changed section starts over: the dead endpoint is tried again */
    CHECK_EQ(tern_gateway_reload(s.gw, c3, strlen(c3), err, sizeof err), 0);
    bad = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(gw_get(&s, "/x", &r), 0);
        bad += r.status == 502;
    }
    CHECK_EQ(bad, 1);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void unchanged_upstream_keeps_its_state(void) { run_ok(kept_main, NULL, 2); }

static void write_file(const char *path, const char *text)
{
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
    CHECK_EQ(rename(tmp, path), 0);     /* as editors save */
}

static int watch_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    char dir[] = "/tmp/tern-gw-XXXXXX";
    CHECK(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/gateway.yaml", dir);
    char cfg[512];
    config_for(cfg, sizeof cfg, &A);
    write_file(path, cfg);
    gwsrv s;
    memset(&s, 0, sizeof s);
    CHECK_EQ(tern_metrics_registry_new(&s.reg), 0);
    tern_gateway_options o = {.config_path = path, .watch = true, .watch_interval = 20 * MS,
                              .metrics = s.reg};
    char err[512];
    CHECK_EQ(tern_gateway_new(&o, &s.gw, err, sizeof err), 0);
    tern_http_server_options so = {.handler = tern_gateway_handler, .arg = s.gw};
    CHECK_EQ(tern_http_server_new(&so, &s.srv), 0);
    CHECK_EQ(tern_http_server_listen(s.srv, "127.0.0.1:0"), 0);
    snprintf(s.base, sizeof s.base, "http://%s", tern_http_server_addr(s.srv));
    CHECK_EQ(tern_go(gw_serve_co, &s), 0);
    CHECK_EQ(tern_http_client_new(NULL, &s.c), 0);
    reply r;
    CHECK_EQ(gw_get(&s, "/w", &r), 0);
    CHECK_STR(r.body, "A GET /w");
    config_for(cfg, sizeof cfg, &B);
    write_file(path, cfg);
    bool moved = false;
    for (int i = 0; i < 100 && !moved; i++) {
        tern_sleep(10 * MS);
        CHECK_EQ(gw_get(&s, "/w", &r), 0);
        moved = r.body[0] == 'B';
    }
    CHECK(moved);
    /* a broken file is refused; B keeps serving */
    write_file(path, "routes: [\n");
    tern_sleep(100 * MS);
    CHECK_EQ(gw_get(&s, "/w", &r), 0);
    CHECK_STR(r.body, "B GET /w");
    struct tern_gateway_stats st;
    CHECK_EQ(tern_gateway_stats(s.gw, &st), 0);
    CHECK_EQ(st.reloads, 1);
    CHECK_EQ(st.reload_failures, 1);    /* once, not once per poll */
    gw_stop(&s);
    unlink(path);
    rmdir(dir);
    upstream_stop(&A);
    upstream_stop(&B);
    return 0;
}

static void file_watch_reloads_a_rewritten_file(void) { run_ok(watch_main, NULL, 2); }

/* The watcher between checks: an idle gateway watching its file must let
 * the runtime sleep (it polled a stop flag every 10 ms, 100 wake-ups a
 * second, ~2% of a CPU per idle tern-gateway), and tern_gateway_free must
 * still end it at once, not after the rest of a long interval. */
static int idle_watch_main(void *arg)
{
    (void)arg;
    char dir[] = "/tmp/tern-gw-XXXXXX";
    CHECK(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/gateway.yaml", dir);
    write_file(path, "upstreams: {u: {endpoints: [\"127.0.0.1:9\"]}}\n"
                     "routes: [{match: {prefix: /}, upstream: u}]\n");
    tern_gateway_options o = {.config_path = path, .watch = true, .watch_interval = 30 * SEC};
    char err[512];
    tern_gateway *gw;
    CHECK_EQ(tern_gateway_new(&o, &gw, err, sizeof err), 0);
    tern_sleep(50 * MS);                /* the watcher is parked by now */
    struct tern_runtime_stats a, b;
    CHECK(tern_runtime_stats(&a, NULL, 0) > 0);
    tern_sleep(500 * MS);
    CHECK(tern_runtime_stats(&b, NULL, 0) > 0);
    /* this coroutine's own sleep wakes a worker once or twice; the old
     * poll made ~50 */
    uint64_t woken = b.wakeups - a.wakeups, most = idle_wakeups_allowed(10, 500 * MS, 2);
    if (woken > most)
        fprintf(stderr, "   %llu wake-ups in 500 ms of idle (at most %llu)\n", (unsigned long long)woken,
                (unsigned long long)most);
    CHECK(woken <= most);
    int64_t t0 = tern_now();
    tern_gateway_free(gw);
    CHECK(tern_now() - t0 < 1 * SEC);   /* not the interval's 30 s */
    unlink(path);
    rmdir(dir);
    return 0;
}

static void idle_watcher_sleeps_until_its_next_check(void) { run_ok(idle_watch_main, NULL, 2); }

/* config_edit: the program's edit runs at every load, the watcher's
 * reloads and a given text included; its refusal, or what is not JSON,
 * refuses the load and the running configuration stays. */
typedef struct editor {
    const upstream *to;
    int calls;
    bool fail, garbage;
    bool saw_json;              /* the YAML file came in as JSON */
} editor;

static int edit_cfg(const char *json, size_t len, char **out, void *arg, char *err, size_t errlen)
{
    editor *ed = arg;
    ed->calls++;
    ed->saw_json = json[0] == '{' && strlen(json) == len && strstr(json, "\"127.0.0.1:1\"") != NULL;
    if (ed->fail) {
        snprintf(err, errlen, "no upstream for today");
        return -EINVAL;
    }
    char buf[512];
    snprintf(buf, sizeof buf,
             ed->garbage ? "upstreams: [" :
             "{\"upstreams\": {\"u\": {\"endpoints\": [\"%s\"]}},"
             " \"routes\": [{\"match\": {\"prefix\": \"/\"}, \"upstream\": \"u\"}]}", ed->to->addr);
    *out = strdup(buf);
    return *out ? 0 : -ENOMEM;
}

static int edit_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    upstream_start(&B, "B");
    char dir[] = "/tmp/tern-gw-XXXXXX";
    CHECK(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/gateway.yaml", dir);
    const char *placeholder = "upstreams: {u: {endpoints: [\"127.0.0.1:1\"]}}\n"
                              "routes: [{match: {prefix: /}, upstream: u}]\n";
    write_file(path, placeholder);
    editor ed = {.to = &A};
    gwsrv s;
    memset(&s, 0, sizeof s);
    CHECK_EQ(tern_metrics_registry_new(&s.reg), 0);
    tern_gateway_options o = {.config_path = path, .watch = true, .watch_interval = 20 * MS,
                              .metrics = s.reg, .config_edit = edit_cfg, .config_edit_arg = &ed};
    char err[512];
    CHECK_EQ(tern_gateway_new(&o, &s.gw, err, sizeof err), 0);
    CHECK_EQ(ed.calls, 1);
    CHECK(ed.saw_json);
    tern_http_server_options so = {.handler = tern_gateway_handler, .arg = s.gw};
    CHECK_EQ(tern_http_server_new(&so, &s.srv), 0);
    CHECK_EQ(tern_http_server_listen(s.srv, "127.0.0.1:0"), 0);
    snprintf(s.base, sizeof s.base, "http://%s", tern_http_server_addr(s.srv));
    CHECK_EQ(tern_go(gw_serve_co, &s), 0);
    CHECK_EQ(tern_http_client_new(NULL, &s.c), 0);
    reply r;
    CHECK_EQ(gw_get(&s, "/e", &r), 0);
    CHECK_STR(r.body, "A GET /e");              /* the edit's address, not the file's */

    /* the file changes: the watcher reloads it, edited again */
    ed.to = &B;
    write_file(path, placeholder);      /* the same text, a new inode: a change */
    bool moved = false;
    for (int i = 0; i < 100 && !moved; i++) {
        tern_sleep(10 * MS);
        CHECK_EQ(gw_get(&s, "/e", &r), 0);
        moved = r.body[0] == 'B';
    }
    CHECK(moved);
    CHECK(ed.calls >= 2);

    /* refused by the edit, or given garbage: the running one stays */
    ed.fail = true;
    CHECK_EQ(tern_gateway_reload(s.gw, NULL, 0, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "config_edit: no upstream for today"));
    ed.fail = false;
    ed.garbage = true;
    CHECK_EQ(tern_gateway_reload(s.gw, NULL, 0, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "not a JSON object"));
    ed.garbage = false;
    CHECK_EQ(gw_get(&s, "/e", &r), 0);
    CHECK_STR(r.body, "B GET /e");
    /* a text given to reload is edited too */
    ed.to = &A;
    int before = ed.calls;
    CHECK_EQ(tern_gateway_reload(s.gw, placeholder, strlen(placeholder), err, sizeof err), 0);
    CHECK_EQ(ed.calls, before + 1);
    CHECK_EQ(gw_get(&s, "/e", &r), 0);
    CHECK_STR(r.body, "A GET /e");
    gw_stop(&s);
    unlink(path);
    rmdir(dir);
    upstream_stop(&A);
    upstream_stop(&B);
    return 0;
}

static void config_edit_runs_at_every_load(void) { run_ok(edit_main, NULL, 2); }

TESTS(T(twenty_reloads_under_load_lose_nothing), T(failed_reload_keeps_the_running_config),
      T(unchanged_upstream_keeps_its_state),
      T(file_watch_reloads_a_rewritten_file), T(idle_watcher_sleeps_until_its_next_check),
      T(config_edit_runs_at_every_load))
