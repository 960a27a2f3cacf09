/*
 * test_grpc_channel.c - tern's channel against tern's server: what needs
 * both ends in hand.  Interceptors; the client's deadline and cancel
 * reaching the handler's ctx; round_robin and pick_first across two
 * servers, and failover when one goes; a unix socket target; a resolver of
 * our own, and discovery's (a watched file); gRPC and REST on one port; a graceful drain that lets a call in
 * flight finish; the server's send and receive limits.
 */
#include "grpc_fixture.h"

#include <tern/discovery.h>
#include <tern/http_router.h>

typedef struct srv {
    tern_grpc_server *s;
    tern_waitgroup wg;
    const char *tag;
    atomic_int calls;
    atomic_int last_code;
    char addr[64];
} srv;

static atomic_int call_views_ok;       /* calls whose accessors said what they should */

static int tag_icept(tern_grpc_call *call, void *arg)
{
    srv *sv = arg;
    atomic_fetch_add(&sv->calls, 1);
    const tern_grpc_method_desc *m = tern_grpc_call_method(call);
    const char *peer = tern_grpc_call_peer(call);
    tern_http_req *r = tern_grpc_call_http_req(call);
    const void *bin;
    size_t blen;
    bool ok = m && !strncmp(m->path, "/terntest.Test/", 15) && r && !strcmp(tern_http_req_proto(r), "HTTP/2") &&
              peer && (!strncmp(peer, "127.0.0.1:", 10) || !strcmp(sv->tag, "U"));
    if (tern_grpc_call_metadata(call, "x-probe")) {     /* the interceptors test's probe call */
        ok = ok && !strcmp(tern_grpc_call_metadata(call, "x-probe"), "p") &&
             tern_grpc_call_metadata(call, "grpc-timeout") == NULL &&          /* reserved: not metadata */
             tern_grpc_call_metadata_bin(call, "x-probe-bin", &bin, &blen) == 0 && blen == 3 &&
             !memcmp(bin, "\0\1\2", 3) &&
             tern_grpc_call_metadata_bin(call, "x-absent-bin", &bin, &blen) == -ENOENT &&
             tern_grpc_call_add_header(call, "grpc-status", "0", 0) == -EINVAL &&
             tern_grpc_call_add_header(call, "x-bad", "a\nb", 0) == -EINVAL;
        if (ok)
            atomic_fetch_add(&call_views_ok, 1);
    }
    CHECK_EQ(tern_grpc_call_add_header(call, "x-server", sv->tag, 0), 0);
    int rc = tern_grpc_call_next(call);
    atomic_store(&sv->last_code, (int)tern_grpc_call_code(call));
    return rc;
}

static int deny_icept(tern_grpc_call *call, void *arg)
{
    (void)arg;
    if (tern_grpc_call_metadata(call, "x-deny"))
        return tern_grpc_call_fail(call, TERN_GRPC_PERMISSION_DENIED, "denied by %s", "interceptor");
    return tern_grpc_call_next(call);
}

static int serve_co(void *arg)
{
    srv *sv = arg;
    tern_grpc_server_serve(sv->s, NULL);
    tern_waitgroup_done(&sv->wg);
    return 0;
}

static void srv_start(srv *sv, const char *tag, const tern_grpc_server_options *o, tern_listener *l)
{
    sv->tag = tag;
    CHECK_EQ(tern_grpc_server_new(o, &sv->s), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv->s, tag_icept, sv), 0);
    CHECK_EQ(tern_grpc_server_add_interceptor(sv->s, deny_icept, NULL), 0);
    CHECK_EQ(tern_grpc_server_add_service(sv->s, &test_service, NULL, NULL), 0);
    if (l)
        CHECK_EQ(tern_grpc_server_add_listener(sv->s, l), 0);
    else
        CHECK_EQ(tern_grpc_server_listen(sv->s, "127.0.0.1:0"), 0);
    snprintf(sv->addr, sizeof sv->addr, "127.0.0.1:%d", tern_grpc_server_port(sv->s));
    size_t n;
    CHECK_EQ(tern_grpc_server_services(sv->s, &n)[0], &test_service);
    CHECK_EQ(n, 1);
    tern_waitgroup_add(&sv->wg, 1);
    CHECK_EQ(tern_go(serve_co, sv), 0);
}

