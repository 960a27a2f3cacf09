/*
 * test_grpc_client.c - tern's channel against grpcio's server
 * (grpc_peer.py server) over h2c and TLS: unary, the three streaming
 * kinds, metadata both ways (ASCII and -bin), status with unicode and
 * percent signs, the deadline sent as grpc-timeout and enforced locally,
 * cancellation, unknown methods, gzip both ways, the receive limit, and
 * UNAVAILABLE / wait_for_ready when nothing listens.
 */
#include "grpc_fixture.h"

#include <fcntl.h>
#include <signal.h>

#include "../tls_certs.h"

typedef struct py_server {
    pid_t pid;
    int in_fd;
    int port;
} py_server;

/* grpc_peer.py server [cert key]: started before tern_run (it reads the
 * port line with a plain blocking read) */
static void py_server_start(py_server *p, const char *cert, const char *key)
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
        if (cert)
            execl("/usr/bin/python3", "python3", peer_script(), "server", cert, key, (char *)NULL);
        else
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

static int port;
static bool tls_mode;

static tern_grpc_channel *channel(size_t max_recv)
{
    char target[64];
    snprintf(target, sizeof target, "%s:%d", tls_mode ? "localhost" : "127.0.0.1", port);
    tern_grpc_channel_options o = { .max_recv_bytes = max_recv };
    static tern_tls_config *cfg;
    if (tls_mode && !cfg) {
        const char *alpn[] = { "h2", NULL };
        tern_tls_client_options to = { .ca_file = tls_path("ca.pem"), .alpn = alpn };
        CHECK_EQ(tern_tls_client_config_new(&to, &cfg), 0);
    }
    if (tls_mode)
        o.tls = cfg;
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, &o, &ch), 0);
    return ch;
}

typedef struct seen_md {
    char h_ascii[64], t_ascii[64];
    uint8_t h_bin[16], t_bin[16];
    size_t h_bin_len, t_bin_len;
} seen_md;

static void on_md(const tern_grpc_metadata *md, bool trailer, void *arg)
{
    seen_md *s = arg;
    if (!trailer && !strcmp(md->name, "x-ascii"))
        snprintf(s->h_ascii, sizeof s->h_ascii, "%.*s", (int)md->len, (const char *)md->value);
    if (trailer && !strcmp(md->name, "x-ascii-t"))
        snprintf(s->t_ascii, sizeof s->t_ascii, "%.*s", (int)md->len, (const char *)md->value);
    if (!trailer && !strcmp(md->name, "x-raw-bin") && md->len <= 16) {
        memcpy(s->h_bin, md->value, md->len);
        s->h_bin_len = md->len;
    }
    if (trailer && !strcmp(md->name, "x-raw-t-bin") && md->len <= 16) {
        memcpy(s->t_bin, md->value, md->len);
        s->t_bin_len = md->len;
    }
}

