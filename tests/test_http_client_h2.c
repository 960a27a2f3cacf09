/* test_http_client_h2.c - the HTTP client speaking HTTP/2 (h2c with prior
 * knowledge) to real peers: nghttpd (nghttp2-server) and a python3-h2
 * server scripted per path (tests/h2_peer.py).  Multiplexing, the peer's
 * stream limit, GOAWAY and REFUSED_STREAM retries, cancellation, flow
 * control both ways, trailers, and peers that cut or garble the
 * connection.  Skipped (77) where nghttpd or python3-h2 is missing. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <tern/http_client.h>

#include "peer_proc.h"

#define PY "/usr/bin/python3"
#define NGHTTPD "/usr/sbin/nghttpd"

/* ---- peers ------------------------------------------------------------------ */


static peer py_peer(const char *opt, const char *val)
{
    char script[512];
    snprintf(script, sizeof script, "%s/h2_peer.py", TERN_TEST_SRC_DIR);
    char *argv[] = {PY, script, (char *)opt, (char *)val, NULL};
    return peer_start(argv, 0);
}

/* A free port: bind to 0, read it, close (nghttpd wants a number). */
static int free_port(void)
{
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    int port = tern_listener_port(l);
    tern_listener_free(l);
    return port;
}

static char docroot[64];
static char big_file[1 << 20];

static peer nghttpd_peer(void)
{
    strcpy(docroot, "/tmp/tern_h2_docroot_XXXXXX");
    CHECK(mkdtemp(docroot) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/hello.txt", docroot);
    FILE *f = fopen(path, "w");
    CHECK(f && fputs("hello from nghttpd\n", f) >= 0 && fclose(f) == 0);
    for (size_t i = 0; i < sizeof big_file; i++)
        big_file[i] = (char)(i * 7 % 253);
    snprintf(path, sizeof path, "%s/big.bin", docroot);
    f = fopen(path, "w");
    CHECK(f && fwrite(big_file, 1, sizeof big_file, f) == sizeof big_file && fclose(f) == 0);
    int port = free_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    char *argv[] = {NGHTTPD, "--no-tls", "-d", docroot, ports, NULL};
    peer p = peer_start(argv, port);
    /* wait until it listens */
    for (int i = 0; i < 200; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(0x7f000001)};
        int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (ok)
            return p;
        usleep(10000);
    }
    CHECK(!"nghttpd did not start");
    return p;
}

static void nghttpd_cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", docroot);
    CHECK(system(cmd) == 0);
}

/* Run entry on a fresh runtime, or exit 77 (skipped) without the peers. */
static void run_h2(tern_fn *entry)
{
    if (access(NGHTTPD, X_OK) != 0 || system(PY " -c 'import h2' 2>/dev/null") != 0) {
        fprintf(stderr, "skipped: needs %s and python3-h2\n", NGHTTPD);
        exit(77);
    }
    run_ok(entry, NULL, 2);
}

/* ---- client helpers --------------------------------------------------------- */

static tern_http_client *h2_client(void)
{
    tern_http_client_options o = {.h2c_prior_knowledge = true, .timeout = 20 * TERN_SEC};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&o, &c), 0);
    return c;
}

/* p's URL of path, in a buffer of the calling block (not a static one: a
 * coroutine may move between threads, so no _Thread_local either). */
#define url(p, path) url_in((char[256]){0}, p, path)
static char *url_in(char *u, const peer *p, const char *path)
{
    snprintf(u, 256, "%s%s", p->base, path);
    return u;
}

/* GET u; the status, with the body copied into out (NUL-terminated). */
static int get_text(tern_http_client *c, const char *u, char *out, size_t cap, tern_ctx *ctx)
{
    tern_http_client_response *r;
    int rc = tern_http_client_get(c, u, &r, ctx);
    if (rc < 0)
        return rc;
    CHECK(strcmp(tern_http_client_response_proto(r), "HTTP/2") == 0);
    const char *b;
    size_t n;
    rc = tern_http_client_response_body(r, cap - 1, &b, &n);
    if (rc == 0) {
        memcpy(out, b, n + 1);
        rc = tern_http_client_response_status(r);
    }
    tern_http_client_response_free(r);
    return rc;
}

