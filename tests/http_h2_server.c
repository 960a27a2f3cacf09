/*
 * http_h2_server - the server the HTTP/2 tests drive with real clients
 * (h2spec, curl, nghttp, h2load, Python's h2): one router with the
 * built-in middleware and handlers that stream, echo, use trailers and
 * files, served on one port for HTTP/1.1 and h2c alike, so that the
 * scripts can run the same requests over both and compare.
 *
 *     http_h2_server [--max-streams N] [--max-body N] [--write-timeout-ms N]
 *                    [--idle-timeout-ms N] [--max-header-bytes N]
 *                    [--tls-cert PEM --tls-key PEM]
 *
 * With a certificate it also listens with TLS, ALPN {"h2", "http/1.1"},
 * and prints "tls_port N" before "port N".  Prints "port N" once listening; SIGTERM shuts it down gracefully (10 s
 * drain), and it prints "bye" once serve has returned.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>

#include <tern/error.h>
#include <tern/http.h>
#include <tern/http_mw.h>
#include <tern/http_router.h>
#include <tern/log.h>
#include <tern/runtime.h>
#include <tern/signal.h>

static const char *file_path;
static const char *tls_cert, *tls_key;

static int proto(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    return tern_http_resp_printf(w, "%s %s %s\n", tern_http_req_proto(r),
                                 tern_http_req_method(r), tern_http_req_path(r)) < 0 ? -EIO : 0;
}

static int plaintext(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_send(w, 200, "text/plain", "Hello, World!", 13);
}

/* The body back, read in small pieces (streams both ways past 64 KiB). */
static int echo(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    char buf[3000];
    const char *ct = tern_http_req_header(r, "Content-Type");
    if (ct)
        tern_http_resp_set_header(w, "Content-Type", ct);
    for (;;) {
        ssize_t n = tern_http_req_read(r, buf, sizeof buf);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return 0;
        if (tern_http_resp_write(w, buf, (size_t)n) < 0)
            return -EIO;
    }
}

/* n bytes of a pattern, streamed in chunks */
static int big(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *s = tern_http_req_query(r, "n");
    long long n = s ? atoll(s) : 1 << 20;
    char chunk[8192];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)('a' + i % 26);
    tern_http_resp_set_header(w, "Content-Type", "application/octet-stream");
    while (n > 0) {
        size_t k = n < (long long)sizeof chunk ? (size_t)n : sizeof chunk;
        ssize_t rc = tern_http_resp_write(w, chunk, k);
        if (rc < 0)
            return (int)rc;
        n -= (long long)k;
    }
    return 0;
}

/* Reads the body, answers with its length, the request's x-checksum
 * trailer, and trailers of its own. */
static int trailers(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *body;
    size_t len;
    int rc = tern_http_req_body(r, &body, &len);
    if (rc < 0)
        return rc;
    const char *sum = tern_http_req_trailer(r, "x-checksum");
    char n[32];
    snprintf(n, sizeof n, "%zu", len);
    tern_http_resp_set_trailer(w, "X-Body-Length", n);
    tern_http_resp_set_trailer(w, "X-Echo-Checksum", sum ? sum : "none");
    return tern_http_resp_printf(w, "len=%zu checksum=%s\n", len, sum ? sum : "none") < 0 ? -EIO : 0;
}

static int json_echo(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    json_t *v;
    int rc = tern_http_req_json(r, &v);
    if (rc == -EBADMSG)
        return tern_http_resp_error(w, 400, "bad json\n");
    if (rc < 0)
        return rc;
    json_t *out = json_pack("{s:O}", "got", v);
    json_decref(v);
    if (!out)
        return -ENOMEM;
    rc = tern_http_resp_json(w, 200, out);
    json_decref(out);
    return rc;
}

static int compressible(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    tern_http_resp_set_header(w, "Content-Type", "text/plain; charset=utf-8");
    for (int i = 0; i < 2000; i++)
        if (tern_http_resp_printf(w, "line %d of a compressible body\n", i) < 0)
            return -EIO;
    return 0;
}

static int sleep_ms(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *s = tern_http_req_query(r, "ms");
    int err = tern_ctx_sleep((s ? atoll(s) : 100) * TERN_MS, tern_http_req_ctx(r));
    if (err < 0)
        return err;
    return tern_http_resp_text(w, 200, "slept\n");
}

static int file(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    return tern_http_resp_file(w, r, file_path);
}

static int reqid(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *id = tern_http_request_id(r);
    return tern_http_resp_printf(w, "id=%s\n", id ? id : "") < 0 ? -EIO : 0;
}

/* Fails after streaming: the client must see a reset, not a clean end. */
static int fail_midway(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    tern_http_resp_write(w, "partial", 7);
    tern_http_resp_flush(w);
    return -EIO;
}

typedef struct app {
    tern_http_server_options o;
    tern_http_server *srv;
} app;

static int on_signal(void *arg)
{
    app *a = arg;
    static const int sigs[] = { SIGTERM, SIGINT };
    tern_signal_wait(sigs, 2, TERN_FOREVER);
    tern_ctx *grace = NULL;
    tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &grace);
    tern_http_server_shutdown(a->srv, grace);
    tern_ctx_free(grace);
    return 0;
}

