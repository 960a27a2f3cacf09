/*
 * test_grpc_intercept.c - client interceptors on a channel (order,
 * metadata they add, refusing a call, told of the end of unary and
 * streaming calls), the kit's client metrics as go-grpc-prometheus names
 * them, and the kit's defaults (tern_grpc_server_use_kit,
 * tern_grpc_kit_client_interceptors) — against a real tern gRPC server.
 */
#include "grpc_fixture.h"

#include <stdlib.h>
#include <tern/log.h>
#include <tern/metrics.h>

typedef struct srv {
    tern_grpc_server *s;
    tern_waitgroup wg;
    char addr[64];
} srv;

static atomic_int served;

static int count_icept(tern_grpc_call *call, void *arg)
{
    (void)arg;
    atomic_fetch_add(&served, 1);
    return tern_grpc_call_next(call);
}

static int serve_co(void *arg)
{
    srv *sv = arg;
    tern_grpc_server_serve(sv->s, NULL);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

static void srv_start(srv *sv, bool kit)
{
    CHECK_EQ(tern_grpc_server_new(NULL, &sv->s), 0);
    if (kit)
        CHECK_EQ(tern_grpc_server_use_kit(sv->s), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv->s, count_icept, NULL), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv->s, &test_service, NULL, NULL), 0);
    CHECK_EQ(tern_grpc_server_listen(sv->s, "127.0.0.1:0"), 0);
    snprintf(sv->addr, sizeof sv->addr, "127.0.0.1:%d", tern_grpc_server_port(sv->s));
    tern_waitgroup_add(&sv->wg, 1);
    CHECK_EQ(tern_go(serve_co, sv), 0);
}

static void srv_stop(srv *sv)
{
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, SEC, &c), 0);
    tern_grpc_server_shutdown(sv->s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&sv->wg, NULL), 0);
    tern_grpc_server_free(sv->s);
}

/* ---- interceptors ---------------------------------------------------------- */

static char trail[256];         /* what the interceptors did, in order */
static int done_calls;
static tern_grpc_code done_code;
static char done_message[64];

static void note(const char *s)
{
    strncat(trail, s, sizeof trail - strlen(trail) - 1);
}

static void on_done(tern_grpc_client_call *cc, void *arg)
{
    note((const char *)arg);
    done_calls++;
    done_code = tern_grpc_client_call_code(cc);
    const char *m = tern_grpc_client_call_message(cc);
    snprintf(done_message, sizeof done_message, "%s", m ? m : "");
    /* one attempt; none when an interceptor refused the call */
    bool refused = tern_grpc_client_call_code(cc) == TERN_GRPC_PERMISSION_DENIED;
    CHECK_EQ(tern_grpc_client_call_attempts(cc), refused ? 0 : 1);
}

static int outer_ic(tern_grpc_client_call *cc, void *arg)
{
    (void)arg;
    note("A");
    CHECK(tern_grpc_client_call_method(cc) != NULL);
    CHECK_EQ(tern_grpc_client_call_add_metadata(cc, "x-outer", "a", 1), 0);
    CHECK_EQ(tern_grpc_client_call_add_metadata(cc, "grpc-timeout", "1S", 2), -EINVAL);   /* reserved */
    CHECK_EQ(tern_grpc_client_call_add_metadata(cc, "x-bad", "\n", 1), -EINVAL);
    CHECK_EQ(tern_grpc_client_call_on_done(cc, on_done, "a"), 0);
    int rc = tern_grpc_client_call_next(cc);
    if (rc != -EACCES) {        /* not refused inside: the call was made */
        CHECK_EQ(tern_grpc_client_call_add_metadata(cc, "x-late", "a", 1), -EALREADY);
        CHECK_EQ(tern_grpc_client_call_next(cc), -EALREADY);
    }
    note("a");
    return rc;
}

