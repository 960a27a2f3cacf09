/*
 * test_http_server.c - the HTTP/1.1 server end to end, through real
 * sockets: a server on 127.0.0.1:0 inside tern_run, and clients that are
 * coroutines speaking raw bytes (tern_conn_dial / tern_conn_write /
 * tern_conn_read) and parsing the answers with a small, strict reader of
 * their own (not the library's parser).
 *
 * Covered: keep-alive, pipelining (one batch), chunked request bodies,
 * streamed and large responses, Expect: 100-continue, HEAD, HTTP/1.0,
 * Connection: close, the 400/413/414/431 refusals, header injection,
 * handler errors before and after streaming, timeouts (slowloris, idle),
 * max_requests_per_conn, max_conns, graceful and forced shutdown, the
 * request accessors, and the router (404, 405 + Allow, parameters,
 * catch-all, priority, groups, middleware order, registration errors).
 *
 * The last tests in TESTS() were written for server bugs found with this
 * file (each comment says what went wrong); they stay as regression tests.
 * Run under TSan too: a race between a closing connection and shutdown's
 * kick_conns() shows there as a data race.
 */
#include "check.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <strings.h>
#include <time.h>

#include <tern/http.h>
#include <tern/http_client.h>
#include <tern/http_router.h>
#include <tern/net.h>

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *sa_ = (a), *sb_ = (b);                                               \
        if (!sa_ || strcmp(sa_, sb_) != 0) {                                             \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s is \"%s\", expected \"%s\"\n",  \
                    __FILE__, __LINE__, #a, sa_ ? sa_ : "(null)", sb_);                  \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_MEM(p, n, lit)                                                             \
    do {                                                                                 \
        size_t nl_ = strlen(lit);                                                        \
        if ((size_t)(n) != nl_ || memcmp((p), (lit), nl_) != 0) {                        \
            fprintf(stderr, "%s:%d: CHECK_MEM failed: %s is \"%.*s\" (%zu bytes), "      \
                    "expected \"%s\" (%zu bytes)\n", __FILE__, __LINE__, #p,             \
                    (int)(n), (const char *)(p), (size_t)(n), (lit), nl_);               \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* ===================================================================== */
/* the client: raw bytes in, responses out                               */
/* ===================================================================== */

enum {
    RS_OK = 0,
    RS_CLOSED = -1000,   /* EOF or reset before any byte of a response */
    RS_TRUNC = -1001,    /* the connection ended inside a response */
    RS_TIMEOUT = -1002,  /* nothing more within the client's timeout */
    RS_MALFORMED = -1003,
};

typedef struct cl {
    tern_conn *c;
    char *buf;
    size_t cap, len, pos;
    int64_t timeout;    /* per read */
    bool frozen;        /* no more reads: parse what is buffered */
} cl;

static cl *cl_wrap(tern_conn *c)
{
    cl *k = calloc(1, sizeof *k);
    CHECK(k);
    k->c = c;
    k->cap = 1 << 16;
    k->buf = malloc(k->cap);
    CHECK(k->buf);
    k->timeout = 3 * TERN_SEC;
    return k;
}

static cl *cl_dial(const char *addr)
{
    tern_conn *c;
    int rc = tern_conn_dial(TERN_NET_TCP, addr, &c, NULL);
    if (rc != 0) {
        fprintf(stderr, "dial %s: %s\n", addr, tern_strerror(rc));
        abort();
    }
    return cl_wrap(c);
}

static void cl_close(cl *k)
{
    tern_conn_free(k->c);
    free(k->buf);
    free(k);
}

static void cl_sendn(cl *k, const void *s, size_t n)
{
    ssize_t w = tern_conn_write(k->c, s, n, NULL);
    if (w != (ssize_t)n) {
        fprintf(stderr, "client write: %zd (%s)\n", w, w < 0 ? tern_strerror((int)w) : "short");
        abort();
    }
}

static void cl_send(cl *k, const char *s) { cl_sendn(k, s, strlen(s)); }

/* For requests the server may refuse before reading them all. */
static void cl_send_any(cl *k, const void *s, size_t n) { (void)tern_conn_write(k->c, s, n, NULL); }

/* More bytes into the buffer: >0, 0 at EOF, -errno. */
static ssize_t cl_fill(cl *k)
{
    if (k->frozen)
        return -EAGAIN;
    if (k->pos > 0) {
        memmove(k->buf, k->buf + k->pos, k->len - k->pos);
        k->len -= k->pos;
        k->pos = 0;
    }
    if (k->len == k->cap) {
        k->cap *= 2;
        k->buf = realloc(k->buf, k->cap);
        CHECK(k->buf);
    }
    tern_conn_set_read_deadline(k->c, tern_now() + k->timeout);
    ssize_t n = tern_conn_read(k->c, k->buf + k->len, k->cap - k->len, NULL);
    if (n > 0)
        k->len += (size_t)n;
    return n;
}

static int fill_err(ssize_t n) { return n == -ETIMEDOUT ? RS_TIMEOUT : RS_TRUNC; }

static int cl_need(cl *k, size_t n)
{
    while (k->len - k->pos < n) {
        ssize_t r = cl_fill(k);
        if (r <= 0)
            return fill_err(r);
    }
    return 0;
}

/* A CRLF-terminated line into out (without CRLF), consumed; its length. */
static int cl_line(cl *k, char *out, size_t outsz)
{
    for (;;) {
        char *s = k->buf + k->pos;
        char *e = memmem(s, k->len - k->pos, "\r\n", 2);
        if (e) {
            size_t n = (size_t)(e - s);
            if (n >= outsz)
                return RS_MALFORMED;
            memcpy(out, s, n);
            out[n] = '\0';
            k->pos += n + 2;
            return (int)n;
        }
        ssize_t r = cl_fill(k);
        if (r <= 0)
            return fill_err(r);
    }
}

/* true if nothing arrives within ns (the connection stays open). */
static bool cl_quiet(cl *k, int64_t ns)
{
    if (k->len > k->pos)
        return false;
    int64_t saved = k->timeout;
    k->timeout = ns;
    ssize_t n = cl_fill(k);
    k->timeout = saved;
    return n == -ETIMEDOUT;
}

/* The server closed the connection: no bytes left, then EOF or a reset. */
#define expect_eof(k) expect_eof_at((k), __LINE__)
static void expect_eof_at(cl *k, int line)
{
    if (k->len > k->pos) {
        fprintf(stderr, "line %d: expected EOF, have %zu unread bytes: %.*s\n", line, k->len - k->pos,
                (int)(k->len - k->pos), k->buf + k->pos);
        abort();
    }
    ssize_t n = cl_fill(k);
    if (n != 0 && n != -ECONNRESET) {
        fprintf(stderr, "line %d: expected EOF, read returned %zd%s%.*s\n", line, n, n > 0 ? ": " : "",
                n > 0 ? (int)n : 0, k->buf + k->pos);
        tern_runtime_dump(stderr);
        abort();
    }
}

#define MAXH 48

typedef struct resp {
    int minor, status;
    char reason[64];
    char *head;                 /* the raw head, then split in place */
    size_t head_len;
    char *raw_head;             /* an unsplit copy */
    int nh;
    char *hn[MAXH], *hv[MAXH];
    int64_t content_length;
    bool chunked, until_close;
    char *body;
    size_t body_len, body_cap;
    int nchunks;
    size_t chunk[64];
} resp;

static void resp_free(resp *r)
{
    free(r->head);
    free(r->raw_head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static const char *hdr(const resp *r, const char *name)
{
    for (int i = 0; i < r->nh; i++)
        if (!strcasecmp(r->hn[i], name))
            return r->hv[i];
    return NULL;
}

static int hdr_count(const resp *r, const char *name)
{
    int n = 0;
    for (int i = 0; i < r->nh; i++)
        n += !strcasecmp(r->hn[i], name);
    return n;
}

static void body_append(resp *r, const char *p, size_t n)
{
    if (r->body_cap - r->body_len < n + 1) {
        size_t cap = r->body_cap ? r->body_cap : 256;
        while (cap - r->body_len < n + 1)
            cap *= 2;
        r->body = realloc(r->body, cap);
        CHECK(r->body);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

/* Read and check a response head: status line and fields, CRLF only. */
static int cl_head(cl *k, resp *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;
    char *e;
    for (;;) {
        e = memmem(k->buf + k->pos, k->len - k->pos, "\r\n\r\n", 4);
        if (e)
            break;
        bool any = k->len > k->pos;
        ssize_t n = cl_fill(k);
        if (n <= 0)
            return n == -ETIMEDOUT ? RS_TIMEOUT : any ? RS_TRUNC : RS_CLOSED;
    }
    size_t hl = (size_t)(e - (k->buf + k->pos)) + 4;
    body_append(r, "", 0);      /* body is never NULL once a head arrived */
    r->head = malloc(hl + 1);
    r->raw_head = malloc(hl + 1);
    CHECK(r->head && r->raw_head);
    memcpy(r->head, k->buf + k->pos, hl);
    r->head[hl] = '\0';
    memcpy(r->raw_head, r->head, hl + 1);
    r->head_len = hl;
    k->pos += hl;
    for (size_t i = 0; i < hl; i++) {
        if (r->head[i] == '\n' && (i == 0 || r->head[i - 1] != '\r'))
            return RS_MALFORMED;
        if (r->head[i] == '\r' && r->head[i + 1] != '\n')
            return RS_MALFORMED;
        if (r->head[i] == '\0')
            return RS_MALFORMED;
    }
    char *p = r->head;
    if (strncmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
        !isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
        !isdigit((unsigned char)p[11]) || p[12] != ' ')
        return RS_MALFORMED;
    r->minor = p[7] - '0';
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    char *eol = strstr(p, "\r\n");
    snprintf(r->reason, sizeof r->reason, "%.*s", (int)(eol - (p + 13)), p + 13);
    p = eol + 2;
    while (strncmp(p, "\r\n", 2) != 0) {
        eol = strstr(p, "\r\n");
        *eol = '\0';
        char *colon = strchr(p, ':');
        if (!colon || colon == p || r->nh == MAXH)
            return RS_MALFORMED;
        for (char *q = p; q < colon; q++)
            if (*q == ' ' || *q == '\t')
                return RS_MALFORMED;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        r->hn[r->nh] = p;
        r->hv[r->nh++] = v;
        p = eol + 2;
    }
    const char *cls = hdr(r, "Content-Length");
    if (cls) {
        char *end;
        r->content_length = strtoll(cls, &end, 10);
        if (*end || end == cls || hdr_count(r, "Content-Length") != 1)
            return RS_MALFORMED;
    }
    const char *te = hdr(r, "Transfer-Encoding");
    r->chunked = te && !strcasecmp(te, "chunked");
    if (te && (!r->chunked || cls))
        return RS_MALFORMED;
    return RS_OK;
}

static int cl_body(cl *k, resp *r, bool head_req)
{
    if (head_req || r->status / 100 == 1 || r->status == 204 || r->status == 304)
        return RS_OK;
    if (r->chunked) {
        char line[512];
        for (;;) {
            int n = cl_line(k, line, sizeof line);
            if (n < 0)
                return n;
            char *end;
            unsigned long long sz = strtoull(line, &end, 16);
            if (end == line || (*end && *end != ';'))
                return RS_MALFORMED;
            if (sz == 0) {
                do {
                    n = cl_line(k, line, sizeof line);
                    if (n < 0)
                        return n;
                } while (n > 0);
                return RS_OK;
            }
            if (r->nchunks < 64)
                r->chunk[r->nchunks] = sz;
            r->nchunks++;
            int rc = cl_need(k, sz + 2);
            if (rc)
                return rc;
            body_append(r, k->buf + k->pos, sz);
            if (memcmp(k->buf + k->pos + sz, "\r\n", 2) != 0)
                return RS_MALFORMED;
            k->pos += sz + 2;
        }
    }
    if (r->content_length >= 0) {
        int rc = cl_need(k, (size_t)r->content_length);
        if (rc)
            return rc;
        body_append(r, k->buf + k->pos, (size_t)r->content_length);
        k->pos += (size_t)r->content_length;
        return RS_OK;
    }
    r->until_close = true;
    for (;;) {
        body_append(r, k->buf + k->pos, k->len - k->pos);
        k->pos = k->len;
        ssize_t n = cl_fill(k);
        if (n == 0)
            return RS_OK;
        if (n < 0)
            return fill_err(n);
    }
}

static int cl_response(cl *k, resp *r, bool head_req)
{
    int rc = cl_head(k, r);
    if (rc != RS_OK)
        return rc;
    return cl_body(k, r, head_req);
}

static const char *rname(int rc)
{
    switch (rc) {
    case RS_OK: return "ok";
    case RS_CLOSED: return "closed before a response";
    case RS_TRUNC: return "truncated";
    case RS_TIMEOUT: return "timed out";
    case RS_MALFORMED: return "malformed";
    default: return "?";
    }
}

#define CHECK_R(expr)                                                                    \
    do {                                                                                 \
        int r_ = (expr);                                                                 \
        if (r_ != RS_OK) {                                                                \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, rname(r_));    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* Send a request and read its whole response (must be well formed). */
static void roundtrip(cl *k, const char *req, resp *r)
{
    cl_send(k, req);
    CHECK_R(cl_response(k, r, !strncmp(req, "HEAD ", 5)));
}

static void get(cl *k, const char *path, resp *r)
{
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path);
    roundtrip(k, req, r);
}

/* One request on a new connection; the response (which must be complete). */
static void once(const char *addr, const char *req, resp *r)
{
    cl *k = cl_dial(addr);
    roundtrip(k, req, r);
    cl_close(k);
}

/* ===================================================================== */
/* the server under test                                                 */
/* ===================================================================== */

typedef struct tsrv {
    tern_http_server *s;
    tern_http_router *rt;
    tern_ctx *ctx;              /* serve()'s */
    tern_chan *done;            /* serve()'s result */
    char addr[64];
} tsrv;

static int serve_co(void *arg)
{
    tsrv *t = arg;
    int rc = tern_http_server_serve(t->s, t->ctx);
    tern_chan_send(t->done, &rc, NULL);
    return 0;
}

/* Serve on 127.0.0.1:0 until shutdown or until ctx (may be NULL) ends. */
static tsrv *srv_start_ctx(tern_http_server_options *o, tern_http_router *rt, tern_ctx *ctx)
{
    tsrv *t = calloc(1, sizeof *t);
    CHECK(t);
    t->rt = rt;
    t->ctx = ctx;
    if (rt) {
        o->handler = tern_http_router_serve;
        o->arg = rt;
    }
    CHECK_EQ(tern_http_server_new(o, &t->s), 0);
    CHECK_EQ(tern_http_server_port(t->s), 0);
    CHECK_EQ(tern_http_server_listen(t->s, "127.0.0.1:0"), 0);
    CHECK(tern_http_server_port(t->s) > 0);
    snprintf(t->addr, sizeof t->addr, "%s", tern_http_server_addr(t->s));
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", tern_http_server_port(t->s));
    CHECK_STR(t->addr, want);
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &t->done), 0);
    CHECK(t->done);
    CHECK_EQ(tern_go(serve_co, t), 0);
    return t;
}

static tsrv *srv_start(tern_http_server_options *o, tern_http_router *rt)
{
    return srv_start_ctx(o, rt, NULL);
}

static int srv_wait(tsrv *t)
{
    int rc = -1;
    bool ok = false;
    CHECK_EQ(tern_chan_recv(t->done, &rc, &ok, NULL), 0);
    CHECK(ok);
    return rc;
}

static void srv_free(tsrv *t)
{
    tern_http_server_free(t->s);
    tern_http_router_free(t->rt);
    tern_chan_free(t->done);
    free(t);
}

/* tern_http_server_shutdown with its drain bounded by a timeout of ns */
static int shutdown_within(tern_http_server *s, int64_t ns)
{
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, ns, &ctx), 0);
    int rc = tern_http_server_shutdown(s, ctx);
    tern_ctx_free(ctx);
    return rc;
}

/* Graceful shutdown with nothing in flight: 0, and serve() returns 0. */
static void srv_stop(tsrv *t)
{
    CHECK_EQ(shutdown_within(t->s, 2 * TERN_SEC), 0);
    CHECK_EQ(srv_wait(t), 0);
    srv_free(t);
}

static struct tern_http_server_stats srv_stats(tsrv *t)
{
    struct tern_http_server_stats st;
    tern_http_server_stats(t->s, &st);
    return st;
}

/* ===================================================================== */
/* handlers                                                              */
/* ===================================================================== */

#define BIG_LEN (200 * 1024 + 7)
#define APP_MAX_BODY (64 * 1024)

static char big_byte(size_t i) { return (char)('!' + (i * 31) % 90); }

static tern_chan *stream_go;        /* the stream handler waits on it between pieces */
static tern_chan *entered;          /* handlers that announce themselves */
static atomic_int wait_err;         /* what /wait saw */
static atomic_long sleep_calls;

static void announce(void)
{
    int one = 1;
    if (entered)
        tern_chan_try_send(entered, &one);
}

static int h_plaintext(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_send(w, 200, "text/plain", "Hello, World!", 13);
}

static int h_echo(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *body;
    size_t len;
    int rc = tern_http_req_body(r, &body, &len);
    if (rc < 0)
        return rc;      /* -EMSGSIZE: the server answers 413 */
    const char *ct = tern_http_req_header(r, "Content-Type");
    return tern_http_resp_send(w, 200, ct ? ct : "application/octet-stream", body, len);
}

static int h_stream(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    static const char *pieces[] = { "alpha", "beta", "gamma" };
    for (int i = 0; i < 3; i++) {
        if (tern_http_resp_write(w, pieces[i], strlen(pieces[i])) < 0)
            return -EIO;
        if (i < 2) {
            int rc = tern_http_resp_flush(w);
            if (rc < 0)
                return rc;
            CHECK(tern_http_resp_committed(w));
            /* headers are frozen once streaming */
            CHECK_EQ(tern_http_resp_set_header(w, "X-Late", "1"), -EALREADY);
            int go;
            bool ok;
            tern_chan_recv(stream_go, &go, &ok, NULL);
        }
    }
    CHECK_EQ(tern_http_resp_body_bytes(w), 14);
    return 0;
}

static int h_big(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    char piece[1000];
    for (size_t off = 0; off < BIG_LEN; off += sizeof piece) {
        size_t n = BIG_LEN - off < sizeof piece ? BIG_LEN - off : sizeof piece;
        for (size_t i = 0; i < n; i++)
            piece[i] = big_byte(off + i);
        ssize_t k = tern_http_resp_write(w, piece, n);
        if (k < 0)
            return (int)k;
        CHECK_EQ(k, n);
    }
    return 0;
}

static int h_fail(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    tern_http_resp_set_header(w, "X-Partial", "1");
    tern_http_resp_set_status(w, 201);
    tern_http_resp_write(w, "partial", 7);
    return -EIO;
}

static int h_failstream(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    tern_http_resp_write(w, "abc", 3);
    CHECK_EQ(tern_http_resp_flush(w), 0);
    tern_http_resp_write(w, "def", 3);
    return -EIO;
}

static int h_inject(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    int a = tern_http_resp_set_header(w, "X-A", "a\r\nX-Injected: 1");
    int b = tern_http_resp_set_header(w, "X-B\r\nX-Injected", "1");
    int c = tern_http_resp_add_header(w, "X-C", "v\n");
    int d = tern_http_resp_set_header(w, "X-D", "v\rX-Injected: 1");
    int e = tern_http_resp_set_header(w, "Content-Length", "5");
    int f = tern_http_resp_set_header(w, "X-Ok", "fine\tvalue");
    int g = tern_http_resp_set_header(w, "Bad Name", "x");
    return tern_http_resp_printf(w, "%d %d %d %d %d %d %d", a, b, c, d, e, f, g) < 0 ? -EIO : 0;
}

/* Sleeps ms, or gives up when the request's context is cancelled. */
static int h_sleep(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *s = tern_http_req_query(r, "ms");
    long ms = s ? atol(s) : 0;
    atomic_fetch_add(&sleep_calls, 1);
    tern_ctx *t;
    CHECK_EQ(tern_ctx_with_timeout(tern_http_req_ctx(r), ms * TERN_MS, &t), 0);
    CHECK(t);
    tern_chan_recv(tern_ctx_done(t), NULL, NULL, NULL);
    int err = tern_ctx_err(tern_http_req_ctx(r));
    tern_ctx_free(t);
    if (err < 0)
        return err;
    return tern_http_resp_printf(w, "slept %ld ms\n", ms) < 0 ? -EIO : 0;
}

/* Announces itself, then waits (up to 5 s) for its context to be cancelled. */
static int h_wait(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    announce();
    tern_ctx *t;
    CHECK_EQ(tern_ctx_with_timeout(tern_http_req_ctx(r), 5 * TERN_SEC, &t), 0);
    CHECK(t);
    tern_chan_recv(tern_ctx_done(t), NULL, NULL, NULL);
    int err = tern_ctx_err(tern_http_req_ctx(r));
    tern_ctx_free(t);
    atomic_store(&wait_err, err);
    if (err < 0)
        return err;
    return tern_http_resp_text(w, 200, "not cancelled\n");
}

/* Announces itself, then takes 100 ms. */
static int h_slow(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    announce();
    tern_sleep(100 * TERN_MS);
    return tern_http_resp_text(w, 200, "slow done\n");
}

static void jset(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v ? json_string(v) : json_null());
}

static int h_acc(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    json_t *o = json_object();
    jset(o, "method", tern_http_req_method(r));
    jset(o, "target", tern_http_req_target(r));
    jset(o, "path", tern_http_req_path(r));
    jset(o, "raw", tern_http_req_raw_query(r));
    jset(o, "route", tern_http_req_route(r));
    jset(o, "id", tern_http_req_param(r, "id"));
    jset(o, "noparam", tern_http_req_param(r, "nope"));
    jset(o, "name", tern_http_req_query(r, "name"));
    jset(o, "empty", tern_http_req_query(r, "empty"));
    jset(o, "dup", tern_http_req_query(r, "dup"));
    jset(o, "nokey", tern_http_req_query(r, "nokey"));
    jset(o, "missing", tern_http_req_query(r, "missing"));
    jset(o, "sess", tern_http_req_cookie(r, "sess"));
    jset(o, "b", tern_http_req_cookie(r, "b"));
    jset(o, "nocookie", tern_http_req_cookie(r, "zz"));
    jset(o, "hdr", tern_http_req_header(r, "x-CUSTOM"));
    jset(o, "nohdr", tern_http_req_header(r, "X-None"));
    json_object_set_new(o, "minor", json_integer(tern_http_req_minor_version(r)));
    json_object_set_new(o, "cl", json_integer(tern_http_req_content_length(r)));
    json_object_set_new(o, "nh", json_integer((json_int_t)tern_http_req_header_count(r)));
    const char *n0, *v0;
    CHECK_EQ(tern_http_req_header_at(r, 0, &n0, &v0), 0);
    jset(o, "h0", n0);
    jset(o, "v0", v0);
    CHECK_EQ(tern_http_req_header_at(r, tern_http_req_header_count(r), &n0, &v0), -ERANGE);
    CHECK(tern_http_req_start_time(r) > 0 && tern_http_req_start_time(r) <= tern_now());
    static const char vkey;
    CHECK(tern_http_req_value(r, &vkey) == NULL);
    CHECK_EQ(tern_http_req_set_value(r, &vkey, (void *)"v"), 0);
    CHECK_STR(tern_http_req_value(r, &vkey), "v");
    char *dup = tern_http_req_strdup(r, "copied");
    CHECK_STR(dup, "copied");
    CHECK(tern_http_req_ctx(r) != NULL && tern_ctx_err(tern_http_req_ctx(r)) == 0);
    CHECK(!strncmp(tern_http_req_remote_addr(r), "127.0.0.1:", 10));
    int rc = tern_http_resp_json(w, 200, o);
    json_decref(o);
    return rc;
}

static int h_form(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *x = tern_http_req_form(r, "x"), *y = tern_http_req_form(r, "y");
    const char *z = tern_http_req_form(r, "z"), *m = tern_http_req_form(r, "missing");
    return tern_http_resp_printf(w, "x=%s|y=%s|z=%s|m=%s", x ? x : "(null)", y ? y : "(null)",
                                 z ? z : "(null)", m ? m : "(null)") < 0 ? -EIO : 0;
}

static int h_json(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    json_t *in;
    int rc = tern_http_req_json(r, &in);
    if (rc == -EBADMSG)
        return tern_http_resp_error(w, 400, "bad json\n");
    if (rc < 0)
        return rc;
    json_int_t n = json_integer_value(json_object_get(in, "n"));
    json_decref(in);
    json_t *out = json_pack("{s:I,s:b,s:[i,i],s:s}", "n", n + 1, "ok", 1, "list", 1, 2, "s", "a\"b");
    CHECK(out);
    CHECK_EQ(tern_http_resp_json(w, 201, NULL), -EINVAL);
    rc = tern_http_resp_json(w, 201, out);
    json_decref(out);
    return rc;
}

static tern_http_router *app_router(void)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/plaintext", h_plaintext, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/echo", h_echo, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/stream", h_stream, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/big", h_big, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/fail", h_fail, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/failstream", h_failstream, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/inject", h_inject, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/sleep", h_sleep, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/wait", h_wait, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/slow", h_slow, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/acc/:id", h_acc, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/form", h_form, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/json", h_json, NULL), 0);
    return rt;
}

/* The usual server: the app router, a 64 KiB body limit, short body reads. */
static tsrv *app_start(tern_http_server_options *extra)
{
    tern_http_server_options o = { .max_body_bytes = APP_MAX_BODY,
                                   .read_body_timeout = 3 * TERN_SEC };
    if (extra)
        o = *extra;
    if (!o.max_body_bytes)
        o.max_body_bytes = APP_MAX_BODY;
    if (!o.read_body_timeout)
        o.read_body_timeout = 3 * TERN_SEC;
    return srv_start(&o, app_router());
}

#define SERVER_TEST(name)                                                                \
    static int name##_main(void *arg);                                                   \
    static void name(void) { run_ok(name##_main, NULL, 2); }                             \
    static int name##_main(void *arg)

/* ===================================================================== */
/* connections                                                           */
/* ===================================================================== */

SERVER_TEST(keep_alive)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    for (int i = 0; i < 5; i++) {
        resp r;
        get(k, "/plaintext", &r);
        CHECK_EQ(r.minor, 1);
        CHECK_EQ(r.status, 200);
        CHECK_STR(r.reason, "OK");
        CHECK_STR(hdr(&r, "Content-Type"), "text/plain");
        CHECK_STR(hdr(&r, "Content-Length"), "13");
        CHECK(hdr(&r, "Connection") == NULL);       /* HTTP/1.1: keep-alive is implied */
        CHECK(hdr(&r, "Server") == NULL);           /* server_header NULL: none */
        CHECK_MEM(r.body, r.body_len, "Hello, World!");
        resp_free(&r);
    }
    /* a POST with a body, then a GET: the body was consumed exactly */
    resp r;
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\n"
                 "Content-Length: 11\r\n\r\nhello world", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Type"), "text/x-test");
    CHECK_MEM(r.body, r.body_len, "hello world");
    resp_free(&r);
    /* a body the handler never reads is drained, and the conn carries on */
    roundtrip(k, "POST /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", &r);
    CHECK_EQ(r.status, 405);
    resp_free(&r);
    roundtrip(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n12345", &r);
    CHECK_EQ(r.status, 200);
    CHECK(hdr(&r, "Connection") == NULL);
    resp_free(&r);
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    struct tern_http_server_stats st = srv_stats(t);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.requests, 9);
    CHECK_EQ(st.conns, 1);
    CHECK_EQ(st.rejected, 0);
    CHECK(cl_quiet(k, 20 * TERN_MS));
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(pipelining)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    char all[4096];
    size_t len = 0;
    for (int i = 0; i < 16; i++) {
        if (i % 2 == 0)
            len += (size_t)snprintf(all + len, sizeof all - len,
                                    "GET /acc/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        else
            len += (size_t)snprintf(all + len, sizeof all - len,
                                    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n"
                                    "req-%02d", i);
    }
    cl_sendn(k, all, len);
    /* all 16 answers go out together: one read after a pause gets them all */
    tern_sleep(50 * TERN_MS);
    ssize_t n = cl_fill(k);
    CHECK(n > 0);
    k->frozen = true;
    for (int i = 0; i < 16; i++) {
        resp r;
        int rc = cl_response(k, &r, false);
        if (rc != RS_OK) {
            fprintf(stderr, "response %d of 16: %s (not in the first read of %zd bytes)\n", i,
                    rname(rc), n);
            abort();
        }
        CHECK_EQ(r.status, 200);
        if (i % 2 == 0) {
            json_t *v = json_loadb(r.body, r.body_len, 0, NULL);
            CHECK(v);
            char want[8];
            snprintf(want, sizeof want, "%d", i);
            CHECK_STR(json_string_value(json_object_get(v, "id")), want);
            json_decref(v);
        } else {
            char want[8];
            snprintf(want, sizeof want, "req-%02d", i);
            CHECK_MEM(r.body, r.body_len, want);
        }
        resp_free(&r);
    }
    CHECK_EQ(k->pos, k->len);       /* nothing more */
    k->frozen = false;
    CHECK(cl_quiet(k, 20 * TERN_MS));
    struct tern_http_server_stats st = srv_stats(t);
    CHECK_EQ(st.accepted, 1);
    CHECK_EQ(st.requests, 16);
    /* a pipeline that ends mid-request: the complete ones are answered */
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\nGET /plain");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_send(k, "text HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(http10)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "GET /plaintext HTTP/1.0\r\n\r\n", &r);
    CHECK_EQ(r.minor, 0);
    CHECK(!strncmp(r.raw_head, "HTTP/1.0 200 OK\r\n", 17));
    CHECK_STR(hdr(&r, "Content-Length"), "13");
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);

    /* keep-alive asked: kept */
    k = cl_dial(t->addr);
    for (int i = 0; i < 3; i++) {
        roundtrip(k, "GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
        CHECK_EQ(r.minor, 0);
        CHECK_STR(hdr(&r, "Connection"), "keep-alive");
        CHECK_MEM(r.body, r.body_len, "Hello, World!");
        resp_free(&r);
    }
    CHECK(cl_quiet(k, 20 * TERN_MS));
    /* a large body over 1.0: no chunking, it ends at close */
    roundtrip(k, "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
    CHECK_EQ(r.minor, 0);
    CHECK(hdr(&r, "Transfer-Encoding") == NULL);
    CHECK(r.until_close);
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_EQ(r.body_len, BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        CHECK(r.body[i] == big_byte(i));
    resp_free(&r);
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 2);
    srv_stop(t);
    return 0;
}

SERVER_TEST(max_requests_per_conn)
{
    (void)arg;
    tern_http_server_options o = { .max_requests_per_conn = 3 };
    tsrv *t = app_start(&o);
    cl *k = cl_dial(t->addr);
    resp r;
    for (int i = 1; i <= 3; i++) {
        get(k, "/plaintext", &r);
        CHECK_EQ(r.status, 200);
        if (i < 3)
            CHECK(hdr(&r, "Connection") == NULL);
        else
            CHECK_STR(hdr(&r, "Connection"), "close");
        resp_free(&r);
    }
    expect_eof(k);
    cl_close(k);
    k = cl_dial(t->addr);
    get(k, "/plaintext", &r);
    CHECK(hdr(&r, "Connection") == NULL);
    resp_free(&r);
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 2);
    srv_stop(t);
    return 0;
}

SERVER_TEST(max_conns)
{
    (void)arg;
    tern_http_server_options o = { .max_conns = 2 };
    tsrv *t = app_start(&o);
    cl *a = cl_dial(t->addr), *b = cl_dial(t->addr);
    resp r;
    get(a, "/plaintext", &r);
    resp_free(&r);
    get(b, "/plaintext", &r);
    resp_free(&r);
    CHECK_EQ(srv_stats(t).conns, 2);
    /* the kernel completes the third handshake, but the server waits */
    cl *c = cl_dial(t->addr);
    cl_send(c, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(cl_quiet(c, 300 * TERN_MS));
    CHECK_EQ(srv_stats(t).accepted, 2);
    /* the others still work */
    get(b, "/plaintext", &r);
    resp_free(&r);
    /* one closes: the third is served */
    int64_t t0 = tern_now();
    cl_close(a);
    CHECK_R(cl_response(c, &r, false));
    CHECK(tern_now() - t0 < TERN_SEC);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    CHECK_EQ(srv_stats(t).accepted, 3);
    cl_close(b);
    cl_close(c);
    srv_stop(t);
    return 0;
}

/* ===================================================================== */
/* bodies                                                                */
/* ===================================================================== */

SERVER_TEST(chunked_request_body)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    /* extensions (token, quoted, bare), a trailer, then a pipelined GET */
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Type: text/plain\r\n\r\n"
                 "5;ext=1\r\nhello\r\n"
                 "6 ; name=\"quoted;value\"\r\n world\r\n"
                 "A;bare\r\n0123456789\r\n"
                 "0\r\nX-Trailer: yes\r\n\r\n"
                 "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "21");
    CHECK_MEM(r.body, r.body_len, "hello world0123456789");
    resp_free(&r);
    CHECK_R(cl_response(k, &r, false));
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);

    /* the same, one byte per write */
    static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3;a=b\r\nabc\r\n"
                              "1\r\nd\r\n"
                              "10\r\n0123456789abcdef\r\n"
                              "0\r\n\r\n";
    for (size_t i = 0; i < sizeof req - 1; i++) {
        cl_sendn(k, req + i, 1);
        tern_sleep(200 * TERN_US);
    }
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "abcd0123456789abcdef");
    resp_free(&r);
    /* an empty chunked body */
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "0");
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(streamed_response)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 0, &stream_go), 0);
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    resp r;
    CHECK_R(cl_head(k, &r));
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Transfer-Encoding"), "chunked");
    CHECK(hdr(&r, "Content-Length") == NULL);
    CHECK(hdr(&r, "X-Late") == NULL);
    /* each piece arrives while the handler waits for us */
    static const char *wire[] = { "5\r\nalpha\r\n", "4\r\nbeta\r\n", "5\r\ngamma\r\n0\r\n\r\n" };
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(wire[i]);
        CHECK_R(cl_need(k, n));
        CHECK_MEM(k->buf + k->pos, n, wire[i]);
        k->pos += n;
        CHECK(cl_quiet(k, 30 * TERN_MS));
        if (i < 2) {
            int go = 1;
            CHECK_EQ(tern_chan_send(stream_go, &go, NULL), 0);
        }
    }
    resp_free(&r);
    /* the connection is still good */
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    /* HEAD of a streamed response: no body bytes at all */
    cl_send(k, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_R(cl_head(k, &r));
    CHECK_EQ(r.status, 200);
    for (int i = 0; i < 2; i++) {
        int go = 1;
        CHECK_EQ(tern_chan_send(stream_go, &go, NULL), 0);
    }
    resp_free(&r);
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    tern_chan_free(stream_go);
    stream_go = NULL;
    return 0;
}

