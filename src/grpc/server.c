/*
 * server.c - tern_grpc_server: gRPC calls served as HTTP/2 requests of
 * tern's HTTP server (PROTOCOL-HTTP2.md in grpc/grpc).
 *
 * A call is one HTTP/2 stream, and its handler runs in that stream's
 * coroutine (the HTTP server spawns one per stream): the call struct sits
 * on that coroutine's stack and lives exactly as long as the handler.
 * Requests are read with tern_http_req_read into the call's input buffer,
 * a message at a time, and unpacked with protobuf-c into an arena that the
 * next recv resets (so a stream of messages reuses the same memory);
 * responses are packed (into the input buffer's free tail when they fit:
 * on the stack for a small call) and written to the
 * response: a unary answer stays buffered until the handler returns so
 * that HEADERS, DATA and the trailers leave together, a streaming one is
 * flushed per message.  The status goes in the trailers, or, when the
 * call fails before any message was sent, in the only HEADERS frame
 * (trailers-only, the handler's trailers with it).
 *
 * The call's ctx is the request's ctx (cancelled by RST_STREAM or the
 * connection's end) with grpc-timeout's deadline, installed as the
 * request's ctx so that parked body reads and response writes end with
 * it too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/check.h"
#include "base/dec.h"
#include "grpc/grpc_internal.h"
#include "tern/error.h"
#include "tern/runtime.h"

typedef struct service_entry {
    const tern_grpc_service_desc *desc;
    const void *impl;
    void *arg;
} service_entry;

typedef struct method_slot {
    const char *path;               /* NULL: empty */
    size_t path_len;
    const tern_grpc_method_desc *m;
    const service_entry *svc;
} method_slot;

struct tern_grpc_server {
    size_t max_recv, max_send;
    service_entry *svcs;
    const tern_grpc_service_desc **descs;
    size_t nsvcs;
    method_slot *slots;             /* open addressing by path, a power of two */
    size_t nslots;
    tern_grpc_interceptor *icepts;
    size_t nicepts;
    tern_http_server *http;         /* the server's own, for _listen/_serve */
    bool serving;
};

#define MAX_USER_TRAILERS 32
#define GRPC_STACK_IN 512       /* serve_call's stack blocks (see there) */
#define GRPC_STACK_ARENA 256

struct tern_grpc_call {
    tern_grpc_server *srv;
    const method_slot *ms;
    tern_http_req *r;
    tern_http_resp *w;
    tern_ctx *ctx;
    size_t next_icept;
    /* input: in[in_off..in.len) not yet parsed */
    tern__growbuf in;
    size_t in_off;
    bool in_eof, in_err;
    bool req_gzip;                  /* grpc-encoding: gzip on the request */
    bool accept_gzip;               /* the client accepts gzip responses */
    bool gzip_out;
    bool gzip_announced;            /* the response's grpc-encoding is gzip */
    bool last_compressed;           /* the last message received had the flag */
    bool sent;                      /* a message went out: the headers are committed */
    bool streaming_out;             /* flush per message */
    tern__arena arena;              /* unpacked request messages */
    ProtobufCMessage *last;
    tern__growbuf scratch, zin;
    /* the status */
    bool status_set;
    tern_grpc_code code;
    char *message;                  /* in the request's memory */
    /* metadata, decoded on first use */
    tern_grpc_metadata *md;
    size_t nmd;
    bool md_done;
    /* the handler's trailers, kept until the end: in the trailers after
     * messages, or in the one HEADERS of a Trailers-Only answer (a client
     * retries only those, gRFC A6, pushback included) */
    const char **trailer_kv;        /* 2 * MAX_USER_TRAILERS, in the request's
                                       memory from the first (off the stack:
                                       see serve_call) */
    size_t ntrailers;
};

