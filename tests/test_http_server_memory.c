/*
 * test_http_server_memory.c - what one slow client may cost (issue 15,
 * item 5): a large reply to a client that does not read is held once, not
 * copied into the connection's output buffer too; a body is reserved as
 * it arrives, not by its Content-Length up front; and servers limit their
 * connections by default (three quarters of RLIMIT_NOFILE), count each
 * time the limit pauses accepting and report it.  Heap use (heap_use.h) is
 * measured around the one
 * request in flight.  The fixture is http_server_fixture.h.
 */
#include "check.h"
#include "heap_use.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include "http_server_fixture.h"

#define BIG (12u << 20)             /* well past what loopback buffers absorb */

static tern_chan *began;

/* /echo: the body back, the way a handler naturally writes it */
static int h_echo_all(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *data;
    size_t len;
    int one = 1;
    tern_chan_try_send(began, &one);
    int rc = tern_http_req_body(r, &data, &len);
    if (rc < 0)
        return rc;
    return tern_http_resp_send(w, 200, "application/octet-stream", data, len);
}

static tsrv *start(tern_http_server_options *o)
{
    CHECK_EQ(tern_chan_new(sizeof(int), 4, &began), 0);
    o->handler = h_echo_all;
    o->max_body_bytes = 16 << 20;
    return srv_start(o, NULL);
}

static void finish(tsrv *t)
{
    srv_stop(t);
    tern_chan_free(began);
}

static void await_began(void)
{
    int v;
    bool ok;
    tern_ctx *to;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 3 * TERN_SEC, &to), 0);
    CHECK_EQ(tern_chan_recv(began, &v, &ok, to), 0);
    tern_ctx_free(to);
}

/* Found: the reply was copied into the output buffer, so a client that
 * never read its 8 MiB echo pinned 16 MiB for write_timeout. */
SERVER_TEST(a_big_reply_to_a_client_that_does_not_read_is_held_once)
{
    (void)arg;
    tern_http_server_options o = {0};
    tsrv *t = start(&o);
    cl *k = cl_dial(t->addr);
    int small = 16 * 1024;
    CHECK_EQ(setsockopt(tern_conn_fd(k->c), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    char *body = malloc(BIG);
    CHECK(body);
    memset(body, 'b', BIG);
    char head[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n", BIG);
    size_t before = heap_in_use();
    cl_send(k, head);
    cl_sendn(k, body, BIG);
    free(body);
    await_began();
    tern_sleep(300 * TERN_MS);      /* the handler is stuck writing to us */
    size_t held = heap_in_use() - before + BIG;     /* our body was freed: add it back */
    fprintf(stderr, "heap held for a %u-byte echo: %zu bytes (%.2fx)\n", BIG, held,
            (double)held / BIG);
    CHECK(held < BIG + BIG / 2);
    CHECK(held > BIG / 4 * 3);      /* the request body itself, once */
    cl_close(k);
    finish(t);
    return 0;
}

/* Found: tern_http_req_body reserved the whole Content-Length before a
 * byte came, so announcing 12 MiB and sending 10 bytes pinned 12 MiB. */
SERVER_TEST(a_body_is_reserved_as_it_arrives)
{
    (void)arg;
    tern_http_server_options o = {0};
    tsrv *t = start(&o);
    cl *k = cl_dial(t->addr);
    char head[128];
    snprintf(head, sizeof head, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n"
             "0123456789", BIG);
    size_t before = heap_in_use();
    cl_send(k, head);
    await_began();
    tern_sleep(100 * TERN_MS);      /* the handler waits for the rest */
    /* signed: memory the last test's teardown frees meanwhile can make
     * the heap smaller than before, which is no reservation either */
    long long held = (long long)heap_in_use() - (long long)before;
    fprintf(stderr, "heap held for an announced %u-byte body: %lld bytes\n", BIG, held);
    CHECK(held < 256 * 1024);
    cl_close(k);
    finish(t);
    return 0;
}

static int rlimit_default(void)
{
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur / 4 * 3 > (1 << 20))
        return 1 << 20;
    return rl.rlim_cur / 4 * 3 < 64 ? 64 : (int)(rl.rlim_cur / 4 * 3);
}

static atomic_int reports;

static void count_reports(const char *line, void *arg)
{
    (void)arg;
    if (strstr(line, "max_conns"))
        atomic_fetch_add(&reports, 1);
}

SERVER_TEST(max_conns_has_a_default_and_its_pauses_are_counted_and_reported)
{
    (void)arg;
    tern_http_server_options o = {0};
    tsrv *t = start(&o);
    CHECK_EQ(srv_stats(t).max_conns, (uint32_t)rlimit_default());
    CHECK_EQ(srv_stats(t).conn_limit_hits, 0);
    finish(t);

    tern_http_server_options none = {.max_conns = -1};
    t = start(&none);
    CHECK_EQ(srv_stats(t).max_conns, 0);
    finish(t);

    atomic_store(&reports, 0);
    tern_runtime_set_report_hook(count_reports, NULL);
    tern_http_server_options two = {.max_conns = 2};
    t = start(&two);
    cl *a = cl_dial(t->addr), *b = cl_dial(t->addr), *c = cl_dial(t->addr);
    tern_sleep(100 * TERN_MS);
    CHECK_EQ(srv_stats(t).accepted, 2);
    CHECK_EQ(srv_stats(t).conn_limit_hits, 1);
    CHECK_EQ(atomic_load(&reports), 1);
    cl_close(a);                    /* c gets a's slot ... */
    tern_sleep(100 * TERN_MS);
    CHECK_EQ(srv_stats(t).accepted, 3);
    cl *d = cl_dial(t->addr);       /* ... and d waits again: counted, not reported twice in 10 s */
    tern_sleep(100 * TERN_MS);
    CHECK_EQ(srv_stats(t).conn_limit_hits, 2);
    CHECK_EQ(atomic_load(&reports), 1);
    tern_runtime_set_report_hook(NULL, NULL);
    cl_close(b);
    cl_close(c);
    cl_close(d);
    finish(t);
    return 0;
}

TESTS(T(a_big_reply_to_a_client_that_does_not_read_is_held_once),
      T(a_body_is_reserved_as_it_arrives),
      T(max_conns_has_a_default_and_its_pauses_are_counted_and_reported))
