/* test_http_tls.c - HTTPS end to end: tern's server (listen_tls) against
 * tern's client, curl and Python's ssl module; mTLS as a handler and the
 * access log see it; the client's verification errors; files sent over
 * TLS; a handshake that never comes is bounded by read_header_timeout. */
#include "tls_pair.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <tern/http.h>
#include <tern/http_client.h>
#include <tern/log.h>

typedef struct srv {
    tern_http_server *s;
    tern_tls_config *cfg;
    int port, plain_port, added_port;
    char logline[2048];
    atomic_int logged;
    tern_waitgroup done;
} srv;

static srv *the_srv;
static char big_path[96];

static int app(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *p = tern_http_req_path(r);
    if (!strcmp(p, "/big"))
        return tern_http_resp_file(w, r, big_path);
    const char *subj = tern_http_req_tls_peer_subject(r);
    const char *san = tern_http_req_tls_peer_san(r, 0);
    char body[512];
    snprintf(body, sizeof body, "tls=%d subject=%s san=%s", tern_http_req_tls(r),
             subj ? subj : "-", san ? san : "-");
    return tern_http_resp_text(w, 200, body);
}

static void on_log(const char *line, size_t len, void *arg)
{
    srv *v = arg;
    snprintf(v->logline, sizeof v->logline, "%.*s", (int)len, line);
    atomic_fetch_add(&v->logged, 1);
}

static int top(tern_http_req *r, tern_http_resp *w, void *arg)
{
    srv *v = arg;
    tern_http_access_log_options lo = {.fn = on_log, .fn_arg = v};
    tern_http_link chain[] = {{tern_http_mw_access_log, &lo}, {app, NULL}};
    return tern_http_run_chain(r, w, chain, 2);
}

static int serve_co(void *arg)
{
    srv *v = arg;
    tern_http_server_serve(v->s, NULL);
    tern_waitgroup_done(&v->done);
    return 0;
}

/* An HTTPS port and a plain one on one server. */
static void srv_start(srv *v, const char *client_ca, int64_t read_header_timeout)
{
    memset(v, 0, sizeof *v);
    the_srv = v;
    v->cfg = server_cfg("srv.pem", "srv.key", client_ca);
    tern_http_server_options o = {.handler = top, .arg = v,
                                  .read_header_timeout = read_header_timeout};
    CHECK_EQ(tern_http_server_new(&o, &v->s), 0);
    CHECK_EQ(tern_http_server_listen_tls(v->s, "127.0.0.1:0", NULL), -EINVAL);
    CHECK_EQ(tern_http_server_listen_tls(v->s, "127.0.0.1:0", v->cfg), 0);
    v->port = tern_http_server_port(v->s);
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    v->plain_port = tern_listener_port(l);
    CHECK_EQ(tern_http_server_add_listener(v->s, l), 0);
    /* HTTPS on a listener made by the caller */
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    v->added_port = tern_listener_port(l);
    CHECK_EQ(tern_http_server_add_listener_tls(v->s, l, NULL), -EINVAL);
    CHECK_EQ(tern_http_server_add_listener_tls(v->s, l, v->cfg), 0);
    tern_waitgroup_add(&v->done, 1);
    CHECK_EQ(tern_go(serve_co, v), 0);
}

static void srv_stop(srv *v)
{
    CHECK_EQ(tern_http_server_shutdown(v->s, NULL), 0);
    tern_waitgroup_wait(&v->done, NULL);
    tern_http_server_free(v->s);
    tern_tls_config_free(v->cfg);
}

/* GET url: the status (or the error) and the body into out. */
static int get(tern_http_client *c, const char *url, char *out, size_t size)
{
    tern_http_client_response *r;
    int rc = tern_http_client_get(c, url, &r, NULL);
    if (rc < 0)
        return rc;
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, 4 << 20, &body, &len), 0);
    snprintf(out, size, "%.*s", (int)len, body);
    rc = tern_http_client_response_status(r);
    tern_http_client_response_free(r);
    return rc;
}

