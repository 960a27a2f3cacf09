/*
 * test_grpc_metrics.c - the kit's gRPC server metrics
 * (tern_grpc_metrics_interceptor): calls that succeed and fail, unary and
 * streaming, counted and timed under go-grpc-prometheus's names and labels
 * in a registry of the test's own, as a scrape shows them.
 */
#include "grpc_fixture.h"

#include <tern/metrics.h>

typedef struct srv {
    tern_grpc_server *s;
    tern_waitgroup wg;
    char addr[64];
} srv;

static int serve_co(void *arg)
{
    srv *sv = arg;
    tern_grpc_server_serve(sv->s, NULL);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

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
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern_grpc_metrics_options mo = { .registry = reg };
    tern_grpc_metrics *m;
    CHECK_EQ(tern_grpc_metrics_new(&mo, &m), 0);
    tern_grpc_metrics *twice;
    CHECK_EQ(tern_grpc_metrics_new(&mo, &twice), -EEXIST);

    srv sv = { 0 };
    CHECK_EQ(tern_grpc_server_new(NULL, &sv.s), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv.s, tern_grpc_metrics_interceptor, m), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv.s, &test_service, NULL, NULL), 0);
    CHECK_EQ(tern_grpc_server_listen(sv.s, "127.0.0.1:0"), 0);
    snprintf(sv.addr, sizeof sv.addr, "127.0.0.1:%d", tern_grpc_server_port(sv.s));
    tern_waitgroup_add(&sv.wg, 1);
    CHECK_EQ(tern_go(serve_co, &sv), 0);

    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(sv.addr, NULL, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "m";
    for (int i = 0; i < 3; i++) {
        ProtobufCMessage *resp;
        CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, NULL, NULL), 0);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    req.code = TERN_GRPC_NOT_FOUND;
    req.message = "gone";
    ProtobufCMessage *resp;
    tern_grpc_status st = { 0 };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &resp, NULL, &st, NULL), -ENOENT);
    tern_grpc_status_clear(&st);
    /* a server stream of two messages */
    req.code = 0;
    req.count = 2;
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    ProtobufCMessage *msg;
    int got = 0;
    while (tern_grpc_stream_recv(s, &msg, NULL) == 1)
        got++;
    CHECK_EQ(got, 2);
    tern_grpc_stream_free(s);
    tern_grpc_channel_free(ch);

    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, SEC, &c), 0);
    tern_grpc_server_shutdown(sv.s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&sv.wg, NULL), 0);
    tern_grpc_server_free(sv.s);

    CHECK(scraped(reg, "grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\"} 4"));
    CHECK(scraped(reg, "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\",grpc_code=\"OK\"} 3"));
    CHECK(scraped(reg, "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\",grpc_code=\"NotFound\"} 1"));
    CHECK(scraped(reg, "grpc_server_handled_total{grpc_type=\"server_stream\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"ServerStream\",grpc_code=\"OK\"} 1"));
    CHECK(scraped(reg, "grpc_server_handling_seconds_count{grpc_type=\"unary\",grpc_service=\"terntest.Test\","
                       "grpc_method=\"Unary\"} 4"));
    tern_grpc_metrics_free(m);
    tern_metrics_registry_free(reg);
    return 0;
}

static void server_metrics_as_go_grpc_prometheus_names_them(void)
{
    CHECK_EQ(tern_run(metrics_main, NULL), 0);
}

TESTS({ "server_metrics_as_go_grpc_prometheus_names_them", server_metrics_as_go_grpc_prometheus_names_them })
