/*
 * mw_request_id.c - the request id middleware: one id per request, taken
 * from the client when it is harmless or made here, put on the response
 * and handed to later links as a request value.
 *
 * Ids are made often (every request), so they come from the library's
 * per-thread PRNG (base/rand.h) rather than from a syscall each: 128 bits
 * of it make collisions across a fleet vanishingly unlikely, which is all
 * an id needs.
 */
#define _GNU_SOURCE
#include "tern/http_mw.h"

#include "base/hex.h"
#include "base/rand.h"
#include "http/server_internal.h"

#include <errno.h>
#include <string.h>

#define RID_MAX 128

static const char DEFAULT_HEADER[] = "X-Request-Id";

const char tern_http_request_id_key = 0;

static void make_id(char out[33])
{
    uint8_t v[16];
    tern__rand_fill(v, sizeof v);
    tern__hex(v, sizeof v, out);
}

/* Harmless in a header, a log line and a shell: no quotes, spaces or
 * controls, bounded.  Its length, or 0 if it is not such an id. */
static size_t valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c && strchr("._:+/=-", c));
        if (!ok || n >= RID_MAX)
            return 0;
    }
    return n;
}

int tern_http_mw_request_id(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_request_id_options *o = opts;
    const char *header = o && o->header ? o->header : DEFAULT_HEADER;
    const char *in = o && o->ignore_incoming ? NULL : tern_http_req_header(r, header);
    char *id;
    size_t n = in ? valid_id(in) : 0;
    if (n) {
        id = (char *)in;        /* lives as long as the request */
    } else {
        if (!(id = tern_http_req_alloc(r, 33)))
            return -ENOMEM;
        make_id(id);
        n = 32;
    }
    int rc = tern_http_req_set_value(r, &tern_http_request_id_key, id);
    /* The id is a valid field value either way (valid_id's characters, or
     * hex), and the default name a valid one: only a caller's name needs
     * the setter's checks.  Both outlive the response (a literal; the
     * request's arena or head), so they are not copied. */
    if (rc == 0)
        rc = header == DEFAULT_HEADER
                 ? tern__http_resp_set_header_ref(w, header, sizeof DEFAULT_HEADER - 1, id, n)
                 : tern_http_resp_set_header(w, header, id);
    if (rc < 0)
        return rc;
    return tern_http_next(r, w);
}

const char *tern_http_request_id(const tern_http_req *r)
{
    return tern_http_req_value(r, &tern_http_request_id_key);
}