SERVER_TEST(large_response)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    for (int round = 0; round < 2; round++) {
        resp r;
        get(k, "/big", &r);
        CHECK_EQ(r.status, 200);
        CHECK(r.chunked);                      /* over 64 KiB: streamed */
        CHECK(hdr(&r, "Content-Length") == NULL);
        CHECK(r.nchunks >= 2);
        CHECK_EQ(r.body_len, BIG_LEN);
        for (size_t i = 0; i < BIG_LEN; i++)
            if (r.body[i] != big_byte(i)) {
                fprintf(stderr, "byte %zu differs\n", i);
                abort();
            }
        resp_free(&r);
    }
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 1);
    srv_stop(t);
    return 0;
}

SERVER_TEST(expect_continue)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
               "Expect: 100-continue\r\nContent-Type: text/plain\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 100);
    CHECK_MEM(r.raw_head, r.head_len, "HTTP/1.1 100 Continue\r\n\r\n");
    resp_free(&r);
    CHECK(cl_quiet(k, 20 * TERN_MS));      /* the final answer waits for the body */
    cl_send(k, "hello world");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "hello world");
    CHECK(hdr(&r, "Connection") == NULL);
    resp_free(&r);
    /* the connection goes on */
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);

    /* a handler that does not read the body: no 100, the answer, then close */
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);

    /* over the limit with Expect: 413 at once, never a 100 */
    k = cl_dial(t->addr);
    char req[256];
    snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
             "Expect: 100-continue\r\n\r\n", APP_MAX_BODY + 1);
    k->timeout = TERN_SEC;
    cl_send(k, req);
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 413);
    CHECK_STR(r.reason, "Content Too Large");
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "413 Content Too Large\n");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(chunked_body_over_limit)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *chunk = malloc(8192 + 16);
    CHECK(chunk);
    int hl = snprintf(chunk, 16, "2000\r\n");
    memset(chunk + hl, 'x', 8192);
    memcpy(chunk + hl + 8192, "\r\n", 2);
    /* 9 x 8 KiB > 64 KiB; the server may stop reading (and close) early */
    for (int i = 0; i < 9; i++)
        cl_send_any(k, chunk, (size_t)hl + 8192 + 2);
    cl_send_any(k, "0\r\n\r\n", 5);
    free(chunk);
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 413);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    /* exactly at the limit is fine */
    k = cl_dial(t->addr);
    cl_send(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    char *body = malloc(APP_MAX_BODY);
    memset(body, 'y', APP_MAX_BODY);
    char sz[32];
    snprintf(sz, sizeof sz, "%x\r\n", APP_MAX_BODY);
    cl_send(k, sz);
    cl_sendn(k, body, APP_MAX_BODY);
    cl_send(k, "\r\n0\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.body_len, APP_MAX_BODY);
    CHECK(memcmp(r.body, body, APP_MAX_BODY) == 0);
    resp_free(&r);
    free(body);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(head_request)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "HEAD /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "13");
    CHECK_STR(hdr(&r, "Content-Type"), "text/plain");
    resp_free(&r);
    /* HEAD of a response that would stream: the full length, no chunking */
    roundtrip(k, "HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    char want[32];
    snprintf(want, sizeof want, "%d", BIG_LEN);
    CHECK_STR(hdr(&r, "Content-Length"), want);
    CHECK(hdr(&r, "Transfer-Encoding") == NULL);
    resp_free(&r);
    /* no body bytes were sent: the next response starts right here */
    CHECK(cl_quiet(k, 20 * TERN_MS));
    get(k, "/plaintext", &r);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 1);
    srv_stop(t);
    return 0;
}

/* ===================================================================== */
/* refusals                                                              */
/* ===================================================================== */

/* A request the server refuses: status, Connection: close, then EOF. */
static void expect_refusal(const char *addr, const void *req, size_t len, int status)
{
    cl *k = cl_dial(addr);
    cl_send_any(k, req, len);
    resp r;
    int rc = cl_response(k, &r, false);
    if (rc != RS_OK || r.status != status) {
        fprintf(stderr, "for %.60s...: %s, status %d, expected %d\n", (const char *)req,
                rname(rc), r.status, status);
        abort();
    }
    CHECK_STR(hdr(&r, "Connection"), "close");
    char body[64];
    snprintf(body, sizeof body, "%d %s\n", status, tern_http_status_text(status));
    CHECK_MEM(r.body, r.body_len, body);
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
}

SERVER_TEST(too_long_and_too_big)
{
    (void)arg;
    tern_http_server_options o = { .max_header_bytes = 8192, .max_headers = 20 };
    tsrv *t = app_start(&o);
    char *req = malloc(64 * 1024);
    CHECK(req);
    /* request line over 8 KiB: 414 */
    int n = sprintf(req, "GET /");
    memset(req + n, 'a', 9000);
    n += 9000;
    n += sprintf(req + n, " HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_refusal(t->addr, req, (size_t)n, 414);
    /* one field of 10 KB: 431 */
    n = sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(req + n, 'b', 10000);
    n += 10000;
    n += sprintf(req + n, "\r\n\r\n");
    expect_refusal(t->addr, req, (size_t)n, 431);
    /* 21 fields where 20 are allowed: 431; 20 are fine */
    for (int fields = 20; fields <= 21; fields++) {
        n = sprintf(req, "GET /plaintext HTTP/1.1\r\nHost: t\r\n");
        for (int i = 1; i < fields; i++)
            n += sprintf(req + n, "X-F%d: %d\r\n", i, i);
        n += sprintf(req + n, "\r\n");
        if (fields == 20) {
            resp r;
            once(t->addr, req, &r);
            CHECK_EQ(r.status, 200);
            resp_free(&r);
        } else {
            expect_refusal(t->addr, req, (size_t)n, 431);
        }
    }
    free(req);
    CHECK_EQ(srv_stats(t).rejected, 3);
    srv_stop(t);
    return 0;
}

SERVER_TEST(bad_requests)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    static const char *bad[] = {
        /* both framings */
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        /* malformed or disagreeing Content-Length */
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5x\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        /* obs-fold */
        "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        /* Host missing, or twice, in HTTP/1.1 */
        "GET /plaintext HTTP/1.1\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        /* space before the colon, a bare CR, garbage */
        "GET /plaintext HTTP/1.1\r\nHost : t\r\n\r\n",
        "GET /plaintext HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
        "\x01\x02\x03 nonsense\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_refusal(t->addr, bad[i], strlen(bad[i]), 400);
    CHECK_EQ(srv_stats(t).rejected, sizeof bad / sizeof bad[0]);
    CHECK_EQ(srv_stats(t).requests, 0);
    /* other refusals the parser chooses */
    expect_refusal(t->addr, "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 27, 505);
    const char *te = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n";
    expect_refusal(t->addr, te, strlen(te), 501);
    srv_stop(t);
    return 0;
}

SERVER_TEST(header_injection)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    resp r;
    once(t->addr, "GET /inject HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    char want[64];
    snprintf(want, sizeof want, "%d %d %d %d %d 0 %d", -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EPERM,
             -EINVAL);
    CHECK_MEM(r.body, r.body_len, want);
    CHECK(strstr(r.raw_head, "Injected") == NULL);
    CHECK(hdr(&r, "X-A") == NULL && hdr(&r, "X-C") == NULL && hdr(&r, "X-D") == NULL);
    CHECK_STR(hdr(&r, "X-Ok"), "fine\tvalue");
    CHECK_EQ(hdr_count(&r, "Content-Length"), 1);
    resp_free(&r);
    srv_stop(t);
    return 0;
}

/* ===================================================================== */
/* handler errors                                                        */
/* ===================================================================== */

SERVER_TEST(handler_error_500_keeps_conn)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    for (int i = 0; i < 2; i++) {
        get(k, "/fail", &r);
        CHECK_EQ(r.status, 500);
        CHECK_STR(r.reason, "Internal Server Error");
        CHECK(hdr(&r, "X-Partial") == NULL);        /* its headers are dropped */
        CHECK(hdr(&r, "Connection") == NULL);
        CHECK_MEM(r.body, r.body_len, "500 Internal Server Error\n");
        resp_free(&r);
        get(k, "/plaintext", &r);                   /* the same connection goes on */
        CHECK_EQ(r.status, 200);
        CHECK_MEM(r.body, r.body_len, "Hello, World!");
        resp_free(&r);
    }
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 1);
    CHECK_EQ(srv_stats(t).requests, 4);
    srv_stop(t);
    return 0;
}

SERVER_TEST(handler_error_after_streaming)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /failstream HTTP/1.1\r\nHost: t\r\n\r\n");
    resp r;
    CHECK_R(cl_head(k, &r));
    CHECK_EQ(r.status, 200);
    CHECK(r.chunked);
    int rc = cl_body(k, &r, false);
    CHECK_EQ(rc, RS_TRUNC);                 /* no last chunk: the client knows */
    CHECK(!strncmp(r.body, "abc", 3));     /* what was flushed arrived */
    resp_free(&r);
    cl_close(k);
    /* other connections are not affected */
    once(t->addr, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    srv_stop(t);
    return 0;
}

/* ===================================================================== */
/* timeouts                                                              */
/* ===================================================================== */

typedef struct slow_writer {
    cl *k;
    atomic_bool stop;
    tern_chan *done;
    int sent;
} slow_writer;

static int slow_write(void *arg)
{
    slow_writer *s = arg;
    static const char req[] = "GET /plaintext HTTP/1.1\r\nHost: t\r\nX-Slow: "
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (size_t i = 0; i < sizeof req - 1 && !atomic_load(&s->stop); i++) {
        if (tern_conn_write(s->k->c, req + i, 1, NULL) != 1)
            break;
        s->sent++;
        tern_sleep(50 * TERN_MS);
    }
    int one = 1;
    tern_chan_send(s->done, &one, NULL);
    return 0;
}

SERVER_TEST(slowloris)
{
    (void)arg;
    tern_http_server_options o = { .read_header_timeout = 200 * TERN_MS,
                                   .idle_timeout = 200 * TERN_MS };
    tsrv *t = app_start(&o);
    /* one byte every 50 ms: cut off at the header timeout, with a 408 */
    slow_writer *s = calloc(1, sizeof *s);
    s->k = cl_dial(t->addr);
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &s->done), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_go(slow_write, s), 0);
    resp r;
    int rc = cl_response(s->k, &r, false);
    int64_t took = tern_now() - t0;
    CHECK_R(rc);
    CHECK_EQ(r.status, 408);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(s->k);
    took = tern_now() - t0;
    fprintf(stderr, "   slowloris cut off after %lld ms\n", (long long)(took / TERN_MS));
    CHECK(took >= 150 * TERN_MS);
    CHECK(took < 700 * TERN_MS);
    atomic_store(&s->stop, true);
    int one;
    tern_chan_recv(s->done, &one, NULL, NULL);
    CHECK(s->sent < 20);
    cl_close(s->k);
    tern_chan_free(s->done);
    free(s);

    /* a connection that never sends: closed at the header timeout, silently */
    cl *k = cl_dial(t->addr);
    t0 = tern_now();
    expect_eof(k);
    took = tern_now() - t0;
    CHECK(took >= 150 * TERN_MS && took < 700 * TERN_MS);
    cl_close(k);

    /* idle between requests: closed at the idle timeout */
    k = cl_dial(t->addr);
    get(k, "/plaintext", &r);
    resp_free(&r);
    t0 = tern_now();
    expect_eof(k);
    took = tern_now() - t0;
    fprintf(stderr, "   idle connection closed after %lld ms\n", (long long)(took / TERN_MS));
    CHECK(took >= 150 * TERN_MS && took < 700 * TERN_MS);
    cl_close(k);

    /* a client that keeps requesting is not idle */
    k = cl_dial(t->addr);
    for (int i = 0; i < 6; i++) {
        get(k, "/plaintext", &r);
        resp_free(&r);
        tern_sleep(100 * TERN_MS);
    }
    cl_close(k);
    CHECK_EQ(srv_stats(t).accepted, 4);
    srv_stop(t);
    return 0;
}

