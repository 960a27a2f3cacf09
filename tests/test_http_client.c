/* test_http_client.c - the HTTP/1.1 client against scripted servers that
 * send exact byte sequences: pooling, framing, redirects, deadlines, and
 * every way a server can misbehave. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <strings.h>

#include <tern/http_client.h>
#include <tern/net.h>

/* ---- a scripted server ---------------------------------------------------- */

typedef struct srv srv;
typedef struct peer peer;
typedef void serve_fn(peer *p);

struct srv {
    tern_listener *l;
    serve_fn *serve;
    char base[64];              /* "http://127.0.0.1:port" */
    int port;
    atomic_int accepts, active, max_active;
    tern_waitgroup wg;          /* the accept loop and every connection */
    tern_mutex mu;
    char last_head[4096];       /* the last request head seen (under mu) */
    char last_body[256];
};

struct peer {
    srv *s;
    tern_conn *c;
    int idx;                    /* 1 for the first connection accepted */
    char buf[64 * 1024];
    size_t len;
    /* the request just read */
    char method[16];
    char path[256];
    char head[4096];
    char body[8192];
    size_t body_len;
};

/* Scripts write without checking: a client that gave up early (the point
 * of several tests) makes the server's writes fail, which is fine. */
static void say(peer *p, const char *s)
{
    tern_conn_write(p->c, s, strlen(s), NULL);
}

/* Read the next request; 1, or 0 when the client closed (or reset). */
static int next_req(peer *p)
{
    char *end;
    while (!(end = memmem(p->buf, p->len, "\r\n\r\n", 4))) {
        ssize_t n = tern_conn_read(p->c, p->buf + p->len, sizeof p->buf - p->len, NULL);
        if (n <= 0)
            return 0;
        p->len += (size_t)n;
    }
    size_t hlen = (size_t)(end + 4 - p->buf);
    CHECK(hlen < sizeof p->head);
    memcpy(p->head, p->buf, hlen);
    p->head[hlen] = 0;
    CHECK_EQ(sscanf(p->head, "%15s %255s", p->method, p->path), 2);
    const char *cl = strcasestr(p->head, "\r\nContent-Length: ");
    p->body_len = cl ? strtoul(cl + 18, NULL, 10) : 0;
    CHECK(p->body_len < sizeof p->body);
    while (p->len < hlen + p->body_len) {
        ssize_t n = tern_conn_read(p->c, p->buf + p->len, sizeof p->buf - p->len, NULL);
        if (n <= 0)
            return 0;
        p->len += (size_t)n;
    }
    memcpy(p->body, p->buf + hlen, p->body_len);
    p->body[p->body_len] = 0;
    memmove(p->buf, p->buf + hlen + p->body_len, p->len - hlen - p->body_len);
    p->len -= hlen + p->body_len;
    tern_mutex_lock(&p->s->mu);
    strcpy(p->s->last_head, p->head);
    size_t keep = p->body_len < sizeof p->s->last_body ? p->body_len : sizeof p->s->last_body - 1;
    memcpy(p->s->last_body, p->body, keep);
    p->s->last_body[keep] = 0;
    tern_mutex_unlock(&p->s->mu);
    return 1;
}

/* Wait for the client to close (reads and drops anything it sends). */
static void until_eof(peer *p)
{
    char b[4096];
    while (tern_conn_read(p->c, b, sizeof b, NULL) > 0) {
    }
}

static int conn_main(void *arg)
{
    peer *p = arg;
    srv *s = p->s;
    int a = atomic_fetch_add(&s->active, 1) + 1;
    int m = atomic_load(&s->max_active);
    while (a > m && !atomic_compare_exchange_weak(&s->max_active, &m, a)) {
    }
    s->serve(p);
    atomic_fetch_sub(&s->active, 1);
    tern_conn_free(p->c);
    free(p);
    tern_waitgroup_done(&s->wg);
    return 0;
}

static int accept_main(void *arg)
{
    srv *s = arg;
    tern_conn *c;
    while (tern_listener_accept(s->l, &c, NULL) == 0) {
        peer *p = calloc(1, sizeof *p);
        CHECK(p);
        p->s = s;
        p->c = c;
        p->idx = atomic_fetch_add(&s->accepts, 1) + 1;
        tern_waitgroup_add(&s->wg, 1);
        CHECK_EQ(tern_go(conn_main, p), 0);
    }
    tern_waitgroup_done(&s->wg);
    return 0;
}

static void srv_start(srv *s, serve_fn *fn)
{
    memset(s, 0, sizeof *s);
    s->serve = fn;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &s->l), 0);
    s->port = tern_listener_port(s->l);
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    tern_waitgroup_add(&s->wg, 1);
    CHECK_EQ(tern_go(accept_main, s), 0);
}

/* Stop accepting and wait for every connection's script to end (they end
 * when the client closes its side, so free the client first). */
static void srv_stop(srv *s)
{
    tern_listener_close(s->l);
    tern_waitgroup_wait(&s->wg, NULL);
    tern_listener_free(s->l);
}

