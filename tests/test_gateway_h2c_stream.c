/*
 * test_gateway_h2c_stream.c - request bodies stream to h2c upstreams too:
 * 64 MiB uploads (chunked, and with a Content-Length) through the gateway
 * to an upstream it speaks HTTP/2 to, with the process's resident memory
 * growing by a few MiB, not by the body.
 */
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
} gen_src;

static ssize_t gen_read(void *buf, size_t n, void *arg)
{
    gen_src *g = arg;
    size_t k = n < 40000 ? n : 40000;
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
    gen_src g = {.left = BIG};
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

static int body_main(void *arg)
{
    (void)arg;
    upstream_start(&A, "A");
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "upstreams: {a: {endpoints: [\"%s\"], protocol: h2c}}\nroutes: [{match: {prefix: /}, upstream: a}]\n",
             A.addr);
    gwsrv s;
    char err[256];
    CHECK_EQ(gw_start_text(&s, cfg, err, sizeof err), 0);
    reply r;
    CHECK_EQ(gw_get(&s, "/warm", &r), 0);
    CHECK_HAS(r.body, "A GET /warm");
    long before = rss_bytes();
    upload(&s, true);
    upload(&s, false);
    long after = rss_bytes();
    fprintf(stderr, "   rss before %ld KiB, after 2 x 64 MiB up over h2c %ld KiB\n", before >> 10, after >> 10);
    if (!getenv("TERN_TEST_NO_RSS"))    /* sanitizers' shadow memory grows with traffic */
        CHECK(after - before < RSS_SLACK);
    gw_stop(&s);
    upstream_stop(&A);
    return 0;
}

static void uploads_stream_to_h2c_upstreams(void) { run_ok(body_main, NULL, 2); }

TESTS(T(uploads_stream_to_h2c_upstreams))