/* ===================================================================== */
/* accessors                                                             */
/* ===================================================================== */

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    CHECK(v);
    return json_is_null(v) ? NULL : json_string_value(v);
}

SERVER_TEST(accessors)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "GET /acc/a%20b?name=J%C3%B6rg+X&empty=&dup=1&dup=2&nokey HTTP/1.1\r\n"
                 "Host: t\r\nX-Custom:   v1  \r\nCookie: a=1; sess=\"abc\"; b=2\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    json_error_t err;
    json_t *v = json_loadb(r.body, r.body_len, 0, &err);
    CHECK(v);
    CHECK_STR(jstr(v, "method"), "GET");
    CHECK_STR(jstr(v, "target"), "/acc/a%20b?name=J%C3%B6rg+X&empty=&dup=1&dup=2&nokey");
    CHECK_STR(jstr(v, "path"), "/acc/a b");
    CHECK_STR(jstr(v, "raw"), "name=J%C3%B6rg+X&empty=&dup=1&dup=2&nokey");
    CHECK_STR(jstr(v, "route"), "/acc/:id");
    CHECK_STR(jstr(v, "id"), "a b");
    CHECK(jstr(v, "noparam") == NULL);
    CHECK_STR(jstr(v, "name"), "J\xc3\xb6rg X");
    CHECK_STR(jstr(v, "empty"), "");
    CHECK_STR(jstr(v, "dup"), "1");
    CHECK_STR(jstr(v, "nokey"), "");
    CHECK(jstr(v, "missing") == NULL);
    CHECK_STR(jstr(v, "sess"), "abc");
    CHECK_STR(jstr(v, "b"), "2");
    CHECK(jstr(v, "nocookie") == NULL);
    CHECK_STR(jstr(v, "hdr"), "v1");
    CHECK(jstr(v, "nohdr") == NULL);
    CHECK_EQ(json_integer_value(json_object_get(v, "minor")), 1);
    CHECK_EQ(json_integer_value(json_object_get(v, "cl")), -1);
    CHECK_EQ(json_integer_value(json_object_get(v, "nh")), 3);
    CHECK_STR(jstr(v, "h0"), "Host");
    CHECK_STR(jstr(v, "v0"), "t");
    json_decref(v);
    resp_free(&r);

    /* an HTTP/1.0 request without a query */
    cl_send(k, "GET /acc/7 HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    v = json_loadb(r.body, r.body_len, 0, &err);
    CHECK(v);
    CHECK_STR(jstr(v, "raw"), "");
    CHECK(jstr(v, "name") == NULL);
    CHECK_EQ(json_integer_value(json_object_get(v, "minor")), 0);
    CHECK_EQ(json_integer_value(json_object_get(v, "cl")), 0);
    json_decref(v);
    resp_free(&r);

    /* a form */
    roundtrip(k, "POST /form HTTP/1.1\r\nHost: t\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\n\r\n"
                 "x=1&y=hello+world&z=%21&", &r);
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "x=1|y=hello world|z=!|m=(null)");
    resp_free(&r);
    /* not a form: no fields (the body is drained) */
    roundtrip(k, "POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 3\r\n\r\nx=1", &r);
    CHECK_MEM(r.body, r.body_len, "x=(null)|y=(null)|z=(null)|m=(null)");
    resp_free(&r);

    /* JSON in and out */
    roundtrip(k, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 "Content-Length: 17\r\n\r\n{\"n\": 41, \"s\": 1}", &r);
    CHECK_EQ(r.status, 201);
    CHECK_STR(r.reason, "Created");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    CHECK_MEM(r.body, r.body_len, "{\"n\":42,\"ok\":true,\"list\":[1,2],\"s\":\"a\\\"b\"}");
    resp_free(&r);
    roundtrip(k, "POST /json HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n{nop}", &r);
    CHECK_EQ(r.status, 400);
    CHECK_MEM(r.body, r.body_len, "bad json\n");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(date_header)
{
    (void)arg;
    tern_http_server_options o = { .server_header = "tern-test" };
    tsrv *t = app_start(&o);
    cl *k = cl_dial(t->addr);
    for (int i = 0; i < 2; i++) {
        resp r;
        get(k, i ? "/nope" : "/plaintext", &r);
        CHECK_STR(hdr(&r, "Server"), "tern-test");
        CHECK_EQ(hdr_count(&r, "Date"), 1);
        const char *d = hdr(&r, "Date");
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        CHECK_EQ(strlen(d), 29);
        static const char shape[] = "Aaa, 00 Aaa 0000 00:00:00 GMT";
        for (int j = 0; j < 29; j++) {
            char c = shape[j];
            if (c == 'A')
                CHECK(isupper((unsigned char)d[j]));
            else if (c == 'a')
                CHECK(islower((unsigned char)d[j]));
            else if (c == '0')
                CHECK(isdigit((unsigned char)d[j]));
            else
                CHECK(d[j] == c);
        }
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        CHECK(end && *end == '\0');
        time_t when = timegm(&tm);
        time_t now = time(NULL);
        CHECK(when <= now + 1 && when >= now - 3);
        /* the weekday agrees with the date */
        struct tm back;
        gmtime_r(&when, &back);
        CHECK_EQ(back.tm_wday, tm.tm_wday);
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* ===================================================================== */
/* shutdown                                                              */
/* ===================================================================== */

SERVER_TEST(forced_shutdown_cancels_ctx)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    atomic_store(&wait_err, 1);
    tsrv *t = app_start(NULL);
    cl *idle = cl_dial(t->addr);
    resp r;
    get(idle, "/plaintext", &r);
    resp_free(&r);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    int one;
    tern_chan_recv(entered, &one, NULL, NULL);
    /* the idle one's coroutine goes idle just after its answer was sent */
    int64_t until = tern_now() + TERN_SEC;
    while (srv_stats(t).active != 1 && tern_now() < until)
        tern_sleep(TERN_MS);
    CHECK_EQ(srv_stats(t).active, 1);
    CHECK_EQ(srv_stats(t).conns, 2);
    int64_t t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 100 * TERN_MS), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    CHECK(took >= 90 * TERN_MS && took < TERN_SEC);
    CHECK_EQ(srv_wait(t), 0);
    CHECK_EQ(atomic_load(&wait_err), -ECANCELED);
    /* the idle one was closed at once, the busy one at the deadline */
    expect_eof(idle);
    int rc = cl_response(k, &r, false);
    CHECK(rc == RS_CLOSED);
    CHECK_EQ(srv_stats(t).conns, 0);
    /* new connections are refused */
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, t->addr, &c, NULL), -ECONNREFUSED);
    /* idempotent */
    CHECK_EQ(shutdown_within(t->s, 100 * TERN_MS), 0);
    cl_close(idle);
    cl_close(k);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

