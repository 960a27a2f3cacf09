/* test_http_parse.c - the HTTP/1.1 request-head parser against RFC 9112. */
#include "check.h"

static tern_http_header hdrs[16];

static int parse_lim(const char *s, tern_http_request *r, const tern_http_limits *lim)
{
    memset(r, 0, sizeof *r);
    r->headers = hdrs;
    r->max_headers = 16;
    return tern_http_parse_request(s, strlen(s), r, lim);
}

static int parse(const char *s, tern_http_request *r)
{
    return parse_lim(s, r, NULL);
}

#define CHECK_STR(p, n, lit) CHECK((n) == strlen(lit) && memcmp((p), (lit), (n)) == 0)

static void parses_a_simple_get(void)
{
    tern_http_request r;
    const char *s = "GET /users/42?x=1 HTTP/1.1\r\nHost: example.com\r\n"
                    "Accept:  text/plain \t\r\nX-Empty:\r\n\r\nBODY";
    int n = parse(s, &r);
    CHECK_EQ(n, (int)(strstr(s, "BODY") - s));
    CHECK_STR(r.method, r.method_len, "GET");
    CHECK_STR(r.target, r.target_len, "/users/42?x=1");
    CHECK_EQ(r.minor_version, 1);
    CHECK_EQ(r.nheaders, 3);
    CHECK_STR(r.headers[0].name, r.headers[0].name_len, "Host");
    CHECK_STR(r.headers[1].value, r.headers[1].value_len, "text/plain");  /* OWS trimmed */
    CHECK_EQ(r.headers[2].value_len, 0);
    CHECK_EQ(r.content_length, -1);
    CHECK(!r.chunked);
    CHECK(r.keep_alive);
    CHECK(!r.expect_continue);
}

static void every_prefix_is_incomplete(void)
{
    const char *s = "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    tern_http_request r;
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        memset(&r, 0, sizeof r);
        r.headers = hdrs;
        r.max_headers = 16;
        CHECK_EQ(tern_http_parse_request(s, i, &r, NULL), TERN_HTTP_INCOMPLETE);
    }
    CHECK_EQ(parse(s, &r), (int)len);
    CHECK_EQ(r.content_length, 5);
}

static void pipelined_requests_parse_one_at_a_time(void)
{
    const char *s = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    tern_http_request r;
    int n1 = parse(s, &r);
    CHECK(n1 > 0);
    CHECK_STR(r.target, r.target_len, "/a");
    int n2 = parse(s + n1, &r);
    CHECK_EQ(n1 + n2, (int)strlen(s));
    CHECK_STR(r.target, r.target_len, "/b");
}

static void expect_bad(const char *s, int status)
{
    tern_http_request r;
    int n = parse(s, &r);
    if (n != TERN_HTTP_BAD || r.status != status) {
        fprintf(stderr, "for %s: got %d status %d, expected status %d\n", s, n, r.status, status);
        abort();
    }
}

