/*
 * mw_gzip.c - gzip content coding (RFC 9110 8.4.1.3) for buffered
 * responses.
 *
 * The chain runs first; the body is compressed once it is complete, in one
 * deflate call, so there is no per-write state and no flush-point policy.
 * A body that has started streaming (past the server's buffer, or
 * flushed) is left alone: compressing it would need a streaming
 * compressor between the handler and the socket, which this version does
 * not have.
 *
 * Content types are opt-in: compressing JPEG, PNG or an archive costs CPU
 * and gains nothing.
 */
#define _GNU_SOURCE
#include "tern/http_mw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "parse_internal.h"

#define DEFAULT_MIN_SIZE 1024
#define DEFAULT_LEVEL 6

/* A qvalue (RFC 9110 12.4.2) is "0" or "1" with up to three decimals; only
 * whether it is zero matters here.  Malformed counts as zero: refusing a
 * coding is always safe. */
static bool q_nonzero(const char *s, size_t n)
{
    if (n == 0 || n > 5 || (s[0] != '0' && s[0] != '1'))
        return false;
    if (n > 1 && s[1] != '.')
        return false;
    bool nonzero = s[0] == '1';
    for (size_t i = 2; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || (s[0] == '1' && s[i] != '0'))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

static size_t trim_end(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

/* One list element "coding *( OWS ; OWS param )": its coding, and whether
 * its q is above zero (no q: 1). */
static bool element(const char *s, size_t n, const char **coding, size_t *coding_len)
{
    size_t i = 0;
    while (i < n && s[i] != ';')
        i++;
    *coding = s;
    *coding_len = trim_end(s, i);
    bool ok = true;
    while (i < n) {             /* at a ';' */
        size_t b = ++i;
        while (b < n && (s[b] == ' ' || s[b] == '\t'))
            b++;
        i = b;
        while (i < n && s[i] != ';')
            i++;
        size_t len = trim_end(s + b, i - b);
        if (len >= 2 && (s[b] == 'q' || s[b] == 'Q') && s[b + 1] == '=')
            ok = q_nonzero(s + b + 2, len - 2);
    }
    return ok;
}

/* Accept-Encoding allows gzip: named with q > 0 (or as x-gzip), or not
 * named and "*" with q > 0.  Every field counts, as if joined by commas. */
static bool accepts_gzip(const tern_http_req *r)
{
    int gzip = -1, star = -1;   /* -1 unnamed, 0 refused, 1 accepted */
    size_t n = tern_http_req_header_count(r);
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        if (tern_http_req_header_at(r, i, &name, &value) < 0 ||
            !tern_http_ieq(name, strlen(name), "accept-encoding"))
            continue;
        const char *p = value, *end = value + strlen(value), *el;
        size_t el_len;
        while (tern__http_list_next(&p, end, &el, &el_len)) {
            const char *c;
            size_t cn;
            int ok = element(el, el_len, &c, &cn);
            if (tern_http_ieq(c, cn, "gzip") || tern_http_ieq(c, cn, "x-gzip"))
                gzip = gzip == 0 ? 0 : ok;     /* an explicit refusal wins */
            else if (cn == 1 && c[0] == '*')
                star = star == 0 ? 0 : ok;
        }
    }
    return gzip >= 0 ? gzip == 1 : star == 1;
}

static bool compressible(const char *type)
{
    if (!type)
        return false;
    size_t n = strcspn(type, "; \t");
    const char *slash = memchr(type, '/', n);
    if (!slash)
        return false;
    const char *sub = slash + 1;
    size_t top_len = (size_t)(slash - type), sub_len = n - top_len - 1;
    if (tern_http_ieq(type, top_len, "text"))
        return true;
    /* structured syntax suffixes: application/ld+json, image/svg+xml, ... */
    const char *plus = memchr(sub, '+', sub_len);
    if (plus) {
        size_t suf_len = sub_len - (size_t)(plus + 1 - sub);
        if (tern_http_ieq(plus + 1, suf_len, "json") || tern_http_ieq(plus + 1, suf_len, "xml"))
            return true;
    }
    if (!tern_http_ieq(type, top_len, "application"))
        return false;
    return tern_http_ieq(sub, sub_len, "json") || tern_http_ieq(sub, sub_len, "javascript") ||
           tern_http_ieq(sub, sub_len, "x-javascript") || tern_http_ieq(sub, sub_len, "xml");
}

/* Whether this response could be compressed for some client: the part of
 * the decision that does not depend on Accept-Encoding, so it also says
 * when Vary is due. */
static bool eligible(tern_http_req *r, tern_http_resp *w, size_t len, size_t min_size)
{
    int st = tern_http_resp_status(w);
    if (st < 200 || st >= 300 || st == 204 || st == 206 || tern_http_req_is_head(r))
        return false;
    if (len < min_size || tern_http_resp_header(w, "Content-Encoding") ||
        tern_http_resp_header(w, "Content-Range") ||
        !compressible(tern_http_resp_header(w, "Content-Type")))
        return false;
    const char *cc = tern_http_resp_header(w, "Cache-Control");
    return !(cc && strcasestr(cc, "no-transform"));
}

/* Compress data into a new buffer (*out is the caller's to free); false
 * when zlib fails (no memory, a bad level) or the result would not be
 * smaller: the body then goes out as it is, which is always correct. */
static bool deflate_gzip(const char *data, size_t len, int level, char **out, size_t *out_len)
{
    z_stream zs = {0};
    /* 15 + 16: the largest window, with the gzip header and trailer */
    if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    /* the body is buffered, so under 64 KiB: uInt holds its bound */
    uLong cap = deflateBound(&zs, (uLong)len);
    char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&zs);
        return false;
    }
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)buf;
    zs.avail_out = (uInt)cap;
    int zr = deflate(&zs, Z_FINISH);
    size_t n = zs.total_out;
    deflateEnd(&zs);
    if (zr != Z_STREAM_END || n >= len) {
        free(buf);
        return false;
    }
    *out = buf;
    *out_len = n;
    return true;
}

/* A strong validator names these exact bytes; the gzip bytes differ. */
static int weaken_etag(tern_http_resp *w)
{
    const char *etag = tern_http_resp_header(w, "ETag");
    if (!etag || etag[0] != '"')
        return 0;
    size_t n = strlen(etag);
    char *weak = malloc(n + 3);
    if (!weak)
        return -ENOMEM;
    memcpy(weak, "W/", 2);
    memcpy(weak + 2, etag, n + 1);
    int rc = tern_http_resp_set_header(w, "ETag", weak);
    free(weak);
    return rc;
}

int tern_http_mw_gzip(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_gzip_options *o = opts;
    size_t min_size = o && o->min_size ? o->min_size : DEFAULT_MIN_SIZE;
    int level = o && o->level ? o->level : DEFAULT_LEVEL;

    int rc = tern_http_next(r, w);
    char *data;
    size_t len;
    if (rc < 0 || tern_http_resp_committed(w) || tern_http_resp_buffered(w, &data, &len) < 0)
        return rc;
    if (!eligible(r, w, len, min_size))
        return 0;
    if ((rc = tern_http_resp_add_header(w, "Vary", "Accept-Encoding")) < 0 || !accepts_gzip(r))
        return rc;

    char *z;
    size_t zlen;
    if (!deflate_gzip(data, len, level, &z, &zlen))
        return 0;
    rc = tern_http_resp_replace_body(w, z, zlen);
    free(z);
    if (rc == 0)
        rc = tern_http_resp_set_header(w, "Content-Encoding", "gzip");
    if (rc == 0)
        rc = weaken_etag(w);
    return rc;
}
