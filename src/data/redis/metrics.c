/*
 * metrics.c - the client's counters as Prometheus metrics, through the
 * kit's registry.  Each value is read from tern_redis_stats at scrape
 * time (lock-free, as a scrape must not park), so the hot path pays only
 * its relaxed atomic increments.
 */
#include <errno.h>

#include "base/check.h"
#include "data/redis/internal.h"
#include "tern/metrics.h"

#define FIELD(name)                                                                     \
    static double name(void *arg)                                                       \
    {                                                                                   \
        struct tern_redis_stats st;                                                     \
        tern_redis_stats(arg, &st);                                                     \
        return (double)st.name;                                                         \
    }
FIELD(commands)
FIELD(errors)
FIELD(error_replies)
FIELD(batches)
FIELD(batched)
FIELD(dropped)
FIELD(reconnects)
FIELD(connected)
FIELD(inflight)
#undef FIELD

int tern_redis_metrics_register(tern_redis_client *cl, tern_metrics_registry *r)
{
    TERN_CHECK_ARG(cl);
    TERN_CHECK_ARG(r);
    static const struct {
        const char *name, *help;
        tern_metrics_value_fn *fn;
        bool gauge;
    } m[] = {
        {"tern_redis_commands_total", "Redis replies read (handed to callers or dropped).",
         commands, false},
        {"tern_redis_errors_total", "Redis calls failed by transport errors or their ctx.",
         errors, false},
        {"tern_redis_error_replies_total", "Redis error replies.", error_replies, false},
        {"tern_redis_batches_total", "Pipeline writes (one writev each).", batches, false},
        {"tern_redis_batched_commands_total", "Commands sent in pipeline writes.", batched,
         false},
        {"tern_redis_dropped_replies_total", "Replies read for callers whose ctx had ended.",
         dropped, false},
        {"tern_redis_reconnects_total", "Pipelined connections re-made after a break.",
         reconnects, false},
        {"tern_redis_connections", "Pipelined connections up.", connected, true},
        {"tern_redis_inflight", "Commands queued or sent, not yet answered.", inflight, true},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int err = m[i].gauge ? tern_metrics_gauge_func(r, m[i].name, m[i].help, m[i].fn, cl)
                             : tern_metrics_counter_func(r, m[i].name, m[i].help, m[i].fn, cl);
        if (err)
            return err;
    }
    return 0;
}
