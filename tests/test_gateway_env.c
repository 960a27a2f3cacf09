/*
 * test_gateway_env.c - what the gateway core lends its policies
 * (src/gateway/policy.h's tern__gw_env): http_fetch reaches a named
 * upstream through its balancer with the given method, path, headers and
 * body, and bounds the answer; grpc_channel hands out a gRPC upstream's
 * channel and nothing else.  Built with the gateway layer's view: it
 * reads the generation the gateway is running.
 */
#include "check.h"
#include "gateway_fixture.h"

#include "gateway/internal.h"

static upstream A;

static int env_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "upstreams: {h: {endpoints: [\"%s\"]}, g: {endpoints: [\"127.0.0.1:1\"], protocol: grpc}}\n", A.addr);
    gwsrv s;
    char err[256];
    CHECK_EQ(gw_start_text(&s, cfg, err, sizeof err), 0);
    tern__gw_env *env = &s.gw->cur->env;
    CHECK(env->metrics == s.reg);
    CHECK(env->redis == NULL);
    CHECK_STR(env->config_dir, ".");
    tern__gw_fwd fwd = {0};
    CHECK_EQ(tern__gw_fwd_add(&fwd, "X-Custom", "from-policy"), 0);
    int status = 0;
    char *body;
    size_t len;
    CHECK_EQ(env->http_fetch(env->core, "h", "POST", "/echo?x=1", &fwd, "hello", 5, 1024, &status, &body, &len,
                             NULL), 0);
    CHECK_EQ(status, 200);
    CHECK_STR(body, "A POST /echo?x=1");
    CHECK_EQ(len, strlen("A POST /echo?x=1"));
    free(body);
    CHECK_EQ(atomic_load(&A.hits), 1);
    /* over max_body */
    CHECK_EQ(env->http_fetch(env->core, "h", "GET", "/x", NULL, NULL, 0, 4, &status, &body, &len, NULL), -EMSGSIZE);
    CHECK(body == NULL);
    /* no such upstream, or a gRPC one */
    CHECK_EQ(env->http_fetch(env->core, "zz", "GET", "/", NULL, NULL, 0, 64, &status, &body, &len, NULL), -ENOENT);
    CHECK_EQ(env->http_fetch(env->core, "g", "GET", "/", NULL, NULL, 0, 64, &status, &body, &len, NULL), -ENOENT);
    /* a bounded call: the caller's ctx */
    A.delay = 300 * MS;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * MS, &ctx), 0);
    CHECK_EQ(env->http_fetch(env->core, "h", "GET", "/slow", NULL, NULL, 0, 64, &status, &body, &len, ctx),
             -ETIMEDOUT);
    tern_ctx_free(ctx);
    CHECK(env->grpc_channel(env->core, "g") != NULL);
    CHECK(env->grpc_channel(env->core, "h") == NULL);
    CHECK(env->grpc_channel(env->core, "zz") == NULL);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void env_http_fetch_and_grpc_channel(void) { run_ok(env_main, NULL, 2); }

TESTS(T(env_http_fetch_and_grpc_channel))