/* Only the test's main coroutine calls it; the last 8 stay valid. */
static const char *url_of(srv *s, const char *path)
{
    static char u[8][128];
    static int i;
    char *out = u[i++ % 8];
    snprintf(out, sizeof u[0], "%s%s", s->base, path);
    return out;
}

static tern_http_client *client(const tern_http_client_options *o)
{
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(o, &c), 0);
    return c;
}

/* GET url; the status, with the body copied into out (NUL-terminated). */
static int get_text(tern_http_client *c, const char *url, char *out, size_t cap)
{
    tern_http_client_response *r;
    int rc = tern_http_client_get(c, url, &r, NULL);
    if (rc < 0)
        return rc;
    const char *b;
    size_t n;
    rc = tern_http_client_response_body(r, cap - 1, &b, &n);
    if (rc == 0) {
        memcpy(out, b, n + 1);
        rc = tern_http_client_response_status(r);
    }
    tern_http_client_response_free(r);
    return rc;
}

/* The last request head the server saw (copied under its lock: the
 * socket orders the accesses, but race detectors cannot see that). */
static const char *last_head(srv *s)
{
    static char h[4096];
    tern_mutex_lock(&s->mu);
    strcpy(h, s->last_head);
    tern_mutex_unlock(&s->mu);
    return h;
}

static const char *last_body(srv *s)
{
    static char b[256];
    tern_mutex_lock(&s->mu);
    strcpy(b, s->last_body);
    tern_mutex_unlock(&s->mu);
    return b;
}

static struct tern_http_client_stats stats(tern_http_client *c)
{
    struct tern_http_client_stats st;
    tern_http_client_stats(c, &st);
    return st;
}

static void serve_hello(peer *p)
{
    while (next_req(p))
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
}

/* ---- pooling ---------------------------------------------------------------- */

static int keepalive_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_hello);
    tern_http_client *c = client(NULL);
    char body[64];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(get_text(c, url_of(&s, "/a?x=1"), body, sizeof body), 200);
        CHECK(strcmp(body, "hello") == 0);
    }
    char want[256];
    snprintf(want, sizeof want, "GET /a?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: tern\r\n\r\n",
             s.port);
    CHECK(strcmp(last_head(&s), want) == 0);
    CHECK_EQ(atomic_load(&s.accepts), 1);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 1);
    CHECK_EQ(st.reuses, 2);
    CHECK_EQ(st.requests, 3);
    CHECK_EQ(st.idle, 1);
    CHECK_EQ(st.active, 0);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void keepalive_three_requests_one_connection(void)
{
    run_ok(keepalive_main, NULL, 2);
}

static void serve_slow(peer *p)
{
    while (next_req(p)) {
        tern_sleep(40 * TERN_MS);
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
}

typedef struct par {
    tern_http_client *c;
    const char *url;
    tern_waitgroup *wg;
} par;

static int par_get(void *arg)
{
    par *a = arg;
    char body[16];
    CHECK_EQ(get_text(a->c, a->url, body, sizeof body), 200);
    CHECK(strcmp(body, "ok") == 0);
    tern_waitgroup_done(a->wg);
    return 0;
}

static int max_conns_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_slow);
    tern_http_client *c = client(&(tern_http_client_options){.max_conns_per_host = 2});
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    par a = {c, url_of(&s, "/"), &wg};
    int64_t t0 = tern_now();
    tern_waitgroup_add(&wg, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(tern_go(par_get, &a), 0);
    /* while both slots are busy, a request waits, bounded by its context */
    tern_sleep(5 * TERN_MS);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_MS, &ctx), 0);
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, a.url, &r, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    tern_waitgroup_wait(&wg, NULL);
    /* 5 requests, 2 at a time, 40 ms each: three rounds */
    CHECK(tern_now() - t0 >= 120 * TERN_MS);
    CHECK_EQ(atomic_load(&s.accepts), 2);
    CHECK_EQ(atomic_load(&s.max_active), 2);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(st.reuses, 3);
    CHECK_EQ(st.idle, 2);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void pool_max_conns_per_host_makes_requests_wait(void)
{
    run_ok(max_conns_main, NULL, 2);
}

static int max_idle_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_slow);
    tern_http_client *c = client(&(tern_http_client_options){.max_idle_per_host = 1});
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    par a = {c, url_of(&s, "/"), &wg};
    tern_waitgroup_add(&wg, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tern_go(par_get, &a), 0);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(atomic_load(&s.accepts), 3);
    CHECK_EQ(stats(c).idle, 1);     /* two of the three were closed */
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void pool_keeps_at_most_max_idle(void)
{
    run_ok(max_idle_main, NULL, 2);
}

static int idle_timeout_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_hello);
    tern_http_client *c = client(&(tern_http_client_options){.idle_timeout = 30 * TERN_MS});
    char body[16];
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    CHECK_EQ(stats(c).dials, 1);
    tern_sleep(50 * TERN_MS);
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(st.reuses, 1);
    CHECK_EQ(st.idle, 1);
    CHECK_EQ(atomic_load(&s.accepts), 2);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void pool_drops_conns_idle_past_timeout(void)
{
    run_ok(idle_timeout_main, NULL, 2);
}

static char big_body[100 * 1024];

