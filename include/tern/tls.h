/*
 * tern/tls.h - TLS (OpenSSL 3) on a tern_conn, for servers and clients.
 *
 * A handshake upgrades a connected tern_conn in place: after
 * tern_tls_accept or tern_tls_connect returns 0, tern_conn_read, _write,
 * _writev, _sendfile, _wait_readable and _close_write on that conn speak
 * TLS, so code written for plain TCP (the HTTP/1.1 server and client)
 * runs unchanged.  The SSL calls are non-blocking: when OpenSSL wants the
 * socket to become readable or writable the coroutine parks on the
 * netpoller, never the worker thread.  The conn keeps net.h's contract:
 * one reader and one writer coroutine at once (possibly on two threads);
 * their SSL calls are serialized by a short lock, never held while parked.
 *
 * A tern_tls_config is a server's or a client's settings: certificates,
 * trust, ALPN, versions.  TLS 1.2 is the minimum and 1.3 preferred; TLS 1.2
 * offers only ECDHE key exchange with AEAD ciphers.  A server resumes
 * sessions by tickets (keys rotated on a schedule, the previous key still
 * accepted) and by a session cache; a client config remembers a session
 * per server name and offers it on its next handshake.
 *
 * Reload: tern_tls_config_reload (or a watch on the files) reads the
 * certificate files again.  Handshakes that start afterwards use the new
 * certificates; a connection keeps what it handshook with until it is
 * freed.
 *
 * Errors: a handshake that fails returns a code that says the kind of
 * failure, and tern_tls_last_error(conn) a sentence that says what failed:
 *   -EKEYEXPIRED    the peer's certificate expired (or is not yet valid)
 *   -EKEYREJECTED   the peer's certificate is not trusted (unknown issuer,
 *                   self-signed), or does not name the server (mismatch)
 *   -ENOKEY         the peer sent no certificate where one is required
 *   -EPROTO         the peers could not agree (version, cipher, a fatal
 *                   alert from the other side, not TLS at all)
 *   -ECONNRESET     the peer closed during the handshake
 *   -ETIMEDOUT / -ECANCELED   the ctx, the conn's read deadline or the
 *                   client's handshake_timeout ended it
 *
 * Ownership: configs are the caller's (tern_tls_config_free); a conn that
 * handshook keeps what it needs of its config alive by reference, so a
 * config may be freed while its connections live.  Strings the
 * accessors return live as long as the conn.  Option strings are copied.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_tls_config tern_tls_config;

/* One certificate: a PEM file with the leaf first and its chain after,
 * and a PEM file with its private key. */
typedef struct tern_tls_cert {
    const char *cert_file;
    const char *key_file;
} tern_tls_cert;

typedef struct tern_tls_server_options {
    const tern_tls_cert *certs;     /* at least one; by SNI the first whose
                                       names (SANs, else CN; wildcards
                                       allowed) match, else certs[0] */
    size_t ncerts;
    const char *const *alpn;        /* protocols the application speaks, in
                                       order of preference, NULL-terminated;
                                       NULL: {"http/1.1"} */
    const char *client_ca_file;     /* mTLS: require a client certificate
                                       issued by a CA in this PEM bundle;
                                       NULL: none asked for */
    int64_t ticket_key_rotation;    /* ns between session ticket key
                                       rotations; 0: 1 hour; < 0: no tickets */
    long session_cache_size;        /* sessions in the server cache; 0: 20480 */
    int64_t watch_interval;         /* ns: > 0 looks at the files' mtimes this
                                       often and reloads when one changed
                                       (needs a running tern runtime);
                                       0: no watch */
} tern_tls_server_options;

typedef struct tern_tls_client_options {
    const char *ca_file;            /* PEM bundle of trusted CAs; NULL: the
                                       system's default store */
    bool insecure_skip_verify;      /* accept any certificate (tests only) */
    const char *cert_file;          /* client certificate for mTLS (with key_file) */
    const char *key_file;
    const char *const *alpn;        /* offered, NULL-terminated; NULL: none */
    int64_t handshake_timeout;      /* ns; 0: 10 s; < 0: none (ctx only) */
} tern_tls_client_options;

