/*
 * test_http_client_h2_stream.c - request bodies streamed over h2c
 * (tern_http_client_request.body_read with h2c_prior_knowledge) to a real
 * tern server, which counts and checks what arrives: 64 MiB of a known
 * pattern with a length and without one, an empty body, a reader that
 * fails halfway (the request fails with its error), and a reader whose
 * length disagrees with body_read_len (-EPIPE).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include <tern/http.h>
#include <tern/http_client.h>
#include <tern/runtime.h>

#define MS ((int64_t)1000000)
#define MIB (1024 * 1024)

static unsigned char pattern(int64_t i) { return (unsigned char)(i * 7 + (i >> 12)); }

/* Answers "<proto> <bytes> <ok>": the body read whole, checked against the pattern. */
static int count(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    char *buf = malloc(64 * 1024);
    int64_t total = 0;
    bool ok = true;
    ssize_t n;
    while ((n = tern_http_req_read(r, buf, 64 * 1024)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            ok = ok && (unsigned char)buf[i] == pattern(total + i);
        total += n;
    }
    free(buf);
    if (n < 0)
        return (int)n;
    return tern_http_resp_printf(w, "%s %lld %s", tern_http_req_proto(r), (long long)total, ok ? "ok" : "bad") < 0
               ? -EIO : 0;
}

typedef struct src {
    int64_t off, len;           /* bytes given, bytes to give */
    int64_t fail_at;            /* > 0: -EIO once off reaches it */
    int64_t most;               /* max per call */
} src;

static ssize_t reader(void *buf, size_t n, void *arg)
{
    src *s = arg;
    if (s->fail_at > 0 && s->off >= s->fail_at)
        return -EIO;
    int64_t k = s->len - s->off;
    if (k > (int64_t)n)
        k = (int64_t)n;
    if (s->most && k > s->most)
        k = s->most;
    for (int64_t i = 0; i < k; i++)
        ((unsigned char *)buf)[i] = pattern(s->off + i);
    s->off += k;
    if (k && s->off % (4 * MIB) < k)
        tern_yield();
    return (ssize_t)k;
}

static tern_http_server *srv;
static char url[96];

static int serve_co(void *arg)
{
    (void)arg;
    tern_http_server_serve(srv, NULL);
    return 0;
}

static int send_one(tern_http_client *c, src *s, int64_t declared, char *out, size_t cap)
{
    tern_http_client_request req = {.method = "POST", .url = url, .body_read = reader, .body_arg = s,
                                    .body_read_len = declared};
    tern_http_client_response *resp;
    int rc = tern_http_client_do(c, &req, &resp, NULL);
    if (rc < 0)
        return rc;
    const char *body;
    size_t len;
    rc = tern_http_client_response_body(resp, cap - 1, &body, &len);
    if (rc == 0) {
        memcpy(out, body, len);
        out[len] = '\0';
    }
    CHECK_EQ(tern_http_client_response_status(resp), 200);
    tern_http_client_response_free(resp);
    return rc;
}

static int body(void *arg)
{
    (void)arg;
    tern_http_server_options o = {.handler = count, .max_body_bytes = -1};
    CHECK_EQ(tern_http_server_new(&o, &srv), 0);
    CHECK_EQ(tern_http_server_listen(srv, "127.0.0.1:0"), 0);
    snprintf(url, sizeof url, "http://%s/count", tern_http_server_addr(srv));
    CHECK_EQ(tern_go(serve_co, NULL), 0);
    tern_http_client_options co = {.h2c_prior_knowledge = true};
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&co, &c), 0);
    char out[128];
    /* 64 MiB with its length, in uneven pieces */
    src s = {.len = 64 * MIB, .most = 50000};
    CHECK_EQ(send_one(c, &s, s.len, out, sizeof out), 0);
    CHECK(strcmp(out, "HTTP/2 67108864 ok") == 0);
    /* 64 MiB without a length: the stream's end ends it */
    s = (src){.len = 64 * MIB};
    CHECK_EQ(send_one(c, &s, -1, out, sizeof out), 0);
    CHECK(strcmp(out, "HTTP/2 67108864 ok") == 0);
    /* nothing at all */
    s = (src){.len = 0};
    CHECK_EQ(send_one(c, &s, -1, out, sizeof out), 0);
    CHECK(strcmp(out, "HTTP/2 0 ok") == 0);
    /* the reader fails: so does the request, with its error */
    s = (src){.len = 8 * MIB, .fail_at = 3 * MIB};
    CHECK_EQ(send_one(c, &s, -1, out, sizeof out), -EIO);
    /* a reader that ends before its declared length, or runs over */
    s = (src){.len = MIB};
    CHECK_EQ(send_one(c, &s, 2 * MIB, out, sizeof out), -EPIPE);
    s = (src){.len = 2 * MIB};
    CHECK_EQ(send_one(c, &s, MIB, out, sizeof out), -EPIPE);
    /* and the connection still serves */
    s = (src){.len = 1000};
    CHECK_EQ(send_one(c, &s, 1000, out, sizeof out), 0);
    CHECK(strcmp(out, "HTTP/2 1000 ok") == 0);
    tern_http_client_free(c);
    tern_http_server_shutdown(srv, NULL);
    tern_sleep(5 * MS);
    tern_http_server_free(srv);
    return 0;
}

static void h2c_streams_request_bodies(void) { run_ok(body, NULL, 2); }

TESTS(T(h2c_streams_request_bodies))
