/*
 * tls_io.c - reading and writing a TLS conn (conn.c diverts here when
 * c->tls is set).
 *
 * Each SSL_read_ex / SSL_write_ex is one non-blocking step under the
 * conn's spinlock; when it wants the socket readable or writable the
 * lock is dropped and the coroutine parks on the netpoller (bounded as a
 * plain conn's call: the conn's deadline for that direction and the
 * ctx), then tries again.  So a reader parked for the next request never
 * holds up a writer on another thread, and the two never run inside
 * OpenSSL at once (an SSL object is not thread-safe; RFC 8446 records
 * are sealed with sequence numbers that must advance in order).
 *
 * A step on the read side may want to write (a TLS 1.3 KeyUpdate answer,
 * an alert) and is then parked for writability; with renegotiation off,
 * a write never wants to read after the handshake.
 *
 * writev coalesces small pieces (an HTTP head and a short body) into one
 * record, as a plain writev makes them one segment: each SSL_write is a
 * record of its own, with 22+ bytes of overhead and an AEAD pass.
 *
 * sendfile: with kTLS the kernel encrypts, and SSL_sendfile sends the
 * file without copying it out; otherwise the file is read in record-
 * sized pieces and written through SSL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/err.h>
#include <string.h>
#include <unistd.h>

#include "net/tls_internal.h"
#include "tern/runtime.h"

#define TLS_RECORD 16384    /* the largest plaintext of one record (RFC 8446 5.1) */

enum { OP_READ, OP_WRITE, OP_SENDFILE };

typedef struct step {
    int e;          /* SSL_get_error's class */
    size_t done;    /* bytes moved when e is SSL_ERROR_NONE */
    int rc;         /* -errno when e is fatal */
} step;

static step one_step(struct tern__tls *t, int op, void *buf, size_t n, int fd, off_t off)
{
    step s = {0};
    tern__spin_lock(&t->lock);
    tern__tls_clear_errors();
    errno = 0;
    int r;
    if (op == OP_READ) {
        r = SSL_read_ex(t->ssl, buf, n, &s.done);
    } else if (op == OP_WRITE) {
        r = SSL_write_ex(t->ssl, buf, n, &s.done);
    } else {
        ossl_ssize_t w = SSL_sendfile(t->ssl, fd, off, n, 0);
        r = w > 0;
        s.done = w > 0 ? (size_t)w : 0;
    }
    int saved = errno;
    s.e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    if (s.e == SSL_ERROR_SSL || s.e == SSL_ERROR_SYSCALL) {
        s.rc = tern__tls_fail(t, s.e, saved);
        atomic_store_explicit(&t->dead, true, memory_order_relaxed);
    } else if (s.e == SSL_ERROR_ZERO_RETURN) {
        s.rc = op == OP_READ ? 0 : -EPIPE;
    } else if (s.e != SSL_ERROR_NONE && s.e != SSL_ERROR_WANT_READ && s.e != SSL_ERROR_WANT_WRITE) {
        s.rc = -EPROTO;
    }
    tern__spin_unlock(&t->lock);
    return s;
}

/* Park for what the step wants: 0, or -errno to return. */
static int park(tern_conn *c, const step *s, int64_t deadline, tern_ctx *ctx)
{
    return tern__net_wait(c->fd, s->e == SSL_ERROR_WANT_READ ? TERN_FD_READ : TERN_FD_WRITE,
                          deadline, ctx);
}

static bool wants(const step *s)
{
    return s->e == SSL_ERROR_WANT_READ || s->e == SSL_ERROR_WANT_WRITE;
}

static int usable(struct tern__tls *t, tern_ctx *ctx)
{
    if (!t->up || atomic_load_explicit(&t->dead, memory_order_relaxed))
        return -EPROTO;     /* the handshake failed, or an earlier call did */
    return ctx ? tern_ctx_err(ctx) : 0;
}

ssize_t tern__tls_read(tern_conn *c, void *buf, size_t n, tern_ctx *ctx)
{
    struct tern__tls *t = c->tls;
    int rc = usable(t, ctx);
    if (rc < 0 || n == 0)
        return rc;
    for (;;) {
        step s = one_step(t, OP_READ, buf, n, -1, 0);
        if (s.e == SSL_ERROR_NONE) {
            TERN_ASSERT(s.done > 0 && s.done <= n);
            return (ssize_t)s.done;
        }
        if (!wants(&s))
            return s.rc;
        if ((rc = park(c, &s, conn_read_deadline(c), ctx)) < 0)
            return rc;
    }
}

