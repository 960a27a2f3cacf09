/*
 * client.c - the client side of a call: one HTTP/2 connection per
 * subchannel, driven on nghttp2 by two coroutines, and tern_grpc_stream /
 * tern_grpc_unary on it.
 *
 * Why not tern_http_client: its requests send a whole body and wait for
 * the response head before returning, while a gRPC call streams both ways
 * (a client-streaming server answers only at the end, a bidi one
 * interleaves), and a channel wants its own connection per address for
 * balancing and backoff, not a pool per origin.  nghttp2 does the
 * framing, HPACK and flow control; this file is the glue, in the same
 * shape as the HTTP client's (h2_client_internal.h):
 *
 *   - one mutex per connection (mu) guards the session and every stream
 *     on it; it is never held across a network call;
 *   - the reader coroutine reads the socket and feeds
 *     nghttp2_session_mem_recv under mu (the callbacks below run there,
 *     filling streams' input buffers and waking their callers on `cond`);
 *   - the writer coroutine waits on wcond, takes up to 64 KiB of frames
 *     from nghttp2_session_mem_send under mu, and writes them without it;
 *   - a caller packs messages into its stream's output buffer (the data
 *     provider copies from it as the peer's window allows: a caller waits
 *     while more than 64 KiB are queued), and takes messages out of the
 *     input buffer, giving the window back as it does
 *     (NO_AUTO_WINDOW_UPDATE): a stream holds at most its window of
 *     unread input.
 *
 * A connection is freed at its last reference: the subchannel's, each
 * driver's and each stream's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/check.h"
#include "base/rand.h"
#include "grpc/grpc_internal.h"
#include "tern/error.h"
#include "tern/net.h"
#include "tern/runtime.h"
#include "tern/tls.h"

#define READ_BUF (16 * 1024)
#define WRITE_BATCH (64 * 1024)
#define OUT_HIGH (64 * 1024)            /* a stream's queued request bytes */
#define STREAM_WINDOW (1024 * 1024)
#define CONN_WINDOW (16 * 1024 * 1024)
#define MAX_MD 64                       /* response metadata entries kept per call */

struct gconn {
    subch *sc;
    tern_grpc_channel *ch;
    tern_conn *c;
    nghttp2_session *sess;
    tern_mutex mu;
    tern_cond wcond;
    tern_grpc_stream *streams;
    atomic_int refs;
    atomic_int load;                    /* streams open */
    atomic_bool dead;
    atomic_bool goaway;
    int err;
    bool https;
    tern_cond kcond;                    /* the keepalive coroutine: an ack, or the end */
    bool ping_acked;
};

typedef struct md_entry {
    char *name, *value;                 /* malloc'd together */
    size_t vlen;
    bool trailer;
} md_entry;

struct tern_grpc_stream {
    gconn *gc;
    tern_grpc_stream *prev, *next;      /* gc->streams */
    int32_t id;
    const tern_grpc_method_desc *m;
    tern_ctx *ctx;
    tern_cond cond;
    bool gzip_out;
    bool gzip_opened;                   /* opened with compression gzip (grpc-encoding sent) */
    bool unary_alloc;                   /* unpack with the default allocator (tern_grpc_unary) */
    /* request side */
    tern__growbuf out;
    size_t out_off;
    bool out_eof;                       /* half-closed by the caller */
    bool deferred;
    /* response side */
    tern__growbuf in;
    size_t in_off;
    size_t unconsumed;                  /* received, window not yet given back */
    int http_status;
    bool got_headers;
    bool eof;                           /* END_STREAM received */
    bool closed;                        /* the session let it go */
    uint32_t rst;
    bool resp_gzip;
    bool bad_encoding;
    bool has_grpc_status;
    int grpc_status;
    char *grpc_message;                 /* raw (percent-encoded), malloc'd */
    md_entry md[MAX_MD];
    size_t nmd, md_told;
    tern_grpc_metadata_fn *on_md;
    void *on_md_arg;
    /* results */
    bool done;                          /* status final */
    int result;
    tern_grpc_status status;
    tern__arena arena;
    tern__growbuf msg;                  /* the message being unpacked */
    tern__growbuf zbuf;
    int64_t pushback_ms;                /* grpc-retry-pushback-ms: -1 none, -2 "do not retry" */
    bool got_msg;                       /* a response message arrived */
    bool committed;                     /* response headers arrived (not Trailers-Only): no retry */
    tern_grpc_client_call *cc;          /* interceptors' view, told of the end; owned */
    struct stream_retry *retry;         /* the method's retryPolicy, or NULL */
    /* the channel's picker: this attempt's pick, outstanding while picked */
    tern_grpc_pick pick;
    bool picked;
    int64_t picked_at;
};

/* A stream that may be made again (gRFC A6), with the request messages
 * sent so far replayed, while nothing committed it (response headers or a
 * message) and the replay buffer stayed under its bound: under its
 * method's retryPolicy (mc), and transparently, once and at once, when
 * the server refused it unprocessed (RST_STREAM REFUSED_STREAM before any
 * headers, which is also how a stream above a GOAWAY's last id ends). */
#define REPLAY_MAX (64u * 1024)
typedef struct stream_retry {
    tern_grpc_channel *ch;
    const tern__grpc_method_config *mc; /* NULL: transparent retry only */
    tern_grpc_call_options opts;        /* md deep-copied: the caller's may be gone */
    tern_grpc_metadata *md;
    size_t nmd;
    tern__growbuf replay;               /* every packed request message */
    void *key;                          /* the affinity key, copied */
    bool overflow;                      /* past REPLAY_MAX, or committed: no more retries */
    bool transparent_used;              /* the one transparent retry was made */
    int attempts;                       /* counted ones: transparent retries are not */
    double backoff;
} stream_retry;

static void retry_free(stream_retry *r);

void tern__grpc_conn_ref(gconn *gc)
{
    atomic_fetch_add(&gc->refs, 1);
}

void tern__grpc_conn_unref(gconn *gc)
{
    if (atomic_fetch_sub(&gc->refs, 1) != 1)
        return;
    tern_grpc_channel *ch = gc->ch;
    TERN_ASSERT(gc->streams == NULL);
    nghttp2_session_del(gc->sess);
    tern_conn_free(gc->c);
    free(gc);
    tern_waitgroup_done(&ch->conns);
}

int tern__grpc_conn_load(gconn *gc)
{
    return atomic_load(&gc->load);
}

bool tern__grpc_conn_usable(gconn *gc)
{
    return !atomic_load(&gc->dead) && !atomic_load(&gc->goaway);
}

static void wake_writer(gconn *gc)
{
    tern_cond_signal(&gc->wcond);
}

/* Under mu. */
static void kill_locked(gconn *gc, int err)
{
    if (atomic_load(&gc->dead))
        return;
    gc->err = err;
    atomic_store(&gc->dead, true);
    for (tern_grpc_stream *s = gc->streams; s; s = s->next) {
        s->closed = true;
        tern_cond_broadcast(&s->cond);
    }
    tern_cond_broadcast(&gc->wcond);
    tern_cond_broadcast(&gc->kcond);
    if (gc->c)
        shutdown(tern_conn_fd(gc->c), SHUT_RDWR);   /* the reader's read returns */
}

