/*
 * test_http_server_refused.c - requests the server answers itself (issue
 * 15, item 8): each reaches tern_http_server_options.on_refused with its
 * status and what was parsed of it, before its answer, and nothing else
 * does.  The fixture is http_server_fixture.h.
 */
#include "check.h"

#include "http_server_fixture.h"

typedef struct seen {
    int status;
    char method[40], target[300], remote[64];
    int64_t start;
} seen;

static seen got[16];
static atomic_int ngot;

static void record(const tern_http_refusal *rf, void *arg)
{
    CHECK_STR((const char *)arg, "mine");
    int i = atomic_fetch_add(&ngot, 1);
    CHECK(i < 16);
    got[i].status = rf->status;
    snprintf(got[i].method, sizeof got[i].method, "%s", rf->method);
    snprintf(got[i].target, sizeof got[i].target, "%s", rf->target);
    snprintf(got[i].remote, sizeof got[i].remote, "%s", rf->remote_addr);
    got[i].start = rf->start;
}

/* Sends req on a new connection, expects `status` back and one refusal
 * reported with it, method and target. */
static void refused(tsrv *t, const char *req, int status, const char *method, const char *target)
{
    atomic_store(&ngot, 0);
    cl *k = cl_dial(t->addr);
    int64_t t0 = tern_now();
    cl_send_any(k, req, strlen(req));
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, status);
    resp_free(&r);
    CHECK_EQ(atomic_load(&ngot), 1);
    CHECK_EQ(got[0].status, status);
    CHECK_STR(got[0].method, method);
    CHECK_STR(got[0].target, target);
    CHECK(strncmp(got[0].remote, "127.0.0.1:", 10) == 0);
    CHECK(got[0].start >= t0 && got[0].start <= tern_now());
    cl_close(k);
}

SERVER_TEST(every_refusal_reaches_on_refused_with_what_was_parsed)
{
    (void)arg;
    tern_http_server_options o = {.on_refused = record, .on_refused_arg = "mine",
                                  .max_body_bytes = 1000, .max_request_line = 200,
                                  .max_header_bytes = 2048,
                                  .read_header_timeout = 200 * TERN_MS};
    tsrv *t = app_start(&o);
    refused(t, "NOT A REQUEST\r\n\r\n", 400, "NOT", "A");
    refused(t, "\x01\r\n\r\n", 400, "", "");
    refused(t, "GET /plaintext HTTP/2.0\r\nHost: t\r\n\r\n", 505, "GET", "/plaintext");
    refused(t, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
            "POST", "/echo");
    refused(t, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413, "POST",
            "/echo");
    refused(t, "GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400, "GET", "/a%zz");
    char line[512];
    snprintf(line, sizeof line, "GET /%0300d HTTP/1.1\r\nHost: t\r\n\r\n", 7);
    char cut[257] = "/";                        /* the target as reported: 256 bytes */
    memset(cut + 1, '0', 255);
    cut[256] = '\0';
    refused(t, line, 414, "GET", cut);
    char big[4096];
    snprintf(big, sizeof big, "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Big: %03000d\r\n\r\n", 1);
    refused(t, big, 431, "GET", "/plaintext");
    refused(t, "GET /plaintext HTTP/1.1\r\nHost:", 408, "", "");
    /* served requests are not refusals */
    atomic_store(&ngot, 0);
    cl *k = cl_dial(t->addr);
    resp r;
    get(k, "/plaintext", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    get(k, "/nowhere", &r);
    CHECK_EQ(r.status, 404);            /* the handler's answer, not the server's */
    resp_free(&r);
    CHECK_EQ(atomic_load(&ngot), 0);
    cl_close(k);
    srv_stop(t);
    return 0;
}

TESTS(T(every_refusal_reaches_on_refused_with_what_was_parsed))