static int inner_ic(tern_grpc_client_call *cc, void *arg)
{
    note("B");
    CHECK_EQ(tern_grpc_client_call_add_metadata(cc, "x-inner-bin", "\0\1", 2), 0);
    CHECK_EQ(tern_grpc_client_call_on_done(cc, on_done, "b"), 0);
    if (arg && strcmp(((const Terntest__Req *)arg)->name, "refuse") == 0)
        return -EACCES;         /* refused here: the server never hears of it */
    return tern_grpc_client_call_next(cc);
}

static char got_outer[8];
static size_t got_inner_len;

static void on_md(const tern_grpc_metadata *md, bool trailer, void *arg)
{
    (void)arg;
    if (trailer)
        return;
    if (!strcmp(md->name, "x-outer"))
        snprintf(got_outer, sizeof got_outer, "%.*s", (int)md->len, (const char *)md->value);
    if (!strcmp(md->name, "x-inner-bin"))
        got_inner_len = md->len;
}

static int intercept_main(void *arg)
{
    (void)arg;
    srv sv = { 0 };
    srv_start(&sv, false);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "i";
    tern_grpc_client_interceptor ics[] = { { outer_ic, NULL }, { inner_ic, &req } };
    tern_grpc_channel_options co = { .interceptors = ics, .n_interceptors = 2 };
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(sv.addr, &co, &ch), 0);
    ics[0].fn = NULL;       /* copied by channel_new */

    /* unary: A then B, the metadata of both reach the server, done innermost first */
    tern_grpc_call_options opts = { .on_metadata = on_md };
    ProtobufCMessage *resp;
    tern_grpc_status st;
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, &opts, &st, NULL), 0);
    CHECK(strcmp(((Terntest__Resp *)resp)->text, "hello i") == 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    tern_grpc_status_clear(&st);
    CHECK(strcmp(trail, "ABbaa") == 0);
    CHECK(strcmp(got_outer, "a") == 0);
    CHECK_EQ(got_inner_len, 2);
    CHECK_EQ(done_calls, 2);
    CHECK_EQ(done_code, TERN_GRPC_OK);
    CHECK_EQ(atomic_load(&served), 1);

    /* a failing call: the code reaches on_done */
    trail[0] = 0;
    done_calls = 0;
    req.code = TERN_GRPC_NOT_FOUND;
    req.message = "no";
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, &st, NULL), -ENOENT);
    CHECK_EQ(st.code, TERN_GRPC_NOT_FOUND);
    tern_grpc_status_clear(&st);
    CHECK_EQ(done_code, TERN_GRPC_NOT_FOUND);
    CHECK(strcmp(done_message, "no") == 0);
    CHECK_EQ(done_calls, 2);
    req.code = 0;

    /* refused by an interceptor: its errno, a status, and no server call */
    trail[0] = 0;
    req.name = "refuse";
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, &st, NULL), -EACCES);
    CHECK(resp == NULL);
    CHECK_EQ(st.code, TERN_GRPC_PERMISSION_DENIED);
    tern_grpc_status_clear(&st);
    CHECK_EQ(done_code, TERN_GRPC_PERMISSION_DENIED);
    CHECK_EQ(atomic_load(&served), 2);
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), -EACCES);
    CHECK(s == NULL);
    CHECK_EQ(atomic_load(&served), 2);

    /* a server stream: opened through the chain, done when recv sees the end */
    req.name = "s";
    req.count = 3;
    trail[0] = 0;
    done_calls = 0;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, &opts, &s, NULL), 0);
    CHECK(strcmp(trail, "ABa") == 0);
    CHECK_EQ(done_calls, 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    ProtobufCMessage *msg;
    int got = 0;
    while (tern_grpc_stream_recv(s, &msg, NULL) == 1)
        got++;
    CHECK_EQ(got, 3);
    CHECK_EQ(done_calls, 2);
    CHECK_EQ(done_code, TERN_GRPC_OK);
    CHECK_EQ(tern_grpc_stream_recv(s, &msg, NULL), 0);
    CHECK_EQ(done_calls, 2);        /* once */
    tern_grpc_stream_free(s);
    CHECK_EQ(done_calls, 2);

    /* a bidi stream freed before its end: done with CANCELLED */
    done_calls = 0;
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    tern_grpc_stream_free(s);
    CHECK_EQ(done_calls, 2);
    CHECK_EQ(done_code, TERN_GRPC_CANCELLED);
    tern_grpc_channel_free(ch);

    /* bad options: an interceptor without a function */
    tern_grpc_client_interceptor bad[] = { { NULL, NULL } };
    co = (tern_grpc_channel_options){ .interceptors = bad, .n_interceptors = 1 };
    CHECK_EQ(tern_grpc_channel_new(sv.addr, &co, &ch), -EINVAL);
    co = (tern_grpc_channel_options){ .interceptors = NULL, .n_interceptors = 1 };
    CHECK_EQ(tern_grpc_channel_new(sv.addr, &co, &ch), -EINVAL);
    srv_stop(&sv);
    return 0;
}

