/*
 * tls_config.c - TLS configs and their generations.
 *
 * A config keeps the caller's options (strings copied) and a pointer to
 * its current generation (tls_internal.h): an SSL_CTX built from the
 * files as they were when it was made.  new builds the first generation,
 * reload builds another and swaps it in, and each handshake holds a
 * reference on the one it started with: so a reload that fails changes
 * nothing, and one that succeeds changes only handshakes that start
 * afterwards.  The pointer is read and swapped under a spinlock (a load
 * and an increment); building a generation (reading the files, parsing
 * PEM) happens outside it.
 *
 * The settings every generation shares: TLS 1.2 at least (1.3 is
 * negotiated whenever the peer has it), TLS 1.2 cipher suites with ECDHE
 * and AEAD only (forward secrecy, no CBC), TLS 1.3's defaults (all AEAD),
 * key exchange on X25519, P-256 or P-384,
 * no renegotiation, no compression, kTLS when the kernel has it, and
 * buffers released while a connection is idle (an idle keep-alive
 * connection then holds ~0 of OpenSSL's 2 x 16 KiB record buffers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls_internal.h"
#include "tern/runtime.h"

static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct tern_tls_config {
    bool server;
    tern__spin lock;                /* guards cur */
    tern__tls_ctx *cur;
    atomic_uint_least64_t generation;
    /* server */
    tern_tls_cert *certs;           /* strings are ours */
    size_t ncerts;
    char *client_ca_file;
    long cache_size;
    tern__tls_tickets *tickets;
    tern__tls_watch *watch;
    /* client */
    char *ca_file;
    tern_tls_cert client_cert;
    bool skip_verify;
    int64_t handshake_timeout;
    tern__tls_sessions *sessions;
    /* both */
    unsigned char alpn[TLS_ALPN_MAX];
    size_t alpn_len;
};

tern__tls_ctx *tern__tls_ctx_acquire(tern_tls_config *cfg)
{
    tern__spin_lock(&cfg->lock);
    tern__tls_ctx *g = cfg->cur;
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    tern__spin_unlock(&cfg->lock);
    return g;
}

void tern__tls_ctx_release(tern__tls_ctx *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    SSL_CTX_free(g->ssl);
    for (size_t i = 0; i < g->ncerts; i++)
        tern__tls_cert_free(&g->certs[i]);
    free(g->certs);
    tern__tls_tickets_unref(g->tickets);
    tern__tls_sessions_unref(g->sessions);
    free(g);
}

static int common(tern__tls_ctx *g, const tern_tls_config *cfg)
{
    SSL_CTX *c = g->ssl;
    SSL_CTX_set_app_data(c, g);
    /* elliptic curves only: finite-field groups cost the server a slow
     * exponentiation per handshake, for no client that lacks these */
    if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(c, tls12_ciphers) != 1 ||
        SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384") != 1)
        return -EIO;
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    memcpy(g->alpn, cfg->alpn, cfg->alpn_len);
    g->alpn_len = cfg->alpn_len;
    return 0;
}

/* A CA bundle: -errno for a file we cannot open, -EBADMSG for one
 * OpenSSL cannot read. */
static int check_readable(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    fclose(f);
    return 0;
}

static int load_cas(SSL_CTX *c, const char *file)
{
    int rc = check_readable(file);
    if (rc < 0)
        return rc;
    if (SSL_CTX_load_verify_locations(c, file, NULL) != 1) {
        ERR_clear_error();
        return -EBADMSG;
    }
    return 0;
}

static int build_server(tern_tls_config *cfg, tern__tls_ctx *g)
{
    if (!(g->ssl = SSL_CTX_new(TLS_server_method())) ||
        !(g->certs = calloc(cfg->ncerts, sizeof *g->certs)))
        return -ENOMEM;
    int rc = common(g, cfg);
    for (size_t i = 0; rc == 0 && i < cfg->ncerts; i++, g->ncerts++)
        rc = tern__tls_load_cert(&cfg->certs[i], &g->certs[i]);
    if (rc < 0)
        return rc;
    tls_cert *d = &g->certs[0];
    if (SSL_CTX_use_cert_and_key(g->ssl, d->leaf, d->key, d->chain, 1) != 1)
        return -EBADMSG;
    if (cfg->client_ca_file) {
        if ((rc = load_cas(g->ssl, cfg->client_ca_file)) < 0)
            return rc;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca_file);
        if (!names)
            return -EBADMSG;
        SSL_CTX_set_client_CA_list(g->ssl, names);
        SSL_CTX_set_verify(g->ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                           tern__tls_verify_cb);
    }
    /* resumption: a cache of sessions by id, and tickets */
    SSL_CTX_set_session_cache_mode(g->ssl, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(g->ssl, cfg->cache_size);
    static const unsigned char sid_ctx[] = "tern";
    SSL_CTX_set_session_id_context(g->ssl, sid_ctx, sizeof sid_ctx - 1);
    if (cfg->tickets) {
        g->tickets = tern__tls_tickets_ref(cfg->tickets);
        tern__tls_tickets_install(g->ssl);
    } else {
        SSL_CTX_set_options(g->ssl, SSL_OP_NO_TICKET);
    }
    tern__tls_server_callbacks(g);
    ERR_clear_error();
    return 0;
}

