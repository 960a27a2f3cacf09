/*
 * test_gateway_split.c - weighted splits (canaries): 70/30 over 10,000
 * requests lands within 3 points of 70%, the override header and cookie
 * pick a leg, and a draw sets the sticky cookie that keeps a client on
 * its leg.
 */
#include "check.h"
#include "gateway_fixture.h"

static upstream A, B;

static void start(gwsrv *s, const char *override)
{
    upstream_start(&A, "stable");
    upstream_start(&B, "canary");
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "upstreams:\n"
             "  stable: {endpoints: [\"%s\"]}\n"
             "  canary: {endpoints: [\"%s\"]}\n"
             "routes:\n"
             "  - match: {prefix: /api/}\n"
             "    split:\n"
             "      - {upstream: stable, weight: 70}\n"
             "      - {upstream: canary, weight: 30}\n"
             "%s",
             A.addr, B.addr, override);
    char err[512];
    int rc = gw_start_text(s, cfg, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "gateway: %s\n", err);
    CHECK_EQ(rc, 0);
}

static void stop(gwsrv *s)
{
    gw_stop(s);
    upstream_stop(&A);
    upstream_stop(&B);
}

typedef struct loop_arg {
    gwsrv *s;
    int n;
    int stable, canary, errors;
    tern_waitgroup *wg;
} loop_arg;

static int loop_co(void *arg)
{
    loop_arg *a = arg;
    for (int i = 0; i < a->n; i++) {
        reply r;
        if (gw_get(a->s, "/api/x", &r) < 0 || r.status != 200)
            a->errors++;
        else if (strncmp(r.body, "stable", 6) == 0)
            a->stable++;
        else
            a->canary++;
    }
    tern_waitgroup_done(a->wg);
    return 0;
}

static int weights_main(void *arg)
{
    (void)arg;
    gwsrv s;
    start(&s, "");
    enum { LOOPS = 8, TOTAL = 10000 };
    loop_arg la[LOOPS];
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&wg, LOOPS);
    for (int i = 0; i < LOOPS; i++) {
        la[i] = (loop_arg){.s = &s, .n = TOTAL / LOOPS, .wg = &wg};
        CHECK_EQ(tern_go(loop_co, &la[i]), 0);
    }
    tern_waitgroup_wait(&wg, NULL);
    int stable = 0, canary = 0, errors = 0;
    for (int i = 0; i < LOOPS; i++) {
        stable += la[i].stable;
        canary += la[i].canary;
        errors += la[i].errors;
    }
    fprintf(stderr, "   stable %d, canary %d, errors %d\n", stable, canary, errors);
    CHECK_EQ(errors, 0);
    CHECK_EQ(stable + canary, TOTAL);
    CHECK(stable >= TOTAL * 67 / 100 && stable <= TOTAL * 73 / 100);
    stop(&s);
    return 0;
}

static void split_70_30_within_3_points(void) { run_ok(weights_main, NULL, 2); }

static int override_main(void *arg)
{
    (void)arg;
    gwsrv s;
    start(&s, "    split_override: {header: X-Canary, cookie: canary}\n");
    reply r;
    const char *want[] = {"Set-Cookie", NULL};
    /* the header names a leg: always that one, and no cookie is set */
    const char *h[] = {"X-Canary", "canary", NULL};
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(gw_call(&s, "GET", "/api/a", h, NULL, want, &r), 0);
        CHECK_HAS(r.body, "canary GET /api/a");
        CHECK_STR(r.hdr[0], "");
    }
    /* the cookie names a leg */
    const char *c[] = {"Cookie", "theme=dark; canary=stable", NULL};
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(gw_call(&s, "GET", "/api/b", c, NULL, want, &r), 0);
        CHECK_HAS(r.body, "stable GET /api/b");
    }
    /* a name that is no leg is ignored: a draw, which sets the cookie */
    const char *bad[] = {"X-Canary", "nonesuch", NULL};
    CHECK_EQ(gw_call(&s, "GET", "/api/c", bad, NULL, want, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK_HAS(r.hdr[0], "canary=");
    /* sticky: a client that sends back the cookie it got stays on its leg */
    for (int client = 0; client < 10; client++) {
        CHECK_EQ(gw_call(&s, "GET", "/api/d", NULL, NULL, want, &r), 0);
        char leg[32];
        CHECK_EQ(sscanf(r.hdr[0], "canary=%31[a-z]", leg), 1);
        CHECK_EQ(strncmp(r.body, leg, strlen(leg)), 0);
        char cookie[64];
        snprintf(cookie, sizeof cookie, "canary=%s", leg);
        const char *back[] = {"Cookie", cookie, NULL};
        for (int i = 0; i < 10; i++) {
            CHECK_EQ(gw_call(&s, "GET", "/api/d", back, NULL, want, &r), 0);
            CHECK_EQ(strncmp(r.body, leg, strlen(leg)), 0);
            CHECK_STR(r.hdr[0], "");
        }
    }
    stop(&s);
    return 0;
}

static void override_header_cookie_and_sticky(void) { run_ok(override_main, NULL, 2); }

TESTS(T(split_70_30_within_3_points), T(override_header_cookie_and_sticky))