static ssize_t write_all(tern_conn *c, const char *p, size_t n, tern_ctx *ctx)
{
    struct tern__tls *t = c->tls;
    size_t left = n;
    while (left > 0) {
        step s = one_step(t, OP_WRITE, (void *)p, left, -1, 0);
        if (s.e == SSL_ERROR_NONE) {
            TERN_ASSERT(s.done > 0 && s.done <= left);
            p += s.done;
            left -= s.done;
            continue;
        }
        if (!wants(&s))
            return s.rc;
        int rc = park(c, &s, conn_write_deadline(c), ctx);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)n;
}

ssize_t tern__tls_write(tern_conn *c, const void *buf, size_t n, tern_ctx *ctx)
{
    int rc = usable(c->tls, ctx);
    if (rc < 0)
        return rc;
    return write_all(c, buf, n, ctx);
}

ssize_t tern__tls_writev(tern_conn *c, struct iovec *iov, int iovcnt, tern_ctx *ctx)
{
    int rc = usable(c->tls, ctx);
    if (rc < 0)
        return rc;
    char buf[TLS_RECORD];
    size_t fill = 0, total = 0;
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        total += len;
        while (len > 0) {
            ssize_t w;
            if (fill == 0 && len >= sizeof buf) {
                /* large: straight from the caller's memory */
                if ((w = write_all(c, p, len, ctx)) < 0)
                    return w;
                break;
            }
            size_t k = len < sizeof buf - fill ? len : sizeof buf - fill;
            memcpy(buf + fill, p, k);
            fill += k;
            p += k;
            len -= k;
            if (fill == sizeof buf) {
                if ((w = write_all(c, buf, fill, ctx)) < 0)
                    return w;
                fill = 0;
            }
        }
    }
    if (fill > 0) {
        ssize_t w = write_all(c, buf, fill, ctx);
        if (w < 0)
            return w;
    }
    return (ssize_t)total;
}

static ssize_t sendfile_ktls(tern_conn *c, int fd, off_t *offset, size_t len, tern_ctx *ctx)
{
    size_t left = len;
    while (left > 0) {
        step s = one_step(c->tls, OP_SENDFILE, NULL, left, fd, *offset);
        if (s.e == SSL_ERROR_NONE) {
            *offset += (off_t)s.done;
            left -= s.done;
            continue;
        }
        if (!wants(&s))
            return s.rc;
        int rc = park(c, &s, conn_write_deadline(c), ctx);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)len;
}

ssize_t tern__tls_sendfile(tern_conn *c, int fd, off_t *offset, size_t len, tern_ctx *ctx)
{
    int rc = usable(c->tls, ctx);
    if (rc < 0)
        return rc;
    if (c->tls->ktls_send)
        return sendfile_ktls(c, fd, offset, len, ctx);
    char buf[TLS_RECORD];
    size_t left = len;
    while (left > 0) {
        ssize_t r = pread(fd, buf, left < sizeof buf ? left : sizeof buf, *offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;        /* the file is shorter than promised */
        ssize_t w = write_all(c, buf, (size_t)r, ctx);
        if (w < 0)
            return w;
        *offset += r;
        left -= (size_t)r;
    }
    return (ssize_t)len;
}

bool tern__tls_pending(tern_conn *c)
{
    struct tern__tls *t = c->tls;
    if (!t->up || atomic_load_explicit(&t->dead, memory_order_relaxed))
        return true;            /* a read will say what is wrong at once */
    tern__spin_lock(&t->lock);
    bool p = SSL_has_pending(t->ssl) == 1;
    tern__spin_unlock(&t->lock);
    return p;
}

void tern__tls_close_notify(tern_conn *c)
{
    struct tern__tls *t = c->tls;
    tern__spin_lock(&t->lock);
    if (t->up && !atomic_load_explicit(&t->dead, memory_order_relaxed) &&
        !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);   /* one try: a full socket buffer loses it */
        ERR_clear_error();
    }
    tern__spin_unlock(&t->lock);
}
