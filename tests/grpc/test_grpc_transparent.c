/*
 * test_grpc_transparent.c - gRFC A6's transparent retry of a unary call or
 * a stream the server refused unprocessed: an RST_STREAM REFUSED_STREAM,
 * and a stream above a GOAWAY's last stream id (a server draining).  The peer is
 * tests/h2_peer.py (python3-h2), which can refuse streams and send GOAWAY
 * on cue, which no gRPC server does on demand.  Skipped without
 * python3-h2.
 */
#include "grpc_fixture.h"

#include <stdlib.h>
#include <tern/runtime.h>

#include "../peer_proc.h"

#define PY "/usr/bin/python3"

/* h2_peer.py with args (NULL: none). */
static peer py_peer(const char *opt, const char *val)
{
    char script[512];
    snprintf(script, sizeof script, "%s/h2_peer.py", TERN_TEST_SRC_DIR);
    char *argv[] = {PY, script, (char *)opt, (char *)val, NULL};
    return peer_start(argv, 0);
}

static tern_grpc_method_desc method(const char *path)
{
    return (tern_grpc_method_desc){ path + 11, path, TERN_GRPC_UNARY, &terntest__req__descriptor,
                                    &terntest__resp__descriptor, NULL };
}

/* One unary call to /grpc.Peer/<name>: its result, the status in *st. */
static int call(tern_grpc_channel *ch, const char *path, tern_grpc_status *st)
{
    tern_grpc_method_desc m = method(path);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "x";
    ProtobufCMessage *resp = NULL;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * SEC, &ctx), 0);
    int rc = tern_grpc_unary(ch, &m, &req.base, &resp, NULL, st, ctx);
    tern_ctx_free(ctx);
    if (resp)
        protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

/* The peer's counts: streams it refused, connections it accepted. */
static void counts(tern_grpc_channel *ch, int *refused, int *conns)
{
    tern_grpc_status st;
    CHECK(call(ch, "/grpc.Peer/Count", &st) < 0);
    CHECK_EQ(st.code, TERN_GRPC_FAILED_PRECONDITION);
    CHECK(st.message && sscanf(st.message, "refused=%d conns=%d", refused, conns) == 2);
    tern_grpc_status_clear(&st);
}

static int port;

static tern_grpc_channel *channel(void)
{
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);
    return ch;
}

static int refused_main(void *arg)
{
    (void)arg;
    tern_grpc_channel *ch = channel();
    tern_grpc_status st;
    /* refused once: the call goes again at once and succeeds */
    CHECK_EQ(call(ch, "/grpc.Peer/RefuseOnce", &st), 0);
    CHECK_EQ(st.code, TERN_GRPC_OK);
    tern_grpc_status_clear(&st);
    int refused, conns;
    counts(ch, &refused, &conns);
    CHECK_EQ(refused, 1);
    CHECK_EQ(conns, 1);
    /* refused every time: tried twice, not more, and the refusal stands */
    CHECK(call(ch, "/grpc.Peer/Refuse", &st) < 0);
    CHECK_EQ(st.code, TERN_GRPC_UNAVAILABLE);
    tern_grpc_status_clear(&st);
    counts(ch, &refused, &conns);
    CHECK_EQ(refused, 3);
    CHECK_EQ(call(ch, "/grpc.Peer/Ok", &st), 0);
    tern_grpc_status_clear(&st);
    tern_grpc_channel_free(ch);
    return 0;
}

typedef struct first {
    tern_grpc_channel *ch;
    int rc;
    tern_waitgroup wg;
} first;

static int first_call(void *arg)
{
    first *f = arg;
    tern_grpc_status st;
    f->rc = call(f->ch, "/grpc.Peer/Slow", &st);
    tern_grpc_status_clear(&st);
    tern_waitgroup_done(&f->wg);
    return 0;
}

static int goaway_main(void *arg)
{
    (void)arg;
    tern_grpc_channel *ch = channel();
    tern_grpc_status st;
    /* The first connection answers stream 1 (after 100 ms) and leaves the
     * next one unprocessed; 300 ms after stream 1 came it sends
     * GOAWAY(last_stream_id 1) and keeps the connection open. */
    first f = {.ch = ch};
    tern_waitgroup_add(&f.wg, 1);
    CHECK_EQ(tern_go(first_call, &f), 0);
    tern_sleep(30 * MS);
    /* stream 3, never run there: refused by the GOAWAY, made again on a
     * new connection */
    int64_t t0 = tern_now();
    CHECK_EQ(call(ch, "/grpc.Peer/Ok", &st), 0);
    CHECK_EQ(st.code, TERN_GRPC_OK);
    CHECK(tern_now() - t0 >= 200 * MS);         /* it did wait for the GOAWAY */
    tern_grpc_status_clear(&st);
    tern_waitgroup_wait(&f.wg, NULL);
    CHECK_EQ(f.rc, 0);
    int refused, conns;
    counts(ch, &refused, &conns);
    CHECK_EQ(refused, 0);
    CHECK_EQ(conns, 2);
    tern_grpc_channel_free(ch);
    return 0;
}