static int cases(void *arg)
{
    (void)arg;
    tern_grpc_channel *ch = channel(0);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * SEC, &ctx), 0);

    /* unary */
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "tern";
    ProtobufCMessage *m;
    tern_grpc_status st;
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, NULL, &st, ctx), 0);
    CHECK_EQ(st.code, TERN_GRPC_OK);
    CHECK(!strcmp(((Terntest__Resp *)m)->text, "hello tern"));
    protobuf_c_message_free_unpacked(m, NULL);
    tern_grpc_status_clear(&st);

    /* metadata both ways */
    static const uint8_t raw[] = { 0, 1, 0xfe, 0xff, 0 };
    const char *ascii[] = { "X-Ascii", "v 1", NULL };
    tern_grpc_metadata bin = { "x-raw-bin", raw, sizeof raw };
    seen_md seen = { 0 };
    tern_grpc_call_options co = { .metadata = ascii, .md = &bin, .n_md = 1, .on_metadata = on_md,
                                  .on_metadata_arg = &seen };
    req.name = "md";
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, &co, NULL, ctx), 0);
    protobuf_c_message_free_unpacked(m, NULL);
    CHECK(!strcmp(seen.h_ascii, "v 1"));
    CHECK(!strcmp(seen.t_ascii, "v 1"));
    CHECK(seen.h_bin_len == sizeof raw && !memcmp(seen.h_bin, raw, sizeof raw));
    CHECK(seen.t_bin_len == sizeof raw && !memcmp(seen.t_bin, raw, sizeof raw));

    /* status: code and a message with unicode, '%' and a newline */
    const char *msg = "nicht gefunden: 100% \xe6\x97\xa5\xe6\x9c\xac \xc3\xbc\n";
    req.code = TERN_GRPC_NOT_FOUND;
    req.message = (char *)msg;
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, NULL, &st, ctx), -ENOENT);
    CHECK(m == NULL);
    CHECK_EQ(st.code, TERN_GRPC_NOT_FOUND);
    CHECK(st.message && !strcmp(st.message, msg));
    tern_grpc_status_clear(&st);
    req.code = 0;
    req.message = "";

    /* the deadline: local, and sent as grpc-timeout */
    tern_ctx *short_ctx;
    CHECK_EQ(tern_ctx_with_timeout(ctx, 200 * MS, &short_ctx), 0);
    req.sleep_ms = 3000;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, NULL, &st, short_ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 2 * SEC);
    CHECK_EQ(st.code, TERN_GRPC_DEADLINE_EXCEEDED);
    tern_grpc_status_clear(&st);
    tern_ctx_free(short_ctx);
    req.sleep_ms = 0;
    tern_ctx *four;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 4 * SEC, &four), 0);
    req.name = "timeout?";
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, NULL, NULL, four), 0);
    double left = atof(((Terntest__Resp *)m)->text);
    CHECK(left > 2.0 && left <= 4.1);
    protobuf_c_message_free_unpacked(m, NULL);
    tern_ctx_free(four);

    /* server streaming, then its status after messages */
    tern_grpc_stream *s;
    req.name = "s";
    req.count = 5;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, ctx), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, ctx), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, ctx), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 1);
        CHECK_EQ(((Terntest__Resp *)m)->index, i);
    }
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 0);
    CHECK_EQ(tern_grpc_stream_status(s)->code, TERN_GRPC_OK);
    tern_grpc_stream_free(s);
    req.count = 2;
    req.code = TERN_GRPC_FAILED_PRECONDITION;
    req.message = "late";
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, ctx), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, ctx), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, ctx), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 1);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 1);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), -EPERM);
    CHECK_EQ(tern_grpc_stream_status(s)->code, TERN_GRPC_FAILED_PRECONDITION);
    CHECK(!strcmp(tern_grpc_stream_status(s)->message, "late"));
    tern_grpc_stream_free(s);
    req.code = 0;
    req.message = "";
    req.count = 0;

    /* client streaming */
    CHECK_EQ(tern_grpc_stream_open(ch, M_CSTREAM, NULL, &s, ctx), 0);
    const char *names[] = { "a", "b", "c" };
    for (int i = 0; i < 3; i++) {
        req.name = (char *)names[i];
        CHECK_EQ(tern_grpc_stream_send(s, &req.base, ctx), 0);
    }
    CHECK_EQ(tern_grpc_stream_close_send(s, ctx), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 1);
    CHECK(!strcmp(((Terntest__Resp *)m)->text, "a,b,c"));
    CHECK_EQ(((Terntest__Resp *)m)->index, 3);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 0);
    tern_grpc_stream_free(s);

    /* bidi ping-pong: each answer before the next request */
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, NULL, &s, ctx), 0);
    for (int i = 0; i < 4; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "p%d", i);
        req.name = nm;
        CHECK_EQ(tern_grpc_stream_send(s, &req.base, ctx), 0);
        CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 1);
        CHECK(!strcmp(((Terntest__Resp *)m)->text, nm));
        CHECK_EQ(((Terntest__Resp *)m)->index, i);
    }
    CHECK_EQ(tern_grpc_stream_close_send(s, ctx), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 0);
    tern_grpc_stream_free(s);

    /* cancel: the ctx of a parked recv, and freeing a stream mid-way */
    tern_ctx *cc;
    CHECK_EQ(tern_ctx_with_cancel(ctx, &cc), 0);
    req.name = "c";
    req.count = 1000;
    req.sleep_ms = 50;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, cc), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, cc), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, cc), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, cc), 1);
    tern_ctx_cancel(cc);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, cc), -ECANCELED);
    CHECK_EQ(tern_grpc_stream_status(s)->code, TERN_GRPC_CANCELLED);
    tern_grpc_stream_free(s);
    tern_ctx_free(cc);
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, ctx), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, ctx), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, ctx), 1);
    tern_grpc_stream_free(s);
    req.count = 0;
    req.sleep_ms = 0;

    /* unknown method */
    tern_grpc_method_desc nope = *M_UNARY;
    nope.path = "/terntest.Test/Nope";
    CHECK_EQ(tern_grpc_unary(ch, &nope, &req.base, &m, NULL, &st, ctx), -ENOSYS);
    CHECK_EQ(st.code, TERN_GRPC_UNIMPLEMENTED);
    tern_grpc_status_clear(&st);

    /* gzip both ways */
    char big[2000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    req.name = big;
    const char *want_gz[] = { "x-compress", "gzip", NULL };
    tern_grpc_call_options gz = { .compression = "gzip", .metadata = want_gz };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, &gz, NULL, ctx), 0);
    CHECK_EQ(strlen(((Terntest__Resp *)m)->text), 6 + sizeof big - 1);
    protobuf_c_message_free_unpacked(m, NULL);
    tern_grpc_call_options bad = { .compression = "br" };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, &bad, NULL, ctx), -ENOTSUP);

    /* a large message both ways (flow control past the windows) */
    static uint8_t pad[1536 * 1024];
    memset(pad, 7, sizeof pad);
    req.name = "big";
    req.pad = (ProtobufCBinaryData){ sizeof pad, pad };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, NULL, NULL, ctx), 0);
    CHECK_EQ(((Terntest__Resp *)m)->pad.len, sizeof pad);
    protobuf_c_message_free_unpacked(m, NULL);

    /* the receive limit */
    tern_grpc_channel *small = channel(1000);
    req.pad = (ProtobufCBinaryData){ 2000, pad };
    CHECK_EQ(tern_grpc_unary(small, M_UNARY, &req.base, &m, NULL, &st, ctx), -EMSGSIZE);
    CHECK_EQ(st.code, TERN_GRPC_RESOURCE_EXHAUSTED);
    tern_grpc_status_clear(&st);
    tern_grpc_channel_free(small);
    req.pad = (ProtobufCBinaryData){ 0, NULL };

    tern_ctx_free(ctx);
    tern_grpc_channel_free(ch);
    return 0;
}

