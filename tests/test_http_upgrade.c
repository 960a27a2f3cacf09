/*
 * test_http_upgrade.c - tern_http_resp_upgrade: the 101's head, the bytes
 * the client sent with its request handed over as pending, the connection
 * the handler's until it returns, and the refusals (no Upgrade field,
 * HTTP/1.0, a bad protocol name, twice).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include <tern/http.h>
#include <tern/net.h>
#include <tern/runtime.h>

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)

/* /echo: switch to "echo/1", then send back every byte, upper-cased, until
 * the client's end; anything else: try to switch and answer the error. */
static int handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *proto = strcmp(tern_http_req_path(r), "/bad") == 0 ? "no spaces" : "echo/1";
    tern_http_resp_set_header(w, "X-Switched", "yes");
    tern_http_upgraded u;
    int rc = tern_http_resp_upgrade(w, proto, &u);
    if (rc < 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "%d", rc);
        return tern_http_resp_text(w, 400, msg);
    }
    CHECK_EQ(tern_http_resp_upgrade(w, proto, &u), -EALREADY);
    char buf[256];
    size_t n = u.pending_len < sizeof buf ? u.pending_len : sizeof buf;
    memcpy(buf, u.pending, n);
    for (;;) {
        for (size_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] = (char)(buf[i] - 32);
        if (n && tern_conn_write(u.conn, buf, n, tern_http_req_ctx(r)) < 0)
            return 0;
        ssize_t k = tern_conn_read(u.conn, buf, sizeof buf, tern_http_req_ctx(r));
        if (k <= 0)
            return 0;
        n = (size_t)k;
    }
}

static tern_http_server *srv;

static int serve_co(void *arg)
{
    (void)arg;
    tern_http_server_serve(srv, NULL);
    return 0;
}

/* Send req, read until the connection ends (or len bytes); NUL-terminated. */
static size_t exchange(const char *req, const char *more, char *out, size_t cap)
{
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, tern_http_server_addr(srv), &c, NULL), 0);
    tern_conn_set_read_deadline(c, tern_now() + 5 * SEC);
    CHECK_EQ(tern_conn_write(c, req, strlen(req), NULL), (ssize_t)strlen(req));
    size_t len = 0;
    if (more) {
        tern_sleep(20 * MS);    /* after the 101: read from the conn, not pending */
        CHECK_EQ(tern_conn_write(c, more, strlen(more), NULL), (ssize_t)strlen(more));
    }
    tern_conn_close_write(c);
    for (;;) {
        ssize_t n = tern_conn_read(c, out + len, cap - 1 - len, NULL);
        CHECK(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    tern_conn_free(c);
    return len;
}

static int upgrade_main(void *arg)
{
    (void)arg;
    tern_http_server_options o = {.handler = handler};
    CHECK_EQ(tern_http_server_new(&o, &srv), 0);
    CHECK_EQ(tern_http_server_listen(srv, "127.0.0.1:0"), 0);
    CHECK_EQ(tern_go(serve_co, NULL), 0);
    char out[2048];
    /* bytes right behind the head are pending; later ones come from the conn */
    exchange("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo/1\r\n\r\nfirst,", "then",
             out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
    CHECK(strstr(out, "\r\nX-Switched: yes\r\n"));
    CHECK(strstr(out, "\r\nConnection: Upgrade\r\nUpgrade: echo/1\r\n\r\nFIRST,THEN"));
    CHECK(!strstr(out, "Content-Length") && !strstr(out, "Transfer-Encoding"));
    /* no Upgrade field */
    exchange("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 400", 12) == 0 && strstr(out, "\r\n\r\n-22"));
    /* HTTP/1.0 has no 101 */
    exchange("GET /echo HTTP/1.0\r\nUpgrade: echo/1\r\n\r\n", NULL, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.0 400", 12) == 0 && strstr(out, "\r\n\r\n-95"));
    /* not a protocol name */
    exchange("GET /bad HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: x\r\n\r\n", NULL, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 400", 12) == 0 && strstr(out, "\r\n\r\n-22"));
    tern_http_server_shutdown(srv, NULL);
    tern_sleep(5 * MS);
    tern_http_server_free(srv);
    return 0;
}

static void upgrade_hands_the_connection_with_pending_bytes(void) { run_ok(upgrade_main, NULL, 2); }

TESTS(T(upgrade_hands_the_connection_with_pending_bytes))