static void serve_big(peer *p)
{
    while (next_req(p)) {
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 102400\r\n\r\n");
        tern_sleep(2 * TERN_MS);    /* the head arrives alone */
        if (tern_conn_write(p->c, big_body, sizeof big_body, NULL) < 0)
            return;
    }
}

static int pool_after_body_main(void *arg)
{
    (void)arg;
    srv s;
    memset(big_body, 'x', sizeof big_body);
    srv_start(&s, serve_big);
    tern_http_client *c = client(NULL);
    tern_http_client_response *r;
    static char b[64 * 1024];
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_content_length(r), 102400);
    CHECK_EQ(tern_http_client_response_read(r, b, 10), 10);
    CHECK_EQ(stats(c).active, 1);
    size_t total = 10;
    ssize_t n;
    while ((n = tern_http_client_response_read(r, b, sizeof b)) > 0)
        total += (size_t)n;
    CHECK_EQ(n, 0);
    CHECK_EQ(total, 102400);
    CHECK_EQ(stats(c).idle, 0);     /* not before the response is freed */
    tern_http_client_response_free(r);
    CHECK_EQ(stats(c).idle, 1);
    CHECK_EQ(stats(c).active, 0);

    /* freed with the body unread, or half read: the connection is closed */
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, NULL), 0);
    tern_http_client_response_free(r);
    CHECK_EQ(stats(c).idle, 0);
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_read(r, b, 100), 100);
    tern_http_client_response_free(r);
    CHECK_EQ(stats(c).idle, 0);
    CHECK_EQ(stats(c).reuses, 1);

    /* a body over the caller's bound */
    const char *data;
    size_t len;
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_body(r, 1000, &data, &len), -EMSGSIZE);
    tern_http_client_response_free(r);
    CHECK_EQ(stats(c).idle, 0);
    CHECK_EQ(atomic_load(&s.accepts), 3);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void pool_takes_conn_back_only_after_whole_body(void)
{
    run_ok(pool_after_body_main, NULL, 2);
}

/* ---- framing --------------------------------------------------------------- */

static void serve_chunked_split(peer *p)
{
    static const char *const parts[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "lo\r\n6",
        "\r\n worl",
        "d\r\n0\r\n",
        "X-Trailer: 1\r\n",
        "\r\n",
    };
    while (next_req(p)) {
        for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
            say(p, parts[i]);
            tern_sleep(2 * TERN_MS);
        }
    }
}

static int chunked_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_chunked_split);
    tern_http_client *c = client(NULL);
    for (int i = 0; i < 2; i++) {
        tern_http_client_response *r;
        CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, NULL), 0);
        CHECK_EQ(tern_http_client_response_content_length(r), -1);
        CHECK(strcmp(tern_http_client_response_header(r, "transfer-encoding"), "chunked") == 0);
        const char *b;
        size_t n;
        CHECK_EQ(tern_http_client_response_body(r, 100, &b, &n), 0);
        CHECK_EQ(n, 11);
        CHECK(strcmp(b, "hello world") == 0);
        tern_http_client_response_free(r);
    }
    CHECK_EQ(stats(c).dials, 1);    /* the end of the chunked body was found exactly */
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void chunked_body_split_across_writes(void)
{
    run_ok(chunked_main, NULL, 2);
}

static void serve_until_close(peer *p)
{
    if (next_req(p)) {
        say(p, "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil ");
        tern_sleep(2 * TERN_MS);
        say(p, "close");
    }
}

static int until_close_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_until_close);
    tern_http_client *c = client(NULL);
    char body[64];
    for (int i = 0; i < 2; i++) {
        tern_http_client_response *r;
        CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, NULL), 0);
        CHECK_EQ(tern_http_client_response_content_length(r), -1);
        const char *b;
        size_t n;
        CHECK_EQ(tern_http_client_response_body(r, sizeof body, &b, &n), 0);
        CHECK(strcmp(b, "until close") == 0);
        const char *name, *value;
        CHECK_EQ(tern_http_client_response_header_at(r, 0, &name, &value), 0);
        CHECK(strcmp(name, "X-A") == 0 && strcmp(value, "1") == 0);
        CHECK_EQ(tern_http_client_response_header_at(r, 1, &name, &value), -ENOENT);
        tern_http_client_response_free(r);
        CHECK_EQ(stats(c).idle, 0);
    }
    CHECK_EQ(atomic_load(&s.accepts), 2);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void body_until_close_is_not_pooled(void)
{
    run_ok(until_close_main, NULL, 2);
}

static void serve_head(peer *p)
{
    while (next_req(p)) {
        if (strcmp(p->method, "HEAD") == 0)
            say(p, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        else
            say(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    }
}

static int head_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_head);
    tern_http_client *c = client(NULL);
    tern_http_client_response *r;
    tern_http_client_request req = {.method = "HEAD", .url = url_of(&s, "/h")};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 200);
    CHECK_EQ(tern_http_client_response_content_length(r), 1000);
    char b[16];
    CHECK_EQ(tern_http_client_response_read(r, b, sizeof b), 0);
    tern_http_client_response_free(r);
    CHECK(strncmp(last_head(&s), "HEAD /h HTTP/1.1\r\n", 18) == 0);
    char body[16];
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    CHECK(strcmp(body, "hello") == 0);
    CHECK_EQ(stats(c).dials, 1);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void head_response_has_no_body(void)
{
    run_ok(head_main, NULL, 2);
}