static void srv_stop(srv *sv, int64_t grace)
{
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, grace, &c), 0);
    tern_grpc_server_shutdown(sv->s, c);
    tern_ctx_free(c);
    CHECK_EQ(tern_waitgroup_wait(&sv->wg, NULL), 0);
    tern_grpc_server_free(sv->s);
    sv->s = NULL;
}

typedef struct who {
    char server[8];
} who;

static void on_md(const tern_grpc_metadata *md, bool trailer, void *arg)
{
    who *w = arg;
    if (!trailer && !strcmp(md->name, "x-server"))
        snprintf(w->server, sizeof w->server, "%.*s", (int)md->len, (const char *)md->value);
}

/* A unary call; *tag: which server answered. */
static int call(tern_grpc_channel *ch, Terntest__Req *req, char *tag, tern_grpc_status *st, tern_ctx *ctx,
                bool wfr)
{
    who w = { "" };
    tern_grpc_call_options o = { .on_metadata = on_md, .on_metadata_arg = &w, .wait_for_ready = wfr };
    ProtobufCMessage *m;
    int rc = tern_grpc_unary(ch, M_UNARY, &req->base, &m, &o, st, ctx);
    if (rc == 0)
        protobuf_c_message_free_unpacked(m, NULL);
    if (tag)
        strcpy(tag, w.server);
    return rc;
}

typedef struct details_seen {
    uint8_t bytes[16];
    size_t len;
} details_seen;

static void on_details(const tern_grpc_metadata *md, bool trailer, void *arg)
{
    details_seen *d = arg;
    if (trailer && !strcmp(md->name, "grpc-status-details-bin") && md->len <= 16) {
        memcpy(d->bytes, md->value, md->len);
        d->len = md->len;
    }
}

static int interceptors_main(void *arg)
{
    (void)arg;
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(a.addr, NULL, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "i";
    char tag[8];
    CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
    CHECK(!strcmp(tag, "A"));
    CHECK_EQ(atomic_load(&a.calls), 1);
    /* what an interceptor sees of a call: method, peer, the HTTP request,
     * ASCII and -bin metadata, refused response headers */
    const char *probe[] = { "x-probe", "p", NULL };
    tern_grpc_metadata pbin = { "x-probe-bin", "\0\1\2", 3 };
    tern_grpc_call_options po = { .metadata = probe, .md = &pbin, .n_md = 1 };
    ProtobufCMessage *pm;
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &pm, &po, NULL, NULL), 0);
    protobuf_c_message_free_unpacked(pm, NULL);
    CHECK_EQ(atomic_load(&call_views_ok), 1);
    /* metadata the channel refuses to send */
    const char *reserved[] = { "grpc-timeout", "1S", NULL };
    tern_grpc_call_options ro = { .metadata = reserved };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &pm, &ro, NULL, NULL), -EINVAL);
    CHECK_EQ(atomic_load(&a.last_code), TERN_GRPC_OK);
    /* the inner interceptor refuses; the outer one sees the code */
    const char *deny[] = { "x-deny", "1", NULL };
    tern_grpc_call_options o = { .metadata = deny };
    ProtobufCMessage *m;
    tern_grpc_status st;
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, &o, &st, NULL), -EACCES);
    CHECK_EQ(st.code, TERN_GRPC_PERMISSION_DENIED);
    CHECK(!strcmp(st.message, "denied by interceptor"));
    tern_grpc_status_clear(&st);
    CHECK_EQ(atomic_load(&a.last_code), TERN_GRPC_PERMISSION_DENIED);
    /* a handler's plain errno becomes its code */
    req.name = "errno";
    CHECK_EQ(call(ch, &req, NULL, &st, NULL, false), -EACCES);
    CHECK_EQ(st.code, TERN_GRPC_PERMISSION_DENIED);
    tern_grpc_status_clear(&st);
    /* grpc-status-details-bin travels with the status */
    req.name = "details";
    details_seen d = { 0 };
    tern_grpc_call_options dopt = { .on_metadata = on_details, .on_metadata_arg = &d };
    CHECK_EQ(tern_grpc_unary(ch, M_UNARY, &req.base, &m, &dopt, &st, NULL), -EINVAL);
    CHECK_EQ(st.code, TERN_GRPC_INVALID_ARGUMENT);
    tern_grpc_status_clear(&st);
    CHECK(d.len == 5 && !memcmp(d.bytes, "\x08\x03\x12\x01x", 5));
    CHECK_EQ(tern_grpc_server_add_interceptor(a.s, deny_icept, NULL), -EBUSY);
    CHECK_EQ(tern_grpc_server_add_service(a.s, &test_service, NULL, NULL), -EBUSY);
    tern_grpc_channel_free(ch);
    srv_stop(&a, SEC);
    return 0;
}