static int https_body(void *arg)
{
    (void)arg;
    srv v;
    srv_start(&v, NULL, 0);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_http_client_options co = {.tls = cc};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    char url[128], body[512];
    snprintf(url, sizeof url, "https://localhost:%d/x", v.port);
    CHECK_EQ(get(c, url, body, sizeof body), 200);
    CHECK(!strcmp(body, "tls=1 subject=- san=-"));
    CHECK_EQ(get(c, url, body, sizeof body), 200);
    snprintf(url, sizeof url, "https://localhost:%d/x", v.added_port);
    CHECK_EQ(get(c, url, body, sizeof body), 200);
    CHECK(!strcmp(body, "tls=1 subject=- san=-"));
    /* the plain port of the same server, and the same port number's
     * pool entries kept apart by scheme */
    snprintf(url, sizeof url, "http://localhost:%d/x", v.plain_port);
    CHECK_EQ(get(c, url, body, sizeof body), 200);
    CHECK(!strcmp(body, "tls=0 subject=- san=-"));
    snprintf(url, sizeof url, "http://localhost:%d/x", v.port);
    CHECK(get(c, url, body, sizeof body) < 0);    /* plain HTTP to the TLS port */
    struct tern_http_client_stats st;
    tern_http_client_stats(c, &st);
    CHECK_EQ(st.dials, 4);      /* https twice (kept alive), http once, the failed one */
    CHECK_EQ(st.reuses, 1);
    /* a file over TLS: sendfile's fallback */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/big", v.port);
    static char big[3 << 20];
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 200);
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, sizeof big, &data, &len), 0);
    CHECK_EQ(len, 2500000);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)data[i] != (unsigned char)(i * 7 + 3)) {
            fprintf(stderr, "byte %zu differs\n", i);
            abort();
        }
    tern_http_client_response_free(r);
    char err[256];
    CHECK_EQ(tern_http_client_last_tls_error(c, err, sizeof err), -ENOENT);
    tern_http_client_free(c);
    tern_tls_config_free(cc);
    srv_stop(&v);
    return 0;
}

static void make_big_file(void)
{
    snprintf(big_path, sizeof big_path, "%s/big.bin", tls_dir);
    FILE *f = fopen(big_path, "w");
    for (size_t i = 0; i < 2500000; i++)
        fputc((int)(unsigned char)(i * 7 + 3), f);
    fclose(f);
}

static void https_serves_the_tern_client_on_a_tls_port_beside_a_plain_one(void)
{
    tls_certs_make();
    make_big_file();
    run_ok(https_body, NULL, 2);
}

/* ---- mTLS through HTTP --------------------------------------------------------- */

static int mtls_body(void *arg)
{
    (void)arg;
    srv v;
    srv_start(&v, "cca.pem", 0);
    tern_tls_config *good = client_cfg("ca.pem", "cli.pem", "cli.key");
    tern_tls_config *anon = client_cfg("ca.pem", NULL, NULL);
    tern_http_client *c, *a;
    tern_http_client_options co = {.tls = good};
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    co.tls = anon;
    CHECK_EQ(tern_http_client_new(&co, &a), 0);
    char url[128], body[512];
    snprintf(url, sizeof url, "https://localhost:%d/who", v.port);
    CHECK_EQ(get(c, url, body, sizeof body), 200);
    CHECK(!strcmp(body, "tls=1 subject=O=tern,CN=client-1 san=client-1.test"));
    CHECK_EQ(atomic_load(&v.logged), 1);
    check_contains(v.logline, "\"tls_peer\":\"O=tern,CN=client-1\"");
    /* without a certificate: refused (TLS 1.3 tells the client on its
     * first read, so the error is the read's) */
    int rc = get(a, url, body, sizeof body);
    CHECK(rc < 0);
    fprintf(stderr, "   no client cert: %s\n", tern_strerror(rc));
    CHECK_EQ(atomic_load(&v.logged), 1);    /* no request reached the handler */
    tern_http_client_free(c);
    tern_http_client_free(a);
    tern_tls_config_free(good);
    tern_tls_config_free(anon);
    srv_stop(&v);
    return 0;
}

static void https_mtls_handler_and_access_log_see_the_client_subject(void)
{
    tls_certs_make();
    run_ok(mtls_body, NULL, 2);
}

/* ---- the client's errors -------------------------------------------------------- */

static int client_errors_body(void *arg)
{
    (void)arg;
    srv v;
    srv_start(&v, NULL, 0);
    char url[128], body[64], err[512];
    /* the default config: the system store does not know the test CA */
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    snprintf(url, sizeof url, "https://localhost:%d/", v.port);
    CHECK_EQ(get(c, url, body, sizeof body), -EKEYREJECTED);
    CHECK_EQ(tern_http_client_last_tls_error(c, err, sizeof err), 0);
    check_contains(err, "https://localhost:");
    check_contains(err, "unknown issuer");
    tern_http_client_free(c);
    /* the test CA given: the name, or the IP address, is on the certificate */
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_http_client_options co = {.tls = cc};
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    CHECK_EQ(get(c, url, body, sizeof body), 200);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", v.port);
    CHECK_EQ(get(c, url, body, sizeof body), 200);             /* IP SAN */
    tern_http_client_free(c);
    tern_tls_config_free(cc);
    srv_stop(&v);
    return 0;
}

static void https_client_errors_say_what_failed(void)
{
    tls_certs_make();
    run_ok(client_errors_body, NULL, 2);
}

/* ---- a client that never starts its handshake ------------------------------------ */

