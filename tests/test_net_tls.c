/* test_net_tls.c - TLS on a tern_conn (tern/tls.h): handshakes, I/O both
 * ways and at once, SNI, ALPN, versions, sendfile, timeouts, and the
 * configs' argument errors. */
#include "tls_pair.h"

#include <fcntl.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int handshake_echo_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", NULL);
    static const char *const alpn[] = {"h2", "http/1.1", NULL};
    tern_tls_client_options co = {.ca_file = tls_path("ca.pem"), .alpn = alpn};
    tern_tls_config *cc;
    CHECK_EQ(tern_tls_client_config_new(&co, &cc), 0);
    CHECK_EQ(tern_tls_config_generation(s), 1);
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &sc, &c, &src), 0);
    CHECK_EQ(src, 0);
    CHECK(tern_tls_active(sc) && tern_tls_active(c));
    CHECK(!strcmp(tern_tls_version(c), "TLSv1.3") && !strcmp(tern_tls_version(sc), "TLSv1.3"));
    CHECK(tern_tls_cipher(c) != NULL);
    /* the server's default list is HTTP/1.1 only: h2 is not chosen */
    CHECK(!strcmp(tern_tls_alpn(c), "http/1.1") && !strcmp(tern_tls_alpn(sc), "http/1.1"));
    CHECK(!strcmp(tern_tls_server_name(sc), "localhost"));
    CHECK(!strcmp(tern_tls_server_name(c), "localhost"));
    CHECK(!strcmp(tern_tls_peer_subject(c), "CN=localhost"));
    CHECK(!strcmp(tern_tls_peer_san(c, 0), "localhost"));
    CHECK(!strcmp(tern_tls_peer_san(c, 1), "127.0.0.1"));
    CHECK(tern_tls_peer_san(c, 2) == NULL);
    CHECK(tern_tls_peer_subject(sc) == NULL);   /* no client certificate asked */
    CHECK(!tern_tls_resumed(c));
    CHECK(!strcmp(tern_tls_last_error(c), ""));
    /* both ways, and writev's pieces arrive whole */
    CHECK_EQ(tern_conn_write(c, "ping", 4, NULL), 4);
    char buf[64];
    CHECK_EQ(tern_conn_read(sc, buf, sizeof buf, NULL), 4);
    CHECK(!memcmp(buf, "ping", 4));
    struct iovec iov[3] = {{"po", 2}, {"", 0}, {"ng!", 3}};
    CHECK_EQ(tern_conn_writev(sc, iov, 3, NULL), 5);
    size_t got = 0;
    while (got < 5) {
        ssize_t n = tern_conn_read(c, buf + got, sizeof buf - got, NULL);
        CHECK(n > 0);
        got += (size_t)n;
    }
    CHECK(!memcmp(buf, "pong!", 5));
    /* close_write sends close_notify: the server reads the end */
    CHECK_EQ(tern_conn_close_write(c), 0);
    CHECK_EQ(tern_conn_read(sc, buf, sizeof buf, NULL), 0);
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(s);
    tern_tls_config_free(cc);
    return 0;
}

static void tls_handshake_echoes_both_ways_and_reports_the_session(void)
{
    tls_certs_make();
    run_ok(handshake_echo_body, NULL, 2);
}

/* ---- large transfers with a reader and a writer on one conn at once ---- */

typedef struct flow {
    tern_conn *c;
    size_t total;
    uint64_t sum;
    tern_waitgroup wg;
} flow;

static unsigned char pattern(size_t i) { return (unsigned char)(i * 131 + (i >> 12)); }

static int writer_co(void *arg)
{
    flow *f = arg;
    unsigned char buf[50000];
    for (size_t off = 0; off < f->total;) {
        size_t n = f->total - off < sizeof buf ? f->total - off : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern(off + i);
        CHECK_EQ(tern_conn_write(f->c, buf, n, NULL), (ssize_t)n);
        off += n;
    }
    tern_waitgroup_done(&f->wg);
    return 0;
}

static int echo_co(void *arg)
{
    flow *f = arg;
    char buf[20000];
    ssize_t n;
    while ((n = tern_conn_read(f->c, buf, sizeof buf, NULL)) > 0)
        CHECK_EQ(tern_conn_write(f->c, buf, (size_t)n, NULL), n);
    CHECK_EQ(n, 0);
    CHECK_EQ(tern_conn_close_write(f->c), 0);
    tern_waitgroup_done(&f->wg);
    return 0;
}