/* Responses of every shape in turn on one connection: chunked with a
 * field, sized without it, one whose head outgrows the first buffer. */
static void serve_shapes(peer *p)
{
    static char big[20 * 1024 + 64];
    while (next_req(p)) {
        if (strcmp(p->path, "/chunked") == 0) {
            say(p, "HTTP/1.1 201 Created\r\nX-A: one\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n0\r\n\r\n");
        } else if (strcmp(p->path, "/big") == 0) {
            int n = snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: ");
            memset(big + n, 'b', 20 * 1024);
            snprintf(big + n + 20 * 1024, sizeof big - (size_t)n - 20 * 1024,
                     "\r\nContent-Length: 2\r\n\r\nok");
            say(p, big);
        } else {
            say(p, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        }
    }
}

/* GET url: its status, body and X-A field (NULL: absent) checked. */
static void get_shape(tern_http_client *c, const char *url, int status, const char *body, const char *xa)
{
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), status);
    const char *v = tern_http_client_response_header(r, "X-A");
    CHECK(xa ? v && strcmp(v, xa) == 0 : v == NULL);
    CHECK_EQ(tern_http_client_response_header(r, "X-Big") != NULL, strstr(url, "/big") != NULL);
    const char *b;
    size_t n;
    CHECK_EQ(tern_http_client_response_body(r, 64, &b, &n), 0);
    CHECK(n == strlen(body) && memcmp(b, body, n) == 0);
    tern_http_client_response_free(r);
}

/* The client keeps freed responses (with their 16 KiB read buffer) for
 * the next calls: one kept carries nothing of its last use, and one whose
 * buffer grew for a large head is not kept.  One P, so that every call
 * takes from the same worker's spares. */
static int spares_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_shapes);
    tern_http_client *c = client(NULL);
    get_shape(c, url_of(&s, "/chunked"), 201, "hello", "one");
    get_shape(c, url_of(&s, "/sized"), 200, "abc", NULL);
    CHECK_EQ(stats(c).responses_made, 1);
    get_shape(c, url_of(&s, "/big"), 200, "ok", NULL);
    get_shape(c, url_of(&s, "/sized"), 200, "abc", NULL);
    CHECK_EQ(stats(c).responses_made, 2);   /* the grown one was dropped */
    for (int i = 0; i < 20; i++)
        get_shape(c, url_of(&s, i % 2 ? "/chunked" : "/sized"), i % 2 ? 201 : 200, i % 2 ? "hello" : "abc",
                  i % 2 ? "one" : NULL);
    CHECK_EQ(stats(c).responses_made, 2);
    CHECK_EQ(stats(c).dials, 1);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void freed_responses_are_reused_clean(void)
{
    run_ok(spares_main, NULL, 1);
}

static void serve_continue(peer *p)
{
    while (next_req(p)) {
        say(p, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n");
        tern_sleep(2 * TERN_MS);
        say(p, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    }
}

static int continue_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_continue);
    tern_http_client *c = client(&(tern_http_client_options){.user_agent = "t/1"});
    const char *const hdrs[] = {"Content-Type", "text/plain", "X-Tab", "a\tb", NULL};
    tern_http_client_request req = {.url = url_of(&s, "/p"), .headers = hdrs, .body = "abc", .body_len = 3};
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 201);
    const char *b;
    size_t n;
    CHECK_EQ(tern_http_client_response_body(r, 10, &b, &n), 0);
    CHECK(strcmp(b, "ok") == 0);
    tern_http_client_response_free(r);
    char want[256];
    snprintf(want, sizeof want,
             "POST /p HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: t/1\r\nContent-Length: 3\r\n"
             "Content-Type: text/plain\r\nX-Tab: a\tb\r\n\r\n",
             s.port);
    CHECK(strcmp(last_head(&s), want) == 0);
    CHECK(strcmp(last_body(&s), "abc") == 0);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void interim_1xx_responses_are_skipped(void)
{
    run_ok(continue_main, NULL, 2);
}

/* ---- redirects -------------------------------------------------------------- */

static char away_url[128];      /* another server's /echo */

