/*
 * js.c - JetStream through its JSON API ($JS.API.*), on request-reply.
 *
 * Every API call is a request whose answer is a JSON object; an "error"
 * member ({"code":404,"err_code":10059,"description":"stream not found"})
 * becomes -ENOENT for a 404 and -EREMOTEIO otherwise, its err_code and
 * description kept for tern_nats_js_last_error.  A publish to a stream's
 * subject is answered by a PubAck ({"stream":"S","seq":7,"duplicate":true}).
 * A pull fetch subscribes a fresh inbox, asks CONSUMER.MSG.NEXT for a batch
 * with an expiry, and collects messages until the batch is full or a
 * status message (404 no messages, 408 request expired, 409) ends it.
 * Acks are publishes to the message's reply subject, whose tokens are its
 * metadata ($JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>,
 * or the v2 form with domain and account hash before the stream).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "events/nats/internal.h"

enum { FETCH_MAX = 256 };

static void set_err(tern_nats *nc, int code, const char *desc)
{
    tern_mutex_lock(&nc->mu);
    nc->js_err = code;
    snprintf(nc->js_err_desc, sizeof nc->js_err_desc, "%s", desc ? desc : "");
    tern_mutex_unlock(&nc->mu);
}

int tern_nats_js_last_error(tern_nats *nc, char *buf, size_t size)
{
    TERN_CHECK_ARG(nc);
    tern_mutex_lock(&nc->mu);
    int code = nc->js_err;
    if (buf && size)
        snprintf(buf, size, "%s", nc->js_err_desc);
    tern_mutex_unlock(&nc->mu);
    return code;
}

/* The API error in j, if any: 0, -ENOENT or -EREMOTEIO. */
static int api_error(tern_nats *nc, json_t *j)
{
    json_t *e = json_object_get(j, "error");
    if (!e)
        return 0;
    int code = (int)json_integer_value(json_object_get(e, "code"));
    int ec = (int)json_integer_value(json_object_get(e, "err_code"));
    set_err(nc, ec ? ec : code, json_string_value(json_object_get(e, "description")));
    return code == 404 ? -ENOENT : -EREMOTEIO;
}

/* Request subject with body (may be NULL: empty); *out the parsed answer. */
static int api(tern_nats *nc, const char *subject, json_t *body, json_t **out, tern_ctx *ctx)
{
    *out = NULL;
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !s)
        return -ENOMEM;
    tern_nats_msg *m;
    int err = tern_nats_request(nc, subject, s, s ? strlen(s) : 0, &m, ctx);
    free(s);
    if (err)
        return err;
    json_t *j = json_loadb(m->data, m->len, 0, NULL);
    tern_nats_msg_free(m);
    if (!json_is_object(j)) {
        json_decref(j);
        return -EPROTO;
    }
    err = api_error(nc, j);
    if (err) {
        json_decref(j);
        return err;
    }
    *out = j;
    return 0;
}

static int api_simple(tern_nats *nc, const char *subject, json_t *body, tern_ctx *ctx)
{
    json_t *r;
    int err = api(nc, subject, body, &r, ctx);
    json_decref(r);
    return err;
}

static bool valid_name(const char *s)
{
    if (!tern__nats_valid_subject(s))
        return false;
    for (; *s; s++)
        if (*s == '.' || *s == '*' || *s == '>')
            return false;
    return true;
}

static json_t *stream_json(const tern_nats_stream_config *c)
{
    json_t *subs = json_array();
    for (int i = 0; i < c->nsubjects; i++)
        json_array_append_new(subs, json_string(c->subjects[i]));
    json_t *j = json_pack("{s:s,s:o,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:i}", "name", c->name,
                          "subjects", subs, "storage", c->memory ? "memory" : "file",
                          "retention", "limits", "discard", "old", "max_age",
                          (json_int_t)c->max_age, "max_msgs",
                          (json_int_t)(c->max_msgs ? c->max_msgs : -1), "max_bytes",
                          (json_int_t)(c->max_bytes ? c->max_bytes : -1), "duplicate_window",
                          (json_int_t)(c->duplicate_window ? c->duplicate_window
                                                           : 120 * TERN_SEC),
                          "num_replicas", c->replicas ? c->replicas : 1);
    return j;
}

static int stream_put(tern_nats *nc, const tern_nats_stream_config *cfg, const char *verb,
                      tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(cfg);
    if (!cfg->name || !valid_name(cfg->name) || cfg->nsubjects < 0 ||
        (cfg->nsubjects && !cfg->subjects))
        return -EINVAL;
    json_t *j = stream_json(cfg);
    if (!j)
        return -ENOMEM;
    char subj[256];
    snprintf(subj, sizeof subj, "$JS.API.STREAM.%s.%s", verb, cfg->name);
    int err = api_simple(nc, subj, j, ctx);
    json_decref(j);
    return err;
}

int tern_nats_js_stream_create(tern_nats *nc, const tern_nats_stream_config *cfg,
                               tern_ctx *ctx)
{
    return stream_put(nc, cfg, "CREATE", ctx);
}

