/*
 * chunked.c - the chunked transfer coding (RFC 9112 7.1), decoded in place.
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 *
 * A byte-level state machine, so a buffer may end anywhere, even inside a
 * CRLF, and nothing is buffered: the decoder's whole memory is its state,
 * the chunk size or the data bytes left, and two line counters.  Chunk data
 * is moved to the front of the caller's buffer with one memmove per run.
 *
 * Invariants: the write index never passes the read index, so moving data
 * forward cannot overwrite unread input; and the loop stops on the byte
 * that completes the body, so bytes past *consumed - the next message on
 * the connection - are neither read nor written.  A failure is sticky.
 *
 * Where the RFC lets a recipient be lenient, this is strict when leniency
 * could let two parsers disagree on where the body ends: sizes are hex
 * digits only and below 2^63, extensions follow the grammar, the CRLF after
 * chunk data is required exactly.  A bare LF still ends a size or trailer
 * line, as it ends a head line in parse.c.
 */
#include "parse_internal.h"

#include "base/check.h"

/* A size line with its extensions; real ones are a few bytes. */
#define SIZE_LINE_MAX 4096
#define TRAILER_MAX_DEFAULT 8192

enum {
    SIZE_FIRST,         /* the first hex digit of a chunk-size */
    SIZE,               /* more digits, or what may follow them */
    EXT_WS,             /* BWS that must lead to ';' */
    EXT_NAME_WS,        /* after ';': BWS, then a name */
    EXT_NAME,
    EXT_EQ_WS,          /* BWS after a name: '=' or the next ';' */
    EXT_VALUE_WS,       /* after '=': BWS, then a value */
    EXT_TOKEN,
    EXT_QUOTED,
    EXT_QUOTED_PAIR,    /* after a backslash in a quoted-string */
    EXT_END,            /* after a quoted-string */
    SIZE_LF,            /* CR seen on the size line */
    DATA,
    DATA_CR,            /* chunk data must be followed by CRLF */
    DATA_LF,
    TRAILER,            /* the start of a trailer field line, or the empty line */
    TRAILER_NAME,
    TRAILER_VALUE,
    TRAILER_LF,         /* CR seen on a field line */
    END_LF,             /* CR seen on the empty line */
    DONE,
    FAILED,
};

static inline bool ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static void fail(tern_http_chunked *d)
{
    d->state = FAILED;
    d->status = 400;
}

static void size_line_done(tern_http_chunked *d)
{
    if (d->remaining == 0) {
        d->state = TRAILER;
        d->trailer_bytes = 0;
    } else {
        d->state = DATA;
    }
}

/* After the size, an extension's name or value: the next extension, BWS
 * before it, or the end of the line. */
static void after_item(tern_http_chunked *d, unsigned char c)
{
    if (c == ';')
        d->state = EXT_NAME_WS;
    else if (ws(c))
        d->state = EXT_WS;
    else if (c == '\r')
        d->state = SIZE_LF;
    else if (c == '\n')
        size_line_done(d);
    else
        fail(d);
}

static void size_byte(tern_http_chunked *d, unsigned char c)
{
    TERN_ASSERT(d->state >= SIZE_FIRST && d->state <= SIZE_LF);
    int h = tern_http_hexval(c);
    if (++d->line_bytes > SIZE_LINE_MAX) {
        fail(d);
        return;
    }
    switch (d->state) {
    case SIZE_FIRST:
        if (h < 0) {
            fail(d);            /* no sign, no space, nothing but a digit */
        } else {
            d->remaining = (uint64_t)h;
            d->state = SIZE;
        }
        return;
    case SIZE:
        if (h < 0)
            after_item(d, c);
        else if (d->remaining > (uint64_t)INT64_MAX >> 4)
            fail(d);            /* the size would not fit 63 bits */
        else
            d->remaining = d->remaining << 4 | (uint64_t)h;
        TERN_ASSERT(d->state == FAILED || d->remaining <= (uint64_t)INT64_MAX);
        return;
    case EXT_WS:
        if (c == ';')
            d->state = EXT_NAME_WS;
        else if (!ws(c))
            fail(d);
        return;
    case EXT_NAME_WS:
        if (tern_http_is(c, TERN_HTTP_TCHAR))
            d->state = EXT_NAME;
        else if (!ws(c))
            fail(d);
        return;
    case EXT_NAME:
        if (c == '=')
            d->state = EXT_VALUE_WS;
        else if (ws(c))
            d->state = EXT_EQ_WS;
        else if (!tern_http_is(c, TERN_HTTP_TCHAR))
            after_item(d, c);
        return;
    case EXT_EQ_WS:
        if (c == '=')
            d->state = EXT_VALUE_WS;
        else if (c == ';')
            d->state = EXT_NAME_WS;
        else if (!ws(c))
            fail(d);
        return;
    case EXT_VALUE_WS:
        if (c == '"')
            d->state = EXT_QUOTED;
        else if (tern_http_is(c, TERN_HTTP_TCHAR))
            d->state = EXT_TOKEN;
        else if (!ws(c))
            fail(d);
        return;
    case EXT_TOKEN:
        if (!tern_http_is(c, TERN_HTTP_TCHAR))
            after_item(d, c);
        return;
    case EXT_QUOTED:
        if (c == '"')
            d->state = EXT_END;
        else if (c == '\\')
            d->state = EXT_QUOTED_PAIR;
        else if (!tern_http_is(c, TERN_HTTP_FIELD))
            fail(d);            /* qdtext: no controls, no line end */
        return;
    case EXT_QUOTED_PAIR:
        if (tern_http_is(c, TERN_HTTP_FIELD))
            d->state = EXT_QUOTED;
        else
            fail(d);
        return;
    case EXT_END:
        after_item(d, c);
        return;
    case SIZE_LF:
        if (c == '\n')
            size_line_done(d);
        else
            fail(d);            /* a bare CR */
        return;
    }
}

