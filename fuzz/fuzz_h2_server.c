/*
 * fuzz_h2_server - frame sequences from a client into the HTTP/2 server's
 * session glue (src/http/h2_*.c), with no socket but a socketpair inside
 * the runtime: the input, after the client preface, is what the client
 * sends; handlers run for the streams it opens (reading bodies and
 * trailers, answering with streamed bodies and trailers), and the server's
 * frames are read and dropped by a client coroutine.  Each input runs a
 * session to its end: the client's EOF (or the session's own error) must
 * tear down every stream and handler, which ASan and the invariants check.
 *
 * The h2 sources are built here with the fuzzer's instrumentation; the rest
 * of the server comes from libtern.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/h2_internal.h"
#include "tern/runtime.h"

static void check(int cond)
{
    if (!cond)
        abort();
}

/* What a real handler does: read the body, look at trailers, stream an
 * answer in a few writes, add trailers. */
static int handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    char buf[1024];
    size_t total = 0;
    for (;;) {
        ssize_t n = tern_http_req_read(r, buf, sizeof buf);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        total += (size_t)n;
    }
    const char *t = tern_http_req_trailer(r, "x-t");
    tern_http_resp_set_trailer(w, "x-total", t ? t : "none");
    const char *path = tern_http_req_path(r);
    if (path[0] && path[1] == 'b') {        /* "/b...": a body past the buffer */
        memset(buf, 'x', sizeof buf);
        for (int i = 0; i < 80; i++)
            if (tern_http_resp_write(w, buf, sizeof buf) < 0)
                return -EIO;
        return 0;
    }
    if (path[0] && path[1] == 'f') {        /* "/f...": fail mid-response */
        tern_http_resp_write(w, "x", 1);
        tern_http_resp_flush(w);
        return -EIO;
    }
    return tern_http_resp_printf(w, "%zu %s\n", total, tern_http_req_header(r, "host") ?: "-") < 0
           ? -EIO : 0;
}

typedef struct input {
    const uint8_t *data;
    size_t size;
    tern_conn *client;
    tern_waitgroup done;
} input;

static int client_send(void *arg)
{
    input *in = arg;
    tern_conn_write(in->client, H2_PREFACE, H2_PREFACE_LEN, NULL);
    tern_conn_write(in->client, in->data, in->size, NULL);
    tern_conn_close_write(in->client);
    tern_waitgroup_done(&in->done);
    return 0;
}

static int client_drain(void *arg)
{
    input *in = arg;
    char buf[16384];
    while (tern_conn_read(in->client, buf, sizeof buf, NULL) > 0) {
    }
    tern_waitgroup_done(&in->done);
    return 0;
}

static int one_input(void *arg)
{
    input *in = arg;
    tern_http_server_options o = { .handler = handler, .max_body_bytes = 100000,
                                   .write_timeout = 2 * TERN_SEC, .read_body_timeout = 2 * TERN_SEC,
                                   .max_header_bytes = 8192, .max_headers = 32 };
    tern_http_server *s;
    check(tern_http_server_new(&o, &s) == 0);
    int sv[2];
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    tern_conn *server;
    check(tern_conn_from_fd(sv[0], &server) == 0);
    check(tern_conn_from_fd(sv[1], &in->client) == 0);
    hconn *hc = calloc(1, sizeof *hc);
    check(hc != NULL);
    hc->srv = s;
    hc->c = server;
    atomic_init(&hc->state, CONN_ACTIVE);
    /* the server's stats count it as HTTP/1.1's accept loop would */
    atomic_fetch_add(&s->nconns, 1);
    atomic_fetch_add(&s->nactive, 1);
    tern_waitgroup_add(&in->done, 2);
    check(tern_go(client_send, in) == 0);
    check(tern_go(client_drain, in) == 0);
    tern__h2_session_run(hc, NULL);
    /* the session is over: every stream and handler has gone */
    shutdown(sv[0], SHUT_RDWR);
    tern_waitgroup_wait(&in->done, NULL);
    check(atomic_load(&s->nactive) == 1);
    tern_conn_free(server);
    tern_conn_free(in->client);
    free(hc);
    atomic_store(&s->nconns, 0);
    atomic_store(&s->nactive, 0);
    tern_http_server_free(s);
    return 0;
}

/* One runtime for the whole run (starting one per input would cost more
 * than the input): it lives on a thread of its own and takes inputs, one
 * at a time, from libFuzzer's thread over a socketpair. */
static int ctl[2];

static int serve_inputs(void *arg)
{
    (void)arg;
    tern_conn *c;
    check(tern_conn_from_fd(ctl[1], &c) == 0);
    for (;;) {
        input *in;
        if (tern_conn_read(c, &in, sizeof in, NULL) != sizeof in)
            return 0;
        one_input(in);
        char ack = 1;
        check(tern_conn_write(c, &ack, 1, NULL) == 1);
    }
}

static void *runtime_thread(void *arg)
{
    (void)arg;
    tern_run_options ro = { .procs = 1, .monitor_threshold = -1, .no_deadlock_exit = true };
    tern_run_opts(serve_inputs, NULL, &ro);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pthread_t rt;
    if (!rt) {
        check(socketpair(AF_UNIX, SOCK_STREAM, 0, ctl) == 0);
        check(pthread_create(&rt, NULL, runtime_thread, NULL) == 0);
    }
    input in = { .data = data, .size = size };
    input *p = &in;
    ssize_t n;
    while ((n = write(ctl[0], &p, sizeof p)) < 0 && errno == EINTR) {
    }
    check(n == sizeof p);
    char ack;
    /* libFuzzer's -timeout alarm interrupts the wait */
    while ((n = read(ctl[0], &ack, 1)) < 0 && errno == EINTR) {
    }
    check(n == 1);
    return 0;
}
