/*
 * lb_client_check.h - what the tests of a client balanced by a
 * tern_balancer over three servers share (test_discovery_grpc_lb.c,
 * test_discovery_http_lb.c): load from several coroutines counted per
 * server, and the ejection of the third server while calls go on.  A
 * test gives one call as a function of its client: the index of the
 * server that answered, or -errno.
 */
#ifndef TERN_TESTS_LB_CLIENT_CHECK_H
#define TERN_TESTS_LB_CLIENT_CHECK_H

#include "check.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <tern/discovery.h>
#include <tern/runtime.h>
#include <tern/sync.h>

typedef int lb_call_fn(void *client);

typedef struct lb_load {
    lb_call_fn *call;
    void *client;
    int per;
    atomic_int got[3];
    atomic_int failed;
    tern_waitgroup wg;
} lb_load;

static int lb_load_co(void *arg)
{
    lb_load *l = arg;
    for (int k = 0; k < l->per; k++) {
        int w = l->call(l->client);
        if (w >= 0 && w < 3)
            atomic_fetch_add(&l->got[w], 1);
        else
            atomic_fetch_add(&l->failed, 1);
    }
    tern_waitgroup_done(&l->wg);
    return 0;
}

/* workers coroutines make per calls each; none may fail; got: per server. */
static inline void lb_run_load(lb_call_fn *call, void *client, int workers, int per, int got[3])
{
    lb_load l = {.call = call, .client = client, .per = per, .wg = TERN_WAITGROUP_INIT};
    tern_waitgroup_add(&l.wg, workers);
    for (int i = 0; i < workers; i++)
        CHECK_EQ(tern_go(lb_load_co, &l), 0);
    tern_waitgroup_wait(&l.wg, NULL);
    CHECK_EQ(atomic_load(&l.failed), 0);
    for (int i = 0; i < 3; i++)
        got[i] = atomic_load(&l.got[i]);
}

/* lb_run_load in rounds until at least min_ns have passed: a test of how
 * p2c spreads must outlast its latency decay several times over, or one
 * slow early sample (a hiccup of a loaded machine) decides the whole run
 * (CI: 141 151 8 of 300 calls in 10 ms with a 20 ms decay).  The calls
 * made; got: per server. */
static inline int lb_run_load_for(lb_call_fn *call, void *client, int workers, int per, int64_t min_ns,
                                  int got[3])
{
    int64_t end = tern_now() + min_ns;
    int total = 0;
    got[0] = got[1] = got[2] = 0;
    do {
        int g[3];
        lb_run_load(call, client, workers, per, g);
        for (int i = 0; i < 3; i++)
            got[i] += g[i];
        total += workers * per;
    } while (tern_now() < end);
    return total;
}

/* Calls until b ejects its third endpoint (third_addr, stopped; up to
 * 8 s): none may fail nor reach it.  The calls made. */
static inline int lb_until_ejected(tern_balancer *b, const char *third_addr, lb_call_fn *call, void *client)
{
    int64_t end = tern_now() + 8 * TERN_SEC;
    int n = 0;
    for (;;) {
        tern_lb_endpoint_stats es[3];
        CHECK_EQ(tern_balancer_endpoint_stats(b, es, 3), 3);
        CHECK(strcmp(es[2].addr, third_addr) == 0);
        if (es[2].ejected)
            break;
        CHECK(tern_now() < end);
        int w = call(client);
        if (!(w >= 0 && w < 2))
            fprintf(stderr, "call %d: %d (%s)\n", n, w, w < 0 ? tern_strerror(w) : "");
        CHECK(w >= 0 && w < 2);
        n++;
        tern_sleep(TERN_MS);
    }
    return n;
}

/* The third endpoint alone is ejected, the others never failed, and
 * calls go on over them. */
static inline void lb_check_ejected(tern_balancer *b, lb_call_fn *call, void *client)
{
    tern_lb_endpoint_stats es[3];
    CHECK_EQ(tern_balancer_endpoint_stats(b, es, 3), 3);
    CHECK(es[2].ejected && !es[0].ejected && !es[1].ejected);
    CHECK_EQ(es[0].failures + es[1].failures, 0);
    struct tern_balancer_stats st;
    CHECK_EQ(tern_balancer_stats(b, &st), 0);
    CHECK_EQ(st.ejected, 1);
    for (int k = 0; k < 50; k++) {
        int w = call(client);
        CHECK(w >= 0 && w < 2);
    }
}

#endif
