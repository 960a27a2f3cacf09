/*
 * mw_ratelimit.c - per-client rate limiting for the HTTP server: 429 Too
 * Many Requests with Retry-After once a key's bucket is empty.
 *
 * Retry-After carries whole seconds (RFC 9110 allows no fraction), rounded
 * up: a client told "0" would come straight back and be refused again.
 */
#include "kit/resilience/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tern/http_mw.h"

/* The remote address without its port: "1.2.3.4:5" -> "1.2.3.4",
 * "[::1]:5" -> "::1".  Written into buf. */
static const char *client_ip(tern_http_req *r, char *buf, size_t size)
{
    const char *addr = tern_http_req_remote_addr(r);
    if (!addr)
        return NULL;
    const char *start = addr, *end = strrchr(addr, ':');
    if (addr[0] == '[') {
        start = addr + 1;
        end = strchr(start, ']');
    }
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (len >= size)
        len = size - 1;
    memcpy(buf, start, len);
    buf[len] = '\0';
    return buf;
}

int tern_http_mw_ratelimit(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_ratelimit_options *o = opts;
    if (!o || !o->limiter)
        return -EINVAL;
    char ip[64];
    const char *key = o->key ? o->key(r, o->key_arg) : client_ip(r, ip, sizeof ip);
    if (!key)
        return tern_http_next(r, w);
    int64_t wait;
    int taken = tern_ratelimit_take(o->limiter, key, 1, &wait);
    if (taken == 0)
        return tern_http_next(r, w);
    if (taken != -EAGAIN)
        return taken;
    int64_t secs = (wait + TERN_SEC - 1) / TERN_SEC;
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)(secs > 0 ? secs : 1));
    int rc = tern_http_resp_set_header(w, "Retry-After", v);
    return rc < 0 ? rc : tern_http_resp_error(w, 429, NULL);
}
