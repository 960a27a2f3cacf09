/*
 * http_raw.h - what the HTTP and kit tests share: a test body on a roomy
 * stack, a server on 127.0.0.1:0 running a chain of links, and a raw
 * client that sends bytes and reads one response exactly (status, fields,
 * Content-Length / chunked / until-close bodies).  Tests of tern's own
 * HTTP client keep their client calls and use only the first two.
 * Include after check.h; every function is static and may go unused in
 * one test file.
 */
#ifndef TERN_TEST_HTTP_RAW_H
#define TERN_TEST_HTTP_RAW_H

#include <errno.h>
#include <strings.h>

#include <tern/http.h>
#include <tern/net.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

/* ---- running a test body ---------------------------------------------------- */

/* A test body holds requests and responses in its frames; under ASan those
 * frames are several times larger, so it gets a roomy stack of its own.
 * The server's coroutines keep the default, as in production. */
typedef struct body_run {
    tern_fn *fn;
    void *arg;
    tern_waitgroup wg;
} body_run;

static int body_co(void *arg)
{
    body_run *b = arg;
    CHECK_EQ(b->fn(b->arg), 0);
    tern_waitgroup_done(&b->wg);
    return 0;
}

static int body_entry(void *arg)
{
    body_run *b = arg;
    tern_waitgroup_add(&b->wg, 1);
    CHECK_EQ(tern_go_opts(body_co, b, &(tern_go_options){.name = "test", .stack_size = 1 << 20},
                          NULL),
             0);
    tern_waitgroup_wait(&b->wg, NULL);
    return 0;
}

/* Run fn(arg) in a roomy coroutine on a fresh 2-thread runtime; fn returns 0. */
static void run_test(tern_fn *fn, void *arg)
{
    body_run b = {.fn = fn, .arg = arg};
    run_ok(body_entry, &b, 2);
}

/* run_test on a runtime with these options (e.g. the long-run monitor off). */
static void run_test_opts(tern_fn *fn, void *arg, const tern_run_options *o)
{
    body_run b = {.fn = fn, .arg = arg};
    CHECK_EQ(tern_run_opts(body_entry, &b, o), 0);
}

/* ---- a server and a raw client -------------------------------------------- */

#define MAX_LINKS 8

typedef struct server {
    tern_http_server *s;
    tern_http_link links[MAX_LINKS];
    size_t n;
    char addr[32];              /* "127.0.0.1:port", for the raw client */
    char url[48];               /* "http://127.0.0.1:port", no slash: + a path */
    tern_waitgroup done;
} server;

static int run_links(tern_http_req *r, tern_http_resp *w, void *arg)
{
    server *sv = arg;
    return tern_http_run_chain(r, w, sv->links, sv->n);
}

static int serve_co(void *arg)
{
    server *sv = arg;
    CHECK_EQ(tern_http_server_serve(sv->s, NULL), 0);
    tern_waitgroup_done(&sv->done);
    return 0;
}

/* Serve links[0..n) (a chain ending in a handler, a router say) on a fresh port. */
static void server_start(server *sv, const tern_http_link *links, size_t n)
{
    CHECK(n <= MAX_LINKS);
    memcpy(sv->links, links, n * sizeof *links);
    sv->n = n;
    tern_http_server_options o = {.handler = run_links, .arg = sv};
    CHECK_EQ(tern_http_server_new(&o, &sv->s), 0);
    CHECK_EQ(tern_http_server_listen(sv->s, "127.0.0.1:0"), 0);
    snprintf(sv->addr, sizeof sv->addr, "127.0.0.1:%d", tern_http_server_port(sv->s));
    snprintf(sv->url, sizeof sv->url, "http://%s", sv->addr);
    tern_waitgroup_add(&sv->done, 1);
    CHECK_EQ(tern_go(serve_co, sv), 0);
}

/* Shut the server down (idle connections are closed), wait for serve() to
 * return and free it.  No pause is needed first: serve() returns only once
 * shutdown has, and the server may be freed then (tern/http.h). */
static void server_stop(server *sv)
{
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_http_server_shutdown(sv->s, ctx), 0);
    tern_ctx_free(ctx);
    tern_waitgroup_wait(&sv->done, NULL);
    tern_http_server_free(sv->s);
}

#define MAX_FIELDS 32

/* Small enough for a coroutine's stack: the fields live in `head`. */
typedef struct resp {
    int status;
    size_t nfields;
    const char *names[MAX_FIELDS], *values[MAX_FIELDS];
    char *head;                 /* malloc'd: the fields, NUL-terminated */
    char *body;                 /* malloc'd, NUL-terminated */
    size_t body_len;
    bool chunked;
    bool eof;                   /* the server closed the connection */
} resp;

/* Free what read_resp allocated; p may be read into again. */
static void resp_free(resp *p)
{
    free(p->head);
    free(p->body);
    p->head = p->body = NULL;
}

/* The first field called name, or NULL. */
static const char *hdr(const resp *p, const char *name)
{
    for (size_t i = 0; i < p->nfields; i++)
        if (strcasecmp(p->names[i], name) == 0)
            return p->values[i];
    return NULL;
}

/* How many fields are called name with exactly this value. */
static int hdr_count(const resp *p, const char *name, const char *value)
{
    int n = 0;
    for (size_t i = 0; i < p->nfields; i++)
        n += strcasecmp(p->names[i], name) == 0 && strcmp(p->values[i], value) == 0;
    return n;
}