static void serve_redirects(peer *p)
{
    char msg[512];
    while (next_req(p)) {
        const char *q = p->path;
        if (strcmp(q, "/r1") == 0) {
            say(p, "HTTP/1.1 302 Found\r\nLocation: /r2\r\nContent-Length: 5\r\n\r\nmoved");
        } else if (strcmp(q, "/r2") == 0) {
            snprintf(msg, sizeof msg,
                     "HTTP/1.1 301 Moved\r\nLocation: %s/dir/x\r\nContent-Length: 0\r\n\r\n",
                     p->s->base);
            say(p, msg);
        } else if (strcmp(q, "/dir/x") == 0) {
            say(p, "HTTP/1.1 308 Permanent\r\nLocation: final?y=2\r\nContent-Length: 0\r\n\r\n");
        } else if (strcmp(q, "/loop") == 0) {
            say(p, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
        } else if (strcmp(q, "/see-other") == 0) {
            say(p, "HTTP/1.1 303 See Other\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n");
        } else if (strcmp(q, "/temp") == 0) {
            say(p, "HTTP/1.1 307 Temporary\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n");
        } else if (strcmp(q, "/away") == 0) {
            snprintf(msg, sizeof msg, "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n",
                     away_url);
            say(p, msg);
        } else if (strcmp(q, "/bad-location") == 0) {
            say(p, "HTTP/1.1 302 Found\r\nLocation: ftp://x/\r\nContent-Length: 0\r\n\r\n");
        } else {
            char text[300];
            int n = snprintf(text, sizeof text, "%s %s %s", p->method, p->path, p->body);
            snprintf(msg, sizeof msg, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", n, text);
            say(p, msg);
        }
    }
}

static int redirect_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_redirects);
    char body[256];

    /* not followed unless asked for */
    tern_http_client *c = client(NULL);
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/r1"), &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 302);
    CHECK(strcmp(tern_http_client_response_header(r, "location"), "/r2") == 0);
    tern_http_client_response_free(r);
    tern_http_client_free(c);

    c = client(&(tern_http_client_options){.max_redirects = 3});
    /* absolute path, absolute URL, relative path */
    CHECK_EQ(get_text(c, url_of(&s, "/r1"), body, sizeof body), 200);
    CHECK(strcmp(body, "GET /dir/final?y=2 ") == 0);
    CHECK_EQ(stats(c).requests, 4);
    CHECK_EQ(stats(c).dials, 1);    /* the 3xx bodies were drained */
    CHECK_EQ(get_text(c, url_of(&s, "/loop"), body, sizeof body), -ELOOP);
    CHECK_EQ(get_text(c, url_of(&s, "/bad-location"), body, sizeof body), -EBADMSG);

    /* 303 turns a POST into a GET without body; 307 keeps both */
    tern_http_client_request req = {.url = url_of(&s, "/see-other"), .body = "abc", .body_len = 3};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    const char *b;
    size_t n;
    CHECK_EQ(tern_http_client_response_body(r, 100, &b, &n), 0);
    CHECK(strcmp(b, "GET /echo ") == 0);
    tern_http_client_response_free(r);
    CHECK(strstr(last_head(&s), "Content-Length") == NULL);
    req.url = url_of(&s, "/temp");
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_body(r, 100, &b, &n), 0);
    CHECK(strcmp(b, "POST /echo abc") == 0);
    tern_http_client_response_free(r);

    /* credentials (and a Host the caller gave) do not follow a redirect to another host:port */
    srv s2;
    srv_start(&s2, serve_redirects);
    snprintf(away_url, sizeof away_url, "%s/echo", s2.base);
    const char *const auth[] = {"Authorization", "Bearer x", "Cookie", "a=1", "X-Keep", "1", "Host", "site.example",
                                NULL};
    req = (tern_http_client_request){.url = url_of(&s, "/r1"), .headers = auth};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    tern_http_client_response_free(r);
    CHECK(strstr(last_head(&s), "\r\nAuthorization: Bearer x\r\nCookie: a=1\r\nX-Keep: 1\r\n"));
    req.url = url_of(&s, "/away");
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(r), 200);
    tern_http_client_response_free(r);
    CHECK(strstr(last_head(&s2), "GET /echo HTTP/1.1\r\n") == last_head(&s2));
    CHECK(strstr(last_head(&s2), "\r\nX-Keep: 1\r\n"));
    CHECK(!strcasestr(last_head(&s2), "Authorization") && !strcasestr(last_head(&s2), "Cookie"));
    CHECK(strstr(last_head(&s), "\r\nHost: site.example\r\n"));
    char host2[96];
    int hn = snprintf(host2, sizeof host2, "\r\nHost: %s\r\n", s2.base + strlen("http://"));
    CHECK(hn > 0 && (size_t)hn < sizeof host2);
    CHECK(strstr(last_head(&s2), host2) && !strstr(last_head(&s2), "site.example"));
    tern_http_client_free(c);
    srv_stop(&s2);

    /* exactly max_redirects hops are fine */
    c = client(&(tern_http_client_options){.max_redirects = 1});
    CHECK_EQ(get_text(c, url_of(&s, "/r2"), body, sizeof body), -ELOOP);
    CHECK_EQ(get_text(c, url_of(&s, "/dir/x"), body, sizeof body), 200);
    CHECK(strcmp(body, "GET /dir/final?y=2 ") == 0);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void redirects_followed_when_asked_and_bounded(void)
{
    run_ok(redirect_main, NULL, 2);
}

/* ---- misbehaving servers ------------------------------------------------------ */

