/*
 * conn.c - one connection's handshake (tern__nats_handshake): dial, read
 * the server's INFO, send CONNECT and a PING, and wait for the PONG that
 * says the server accepted us.  The client (client.c) runs it for the
 * first connection and for every reconnection; subscriptions are sent by
 * the client after it.
 *
 * CONNECT asks for verbose off (no +OK per operation), pedantic off,
 * headers and no_responders on (a request to a subject nobody listens on
 * gets a 503 status message at once instead of a timeout).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/nats/internal.h"

enum { DEFAULT_MAX_PAYLOAD = 1024 * 1024, READ_CHUNK = 16 * 1024 };

void tern__nats_info_clear(tern__nats_info *in)
{
    for (int i = 0; i < in->n_urls; i++)
        free(in->connect_urls[i]);
    free(in->connect_urls);
    *in = (tern__nats_info){0};
}

int tern__nats_info_parse(const char *json, size_t len, tern__nats_info *out)
{
    *out = (tern__nats_info){.max_payload = DEFAULT_MAX_PAYLOAD};
    json_t *j = json_loadb(json, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return -EPROTO;
    }
    json_int_t mp = json_integer_value(json_object_get(j, "max_payload"));
    if (mp > 0)
        out->max_payload = (size_t)mp;
    out->headers = json_is_true(json_object_get(j, "headers"));
    json_t *urls = json_object_get(j, "connect_urls");
    size_t n = json_array_size(urls);
    if (n) {
        out->connect_urls = calloc(n, sizeof *out->connect_urls);
        for (size_t i = 0; out->connect_urls && i < n; i++) {
            const char *u = json_string_value(json_array_get(urls, i));
            if (u && (out->connect_urls[out->n_urls] = strdup(u)))
                out->n_urls++;
        }
    }
    json_decref(j);
    return 0;
}

static char *connect_json(const tern_nats_options *o)
{
    json_t *j = json_pack("{s:b,s:b,s:b,s:b,s:s,s:s,s:s,s:i}", "verbose", 0, "pedantic", 0,
                          "headers", 1, "no_responders", 1, "name", o->name, "lang", "c",
                          "version", "tern", "protocol", 1);
    if (!j)
        return NULL;
    if (o->user)
        json_object_set_new(j, "user", json_string(o->user));
    if (o->pass)
        json_object_set_new(j, "pass", json_string(o->pass));
    if (o->token)
        json_object_set_new(j, "auth_token", json_string(o->token));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* A -ERR during the handshake: what the server refused. */
static int err_code(const tern__nats_op *op)
{
    static const char auth[] = "authorization violation";
    if (op->text_len >= sizeof auth - 1 && strncasecmp(op->text, auth, sizeof auth - 1) == 0)
        return -EACCES;
    return -EPROTO;
}

/* Read until one operation is whole at rbuf's start: its size, or -errno. */
static ssize_t next_op(tern_conn *c, tern__growbuf *rbuf, tern__nats_op *op, tern_ctx *ctx)
{
    for (;;) {
        size_t need;
        ssize_t n = tern__nats_parse(rbuf->p, rbuf->len, DEFAULT_MAX_PAYLOAD, op, &need);
        if (n != 0)
            return n;
        if (tern__growbuf_reserve(rbuf, READ_CHUNK))
            return -ENOMEM;
        ssize_t r = tern_conn_read(c, rbuf->p + rbuf->len, rbuf->cap - rbuf->len, ctx);
        if (r == 0)
            return -ECONNRESET;
        if (r < 0)
            return r;
        rbuf->len += (size_t)r;
    }
}

static void consume(tern__growbuf *rbuf, size_t n)
{
    memmove(rbuf->p, rbuf->p + n, rbuf->len - n);
    rbuf->len -= n;
}

int tern__nats_handshake(const tern_nats_options *o, const char *addr, tern_conn **out,
                         tern__nats_info *info, tern__growbuf *rbuf, tern_ctx *ctx)
{
    *out = NULL;
    *info = (tern__nats_info){0};
    rbuf->len = 0;
    tern_conn *c;
    int err = tern_conn_dial(TERN_NET_TCP, addr, &c, ctx);
    if (err)
        return err;
    tern__nats_op op;
    ssize_t n = next_op(c, rbuf, &op, ctx);
    if (n > 0 && op.kind != TERN__NATS_INFO)
        n = -EPROTO;
    if (n > 0) {
        err = tern__nats_info_parse(op.text, op.text_len, info);
        consume(rbuf, (size_t)n);
    } else
        err = (int)n;
    char *cj = err ? NULL : connect_json(o);
    if (!err && !cj)
        err = -ENOMEM;
    if (!err) {
        size_t l = strlen(cj) + 32;
        char *line = malloc(l);
        if (!line)
            err = -ENOMEM;
        else {
            int w = snprintf(line, l, "CONNECT %s\r\nPING\r\n", cj);
            ssize_t wr = tern_conn_write(c, line, (size_t)w, ctx);
            err = wr < 0 ? (int)wr : 0;
            free(line);
        }
    }
    free(cj);
    while (!err) {
        n = next_op(c, rbuf, &op, ctx);
        if (n < 0) {
            err = (int)n;
            break;
        }
        tern__nats_opkind k = op.kind;
        if (k == TERN__NATS_ERR)
            err = err_code(&op);
        else if (k == TERN__NATS_INFO) {
            tern__nats_info_clear(info);
            err = tern__nats_info_parse(op.text, op.text_len, info);
        } else if (k == TERN__NATS_PING) {
            ssize_t wr = tern_conn_write(c, "PONG\r\n", 6, ctx);
            err = wr < 0 ? (int)wr : 0;
        } else if (k != TERN__NATS_OK && k != TERN__NATS_PONG)
            err = -EPROTO;
        consume(rbuf, (size_t)n);
        if (k == TERN__NATS_PONG)
            break;
    }
    if (err) {
        tern__nats_info_clear(info);
        tern_conn_free(c);
        return err;
    }
    *out = c;
    return 0;
}