int tern_nats_js_stream_update(tern_nats *nc, const tern_nats_stream_config *cfg,
                               tern_ctx *ctx)
{
    return stream_put(nc, cfg, "UPDATE", ctx);
}

int tern_nats_js_stream_info(tern_nats *nc, const char *stream, tern_nats_stream_info *out,
                             tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(out);
    if (!stream || !valid_name(stream))
        return -EINVAL;
    char subj[256];
    snprintf(subj, sizeof subj, "$JS.API.STREAM.INFO.%s", stream);
    json_t *r;
    int err = api(nc, subj, NULL, &r, ctx);
    if (err)
        return err;
    json_t *st = json_object_get(r, "state");
    *out = (tern_nats_stream_info){
        .messages = (uint64_t)json_integer_value(json_object_get(st, "messages")),
        .bytes = (uint64_t)json_integer_value(json_object_get(st, "bytes")),
        .first_seq = (uint64_t)json_integer_value(json_object_get(st, "first_seq")),
        .last_seq = (uint64_t)json_integer_value(json_object_get(st, "last_seq")),
        .consumers = (int)json_integer_value(json_object_get(st, "consumer_count")),
    };
    json_decref(r);
    return 0;
}

int tern_nats_js_stream_delete(tern_nats *nc, const char *stream, tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    if (!stream || !valid_name(stream))
        return -EINVAL;
    char subj[256];
    snprintf(subj, sizeof subj, "$JS.API.STREAM.DELETE.%s", stream);
    return api_simple(nc, subj, NULL, ctx);
}

int tern_nats_js_consumer_create(tern_nats *nc, const char *stream,
                                 const tern_nats_consumer_config *cfg, tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(cfg);
    if (!stream || !valid_name(stream) || !cfg->durable || !valid_name(cfg->durable))
        return -EINVAL;
    json_t *c = json_pack("{s:s,s:s,s:s,s:I,s:i,s:i,s:s}", "durable_name", cfg->durable,
                          "deliver_policy", "all", "ack_policy", "explicit", "ack_wait",
                          (json_int_t)(cfg->ack_wait ? cfg->ack_wait : 30 * TERN_SEC),
                          "max_deliver", cfg->max_deliver ? cfg->max_deliver : -1,
                          "max_ack_pending", cfg->max_ack_pending ? cfg->max_ack_pending : 1000,
                          "replay_policy", "instant");
    if (c && cfg->filter_subject)
        json_object_set_new(c, "filter_subject", json_string(cfg->filter_subject));
    json_t *j = c ? json_pack("{s:s,s:o}", "stream_name", stream, "config", c) : NULL;
    if (!j)
        return -ENOMEM;
    char subj[384];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.DURABLE.CREATE.%s.%s", stream, cfg->durable);
    int err = api_simple(nc, subj, j, ctx);
    json_decref(j);
    return err;
}

int tern_nats_js_consumer_delete(tern_nats *nc, const char *stream, const char *durable,
                                 tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    if (!stream || !valid_name(stream) || !durable || !valid_name(durable))
        return -EINVAL;
    char subj[384];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.DELETE.%s.%s", stream, durable);
    return api_simple(nc, subj, NULL, ctx);
}

int tern_nats_js_publish(tern_nats *nc, const char *subject, const void *data, size_t len,
                         const char *msg_id, tern_nats_pub_ack *ack, tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    tern_nats_header h = {"Nats-Msg-Id", msg_id};
    tern_nats_msg *m;
    int err = tern_nats_request_msg(nc, subject, &h, msg_id ? 1 : 0, data, len, &m, ctx);
    if (err)
        return err;
    json_t *j = json_loadb(m->data, m->len, 0, NULL);
    tern_nats_msg_free(m);
    if (!json_is_object(j))
        err = -EPROTO;
    else
        err = api_error(nc, j);
    if (!err && ack) {
        *ack = (tern_nats_pub_ack){
            .seq = (uint64_t)json_integer_value(json_object_get(j, "seq")),
            .duplicate = json_is_true(json_object_get(j, "duplicate")),
        };
        snprintf(ack->stream, sizeof ack->stream, "%s",
                 json_string_value(json_object_get(j, "stream")) ?: "");
    }
    json_decref(j);
    return err;
}

