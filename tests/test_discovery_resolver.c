/*
 * test_discovery_resolver.c - resolvers feeding balancers: the static one,
 * a watched file (lines, JSON, a rename over it, a malformed version and a
 * missing file keeping the last good set), and a resolver of one's own
 * through the ops interface.
 */
#include "check.h"
#include "lb_set.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tern/discovery.h>
#include <tern/runtime.h>

static char dir[64];

static const char *path_of(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

/* Write a file next to the target and rename it over, as deploys do. */
static void put(const char *text)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/eps.tmp", dir);
    FILE *f = fopen(tmp, "w");
    CHECK(f);
    fputs(text, f);
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(rename(tmp, path_of("eps")), 0);
}

typedef struct seen {
    int updates, errors, last_err;
} seen;

static void count_updates(const tern_endpoint *eps, size_t n, int err, void *arg)
{
    (void)eps, (void)n;
    seen *s = arg;
    s->updates++;
    if (err < 0) {
        s->errors++;
        s->last_err = err;
    }
}

static int static_body(void *arg)
{
    (void)arg;
    const tern_endpoint eps[] = {{"10.1.0.1:80", 2}, {"10.1.0.2:80", 0}};
    tern_resolver *r;
    CHECK_EQ(tern_resolver_static_new(eps, 2, &r), 0);
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    CHECK_EQ(tern_balancer_follow(b, r), 0);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    char got[256];
    set_of(b, got, sizeof got);
    CHECK(!strcmp(got, "10.1.0.1:80/2 10.1.0.2:80/1"));
    CHECK_EQ(tern_balancer_follow(b, r), -EBUSY);      /* one watcher */
    tern_resolver_free(r);
    tern_balancer_free(b);
    const tern_endpoint bad[] = {{"", 0}};
    CHECK_EQ(tern_resolver_static_new(bad, 1, &r), -EINVAL);
    return 0;
}

static void static_resolver_feeds_a_balancer(void)
{
    run_ok(static_body, NULL, 2);
}

static int file_body(void *arg)
{
    (void)arg;
    put("# orders\n10.2.0.1:8080\n  10.2.0.2:8080 3   # heavier\n\n");
    tern_resolver_file_options o = {.poll_interval = 10 * TERN_MS};
    tern_resolver *r;
    CHECK_EQ(tern_resolver_file_new(path_of("eps"), &o, &r), 0);
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    CHECK_EQ(tern_balancer_follow(b, r), 0);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    CHECK(becomes(b, "10.2.0.1:8080/1 10.2.0.2:8080/3"));
    /* JSON, renamed over the file */
    put("[\"10.2.0.3:8080\", {\"addr\": \"10.2.0.1:8080\", \"weight\": 5}]");
    CHECK(becomes(b, "10.2.0.3:8080/1 10.2.0.1:8080/5"));
    /* malformed versions change nothing */
    put("10.2.0.9:8080 heavy\n");
    tern_sleep(100 * TERN_MS);
    CHECK(becomes(b, "10.2.0.3:8080/1 10.2.0.1:8080/5"));
    put("[{\"addr\": 7}]");
    tern_sleep(100 * TERN_MS);
    CHECK(becomes(b, "10.2.0.3:8080/1 10.2.0.1:8080/5"));
    /* nor does the file going away */
    CHECK_EQ(unlink(path_of("eps")), 0);
    tern_sleep(100 * TERN_MS);
    CHECK(becomes(b, "10.2.0.3:8080/1 10.2.0.1:8080/5"));
    /* and the next good version is taken */
    put("10.2.0.4:8080\n");
    CHECK(becomes(b, "10.2.0.4:8080/1"));
    /* unwatched: later versions no longer reach the balancer */
    tern_resolver_unwatch(r);
    put("10.2.0.5:8080\n");
    tern_sleep(100 * TERN_MS);
    CHECK(becomes(b, "10.2.0.4:8080/1"));
    CHECK_EQ(tern_balancer_follow(b, r), -EBUSY);
    tern_resolver_free(r);
    tern_balancer_free(b);
    return 0;
}