static struct tern_http_client_stats stats(tern_http_client *c)
{
    struct tern_http_client_stats st;
    tern_http_client_stats(c, &st);
    return st;
}

/* ---- GET and POST ----------------------------------------------------------- */

static int get_post_main(void *arg)
{
    (void)arg;
    peer ng = nghttpd_peer();
    peer py = py_peer("--max-streams", "100");
    tern_http_client *c = h2_client();
    char body[256];
    CHECK_EQ(get_text(c, url(&ng, "/hello.txt"), body, sizeof body, NULL), 200);
    CHECK(strcmp(body, "hello from nghttpd\n") == 0);
    CHECK_EQ(get_text(c, url(&ng, "/missing"), body, sizeof body, NULL), 404);
    /* a 1 MiB file: sixteen times the default window, four times ours */
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url(&ng, "/big.bin"), &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_content_length(r), sizeof big_file);
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, 2 << 20, &data, &len), 0);
    CHECK_EQ(len, sizeof big_file);
    CHECK(memcmp(data, big_file, len) == 0);
    tern_http_client_response_free(r);
    /* HEAD: the length a GET would have, no body */
    tern_http_client_request head = {.method = "HEAD", .url = url(&ng, "/big.bin")};
    CHECK_EQ(tern_http_client_do(c, &head, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 200);
    CHECK_EQ(tern_http_client_response_content_length(r), sizeof big_file);
    char one[16];
    CHECK_EQ(tern_http_client_response_read(r, one, sizeof one), 0);
    tern_http_client_response_free(r);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 1);
    CHECK_EQ(st.reuses, 3);
    CHECK_EQ(st.requests, 4);
    CHECK_EQ(st.h2_conns, 1);
    CHECK_EQ(st.active, 0);

    const char *hdrs[] = {"X-Trace", "t1", "Connection", "close", NULL};
    tern_http_client_request req = {.method = "POST", .url = url(&py, "/echo"), .headers = hdrs,
                                    .body = "ping", .body_len = 4};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 200);
    CHECK(strcmp(tern_http_client_response_header(r, "X-Method"), "POST") == 0);
    char auth[64];
    snprintf(auth, sizeof auth, "127.0.0.1:%d", py.port);
    CHECK(strcmp(tern_http_client_response_header(r, "x-authority"), auth) == 0);
    CHECK(strcmp(tern_http_client_response_header(r, "x-trace"), "t1") == 0);
    CHECK_EQ(tern_http_client_response_content_length(r), 4);
    CHECK_EQ(tern_http_client_response_body(r, 100, &data, &len), 0);
    CHECK(len == 4 && memcmp(data, "ping", 4) == 0);
    tern_http_client_response_free(r);
    CHECK_EQ(stats(c).h2_conns, 2);

    /* a Host field becomes :authority */
    const char *host[] = {"Host", "example.test", NULL};
    req = (tern_http_client_request){.url = url(&py, "/echo"), .headers = host};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    CHECK(strcmp(tern_http_client_response_header(r, "x-method"), "GET") == 0);
    CHECK(strcmp(tern_http_client_response_header(r, "x-authority"), "example.test") == 0);
    tern_http_client_response_free(r);

    tern_http_client_free(c);
    peer_stop(&ng);
    peer_stop(&py);
    nghttpd_cleanup();
    return 0;
}

static int redirect_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "100");
    tern_http_client_options o = {.h2c_prior_knowledge = true, .max_redirects = 3};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&o, &c), 0);
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url(&py, "/redirect"), &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 200);
    CHECK(strcmp(tern_http_client_response_proto(r), "HTTP/2") == 0);
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, 100, &data, &len), 0);
    CHECK(strcmp(data, "hello /hello?from=redirect") == 0);
    tern_http_client_response_free(r);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 1);
    CHECK_EQ(st.requests, 2);
    CHECK_EQ(st.active, 0);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static int idle_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "100");
    tern_http_client_options o = {.h2c_prior_knowledge = true, .idle_timeout = 150 * TERN_MS};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&o, &c), 0);
    char body[64];
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    tern_sleep(50 * TERN_MS);
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    CHECK_EQ(stats(c).dials, 1);
    tern_sleep(300 * TERN_MS);
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    CHECK_EQ(stats(c).dials, 2);
    /* the idle one went: its reader saw the shutdown */
    for (int i = 0; i < 100 && stats(c).h2_conns != 1; i++)
        tern_sleep(10 * TERN_MS);
    CHECK_EQ(stats(c).h2_conns, 1);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void connection_idle_past_timeout_is_closed(void)
{
    run_h2(idle_main);
}

