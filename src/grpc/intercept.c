/*
 * intercept.c - the client side's interceptor chain: tern_grpc_unary and
 * tern_grpc_stream_open run a channel's interceptors around the call, the
 * innermost link making it (through the service config's policy for a
 * unary call, so retries and hedges stay invisible to interceptors).
 *
 * A client call (tern_grpc_client_call) is on tern_grpc_unary's stack for a
 * unary call; for a stream it is malloc'd and, once the stream is open,
 * owned by the stream, which tells it of the end (recv <= 0, or free).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "grpc/grpc_internal.h"
#include "tern/error.h"

#define MAX_EXTRA 16
#define MAX_DONE 8

struct tern_grpc_client_call {
    tern_grpc_channel *ch;
    const tern_grpc_method_desc *m;
    tern_ctx *ctx;
    tern_ctx *own_ctx;                  /* a stream's method-config timeout; freed with cc */
    const tern_grpc_call_options *opts;
    tern_grpc_metadata extra[MAX_EXTRA];   /* name and value in one malloc'd block each */
    size_t nextra;
    size_t next_i;                      /* the next interceptor to run */
    bool made;                          /* the innermost link ran */
    /* unary */
    bool unary;
    const ProtobufCMessage *req;
    ProtobufCMessage **resp;
    tern_grpc_status *status;
    /* streaming */
    tern_grpc_stream **out;
    struct { tern_grpc_client_done_fn *fn; void *arg; } done[MAX_DONE];
    size_t ndone;
    bool finished;
    tern_grpc_code code;
    char *message;
    int attempts;
};

const tern_grpc_method_desc *tern_grpc_client_call_method(const tern_grpc_client_call *cc)
{
    TERN_CHECK_ARG(cc);
    return cc->m;
}

tern_ctx *tern_grpc_client_call_ctx(tern_grpc_client_call *cc)
{
    TERN_CHECK_ARG(cc);
    return cc->ctx;
}

tern_grpc_code tern_grpc_client_call_code(const tern_grpc_client_call *cc)
{
    TERN_CHECK_ARG(cc);
    return cc->code;
}

const char *tern_grpc_client_call_message(const tern_grpc_client_call *cc)
{
    TERN_CHECK_ARG(cc);
    return cc->message;
}

int tern_grpc_client_call_attempts(const tern_grpc_client_call *cc)
{
    TERN_CHECK_ARG(cc);
    return cc->attempts;
}

int tern_grpc_client_call_add_metadata(tern_grpc_client_call *cc, const char *name, const void *value,
                                       size_t len)
{
    TERN_CHECK_ARG(cc);
    if (!name || (!value && len))
        return -EINVAL;
    if (cc->made)
        return -EALREADY;
    size_t nl = strlen(name);
    /* checked here so the interceptor hears of it, not the call later */
    if (!tern__grpc_md_name_ok(name) || tern__grpc_md_reserved(name) || nl > 120 ||
        (!tern__grpc_md_is_bin(name, nl) && !tern__grpc_md_value_ok(value, len)))
        return -EINVAL;
    if (cc->nextra == MAX_EXTRA)
        return -ENOSPC;
    char *p = malloc(nl + 1 + len + 1);
    if (!p)
        return -ENOMEM;
    memcpy(p, name, nl + 1);
    if (len)
        memcpy(p + nl + 1, value, len);
    p[nl + 1 + len] = '\0';
    cc->extra[cc->nextra++] = (tern_grpc_metadata){ p, p + nl + 1, len };
    return 0;
}

int tern_grpc_client_call_on_done(tern_grpc_client_call *cc, tern_grpc_client_done_fn *fn, void *arg)
{
    TERN_CHECK_ARG(cc);
    if (!fn)
        return -EINVAL;
    if (cc->finished)
        return -EALREADY;
    if (cc->ndone == MAX_DONE)
        return -ENOSPC;
    cc->done[cc->ndone].fn = fn;
    cc->done[cc->ndone].arg = arg;
    cc->ndone++;
    return 0;
}

void tern__grpc_cc_finish(tern_grpc_client_call *cc, tern_grpc_code code, const char *message)
{
    if (!cc || cc->finished)
        return;
    cc->finished = true;
    cc->code = code;
    free(cc->message);
    cc->message = message ? strdup(message) : NULL;
    for (size_t i = cc->ndone; i-- > 0;)
        cc->done[i].fn(cc, cc->done[i].arg);
}

void tern__grpc_cc_set_attempts(tern_grpc_client_call *cc, int n)
{
    if (cc)
        cc->attempts = n;
}

static void cc_release(tern_grpc_client_call *cc)
{
    for (size_t i = 0; i < cc->nextra; i++)
        free((void *)cc->extra[i].name);
    cc->nextra = 0;
    free(cc->message);
    cc->message = NULL;
    tern_ctx_free(cc->own_ctx);
    cc->own_ctx = NULL;
}

void tern__grpc_cc_free(tern_grpc_client_call *cc)
{
    if (!cc)
        return;
    cc_release(cc);
    free(cc);
}

/* The caller's options with the interceptors' metadata after theirs.  *md
 * is malloc'd (or NULL when nothing was added). */
static int merged_options(const tern_grpc_client_call *cc, tern_grpc_call_options *o, tern_grpc_metadata **md)
{
    *md = NULL;
    if (cc->opts)
        *o = *cc->opts;
    else
        *o = (tern_grpc_call_options){ 0 };
    if (cc->nextra == 0)
        return 0;
    size_t n = o->n_md + cc->nextra;
    tern_grpc_metadata *v = malloc(n * sizeof *v);
    if (!v)
        return -ENOMEM;
    if (o->n_md)
        memcpy(v, o->md, o->n_md * sizeof *v);
    memcpy(v + o->n_md, cc->extra, cc->nextra * sizeof *v);
    o->md = v;
    o->n_md = n;
    *md = v;
    return 0;
}