static int silent_body(void *arg)
{
    (void)arg;
    srv v;
    srv_start(&v, NULL, 200 * TERN_MS);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", v.port);
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &c, NULL), 0);
    tern_conn_set_read_deadline(c, tern_now() + 5 * SEC_NS);
    int64_t t0 = tern_now();
    char b;
    ssize_t n = tern_conn_read(c, &b, 1, NULL);
    CHECK(n == 0 || n == -ECONNRESET);      /* closed by the server, not our deadline */
    CHECK(tern_now() - t0 < 3 * SEC_NS);
    tern_conn_free(c);
    srv_stop(&v);
    return 0;
}

static void https_handshake_is_bounded_by_read_header_timeout(void)
{
    tls_certs_make();
    run_ok(silent_body, NULL, 2);
}

/* ---- other clients: curl, Python ------------------------------------------------- */

typedef struct ext {
    const char *cmd;
    char out[1024];
    int status;
} ext;

static void *run_cmd(void *arg)
{
    ext *e = arg;
    FILE *p = popen(e->cmd, "r");
    size_t n = p ? fread(e->out, 1, sizeof e->out - 1, p) : 0;
    e->out[n] = '\0';
    e->status = p ? pclose(p) : -1;
    return NULL;
}

/* Run a shell command off the workers (popen blocks), with its output. */
static void run_ext(ext *e)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_cmd, e) == 0);
    while (pthread_tryjoin_np(th, NULL) != 0)
        tern_sleep(5 * TERN_MS);
}

static int interop_body(void *arg)
{
    (void)arg;
    srv v;
    srv_start(&v, "cca.pem", 0);
    char cmd[1024];
    ext e = {.cmd = cmd};
    if (system("command -v curl >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd,
                 "curl -sS --max-time 10 --cacert %s --cert %s --key %s https://localhost:%d/c 2>&1",
                 tls_path("ca.pem"), tls_path("cli.pem"), tls_path("cli.key"), v.port);
        run_ext(&e);
        fprintf(stderr, "   curl: %s\n", e.out);
        CHECK_EQ(e.status, 0);
        CHECK(!strcmp(e.out, "tls=1 subject=O=tern,CN=client-1 san=client-1.test"));
        /* without --cacert curl refuses our certificate */
        snprintf(cmd, sizeof cmd,
                 "curl -sS --max-time 10 --cert %s --key %s https://localhost:%d/c 2>&1",
                 tls_path("cli.pem"), tls_path("cli.key"), v.port);
        run_ext(&e);
        CHECK(e.status != 0);
    } else {
        fprintf(stderr, "   curl not installed: skipped\n");
    }
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c '\n"
             "import ssl, http.client\n"
             "ctx = ssl.create_default_context(cafile=\"%s\")\n"
             "ctx.load_cert_chain(\"%s\", \"%s\")\n"
             "ctx.set_alpn_protocols([\"h2\", \"http/1.1\"])\n"
             "c = http.client.HTTPSConnection(\"localhost\", %d, context=ctx, timeout=10)\n"
             "c.request(\"GET\", \"/py\")\n"
             "r = c.getresponse()\n"
             "print(r.status, c.sock.version(), c.sock.selected_alpn_protocol(), r.read().decode())\n"
             "' 2>&1",
             tls_path("ca.pem"), tls_path("cli.pem"), tls_path("cli.key"), v.port);
    run_ext(&e);
    fprintf(stderr, "   python: %s", e.out);
    CHECK_EQ(e.status, 0);
    CHECK(!strcmp(e.out, "200 TLSv1.3 http/1.1 tls=1 subject=O=tern,CN=client-1 san=client-1.test\n"));
    /* sslscan: no SSL, no TLS 1.0 or 1.1; no CBC suite, no finite-field DH */
    if (system("command -v sslscan >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd,
                 "sslscan --no-colour --no-heartbleed 127.0.0.1:%d 2>&1 | "
                 "grep -E '^(SSLv|TLSv1\\.[0-3] +(en|dis)abled)|^(Accepted|Preferred)|ffdhe|CBC'",
                 v.port);
        run_ext(&e);
        fprintf(stderr, "   sslscan:\n%s", e.out);
        check_contains(e.out, "TLSv1.0   disabled");
        check_contains(e.out, "TLSv1.1   disabled");
        check_contains(e.out, "TLSv1.3   enabled");
        CHECK(!strstr(e.out, "SSLv3     enabled") && !strstr(e.out, "CBC") && !strstr(e.out, "ffdhe"));
    } else {
        fprintf(stderr, "   sslscan not installed: skipped\n");
    }
    srv_stop(&v);
    return 0;
}

static void https_interoperates_with_curl_and_python(void)
{
    tls_certs_make();
    run_ok(interop_body, NULL, 2);
}

TESTS(T(https_serves_the_tern_client_on_a_tls_port_beside_a_plain_one),
      T(https_mtls_handler_and_access_log_see_the_client_subject),
      T(https_client_errors_say_what_failed),
      T(https_handshake_is_bounded_by_read_header_timeout),
      T(https_interoperates_with_curl_and_python))