/* Under mu.  A connection the server sent GOAWAY takes no new streams:
 * once its last one is gone it is closed here, as the server would close
 * it; left open, a server that never closes it (holding a stream above
 * the GOAWAY's last id, unanswered) kept its coroutines, and so
 * tern_grpc_channel_free, waiting forever. */
static void close_if_drained(gconn *gc)
{
    if (atomic_load(&gc->goaway) && !gc->streams)
        kill_locked(gc, -ECONNABORTED);
}

void tern__grpc_conn_kill(gconn *gc, int err)
{
    tern_mutex_lock(&gc->mu);
    kill_locked(gc, err);
    tern_mutex_unlock(&gc->mu);
}

/* ---- nghttp2's callbacks (under mu) --------------------------------------- */

static tern_grpc_stream *stream_of(nghttp2_session *sess, int32_t id)
{
    return nghttp2_session_get_stream_user_data(sess, id);
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    tern_grpc_stream *s = stream_of(sess, f->hd.stream_id);
    if (!s || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    bool trailer = s->got_headers;
    const char *n = (const char *)name, *v = (const char *)value;
    if (nl == 7 && !memcmp(n, ":status", 7)) {
        s->http_status = atoi(v);
        return 0;
    }
    if (nl == 11 && !memcmp(n, "grpc-status", 11)) {
        s->has_grpc_status = true;
        s->grpc_status = atoi(v);
        return 0;
    }
    if (nl == 12 && !memcmp(n, "grpc-message", 12)) {
        free(s->grpc_message);
        s->grpc_message = strndup(v, vl);
        return 0;
    }
    if (nl == 22 && !memcmp(n, "grpc-retry-pushback-ms", 22)) {
        /* gRFC A6: a non-negative integer is the wait before a retry; anything
         * else says "do not retry" */
        char *end;
        char b[24];
        snprintf(b, sizeof b, "%.*s", (int)(vl < 23 ? vl : 23), v);
        long long ms = strtoll(b, &end, 10);
        s->pushback_ms = vl > 0 && vl < 20 && *end == '\0' && ms >= 0 && b[0] != '-' && b[0] != '+' ? ms : -2;
        return 0;
    }
    if (nl == 13 && !memcmp(n, "grpc-encoding", 13)) {
        if (vl == 4 && !memcmp(v, "gzip", 4))
            s->resp_gzip = true;
        else if (!(vl == 8 && !memcmp(v, "identity", 8)))
            s->bad_encoding = true;
        return 0;
    }
    bool details = nl == 23 && !memcmp(n, "grpc-status-details-bin", 23);
    if (n[0] == ':' || (tern__grpc_md_reserved(n) && !details) || s->nmd == MAX_MD || !s->on_md)
        return 0;
    char *p = malloc(nl + vl + 2);
    if (!p)
        return 0;
    memcpy(p, n, nl);
    p[nl] = '\0';
    memcpy(p + nl + 1, v, vl);
    p[nl + 1 + vl] = '\0';
    s->md[s->nmd++] = (md_entry){ p, p + nl + 1, vl, trailer };
    return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *ud)
{
    gconn *gc = ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        atomic_store(&gc->goaway, true);
        close_if_drained(gc);
        if (f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM && f->goaway.opaque_data_len == 14 &&
            !memcmp(f->goaway.opaque_data, "too_many_pings", 14)) {
            int64_t t = atomic_load(&gc->ch->keepalive_time);     /* gRPC A8: back off */
            if (t > 0 && t < INT64_MAX / 2)
                atomic_store(&gc->ch->keepalive_time, 2 * t);
        }
        return 0;
    }
    if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
        gc->ping_acked = true;
        tern_cond_broadcast(&gc->kcond);
        return 0;
    }
    tern_grpc_stream *s = stream_of(sess, f->hd.stream_id);
    if (!s)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        s->got_headers = true;
        /* gRFC A6: response headers commit the call; a Trailers-Only answer
         * (its one HEADERS carries grpc-status, whatever frame ends the
         * stream after it) does not */
        if (!s->has_grpc_status)
            s->committed = true;
        else if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
            /* Trailers-Only: its metadata is the call's trailers */
            for (size_t i = 0; i < s->nmd; i++)
                s->md[i].trailer = true;
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        s->eof = true;
    tern_cond_broadcast(&s->cond);
    return 0;
}

static int on_data(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    tern_grpc_stream *s = stream_of(sess, id);
    if (!s) {
        nghttp2_session_consume(sess, id, len);
        return 0;
    }
    if (s->in_off == s->in.len) {
        s->in_off = s->in.len = 0;
    } else if (s->in_off > s->in.cap / 2) {
        memmove(s->in.p, s->in.p + s->in_off, s->in.len - s->in_off);
        s->in.len -= s->in_off;
        s->in_off = 0;
    }
    if (tern__growbuf_append(&s->in, data, len) < 0) {
        nghttp2_session_consume(sess, id, len);
        nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
        tern_cond_broadcast(&s->cond);
        return 0;
    }
    s->unconsumed += len;
    /* The window comes back as messages are taken out, except while the
     * first message is still incomplete: it needs the rest whatever the
     * caller does (a message larger than the window would stall), and it
     * is bounded by the receive limit. */
    size_t have = s->in.len - s->in_off;
    bool incomplete = have < GRPC_PREFIX;
    if (!incomplete) {
        bool z;
        uint32_t ml;
        incomplete = tern__grpc_prefix_parse((uint8_t *)s->in.p + s->in_off, &z, &ml) == 0 &&
                     ml <= s->gc->ch->max_recv && have < GRPC_PREFIX + (size_t)ml;
    }
    if (incomplete) {
        nghttp2_session_consume(sess, id, s->unconsumed);
        s->unconsumed = 0;
    }
    tern_cond_broadcast(&s->cond);
    return 0;
}

static int on_close(nghttp2_session *sess, int32_t id, uint32_t code, void *ud)
{
    (void)ud;
    tern_grpc_stream *s = stream_of(sess, id);
    if (!s)
        return 0;
    s->closed = true;
    s->rst = code;
    nghttp2_session_set_stream_user_data(sess, id, NULL);
    tern_cond_broadcast(&s->cond);
    return 0;
}