static void file_resolver_follows_the_file_and_keeps_the_last_good_set(void)
{
    run_ok(file_body, NULL, 2);
}

static int file_errors_body(void *arg)
{
    (void)arg;
    tern_resolver_file_options o = {.poll_interval = 10 * TERN_MS};
    tern_resolver *r;
    /* missing at first: the first update is the error, wait says so */
    CHECK_EQ(tern_resolver_file_new(path_of("absent"), &o, &r), 0);
    seen s = {0};
    CHECK_EQ(tern_resolver_watch(r, count_updates, &s), 0);
    CHECK_EQ(tern_resolver_wait(r, NULL), -ENOENT);
    tern_sleep(100 * TERN_MS);
    CHECK_EQ(s.errors, 1);          /* said once, not every poll */
    tern_resolver_free(r);
    /* a bad weight */
    put("10.3.0.1:80 99999\n");
    CHECK_EQ(tern_resolver_file_new(path_of("eps"), &o, &r), 0);
    s = (seen){0};
    CHECK_EQ(tern_resolver_watch(r, count_updates, &s), 0);
    CHECK_EQ(tern_resolver_wait(r, NULL), -EBADMSG);
    tern_resolver_free(r);
    CHECK_EQ(tern_resolver_file_new(NULL, NULL, &r), -EINVAL);
    o.poll_interval = -1;
    CHECK_EQ(tern_resolver_file_new(path_of("eps"), &o, &r), -EINVAL);
    /* wait is bounded by its ctx */
    CHECK_EQ(tern_resolver_file_new(path_of("eps"), NULL, &r), 0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_resolver_wait(r, ctx), -ETIMEDOUT);   /* never watched: no update */
    tern_ctx_free(ctx);
    tern_resolver_free(r);
    return 0;
}

static void file_resolver_reports_errors(void)
{
    run_ok(file_errors_body, NULL, 2);
}

/* A resolver of one's own: delivers two sets, counts its life. */
typedef struct mine {
    int started, stopped, freed;
} mine;

static mine life;

static int mine_start(void *impl, tern_resolver_update_fn *update, void *arg)
{
    mine *m = impl;
    m->started++;
    const tern_endpoint a[] = {{"10.4.0.1:80", 0}};
    update(a, 1, 0, arg);
    update(NULL, 0, -EHOSTUNREACH, arg);    /* an error keeps the set */
    const tern_endpoint c[] = {{"10.4.0.2:80", 0}, {"10.4.0.3:80", 0}};
    update(c, 2, 0, arg);
    return 0;
}

static void mine_stop(void *impl)
{
    ((mine *)impl)->stopped++;
}

static void mine_free(void *impl)
{
    ((mine *)impl)->freed++;
}

static const tern_resolver_ops mine_ops = {mine_start, mine_stop, mine_free};

static int custom_body(void *arg)
{
    (void)arg;
    tern_resolver *r;
    CHECK_EQ(tern_resolver_new(&mine_ops, &life, &r), 0);
    tern_balancer *b;
    CHECK_EQ(tern_balancer_new(NULL, &b), 0);
    CHECK_EQ(tern_balancer_follow(b, r), 0);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    CHECK(becomes(b, "10.4.0.2:80/1 10.4.0.3:80/1"));
    tern_resolver_free(r);
    CHECK(life.started == 1 && life.stopped == 1 && life.freed == 1);
    tern_balancer_free(b);
    /* ops missing a function: refused, impl freed */
    static const tern_resolver_ops half = {mine_start, NULL, mine_free};
    CHECK_EQ(tern_resolver_new(&half, &life, &r), -EINVAL);
    CHECK_EQ(life.freed, 2);
    return 0;
}

static void resolver_of_ones_own_through_ops(void)
{
    run_ok(custom_body, NULL, 1);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tern-resolver-XXXXXX");
    CHECK(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

static void all_resolvers(void)
{
    setup();
    static_resolver_feeds_a_balancer();
    file_resolver_follows_the_file_and_keeps_the_last_good_set();
    file_resolver_reports_errors();
    resolver_of_ones_own_through_ops();
    teardown();
}

TESTS(T(all_resolvers))