static void serve_misbehave(peer *p)
{
    static char big[2048];
    if (!next_req(p))
        return;
    const char *q = p->path;
    if (strcmp(q, "/close-before") == 0)
        return;
    if (strcmp(q, "/close-mid-head") == 0)
        say(p, "HTTP/1.1 200 OK\r\nContent-Le");
    else if (strcmp(q, "/bad-status") == 0)
        say(p, "HTTP/1.1 2x0 OK\r\n\r\n");
    else if (strcmp(q, "/bad-version") == 0)
        say(p, "HTTP/2.0 200 OK\r\n\r\n");
    else if (strcmp(q, "/bad-header") == 0)
        say(p, "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n");
    else if (strcmp(q, "/cl-and-te") == 0)
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    else if (strcmp(q, "/huge-head") == 0) {
        memset(big, 'a', sizeof big - 1);
        say(p, "HTTP/1.1 200 OK\r\nX-Big: ");
        say(p, big);
        say(p, "\r\n\r\n");
    } else if (strcmp(q, "/short-body") == 0)
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    else if (strcmp(q, "/bad-chunk") == 0)
        say(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n");
    else if (strcmp(q, "/chunk-cut") == 0)
        say(p, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    else if (strcmp(q, "/101") == 0)
        say(p, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n");
    else if (strcmp(q, "/head-body") == 0) {
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        until_eof(p);
    }
}

/* do a request and read its body: the first error, or the status */
static int fetch(tern_http_client *c, const char *method, const char *url)
{
    tern_http_client_request req = {.method = method, .url = url};
    tern_http_client_response *r;
    int rc = tern_http_client_do(c, &req, &r, NULL);
    if (rc < 0)
        return rc;
    const char *b;
    size_t n;
    rc = tern_http_client_response_body(r, 1 << 20, &b, &n);
    if (rc == 0)
        rc = tern_http_client_response_status(r);
    else    /* errors are sticky */
        CHECK_EQ(tern_http_client_response_read(r, (char[4]){0}, 4), rc);
    tern_http_client_response_free(r);
    return rc;
}

static int misbehave_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_misbehave);
    tern_http_client *c = client(&(tern_http_client_options){.max_response_header = 1024});
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/close-before")), -ECONNRESET);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/close-mid-head")), -ECONNRESET);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/bad-status")), -EBADMSG);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/bad-version")), -EBADMSG);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/bad-header")), -EBADMSG);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/cl-and-te")), -EBADMSG);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/huge-head")), -EMSGSIZE);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/short-body")), -ECONNRESET);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/bad-chunk")), -EBADMSG);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/chunk-cut")), -ECONNRESET);
    CHECK_EQ(fetch(c, "GET", url_of(&s, "/101")), -EPROTO);
    /* a body after a HEAD answer: the response is fine, its conn is not */
    CHECK_EQ(fetch(c, "HEAD", url_of(&s, "/head-body")), 200);
    CHECK_EQ(stats(c).idle, 0);
    CHECK_EQ(stats(c).reuses, 0);
    CHECK_EQ(stats(c).active, 0);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void each_server_misbehaviour_has_its_error(void)
{
    run_ok(misbehave_main, NULL, 2);
}

static void serve_slam(peer *p)
{
    (void)p;    /* close at once, unread: the kernel answers with a reset */
}

static int refused_main(void *arg)
{
    (void)arg;
    tern_http_client *c = client(NULL);
    /* a port nobody listens on */
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", tern_listener_port(l));
    tern_listener_free(l);
    CHECK_EQ(fetch(c, "GET", url), -ECONNREFUSED);
    CHECK_EQ(stats(c).active, 0);

    /* the server slams the door while a large request is being written */
    srv s;
    srv_start(&s, serve_slam);
    size_t big = 8 << 20;
    char *body = calloc(1, big);
    tern_http_client_request req = {.url = url_of(&s, "/"), .body = body, .body_len = big};
    tern_http_client_response *r;
    int rc = tern_http_client_do(c, &req, &r, NULL);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    free(body);

    /* what the caller gets wrong */
    const char *const crlf[] = {"X-A", "a\r\nInjected: 1", NULL};
    const char *const badname[] = {"X A", "1", NULL};
    const char *const framing[] = {"content-length", "1", NULL};
    const char *const odd[] = {"X-A", NULL};
    req = (tern_http_client_request){.url = url_of(&s, "/"), .headers = crlf};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), -EINVAL);
    req.headers = badname;
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), -EINVAL);
    req.headers = framing;
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), -EINVAL);
    req.headers = odd;
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), -EINVAL);
    /* a long value is checked a word at a time: a bad byte anywhere in it,
     * each of CR, LF, another control character and DEL */
    char longv[80];
    const char *const longh[] = {"X-Long", longv, NULL};
    req.headers = longh;
    const char bad_bytes[] = {'\r', '\n', '\x01', '\x7f'};
    for (size_t at = 0; at < 70; at += 3) {
        memset(longv, 'a', sizeof longv - 1);
        longv[sizeof longv - 1] = '\0';
        longv[at] = bad_bytes[at % 4];
        CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), -EINVAL);
    }
    req = (tern_http_client_request){.url = url_of(&s, "/"), .method = "GE T"};
    CHECK_EQ(tern_http_client_do(c, &req, &r, NULL), -EINVAL);
    CHECK_EQ(tern_http_client_get(c, "ftp://127.0.0.1/", &r, NULL), -EINVAL);
    CHECK_EQ(tern_http_client_get(c, "http://127.0.0.1/a b", &r, NULL), -EINVAL);
    CHECK_EQ(tern_http_client_get(c, "127.0.0.1/", &r, NULL), -EINVAL);
    CHECK(r == NULL);
    CHECK_EQ(atomic_load(&s.accepts), 1);
    tern_http_client_free(c);
    srv_stop(&s);

    tern_http_client *bad;
    CHECK_EQ(tern_http_client_new(&(tern_http_client_options){.user_agent = "a\nb"}, &bad), -EINVAL);
    CHECK_EQ(tern_http_client_new(&(tern_http_client_options){.timeout = -1}, &bad), -EINVAL);
    return 0;
}

