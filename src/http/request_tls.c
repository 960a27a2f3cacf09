/*
 * request_tls.c - what a handler may know of the TLS under its request:
 * whether there is any, and the client certificate's subject and names
 * (mTLS), read from the connection's handshake (tern/tls.h).
 */
#include "http/server_internal.h"
#include "tern/tls.h"

bool tern_http_req_tls(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return tern_tls_active(r->conn->c);
}

const char *tern_http_req_tls_peer_subject(const tern_http_req *r)
{
    TERN_CHECK_ARG(r);
    return tern_tls_peer_subject(r->conn->c);
}

const char *tern_http_req_tls_peer_san(const tern_http_req *r, size_t i)
{
    TERN_CHECK_ARG(r);
    return tern_tls_peer_san(r->conn->c, i);
}
