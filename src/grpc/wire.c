/*
 * wire.c - gRPC's small codecs (PROTOCOL-HTTP2.md in grpc/grpc): the
 * 5-byte message prefix, grpc-timeout, the percent-encoded grpc-message,
 * base64 for -bin metadata, gzip for compressed messages, metadata name
 * and value checks, and the table between status codes and errnos that
 * tern/grpc.h documents.  No I/O and no allocation but the caller's
 * buffers and gzip's state, so the fuzzer drives every parser directly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <zlib.h>

#include "grpc/grpc_internal.h"

static const char *const code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};

const char *tern_grpc_code_name(tern_grpc_code code)
{
    return (unsigned)code <= TERN_GRPC_UNAUTHENTICATED ? code_names[code] : "UNKNOWN";
}

/* code -> errno, the first column of grpc.h's table */
static const int code_errno[] = {
    0, ECANCELED, EREMOTEIO, EINVAL, ETIMEDOUT, ENOENT, EEXIST, EACCES, ENOSPC, EPERM, EDEADLK,
    ERANGE, ENOSYS, EPROTO, EAGAIN, EIO, ENOKEY,
};
_Static_assert(sizeof code_errno / sizeof *code_errno == TERN_GRPC_UNAUTHENTICATED + 1, "one errno per code");

int tern_grpc_code_to_errno(tern_grpc_code code)
{
    return (unsigned)code <= TERN_GRPC_UNAUTHENTICATED ? -code_errno[code] : -EREMOTEIO;
}

tern_grpc_code tern_grpc_errno_to_code(int err)
{
    switch (err < 0 ? -err : err) {
    case 0: return TERN_GRPC_OK;
    case ECANCELED: return TERN_GRPC_CANCELLED;
    case EINVAL: return TERN_GRPC_INVALID_ARGUMENT;
    case ETIMEDOUT: return TERN_GRPC_DEADLINE_EXCEEDED;
    case ENOENT: return TERN_GRPC_NOT_FOUND;
    case EEXIST: return TERN_GRPC_ALREADY_EXISTS;
    case EACCES: return TERN_GRPC_PERMISSION_DENIED;
    case ENOSPC: case EMSGSIZE: case ENOMEM: case EDQUOT: return TERN_GRPC_RESOURCE_EXHAUSTED;
    case EPERM: return TERN_GRPC_FAILED_PRECONDITION;
    case EDEADLK: return TERN_GRPC_ABORTED;
    case ERANGE: return TERN_GRPC_OUT_OF_RANGE;
    case ENOSYS: case EOPNOTSUPP: return TERN_GRPC_UNIMPLEMENTED;
    case EPROTO: case EBADMSG: return TERN_GRPC_INTERNAL;
    case EAGAIN: case ECONNREFUSED: case ECONNRESET: case ECONNABORTED: case EPIPE:
    case EHOSTUNREACH: case ENETUNREACH: return TERN_GRPC_UNAVAILABLE;
    case EIO: return TERN_GRPC_DATA_LOSS;
    case ENOKEY: return TERN_GRPC_UNAUTHENTICATED;
    default: return TERN_GRPC_UNKNOWN;
    }
}

int tern__grpc_prefix_parse(const uint8_t *p, bool *compressed, uint32_t *len)
{
    if (p[0] > 1)
        return -EBADMSG;
    *compressed = p[0] == 1;
    *len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    return 0;
}

void tern__grpc_prefix_put(uint8_t *p, bool compressed, uint32_t len)
{
    p[0] = compressed;
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
}

/* grpc-timeout: TimeoutValue (1-8 ASCII digits) TimeoutUnit (H M S m u n) */
int tern_grpc_timeout_parse(const char *s, int64_t *ns)
{
    size_t n = strlen(s);
    if (n < 2 || n > 9)
        return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    int64_t unit;
    switch (s[n - 1]) {
    case 'H': unit = 3600LL * 1000000000; break;
    case 'M': unit = 60LL * 1000000000; break;
    case 'S': unit = 1000000000; break;
    case 'm': unit = 1000000; break;
    case 'u': unit = 1000; break;
    case 'n': unit = 1; break;
    default: return -EINVAL;
    }
    /* 99999999 hours overflow int64 ns: clamp (about 292 years) */
    *ns = v > INT64_MAX / unit ? INT64_MAX : v * unit;
    return 0;
}

size_t tern_grpc_timeout_format(int64_t ns, char *buf)
{
    static const struct { int64_t unit; char c; } units[] = {
        { 1, 'n' }, { 1000, 'u' }, { 1000000, 'm' }, { 1000000000, 'S' },
        { 60LL * 1000000000, 'M' }, { 3600LL * 1000000000, 'H' },
    };
    if (ns < 1)
        ns = 1;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        int64_t v = ns / units[i].unit + (ns % units[i].unit != 0);   /* rounded up */
        if (v <= 99999999 || i + 1 == sizeof units / sizeof *units) {
            if (v > 99999999)
                v = 99999999;
            size_t k = 0;
            char tmp[12];
            do {
                tmp[k++] = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            size_t len = 0;
            while (k)
                buf[len++] = tmp[--k];
            buf[len++] = units[i].c;
            buf[len] = '\0';
            return len;
        }
    }
    return 0;   /* not reached */
}