typedef struct cancel_job {
    tern_ctx *ctx;
    int64_t after;
} cancel_job;

static int cancel_later(void *arg)
{
    cancel_job *j = arg;
    tern_sleep(j->after);
    tern_ctx_cancel(j->ctx);
    return 0;
}

/* A request in flight and an idle connection, as forced_shutdown_cancels_ctx
 * sets them up; returns the busy client, *idle the other. */
static cl *busy_and_idle(tsrv *t, cl **idle)
{
    *idle = cl_dial(t->addr);
    resp r;
    get(*idle, "/plaintext", &r);
    resp_free(&r);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    int one;
    tern_chan_recv(entered, &one, NULL, NULL);
    int64_t until = tern_now() + TERN_SEC;
    while (srv_stats(t).active != 1 && tern_now() < until)
        tern_sleep(TERN_MS);
    CHECK_EQ(srv_stats(t).active, 1);
    return k;
}

SERVER_TEST(shutdown_drain_ends_when_its_ctx_is_cancelled)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    atomic_store(&wait_err, 1);
    tsrv *t = app_start(NULL);
    cl *idle, *k = busy_and_idle(t, &idle);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    cancel_job j = {ctx, 50 * TERN_MS};
    CHECK_EQ(tern_go(cancel_later, &j), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_http_server_shutdown(t->s, ctx), -ECANCELED);
    int64_t took = tern_now() - t0;
    CHECK(took >= 45 * TERN_MS && took < TERN_SEC);
    CHECK_EQ(srv_wait(t), 0);           /* ended by shutdown, not by its own ctx */
    CHECK_EQ(atomic_load(&wait_err), -ECANCELED);
    expect_eof(idle);
    resp r;
    CHECK(cl_response(k, &r, false) == RS_CLOSED);
    CHECK_EQ(srv_stats(t).conns, 0);
    tern_ctx_free(ctx);
    cl_close(idle);
    cl_close(k);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