static void client_interceptors_wrap_unary_and_streaming_calls(void)
{
    CHECK_EQ(tern_run(intercept_main, NULL), 0);
}

/* ---- metrics ------------------------------------------------------------------ */

static bool scraped(tern_metrics_registry *r, const char *line)
{
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(r, &text, &len), 0);
    bool found = strstr(text, line) != NULL;
    if (!found)
        fprintf(stderr, "no \"%s\" in the scrape:\n%s\n", line, text);
    free(text);
    return found;
}

static int metrics_main(void *arg)
{
    (void)arg;
    srv sv = { 0 };
    srv_start(&sv, false);
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern_grpc_metrics_options mo = { .registry = reg };
    tern_grpc_client_metrics *m;
    CHECK_EQ(tern_grpc_client_metrics_new(&mo, &m), 0);
    tern_grpc_client_metrics *twice;
    CHECK_EQ(tern_grpc_client_metrics_new(&mo, &twice), -EEXIST);
    tern_grpc_client_interceptor ics[] = { { tern_grpc_client_metrics_interceptor, m } };
    tern_grpc_channel_options co = { .interceptors = ics, .n_interceptors = 1 };
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(sv.addr, &co, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "m";
    ProtobufCMessage *resp;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, NULL, NULL), 0);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    req.code = TERN_GRPC_UNAVAILABLE;
    req.message = "down";
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, NULL, NULL), -EAGAIN);
    req.code = 0;
    req.count = 2;
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    /* started, not yet handled */
    CHECK(scraped(reg, "grpc_client_started_total{grpc_type=\"server_stream\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"ServerStream\"} 1"));
    ProtobufCMessage *msg;
    while (tern_grpc_stream_recv(s, &msg, NULL) == 1) {
    }
    tern_grpc_stream_free(s);
    tern_grpc_channel_free(ch);

    CHECK(scraped(reg, "grpc_client_started_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\"} 3"));
    CHECK(scraped(reg, "grpc_client_handled_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\",grpc_code=\"OK\"} 2"));
    CHECK(scraped(reg, "grpc_client_handled_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\",grpc_code=\"Unavailable\"} 1"));
    CHECK(scraped(reg, "grpc_client_handled_total{grpc_type=\"server_stream\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"ServerStream\",grpc_code=\"OK\"} 1"));
    CHECK(scraped(reg, "grpc_client_handling_seconds_count{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\"} 3"));
    tern_grpc_client_metrics_free(m);
    tern_metrics_registry_free(reg);

    srv_stop(&sv);
    return 0;
}

static void client_metrics_as_go_grpc_prometheus_names_them(void)
{
    CHECK_EQ(tern_run(metrics_main, NULL), 0);
}

/* ---- the kit's defaults ---------------------------------------------------------- */

static int kit_main(void *arg)
{
    (void)arg;
    srv sv = { 0 };
    srv_start(&sv, true);
    size_t n = 0;
    const tern_grpc_client_interceptor *ics = tern_grpc_kit_client_interceptors(&n);
    CHECK_EQ(n, 2);
    tern_grpc_channel_options co = { .interceptors = ics, .n_interceptors = n };
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(sv.addr, &co, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "kit";
    ProtobufCMessage *resp;
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, NULL, NULL), 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    tern_grpc_channel_free(ch);
    /* serving: no more interceptors */
    CHECK_EQ(tern_grpc_server_use_kit(sv.s), -EBUSY);
    srv_stop(&sv);
    tern_metrics_registry *def = tern_metrics_default();
    CHECK(scraped(def, "grpc_client_handled_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\",grpc_code=\"OK\"} 1"));
    CHECK(scraped(def, "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\",grpc_code=\"OK\"} 1"));
    return 0;
}