static int big_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", NULL);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &sc, &c, &src), 0);
    CHECK_EQ(src, 0);
    size_t total = (size_t)scaled(16L << 20);
    flow server = {.c = sc};
    tern_waitgroup_add(&server.wg, 1);
    CHECK_EQ(tern_go(echo_co, &server), 0);
    /* the client writes in one coroutine while this one reads the echo:
     * neither finishes unless both run at once */
    flow w = {.c = c, .total = total};
    tern_waitgroup_add(&w.wg, 1);
    CHECK_EQ(tern_go(writer_co, &w), 0);
    char buf[30000];
    size_t got = 0;
    while (got < total) {
        ssize_t n = tern_conn_read(c, buf, sizeof buf, NULL);
        CHECK(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if ((unsigned char)buf[i] != pattern(got + (size_t)i)) {
                fprintf(stderr, "byte %zu differs\n", got + (size_t)i);
                abort();
            }
        got += (size_t)n;
    }
    tern_waitgroup_wait(&w.wg, NULL);
    CHECK_EQ(tern_conn_close_write(c), 0);
    tern_waitgroup_wait(&server.wg, NULL);
    CHECK_EQ(tern_conn_read(c, buf, sizeof buf, NULL), 0);
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(s);
    tern_tls_config_free(cc);
    return 0;
}

static void tls_large_transfer_with_a_reader_and_a_writer_at_once(void)
{
    tls_certs_make();
    run_ok(big_body, NULL, 2);
}

/* ---- a silent peer: the ctx ends the handshake ---------------------------- */

static int silent_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", NULL);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_conn *a, *b;
    tcp_pair(&a, &b);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 200 * TERN_MS, &ctx), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_tls_connect(b, cc, "localhost", ctx), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    CHECK(took >= 190 * TERN_MS && took < 2 * SEC_NS);
    check_contains(tern_tls_last_error(b), "deadline exceeded");
    tern_ctx_free(ctx);
    /* the server side against a client that sends nothing: read deadline */
    tern_conn_set_read_deadline(a, tern_now() + 100 * TERN_MS);
    CHECK_EQ(tern_tls_accept(a, s, NULL), -ETIMEDOUT);
    /* a cancelled ctx ends it too, and one done already before any I/O */
    tern_conn *a2, *b2;
    tcp_pair(&a2, &b2);
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_tls_accept(a2, s, ctx), -ECANCELED);
    CHECK(!tern_tls_active(a2));
    tern_ctx_free(ctx);
    /* the client's handshake_timeout, with no ctx at all */
    tern_tls_client_options co = {.ca_file = tls_path("ca.pem"), .handshake_timeout = 150 * TERN_MS};
    tern_tls_config *quick;
    CHECK_EQ(tern_tls_client_config_new(&co, &quick), 0);
    t0 = tern_now();
    CHECK_EQ(tern_tls_connect(b2, quick, "localhost", NULL), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 140 * TERN_MS);
    tern_conn_free(a);
    tern_conn_free(b);
    tern_conn_free(a2);
    tern_conn_free(b2);
    tern_tls_config_free(quick);
    tern_tls_config_free(s);
    tern_tls_config_free(cc);
    return 0;
}

static void tls_handshake_with_a_silent_peer_ends_at_the_deadline(void)
{
    tls_certs_make();
    run_ok(silent_body, NULL, 2);
}

/* ---- SNI and ALPN ----------------------------------------------------------- */

static const char *subject_for(tern_tls_config *s, tern_tls_config *cc, const char *name,
                               char *out, size_t size)
{
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, name, &sc, &c, &src), 0);
    CHECK_EQ(src, 0);
    snprintf(out, size, "%s", tern_tls_peer_subject(c));
    tern_conn_free(sc);
    tern_conn_free(c);
    return out;
}

