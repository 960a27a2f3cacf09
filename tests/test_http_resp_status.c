/* test_http_resp_status.c - a response's status may change until it is
 * committed, and its body and Content-Length follow the final status:
 * bytes written under a bodyless status (204) are kept for a later 200,
 * and a body written under 200 is dropped for a later 204. */
#include "check.h"
#include "http_raw.h"

static int body_then_200(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    CHECK_EQ(tern_http_resp_set_status(w, 204), 0);
    CHECK_EQ(tern_http_resp_write(w, "hello", 5), 5);
    return tern_http_resp_set_status(w, 200);
}

static int body_then_204(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    CHECK_EQ(tern_http_resp_write(w, "hello", 5), 5);
    return tern_http_resp_set_status(w, 204);
}

static int status_change_entry(void *arg)
{
    tern_http_handler_fn *h = arg;
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{h, NULL}}, 1);
    /* two requests on one connection: the second is read right only if
     * the first response's framing told the truth */
    client *cl = client_dial(sv.addr);
    for (int i = 0; i < 2; i++) {
        send_raw(cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        resp p;
        read_resp(cl, &p, false);
        if (h == body_then_200) {
            CHECK_EQ(p.status, 200);
            CHECK(strcmp(must(&p, "Content-Length"), "5") == 0);
            CHECK(p.body_len == 5 && strcmp(p.body, "hello") == 0);
        } else {
            CHECK_EQ(p.status, 204);
            CHECK(hdr(&p, "Content-Length") == NULL);
            CHECK_EQ(p.body_len, (size_t)0);
        }
        resp_free(&p);
    }
    client_close(cl);
    server_stop(&sv);
    return 0;
}

static void body_written_under_204_is_sent_when_status_becomes_200(void)
{
    run_test(status_change_entry, (void *)body_then_200);
}

static void body_written_under_200_is_dropped_when_status_becomes_204(void)
{
    run_test(status_change_entry, (void *)body_then_204);
}

TESTS(T(body_written_under_204_is_sent_when_status_becomes_200),
      T(body_written_under_200_is_dropped_when_status_becomes_204))
