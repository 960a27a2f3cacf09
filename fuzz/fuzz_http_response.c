/*
 * fuzz_http_response.c - libFuzzer target for tern_http_parse_response.
 *
 * Beyond "no crash, no sanitizer report", it checks what the client will
 * rely on: a parsed head lies within the input and every string points
 * into it; the framing is one of the three RFC 9112 6.3 allows and never
 * both a length and chunked; a shorter prefix is incomplete; and more
 * bytes after the head (the body, the next response) change nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tern/http_parse.h>

static void check(int cond)
{
    if (!cond)
        abort();
}

static int run(const char *buf, size_t len, tern_http_response *r, tern_http_header *h)
{
    memset(r, 0, sizeof *r);
    r->headers = h;
    r->max_headers = 32;
    tern_http_limits lim = {.max_request_line = 512, .max_head = 4096};
    return tern_http_parse_response(buf, len, r, &lim);
}

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tern_http_header h1[32], h2[32];
    tern_http_response r1, r2;
    const char *buf = (const char *)data;
    int n = run(buf, size, &r1, h1);
    check(n == TERN_HTTP_INCOMPLETE || n == TERN_HTTP_BAD || (n > 0 && (size_t)n <= size));
    if (n <= 0)
        return 0;
    check(r1.status >= 100 && r1.status <= 599);
    check(r1.minor_version == 0 || r1.minor_version == 1);
    check(inside(r1.reason, r1.reason_len, buf, (size_t)n));
    check(r1.nheaders <= 32);
    for (size_t i = 0; i < r1.nheaders; i++) {
        check(inside(h1[i].name, h1[i].name_len, buf, (size_t)n));
        check(inside(h1[i].value, h1[i].value_len, buf, (size_t)n));
    }
    check(r1.content_length >= -1);
    check(!(r1.chunked && r1.content_length >= 0));
    check(r1.chunked + (r1.content_length >= 0) + r1.body_until_close == 1);
    check(!(r1.body_until_close && r1.keep_alive));
    if (r1.status < 200 || r1.status == 204 || r1.status == 304)
        check(r1.content_length == 0);
    tern_http_response r3;
    tern_http_header h3[32];
    check(run(buf, (size_t)n - 1, &r3, h3) == TERN_HTTP_INCOMPLETE);
    char *more = malloc(size + 17);
    memcpy(more, data, size);
    memcpy(more + size, "HTTP/1.1 200 OK\r\n", 17);
    int m = run(more, size + 17, &r2, h2);
    check(m == n && r2.status == r1.status && r2.nheaders == r1.nheaders &&
          r2.content_length == r1.content_length && r2.chunked == r1.chunked &&
          r2.keep_alive == r1.keep_alive && r2.body_until_close == r1.body_until_close);
    free(more);
    return 0;
}
