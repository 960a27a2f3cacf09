/*
 * fuzz_http_parse.c - libFuzzer target for tern_http_parse_request.
 *
 * Beyond "no crash, no sanitizer report", it checks what the server will
 * rely on: a parsed head lies within the input, every string points into
 * it, and the result does not change when more bytes follow (the next
 * pipelined request must never alter this one).
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

static int run(const char *buf, size_t len, tern_http_request *r, tern_http_header *h)
{
    memset(r, 0, sizeof *r);
    r->headers = h;
    r->max_headers = 32;
    tern_http_limits lim = {.max_request_line = 512, .max_head = 4096};
    return tern_http_parse_request(buf, len, r, &lim);
}

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tern_http_header h1[32], h2[32];
    tern_http_request r1, r2;
    const char *buf = (const char *)data;
    int n = run(buf, size, &r1, h1);
    check(n == TERN_HTTP_INCOMPLETE || n == TERN_HTTP_BAD || (n > 0 && (size_t)n <= size));
    if (n == TERN_HTTP_BAD)
        check(r1.status >= 400 && r1.status <= 505);
    if (n <= 0)
        return 0;
    check(inside(r1.method, r1.method_len, buf, (size_t)n));
    check(inside(r1.target, r1.target_len, buf, (size_t)n));
    check(r1.nheaders <= 32);
    for (size_t i = 0; i < r1.nheaders; i++) {
        check(inside(h1[i].name, h1[i].name_len, buf, (size_t)n));
        check(inside(h1[i].value, h1[i].value_len, buf, (size_t)n));
    }
    check(r1.content_length >= -1);
    check(!(r1.chunked && r1.content_length >= 0));
    /* the same head followed by more bytes parses the same */
    char *more = malloc(size + 16);
    memcpy(more, data, size);
    memcpy(more + size, "GET / HTTP/1.1\r\n", 16);
    int m = run(more, size + 16, &r2, h2);
    check(m == n && r2.nheaders == r1.nheaders && r2.content_length == r1.content_length &&
          r2.chunked == r1.chunked && r2.keep_alive == r1.keep_alive);
    free(more);
    return 0;
}
