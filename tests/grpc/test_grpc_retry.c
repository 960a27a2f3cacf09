/*
 * test_grpc_retry.c - a channel's service config (gRPC's JSON, gRFC A6):
 * refused configs name the key; retries on retryable codes with
 * grpc-previous-rpc-attempts, the server's pushback, throttling, the
 * method's timeout, and hedging (a slow first attempt overtaken and
 * cancelled, a non-fatal failure, a fatal one) — against a real tern
 * server whose interceptor injects the failures.
 */
#include "grpc_fixture.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <tern/http.h>
#include <tern/runtime.h>

typedef struct srv {
    tern_grpc_server *s;
    tern_waitgroup wg;
    char addr[64];
} srv;

/* what the server does to the next calls */
static atomic_int fails_left;           /* calls to fail with fail_code */
static atomic_int fail_code;
static const char *pushback;            /* grpc-retry-pushback-ms on those failures */
static atomic_int slow_left;            /* calls to hold for 2 s (or until cancelled) */
static atomic_int seen;                 /* calls that reached the server */
static atomic_int last_prev;            /* their grpc-previous-rpc-attempts (0: none) */
static atomic_int cancelled;            /* held calls whose ctx ended */

static int inject(tern_grpc_call *call, void *arg)
{
    (void)arg;
    atomic_fetch_add(&seen, 1);
    const char *prev = tern_http_req_header(tern_grpc_call_http_req(call), "grpc-previous-rpc-attempts");
    atomic_store(&last_prev, prev ? atoi(prev) : 0);
    if (atomic_fetch_sub(&slow_left, 1) > 0) {
        int rc = tern_ctx_sleep(2 * SEC, tern_grpc_call_ctx(call));
        if (rc < 0) {
            atomic_fetch_add(&cancelled, 1);
            return rc;
        }
    }
    if (atomic_fetch_sub(&fails_left, 1) > 0) {
        if (pushback)
            CHECK_EQ(tern_grpc_call_add_trailer(call, "grpc-retry-pushback-ms", pushback, 0), 0);
        return tern_grpc_call_fail(call, (tern_grpc_code)atomic_load(&fail_code), "injected");
    }
    return tern_grpc_call_next(call);
}

static int serve_co(void *arg)
{
    srv *sv = arg;
    tern_grpc_server_serve(sv->s, NULL);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

static int last_attempts;

static void note_attempts(tern_grpc_client_call *cc, void *arg)
{
    (void)arg;
    last_attempts = tern_grpc_client_call_attempts(cc);
}

static int count_attempts(tern_grpc_client_call *cc, void *arg)
{
    (void)arg;
    CHECK_EQ(tern_grpc_client_call_on_done(cc, note_attempts, NULL), 0);
    return tern_grpc_client_call_next(cc);
}

static tern_grpc_channel *channel(const srv *sv, const char *config)
{
    static const tern_grpc_client_interceptor ics[] = { { count_attempts, NULL } };
    char err[256] = "";
    tern_grpc_channel_options co = { .interceptors = ics, .n_interceptors = 1, .service_config = config,
                                     .service_config_error = err, .service_config_errlen = sizeof err };
    tern_grpc_channel *ch;
    int rc = tern_grpc_channel_new(sv->addr, &co, &ch);
    if (rc != 0)
        fprintf(stderr, "service config: %s\n", err);
    CHECK_EQ(rc, 0);
    return ch;
}

/* the next calls: n failures with code (and pushback), m slow ones */
static void arrange(int n, tern_grpc_code code, const char *pb, int m)
{
    atomic_store(&fails_left, n);
    atomic_store(&fail_code, (int)code);
    pushback = pb;
    atomic_store(&slow_left, m);
    atomic_store(&seen, 0);
    atomic_store(&last_prev, -1);
    atomic_store(&cancelled, 0);
    last_attempts = 0;
}

static int call(tern_grpc_channel *ch, int sleep_ms)
{
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "r";
    req.sleep_ms = sleep_ms;
    ProtobufCMessage *resp;
    tern_grpc_status st;
    int rc = tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, &st, NULL);
    if (rc == 0) {
        CHECK(strcmp(((Terntest__Resp *)resp)->text, "hello r") == 0);
        protobuf_c_message_free_unpacked(resp, NULL);
    } else {
        CHECK(resp == NULL);
        CHECK_EQ(tern_grpc_code_to_errno(st.code), rc);
    }
    tern_grpc_status_clear(&st);
    return rc;
}

static void refused(const srv *sv, const char *config, const char *key)
{
    char err[256] = "";
    tern_grpc_channel_options co = { .service_config = config, .service_config_error = err,
                                     .service_config_errlen = sizeof err };
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(sv->addr, &co, &ch), -EINVAL);
    if (!strstr(err, key)) {
        fprintf(stderr, "\"%s\" does not name %s\n", err, key);
        CHECK(0);
    }
}

