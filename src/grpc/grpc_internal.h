/*
 * grpc_internal.h - what the files of src/grpc share.
 *
 *   wire.c      the protocol's small codecs: the 5-byte message prefix,
 *               grpc-timeout, percent-encoded grpc-message, base64 for
 *               -bin metadata, gzip, codes <-> errnos
 *   server.c    tern_grpc_server: services, the HTTP handler, calls
 *   channel.c   tern_grpc_channel: targets, resolvers, subchannels,
 *               balancing, backoff
 *   conn.c      one client HTTP/2 connection on nghttp2 (reader, writer)
 *   stream.c    tern_grpc_stream and tern_grpc_unary on a connection
 *
 * Messages on the wire (gRPC over HTTP/2, PROTOCOL-HTTP2.md): each is
 * a 1-byte compressed flag, a 4-byte big-endian length, then the bytes.
 */
#ifndef TERN_GRPC_INTERNAL_H
#define TERN_GRPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/arena.h"
#include "base/growbuf.h"
#include "tern/grpc.h"

#define GRPC_PREFIX 5

/* A message's prefix at p (5 bytes): its flag (0 or 1, else -EBADMSG)
 * and length. */
int tern__grpc_prefix_parse(const uint8_t *p, bool *compressed, uint32_t *len);
void tern__grpc_prefix_put(uint8_t *p, bool compressed, uint32_t len);

/* base64 (RFC 4648, standard alphabet), padded or not, into out (at least
 * n*3/4+3 bytes); returns the length or -EBADMSG. */
ssize_t tern__grpc_b64_decode(const char *s, size_t n, uint8_t *out);
/* base64 without padding (gRPC's choice for -bin values), NUL-terminated,
 * into out (at least (n+2)/3*4+1 bytes); returns the length. */
size_t tern__grpc_b64_encode(const uint8_t *p, size_t n, char *out);

/* gzip (RFC 1952) p[0..n) into out (appended).  0, -ENOMEM. */
int tern__grpc_gzip(const uint8_t *p, size_t n, tern__growbuf *out);
/* gunzip p[0..n) into out (appended), at most max bytes: -EMSGSIZE past
 * it, -EBADMSG for a corrupt stream, -ENOMEM. */
int tern__grpc_gunzip(const uint8_t *p, size_t n, size_t max, tern__growbuf *out);

/* Whether name is a metadata key (lower-case token chars [0-9a-z_.-]) and
 * one an application may send (not reserved: pseudo, grpc-*, te,
 * content-type, user-agent's is allowed). */
bool tern__grpc_md_name_ok(const char *name);
bool tern__grpc_md_reserved(const char *name);
bool tern__grpc_md_is_bin(const char *name, size_t n);
/* A valid ASCII metadata value: printable 0x20..0x7e. */
bool tern__grpc_md_value_ok(const char *v, size_t n);

/* The encodings we speak, as grpc-accept-encoding's value. */
#define TERN__GRPC_ACCEPT_ENCODING "identity,gzip"

/* A ProtobufCAllocator backed by an arena (reset between messages): no
 * free, everything goes when the arena is reset or freed. */
void tern__grpc_arena_allocator(ProtobufCAllocator *al, tern__arena *a);

/* Pack msg into out (appended) behind a 5-byte prefix, gzip'd when gz.
 * scratch is reused for the uncompressed bytes.  0, -EMSGSIZE (over max, 0
 * none, or 4 GiB), -ENOMEM. */
int tern__grpc_pack(const ProtobufCMessage *msg, bool gz, size_t max, tern__growbuf *out,
                    tern__growbuf *scratch);

/* server.c: the own HTTP server's handler (415 for anything not gRPC). */
int tern__grpc_server_serve_http(tern_http_req *r, tern_http_resp *w, void *arg);

#endif
