/* test_http_response.c - the HTTP/1.1 response-head parser: syntax and framing (RFC 9112 4, 6.3). */
#include "check.h"

static tern_http_header hdrs[16];

static int parse_lim(const char *s, tern_http_response *r, const tern_http_limits *lim)
{
    memset(r, 0, sizeof *r);
    r->headers = hdrs;
    r->max_headers = 16;
    return tern_http_parse_response(s, strlen(s), r, lim);
}

static int parse(const char *s, tern_http_response *r)
{
    return parse_lim(s, r, NULL);
}

#define CHECK_STR(p, n, lit) CHECK((n) == strlen(lit) && memcmp((p), (lit), (n)) == 0)

static void expect_bad(const char *s)
{
    tern_http_response r;
    int n = parse(s, &r);
    if (n != TERN_HTTP_BAD) {
        fprintf(stderr, "for %s: got %d, expected TERN_HTTP_BAD\n", s, n);
        abort();
    }
}

static void parses_a_simple_response(void)
{
    tern_http_response r;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Type:  text/plain \r\nContent-Length: 5\r\n\r\nhello";
    int n = parse(s, &r);
    CHECK_EQ(n, (int)(strstr(s, "hello") - s));
    CHECK_EQ(r.minor_version, 1);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.reason, r.reason_len, "OK");
    CHECK_EQ(r.nheaders, 2);
    CHECK_STR(r.headers[0].name, r.headers[0].name_len, "Content-Type");
    CHECK_STR(r.headers[0].value, r.headers[0].value_len, "text/plain");
    CHECK_EQ(r.content_length, 5);
    CHECK(!r.chunked);
    CHECK(r.keep_alive);
    CHECK(!r.body_until_close);
}

static void status_line_keeps_any_reason_and_allows_none(void)
{
    tern_http_response r;
    CHECK(parse("HTTP/1.1 404 Not  Found \t\r\nContent-Length: 0\r\n\r\n", &r) > 0);
    CHECK_EQ(r.status, 404);
    CHECK_STR(r.reason, r.reason_len, "Not  Found \t");
    CHECK(parse("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", &r) > 0);
    CHECK_EQ(r.reason_len, 0);
    CHECK(parse("HTTP/1.1 599\r\nContent-Length: 0\r\n\r\n", &r) > 0);    /* no SP, no reason */
    CHECK_EQ(r.status, 599);
    CHECK_EQ(r.reason_len, 0);
    CHECK(parse("HTTP/1.0 200 OK\nContent-Length: 0\n\n", &r) > 0);       /* bare LF */
    CHECK_EQ(r.minor_version, 0);
    CHECK(parse("HTTP/1.1 200 caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n", &r) > 0);
    CHECK(parse("HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n", &r) > 0);
    CHECK_EQ(r.minor_version, 1);
    expect_bad("HTTP/1.1 20 OK\r\n\r\n");
    expect_bad("HTTP/1.1 2000 OK\r\n\r\n");
    expect_bad("HTTP/1.1 2x0 OK\r\n\r\n");
    expect_bad("HTTP/1.1 -20 OK\r\n\r\n");
    expect_bad("HTTP/1.1 099 OK\r\n\r\n");
    expect_bad("HTTP/1.1 600 OK\r\n\r\n");
    expect_bad("HTTP/1.1  200 OK\r\n\r\n");
    expect_bad("HTTP/1.1 200OK\r\n\r\n");
    expect_bad("HTTP/1.1\t200 OK\r\n\r\n");
    expect_bad("HTTP/2.0 200 OK\r\n\r\n");
    expect_bad("HTTP/1.x 200 OK\r\n\r\n");
    expect_bad("http/1.1 200 OK\r\n\r\n");
    expect_bad("HTTP/1.1 200 O\x01K\r\n\r\n");
    expect_bad("HTTP/1.1 200 O\rK\r\n\r\n");      /* bare CR */
    expect_bad("HTTP/1.1 200 OK\r\r\n\r\n");
    expect_bad("\r\nHTTP/1.1 200 OK\r\n\r\n");    /* no leading empty lines in responses */
    expect_bad("ICY 200 OK\r\n\r\n");
}

static void every_prefix_is_incomplete(void)
{
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\n";
    tern_http_response r;
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        memset(&r, 0, sizeof r);
        r.headers = hdrs;
        r.max_headers = 16;
        CHECK_EQ(tern_http_parse_response(s, i, &r, NULL), TERN_HTTP_INCOMPLETE);
    }
    CHECK_EQ(parse(s, &r), (int)len);
}

static void malformed_fields_are_refused(void)
{
    expect_bad("HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n");   /* obs-fold */
    expect_bad("HTTP/1.1 200 OK\r\nX : a\r\nContent-Length: 0\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nX: a\x01\r\nContent-Length: 0\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nX: a\x7f\r\nContent-Length: 0\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nX\x01: a\r\nContent-Length: 0\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\n: a\r\nContent-Length: 0\r\n\r\n");
}

