/*
 * parse.h - the NATS protocol's server-to-client operations, parsed.
 *
 * The face is picohttpparser's: one call parses one operation at the
 * start of a buffer and returns the bytes it takes, 0 for "need more" or
 * -EPROTO; nothing is copied (the op's pointers are into the buffer) and
 * nothing is kept between calls, so the reader feeds what it has and
 * calls again when more has come.  The caller's buffer must hold a whole
 * operation: for a MSG/HMSG whose payload has not all come, *need says how
 * many bytes the whole operation takes.
 *
 * Operations (https://docs.nats.io/reference/reference-protocols/nats-protocol),
 * names case-insensitive, fields separated by spaces or tabs, lines ending
 * in CRLF:
 *   INFO {json}                 MSG <subject> <sid> [reply] <#bytes>
 *   PING  PONG  +OK  -ERR <msg> HMSG <subject> <sid> [reply] <#hdr> <#total>
 */
#ifndef TERN_EVENTS_NATS_PARSE_H
#define TERN_EVENTS_NATS_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    TERN__NATS_MAX_LINE = 64 * 1024,    /* an INFO with many connect_urls */
    TERN__NATS_MAX_ARGS = 5,
};

typedef enum tern__nats_opkind {
    TERN__NATS_INFO = 1,
    TERN__NATS_MSG,
    TERN__NATS_HMSG,
    TERN__NATS_PING,
    TERN__NATS_PONG,
    TERN__NATS_OK,
    TERN__NATS_ERR,
} tern__nats_opkind;

typedef struct tern__nats_op {
    tern__nats_opkind kind;
    const char *subject, *reply;    /* MSG/HMSG; reply NULL: none */
    size_t subject_len, reply_len;
    uint64_t sid;
    const char *hdr;                /* HMSG: the header block; else NULL */
    size_t hdr_len;
    const char *data;               /* MSG/HMSG payload */
    size_t data_len;
    const char *text;               /* INFO's JSON, -ERR's message (quotes stripped) */
    size_t text_len;
} tern__nats_op;

/* Parse one operation at buf[0..len).  > 0: the bytes it took, *op filled;
 * 0: incomplete, *need the bytes the whole operation takes when known
 * (MSG/HMSG), else 0; -EPROTO: not NATS (or a payload above max_payload,
 * or a line above TERN__NATS_MAX_LINE). */
ssize_t tern__nats_parse(const char *buf, size_t len, size_t max_payload, tern__nats_op *op,
                         size_t *need);

/* The status code of a header block ("NATS/1.0 503 ..."), 0 for none. */
int tern__nats_hdr_status(const char *hdr, size_t len);
/* The first value of key in a header block, or NULL. */
const char *tern__nats_hdr_get(const char *hdr, size_t len, const char *key, size_t *vlen);

#endif