static void kit_defaults_count_both_sides(void)
{
    CHECK_EQ(tern_run(kit_main, NULL), 0);
}

/* ---- the access log ---------------------------------------------------------- */

static char log_lines[4][TERN_LOG_LINE_MAX];
static atomic_int log_n;

static void keep_line(const char *line, size_t len, void *arg)
{
    (void)arg;
    int i = atomic_fetch_add(&log_n, 1);
    if (i < 4)
        snprintf(log_lines[i], sizeof log_lines[i], "%.*s", (int)len, line);
}

static int access_main(void *arg)
{
    (void)arg;
    static tern_http_access_log_options lo = { .fn = keep_line };
    srv sv = { 0 };
    CHECK_EQ(tern_grpc_server_new(NULL, &sv.s), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv.s, tern_grpc_access_log_interceptor, &lo), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv.s, &test_service, NULL, NULL), 0);
    CHECK_EQ(tern_grpc_server_listen(sv.s, "127.0.0.1:0"), 0);
    snprintf(sv.addr, sizeof sv.addr, "127.0.0.1:%d", tern_grpc_server_port(sv.s));
    tern_waitgroup_add(&sv.wg, 1);
    CHECK_EQ(tern_go(serve_co, &sv), 0);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(sv.addr, NULL, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "logged";
    ProtobufCMessage *resp;
    tern_grpc_metadata md[] = { { "x-request-id", "req-42", 6 } };
    tern_grpc_call_options co = { .md = md, .n_md = 1 };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, &co, NULL, NULL), 0);
    protobuf_c_message_free_unpacked(resp, NULL);
    /* a failure: its code by Go's name, its message as the error */
    req.code = TERN_GRPC_NOT_FOUND;
    req.message = "no \"such\" thing";
    tern_grpc_status st = { 0 };
    CHECK(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, &st, NULL) < 0);
    CHECK_EQ(st.code, TERN_GRPC_NOT_FOUND);
    tern_grpc_status_clear(&st);
    tern_grpc_channel_free(ch);
    srv_stop(&sv);
    CHECK_EQ(atomic_load(&log_n), 2);
    const char *ok = log_lines[0], *bad = log_lines[1];
    CHECK(strstr(ok, "\"msg\":\"rpc\""));
    CHECK(strstr(ok, "\"grpc_code\":\"OK\""));
    CHECK(strstr(ok, "\"type\":\"unary\""));
    CHECK(strstr(ok, "\"method\":\"/terntest.Test/Unary\""));
    CHECK(strstr(ok, "\"peer\":\"127.0.0.1:"));
    CHECK(strstr(ok, "\"request_id\":\"req-42\""));
    CHECK(strstr(ok, "\"duration_us\":"));
    CHECK(!strstr(ok, "\"error\""));
    CHECK(ok[strlen(ok) - 1] == '\n');
    CHECK(strstr(bad, "\"grpc_code\":\"NotFound\""));
    CHECK(strstr(bad, "\"error\":\"no \\\"such\\\" thing\""));
    return 0;
}

static void access_log_writes_one_line_per_call(void)
{
    CHECK_EQ(tern_run(access_main, NULL), 0);
}

TESTS({ "client_interceptors_wrap_unary_and_streaming_calls", client_interceptors_wrap_unary_and_streaming_calls },
      { "client_metrics_as_go_grpc_prometheus_names_them", client_metrics_as_go_grpc_prometheus_names_them },
      { "kit_defaults_count_both_sides", kit_defaults_count_both_sides },
      { "access_log_writes_one_line_per_call", access_log_writes_one_line_per_call })