static void smuggling_shapes_are_refused(void)
{
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_bad("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400);            /* obs-fold */
    expect_bad("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);        /* space before colon */
    expect_bad("GET / HTTP/1.1\r\nHo\x01st: h\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400);      /* bare CR */
    expect_bad("GET / HTTP/1.1\rHost: h\r\n\r\n", 400);
    expect_bad("GET /a\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET /a\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400);  /* target is ASCII */
    expect_bad("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);
    expect_bad("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET / HTTQ/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
    expect_bad("GET / HTTP/1.1\r\n\r\n", 400);                    /* no Host */
    expect_bad("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", 400);  /* empty name */
    expect_bad("GET / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 417);
}

static void lenient_where_it_is_safe(void)
{
    tern_http_request r;
    /* bare LF line ends, leading empty lines, HTTP/1.0 without Host,
     * obs-text in a value, identical repeated Content-Length */
    CHECK(parse("\r\n\nGET / HTTP/1.1\nHost: h\n\n", &r) > 0);
    CHECK(parse("GET / HTTP/1.0\r\n\r\n", &r) > 0);
    CHECK(!r.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n", &r) > 0);
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n", &r) > 0);
    CHECK_EQ(r.content_length, 7);
    CHECK(parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK_EQ(r.minor_version, 1);
}

/* Values are scanned a word at a time: a bad byte at every offset of a
 * long value is still refused, and what a word may hold (tabs, obs-text,
 * inner and trailing whitespace) still parses as before. */
static void long_values_are_checked_at_every_offset(void)
{
    char head[256], value[64];
    tern_http_request r;
    const char bad_bytes[] = {'\x01', '\x7f', '\x1f', '\0', '\r'};
    for (size_t at = 0; at < 48; at++)
        for (size_t b = 0; b < sizeof bad_bytes; b++) {
            memset(value, 'v', 48);
            value[48] = '\0';
            int n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: h\r\nX-Long: %s\r\n\r\n", value);
            char *v = strstr(head, "X-Long: ") + 8;
            v[at] = bad_bytes[b];
            memset(&r, 0, sizeof r);
            r.headers = hdrs;
            r.max_headers = 16;
            int got = tern_http_parse_request(head, (size_t)n, &r, NULL);
            if (got != TERN_HTTP_BAD || r.status != 400) {
                fprintf(stderr, "byte 0x%02x at %zu: got %d status %d\n", bad_bytes[b], at, got, r.status);
                abort();
            }
        }
    const char *s = "GET / HTTP/1.1\r\nHost: h\r\n"
                    "X-Tabs: a\tb\xc3\xa9\xff 0123456789abcdef 0123456789abcdef \t \t  \t   \r\n"
                    "X-Ows: \t 0123456789abcdef0123456789abcdef\t\t        \t\r\n\r\n";
    CHECK_EQ(parse(s, &r), (int)strlen(s));
    CHECK_STR(r.headers[1].value, r.headers[1].value_len, "a\tb\xc3\xa9\xff 0123456789abcdef 0123456789abcdef");
    CHECK_STR(r.headers[2].value, r.headers[2].value_len, "0123456789abcdef0123456789abcdef");
    /* cut anywhere inside a long value: incomplete, never a value */
    for (size_t i = strlen(s) - 60; i < strlen(s); i++) {
        memset(&r, 0, sizeof r);
        r.headers = hdrs;
        r.max_headers = 16;
        CHECK_EQ(tern_http_parse_request(s, i, &r, NULL), TERN_HTTP_INCOMPLETE);
    }
}

static void framing_fields_set_chunked_keep_alive_and_expect(void)
{
    tern_http_request r;
    CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", &r) > 0);
    CHECK(r.chunked);
    CHECK_EQ(r.content_length, -1);
    CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", &r) > 0);
    CHECK(!r.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r) > 0);
    CHECK(r.keep_alive);
    CHECK(parse("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", &r) > 0);
    CHECK(r.expect_continue);
}

static void limits_give_414_and_431(void)
{
    tern_http_limits lim = {.max_request_line = 64, .max_head = 256};
    tern_http_request r;
    char buf[1024];
    /* a request line over the limit, complete or not yet */
    snprintf(buf, sizeof buf, "GET /%0100d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    CHECK_EQ(r.status, 414);
    snprintf(buf, sizeof buf, "GET /%0100d", 0);
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    CHECK_EQ(r.status, 414);
    /* a head over the limit, complete or not yet */
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nX: %0300d\r\n\r\n", 0);
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    CHECK_EQ(r.status, 431);
    snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: h\r\nX: %0300d", 0);
    CHECK_EQ(parse_lim(buf, &r, &lim), TERN_HTTP_BAD);
    CHECK_EQ(r.status, 431);
    /* more fields than the caller's array */
    char *p = buf;
    p += sprintf(p, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 20; i++)
        p += sprintf(p, "X%d: v\r\n", i);
    sprintf(p, "\r\n");
    CHECK_EQ(parse(buf, &r), TERN_HTTP_BAD);
    CHECK_EQ(r.status, 431);
}

/* Host must be uri-host[:port] (RFC 9110 7.2), as Go and nginx check. */
static void host_values_are_checked(void)
{
    expect_bad("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.1\r\nHost: h\"\r\n\r\n", 400);
    expect_bad("GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400);
    tern_http_request r;
    const char *good[] = {"h", "h:80", "a.b-c_d~e", "127.0.0.1:8080", "[::1]", "[::1]:80",
                          "xn--caf-dma.example", "h:", ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        CHECK(parse(req, &r) > 0);
    }
}

/* RFC 9112 3.2: origin-form, asterisk-form for OPTIONS only, and
 * absolute-form served as its path when its authority is the Host's. */
static void target_forms(void)
{
    tern_http_request r;
    CHECK(parse("GET http://h:8/p/q?x=1 HTTP/1.1\r\nHost: h:8\r\n\r\n", &r) > 0);
    CHECK_STR(r.target, r.target_len, "/p/q?x=1");
    CHECK(parse("GET HTTPS://H/p HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK_STR(r.target, r.target_len, "/p");
    /* the target names another host than Host: one request, two hosts */
    expect_bad("GET http://other/p HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET http://h/p HTTP/1.0\r\n\r\n", 400);
    expect_bad("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET http://h?q/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET ftp://h/p HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 400);
    expect_bad("GET p HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    expect_bad("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK_STR(r.target, r.target_len, "*");
}

TESTS(T(parses_a_simple_get), T(long_values_are_checked_at_every_offset), T(host_values_are_checked), T(target_forms), T(every_prefix_is_incomplete),
      T(pipelined_requests_parse_one_at_a_time), T(smuggling_shapes_are_refused),
      T(lenient_where_it_is_safe), T(framing_fields_set_chunked_keep_alive_and_expect),
      T(limits_give_414_and_431))
