/*
 * hello - a small HTTP service on tern: plaintext, JSON, echo, a slow
 * endpoint and a route parameter, with a graceful shutdown on SIGTERM or
 * SIGINT.
 *
 *     hello --listen 127.0.0.1:8080 [--reuseport]
 *           [--tls-cert CERT.pem --tls-key KEY.pem [--tls-addr 127.0.0.1:8443]]
 *
 * With a certificate and key it serves HTTPS on --tls-addr as well (the
 * same routes); SIGHUP reads the certificate files again (new
 * connections get the new certificate, open ones keep theirs).
 *
 *     curl http://127.0.0.1:8080/plaintext
 *     curl http://127.0.0.1:8080/json
 *     curl -d 'hi there' -H 'Content-Type: text/plain' http://127.0.0.1:8080/echo
 *     curl 'http://127.0.0.1:8080/sleep?ms=250'
 *     curl http://127.0.0.1:8080/users/42
 *     curl --http2-prior-knowledge http://127.0.0.1:8080/plaintext
 *
 * The port speaks HTTP/1.1 and HTTP/2 (h2c with prior knowledge) alike.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include <tern/chan.h>
#include <tern/error.h>
#include <tern/http.h>
#include <tern/http_router.h>
#include <tern/runtime.h>
#include <tern/signal.h>
#include <tern/tls.h>

#define MAX_ECHO (8 << 20)
#define MAX_SLEEP_MS 60000
#define SHUTDOWN_GRACE_NS (10 * 1000000000LL)

static int plaintext(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_send(w, 200, "text/plain", "Hello, World!", 13);
}

static int json(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    json_t *v = json_pack("{s:s}", "message", "Hello, World!");
    if (!v)
        return -ENOMEM;
    int rc = tern_http_resp_json(w, 200, v);
    json_decref(v);
    return rc;
}

static int echo(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *body;
    size_t len;
    int rc = tern_http_req_body(r, &body, &len);
    if (rc == -EMSGSIZE)
        return tern_http_resp_error(w, 413, "body larger than 8 MiB\n");
    if (rc < 0)
        return rc;
    const char *ct = tern_http_req_header(r, "Content-Type");
    return tern_http_resp_send(w, 200, ct ? ct : "application/octet-stream", body, len);
}

/* Answers after ms milliseconds, or gives up when the request's context
 * is cancelled (a forced shutdown). */
static int sleep_ms(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *s = tern_http_req_query(r, "ms");
    char *end;
    long ms = s ? strtol(s, &end, 10) : -1;
    if (!s || *end || ms < 0 || ms > MAX_SLEEP_MS)
        return tern_http_resp_error(w, 400, "ms must be an integer from 0 to 60000\n");
    int err = tern_ctx_sleep(ms * TERN_MS, tern_http_req_ctx(r));
    if (err < 0)
        return err;
    return tern_http_resp_printf(w, "slept %ld ms\n", ms) < 0 ? -EIO : 0;
}

static int user(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    json_t *v = json_pack("{s:s}", "id", tern_http_req_param(r, "id"));
    if (!v)
        return -ENOMEM;
    int rc = tern_http_resp_json(w, 200, v);
    json_decref(v);
    return rc;
}

typedef struct app {
    const char *listen;
    bool reuseport;
    const char *tls_cert, *tls_key, *tls_addr;
    tern_tls_config *tls;
    tern_http_server *srv;
} app;

