/*
 * upgrade.c - handing an HTTP/1.1 connection to its handler after a 101
 * (RFC 9110 7.8, 15.2.2): WebSocket servers and proxies that pass an
 * upgrade through both need the bytes after the handshake.
 *
 * The head is written here, not by response.c, because a 101 has none
 * of a response's framing (no Content-Length, no chunking, no body) and
 * is flushed at once: the handler's next bytes are the new protocol's.
 * Bytes the client sent after the request's head (a WebSocket client may
 * send its first frame without waiting) are in the server's input buffer
 * already; they go to the handler as `pending` and the buffer forgets
 * them.  The connection then closes when the handler returns: whatever
 * follows on it is no longer HTTP.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "http/server_internal.h"
#include "tern/runtime.h"

static bool tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* protocol-name ["/" protocol-version] (RFC 9110 7.8) */
static bool valid_protocol(const char *p)
{
    size_t n = 0, slashes = 0;
    for (const char *s = p; *s; s++, n++) {
        if (*s == '/') {
            if (++slashes > 1 || s == p || !s[1])
                return false;
        } else if (!tchar((unsigned char)*s)) {
            return false;
        }
    }
    return n > 0;
}

/* Fields that describe this hop's framing or connection: ours to write. */
static bool ours(const char *name)
{
    return !strcasecmp(name, "Connection") || !strcasecmp(name, "Upgrade") ||
           !strcasecmp(name, "Content-Length") || !strcasecmp(name, "Transfer-Encoding");
}

static int put(tern__growbuf *b, const char *s, size_t n) { return tern__growbuf_append(b, s, n); }

int tern_http_resp_upgrade(tern_http_resp *w, const char *protocol, tern_http_upgraded *out)
{
    if (!w || !out)
        return -EINVAL;
    hconn *hc = w->conn;
    tern_http_req *r = w->req;
    if (hc->h2 || !r || r->head.minor_version < 1)
        return -ENOTSUP;        /* HTTP/2 has CONNECT streams instead (RFC 8441) */
    if (w->committed || w->done)
        return -EALREADY;
    if (!protocol || !valid_protocol(protocol) || !tern_http_req_header(r, "Upgrade") ||
        (r->has_body && !r->body_done))
        return -EINVAL;
    TERN_ASSERT(hc->cur == w && w->start <= hc->out.len);
    hc->out.len = w->start;     /* a body written before the switch is no part of it */
    tern__growbuf *b = &hc->out;
    int rc = put(b, "HTTP/1.1 101 Switching Protocols\r\n", 34);
    for (size_t i = 0; i < w->nhdrs; i++) {
        if (ours(w->hdrs[i].name))
            continue;
        rc |= put(b, w->hdrs[i].name, w->hdrs[i].name_len);
        rc |= put(b, ": ", 2);
        rc |= put(b, w->hdrs[i].value, w->hdrs[i].value_len);
        rc |= put(b, "\r\n", 2);
    }
    rc |= put(b, "Connection: Upgrade\r\nUpgrade: ", 30);
    rc |= put(b, protocol, strlen(protocol));
    rc |= put(b, "\r\n\r\n", 4);
    if (rc) {
        hc->out.len = w->start;
        return -ENOMEM;
    }
    w->status = 101;
    w->committed = w->done = true;
    w->close_after = hc->closing = true;
    if ((rc = tern__http_flush_out(hc)) < 0)
        return rc;
    /* from here the client's FIN is the new protocol's to see (a read of 0) */
    r->upgraded = true;
    tern__http_req_unwatch_peer(r);
    tern_conn_set_read_deadline(hc->c, TERN_FOREVER);
    tern_conn_set_write_deadline(hc->c, TERN_FOREVER);
    TERN_ASSERT(hc->in_pos <= hc->in_len);
    out->conn = hc->c;
    out->pending = hc->in + hc->in_pos;
    out->pending_len = hc->in_len - hc->in_pos;
    hc->in_pos = hc->in_len;
    return 0;
}