/* The request body: the caller's queued messages. */
static ssize_t provide(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    (void)ud;
    (void)src;
    tern_grpc_stream *s = stream_of(sess, id);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;   /* freed: reset */
    size_t avail = s->out.len - s->out_off;
    if (avail == 0 && !s->out_eof) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t k = avail < len ? avail : len;
    if (k)      /* half-closed before any message: no buffer at all */
        memcpy(buf, s->out.p + s->out_off, k);
    s->out_off += k;
    if (s->out_off == s->out.len && s->out_eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    tern_cond_broadcast(&s->cond);
    return (ssize_t)k;
}

/* ---- the drivers ------------------------------------------------------------ */

static int reader_co(void *arg)
{
    gconn *gc = arg;
    uint8_t *buf = malloc(READ_BUF);
    int err = buf ? 0 : -ENOMEM;
    while (err == 0) {
        ssize_t n = tern_conn_read(gc->c, buf, READ_BUF, NULL);
        if (n <= 0) {
            err = n == 0 ? -ECONNRESET : (int)n;
            break;
        }
        tern_mutex_lock(&gc->mu);
        if (atomic_load(&gc->dead)) {
            tern_mutex_unlock(&gc->mu);
            break;
        }
        ssize_t k = nghttp2_session_mem_recv(gc->sess, buf, (size_t)n);
        if (k < 0)
            err = -EPROTO;
        else
            wake_writer(gc);
        tern_mutex_unlock(&gc->mu);
    }
    free(buf);
    tern_mutex_lock(&gc->mu);
    kill_locked(gc, err ? err : -ECONNRESET);
    tern_mutex_unlock(&gc->mu);
    tern__grpc_channel_conn_lost(gc->sc, gc);
    tern__grpc_conn_unref(gc);
    return 0;
}

static int writer_co(void *arg)
{
    gconn *gc = arg;
    tern__growbuf out = { 0 };
    tern_mutex_lock(&gc->mu);
    while (!atomic_load(&gc->dead)) {
        out.len = 0;
        int err = 0;
        while (out.len < WRITE_BATCH) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(gc->sess, &p);
            if (n < 0) {
                err = -EPROTO;
                break;
            }
            if (n == 0)
                break;
            if (tern__growbuf_append(&out, p, (size_t)n) < 0) {
                err = -ENOMEM;
                break;
            }
        }
        if (err) {
            kill_locked(gc, err);
            break;
        }
        if (out.len == 0) {
            tern_cond_wait(&gc->wcond, &gc->mu, NULL);
            continue;
        }
        tern_mutex_unlock(&gc->mu);
        size_t off = 0;
        while (off < out.len && err == 0) {
            ssize_t w = tern_conn_write(gc->c, out.p + off, out.len - off, NULL);
            if (w < 0)
                err = (int)w;
            else
                off += (size_t)w;
        }
        tern_mutex_lock(&gc->mu);
        if (err)
            kill_locked(gc, err);
    }
    tern_mutex_unlock(&gc->mu);
    tern__growbuf_free(&out);
    tern__grpc_conn_unref(gc);
    return 0;
}

/* Under mu: wait on kcond for up to ns; false once the connection is dead. */
static bool keepalive_wait(gconn *gc, int64_t ns)
{
    tern_ctx *c;
    if (tern_ctx_with_timeout(NULL, ns, &c) < 0)
        return !atomic_load(&gc->dead);
    tern_cond_wait(&gc->kcond, &gc->mu, c);
    tern_ctx_free(c);
    return !atomic_load(&gc->dead);
}

/* gRPC's client keepalive (A8): PING every keepalive_time, and the
 * connection is dead when its ack takes longer than keepalive_timeout. */
static int keepalive_co(void *arg)
{
    gconn *gc = arg;
    tern_grpc_channel *ch = gc->ch;
    tern_mutex_lock(&gc->mu);
    while (keepalive_wait(gc, atomic_load(&ch->keepalive_time))) {
        if (!gc->streams && !ch->keepalive_without_calls)
            continue;
        gc->ping_acked = false;
        if (nghttp2_submit_ping(gc->sess, NGHTTP2_FLAG_NONE, NULL) != 0)
            break;
        wake_writer(gc);
        int64_t until = tern_now() + ch->keepalive_timeout;
        while (!gc->ping_acked && !atomic_load(&gc->dead) && tern_now() < until)
            keepalive_wait(gc, until - tern_now());
        if (!gc->ping_acked && !atomic_load(&gc->dead))
            kill_locked(gc, -ECONNABORTED);     /* the watchdog: the peer is gone */
    }
    tern_mutex_unlock(&gc->mu);
    tern__grpc_conn_unref(gc);
    return 0;
}

static int dial(subch *sc, tern_ctx *ctx, tern_conn **out)
{
    tern_grpc_channel *ch = sc->ch;
    int rc;
    if (!strncmp(sc->addr, "unix:", 5))
        rc = tern_conn_dial(TERN_NET_UNIX, sc->addr + 5, out, ctx);
    else
        rc = tern_conn_dial(TERN_NET_TCP, sc->addr, out, ctx);
    if (rc < 0)
        return rc;
    tern_conn_set_nodelay(*out, true);
    if (ch->tls) {
        rc = tern_tls_connect(*out, ch->tls, ch->server_name, ctx);
        if (rc == 0) {
            const char *alpn = tern_tls_alpn(*out);
            if (alpn && strcmp(alpn, "h2") != 0)
                rc = -EPROTO;   /* the server chose HTTP/1.1: no gRPC there */
        }
        if (rc < 0) {
            tern_conn_free(*out);
            *out = NULL;
        }
    }
    return rc;
}

int tern__grpc_conn_open(subch *sc, tern_ctx *ctx, gconn **out)
{
    tern_grpc_channel *ch = sc->ch;
    tern_ctx *dctx;
    int rc = tern_ctx_with_timeout(ctx, ch->min_connect > sc->backoff ? ch->min_connect : sc->backoff, &dctx);
    if (rc < 0)
        return rc;
    tern_conn *c;
    rc = dial(sc, dctx, &c);
    tern_ctx_free(dctx);
    if (rc < 0)
        return rc;
    gconn *gc = calloc(1, sizeof *gc);
    if (!gc) {
        tern_conn_free(c);
        return -ENOMEM;
    }
    gc->sc = sc;
    gc->ch = ch;
    gc->c = c;
    gc->https = ch->tls != NULL;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0) {
        tern_conn_free(c);
        free(gc);
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    rc = nghttp2_session_client_new2(&gc->sess, cb, gc, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rc != 0) {
        tern_conn_free(c);
        free(gc);
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64 * 1024 },
    };
    nghttp2_submit_settings(gc->sess, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv);
    nghttp2_session_set_local_window_size(gc->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    atomic_init(&gc->refs, 3);          /* the subchannel's, the reader's, the writer's */
    tern_waitgroup_add(&ch->conns, 1);
    if (tern_go_opts(reader_co, gc, &(tern_go_options){ .name = "grpc-conn-reader" }, NULL) < 0) {
        tern_waitgroup_done(&ch->conns);
        nghttp2_session_del(gc->sess);
        tern_conn_free(c);
        free(gc);
        return -ENOMEM;
    }
    if (tern_go_opts(writer_co, gc, &(tern_go_options){ .name = "grpc-conn-writer" }, NULL) < 0) {
        tern__grpc_conn_kill(gc, -ENOMEM);
        tern__grpc_conn_unref(gc);      /* the writer's */
        tern__grpc_conn_unref(gc);      /* the subchannel's */
        return -ENOMEM;
    }
    if (atomic_load(&ch->keepalive_time) > 0) {
        tern__grpc_conn_ref(gc);
        if (tern_go_opts(keepalive_co, gc, &(tern_go_options){ .name = "grpc-keepalive" }, NULL) < 0)
            tern__grpc_conn_unref(gc);  /* no keepalive: the connection still works */
    }
    *out = gc;
    return 0;
}

