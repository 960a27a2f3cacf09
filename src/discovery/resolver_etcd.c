/*
 * resolver_etcd.c - endpoints registered in etcd under a key prefix
 * (tern_etcd_registration_new writes them): the prefix's range at a
 * revision, then a watch from that revision + 1 applying puts and deletes.
 *
 * A watch that ends (etcd restarted, the connection cut) is resumed from
 * one past the last revision seen, after a backoff, so nothing between is
 * missed; if etcd compacted past it (the watch is cancelled with a
 * compact_revision), the whole range is read again.  Each change of the set
 * is delivered whole (sorted by key); while etcd is unreachable the last
 * set stays and the failure is delivered once.
 *
 * A value is the endpoint: "host:port", or {"addr": ..., "weight": n}.  A
 * value that is neither is skipped (logged); two keys with one addr give
 * one endpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "discovery/etcd.h"
#include "tern/discovery.h"
#include "tern/error.h"
#include "tern/log.h"
#include "tern/runtime.h"
#include "tern/sync.h"

#define READ_CHUNK 16384
#define MAX_MESSAGE (8 << 20)

typedef struct kv {
    char *key;
    char *addr;
    uint32_t weight;
} kv;

typedef struct etcd_res {
    etcd e;
    char *prefix;
    int64_t retry_min, retry_max;
    tern_resolver_update_fn *update;
    void *arg;
    tern_ctx *stop;
    tern_waitgroup running;
    kv *kvs;                    /* the current set, sorted by key */
    size_t n, cap;
    int64_t rev;                /* everything up to here is applied */
    int last_err;
} etcd_res;

/* ---- the set ---- */

static void kvs_clear(etcd_res *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->kvs[i].key);
        free(r->kvs[i].addr);
    }
    r->n = 0;
}

static size_t find(const etcd_res *r, const char *key, bool *found)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->kvs[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* The endpoint a value names; -EBADMSG when it names none. */
static int parse_value(const char *v, size_t len, char **addr, uint32_t *weight)
{
    *weight = 1;
    if (len && v[0] == '{') {
        json_t *j = json_loadb(v, len, 0, NULL);
        json_t *a = json_object_get(j, "addr"), *w = json_object_get(j, "weight");
        int rc = -EBADMSG;
        if (json_is_string(a) && json_string_length(a) && (!w || json_is_integer(w))) {
            json_int_t wv = w ? json_integer_value(w) : 1;
            if (wv >= 0 && wv <= 10000) {
                *weight = wv ? (uint32_t)wv : 1;
                *addr = strdup(json_string_value(a));
                rc = *addr ? 0 : -ENOMEM;
            }
        }
        json_decref(j);
        return rc;
    }
    if (!len || memchr(v, ' ', len) || memchr(v, '\n', len) || strlen(v) != len)
        return -EBADMSG;
    *addr = strdup(v);
    return *addr ? 0 : -ENOMEM;
}

/* Apply a put of key = value (both decoded); -ENOMEM only. */
static int apply_put(etcd_res *r, char *key, const char *value, size_t vlen)
{
    char *addr;
    uint32_t weight;
    int rc = parse_value(value, vlen, &addr, &weight);
    if (rc == -EBADMSG) {
        tern_log_warn("etcd resolver skips a value that is no endpoint", TERN_LOG_STR("key", key));
        free(key);
        return 0;
    }
    if (rc < 0) {
        free(key);
        return rc;
    }
    bool found;
    size_t i = find(r, key, &found);
    if (found) {
        free(key);
        free(r->kvs[i].addr);
        r->kvs[i].addr = addr;
        r->kvs[i].weight = weight;
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        kv *k = realloc(r->kvs, cap * sizeof *k);
        if (!k) {
            free(key);
            free(addr);
            return -ENOMEM;
        }
        r->kvs = k;
        r->cap = cap;
    }
    memmove(r->kvs + i + 1, r->kvs + i, (r->n - i) * sizeof *r->kvs);
    r->kvs[i] = (kv){.key = key, .addr = addr, .weight = weight};
    r->n++;
    return 0;
}

static void apply_delete(etcd_res *r, const char *key)
{
    bool found;
    size_t i = find(r, key, &found);
    if (!found)
        return;
    free(r->kvs[i].key);
    free(r->kvs[i].addr);
    memmove(r->kvs + i, r->kvs + i + 1, (r->n - i - 1) * sizeof *r->kvs);
    r->n--;
}

/* A kv object of etcd's (base64 key and value) applied as a put. */
static int put_kv(etcd_res *r, const json_t *kvj)
{
    size_t klen, vlen;
    char *key = tern__etcd_unb64(json_object_get(kvj, "key"), &klen);
    if (!key)
        return -EBADMSG;
    const json_t *vj = json_object_get(kvj, "value");
    char *value = vj ? tern__etcd_unb64(vj, &vlen) : strdup("");
    if (!vj)
        vlen = 0;
    if (!value) {
        free(key);
        return -EBADMSG;
    }
    int rc = apply_put(r, key, value, vlen);
    free(value);
    return rc;
}

static void deliver(etcd_res *r)
{
    tern_endpoint *eps = r->n ? calloc(r->n, sizeof *eps) : NULL;
    if (r->n && !eps)
        return;                         /* the next change delivers again */
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = !strcmp(eps[j].addr, r->kvs[i].addr);
        if (!dup)
            eps[n++] = (tern_endpoint){.addr = r->kvs[i].addr, .weight = r->kvs[i].weight};
    }
    r->update(eps, n, 0, r->arg);
    free(eps);
}