static void framing_is_refused_when_ambiguous(void)
{
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n");
    expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n");
    expect_bad("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    /* even where no body follows, contradicting framing is a broken server */
    expect_bad("HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
}

static void framing_per_rfc9112_6_3(void)
{
    tern_http_response r;
    CHECK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", &r) > 0);
    CHECK(r.chunked);
    CHECK_EQ(r.content_length, -1);
    CHECK(r.keep_alive);
    CHECK(!r.body_until_close);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", &r) > 0);
    CHECK_EQ(r.content_length, 7);
    CHECK(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &r) > 0);
    CHECK_EQ(r.content_length, 0);
    CHECK(!r.body_until_close);
    /* no length, not chunked: read to EOF, and the connection ends there */
    CHECK(parse("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", &r) > 0);
    CHECK(r.body_until_close);
    CHECK_EQ(r.content_length, -1);
    CHECK(!r.chunked);
    CHECK(!r.keep_alive);
    /* 1xx, 204 and 304 never have a body, whatever they say */
    const char *nobody[] = {
        "HTTP/1.1 100 Continue\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof nobody / sizeof nobody[0]; i++) {
        CHECK_EQ(parse(nobody[i], &r), (int)strlen(nobody[i]));
        CHECK_EQ(r.content_length, 0);
        CHECK(!r.chunked);
        CHECK(!r.body_until_close);
        CHECK(r.keep_alive);
    }
    /* 205 and others are not on that list */
    CHECK(parse("HTTP/1.1 205 Reset Content\r\n\r\n", &r) > 0);
    CHECK(r.body_until_close);
}

static void keep_alive_follows_the_version_and_connection_tokens(void)
{
    tern_http_response r;
    const char *cl = "Content-Length: 0\r\n";
    char buf[256];
#define KA(version, conn, want)                                                     \
    do {                                                                            \
        snprintf(buf, sizeof buf, "HTTP/1.%d 200 OK\r\n%s%s\r\n", version, cl, conn); \
        CHECK(parse(buf, &r) > 0);                                                  \
        if (r.keep_alive != (want)) {                                               \
            fprintf(stderr, "keep_alive %d for %s\n", r.keep_alive, buf);           \
            abort();                                                                \
        }                                                                           \
    } while (0)
    KA(1, "", true);
    KA(1, "Connection: close\r\n", false);
    KA(1, "Connection: CLOSE\r\n", false);
    KA(1, "Connection: upgrade, Close\r\n", false);
    KA(1, "Connection: keep-alive\r\nConnection: close\r\n", false);
    KA(1, "Connection: closed\r\n", true);
    KA(1, "Connection: x-close\r\n", true);
    KA(0, "", false);
    KA(0, "Connection: keep-alive\r\n", true);
    KA(0, "Connection: Keep-Alive\r\n", true);
    KA(0, "Connection: foo ,keep-alive\r\n", true);
    KA(0, "Connection: keep-alive, close\r\n", false);
    KA(0, "Connection: keep-alives\r\n", false);
    KA(0, "Keep-Alive: timeout=5\r\n", false);
#undef KA
}

static void limits_are_enforced(void)
{
    tern_http_limits lim = {.max_request_line = 64, .max_head = 256};
    tern_http_response r;
    char buf[1024];
    snprintf(buf, sizeof buf, "HTTP/1.1 200 %0100d\r\nContent-Length: 0\r\n\r\n", 0);
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    snprintf(buf, sizeof buf, "HTTP/1.1 200 %0100d", 0);         /* not even complete */
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nX: %0300d\r\n\r\n", 0);
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nX: %0300d", 0);
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nX: %0200d\r\nContent-Length: 0\r\n\r\n", 0);
    CHECK(parse_lim(buf, &r, &lim) > 0);                          /* just under */
    char *p = buf;
    p += sprintf(p, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 17; i++)
        p += sprintf(p, "X%d: v\r\n", i);
    sprintf(p, "\r\n");
    CHECK_EQ(parse(buf, &r), TERN_HTTP_BAD);                     /* 17 fields, room for 16 */
}

static void pipelined_responses_parse_one_at_a_time(void)
{
    const char *s = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    "HTTP/1.1 204 No Content\r\n\r\n";
    tern_http_response r;
    int n1 = parse(s, &r);
    CHECK_EQ(n1, 25);
    CHECK_EQ(r.status, 100);
    int n2 = parse(s + n1, &r);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.content_length, 2);
    int n3 = parse(s + n1 + n2 + 2, &r);
    CHECK_EQ(r.status, 204);
    CHECK_EQ(n1 + n2 + 2 + n3, (int)strlen(s));
}

TESTS(T(parses_a_simple_response), T(status_line_keeps_any_reason_and_allows_none),
      T(every_prefix_is_incomplete), T(malformed_fields_are_refused),
      T(framing_is_refused_when_ambiguous), T(framing_per_rfc9112_6_3),
      T(keep_alive_follows_the_version_and_connection_tokens), T(limits_are_enforced),
      T(pipelined_responses_parse_one_at_a_time))