SERVER_TEST(serve_ends_with_its_ctx_closing_every_connection)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    atomic_store(&wait_err, 1);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_http_server_options o = { .read_body_timeout = 3 * TERN_SEC };
    tsrv *t = srv_start_ctx(&o, app_router(), ctx);
    cl *idle, *k = busy_and_idle(t, &idle);
    int64_t t0 = tern_now();
    tern_ctx_cancel(ctx);
    CHECK_EQ(srv_wait(t), -ECANCELED);
    CHECK(tern_now() - t0 < TERN_SEC);  /* at once: no drain */
    CHECK_EQ(atomic_load(&wait_err), -ECANCELED);
    expect_eof(idle);
    resp r;
    CHECK(cl_response(k, &r, false) == RS_CLOSED);
    CHECK_EQ(srv_stats(t).conns, 0);
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, t->addr, &c, NULL), -ECONNREFUSED);
    /* a later shutdown has nothing left to do */
    CHECK_EQ(tern_http_server_shutdown(t->s, NULL), 0);
    /* and a deadline ends it the same way */
    tern_ctx_free(ctx);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 30 * TERN_MS, &ctx), 0);
    tsrv *t2 = srv_start_ctx(&o, app_router(), ctx);
    CHECK_EQ(srv_wait(t2), -ETIMEDOUT);
    srv_free(t2);
    tern_ctx_free(ctx);
    cl_close(idle);
    cl_close(k);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

typedef struct load_st {
    const char *addr;
    atomic_long ok200, closed, bad, sent;
    atomic_bool shutting;
    tern_waitgroup wg;
    int id;
} load_st;

typedef struct load_arg {
    load_st *L;
    unsigned seed;
} load_arg;

static int load_client(void *arg)
{
    load_arg *a = arg;
    load_st *L = a->L;
    for (;;) {
        tern_conn *c;
        int rc = tern_conn_dial(TERN_NET_TCP, L->addr, &c, NULL);
        if (rc < 0) {
            if (!atomic_load(&L->shutting)) {
                fprintf(stderr, "load: dial before shutdown: %s\n", tern_strerror(rc));
                atomic_fetch_add(&L->bad, 1);
            }
            break;
        }
        cl *k = cl_wrap(c);
        for (;;) {
            char req[128];
            int ms = (int)(rand_r(&a->seed) % 21);
            int n = snprintf(req, sizeof req, "GET /sleep?ms=%d HTTP/1.1\r\nHost: t\r\n\r\n", ms);
            if (tern_conn_write(k->c, req, (size_t)n, NULL) != n)
                break;          /* closed by the server before it read anything */
            atomic_fetch_add(&L->sent, 1);
            resp r;
            rc = cl_response(k, &r, false);
            if (rc == RS_CLOSED) {
                atomic_fetch_add(&L->closed, 1);
                break;
            }
            char want[32];
            snprintf(want, sizeof want, "slept %d ms\n", ms);
            if (rc != RS_OK || r.status != 200 || r.body_len != strlen(want) ||
                memcmp(r.body, want, r.body_len) != 0) {
                fprintf(stderr, "load: bad answer: %s, status %d, body %.*s\n", rname(rc),
                        r.status, (int)r.body_len, r.body ? r.body : "");
                atomic_fetch_add(&L->bad, 1);
                resp_free(&r);
                break;
            }
            atomic_fetch_add(&L->ok200, 1);
            const char *conn = hdr(&r, "Connection");
            bool close = conn && !strcmp(conn, "close");
            resp_free(&r);
            if (close) {
                if (cl_fill(k) != 0) {      /* it said close: then it must close */
                    fprintf(stderr, "load: no EOF after Connection: close\n");
                    atomic_fetch_add(&L->bad, 1);
                }
                break;
            }
        }
        cl_close(k);
    }
    free(a);
    tern_waitgroup_done(&L->wg);
    return 0;
}

SERVER_TEST(shutdown_under_load)
{
    (void)arg;
    atomic_store(&sleep_calls, 0);
    tsrv *t = app_start(NULL);
    load_st *L = calloc(1, sizeof *L);
    L->addr = t->addr;
    enum { CLIENTS = 32 };
    tern_waitgroup_add(&L->wg, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) {
        load_arg *a = malloc(sizeof *a);
        a->L = L;
        a->seed = (unsigned)i * 7919u + 1;
        CHECK_EQ(tern_go(load_client, a), 0);
    }
    tern_sleep(200 * TERN_MS);
    long before = atomic_load(&L->ok200);
    CHECK(before > CLIENTS);
    atomic_store(&L->shutting, true);
    int64_t t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 5 * TERN_SEC), 0);
    int64_t took = tern_now() - t0;
    tern_waitgroup_wait(&L->wg, NULL);
    CHECK_EQ(srv_wait(t), 0);
    struct tern_http_server_stats st = srv_stats(t);
    fprintf(stderr, "   %ld answered (%ld before shutdown), %ld closed unanswered, %ld sent; "
            "server: %llu requests, %llu conns; shutdown took %lld ms\n",
            atomic_load(&L->ok200), before, atomic_load(&L->closed), atomic_load(&L->sent),
            (unsigned long long)st.requests, (unsigned long long)st.accepted,
            (long long)(took / TERN_MS));
    CHECK_EQ(atomic_load(&L->bad), 0);
    CHECK_EQ(st.requests, atomic_load(&L->ok200));
    CHECK_EQ(atomic_load(&sleep_calls), atomic_load(&L->ok200));
    CHECK_EQ(st.conns, 0);
    CHECK_EQ(st.active, 0);
    CHECK(took < 2 * TERN_SEC);
    srv_free(t);
    free(L);
    return 0;
}

/* ===================================================================== */
/* the router                                                            */
/* ===================================================================== */

/* "<tag>" then " name=value" for each parameter present, and the route. */
static int h_tag(tern_http_req *r, tern_http_resp *w, void *arg)
{
    static const char *names[] = { "id", "path", "x", "y", "p", "rest", "n" };
    char out[512];
    size_t len = (size_t)snprintf(out, sizeof out, "%s", (const char *)arg);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = tern_http_req_param(r, names[i]);
        if (v)
            len += (size_t)snprintf(out + len, sizeof out - len, " %s=%s", names[i], v);
    }
    snprintf(out + len, sizeof out - len, " route=%s", tern_http_req_route(r));
    return tern_http_resp_text(w, 200, out);
}

static void expect_body(cl *k, const char *method, const char *path, int status, const char *body)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
    resp r;
    roundtrip(k, req, &r);
    if (r.status != status || r.body_len != strlen(body) || memcmp(r.body, body, r.body_len)) {
        fprintf(stderr, "%s %s: %d \"%s\", expected %d \"%s\"\n", method, path, r.status,
                r.body, status, body);
        abort();
    }
    resp_free(&r);
}

static void expect_405(cl *k, const char *method, const char *path, const char *allow)
{
    char req[512];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
    resp r;
    roundtrip(k, req, &r);
    CHECK_EQ(r.status, 405);
    CHECK_STR(r.reason, "Method Not Allowed");
    CHECK_STR(hdr(&r, "Allow"), allow);
    if (strcmp(method, "HEAD") != 0)
        CHECK_MEM(r.body, r.body_len, "405 Method Not Allowed\n");
    else
        CHECK_STR(hdr(&r, "Content-Length"), "23");     /* of the GET-like answer */
    CHECK(hdr(&r, "Connection") == NULL);     /* an answer, not a broken conn */
    resp_free(&r);
}

SERVER_TEST(router_routes)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    /* parameters registered before the static routes they compete with */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/users/:id", h_tag, "user"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/users/new", h_tag, "new"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/users/:id", h_tag, "post"), 0);
    /* and after */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/c/d", h_tag, "cd"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/c/:y", h_tag, "cy"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/files/*path", h_tag, "files"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/m/*rest", h_tag, "mrest"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/m/:p", h_tag, "mp"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/b/:x/c", h_tag, "bxc"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/b/y/d", h_tag, "byd"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/thing", h_tag, "thing-get"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "DELETE", "/thing", h_tag, "thing-del"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/postonly", h_tag, "postonly"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "*", "/any", h_tag, "any"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/", h_tag, "root"), 0);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);

    expect_body(k, "GET", "/", 200, "root route=/");
    expect_body(k, "GET", "/users/42", 200, "user id=42 route=/users/:id");
    expect_body(k, "GET", "/users/new", 200, "new route=/users/new");
    expect_body(k, "GET", "/users/newer", 200, "user id=newer route=/users/:id");
    expect_body(k, "GET", "/users/ne", 200, "user id=ne route=/users/:id");
    expect_body(k, "GET", "/users/a%20b", 200, "user id=a b route=/users/:id");
    expect_body(k, "POST", "/users/7", 200, "post id=7 route=/users/:id");
    expect_body(k, "GET", "/c/d", 200, "cd route=/c/d");
    expect_body(k, "GET", "/c/e", 200, "cy y=e route=/c/:y");
    expect_body(k, "GET", "/files/css/a.css", 200, "files path=css/a.css route=/files/*path");
    expect_body(k, "GET", "/files/", 200, "files path= route=/files/*path");
    expect_body(k, "GET", "/m/one", 200, "mp p=one route=/m/:p");
    expect_body(k, "GET", "/m/one/two", 200, "mrest rest=one/two route=/m/*rest");
    expect_body(k, "GET", "/b/y/c", 200, "bxc x=y route=/b/:x/c");   /* backtracks */
    expect_body(k, "GET", "/b/y/d", 200, "byd route=/b/y/d");
    expect_body(k, "PATCH", "/any", 200, "any route=/any");
    expect_body(k, "GET", "/any", 200, "any route=/any");
    expect_body(k, "DELETE", "/thing", 200, "thing-del route=/thing");

    /* 404 */
    expect_body(k, "GET", "/nope", 404, "404 Not Found\n");
    expect_body(k, "GET", "/users/42/extra", 404, "404 Not Found\n");
    expect_body(k, "GET", "/users", 404, "404 Not Found\n");
    expect_body(k, "GET", "/thing/", 404, "404 Not Found\n");
    expect_body(k, "GET", "/b/y", 404, "404 Not Found\n");

    /* 405 with Allow; HEAD listed where GET exists */
    expect_405(k, "PUT", "/users/7", "GET, POST, HEAD");
    expect_405(k, "PUT", "/thing", "GET, DELETE, HEAD");
    expect_405(k, "GET", "/postonly", "POST");
    expect_405(k, "HEAD", "/postonly", "POST");

    /* HEAD is served by GET */
    resp r;
    roundtrip(k, "HEAD /thing HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    char want[16];
    snprintf(want, sizeof want, "%zu", strlen("thing-get route=/thing"));
    CHECK_STR(hdr(&r, "Content-Length"), want);
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);
    CHECK(cl_quiet(k, 10 * TERN_MS));
    cl_close(k);
    srv_stop(t);
    return 0;
}

static const char order_key;

static char *order_buf(tern_http_req *r)
{
    char *b = tern_http_req_value(r, &order_key);
    if (!b) {
        b = tern_http_req_alloc(r, 256);
        CHECK(b);
        b[0] = '\0';
        CHECK_EQ(tern_http_req_set_value(r, &order_key, b), 0);
    }
    return b;
}

/* Records "<tag>>" before the rest of the chain and "<tag>" in X-After after. */
static int mw_order(tern_http_req *r, tern_http_resp *w, void *arg)
{
    const char *tag = arg;
    char *b = order_buf(r);
    strcat(b, tag);
    strcat(b, ">");
    int rc = tern_http_next(r, w);
    const char *prev = tern_http_resp_header(w, "X-After");
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s%s%s", prev ? prev : "", prev ? "<" : "", tag);
    CHECK_EQ(tern_http_resp_set_header(w, "X-After", tmp), 0);
    return rc;
}

static int h_order(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    char *b = order_buf(r);
    strcat(b, "h");
    /* the chain is over for the handler */
    CHECK_EQ(tern_http_next(r, w), 0);
    return tern_http_resp_text(w, 200, b);
}

static int my_404(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    return tern_http_resp_printf(w, "custom 404 for %s", tern_http_req_path(r)) < 0 ? -EIO :
           tern_http_resp_set_status(w, 404);
}

static void expect_order(cl *k, const char *method, const char *path, int status,
                         const char *body, const char *after)
{
    char req[256];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: t\r\n\r\n", method, path);
    resp r;
    roundtrip(k, req, &r);
    if (r.status != status || r.body_len != strlen(body) || memcmp(r.body, body, r.body_len) ||
        !hdr(&r, "X-After") || strcmp(hdr(&r, "X-After"), after)) {
        fprintf(stderr, "%s %s: %d \"%s\" X-After \"%s\", expected %d \"%s\" \"%s\"\n", method,
                path, r.status, r.body, hdr(&r, "X-After") ? hdr(&r, "X-After") : "(none)",
                status, body, after);
        abort();
    }
    resp_free(&r);
}