#define RETRY(codes, extra)                                                                           \
    "{\"methodConfig\": [{\"name\": [{\"service\": \"terntest.Test\", \"method\": \"Unary\"}],"        \
    "\"retryPolicy\": {\"maxAttempts\": 3, \"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.05s\","   \
    "\"backoffMultiplier\": 2, \"retryableStatusCodes\": " codes "}}]" extra "}"

static int retry_main(void *arg)
{
    (void)arg;
    srv sv = { 0 };
    CHECK_EQ(tern_grpc_server_new(NULL, &sv.s), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv.s, inject, NULL), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv.s, &test_service, NULL, NULL), 0);
    CHECK_EQ(tern_grpc_server_listen(sv.s, "127.0.0.1:0"), 0);
    snprintf(sv.addr, sizeof sv.addr, "127.0.0.1:%d", tern_grpc_server_port(sv.s));
    tern_waitgroup_add(&sv.wg, 1);
    CHECK_EQ(tern_go(serve_co, &sv), 0);

    /* configs refused, naming what is wrong */
    refused(&sv, "{", "not JSON");
    refused(&sv, "{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": {\"maxAttempts\": 1}}]}", "maxAttempts");
    refused(&sv, RETRY("[]", ""), "retryableStatusCodes");
    refused(&sv, RETRY("[\"NOPE\"]", ""), "retryableStatusCodes");
    refused(&sv, "{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"soon\"}]}", "timeout");
    refused(&sv, "{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": {}, \"hedgingPolicy\": {}}]}",
            "exclude");
    refused(&sv, "{\"methodConfig\": [{\"name\": [{\"method\": \"M\"}]}]}", "service");
    refused(&sv, RETRY("[\"UNAVAILABLE\"]", ", \"retryThrottling\": {\"maxTokens\": 0, \"tokenRatio\": 1}"),
            "maxTokens");
    refused(&sv, RETRY("[\"UNAVAILABLE\"]", ", \"retryThrottling\": {\"maxTokens\": 5, \"tokenRatio\": 0.0001}"),
            "tokenRatio");
    refused(&sv, "[]", "object");
    refused(&sv, "{\"methodConfig\": {}}", "methodConfig");
    refused(&sv, "{\"methodConfig\": [{\"name\": \"x\"}]}", "name");
    refused(&sv, "{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": {\"maxAttempts\": \"3\"}}]}",
            "maxAttempts");
    refused(&sv, "{\"methodConfig\": [{\"name\": [{}], \"hedgingPolicy\": {\"maxAttempts\": 2,"
                 "\"hedgingDelay\": \"-1s\"}}]}", "hedgingDelay");

    /* retries: two failures, then OK on the third attempt, which says 2 came before */
    tern_grpc_channel *ch = channel(&sv, RETRY("[\"UNAVAILABLE\", 4]", ""));
    arrange(2, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(call(ch, 0), 0);
    CHECK_EQ(atomic_load(&seen), 3);
    CHECK_EQ(atomic_load(&last_prev), 2);
    CHECK_EQ(last_attempts, 3);
    /* more failures than attempts: the last one's status */
    arrange(5, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(call(ch, 0), -EAGAIN);
    CHECK_EQ(atomic_load(&seen), 3);
    tern_grpc_channel_free(ch);
    /* maxAttempts above 5 is taken as 5 */
    ch = channel(&sv, "{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": {\"maxAttempts\": 9,"
                      "\"initialBackoff\": \"0.001s\", \"maxBackoff\": \"0.002s\", \"backoffMultiplier\": 2,"
                      "\"retryableStatusCodes\": [\"unavailable\"]}}]}");
    arrange(9, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(call(ch, 0), -EAGAIN);
    CHECK_EQ(atomic_load(&seen), 5);
    tern_grpc_channel_free(ch);
    ch = channel(&sv, RETRY("[\"UNAVAILABLE\", 4]", ""));
    /* a code not listed: no retry */
    arrange(1, TERN_GRPC_NOT_FOUND, NULL, 0);
    CHECK_EQ(call(ch, 0), -ENOENT);
    CHECK_EQ(atomic_load(&seen), 1);
    CHECK_EQ(last_attempts, 1);
    /* the server's pushback: waited for; a negative one: no retry */
    arrange(1, TERN_GRPC_UNAVAILABLE, "200", 0);
    int64_t t0 = tern_now();
    CHECK_EQ(call(ch, 0), 0);
    CHECK(tern_now() - t0 >= 200 * MS);
    CHECK_EQ(atomic_load(&seen), 2);
    arrange(1, TERN_GRPC_UNAVAILABLE, "-1", 0);
    CHECK_EQ(call(ch, 0), -EAGAIN);
    CHECK_EQ(atomic_load(&seen), 1);
    /* other methods are not configured: no retry */
    arrange(1, TERN_GRPC_UNAVAILABLE, NULL, 0);
    tern_grpc_stream *s;
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "s";
    req.count = 1;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), 0);
    tern_grpc_stream_send(s, &req.base, NULL);     /* -EPIPE if the failure came first */
    ProtobufCMessage *msg;
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), -EAGAIN);
    tern_grpc_stream_free(s);
    CHECK_EQ(atomic_load(&seen), 1);
    tern_grpc_channel_free(ch);

    /* throttling: 3 tokens; each failure takes one, and retries stop at half */
    ch = channel(&sv, RETRY("[\"UNAVAILABLE\"]", ", \"retryThrottling\": {\"maxTokens\": 3, \"tokenRatio\": 1}"));
    arrange(5, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(call(ch, 0), -EAGAIN);
    CHECK_EQ(atomic_load(&seen), 2);        /* 3 -> 2: retried; 2 -> 1: stopped before maxAttempts */
    /* successes give tokens back (tokenRatio each): retries go again */
    arrange(0, TERN_GRPC_OK, NULL, 0);
    CHECK_EQ(call(ch, 0), 0);
    CHECK_EQ(call(ch, 0), 0);
    arrange(1, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(call(ch, 0), 0);
    CHECK_EQ(atomic_load(&seen), 2);
    tern_grpc_channel_free(ch);

    /* the method's timeout, from the service's default entry */
    ch = channel(&sv, "{\"methodConfig\": [{\"name\": [{\"service\": \"terntest.Test\"}], \"timeout\": \"0.1s\"}]}");
    arrange(0, TERN_GRPC_OK, NULL, 0);
    t0 = tern_now();
    CHECK_EQ(call(ch, 2000), -ETIMEDOUT);
    CHECK(tern_now() - t0 < SEC);
    CHECK_EQ(call(ch, 0), 0);
    /* and a stream's whole life */
    req.name = "slow";
    req.count = 3;
    req.sleep_ms = 500;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), 1);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), -ETIMEDOUT);
    tern_grpc_stream_free(s);
    req.sleep_ms = 0;
    tern_grpc_channel_free(ch);

    /* streams: retried until committed, the request messages replayed */
    ch = channel(&sv, "{\"methodConfig\": [{\"name\": [{\"service\": \"terntest.Test\"}], \"retryPolicy\": {"
                      "\"maxAttempts\": 4, \"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.02s\","
                      "\"backoffMultiplier\": 1.5, \"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}");
    arrange(2, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(tern_grpc_stream_open(ch, M_CSTREAM, NULL, &s, NULL), 0);
    static const char *const names[] = { "a", "b", "c" };
    for (int i = 0; i < 3; i++) {
        req.name = (char *)names[i];
        CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
        tern_sleep(5 * MS);     /* the server may fail the attempt meanwhile: sends still succeed */
    }
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), 1);
    CHECK(strcmp(((Terntest__Resp *)msg)->text, "a,b,c") == 0);
    CHECK_EQ(((Terntest__Resp *)msg)->index, 3);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), 0);
    tern_grpc_stream_free(s);
    CHECK_EQ(atomic_load(&seen), 3);
    CHECK_EQ(atomic_load(&last_prev), 2);
    CHECK_EQ(last_attempts, 3);
    /* a server stream failing after its first message: committed, not retried */
    arrange(0, TERN_GRPC_OK, NULL, 0);
    req.name = "late";
    req.count = 1;
    req.code = TERN_GRPC_UNAVAILABLE;
    req.message = "late";
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), 1);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), -EAGAIN);
    tern_grpc_stream_free(s);
    CHECK_EQ(atomic_load(&seen), 1);
    CHECK_EQ(last_attempts, 1);
    req.code = 0;
    /* every attempt fails: the last failure, after maxAttempts */
    arrange(9, TERN_GRPC_UNAVAILABLE, NULL, 0);
    req.name = "s";
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), -EAGAIN);
    tern_grpc_stream_free(s);
    CHECK_EQ(atomic_load(&seen), 4);
    CHECK_EQ(last_attempts, 4);
    tern_grpc_channel_free(ch);

    /* hedging */
    ch = channel(&sv, "{\"methodConfig\": [{\"name\": [{}], \"hedgingPolicy\": {\"maxAttempts\": 3,"
                      "\"hedgingDelay\": \"0.05s\", \"nonFatalStatusCodes\": [\"UNAVAILABLE\"]}}]}");
    /* a slow first attempt: the second, 50 ms later, wins; the first is cancelled */
    arrange(0, TERN_GRPC_OK, NULL, 1);
    t0 = tern_now();
    CHECK_EQ(call(ch, 0), 0);
    int64_t took = tern_now() - t0;
    CHECK(took >= 50 * MS && took < SEC);
    CHECK_EQ(last_attempts, 2);
    for (int i = 0; i < 100 && atomic_load(&cancelled) == 0; i++)
        tern_sleep(10 * MS);
    CHECK_EQ(atomic_load(&cancelled), 1);
    /* a non-fatal failure: the next hedge goes at once */
    arrange(1, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(call(ch, 0), 0);
    CHECK_EQ(last_attempts, 2);
    CHECK_EQ(atomic_load(&seen), 2);
    /* every attempt non-fatal: the last failure */
    arrange(3, TERN_GRPC_UNAVAILABLE, NULL, 0);
    CHECK_EQ(call(ch, 0), -EAGAIN);
    CHECK_EQ(last_attempts, 3);
    /* a fatal failure ends it */
    arrange(1, TERN_GRPC_NOT_FOUND, NULL, 0);
    CHECK_EQ(call(ch, 0), -ENOENT);
    CHECK_EQ(last_attempts, 1);
    tern_grpc_channel_free(ch);

    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, SEC, &c), 0);
    tern_grpc_server_shutdown(sv.s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&sv.wg, NULL), 0);
    tern_grpc_server_free(sv.s);
    return 0;
}