/* ---- streams ------------------------------------------------------------------ */

static nghttp2_nv nv(const char *n, const char *v)
{
    return (nghttp2_nv){ (uint8_t *)n, (uint8_t *)v, strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE };
}

static void lower(char *d, const char *s, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        d[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    d[i] = '\0';
}

typedef struct nva_build {
    nghttp2_nv *v;
    size_t n, cap;
    char **owned;
    size_t nowned;
} nva_build;

static int add_md(nva_build *b, const char *name, const void *value, size_t len)
{
    if (!tern__grpc_md_name_ok(name) || tern__grpc_md_reserved(name) || strlen(name) > 120)
        return -EINVAL;
    size_t nl = strlen(name);
    bool bin = tern__grpc_md_is_bin(name, nl);
    if (!bin && !tern__grpc_md_value_ok(value, len))
        return -EINVAL;
    char *p = malloc(nl + 1 + (bin ? (len + 2) / 3 * 4 + 1 : len + 1));
    if (!p)
        return -ENOMEM;
    b->owned[b->nowned++] = p;
    lower(p, name, nl + 1);
    char *v = p + nl + 1;
    if (bin) {
        len = tern__grpc_b64_encode(value, len, v);
    } else {
        memcpy(v, value, len);
        v[len] = '\0';
    }
    b->v[b->n++] = (nghttp2_nv){ (uint8_t *)p, (uint8_t *)v, nl, len, NGHTTP2_NV_FLAG_NONE };
    return 0;
}

/* Under mu. */
static void stream_unlink(tern_grpc_stream *s)
{
    gconn *gc = s->gc;
    if (s->prev)
        s->prev->next = s->next;
    else if (gc->streams == s)
        gc->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    close_if_drained(gc);
}

static int open_on(gconn *gc, tern_grpc_stream *s, const tern_grpc_call_options *o, int prev_attempts,
                   tern_ctx *ctx)
{
    tern_grpc_channel *ch = gc->ch;
    size_t nmeta = 0;
    if (o && o->metadata)
        while (o->metadata[2 * nmeta])
            nmeta++;
    size_t cap = 13 + nmeta + (o ? o->n_md : 0);
    nghttp2_nv *v = calloc(cap, sizeof *v);
    char **owned = calloc(cap, sizeof *owned);
    int rc = v && owned ? 0 : -ENOMEM;
    nva_build b = { v, 0, cap, owned, 0 };
    char tbuf[24], pbuf[16];
    if (rc == 0) {
        v[b.n++] = nv(":method", "POST");
        v[b.n++] = nv(":scheme", gc->https ? "https" : "http");
        v[b.n++] = nv(":path", s->m->path);
        v[b.n++] = nv(":authority", ch->authority);
        v[b.n++] = nv("te", "trailers");
        v[b.n++] = nv("content-type", "application/grpc");
        v[b.n++] = nv("user-agent", ch->user_agent);
        v[b.n++] = nv("grpc-accept-encoding", TERN__GRPC_ACCEPT_ENCODING);
        if (s->gzip_opened)
            v[b.n++] = nv("grpc-encoding", "gzip");
        int64_t left = tern_ctx_remaining(ctx);
        if (left >= 0) {
            tern_grpc_timeout_format(left > 0 ? left : 1, tbuf);
            v[b.n++] = nv("grpc-timeout", tbuf);
        }
        if (prev_attempts > 0) {
            snprintf(pbuf, sizeof pbuf, "%d", prev_attempts);
            v[b.n++] = nv("grpc-previous-rpc-attempts", pbuf);
        }
        for (size_t i = 0; rc == 0 && i < nmeta; i++) {
            const char *val = o->metadata[2 * i + 1];
            if (!val)
                rc = -EINVAL;
            else
                rc = add_md(&b, o->metadata[2 * i], val, strlen(val));
        }
        for (size_t i = 0; rc == 0 && o && i < o->n_md; i++)
            rc = add_md(&b, o->md[i].name, o->md[i].value, o->md[i].len);
    }
    if (rc == 0) {
        tern_mutex_lock(&gc->mu);
        if (!tern__grpc_conn_usable(gc)) {
            rc = -EAGAIN;
        } else {
            nghttp2_data_provider prd = { .source.ptr = s, .read_callback = provide };
            int32_t id = nghttp2_submit_request(gc->sess, NULL, v, b.n, &prd, s);
            if (id < 0) {
                rc = id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE ? -EAGAIN : -ENOMEM;
                if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
                    atomic_store(&gc->goaway, true);
            } else {
                s->id = id;
                s->gc = gc;
                atomic_fetch_add(&gc->load, 1);
                s->next = gc->streams;
                if (gc->streams)
                    gc->streams->prev = s;
                gc->streams = s;
                wake_writer(gc);
            }
        }
        tern_mutex_unlock(&gc->mu);
    }
    for (size_t i = 0; i < b.nowned; i++)
        free(owned[i]);
    free(owned);
    free(v);
    return rc;
}

/* Tell the channel's picker how the attempt on s went, once per pick. */
static void pick_report(tern_grpc_stream *s, tern_grpc_channel *ch, tern_grpc_pick_outcome o)
{
    if (!s->picked)
        return;
    s->picked = false;
    ch->picker->done(ch->picker_arg, &s->pick, tern_now() - s->picked_at, o);
}

/* An attempt that ended: the caller's when its ctx did (or it cancelled),
 * the address's on UNAVAILABLE (a broken connection is that too), else
 * an answer. */
static void pick_done(tern_grpc_stream *s, tern_grpc_channel *ch)
{
    tern_grpc_code code = s->status.code;
    tern_grpc_pick_outcome o = TERN_GRPC_PICK_OK;
    if (tern_ctx_err(s->ctx) || code == TERN_GRPC_CANCELLED || code == TERN_GRPC_DEADLINE_EXCEEDED)
        o = TERN_GRPC_PICK_LOCAL;
    else if (code == TERN_GRPC_UNAVAILABLE)
        o = TERN_GRPC_PICK_FAILED;
    pick_report(s, ch, o);
}

/* Pick a connection and open s on it (s then holds the pick's ref, and
 * with a picker the outstanding pick). */
static int pick_and_open(tern_grpc_channel *ch, tern_grpc_stream *s, const tern_grpc_call_options *opts,
                         int prev_attempts, tern_ctx *ctx)
{
    TERN_ASSERT(!s->picked);    /* the last attempt's pick was told */
    int rc = tern_ctx_err(ctx);
    for (int attempt = 0; rc == 0; attempt++) {
        gconn *gc;
        int why = 0;
        bool wfr = opts && opts->wait_for_ready;
        if (ch->picker) {
            rc = tern__grpc_channel_pick_by(ch, opts ? opts->affinity_key : NULL, opts ? opts->affinity_key_len : 0,
                                            wfr, ctx, &gc, &s->pick, &why);
            s->picked = rc == 0;
            /* the call's time from here: a dial, or a wait for another's,
             * is not the server's latency (and a first sample stays in a
             * time-weighted EWMA for its decay) */
            s->picked_at = tern_now();
        } else {
            rc = tern__grpc_channel_pick(ch, wfr, ctx, &gc, &why);
        }
        if (rc < 0) {
            if (rc == -EAGAIN && why)
                rc = why;
            break;
        }
        rc = open_on(gc, s, opts, prev_attempts, ctx);
        if (rc == 0)
            return 0;
        pick_report(s, ch, TERN_GRPC_PICK_LOCAL);  /* the connection was going away, or the call was bad */
        tern__grpc_conn_unref(gc);
        if (rc != -EAGAIN || attempt == 3)
            break;
        rc = 0;             /* that connection was going away: pick again */
    }
    return rc;
}

int tern__grpc_stream_open_raw(tern_grpc_channel *ch, const tern_grpc_method_desc *m,
                               const tern_grpc_call_options *opts, int prev_attempts, tern_grpc_stream **out,
                               tern_ctx *ctx)
{
    TERN_CHECK_ARG(ch);
    *out = NULL;
    if (!m || !m->path || !m->input || !m->output)
        return -EINVAL;
    if (opts && opts->compression && strcmp(opts->compression, "gzip") != 0 &&
        strcmp(opts->compression, "identity") != 0)
        return -ENOTSUP;
    tern_grpc_stream *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->m = m;
    s->ctx = ctx;
    s->pushback_ms = -1;
    s->gzip_out = opts && opts->compression && !strcmp(opts->compression, "gzip");
    s->gzip_opened = s->gzip_out;
    if (opts) {
        s->on_md = opts->on_metadata;
        s->on_md_arg = opts->on_metadata_arg;
    }
    int rc = pick_and_open(ch, s, opts, prev_attempts, ctx);
    if (rc == 0) {
        *out = s;
        return 0;
    }
    free(s);
    return rc;
}

/* Under mu: wait for a change on s, bounded by ctx and the stream's. */
static int wait_stream(tern_grpc_stream *s, tern_ctx *ctx)
{
    int rc = tern_cond_wait(&s->cond, &s->gc->mu, ctx ? ctx : s->ctx);
    if (rc == 0 && ctx && s->ctx && ctx != s->ctx)
        rc = tern_ctx_err(s->ctx);
    return rc;
}

/* Under mu: the call is over for us (ctx ended, or a local failure):
 * reset the stream and settle the status. */
static void abort_locked(tern_grpc_stream *s, int err, const char *why)
{
    if (s->done)
        return;
    gconn *gc = s->gc;
    if (!s->closed && !atomic_load(&gc->dead)) {
        nghttp2_submit_rst_stream(gc->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        wake_writer(gc);
    }
    s->done = true;
    s->result = err;
    s->status.code = tern_grpc_errno_to_code(err);
    free(s->status.message);
    s->status.message = why ? strdup(why) : NULL;
}

/* Whether a failed attempt of s may still be followed by another (as
 * far as the stream knows: the code is judged when recv sees it). */
static bool retry_open(const tern_grpc_stream *s)
{
    const stream_retry *r = s->retry;
    if (!r || r->overflow || s->got_msg || s->committed)
        return false;
    if (r->mc && r->attempts < r->mc->retry_max && s->pushback_ms != -2)
        return true;
    /* transparently: while nothing came back, or the server refused it */
    return !r->transparent_used && !s->got_headers &&
           (!(s->closed || s->eof) || s->rst == NGHTTP2_REFUSED_STREAM);
}

int tern__grpc_stream_enable_retry(tern_grpc_stream *s, tern_grpc_channel *ch, const tern__grpc_method_config *mc,
                                   const tern_grpc_call_options *o)
{
    stream_retry *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->ch = ch;
    r->mc = mc;
    r->attempts = 1;
    r->backoff = mc ? (double)mc->initial_backoff : 0;
    size_t nmeta = 0;
    if (o && o->metadata)
        while (o->metadata[2 * nmeta])
            nmeta++;
    size_t n = nmeta + (o ? o->n_md : 0);
    r->md = n ? calloc(n, sizeof *r->md) : NULL;
    int rc = n && !r->md ? -ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = i < nmeta ? o->metadata[2 * i] : o->md[i - nmeta].name;
        const void *val = i < nmeta ? o->metadata[2 * i + 1] : o->md[i - nmeta].value;
        size_t len = i < nmeta ? (val ? strlen(val) : 0) : o->md[i - nmeta].len;
        size_t nl = strlen(name);
        char *p = malloc(nl + 1 + len + 1);
        if (!p) {
            rc = -ENOMEM;
            break;
        }
        memcpy(p, name, nl + 1);
        if (len)
            memcpy(p + nl + 1, val, len);
        p[nl + 1 + len] = '\0';
        r->md[r->nmd++] = (tern_grpc_metadata){ p, p + nl + 1, len };
    }
    if (rc < 0) {
        for (size_t i = 0; i < r->nmd; i++)
            free((void *)r->md[i].name);
        free(r->md);
        free(r);
        return rc;
    }
    r->opts = (tern_grpc_call_options){ .md = r->md, .n_md = r->nmd, .wait_for_ready = o && o->wait_for_ready };
    if (o && o->affinity_key && o->affinity_key_len) {
        if (!(r->key = malloc(o->affinity_key_len))) {
            retry_free(r);
            return -ENOMEM;
        }
        memcpy(r->key, o->affinity_key, o->affinity_key_len);
        r->opts.affinity_key = r->key;
        r->opts.affinity_key_len = o->affinity_key_len;
    }
    s->retry = r;
    return 0;
}

static void retry_free(stream_retry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nmd; i++)
        free((void *)r->md[i].name);
    free(r->md);
    tern__growbuf_free(&r->replay);
    free(r->key);
    free(r);
}

