/*
 * tls_pair.h - a TCP connection pair on 127.0.0.1 and a TLS handshake
 * across it (the server side in its own coroutine), for the TLS tests.
 */
#ifndef TERN_TEST_TLS_PAIR_H
#define TERN_TEST_TLS_PAIR_H

#include "check.h"
#include "tls_certs.h"

#include <errno.h>
#include <tern/net.h>
#include <tern/tls.h>

#define SEC_NS 1000000000LL

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"

typedef struct dialer {
    const char *addr;
    tern_conn *c;
    int rc;
    tern_waitgroup wg;
} dialer;

static int dial_co(void *arg)
{
    dialer *d = arg;
    d->rc = tern_conn_dial(TERN_NET_TCP, d->addr, &d->c, NULL);
    tern_waitgroup_done(&d->wg);
    return 0;
}

/* A connected pair: *s the accepted end, *c the dialled one. */
static void tcp_pair(tern_conn **s, tern_conn **c)
{
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    dialer d = {.addr = tern_listener_addr(l)};
    tern_waitgroup_add(&d.wg, 1);
    CHECK_EQ(tern_go(dial_co, &d), 0);
    CHECK_EQ(tern_listener_accept(l, s, NULL), 0);
    tern_waitgroup_wait(&d.wg, NULL);
    CHECK_EQ(d.rc, 0);
    *c = d.c;
    tern_listener_free(l);
}

typedef struct acceptor {
    tern_conn *c;
    tern_tls_config *cfg;
    int rc;
    tern_waitgroup wg;
} acceptor;

static int accept_co(void *arg)
{
    acceptor *a = arg;
    a->rc = tern_tls_accept(a->c, a->cfg, NULL);
    tern_waitgroup_done(&a->wg);
    return 0;
}

/* Handshake over a fresh pair: returns the client's result, *src the
 * server's.  Both conns are the caller's.  The server side is bounded by
 * a 5 s read deadline. */
static int tls_pair(tern_tls_config *scfg, tern_tls_config *ccfg, const char *name,
                    tern_conn **s, tern_conn **c, int *src)
{
    tcp_pair(s, c);
    tern_conn_set_read_deadline(*s, tern_now() + 5 * SEC_NS);
    tern_conn_set_read_deadline(*c, tern_now() + 5 * SEC_NS);
    acceptor a = {.c = *s, .cfg = scfg};
    tern_waitgroup_add(&a.wg, 1);
    CHECK_EQ(tern_go(accept_co, &a), 0);
    int rc = tern_tls_connect(*c, ccfg, name, NULL);
    if (rc < 0)
        tern_conn_close_write(*c);  /* a server waiting for more hears the end */
    tern_waitgroup_wait(&a.wg, NULL);
    *src = a.rc;
    tern_conn_set_read_deadline(*s, TERN_FOREVER);
    tern_conn_set_read_deadline(*c, TERN_FOREVER);
    return rc;
}

static tern_tls_config *server_cfg(const char *cert, const char *key, const char *client_ca)
{
    tern_tls_cert certs[] = {{tls_path(cert), tls_path(key)}};
    tern_tls_server_options o = {.certs = certs, .ncerts = 1,
                                 .client_ca_file = client_ca ? tls_path(client_ca) : NULL};
    tern_tls_config *cfg;
    CHECK_EQ(tern_tls_server_config_new(&o, &cfg), 0);
    return cfg;
}

static tern_tls_config *client_cfg(const char *ca, const char *cert, const char *key)
{
    tern_tls_client_options o = {.ca_file = ca ? tls_path(ca) : NULL,
                                 .cert_file = cert ? tls_path(cert) : NULL,
                                 .key_file = key ? tls_path(key) : NULL};
    tern_tls_config *cfg;
    CHECK_EQ(tern_tls_client_config_new(&o, &cfg), 0);
    return cfg;
}

static void check_contains(const char *s, const char *want)
{
    if (!s || !strstr(s, want)) {
        fprintf(stderr, "expected \"%s\" to contain \"%s\"\n", s ? s : "(null)", want);
        abort();
    }
}

#pragma GCC diagnostic pop
#endif
