/*
 * http_server_fixture.h - what the test_http_server_*.c suites and
 * test_http_router.c share: the HTTP/1.1 server end to end, through real
 * sockets.  A server on 127.0.0.1:0 runs inside tern_run (srv_start,
 * app_start: the app router below), and its clients are coroutines that
 * speak raw bytes (tern_conn_dial / tern_conn_write / tern_conn_read) and
 * parse the answers with a small, strict reader of their own (not the
 * library's parser), so a malformed response fails the test.
 *
 * Some tests were written for server bugs found with them (each comment
 * says what went wrong); they stay as regression tests.  Run under TSan
 * too: a race between a closing connection and shutdown's kick_conns()
 * shows there as a data race.
 *
 * Include after check.h, and not with http_raw.h (the two clients share
 * names); every function is static and may go unused in one test file.
 */
#ifndef TERN_TEST_HTTP_SERVER_FIXTURE_H
#define TERN_TEST_HTTP_SERVER_FIXTURE_H

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <strings.h>

#include <tern/http.h>
#include <tern/http_router.h>
#include <tern/net.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

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

/* ===================================================================== */
/* the server of the regressions found in review (review_start)          */
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

#pragma GCC diagnostic pop

#endif