/* Without mu, after recv saw this attempt fail with rc: wait out the
 * backoff (or the server's pushback) and open the next attempt on s,
 * replaying what was sent.  0: recv may go on; <0: the failure stands. */
static int stream_reopen(tern_grpc_stream *s, int prev_attempts);

/* What an attempt the caller has given up on left, read under mu: the
 * reader may still write to it (a late RST_STREAM or trailers, the
 * connection dying) until it is freed or reopened. */
typedef struct attempt_end {
    bool refused;       /* refused unprocessed, before any response headers */
    bool reopen;        /* retry_open */
    bool committed;     /* a message or response headers came */
    int64_t pushback_ms;
} attempt_end;

static attempt_end attempt_end_of(tern_grpc_stream *s)
{
    tern_mutex_lock(&s->gc->mu);
    attempt_end e = {
        .refused = s->rst == NGHTTP2_REFUSED_STREAM && !s->got_headers,
        .reopen = retry_open(s),
        .committed = s->got_msg || s->committed,
        .pushback_ms = s->pushback_ms,
    };
    tern_mutex_unlock(&s->gc->mu);
    return e;
}

static int stream_retry_attempt(tern_grpc_stream *s, int rc)
{
    stream_retry *r = s->retry;
    pick_done(s, r->ch);                /* the failed attempt's, before any next one picks */
    attempt_end e = attempt_end_of(s);
    if (!r->transparent_used && e.refused && e.reopen && !tern_ctx_err(s->ctx)) {
        /* never run there: again at once, not counted, not throttled */
        r->transparent_used = true;
        return stream_reopen(s, r->attempts - 1);
    }
    if (!r->mc)
        return rc;
    bool retryable = (unsigned)s->status.code <= 16 && (r->mc->retryable & (1u << s->status.code));
    if (retryable || e.pushback_ms >= 0)
        tern__grpc_throttle_record(r->ch->svc, true);
    if (!retryable || !e.reopen || r->attempts >= r->mc->retry_max || e.pushback_ms == -2 ||
        tern_ctx_err(s->ctx) || !tern__grpc_throttle_allow(r->ch->svc))
        return rc;
    int64_t wait;
    if (e.pushback_ms >= 0) {
        wait = e.pushback_ms * 1000000;
    } else {
        wait = (int64_t)(tern__rand01() * r->backoff);
        r->backoff *= r->mc->multiplier;
        if (r->backoff > (double)r->mc->max_backoff)
            r->backoff = (double)r->mc->max_backoff;
    }
    if (tern_ctx_sleep(wait, s->ctx) < 0)
        return rc;
    int orc = stream_reopen(s, r->attempts);
    if (orc < 0)
        return orc;
    r->attempts++;
    tern__grpc_cc_set_attempts(s->cc, r->attempts);
    return 0;
}

