/*
 * sampler.c - OpenTelemetry's built-in samplers, named as
 * OTEL_TRACES_SAMPLER names them.
 *
 * traceidratio decides from the trace id alone, so every service with
 * the same ratio keeps or drops the same traces, and a higher ratio keeps
 * a superset of a lower one.  The trace id's last 8 bytes are random in
 * every W3C-conforming generator (the first 8 may hold a timestamp in
 * some), so those are compared, as an unsigned big-endian integer,
 * against ratio * 2^64.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tern/trace.h"

static const struct {
    const char *name;
    tern_trace_sampler_kind kind;
} names[] = {
    {"always_on", TERN_TRACE_SAMPLER_ALWAYS_ON},
    {"always_off", TERN_TRACE_SAMPLER_ALWAYS_OFF},
    {"traceidratio", TERN_TRACE_SAMPLER_TRACEIDRATIO},
    {"parentbased_always_on", TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON},
    {"parentbased_always_off", TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_OFF},
    {"parentbased_traceidratio", TERN_TRACE_SAMPLER_PARENTBASED_TRACEIDRATIO},
};

int tern_trace_sampler_parse(const char *name, const char *arg, tern_trace_sampler *out)
{
    *out = (tern_trace_sampler){TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON, 1.0};
    if (!name || !*name)
        return 0;
    size_t i = 0, n = sizeof names / sizeof names[0];
    while (i < n && strcmp(names[i].name, name) != 0)
        i++;
    if (i == n)
        return -EINVAL;
    double ratio = 1.0;
    bool wants_ratio = names[i].kind == TERN_TRACE_SAMPLER_TRACEIDRATIO ||
                       names[i].kind == TERN_TRACE_SAMPLER_PARENTBASED_TRACEIDRATIO;
    if (wants_ratio && arg && *arg) {
        char *end;
        ratio = strtod(arg, &end);
        if (*end || !(ratio >= 0.0 && ratio <= 1.0))   /* NaN fails too */
            return -EINVAL;
    }
    *out = (tern_trace_sampler){names[i].kind, ratio};
    return 0;
}

static bool ratio_keeps(double ratio, const uint8_t trace_id[16])
{
    if (ratio >= 1.0)
        return true;
    if (!(ratio > 0.0))
        return false;
    uint64_t x;                 /* the id's last 8 bytes, big-endian */
    memcpy(&x, trace_id + 8, 8);
    x = be64toh(x);
    /* ratio < 1, so the bound is below 2^64 and fits; times 2^64 is exact
     * (a power of two), as ldexp would be, without the libm call */
    uint64_t bound = (uint64_t)(ratio * 18446744073709551616.0);
    return x < bound;
}

bool tern_trace_sampler_decide(const tern_trace_sampler *s, const tern_trace_span_context *parent,
                               const uint8_t trace_id[16])
{
    switch (s->kind) {
    case TERN_TRACE_SAMPLER_ALWAYS_ON:
        return true;
    case TERN_TRACE_SAMPLER_ALWAYS_OFF:
        return false;
    case TERN_TRACE_SAMPLER_TRACEIDRATIO:
        return ratio_keeps(s->ratio, trace_id);
    case TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON:
        return parent ? (parent->flags & TERN_TRACE_FLAG_SAMPLED) != 0 : true;
    case TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_OFF:
        return parent ? (parent->flags & TERN_TRACE_FLAG_SAMPLED) != 0 : false;
    case TERN_TRACE_SAMPLER_PARENTBASED_TRACEIDRATIO:
        return parent ? (parent->flags & TERN_TRACE_FLAG_SAMPLED) != 0
                      : ratio_keeps(s->ratio, trace_id);
    }
    return false;
}
