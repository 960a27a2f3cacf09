/*
 * fuzz_nats_parse.c - libFuzzer target for the NATS client's protocol
 * parser (src/events/nats/parse.c) and header lookups.
 *
 * The input is a stream of server operations, parsed as the reader does:
 * one operation at a time from the start of what is unparsed.  Beyond "no
 * crash, no sanitizer report" it checks what the reader relies on: a
 * result never beyond the input, every pointer of an op inside the input
 * (and the payload sizes adding up), "need more" only with a `need`
 * beyond what is there, and the same operations however the stream is cut
 * (fed whole, then fed growing one byte at a time as reads would).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events/nats/parse.h"

enum { MAX_PAYLOAD = 4096 };

static void check(int cond)
{
    if (!cond)
        abort();
}

static void inside(const char *p, size_t n, const char *buf, size_t len)
{
    if (p)
        check(p >= buf && p + n <= buf + len);
}

/* Parse buf[0..len) as a stream: the number of whole ops, and their ends. */
static int run(const char *buf, size_t len, size_t *ends, int max, ssize_t *last)
{
    size_t off = 0;
    int k = 0;
    for (;;) {
        tern__nats_op op;
        size_t need;
        ssize_t n = tern__nats_parse(buf + off, len - off, MAX_PAYLOAD, &op, &need);
        *last = n;
        if (n <= 0) {
            if (n == 0 && need)
                check(need > len - off);
            return k;
        }
        check((size_t)n <= len - off);
        inside(op.subject, op.subject_len, buf + off, (size_t)n);
        inside(op.reply, op.reply_len, buf + off, (size_t)n);
        inside(op.hdr, op.hdr_len, buf + off, (size_t)n);
        inside(op.data, op.data_len, buf + off, (size_t)n);
        inside(op.text, op.text_len, buf + off, (size_t)n);
        if (op.kind == TERN__NATS_HMSG) {
            check(op.hdr && op.hdr_len > 0);
            check(op.hdr + op.hdr_len == op.data);
            (void)tern__nats_hdr_status(op.hdr, op.hdr_len);
            size_t vl;
            const char *v = tern__nats_hdr_get(op.hdr, op.hdr_len, "Nats-Msg-Id", &vl);
            if (v)
                inside(v, vl, op.hdr, op.hdr_len);
        }
        off += (size_t)n;
        if (k < max)
            ends[k] = off;
        k++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    /* A heap copy of exactly len bytes: ASan sees any read past it. */
    char *buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, len);
    enum { MAXOPS = 64 };
    size_t ends[MAXOPS];
    ssize_t last;
    int whole = run(buf, len, ends, MAXOPS, &last);
    /* Every prefix parses to a prefix of the same operations. */
    for (size_t cut = 0; cut < len && cut < 512; cut++) {
        char *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        size_t e2[MAXOPS];
        ssize_t l2;
        int k = run(p, cut, e2, MAXOPS, &l2);
        if (l2 != -EPROTO || last == -EPROTO) {
            check(k <= whole);
            for (int i = 0; i < k && i < MAXOPS; i++)
                check(e2[i] == ends[i]);
        }
        free(p);
    }
    free(buf);
    return 0;
}