static void fail(etcd_res *r, int rc)
{
    if (rc == r->last_err)
        return;
    tern_log_warn("etcd resolver cannot reach etcd, keeping the last set", TERN_LOG_STR("prefix", r->prefix),
                  TERN_LOG_STR("error", tern_strerror(rc)));
    r->last_err = rc;
    r->update(NULL, 0, rc, r->arg);
}

/* ---- range and watch ---- */

static json_t *range_of(const etcd_res *r)
{
    char end[512];
    size_t elen;
    tern__etcd_prefix_end(r->prefix, end, &elen);
    return json_pack("{s:o,s:o}", "key", tern__etcd_b64(r->prefix, strlen(r->prefix)), "range_end",
                     tern__etcd_b64(end, elen));
}

static int load(etcd_res *r)
{
    json_t *req = range_of(r), *resp;
    if (!req)
        return -ENOMEM;
    int rc = tern__etcd_call(&r->e, "/v3/kv/range", req, &resp, r->stop);
    json_decref(req);
    if (rc < 0)
        return rc;
    kvs_clear(r);
    size_t i;
    json_t *kvj;
    json_array_foreach(json_object_get(resp, "kvs"), i, kvj) {
        rc = put_kv(r, kvj);
        if (rc == -ENOMEM)
            break;
        rc = 0;
    }
    r->rev = tern__etcd_int(json_object_get(json_object_get(resp, "header"), "revision"), 0);
    json_decref(resp);
    if (rc == 0) {
        r->last_err = 0;
        deliver(r);
    }
    return rc;
}

/* One watch response message.  1: go on; 0: the watch ended normally;
 * -ERANGE: compacted (reload); -errno. */
static int on_message(etcd_res *r, json_t *msg)
{
    json_t *res = json_object_get(msg, "result");
    if (!res)
        return json_object_get(msg, "error") ? -EIO : 1;
    if (tern__etcd_int(json_object_get(res, "compact_revision"), 0) > 0)
        return -ERANGE;
    if (json_is_true(json_object_get(res, "canceled")))
        return 0;
    json_t *events = json_object_get(res, "events");
    if (!json_array_size(events))
        return 1;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        json_t *kvj = json_object_get(ev, "kv");
        int64_t mod = tern__etcd_int(json_object_get(kvj, "mod_revision"), 0);
        if (mod > r->rev)
            r->rev = mod;
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (type && !strcmp(type, "DELETE")) {
            size_t klen;
            char *key = tern__etcd_unb64(json_object_get(kvj, "key"), &klen);
            if (key)
                apply_delete(r, key);
            free(key);
        } else if (put_kv(r, kvj) == -ENOMEM) {
            return -ENOMEM;
        }
    }
    deliver(r);
    return 1;
}