SERVER_TEST(router_groups)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    tern_http_group *root = tern_http_router_root(rt);
    CHECK(root);
    CHECK_EQ(tern_http_router_use(rt, mw_order, "root"), 0);
    tern_http_group *bad = root;
    CHECK_EQ(tern_http_group_new(root, "api", &bad), -EINVAL);
    CHECK(bad == NULL);
    CHECK_EQ(tern_http_group_new(root, "/api/", &bad), -EINVAL);
    tern_http_group *api;
    CHECK_EQ(tern_http_group_new(root, "/api", &api), 0);
    CHECK_EQ(tern_http_group_use(api, mw_order, "g1"), 0);
    CHECK_EQ(tern_http_group_use(api, NULL, NULL), -EINVAL);
    tern_http_group *v1;
    CHECK_EQ(tern_http_group_new(api, "/v1", &v1), 0);
    CHECK_EQ(tern_http_group_use(v1, mw_order, "g2a"), 0);
    CHECK_EQ(tern_http_group_use(v1, mw_order, "g2b"), 0);
    tern_http_group *other;
    CHECK_EQ(tern_http_group_new(root, "/other", &other), 0);
    CHECK_EQ(tern_http_group_use(other, mw_order, "o"), 0);
    CHECK_EQ(tern_http_group_handle(v1, "GET", "/ping/:n", h_order, NULL), 0);
    CHECK_EQ(tern_http_group_handle(api, "GET", "/info", h_order, NULL), 0);
    CHECK_EQ(tern_http_group_handle(other, "GET", "/x", h_order, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/top", h_order, NULL), 0);
    /* middleware after routes: refused, on the group and on its parents */
    CHECK_EQ(tern_http_group_use(v1, mw_order, "late"), -EBUSY);
    CHECK_EQ(tern_http_group_use(api, mw_order, "late"), -EBUSY);
    CHECK_EQ(tern_http_router_use(rt, mw_order, "late"), -EBUSY);
    /* a duplicate through a group */
    CHECK_EQ(tern_http_group_handle(api, "GET", "/v1/ping/:n", h_order, NULL), -EEXIST);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);
    expect_order(k, "GET", "/api/v1/ping/3", 200, "root>g1>g2a>g2b>h", "g2b<g2a<g1<root");
    expect_order(k, "GET", "/api/info", 200, "root>g1>h", "g1<root");
    expect_order(k, "GET", "/other/x", 200, "root>o>h", "o<root");
    expect_order(k, "GET", "/top", 200, "root>h", "root");
    /* the root's middleware runs for 404 and 405 too; a group's does not */
    expect_order(k, "GET", "/v1/ping/3", 404, "404 Not Found\n", "root");
    expect_order(k, "GET", "/api/nope", 404, "404 Not Found\n", "root");
    expect_order(k, "POST", "/api/info", 405, "405 Method Not Allowed\n", "root");
    cl_close(k);
    srv_stop(t);        /* frees the router too */

    /* a custom 404, from the router's options */
    CHECK_EQ(tern_http_router_new(&(tern_http_router_options){.not_found = my_404}, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a", h_order, NULL), 0);
    t = srv_start(&o, rt);
    k = cl_dial(t->addr);
    expect_body(k, "GET", "/zz%21", 404, "custom 404 for /zz!");
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(group_serves_its_own_prefix)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    tern_http_group *notes;
    CHECK_EQ(tern_http_group_new(tern_http_router_root(rt), "/notes", &notes), 0);
    CHECK_EQ(tern_http_group_handle(notes, "POST", "", h_tag, "create"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "GET", "", h_tag, "list"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "GET", "/", h_tag, "slash"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "GET", "/:id", h_tag, "one"), 0);
    CHECK_EQ(tern_http_group_handle(notes, "POST", "", h_tag, "again"), -EEXIST);
    /* the root has no prefix to serve: "" is as malformed there as "x" */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "", h_tag, "root"), -EINVAL);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);
    expect_body(k, "POST", "/notes", 200, "create route=/notes");
    expect_body(k, "GET", "/notes", 200, "list route=/notes");
    expect_body(k, "GET", "/notes/", 200, "slash route=/notes/");
    expect_body(k, "GET", "/notes/7", 200, "one id=7 route=/notes/:id");
    expect_body(k, "GET", "/notesx", 404, "404 Not Found\n");
    cl_close(k);
    srv_stop(t);
    return 0;
}

static int h_untyped(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    const char *what = arg;
    if (!strcmp(what, "typed"))
        CHECK_EQ(tern_http_resp_set_header(w, "content-type", "application/x-thing"), 0);
    if (!strcmp(what, "empty"))
        return 0;
    if (!strcmp(what, "204"))
        return tern_http_resp_set_status(w, 204);
    return tern_http_resp_write(w, "body", 4) == 4 ? 0 : -EIO;
}

SERVER_TEST(untyped_body_is_sent_as_text)
{
    (void)arg;
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/untyped", h_untyped, "untyped"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/typed", h_untyped, "typed"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/empty", h_untyped, "empty"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/204", h_untyped, "204"), 0);
    tern_http_server_options o = {0};
    tsrv *t = srv_start(&o, rt);
    cl *k = cl_dial(t->addr);
    resp r;
    get(k, "/untyped", &r);
    CHECK_STR(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
    CHECK_EQ(hdr_count(&r, "Content-Type"), 1);
    resp_free(&r);
    get(k, "/typed", &r);                /* the handler's own, in any case, alone */
    CHECK_STR(hdr(&r, "Content-Type"), "application/x-thing");
    CHECK_EQ(hdr_count(&r, "Content-Type"), 1);
    resp_free(&r);
    get(k, "/empty", &r);                /* no body: nothing to type */
    CHECK(hdr(&r, "Content-Type") == NULL);
    resp_free(&r);
    get(k, "/204", &r);
    CHECK(hdr(&r, "Content-Type") == NULL);
    resp_free(&r);
    roundtrip(k, "HEAD /untyped HTTP/1.1\r\nHost: t\r\n\r\n", &r);   /* as GET would */
    CHECK_STR(hdr(&r, "Content-Type"), "text/plain; charset=utf-8");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* ---- NULL objects: a message naming the function, not a SIGSEGV ---------- */

static int null_case;

static void null_child(void)
{
    struct tern_http_server_stats st;
    tern_http_client_response *resp = NULL;
    tern_http_client_request req = {.url = "http://127.0.0.1:1/"};
    switch (null_case) {
    case 0: (void)tern_http_server_serve(NULL, NULL); break;
    case 1: (void)tern_http_server_shutdown(NULL, NULL); break;
    case 2: (void)tern_http_server_stats(NULL, &st); break;
    case 3: (void)tern_http_router_handle(NULL, "GET", "/", h_tag, NULL); break;
    case 4: (void)tern_http_group_handle(NULL, "GET", "/", h_tag, NULL); break;
    case 5: (void)tern_http_client_do(NULL, &req, &resp, NULL); break;
    case 6: (void)tern_http_client_response_status(NULL); break;
    }
}

static void http_null_objects_abort_naming_the_function(void)
{
    static const char *const want[] = {
        "tern: tern_http_server_serve: s is NULL",
        "tern: tern_http_server_shutdown: s is NULL",
        "tern: tern_http_server_stats: s is NULL",
        "tern: tern_http_router_handle: rt is NULL",
        "tern: tern_http_group_handle: g is NULL",
        "tern: tern_http_client_do: c is NULL",
        "tern: tern_http_client_response_status: r is NULL",
    };
    for (null_case = 0; null_case < 7; null_case++) {
        child_result r = run_child(null_child);
        CHECK(!r.exited && r.sig == SIGABRT);
        CHECK(strstr(r.err, want[null_case]) != NULL);
    }
    /* freeing NULL is no error */
    tern_http_server_free(NULL);
    tern_http_router_free(NULL);
    tern_http_client_free(NULL);
    tern_http_client_response_free(NULL);
}

/* No runtime needed: registration only. */
static void router_registration_errors(void)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:id", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:id", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/a/:id", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "*", "/a/:id", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, NULL, "/a/:id", h_tag, NULL), -EEXIST);
    /* a parameter named differently at the same place */
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:name/x", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a/:id/x", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/s/*rest", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/s/*other", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/s/*rest", h_tag, NULL), -EEXIST);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/dup", h_tag, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/dup", h_tag, NULL), -EEXIST);
    /* malformed patterns */
    static const char *bad[] = { "", "x", "a/b", "/a/:", "/a/b:c", "/a/*p/b", "/a/*",
                                 "/a/:x:y", "/a/x*y", "/:/b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = tern_http_router_handle(rt, "GET", bad[i], h_tag, NULL);
        if (rc != -EINVAL) {
            fprintf(stderr, "pattern \"%s\": %d, expected -EINVAL\n", bad[i], rc);
            abort();
        }
    }
    CHECK_EQ(tern_http_router_handle(rt, "GET", NULL, h_tag, NULL), -EINVAL);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/ok", NULL, NULL), -EINVAL);
    tern_http_router_free(rt);
    tern_http_router_free(NULL);
}

/* ===================================================================== */
/* regressions: bugs these tests found                                   */
/* ===================================================================== */

/* Connection: close is honoured: the answer says close, and nothing after
 * that request is processed (RFC 9112 9.6: "MUST NOT process any further
 * requests received on that connection"), even when already buffered.
 * Found: the serve loop checked `closing` only with an empty input buffer. */
SERVER_TEST(connection_close)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    /* a token list, any case */
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: foo, CLOSE\r\n\r\n", &r);
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    /* a request pipelined after the one saying close is never answered */
    k = cl_dial(t->addr);
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
               "GET /acc/second HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_stats(t).requests, 2);
    srv_stop(t);
    return 0;
}

/* A chunked body with bad framing: the handler's read fails (-EBADMSG,
 * here answered 400 by the server), the connection closes, and the rest of
 * the bad body is never parsed as a request.  Found: a second 400 came,
 * from parsing the body's remains as a request. */
SERVER_TEST(bad_chunked_framing_closes)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    roundtrip(k, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabcX\r\n0\r\n\r\n", &r);
    CHECK_EQ(r.status, 400);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_stats(t).requests, 1);
    srv_stop(t);
    return 0;
}

/* Content-Length over max_body_bytes, head only: the 413 must come at once,
 * without the server waiting for (and reading) the body.  Found: the 413
 * sat in the output buffer while drain_body() read the refused body, until
 * read_body_timeout (60 s by default). */
SERVER_TEST(body_over_limit_refused_before_read)
{
    (void)arg;
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    char req[256];
    snprintf(req, sizeof req, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n",
             APP_MAX_BODY + 1);
    cl_send(k, req);
    k->timeout = TERN_SEC;          /* the server's body timeout is 3 s */
    int64_t t0 = tern_now();
    resp r;
    int rc = cl_response(k, &r, false);
    if (rc != RS_OK) {
        fprintf(stderr, "no 413 within %lld ms: %s (the server waits for the body it refuses)\n",
                (long long)((tern_now() - t0) / TERN_MS), rname(rc));
        abort();
    }
    CHECK_EQ(r.status, 413);
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_stats(t).rejected, 1);
    srv_stop(t);
    return 0;
}

/* A request in flight when shutdown begins is answered, with Connection:
 * close (tern/http.h: "their responses carry Connection: close").  Found:
 * only requests read after shutdown began were marked closing. */
SERVER_TEST(shutdown_inflight_gets_connection_close)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 16, &entered), 0);
    tsrv *t = app_start(NULL);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    int one;
    tern_chan_recv(entered, &one, NULL, NULL);
    int64_t t0 = tern_now();
    CHECK_EQ(shutdown_within(t->s, 2 * TERN_SEC), 0);
    int64_t took = tern_now() - t0;
    CHECK(took >= 50 * TERN_MS && took < TERN_SEC);     /* it waited for the handler */
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "slow done\n");
    const char *c = hdr(&r, "Connection");
    if (!c || strcmp(c, "close") != 0) {
        fprintf(stderr, "the in-flight response at shutdown has Connection: %s, expected close\n",
                c ? c : "(none)");
        abort();
    }
    resp_free(&r);
    expect_eof(k);
    cl_close(k);
    CHECK_EQ(srv_wait(t), 0);
    srv_free(t);
    tern_chan_free(entered);
    entered = NULL;
    return 0;
}

/* tern_http_server_free() right after serve() returns, as hello.c does
 * ("After serve has returned"): no coroutine of the server may touch it
 * any more.  Found: serve() returned when `drained` closed, while
 * shutdown() was still inside tern_chan_recv (with a ctx) on it (a use after free
 * of the channel; in a plain build a worker spun on the freed lock).
 * Repeated to hit the window. */
typedef struct race {
    tern_http_server *s;
    char addr[64];
} race;

static int race_driver(void *arg)
{
    race *x = arg;
    cl *k = cl_dial(x->addr);
    resp r;
    get(k, "/plaintext", &r);
    resp_free(&r);
    cl_close(k);        /* its conn coroutine ends while shutdown runs */
    shutdown_within(x->s, 2 * TERN_SEC);
    return 0;
}

static int free_right_after_serve_main(void *arg);

/* In a child with an alarm: a late access to a freed (and reused) server
 * can also hang a worker on a spin lock. */
static void free_right_after_serve_child(void)
{
    alarm(8);
    run_ok(free_right_after_serve_main, NULL, 2);
}

static void free_right_after_serve(void)
{
    child_result cr = run_child(free_right_after_serve_child);
    if (!cr.exited || cr.code != 0) {
        fprintf(stderr, "freeing the server right after serve() returned: the child %s %d "
                "(a use after free: see its stderr above)\n",
                cr.exited ? "exited with" : "was killed by signal", cr.exited ? cr.code : cr.sig);
        abort();
    }
}

static int free_right_after_serve_main(void *arg)
{
    (void)arg;
    int rounds = (int)scaled(200);
    for (int i = 0; i < rounds; i++) {
        race *x = calloc(1, sizeof *x);
        tern_http_router *rt = app_router();
        tern_http_server_options o = { .handler = tern_http_router_serve, .arg = rt,
                                       .max_conns = 4 };
        CHECK_EQ(tern_http_server_new(&o, &x->s), 0);
        CHECK_EQ(tern_http_server_listen(x->s, "127.0.0.1:0"), 0);
        snprintf(x->addr, sizeof x->addr, "%s", tern_http_server_addr(x->s));
        CHECK_EQ(tern_go(race_driver, x), 0);
        CHECK_EQ(tern_http_server_serve(x->s, NULL), 0);
        tern_http_server_free(x->s);
        /* poison what a late access would read (a plain build has no ASan) */
        tern_http_router_free(rt);
        tern_sleep(1 * TERN_MS);    /* the driver is done with x by now */
        free(x);
    }
    return 0;
}

/* The same with shutdown() returned and serve() returned (srv_stop(), the
 * safest order there is).  Found: a connection closed by its client just
 * before shutdown was still inside tern__http_conn_gone() after `drained`
 * was closed, unlocking s->mu of a freed (or already reused) server. */
SERVER_TEST(free_after_shutdown_and_serve)
{
    (void)arg;
    int rounds = (int)scaled(300);
    for (int i = 0; i < rounds; i++) {
        tern_http_server_options o = { .max_conns = 4 };
        tsrv *t = app_start(&o);
        cl *k = cl_dial(t->addr);
        resp r;
        get(k, "/plaintext", &r);
        resp_free(&r);
        cl_close(k);
        srv_stop(t);
    }
    return 0;
}

/* The root group's middleware with routes: freeing the router must work.
 * Found: each route kept a pointer past the root's links into its chain's
 * allocation and freed that pointer (free(): invalid pointer). */