static int sni_body(void *arg)
{
    (void)arg;
    tern_tls_cert certs[] = {{tls_path("srv.pem"), tls_path("srv.key")},
                             {tls_path("srv2.pem"), tls_path("srv2.key")}};
    tern_tls_server_options so = {.certs = certs, .ncerts = 2};
    tern_tls_config *s, *any;
    CHECK_EQ(tern_tls_server_config_new(&so, &s), 0);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_tls_client_options ao = {.insecure_skip_verify = true};
    CHECK_EQ(tern_tls_client_config_new(&ao, &any), 0);
    char subj[128];
    CHECK(!strcmp(subject_for(s, cc, "localhost", subj, sizeof subj), "CN=localhost"));
    CHECK(!strcmp(subject_for(s, cc, "other.test", subj, sizeof subj), "CN=other.test"));
    CHECK(!strcmp(subject_for(s, cc, "a.wild.test", subj, sizeof subj), "CN=other.test"));
    /* a wildcard covers one label only; no match: the first certificate */
    CHECK(!strcmp(subject_for(s, any, "a.b.wild.test", subj, sizeof subj), "CN=localhost"));
    CHECK(!strcmp(subject_for(s, any, "unknown.test", subj, sizeof subj), "CN=localhost"));
    CHECK(!strcmp(subject_for(s, any, NULL, subj, sizeof subj), "CN=localhost"));
    tern_tls_config_free(s);
    tern_tls_config_free(cc);
    tern_tls_config_free(any);
    return 0;
}

static void tls_sni_chooses_the_certificate_by_name(void)
{
    tls_certs_make();
    run_ok(sni_body, NULL, 2);
}

static const char *alpn_with(tern_tls_config *s, const char *const *offer, char *out)
{
    tern_tls_client_options co = {.ca_file = tls_path("ca.pem"), .alpn = offer};
    tern_tls_config *cc;
    CHECK_EQ(tern_tls_client_config_new(&co, &cc), 0);
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &sc, &c, &src), 0);
    CHECK_EQ(src, 0);
    const char *a = tern_tls_alpn(sc);
    CHECK((a == NULL) == (tern_tls_alpn(c) == NULL));
    snprintf(out, 32, "%s", a ? a : "(none)");
    CHECK(!a || !strcmp(a, tern_tls_alpn(c)));
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(cc);
    return out;
}

static int alpn_body(void *arg)
{
    (void)arg;
    static const char *const server_list[] = {"h2", "http/1.1", NULL};
    tern_tls_cert certs[] = {{tls_path("srv.pem"), tls_path("srv.key")}};
    tern_tls_server_options so = {.certs = certs, .ncerts = 1, .alpn = server_list};
    tern_tls_config *s;
    CHECK_EQ(tern_tls_server_config_new(&so, &s), 0);
    char out[32];
    static const char *const h1_first[] = {"http/1.1", "h2", NULL};
    static const char *const h1[] = {"http/1.1", NULL};
    static const char *const foreign[] = {"spdy/3", NULL};
    CHECK(!strcmp(alpn_with(s, h1_first, out), "h2"));     /* the server's preference */
    CHECK(!strcmp(alpn_with(s, h1, out), "http/1.1"));
    CHECK(!strcmp(alpn_with(s, NULL, out), "(none)"));
    CHECK(!strcmp(alpn_with(s, foreign, out), "(none)"));  /* not fatal */
    tern_tls_config_free(s);
    return 0;
}

static void tls_alpn_picks_the_servers_preference_and_none_is_not_fatal(void)
{
    tls_certs_make();
    run_ok(alpn_body, NULL, 2);
}

/* ---- versions: an OpenSSL client in a plain thread ------------------------- */

typedef struct old_client {
    int port;
    int max_version;
    int ok;                     /* its handshake succeeded */
    char version[16], cipher[64];
} old_client;

static void *old_client_thread(void *arg)
{
    old_client *o = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, o->max_version);
    SSL_CTX_set_security_level(ctx, 0);     /* let it offer TLS 1.0/1.1 at all */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    o->ok = SSL_connect(ssl) == 1;
    if (o->ok) {
        snprintf(o->version, sizeof o->version, "%s", SSL_get_version(ssl));
        snprintf(o->cipher, sizeof o->cipher, "%s", SSL_get_cipher_name(ssl));
        SSL_write(ssl, "x", 1);
    }
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    return NULL;
}

static int version_with(tern_tls_config *s, old_client *o, tern_conn **out)
{
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    o->port = tern_listener_port(l);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, old_client_thread, o) == 0);
    tern_conn *c;
    CHECK_EQ(tern_listener_accept(l, &c, NULL), 0);
    tern_conn_set_read_deadline(c, tern_now() + 5 * SEC_NS);
    int rc = tern_tls_accept(c, s, NULL);
    if (rc == 0) {
        char b;
        CHECK_EQ(tern_conn_read(c, &b, 1, NULL), 1);
    }
    /* the thread finishes on its own: wait for it off the worker */
    while (pthread_tryjoin_np(th, NULL) != 0)
        tern_sleep(TERN_MS);
    *out = c;
    tern_listener_free(l);
    return rc;
}

