/* test_http_chunked.c - the in-place chunked body decoder against RFC 9112 7.1. */
#include "check.h"

/* Decode msg in one call from a copy; returns the decoder's answer. */
static int decode_all(const char *msg, size_t len, size_t max_trailer, char *out, size_t *out_len,
                      size_t *consumed)
{
    static char buf[16384];
    CHECK(len <= sizeof buf);
    memcpy(buf, msg, len);
    tern_http_chunked d;
    tern_http_chunked_init(&d, max_trailer);
    size_t produced;
    int r = tern_http_chunked_decode(&d, buf, len, consumed, &produced);
    CHECK(produced <= *consumed && *consumed <= len);
    if (r == TERN_HTTP_BAD)
        CHECK_EQ(d.status, 400);
    memcpy(out, buf, produced);
    *out_len = produced;
    return r;
}

static int decode_str(const char *msg, char *out, size_t *out_len)
{
    size_t consumed;
    return decode_all(msg, strlen(msg), 0, out, out_len, &consumed);
}

static void expect(const char *msg, int want)
{
    char out[16384];
    size_t n;
    int r = decode_str(msg, out, &n);
    if (r != want) {
        fprintf(stderr, "for \"%s\": got %d, expected %d\n", msg, r, want);
        abort();
    }
}

#define CHECK_BODY(out, n, lit) CHECK((n) == strlen(lit) && memcmp((out), (lit), (n)) == 0)

static void decodes_a_simple_body(void)
{
    const char *msg = "4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
    char out[64];
    size_t n, consumed;
    CHECK_EQ(decode_all(msg, strlen(msg), 0, out, &n, &consumed), 1);
    CHECK_EQ(consumed, strlen(msg));
    CHECK_BODY(out, n, "Wikipedia in\r\n\r\nchunks.");
}

/* Feed msg in the pieces that cuts[] marks, as a connection would deliver
 * it: each piece lands in a fresh buffer and is decoded there. */
static int feed(const char *msg, size_t len, const size_t *cuts, size_t ncuts, char *out,
                size_t *out_len, size_t *used)
{
    tern_http_chunked d;
    tern_http_chunked_init(&d, 0);
    char piece[16384];
    size_t at = 0;
    *out_len = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        memcpy(piece, msg + at, to - at);
        size_t consumed, produced;
        int r = tern_http_chunked_decode(&d, piece, to - at, &consumed, &produced);
        CHECK(produced <= consumed && consumed <= to - at);
        memcpy(out + *out_len, piece, produced);
        *out_len += produced;
        if (r != 0) {
            *used = at + consumed;
            return r;
        }
        CHECK_EQ(consumed, to - at);
        at = to;
    }
    *used = len;
    return 0;
}

static const char tricky[] =
    "1a;name=value;q=\"a \\\"quoted\\\" ;x\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
    "0003 ; a ; b = c\r\n\r\n\n\r\n"
    "10\n0123456789abcdef\r\n"
    "0;last\r\nTrailer-One: x\r\nEmpty:\nT2:  spaced value \r\n\r\n"
    "GET /next HTTP/1.1\r\n";

static const char tricky_body[] = "abcdefghijklmnopqrstuvwxyz\r\n\n0123456789abcdef";

static void every_split_gives_the_same_body(void)
{
    size_t len = strlen(tricky), end = (size_t)(strstr(tricky, "GET") - tricky);
    char out[256];
    size_t n, used;
    /* one byte at a time */
    size_t cuts[256];
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    CHECK_EQ(feed(tricky, len, cuts, len - 1, out, &n, &used), 1);
    CHECK_EQ(used, end);
    CHECK_BODY(out, n, tricky_body);
    /* one cut anywhere, then random cuts */
    for (size_t c = 0; c <= len; c++) {
        cuts[0] = c;
        CHECK_EQ(feed(tricky, len, cuts, 1, out, &n, &used), 1);
        CHECK_EQ(used, end);
        CHECK_BODY(out, n, tricky_body);
    }
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t k = 0;
        for (size_t i = 1; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 5 == 0)
                cuts[k++] = i;
        }
        CHECK_EQ(feed(tricky, len, cuts, k, out, &n, &used), 1);
        CHECK_EQ(used, end);
        CHECK_BODY(out, n, tricky_body);
    }
}

