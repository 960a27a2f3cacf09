/*
 * h2_common.c - nghttp2 glue shared by the HTTP/2 client and server:
 * error-code mapping and the fields HTTP/2 does not carry.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <string.h>
#include <strings.h>

#include "http/h2_common.h"

int tern__h2_errno(uint32_t code)
{
    switch (code) {
    case NGHTTP2_NO_ERROR:
        return 0;
    case NGHTTP2_REFUSED_STREAM:
        return -EAGAIN;
    case NGHTTP2_CANCEL:
        return -ECANCELED;
    case NGHTTP2_PROTOCOL_ERROR:
    case NGHTTP2_FLOW_CONTROL_ERROR:
    case NGHTTP2_FRAME_SIZE_ERROR:
    case NGHTTP2_COMPRESSION_ERROR:
    case NGHTTP2_STREAM_CLOSED:
    case NGHTTP2_SETTINGS_TIMEOUT:
        return -EPROTO;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return -EBUSY;
    case NGHTTP2_HTTP_1_1_REQUIRED:
        return -EPROTONOSUPPORT;
    case NGHTTP2_INADEQUATE_SECURITY:
        return -EACCES;
    default:
        return -ECONNRESET;
    }
}

bool tern__h2_forbidden_field(const char *name, const char *value)
{
    /* RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2;
     * TE may only say "trailers".  By length first: this runs for every
     * field of every response, and most fields are none of these. */
    switch (strlen(name)) {
    case 2:
        return strcasecmp(name, "te") == 0 && strcasecmp(value, "trailers") != 0;
    case 7:
        return strcasecmp(name, "upgrade") == 0;
    case 10:
        return strcasecmp(name, "connection") == 0 || strcasecmp(name, "keep-alive") == 0;
    case 16:
        return strcasecmp(name, "proxy-connection") == 0;
    case 17:
        return strcasecmp(name, "transfer-encoding") == 0;
    default:
        return false;
    }
}