static int build_client(tern_tls_config *cfg, tern__tls_ctx *g)
{
    if (!(g->ssl = SSL_CTX_new(TLS_client_method())))
        return -ENOMEM;
    int rc = common(g, cfg);
    if (rc < 0)
        return rc;
    g->verify = !cfg->skip_verify;
    g->handshake_timeout = cfg->handshake_timeout;
    if (g->verify) {
        SSL_CTX_set_verify(g->ssl, SSL_VERIFY_PEER, tern__tls_verify_cb);
        if (cfg->ca_file)
            rc = load_cas(g->ssl, cfg->ca_file);
        else if (SSL_CTX_set_default_verify_paths(g->ssl) != 1)
            rc = -EIO;
        if (rc < 0)
            return rc;
    }
    if (cfg->client_cert.cert_file) {
        tls_cert cc;
        if ((rc = tern__tls_load_cert(&cfg->client_cert, &cc)) < 0)
            return rc;
        rc = SSL_CTX_use_cert_and_key(g->ssl, cc.leaf, cc.key, cc.chain, 1) == 1 ? 0 : -EBADMSG;
        tern__tls_cert_free(&cc);
        if (rc < 0)
            return rc;
    }
    if (cfg->alpn_len && SSL_CTX_set_alpn_protos(g->ssl, cfg->alpn, (unsigned)cfg->alpn_len) != 0)
        return -ENOMEM;
    g->sessions = tern__tls_sessions_ref(cfg->sessions);
    tern__tls_sessions_install(g->ssl);
    ERR_clear_error();
    return 0;
}

static int build_here(tern_tls_config *cfg, tern__tls_ctx **out)
{
    *out = NULL;
    tern__tls_ctx *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    atomic_init(&g->refs, 1);
    g->server = cfg->server;
    int rc = cfg->server ? build_server(cfg, g) : build_client(cfg, g);
    if (rc < 0) {
        ERR_clear_error();
        tern__tls_ctx_release(g);
        return rc;
    }
    *out = g;
    return 0;
}

typedef struct build_job {
    tern_tls_config *cfg;
    tern__tls_ctx *g;
} build_job;

/* On a pool thread, which does other work afterwards: OpenSSL's state
 * for this thread (its random generators, its error queue) goes with the
 * job instead of lingering until the thread ends. */
static int build_job_run(void *arg)
{
    build_job *j = arg;
    int rc = build_here(j->cfg, &j->g);
    OPENSSL_thread_stop();
    return rc;
}

/* A generation reads files (PEM, and the system's CA bundle: ~15 ms):
 * from a coroutine that happens on the blocking pool, so a reload on a
 * busy server stalls no worker.  Outside the runtime, or where the pool
 * cannot take it, here. */
static int build(tern_tls_config *cfg, tern__tls_ctx **out)
{
    if (tern_id() != 0) {
        build_job *j = calloc(1, sizeof *j);    /* not on a stack another coroutine may borrow */
        if (!j)
            return -ENOMEM;
        j->cfg = cfg;
        int rc = tern_blocking(build_job_run, j);
        *out = j->g;
        free(j);
        if (rc != -EAGAIN && rc != -EFAULT)
            return rc;
    }
    return build_here(cfg, out);
}

static char *dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

static void config_release(tern_tls_config *cfg)
{
    tern__tls_ctx_release(cfg->cur);
    for (size_t i = 0; i < cfg->ncerts; i++) {
        free((char *)cfg->certs[i].cert_file);
        free((char *)cfg->certs[i].key_file);
    }
    free(cfg->certs);
    free(cfg->client_ca_file);
    free(cfg->ca_file);
    free((char *)cfg->client_cert.cert_file);
    free((char *)cfg->client_cert.key_file);
    tern__tls_tickets_unref(cfg->tickets);
    tern__tls_sessions_unref(cfg->sessions);
    free(cfg);
}

