/* test_net_tls_trust.c - who trusts whom (tern/tls.h): client
 * certificates (mTLS), the client's verification failures and their
 * messages, certificate reload (by call and by watching the files), and
 * session resumption with rotated ticket keys. */
#include "tls_pair.h"

#include <fcntl.h>

/* ---- mTLS -------------------------------------------------------------------- */

static int mtls_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", "cca.pem");
    tern_conn *sc, *c;
    int src;
    char b;
    /* no client certificate: the server refuses; the TLS 1.3 client learns
     * it on its first read */
    tern_tls_config *anon = client_cfg("ca.pem", NULL, NULL);
    int crc = tls_pair(s, anon, "localhost", &sc, &c, &src);
    CHECK_EQ(src, -ENOKEY);
    check_contains(tern_tls_last_error(sc), "sent no certificate");
    if (crc == 0) {
        ssize_t n = tern_conn_read(c, &b, 1, NULL);
        CHECK(n < 0);
        check_contains(tern_tls_last_error(c), "certificate required");
    }
    tern_conn_free(sc);
    tern_conn_free(c);
    /* a certificate from another CA */
    tern_tls_config *intruder = client_cfg("ca.pem", "badcli.pem", "badcli.key");
    tls_pair(s, intruder, "localhost", &sc, &c, &src);
    CHECK_EQ(src, -EKEYREJECTED);
    check_contains(tern_tls_last_error(sc), "client certificate verify failed: unknown issuer");
    check_contains(tern_tls_last_error(sc), "CN=intruder");
    tern_conn_free(sc);
    tern_conn_free(c);
    /* the right one: its subject and names are the server's to read */
    tern_tls_config *good = client_cfg("ca.pem", "cli.pem", "cli.key");
    CHECK_EQ(tls_pair(s, good, "localhost", &sc, &c, &src), 0);
    CHECK_EQ(src, 0);
    CHECK(!strcmp(tern_tls_peer_subject(sc), "O=tern,CN=client-1"));
    CHECK(!strcmp(tern_tls_peer_san(sc, 0), "client-1.test"));
    CHECK(tern_tls_peer_san(sc, 1) == NULL);
    CHECK_EQ(tern_conn_write(c, "x", 1, NULL), 1);
    CHECK_EQ(tern_conn_read(sc, &b, 1, NULL), 1);
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(s);
    tern_tls_config_free(anon);
    tern_tls_config_free(intruder);
    tern_tls_config_free(good);
    return 0;
}

static void tls_mtls_refuses_no_cert_and_a_foreign_cert_and_names_the_right_one(void)
{
    tls_certs_make();
    run_ok(mtls_body, NULL, 2);
}

/* ---- the client's verification failures ----------------------------------------- */

static int refused(const char *cert, const char *ca, const char *name, char *msg, size_t size)
{
    tern_tls_config *s = server_cfg(cert, cert[0] == 'e' ? "expired.key"
                                          : !strcmp(cert, "bad.pem") ? "bad.key"
                                          : !strcmp(cert, "srv2.pem") ? "srv2.key" : "srv.key",
                                    NULL);
    tern_tls_config *cc = client_cfg(ca, NULL, NULL);
    tern_conn *sc, *c;
    int src;
    int rc = tls_pair(s, cc, name, &sc, &c, &src);
    CHECK(src < 0);     /* the server hears the client's alert */
    snprintf(msg, size, "%s", tern_tls_last_error(c));
    fprintf(stderr, "   %s: %s\n", tern_strerror(rc), msg);
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(s);
    tern_tls_config_free(cc);
    return rc;
}