/* A field the response must have. */
static const char *must(const resp *p, const char *name)
{
    const char *v = hdr(p, name);
    if (!v) {
        fprintf(stderr, "no %s field\n", name);
        abort();
    }
    return v;
}

typedef struct client {
    tern_conn *c;
    char *buf;                  /* received, not yet consumed; grows */
    size_t len, cap;
} client;

/* A connection to addr with a 10 s read deadline. */
static client *client_dial(const char *addr)
{
    client *cl = calloc(1, sizeof *cl);
    CHECK(cl);
    cl->cap = 65536;
    CHECK(cl->buf = malloc(cl->cap));
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &cl->c, NULL), 0);
    tern_conn_set_read_deadline(cl->c, tern_deadline_after(10 * TERN_SEC));
    return cl;
}

/* Close and free cl. */
static void client_close(client *cl)
{
    tern_conn_free(cl->c);
    free(cl->buf);
    free(cl);
}

/* Read more into cl->buf; false at EOF. */
static bool fill(client *cl)
{
    if (cl->cap - cl->len < 16384) {
        cl->cap *= 2;
        CHECK(cl->buf = realloc(cl->buf, cl->cap));
    }
    ssize_t n = tern_conn_read(cl->c, cl->buf + cl->len, cl->cap - cl->len, NULL);
    if (n < 0)
        fprintf(stderr, "read: %s\n", tern_strerror((int)n));
    CHECK(n >= 0);
    cl->len += (size_t)n;
    return n > 0;
}

/* Drop the first n received bytes. */
static void consume(client *cl, size_t n)
{
    memmove(cl->buf, cl->buf + n, cl->len - n);
    cl->len -= n;
}

/* Append n bytes to p's body, keeping it NUL-terminated. */
static void body_append(resp *p, const char *data, size_t n)
{
    p->body = realloc(p->body, p->body_len + n + 1);
    CHECK(p->body);
    memcpy(p->body + p->body_len, data, n);
    p->body_len += n;
    p->body[p->body_len] = '\0';
}

/* Read one response: Content-Length, chunked or until close.  For a HEAD
 * request pass head_only (no body follows whatever the fields say). */
static void read_resp(client *cl, resp *p, bool head_only)
{
    memset(p, 0, sizeof *p);
    body_append(p, "", 0);
    tern_http_header h[MAX_FIELDS];
    tern_http_response pr;
    int hl;
    for (;;) {
        pr = (tern_http_response){.headers = h, .max_headers = MAX_FIELDS};
        hl = tern_http_parse_response(cl->buf, cl->len, &pr, NULL);
        CHECK(hl != TERN_HTTP_BAD);
        if (hl > 0)
            break;
        if (!fill(cl)) {
            CHECK_EQ(cl->len, 0);       /* closed between responses */
            p->eof = true;
            return;
        }
    }
    p->status = pr.status;
    p->nfields = pr.nheaders;
    size_t need = 0;
    for (size_t i = 0; i < pr.nheaders; i++)
        need += h[i].name_len + h[i].value_len + 2;
    char *o = p->head = malloc(need + 1);
    CHECK(o);
    for (size_t i = 0; i < pr.nheaders; i++) {
        p->names[i] = memcpy(o, h[i].name, h[i].name_len);
        o += h[i].name_len;
        *o++ = '\0';
        p->values[i] = memcpy(o, h[i].value, h[i].value_len);
        o += h[i].value_len;
        *o++ = '\0';
    }
    consume(cl, (size_t)hl);
    if (head_only)
        return;
    if (pr.chunked) {
        p->chunked = true;
        tern_http_chunked d;
        tern_http_chunked_init(&d, 0);
        for (;;) {
            size_t used, got;
            int rc = tern_http_chunked_decode(&d, cl->buf, cl->len, &used, &got);
            CHECK(rc != TERN_HTTP_BAD);
            body_append(p, cl->buf, got);
            consume(cl, used);
            if (rc == 1)
                return;
            if (!fill(cl)) {
                p->eof = true;  /* truncated: the server gave up mid-body */
                return;
            }
        }
    }
    if (pr.body_until_close) {
        while (fill(cl))
            ;
        body_append(p, cl->buf, cl->len);
        consume(cl, cl->len);
        p->eof = true;
        return;
    }
    while (cl->len < (size_t)pr.content_length)
        CHECK(fill(cl));
    body_append(p, cl->buf, (size_t)pr.content_length);
    consume(cl, (size_t)pr.content_length);
}

/* Write the whole of req. */
static void send_raw(client *cl, const char *req)
{
    CHECK_EQ(tern_conn_write(cl->c, req, strlen(req), NULL), (ssize_t)strlen(req));
}

/* One request on a new connection. */
static void fetch(const char *addr, const char *req, resp *p)
{
    client *cl = client_dial(addr);
    send_raw(cl, req);
    read_resp(cl, p, strncmp(req, "HEAD ", 5) == 0);
    client_close(cl);
}

/* "GET path" with extra header lines (each ending in \r\n). */
static void get(const char *addr, const char *path, const char *extra, resp *p)
{
    char req[8192];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n", path, extra ? extra : "");
    fetch(addr, req, p);
}

/* "GET path" and only its status (the response is freed). */
static int get_status(const char *addr, const char *path)
{
    resp p;
    get(addr, path, NULL, &p);
    resp_free(&p);
    return p.status;
}

#pragma GCC diagnostic pop

#endif