static uint64_t hash_path(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

int tern_grpc_server_new(const tern_grpc_server_options *o, tern_grpc_server **out)
{
    static const tern_grpc_server_options defaults;
    *out = NULL;
    if (!o)
        o = &defaults;
    if (o->n_interceptors && !o->interceptors)
        return -EINVAL;
    tern_grpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->max_recv = o->max_recv_bytes ? o->max_recv_bytes : TERN_GRPC_DEFAULT_MAX_RECV;
    s->max_send = o->max_send_bytes;
    for (size_t i = 0; i < o->n_interceptors; i++) {
        int rc = tern_grpc_server_add_interceptor(s, o->interceptors[i].fn, o->interceptors[i].arg);
        if (rc < 0) {
            tern_grpc_server_free(s);
            return rc;
        }
    }
    tern_http_server_options ho = o->http;
    ho.handler = tern__grpc_server_serve_http;
    ho.arg = s;
    if (ho.max_body_bytes == 0)
        ho.max_body_bytes = -1;         /* a stream's messages are limited one by one */
    if (ho.read_body_timeout == 0)
        ho.read_body_timeout = -1;      /* a stream lasts as long as its RPC */
    if (ho.write_timeout == 0)
        ho.write_timeout = -1;
    int rc = tern_http_server_new(&ho, &s->http);
    if (rc < 0) {
        tern_grpc_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void tern_grpc_server_free(tern_grpc_server *s)
{
    if (!s)
        return;
    tern_http_server_free(s->http);
    free(s->svcs);
    free(s->descs);
    free(s->slots);
    free(s->icepts);
    free(s);
}

static int rebuild_slots(tern_grpc_server *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nsvcs; i++)
        n += s->svcs[i].desc->n_methods;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    method_slot *t = calloc(cap, sizeof *t);
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < s->nsvcs; i++) {
        const tern_grpc_service_desc *d = s->svcs[i].desc;
        for (size_t j = 0; j < d->n_methods; j++) {
            const tern_grpc_method_desc *m = &d->methods[j];
            size_t len = strlen(m->path);
            size_t k = hash_path(m->path, len) & (cap - 1);
            while (t[k].path)
                k = (k + 1) & (cap - 1);
            t[k] = (method_slot){ m->path, len, m, &s->svcs[i] };
        }
    }
    free(s->slots);
    s->slots = t;
    s->nslots = cap;
    return 0;
}

int tern_grpc_server_add_service(tern_grpc_server *s, const tern_grpc_service_desc *desc, const void *impl,
                                 void *arg)
{
    TERN_CHECK_ARG(s);
    if (!desc || !desc->name || (desc->n_methods && !desc->methods))
        return -EINVAL;
    for (size_t j = 0; j < desc->n_methods; j++)
        if (!desc->methods[j].path || desc->methods[j].path[0] != '/')
            return -EINVAL;
    if (s->serving)
        return -EBUSY;
    for (size_t i = 0; i < s->nsvcs; i++)
        if (!strcmp(s->svcs[i].desc->name, desc->name))
            return -EEXIST;
    service_entry *v = realloc(s->svcs, (s->nsvcs + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    s->svcs = v;
    const tern_grpc_service_desc **d = realloc(s->descs, (s->nsvcs + 1) * sizeof *d);
    if (!d)
        return -ENOMEM;
    s->descs = d;
    s->svcs[s->nsvcs] = (service_entry){ desc, impl, arg };
    s->descs[s->nsvcs] = desc;
    s->nsvcs++;
    int rc = rebuild_slots(s);
    if (rc < 0)
        s->nsvcs--;
    return rc;
}

const tern_grpc_service_desc *const *tern_grpc_server_services(const tern_grpc_server *s, size_t *n)
{
    TERN_CHECK_ARG(s);
    *n = s->nsvcs;
    return s->descs;
}

int tern_grpc_server_add_interceptor(tern_grpc_server *s, tern_grpc_interceptor_fn *fn, void *arg)
{
    TERN_CHECK_ARG(s);
    if (!fn)
        return -EINVAL;
    if (s->serving)
        return -EBUSY;
    tern_grpc_interceptor *v = realloc(s->icepts, (s->nicepts + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    s->icepts = v;
    s->icepts[s->nicepts++] = (tern_grpc_interceptor){ fn, arg };
    return 0;
}

int tern_grpc_server_listen(tern_grpc_server *s, const char *addr)
{
    TERN_CHECK_ARG(s);
    return tern_http_server_listen(s->http, addr);
}

int tern_grpc_server_listen_tls(tern_grpc_server *s, const char *addr, tern_tls_config *cfg)
{
    TERN_CHECK_ARG(s);
    return tern_http_server_listen_tls(s->http, addr, cfg);
}

int tern_grpc_server_add_listener(tern_grpc_server *s, tern_listener *l)
{
    TERN_CHECK_ARG(s);
    return tern_http_server_add_listener(s->http, l);
}

int tern_grpc_server_port(const tern_grpc_server *s)
{
    TERN_CHECK_ARG(s);
    return tern_http_server_port(s->http);
}

int tern_grpc_server_serve(tern_grpc_server *s, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    s->serving = true;
    return tern_http_server_serve(s->http, ctx);
}

int tern_grpc_server_shutdown(tern_grpc_server *s, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    return tern_http_server_shutdown(s->http, ctx);
}

static const method_slot *lookup(const tern_grpc_server *s, const char *path)
{
    if (!s->nslots)
        return NULL;
    size_t len = strlen(path);
    size_t k = hash_path(path, len) & (s->nslots - 1);
    for (;;) {
        const method_slot *m = &s->slots[k];
        if (!m->path)
            return NULL;
        if (m->path_len == len && !memcmp(m->path, path, len))
            return m;
        k = (k + 1) & (s->nslots - 1);
    }
}

/* application/grpc, application/grpc+proto, application/grpc;x=y */
static bool is_grpc_type(const char *ct)
{
    if (!ct || strncasecmp(ct, "application/grpc", 16) != 0)
        return false;
    return ct[16] == '\0' || ct[16] == '+' || ct[16] == ';';
}

/* ---- inside a call -------------------------------------------------------- */

const tern_grpc_method_desc *tern_grpc_call_method(const tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    return call->ms->m;
}

tern_ctx *tern_grpc_call_ctx(tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    if (!call->ctx)
        call->ctx = tern_http_req_ctx(call->r);    /* made on first use: most calls never ask */
    return call->ctx;
}

int tern_grpc_call_set_ctx(tern_grpc_call *call, tern_ctx *ctx)
{
    TERN_CHECK_ARG(call);
    if (!ctx)
        return -EINVAL;
    call->ctx = ctx;
    return 0;
}

void *tern_grpc_call_alloc(tern_grpc_call *call, size_t n)
{
    TERN_CHECK_ARG(call);
    return tern_http_req_alloc(call->r, n ? n : 1);
}

char *tern_grpc_call_strdup(tern_grpc_call *call, const char *s)
{
    TERN_CHECK_ARG(call);
    return tern_http_req_strdup(call->r, s);
}

int tern_grpc_call_fail(tern_grpc_call *call, tern_grpc_code code, const char *fmt, ...)
{
    TERN_CHECK_ARG(call);
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    call->status_set = true;
    call->code = code;
    call->message = NULL;
    if (n > 0 && (size_t)n < sizeof buf) {
        call->message = tern_http_req_strdup(call->r, buf);
    } else if (n > 0) {
        char *m = tern_http_req_alloc(call->r, (size_t)n + 1);
        if (m) {
            va_start(ap, fmt);
            vsnprintf(m, (size_t)n + 1, fmt, ap);
            va_end(ap);
        }
        call->message = m;
    }
    return code == TERN_GRPC_OK ? 0 : tern_grpc_code_to_errno(code);
}

bool tern_grpc_call_recv_compressed(const tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    return call->last_compressed;
}

tern_grpc_code tern_grpc_call_code(const tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    return call->status_set ? call->code : TERN_GRPC_OK;
}

const char *tern_grpc_call_message(const tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    return call->status_set ? call->message : NULL;
}

const char *tern_grpc_call_peer(tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    return tern_http_req_remote_addr(call->r);
}

tern_http_req *tern_grpc_call_http_req(tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    return call->r;
}

/* Read more of the body into call->in: >0 bytes, 0 at its end, -errno. */
static ssize_t fill(tern_grpc_call *call)
{
    if (call->in_off == call->in.len) {
        call->in.len = call->in_off = 0;
    } else if (call->in_off > 0 && call->in.cap - call->in.len < 4096) {
        memmove(call->in.p, call->in.p + call->in_off, call->in.len - call->in_off);
        call->in.len -= call->in_off;
        call->in_off = 0;
    }
    if (call->in.cap - call->in.len < 512 && tern__growbuf_reserve(&call->in, 16384) < 0)
        return -ENOMEM;
    ssize_t k = tern_http_req_read(call->r, call->in.p + call->in.len, call->in.cap - call->in.len);
    if (k > 0)
        call->in.len += (size_t)k;
    return k;
}

int tern_grpc_call_recv(tern_grpc_call *call, ProtobufCMessage **msg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(call);
    *msg = NULL;
    if (call->in_err)
        return -EIO;
    if (ctx && ctx != call->ctx && tern_ctx_err(ctx))
        return tern_ctx_err(ctx);
    int rc = 0;
    uint32_t len = 0;
    bool z = false;
    for (;;) {
        size_t have = call->in.len - call->in_off;
        if (have >= GRPC_PREFIX) {
            rc = tern__grpc_prefix_parse((uint8_t *)call->in.p + call->in_off, &z, &len);
            if (rc < 0)
                goto fail;
            if (len > call->srv->max_recv) {
                rc = tern_grpc_call_fail(call, TERN_GRPC_RESOURCE_EXHAUSTED,
                                         "received message larger than max (%u vs. %zu)", len,
                                         call->srv->max_recv);
                rc = -EMSGSIZE;
                goto fail;
            }
            if (have >= GRPC_PREFIX + (size_t)len)
                break;
            if (tern__growbuf_reserve(&call->in, GRPC_PREFIX + len - have) < 0) {
                rc = -ENOMEM;
                goto fail;
            }
        }
        if (call->in_eof)
            break;
        ssize_t k = fill(call);
        if (k < 0) {
            rc = (int)k;
            if (rc == -EIO || rc == -ECONNRESET)
                rc = tern_ctx_err(call->ctx) ? tern_ctx_err(call->ctx) : rc;
            goto fail;
        }
        if (k == 0)
            call->in_eof = true;
    }
    size_t have = call->in.len - call->in_off;
    if (have == 0)
        return 0;                       /* the client's half-close */
    if (have < GRPC_PREFIX || have < GRPC_PREFIX + (size_t)len) {
        rc = -EBADMSG;                  /* cut inside a message */
        goto fail;
    }
    const uint8_t *p = (const uint8_t *)call->in.p + call->in_off + GRPC_PREFIX;
    call->in_off += GRPC_PREFIX + len;
    call->last_compressed = z;
    if (z) {
        if (!call->req_gzip) {
            tern_grpc_call_fail(call, TERN_GRPC_INTERNAL, "compressed message without grpc-encoding");
            rc = -EBADMSG;
            goto fail;
        }
        call->zin.len = 0;
        rc = tern__grpc_gunzip(p, len, call->srv->max_recv, &call->zin);
        if (rc == -EMSGSIZE)
            tern_grpc_call_fail(call, TERN_GRPC_RESOURCE_EXHAUSTED,
                                "decompressed message larger than max (%zu)", call->srv->max_recv);
        if (rc < 0)
            goto fail;
        p = (const uint8_t *)call->zin.p;
        len = (uint32_t)call->zin.len;
    }
    tern__arena_reset(&call->arena);
    ProtobufCAllocator al;
    tern__grpc_arena_allocator(&al, &call->arena);
    ProtobufCMessage *m = protobuf_c_message_unpack(call->ms->m->input, &al, len, p);
    if (!m) {
        tern_grpc_call_fail(call, TERN_GRPC_INTERNAL, "could not decode the request message");
        rc = -EBADMSG;
        goto fail;
    }
    /* A unary request is one message then END_STREAM: wait for the end
     * here, so that the answer never races the client's last (empty)
     * DATA frame (answering first makes the server reset the stream's
     * unread half, which grpc-core reports as "Stream removed"). */
    tern_grpc_method_type t = call->ms->m->type;
    if ((t == TERN_GRPC_UNARY || t == TERN_GRPC_SERVER_STREAMING) && !call->in_eof &&
        call->in_off == call->in.len) {
        ssize_t k;
        while ((k = fill(call)) > 0)
            if (call->in.len - call->in_off > GRPC_PREFIX + call->srv->max_recv) {
                k = -EMSGSIZE;  /* more after the one message: not buffered without end */
                break;
            }
        if (k < 0) {
            rc = (int)k;
            goto fail;
        }
        call->in_eof = true;
    }
    *msg = m;
    return 1;
fail:
    call->in_err = true;
    return rc;
}

static int resp_header(tern_grpc_call *call, const char *name, const void *value, size_t len,
                       bool trailer)
{
    size_t nl = strlen(name);
    char lname[128];
    /* two reserved trailers are the application's to send: richer errors,
     * and gRFC A6's pushback (how long a client should wait to retry) */
    bool details = trailer && (!strcasecmp(name, "grpc-status-details-bin") ||
                               !strcasecmp(name, "grpc-retry-pushback-ms"));
    if (!tern__grpc_md_name_ok(name) || nl >= sizeof lname || (tern__grpc_md_reserved(name) && !details))
        return -EINVAL;
    for (size_t i = 0; i <= nl; i++)
        lname[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    const char *v = value;
    if (tern__grpc_md_is_bin(lname, nl)) {
        char *b = tern_http_req_alloc(call->r, (len + 2) / 3 * 4 + 1);
        if (!b)
            return -ENOMEM;
        tern__grpc_b64_encode(value, len, b);
        v = b;
    } else if (!v || !tern__grpc_md_value_ok(v, strlen(v))) {
        return -EINVAL;
    }
    if (!trailer)
        return tern_http_resp_add_header(call->w, lname, v);
    if (call->ntrailers == MAX_USER_TRAILERS)
        return -ENOSPC;
    if (!call->trailer_kv &&
        !(call->trailer_kv = tern_http_req_alloc(call->r, 2 * MAX_USER_TRAILERS * sizeof *call->trailer_kv)))
        return -ENOMEM;
    const char *n = tern_http_req_strdup(call->r, lname);
    if (v == value)     /* the caller's text: copied (a -bin value is already in the request's memory) */
        v = n ? tern_http_req_strdup(call->r, v) : NULL;
    if (!n || !v)
        return -ENOMEM;
    call->trailer_kv[2 * call->ntrailers] = n;
    call->trailer_kv[2 * call->ntrailers + 1] = v;
    call->ntrailers++;
    return 0;
}

int tern_grpc_call_add_header(tern_grpc_call *call, const char *name, const void *value, size_t len)
{
    TERN_CHECK_ARG(call);
    if (call->sent)
        return -EALREADY;
    return resp_header(call, name, value, len, false);
}

int tern_grpc_call_add_trailer(tern_grpc_call *call, const char *name, const void *value, size_t len)
{
    TERN_CHECK_ARG(call);
    return resp_header(call, name, value, len, true);
}

int tern_grpc_call_set_compression(tern_grpc_call *call, const char *encoding)
{
    TERN_CHECK_ARG(call);
    bool on = encoding && strcmp(encoding, "identity") != 0;
    if (on && (strcmp(encoding, "gzip") != 0 || !call->accept_gzip))
        return -ENOTSUP;
    if (call->sent && !call->gzip_announced)
        return -EALREADY;
    call->gzip_out = on;
    return 0;
}

int tern_grpc_call_send(tern_grpc_call *call, const ProtobufCMessage *msg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(call);
    if (!msg)
        return -EINVAL;
    if (ctx && ctx != call->ctx && tern_ctx_err(ctx))
        return tern_ctx_err(ctx);
    if (!call->sent) {
        call->sent = true;
        if (call->gzip_out && tern_http_resp_set_header(call->w, "grpc-encoding", "gzip") < 0)
            return -ENOMEM;
        call->gzip_announced = call->gzip_out;
    }
    int rc;
    size_t n = protobuf_c_message_get_packed_size(msg);
    if ((call->srv->max_send && n > call->srv->max_send) || n > UINT32_MAX)
        return -EMSGSIZE;
    /* A message that fits is packed into the free tail of the input
     * buffer (on the stack for a small call, see serve_call): nothing
     * reads those bytes before the write below has copied them, and a
     * buffer of its own on this stack was a second page of stack for
     * every call. */
    if (call->in_off == call->in.len)
        call->in.len = call->in_off = 0;
    if (!call->gzip_out && call->in.cap - call->in.len >= n + GRPC_PREFIX) {
        uint8_t *b = (uint8_t *)call->in.p + call->in.len;
        protobuf_c_message_pack(msg, b + GRPC_PREFIX);
        tern__grpc_prefix_put(b, false, (uint32_t)n);
        ssize_t k = tern_http_resp_write(call->w, b, n + GRPC_PREFIX);
        rc = k < 0 ? (int)k : 0;
    } else {
        tern__growbuf out = { 0 };
        rc = tern__grpc_pack(msg, call->gzip_out, 0, &out, &call->scratch);
        if (rc == 0) {
            ssize_t k = tern_http_resp_write(call->w, out.p, out.len);
            rc = k < 0 ? (int)k : 0;
        }
        tern__growbuf_free(&out);
    }
    if (rc == 0 && call->streaming_out)
        rc = tern_http_resp_flush(call->w);
    if (rc < 0 && tern_ctx_err(call->ctx))
        rc = tern_ctx_err(call->ctx);
    return rc;
}

/* ---- metadata -------------------------------------------------------------- */

static int load_md(tern_grpc_call *call)
{
    if (call->md_done)
        return 0;
    size_t n = tern_http_req_header_count(call->r);
    tern_grpc_metadata *md = tern_http_req_alloc(call->r, (n ? n : 1) * sizeof *md);
    if (!md)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        if (tern_http_req_header_at(call->r, i, &name, &value) < 0)
            break;
        if (tern__grpc_md_reserved(name) || !strcasecmp(name, "user-agent") ||
            !strcasecmp(name, "accept-encoding"))
            continue;
        size_t nl = strlen(name), vl = strlen(value);
        if (tern__grpc_md_is_bin(name, nl)) {
            uint8_t *d = tern_http_req_alloc(call->r, vl * 3 / 4 + 4);
            if (!d)
                return -ENOMEM;
            ssize_t dl = tern__grpc_b64_decode(value, vl, d);
            if (dl < 0)
                continue;       /* not base64: not metadata we can hand out */
            md[k++] = (tern_grpc_metadata){ name, d, (size_t)dl };
        } else {
            md[k++] = (tern_grpc_metadata){ name, value, vl };
        }
    }
    call->md = md;
    call->nmd = k;
    call->md_done = true;
    return 0;
}

const char *tern_grpc_call_metadata(const tern_grpc_call *call, const char *name)
{
    TERN_CHECK_ARG(call);
    if (!name || tern__grpc_md_is_bin(name, strlen(name)) || tern__grpc_md_reserved(name))
        return NULL;
    return tern_http_req_header(call->r, name);
}

int tern_grpc_call_metadata_bin(tern_grpc_call *call, const char *name, const void **data, size_t *len)
{
    TERN_CHECK_ARG(call);
    int rc = load_md(call);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < call->nmd; i++)
        if (!strcasecmp(call->md[i].name, name)) {
            *data = call->md[i].value;
            *len = call->md[i].len;
            return 0;
        }
    if (tern_http_req_header(call->r, name))
        return -EBADMSG;
    return -ENOENT;
}

int tern_grpc_call_metadata_at(tern_grpc_call *call, size_t i, tern_grpc_metadata *out)
{
    TERN_CHECK_ARG(call);
    int rc = load_md(call);
    if (rc < 0)
        return rc;
    if (i >= call->nmd)
        return -ERANGE;
    *out = call->md[i];
    return 0;
}

/* ---- serving ------------------------------------------------------------- */

int tern_grpc_call_next(tern_grpc_call *call)
{
    TERN_CHECK_ARG(call);
    const tern_grpc_server *s = call->srv;
    int rc;
    if (call->next_icept < s->nicepts) {
        const tern_grpc_interceptor *ic = &s->icepts[call->next_icept++];
        rc = ic->fn(call, ic->arg);
    } else if (!call->ms->m->invoke) {
        rc = tern_grpc_call_fail(call, TERN_GRPC_UNIMPLEMENTED, "method %s is not implemented",
                                 call->ms->m->path);
    } else {
        rc = call->ms->m->invoke(call, call->ms->svc->impl, call->ms->svc->arg);
    }
    if (rc < 0 && !call->status_set) {
        /* the handler's error as a status; the deadline's own code when
         * the call's ctx ended whatever the error was */
        int cerr = tern_ctx_err(call->ctx);
        tern_grpc_code code = tern_grpc_errno_to_code(cerr && (rc == -EIO || rc == -ECONNRESET) ? cerr : rc);
        call->status_set = true;
        call->code = code;
        call->message = tern_http_req_strdup(call->r, tern_strerror(rc));
    }
    return rc;
}

/* The status: as trailers after messages, or as the headers of a
 * trailers-only response. */
static void finish(tern_grpc_call *call)
{
    tern_grpc_code code = call->status_set ? call->code : TERN_GRPC_OK;
    /* not snprintf: its frames were the deepest point of a unary call's
     * stack (serve_call's comment) */
    char num[TERN__DEC_MAX];
    if ((int)code >= 0)
        tern__dec_u64(num, (uint64_t)code);
    else
        snprintf(num, sizeof num, "%d", (int)code);
    char *enc = NULL;
    if (call->message && *call->message && code != TERN_GRPC_OK)
        enc = tern_grpc_message_encode(call->message);
    if (!call->sent) {
        /* trailers-only: one HEADERS frame that ends the stream */
        tern_http_resp_set_header(call->w, "grpc-status", num);
        if (enc)
            tern_http_resp_set_header(call->w, "grpc-message", enc);
        for (size_t i = 0; i < call->ntrailers; i++)
            tern_http_resp_add_header(call->w, call->trailer_kv[2 * i], call->trailer_kv[2 * i + 1]);
    } else {
        tern_http_resp_set_trailer(call->w, "grpc-status", num);
        if (enc)
            tern_http_resp_set_trailer(call->w, "grpc-message", enc);
        for (size_t i = 0; i < call->ntrailers; i++)
            tern_http_resp_set_trailer(call->w, call->trailer_kv[2 * i], call->trailer_kv[2 * i + 1]);
    }
    free(enc);
}

/* A trailers-only answer before any handler ran. */
static int refuse(tern_http_resp *w, tern_grpc_code code, const char *msg)
{
    char num[8];
    snprintf(num, sizeof num, "%d", (int)code);
    tern_http_resp_set_header(w, "content-type", "application/grpc");
    tern_http_resp_set_header(w, "grpc-status", num);
    char *enc = tern_grpc_message_encode(msg);
    if (enc)
        tern_http_resp_set_header(w, "grpc-message", enc);
    free(enc);
    return 0;
}

static bool accepts_gzip(const char *v)
{
    if (!v)
        return false;
    for (const char *p = v; (p = strstr(p, "gzip")); p += 4) {
        bool start = p == v || p[-1] == ',' || p[-1] == ' ';
        bool end = p[4] == '\0' || p[4] == ',' || p[4] == ' ';
        if (start && end)
            return true;
    }
    return false;
}

static int serve_call(tern_grpc_server *s, tern_http_req *r, tern_http_resp *w, const method_slot *ms)
{
    tern_http_resp_set_header(w, "content-type", "application/grpc");
    tern_http_resp_set_header(w, "grpc-accept-encoding", TERN__GRPC_ACCEPT_ENCODING);
    if (!ms)
        return refuse(w, TERN_GRPC_UNIMPLEMENTED, "unknown service or method");
    const char *enc = tern_http_req_header(r, "grpc-encoding");
    bool req_gzip = false;
    if (enc && strcmp(enc, "identity") != 0) {
        if (strcmp(enc, "gzip") != 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "grpc-encoding %.100s is not supported", enc);
            return refuse(w, TERN_GRPC_UNIMPLEMENTED, msg);
        }
        req_gzip = true;
    }
    /* A small call touches no heap of its own: its first input (and, in
     * its free tail, its outgoing messages) and its unpacked messages
     * start on this coroutine's stack.  Small, so that a unary call's
     * whole stack (the HTTP/2 stream's frames, these, protobuf-c, the
     * response path) stays within one 4 KiB page: 3.8 KB deep in a
     * Release build (gcc 12), where 2 KiB and 1 KiB here, a 2 KiB send
     * buffer and snprintf in finish() took 7.4 KB, two pages of RSS for
     * every call in flight and every spare coroutine after a burst
     * (bench/grpc_stack_depth.sh; bench/RESULTS.md, 2026-12-06).  Larger
     * messages move to the heap. */
    char inbuf[GRPC_STACK_IN];
    _Alignas(16) char abuf[sizeof(tern__arena_chunk) + GRPC_STACK_ARENA];
    tern__arena_chunk *ac = (tern__arena_chunk *)abuf;
    ac->next = NULL;
    ac->used = 0;
    ac->cap = sizeof abuf - sizeof *ac;
    tern_grpc_call call = {
        .srv = s, .ms = ms, .r = r, .w = w,
        .in = { .p = inbuf, .cap = sizeof inbuf, .fixed = true },
        .arena = { .head = ac, .fixed = ac },
        .req_gzip = req_gzip,
        .accept_gzip = accepts_gzip(tern_http_req_header(r, "grpc-accept-encoding")),
        .streaming_out = ms->m->type == TERN_GRPC_SERVER_STREAMING || ms->m->type == TERN_GRPC_BIDI_STREAMING,
    };
    const char *to = tern_http_req_header(r, "grpc-timeout");
    int64_t ns;
    if (to && tern_grpc_timeout_parse(to, &ns) == 0) {
        tern_ctx *c;
        int64_t now = tern_now();
        int64_t dl = ns > INT64_MAX - now ? INT64_MAX : now + ns;
        call.ctx = tern_http_req_ctx(r);
        if (tern_ctx_with_deadline(call.ctx, dl, &c) == 0) {
            if (tern_http_req_set_ctx(r, c) == 0)
                call.ctx = c;       /* the request frees it */
            else
                tern_ctx_free(c);
        }
    }
    if (tern_ctx_err(call.ctx))
        tern_grpc_call_fail(&call, TERN_GRPC_DEADLINE_EXCEEDED, "deadline exceeded before the call began");
    else
        tern_grpc_call_next(&call);
    finish(&call);
    tern__growbuf_free(&call.in);
    tern__growbuf_free(&call.scratch);
    tern__growbuf_free(&call.zin);
    tern__arena_free(&call.arena);
    return 0;
}

int tern__grpc_server_serve_http(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern_grpc_server *s = arg;
    if (!is_grpc_type(tern_http_req_header(r, "content-type")) || strcmp(tern_http_req_method(r), "POST"))
        return tern_http_resp_error(w, 415, "gRPC requires content-type application/grpc\n");
    return serve_call(s, r, w, lookup(s, tern_http_req_target(r)));
}

int tern_grpc_server_http_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    tern_grpc_server *s = arg;
    TERN_CHECK_ARG(s);
    const char *ct = tern_http_req_header(r, "content-type");
    const method_slot *ms = lookup(s, tern_http_req_target(r));
    if (is_grpc_type(ct) && !strcmp(tern_http_req_method(r), "POST"))
        return serve_call(s, r, w, ms);
    if (ms)
        return tern_http_resp_error(w, 415, "gRPC requires content-type application/grpc\n");
    int rc = tern_http_next(r, w);
    return rc;
}
