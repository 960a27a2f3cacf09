/*
 * test_gateway_stream.c - bodies stream through the gateway both ways: a
 * 64 MiB upload (chunked, and with a Content-Length) and a 64 MiB
 * download pass with the process's resident memory growing by a few
 * MiB, not by the body.  The upload is made with the HTTP client's
 * streamed request body (body_read), which the gateway itself uses to
 * forward it.
 */
#include <fcntl.h>
#include <unistd.h>

#include "check.h"
#include "gateway_fixture.h"

#define BIG ((long)64 << 20)
#define RSS_SLACK ((long)24 << 20)

static upstream A;

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    CHECK(f && fscanf(f, "%ld %ld", &pages, &res) == 2);
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

typedef struct gen_src {
    long left;
    long piece;
} gen_src;

/* Makes the body as it is sent, in odd-sized pieces. */
static ssize_t gen_read(void *buf, size_t n, void *arg)
{
    gen_src *g = arg;
    size_t k = n < (size_t)g->piece ? n : (size_t)g->piece;
    if ((long)k > g->left)
        k = (size_t)g->left;
    memset(buf, 'u', k);
    g->left -= (long)k;
    return (ssize_t)k;
}

static void upload(gwsrv *s, bool chunked)
{
    char url[128];
    snprintf(url, sizeof url, "%s/upload", s->base);
    gen_src g = {.left = BIG, .piece = 48 * 1024 + 7};
    tern_http_client_request req = {.method = "PUT", .url = url, .body_read = gen_read, .body_arg = &g,
                                    .body_read_len = chunked ? -1 : BIG};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(s->c, &req, &resp, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(resp), 200);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 64, &body, &len), 0);
    CHECK_EQ(atol(body), BIG);
    CHECK_EQ(atomic_load(&A.uploaded), BIG);
    tern_http_client_response_free(resp);
}

static int stream_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    char cfg[512];
    snprintf(cfg, sizeof cfg, "upstreams: {a: {endpoints: [\"%s\"]}}\nroutes: [{match: {prefix: /}, upstream: a}]\n",
             A.addr);
    gwsrv s;
    char err[256];
    CHECK_EQ(gw_start_text(&s, cfg, err, sizeof err), 0);
    /* warm up: connections, buffers, stacks */
    reply r;
    CHECK_EQ(gw_get(&s, "/download?n=4000", &r), 0);
    long before = rss_bytes();

    upload(&s, true);
    upload(&s, false);

    char url[128];
    snprintf(url, sizeof url, "%s/download?n=%ld", s.base, BIG);
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_get(s.c, url, &resp, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(resp), 200);
    char *buf = malloc(64 * 1024);
    long got = 0;
    ssize_t n;
    while ((n = tern_http_client_response_read(resp, buf, 64 * 1024)) > 0) {
        CHECK(buf[0] == 'd' && buf[n - 1] == 'd');
        got += n;
    }
    CHECK_EQ(n, 0);
    CHECK_EQ(got, BIG);
    free(buf);
    tern_http_client_response_free(resp);

    long after = rss_bytes();
    fprintf(stderr, "   rss before %ld KiB, after 3 x 64 MiB %ld KiB\n", before >> 10, after >> 10);
    if (!getenv("TERN_TEST_NO_RSS"))    /* sanitizers' shadow memory grows with traffic */
        CHECK(after - before < RSS_SLACK);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void sixty_four_mib_both_ways_in_bounded_memory(void) { run_ok(stream_main, NULL, 2); }

/* A reader that fails fails the request with its error; a reader that
 * gives fewer bytes than the length it announced fails it with -EPIPE. */
static ssize_t bad_read(void *buf, size_t n, void *arg)
{
    (void)buf;
    (void)n;
    return *(int *)arg;
}

static int errors_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char url[128];
    snprintf(url, sizeof url, "http://%s/upload", A.addr);
    int e = -EIO;
    tern_http_client_request req = {.method = "POST", .url = url, .body_read = bad_read, .body_arg = &e,
                                    .body_read_len = -1};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(c, &req, &resp, NULL), -EIO);
    e = 0;
    req.body_read_len = 10;
    CHECK_EQ(tern_http_client_do(c, &req, &resp, NULL), -EPIPE);
    /* body and body_read together: the caller's mistake */
    req.body = "x";
    req.body_len = 1;
    CHECK_EQ(tern_http_client_do(c, &req, &resp, NULL), -EINVAL);
    /* over h2c the same errors (test_http_client_h2_stream has the rest) */
    tern_http_client *h2;
    tern_http_client_options o = {.h2c_prior_knowledge = true};
    CHECK_EQ(tern_http_client_new(&o, &h2), 0);
    req.body = NULL;
    req.body_len = 0;
    CHECK_EQ(tern_http_client_do(h2, &req, &resp, NULL), -EPIPE);
    e = -EIO;
    CHECK_EQ(tern_http_client_do(h2, &req, &resp, NULL), -EIO);
    tern_http_client_free(h2);
    tern_http_client_free(c);
    upstream_stop(&A);
    return 0;
}

static void client_body_reader_errors(void) { run_ok(errors_main, NULL, 2); }

/* A body over the gateway server's limit, chunked (so only reading finds
 * out): 413 in the gateway's JSON shape, and the upstream gets nothing. */
static int limit_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    char cfg[512];
    snprintf(cfg, sizeof cfg, "upstreams: {a: {endpoints: [\"%s\"]}}\nroutes: [{match: {prefix: /}, upstream: a}]\n",
             A.addr);
    gwsrv s;
    char err[256];
    CHECK_EQ(gw_start_text(&s, cfg, err, sizeof err), 0);
    tern_http_server_options so = {.handler = tern_gateway_handler, .arg = s.gw, .max_body_bytes = 1000};
    tern_http_server *srv;
    CHECK_EQ(tern_http_server_new(&so, &srv), 0);
    CHECK_EQ(tern_http_server_listen(srv, "127.0.0.1:0"), 0);
    gwsrv small = s;
    small.srv = srv;
    snprintf(small.base, sizeof small.base, "http://%s", tern_http_server_addr(srv));
    CHECK_EQ(tern_go(gw_serve_co, &small), 0);
    char url[128];
    snprintf(url, sizeof url, "%s/upload", small.base);
    gen_src g = {.left = 3000, .piece = 3000};
    tern_http_client_request req = {.method = "PUT", .url = url, .body_read = gen_read, .body_arg = &g,
                                    .body_read_len = -1};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(s.c, &req, &resp, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(resp), 413);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 256, &body, &len), 0);
    CHECK(strstr(body, "\"status\":413"));
    tern_http_client_response_free(resp);
    CHECK_EQ(atomic_load(&A.hits), 0);
    tern_http_server_shutdown(srv, NULL);
    tern_sleep(5 * MS);
    tern_http_server_free(srv);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void body_over_the_limit_is_413_json(void) { run_ok(limit_main, NULL, 2); }

TESTS(T(sixty_four_mib_both_ways_in_bounded_memory), T(client_body_reader_errors), T(body_over_the_limit_is_413_json))