/* Open the next attempt of s (its last one over), replaying what was
 * sent.  0, or -errno: s then ends with that error on its old connection. */
static int stream_reopen(tern_grpc_stream *s, int prev_attempts)
{
    stream_retry *r = s->retry;
    /* leave the old attempt's connection (keeping its ref until the new
     * one is open: s must always have a connection for free) */
    gconn *old = s->gc;
    tern_mutex_lock(&old->mu);
    if (!s->closed && !atomic_load(&old->dead)) {
        if (!s->eof)
            nghttp2_submit_rst_stream(old->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        nghttp2_session_set_stream_user_data(old->sess, s->id, NULL);
        wake_writer(old);
    }
    stream_unlink(s);
    tern_mutex_unlock(&old->mu);
    /* a fresh response side; the request side restarts from the replay */
    for (size_t i = 0; i < s->nmd; i++)
        free(s->md[i].name);
    free(s->grpc_message);
    free(s->status.message);
    s->in.len = s->in_off = s->unconsumed = 0;
    s->http_status = 0;
    s->got_headers = s->eof = s->closed = s->resp_gzip = s->bad_encoding = s->has_grpc_status = false;
    s->rst = 0;
    s->grpc_status = 0;
    s->grpc_message = NULL;
    s->nmd = s->md_told = 0;
    s->done = false;
    s->result = 0;
    s->status = (tern_grpc_status){ 0 };
    s->pushback_ms = -1;
    s->deferred = false;
    s->out.len = s->out_off = 0;
    int orc = tern__growbuf_append(&s->out, r->replay.p, r->replay.len);
    s->gc = NULL;
    if (orc == 0)
        orc = pick_and_open(r->ch, s, &r->opts, prev_attempts, s->ctx);
    if (orc == 0) {
        atomic_fetch_sub(&old->load, 1);
        tern__grpc_conn_unref(old);
        return 0;
    }
    /* no new attempt: the stream ends here, on its old connection */
    s->gc = old;
    s->closed = s->done = true;
    s->result = orc;
    s->status.code = tern_grpc_errno_to_code(orc);
    s->status.message = strdup(tern_strerror(orc));
    return orc;
}

int tern_grpc_stream_send(tern_grpc_stream *s, const ProtobufCMessage *msg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    if (!msg)
        return -EINVAL;
    gconn *gc = s->gc;
    tern_mutex_lock(&gc->mu);
    int rc = 0;
    for (;;) {
        if (s->out_eof) {
            rc = -EPIPE;
            break;
        }
        if ((s->done || s->closed || s->eof) && retry_open(s)) {
            /* this attempt is over but another may come: the message
             * waits in the replay buffer for it */
            size_t at = s->retry->replay.len;
            rc = tern__grpc_pack(msg, s->gzip_out, 0, &s->retry->replay, &s->zbuf);
            if (rc == 0 && s->retry->replay.len > REPLAY_MAX)
                s->retry->overflow = true;
            else if (rc < 0)
                s->retry->replay.len = at;
            tern_mutex_unlock(&gc->mu);
            return rc;
        }
        if (s->done) {
            rc = s->result < 0 ? s->result : -EPIPE;
            break;
        }
        if (s->closed || s->eof) {
            rc = -EPIPE;        /* the server has finished: recv tells how */
            break;
        }
        size_t pending = s->out.len - s->out_off;
        if (pending == 0 || pending < OUT_HIGH)
            break;
        rc = wait_stream(s, ctx);
        if (rc < 0) {
            abort_locked(s, rc, rc == -ETIMEDOUT ? "deadline exceeded" : "cancelled");
            break;
        }
    }
    if (rc == 0) {
        if (s->out_off == s->out.len) {
            s->out_off = s->out.len = 0;
        } else if (s->out_off > 0) {
            memmove(s->out.p, s->out.p + s->out_off, s->out.len - s->out_off);
            s->out.len -= s->out_off;
            s->out_off = 0;
        }
        size_t at = s->out.len;
        rc = tern__grpc_pack(msg, s->gzip_out, 0, &s->out, &s->zbuf);
        if (rc == 0 && s->retry && !s->retry->overflow) {
            if (s->committed || s->got_msg ||
                s->retry->replay.len + (s->out.len - at) > REPLAY_MAX ||
                tern__growbuf_append(&s->retry->replay, s->out.p + at, s->out.len - at) < 0) {
                s->retry->overflow = true;      /* committed: no retry can replay it */
                tern__growbuf_free(&s->retry->replay);
            }
        }
        if (rc == 0 && s->deferred) {
            s->deferred = false;
            nghttp2_session_resume_data(gc->sess, s->id);
        }
        wake_writer(gc);
    }
    tern_mutex_unlock(&gc->mu);
    return rc;
}

int tern_grpc_stream_close_send(tern_grpc_stream *s, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    (void)ctx;      /* queues END_STREAM: never waits */
    gconn *gc = s->gc;
    tern_mutex_lock(&gc->mu);
    if (!s->out_eof) {
        s->out_eof = true;
        if (s->deferred && !s->closed) {
            s->deferred = false;
            nghttp2_session_resume_data(gc->sess, s->id);
        }
        wake_writer(gc);
    }
    tern_mutex_unlock(&gc->mu);
    return 0;
}

int tern_grpc_stream_set_compression(tern_grpc_stream *s, bool on)
{
    TERN_CHECK_ARG(s);
    if (!s->gzip_opened)
        return -ENOTSUP;
    tern_mutex_lock(&s->gc->mu);
    s->gzip_out = on;           /* read by send, under the same lock */
    tern_mutex_unlock(&s->gc->mu);
    return 0;
}

static tern_grpc_code http_to_code(int status)
{
    switch (status) {
    case 400: return TERN_GRPC_INTERNAL;
    case 401: return TERN_GRPC_UNAUTHENTICATED;
    case 403: return TERN_GRPC_PERMISSION_DENIED;
    case 404: return TERN_GRPC_UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return TERN_GRPC_UNAVAILABLE;
    default: return TERN_GRPC_UNKNOWN;
    }
}

/* Under mu: the stream has ended on the wire (eof or closed); settle. */
static void settle_locked(tern_grpc_stream *s)
{
    if (s->done)
        return;
    s->done = true;
    tern_grpc_code code;
    char *msg = NULL;
    if (s->has_grpc_status && s->eof) {
        code = (tern_grpc_code)s->grpc_status;
        if (s->grpc_message)
            msg = tern_grpc_message_decode(s->grpc_message);
    } else if (s->http_status && s->http_status != 200) {
        code = http_to_code(s->http_status);
        char b[64];
        snprintf(b, sizeof b, "HTTP status %d", s->http_status);
        msg = strdup(b);
    } else if (s->eof) {
        code = TERN_GRPC_INTERNAL;
        msg = strdup("the server ended the call without grpc-status");
    } else if (s->rst == NGHTTP2_CANCEL) {
        code = TERN_GRPC_CANCELLED;
        msg = strdup("the server cancelled the call (RST_STREAM CANCEL)");
    } else if (s->rst == NGHTTP2_REFUSED_STREAM) {
        code = TERN_GRPC_UNAVAILABLE;
        msg = strdup("the server refused the stream");
    } else if (atomic_load(&s->gc->dead)) {
        code = TERN_GRPC_UNAVAILABLE;
        msg = strdup(tern_strerror(s->gc->err ? s->gc->err : -ECONNRESET));
    } else {
        code = TERN_GRPC_INTERNAL;
        char b[64];
        snprintf(b, sizeof b, "stream reset (HTTP/2 error %u)", s->rst);
        msg = strdup(b);
    }
    s->status.code = code;
    free(s->status.message);
    s->status.message = msg;
    s->result = code == TERN_GRPC_OK ? 0 : tern_grpc_code_to_errno(code);
    if (code != TERN_GRPC_OK && !s->has_grpc_status && atomic_load(&s->gc->dead))
        s->result = s->gc->err ? s->gc->err : -ECONNRESET;
}

/* Tell the caller's callback of the metadata seen so far (without mu). */
static void tell_md(tern_grpc_stream *s, size_t upto)
{
    for (; s->md_told < upto; s->md_told++) {
        md_entry *e = &s->md[s->md_told];
        tern_grpc_metadata md = { e->name, e->value, e->vlen };
        uint8_t small[256];
        uint8_t *dec = NULL;
        size_t nl = strlen(e->name);
        if (tern__grpc_md_is_bin(e->name, nl)) {
            dec = e->vlen * 3 / 4 + 4 <= sizeof small ? small : malloc(e->vlen * 3 / 4 + 4);
            ssize_t dl = dec ? tern__grpc_b64_decode(e->value, e->vlen, dec) : -ENOMEM;
            if (dl < 0) {
                if (dec != small)
                    free(dec);
                continue;
            }
            md.value = dec;
            md.len = (size_t)dl;
        }
        s->on_md(&md, e->trailer, s->on_md_arg);
        if (dec && dec != small)
            free(dec);
    }
}

/* recv found the response bad after the wire had finished with it: the
 * call ends here, so its interceptors hear of it now */
static int recv_failed(tern_grpc_stream *s, int rc)
{
    pick_done(s, s->gc->ch);
    if (s->cc)
        tern__grpc_cc_finish(s->cc, s->status.code ? s->status.code : tern_grpc_errno_to_code(rc),
                             s->status.message);
    return rc;
}

int tern_grpc_stream_recv(tern_grpc_stream *s, ProtobufCMessage **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(s);
    *out = NULL;
again:;
    gconn *gc = s->gc;
    size_t max = gc->ch->max_recv;
    int rc;
    bool z = false;
    uint32_t len = 0;
    tern_mutex_lock(&gc->mu);
    for (;;) {
        size_t have = s->in.len - s->in_off;
        if (!s->done && have >= GRPC_PREFIX) {
            if (tern__grpc_prefix_parse((uint8_t *)s->in.p + s->in_off, &z, &len) < 0) {
                abort_locked(s, -EPROTO, "bad message prefix");
            } else if (len > max) {
                abort_locked(s, -ENOSPC, "received message larger than max");
                s->result = -EMSGSIZE;
            } else if (have >= GRPC_PREFIX + (size_t)len) {
                s->msg.len = 0;
                /* an empty message (grpc.testing.Empty) has no bytes to copy */
                rc = len ? tern__growbuf_append(&s->msg, s->in.p + s->in_off + GRPC_PREFIX, len) : 0;
                if (rc < 0) {
                    abort_locked(s, rc, "out of memory");
                } else {
                    s->in_off += GRPC_PREFIX + len;
                    size_t back = s->unconsumed < GRPC_PREFIX + len ? s->unconsumed : GRPC_PREFIX + len;
                    s->unconsumed -= back;
                    if (back && !s->closed && !atomic_load(&gc->dead)) {
                        nghttp2_session_consume(gc->sess, s->id, back);
                        wake_writer(gc);
                    }
                    rc = 1;
                    break;
                }
            }
        }
        /* no whole message buffered: the end, or wait for more */
        if (s->done || s->eof || s->closed) {
            if (!s->done && have > 0)
                abort_locked(s, -EPROTO, "the response ended inside a message");
            settle_locked(s);
            rc = s->result == 0 ? 0 : s->result;
            break;
        }
        rc = wait_stream(s, ctx);
        if (rc < 0) {
            abort_locked(s, rc, rc == -ETIMEDOUT ? "deadline exceeded" : "cancelled");
            rc = s->result;
            break;
        }
    }
    size_t nmd = s->nmd;
    bool resp_gzip = s->resp_gzip;
    tern_mutex_unlock(&gc->mu);
    if (s->on_md)
        tell_md(s, nmd);
    if (rc < 0 && s->retry && !s->retry->overflow && stream_retry_attempt(s, rc) == 0)
        goto again;
    if (rc == 0 && s->retry && s->retry->mc)
        tern__grpc_throttle_record(s->retry->ch->svc, false);
    if (rc != 1) {
        pick_done(s, gc->ch);
        if (s->cc)
            tern__grpc_cc_finish(s->cc, s->status.code ? s->status.code : tern_grpc_errno_to_code(rc),
                                 s->status.message);
        return rc;
    }
    const uint8_t *p = (const uint8_t *)s->msg.p;
    if (z) {
        if (!resp_gzip) {
            tern_mutex_lock(&gc->mu);
            abort_locked(s, -EPROTO, "compressed message without grpc-encoding");
            tern_mutex_unlock(&gc->mu);
            return recv_failed(s, -EPROTO);
        }
        s->zbuf.len = 0;
        rc = tern__grpc_gunzip(p, len, max, &s->zbuf);
        if (rc < 0) {
            tern_mutex_lock(&gc->mu);
            abort_locked(s, rc == -EMSGSIZE ? -ENOSPC : -EPROTO, "could not decompress a message");
            if (rc == -EMSGSIZE)
                s->result = -EMSGSIZE;
            rc = s->result;
            tern_mutex_unlock(&gc->mu);
            return recv_failed(s, rc);
        }
        p = (const uint8_t *)s->zbuf.p;
        len = (uint32_t)s->zbuf.len;
    }
    ProtobufCMessage *m;
    if (s->unary_alloc) {
        m = protobuf_c_message_unpack(s->m->output, NULL, len, p);
    } else {
        tern__arena_reset(&s->arena);
        ProtobufCAllocator al;
        tern__grpc_arena_allocator(&al, &s->arena);
        m = protobuf_c_message_unpack(s->m->output, &al, len, p);
    }
    if (!m) {
        tern_mutex_lock(&gc->mu);
        abort_locked(s, -EPROTO, "could not decode the response message");
        tern_mutex_unlock(&gc->mu);
        return recv_failed(s, -EPROTO);
    }
    *out = m;
    s->got_msg = true;
    return 1;
}

const tern_grpc_status *tern_grpc_stream_status(const tern_grpc_stream *s)
{
    TERN_CHECK_ARG(s);
    return &s->status;
}

void tern_grpc_stream_free(tern_grpc_stream *s)
{
    if (!s)
        return;
    gconn *gc = s->gc;
    tern_mutex_lock(&gc->mu);
    if (!s->closed && !atomic_load(&gc->dead)) {
        if (!s->eof)
            nghttp2_submit_rst_stream(gc->sess, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
        nghttp2_session_set_stream_user_data(gc->sess, s->id, NULL);
        wake_writer(gc);
    }
    stream_unlink(s);
    bool ended = s->done;
    tern_mutex_unlock(&gc->mu);
    /* freed before its end: the caller gave up on it, unless its
     * connection broke first (a send that failed on it) */
    if (ended)
        pick_done(s, gc->ch);
    else
        pick_report(s, gc->ch, atomic_load(&gc->dead) && !tern_ctx_err(s->ctx) ? TERN_GRPC_PICK_FAILED
                                                                                : TERN_GRPC_PICK_LOCAL);
    atomic_fetch_sub(&gc->load, 1);
    tern__grpc_conn_unref(gc);
    retry_free(s->retry);
    if (s->cc) {
        /* freed before its end was seen: the caller gave up on it */
        tern__grpc_cc_finish(s->cc, TERN_GRPC_CANCELLED, "the stream was freed before it ended");
        tern__grpc_cc_free(s->cc);
    }
    for (size_t i = 0; i < s->nmd; i++)
        free(s->md[i].name);
    free(s->grpc_message);
    free(s->status.message);
    tern__growbuf_free(&s->out);
    tern__growbuf_free(&s->in);
    tern__growbuf_free(&s->msg);
    tern__growbuf_free(&s->zbuf);
    tern__arena_free(&s->arena);
    free(s);
}

void tern_grpc_status_clear(tern_grpc_status *st)
{
    if (!st)
        return;
    free(st->message);
    st->message = NULL;
    st->code = TERN_GRPC_OK;
}

static void copy_status(tern_grpc_status *dst, const tern_grpc_status *src)
{
    if (!dst)
        return;
    dst->code = src->code;
    dst->message = src->message ? strdup(src->message) : NULL;
}

void tern__grpc_stream_attach(tern_grpc_stream *s, tern_grpc_client_call *cc)
{
    s->cc = cc;
}

/* One unary attempt on one stream.  *refused: the server refused the
 * stream unprocessed (RST_STREAM REFUSED_STREAM, or a GOAWAY whose last
 * stream id is below it, which nghttp2 reports the same way) before any
 * response headers came. */
static int unary_once(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, const tern_grpc_call_options *opts, int prev_attempts,
                      tern_grpc_status *status, tern__grpc_attempt_info *ai, bool *refused, tern_ctx *ctx)
{
    *resp = NULL;
    *refused = false;
    if (status)
        *status = (tern_grpc_status){ 0 };
    if (ai)
        *ai = (tern__grpc_attempt_info){ .pushback_ms = -1 };
    tern_grpc_stream *s;
    int rc = tern__grpc_stream_open_raw(ch, m, opts, prev_attempts, &s, ctx);
    if (rc < 0) {
        if (status) {
            status->code = tern_grpc_errno_to_code(rc);
            status->message = strdup(tern_strerror(rc));
        }
        return rc;
    }
    s->unary_alloc = true;
    rc = tern_grpc_stream_send(s, req, ctx);
    if (rc == 0)
        rc = tern_grpc_stream_close_send(s, ctx);
    ProtobufCMessage *msg = NULL;
    if (rc == 0 || rc == -EPIPE) {
        rc = tern_grpc_stream_recv(s, &msg, ctx);
        if (rc == 1) {
            ProtobufCMessage *extra;
            rc = tern_grpc_stream_recv(s, &extra, ctx);
            if (rc == 1) {
                protobuf_c_message_free_unpacked(extra, NULL);
                rc = -EPROTO;       /* a second response to a unary call */
            }
        } else if (rc == 0) {
            rc = -EPROTO;           /* OK without a response message */
            s->status.code = TERN_GRPC_INTERNAL;
        }
    }
    if (rc == 0)
        *resp = msg;
    else if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
    if (rc < 0 && s->status.code == TERN_GRPC_OK)
        s->status.code = tern_grpc_errno_to_code(rc);
    copy_status(status, &s->status);
    attempt_end e = attempt_end_of(s);
    if (ai) {
        ai->pushback_ms = e.pushback_ms;
        ai->committed = e.committed;
    }
    *refused = rc < 0 && e.refused;
    tern_grpc_stream_free(s);
    return rc;
}

/* An attempt, made once more at once if the server refused it unprocessed
 * (gRFC A6's transparent retry: a server draining with GOAWAY, or at its
 * stream limit, never ran it; not counted as an attempt, not throttled;
 * once, so that a server refusing everything is not hammered). */
int tern__grpc_unary_attempt(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                             ProtobufCMessage **resp, const tern_grpc_call_options *opts, int prev_attempts,
                             tern_grpc_status *status, tern__grpc_attempt_info *ai, tern_ctx *ctx)
{
    TERN_CHECK_ARG(ch);
    bool refused;
    int rc = unary_once(ch, m, req, resp, opts, prev_attempts, status, ai, &refused, ctx);
    if (rc < 0 && refused && !tern_ctx_err(ctx)) {
        if (status)
            tern_grpc_status_clear(status);
        rc = unary_once(ch, m, req, resp, opts, prev_attempts, status, ai, &refused, ctx);
    }
    return rc;
}