int tern_nats_js_fetch(tern_nats *nc, const char *stream, const char *durable, int batch,
                       int64_t expires, tern_nats_msg **msgs, int *n, tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(n);
    *n = 0;
    if (!stream || !valid_name(stream) || !durable || !valid_name(durable) || batch < 1 ||
        batch > FETCH_MAX || !msgs || expires < 0)
        return -EINVAL;
    if (!expires)
        expires = 5 * TERN_SEC;
    int64_t left = tern_ctx_remaining(ctx);
    if (left >= 0 && left < expires + 50 * TERN_MS)   /* answer before the caller's deadline */
        expires = left > 100 * TERN_MS ? left - 50 * TERN_MS : left / 2;
    if (expires <= 0)
        return tern_ctx_err(ctx) ? tern_ctx_err(ctx) : -ETIMEDOUT;
    char nuid[23], inbox[48];
    tern_nats_nuid(nuid);
    snprintf(inbox, sizeof inbox, "_INBOX.%s", nuid);
    tern_nats_sub *sub;
    tern_nats_sub_options so = {.pending_msgs = batch + 16};
    int err = tern_nats_subscribe(nc, inbox, &so, &sub);
    if (err)
        return err;
    char subj[384], body[96];
    snprintf(subj, sizeof subj, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, durable);
    int bl = snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%lld}", batch,
                      (long long)expires);
    err = tern_nats_publish_msg(nc, subj, inbox, NULL, 0, body, (size_t)bl, ctx);
    /* The server ends the request itself at expiry (408); this bounds a
     * lost answer. */
    tern_ctx *wctx = NULL;
    if (!err)
        err = tern_ctx_with_timeout(ctx, expires + TERN_SEC, &wctx);
    while (!err && *n < batch) {
        tern_nats_msg *m;
        err = tern_nats_sub_next(sub, &m, wctx);
        if (err)
            break;
        int st = tern_nats_msg_status(m);
        if (st == 100) {    /* a heartbeat */
            tern_nats_msg_free(m);
            continue;
        }
        if (st) {
            tern_nats_msg_free(m);
            if (st == 503)          /* no JetStream at all */
                err = -ENXIO;
            else if (st == 409 && *n == 0)
                err = -EREMOTEIO;
            break;              /* 404: nothing now; 408: expired */
        }
        msgs[(*n)++] = m;
    }
    if (err == -ETIMEDOUT && !tern_ctx_err(ctx))
        err = 0;    /* our own bound, not the caller's */
    tern_ctx_free(wctx);
    tern_nats_sub_free(sub);
    return err;
}

static int ack_with(tern_nats *nc, const tern_nats_msg *m, const char *body, tern_ctx *ctx)
{
    TERN_CHECK_ARG(nc);
    TERN_CHECK_ARG(m);
    if (!m->reply)
        return -EINVAL;
    return tern_nats_publish(nc, m->reply, body, strlen(body), ctx);
}

int tern_nats_js_ack(tern_nats *nc, const tern_nats_msg *m, tern_ctx *ctx)
{
    return ack_with(nc, m, "+ACK", ctx);
}

int tern_nats_js_nak(tern_nats *nc, const tern_nats_msg *m, int64_t delay, tern_ctx *ctx)
{
    if (delay <= 0)
        return ack_with(nc, m, "-NAK", ctx);
    char b[64];
    snprintf(b, sizeof b, "-NAK {\"delay\":%lld}", (long long)delay);
    return ack_with(nc, m, b, ctx);
}

int tern_nats_js_term(tern_nats *nc, const tern_nats_msg *m, tern_ctx *ctx)
{
    return ack_with(nc, m, "+TERM", ctx);
}

int tern_nats_js_in_progress(tern_nats *nc, const tern_nats_msg *m, tern_ctx *ctx)
{
    return ack_with(nc, m, "+WPI", ctx);
}

static bool tok_u64(const char *s, size_t n, uint64_t *out)
{
    if (!n || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

int tern_nats_js_metadata(const tern_nats_msg *m, tern_nats_js_meta *out)
{
    TERN_CHECK_ARG(m);
    TERN_CHECK_ARG(out);
    const char *r = m->reply;
    if (!r || strncmp(r, "$JS.ACK.", 8) != 0)
        return -EINVAL;
    const char *tok[16];
    size_t len[16];
    int nt = 0;
    for (const char *p = r;;) {
        const char *d = strchr(p, '.');
        if (nt == 16)
            return -EINVAL;
        tok[nt] = p;
        len[nt++] = d ? (size_t)(d - p) : strlen(p);
        if (!d)
            break;
        p = d + 1;
    }
    int b = nt == 9 ? 2 : nt >= 11 ? 4 : -1;
    if (b < 0 || len[b] >= sizeof out->stream || len[b + 1] >= sizeof out->consumer)
        return -EINVAL;
    uint64_t ts;
    if (!tok_u64(tok[b + 2], len[b + 2], &out->num_delivered) ||
        !tok_u64(tok[b + 3], len[b + 3], &out->stream_seq) ||
        !tok_u64(tok[b + 4], len[b + 4], &out->consumer_seq) ||
        !tok_u64(tok[b + 5], len[b + 5], &ts) ||
        !tok_u64(tok[b + 6], len[b + 6], &out->num_pending))
        return -EINVAL;
    out->timestamp = (int64_t)ts;
    memcpy(out->stream, tok[b], len[b]);
    out->stream[len[b]] = 0;
    memcpy(out->consumer, tok[b + 1], len[b + 1]);
    out->consumer[len[b + 1]] = 0;
    return 0;
}
