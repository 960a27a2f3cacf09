/*
 * test_http_server_limits.c - what the server refuses and when it gives up:
 * malformed requests (400, 501, 505), the size limits (414, 431, 413 for
 * bodies by Content-Length or chunked), max_requests_per_conn, max_conns,
 * and the timeouts (slowloris, idle, a pipelined head's own).  The fixture
 * is http_server_fixture.h.
 */
#include "check.h"

#include "http_server_fixture.h"

/* A request the server refuses: status, Connection: close, then EOF. */
static void expect_refusal(const char *addr, const void *req, size_t len, int status)
{
    cl *k = cl_dial(addr);
    cl_send_any(k, req, len);
    resp r;
    int rc = cl_response(k, &r, false);
    if (rc != RS_OK || r.status != status) {
        fprintf(stderr, "for %.60s...: %s, status %d, expected %d\n", (const char *)req,
                rname(rc), r.status, status);
        abort();
    }
    CHECK_STR(hdr(&r, "Connection"), "close");
    char body[64];
    snprintf(body, sizeof body, "%d %s\n", status, tern_http_status_text(status));
    CHECK_MEM(r.body, r.body_len, body);
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
}

SERVER_TEST(long_request_line_is_414_and_big_or_many_fields_431)
{
    (void)arg;
    tern_http_server_options o = { .max_header_bytes = 8192, .max_headers = 20 };
    tsrv *t = app_start(&o);
    char *req = malloc(64 * 1024);
    CHECK(req);
    /* request line over 8 KiB: 414 */
    int n = sprintf(req, "GET /");
    memset(req + n, 'a', 9000);
    n += 9000;
    n += sprintf(req + n, " HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_refusal(t->addr, req, (size_t)n, 414);
    /* one field of 10 KB: 431 */
    n = sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'b', 10000);
    n += 10000;
    n += sprintf(req + n, "\r\n\r\n");
    expect_refusal(t->addr, req, (size_t)n, 431);
    /* 21 fields where 20 are allowed: 431; 20 are fine */
    for (int fields = 20; fields <= 21; fields++) {
        n = sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: t\r\n");
        for (int i = 1; i < fields; i++)
            n += sprintf(req + n, "X-F%d: %d\r\n", i, i);
        n += sprintf(req + n, "\r\n");
        if (fields == 20) {
            resp r;
            once(t->addr, req, &r);
            CHECK_EQ(r.status, 200);
            resp_free(&r);
        } else {
            expect_refusal(t->addr, req, (size_t)n, 431);
        }
    }
    free(req);
    CHECK_EQ(srv_stats(t).rejected, 3);
    srv_stop(t);
    return 0;
}

SERVER_TEST(malformed_requests_are_refused_with_400_501_or_505)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    static const char *bad[] = {
        /* both framings */
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        /* malformed or disagreeing Content-Length */
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        /* obs-fold */
        "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        /* Host missing, or twice, in HTTP/1.1 */
        "GET /plaintext HTTP/1.1\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        /* space before the colon, a bare CR, garbage */
        "GET /plaintext HTTP/1.1\r\nHost : t\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
        "\x01\x02\x03 nonsense\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refusal(t->addr, bad[i], strlen(bad[i]), 400);
    CHECK_EQ(srv_stats(t).rejected, sizeof bad / sizeof bad[0]);
    CHECK_EQ(srv_stats(t).requests, 0);
    /* other refusals the parser chooses */
    expect_refusal(t->addr, "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 27, 505);
    const char *te = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n";
    expect_refusal(t->addr, te, strlen(te), 501);
    srv_stop(t);
    return 0;
}

SERVER_TEST(max_requests_per_conn_closes_the_conn_after_the_last)
{
    (void)arg;
    tern_http_server_options o = { .max_requests_per_conn = 3 };
    tsrv *t = app_start(&o);
    cl *k = cl_dial(t->addr);
    resp r;
    for (int i = 1; i <= 3; i++) {
        get(k, "/plaintext", &r);
        CHECK_EQ(r.status, 200);
        if (i < 3)
            CHECK(hdr(&r, "Connection") == NULL);
        else
            CHECK_STR(hdr(&r, "Connection"), "close");
        resp_free(&r);
    }
    expect_eof(k);
    cl_close(k);
    k = cl_dial(t->addr);
    get(k, "/plaintext", &r);
    CHECK(hdr(&r, "Connection") == NULL);
    resp_free(&r);
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 2);
    srv_stop(t);
    return 0;
}