/* A server config from o (not NULL; o->certs[0..ncerts) read now).
 * 0; -EINVAL (no certificate, an empty or too long ALPN name); -ENOENT /
 * -EACCES (a file); -EBADMSG (a file that is not PEM, a key that does not
 * match its certificate); -ENOMEM.  *out is NULL on failure.  Call
 * tern_tls_config_free when done.  From a coroutine the files are read on
 * the blocking pool (tern_blocking) while it parks; any thread may call. */
int tern_tls_server_config_new(const tern_tls_server_options *o, tern_tls_config **out);

/* A client config; o may be NULL (verify against the system store, no
 * ALPN, no client certificate).  Errors as the server's. */
int tern_tls_client_config_new(const tern_tls_client_options *o, tern_tls_config **out);

/* Read the config's files again (certificates, keys, CA bundles) and use
 * them for handshakes from now on; connections already up keep theirs.
 * On an error the config keeps what it had: 0 or an error as _new.
 * Callable from any thread, any time (a SIGHUP handler's coroutine). */
int tern_tls_config_reload(tern_tls_config *cfg);

/* How many times the config was (re)loaded: 1 after _new, +1 per
 * successful reload (by call or by the watch). */
uint64_t tern_tls_config_generation(const tern_tls_config *cfg);

/* Release the config (with a watch: stop it, waiting in the calling
 * coroutine for the watcher to leave).  Connections that handshook with
 * it keep working.  NULL is a no-op. */
void tern_tls_config_free(tern_tls_config *cfg);

/* The server side of a handshake on c, bounded by ctx and c's read
 * deadline.  0: c speaks TLS from now on.  On failure c stays
 * allocated (free it), and tern_tls_last_error(c) says why; codes in the
 * header comment; -EINVAL: cfg is a client config; -EALREADY: c already
 * speaks TLS. */
int tern_tls_accept(tern_conn *c, tern_tls_config *cfg, tern_ctx *ctx);

/* The client side of a handshake on c, sending server_name as SNI and
 * verifying the certificate against it (a host name or an IP address).
 * server_name may be NULL only when cfg skips verification (-EINVAL
 * otherwise).  Bounded by ctx, c's read deadline and cfg's
 * handshake_timeout.  Returns as tern_tls_accept. */
int tern_tls_connect(tern_conn *c, tern_tls_config *cfg, const char *server_name, tern_ctx *ctx);

/* Whether c speaks TLS (a handshake was started on it). */
bool tern_tls_active(const tern_conn *c);

/* The negotiated ALPN protocol ("h2", "http/1.1"), or NULL (no TLS, none
 * agreed). */
const char *tern_tls_alpn(const tern_conn *c);

/* The protocol version ("TLSv1.3", "TLSv1.2"), or NULL without TLS. */
const char *tern_tls_version(const tern_conn *c);

/* The cipher suite's name, or NULL without TLS. */
const char *tern_tls_cipher(const tern_conn *c);

/* Whether the handshake resumed an earlier session (a ticket or the
 * session cache) instead of a full handshake. */
bool tern_tls_resumed(const tern_conn *c);

/* The SNI name the client sent (on the server), the one we sent (on the
 * client), or NULL. */
const char *tern_tls_server_name(const tern_conn *c);

/* The peer certificate's subject, RFC 2253 ("CN=client,O=tern"), or
 * NULL when the peer sent none (or c has no TLS). */
const char *tern_tls_peer_subject(const tern_conn *c);

/* The peer certificate's subject alternative names, i from 0: DNS names
 * as they are, IP addresses as text, e-mail and URI names as they are;
 * NULL past the last (or without a peer certificate). */
const char *tern_tls_peer_san(const tern_conn *c, size_t i);

/* A sentence on the last TLS failure on c ("certificate verify failed:
 * certificate has expired (subject CN=localhost)"), or "" when none. */
const char *tern_tls_last_error(const tern_conn *c);

/* Whether the kernel encrypts what c sends (kTLS): then
 * tern_conn_sendfile goes through SSL_sendfile, with no copy into user
 * space.  false where the kernel lacks the tls module (its fallback reads
 * the file and writes it through SSL). */
bool tern_tls_ktls_send(const tern_conn *c);

#ifdef __cplusplus
}
#endif
#endif
