/*
 * h2_conn.c - an HTTP/2 connection: the session with its settings and
 * limits, the reader (the connection's own coroutine) and the writer
 * coroutine, the idle timeout, GOAWAY on shutdown, and the teardown.
 * The model (who holds the lock, who wakes whom) is in h2_internal.h.
 *
 * The reader is the only one to read the socket and the writer the only
 * one to write it, which is what net.h allows on one conn at once (and
 * what a TLS conn serializes); so the code needs only tern_conn_read and
 * tern_conn_write and runs the same over TLS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/h2_internal.h"
#include "runtime/export.h"
#include "tern/runtime.h"

/* The writer gets this long to send a GOAWAY after a protocol error
 * before the socket is shut under it. */
#define H2_LAST_WRITE_NS (1000 * 1000 * 1000LL)

static uint32_t or_u32(uint32_t v, uint32_t def) { return v ? v : def; }

int tern__h2_sniff(const char *p, size_t n)
{
    size_t k = n < H2_PREFACE_LEN ? n : H2_PREFACE_LEN;
    if (memcmp(p, H2_PREFACE, k) != 0)
        return -1;
    return n >= H2_PREFACE_LEN ? 1 : 0;
}

static int writer_main(void *arg);

/* The writer runs while the connection has streams or output, and is
 * started again when it has either: an idle connection keeps one
 * coroutine (its reader), not two.  Once the connection is dead, one
 * last writer sends what it can (a GOAWAY) and none starts after it. */
void tern__h2_wake_writer(h2_conn *h2c)
{
    h2c->writer_idle = false;
    if (h2c->writer_running) {
        tern_cond_signal(&h2c->wcond);
        return;
    }
    if (h2c->writer_final)
        return;
    h2c->writer_running = true;
    tern_waitgroup_add(&h2c->writer, 1);
    if (tern_go_opts(writer_main, h2c, &(tern_go_options){ .name = "http2-writer" }, NULL) < 0) {
        h2c->writer_running = false;
        h2c->writer_idle = true;
        tern_waitgroup_done(&h2c->writer);
        if (h2c->dead)
            h2c->writer_final = true;
        else
            h2c->io_error = h2c->io_error ? h2c->io_error : -ENOMEM;
    }
}

/* Under mu, in the writer: nothing to send until someone wakes it. */
static void writer_wait(h2_conn *h2c)
{
    h2c->writer_idle = true;
    tern_cond_broadcast(&h2c->flushed);
    tern_cond_wait(&h2c->wcond, &h2c->mu, NULL);
}

/* Under mu: the connection is over; wake everyone who waits on it. */
static void conn_die(h2_conn *h2c, int err)
{
    if (!h2c->io_error && err < 0)
        h2c->io_error = err;
    if (h2c->dead)
        return;
    h2c->dead = true;
    for (h2_stream *st = h2c->streams; st; st = st->next) {
        if (st->running && st->ctx)
            tern_ctx_cancel(st->ctx);   /* as Go: the client is gone, so is the request */
        tern_cond_broadcast(&st->cond);
    }
    tern__h2_wake_writer(h2c);         /* a last round, for a GOAWAY */
    tern_cond_broadcast(&h2c->room);
}

/* The writer: frames out of the session, onto the socket, without the
 * lock while writing.  Its buffer is freed after each large batch so an
 * idle connection keeps none. */
