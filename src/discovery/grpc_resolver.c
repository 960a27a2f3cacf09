/*
 * grpc_resolver.c - discovery's resolvers behind a gRPC channel: the
 * channel's resolver interface (tern/grpc.h) over a tern_resolver, so a
 * channel follows a file, DNS SRV or etcd as a balancer does.
 *
 * The channel becomes the resolver's watcher: each set is handed to
 * tern_grpc_channel_update_weighted (the channel's own policies ignore
 * the weights; a picker, tern_balancer_grpc_picker, gets them).  stop unwatches,
 * which waits out an update in progress, so none reaches a freed channel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "base/check.h"
#include "tern/discovery.h"
#include "tern/grpc.h"

static void to_channel(const tern_endpoint *eps, size_t n, int err, void *arg)
{
    if (err < 0)
        return;                 /* the channel keeps its addresses */
    const char **addrs = n ? calloc(n, sizeof *addrs) : NULL;
    uint32_t *weights = n ? calloc(n, sizeof *weights) : NULL;
    if (n && (!addrs || !weights)) {
        free(addrs);
        free(weights);
        return;                 /* the next update tries again */
    }
    for (size_t i = 0; i < n; i++) {
        addrs[i] = eps[i].addr;
        weights[i] = eps[i].weight;
    }
    (void)tern_grpc_channel_update_weighted(arg, addrs, weights, n);
    free(addrs);
    free(weights);
}

static int feed_start(tern_grpc_channel *ch, const char *target, void *arg, void **state)
{
    (void)target;
    tern_resolver *r = arg;
    if (!r)
        return -EINVAL;
    int rc = tern_resolver_watch(r, to_channel, ch);
    if (rc == 0)
        rc = tern_resolver_wait(r, NULL);
    if (rc < 0)
        tern_resolver_unwatch(r);
    *state = r;
    return rc;
}

static void feed_stop(void *state)
{
    tern_resolver_unwatch(state);
}

static const tern_grpc_resolver feed = {.start = feed_start, .refresh = NULL, .stop = feed_stop};

const struct tern_grpc_resolver *tern_resolver_grpc(void)
{
    return &feed;
}
