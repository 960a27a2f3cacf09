/*
 * fuzz_http_chunked.c - libFuzzer target for tern_http_chunked_decode.
 *
 * The first two bytes pick the trailer limit and how the rest is cut into
 * reads (the seeds in fuzz/corpus/http_chunked start with two such bytes);
 * the rest is the body.  Beyond "no crash, no sanitizer report", it
 * checks what the server and client rely on: produced <= consumed <= len
 * on every call, all input consumed unless the body ended or failed, the
 * bytes after a complete body left as they were, and the same answer,
 * length and decoded bytes however the input is split.
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

typedef struct outcome {
    int r;
    size_t used;                /* input bytes consumed in all */
    size_t body_len;
} outcome;

/* Decode data[0..len) in reads of 0 to 16 bytes drawn from seed (0: one
 * read), each in a buffer of its own; the body goes to body. */
static outcome decode(const uint8_t *data, size_t len, size_t max_trailer, unsigned seed,
                      char *body)
{
    tern_http_chunked d;
    tern_http_chunked_init(&d, max_trailer);
    outcome o = {0, 0, 0};
    do {
        size_t n = len - o.used;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            size_t cut = (seed >> 16) % 17;
            if (cut < n)
                n = cut;
        }
        char *buf = malloc(n + 1);
        memcpy(buf, data + o.used, n);
        size_t consumed, produced;
        o.r = tern_http_chunked_decode(&d, buf, n, &consumed, &produced);
        check(o.r == 0 || o.r == 1 || o.r == TERN_HTTP_BAD);
        check(produced <= consumed && consumed <= n);
        if (o.r == 0)
            check(consumed == n);
        if (o.r == 1)   /* what follows the body is the next message's */
            check(memcmp(buf + consumed, data + o.used + consumed, n - consumed) == 0);
        if (o.r == TERN_HTTP_BAD)
            check(d.status == 400);
        memcpy(body + o.body_len, buf, produced);
        o.body_len += produced;
        o.used += consumed;
        free(buf);
    } while (o.r == 0 && o.used < len);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_trailer = data[0] < 128 ? 0 : data[0] - 120u;
    unsigned seed = data[1] | 1u;
    data += 2;
    size -= 2;
    char *one = malloc(size + 1), *split = malloc(size + 1);
    outcome a = decode(data, size, max_trailer, 0, one);
    outcome b = decode(data, size, max_trailer, seed, split);
    check(a.r == b.r && a.used == b.used && a.body_len == b.body_len);
    check(memcmp(one, split, a.body_len) == 0);
    free(one);
    free(split);
    return 0;
}
