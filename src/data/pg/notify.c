/*
 * notify.c - LISTEN / NOTIFY.
 *
 * libpq queues notifications as it reads: during a query's results or a
 * PQconsumeInput of our own.  Waiting for one is therefore "take a queued
 * one, else park on readable and read"; nothing is in flight on the
 * connection, so a ctx that ends has nothing to cancel and loses nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/pg/pg_internal.h"
#include "tern/runtime.h"

static int listen_cmd(tern_pg_conn *c, const char *verb, const char *channel, tern_ctx *ctx)
{
    if (!c->pg)
        return -EPIPE;
    char *id = PQescapeIdentifier(c->pg, channel, strlen(channel));
    if (!id)
        return -ENOMEM;
    size_t n = strlen(verb) + strlen(id) + 2;
    char *sql = malloc(n);
    int rc = -ENOMEM;
    if (sql) {
        snprintf(sql, n, "%s %s", verb, id);
        rc = tern_pg_exec(c, sql, NULL, NULL, ctx);
        free(sql);
    }
    PQfreemem(id);
    return rc;
}

int tern_pg_listen(tern_pg_conn *c, const char *channel, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(channel);
    return listen_cmd(c, "LISTEN", channel, ctx);
}

int tern_pg_unlisten(tern_pg_conn *c, const char *channel, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    return channel ? listen_cmd(c, "UNLISTEN", channel, ctx) : tern_pg_exec(c, "UNLISTEN *", NULL, NULL, ctx);
}

int tern_pg_notify(tern_pg_conn *c, const char *channel, const char *payload, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(channel);
    const char *v[] = {channel, payload ? payload : ""};
    tern_pg_params p = {.n = 2, .values = v};
    return tern_pg_exec(c, "SELECT pg_notify($1, $2)", &p, NULL, ctx);
}

static int take(PGnotify *n, tern_pg_notification **out)
{
    size_t lc = strlen(n->relname) + 1, lp = strlen(n->extra) + 1;
    tern_pg_notification *x = malloc(sizeof *x + lc + lp);
    if (!x) {
        PQfreemem(n);
        return -ENOMEM;
    }
    char *ch = (char *)(x + 1), *pl = ch + lc;
    memcpy(ch, n->relname, lc);
    memcpy(pl, n->extra, lp);
    x->channel = ch;
    x->payload = pl;
    x->sender_pid = n->be_pid;
    PQfreemem(n);
    *out = x;
    return 0;
}

int tern_pg_notify_wait(tern_pg_conn *c, tern_pg_notification **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(c);
    TERN_CHECK_ARG(out);
    *out = NULL;
    for (;;) {
        PGnotify *n = PQnotifies(c->pg);
        if (n)
            return take(n, out);
        if (c->broken || PQstatus(c->pg) != CONNECTION_OK)
            return -EPIPE;
        int rc = tern__pg_wait(c, TERN_FD_READ, TERN_FOREVER, ctx);
        if (rc < 0)
            return rc;
        if (!PQconsumeInput(c->pg)) {
            tern__pg_set_error(c, NULL);
            c->broken = true;
            return -EPIPE;
        }
    }
}

void tern_pg_notification_free(tern_pg_notification *n)
{
    free(n);
}