static void redirect_followed_on_the_same_connection(void)
{
    run_h2(redirect_main);
}

static void get_and_post_over_h2c(void)
{
    run_h2(get_post_main);
}

/* ---- multiplexing ----------------------------------------------------------- */

typedef struct par {
    tern_http_client *c;
    const peer *p;
    const char *path;
    int i;
    atomic_int *ok;
    tern_waitgroup *wg;
} par;

static int par_get(void *arg)
{
    par *a = arg;
    char u[256], body[256], want[256];
    snprintf(u, sizeof u, "%s%s%si=%d", a->p->base, a->path, strchr(a->path, '?') ? "&" : "?",
             a->i);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_SEC, &ctx), 0);
    int rc = get_text(a->c, u, body, sizeof body, ctx);
    tern_ctx_free(ctx);
    snprintf(want, sizeof want, "hello %s", u + strlen(a->p->base));
    if (rc == 200 && (strncmp(a->path, "/hello?", 7) != 0 || strcmp(body, want) == 0))
        atomic_fetch_add(a->ok, 1);
    else
        fprintf(stderr, "request %d: %d (%s) body '%s'\n", a->i, rc,
                rc < 0 ? tern_strerror(rc) : "", body);
    tern_waitgroup_done(a->wg);
    return 0;
}

/* n concurrent GETs of path; returns how many got 200 (and their own body). */
static int fan_out(tern_http_client *c, const peer *p, const char *path, int n)
{
    atomic_int ok = 0;
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    par *a = calloc((size_t)n, sizeof *a);
    for (int i = 0; i < n; i++) {
        a[i] = (par){c, p, path, i, &ok, &wg};
        tern_waitgroup_add(&wg, 1);
        CHECK_EQ(tern_go(par_get, &a[i]), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    free(a);
    return atomic_load(&ok);
}

static int peer_conns(tern_http_client *c, const peer *p)
{
    char body[32];
    CHECK_EQ(get_text(c, url(p, "/conns"), body, sizeof body, NULL), 200);
    return atoi(body);
}

static int hundred_main(void *arg)
{
    (void)arg;
    /* the python peer holds each answer 300 ms: all hundred are open at once */
    peer py = py_peer("--max-streams", "100");
    tern_http_client *c = h2_client();
    CHECK_EQ(fan_out(c, &py, "/hello?ms=300", 100), 100);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 1);
    CHECK_EQ(st.requests, 100);
    CHECK_EQ(st.h2_conns, 1);
    CHECK_EQ(st.active, 0);
    CHECK_EQ(peer_conns(c, &py), 1);
    tern_http_client_free(c);
    peer_stop(&py);

    /* and against nghttpd, as fast as it answers */
    peer ng = nghttpd_peer();
    c = h2_client();
    CHECK_EQ(fan_out(c, &ng, "/hello.txt", 100), 100);
    CHECK_EQ(stats(c).dials, 1);
    tern_http_client_free(c);
    peer_stop(&ng);
    nghttpd_cleanup();
    return 0;
}

static void hundred_concurrent_requests_share_one_connection(void)
{
    run_h2(hundred_main);
}

static int limit_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "2");
    tern_http_client *c = h2_client();
    /* five at once, two per connection: three connections */
    CHECK_EQ(fan_out(c, &py, "/hello?ms=300", 5), 5);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 3);
    CHECK_EQ(st.h2_conns, 3);
    CHECK_EQ(peer_conns(c, &py), 3);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static int max_conns_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "2");
    tern_http_client_options o = {.h2c_prior_knowledge = true, .max_conns_per_host = 1};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&o, &c), 0);
    /* one connection, two streams: six requests go two by two */
    int64_t t0 = tern_now();
    CHECK_EQ(fan_out(c, &py, "/hello?ms=150", 6), 6);
    CHECK(tern_now() - t0 >= 3 * 150 * TERN_MS);
    CHECK_EQ(stats(c).dials, 1);
    CHECK_EQ(peer_conns(c, &py), 1);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void max_conns_per_host_makes_streams_wait(void)
{
    run_h2(max_conns_main);
}

