/*
 * client_pick.c - a client whose requests for one logical name are spread
 * by a picker (tern_http_client_options.picker, tern_http_picker).
 *
 * A picked hop keeps its URL for everything the server sees (Host or
 * :authority, the path) and for TLS (u.host is the name verified); only
 * the address dialled changes (hop->dial): each address gets its own pool
 * (keyed by address and name), HTTP/1.1 and HTTP/2 alike.
 *
 * The outcome goes back when the response head has arrived: what a
 * balancer weighs (latency to the first byte, refusals, 5xx) is known by
 * then, and a body read long after would hold the pick open for as long.
 * A refused connection sent nothing, so another address may take the
 * request whatever its method.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/client_internal.h"
#include "tern/runtime.h"

/* Picks one request may take when addresses refuse its connection. */
#define HC_PICKS 3

static bool dial_refused(int rc)
{
    return rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -ENETUNREACH;
}

static tern_http_pick_outcome outcome_of(const tern_http_client_response *r, int rc)
{
    if (rc == 0)
        return r->status >= 500 ? TERN_HTTP_PICK_FAILED : TERN_HTTP_PICK_OK;
    if (tern_ctx_err(r->ctx) || rc == -ETIMEDOUT || rc == -ECANCELED || rc == -EINVAL || rc == -ENOMEM)
        return TERN_HTTP_PICK_LOCAL;
    return TERN_HTTP_PICK_FAILED;
}

int tern__hc_exchange_picked(tern_http_client *c, tern_http_client_response *r, tern__hc_hop *hop,
                             const void *key, size_t key_len)
{
    if (!c->picker || (c->picker_host && strcasecmp(c->picker_host, hop->u.host) != 0))
        return tern__hc_exchange(c, r, hop);
    TERN_ASSERT(hop->dial == NULL);     /* the last hop's was put back */
    int rc = 0;
    for (int k = 0; k < HC_PICKS; k++) {
        int64_t t0 = tern_now();
        tern_http_pick pk;
        if ((rc = c->picker->pick(c->picker_arg, key, key_len, &pk)) < 0)
            break;
        if (!pk.addr || strlen(pk.addr) >= sizeof hop->u.hostport) {
            c->picker->done(c->picker_arg, &pk, 0, TERN_HTTP_PICK_LOCAL);
            rc = -EINVAL;
            break;
        }
        hop->dial = pk.addr;
        rc = tern__hc_exchange(c, r, hop);
        hop->dial = NULL;
        c->picker->done(c->picker_arg, &pk, tern_now() - t0, outcome_of(r, rc));
        if (!dial_refused(rc) || tern_ctx_err(r->ctx))
            break;
    }
    return rc;
}