static void refused_reset_and_caller_errors(void)
{
    run_ok(refused_main, NULL, 2);
}

/* ---- deadlines and cancellation --------------------------------------------- */

static void serve_stall(peer *p)
{
    if (!next_req(p))
        return;
    if (strcmp(p->path, "/partial") == 0)
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome");
    until_eof(p);   /* never answers (more) */
}

/* Cancels ctx after 30 ms; wg says when it is done with ctx (a context
 * must not be freed under a cancel in progress). */
typedef struct canceller {
    tern_ctx *ctx;
    tern_waitgroup wg;
} canceller;

static int cancel_after(void *arg)
{
    canceller *k = arg;
    tern_sleep(30 * TERN_MS);
    tern_ctx_cancel(k->ctx);
    tern_waitgroup_done(&k->wg);
    return 0;
}

static void cancel_later(canceller *k, tern_ctx *ctx)
{
    k->ctx = ctx;
    tern_waitgroup_add(&k->wg, 1);
    CHECK_EQ(tern_go(cancel_after, k), 0);
}

static int deadline_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_stall);
    tern_http_client *c = client(NULL);
    tern_http_client_response *r;

    /* the context's deadline, while waiting for the head */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, ctx), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    CHECK(took >= 50 * TERN_MS && took < 500 * TERN_MS);
    tern_ctx_free(ctx);

    /* ... and while reading the body */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/partial"), &r, ctx), 0);
    char b[128];
    CHECK_EQ(tern_http_client_response_read(r, b, sizeof b), 4);
    t0 = tern_now();
    CHECK_EQ(tern_http_client_response_read(r, b, sizeof b), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 500 * TERN_MS);
    tern_http_client_response_free(r);
    tern_ctx_free(ctx);

    /* cancellation, while waiting for the head and for the body */
    canceller k = {0};
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    cancel_later(&k, ctx);
    t0 = tern_now();
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, ctx), -ECANCELED);
    took = tern_now() - t0;
    CHECK(took >= 30 * TERN_MS && took < 500 * TERN_MS);
    tern_waitgroup_wait(&k.wg, NULL);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/partial"), &r, ctx), 0);
    cancel_later(&k, ctx);
    CHECK_EQ(tern_http_client_response_read(r, b, sizeof b), 4);
    CHECK_EQ(tern_http_client_response_read(r, b, sizeof b), -ECANCELED);
    tern_http_client_response_free(r);
    tern_waitgroup_wait(&k.wg, NULL);
    tern_ctx_free(ctx);
    CHECK_EQ(stats(c).idle, 0);
    tern_http_client_free(c);

    /* options.timeout without a context deadline */
    c = client(&(tern_http_client_options){.timeout = 40 * TERN_MS});
    t0 = tern_now();
    CHECK_EQ(tern_http_client_get(c, url_of(&s, "/"), &r, NULL), -ETIMEDOUT);
    took = tern_now() - t0;
    CHECK(took >= 40 * TERN_MS && took < 500 * TERN_MS);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void deadline_and_cancel_end_requests_in_time(void)
{
    run_ok(deadline_main, NULL, 2);
}

/* ---- the stale pooled connection --------------------------------------------- */

/* The first connection answers once, then takes the next request and
 * closes without a word (an idle close racing with the request); later
 * connections behave. */
static void serve_stale(peer *p)
{
    if (p->idx > 1) {
        serve_hello(p);
        return;
    }
    if (next_req(p))
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    next_req(p);
}

static int stale_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_stale);
    tern_http_client *c = client(NULL);
    char body[16];
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    CHECK(strcmp(body, "hello") == 0);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(st.reuses, 1);
    CHECK_EQ(st.requests, 3);       /* the retry */
    CHECK_EQ(atomic_load(&s.accepts), 2);
    tern_http_client_free(c);
    srv_stop(&s);

    /* not for a POST: it may have been acted on */
    srv_start(&s, serve_stale);
    c = client(NULL);
    CHECK_EQ(fetch(c, "POST", url_of(&s, "/")), 200);
    CHECK_EQ(fetch(c, "POST", url_of(&s, "/")), -ECONNRESET);
    CHECK_EQ(stats(c).requests, 2);
    CHECK_EQ(atomic_load(&s.accepts), 1);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void stale_pooled_conn_is_retried_once_for_idempotent(void)
{
    run_ok(stale_main, NULL, 2);
}

static void serve_once_then_close(peer *p)
{
    if (next_req(p))
        say(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
}

static int closed_idle_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_once_then_close);
    tern_http_client *c = client(NULL);
    char body[16];
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    CHECK_EQ(stats(c).idle, 1);
    tern_sleep(20 * TERN_MS);       /* the server's FIN arrives */
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(st.reuses, 0);
    CHECK_EQ(st.requests, 2);       /* found closed before use, no retry needed */
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void idle_conn_closed_by_server_is_not_used(void)
{
    run_ok(closed_idle_main, NULL, 2);
}