static void second_connection_when_peer_stream_limit_reached(void)
{
    run_h2(limit_main);
}

/* ---- GOAWAY and REFUSED_STREAM ---------------------------------------------- */

static int goaway_main(void *arg)
{
    (void)arg;
    /* the first connection answers stream 1 only, and says so by GOAWAY */
    peer py = py_peer("--goaway-last", "1");
    tern_http_client *c = h2_client();
    CHECK_EQ(fan_out(c, &py, "/hello?ms=100", 6), 6);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 2);
    CHECK(st.requests > 6);     /* the unprocessed ones went twice */
    CHECK_EQ(peer_conns(c, &py), 2);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void goaway_unprocessed_requests_retried_on_new_connection(void)
{
    run_h2(goaway_main);
}

static int refused_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "100");
    tern_http_client *c = h2_client();
    char body[64];
    CHECK_EQ(get_text(c, url(&py, "/refuse-once"), body, sizeof body, NULL), 200);
    CHECK(strcmp(body, "second time") == 0);
    CHECK_EQ(stats(c).requests, 2);
    CHECK_EQ(get_text(c, url(&py, "/reset"), body, sizeof body, NULL), -ECONNRESET);
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    CHECK_EQ(stats(c).dials, 1);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void refused_stream_retried_reset_stream_fails(void)
{
    run_h2(refused_main);
}

/* ---- cancellation ----------------------------------------------------------- */

static int cancel_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "100");
    tern_http_client *c = h2_client();
    char body[64];
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);

    /* mid-body: the head and "partial" came, the rest never does */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 200 * TERN_MS, &ctx), 0);
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url(&py, "/stall"), &r, ctx), 0);
    char buf[64];
    CHECK_EQ(tern_http_client_response_read(r, buf, sizeof buf), 7);
    CHECK(memcmp(buf, "partial", 7) == 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_http_client_response_read(r, buf, sizeof buf), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    tern_http_client_response_free(r);
    tern_ctx_free(ctx);

    /* waiting for the head */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 100 * TERN_MS, &ctx), 0);
    t0 = tern_now();
    CHECK_EQ(tern_http_client_get(c, url(&py, "/hello?ms=3000"), &r, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    tern_ctx_free(ctx);

    /* a cancel, not a deadline, while another stream runs alongside */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    CHECK_EQ(tern_http_client_get(c, url(&py, "/stall"), &r, ctx), 0);
    tern_ctx_cancel(ctx);
    ssize_t k;
    while ((k = tern_http_client_response_read(r, buf, sizeof buf)) > 0)
        ;
    CHECK_EQ(k, -ECANCELED);
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    tern_http_client_response_free(r);
    tern_ctx_free(ctx);

    /* a request body the peer never takes (its windows stay shut) */
    static char blob[1 << 20];
    tern_http_client_request req = {.method = "POST", .url = url(&py, "/sink-noack"),
                                    .body = blob, .body_len = sizeof blob};
    CHECK_EQ(tern_ctx_with_timeout(NULL, 200 * TERN_MS, &ctx), 0);
    t0 = tern_now();
    CHECK_EQ(tern_http_client_do(c, &req, &r, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    tern_ctx_free(ctx);

    /* the connection kept serving: one dial, one connection at the peer */
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    CHECK_EQ(stats(c).dials, 1);
    CHECK_EQ(peer_conns(c, &py), 1);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void ctx_cancels_stream_connection_survives(void)
{
    run_h2(cancel_main);
}

/* ---- flow control ----------------------------------------------------------- */

static int large_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "100");
    tern_http_client *c = h2_client();
    size_t n = 4 << 20;
    char *up = malloc(n);
    for (size_t i = 0; i < n; i++)
        up[i] = (char)(i * 31 % 256);
    tern_http_client_request req = {.method = "PUT", .url = url(&py, "/echo"), .body = up,
                                    .body_len = n};
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, n, &data, &len), 0);
    CHECK_EQ(len, n);
    CHECK(memcmp(data, up, n) == 0);
    tern_http_client_response_free(r);
    free(up);

    /* a reader that does not read holds the peer to one stream window */
    size_t big = 8 << 20;
    char u[64];
    snprintf(u, sizeof u, "/big/%zu", big);
    CHECK_EQ(tern_http_client_get(c, url(&py, u), &r, NULL), 0);
    tern_sleep(300 * TERN_MS);
    char body[32];
    CHECK_EQ(get_text(c, url(&py, "/sent"), body, sizeof body, NULL), 200);
    long sent = atol(body);
    CHECK(sent > 0 && sent <= 256 * 1024);
    size_t got = 0;
    char buf[16384];
    ssize_t k;
    while ((k = tern_http_client_response_read(r, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < k; i++)
            CHECK_EQ((unsigned char)buf[i], (got + (size_t)i) % 251);
        got += (size_t)k;
    }
    CHECK_EQ(k, 0);
    CHECK_EQ(got, big);
    tern_http_client_response_free(r);

    /* a response freed unread gives its window back: the next still flows */
    CHECK_EQ(tern_http_client_get(c, url(&py, u), &r, NULL), 0);
    tern_http_client_response_free(r);
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    CHECK_EQ(stats(c).dials, 1);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void large_bodies_both_ways_with_flow_control(void)
{
    run_h2(large_main);
}

static int trailers_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "100");
    tern_http_client *c = h2_client();
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url(&py, "/trailers"), &r, NULL), 0);
    CHECK(tern_http_client_response_trailer(r, "x-checksum") == NULL);   /* not yet */
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(r, 100, &data, &len), 0);
    CHECK(len == 4 && memcmp(data, "body", 4) == 0);
    CHECK(strcmp(tern_http_client_response_trailer(r, "X-Checksum"), "abc") == 0);
    CHECK(strcmp(tern_http_client_response_trailer(r, "x-count"), "2") == 0);
    CHECK(tern_http_client_response_trailer(r, "content-type") == NULL);
    CHECK(tern_http_client_response_header(r, "x-checksum") == NULL);
    tern_http_client_response_free(r);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void trailers_after_the_body(void)
{
    run_h2(trailers_main);
}

