/*
 * request.c - request-reply, messages, headers and NUIDs.
 *
 * Requests share one subscription, the client's inbox "_INBOX.<nuid>.*"
 * (made at the first request, resubscribed like any other): each request
 * gets a token, publishes with reply subject "<inbox><token>" and parks;
 * the reader hands the answer for that token straight to it (no delivery
 * coroutine).  An answer whose request has gone (its ctx ended) is
 * dropped.  A request whose bytes went out on a connection that then
 * broke ends with -ECONNRESET at once: its answer, if the server saw it
 * at all, went to the dead connection, so waiting for it would only wait
 * out the caller's deadline (nats.go waits; a JetStream publish retried
 * with its Nats-Msg-Id is deduplicated).  One still in the reconnect
 * buffer goes out on the next connection.  With no_responders on, a request to a subject nobody
 * subscribes to is answered at once with a header-only "NATS/1.0 503":
 * that is -ENXIO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/rand.h"
#include "base/spin.h"
#include "events/nats/internal.h"

typedef struct req {
    tern__nats_msg *msg;
    int err;
    bool done;
    uint64_t take;              /* nc->out_takes when its bytes were appended */
    tern_cond cond;
} req;

/* Small messages come from a process-wide cache of fixed-size blocks: a
 * subscriber receiving a flood frees them on another thread than the one
 * that allocated them, and glibc then trims and re-faults the reader's
 * arena over and over (a third of the subscriber's time in page faults,
 * measured with perf).  The cache keeps at most CACHE_MAX blocks. */
enum { SMALL = 512, CACHE_MAX = 8192 };

static struct {
    tern__spin lock;
    void *head;
    int n;
} cache = {TERN_SPIN_INIT, NULL, 0};

static tern__nats_msg *small_get(void)
{
    tern__spin_lock(&cache.lock);
    void *b = cache.head;
    if (b) {
        cache.head = *(void **)b;
        cache.n--;
    }
    tern__spin_unlock(&cache.lock);
    return b ? b : malloc(SMALL);
}

void tern__nats_msg_release(tern__nats_msg *m)
{
    if (!m)
        return;
    if (!m->small) {
        free(m);
        return;
    }
    tern__spin_lock(&cache.lock);
    if (cache.n < CACHE_MAX) {
        *(void **)m = cache.head;
        cache.head = m;
        cache.n++;
        m = NULL;
    }
    tern__spin_unlock(&cache.lock);
    free(m);
}

tern__nats_msg *tern__nats_msg_from_op(const tern__nats_op *op)
{
    size_t need = sizeof(tern__nats_msg) + op->subject_len + 1 + (op->reply ? op->reply_len + 1 : 0) +
                  op->hdr_len + op->data_len + 1;
    bool small = need <= SMALL;
    tern__nats_msg *m = small ? small_get() : malloc(need);
    if (!m)
        return NULL;
    m->small = small;
    char *p = (char *)(m + 1);
    m->next = NULL;
    m->size = op->hdr_len + op->data_len;
    memcpy(p, op->subject, op->subject_len);
    p[op->subject_len] = 0;
    m->pub.subject = p;
    p += op->subject_len + 1;
    m->pub.reply = NULL;
    if (op->reply) {
        memcpy(p, op->reply, op->reply_len);
        p[op->reply_len] = 0;
        m->pub.reply = p;
        p += op->reply_len + 1;
    }
    m->pub.hdr = NULL;
    m->pub.hdr_len = op->hdr_len;
    if (op->hdr) {
        memcpy(p, op->hdr, op->hdr_len);
        m->pub.hdr = p;
        p += op->hdr_len;
    }
    if (op->data_len)
        memcpy(p, op->data, op->data_len);
    p[op->data_len] = 0;
    m->pub.data = p;
    m->pub.len = op->data_len;
    return m;
}

void tern_nats_msg_free(tern_nats_msg *m)
{
    tern__nats_msg_release((tern__nats_msg *)m);    /* the one it opens */
}

const char *tern_nats_msg_header(const tern_nats_msg *m, const char *key, size_t *len)
{
    TERN_CHECK_ARG(m);
    TERN_CHECK_ARG(key);
    return tern__nats_hdr_get(m->hdr, m->hdr_len, key, len);
}

