/*
 * client_tls.c - the HTTP client's https:// connections: dial, then a TLS
 * handshake with the client's config, the URL's host as SNI and as the
 * name the certificate must carry.
 *
 * Without a config from the caller, the first https:// request makes one
 * that verifies against the system's store (under the client's mutex,
 * once); it lives as long as the client.  A failed handshake's sentence
 * (tern_tls_last_error) would go with its connection, so the client keeps
 * the latest one for tern_http_client_last_tls_error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/client_internal.h"

static int config_of(tern_http_client *c, tern_tls_config **out)
{
    static const char *const alpn[] = {"h2", "http/1.1", NULL};
    const tern_tls_client_options o = {.alpn = alpn};
    int rc = 0;
    tern_mutex_lock(&c->mu);
    if (!c->tls && (rc = tern_tls_client_config_new(c->h2_tls ? &o : NULL, &c->own_tls)) == 0)
        c->tls = c->own_tls;
    *out = c->tls;
    tern_mutex_unlock(&c->mu);
    return rc;
}

int tern__hc_dial(tern_http_client *c, tern__hc_host *h, bool for_h1, tern_conn **out,
                  tern_ctx *ctx)
{
    int rc = tern_conn_dial(TERN_NET_TCP, h->hostport, out, ctx);
    if (rc < 0 || !h->tls)
        return rc;
    tern_tls_config *cfg;
    if ((rc = config_of(c, &cfg)) == 0 && (rc = tern_tls_connect(*out, cfg, h->name, ctx)) < 0) {
        tern_mutex_lock(&c->mu);
        snprintf(c->tls_error, sizeof c->tls_error, "%.271s: %.255s", h->key,
                 tern_tls_last_error(*out));
        tern_mutex_unlock(&c->mu);
    }
    const char *alpn = rc == 0 ? tern_tls_alpn(*out) : NULL;
    if (for_h1 && alpn && strcmp(alpn, "h2") == 0) {
        /* the server now prefers h2 (it said otherwise before, or a
         * disable_h2 client's own config offered it) */
        rc = -EPROTO;
        if (c->h2_tls) {
            tern_mutex_lock(&c->mu);
            h->alpn = TERN__HC_ALPN_UNKNOWN;
            tern_mutex_unlock(&c->mu);
            rc = TERN__HC_SPEAK_H2;
        }
    }
    if (rc != 0) {
        tern_conn_free(*out);
        *out = NULL;
    }
    return rc;
}

int tern_http_client_last_tls_error(tern_http_client *c, char *buf, size_t size)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(buf);
    tern_mutex_lock(&c->mu);
    int rc = c->tls_error[0] ? 0 : -ENOENT;
    if (size > 0)
        snprintf(buf, size, "%s", c->tls_error);
    tern_mutex_unlock(&c->mu);
    return rc;
}
