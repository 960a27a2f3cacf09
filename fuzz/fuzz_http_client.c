/*
 * fuzz_http_client.c - libFuzzer target for the HTTP client's response
 * path with its body: the input is all a server sends back (head and
 * body, chunked or by Content-Length or until close, interim responses
 * first), through real sockets, into tern_http_client_get and
 * tern_http_client_response_body.  The response-side sources
 * (client_response.c, the response parser, the chunked decoder, the field
 * parser) are built here with the fuzzer's instrumentation; the rest of
 * the client and the runtime come from libtern, as in fuzz_config_json.
 *
 * Each input runs on a fresh one-P runtime: a server coroutine accepts,
 * reads the request head, writes the input and closes, so every body ends.
 * Beyond "no crash, no sanitizer report": a response is never 1xx; a body
 * read whole is NUL-terminated and as long as Content-Length says; a
 * failed get leaves no response.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tern/http_client.h>
#include <tern/net.h>
#include <tern/runtime.h>

static void check(int cond)
{
    if (!cond)
        abort();
}

typedef struct job {
    const uint8_t *data;
    size_t size;
    tern_listener *l;
} job;

static int serve_once(void *arg)
{
    job *j = arg;
    tern_conn *c;
    if (tern_listener_accept(j->l, &c, NULL) < 0)
        return 0;
    tern_conn_set_read_deadline(c, tern_now() + TERN_SEC);
    char head[4096];
    size_t n = 0;
    while (n < sizeof head - 1) {
        ssize_t r = tern_conn_read(c, head + n, sizeof head - 1 - n, NULL);
        if (r <= 0)
            break;
        n += (size_t)r;
        head[n] = '\0';
        if (strstr(head, "\r\n\r\n"))
            break;
    }
    tern_conn_set_write_deadline(c, tern_now() + TERN_SEC);
    tern_conn_write(c, j->data, j->size, NULL);
    tern_conn_free(c);
    return 0;
}

static int one(void *arg)
{
    job *j = arg;
    check(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &j->l) == 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", tern_listener_port(j->l));
    check(tern_go(serve_once, j) == 0);
    tern_http_client *cl;
    tern_http_client_options o = {.max_idle_per_host = -1, .timeout = 2 * TERN_SEC,
                                  .max_response_header = 4096};
    check(tern_http_client_new(&o, &cl) == 0);
    tern_http_client_response *r = (tern_http_client_response *)&o;    /* must become NULL */
    int rc = tern_http_client_get(cl, url, &r, NULL);
    if (rc < 0) {
        check(r == NULL);
    } else {
        int status = tern_http_client_response_status(r);
        check(status >= 200 && status <= 599);
        int64_t cl_len = tern_http_client_response_content_length(r);
        const char *body;
        size_t len;
        if (tern_http_client_response_body(r, 1 << 16, &body, &len) == 0) {
            check(body[len] == '\0');
            check(cl_len < 0 || (size_t)cl_len == len);
            check(len <= j->size);
        }
        tern_http_client_response_free(r);
    }
    tern_http_client_free(cl);
    tern_listener_free(j->l);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    job j = {.data = data, .size = size};
    tern_run_options ro = {.procs = 1, .monitor_threshold = -1};
    check(tern_run_opts(one, &j, &ro) == 0);
    return 0;
}
