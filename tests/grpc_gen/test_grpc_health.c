/*
 * test_grpc_health.c - grpc.health.v1.Health (tern/health_grpc.h) as a
 * client sees it, through stubs this test generates from Debian's
 * grpc/health/v1/health.proto: what each service name checks, the
 * readiness flag and a named check changing the answers, NOT_FOUND and
 * SERVICE_UNKNOWN for unknown names, Watch sending the first status and
 * then each change.  The test links its own protoc-c copy of health.proto
 * beside the library's (renamed tern__grpc__*): the two must not collide.
 */
#include "../check.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <tern/health_grpc.h>

#include "grpc/health/v1/health.tern-grpc.h"

#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define SERVICE_UNKNOWN GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN

static atomic_int db_ok = 1;

static int db_check(char *msg, size_t len, tern_ctx *ctx, void *arg)
{
    (void)ctx, (void)arg;
    if (atomic_load(&db_ok))
        return 0;
    snprintf(msg, len, "connection refused");
    return -ECONNREFUSED;
}

typedef struct served {
    tern_grpc_server *s;
    tern_waitgroup wg;
} served;

static int serve_co(void *arg)
{
    served *sv = arg;
    CHECK_EQ(tern_grpc_server_serve(sv->s, NULL), 0);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

/* Check(service): the status, or -errno with *code. */
static int check(tern_grpc_channel *ch, const char *service, tern_grpc_code *code)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    Grpc__Health__V1__HealthCheckResponse *resp = NULL;
    tern_grpc_status st = {0};
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
    int rc = grpc_health_v1_health_check(ch, &req, &resp, NULL, &st, ctx);
    tern_ctx_free(ctx);
    *code = st.code;
    tern_grpc_status_clear(&st);
    if (rc < 0)
        return rc;
    int status = resp->status;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return status;
}

static int health_main(void *arg)
{
    (void)arg;
    tern_health *h;
    CHECK_EQ(tern_health_new(NULL, &h), 0);
    CHECK_EQ(tern_health_add(h, "db", TERN_HEALTH_READINESS, 0, db_check, NULL), 0);
    served sv = {0};
    CHECK_EQ(tern_grpc_server_new(NULL, &sv.s), 0);
    CHECK_EQ(tern_health_grpc_register(NULL, h), -EINVAL);
    CHECK_EQ(tern_health_grpc_register(sv.s, NULL), -EINVAL);
    CHECK_EQ(tern_health_grpc_register(sv.s, h), 0);
    CHECK_EQ(tern_health_grpc_register(sv.s, h), -EEXIST);
    CHECK_EQ(tern_grpc_server_listen(sv.s, "127.0.0.1:0"), 0);
    tern_waitgroup_add(&sv.wg, 1);
    CHECK_EQ(tern_go(serve_co, &sv), 0);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", tern_grpc_server_port(sv.s));
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);
    tern_grpc_code code;

    /* not ready yet: readiness fails, liveness (no liveness checks) passes */
    CHECK_EQ(check(ch, "", &code), NOT_SERVING);
    CHECK_EQ(check(ch, "readiness", &code), NOT_SERVING);
    CHECK_EQ(check(ch, "grpc.health.v1.Health", &code), NOT_SERVING);   /* a registered service */
    CHECK_EQ(check(ch, "liveness", &code), SERVING);
    CHECK_EQ(check(ch, "db", &code), SERVING);                          /* a check alone */
    CHECK_EQ(check(ch, "no.such.Service", &code), -ENOENT);
    CHECK_EQ(code, TERN_GRPC_NOT_FOUND);

    tern_health_set_ready(h, true);
    CHECK_EQ(check(ch, "", &code), SERVING);
    CHECK_EQ(check(ch, "grpc.health.v1.Health", &code), SERVING);
    atomic_store(&db_ok, 0);
    CHECK_EQ(check(ch, "", &code), NOT_SERVING);
    CHECK_EQ(check(ch, "db", &code), NOT_SERVING);
    CHECK_EQ(check(ch, "liveness", &code), SERVING);
    atomic_store(&db_ok, 1);

    /* Watch: the status now, then each change (looked at every second) */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_SEC, &ctx), 0);
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)"";
    tern_grpc_stream *st;
    CHECK_EQ(grpc_health_v1_health_watch_open(ch, &req, NULL, &st, ctx), 0);
    const Grpc__Health__V1__HealthCheckResponse *r;
    CHECK_EQ(grpc_health_v1_health_watch_stream_recv(st, &r, ctx), 1);
    CHECK_EQ(r->status, SERVING);
    tern_health_set_ready(h, false);
    int64_t t0 = tern_now();
    CHECK_EQ(grpc_health_v1_health_watch_stream_recv(st, &r, ctx), 1);
    CHECK_EQ(r->status, NOT_SERVING);
    /* within an interval or two; generous for sanitizers and qemu */
    CHECK(tern_now() - t0 < 2 * TERN_HEALTH_GRPC_WATCH_INTERVAL + 8 * TERN_SEC);
    tern_health_set_ready(h, true);
    CHECK_EQ(grpc_health_v1_health_watch_stream_recv(st, &r, ctx), 1);
    CHECK_EQ(r->status, SERVING);
    tern_grpc_stream_free(st);          /* cancels: the watcher ends */

    req.service = (char *)"no.such.Service";
    CHECK_EQ(grpc_health_v1_health_watch_open(ch, &req, NULL, &st, ctx), 0);
    CHECK_EQ(grpc_health_v1_health_watch_stream_recv(st, &r, ctx), 1);
    CHECK_EQ(r->status, SERVICE_UNKNOWN);
    tern_grpc_stream_free(st);
    tern_ctx_free(ctx);

    tern_grpc_channel_free(ch);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 5 * TERN_SEC, &ctx), 0);
    tern_grpc_server_shutdown(sv.s, ctx);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_waitgroup_wait(&sv.wg, NULL), 0);
    tern_grpc_server_free(sv.s);
    tern_health_free(h);
    return 0;
}

static void health_service(void)
{
    run_ok(health_main, NULL, 2);
}

TESTS(T(health_service))