/* ---- broken peers ----------------------------------------------------------- */

static int broken_main(void *arg)
{
    (void)arg;
    peer py = py_peer("--max-streams", "100");
    tern_http_client *c = h2_client();
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url(&py, "/cut"), &r, NULL), 0);
    char buf[64];
    CHECK_EQ(tern_http_client_response_read(r, buf, sizeof buf), 7);
    CHECK_EQ(tern_http_client_response_read(r, buf, sizeof buf), -ECONNRESET);
    CHECK_EQ(tern_http_client_response_read(r, buf, sizeof buf), -ECONNRESET);   /* sticky */
    tern_http_client_response_free(r);

    char body[64];
    CHECK_EQ(get_text(c, url(&py, "/garbage"), body, sizeof body, NULL), -EPROTO);
    /* each broken connection is gone; a new one serves */
    CHECK_EQ(get_text(c, url(&py, "/hello"), body, sizeof body, NULL), 200);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 3);
    CHECK_EQ(st.h2_conns, 1);
    tern_http_client_free(c);
    peer_stop(&py);
    return 0;
}

static void peer_cutting_or_garbling_connection_fails_clearly(void)
{
    run_h2(broken_main);
}

TESTS(T(get_and_post_over_h2c), T(hundred_concurrent_requests_share_one_connection),
      T(second_connection_when_peer_stream_limit_reached), T(max_conns_per_host_makes_streams_wait),
      T(goaway_unprocessed_requests_retried_on_new_connection),
      T(refused_stream_retried_reset_stream_fails), T(ctx_cancels_stream_connection_survives),
      T(redirect_followed_on_the_same_connection), T(connection_idle_past_timeout_is_closed),
      T(large_bodies_both_ways_with_flow_control), T(trailers_after_the_body),
      T(peer_cutting_or_garbling_connection_fails_clearly))
