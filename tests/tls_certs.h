/*
 * tls_certs.h - test certificates, made at test time with OpenSSL's API
 * (ECDSA P-256) into a fresh temporary directory, so no key is ever
 * checked in and none expires under the suite.
 *
 *   ca.pem                 the test CA
 *   srv.pem / srv.key      CN=localhost, SAN DNS:localhost, IP:127.0.0.1
 *   srv2.pem / srv2.key    CN=other.test, SAN DNS:other.test, DNS:*.wild.test
 *   srvB.pem / srvB.key    like srv but O=generation-B (reload)
 *   expired.pem / .key     like srv, expired yesterday
 *   cca.pem                the client CA
 *   cli.pem / cli.key      CN=client-1,O=tern, SAN DNS:client-1.test, from cca
 *   other_ca.pem           an unrelated CA
 *   bad.pem / bad.key      CN=localhost, from other_ca (untrusted), and a
 *                          client cert from it too (badcli.pem / .key)
 */
#ifndef TERN_TEST_TLS_CERTS_H
#define TERN_TEST_TLS_CERTS_H

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tcert {
    X509 *x;
    EVP_PKEY *k;
} tcert;

static char tls_dir[64];

static void tc_ext(X509 *x, X509 *issuer, int nid, const char *val)
{
    X509V3_CTX v;
    X509V3_set_ctx(&v, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v, nid, val);
    if (!e || !X509_add_ext(x, e, -1)) {
        fprintf(stderr, "tls_certs: extension %s\n", val);
        abort();
    }
    X509_EXTENSION_free(e);
}

/* subject "CN=..,O=.." (comma-separated), sans "DNS:a,IP:b" or NULL;
 * issuer NULL: self-signed CA.  Valid from now+from_s to now+to_s. */
static tcert tc_make(const char *subject, const char *sans, const tcert *issuer, bool ca,
                     long from_s, long to_s)
{
    static long serial = 1;
    tcert c = {X509_new(), EVP_EC_gen("P-256")};
    X509_set_version(c.x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c.x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(c.x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(c.x), to_s);
    X509_NAME *n = X509_NAME_new();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", subject);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        *eq = '\0';
        X509_NAME_add_entry_by_txt(n, tok, MBSTRING_ASC, (unsigned char *)eq + 1, -1, -1, 0);
    }
    X509_set_subject_name(c.x, n);
    X509_set_issuer_name(c.x, issuer ? X509_get_subject_name(issuer->x) : n);
    X509_NAME_free(n);
    X509_set_pubkey(c.x, c.k);
    X509 *ix = issuer ? issuer->x : c.x;
    tc_ext(c.x, ix, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    tc_ext(c.x, ix, NID_subject_key_identifier, "hash");
    if (!ca)
        tc_ext(c.x, ix, NID_authority_key_identifier, "keyid");
    if (ca)
        tc_ext(c.x, ix, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (sans)
        tc_ext(c.x, ix, NID_subject_alt_name, sans);
    if (!X509_sign(c.x, issuer ? issuer->k : c.k, EVP_sha256())) {
        fprintf(stderr, "tls_certs: sign %s\n", subject);
        abort();
    }
    return c;
}

static void tc_write(const tcert *c, const char *name)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s.pem", tls_dir, name);
    FILE *f = fopen(p, "w");
    PEM_write_X509(f, c->x);
    fclose(f);
    snprintf(p, sizeof p, "%s/%s.key", tls_dir, name);
    f = fopen(p, "w");
    PEM_write_PrivateKey(f, c->k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static void tc_free(tcert *c)
{
    X509_free(c->x);
    EVP_PKEY_free(c->k);
}

/* A path in the certificate directory (a static buffer per call site is
 * not enough: a ring of 16). */
static const char *tls_path(const char *name)
{
    static char ring[16][128];
    static int i;
    char *p = ring[i++ % 16];
    snprintf(p, 128, "%s/%s", tls_dir, name);
    return p;
}

static void tls_certs_remove(void)
{
    if (!tls_dir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tls_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tls_dir);
}

static void tls_certs_make(void)
{
    if (tls_dir[0])
        return;
    snprintf(tls_dir, sizeof tls_dir, "/tmp/tern-tls-XXXXXX");
    if (!mkdtemp(tls_dir))
        abort();
    atexit(tls_certs_remove);
    const long day = 86400;
    tcert ca = tc_make("CN=tern test CA", NULL, NULL, true, -day, 30 * day);
    tcert srv = tc_make("CN=localhost", "DNS:localhost,IP:127.0.0.1", &ca, false, -day, 30 * day);
    tcert srv2 = tc_make("CN=other.test", "DNS:other.test,DNS:*.wild.test", &ca, false, -day,
                         30 * day);
    tcert srvb = tc_make("CN=localhost,O=generation-B", "DNS:localhost,IP:127.0.0.1", &ca, false,
                         -day, 30 * day);
    tcert exp = tc_make("CN=localhost,O=expired", "DNS:localhost,IP:127.0.0.1", &ca, false,
                        -10 * day, -day);
    tcert cca = tc_make("CN=tern client CA", NULL, NULL, true, -day, 30 * day);
    tcert cli = tc_make("CN=client-1,O=tern", "DNS:client-1.test", &cca, false, -day, 30 * day);
    tcert oca = tc_make("CN=unrelated CA", NULL, NULL, true, -day, 30 * day);
    tcert bad = tc_make("CN=localhost,O=untrusted", "DNS:localhost,IP:127.0.0.1", &oca, false,
                        -day, 30 * day);
    tcert badcli = tc_make("CN=intruder", NULL, &oca, false, -day, 30 * day);
    tc_write(&ca, "ca");
    tc_write(&srv, "srv");
    tc_write(&srv2, "srv2");
    tc_write(&srvb, "srvB");
    tc_write(&exp, "expired");
    tc_write(&cca, "cca");
    tc_write(&cli, "cli");
    tc_write(&oca, "other_ca");
    tc_write(&bad, "bad");
    tc_write(&badcli, "badcli");
    tcert *all[] = {&ca, &srv, &srv2, &srvb, &exp, &cca, &cli, &oca, &bad, &badcli};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        tc_free(all[i]);
}

#endif