static int client_errors_body(void *arg)
{
    (void)arg;
    char msg[256];
    CHECK_EQ(refused("bad.pem", "ca.pem", "localhost", msg, sizeof msg), -EKEYREJECTED);
    check_contains(msg, "server certificate verify failed: unknown issuer");
    check_contains(msg, "O=untrusted");
    CHECK_EQ(refused("srv2.pem", "ca.pem", "localhost", msg, sizeof msg), -EKEYREJECTED);
    check_contains(msg, "name mismatch");
    check_contains(msg, "\"localhost\"");
    CHECK_EQ(refused("srv.pem", "ca.pem", "127.0.0.2", msg, sizeof msg), -EKEYREJECTED);
    check_contains(msg, "name mismatch");
    CHECK_EQ(refused("expired.pem", "ca.pem", "localhost", msg, sizeof msg), -EKEYEXPIRED);
    check_contains(msg, "certificate has expired");
    /* the system store does not know the test CA */
    CHECK_EQ(refused("srv.pem", NULL, "localhost", msg, sizeof msg), -EKEYREJECTED);
    check_contains(msg, "unknown issuer");
    return 0;
}

static void tls_client_refuses_untrusted_mismatched_and_expired_certs_saying_why(void)
{
    tls_certs_make();
    run_ok(client_errors_body, NULL, 2);
}

/* ---- reload ------------------------------------------------------------------ */

static void copy_file(const char *from, const char *to)
{
    char cmd[512];
    /* a new file renamed over the old, as a deployment does */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.tmp' && mv '%s.tmp' '%s'", from, to, to, to);
    CHECK_EQ(system(cmd), 0);
}

static tern_tls_config *live_cfg(int64_t watch)
{
    copy_file(tls_path("srv.pem"), tls_path("live.pem"));
    copy_file(tls_path("srv.key"), tls_path("live.key"));
    tern_tls_cert certs[] = {{tls_path("live.pem"), tls_path("live.key")}};
    tern_tls_server_options o = {.certs = certs, .ncerts = 1, .watch_interval = watch};
    tern_tls_config *s;
    CHECK_EQ(tern_tls_server_config_new(&o, &s), 0);
    return s;
}

static void swap_to_b(void)
{
    copy_file(tls_path("srvB.key"), tls_path("live.key"));
    copy_file(tls_path("srvB.pem"), tls_path("live.pem"));
}

static int reload_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = live_cfg(0);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_conn *s1, *c1, *s2, *c2;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &s1, &c1, &src), 0);
    CHECK(!strcmp(tern_tls_peer_subject(c1), "CN=localhost"));
    /* a broken file: the reload fails and nothing changes */
    copy_file("/etc/hostname", tls_path("live.pem"));
    CHECK_EQ(tern_tls_config_reload(s), -EBADMSG);
    CHECK_EQ(tern_tls_config_generation(s), 1);
    swap_to_b();
    CHECK_EQ(tern_tls_config_reload(s), 0);
    CHECK_EQ(tern_tls_config_generation(s), 2);
    CHECK_EQ(tls_pair(s, cc, "localhost", &s2, &c2, &src), 0);
    CHECK(!strcmp(tern_tls_peer_subject(c2), "O=generation-B,CN=localhost"));
    /* the connection made before keeps working, with its certificate;
     * and outlives the config */
    tern_tls_config_free(s);
    char b[8];
    CHECK_EQ(tern_conn_write(c1, "old", 3, NULL), 3);
    CHECK_EQ(tern_conn_read(s1, b, sizeof b, NULL), 3);
    CHECK_EQ(tern_conn_write(s1, "still", 5, NULL), 5);
    CHECK_EQ(tern_conn_read(c1, b, sizeof b, NULL), 5);
    CHECK(!strcmp(tern_tls_peer_subject(c1), "CN=localhost"));
    tern_conn_free(s1);
    tern_conn_free(c1);
    tern_conn_free(s2);
    tern_conn_free(c2);
    tern_tls_config_free(cc);
    return 0;
}

static void tls_reload_serves_the_new_cert_and_keeps_open_connections(void)
{
    tls_certs_make();
    run_ok(reload_body, NULL, 2);
}

static int watch_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = live_cfg(20 * TERN_MS);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    tern_sleep(50 * TERN_MS);
    CHECK_EQ(tern_tls_config_generation(s), 1);     /* nothing changed: no reload */
    swap_to_b();
    int64_t until = tern_now() + 5 * SEC_NS;
    while (tern_tls_config_generation(s) < 2 && tern_now() < until)
        tern_sleep(10 * TERN_MS);
    CHECK(tern_tls_config_generation(s) >= 2);
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &sc, &c, &src), 0);
    CHECK(!strcmp(tern_tls_peer_subject(c), "O=generation-B,CN=localhost"));
    tern_conn_free(sc);
    tern_conn_free(c);
    tern_tls_config_free(s);    /* stops the watch: tern_run returns */
    tern_tls_config_free(cc);
    return 0;
}

