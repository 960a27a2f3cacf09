/*
 * balancer_picker.c - a tern_balancer as the gRPC channel's and the HTTP
 * client's picker (tern_grpc_picker, tern_http_picker): the layers below
 * define the hook, this file plugs the balancer in.
 *
 * A pick's tern_lb_pick travels in the hook's opaque state (its size is
 * checked below), so a pick allocates nothing.  The outcomes map one to
 * one.  The gRPC channel feeds the balancer its address sets through
 * update (it is the resolver's one watcher); an HTTP client has no
 * resolver of its own, so there the balancer follows one
 * (tern_balancer_follow) or is updated by its owner.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "tern/discovery.h"
#include "tern/grpc.h"
#include "tern/http_client.h"

_Static_assert(sizeof(tern_lb_pick) <= sizeof(((tern_grpc_pick *)0)->state),
               "a balancer's pick fits in a gRPC pick's state");
_Static_assert(sizeof(tern_lb_pick) <= sizeof(((tern_http_pick *)0)->state),
               "a balancer's pick fits in an HTTP pick's state");

static int pick_into(tern_balancer *b, const void *key, size_t key_len, const char **addr, uint64_t *state)
{
    tern_lb_pick p;
    int rc = tern_balancer_pick(b, key, key_len, &p);
    if (rc < 0)
        return rc;
    memcpy(state, &p, sizeof p);
    *addr = p.addr;
    return 0;
}

static void done_from(tern_balancer *b, uint64_t *state, int64_t latency, tern_lb_outcome o)
{
    tern_lb_pick p;
    memcpy(&p, state, sizeof p);
    tern_balancer_done(b, &p, latency, o);
}

/* ---- gRPC ---- */

static int grpc_update(void *arg, const char *const *addrs, const uint32_t *weights, size_t n)
{
    tern_endpoint *eps = n ? calloc(n, sizeof *eps) : NULL;
    if (n && !eps)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        eps[i] = (tern_endpoint){.addr = addrs[i], .weight = weights ? weights[i] : 1};
    int rc = tern_balancer_update(arg, eps, n);
    free(eps);
    return rc;
}

static int grpc_pick(void *arg, const void *key, size_t key_len, tern_grpc_pick *out)
{
    return pick_into(arg, key, key_len, &out->addr, out->state);
}

static void grpc_done(void *arg, tern_grpc_pick *p, int64_t latency, tern_grpc_pick_outcome o)
{
    done_from(arg, p->state, latency,
              o == TERN_GRPC_PICK_OK ? TERN_LB_OK : o == TERN_GRPC_PICK_FAILED ? TERN_LB_FAILED : TERN_LB_LOCAL);
    p->addr = NULL;
}

static const tern_grpc_picker grpc_picker = {.update = grpc_update, .pick = grpc_pick, .done = grpc_done};

const struct tern_grpc_picker *tern_balancer_grpc_picker(void)
{
    return &grpc_picker;
}

/* ---- HTTP ---- */

static int http_pick(void *arg, const void *key, size_t key_len, tern_http_pick *out)
{
    return pick_into(arg, key, key_len, &out->addr, out->state);
}

static void http_done(void *arg, tern_http_pick *p, int64_t latency, tern_http_pick_outcome o)
{
    done_from(arg, p->state, latency,
              o == TERN_HTTP_PICK_OK ? TERN_LB_OK : o == TERN_HTTP_PICK_FAILED ? TERN_LB_FAILED : TERN_LB_LOCAL);
    p->addr = NULL;
}

static const tern_http_picker http_picker = {.pick = http_pick, .done = http_done};

const struct tern_http_picker *tern_balancer_http_picker(void)
{
    return &http_picker;
}
