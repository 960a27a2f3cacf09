/*
 * resp_file_internal.h - the server's hook under tern_http_resp_file
 * (file.c): the response core owns the connection, so it sends the head
 * and the file's bytes; file.c decides which bytes and which head fields.
 * Internal to src/http/.
 */
#ifndef TERN_HTTP_RESP_FILE_INTERNAL_H
#define TERN_HTTP_RESP_FILE_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "tern/http.h"

/* Commit the head with Content-Length: len and send len bytes of fd from
 * offset with sendfile (or only the head for HEAD); then the response is
 * complete.  fd stays the caller's. */
int tern__http_resp_send_file(tern_http_resp *w, int fd, off_t offset, size_t len);

#endif