static void tls_watch_reloads_when_the_files_change(void)
{
    tls_certs_make();
    run_ok(watch_body, NULL, 2);
}

/* ---- resumption -------------------------------------------------------------- */

/* A handshake, one byte each way (the client's read takes in the TLS 1.3
 * tickets), and whether it resumed. */
static bool connect_once(tern_tls_config *s, tern_tls_config *cc)
{
    tern_conn *sc, *c;
    int src;
    CHECK_EQ(tls_pair(s, cc, "localhost", &sc, &c, &src), 0);
    CHECK_EQ(src, 0);
    CHECK_EQ(tern_tls_resumed(sc), tern_tls_resumed(c));
    bool resumed = tern_tls_resumed(c);
    char b;
    CHECK_EQ(tern_conn_write(sc, "t", 1, NULL), 1);
    CHECK_EQ(tern_conn_read(c, &b, 1, NULL), 1);
    tern_conn_free(sc);
    tern_conn_free(c);
    return resumed;
}

static int resume_body(void *arg)
{
    (void)arg;
    tern_tls_config *s = server_cfg("srv.pem", "srv.key", NULL);
    tern_tls_config *cc = client_cfg("ca.pem", NULL, NULL);
    CHECK(!connect_once(s, cc));
    /* a resumed connection leaves the client a new ticket: and again */
    CHECK(connect_once(s, cc));
    CHECK(connect_once(s, cc));
    CHECK(connect_once(s, cc));
    /* a reload keeps the ticket keys */
    CHECK_EQ(tern_tls_config_reload(s), 0);
    CHECK(connect_once(s, cc));
    /* another client config remembers nothing */
    tern_tls_config *fresh = client_cfg("ca.pem", NULL, NULL);
    CHECK(!connect_once(s, fresh));
    tern_tls_config_free(fresh);
    tern_tls_config_free(s);
    /* rotation every 200 ms: a ticket one period old still opens (and is
     * renewed); one two periods old does not */
    tern_tls_cert certs[] = {{tls_path("srv.pem"), tls_path("srv.key")}};
    tern_tls_server_options o = {.certs = certs, .ncerts = 1, .ticket_key_rotation = 200 * TERN_MS};
    CHECK_EQ(tern_tls_server_config_new(&o, &s), 0);
    tern_tls_config *rc = client_cfg("ca.pem", NULL, NULL);
    CHECK(!connect_once(s, rc));
    tern_sleep(250 * TERN_MS);
    CHECK(connect_once(s, rc));     /* the previous key */
    tern_sleep(650 * TERN_MS);
    CHECK(!connect_once(s, rc));    /* retired */
    tern_tls_config_free(s);
    tern_tls_config_free(rc);
    /* tickets off: the server's session cache still resumes */
    o.ticket_key_rotation = -1;
    CHECK_EQ(tern_tls_server_config_new(&o, &s), 0);
    tern_tls_config *nc = client_cfg("ca.pem", NULL, NULL);
    CHECK(!connect_once(s, nc));
    CHECK(connect_once(s, nc));
    tern_tls_config_free(s);
    tern_tls_config_free(nc);
    tern_tls_config_free(cc);
    return 0;
}

static void tls_sessions_resume_by_ticket_until_the_key_retires(void)
{
    tls_certs_make();
    run_ok(resume_body, NULL, 2);
}

TESTS(T(tls_mtls_refuses_no_cert_and_a_foreign_cert_and_names_the_right_one),
      T(tls_client_refuses_untrusted_mismatched_and_expired_certs_saying_why),
      T(tls_reload_serves_the_new_cert_and_keeps_open_connections),
      T(tls_watch_reloads_when_the_files_change),
      T(tls_sessions_resume_by_ticket_until_the_key_retires))
