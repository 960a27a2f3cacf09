/*
 * peer_gone.c - a request's context ends when its client goes away, as
 * Go's r.Context() does: a handler waiting on a slow downstream for a
 * client that has hung up stops working for nobody.
 *
 * The netpoller already sees the connection's FIN or reset (epoll's
 * RDHUP, HUP, ERR), so the watch is a callback on the conn's fd
 * (tern__fd_on_hup) that cancels the request's context: no coroutine and
 * no system call; arming and disarming are a spinlock each.  And only
 * when somebody can observe it: the context is made lazily
 * (tern_http_req_ctx), and a handler that never asks for it is not
 * watched at all.
 *
 * The watch is armed once the context exists and the body has been read
 * (as Go, which starts its background read when the body hits EOF): a
 * client that sends its body and half-closes is still owed an answer for
 * what it sent while the handler reads, and after that its FIN means no
 * more requests will come, which Go too takes as gone.  With pipelined
 * bytes buffered it is not armed: a client that sent its next request
 * and closed its end is waiting for both answers.
 *
 * Once the server is shutting down, a hup is not taken for the client's:
 * the server itself shuts the read side of connections it finds idle
 * (kick_conns), and one may turn active just then, with a request whose
 * answer the drain owes.  A forced shutdown cancels every request anyway.
 *
 * The watch never reads, so it is indifferent to TLS: the FIN under a TLS
 * session is as final as under plain TCP (a close_notify alone, without
 * FIN, goes unnoticed until the next read).
 */
#include "http/server_internal.h"
#include "runtime/export.h"

/* On the polling thread, with the fd's lock held: the request is alive,
 * for tern__http_req_unwatch_peer disarms under that lock before the
 * request's contexts are freed. */
static void on_peer_gone(void *arg)
{
    tern_http_req *r = arg;
    if (!atomic_load(&r->conn->srv->shutting_down)) {
        atomic_store(&r->peer_gone, true);      /* tern_http_error_status: 499 */
        tern_ctx_cancel(r->cancel_ctx);
    }
}

void tern__http_req_watch_peer(tern_http_req *r)
{
    hconn *hc = r->conn;
    TERN_ASSERT(r->cancel_ctx);
    if (r->peer_watched || r->upgraded || !r->body_done || hc->in_pos < hc->in_len)
        return;
    int rc = tern__fd_on_hup(tern_conn_fd(hc->c), on_peer_gone, r);
    if (rc == 0)
        r->peer_watched = true;
    else if (rc == 1)
        on_peer_gone(r);                    /* gone already */
}

void tern__http_req_unwatch_peer(tern_http_req *r)
{
    if (r->peer_watched) {
        tern__fd_on_hup_clear(tern_conn_fd(r->conn->c));
        r->peer_watched = false;
    }
}
