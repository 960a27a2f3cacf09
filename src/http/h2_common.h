/*
 * h2_common.h - nghttp2 glue that an HTTP/2 client and server both need:
 * the -errno an HTTP/2 error code stands for, and the request / response
 * header fields HTTP/2 forbids (RFC 9113 8.2.2).
 */
#ifndef TERN_HTTP_H2_COMMON_H
#define TERN_HTTP_H2_COMMON_H

#include <stdbool.h>
#include <stdint.h>

/* The -errno for an RST_STREAM or GOAWAY error code (RFC 9113 7):
 * NO_ERROR 0; REFUSED_STREAM -EAGAIN (not processed, safe to retry);
 * CANCEL -ECANCELED; PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR,
 * COMPRESSION_ERROR, STREAM_CLOSED, SETTINGS_TIMEOUT -EPROTO;
 * ENHANCE_YOUR_CALM -EBUSY; HTTP_1_1_REQUIRED -EPROTONOSUPPORT;
 * INADEQUATE_SECURITY -EACCES; the rest (INTERNAL_ERROR, CONNECT_ERROR,
 * unknown codes) -ECONNRESET. */
int tern__h2_errno(uint32_t code);

/* A connection-specific field HTTP/2 forbids (Connection, Keep-Alive,
 * Proxy-Connection, Transfer-Encoding, Upgrade; any case), or TE with a
 * value other than "trailers". */
bool tern__h2_forbidden_field(const char *name, const char *value);

#endif