static int writer_main(void *arg)
{
    h2_conn *h2c = arg;
    tern_http_server *s = h2c->srv;
    tern__growbuf buf = { 0 };
    bool yielded = false;
    tern_mutex_lock(&h2c->mu);
    for (;;) {
        bool last = h2c->dead;
        if (!last && !nghttp2_session_want_write(h2c->sess)) {
            if (h2c->nstreams == 0) {
                /* idle: started again by the next wake.  What it wrote
                 * while the reader waits cold (a PING's or SETTINGS' ACK
                 * after the last stream) touched the frame buffer the
                 * reader had given back: give it back again. */
                if (h2c->reader_cold)
                    tern__h2_mem_idle(h2c);
                break;
            }
            writer_wait(h2c);
            continue;
        }
        if (!last && !yielded && h2c->nhandlers > 0) {
            /* The first handler to queue its response readies the writer
             * ahead of the other handlers the same read started (the
             * runtime runs a readied coroutine next); one yield lets them
             * queue theirs too, so a read's worth of responses leaves in
             * one write rather than one write each. */
            yielded = true;
            tern_mutex_unlock(&h2c->mu);
            tern_yield();
            tern_mutex_lock(&h2c->mu);
            continue;
        }
        yielded = false;
        int err = 0;
        buf.len = 0;
        while (buf.len < H2_WRITE_BATCH) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(h2c->sess, &p);
            if (n <= 0) {
                err = n < 0 ? -EPROTO : 0;
                break;
            }
            if (tern__growbuf_append(&buf, p, (size_t)n) < 0) {
                err = -ENOMEM;
                break;
            }
        }
        if (buf.len == 0) {
            if (last || err)
                break;
            /* want_write, yet nothing to send (data blocked by flow
             * control): wait for a WINDOW_UPDATE or a handler */
            writer_wait(h2c);
            continue;
        }
        h2c->writer_blocked = true;
        tern_mutex_unlock(&h2c->mu);
        int64_t wt = s->o.write_timeout;
        tern_conn_set_write_deadline(h2c->hc->c, last ? tern_now() + H2_LAST_WRITE_NS
                                     : wt < 0 ? TERN_FOREVER : tern_now() + wt);
        ssize_t w = tern_conn_write(h2c->hc->c, buf.p, buf.len, NULL);
        if (buf.cap > H2_READ_BUF)
            tern__growbuf_free(&buf);   /* a burst's buffer: give it back */
        tern_mutex_lock(&h2c->mu);
        h2c->writer_blocked = false;
        if (w < 0 || err) {
            conn_die(h2c, w < 0 ? (int)w : err);
            break;
        }
        if (last)
            break;
        if (!nghttp2_session_want_write(h2c->sess)) {
            /* a GOAWAY that ends the session (a connection error) is out:
             * the reader may be parked in a read the client never ends */
            if (!nghttp2_session_want_read(h2c->sess) && h2c->reader_reading)
                shutdown(tern_conn_fd(h2c->hc->c), SHUT_RD);
        }
    }
    h2c->writer_idle = true;
    h2c->writer_running = false;
    if (h2c->dead)
        h2c->writer_final = true;
    tern_cond_broadcast(&h2c->flushed);
    tern_mutex_unlock(&h2c->mu);
    tern__growbuf_free(&buf);
    tern_waitgroup_done(&h2c->writer);      /* h2c may be freed from here on */
    return 0;
}

static int session_new(h2_conn *h2c)
{
    const tern_http_server_options *o = &h2c->srv->o;
    const tern_http_h2_options *h = &o->h2;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -ENOMEM;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        return -ENOMEM;
    }
    tern__h2_callbacks(cb);
    /* windows follow the handlers: consumed as they read (h2_body.c) */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, h->max_continuations ? h->max_continuations
                                                                   : H2_DEFAULT_MAX_CONTINUATIONS);
    nghttp2_option_set_stream_reset_rate_limit(opt, h->reset_burst ? h->reset_burst : 1000,
                                               h->reset_rate ? h->reset_rate : 33);
    nghttp2_option_set_max_settings(opt, h->max_settings ? h->max_settings : 32);
    nghttp2_option_set_max_outbound_ack(opt, h->max_outbound_ack ? h->max_outbound_ack : 1000);
    /* our HPACK encoder's table: the default 4 KiB whatever the client offers */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_mem mem = tern__h2_mem(h2c);
    h2c->mem_starting = true;
    int rc = nghttp2_session_server_new3(&h2c->sess, cb, h2c, opt, &mem);
    h2c->mem_starting = false;
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0)
        return -ENOMEM;
    uint32_t window = or_u32(h->stream_window, H2_DEFAULT_STREAM_WINDOW);
    if (window > NGHTTP2_MAX_WINDOW_SIZE)
        window = NGHTTP2_MAX_WINDOW_SIZE;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, or_u32(h->max_concurrent_streams, H2_DEFAULT_MAX_STREAMS) },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)o->max_header_bytes },
    };
    rc = nghttp2_submit_settings(h2c->sess, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
    uint32_t cw = or_u32(h->conn_window, H2_DEFAULT_CONN_WINDOW);
    if (cw > NGHTTP2_MAX_WINDOW_SIZE)
        cw = NGHTTP2_MAX_WINDOW_SIZE;
    if (rc == 0)
        rc = nghttp2_session_set_local_window_size(h2c->sess, NGHTTP2_FLAG_NONE, 0, (int32_t)cw);
    if (rc != 0) {
        nghttp2_session_del(h2c->sess);
        h2c->sess = NULL;
        return -ENOMEM;
    }
    return 0;
}

/* Under mu: feed bytes read to the session.  0, or <0 to close. */
static int feed(h2_conn *h2c, const char *p, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(h2c->sess, (const uint8_t *)p, n);
    if (rv < 0) {
        /* a bad preface, a flood, a compression error...: nghttp2 has
         * queued the GOAWAY the writer sends on its last round */
        atomic_fetch_add_explicit(&h2c->srv->rejected, 1, memory_order_relaxed);
        return -EPROTO;
    }
    TERN_ASSERT((size_t)rv == n);       /* mem_recv consumes everything or fails */
    tern__h2_wake_writer(h2c);
    return 0;
}