/* Trailer fields are checked as header fields are in fields.c, then
 * dropped: nothing in tern reads them, and none may change the framing. */
static void trailer_byte(tern_http_chunked *d, unsigned char c)
{
    TERN_ASSERT(d->state >= TRAILER && d->state <= END_LF);
    bool empty_line = d->state == END_LF || (d->state == TRAILER && (c == '\r' || c == '\n'));
    if (!empty_line && ++d->trailer_bytes > d->max_trailer) {
        fail(d);
        return;
    }
    switch (d->state) {
    case TRAILER:
        if (c == '\r')
            d->state = END_LF;
        else if (c == '\n')
            d->state = DONE;
        else if (tern_http_is(c, TERN_HTTP_TCHAR))
            d->state = TRAILER_NAME;
        else
            fail(d);            /* obs-fold, empty name, control character */
        return;
    case TRAILER_NAME:
        if (c == ':')
            d->state = TRAILER_VALUE;
        else if (!tern_http_is(c, TERN_HTTP_TCHAR))
            fail(d);            /* a space before ':' too */
        return;
    case TRAILER_VALUE:
        if (c == '\r')
            d->state = TRAILER_LF;
        else if (c == '\n')
            d->state = TRAILER;
        else if (!tern_http_is(c, TERN_HTTP_FIELD))
            fail(d);
        return;
    case TRAILER_LF:
        if (c == '\n')
            d->state = TRAILER;
        else
            fail(d);
        return;
    case END_LF:
        if (c == '\n')
            d->state = DONE;
        else
            fail(d);
        return;
    }
}

static void step(tern_http_chunked *d, unsigned char c)
{
    /* DATA is copied in runs by the caller; DONE and FAILED take no bytes */
    TERN_ASSERT(d->state != DATA && d->state != DONE && d->state != FAILED);
    if (d->state == DATA_CR) {
        if (c == '\r')
            d->state = DATA_LF;
        else
            fail(d);            /* not even a bare LF: data must end where the size says */
    } else if (d->state == DATA_LF) {
        if (c == '\n') {
            d->state = SIZE_FIRST;
            d->line_bytes = 0;
        } else {
            fail(d);
        }
    } else if (d->state >= TRAILER) {
        trailer_byte(d, c);
    } else {
        size_byte(d, c);
    }
}

void tern_http_chunked_init(tern_http_chunked *d, size_t max_trailer)
{
    tern__http_chars_init();
    *d = (tern_http_chunked){
        .state = SIZE_FIRST,
        .max_trailer = max_trailer ? max_trailer : TRAILER_MAX_DEFAULT,
    };
}

int tern_http_chunked_decode(tern_http_chunked *d, char *buf, size_t len, size_t *consumed,
                             size_t *produced)
{
    size_t r = 0, w = 0;
    TERN_ASSERT(d->state >= SIZE_FIRST && d->state <= FAILED);
    TERN_ASSERT(d->state != FAILED || d->status == 400);      /* sticky */
    while (r < len && d->state != DONE && d->state != FAILED) {
        if (d->state != DATA) {
            step(d, (unsigned char)buf[r++]);
            continue;
        }
        size_t n = len - r;
        if (n > d->remaining)
            n = (size_t)d->remaining;
        if (w != r)
            memmove(buf + w, buf + r, n);
        w += n;
        r += n;
        d->remaining -= n;
        if (d->remaining == 0)
            d->state = DATA_CR;
        TERN_ASSERT(w <= r && r <= len);
    }
    TERN_ASSERT(w <= r && r <= len);
    /* limits hold unless they failed the body */
    TERN_ASSERT(d->state == FAILED ||
                (d->line_bytes <= SIZE_LINE_MAX && d->trailer_bytes <= d->max_trailer));
    /* short of the end, every byte was consumed */
    TERN_ASSERT(d->state == DONE || d->state == FAILED || r == len);
    *consumed = r;
    *produced = w;
    if (d->state == FAILED)
        return TERN_HTTP_BAD;
    return d->state == DONE;
}