static void interceptors_see_calls_and_codes(void)
{
    CHECK_EQ(tern_run(interceptors_main, NULL), 0);
}

static int deadline_main(void *arg)
{
    (void)arg;
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(a.addr, NULL, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "d";
    req.sleep_ms = 5000;
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 300 * MS, &c), 0);
    tern_grpc_status st;
    CHECK_EQ(call(ch, &req, NULL, &st, c, false), -ETIMEDOUT);
    CHECK_EQ(st.code, TERN_GRPC_DEADLINE_EXCEEDED);
    tern_grpc_status_clear(&st);
    tern_ctx_free(c);
    int64_t budget = atomic_load(&handler_budget);    /* the handler's ctx had the client's deadline */
    CHECK(budget > 0 && budget <= 300 * MS);

    /* freeing a stream mid-way cancels the handler's ctx */
    tern_grpc_stream *s;
    req.sleep_ms = 20;
    req.count = 1000;
    CHECK_EQ(tern_grpc_stream_open(ch, M_SSTREAM, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    ProtobufCMessage *m;
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 1);
    tern_grpc_stream_free(s);
    for (int i = 0; i < 300 && !atomic_load(&stream_cancelled); i++)
        tern_sleep(10 * MS);
    CHECK_EQ(atomic_load(&stream_cancelled), 1);
    tern_grpc_channel_free(ch);
    srv_stop(&a, SEC);
    return 0;
}

static void deadline_and_cancel_reach_the_handler(void)
{
    CHECK_EQ(tern_run(deadline_main, NULL), 0);
}

static int lb_main(void *arg)
{
    (void)arg;
    srv a = { 0 }, b = { 0 };
    srv_start(&a, "A", NULL, NULL);
    srv_start(&b, "B", NULL, NULL);
    char target[160];
    snprintf(target, sizeof target, "ipv4:%s,%s", a.addr, b.addr);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "lb";
    char tag[8];

    tern_grpc_channel_options rr = { .lb_policy = "round_robin" };
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, &rr, &ch), 0);
    int na = 0, nb = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
        na += !strcmp(tag, "A");
        nb += !strcmp(tag, "B");
    }
    CHECK_EQ(na, 5);
    CHECK_EQ(nb, 5);
    tern_grpc_channel_free(ch);

    /* p2c: the less loaded of two random picks; sequential calls tie, so
     * both serve some (all 40 on one: 2^-39 once both are connected) */
    tern_grpc_channel_options p2 = { .lb_policy = "p2c" };
    CHECK_EQ(tern_grpc_channel_new(target, &p2, &ch), 0);
    na = nb = 0;
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
        na += !strcmp(tag, "A");
        nb += !strcmp(tag, "B");
    }
    CHECK_EQ(na + nb, 40);
    CHECK(na > 0 && nb > 0);
    tern_grpc_channel_free(ch);

    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);     /* pick_first */
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
        CHECK(!strcmp(tag, "A"));
    }
    /* A goes away: the channel fails over to B */
    srv_stop(&a, SEC);
    int ok = 0;
    for (int i = 0; i < 20 && !ok; i++) {
        tern_ctx *c;
        CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * SEC, &c), 0);
        if (call(ch, &req, tag, NULL, c, true) == 0 && !strcmp(tag, "B"))
            ok = 1;
        tern_ctx_free(c);
    }
    CHECK(ok);
    tern_grpc_channel_free(ch);
    srv_stop(&b, SEC);
    return 0;
}

static void round_robin_pick_first_and_failover(void)
{
    CHECK_EQ(tern_run(lb_main, NULL), 0);
}

/* A resolver of our own: delivers one address, counts its calls. */
typedef struct my_resolver {
    const char *target;
    const char *addr;
    int started, stopped;
} my_resolver;

static int r_start(tern_grpc_channel *ch, const char *target, void *arg, void **state)
{
    my_resolver *r = arg;
    CHECK(!strcmp(target, r->target));
    r->started++;
    *state = r;
    return tern_grpc_channel_update(ch, &r->addr, 1);
}