/* Under mu: begin a graceful end (shutdown or idle timeout): no new
 * streams past the last one seen; the session ends once those finish. */
static void send_goaway(h2_conn *h2c)
{
    if (h2c->goaway_sent)
        return;
    h2c->goaway_sent = true;
    nghttp2_submit_goaway(h2c->sess, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(h2c->sess), NGHTTP2_NO_ERROR, NULL, 0);
    tern__h2_wake_writer(h2c);
}

/* Read into *buf, allocated while the connection is busy.  Once it has
 * been idle (no streams) for H2_IDLE_RELEASE_NS (`cold`), it waits for
 * bytes holding no buffer, its stack trimmed and its kept streams freed,
 * as HTTP/1.1's does (idle connections are most of a server's
 * connections); a connection between two bursts of a busy client keeps
 * them, rather than free and remake them for every burst. */
static ssize_t read_some(h2_conn *h2c, char **buf, bool cold, bool *trimmed)
{
    tern_conn *c = h2c->hc->c;
    if (cold) {
        free(*buf);
        *buf = NULL;
        if (!*trimmed) {
            tern_mutex_lock(&h2c->mu);
            tern__h2_stream_cache_drain(h2c);
            tern__h2_mem_drain(h2c);
            tern__h2_mem_idle(h2c);
            tern_mutex_unlock(&h2c->mu);
            tern_stack_trim();
        }
        *trimmed = true;
        /* Nothing outside this coroutine points into its frames here (the
         * connection, session and streams are on the heap; the writer and
         * handlers reach only those), so parked long its stack may go
         * back to the kernel (runtime/release.c), as HTTP/1.1's idle
         * wait's does. */
        bool rel = tern__stack_release_allow(true);
        int rc = tern_conn_wait_readable(c, NULL);
        tern__stack_release_allow(rel);
        if (rc < 0)
            return rc;
    }
    *trimmed = false;
    if (!*buf && !(*buf = malloc(H2_READ_BUF)))
        return -ENOMEM;
    return tern_conn_read(c, *buf, H2_READ_BUF, NULL);
}

/* Read and feed until the session has nothing more to read or write,
 * the peer goes, or an error.  0 for a clean end, else <0. */
static int reader_loop(h2_conn *h2c, char **buf)
{
    bool trimmed = false;
    tern_http_server *s = h2c->srv;
    hconn *hc = h2c->hc;
    for (;;) {
        tern_mutex_lock(&h2c->mu);
        if (h2c->dead) {
            tern_mutex_unlock(&h2c->mu);
            return h2c->io_error ? h2c->io_error : -EPIPE;
        }
        if (atomic_load(&s->shutting_down))
            send_goaway(h2c);
        int64_t now = tern_now();
        tern__h2_sweep_detached(h2c, now);
        bool idle = h2c->nstreams == 0;
        int64_t deadline = now + H2_POLL_NS;
        if (idle && !h2c->goaway_sent && s->o.idle_timeout >= 0) {
            deadline = h2c->last_active + s->o.idle_timeout;
            if (deadline <= now)
                send_goaway(h2c);
        } else if (idle && !h2c->goaway_sent) {
            deadline = TERN_FOREVER;
        }
        /* a connection that has carried few streams (most idle ones: a
         * request now and then) gives its memory back at once, as before
         * there was a hot wait: its blocks freed a second later sit among
         * other connections' and the heap keeps them */
        int64_t release_at = h2c->last_active + H2_IDLE_RELEASE_NS;
        bool cold = idle && (now >= release_at || h2c->nstarted < H2_HOT_AFTER);
        if (idle && !cold && (deadline == TERN_FOREVER || deadline > release_at))
            deadline = release_at;      /* then again, to go cold */
        bool want_read = nghttp2_session_want_read(h2c->sess);
        if (!want_read) {
            /* the session is over (a GOAWAY after an error, or after the
             * last stream of a graceful end): let the writer send what it
             * can, then close, rather than wait for the client */
            while (!h2c->dead && !h2c->writer_idle)
                tern_cond_wait(&h2c->flushed, &h2c->mu, NULL);
            tern_mutex_unlock(&h2c->mu);
            return 0;
        }
        h2c->reader_reading = true;
        h2c->reader_cold = cold;
        tern_mutex_unlock(&h2c->mu);
        tern_conn_set_read_deadline(hc->c, deadline);
        /* without streams the connection is idle: a graceful shutdown may
         * kick it (shut its reading side), as it kicks HTTP/1.1's */
        if (idle) {
            atomic_store(&hc->state, CONN_IDLE);
            atomic_fetch_sub_explicit(&s->nactive, 1, memory_order_relaxed);
        }
        ssize_t n = (idle && atomic_load(&s->shutting_down)) ? 0
                    : read_some(h2c, buf, cold, &trimmed);
        if (idle) {
            atomic_fetch_add_explicit(&s->nactive, 1, memory_order_relaxed);
            atomic_store(&hc->state, CONN_ACTIVE);
        }
        tern_mutex_lock(&h2c->mu);
        h2c->reader_reading = false;
        h2c->reader_cold = false;
        tern_mutex_unlock(&h2c->mu);
        if (n == -ETIMEDOUT)
            continue;
        if (n <= 0) {
            /* the peer's end, or a shutdown's kick: either way nothing
             * more can be read; a GOAWAY still goes out on a kick */
            if (n == 0 && atomic_load(&s->shutting_down)) {
                tern_mutex_lock(&h2c->mu);
                send_goaway(h2c);
                tern_mutex_unlock(&h2c->mu);
                return 0;
            }
            return n == 0 ? -ECONNRESET : (int)n;
        }
        tern_mutex_lock(&h2c->mu);
        int rc = h2c->dead ? -EPIPE : feed(h2c, *buf, (size_t)n);
        tern_mutex_unlock(&h2c->mu);
        if (rc < 0)
            return rc;
    }
}