/* grpc-message: percent-encode bytes outside 0x20..0x7e, and '%' itself */
char *tern_grpc_message_encode(const char *msg)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(msg);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p > 0x7e || *p == '%') {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *tern_grpc_message_decode(const char *wire)
{
    size_t n = strlen(wire);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (wire[i] == '%' && i + 2 < n && (h = hexval(wire[i + 1])) >= 0 &&
            (l = hexval(wire[i + 2])) >= 0) {
            char c = (char)(h << 4 | l);
            if (c == '\0') {    /* an escaped NUL would cut the string: keep it escaped */
                *o++ = wire[i];
                continue;
            }
            *o++ = c;
            i += 2;
        } else {
            *o++ = wire[i];
        }
    }
    *o = '\0';
    return out;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t tern__grpc_b64_encode(const uint8_t *p, size_t n, char *out)
{
    size_t k = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[k++] = b64[v >> 18];
        out[k++] = b64[(v >> 12) & 63];
        out[k++] = b64[(v >> 6) & 63];
        out[k++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[k++] = b64[v >> 18];
        out[k++] = b64[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[k++] = b64[v >> 18];
        out[k++] = b64[(v >> 12) & 63];
        out[k++] = b64[(v >> 6) & 63];
    }
    out[k] = '\0';
    return k;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;      /* '-' and '_': the URL-safe alphabet, which some peers send */
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

ssize_t tern__grpc_b64_decode(const char *s, size_t n, uint8_t *out)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -EBADMSG;
    size_t k = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i]);
        if (v < 0)
            return -EBADMSG;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)k;
}

int tern__grpc_gzip(const uint8_t *p, size_t n, tern__growbuf *out)
{
    z_stream z = { 0 };
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    size_t bound = deflateBound(&z, (uLong)n);
    int rc = tern__growbuf_reserve(out, bound);
    if (rc == 0) {
        z.next_in = (Bytef *)p;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = (uInt)bound;
        rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : -ENOMEM;
        if (rc == 0)
            out->len += z.total_out;
    }
    deflateEnd(&z);
    return rc;
}

int tern__grpc_gunzip(const uint8_t *p, size_t n, size_t max, tern__growbuf *out)
{
    z_stream z = { 0 };
    if (inflateInit2(&z, 15 + 32) != Z_OK)      /* gzip or zlib header */
        return -ENOMEM;
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    size_t start = out->len;
    int rc = 0;
    for (;;) {
        size_t chunk = n * 2 + 256;
        if (tern__growbuf_reserve(out, chunk) < 0) {
            rc = -ENOMEM;
            break;
        }
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = (uInt)(out->cap - out->len);
        size_t before = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        out->len += before - z.avail_out;
        if (out->len - start > max) {
            rc = -EMSGSIZE;
            break;
        }
        if (zr == Z_STREAM_END) {
            rc = z.avail_in == 0 ? 0 : -EBADMSG;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = -EBADMSG;
            break;
        }
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            rc = -EBADMSG;      /* truncated */
            break;
        }
    }
    inflateEnd(&z);
    if (rc < 0)
        out->len = start;
    return rc;
}

bool tern__grpc_md_is_bin(const char *name, size_t n)
{
    return n > 4 && !memcmp(name + n - 4, "-bin", 4);
}

bool tern__grpc_md_name_ok(const char *name)
{
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

bool tern__grpc_md_reserved(const char *name)
{
    return name[0] == ':' || !strncasecmp(name, "grpc-", 5) || !strcasecmp(name, "te") ||
           !strcasecmp(name, "content-type") || !strcasecmp(name, "content-length") ||
           !strcasecmp(name, "connection") || !strcasecmp(name, "host");
}

bool tern__grpc_md_value_ok(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
            return false;
    return true;
}

static void *arena_alloc(void *data, size_t n)
{
    return tern__arena_alloc(data, n ? n : 1);
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p;        /* the arena frees everything at its reset */
}

void tern__grpc_arena_allocator(ProtobufCAllocator *al, tern__arena *a)
{
    al->alloc = arena_alloc;
    al->free = arena_free;
    al->allocator_data = a;
}

int tern__grpc_pack(const ProtobufCMessage *msg, bool gz, size_t max, tern__growbuf *out,
                    tern__growbuf *scratch)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if ((max && n > max) || n > UINT32_MAX)
        return -EMSGSIZE;
    size_t at = out->len;
    if (!gz) {
        if (tern__growbuf_reserve(out, GRPC_PREFIX + n) < 0)
            return -ENOMEM;
        uint8_t *p = (uint8_t *)out->p + at;
        protobuf_c_message_pack(msg, p + GRPC_PREFIX);
        tern__grpc_prefix_put(p, false, (uint32_t)n);
        out->len += GRPC_PREFIX + n;
        return 0;
    }
    scratch->len = 0;
    if (tern__growbuf_reserve(scratch, n) < 0 || tern__growbuf_reserve(out, GRPC_PREFIX) < 0)
        return -ENOMEM;
    protobuf_c_message_pack(msg, (uint8_t *)scratch->p);
    out->len += GRPC_PREFIX;
    int rc = tern__grpc_gzip((const uint8_t *)scratch->p, n, out);
    if (rc < 0) {
        out->len = at;
        return rc;
    }
    size_t z = out->len - at - GRPC_PREFIX;
    if (z > UINT32_MAX) {
        out->len = at;
        return -EMSGSIZE;
    }
    tern__grpc_prefix_put((uint8_t *)out->p + at, true, (uint32_t)z);
    return 0;
}