int tern_nats_msg_status(const tern_nats_msg *m)
{
    TERN_CHECK_ARG(m);
    return tern__nats_hdr_status(m->hdr, m->hdr_len);
}

void tern_nats_nuid(char out[23])
{
    static const char digits[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint8_t r[22];
    tern__rand_fill(r, sizeof r);
    for (int i = 0; i < 22; i++)
        out[i] = digits[r[i] % 62];
    out[22] = 0;
}

void tern__nats_resp_deliver(tern_nats *nc, tern__nats_msg *m)
{
    const char *s = m->pub.subject;
    size_t pl = strlen(nc->inbox);
    uint64_t token = 0;
    if (strncmp(s, nc->inbox, pl) == 0)
        token = strtoull(s + pl, NULL, 10);
    req *r = token ? tern__nats_map_del(&nc->reqs, token) : NULL;
    if (!r) {
        tern__nats_msg_release(m);
        return;
    }
    r->msg = m;
    r->done = true;
    tern_cond_signal(&r->cond);
}

void tern__nats_reqs_fail(tern_nats *nc, int err)
{
    TERN__NATS_MAP_EACH(&nc->reqs, i) {
        req *r = nc->reqs.vals[i];
        r->err = err;
        r->done = true;
        tern_cond_signal(&r->cond);
    }
    tern__nats_map_free(&nc->reqs);
}

void tern__nats_reqs_fail_sent(tern_nats *nc, int err)
{
    /* Marked, not deleted: deletion shifts entries under the walk.  Each
     * waiter deletes its own token when it wakes with an error. */
    TERN__NATS_MAP_EACH(&nc->reqs, i) {
        req *r = nc->reqs.vals[i];
        if (r->done || r->take >= nc->out_takes)
            continue;
        r->err = err;
        r->done = true;
        tern_cond_signal(&r->cond);
    }
}

int tern_nats_request(tern_nats *nc, const char *subject, const void *data, size_t len,
                      tern_nats_msg **out, tern_ctx *ctx)
{
    return tern_nats_request_msg(nc, subject, NULL, 0, data, len, out, ctx);
}

int tern_nats_request_msg(tern_nats *nc, const char *subject, const tern_nats_header *hdrs,
                          int nhdr, const void *data, size_t len, tern_nats_msg **out,
                          tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!tern__nats_valid_subject(subject) || nhdr < 0 || (nhdr && !hdrs) || (len && !data))
        return -EINVAL;
    req r = {0};
    tern_mutex_lock(&nc->mu);
    int err = tern__nats_pub_check(nc, len, ctx);
    if (!err && !nc->resp_sub) {
        char sub[48];
        snprintf(sub, sizeof sub, "%s*", nc->inbox);
        err = tern__nats_sub_new_locked(nc, sub, NULL, &nc->resp_sub);
        if (!err)
            nc->resp_sub->internal = true;
    }
    uint64_t token = ++nc->next_token;
    if (!err)
        err = tern__nats_map_put(&nc->reqs, token, &r);
    if (!err) {
        char reply[64];
        snprintf(reply, sizeof reply, "%s%llu", nc->inbox, (unsigned long long)token);
        err = tern__nats_out_pub(nc, subject, reply, hdrs, nhdr, data, len);
        r.take = nc->out_takes;
        if (err)
            tern__nats_map_del(&nc->reqs, token);
    }
    while (!err && !r.done) {
        err = tern_cond_wait(&r.cond, &nc->mu, ctx);
        if (err && !r.done)
            tern__nats_map_del(&nc->reqs, token);
        else
            err = 0;
    }
    if (!err && r.err)      /* failed by a broken connection: still mapped */
        tern__nats_map_del(&nc->reqs, token);
    tern_mutex_unlock(&nc->mu);
    if (!err)
        err = r.err;
    if (err) {
        tern__nats_msg_release(r.msg);
        return err;
    }
    if (r.msg->pub.len == 0 && tern__nats_hdr_status(r.msg->pub.hdr, r.msg->pub.hdr_len) == 503) {
        tern__nats_msg_release(r.msg);
        return -ENXIO;
    }
    *out = &r.msg->pub;
    return 0;
}
