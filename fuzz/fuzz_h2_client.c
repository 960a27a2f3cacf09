/*
 * fuzz_h2_client.c - server frame sequences into the HTTP/2 client's
 * session glue (src/http/h2_client_session.c): its nghttp2 callbacks,
 * the head and trailer collection, DATA buffering and flow control.
 *
 * Each input is what a server sends after the client's preface, a GET
 * (stream 1) and a POST with a 40 KiB body (stream 3): a valid empty
 * SETTINGS frame first unless the input's first byte is odd (so most
 * inputs get past the preface), then the input, fed in two pieces split
 * where its second byte says.  Between the pieces and after them the
 * client "reads" every buffered body byte (consuming window) and drains
 * its output, as the connection's coroutines would.  Checked: no crash,
 * no leak, and the invariants the request side relies on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_client_internal.h"

static uint8_t post_body[40 * 1024];

static int32_t submit(tern__h2c_conn *h, tern__h2c_stream *s, const char *method, bool body)
{
    nghttp2_nv nva[] = {
        {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"fuzz", 10, 4, 0},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
    };
    nghttp2_data_provider prd = {.read_callback = tern__h2c_read_body};
    if (body) {
        s->body = post_body;
        s->body_len = sizeof post_body;
    }
    int32_t id = nghttp2_submit_request(h->session, NULL, nva, 4, body ? &prd : NULL, NULL);
    if (id > 0) {
        s->id = id;
        tern__h2c_link(h, s);
    }
    return id;
}

/* What a reader does: take every buffered byte, give its window back. */
static void read_all(tern__h2c_conn *h, tern__h2c_stream *s)
{
    TERN_ASSERT(s->dpos <= s->dlen && s->dlen <= s->dcap);
    /* the peer cannot run past our stream window (nghttp2 enforces it) */
    TERN_ASSERT(s->dlen - s->dpos <= TERN__H2C_STREAM_WINDOW);
    TERN_ASSERT(!s->got_head || s->status >= 200 || s->status == 0);
    TERN_ASSERT(s->nhead <= TERN_HTTP_CLIENT_MAX_HEADERS);
    size_t n = s->dlen - s->dpos;
    s->dpos = s->dlen;
    if (n && !atomic_load(&h->dead))
        nghttp2_session_consume(h->session, s->id, n);
}

static void pump(tern__h2c_conn *h, tern__h2c_stream *ss, int ns, tern__buf *out)
{
    for (int i = 0; i < ns; i++)
        read_all(h, &ss[i]);
    if (!atomic_load(&h->dead)) {
        out->len = 0;
        tern__h2c_session_send(h, out, 1 << 20);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t settings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    struct tern_http_client client = {.max_header = 16 * 1024};
    tern__h2c_conn h = {.client = &client};
    tern__h2c_stream ss[2] = {{0}};
    tern__buf out = {0};
    if (tern__h2c_session_init(&h, client.max_header) != 0)
        return 0;
    int32_t get = submit(&h, &ss[0], "GET", false);
    int32_t post = submit(&h, &ss[1], "POST", true);
    TERN_ASSERT(get == 1 && post == 3);     /* a fresh client session numbers them so */
    tern__h2c_session_send(&h, &out, 1 << 20);

    if (!(size > 0 && (data[0] & 1)))
        tern__h2c_session_recv(&h, settings, sizeof settings);
    size_t cut = size > 1 ? data[1] % size : size;
    const uint8_t *pieces[2] = {data, data + cut};
    size_t lens[2] = {cut, size - cut};
    for (int i = 0; i < 2; i++) {
        if (!atomic_load(&h.dead) && lens[i])
            tern__h2c_session_recv(&h, pieces[i], lens[i]);
        pump(&h, ss, 2, &out);
    }
    if (!atomic_load(&h.dead) && tern__h2c_session_done(&h))
        tern__h2c_kill(&h, -ECONNRESET);

    for (int i = 0; i < 2; i++) {
        tern__h2c_stream *s = &ss[i];
        /* an ended stream either got its head or says why not */
        TERN_ASSERT(!s->closed || s->got_head || s->err != 0 || s->eof);
        free(s->head.p);
        free(s->trailers.p);
        free(s->data);
        if (s->id > 0)
            tern__h2c_unlink(&h, s);
    }
    tern__h2c_session_fini(&h);
    free(out.p);
    return 0;
}