SERVER_TEST(max_conns_holds_new_conns_until_one_closes)
{
    (void)arg;
    tern_http_server_options o = { .max_conns = 2 };
    tsrv *t = app_start(&o);
    cl *a = cl_dial(t->addr), *b = cl_dial(t->addr);
    resp r;
    get(a, "/plaintext", &r);
    resp_free(&r);
    get(b, "/plaintext", &r);
    resp_free(&r);
    CHECK_EQ(srv_stats(t).conns, 2);
    /* the kernel completes the third handshake, but the server waits */
    cl *c = cl_dial(t->addr);
    cl_send(c, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(cl_quiet(c, 300 * TERN_MS));
    CHECK_EQ(srv_stats(t).accepted, 2);
    /* the others still work */
    get(b, "/plaintext", &r);
    resp_free(&r);
    /* one closes: the third is served */
    int64_t t0 = tern_now();
    cl_close(a);
    CHECK_R(cl_response(c, &r, false));
    CHECK(tern_now() - t0 < TERN_SEC);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    CHECK_EQ(srv_stats(t).accepted, 3);
    cl_close(b);
    cl_close(c);
    srv_stop(t);
    return 0;
}

/* Content-Length over max_body_bytes, head only: the 413 must come at once,
 * without the server waiting for (and reading) the body.  Found: the 413
 * sat in the output buffer while drain_body() read the refused body, until
 * read_body_timeout (60 s by default). */
SERVER_TEST(body_over_limit_refused_before_read)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    char req[256];
    snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             APP_MAX_BODY + 1);
    cl_send(k, req);
    k->timeout = TERN_SEC;          /* the server's body timeout is 3 s */
    int64_t t0 = tern_now();
    resp r;
    int rc = cl_response(k, &r, false);
    if (rc != RS_OK) {
        fprintf(stderr, "no 413 within %lld ms: %s (the server waits for the body it refuses)\n",
                (long long)((tern_now() - t0) / TERN_MS), rname(rc));
        abort();
    }
    CHECK_EQ(r.status, 413);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_stats(t).rejected, 1);
    srv_stop(t);
    return 0;
}

SERVER_TEST(chunked_body_over_max_body_is_refused_with_413)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *chunk = malloc(8192 + 16);
    CHECK(chunk);
    int hl = snprintf(chunk, 16, "2000\r\n");
    memset(chunk + hl, 'x', 8192);
    memcpy(chunk + hl + 8192, "\r\n", 2);
    /* 9 x 8 KiB > 64 KiB; the server may stop reading (and close) early */
    for (int i = 0; i < 9; i++)
        cl_send_any(k, chunk, (size_t)hl + 8192 + 2);
    cl_send_any(k, "0\r\n\r\n", 5);
    free(chunk);
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 413);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    /* exactly at the limit is fine */
    k = cl_dial(t->addr);
    cl_send(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *body = malloc(APP_MAX_BODY);
    memset(body, 'y', APP_MAX_BODY);
    char sz[32];
    snprintf(sz, sizeof sz, "%x\r\n", APP_MAX_BODY);
    cl_send(k, sz);
    cl_sendn(k, body, APP_MAX_BODY);
    cl_send(k, "\r\n0\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.body_len, APP_MAX_BODY);
    CHECK(memcmp(r.body, body, APP_MAX_BODY) == 0);
    resp_free(&r);
    free(body);
    cl_close(k);
    srv_stop(t);
    return 0;
}

typedef struct slow_writer {
    cl *k;
    atomic_bool stop;
    tern_chan *done;
    int sent;
} slow_writer;

static int slow_write(void *arg)
{
    slow_writer *s = arg;
    static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: "
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (size_t i = 0; i < sizeof req - 1 && !atomic_load(&s->stop); i++) {
        if (tern_conn_write(s->k->c, req + i, 1, NULL) != 1)
            break;
        s->sent++;
        tern_sleep(50 * TERN_MS);
    }
    int one = 1;
    tern_chan_send(s->done, &one, NULL);
    return 0;
}

SERVER_TEST(slow_silent_and_idle_clients_are_cut_off_at_their_timeouts)
{
    (void)arg;
    tern_http_server_options o = { .read_header_timeout = 200 * TERN_MS,
                                   .idle_timeout = 200 * TERN_MS };
    tsrv *t = app_start(&o);
    /* one byte every 50 ms: cut off at the header timeout, with a 408 */
    slow_writer *s = calloc(1, sizeof *s);
    s->k = cl_dial(t->addr);
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &s->done), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_go(slow_write, s), 0);
    resp r;
    int rc = cl_response(s->k, &r, false);
    int64_t took = tern_now() - t0;
    CHECK_R(rc);
    CHECK_EQ(r.status, 408);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(s->k);
    took = tern_now() - t0;
    fprintf(stderr, "   slowloris cut off after %lld ms\n", (long long)(took / TERN_MS));
    CHECK(took >= 150 * TERN_MS);
    CHECK(took < 700 * TERN_MS);
    atomic_store(&s->stop, true);
    int one;
    tern_chan_recv(s->done, &one, NULL, NULL);
    CHECK(s->sent < 20);
    cl_close(s->k);
    tern_chan_free(s->done);
    free(s);

    /* a connection that never sends: closed at the header timeout, silently */
    cl *k = cl_dial(t->addr);
    t0 = tern_now();
    expect_eof(k);
    took = tern_now() - t0;
    CHECK(took >= 150 * TERN_MS && took < 700 * TERN_MS);
    cl_close(k);

    /* idle between requests: closed at the idle timeout */
    k = cl_dial(t->addr);
    get(k, "/plaintext", &r);
    resp_free(&r);
    t0 = tern_now();
    expect_eof(k);
    took = tern_now() - t0;
    fprintf(stderr, "   idle connection closed after %lld ms\n", (long long)(took / TERN_MS));
    CHECK(took >= 150 * TERN_MS && took < 700 * TERN_MS);
    cl_close(k);

    /* a client that keeps requesting is not idle */
    k = cl_dial(t->addr);
    for (int i = 0; i < 6; i++) {
        get(k, "/plaintext", &r);
        resp_free(&r);
        tern_sleep(100 * TERN_MS);
    }
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 4);
    srv_stop(t);
    return 0;
}