static void r_stop(void *state)
{
    ((my_resolver *)state)->stopped++;
}

static int hello(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r;
    (void)arg;
    return tern_http_resp_text(w, 200, "rest");
}

typedef struct http_served {
    tern_http_server *hs;
    tern_waitgroup wg;
} http_served;

static int http_serve_co(void *arg)
{
    http_served *h = arg;
    tern_http_server_serve(h->hs, NULL);
    tern_waitgroup_done(&h->wg);
    return 0;
}

static int targets_main(void *arg)
{
    (void)arg;
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "t";
    char tag[8];
    /* unix socket */
    char path[64];
    snprintf(path, sizeof path, "/tmp/tern-grpc-%d.sock", (int)getpid());
    unlink(path);
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_UNIX, path, NULL, &l), 0);
    srv u = { 0 };
    srv_start(&u, "U", NULL, l);
    char target[96];
    snprintf(target, sizeof target, "unix:%s", path);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);
    CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
    CHECK(!strcmp(tag, "U"));
    tern_grpc_channel_free(ch);
    srv_stop(&u, SEC);
    unlink(path);

    /* a resolver of our own, and dns:/// */
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    my_resolver r = { .target = "static:svc", .addr = a.addr };
    tern_grpc_resolver res = { .start = r_start, .stop = r_stop };
    tern_grpc_channel_options o = { .resolver = &res, .resolver_arg = &r };
    CHECK_EQ(tern_grpc_channel_new("static:svc", &o, &ch), 0);
    CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
    CHECK(!strcmp(tag, "A"));
    tern_grpc_channel_free(ch);
    CHECK_EQ(r.started, 1);
    CHECK_EQ(r.stopped, 1);
    /* a target that is a key prefix, no host:port: its path goes as the
     * :authority percent-encoded (raw, the server would reset the stream) */
    r.target = "etcd:///shop/orders v1/";
    CHECK_EQ(tern_grpc_channel_new(r.target, &o, &ch), 0);
    CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
    CHECK(!strcmp(tag, "A"));
    tern_grpc_channel_free(ch);
    r.target = "keys/no scheme";
    CHECK_EQ(tern_grpc_channel_new(r.target, &o, &ch), 0);
    CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
    tern_grpc_channel_free(ch);
    CHECK_EQ(r.started, 3);
    snprintf(target, sizeof target, "dns:///localhost:%d", tern_grpc_server_port(a.s));
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);
    CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);     /* ::1 refused, then 127.0.0.1 */
    tern_grpc_channel_free(ch);

    /* gRPC and REST on one port: the server's handler in front of a router */
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_use(rt, tern_grpc_server_http_handler, a.s), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/rest", hello, NULL), 0);
    tern_http_server_options ho = { .handler = tern_http_router_serve, .arg = rt, .max_body_bytes = -1 };
    http_served h = { 0 };
    CHECK_EQ(tern_http_server_new(&ho, &h.hs), 0);
    CHECK_EQ(tern_http_server_listen(h.hs, "127.0.0.1:0"), 0);
    tern_waitgroup_add(&h.wg, 1);
    CHECK_EQ(tern_go(http_serve_co, &h), 0);
    snprintf(target, sizeof target, "127.0.0.1:%d", tern_http_server_port(h.hs));
    CHECK_EQ(tern_grpc_channel_new(target, NULL, &ch), 0);
    CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
    CHECK(!strcmp(tag, "A"));
    tern_grpc_channel_free(ch);
    tern_http_server_shutdown(h.hs, NULL);
    CHECK_EQ(tern_waitgroup_wait(&h.wg, NULL), 0);
    tern_http_server_free(h.hs);
    tern_http_router_free(rt);
    srv_stop(&a, SEC);
    return 0;
}

static void unix_resolver_dns_and_shared_port(void)
{
    CHECK_EQ(tern_run(targets_main, NULL), 0);
}

typedef struct inflight {
    tern_grpc_channel *ch;
    int rc;
    tern_waitgroup wg;
} inflight;

static int slow_call(void *arg)
{
    inflight *f = arg;
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "slow";
    req.sleep_ms = 400;
    f->rc = call(f->ch, &req, NULL, NULL, NULL, false);
    tern_waitgroup_done(&f->wg);
    return 0;
}