static void grpcio_server_h2c(void)
{
    if (!have_grpcio())
        exit(77);
    py_server p;
    py_server_start(&p, NULL, NULL);
    port = p.port;
    CHECK_EQ(tern_run(cases, NULL), 0);
    py_server_stop(&p);
}

static void grpcio_server_tls(void)
{
    if (!have_grpcio())
        exit(77);
    tls_certs_make();
    py_server p;
    py_server_start(&p, tls_path("srv.pem"), tls_path("srv.key"));
    port = p.port;
    tls_mode = true;
    CHECK_EQ(tern_run(cases, NULL), 0);
    py_server_stop(&p);
}

/* Nothing listens: UNAVAILABLE at once, or wait_for_ready until the ctx. */
static int unavailable_main(void *arg)
{
    (void)arg;
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    char target[64];
    snprintf(target, sizeof target, "ipv4:127.0.0.1:%d", tern_listener_port(l));
    tern_listener_free(l);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    ProtobufCMessage *m;
    tern_grpc_status st;
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, NULL, &st, NULL), -ECONNREFUSED);
    CHECK_EQ(st.code, TERN_GRPC_UNAVAILABLE);
    tern_grpc_status_clear(&st);
    /* in backoff now: fails again at once */
    int64_t t0 = tern_now();
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, NULL, &st, NULL), -ECONNREFUSED);
    CHECK(tern_now() - t0 < 500 * MS);
    tern_grpc_status_clear(&st);
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 300 * MS, &c), 0);
    tern_grpc_call_options wfr = { .wait_for_ready = true };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, &wfr, &st, c), -ETIMEDOUT);
    CHECK_EQ(st.code, TERN_GRPC_DEADLINE_EXCEEDED);
    tern_grpc_status_clear(&st);
    tern_ctx_free(c);
    tern_grpc_channel_free(ch);
    CHECK_EQ(tern_grpc_channel_new("bogus://x", NULL, &ch), -EINVAL);
    tern_grpc_channel_options bad_lb = { .lb_policy = "p3c" };
    CHECK_EQ(tern_grpc_channel_new("127.0.0.1:1", &bad_lb, &ch), -EINVAL);
    return 0;
}

static void unavailable_and_wait_for_ready(void)
{
    CHECK_EQ(tern_run(unavailable_main, NULL), 0);
}

TESTS({ "grpcio_server_h2c", grpcio_server_h2c }, { "grpcio_server_tls", grpcio_server_tls },
      { "unavailable_and_wait_for_ready", unavailable_and_wait_for_ready })