/* Wait for the writer to leave; after a grace, shut the socket under a
 * write the peer never reads. */
static void join_writer(h2_conn *h2c)
{
    tern_ctx *grace;
    if (tern_ctx_with_timeout(NULL, H2_LAST_WRITE_NS, &grace) == 0) {
        int rc = tern_waitgroup_wait(&h2c->writer, grace);
        tern_ctx_free(grace);
        if (rc == 0)
            return;
    }
    shutdown(tern_conn_fd(h2c->hc->c), SHUT_RDWR);
    tern_waitgroup_wait(&h2c->writer, NULL);
}

int tern__h2_session_run(hconn *hc, tern__growbuf *pre)
{
    h2_conn *h2c = calloc(1, sizeof *h2c);
    char *buf = NULL;
    int rc = h2c ? 0 : -ENOMEM;
    if (rc == 0) {
        h2c->hc = hc;
        h2c->srv = hc->srv;
        h2c->last_active = tern_now();
        rc = session_new(h2c);
    }
    if (rc < 0) {
        free(buf);
        if (pre)
            tern__growbuf_free(pre);
        if (h2c)
            tern__h2_mem_drain(h2c);    /* what a failed session_new freed */
        free(h2c);
        return rc;
    }
    tern_mutex_lock(&h2c->mu);
    tern__h2_wake_writer(h2c);         /* our SETTINGS */
    rc = h2c->io_error ? h2c->io_error : pre && pre->len ? feed(h2c, pre->p, pre->len) : 0;
    tern_mutex_unlock(&h2c->mu);
    /* the session has taken what it needs of those bytes: they would
     * otherwise stay allocated (a page) for the connection's life */
    if (pre)
        tern__growbuf_free(pre);
    if (rc == 0)
        rc = reader_loop(h2c, &buf);
    free(buf);
    /* A clean end has sent everything (want_write was false); otherwise
     * the writer gets one last round (a GOAWAY after a protocol error). */
    tern_mutex_lock(&h2c->mu);
    conn_die(h2c, rc);
    tern_mutex_unlock(&h2c->mu);
    join_writer(h2c);
    /* handlers see `dead` and their cancelled contexts; they must return
     * before the streams and the session go */
    tern_waitgroup_wait(&h2c->handlers, NULL);
    tern_mutex_lock(&h2c->mu);
    TERN_ASSERT(h2c->nhandlers == 0);
    while (h2c->streams) {
        h2_stream *st = h2c->streams;
        TERN_ASSERT(!st->running);
        st->closed = true;      /* the session goes: nobody holds st */
        tern__h2_stream_release(st);
    }
    TERN_ASSERT(h2c->nstreams == 0);
    tern__h2_stream_cache_drain(h2c);
    tern_mutex_unlock(&h2c->mu);
    nghttp2_session_del(h2c->sess);
    tern__h2_mem_drain(h2c);
    free(h2c);
    return rc;
}

int tern__h2_serve_conn(hconn *hc, tern__growbuf *pre)
{
    /* HTTP/1.1's read and write deadlines no longer apply: the reader
     * and writer set their own */
    tern_conn_set_read_deadline(hc->c, TERN_FOREVER);
    tern_conn_set_write_deadline(hc->c, TERN_FOREVER);
    int rc = tern__h2_session_run(hc, pre);
    /* We end the connection (a GOAWAY sent, the session over) while the
     * client may still be sending (a PING, frames in flight): closing with
     * bytes unread would reset the connection, and the reset can destroy
     * the GOAWAY before the client reads it.  So the HTTP/1.1 way: our
     * side ended, the client's bytes read and dropped for a while. */
    if (rc == 0 || rc == -EPROTO)
        hc->linger = true;
    return rc;
}
