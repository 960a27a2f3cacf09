/*
 * fuzz_grpc_wire.c - libFuzzer target for gRPC's codecs (src/grpc/wire.c),
 * everything a peer controls before a message reaches protobuf-c:
 * grpc-timeout, grpc-message's percent-encoding, base64 -bin metadata
 * values, the 5-byte message prefixes of a body, and gzip'd messages
 * under the receive limit.
 *
 * Beyond "no crash": a parsed timeout formats back to one that parses to
 * no less; encoding a decoded message and decoding it again gives the
 * same text; base64 decodes to at most 3/4 of its length and re-encodes
 * to the same bytes; gunzip never returns more than the limit.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_internal.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';

    int64_t ns;
    if (tern_grpc_timeout_parse(s, &ns) == 0 && ns > 0) {
        char buf[16];
        size_t n = tern_grpc_timeout_format(ns, buf);
        check(n > 1 && n < 16);
        int64_t back;
        check(tern_grpc_timeout_parse(buf, &back) == 0);
        check(back >= ns || ns > 99999999LL * 3600);   /* the largest grpc-timeout is 99999999H */
    }

    char *d = tern_grpc_message_decode(s);
    char *e = tern_grpc_message_encode(d);
    char *d2 = tern_grpc_message_decode(e);
    check(strcmp(d, d2) == 0);
    free(d);
    free(e);
    free(d2);

    size_t sl = strlen(s);
    uint8_t *raw = malloc(sl * 3 / 4 + 4);
    ssize_t rl = tern__grpc_b64_decode(s, sl, raw);
    if (rl >= 0) {
        check((size_t)rl <= sl * 3 / 4 + 1);
        char *enc = malloc((size_t)rl / 3 * 4 + 8);
        size_t el = tern__grpc_b64_encode(raw, (size_t)rl, enc);
        uint8_t *raw2 = malloc(el * 3 / 4 + 4);
        check(tern__grpc_b64_decode(enc, el, raw2) == rl && memcmp(raw, raw2, (size_t)rl) == 0);
        free(enc);
        free(raw2);
    }
    free(raw);

    /* a body: messages one after another, as the server's recv walks them */
    size_t off = 0;
    while (size - off >= GRPC_PREFIX) {
        bool z;
        uint32_t len;
        if (tern__grpc_prefix_parse(data + off, &z, &len) < 0)
            break;
        off += GRPC_PREFIX;
        if (len > size - off)
            break;
        if (z) {
            tern__growbuf out = { 0 };
            int rc = tern__grpc_gunzip(data + off, len, 4096, &out);
            check(rc == 0 ? out.len <= 4096 : out.len == 0);
            tern__growbuf_free(&out);
        }
        off += len;
    }
    free(s);
    return 0;
}
