/*
 * etcd.c - calls to etcd v3's JSON gateway: a POST of a JSON body to
 * /v3/<service>/<method>, a JSON answer (or a stream of them for a watch),
 * to one member of a list, the next when one cannot be reached.
 * The gateway is grpc-gateway: errors come back as {"error", "code"} with
 * the gRPC code, int64 fields as strings, bytes as base64.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discovery/etcd.h"

#define MAX_ANSWER (16 << 20)

int tern__etcd_open(etcd *e, const char *endpoints, tern_tls_config *tls)
{
    *e = (etcd){0};
    if (!endpoints)
        return -EINVAL;
    size_t cap = 1;
    for (const char *p = endpoints; *p; p++)
        cap += *p == ',';
    if (!(e->bases = calloc(cap, sizeof *e->bases)))
        return -ENOMEM;
    int rc = 0;
    for (const char *p = endpoints; rc == 0;) {
        size_t n = strcspn(p, ",");
        const char *next = p[n] ? p + n + 1 : NULL;
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == '/' || p[n - 1] == ' '))
            n--;
        if (n < 8 || (strncmp(p, "http://", 7) && strncmp(p, "https://", 8)))
            rc = -EINVAL;
        else if (!(e->bases[e->nbases] = strndup(p, n)))
            rc = -ENOMEM;
        else
            e->nbases++;
        if (!next)
            break;
        p = next;
    }
    if (rc == 0) {
        tern_http_client_options o = {.tls = tls, .max_idle_per_host = 4};
        rc = tern_http_client_new(&o, &e->http);
    }
    if (rc < 0)
        tern__etcd_close(e);
    return rc;
}

void tern__etcd_close(etcd *e)
{
    if (e->http)
        tern_http_client_free(e->http);
    for (size_t i = 0; i < e->nbases; i++)
        free(e->bases[i]);
    free(e->bases);
    *e = (etcd){0};
}

/* A member that could not take the call: nothing reached it (refused,
 * unreachable, reset before an answer), so another may. */
static bool try_next(int rc)
{
    return rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -ENETUNREACH || rc == -ECONNRESET ||
           rc == -EPIPE || rc == -ENOENT /* a name that does not resolve */;
}

static int post_to(etcd *e, size_t i, const char *path, const char *body, tern_http_client_response **out,
                   tern_ctx *ctx)
{
    size_t ulen = strlen(e->bases[i]) + strlen(path) + 1;
    char *url = malloc(ulen);
    if (!url)
        return -ENOMEM;
    snprintf(url, ulen, "%s%s", e->bases[i], path);
    static const char *const headers[] = {"Content-Type", "application/json", NULL};
    tern_http_client_request r = {.method = "POST", .url = url, .headers = headers, .body = body,
                                  .body_len = strlen(body)};
    int rc = tern_http_client_do(e->http, &r, out, ctx);
    free(url);
    return rc;
}

/* POST to the current member, then to each other in turn while they
 * cannot be reached or answer 503 (the gateway's UNAVAILABLE: a member
 * without a leader, which did not apply the call); the one that answered
 * becomes the current one.  The last member's answer is the caller's,
 * 503 or not. */
static int post(etcd *e, const char *path, json_t *req, tern_http_client_response **out, tern_ctx *ctx)
{
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body)
        return -ENOMEM;
    size_t first = atomic_load_explicit(&e->cur, memory_order_relaxed) % e->nbases;
    int rc = -EINVAL;
    for (size_t k = 0; k < e->nbases; k++) {
        size_t i = (first + k) % e->nbases;
        rc = post_to(e, i, path, body, out, ctx);
        bool last = k + 1 == e->nbases;
        if (rc == 0 && tern_http_client_response_status(*out) == 503 && !last) {
            tern_http_client_response_free(*out);     /* this member has no leader: another may */
            *out = NULL;
            continue;
        }
        if (rc == 0) {
            atomic_store_explicit(&e->cur, i, memory_order_relaxed);
            break;
        }
        if (!try_next(rc) || tern_ctx_err(ctx))
            break;
    }
    free(body);
    return rc;
}

static int grpc_code_errno(int64_t code)
{
    switch (code) {
    case 5: return -ENOENT;             /* NOT_FOUND: a lease gone */
    case 14: return -EAGAIN;            /* UNAVAILABLE: no leader, say */
    case 4: return -ETIMEDOUT;
    case 3: return -EINVAL;
    case 11: return -ERANGE;            /* OUT_OF_RANGE: a compacted revision */
    default: return -EIO;
    }
}

int tern__etcd_call(etcd *e, const char *path, json_t *req, json_t **resp, tern_ctx *ctx)
{
    *resp = NULL;
    tern_http_client_response *r;
    int rc = post(e, path, req, &r, ctx);
    if (rc < 0)
        return rc;
    const char *data;
    size_t len;
    rc = tern_http_client_response_body(r, MAX_ANSWER, &data, &len);
    json_t *j = NULL;
    if (rc == 0) {
        j = json_loadb(data, len, 0, NULL);
        if (!j || !json_is_object(j))
            rc = -EBADMSG;
        else if (json_object_get(j, "error") || tern_http_client_response_status(r) != 200)
            rc = grpc_code_errno(tern__etcd_int(json_object_get(j, "code"), 2));
    }
    tern_http_client_response_free(r);
    if (rc < 0) {
        json_decref(j);
        return rc;
    }
    *resp = j;
    return 0;
}

int tern__etcd_stream(etcd *e, const char *path, json_t *req, tern_http_client_response **out,
                      tern_ctx *ctx)
{
    int rc = post(e, path, req, out, ctx);
    if (rc == 0 && tern_http_client_response_status(*out) != 200) {
        tern_http_client_response_free(*out);
        *out = NULL;
        rc = -EIO;
    }
    return rc;
}

json_t *tern__etcd_b64(const void *data, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)n);
    json_t *s = json_string(out);
    free(out);
    return s;
}

char *tern__etcd_unb64(const json_t *v, size_t *len)
{
    if (!json_is_string(v))
        return NULL;
    const char *in = json_string_value(v);
    size_t n = json_string_length(v);
    if (n % 4)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int got = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n) : 0;
    if (got < 0) {
        free(out);
        return NULL;
    }
    /* DecodeBlock counts the padding's zero bytes in */
    for (size_t i = n; i > 0 && in[i - 1] == '='; i--)
        got--;
    out[got] = 0;
    *len = (size_t)got;
    return out;
}

void tern__etcd_prefix_end(const char *prefix, char *out, size_t *len)
{
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    while (n > 0 && (unsigned char)out[n - 1] == 0xff)
        n--;
    if (n == 0) {                       /* every key: etcd's "\0" */
        out[0] = 0;
        *len = 1;
        return;
    }
    out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
    *len = n;
}

int64_t tern__etcd_int(const json_t *v, int64_t def)
{
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_string(v)) {
        char *end;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (*end == 0 && end != json_string_value(v))
            return (int64_t)x;
    }
    return def;
}