static int drain_main(void *arg)
{
    (void)arg;
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    inflight f = { 0 };
    CHECK_EQ(tern_grpc_channel_new(a.addr, NULL, &f.ch), 0);
    tern_waitgroup_add(&f.wg, 1);
    CHECK_EQ(tern_go(slow_call, &f), 0);
    for (int i = 0; i < 200 && atomic_load(&a.calls) == 0; i++)
        tern_sleep(5 * MS);
    int64_t t0 = tern_now();
    srv_stop(&a, 5 * SEC);              /* returns once the call has finished */
    CHECK_EQ(tern_waitgroup_wait(&f.wg, NULL), 0);
    CHECK_EQ(f.rc, 0);
    CHECK(tern_now() - t0 < 4 * SEC);
    /* the server is gone: UNAVAILABLE */
    Terntest__Req req = TERNTEST__REQ__INIT;
    tern_grpc_status st;
    int rc = call(f.ch, &req, NULL, &st, NULL, false);
    CHECK(rc < 0);
    CHECK_EQ(st.code, TERN_GRPC_UNAVAILABLE);
    tern_grpc_status_clear(&st);
    tern_grpc_channel_free(f.ch);
    return 0;
}

static void graceful_drain_finishes_calls_in_flight(void)
{
    CHECK_EQ(tern_run(drain_main, NULL), 0);
}

static int limits_main(void *arg)
{
    (void)arg;
    srv a = { 0 };
    tern_grpc_server_options o = { .max_recv_bytes = 100, .max_send_bytes = 500 };
    srv_start(&a, "A", &o, NULL);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(a.addr, NULL, &ch), 0);
    static uint8_t pad[1000];
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.pad = (ProtobufCBinaryData){ 200, pad };
    tern_grpc_status st;
    CHECK_EQ(call(ch, &req, NULL, &st, NULL, false), -ENOSPC);        /* over the receive limit */
    CHECK_EQ(st.code, TERN_GRPC_RESOURCE_EXHAUSTED);
    tern_grpc_status_clear(&st);
    req.pad = (ProtobufCBinaryData){ 90, pad };
    CHECK_EQ(call(ch, &req, NULL, &st, NULL, false), 0);
    tern_grpc_status_clear(&st);
    /* the response over the send limit: ten 60-byte names joined */
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, M_CSTREAM, NULL, &s, NULL), 0);
    char name[61];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    req.pad = (ProtobufCBinaryData){ 0, NULL };
    req.name = name;
    for (int i = 0; i < 10; i++)
        CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    ProtobufCMessage *m;
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), -ENOSPC);
    CHECK_EQ(tern_grpc_stream_status(s)->code, TERN_GRPC_RESOURCE_EXHAUSTED);
    tern_grpc_stream_free(s);
    tern_grpc_channel_free(ch);
    srv_stop(&a, SEC);
    return 0;
}

static int compression_main(void *arg)
{
    (void)arg;
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(a.addr, NULL, &ch), 0);
    /* the client switches per message; the server sees each flag */
    const char *want_gz[] = { "x-compress", "gzip", NULL };
    tern_grpc_call_options gz = { .compression = "gzip", .metadata = want_gz };
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, &gz, &s, NULL), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    ProtobufCMessage *m;
    const char *expect[] = { "compressed", "plain", "compressed" };
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(tern_grpc_stream_set_compression(s, i != 1), 0);
        req.name = "z?";
        CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
        CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 1);
        CHECK(!strcmp(((Terntest__Resp *)m)->text, expect[i]));
    }
    /* the server switches its answers off and on again: both decode */
    const char *sw[] = { "zoff", "x", "zon", "y" };
    for (int i = 0; i < 4; i++) {
        req.name = (char *)sw[i];
        CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
        CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 1);
        CHECK(!strcmp(((Terntest__Resp *)m)->text, sw[i]));
    }
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 0);
    tern_grpc_stream_free(s);
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_set_compression(s, true), -ENOTSUP);   /* not opened with gzip */
    tern_grpc_stream_free(s);
    tern_grpc_channel_free(ch);
    srv_stop(&a, SEC);
    return 0;
}

/* Requests queued ahead of the handler (all sent before it reads the
 * first) while it answers each: the server packs an answer into the free
 * tail of its input buffer (server.c, tern_grpc_call_send), which must
 * never touch the requests not yet read, whether the buffer is still the
 * handler's stack block or has moved to the heap (the 1.5 KB ones). */