/* A client stream to /grpc.Peer/<path>: n messages, then the answer's
 * text into text (the peer's "messages=N bytes=B") and the status. */
static int gather(tern_grpc_channel *ch, const char *path, int n, char *text, size_t cap, tern_grpc_code *code)
{
    tern_grpc_method_desc m = { path + 11, path, TERN_GRPC_CLIENT_STREAMING, &terntest__req__descriptor,
                                &terntest__resp__descriptor, NULL };
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * SEC, &ctx), 0);
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, &m, NULL, &s, ctx), 0);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        Terntest__Req req = TERNTEST__REQ__INIT;
        req.name = "message";
        req.count = i;
        rc = tern_grpc_stream_send(s, &req.base, ctx);
        if (i == 0)
            tern_sleep(20 * MS);    /* the refusal may come back before the rest is sent */
    }
    CHECK(rc == 0 || rc == -EPIPE);
    CHECK_EQ(tern_grpc_stream_close_send(s, ctx), 0);
    ProtobufCMessage *msg;
    rc = tern_grpc_stream_recv(s, &msg, ctx);
    text[0] = '\0';
    if (rc == 1) {
        snprintf(text, cap, "%s", ((Terntest__Resp *)msg)->text);
        rc = tern_grpc_stream_recv(s, &msg, ctx);
        CHECK_EQ(rc, 0);
    }
    *code = tern_grpc_stream_status(s)->code;
    tern_grpc_stream_free(s);
    tern_ctx_free(ctx);
    return rc;
}

static int stream_main(void *arg)
{
    (void)arg;
    tern_grpc_channel *ch = channel();
    char text[64], want[64];
    tern_grpc_code code;
    /* what the peer sees of three messages when nothing is refused */
    CHECK_EQ(gather(ch, "/grpc.Peer/Gather", 3, want, sizeof want, &code), 0);
    CHECK_EQ(code, TERN_GRPC_OK);
    CHECK(strncmp(want, "messages=3 ", 11) == 0);
    /* refused at its headers: made again at once, every message replayed
     * (some went out before the refusal came back, some after) */
    CHECK_EQ(gather(ch, "/grpc.Peer/GatherRefuseOnce", 3, text, sizeof text, &code), 0);
    CHECK_EQ(code, TERN_GRPC_OK);
    CHECK(strcmp(text, want) == 0);
    int refused, conns;
    counts(ch, &refused, &conns);
    CHECK_EQ(refused, 1);
    /* refused every time: twice, and the refusal stands */
    CHECK(gather(ch, "/grpc.Peer/GatherRefuse", 2, text, sizeof text, &code) < 0);
    CHECK_EQ(code, TERN_GRPC_UNAVAILABLE);
    counts(ch, &refused, &conns);
    CHECK_EQ(refused, 3);
    CHECK_EQ(conns, 1);
    tern_grpc_channel_free(ch);
    return 0;
}

static bool have_h2(void)
{
    if (system(PY " -c 'import h2' 2>/dev/null") == 0)
        return true;
    fprintf(stderr, "  (skipped: no python3-h2)\n");
    return false;
}

static void a_refused_call_is_made_again_once(void)
{
    if (!have_h2())
        return;
    peer p = py_peer(NULL, NULL);
    port = p.port;
    run_ok(refused_main, NULL, 2);
    peer_stop(&p);
}

static void a_call_above_goaway_goes_to_a_new_connection(void)
{
    if (!have_h2())
        return;
    peer p = py_peer("--goaway-last", "1");
    port = p.port;
    run_ok(goaway_main, NULL, 2);
    peer_stop(&p);
}

static void a_refused_stream_is_made_again_once_with_its_messages(void)
{
    if (!have_h2())
        return;
    peer p = py_peer(NULL, NULL);
    port = p.port;
    run_ok(stream_main, NULL, 2);
    peer_stop(&p);
}

TESTS({ "a_refused_call_is_made_again_once", a_refused_call_is_made_again_once },
      { "a_refused_stream_is_made_again_once_with_its_messages",
        a_refused_stream_is_made_again_once_with_its_messages },
      { "a_call_above_goaway_goes_to_a_new_connection", a_call_above_goaway_goes_to_a_new_connection })
