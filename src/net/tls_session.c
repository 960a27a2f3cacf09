/*
 * tls_session.c - a client config's remembered sessions, one per server
 * name, so that the next connection to the same server resumes (a TLS
 * 1.3 ticket, or a TLS 1.2 ticket or session id) instead of a full
 * handshake: one round trip and no certificate check.
 *
 * OpenSSL hands each new session to new_session() (in TLS 1.3 when the
 * server's NewSessionTicket arrives, which is after the handshake, inside
 * a read); the newest per name wins.  A TLS 1.3 session is handed out to
 * one connection only (tern__tls_sessions_offer takes it out), which gets
 * the next ticket; TLS 1.2 sessions are shared.  The table is small and fixed
 * (TLS_CLIENT_SESSIONS names, the least recently stored replaced): a
 * client talks to a handful of services.  A spinlock guards it: the
 * sections are a lookup and a reference count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls_internal.h"
#include "tern/runtime.h"

typedef struct entry {
    char name[256];
    SSL_SESSION *sess;
    int64_t stored;
} entry;

struct tern__tls_sessions {
    atomic_int refs;
    tern__spin lock;
    entry e[TLS_CLIENT_SESSIONS];
};

int tern__tls_sessions_new(tern__tls_sessions **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    atomic_init(&(*out)->refs, 1);
    return 0;
}

tern__tls_sessions *tern__tls_sessions_ref(tern__tls_sessions *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void tern__tls_sessions_unref(tern__tls_sessions *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < TLS_CLIENT_SESSIONS; i++)
        SSL_SESSION_free(s->e[i].sess);
    free(s);
}

/* The entry for name, or the one to replace. */
static entry *slot(tern__tls_sessions *s, const char *name, bool *found)
{
    entry *victim = &s->e[0];
    for (size_t i = 0; i < TLS_CLIENT_SESSIONS; i++) {
        entry *e = &s->e[i];
        if (e->sess && strcmp(e->name, name) == 0) {
            *found = true;
            return e;
        }
        if (!e->sess || (victim->sess && e->stored < victim->stored))
            victim = e;
    }
    *found = false;
    return victim;
}

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct tern__tls *t = SSL_get_app_data(ssl);
    tern__tls_sessions *s = tern__tls_gen_of(ssl)->sessions;
    const char *name = t ? t->name : NULL;     /* the name tern_tls_connect was given */
    if (!s || !name || strlen(name) >= sizeof s->e[0].name)
        return 0;               /* not kept: OpenSSL frees it */
    /* A copy, not sess itself: sess is also this connection's live session,
     * which OpenSSL duplicates and frees when the next ticket arrives, so
     * the connection that resumes from the cache must not hold the same
     * object. */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (!copy)
        return 0;
    bool found;
    tern__spin_lock(&s->lock);
    entry *e = slot(s, name, &found);
    SSL_SESSION *old = e->sess;
    strcpy(e->name, name);
    e->sess = copy;
    e->stored = tern_now();
    tern__spin_unlock(&s->lock);
    SSL_SESSION_free(old);
    return 0;                   /* sess stays OpenSSL's; the cache holds its copy */
}

void tern__tls_sessions_install(SSL_CTX *ctx)
{
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);
}

void tern__tls_sessions_offer(tern__tls_sessions *s, SSL *ssl, const char *name)
{
    if (!s || !name)
        return;
    bool found;
    SSL_SESSION *sess = NULL;
    tern__spin_lock(&s->lock);
    entry *e = slot(s, name, &found);
    if (found && SSL_SESSION_is_resumable(e->sess)) {
        sess = e->sess;
        if (SSL_SESSION_get_protocol_version(sess) == TLS1_3_VERSION) {
            /* Taken, not shared: a TLS 1.3 ticket is for one connection
             * (RFC 8446, C.4; our server renews it on every resumption),
             * and one SSL_SESSION under several live connections is
             * duplicated by one while another frees it when their tickets
             * arrive (TSan saw exactly that in a burst of connections). */
            e->sess = NULL;
        } else {
            SSL_SESSION_up_ref(sess);
        }
    }
    tern__spin_unlock(&s->lock);
    if (sess) {
        SSL_set_session(ssl, sess);     /* takes its own reference */
        SSL_SESSION_free(sess);
    }
}