/* ---- against grpcio's server ------------------------------------------------ */

typedef struct py_server {
    pid_t pid;
    int in_fd;
    int port;
} py_server;

/* grpc_peer.py server: started before tern_run (it reads the port line
 * with a plain blocking read); it exits when its stdin closes */
static void py_server_start(py_server *p)
{
    int in[2], out[2];
    CHECK_EQ(pipe(in), 0);
    CHECK_EQ(pipe(out), 0);
    setenv("PYTHONPATH", TERN_TEST_PB_DIR, 1);
    p->pid = fork();
    CHECK(p->pid >= 0);
    if (p->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl("/usr/bin/python3", "python3", peer_script(), "server", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->in_fd = in[1];
    char line[32] = { 0 };
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t k = read(out[0], line + n, 1);
        if (k <= 0 || line[n] == '\n')
            break;
        n++;
    }
    close(out[0]);
    p->port = atoi(line);
    CHECK(p->port > 0);
}

static void py_server_stop(py_server *p)
{
    close(p->in_fd);
    int st;
    CHECK_EQ(waitpid(p->pid, &st, 0), p->pid);
}

static int py_port;

static int py_unary(tern_grpc_channel *ch, const char *name, int count)
{
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = (char *)name;
    req.count = count;
    ProtobufCMessage *resp;
    int rc = tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, NULL, NULL);
    if (rc == 0)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

static int grpcio_main(void *arg)
{
    (void)arg;
    srv sv = { 0 };
    snprintf(sv.addr, sizeof sv.addr, "127.0.0.1:%d", py_port);
    /* grpcio's failures (Trailers-Only responses) are retried */
    tern_grpc_channel *ch = channel(&sv, RETRY("[\"UNAVAILABLE\"]", ""));
    CHECK_EQ(py_unary(ch, "flaky1", 2), 0);
    CHECK_EQ(last_attempts, 3);
    CHECK_EQ(py_unary(ch, "flaky2", 3), -EAGAIN);
    CHECK_EQ(last_attempts, 3);
    tern_grpc_channel_free(ch);
    /* a hedge overtakes grpcio's slow first answer; the slow one is cancelled */
    ch = channel(&sv, "{\"methodConfig\": [{\"name\": [{}], \"hedgingPolicy\": {\"maxAttempts\": 2,"
                      "\"hedgingDelay\": \"0.1s\"}}]}");
    int64_t t0 = tern_now();
    CHECK_EQ(py_unary(ch, "slowfirst1", 3000), 0);
    CHECK(tern_now() - t0 < 2 * SEC);
    CHECK_EQ(last_attempts, 2);
    tern_grpc_channel_free(ch);
    return 0;
}

static void retries_and_hedges_against_grpcio(void)
{
    if (!have_grpcio()) {
        fprintf(stderr, "  (skipped: no python3-grpcio)\n");
        return;
    }
    py_server p;
    py_server_start(&p);
    py_port = p.port;
    CHECK_EQ(tern_run(grpcio_main, NULL), 0);
    py_server_stop(&p);
}

static void service_config_retries_and_hedges(void)
{
    CHECK_EQ(tern_run(retry_main, NULL), 0);
}

TESTS({ "service_config_retries_and_hedges", service_config_retries_and_hedges },
      { "retries_and_hedges_against_grpcio", retries_and_hedges_against_grpcio })
