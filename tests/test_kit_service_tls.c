/*
 * test_kit_service_tls.c - a service on a TLS config (options.tls): its
 * address serves HTTPS, HTTP/2 by ALPN, and a reload of the config's files
 * changes the certificate new handshakes see while the service runs; the
 * admin listener stays plain HTTP.  Real service, real tern client.
 */
#include "check.h"
#include "tls_certs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/http_client.h>
#include <tern/service.h>
#include <tern/tls.h>

static int hello(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    return tern_http_resp_text(w, 200, tern_http_req_tls(r) ? "tls" : "plain");
}

static tern_waitgroup done = TERN_WAITGROUP_INIT;

static int run_service_co(void *arg)
{
    CHECK_EQ(tern_service_run(arg, NULL), 0);
    tern_waitgroup_done(&done);
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", from, to, to, to);
    CHECK_EQ(system(cmd), 0);
}

/* GET url with c: its status, body (into out) and protocol. */
static int get(tern_http_client *c, const char *url, char *out, size_t size, const char **proto)
{
    tern_http_client_response *resp;
    int rc = tern_http_client_get(c, url, &resp, NULL);
    if (rc < 0)
        return rc;
    int status = tern_http_client_response_status(resp);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, size - 1, &body, &len), 0);
    memcpy(out, body, len);
    out[len] = 0;
    if (proto)
        *proto = strcmp(tern_http_client_response_proto(resp), "HTTP/2") == 0 ? "h2" : "h1";
    tern_http_client_response_free(resp);
    return status;
}

/* The subject of the certificate a fresh handshake with port sees. */
static void served_subject(int port, tern_tls_config *cc, char *out, size_t size)
{
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &c, NULL), 0);
    CHECK_EQ(tern_tls_connect(c, cc, "localhost", NULL), 0);
    snprintf(out, size, "%s", tern_tls_peer_subject(c));
    tern_conn_free(c);
}

static int body(void *arg)
{
    (void)arg;
    copy_file(tls_path("srv.pem"), tls_path("live.pem"));
    copy_file(tls_path("srv.key"), tls_path("live.key"));
    tern_tls_cert certs[] = {{tls_path("live.pem"), tls_path("live.key")}};
    const char *alpn[] = {"h2", "http/1.1", NULL};
    tern_tls_server_options so = {.certs = certs, .ncerts = 1, .alpn = alpn};
    tern_tls_config *scfg;
    CHECK_EQ(tern_tls_server_config_new(&so, &scfg), 0);

    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/", hello, NULL), 0);
    tern_service_options o = {
        .http = {.handler = tern_http_router_serve, .arg = rt},
        .addr = "127.0.0.1:0",
        .admin_addr = "127.0.0.1:0",
        .tls = scfg,
        .no_signals = true,
    };
    tern_service *svc;
    CHECK_EQ(tern_service_new(&o, &svc), 0);
    int port = tern_service_port(svc);
    tern_waitgroup_add(&done, 1);
    CHECK_EQ(tern_go(run_service_co, svc), 0);

    tern_tls_client_options co = {.ca_file = tls_path("ca.pem"), .alpn = alpn};
    tern_tls_config *cc;
    CHECK_EQ(tern_tls_client_config_new(&co, &cc), 0);
    tern_http_client_options ho = {.tls = cc};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&ho, &c), 0);

    char url[128], text[64];
    const char *proto = NULL;
    snprintf(url, sizeof url, "https://localhost:%d/", port);
    CHECK_EQ(get(c, url, text, sizeof text, &proto), 200);
    CHECK(!strcmp(text, "tls"));
    CHECK(!strcmp(proto, "h2"));
    /* plain HTTP on the TLS port is not served */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    CHECK(get(c, url, text, sizeof text, NULL) < 0);
    /* the admin listener speaks plain HTTP */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/livez",
             tern_http_server_port(tern_service_admin_server(svc)));
    CHECK_EQ(get(c, url, text, sizeof text, NULL), 200);

    /* a new certificate, reloaded while serving: new handshakes see it */
    char subject[256];
    served_subject(port, cc, subject, sizeof subject);
    CHECK(!strcmp(subject, "CN=localhost"));
    copy_file(tls_path("srvB.key"), tls_path("live.key"));
    copy_file(tls_path("srvB.pem"), tls_path("live.pem"));
    CHECK_EQ(tern_tls_config_reload(scfg), 0);
    served_subject(port, cc, subject, sizeof subject);
    CHECK(!strcmp(subject, "O=generation-B,CN=localhost"));
    snprintf(url, sizeof url, "https://localhost:%d/", port);
    CHECK_EQ(get(c, url, text, sizeof text, NULL), 200);

    tern_http_client_free(c);
    tern_service_stop(svc);
    tern_waitgroup_wait(&done, NULL);
    tern_service_free(svc);
    tern_http_router_free(rt);
    tern_tls_config_free(scfg);
    tern_tls_config_free(cc);
    return 0;
}

static void service_serves_https_and_h2_on_its_tls_config_and_reloads_it(void)
{
    tls_certs_make();
    run_ok(body, NULL, 2);
    tls_certs_remove();
}

TESTS(T(service_serves_https_and_h2_on_its_tls_config_and_reloads_it))
