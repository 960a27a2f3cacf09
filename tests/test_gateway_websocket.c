/*
 * test_gateway_websocket.c - Upgrade pass-through: a WebSocket exchange
 * between two real implementations (python3-websockets as the upstream
 * echo server and as the client) through the gateway; a raw client whose
 * first frame rides in the handshake's own packet; an upstream refusing
 * the upgrade.  Skipped (77) without python3-websockets.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "gateway_fixture.h"
#include <tern/net.h>

#define PY "/usr/bin/python3"

typedef struct child {
    pid_t pid;
    int port;
} child;

/* argv with stdout on a pipe; want_port: its first line is a port. */
static child spawn(char *const argv[], bool want_port)
{
    child c = {0};
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t parent = getpid();
    c.pid = fork();
    CHECK(c.pid >= 0);
    if (c.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* a test that aborts takes its peers along */
        if (getppid() != parent)
            _exit(1);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    if (want_port) {
        char line[32] = {0};
        size_t n = 0;
        /* the coroutine parks between tries: the worker is not blocked */
        CHECK(fcntl(fd[0], F_SETFL, O_NONBLOCK) == 0);
        int64_t end = tern_now() + 10 * SEC;
        while (n < sizeof line - 1 && tern_now() < end) {
            ssize_t k = read(fd[0], line + n, 1);
            if (k == 1 && line[n] == '\n')
                break;
            if (k == 1)
                n++;
            else if (k == 0)
                break;
            else
                tern_sleep(5 * MS);
        }
        c.port = atoi(line);
        CHECK(c.port > 0);
    }
    close(fd[0]);
    return c;
}

/* Its exit status, parking the coroutine (not the worker) meanwhile. */
static int child_wait(child *c, int64_t timeout)
{
    int64_t end = tern_now() + timeout;
    int st;
    while (waitpid(c->pid, &st, WNOHANG) == 0) {
        if (tern_now() > end) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            return -1;
        }
        tern_sleep(10 * MS);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char script[512];
static child server;
static gwsrv gw;

static void start(void)
{
    snprintf(script, sizeof script, "%s/ws_peer.py", TERN_TEST_SRC_DIR);
    char *argv[] = {PY, script, "serve", NULL};
    server = spawn(argv, true);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "upstreams:\n"
             "  ws: {endpoints: [\"127.0.0.1:%d\"], timeout: 2s}\n"
             "routes:\n"
             "  - name: chat\n"
             "    match: {prefix: \"/chat\"}\n"
             "    upstream: ws\n"
             "    rewrite: {strip_prefix: \"/chat\"}\n",
             server.port);
    char err[256];
    int rc = gw_start_text(&gw, cfg, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "gateway: %s\n", err);
    CHECK_EQ(rc, 0);
}

static void stop(void)
{
    gw_stop(&gw);
    kill(server.pid, SIGTERM);
    child_wait(&server, 5 * SEC);
}

/* ---- python client <-> python server through the gateway ---- */

static int python_main(void *arg)
{
    (void)arg;
    start();
    char url[128];
    snprintf(url, sizeof url, "ws://%s/chat/echo", gw.base + strlen("http://"));
    char *argv[] = {PY, script, "client", url, NULL};
    child c = spawn(argv, false);
    CHECK_EQ(child_wait(&c, 20 * SEC), 0);
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(gw.reg, &text, &len), 0);
    CHECK_HAS(text, "tern_gateway_requests_total{route=\"chat\",upstream=\"ws\",code=\"101\"} 1");
    free(text);
    stop();
    return 0;
}

static void websocket_echo_through_gateway(void) { run_ok(python_main, NULL, 2); }

/* ---- a raw client: the first frame in the handshake's packet ---- */

static ssize_t read_until(tern_conn *c, char *buf, size_t cap, size_t *len, const char *needle, size_t want)
{
    while (*len < cap - 1) {
        buf[*len] = '\0';
        char *p = strstr(buf, needle);
        if (p && *len - (size_t)(p - buf) - strlen(needle) >= want)
            return p - buf;
        ssize_t n = tern_conn_read(c, buf + *len, cap - 1 - *len, NULL);
        if (n <= 0)
            return -1;
        *len += (size_t)n;
    }
    return -1;
}

static int raw_main(void *arg)
{
    (void)arg;
    start();
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, gw.base + strlen("http://"), &c, NULL), 0);
    tern_conn_set_read_deadline(c, tern_now() + 5 * SEC);
    /* RFC 6455 1.3's sample key, and a masked text frame "hi" (mask 1,2,3,4) */
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /chat/raw HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    const unsigned char frame[] = {0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2};
    memcpy(req + n, frame, sizeof frame);
    CHECK_EQ(tern_conn_write(c, req, (size_t)n + sizeof frame, NULL), (ssize_t)(n + sizeof frame));
    char buf[2048];
    size_t len = 0;
    ssize_t end = read_until(c, buf, sizeof buf, &len, "\r\n\r\n", 4);
    CHECK(end > 0);
    CHECK(strncmp(buf, "HTTP/1.1 101 ", 13) == 0);
    CHECK_HAS(buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    const unsigned char *echo = (const unsigned char *)buf + end + 4;
    CHECK_EQ(echo[0], 0x81);    /* FIN, text */
    CHECK_EQ(echo[1], 2);       /* unmasked, 2 bytes */
    CHECK(echo[2] == 'h' && echo[3] == 'i');
    /* a close frame (masked, code 1000): the server answers with its
     * own and ends the connection, which ends the tunnel */
    const unsigned char close_frame[] = {0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2};
    CHECK_EQ(tern_conn_write(c, close_frame, sizeof close_frame, NULL), (ssize_t)sizeof close_frame);
    for (;;) {
        ssize_t k = tern_conn_read(c, buf, sizeof buf, NULL);
        CHECK(k >= 0);          /* not the deadline */
        if (k == 0)
            break;
    }
    tern_conn_free(c);
    stop();
    return 0;
}

static void first_frame_with_the_handshake_arrives(void) { run_ok(raw_main, NULL, 2); }

/* ---- the upstream says no ---- */

static int refuse_main(void *arg)
{
    (void)arg;
    start();
    const char *h[] = {"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
                       "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", NULL};
    const char *keep[] = {"X-Why", NULL};
    reply r;
    CHECK_EQ(gw_call(&gw, "GET", "/chat/refuse", h, NULL, keep, &r), 0);
    CHECK_EQ(r.status, 403);
    CHECK_STR(r.body, "no upgrade here");
    CHECK_STR(r.hdr[0], "refused");
    /* a plain request on the same route still proxies as HTTP (the
     * python server answers non-upgrade requests 426) */
    CHECK_EQ(gw_get(&gw, "/chat/echo", &r), 0);
    CHECK_EQ(r.status, 426);
    stop();
    return 0;
}

static void upstream_refusal_passed_on(void) { run_ok(refuse_main, NULL, 2); }

int main(void)
{
    if (system(PY " -c 'import websockets' 2>/dev/null") != 0) {
        fprintf(stderr, "skipped: needs python3-websockets\n");
        return 77;
    }
    websocket_echo_through_gateway();
    first_frame_with_the_handshake_arrives();
    upstream_refusal_passed_on();
    fprintf(stderr, "ok: 3 tests\n");
    return 0;
}