static void router_free_with_root_middleware(void)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_use(rt, mw_order, "root"), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/a", h_order, NULL), 0);
    tern_http_router_free(rt);
}

/* ===================================================================== */
/* regressions from review                                               */
/* ===================================================================== */

/* writes before reading the body */
static int h_pre_echo(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_http_resp_write(w, "pre:", 4);
    const char *body;
    size_t len;
    int rc = tern_http_req_body(r, &body, &len);
    if (rc < 0)
        return rc;
    tern_http_resp_write(w, body, len);
    return 0;
}

/* streams, then reads an Expect: 100-continue body */
static int h_commit_then_read(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_http_resp_write(w, "abc", 3);
    tern_http_resp_flush(w);
    const char *body;
    size_t len;
    int rc = tern_http_req_body(r, &body, &len);
    if (rc < 0)
        return rc;
    tern_http_resp_write(w, body, len);
    return 0;
}

static int h_304_after_write(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    tern_http_resp_write(w, "SMUGGLED", 8);
    return tern_http_resp_set_status(w, 304);
}

/* reads a chunked body, then answers with what the head said */
static int h_head_after_body(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *body;
    size_t len;
    int rc = tern_http_req_body(r, &body, &len);
    if (rc < 0)
        return rc;
    tern_http_resp_printf(w, "%s %s tag=%s path=%s body=%.*s", tern_http_req_method(r),
                          tern_http_req_target(r), tern_http_req_header(r, "X-Tag"),
                          tern_http_req_path(r), (int)len, body);
    return 0;
}

static int h_sleep300(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    tern_sleep(300 * TERN_MS);
    return tern_http_resp_text(w, 200, "late");
}

static tsrv *review_start(int64_t read_header_timeout)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/plaintext", h_plaintext, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/pre", h_pre_echo, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/commit", h_commit_then_read, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/304", h_304_after_write, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "POST", "/headafter/:x", h_head_after_body, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/sleep300", h_sleep300, NULL), 0);
    tern_http_server_options o = { .read_header_timeout = read_header_timeout };
    return srv_start(&o, rt);
}

/* A pipelined answer is buffered when the next request asks for 100
 * Continue, and that request's handler has already written: the 100 goes
 * between the two answers, and no byte of the second precedes its head. */
SERVER_TEST(continue_after_buffered_answers)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n"
               "POST /pre HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(r.body_len == 13 && !memcmp(r.body, "Hello, World!", 13));
    resp_free(&r);
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 100);
    resp_free(&r);
    cl_send(k, "hello");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(r.body_len == 9 && !memcmp(r.body, "pre:hello", 9));
    resp_free(&r);
    get(k, "/plaintext", &r);           /* still in step */
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Once the head is out, no 100 Continue lands inside the chunked body. */
SERVER_TEST(no_continue_after_commit)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /commit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n");
    tern_sleep(50 * TERN_MS);           /* the head and "abc" are out */
    cl_send(k, "hello");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    CHECK(r.chunked);
    CHECK(r.body_len == 8 && !memcmp(r.body, "abchello", 8));
    resp_free(&r);
    get(k, "/plaintext", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Body bytes written before a 304 never reach the wire. */
SERVER_TEST(no_body_bytes_after_304)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 304);
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);
    CHECK_R(cl_response(k, &r, false));    /* not "SMUGGLEDHTTP/1.1 200" */
    CHECK_EQ(r.status, 200);
    CHECK(r.body_len == 13 && !memcmp(r.body, "Hello, World!", 13));
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* The head's strings survive reading a chunked body that arrives later
 * (the body is decoded in the buffer the head was read into). */
SERVER_TEST(head_survives_chunked_body)
{
    (void)arg;
    tsrv *t = review_start(0);
    cl *k = cl_dial(t->addr);
    cl_send(k, "POST /headafter/x%20y?q=1 HTTP/1.1\r\nHost: a\r\nX-Tag: kept\r\n"
               "Transfer-Encoding: chunked\r\n\r\n");
    tern_sleep(30 * TERN_MS);
    cl_send(k, "5\r\nhello\r\n");
    tern_sleep(10 * TERN_MS);
    cl_send(k, "0\r\n\r\n");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    const char *want = "POST /headafter/x%20y?q=1 tag=kept path=/headafter/x y body=hello";
    if (r.body_len != strlen(want) || memcmp(r.body, want, r.body_len))
        fprintf(stderr, "got: %.*s\n", (int)r.body_len, r.body);
    CHECK(r.body_len == strlen(want) && !memcmp(r.body, want, r.body_len));
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* A pipelined head that is only partly there when the slow handler before
 * it finishes gets a full read_header_timeout of its own. */
SERVER_TEST(pipelined_head_gets_its_own_timeout)
{
    (void)arg;
    tsrv *t = review_start(200 * TERN_MS);
    cl *k = cl_dial(t->addr);
    cl_send(k, "GET /sleep300 HTTP/1.1\r\nHost: a\r\n\r\nGET /plaintext HTTP/1.1\r\nHo");
    resp r;
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    tern_sleep(50 * TERN_MS);           /* well within a fresh 200 ms */
    cl_send(k, "st: a\r\n\r\n");
    CHECK_R(cl_response(k, &r, false));
    CHECK_EQ(r.status, 200);            /* not 408 */
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* ===================================================================== */
/* the request and response calls, each checked directly                 */
/* ===================================================================== */

static void error_status_maps_body_errors(void)
{
    CHECK_EQ(tern_http_error_status(-EMSGSIZE), 413);
    CHECK_EQ(tern_http_error_status(-EBADMSG), 400);
    const int others[] = {-ENOMEM, -EIO, -ETIMEDOUT, -ECONNRESET, -EINVAL, -1, EMSGSIZE, EBADMSG};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        CHECK_EQ(tern_http_error_status(others[i]), 500);
}

/* Status, headers and the buffered body, from inside a handler. */
static int h_resp_api(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *p = tern_http_req_path(r);
    char *d;
    size_t n;
    if (!strcmp(p, "/resp")) {
        CHECK_EQ(tern_http_resp_status(w), 200);            /* the default */
        CHECK_EQ(tern_http_resp_set_status(w, 199), -EINVAL);
        CHECK_EQ(tern_http_resp_set_status(w, 1000), -EINVAL);
        CHECK_EQ(tern_http_resp_status(w), 200);            /* refused: unchanged */
        CHECK_EQ(tern_http_resp_set_status(w, 299), 0);
        CHECK_EQ(tern_http_resp_status(w), 299);
        CHECK_EQ(tern_http_resp_set_status(w, 201), 0);
        CHECK_EQ(tern_http_resp_status(w), 201);

        CHECK_EQ(tern_http_resp_set_header(w, "X-Keep", "k"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "X-Dup", "1"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "x-dup", "2"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "X-Other", "o"), 0);
        CHECK_EQ(tern_http_resp_add_header(w, "X-Dup", "3"), 0);
        CHECK_EQ(tern_http_resp_del_header(w, "X-DUP"), 0);     /* every one, any case */
        CHECK(tern_http_resp_header(w, "X-Dup") == NULL);
        CHECK_STR(tern_http_resp_header(w, "X-Keep"), "k");
        CHECK_STR(tern_http_resp_header(w, "X-Other"), "o");
        CHECK_EQ(tern_http_resp_del_header(w, "X-Absent"), 0);
        CHECK_EQ(tern_http_resp_del_header(w, "X-Other"), 0);
        CHECK(tern_http_resp_header(w, "X-Other") == NULL);
        /* as set and add: a name must be a token, and the framing
         * fields are the server's */
        CHECK_EQ(tern_http_resp_del_header(w, NULL), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, ""), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, "X Keep"), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, "X-Keep\r\n"), -EINVAL);
        CHECK_EQ(tern_http_resp_del_header(w, "Content-Length"), -EPERM);
        CHECK_EQ(tern_http_resp_del_header(w, "transfer-encoding"), -EPERM);
        CHECK_STR(tern_http_resp_header(w, "X-Keep"), "k");

        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, 0);
        CHECK_EQ(tern_http_resp_write(w, "hello, world", 12), 12);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_MEM(d, n, "hello, world");
        /* replaced by a part of itself (the buffers overlap) */
        CHECK_EQ(tern_http_resp_replace_body(w, d + 2, n - 2), 0);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_MEM(d, n, "llo, world");
        CHECK_EQ(tern_http_resp_body_bytes(w), 10);
        /* replaced, then written to: the writes follow the new body */
        CHECK_EQ(tern_http_resp_replace_body(w, "abc", 3), 0);
        CHECK_EQ(tern_http_resp_write(w, "def", 3), 3);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_MEM(d, n, "abcdef");
        CHECK_EQ(tern_http_resp_body_bytes(w), 6);
        return 0;
    }
    if (!strcmp(p, "/empty")) {
        CHECK_EQ(tern_http_resp_write(w, "junk", 4), 4);
        CHECK_EQ(tern_http_resp_replace_body(w, NULL, 0), 0);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, 0);
        return 0;
    }
    if (!strcmp(p, "/head")) {
        /* HEAD: the bytes are counted, not kept; the length is the new one */
        CHECK_EQ(tern_http_resp_write(w, "abc", 3), 3);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, tern_http_req_is_head(r) ? 0 : 3);
        CHECK_EQ(tern_http_resp_replace_body(w, "0123456789", 10), 0);
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), 0);
        CHECK_EQ(n, tern_http_req_is_head(r) ? 0 : 10);
        CHECK_EQ(tern_http_resp_body_bytes(w), 10);
        return 0;
    }
    if (!strcmp(p, "/streamed")) {
        CHECK_EQ(tern_http_resp_set_header(w, "X-Gone", "g"), 0);
        CHECK_EQ(tern_http_resp_write(w, "x", 1), 1);
        CHECK_EQ(tern_http_resp_flush(w), 0);
        /* once streaming: nothing buffered to hand out or replace */
        CHECK_EQ(tern_http_resp_buffered(w, &d, &n), -EALREADY);
        CHECK_EQ(tern_http_resp_replace_body(w, "no", 2), -EALREADY);
        CHECK_EQ(tern_http_resp_del_header(w, "X-Gone"), -EALREADY);
        CHECK_EQ(tern_http_resp_status(w), 200);
        CHECK_EQ(tern_http_resp_write(w, "y", 1), 1);
        return 0;
    }
    if (!strcmp(p, "/method")) {
        CHECK_EQ(tern_http_resp_set_header(w, "X-Is-Head", tern_http_req_is_head(r) ? "1" : "0"), 0);
        return tern_http_resp_printf(w, "%s", tern_http_req_method(r)) < 0 ? -EIO : 0;
    }
    return tern_http_resp_error(w, 404, NULL);
}