static int queued_main(void *arg)
{
    (void)arg;
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(a.addr, NULL, &ch), 0);
    enum { N = 24 };
    static char names[N][1600];
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, NULL, &s, NULL), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    for (int i = 0; i < N; i++) {
        size_t n = i % 6 == 5 ? 1500 : (size_t)(i * 37 % 300) + 1;
        memset(names[i], 'a' + i, n);
        names[i][n] = '\0';
        req.name = names[i];
        CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    }
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    ProtobufCMessage *m;
    for (int i = 0; i < N; i++) {
        CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 1);
        const Terntest__Resp *resp = (const Terntest__Resp *)m;
        CHECK_EQ(resp->index, i);
        CHECK(!strcmp(resp->text, names[i]));
    }
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 0);
    CHECK_EQ(tern_grpc_stream_status(s)->code, TERN_GRPC_OK);
    tern_grpc_stream_free(s);
    tern_grpc_channel_free(ch);
    srv_stop(&a, SEC);
    return 0;
}

static void answers_leave_queued_requests_intact(void)
{
    run_ok(queued_main, NULL, 2);
}

static void compression_per_message_both_ways(void)
{
    CHECK_EQ(tern_run(compression_main, NULL), 0);
}

typedef struct silent {
    tern_listener *l;
    tern_conn *c;
    tern_waitgroup wg;
} silent;

static int silent_accept(void *arg)
{
    silent *sl = arg;
    tern_listener_accept(sl->l, &sl->c, NULL);     /* then says nothing, ever */
    tern_waitgroup_done(&sl->wg);
    return 0;
}

static int keepalive_main(void *arg)
{
    (void)arg;
    /* a peer that accepts and never answers: the watchdog ends the call */
    silent sl = { 0 };
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &sl.l), 0);
    tern_waitgroup_add(&sl.wg, 1);
    CHECK_EQ(tern_go(silent_accept, &sl), 0);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", tern_listener_port(sl.l));
    tern_grpc_channel_options ko = { .keepalive_time = 100 * MS, .keepalive_timeout = 200 * MS };
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(target, &ko, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    tern_ctx *c;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * SEC, &c), 0);
    tern_grpc_status st;
    int64_t t0 = tern_now();
    CHECK_EQ(call(ch, &req, NULL, &st, c, false), -ECONNABORTED);
    CHECK_EQ(st.code, TERN_GRPC_UNAVAILABLE);
    CHECK(tern_now() - t0 < 5 * SEC);
    tern_grpc_status_clear(&st);
    tern_ctx_free(c);
    tern_grpc_channel_free(ch);
    CHECK_EQ(tern_waitgroup_wait(&sl.wg, NULL), 0);
    tern_conn_free(sl.c);
    tern_listener_free(sl.l);

    /* a live server acks: an idle stream outlives many keepalive periods */
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    ko.keepalive_time = 30 * MS;
    CHECK_EQ(tern_grpc_channel_new(a.addr, &ko, &ch), 0);
    tern_grpc_stream *s;
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, NULL, &s, NULL), 0);
    req.name = "k";
    ProtobufCMessage *m;
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 1);
    tern_sleep(400 * MS);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 1);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 0);
    tern_grpc_stream_free(s);
    tern_grpc_channel_free(ch);
    srv_stop(&a, SEC);
    return 0;
}

static void keepalive_watchdog_and_acks(void)
{
    CHECK_EQ(tern_run(keepalive_main, NULL), 0);
}

/* Zero-length messages both ways, and a stream half-closed before any
 * message (interop's empty_unary and empty_stream). */