static const tern_http_gzip_options gz = { .min_size = 256 };
static const tern_http_body_limit_options small_body = { .max = 1000 };
static const tern_http_timeout_options short_timeout = { .timeout = 100 * TERN_MS };
static const tern_http_cors_options cors = { 0 };

typedef struct chain {
    const tern_http_link *links;
    size_t n;
} chain;

static int run_chain(tern_http_req *r, tern_http_resp *w, void *arg)
{
    const chain *c = arg;
    return tern_http_run_chain(r, w, c->links, c->n);
}

#define ROUTE(m, p, ...)                                                          \
    do {                                                                          \
        static const tern_http_link links_[] = { __VA_ARGS__ };                   \
        static const chain chain_ = { links_, sizeof links_ / sizeof links_[0] }; \
        rc |= tern_http_router_handle(rt, m, p, run_chain, (void *)&chain_);      \
    } while (0)

static int run(void *arg)
{
    app *a = arg;
    int sigs[] = { SIGTERM, SIGINT };
    tern_http_router *rt;
    int rc = tern_signal_notify(sigs, 2);
    if (rc < 0 || tern_http_router_new(NULL, &rt) < 0)
        return 1;
    ROUTE("GET", "/proto", { proto, NULL });
    ROUTE("GET", "/plaintext", { plaintext, NULL });
    ROUTE("POST", "/echo", { echo, NULL });
    ROUTE("GET", "/big", { big, NULL });
    ROUTE("POST", "/trailers", { trailers, NULL });
    ROUTE("POST", "/json", { json_echo, NULL });
    ROUTE("GET", "/gzip", { tern_http_mw_gzip, (void *)&gz }, { compressible, NULL });
    ROUTE("GET", "/cors", { tern_http_mw_cors, (void *)&cors }, { plaintext, NULL });
    ROUTE("OPTIONS", "/cors", { tern_http_mw_cors, (void *)&cors }, { plaintext, NULL });
    ROUTE("GET", "/timeout", { tern_http_mw_timeout, (void *)&short_timeout }, { sleep_ms, NULL });
    ROUTE("GET", "/sleep", { sleep_ms, NULL });
    ROUTE("POST", "/limited", { tern_http_mw_body_limit, (void *)&small_body }, { echo, NULL });
    ROUTE("GET", "/reqid", { tern_http_mw_request_id, NULL }, { reqid, NULL });
    ROUTE("GET", "/file", { file, NULL });
    ROUTE("GET", "/fail", { fail_midway, NULL });
    /* the access log with no logger: one line per request on stderr */
    ROUTE("GET", "/logged", { tern_http_mw_access_log, NULL }, { plaintext, NULL });
    if (rc < 0) {
        fprintf(stderr, "routes: %s\n", tern_strerror(rc));
        return 1;
    }
    a->o.handler = tern_http_router_serve;
    a->o.arg = rt;
    if ((rc = tern_http_server_new(&a->o, &a->srv)) < 0 ||
        (rc = tern_http_server_listen(a->srv, "127.0.0.1:0")) < 0) {
        fprintf(stderr, "listen: %s\n", tern_strerror(rc));
        return 1;
    }
    tern_tls_config *tls = NULL;
    if (tls_cert) {
        static const char *const alpn[] = {"h2", "http/1.1", NULL};
        tern_tls_cert certs[] = {{tls_cert, tls_key}};
        tern_tls_server_options to = {.certs = certs, .ncerts = 1, .alpn = alpn};
        tern_listener *l;
        if ((rc = tern_tls_server_config_new(&to, &tls)) < 0 ||
            (rc = tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l)) < 0) {
            fprintf(stderr, "tls: %s\n", tern_strerror(rc));
            return 1;
        }
        int tls_port = tern_listener_port(l);
        if ((rc = tern_http_server_add_listener_tls(a->srv, l, tls)) < 0) {
            fprintf(stderr, "tls listen: %s\n", tern_strerror(rc));
            return 1;
        }
        printf("tls_port %d\n", tls_port);
    }
    printf("port %d\n", tern_http_server_port(a->srv));
    fflush(stdout);
    tern_go(on_signal, a);
    rc = tern_http_server_serve(a->srv, NULL);
    tern_http_server_free(a->srv);
    tern_tls_config_free(tls);
    tern_http_router_free(rt);
    printf("bye %d\n", rc);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static app a;
    for (int i = 1; i + 1 < argc; i += 2) {
        long long v = atoll(argv[i + 1]);
        if (!strcmp(argv[i], "--max-streams"))
            a.o.h2.max_concurrent_streams = (uint32_t)v;
        else if (!strcmp(argv[i], "--max-body"))
            a.o.max_body_bytes = v;
        else if (!strcmp(argv[i], "--write-timeout-ms"))
            a.o.write_timeout = v * TERN_MS;
        else if (!strcmp(argv[i], "--idle-timeout-ms"))
            a.o.idle_timeout = v * TERN_MS;
        else if (!strcmp(argv[i], "--max-header-bytes"))
            a.o.max_header_bytes = (size_t)v;
        else if (!strcmp(argv[i], "--tls-cert"))
            tls_cert = argv[i + 1];
        else if (!strcmp(argv[i], "--tls-key"))
            tls_key = argv[i + 1];
        else if (!strcmp(argv[i], "--file"))
            file_path = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!file_path)
        file_path = argv[0];    /* any file will do: its own binary */
    return tern_run(run, &a);
}