SERVER_TEST(resp_status_headers_and_buffered_body)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_resp_api};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    resp r;
    get(k, "/resp", &r);
    CHECK_EQ(r.status, 201);
    CHECK_STR(hdr(&r, "X-Keep"), "k");
    CHECK_EQ(hdr_count(&r, "X-Dup"), 0);
    CHECK_EQ(hdr_count(&r, "X-Other"), 0);
    CHECK_STR(hdr(&r, "Content-Length"), "6");
    CHECK_MEM(r.body, r.body_len, "abcdef");
    resp_free(&r);

    get(k, "/empty", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "0");
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);

    get(k, "/head", &r);
    CHECK_STR(hdr(&r, "Content-Length"), "10");
    CHECK_MEM(r.body, r.body_len, "0123456789");
    resp_free(&r);
    roundtrip(k, "HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    CHECK_EQ(r.status, 200);
    CHECK_STR(hdr(&r, "Content-Length"), "10");
    CHECK_EQ(r.body_len, 0);
    resp_free(&r);

    get(k, "/streamed", &r);
    CHECK_EQ(r.status, 200);
    CHECK(r.chunked);
    CHECK_STR(hdr(&r, "X-Gone"), "g");
    CHECK_MEM(r.body, r.body_len, "xy");
    resp_free(&r);

    /* the connection served them all */
    get(k, "/method", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(req_is_head_only_for_head)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_resp_api};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    static const struct {
        const char *method;
        const char *is_head;
    } cases[] = {{"GET", "0"}, {"HEAD", "1"}, {"POST", "0"}, {"HEADX", "0"},
                 {"HEA", "0"}, {"head", "0"}, {"XHEAD", "0"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char req[128];
        snprintf(req, sizeof req, "%s /method HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
                 cases[i].method);
        resp r;
        roundtrip(k, req, &r);
        CHECK_EQ(r.status, 200);
        CHECK_STR(hdr(&r, "X-Is-Head"), cases[i].is_head);
        if (cases[i].is_head[0] == '1') {
            CHECK_EQ(r.body_len, 0);
            CHECK_STR(hdr(&r, "Content-Length"), "4");
        } else {
            CHECK_MEM(r.body, r.body_len, cases[i].method);
        }
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Read the body in pieces of ?n= bytes (after lowering the limit to ?max=,
 * then ?max2=, if given) and answer "<each return>|<the bytes>"; with
 * ?ret=1, return the first error instead. */
static int h_read(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *q;
    size_t n = (q = tern_http_req_query(r, "n")) ? (size_t)atoi(q) : 3;
    if ((q = tern_http_req_query(r, "max")))
        tern_http_req_set_max_body(r, atoll(q));
    if ((q = tern_http_req_query(r, "max2")))
        tern_http_req_set_max_body(r, atoll(q));
    if (tern_http_req_query(r, "whole")) {
        const char *body;
        size_t len;
        int rc = tern_http_req_body(r, &body, &len);
        return rc < 0 ? rc : tern_http_resp_send(w, 200, "text/plain", body, len);
    }
    bool ret = tern_http_req_query(r, "ret") != NULL;
    char trace[512] = "", data[4096];
    size_t tl = 0, dl = 0;
    /* a zero-byte read: 0, and nothing is consumed */
    CHECK_EQ(tern_http_req_read(r, data, 0), 0);
    for (int i = 0; i < 64; i++) {
        ssize_t k = tern_http_req_read(r, data + dl, n);
        tl += (size_t)snprintf(trace + tl, sizeof trace - tl, "%s%zd", i ? "," : "", k);
        if (k < 0) {
            if (ret)
                return (int)k;
            CHECK(tern_http_req_read(r, data + dl, n) < 0);    /* failed for good */
            break;
        }
        if (k == 0) {                       /* the end, and it stays the end */
            k = tern_http_req_read(r, data + dl, n);
            tl += (size_t)snprintf(trace + tl, sizeof trace - tl, ",%zd", k);
            break;
        }
        CHECK((size_t)k <= n);
        dl += (size_t)k;
    }
    tern_http_resp_printf(w, "%s|", trace);
    return tern_http_resp_write(w, data, dl) < 0 ? -EIO : 0;
}

/* One request on a new connection, with the body sent in two parts and
 * then (if cut) a half-close; the whole response, its body as a string. */
static void read_case(const char *addr, const char *head, const char *body, bool cut, resp *r)
{
    cl *k = cl_dial(addr);
    cl_send(k, head);
    if (body)
        cl_send(k, body);
    if (cut)
        CHECK_EQ(tern_conn_close_write(k->c), 0);
    CHECK_R(cl_response(k, r, false));
    cl_close(k);
}

#define CHECK_BODY(r, want) CHECK_MEM((r)->body, (r)->body_len, want)

SERVER_TEST(req_read_streams_the_body_and_its_errors)
{
    (void)arg;
    /* no server limit, so that only tern_http_req_set_max_body sets one */
    tern_http_server_options o = {.handler = h_read, .max_body_bytes = -1,
                                  .read_body_timeout = 100 * TERN_MS};
    tsrv *t = srv_start(&o, NULL);
    resp r;
    const char *cl10 = "POST /?n=3 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n";

    /* Content-Length: pieces of at most n, then 0, and 0 again */
    read_case(t->addr, cl10, "0123456789", false, &r);
    CHECK_EQ(r.status, 200);
    CHECK_BODY(&r, "3,3,3,1,0,0|0123456789");
    resp_free(&r);
    /* no body at all: 0 at once */
    read_case(t->addr, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", NULL, false, &r);
    CHECK_BODY(&r, "0,0|");
    resp_free(&r);
    /* chunked: the chunks' bytes, in pieces of at most n */
    read_case(t->addr, "POST /?n=4 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "3\r\nabc\r\n6\r\ndefghi\r\n0\r\n\r\n", false, &r);
    CHECK_EQ(r.status, 200);
    const char *bar = memchr(r.body, '|', r.body_len);
    CHECK(bar);
    CHECK_MEM(bar + 1, r.body_len - (size_t)(bar + 1 - r.body), "abcdefghi");
    CHECK(bar - r.body >= 4 && !memcmp(bar - 4, ",0,0", 4));
    for (const char *c = r.body; c < bar - 4; c++)
        CHECK(*c == ',' || (*c >= '1' && *c <= '4'));
    resp_free(&r);

    /* bad chunked framing: -EBADMSG, then errors only; the conn is not reused */
    read_case(t->addr, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "zz\r\nabc\r\n0\r\n\r\n", false, &r);
    CHECK_BODY(&r, "-74|");
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);
    /* the body cut short by the client: what came, then -ECONNRESET */
    read_case(t->addr, cl10, "0123", true, &r);
    CHECK_BODY(&r, "3,1,-104|0123");
    resp_free(&r);
    /* the rest never comes: -ETIMEDOUT at the body's read deadline */
    int64_t t0 = tern_now();
    read_case(t->addr, cl10, "01", false, &r);
    CHECK(tern_now() - t0 >= 99 * TERN_MS);
    CHECK_BODY(&r, "2,-110|01");
    CHECK_STR(hdr(&r, "Connection"), "close");
    resp_free(&r);

    /* tern_http_req_set_max_body: a limit where there was none */
    read_case(t->addr, "POST /?n=3&max=5 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    /* exactly at the limit is fine */
    read_case(t->addr, "POST /?n=3&max=10 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,3,3,1,0,0|0123456789");
    resp_free(&r);
    /* a higher value later is ignored, and so is a negative one */
    read_case(t->addr, "POST /?n=3&max=5&max2=100 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    read_case(t->addr, "POST /?n=3&max=5&max2=-1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    /* a lower one later wins */
    read_case(t->addr, "POST /?n=3&max=8&max2=6 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_BODY(&r, "3,3,-90|012345");
    resp_free(&r);
    /* chunked bodies are held to it too */
    read_case(t->addr, "POST /?n=3&max=4 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "a\r\n0123456789\r\n0\r\n\r\n", false, &r);
    CHECK_BODY(&r, "3,-90|012");
    resp_free(&r);
    /* the whole body over the lowered limit: refused before reading */
    read_case(t->addr, "POST /?whole=1&max=9 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_EQ(r.status, 413);
    resp_free(&r);
    read_case(t->addr, "POST /?whole=1&max=10 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_EQ(r.status, 200);
    CHECK_BODY(&r, "0123456789");
    resp_free(&r);

    /* a handler returning the read's error: tern_http_error_status's answer */
    read_case(t->addr, "POST /?n=3&max=5&ret=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
              "0123456789", false, &r);
    CHECK_EQ(r.status, 413);
    resp_free(&r);
    read_case(t->addr, "POST /?ret=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
              "zz\r\n", false, &r);
    CHECK_EQ(r.status, 400);
    resp_free(&r);
    read_case(t->addr, "POST /?ret=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n", "01",
              true, &r);
    CHECK_EQ(r.status, 500);
    resp_free(&r);
    srv_stop(t);
    return 0;
}

/* Replace the request's context seven times (each a child of the one
 * before), then once too often. */
static int h_ctx(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    CHECK_EQ(tern_http_req_set_ctx(r, NULL), -EINVAL);
    tern_ctx *base = tern_http_req_ctx(r);
    CHECK(base && tern_http_req_ctx(r) == base);
    tern_ctx *chain[7];
    for (int i = 0; i < 7; i++) {
        CHECK_EQ(tern_ctx_with_cancel(tern_http_req_ctx(r), &chain[i]), 0);
        CHECK(chain[i]);
        CHECK_EQ(tern_http_req_set_ctx(r, chain[i]), 0);
        CHECK(tern_http_req_ctx(r) == chain[i]);
    }
    tern_ctx *extra;
    CHECK_EQ(tern_ctx_with_cancel(tern_http_req_ctx(r), &extra), 0);
    CHECK_EQ(tern_http_req_set_ctx(r, extra), -ENOSPC);
    CHECK(tern_http_req_ctx(r) == chain[6]);
    tern_ctx_free(extra);                   /* refused: still ours */
    /* the earlier ones stay valid; cancelling one ends its descendants */
    tern_ctx_cancel(chain[3]);
    CHECK_EQ(tern_ctx_err(tern_http_req_ctx(r)), -ECANCELED);
    CHECK_EQ(tern_ctx_err(chain[2]), 0);
    CHECK_EQ(tern_ctx_err(base), 0);
    return tern_http_resp_text(w, 200, "ok");
}

SERVER_TEST(req_set_ctx_replaces_and_counts_per_request)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_ctx};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    /* twice on one connection: the count and the contexts are per request
     * (the request frees them: ASan's leak check would see otherwise) */
    for (int i = 0; i < 2; i++) {
        resp r;
        get(k, "/", &r);
        CHECK_EQ(r.status, 200);
        CHECK_MEM(r.body, r.body_len, "ok");
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    return 0;
}

/* Values added before the context exists wait for it, in order (the
 * last added is nearest); after, they wrap it at once. */
static const char k1, k2, k3, k4, k5, k6;

static int h_ctx_values(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k1, (void *)"one"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k2, (void *)"two"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k3, (void *)"three"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k1, (void *)"uno"), 0);     /* shadows */
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k4, (void *)"four"), -ENOSPC);
    tern_ctx *c = tern_http_req_ctx(r);
    CHECK(c && tern_http_req_ctx(r) == c);
    CHECK_STR(tern_ctx_value(c, &k1), "uno");
    CHECK_STR(tern_ctx_value(c, &k2), "two");
    CHECK_STR(tern_ctx_value(c, &k3), "three");
    CHECK(tern_ctx_value(c, &k4) == NULL);
    CHECK_EQ(tern_ctx_err(c), 0);
    /* now the context exists: a value wraps it, and is the request's */
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k5, (void *)"five"), 0);
    tern_ctx *c2 = tern_http_req_ctx(r);
    CHECK(c2 != c);
    CHECK_STR(tern_ctx_value(c2, &k5), "five");
    CHECK_STR(tern_ctx_value(c2, &k2), "two");
    /* the owned contexts: 1 cancel + 4 values + this = 6 of 8; two more fit */
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k6, (void *)"six"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k6, (void *)"seven"), 0);
    CHECK_EQ(tern_http_req_add_ctx_value(r, &k6, (void *)"eight"), -ENOSPC);
    CHECK_STR(tern_ctx_value(tern_http_req_ctx(r), &k6), "seven");
    return tern_http_resp_text(w, 200, "ok");
}

/* A handler that never asks for the context sees none of that cost, and
 * the next request on the connection starts with no values. */
static int h_ctx_values_unasked(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *q = tern_http_req_query(r, "ask");
    if (q) {
        CHECK(tern_ctx_value(tern_http_req_ctx(r), &k1) == NULL);
        return tern_http_resp_text(w, 200, "asked");
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(tern_http_req_add_ctx_value(r, &k1, (void *)"x"), 0);
    return tern_http_resp_text(w, 200, "ok");
}

SERVER_TEST(req_ctx_values_wait_for_the_context)
{
    (void)arg;
    tern_http_server_options o = {.handler = h_ctx_values};
    tsrv *t = srv_start(&o, NULL);
    cl *k = cl_dial(t->addr);
    for (int i = 0; i < 2; i++) {
        resp r;
        get(k, "/", &r);
        CHECK_EQ(r.status, 200);
        resp_free(&r);
    }
    cl_close(k);
    srv_stop(t);
    o.handler = h_ctx_values_unasked;
    t = srv_start(&o, NULL);
    k = cl_dial(t->addr);
    resp r;
    get(k, "/", &r);
    CHECK_EQ(r.status, 200);
    resp_free(&r);
    get(k, "/?ask=1", &r);
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "asked");
    resp_free(&r);
    cl_close(k);
    srv_stop(t);
    return 0;
}

SERVER_TEST(server_add_listener_serves_a_unix_socket)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "@tern-http-add-listener-%d", (int)getpid());
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_UNIX, path, NULL, &l), 0);
    tern_http_server_options o = {.handler = h_plaintext};
    tsrv *t = calloc(1, sizeof *t);
    CHECK(t);
    CHECK_EQ(tern_http_server_new(&o, &t->s), 0);
    CHECK_EQ(tern_http_server_add_listener(t->s, l), 0);
    CHECK_EQ(tern_http_server_port(t->s), 0);           /* a Unix socket has none */
    CHECK_STR(tern_http_server_addr(t->s), path);
    CHECK_EQ(tern_chan_new(sizeof(int), 1, &t->done), 0);
    CHECK_EQ(tern_go(serve_co, t), 0);
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_UNIX, path, &c, NULL), 0);
    cl *k = cl_wrap(c);
    resp r;
    get(k, "/", &r);
    CHECK_EQ(r.status, 200);
    CHECK_MEM(r.body, r.body_len, "Hello, World!");
    resp_free(&r);
    cl_close(k);
    /* not once serving: the listener stays the caller's */
    tern_listener *l2;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l2), 0);
    int64_t until = tern_now() + 2 * TERN_SEC;
    int rc;
    while ((rc = tern_http_server_add_listener(t->s, l2)) == 0 && tern_now() < until)
        CHECK(!"added while serving");
    CHECK_EQ(rc, -EBUSY);
    tern_listener_free(l2);
    srv_stop(t);                            /* frees l */

    /* at most 64 listeners: the 65th is refused and stays the caller's */
    tern_http_server *s;
    CHECK_EQ(tern_http_server_new(&o, &s), 0);
    for (int i = 0; i < 64; i++) {
        CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
        CHECK_EQ(tern_http_server_add_listener(s, l), 0);
    }
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    CHECK_EQ(tern_http_server_add_listener(s, l), -ENOSPC);
    tern_listener_free(l);
    tern_http_server_free(s);               /* never served: frees its 64 */
    return 0;
}

TESTS(T(keep_alive), T(pipelining), T(http10), T(max_requests_per_conn),
      T(max_conns), T(chunked_request_body), T(streamed_response), T(large_response),
      T(expect_continue), T(chunked_body_over_limit), T(head_request), T(too_long_and_too_big),
      T(bad_requests), T(header_injection), T(handler_error_500_keeps_conn),
      T(handler_error_after_streaming), T(slowloris), T(accessors), T(date_header),
      T(forced_shutdown_cancels_ctx), T(shutdown_under_load), T(router_routes),
      T(router_registration_errors),
      /* regressions: each of these found a server bug */
      T(connection_close), T(bad_chunked_framing_closes),
      T(router_free_with_root_middleware), T(router_groups),
      T(body_over_limit_refused_before_read), T(shutdown_inflight_gets_connection_close),
      T(free_right_after_serve), T(free_after_shutdown_and_serve),
      /* found in review */
      T(continue_after_buffered_answers), T(no_continue_after_commit), T(no_body_bytes_after_304),
      T(head_survives_chunked_body), T(pipelined_head_gets_its_own_timeout),
      T(error_status_maps_body_errors), T(resp_status_headers_and_buffered_body),
      T(req_is_head_only_for_head), T(req_read_streams_the_body_and_its_errors),
      T(req_set_ctx_replaces_and_counts_per_request), T(req_ctx_values_wait_for_the_context),
      T(server_add_listener_serves_a_unix_socket),
      /* the API grammar */
      T(shutdown_drain_ends_when_its_ctx_is_cancelled),
      T(serve_ends_with_its_ctx_closing_every_connection), T(group_serves_its_own_prefix),
      T(untyped_body_is_sent_as_text), T(http_null_objects_abort_naming_the_function))