static int versions_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", NULL);
    tern_conn *c;
    old_client o11 = {.max_version = TLS1_1_VERSION};
    int rc = version_with(s, &o11, &c);
    CHECK_EQ(rc, -EPROTO);
    CHECK(!o11.ok);
    check_contains(tern_tls_last_error(c), "unsupported protocol");
    tern_conn_free(c);
    old_client o10 = {.max_version = TLS1_VERSION};
    CHECK_EQ(version_with(s, &o10, &c), -EPROTO);
    CHECK(!o10.ok);
    tern_conn_free(c);
    old_client o12 = {.max_version = TLS1_2_VERSION};
    CHECK_EQ(version_with(s, &o12, &c), 0);
    CHECK(o12.ok && !strcmp(o12.version, "TLSv1.2"));
    CHECK(!strcmp(tern_tls_version(c), "TLSv1.2"));
    /* TLS 1.2: forward secrecy and AEAD only */
    check_contains(o12.cipher, "ECDHE-");
    CHECK(strstr(o12.cipher, "GCM") || strstr(o12.cipher, "CHACHA20"));
    tern_conn_free(c);
    tern_tls_config_free(s);
    return 0;
}

static void tls_refuses_tls_1_0_and_1_1_and_speaks_1_2_with_aead(void)
{
    tls_certs_make();
    run_ok(versions_body, NULL, 2);
}

/* ---- sendfile over TLS ------------------------------------------------------- */

static int sendfile_body(void *arg)
{
    (void)arg;
    char path[] = "/tmp/tern-tls-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    size_t size = 1 << 20;
    unsigned char *data = malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = pattern(i);
    CHECK_EQ(write(fd, data, size), (ssize_t)size);
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", NULL);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &sc, &c, &src), 0);
    fprintf(stderr, "   kTLS send: %s\n", tern_tls_ktls_send(sc) ? "active" : "not active (fallback)");
    flow rd = {.c = c};
    /* from offset 1000, 600000 bytes: *offset advances by what was sent */
    off_t off = 1000;
    size_t len = 600000;
    CHECK_EQ(tern_conn_sendfile(sc, fd, &off, len, NULL), (ssize_t)len);
    CHECK_EQ(off, 1000 + (off_t)len);
    unsigned char *got = malloc(len);
    size_t have = 0;
    while (have < len) {
        ssize_t n = tern_conn_read(rd.c, got + have, len - have, NULL);
        CHECK(n > 0);
        have += (size_t)n;
    }
    CHECK(memcmp(got, data + 1000, len) == 0);
    /* past the end of the file: -EIO */
    off = (off_t)size - 10;
    CHECK_EQ(tern_conn_sendfile(sc, fd, &off, 100, NULL), -EIO);
    free(got);
    free(data);
    close(fd);
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(s);
    tern_tls_config_free(cc);
    return 0;
}

static void tls_sendfile_sends_the_file_through_ssl(void)
{
    tls_certs_make();
    run_ok(sendfile_body, NULL, 2);
}

/* ---- wait_readable sees bytes SSL holds already ------------------------------ */

static int pending_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", NULL);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &sc, &c, &src), 0);
    char msg[100];
    memset(msg, 'm', sizeof msg);
    CHECK_EQ(tern_conn_write(c, msg, sizeof msg, NULL), 100);
    char buf[100];
    CHECK_EQ(tern_conn_read(sc, buf, 10, NULL), 10);
    /* the other 90 bytes are decrypted already, and the socket is empty:
     * waiting must not park until the deadline */
    tern_conn_set_read_deadline(sc, tern_now() + 2 * SEC_NS);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_conn_wait_readable(sc, NULL), 0);
    CHECK(tern_now() - t0 < SEC_NS);
    CHECK_EQ(tern_conn_read(sc, buf, sizeof buf, NULL), 90);
    /* with nothing held, it parks until the deadline */
    tern_conn_set_read_deadline(sc, tern_now() + 50 * TERN_MS);
    CHECK_EQ(tern_conn_wait_readable(sc, NULL), -ETIMEDOUT);
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(s);
    tern_tls_config_free(cc);
    return 0;
}

static void tls_wait_readable_sees_decrypted_bytes_held_by_ssl(void)
{
    tls_certs_make();
    run_ok(pending_body, NULL, 2);
}

/* ---- argument and file errors ---------------------------------------------- */