static void the_next_message_is_left_untouched(void)
{
    const char *msg = "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(msg), end = (size_t)(strstr(msg, "GET") - msg);
    char buf[128];
    memcpy(buf, msg, len);
    tern_http_chunked d;
    tern_http_chunked_init(&d, 0);
    size_t consumed, produced;
    CHECK_EQ(tern_http_chunked_decode(&d, buf, len, &consumed, &produced), 1);
    CHECK_EQ(consumed, end);
    CHECK_BODY(buf, produced, "hello");
    CHECK(memcmp(buf + end, msg + end, len - end) == 0);
    /* done stays done: nothing more is read */
    CHECK_EQ(tern_http_chunked_decode(&d, buf + end, len - end, &consumed, &produced), 1);
    CHECK_EQ(consumed, 0);
    CHECK_EQ(produced, 0);
    /* a bare LF ending the last line ends the body there too */
    memcpy(buf, "0\n\nX", 4);
    tern_http_chunked_init(&d, 0);
    CHECK_EQ(tern_http_chunked_decode(&d, buf, 4, &consumed, &produced), 1);
    CHECK_EQ(consumed, 3);
    CHECK_EQ(buf[3], 'X');
}

static void incomplete_input_asks_for_more(void)
{
    const char *parts[] = {"", "5", "5\r", "5\r\nhel", "5\r\nhello", "5\r\nhello\r",
                           "5\r\nhello\r\n0\r\n", "5\r\nhello\r\n0\r\nA: b\r\n",
                           "5\r\nhello\r\n0\r\n\r"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        expect(parts[i], 0);
}

static void size_overflow_is_refused(void)
{
    expect("7fffffffffffffff\r\n", 0);             /* 2^63 - 1 fits */
    expect("8000000000000000\r\n", TERN_HTTP_BAD);
    expect("10000000000000000\r\n", TERN_HTTP_BAD);
    expect("ffffffffffffffffffffffffffffffff1\r\nx\r\n0\r\n\r\n", TERN_HTTP_BAD);
    expect("00000000000000000000001\r\nx\r\n0\r\n\r\n", 1);   /* zeros do not count */
}

static void malformed_size_lines_are_refused(void)
{
    const char *bad[] = {
        " 1\r\nx\r\n0\r\n\r\n",     /* whitespace before the size */
        "+1\r\nx\r\n0\r\n\r\n", "-1\r\n", "0x1\r\nx\r\n", "g\r\n", "\r\n", "1\r\r\n", "1\rx",
        "1 \r\nx\r\n",              /* BWS not followed by ';' */
        "1;\r\n", "1; \r\n", "1;=b\r\n", "1;a=\r\n", "1;a= \r\n", "1;a=b c\r\n", "1;a b\r\n",
        "1;a\x01\r\n", "1;a=\"x\r\n", "1;a=\"\x7f\"\r\n", "1;a=\"x\"y\r\n", "1;a=\"\\\x01\"\r\n",
        "1;a=b=c\r\n", "1;a,b\r\n", "1,2\r\n", "1 =b\r\n", "1;a=b =c\r\n", "1;a=\"b\" =c\r\n",
        "1;a\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect(bad[i], TERN_HTTP_BAD);
    const char *good[] = {
        "1;a\r\nx\r\n0\r\n\r\n", "1 ; a = b\r\nx\r\n0\r\n\r\n", "1\t;\ta\t=\t\"\"\r\nx\r\n0\r\n\r\n",
        "1;a=\"q\\\"x;y\"\r\nx\r\n0\r\n\r\n", "1;a;b=c;d=\"\"\r\nx\r\n0\r\n\r\n",
        "1;a=b ;c\r\nx\r\n0\r\n\r\n", "A\nabcdefghij\r\n0\n\n", "1;a=\"caf\xc3\xa9\"\r\nx\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        expect(good[i], 1);
}

static void huge_extension_is_refused(void)
{
    char msg[8192];
    /* a 4 KiB size line, its CRLF included, is the most there may be */
    size_t n = (size_t)sprintf(msg, "1;a=");
    memset(msg + n, 'v', 4096 - n - 2);
    memcpy(msg + 4094, "\r\nx\r\n0\r\n\r\n", 11);
    expect(msg, 1);
    memset(msg + n, 'v', 4096 - n - 1);
    memcpy(msg + 4095, "\r\nx\r\n0\r\n\r\n", 11);
    expect(msg, TERN_HTTP_BAD);
    /* and leading zeros count against it too */
    memset(msg, '0', 5000);
    memcpy(msg + 5000, "1\r\nx\r\n0\r\n\r\n", 12);
    expect(msg, TERN_HTTP_BAD);
}

static void chunk_data_must_end_with_crlf(void)
{
    expect("1\r\nab\r\n0\r\n\r\n", TERN_HTTP_BAD);     /* more data than the size */
    expect("1\r\na\n0\r\n\r\n", TERN_HTTP_BAD);        /* a bare LF after data */
    expect("1\r\na\rX0\r\n\r\n", TERN_HTTP_BAD);
    expect("1\r\na0\r\n\r\n", TERN_HTTP_BAD);
    expect("2\r\na\r\n0\r\n\r\n", TERN_HTTP_BAD);      /* less: "\r" is data, then "\n0" */
}

static void trailers_are_checked_and_bounded(void)
{
    char out[64];
    size_t n, consumed;
    expect("0\r\nA: b\r\nC:\r\nD-e_f!: x y\t\r\n\r\n", 1);
    expect("0\nA: b\nC: d\n\n", 1);
    expect("0\r\nA: caf\xc3\xa9\r\n\r\n", 1);
    expect("0\r\nA: b\r\n c\r\n\r\n", TERN_HTTP_BAD);         /* obs-fold */
    expect("0\r\nA: b\r\n\tc\r\n\r\n", TERN_HTTP_BAD);
    expect("0\r\nA : b\r\n\r\n", TERN_HTTP_BAD);              /* space before ':' */
    expect("0\r\n: b\r\n\r\n", TERN_HTTP_BAD);                /* empty name */
    expect("0\r\nA\r\n\r\n", TERN_HTTP_BAD);                  /* no colon */
    expect("0\r\nA: \x01\r\n\r\n", TERN_HTTP_BAD);
    expect("0\r\nA: \x7f\r\n\r\n", TERN_HTTP_BAD);
    expect("0\r\nA: b\rc\r\n\r\n", TERN_HTTP_BAD);            /* bare CR */
    expect("0\r\n\rX", TERN_HTTP_BAD);
    expect("0\r\nA(: b\r\n\r\n", TERN_HTTP_BAD);
    /* max_trailer counts the field lines, line ends included */
    const char *t = "0\r\nName: value\r\n\r\n";               /* 13 bytes of fields */
    CHECK_EQ(decode_all(t, strlen(t), 13, out, &n, &consumed), 1);
    CHECK_EQ(consumed, strlen(t));
    CHECK_EQ(decode_all(t, strlen(t), 12, out, &n, &consumed), TERN_HTTP_BAD);
    char big[9000];
    size_t k = (size_t)sprintf(big, "0\r\nX: ");
    memset(big + k, 'v', 8200);
    strcpy(big + k + 8200, "\r\n\r\n");
    CHECK_EQ(decode_all(big, strlen(big), 0, out, &n, &consumed), TERN_HTTP_BAD);  /* 8 KiB default */
}

static void failure_is_sticky(void)
{
    char buf[32];
    tern_http_chunked d;
    tern_http_chunked_init(&d, 0);
    size_t consumed, produced;
    memcpy(buf, "z\r\n", 3);
    CHECK_EQ(tern_http_chunked_decode(&d, buf, 3, &consumed, &produced), TERN_HTTP_BAD);
    CHECK_EQ(d.status, 400);
    memcpy(buf, "0\r\n\r\n", 5);
    CHECK_EQ(tern_http_chunked_decode(&d, buf, 5, &consumed, &produced), TERN_HTTP_BAD);
    CHECK_EQ(produced, 0);
}

static void large_chunks_span_many_reads(void)
{
    static char msg[70000], out[70000];
    size_t k = (size_t)sprintf(msg, "10000\r\n");
    for (size_t i = 0; i < 65536; i++)
        msg[k + i] = (char)('a' + i % 26);
    k += 65536;
    k += (size_t)sprintf(msg + k, "\r\n0\r\n\r\n");
    size_t cuts[64], n, used;
    for (size_t i = 0; i < 64; i++)
        cuts[i] = 1 + i * 1021;
    CHECK_EQ(feed(msg, k, cuts, 64, out, &n, &used), 1);
    CHECK_EQ(used, k);
    CHECK_EQ(n, 65536);
    CHECK(memcmp(out, msg + 7, 65536) == 0);
}

TESTS(T(decodes_a_simple_body), T(every_split_gives_the_same_body),
      T(the_next_message_is_left_untouched), T(incomplete_input_asks_for_more),
      T(size_overflow_is_refused), T(malformed_size_lines_are_refused), T(huge_extension_is_refused),
      T(chunk_data_must_end_with_crlf), T(trailers_are_checked_and_bounded), T(failure_is_sticky),
      T(large_chunks_span_many_reads))