/* Watch from r->rev + 1 until it ends. */
static int watch(etcd_res *r)
{
    json_t *create = range_of(r);
    char start[24];
    snprintf(start, sizeof start, "%" PRId64, r->rev + 1);
    if (!create || json_object_set_new(create, "start_revision", json_string(start)) < 0) {
        json_decref(create);
        return -ENOMEM;
    }
    json_t *req = json_pack("{s:o}", "create_request", create);
    if (!req)
        return -ENOMEM;
    tern_http_client_response *resp;
    int rc = tern__etcd_stream(&r->e, "/v3/watch", req, &resp, r->stop);
    json_decref(req);
    if (rc < 0)
        return rc;
    r->last_err = 0;
    char *buf = malloc(READ_CHUNK);
    size_t len = 0, cap = READ_CHUNK;
    rc = buf ? 1 : -ENOMEM;
    while (rc == 1) {
        if (len == cap) {
            char *b = cap < MAX_MESSAGE ? realloc(buf, cap * 2) : NULL;
            if (!b) {
                rc = -EMSGSIZE;
                break;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t got = tern_http_client_response_read(resp, buf + len, cap - len);
        if (got <= 0) {
            rc = got == 0 ? -ECONNRESET : (int)got;
            break;
        }
        len += (size_t)got;
        /* every complete JSON object in the buffer (they come one per line) */
        size_t off = 0;
        while (rc == 1 && off < len) {
            while (off < len && (buf[off] == '\n' || buf[off] == '\r' || buf[off] == ' '))
                off++;
            if (off == len)
                break;
            json_error_t jerr;
            json_t *msg = json_loadb(buf + off, len - off, JSON_DISABLE_EOF_CHECK, &jerr);
            if (!msg)
                break;                  /* incomplete: read more */
            off += (size_t)jerr.position;
            rc = on_message(r, msg);
            json_decref(msg);
        }
        memmove(buf, buf + off, len - off);
        len -= off;
    }
    free(buf);
    tern_http_client_response_free(resp);
    return rc;
}

static int watch_co(void *arg)
{
    etcd_res *r = arg;
    int64_t backoff = r->retry_min;
    bool loaded = false;
    while (!tern_ctx_err(r->stop)) {
        int rc = loaded ? 0 : load(r);
        if (rc == 0) {
            loaded = true;
            rc = watch(r);
            if (rc == -ERANGE) {
                loaded = false;         /* compacted past us: read it all again */
                backoff = r->retry_min;
                continue;
            }
            if (rc == 0 || r->last_err == 0)
                backoff = r->retry_min; /* it was up: come back soon */
        }
        if (tern_ctx_err(r->stop))
            break;
        if (rc < 0)
            fail(r, rc);
        if (tern_ctx_sleep(backoff, r->stop) != 0)
            break;
        backoff = backoff * 2 > r->retry_max ? r->retry_max : backoff * 2;
    }
    tern_waitgroup_done(&r->running);
    return 0;
}

static int etcd_start(void *impl, tern_resolver_update_fn *update, void *arg)
{
    etcd_res *r = impl;
    r->update = update;
    r->arg = arg;
    tern_waitgroup_add(&r->running, 1);
    int rc = tern_go(watch_co, r);
    if (rc < 0)
        tern_waitgroup_done(&r->running);
    return rc;
}

static void etcd_stop(void *impl)
{
    etcd_res *r = impl;
    tern_ctx_cancel(r->stop);
    (void)tern_waitgroup_wait(&r->running, NULL);
}

static void etcd_free(void *impl)
{
    etcd_res *r = impl;
    kvs_clear(r);
    free(r->kvs);
    tern__etcd_close(&r->e);
    tern_ctx_free(r->stop);
    free(r->prefix);
    free(r);
}

static const tern_resolver_ops etcd_ops = {etcd_start, etcd_stop, etcd_free};

int tern_resolver_etcd_new(const tern_resolver_etcd_options *o, tern_resolver **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o || !o->prefix || !*o->prefix || strlen(o->prefix) > 500 || o->retry_min < 0 || o->retry_max < 0)
        return -EINVAL;
    etcd_res *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->retry_min = o->retry_min ? o->retry_min : 500 * TERN_MS;
    r->retry_max = o->retry_max ? o->retry_max : 10 * TERN_SEC;
    if (r->retry_max < r->retry_min)
        r->retry_max = r->retry_min;
    int rc = tern__etcd_open(&r->e, o->endpoint, o->tls);
    if (rc == 0 && !(r->prefix = strdup(o->prefix)))
        rc = -ENOMEM;
    if (rc == 0 && tern_ctx_with_cancel(NULL, &r->stop) < 0)
        rc = -ENOMEM;
    if (rc < 0) {
        etcd_free(r);
        return rc;
    }
    return tern_resolver_new(&etcd_ops, r, out);
}