/* The first generation; on failure the config is released. */
static int finish(tern_tls_config *cfg, bool oom, tern_tls_config **out)
{
    int rc = oom ? -ENOMEM : build(cfg, &cfg->cur);
    if (rc < 0) {
        config_release(cfg);
        return rc;
    }
    atomic_init(&cfg->generation, 1);
    *out = cfg;
    return 0;
}

static const char *const default_server_alpn[] = {"http/1.1", NULL};

int tern_tls_server_config_new(const tern_tls_server_options *o, tern_tls_config **out)
{
    TERN_CHECK_ARG(o);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o->certs || o->ncerts == 0 || o->session_cache_size < 0)
        return -EINVAL;
    for (size_t i = 0; i < o->ncerts; i++)
        if (!o->certs[i].cert_file || !o->certs[i].key_file)
            return -EINVAL;
    tern_tls_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    cfg->server = true;
    if (tern__tls_alpn_wire(o->alpn ? o->alpn : default_server_alpn, cfg->alpn, &cfg->alpn_len) < 0) {
        free(cfg);
        return -EINVAL;
    }
    bool oom = !(cfg->certs = calloc(o->ncerts, sizeof *cfg->certs));
    for (size_t i = 0; !oom && i < o->ncerts; i++, cfg->ncerts++) {
        cfg->certs[i].cert_file = dup_opt(o->certs[i].cert_file, &oom);
        cfg->certs[i].key_file = dup_opt(o->certs[i].key_file, &oom);
    }
    cfg->client_ca_file = dup_opt(o->client_ca_file, &oom);
    cfg->cache_size = o->session_cache_size ? o->session_cache_size : TLS_DEFAULT_SESSION_CACHE;
    if (!oom && o->ticket_key_rotation >= 0) {
        int64_t rot = o->ticket_key_rotation ? o->ticket_key_rotation
                                             : TLS_DEFAULT_TICKET_ROTATION_NS;
        int rc = tern__tls_tickets_new(rot, &cfg->tickets);
        if (rc < 0) {
            config_release(cfg);
            return rc;
        }
    }
    int rc = finish(cfg, oom, out);
    if (rc == 0 && o->watch_interval > 0 &&
        (rc = tern__tls_watch_start(cfg, o->watch_interval, &cfg->watch)) < 0) {
        config_release(cfg);
        *out = NULL;
    }
    return rc;
}

int tern_tls_client_config_new(const tern_tls_client_options *o, tern_tls_config **out)
{
    TERN_CHECK_ARG(out);
    static const tern_tls_client_options defaults = {0};
    if (!o)
        o = &defaults;
    *out = NULL;
    if (!o->cert_file != !o->key_file)
        return -EINVAL;
    tern_tls_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return -ENOMEM;
    if (tern__tls_alpn_wire(o->alpn, cfg->alpn, &cfg->alpn_len) < 0) {
        free(cfg);
        return -EINVAL;
    }
    bool oom = false;
    cfg->ca_file = dup_opt(o->ca_file, &oom);
    cfg->client_cert.cert_file = dup_opt(o->cert_file, &oom);
    cfg->client_cert.key_file = dup_opt(o->key_file, &oom);
    cfg->skip_verify = o->insecure_skip_verify;
    cfg->handshake_timeout = o->handshake_timeout ? o->handshake_timeout : TLS_DEFAULT_HANDSHAKE_NS;
    if (!oom && tern__tls_sessions_new(&cfg->sessions) < 0)
        oom = true;
    return finish(cfg, oom, out);
}

int tern_tls_config_reload(tern_tls_config *cfg)
{
    TERN_CHECK_ARG(cfg);
    tern__tls_ctx *g;
    int rc = build(cfg, &g);
    if (rc < 0)
        return rc;
    tern__spin_lock(&cfg->lock);
    tern__tls_ctx *old = cfg->cur;
    cfg->cur = g;
    tern__spin_unlock(&cfg->lock);
    atomic_fetch_add(&cfg->generation, 1);
    tern__tls_ctx_release(old);     /* freed now, or by its last connection */
    return 0;
}

uint64_t tern_tls_config_generation(const tern_tls_config *cfg)
{
    TERN_CHECK_ARG(cfg);
    return atomic_load(&cfg->generation);
}

size_t tern__tls_config_files(const tern_tls_config *cfg, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->ncerts && n + 2 <= max; i++) {
        out[n++] = cfg->certs[i].cert_file;
        out[n++] = cfg->certs[i].key_file;
    }
    if (cfg->client_ca_file && n < max)
        out[n++] = cfg->client_ca_file;
    return n;
}

void tern_tls_config_free(tern_tls_config *cfg)
{
    if (!cfg)
        return;
    tern__tls_watch_stop(cfg->watch);
    config_release(cfg);
}