static int empty_main(void *arg)
{
    (void)arg;
    srv a = { 0 };
    srv_start(&a, "A", NULL, NULL);
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new(a.addr, NULL, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;       /* packs to 0 bytes */
    CHECK_EQ(protobuf_c_message_get_packed_size(&req.base), 0);
    tern_grpc_stream *s;
    ProtobufCMessage *m;
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_send(s, &req.base, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 1);     /* Resp{text "", index 0}: 0 bytes too */
    CHECK(!strcmp(((Terntest__Resp *)m)->text, "") && ((Terntest__Resp *)m)->index == 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 0);
    tern_grpc_stream_free(s);
    CHECK_EQ(tern_grpc_stream_open(ch, M_BIDI, NULL, &s, NULL), 0);
    CHECK_EQ(tern_grpc_stream_close_send(s, NULL), 0);   /* no message at all */
    CHECK_EQ(tern_grpc_stream_recv(s, &m, NULL), 0);
    CHECK_EQ(tern_grpc_stream_status(s)->code, TERN_GRPC_OK);
    tern_grpc_stream_free(s);
    tern_grpc_channel_free(ch);
    srv_stop(&a, SEC);
    return 0;
}

static void empty_messages_and_empty_stream(void)
{
    CHECK_EQ(tern_run(empty_main, NULL), 0);
}

static void server_limits(void)
{
    CHECK_EQ(tern_run(limits_main, NULL), 0);
}

/* A channel on discovery's resolvers (tern_resolver_grpc): it dials what a
 * watched file lists, and follows the file when it changes. */
static void write_endpoints(const char *path, const char *text)
{
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    CHECK(f);
    fputs(text, f);
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(rename(tmp, path), 0);
}

static int discovery_main(void *arg)
{
    (void)arg;
    srv a = { 0 }, b = { 0 };
    srv_start(&a, "A", NULL, NULL);
    srv_start(&b, "B", NULL, NULL);
    char path[64];
    snprintf(path, sizeof path, "/tmp/tern-grpc-eps-%d", (int)getpid());
    write_endpoints(path, a.addr);
    tern_resolver_file_options fo = { .poll_interval = 20 * MS };
    tern_resolver *r;
    CHECK_EQ(tern_resolver_file_new(path, &fo, &r), 0);
    tern_grpc_channel_options o = { .resolver = tern_resolver_grpc(), .resolver_arg = r,
                                    .authority = "orders", .lb_policy = "round_robin" };
    tern_grpc_channel *ch;
    CHECK_EQ(tern_grpc_channel_new("file:orders", &o, &ch), 0);
    Terntest__Req req = TERNTEST__REQ__INIT;
    req.name = "discovered";
    char tag[8];
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(call(ch, &req, tag, NULL, NULL, false), 0);
        CHECK(!strcmp(tag, "A"));
    }
    /* the file now lists B only: calls move there */
    write_endpoints(path, b.addr);
    int on_b = 0;
    for (int i = 0; i < 200 && on_b < 4; i++) {
        tern_ctx *c;
        CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * SEC, &c), 0);
        CHECK_EQ(call(ch, &req, tag, NULL, c, true), 0);
        tern_ctx_free(c);
        on_b = !strcmp(tag, "B") ? on_b + 1 : 0;
        if (!on_b)
            tern_sleep(10 * MS);
    }
    CHECK_EQ(on_b, 4);
    tern_grpc_channel_free(ch);             /* unwatches r */
    tern_resolver_free(r);
    /* a resolver whose first update is an error: the channel is not made */
    CHECK_EQ(tern_resolver_file_new("/nonexistent/eps", &fo, &r), 0);
    o.resolver_arg = r;
    CHECK_EQ(tern_grpc_channel_new("file:none", &o, &ch), -ENOENT);
    tern_resolver_free(r);
    unlink(path);
    srv_stop(&a, SEC);
    srv_stop(&b, SEC);
    return 0;
}

static void channel_follows_a_discovery_resolver(void)
{
    CHECK_EQ(tern_run(discovery_main, NULL), 0);
}

TESTS({ "interceptors_see_calls_and_codes", interceptors_see_calls_and_codes },
      { "channel_follows_a_discovery_resolver", channel_follows_a_discovery_resolver },
      { "deadline_and_cancel_reach_the_handler", deadline_and_cancel_reach_the_handler },
      { "round_robin_pick_first_and_failover", round_robin_pick_first_and_failover },
      { "unix_resolver_dns_and_shared_port", unix_resolver_dns_and_shared_port },
      { "graceful_drain_finishes_calls_in_flight", graceful_drain_finishes_calls_in_flight },
      { "server_limits", server_limits },
      { "compression_per_message_both_ways", compression_per_message_both_ways },
      { "keepalive_watchdog_and_acks", keepalive_watchdog_and_acks },
      { "empty_messages_and_empty_stream", empty_messages_and_empty_stream },
      { "answers_leave_queued_requests_intact", answers_leave_queued_requests_intact })