/* The innermost link: make the call. */
static int make_call(tern_grpc_client_call *cc)
{
    cc->made = true;
    tern_grpc_call_options o;
    tern_grpc_metadata *md;
    int rc = merged_options(cc, &o, &md);
    if (rc < 0) {
        tern__grpc_cc_finish(cc, tern_grpc_errno_to_code(rc), tern_strerror(rc));
        return rc;
    }
    if (cc->unary) {
        rc = tern__grpc_unary_policy(cc->ch, cc->m, cc->req, cc->resp, &o, cc->status, &cc->attempts, cc->ctx);
        free(md);
        tern__grpc_cc_finish(cc, cc->status->code, cc->status->message);
        return rc;
    }
    tern_ctx *ctx = cc->ctx;
    const tern__grpc_method_config *mc = cc->ch->svc ? tern__grpc_svc_config_find(cc->ch->svc, cc->m->path) : NULL;
    if (mc && mc->timeout > 0) {
        /* the stream lives past this function: the ctx lives with cc */
        rc = tern_ctx_with_timeout(ctx, mc->timeout, &cc->own_ctx);
        if (rc == 0)
            ctx = cc->own_ctx;
    }
    cc->attempts = 1;
    if (rc == 0)
        rc = tern__grpc_stream_open_raw(cc->ch, cc->m, &o, 0, cc->out, ctx);
    if (rc < 0) {
        free(md);
        tern__grpc_cc_finish(cc, tern_grpc_errno_to_code(rc), tern_strerror(rc));
        return rc;
    }
    tern__grpc_stream_attach(*cc->out, cc);
    /* (o's metadata, md among it, copied before md goes) */
    if (tern__grpc_stream_enable_retry(*cc->out, cc->ch, mc && mc->retry_max >= 2 ? mc : NULL, &o) < 0) {
        /* no memory to keep the call retryable: it goes on without retries */
    }
    free(md);
    return 0;
}

int tern_grpc_client_call_next(tern_grpc_client_call *cc)
{
    TERN_CHECK_ARG(cc);
    if (cc->made)
        return -EALREADY;       /* an interceptor called next twice */
    if (cc->next_i < cc->ch->nicepts) {
        const tern_grpc_client_interceptor *ic = &cc->ch->icepts[cc->next_i++];
        return ic->fn(cc, ic->arg);
    }
    return make_call(cc);
}

int tern_grpc_unary(tern_grpc_channel *ch, const tern_grpc_method_desc *m, const ProtobufCMessage *req,
                    ProtobufCMessage **resp, const tern_grpc_call_options *opts, tern_grpc_status *status,
                    tern_ctx *ctx)
{
    TERN_CHECK_ARG(ch);
    TERN_CHECK_ARG(resp);
    *resp = NULL;
    if (ch->nicepts == 0 && !ch->svc)
        return tern__grpc_unary_attempt(ch, m, req, resp, opts, 0, status, NULL, ctx);
    if (!m || !m->path)
        return -EINVAL;
    tern_grpc_status own = { 0 };
    tern_grpc_client_call cc = {
        .ch = ch, .m = m, .ctx = ctx, .opts = opts, .unary = true, .req = req, .resp = resp,
        .status = status ? status : &own,
    };
    *cc.status = (tern_grpc_status){ 0 };
    int rc = tern_grpc_client_call_next(&cc);
    if (rc < 0 && *resp) {
        /* an interceptor failed the call after it succeeded underneath */
        protobuf_c_message_free_unpacked(*resp, NULL);
        *resp = NULL;
    }
    if (!cc.made) {
        /* refused by an interceptor: the status says so */
        cc.status->code = tern_grpc_errno_to_code(rc);
        if (!cc.status->message)
            cc.status->message = strdup(tern_strerror(rc));
        tern__grpc_cc_finish(&cc, cc.status->code, cc.status->message);
    }
    cc_release(&cc);
    tern_grpc_status_clear(&own);
    return rc;
}

int tern_grpc_stream_open(tern_grpc_channel *ch, const tern_grpc_method_desc *m,
                          const tern_grpc_call_options *opts, tern_grpc_stream **out, tern_ctx *ctx)
{
    TERN_CHECK_ARG(ch);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (ch->nicepts == 0 && !ch->svc) {
        int rc = tern__grpc_stream_open_raw(ch, m, opts, 0, out, ctx);
        if (rc == 0 && tern__grpc_stream_enable_retry(*out, ch, NULL, opts) < 0) {
            /* no memory to keep it retryable: it goes on without */
        }
        return rc;
    }
    if (!m || !m->path)
        return -EINVAL;
    tern_grpc_client_call *cc = calloc(1, sizeof *cc);
    if (!cc)
        return -ENOMEM;
    *cc = (tern_grpc_client_call){ .ch = ch, .m = m, .ctx = ctx, .opts = opts, .out = out };
    int rc = tern_grpc_client_call_next(cc);
    if (rc == 0 && *out)
        return 0;           /* the stream owns cc */
    if (rc == 0)
        rc = -EPROTO;       /* an interceptor said yes without opening */
    if (*out) {
        /* an interceptor failed it after it opened: the stream goes, and cc with it */
        tern_grpc_stream_free(*out);
        *out = NULL;
        return rc;
    }
    tern__grpc_cc_finish(cc, tern_grpc_errno_to_code(rc), tern_strerror(rc));
    tern__grpc_cc_free(cc);
    return rc;
}
