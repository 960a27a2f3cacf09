/*
 * etcd.h - the few calls of etcd v3's JSON gateway (/v3/...) that
 * registration and discovery need, over tern's HTTP client.  Keys and
 * values travel base64-encoded; 64-bit integers as JSON strings.
 */
#ifndef TERN_DISCOVERY_ETCD_H
#define TERN_DISCOVERY_ETCD_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/context.h"
#include "tern/http_client.h"
#include "tern/tls.h"

typedef struct etcd {
    tern_http_client *http;
    char **bases;               /* "http://127.0.0.1:2379", no trailing slash */
    size_t nbases;
    atomic_size_t cur;          /* the member calls go to first */
} etcd;

/* endpoints: one client URL or several, comma-separated, of members of
 * one cluster ("http://a:2379,http://b:2379").  A call goes to the member
 * that answered last; one that cannot be reached, or says it is
 * unavailable (no leader), passes the call to the next.  -EINVAL for an
 * empty list or a URL that is not http(s)://. */
int tern__etcd_open(etcd *e, const char *endpoints, tern_tls_config *tls);
void tern__etcd_close(etcd *e);

/* POST path with the JSON req (not stolen); *resp the parsed answer.
 * etcd's errors: {"code": 5} (not found) -> -ENOENT, 14 (unavailable) ->
 * -EAGAIN, others -EIO; an answer that is not JSON -> -EBADMSG. */
int tern__etcd_call(etcd *e, const char *path, json_t *req, json_t **resp, tern_ctx *ctx);

/* Start a streaming POST (a watch): the response is the caller's. */
int tern__etcd_stream(etcd *e, const char *path, json_t *req, tern_http_client_response **out,
                      tern_ctx *ctx);

/* base64 of n bytes as a new JSON string; NULL: out of memory. */
json_t *tern__etcd_b64(const void *data, size_t n);
/* Decode a base64 JSON string into a new NUL-terminated buffer (*len its
 * length); NULL when v is not a string or not base64. */
char *tern__etcd_unb64(const json_t *v, size_t *len);
/* The end of the range of keys starting with prefix (the prefix with its
 * last byte below 0xff incremented); written to out, *len its length. */
void tern__etcd_prefix_end(const char *prefix, char *out, size_t *len);
/* A 64-bit integer sent as a string ("123"), or as a number; def if absent. */
int64_t tern__etcd_int(const json_t *v, int64_t def);

#endif