/* The first connection answers, then sends a byte nobody asked for while
 * the client holds it idle, then waits for the client to go. */
static void serve_then_stray(peer *p)
{
    if (p->idx > 1) {
        serve_hello(p);
        return;
    }
    if (!next_req(p))
        return;
    say(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    tern_sleep(5 * TERN_MS);
    say(p, "X");
    next_req(p);
}

static int stray_idle_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_then_stray);
    tern_http_client *c = client(NULL);
    char body[16];
    CHECK_EQ(get_text(c, url_of(&s, "/"), body, sizeof body), 200);
    CHECK_EQ(stats(c).idle, 1);
    tern_sleep(30 * TERN_MS);       /* the stray byte arrives */
    /* a POST: were the byte read as the answer's first, nothing would retry */
    CHECK_EQ(fetch(c, "POST", url_of(&s, "/")), 200);
    struct tern_http_client_stats st = stats(c);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(st.reuses, 0);
    CHECK_EQ(st.requests, 2);
    /* and an idle connection nothing came on is reused */
    tern_sleep(30 * TERN_MS);
    CHECK_EQ(fetch(c, "POST", url_of(&s, "/")), 200);
    st = stats(c);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(st.reuses, 1);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void idle_conn_with_stray_bytes_is_not_used(void)
{
    run_ok(stray_idle_main, NULL, 2);
}

/* ---- streaming --------------------------------------------------------------- */

#define BIG_BODY (4 << 20)

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 12));
}

static void serve_stream(peer *p)
{
    unsigned char *piece = malloc(64 * 1024);
    while (next_req(p)) {
        bool chunked = strcmp(p->path, "/chunked") == 0;
        say(p, chunked ? "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       : "HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n");
        for (size_t off = 0; off < BIG_BODY; off += 64 * 1024) {
            for (size_t i = 0; i < 64 * 1024; i++)
                piece[i] = pattern(off + i);
            if (chunked) {
                /* uneven chunks: 3000-byte pieces across the 64 KiB writes */
                for (size_t i = 0; i < 64 * 1024; i += 3000) {
                    size_t n = 64 * 1024 - i < 3000 ? 64 * 1024 - i : 3000;
                    char hdr[16];
                    snprintf(hdr, sizeof hdr, "%zx\r\n", n);
                    say(p, hdr);
                    CHECK_EQ(tern_conn_write(p->c, piece + i, n, NULL), (long)n);
                    say(p, "\r\n");
                }
            } else {
                CHECK_EQ(tern_conn_write(p->c, piece, 64 * 1024, NULL), 64 * 1024);
            }
        }
        if (chunked)
            say(p, "0\r\n\r\n");
    }
    free(piece);
}

static int stream_main(void *arg)
{
    (void)arg;
    srv s;
    srv_start(&s, serve_stream);
    tern_http_client *c = client(NULL);
    unsigned char *b = malloc(7000);
    const char *paths[] = {"/plain", "/chunked"};
    for (int k = 0; k < 2; k++) {
        tern_http_client_response *r;
        CHECK_EQ(tern_http_client_get(c, url_of(&s, paths[k]), &r, NULL), 0);
        size_t total = 0, reads = 0;
        ssize_t n;
        /* odd read sizes, 1 to 7000 bytes */
        while ((n = tern_http_client_response_read(r, b, 1 + (reads * 997) % 7000)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                if (b[i] != pattern(total + (size_t)i)) {
                    fprintf(stderr, "%s: byte %zu differs\n", paths[k], total + (size_t)i);
                    abort();
                }
            total += (size_t)n;
            reads++;
        }
        CHECK_EQ(n, 0);
        CHECK_EQ(total, BIG_BODY);
        CHECK(reads > 1000);
        tern_http_client_response_free(r);
    }
    free(b);
    CHECK_EQ(stats(c).dials, 1);
    tern_http_client_free(c);
    srv_stop(&s);
    return 0;
}

static void large_body_streams_in_pieces(void)
{
    run_ok(stream_main, NULL, 2);
}

TESTS(T(keepalive_three_requests_one_connection), T(pool_max_conns_per_host_makes_requests_wait),
      T(pool_keeps_at_most_max_idle), T(pool_drops_conns_idle_past_timeout),
      T(pool_takes_conn_back_only_after_whole_body), T(chunked_body_split_across_writes),
      T(body_until_close_is_not_pooled), T(head_response_has_no_body), T(freed_responses_are_reused_clean),
      T(interim_1xx_responses_are_skipped), T(redirects_followed_when_asked_and_bounded),
      T(each_server_misbehaviour_has_its_error), T(refused_reset_and_caller_errors),
      T(deadline_and_cancel_end_requests_in_time),
      T(stale_pooled_conn_is_retried_once_for_idempotent), T(idle_conn_closed_by_server_is_not_used),
      T(idle_conn_with_stray_bytes_is_not_used),
      T(large_body_streams_in_pieces))