/* A pipelined head that is only partly there when the slow handler before
 * it finishes gets a full read_header_timeout of its own. */
SERVER_TEST(pipelined_head_gets_its_own_timeout)
{
    (void)arg;
    tsrv *t = review_start(200 * TERN_MS);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /sleep300 HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHo");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    tern_sleep(50 * TERN_MS);           /* well within a fresh 200 ms */
    cl_send(k, "st: a\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);            /* not 408 */
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* A client still sending a refused body must see the 413, not a reset:
 * the server lingers (reads and drops, bounded) before closing.  Found:
 * it closed with the body unread, the kernel answered the client's next
 * bytes with RST, and the client's writes failed before it could read. */
SERVER_TEST(refused_body_gets_a_lingering_close)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    for (int round = 0; round < 3; round++) {
        cl *k = cl_dial(t->addr);
        cl_send(k, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n");
        /* the 413 is on its way; let the server close (or linger) first */
        tern_sleep(20 * TERN_MS);
        static char chunk[16 * 1024];
        memset(chunk, 'x', sizeof chunk);
        for (int i = 0; i < 12; i++) {     /* 192 KiB, within the linger's bound */
            ssize_t w = tern_conn_write(k->c, chunk, sizeof chunk, NULL);
            if (w != (ssize_t)sizeof chunk) {
                fprintf(stderr, "write %d of the refused body: %s (a reset, no lingering close)\n",
                        i, w < 0 ? tern_strerror((int)w) : "short");
                abort();
            }
            tern_sleep(TERN_MS);
        }
        resp r;
        CHECK_R(cl_response(k, &r, false));
        CHECK_EQ(r.status, 413);
        resp_free(&r);
        cl_close(k);
    }
    srv_stop(t);
    return 0;
}

TESTS(T(long_request_line_is_414_and_big_or_many_fields_431), T(refused_body_gets_a_lingering_close),
      T(malformed_requests_are_refused_with_400_501_or_505),
      T(max_requests_per_conn_closes_the_conn_after_the_last),
      T(max_conns_holds_new_conns_until_one_closes), T(body_over_limit_refused_before_read),
      T(chunked_body_over_max_body_is_refused_with_413),
      T(slow_silent_and_idle_clients_are_cut_off_at_their_timeouts),
      T(pipelined_head_gets_its_own_timeout))