static int errors_body(void *arg)
{
    (void)arg;
    tern_tls_config *cfg = (tern_tls_config *)1;
    tern_tls_server_options none = {0};
    CHECK_EQ(tern_tls_server_config_new(&none, &cfg), -EINVAL);
    CHECK(cfg == NULL);
    tern_tls_cert missing[] = {{"/nonexistent/cert.pem", "/nonexistent/key.pem"}};
    tern_tls_server_options o = {.certs = missing, .ncerts = 1};
    CHECK_EQ(tern_tls_server_config_new(&o, &cfg), -ENOENT);
    tern_tls_cert notpem[] = {{"/etc/hostname", tls_path("srv.key")}};
    o.certs = notpem;
    CHECK_EQ(tern_tls_server_config_new(&o, &cfg), -EBADMSG);
    tern_tls_cert mismatch[] = {{tls_path("srv.pem"), tls_path("srv2.key")}};
    o.certs = mismatch;
    CHECK_EQ(tern_tls_server_config_new(&o, &cfg), -EBADMSG);
    tern_tls_cert good[] = {{tls_path("srv.pem"), tls_path("srv.key")}};
    o.certs = good;
    static const char *const empty_alpn[] = {"", NULL};
    o.alpn = empty_alpn;
    CHECK_EQ(tern_tls_server_config_new(&o, &cfg), -EINVAL);
    o.alpn = NULL;
    o.client_ca_file = "/nonexistent/ca.pem";
    CHECK_EQ(tern_tls_server_config_new(&o, &cfg), -ENOENT);
    o.client_ca_file = NULL;
    tern_tls_client_options half = {.cert_file = tls_path("cli.pem")};
    CHECK_EQ(tern_tls_client_config_new(&half, &cfg), -EINVAL);
    tern_tls_client_options badca = {.ca_file = "/etc/hostname"};
    CHECK_EQ(tern_tls_client_config_new(&badca, &cfg), -EBADMSG);
    /* the defaults: the system store */
    CHECK_EQ(tern_tls_client_config_new(NULL, &cfg), 0);
    tern_tls_config *s;
    CHECK_EQ(tern_tls_server_config_new(&o, &s), 0);
    tern_conn *a, *b;
    tcp_pair(&a, &b);
    CHECK_EQ(tern_tls_accept(a, cfg, NULL), -EINVAL);     /* a client config */
    CHECK(!tern_tls_active(a));
    CHECK_EQ(tern_tls_connect(b, s, "localhost", NULL), -EINVAL);
    CHECK(tern_tls_alpn(a) == NULL && tern_tls_version(a) == NULL && !tern_tls_resumed(a));
    CHECK(tern_tls_peer_subject(a) == NULL && tern_tls_peer_san(a, 0) == NULL);
    CHECK(!strcmp(tern_tls_last_error(a), "") && !tern_tls_ktls_send(a));
    CHECK(tern_tls_server_name(a) == NULL && tern_tls_cipher(a) == NULL);
    /* verification needs a name */
    CHECK_EQ(tern_tls_connect(b, cfg, NULL, NULL), -EINVAL);
    check_contains(tern_tls_last_error(b), "no server name");
    CHECK_EQ(tern_tls_connect(b, cfg, "localhost", NULL), -EALREADY);
    /* the failed conn answers reads with an error, not a crash */
    char x;
    CHECK_EQ(tern_conn_read(b, &x, 1, NULL), -EPROTO);
    tern_conn_free(a);
    tern_conn_free(b);
    tern_tls_config_free(cfg);
    tern_tls_config_free(s);
    tern_tls_config_free(NULL);
    return 0;
}

static void tls_configs_report_bad_arguments_and_files(void)
{
    tls_certs_make();
    run_ok(errors_body, NULL, 1);
}

TESTS(T(tls_handshake_echoes_both_ways_and_reports_the_session),
      T(tls_large_transfer_with_a_reader_and_a_writer_at_once),
      T(tls_handshake_with_a_silent_peer_ends_at_the_deadline),
      T(tls_sni_chooses_the_certificate_by_name),
      T(tls_alpn_picks_the_servers_preference_and_none_is_not_fatal),
      T(tls_refuses_tls_1_0_and_1_1_and_speaks_1_2_with_aead),
      T(tls_sendfile_sends_the_file_through_ssl),
      T(tls_wait_readable_sees_decrypted_bytes_held_by_ssl),
      T(tls_configs_report_bad_arguments_and_files))