static int on_signal(void *arg)
{
    app *a = arg;
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
    int sig;
    while ((sig = tern_signal_wait(sigs, 3, TERN_FOREVER)) == SIGHUP) {
        int rc = a->tls ? tern_tls_config_reload(a->tls) : 0;
        fprintf(stderr, "hello: SIGHUP: %s\n",
                !a->tls ? "no certificate to reload" : rc < 0 ? tern_strerror(rc) : "certificate reloaded");
    }
    fprintf(stderr, "hello: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* without memory for the bound, wait for every request (said below) */
    tern_ctx *grace = NULL;
    int rc = tern_ctx_with_timeout(NULL, SHUTDOWN_GRACE_NS, &grace);
    if (rc < 0)
        fprintf(stderr, "hello: shutdown grace: %s; waiting for every request\n",
                tern_strerror(rc));
    rc = tern_http_server_shutdown(a->srv, grace);
    tern_ctx_free(grace);
    if (rc < 0)
        fprintf(stderr, "hello: shutdown: %s\n", tern_strerror(rc));
    return 0;
}

static int run(void *arg)
{
    app *a = arg;
    int sigs[] = { SIGTERM, SIGINT, SIGHUP };
    int rc = tern_signal_notify(sigs, 3);
    tern_http_router *rt = NULL;
    if (rc < 0 || (rc = tern_http_router_new(NULL, &rt)) < 0) {
        fprintf(stderr, "hello: %s\n", tern_strerror(rc));
        return 1;
    }
    if ((rc = tern_http_router_handle(rt, "GET", "/plaintext", plaintext, NULL)) < 0 ||
        (rc = tern_http_router_handle(rt, "GET", "/json", json, NULL)) < 0 ||
        (rc = tern_http_router_handle(rt, "POST", "/echo", echo, NULL)) < 0 ||
        (rc = tern_http_router_handle(rt, "GET", "/sleep", sleep_ms, NULL)) < 0 ||
        (rc = tern_http_router_handle(rt, "GET", "/users/:id", user, NULL)) < 0) {
        fprintf(stderr, "hello: routes: %s\n", tern_strerror(rc));
        return 1;
    }
    tern_http_server_options o = {
        .handler = tern_http_router_serve,
        .arg = rt,
        .max_body_bytes = MAX_ECHO,
        .reuseport = a->reuseport,
    };
    if ((rc = tern_http_server_new(&o, &a->srv)) < 0 ||
        (rc = tern_http_server_listen(a->srv, a->listen)) < 0) {
        fprintf(stderr, "hello: listen on %s: %s\n", a->listen, tern_strerror(rc));
        return 1;
    }
    if (a->tls_cert) {
        /* HTTP/2 by ALPN, HTTP/1.1 for clients that do not offer it */
        static const char *const alpn[] = { "h2", "http/1.1", NULL };
        tern_tls_cert cert = { a->tls_cert, a->tls_key };
        tern_tls_server_options to = { .certs = &cert, .ncerts = 1, .alpn = alpn };
        if ((rc = tern_tls_server_config_new(&to, &a->tls)) < 0) {
            fprintf(stderr, "hello: certificate %s, key %s: %s\n", a->tls_cert, a->tls_key,
                    tern_strerror(rc));
            return 1;
        }
        if ((rc = tern_http_server_listen_tls(a->srv, a->tls_addr, a->tls)) < 0) {
            fprintf(stderr, "hello: listen on %s: %s\n", a->tls_addr, tern_strerror(rc));
            return 1;
        }
        printf("hello: listening on https://%s too\n"
               "  curl -k https://%s/plaintext\n"
               "  curl --http2 -k https://%s/plaintext\n", a->tls_addr, a->tls_addr, a->tls_addr);
    }
    const char *addr = tern_http_server_addr(a->srv);
    printf("hello: listening on http://%s (Ctrl-C or SIGTERM stops it)\n"
           "  curl http://%s/plaintext\n"
           "  curl http://%s/json\n"
           "  curl -d 'hi there' -H 'Content-Type: text/plain' http://%s/echo\n"
           "  curl 'http://%s/sleep?ms=250'\n"
           "  curl http://%s/users/42\n"
           "  curl --http2-prior-knowledge http://%s/plaintext   (HTTP/2, same port)\n",
           addr, addr, addr, addr, addr, addr, addr);
    fflush(stdout);
    tern_go(on_signal, a);
    rc = tern_http_server_serve(a->srv, NULL);
    tern_http_server_free(a->srv);
    tern_tls_config_free(a->tls);
    tern_http_router_free(rt);
    if (rc < 0) {
        fprintf(stderr, "hello: serve: %s\n", tern_strerror(rc));
        return 1;
    }
    fprintf(stderr, "hello: bye\n");
    return 0;
}

int main(int argc, char **argv)
{
    app a = { .listen = "127.0.0.1:8080", .tls_addr = "127.0.0.1:8443" };
    bool bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            a.listen = argv[++i];
        else if (!strcmp(argv[i], "--reuseport"))
            a.reuseport = true;
        else if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc)
            a.tls_cert = argv[++i];
        else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc)
            a.tls_key = argv[++i];
        else if (!strcmp(argv[i], "--tls-addr") && i + 1 < argc)
            a.tls_addr = argv[++i];
        else
            bad = true;
    }
    if (bad || !a.tls_cert != !a.tls_key) {
        fprintf(stderr, "usage: %s [--listen HOST:PORT] [--reuseport] "
                        "[--tls-cert CERT.pem --tls-key KEY.pem [--tls-addr HOST:PORT]]\n", argv[0]);
        return 2;
    }
    return tern_run(run, &a);
}
