/*
 * fuzz_log_format.c - libFuzzer target for the log line formatter
 * (src/kit/log/format.c), which reads strings a word at a time without
 * measuring them first and escapes whatever a caller hands it.
 *
 * Input: byte 0 picks the number of fields (0-7) and the strings' offset
 * in their buffers (alignment), byte 1 the kinds; the rest, split at NUL
 * bytes, gives the message, then each field's key and value (integers and
 * doubles take eight bytes of a value).  Each string sits in its own
 * allocation of exactly its size, so reading a byte past its NUL that is
 * not allowed would show.  Beyond "no crash, no sanitizer report", every
 * line must be at most TERN_LOG_LINE_MAX bytes, end in "}\n", be one JSON
 * object, and, when not truncated, give back the message as it was
 * whenever the message is valid UTF-8.  The message also goes through the
 * access log's builder calls (tern__log_line_fields, with a bound taken
 * from the input), which must cut it within the bound at a character
 * boundary.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kit/log/internal.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

/* A copy of data[0..n) and a NUL at offset off of a fresh allocation. */
static char *place(const uint8_t *data, size_t n, size_t off, char **block)
{
    *block = malloc(off + n + 1);
    check(*block != NULL);
    memcpy(*block + off, data, n);
    (*block)[off + n] = 0;
    return *block + off;
}

/* The next NUL-terminated piece of data[*at..len). */
static size_t piece(const uint8_t *data, size_t len, size_t *at, const uint8_t **p)
{
    *p = data + *at;
    const uint8_t *z = memchr(*p, 0, len - *at);
    size_t n = z ? (size_t)(z - *p) : len - *at;
    *at += z ? n + 1 : n;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 2)
        return 0;
    size_t nf = data[0] & 7, off = (data[0] >> 3) & 15;
    unsigned kinds = data[1];
    size_t at = 2;
    char *blocks[16] = {0};
    size_t nb = 0;
    const uint8_t *p;
    size_t n = piece(data, len, &at, &p);
    const char *msg = place(p, n, off, &blocks[nb++]);
    tern_log_field f[7];
    for (size_t i = 0; i < nf; i++) {
        n = piece(data, len, &at, &p);
        const char *key = place(p, n, (off + i) & 15, &blocks[nb++]);
        n = piece(data, len, &at, &p);
        switch ((kinds >> (i % 4 * 2)) & 3) {
        case 0:
        case 1:
            f[i] = TERN_LOG_STR(key, place(p, n, (off + 3 * i) & 15, &blocks[nb++]));
            break;
        case 2: {
            int64_t v = 0;
            memcpy(&v, p, n < 8 ? n : 8);
            f[i] = TERN_LOG_INT(key, v);
            break;
        }
        default: {
            double d = 0;
            memcpy(&d, p, n < 8 ? n : 8);
            f[i] = TERN_LOG_DOUBLE(key, d);
        }
        }
    }
    /* Keys and a message of known length (as the macros give for
     * literals) take a 16-byte copy; measured ones the long way.  Both
     * lines must match. */
    char line[TERN_LOG_LINE_MAX], again[TERN_LOG_LINE_MAX];
    for (size_t i = 0; i < nf; i++)
        if ((off + i) & 1)
            f[i].key_len = (uint32_t)strlen(f[i].key);
    size_t ml = off & 1 ? strlen(msg) : 0;     /* the message's length known, or measured */
    size_t ln = tern__log_format(line, 1763777000123456789LL, TERN_LOG_INFO, msg, ml, NULL, f, nf);
    for (size_t i = 0; i < nf; i++)
        f[i].key_len = 0;
    check(tern__log_format(again, 1763777000123456789LL, TERN_LOG_INFO, msg, ml ? 0 : strlen(msg),
                          NULL, f, nf) == ln);
    check(memcmp(line, again, ln) == 0);
    check(ln >= 3 && ln <= TERN_LOG_LINE_MAX);
    check(line[ln - 2] == '}' && line[ln - 1] == '\n');
    json_error_t je;
    json_t *j = json_loadb(line, ln - 1, JSON_ALLOW_NUL, &je);
    check(j != NULL && json_is_object(j));
    if (!json_object_get(j, "truncated")) {
        json_t *want = json_string(msg);    /* NULL when msg is not UTF-8 */
        if (want)
            check(json_equal(want, json_object_get(j, "msg")));
        json_decref(want);
    }
    json_decref(j);

    /* The same message through the access log's path: a bounded string
     * under a key given as JSON.  Whatever the bound, the line is one
     * JSON object; when the message is UTF-8, the field is the longest
     * prefix of it within the bound that does not split a character. */
    size_t bound = (size_t)kinds * 7 % (strlen(msg) + 3);
    tern__log_line l;
    tern__log_line_begin(&l, line, 1763777000123456789LL, TERN_LOG_INFO, "m", 1, NULL);
    tern__log_line_fields(&l, &TERN__LOG_LSTRN("s", msg, bound), 1);
    ln = tern__log_line_end(&l);
    check(ln >= 3 && ln <= TERN_LOG_LINE_MAX);
    j = json_loadb(line, ln - 1, JSON_ALLOW_NUL, &je);
    check(j != NULL && json_is_object(j));
    json_t *want = json_string(msg);
    if (want && !json_object_get(j, "truncated")) {
        const char *got = json_string_value(json_object_get(j, "s"));
        check(got != NULL);
        size_t gl = strlen(got), ml = strlen(msg);
        check(gl <= bound && strncmp(got, msg, gl) == 0);
        /* stopped at the bound, the end, or before a character across it */
        check(gl == ml || gl == bound ||
              (gl + 4 > bound && ((unsigned char)msg[gl] & 0xC0) == 0xC0));
    }
    json_decref(want);
    json_decref(j);
    for (size_t i = 0; i < nb; i++)
        free(blocks[i]);
    return 0;
}
