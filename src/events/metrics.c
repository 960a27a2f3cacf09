/*
 * metrics.c - the events layer's metric families (one set per registry)
 * and the children buses and relays look up.  Topics are few and chosen by
 * code, so they make a bounded label.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>

#include "events/internal.h"
#include "tern/runtime.h"

struct tern_events_metrics {
    tern_metrics_family *published, *delivered, *redelivered, *dead, *relay_published, *relay_lag;
};

/* Commit to publish: 1 ms to 1 min. */
static const double lag_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

int tern_events_metrics_new(tern_metrics_registry *r, tern_events_metrics **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    tern_events_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    static const char *const bus_topic[] = {"bus", "topic", NULL};
    static const char *const outbox[] = {"outbox", NULL};
    const tern_metrics_family_options fams[] = {
        {TERN_METRICS_COUNTER, "tern_events_published_total", "Events published.", bus_topic, NULL, 0},
        {TERN_METRICS_COUNTER, "tern_events_delivered_total", "Event deliveries to consumers.", bus_topic, NULL,
         0},
        {TERN_METRICS_COUNTER, "tern_events_redelivered_total", "Deliveries after the first.", bus_topic, NULL,
         0},
        {TERN_METRICS_COUNTER, "tern_events_dead_lettered_total", "Events sent to the dead-letter topic.",
         bus_topic, NULL, 0},
        {TERN_METRICS_COUNTER, "tern_events_relay_published_total", "Outbox rows published by the relay.",
         outbox, NULL, 0},
        {TERN_METRICS_HISTOGRAM, "tern_events_relay_lag_seconds", "Outbox row commit to publish.", outbox,
         lag_bounds, sizeof lag_bounds / sizeof lag_bounds[0]},
    };
    tern_metrics_family **dst[] = {&m->published,       &m->delivered, &m->redelivered, &m->dead,
                                   &m->relay_published, &m->relay_lag};
    for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) {
        int rc = tern_metrics_family_new(r, &fams[i], dst[i]);
        if (rc < 0) {
            free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

void tern_events_metrics_free(tern_events_metrics *m)
{
    free(m);
}

void tern__ev_counters(tern_events_metrics *m, const char *bus, const char *topic, ev_counters *out)
{
    *out = (ev_counters){0};
    if (!m)
        return;
    tern_metrics_counter_with(m->published, &out->published, bus, topic);
    tern_metrics_counter_with(m->delivered, &out->delivered, bus, topic);
    tern_metrics_counter_with(m->redelivered, &out->redelivered, bus, topic);
    tern_metrics_counter_with(m->dead, &out->dead, bus, topic);
}

void tern__ev_relay_children(tern_events_metrics *m, const char *outbox, tern_metrics_counter **published,
                             tern_metrics_histogram **lag)
{
    *published = NULL;
    *lag = NULL;
    if (!m)
        return;
    tern_metrics_counter_with(m->relay_published, published, outbox);
    tern_metrics_histogram_with(m->relay_lag, lag, outbox);
}
